//! The open loop: a state machine that walks the top-level boxes by asking the caller
//! for byte ranges, reads `ftyp`, `moov` and every `moof`, and builds the [`Movie`].
//!
//! Owns: the order and size of reads. Must not touch: files, sockets, clocks.
//!
//! Reads, in order: 16 bytes at each top-level box start (payloads such as `mdat` are
//! skipped by their size, never requested); the whole `ftyp`, `moov` and each `moof`
//! (each read extended by 16 bytes so the next box header arrives with it). A `moof`
//! met before the `moov` is read after it. The scan stops at the end of the file, at
//! a box that ends past it (a truncated `mdat` is fine; a truncated `moov` is an
//! error), or at unreadable bytes after the `moov` (trailing junk is tolerated).

use std::collections::VecDeque;

use crate::error::{FourCc, Mp4Error};
use crate::fragment::parse_moof;
use crate::index::IndexBuilder;
use crate::moov::TrackDraft;
use crate::moov::{parse_moov, MoovInfo};
use crate::movie::{Movie, Track};
use crate::reader::{parse_header, Reader};
use crate::table::{walk_in_memory, SizeTable, TableSummary};
use crate::walker::SampleTable;

/// The largest `moov` read into memory (a 24-hour file's moov is tens of MB).
pub const MAX_MOOV_SIZE: u64 = 256 << 20;
/// The largest `moof` read into memory.
pub const MAX_MOOF_SIZE: u64 = 64 << 20;
const MAX_FTYP_SIZE: u64 = 4096;
const HEADER_READ: u64 = 16;

/// What [`MovieOpener::poll`] wants next.
#[derive(Debug)]
pub enum OpenStep {
    /// Read `len` bytes at `offset` and pass them to [`MovieOpener::feed`].
    /// The range always lies inside the file size given to [`MovieOpener::new`].
    Read {
        /// Absolute file offset.
        offset: u64,
        /// Number of bytes (at most [`MAX_MOOV_SIZE`] + 16).
        len: u64,
    },
    /// The file is open.
    Done(Movie),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ftyp,
    Moov,
    Moof,
}

#[derive(Debug)]
enum State {
    Scan {
        pos: u64,
    },
    ReadBox {
        kind: Kind,
        offset: u64,
        size: u64,
        /// Continue the top-level scan here afterwards; `None`: next deferred moof.
        resume: Option<u64>,
    },
    Deferred,
    Finish,
    Done,
}

/// Finds the movie's structure by asking for byte ranges. See the crate docs for the
/// loop; `poll` and `feed` never block and never touch I/O.
#[derive(Debug)]
pub struct MovieOpener {
    file_size: u64,
    state: State,
    /// The bytes of the last `feed`, starting at `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    pending: Option<(u64, u64)>,
    boxes_seen: u64,
    major_brand: [u8; 4],
    compatible_brands: Vec<[u8; 4]>,
    moov: Option<MoovInfo>,
    deferred: VecDeque<(u64, u64)>,
    /// Keep progressive sample tables in the file ([`SampleTable::Paged`]) rather than
    /// indexing them in memory.
    paged: bool,
}

fn slice_at(buf: &[u8], buf_at: u64, offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset.checked_sub(buf_at)?).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    buf.get(start..end)
}

/// Top-level box types an MP4/QuickTime file may start with.
fn plausible_first_box(fourcc: &[u8; 4]) -> bool {
    matches!(
        fourcc,
        b"ftyp"
            | b"styp"
            | b"moov"
            | b"mdat"
            | b"free"
            | b"skip"
            | b"wide"
            | b"pnot"
            | b"uuid"
            | b"pdin"
            | b"sidx"
            | b"moof"
            | b"meta"
            | b"junk"
    )
}

impl MovieOpener {
    /// Starts opening a file of `file_size` bytes; every track's samples are indexed
    /// in memory ([`SampleTable::Indexed`]: random access, a few bytes per sample).
    pub fn new(file_size: u64) -> Self {
        Self::with_mode(file_size, false)
    }

    /// Starts opening a file of `file_size` bytes, leaving the sample tables of a
    /// progressive (non-fragmented) file where they are ([`SampleTable::Paged`]): the
    /// movie then holds a few hundred bytes per track whatever the file's length, and
    /// playback reads the tables a window at a time with a [`SampleWalker`](crate::SampleWalker).
    /// Fragmented files are indexed as with [`MovieOpener::new`].
    pub fn paged(file_size: u64) -> Self {
        Self::with_mode(file_size, true)
    }

    fn with_mode(file_size: u64, paged: bool) -> Self {
        MovieOpener {
            file_size,
            state: State::Scan { pos: 0 },
            buf: Vec::new(),
            buf_at: 0,
            pending: None,
            boxes_seen: 0,
            major_brand: [0; 4],
            compatible_brands: Vec::new(),
            moov: None,
            deferred: VecDeque::new(),
            paged,
        }
    }

    /// Gives the bytes asked for by the last [`OpenStep::Read`]. `data` may be shorter
    /// only when the file ends early (the file is then treated as that long).
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Result<(), Mp4Error> {
        let Some((want_off, want_len)) = self.pending else {
            return Err(Mp4Error::Misuse("feed without a pending Read".into()));
        };
        if offset != want_off {
            return Err(Mp4Error::Misuse(format!(
                "fed bytes at offset {offset}, but offset {want_off} was asked for"
            )));
        }
        let len = (data.len() as u64).min(want_len);
        if len < want_len {
            self.file_size = offset.saturating_add(len);
        }
        self.buf.clear();
        // len <= data.len(), so the range is in bounds.
        self.buf
            .extend_from_slice(data.get(..len as usize).unwrap_or(data));
        self.buf_at = offset;
        self.pending = None;
        Ok(())
    }

    fn read(&mut self, offset: u64, len: u64) -> Result<OpenStep, Mp4Error> {
        self.pending = Some((offset, len));
        Ok(OpenStep::Read { offset, len })
    }

    /// What the opener needs next: a read, or the finished [`Movie`].
    /// After an error or `Done`, the opener is finished; further polls return an error.
    pub fn poll(&mut self) -> Result<OpenStep, Mp4Error> {
        let r = self.step();
        if r.is_err() {
            self.state = State::Done;
        }
        r
    }

    fn step(&mut self) -> Result<OpenStep, Mp4Error> {
        loop {
            match self.state {
                State::Scan { pos } => {
                    if pos >= self.file_size {
                        self.end_scan()?;
                        continue;
                    }
                    let want = HEADER_READ.min(self.file_size - pos);
                    let Some(bytes) = slice_at(&self.buf, self.buf_at, pos, want) else {
                        return self.read(pos, want);
                    };
                    let header = match parse_header(bytes, pos) {
                        Ok(Some(h)) => h,
                        Ok(None) if self.boxes_seen == 0 => return Err(Mp4Error::NotMp4),
                        Ok(None) => {
                            self.end_scan()?; // a few trailing bytes
                            continue;
                        }
                        Err(e) if self.boxes_seen == 0 => {
                            let _ = e;
                            return Err(Mp4Error::NotMp4);
                        }
                        Err(e) if self.moov.is_some() => {
                            let _ = e; // junk after the moov: ignore the rest
                            self.end_scan()?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let readable = header.fourcc.iter().all(|b| (0x20..0x7f).contains(b));
                    if self.boxes_seen == 0 && !plausible_first_box(&header.fourcc) {
                        return Err(Mp4Error::NotMp4);
                    }
                    if !readable {
                        if self.moov.is_some() {
                            self.end_scan()?;
                            continue;
                        }
                        return Err(Mp4Error::damaged(
                            header.fourcc,
                            pos,
                            "unreadable top-level box: the file is damaged",
                        ));
                    }
                    self.boxes_seen += 1;
                    let size = header.size.unwrap_or(self.file_size - pos);
                    let end = pos.checked_add(size).filter(|&e| e <= self.file_size);
                    let too_large = |limit| Mp4Error::BoxTooLarge {
                        fourcc: FourCc(header.fourcc),
                        size,
                        offset: pos,
                        limit,
                    };
                    match (&header.fourcc, end) {
                        (b"moov", None) => {
                            return Err(Mp4Error::Truncated(
                                "moov box ends past end of file".into(),
                            ))
                        }
                        (b"moov", Some(end)) if self.moov.is_none() => {
                            if size > MAX_MOOV_SIZE {
                                return Err(too_large(MAX_MOOV_SIZE));
                            }
                            self.state = State::ReadBox {
                                kind: Kind::Moov,
                                offset: pos,
                                size,
                                resume: Some(end),
                            };
                        }
                        (b"moof", Some(end)) => {
                            if size > MAX_MOOF_SIZE {
                                return Err(too_large(MAX_MOOF_SIZE));
                            }
                            if self.moov.is_some() && self.deferred.is_empty() {
                                self.state = State::ReadBox {
                                    kind: Kind::Moof,
                                    offset: pos,
                                    size,
                                    resume: Some(end),
                                };
                            } else {
                                self.deferred.push_back((pos, size));
                                self.state = State::Scan { pos: end };
                            }
                        }
                        (b"ftyp", Some(end)) if size <= MAX_FTYP_SIZE && self.boxes_seen == 1 => {
                            self.state = State::ReadBox {
                                kind: Kind::Ftyp,
                                offset: pos,
                                size,
                                resume: Some(end),
                            };
                        }
                        (_, Some(end)) => self.state = State::Scan { pos: end },
                        // A box (typically mdat or a moof) cut by the end of file.
                        (_, None) => self.end_scan()?,
                    }
                }
                State::ReadBox {
                    kind,
                    offset,
                    size,
                    resume,
                } => {
                    let end = offset.saturating_add(size);
                    if end > self.file_size {
                        return Err(Mp4Error::Truncated(format!(
                            "{} box ends past end of file",
                            match kind {
                                Kind::Ftyp => "ftyp",
                                Kind::Moov => "moov",
                                Kind::Moof => "moof",
                            }
                        )));
                    }
                    let extra = if resume.is_some() {
                        HEADER_READ.min(self.file_size - end)
                    } else {
                        0
                    };
                    let Some(bytes) = slice_at(&self.buf, self.buf_at, offset, size + extra) else {
                        return self.read(offset, size + extra);
                    };
                    // size + extra bytes are present, so `..size` is in bounds.
                    let whole = bytes.get(..size as usize).unwrap_or_default();
                    let Some(h) = parse_header(whole, offset)? else {
                        return Err(Mp4Error::Truncated("box header cut off".into()));
                    };
                    let payload = whole.get(h.header_len as usize..).unwrap_or_default();
                    let mut r = Reader::new(payload, offset + h.header_len, h.fourcc);
                    match kind {
                        Kind::Ftyp => {
                            self.major_brand = r.fourcc_value()?;
                            r.skip(4)?;
                            while r.remaining() >= 4 {
                                self.compatible_brands.push(r.fourcc_value()?);
                            }
                        }
                        Kind::Moov => {
                            let mut info = parse_moov(&mut r, self.file_size)?;
                            let index = !self.paged || info.fragmented;
                            let at = offset + h.header_len;
                            for d in &mut info.tracks {
                                walk_tables(d, payload, at, self.file_size, index)?;
                            }
                            self.moov = Some(info);
                        }
                        Kind::Moof => {
                            // Fragments belong to a movie only when its moov says so
                            // (`mvex`); counting them otherwise made `new` and `paged`
                            // give the same file different samples (found by fuzzing).
                            if let Some(m) = self.moov.as_mut().filter(|m| m.fragmented) {
                                parse_moof(&mut r, offset, &mut m.tracks, self.file_size)?;
                            }
                        }
                    }
                    // Keep only the next header's bytes; drop the (possibly large) box.
                    let tail = bytes.get(size as usize..).unwrap_or_default().to_vec();
                    self.buf = tail;
                    self.buf_at = end;
                    self.state = match resume {
                        Some(pos) => State::Scan { pos },
                        None => State::Deferred,
                    };
                }
                State::Deferred => {
                    self.state = match self.deferred.pop_front() {
                        Some((offset, size)) => State::ReadBox {
                            kind: Kind::Moof,
                            offset,
                            size,
                            resume: None,
                        },
                        None => State::Finish,
                    };
                }
                State::Finish => {
                    self.state = State::Done;
                    self.buf = Vec::new();
                    return Ok(OpenStep::Done(self.build()));
                }
                State::Done => {
                    return Err(Mp4Error::Misuse(
                        "poll after the opener finished (Done or an error)".into(),
                    ))
                }
            }
        }
    }

    fn end_scan(&mut self) -> Result<(), Mp4Error> {
        if self.boxes_seen == 0 {
            return Err(Mp4Error::NotMp4);
        }
        if self.moov.is_none() {
            return Err(Mp4Error::NoMoov);
        }
        self.state = State::Deferred;
        Ok(())
    }

    fn build(&mut self) -> Movie {
        let info = self.moov.take().unwrap_or_default();
        let file_size = self.file_size;
        let tracks: Vec<Track> = info
            .tracks
            .into_iter()
            .map(|d| {
                let (samples, samples_beyond_eof) = match d.tables {
                    // Paged: the open-time walk already stopped at the end of the file.
                    Some(t) if !d.indexed_tables => (SampleTable::Paged(t), t.summary.beyond_eof),
                    tables => {
                        let mut index = d.builder.finish();
                        let past = index
                            .iter()
                            .position(|s| s.offset.saturating_add(u64::from(s.size)) > file_size);
                        let mut beyond = tables.map_or(0, |t| t.summary.beyond_eof);
                        if let Some(i) = past {
                            beyond += (index.len() - i) as u32; // len fits u32
                            index.truncate(i as u32); // i < len <= u32::MAX
                        }
                        (SampleTable::Indexed(index), beyond)
                    }
                };
                Track {
                    id: d.id,
                    kind: d.kind,
                    timescale: d.timescale,
                    codec: d.codec,
                    edit: d.edit,
                    samples,
                    samples_beyond_eof,
                }
            })
            .collect();
        let duration_us = tracks
            .iter()
            .map(|t| t.duration_us())
            .max()
            .unwrap_or(0)
            .max(0);
        Movie {
            tracks,
            duration_us,
            major_brand: self.major_brand,
            compatible_brands: std::mem::take(&mut self.compatible_brands),
            fragmented: info.fragmented,
            timescale: info.timescale,
        }
    }
}

/// Walks a track's progressive tables once, from the moov in memory: counts the samples
/// that lie inside the file, gathers the [`TableSummary`], and, when `index` is set,
/// indexes every sample in the draft's builder.
fn walk_tables(
    d: &mut TrackDraft,
    moov: &[u8],
    moov_at: u64,
    file_size: u64,
    index: bool,
) -> Result<(), Mp4Error> {
    let Some(tables) = d.tables.as_mut() else {
        return Ok(());
    };
    let mut sum = TableSummary::default();
    let mut first_cts = None;
    let builder: &mut IndexBuilder = &mut d.builder;
    let mut chunk_end = None;
    if let (true, SizeTable::Each(e)) = (index, tables.sizes) {
        builder.reserve_sizes(e.count as usize);
    }
    walk_in_memory(tables, tables.limit, moov, moov_at, |i, s| {
        if s.offset.saturating_add(u64::from(s.size)) > file_size {
            sum.beyond_eof = tables.limit - i; // i < limit
            return false;
        }
        sum.len = i + 1;
        sum.end_dts = s.dts.saturating_add(i64::from(s.duration));
        sum.has_cts |= s.cts_offset != 0;
        sum.cts_varies |= *first_cts.get_or_insert(s.cts_offset) != s.cts_offset;
        sum.sync_count += u32::from(s.sync);
        if index {
            if chunk_end == Some(s.offset) {
                builder.extend_chunk(1);
            } else {
                builder.push_chunk(s.offset, 1);
            }
            chunk_end = Some(s.offset.saturating_add(u64::from(s.size)));
            if !matches!(tables.sizes, SizeTable::Constant(_)) {
                builder.push_size(s.size);
            }
            builder.push_times(1, s.duration);
            builder.push_cts(1, s.cts_offset);
            if s.sync {
                builder.push_sync(i);
            }
        }
        true
    })?;
    if index {
        if let SizeTable::Constant(size) = tables.sizes {
            builder.set_constant_size(size, sum.len);
        }
    }
    tables.summary = sum;
    d.indexed_tables = index;
    Ok(())
}
