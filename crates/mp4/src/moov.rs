//! The `moov` box: movie header, tracks, their codecs, edit lists and sample tables,
//! and the `mvex`/`trex` defaults used by fragments.
//!
//! Owns: turning one complete moov payload into track drafts. Descends only the known
//! path moov → trak → mdia → minf → stbl (a fixed depth, no generic recursion).
//! Must not touch: I/O, fragments (see `fragment`).

use crate::codec::{parse_stsd, Codec};
use crate::error::Mp4Error;
use crate::index::IndexBuilder;
use crate::movie::{EditShift, TrackKind};
use crate::reader::Reader;

/// The most samples one track may have (a 24-hour 60 fps video has 5.2 million).
pub(crate) const MAX_SAMPLES: u32 = 1 << 26;

/// `trex` defaults for one track's fragments.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Trex {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// A track being built: fragments may still append samples.
#[derive(Debug)]
pub(crate) struct TrackDraft {
    pub id: u32,
    pub kind: TrackKind,
    pub timescale: u32,
    pub codec: Codec,
    pub edit: EditShift,
    pub builder: IndexBuilder,
    pub trex: Trex,
}

impl TrackDraft {
    /// Whether samples are indexed for this track (not for unsupported codecs).
    pub(crate) fn indexed(&self) -> bool {
        !matches!(self.codec, Codec::Unsupported { .. })
    }
}

#[derive(Debug, Default)]
pub(crate) struct MoovInfo {
    pub tracks: Vec<TrackDraft>,
    pub timescale: u32,
    pub fragmented: bool,
}

pub(crate) fn parse_moov(moov: &mut Reader<'_>, file_size: u64) -> Result<MoovInfo, Mp4Error> {
    let mut info = MoovInfo::default();
    let mut traks = Vec::new();
    let mut trex = Vec::new();
    for child in moov.children() {
        let (h, mut r) = child?;
        match &h.fourcc {
            b"mvhd" => {
                let (v, _) = r.full_box()?;
                r.skip(if v == 1 { 16 } else { 8 })?;
                info.timescale = r.u32()?;
            }
            b"trak" => traks.push(r),
            b"mvex" => {
                info.fragmented = true;
                for c in r.children() {
                    let (ch, mut cr) = c?;
                    if &ch.fourcc == b"trex" {
                        cr.full_box()?;
                        let id = cr.u32()?;
                        let _sdi = cr.u32()?;
                        let t = Trex {
                            duration: cr.u32()?,
                            size: cr.u32()?,
                            flags: cr.u32()?,
                        };
                        trex.push((id, t));
                    }
                }
            }
            _ => {}
        }
    }
    for mut t in traks {
        if let Some(mut draft) = parse_trak(&mut t, info.timescale, file_size)? {
            if let Some((_, d)) = trex.iter().find(|(id, _)| *id == draft.id) {
                draft.trex = *d;
            }
            if !info.tracks.iter().any(|x| x.id == draft.id) {
                info.tracks.push(draft);
            }
        }
    }
    Ok(info)
}

/// Parses a trak; `None` for tracks that are neither video nor audio.
fn parse_trak(
    trak: &mut Reader<'_>,
    movie_timescale: u32,
    file_size: u64,
) -> Result<Option<TrackDraft>, Mp4Error> {
    let mut id = 0;
    let mut elst = None;
    let mut mdia = None;
    for child in trak.children() {
        let (h, mut r) = child?;
        match &h.fourcc {
            b"tkhd" => {
                let (v, _) = r.full_box()?;
                r.skip(if v == 1 { 16 } else { 8 })?;
                id = r.u32()?;
            }
            b"edts" => {
                for c in r.children() {
                    let (ch, cr) = c?;
                    if &ch.fourcc == b"elst" {
                        elst = Some(cr);
                    }
                }
            }
            b"mdia" => mdia = Some(r),
            _ => {}
        }
    }
    let Some(mut mdia) = mdia else {
        return Ok(None);
    };
    let mut timescale = None;
    let mut handler = [0u8; 4];
    let mut minf = None;
    for child in mdia.children() {
        let (h, mut r) = child?;
        match &h.fourcc {
            b"mdhd" => {
                let (v, _) = r.full_box()?;
                r.skip(if v == 1 { 16 } else { 8 })?;
                let ts = r.u32()?;
                if ts == 0 {
                    return Err(r.error(format!("track {id} has timescale 0")));
                }
                timescale = Some(ts);
            }
            b"hdlr" => {
                r.full_box()?;
                r.skip(4)?;
                handler = r.fourcc_value()?;
            }
            b"minf" => minf = Some(r),
            _ => {}
        }
    }
    let kind = match &handler {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => return Ok(None),
    };
    let Some(timescale) = timescale else {
        return Err(mdia.error(format!("track {id} has no mdhd (no timescale)")));
    };
    let mut stbl = None;
    if let Some(mut minf) = minf {
        for child in minf.children() {
            let (h, r) = child?;
            if &h.fourcc == b"stbl" {
                stbl = Some(r);
            }
        }
    }
    let Some(mut stbl) = stbl else {
        return Err(mdia.error(format!("track {id} has no sample table (stbl)")));
    };
    let (codec, builder) = parse_stbl(&mut stbl, file_size)?;
    let edit = match elst {
        Some(mut e) => parse_elst(&mut e, movie_timescale, timescale)?,
        None => EditShift::default(),
    };
    Ok(Some(TrackDraft {
        id,
        kind,
        timescale,
        codec,
        edit,
        builder,
        trex: Trex::default(),
    }))
}

fn parse_elst(e: &mut Reader<'_>, movie_ts: u32, track_ts: u32) -> Result<EditShift, Mp4Error> {
    let (v, _) = e.full_box()?;
    let n = e.count(if v == 1 { 20 } else { 12 })?;
    let mut shift = EditShift::default();
    let mut found = false;
    for _ in 0..n {
        let (dur, media_time) = if v == 1 {
            (e.u64()?, e.i64()?)
        } else {
            (u64::from(e.u32()?), i64::from(e.i32()?))
        };
        let rate = e.i16()?;
        e.skip(2)?;
        if found {
            shift.ignored_entries += 1;
            continue;
        }
        if media_time == -1 {
            if movie_ts > 0 {
                let d = i128::from(dur) * i128::from(track_ts) / i128::from(movie_ts);
                shift.delay = shift
                    .delay
                    .saturating_add(i64::try_from(d).unwrap_or(i64::MAX));
            }
            continue;
        }
        if media_time < 0 {
            shift.ignored_entries += 1;
            continue;
        }
        if rate != 1 {
            shift.ignored_entries += 1;
        }
        shift.media_time = media_time;
        found = true;
    }
    Ok(shift)
}

/// Parses the sample description and the sample tables into an index builder.
fn parse_stbl(stbl: &mut Reader<'_>, file_size: u64) -> Result<(Codec, IndexBuilder), Mp4Error> {
    let mut codec = None;
    let (mut stts, mut ctts, mut stsc, mut stsz, mut stco, mut stss) =
        (None, None, None, None, None, None);
    for child in stbl.children() {
        let (h, mut r) = child?;
        match &h.fourcc {
            b"stsd" => {
                r.full_box()?;
                codec = Some(parse_stsd(&mut r)?);
            }
            b"stts" => stts = Some(r),
            b"ctts" => ctts = Some(r),
            b"stsc" => stsc = Some(r),
            b"stsz" | b"stz2" => stsz = Some(r),
            b"stco" | b"co64" => stco = Some(r),
            b"stss" => stss = Some(r),
            _ => {}
        }
    }
    let Some(codec) = codec else {
        return Err(stbl.error("no sample description (stsd)"));
    };
    let mut b = IndexBuilder::default();
    if matches!(codec, Codec::Unsupported { .. }) {
        return Ok((codec, b));
    }

    // Sizes.
    let mut count: u32 = 0;
    if let Some(mut r) = stsz {
        r.full_box()?;
        if r.fourcc() == *b"stsz" {
            let size = r.u32()?;
            if size != 0 {
                let n = r.u32()?;
                // Every sample occupies `size` bytes of the file: cap by the file.
                let cap = (file_size / u64::from(size)).min(u64::from(MAX_SAMPLES));
                count = n.min(u32::try_from(cap).unwrap_or(MAX_SAMPLES));
                b.set_constant_size(size, count);
            } else {
                let n = r.count(4)?;
                check_max(&r, n)?;
                b.reserve_sizes(n);
                for _ in 0..n {
                    b.push_size(r.u32()?);
                }
                count = n as u32; // n <= MAX_SAMPLES (check_max)
            }
        } else {
            r.skip(3)?;
            let field = r.u8()?;
            let n = r.u32()? as usize;
            let bits = match field {
                4 | 8 | 16 => usize::from(field),
                _ => return Err(r.error(format!("field size {field} is not 4, 8 or 16"))),
            };
            if n.saturating_mul(bits).div_ceil(8) > r.remaining() {
                return Err(r.error("sample count larger than the table"));
            }
            check_max(&r, n)?;
            let data = r.rest();
            b.reserve_sizes(n);
            for i in 0..n {
                let v = match bits {
                    4 => {
                        let byte = data.get(i / 2).copied().unwrap_or(0);
                        u32::from(if i % 2 == 0 { byte >> 4 } else { byte & 0xf })
                    }
                    8 => u32::from(data.get(i).copied().unwrap_or(0)),
                    _ => {
                        let hi = data.get(2 * i).copied().unwrap_or(0);
                        let lo = data.get(2 * i + 1).copied().unwrap_or(0);
                        u32::from(u16::from_be_bytes([hi, lo]))
                    }
                };
                b.push_size(v);
            }
            count = n as u32; // n <= MAX_SAMPLES (check_max)
        }
    }

    // Chunks: stsc runs expanded over the chunk offsets.
    if let (Some(mut sc), Some(mut co)) = (stsc, stco) {
        sc.full_box()?;
        let n_sc = sc.count(12)?;
        let mut runs = Vec::with_capacity(n_sc);
        for _ in 0..n_sc {
            let first_chunk = sc.u32()?;
            let per_chunk = sc.u32()?;
            sc.skip(4)?;
            runs.push((first_chunk, per_chunk));
        }
        co.full_box()?;
        let wide = co.fourcc() == *b"co64";
        let n_co = co.count(if wide { 8 } else { 4 })?;
        let mut run = 0usize;
        for chunk in 1..=n_co as u64 {
            if b.chunk_samples() >= count {
                break;
            }
            while runs
                .get(run + 1)
                .is_some_and(|&(first, _)| u64::from(first) <= chunk)
            {
                run += 1;
            }
            let offset = if wide {
                co.u64()?
            } else {
                u64::from(co.u32()?)
            };
            let per_chunk = match runs.get(run) {
                Some(&(first, n)) if u64::from(first) <= chunk => n,
                _ => 0,
            };
            b.push_chunk(offset, per_chunk.min(count - b.chunk_samples()));
        }
    }

    // Decode times.
    if let Some(mut r) = stts {
        r.full_box()?;
        let n = r.count(8)?;
        let mut last = 0;
        for _ in 0..n {
            if b.time_samples() >= count {
                break;
            }
            let c = r.u32()?;
            let d = r.u32()?;
            b.push_times(c.min(count - b.time_samples()), d);
            last = d;
        }
        if b.time_samples() < count {
            b.push_times(count - b.time_samples(), last);
        }
    }

    // Composition offsets (version 0 is read as signed too, as players do).
    if let Some(mut r) = ctts {
        r.full_box()?;
        let n = r.count(8)?;
        let mut covered = 0u32;
        for _ in 0..n {
            if covered >= count {
                break;
            }
            let c = r.u32()?.min(count - covered);
            let o = r.i32()?;
            b.push_cts(c, o);
            covered += c; // c <= count - covered
        }
        b.push_cts(count - covered, 0);
    }

    // Sync samples; no stss means every sample is sync.
    match stss {
        None => b.push_sync_range(0, count),
        Some(mut r) => {
            r.full_box()?;
            let n = r.count(4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.u32()?);
            }
            v.sort_unstable();
            v.dedup();
            for s in v.into_iter().filter(|&s| s >= 1) {
                b.push_sync(s - 1);
            }
        }
    }
    Ok((codec, b))
}

fn check_max(r: &Reader<'_>, n: usize) -> Result<(), Mp4Error> {
    if n > MAX_SAMPLES as usize {
        return Err(r.error(format!("{n} samples is more than this server handles")));
    }
    Ok(())
}
