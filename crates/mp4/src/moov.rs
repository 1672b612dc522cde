//! The `moov` box: movie header, tracks, their codecs, edit lists and sample tables,
//! and the `mvex`/`trex` defaults used by fragments.
//!
//! Owns: which boxes of a moov the demuxer needs ([`want`]: the opener descends only the
//! known path moov → trak → mdia → minf → stbl, a fixed depth, and reads only small
//! leaves and the heads of the sample tables), and turning what it gathered
//! ([`MoovBoxes`]) into track drafts. Must not touch: I/O, fragments (see `fragment`).

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

/// The largest `stsd` or `elst` read while opening: a sample description is a few
/// hundred bytes, an edit list a few entries. Anything larger is refused, not read.
pub(crate) const MAX_LEAF_SIZE: u64 = 1 << 20;
/// Bytes read of a full box whose first fields are all we need (versioned headers such
/// as `mvhd`, `tkhd`, `mdhd`, `hdlr`, `trex`; a table's version, flags and count).
pub(crate) const HEAD_SIZE: u64 = 32;

/// One box of the moov, as much of it as the demuxer needs.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub fourcc: [u8; 4],
    /// Absolute file offset of the payload.
    pub at: u64,
    /// Payload length in the file.
    pub len: u64,
    /// The payload, or its first [`HEAD_SIZE`] bytes.
    pub bytes: Vec<u8>,
}

impl Leaf {
    fn reader(&self) -> Reader<'_> {
        Reader::head(&self.bytes, self.at, self.fourcc, self.len)
    }
}

/// How much of a moov box the opener reads: the whole payload, its head, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A container on the path moov → trak → mdia → minf → stbl (and edts, mvex):
    /// its children are walked.
    Descend,
    /// Read the payload whole (at most [`MAX_LEAF_SIZE`]).
    Whole,
    /// Read the first [`HEAD_SIZE`] bytes.
    Head,
    Skip,
}

/// What the opener does with child `fourcc` of `parent` (a container it descended).
pub(crate) fn want(parent: [u8; 4], fourcc: [u8; 4]) -> Want {
    match (&parent, &fourcc) {
        (b"moov", b"trak" | b"mvex")
        | (b"trak", b"edts" | b"mdia")
        | (b"mdia", b"minf")
        | (b"minf", b"stbl") => Want::Descend,
        (b"moov", b"mvhd") | (b"trak", b"tkhd") | (b"mdia", b"mdhd" | b"hdlr") => Want::Head,
        (b"mvex", b"trex") => Want::Head,
        (b"edts", b"elst") | (b"stbl", b"stsd") => Want::Whole,
        (
            b"stbl",
            b"stts" | b"ctts" | b"stsc" | b"stsz" | b"stz2" | b"stco" | b"co64" | b"stss",
        ) => Want::Head,
        _ => Want::Skip,
    }
}

/// One `trak`'s boxes that the demuxer uses.
#[derive(Debug, Default)]
pub(crate) struct TrakBoxes {
    /// Payload offsets of the trak's `mdia` and `stbl`, when present (for errors).
    pub mdia_at: Option<u64>,
    pub stbl_at: Option<u64>,
    /// Leaves in file order: tkhd, elst, mdhd, hdlr, stsd and the sample tables.
    pub leaves: Vec<Leaf>,
}

impl TrakBoxes {
    /// The last leaf of type `fourcc` (as a reader of the whole box would find it).
    fn leaf(&self, fourcc: &[u8; 4]) -> Option<&Leaf> {
        self.leaves.iter().rev().find(|l| &l.fourcc == fourcc)
    }
}

/// The boxes of a `moov` that the demuxer uses, gathered by the opener without reading
/// the rest (user data, metadata, padding and sample-table entries stay in the file).
#[derive(Debug, Default)]
pub(crate) struct MoovBoxes {
    pub mvhd: Option<Leaf>,
    pub mvex: bool,
    pub trex: Vec<Leaf>,
    pub traks: Vec<TrakBoxes>,
}

impl MoovBoxes {
    /// Files a leaf met under `parent`.
    pub(crate) fn add(&mut self, parent: [u8; 4], leaf: Leaf) {
        match &parent {
            b"moov" => self.mvhd = Some(leaf),
            b"mvex" => self.trex.push(leaf),
            _ => {
                if let Some(t) = self.traks.last_mut() {
                    // Only the last box of each type counts: keep one (a moov of a
                    // million `stts` boxes costs one).
                    t.leaves.retain(|l| l.fourcc != leaf.fourcc);
                    t.leaves.push(leaf);
                }
            }
        }
    }

    /// A container was entered at payload offset `at`.
    pub(crate) fn enter(&mut self, fourcc: [u8; 4], at: u64) {
        match &fourcc {
            b"trak" => self.traks.push(TrakBoxes::default()),
            b"mvex" => self.mvex = true,
            b"mdia" => {
                if let Some(t) = self.traks.last_mut() {
                    t.mdia_at = Some(at);
                }
            }
            b"stbl" => {
                if let Some(t) = self.traks.last_mut() {
                    t.stbl_at = Some(at);
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn parse_moov(moov: &MoovBoxes, file_size: u64) -> Result<MoovInfo, Mp4Error> {
    let mut info = MoovInfo {
        fragmented: moov.mvex,
        ..MoovInfo::default()
    };
    if let Some(mvhd) = &moov.mvhd {
        let mut r = mvhd.reader();
        let (v, _) = r.full_box()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        info.timescale = r.u32()?;
    }
    let mut trex = Vec::new();
    for leaf in &moov.trex {
        let mut cr = leaf.reader();
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
    for t in &moov.traks {
        if let Some(mut draft) = parse_trak(t, info.timescale, file_size)? {
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
    trak: &TrakBoxes,
    movie_timescale: u32,
    file_size: u64,
) -> Result<Option<TrackDraft>, Mp4Error> {
    let mut id = 0;
    if let Some(tkhd) = trak.leaf(b"tkhd") {
        let mut r = tkhd.reader();
        let (v, _) = r.full_box()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        id = r.u32()?;
    }
    let Some(mdia_at) = trak.mdia_at else {
        return Ok(None);
    };
    let mdia_error = |reason: String| Mp4Error::damaged(*b"mdia", mdia_at, reason);
    let mut timescale = None;
    if let Some(mdhd) = trak.leaf(b"mdhd") {
        let mut r = mdhd.reader();
        let (v, _) = r.full_box()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let ts = r.u32()?;
        if ts == 0 {
            return Err(r.error(format!("track {id} has timescale 0")));
        }
        timescale = Some(ts);
    }
    let mut handler = [0u8; 4];
    if let Some(hdlr) = trak.leaf(b"hdlr") {
        let mut r = hdlr.reader();
        r.full_box()?;
        r.skip(4)?;
        handler = r.fourcc_value()?;
    }
    let kind = match &handler {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => return Ok(None),
    };
    let Some(timescale) = timescale else {
        return Err(mdia_error(format!("track {id} has no mdhd (no timescale)")));
    };
    let Some(stbl_at) = trak.stbl_at else {
        return Err(mdia_error(format!("track {id} has no sample table (stbl)")));
    };
    let (codec, tables) = parse_stbl(trak, stbl_at, file_size)?;
    let edit = match trak.leaf(b"elst") {
        Some(e) => parse_elst(&mut e.reader(), movie_timescale, timescale)?,
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
/// read here (only each table's head is in memory): the opener walks them once from the
/// file (see `table`), and playback may walk them again.
/// `None` tables: an unsupported codec, or no samples described.
fn parse_stbl(
    trak: &TrakBoxes,
    stbl_at: u64,
    file_size: u64,
) -> Result<(Codec, Option<PagedTables>), Mp4Error> {
    let codec = match trak.leaf(b"stsd") {
        Some(stsd) => {
            let mut r = stsd.reader();
            r.full_box()?;
            parse_stsd(&mut r)?
        }
        None => {
            return Err(Mp4Error::damaged(
                *b"stbl",
                stbl_at,
                "no sample description (stsd)",
            ))
        }
    };
    if matches!(codec, Codec::Unsupported { .. }) {
        return Ok((codec, None));
    }
    let last = |names: &[&[u8; 4]]| {
        trak.leaves
            .iter()
            .rev()
            .find(|l| names.contains(&&l.fourcc))
            .map(Leaf::reader)
    };
    // Without sizes, chunks or times no sample is fully described.
    let (Some(mut sz), Some(sc), Some(co), Some(tt)) = (
        last(&[b"stsz", b"stz2"]),
        last(&[b"stsc"]),
        last(&[b"stco", b"co64"]),
        last(&[b"stts"]),
    ) else {
        return Ok((codec, None));
    };
    let ctts = last(&[b"ctts"]);
    let stss = last(&[b"stss"]);

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
        if n.saturating_mul(usize::from(bits)).div_ceil(8) as u64 > sz.remaining_in_box() {
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
