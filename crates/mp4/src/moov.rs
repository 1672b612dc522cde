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
use crate::table::{Entries, PagedTables, SizeTable, TableSummary};

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
    /// Where the `stbl` tables are (progressive samples), if any.
    pub tables: Option<PagedTables>,
    /// The progressive samples were indexed into `builder` (not left paged).
    pub indexed_tables: bool,
    /// Samples indexed in memory: the progressive ones when the opener indexes, and
    /// every fragment's.
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
    let (codec, tables) = parse_stbl(&mut stbl, file_size)?;
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
        tables,
        indexed_tables: true,
        builder: IndexBuilder::default(),
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

/// Parses the sample description and finds the sample tables. Table entries are not
/// decoded here: the opener walks them once (see `table`), and playback may walk them
/// again from the file. `None` tables: an unsupported codec, or no samples described.
fn parse_stbl(
    stbl: &mut Reader<'_>,
    file_size: u64,
) -> Result<(Codec, Option<PagedTables>), Mp4Error> {
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
    if matches!(codec, Codec::Unsupported { .. }) {
        return Ok((codec, None));
    }
    // Without sizes, chunks or times no sample is fully described.
    let (Some(mut sz), Some(sc), Some(co), Some(tt)) = (stsz, stsc, stco, stts) else {
        return Ok((codec, None));
    };

    sz.full_box()?;
    let (sizes, count) = if sz.fourcc() == *b"stsz" {
        let size = sz.u32()?;
        if size != 0 {
            let n = sz.u32()?;
            // Every sample occupies `size` bytes of the file: cap by the file.
            let cap = (file_size / u64::from(size)).min(u64::from(MAX_SAMPLES));
            let count = n.min(u32::try_from(cap).unwrap_or(MAX_SAMPLES));
            (SizeTable::Constant(size), count)
        } else {
            let n = sz.count(4)?;
            check_max(&sz, n)?;
            (SizeTable::Each(entries(&sz, n, 32)), n as u32) // n <= MAX_SAMPLES
        }
    } else {
        sz.skip(3)?;
        let field = sz.u8()?;
        let n = sz.u32()? as usize;
        let bits = match field {
            4 | 8 | 16 => field,
            _ => return Err(sz.error(format!("field size {field} is not 4, 8 or 16"))),
        };
        if n.saturating_mul(usize::from(bits)).div_ceil(8) > sz.remaining() {
            return Err(sz.error("sample count larger than the table"));
        }
        check_max(&sz, n)?;
        (SizeTable::Each(entries(&sz, n, bits)), n as u32) // n <= MAX_SAMPLES
    };

    let wide = co.fourcc() == *b"co64";
    let chunk_offsets = table_entries(co, if wide { 64 } else { 32 })?;
    let sample_to_chunk = table_entries(sc, 96)?;
    let times = table_entries(tt, 64)?;
    let cts = ctts.map(|r| table_entries(r, 64)).transpose()?;
    // No stss means every sample is sync.
    let sync = stss.map(|r| table_entries(r, 32)).transpose()?;
    Ok((
        codec,
        Some(PagedTables {
            sizes,
            chunk_offsets,
            sample_to_chunk,
            times,
            cts,
            sync,
            limit: count,
            summary: TableSummary::default(),
        }),
    ))
}

/// A full box holding an entry count and entries of `bits` (32, 64 or 96) bits each.
fn table_entries(mut r: Reader<'_>, bits: u8) -> Result<Entries, Mp4Error> {
    r.full_box()?;
    let n = r.count(usize::from(bits / 8))?;
    Ok(entries(&r, n, bits))
}

/// The `n` entries of `bits` bits that start at the reader's position. `n` was checked
/// against the bytes present, so it fits `u32`.
fn entries(r: &Reader<'_>, n: usize, bits: u8) -> Entries {
    Entries {
        offset: r.offset(),
        count: u32::try_from(n).unwrap_or(u32::MAX),
        bits,
    }
}

fn check_max(r: &Reader<'_>, n: usize) -> Result<(), Mp4Error> {
    if n > MAX_SAMPLES as usize {
        return Err(r.error(format!("{n} samples is more than this server handles")));
    }
    Ok(())
}
