//! From a fragmented MP4 (as [`super::fragmented`] writes it, or ffmpeg's
//! `frag_keyframe+empty_moov+default_base_moof`) to one progressive MP4 with its `moov`
//! before its `mdat` ("faststart"), and the scan that finds the complete fragments of a
//! file cut short (a recording whose writer was killed).
//!
//! Works over any `Read + Seek` input and `Write` output the caller opens: no paths,
//! no clock. Memory: the init `moov` (at most 4 MiB) and one `moof` at a time (at most
//! 16 MiB) are read whole; every sample's duration, size, flags and composition offset
//! are kept (13 bytes a sample: ~3 MB for two hours of 30 fps video), and one entry per
//! fragment run. Sample bytes are copied in 64 KiB pieces, never held.
//!
//! What a torn file keeps: every `moof` whose sample data lies whole inside the file;
//! the first box that runs past the end, and anything after it, is dropped.

use std::io::{Read, Seek, SeekFrom, Write};

use super::fragmented::{boxed, full, matrix, u16b, u32b, u64b};

/// The init `moov` is read whole up to this size.
const MAX_INIT_MOOV: u64 = 4 << 20;
/// A `moof` is read whole up to this size.
const MAX_MOOF: u64 = 16 << 20;
/// The final file's movie timescale (milliseconds).
const MOVIE_TIMESCALE: u32 = 1000;
/// Sample bytes are copied in pieces of this size.
const COPY_CHUNK: usize = 64 << 10;

/// Why a fragmented file could not be finalized. The messages are plain and name no path.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with a whole init segment (`ftyp`/`moov` with tracks).
    #[error("no complete init segment: the recording holds no media")]
    NoInit,
    /// A box the scan must read is malformed.
    #[error("damaged fragmented MP4: {0}")]
    Damaged(&'static str),
}

/// One track of the init segment and the samples found for it.
#[derive(Debug, Default)]
struct Track {
    id: u32,
    timescale: u32,
    /// The `trak` box of the init segment, whole.
    trak: Vec<u8>,
    /// Media time the init's edit list skips (encoder priming), in the track's timescale.
    priming: u64,
    trex_duration: u32,
    trex_size: u32,
    trex_flags: u32,
    /// Decode time of the first sample kept.
    first_dts: Option<u64>,
    /// Sum of the kept samples' durations (after `first_dts`).
    media_duration: u64,
    durations: Vec<u32>,
    sizes: Vec<u32>,
    /// Sync samples, 1-based (as `stss` numbers them).
    sync: Vec<u32>,
    cts: Vec<i32>,
}

/// One run of samples of one track, contiguous in the file.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    track: usize,
    offset: u64,
    samples: u32,
    bytes: u64,
}

/// What a scan of a fragmented file found.
#[derive(Debug)]
pub struct Scan {
    tracks: Vec<Track>,
    chunks: Vec<Chunk>,
    /// Bytes from the start that hold whole boxes, up to the end of the last complete
    /// fragment: what a torn file keeps.
    pub complete_len: u64,
    /// Bytes of the input, complete or not.
    pub file_len: u64,
    /// Fragments (`moof`s) kept.
    pub fragments: u32,
}

impl Scan {
    /// How many samples of every track were found.
    pub fn samples(&self) -> usize {
        self.tracks.iter().map(|t| t.sizes.len()).sum()
    }

    /// Duration of the longest track, in milliseconds, its start offset included.
    pub fn duration_ms(&self) -> u64 {
        self.tracks
            .iter()
            .map(|t| t.start_ms() + t.edited_ms())
            .max()
            .unwrap_or(0)
    }
}

impl Track {
    fn start_ms(&self) -> u64 {
        to_ms(self.first_dts.unwrap_or(0), self.timescale)
    }

    fn edited_ms(&self) -> u64 {
        to_ms(
            self.media_duration.saturating_sub(self.priming),
            self.timescale,
        )
    }
}

fn to_ms(t: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    u64::try_from(u128::from(t) * u128::from(MOVIE_TIMESCALE) / u128::from(timescale))
        .unwrap_or(u64::MAX)
}

/// A box's header: its type, where its body starts and where it ends.
struct Header {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

fn read_header<R: Read + Seek>(r: &mut R, at: u64, len: u64) -> std::io::Result<Option<Header>> {
    if at + 8 > len {
        return Ok(None);
    }
    let mut h = [0u8; 16];
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(&mut h[..8])?;
    let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    let kind = [h[4], h[5], h[6], h[7]];
    let (body, size) = match size {
        1 => {
            if at + 16 > len {
                return Ok(None);
            }
            r.read_exact(&mut h[8..16])?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[8..16]);
            (at + 16, u64::from_be_bytes(b))
        }
        // To the end of the file: only a last `mdat` is written so, and a torn one is.
        0 => (at + 8, len - at),
        s => (at + 8, s),
    };
    if size < body - at {
        return Ok(None);
    }
    Ok(Some(Header {
        kind,
        body,
        end: at.saturating_add(size),
    }))
}

/// The child boxes of a body held in memory: (type, whole box, body).
fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8], &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = [b[4], b[5], b[6], b[7]];
        let (hdr, size) = match size {
            1 if b.len() >= 16 => {
                let mut s = [0u8; 8];
                s.copy_from_slice(&b[8..16]);
                (
                    16,
                    usize::try_from(u64::from_be_bytes(s)).unwrap_or(usize::MAX),
                )
            }
            0 => (8, b.len()),
            s => (8, s),
        };
        if size < hdr || size > b.len() {
            return None;
        }
        let (whole, rest) = b.split_at(size);
        b = rest;
        Some((kind, whole, &whole[hdr..]))
    })
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Option<(&'a [u8], &'a [u8])> {
    children(body)
        .find(|(k, _, _)| k == kind)
        .map(|(_, w, b)| (w, b))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let hi = be32(b, at)?;
    let lo = be32(b, at + 4)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

fn read_body<R: Read + Seek>(r: &mut R, h: &Header) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(h.end - h.body).unwrap_or(0)];
    r.seek(SeekFrom::Start(h.body))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// The tracks of an init `moov` body.
fn parse_init(moov: &[u8]) -> Result<Vec<Track>, FinalizeError> {
    let mut tracks = Vec::new();
    for (kind, whole, body) in children(moov) {
        if &kind != b"trak" {
            continue;
        }
        let (_, tkhd) = child(body, b"tkhd").ok_or(FinalizeError::Damaged("trak without tkhd"))?;
        let id = match tkhd.first() {
            Some(1) => be32(tkhd, 20),
            _ => be32(tkhd, 12),
        }
        .ok_or(FinalizeError::Damaged("short tkhd"))?;
        let (_, mdia) = child(body, b"mdia").ok_or(FinalizeError::Damaged("trak without mdia"))?;
        let (_, mdhd) = child(mdia, b"mdhd").ok_or(FinalizeError::Damaged("mdia without mdhd"))?;
        let timescale = match mdhd.first() {
            Some(1) => be32(mdhd, 20),
            _ => be32(mdhd, 12),
        }
        .ok_or(FinalizeError::Damaged("short mdhd"))?;
        let priming = child(body, b"edts")
            .and_then(|(_, edts)| child(edts, b"elst"))
            .and_then(|(_, elst)| match elst.first() {
                Some(1) => be64(elst, 16),
                _ => be32(elst, 12).map(u64::from),
            })
            // -1 (an empty edit) skips nothing.
            .filter(|&t| t != u64::from(u32::MAX) && t != u64::MAX)
            .unwrap_or(0);
        tracks.push(Track {
            id,
            timescale,
            trak: whole.to_vec(),
            priming,
            ..Track::default()
        });
    }
    if let Some((_, mvex)) = child(moov, b"mvex") {
        for (kind, _, trex) in children(mvex) {
            if &kind != b"trex" {
                continue;
            }
            let id = be32(trex, 4);
            if let Some(t) = tracks.iter_mut().find(|t| Some(t.id) == id) {
                t.trex_duration = be32(trex, 12).unwrap_or(0);
                t.trex_size = be32(trex, 16).unwrap_or(0);
                t.trex_flags = be32(trex, 20).unwrap_or(0);
            }
        }
    }
    if tracks.is_empty() {
        return Err(FinalizeError::NoInit);
    }
    Ok(tracks)
}

/// One `trun`'s samples, not yet kept (their data may lie past the end of the file).
struct PendingRun {
    track: usize,
    base_dts: Option<u64>,
    offset: u64,
    samples: Vec<(u32, u32, u32, i32)>,
}

/// The runs of a `moof` body starting at `moof_start` in the file.
fn parse_moof(
    moof: &[u8],
    moof_start: u64,
    tracks: &[Track],
) -> Result<Vec<PendingRun>, FinalizeError> {
    let bad = FinalizeError::Damaged;
    let mut runs = Vec::new();
    for (kind, _, traf) in children(moof) {
        if &kind != b"traf" {
            continue;
        }
        let (_, tfhd) = child(traf, b"tfhd").ok_or(bad("traf without tfhd"))?;
        let flags = be32(tfhd, 0).ok_or(bad("short tfhd"))? & 0x00ff_ffff;
        let id = be32(tfhd, 4).ok_or(bad("short tfhd"))?;
        let Some(track) = tracks.iter().position(|t| t.id == id) else {
            continue;
        };
        let t = &tracks[track];
        let mut at = 8;
        let mut field = |present: bool, wide: bool| -> Option<u64> {
            if !present {
                return None;
            }
            let v = if wide {
                be64(tfhd, at)
            } else {
                be32(tfhd, at).map(u64::from)
            };
            at += if wide { 8 } else { 4 };
            v
        };
        let base = field(flags & 0x1 != 0, true).unwrap_or(moof_start);
        let _description = field(flags & 0x2 != 0, false);
        let def_duration = field(flags & 0x8 != 0, false).map_or(t.trex_duration, |v| v as u32);
        let def_size = field(flags & 0x10 != 0, false).map_or(t.trex_size, |v| v as u32);
        let def_flags = field(flags & 0x20 != 0, false).map_or(t.trex_flags, |v| v as u32);
        let mut base_dts = child(traf, b"tfdt").and_then(|(_, b)| match b.first() {
            Some(1) => be64(b, 4),
            _ => be32(b, 4).map(u64::from),
        });
        let mut next_offset = base;
        for (kind, _, trun) in children(traf) {
            if &kind != b"trun" {
                continue;
            }
            let version = trun.first().copied().unwrap_or(0);
            let flags = be32(trun, 0).ok_or(bad("short trun"))? & 0x00ff_ffff;
            let count = be32(trun, 4).ok_or(bad("short trun"))?;
            let mut at = 8;
            let offset = if flags & 0x1 != 0 {
                let o = be32(trun, at).ok_or(bad("short trun"))? as i32;
                at += 4;
                base.checked_add_signed(i64::from(o))
                    .ok_or(bad("trun data offset"))?
            } else {
                next_offset
            };
            let first_flags = if flags & 0x4 != 0 {
                let f = be32(trun, at);
                at += 4;
                f
            } else {
                None
            };
            let per_sample = [0x100, 0x200, 0x400, 0x800]
                .iter()
                .filter(|&&f| flags & f != 0)
                .count()
                * 4;
            // Every sample's fields must be in the box: a count cannot make us allocate more.
            if (count as usize).saturating_mul(per_sample) > trun.len().saturating_sub(at) {
                return Err(bad("trun holds fewer samples than it claims"));
            }
            let mut samples = Vec::with_capacity(count as usize);
            let mut bytes = 0u64;
            for i in 0..count {
                let mut next = |f: u32| {
                    if flags & f != 0 {
                        let v = be32(trun, at);
                        at += 4;
                        v
                    } else {
                        None
                    }
                };
                let duration = next(0x100).unwrap_or(def_duration);
                let size = next(0x200).unwrap_or(def_size);
                let mut sflags = next(0x400).unwrap_or(def_flags);
                if i == 0 {
                    sflags = first_flags.unwrap_or(sflags);
                }
                let cts = next(0x800).map_or(0, |v| {
                    if version == 0 {
                        i32::try_from(v).unwrap_or(i32::MAX)
                    } else {
                        v as i32
                    }
                });
                bytes += u64::from(size);
                samples.push((duration, size, sflags, cts));
            }
            next_offset = offset + bytes;
            let run = PendingRun {
                track,
                base_dts: base_dts.take(),
                offset,
                samples,
            };
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Walks a fragmented MP4 of `len` bytes and indexes its complete fragments.
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> Result<Scan, FinalizeError> {
    let mut tracks: Option<Vec<Track>> = None;
    let mut chunks = Vec::new();
    let mut pending: Vec<PendingRun> = Vec::new();
    let mut complete_len = 0;
    let mut fragments = 0;
    let mut at = 0;
    while let Some(h) = read_header(r, at, len)? {
        if h.end > len {
            break;
        }
        match &h.kind {
            b"moov" if tracks.is_none() => {
                if h.end - h.body > MAX_INIT_MOOV {
                    return Err(FinalizeError::Damaged("init moov too large"));
                }
                tracks = Some(parse_init(&read_body(r, &h)?)?);
            }
            b"moof" => {
                let Some(tracks) = &tracks else {
                    return Err(FinalizeError::NoInit);
                };
                if h.end - h.body > MAX_MOOF {
                    break;
                }
                let body = read_body(r, &h)?;
                pending = match parse_moof(&body, at, tracks) {
                    Ok(runs) => runs,
                    // A damaged fragment ends what can be kept, as a torn one does.
                    Err(_) => break,
                };
            }
            _ => {}
        }
        at = h.end;
        // A fragment is kept once all its sample data lies in what has been walked.
        if let Some(tracks) = tracks.as_mut() {
            let walked = at;
            let whole = !pending.is_empty()
                && pending.iter().all(|p| {
                    let bytes: u64 = p.samples.iter().map(|s| u64::from(s.1)).sum();
                    p.offset + bytes <= walked
                });
            if whole {
                fragments += 1;
                for run in pending.drain(..) {
                    keep(&mut tracks[run.track], &mut chunks, run);
                }
            }
            if pending.is_empty() {
                complete_len = at;
            }
        }
    }
    let tracks = tracks.ok_or(FinalizeError::NoInit)?;
    Ok(Scan {
        tracks,
        chunks,
        complete_len,
        file_len: len,
        fragments,
    })
}

fn keep(t: &mut Track, chunks: &mut Vec<Chunk>, run: PendingRun) {
    if run.samples.is_empty() {
        return;
    }
    let track_dts = t.first_dts.map(|f| f + t.media_duration);
    match (t.first_dts, run.base_dts) {
        (None, base) => t.first_dts = Some(base.unwrap_or(0)),
        (Some(_), Some(base)) => {
            // A gap (a lost audio packet, a stall) stretches the sample before it, so
            // what follows keeps its time.
            let now = track_dts.unwrap_or(base);
            if base > now {
                if let Some(last) = t.durations.last_mut() {
                    let gap = u32::try_from(base - now).unwrap_or(u32::MAX);
                    *last = last.saturating_add(gap);
                    t.media_duration += u64::from(gap);
                }
            }
        }
        (Some(_), None) => {}
    }
    let mut bytes = 0;
    for (duration, size, flags, cts) in &run.samples {
        t.durations.push(*duration);
        t.sizes.push(*size);
        t.cts.push(*cts);
        t.media_duration += u64::from(*duration);
        if flags & 0x0001_0000 == 0 {
            t.sync
                .push(u32::try_from(t.sizes.len()).unwrap_or(u32::MAX));
        }
        bytes += u64::from(*size);
    }
    chunks.push(Chunk {
        track: run.track,
        offset: run.offset,
        samples: u32::try_from(run.samples.len()).unwrap_or(u32::MAX),
        bytes,
    });
}

/// What [`finalize`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finalized {
    /// Bytes of the progressive file.
    pub bytes: u64,
    /// Samples of all tracks.
    pub samples: u64,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Bytes of the input past its last complete fragment (dropped).
    pub torn_bytes: u64,
}

/// Writes the progressive MP4 of the fragmented file `r` (`len` bytes) to `w`: `ftyp`,
/// `moov` with full sample tables, then one `mdat` with the kept samples' bytes.
pub fn finalize<R: Read + Seek, W: Write>(
    r: &mut R,
    len: u64,
    w: &mut W,
) -> Result<Finalized, FinalizeError> {
    let scan = scan(r, len)?;
    let data: u64 = scan.chunks.iter().map(|c| c.bytes).sum();
    let ftyp = ftyp();
    // Chunk offsets depend on the moov's size, which does not depend on their values:
    // size it once with placeholders, then write it with the real ones.
    let wide = {
        let probe = moov(&scan, 0, false);
        (ftyp.len() + probe.len()) as u64 + 16 + data > u64::from(u32::MAX)
    };
    let moov_len = moov(&scan, 0, wide).len() as u64;
    let mdat_header: u64 = if data + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let data_start = ftyp.len() as u64 + moov_len + mdat_header;
    let moov = moov(&scan, data_start, wide);
    w.write_all(&ftyp)?;
    w.write_all(&moov)?;
    if mdat_header == 16 {
        w.write_all(&1u32.to_be_bytes())?;
        w.write_all(b"mdat")?;
        w.write_all(&(data + 16).to_be_bytes())?;
    } else {
        w.write_all(&u32::try_from(data + 8).unwrap_or(0).to_be_bytes())?;
        w.write_all(b"mdat")?;
    }
    let mut buf = vec![0u8; COPY_CHUNK];
    for c in &scan.chunks {
        r.seek(SeekFrom::Start(c.offset))?;
        let mut left = c.bytes;
        while left > 0 {
            let n = usize::try_from(left.min(COPY_CHUNK as u64)).unwrap_or(COPY_CHUNK);
            r.read_exact(&mut buf[..n])?;
            w.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    w.flush()?;
    Ok(Finalized {
        bytes: data_start + data,
        samples: scan.samples() as u64,
        duration_ms: scan.duration_ms(),
        torn_bytes: scan.file_len - scan.complete_len,
    })
}

fn ftyp() -> Vec<u8> {
    let mut out = Vec::new();
    boxed(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32b(o, 512);
        for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    out
}

/// The progressive `moov`: the init's tracks with their sample tables; chunk offsets
/// count from `data_start` (the first byte of the `mdat`'s body).
fn moov(scan: &Scan, data_start: u64, wide: bool) -> Vec<u8> {
    // Every track's chunk offsets, in the order the chunks are copied.
    let mut offsets: Vec<Vec<(u64, u32)>> = vec![Vec::new(); scan.tracks.len()];
    let mut at = data_start;
    for c in &scan.chunks {
        offsets[c.track].push((at, c.samples));
        at += c.bytes;
    }
    let mut out = Vec::new();
    let duration = scan.duration_ms();
    boxed(&mut out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, MOVIE_TIMESCALE);
            u32b(o, u32::try_from(duration).unwrap_or(u32::MAX));
            u32b(o, 0x0001_0000);
            u16b(o, 0x0100);
            o.extend_from_slice(&[0; 10]);
            matrix(o);
            o.extend_from_slice(&[0; 24]);
            u32b(o, scan.tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for (t, offsets) in scan.tracks.iter().zip(&offsets) {
            if t.sizes.is_empty() {
                continue;
            }
            trak(o, t, offsets, wide);
        }
    });
    out
}

/// A box with a 32- or 64-bit duration field at `at32`/`at64` in its body (by version)
/// copied with `value` there.
fn patch_duration(
    o: &mut Vec<u8>,
    kind: &[u8; 4],
    body: &[u8],
    at32: usize,
    at64: usize,
    value: u64,
) {
    let mut b = body.to_vec();
    if b.first() == Some(&1) {
        if let Some(s) = b.get_mut(at64..at64 + 8) {
            s.copy_from_slice(&value.to_be_bytes());
        }
    } else if let Some(s) = b.get_mut(at32..at32 + 4) {
        s.copy_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes());
    }
    boxed(o, kind, |o| o.extend_from_slice(&b));
}

fn trak(o: &mut Vec<u8>, t: &Track, offsets: &[(u64, u32)], wide: bool) {
    let Some((_, _, body)) = children(&t.trak).next() else {
        return;
    };
    let start_ms = t.start_ms();
    let edited_ms = t.edited_ms();
    boxed(o, b"trak", |o| {
        for (kind, whole, b) in children(body) {
            match &kind {
                b"tkhd" => patch_duration(o, &kind, b, 20, 28, start_ms + edited_ms),
                // The edit list is made anew below, from what was recorded.
                b"edts" => {}
                b"mdia" => {
                    if start_ms > 0 || t.priming > 0 {
                        edts(o, t, start_ms, edited_ms);
                    }
                    boxed(o, b"mdia", |o| {
                        for (kind, whole, b) in children(b) {
                            match &kind {
                                b"mdhd" => patch_duration(o, &kind, b, 16, 24, t.media_duration),
                                b"minf" => minf(o, t, b, offsets, wide),
                                _ => o.extend_from_slice(whole),
                            }
                        }
                    });
                }
                _ => o.extend_from_slice(whole),
            }
        }
    });
}

/// A late start as an empty edit, the priming skipped by the media time of the normal one.
fn edts(o: &mut Vec<u8>, t: &Track, start_ms: u64, edited_ms: u64) {
    boxed(o, b"edts", |o| {
        full(o, b"elst", 1, 0, |o| {
            u32b(o, if start_ms > 0 { 2 } else { 1 });
            if start_ms > 0 {
                u64b(o, start_ms);
                o.extend_from_slice(&(-1i64).to_be_bytes());
                u32b(o, 0x0001_0000);
            }
            u64b(o, edited_ms);
            u64b(o, t.priming);
            u32b(o, 0x0001_0000);
        });
    });
}

fn minf(o: &mut Vec<u8>, t: &Track, body: &[u8], offsets: &[(u64, u32)], wide: bool) {
    boxed(o, b"minf", |o| {
        for (kind, whole, b) in children(body) {
            if &kind != b"stbl" {
                o.extend_from_slice(whole);
                continue;
            }
            boxed(o, b"stbl", |o| {
                if let Some((stsd, _)) = child(b, b"stsd") {
                    o.extend_from_slice(stsd);
                }
                tables(o, t, offsets, wide);
            });
        }
    });
}

/// Run-length entries of `values`: (count, value).
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn tables(o: &mut Vec<u8>, t: &Track, offsets: &[(u64, u32)], wide: bool) {
    let stts = runs(t.durations.iter().copied());
    full(o, b"stts", 0, 0, |o| {
        u32b(o, u32::try_from(stts.len()).unwrap_or(u32::MAX));
        for (n, d) in &stts {
            u32b(o, *n);
            u32b(o, *d);
        }
    });
    if t.cts.iter().any(|&c| c != 0) {
        let ctts = runs(t.cts.iter().copied());
        full(o, b"ctts", 1, 0, |o| {
            u32b(o, u32::try_from(ctts.len()).unwrap_or(u32::MAX));
            for (n, c) in &ctts {
                u32b(o, *n);
                o.extend_from_slice(&c.to_be_bytes());
            }
        });
    }
    if t.sync.len() < t.sizes.len() {
        full(o, b"stss", 0, 0, |o| {
            u32b(o, u32::try_from(t.sync.len()).unwrap_or(u32::MAX));
            for s in &t.sync {
                u32b(o, *s);
            }
        });
    }
    full(o, b"stsz", 0, 0, |o| {
        u32b(o, 0);
        u32b(o, u32::try_from(t.sizes.len()).unwrap_or(u32::MAX));
        for s in &t.sizes {
            u32b(o, *s);
        }
    });
    // One chunk per fragment run; stsc lists where the per-chunk count changes.
    let mut stsc: Vec<(u32, u32)> = Vec::new();
    for (i, (_, n)) in offsets.iter().enumerate() {
        if stsc.last().is_none_or(|(_, last)| last != n) {
            stsc.push((u32::try_from(i + 1).unwrap_or(u32::MAX), *n));
        }
    }
    full(o, b"stsc", 0, 0, |o| {
        u32b(o, u32::try_from(stsc.len()).unwrap_or(u32::MAX));
        for (first, n) in &stsc {
            u32b(o, *first);
            u32b(o, *n);
            u32b(o, 1);
        }
    });
    let count = u32::try_from(offsets.len()).unwrap_or(u32::MAX);
    if wide {
        full(o, b"co64", 0, 0, |o| {
            u32b(o, count);
            for (at, _) in offsets {
                u64b(o, *at);
            }
        });
    } else {
        full(o, b"stco", 0, 0, |o| {
            u32b(o, count);
            for (at, _) in offsets {
                u32b(o, u32::try_from(*at).unwrap_or(u32::MAX));
            }
        });
    }
}
