//! The open loop: a state machine that walks the top-level boxes by asking the caller
//! for byte ranges, reads `ftyp`, `moov` and every `moof`, and builds the [`Movie`].
//!
//! Owns: the order and size of reads. Must not touch: files, sockets, clocks.
//!
//! Reads, in order: 16 bytes at each top-level box start (payloads such as `mdat` are
//! skipped by their size, never requested); the whole `ftyp` and each `moof` (each read
//! extended by 16 bytes so the next box header arrives with it); the `moov` box by box
//! ([`MoovWalk`]: up to 64 KiB per read, descending only the containers `moov::want`
//! names, skipping the rest by its size), then one pass over each track's sample tables
//! from the file in 64 KiB windows ([`TablePass`]). Nothing read is kept but the small
//! leaves (`stsd`, `elst`, headers) and the tables' positions, so what a `moov` claims
//! does not become memory. A `moof` met before the `moov` is read after it. The scan stops at the end of the file, at
//! a box that ends past it (a truncated `mdat` is fine; a truncated `moov` is an
//! error), or at unreadable bytes after the `moov` (trailing junk is tolerated).

use std::collections::VecDeque;

use crate::error::{FourCc, Mp4Error};
use crate::follow::FragmentFollower;
use crate::fragment::{parse_moof, MAX_MOOF_SIZE};
use crate::index::IndexBuilder;
use crate::moov::TrackDraft;
use crate::moov::{parse_moov, want, Leaf, MoovBoxes, MoovInfo, Want, HEAD_SIZE, MAX_LEAF_SIZE};
use crate::movie::{Movie, Track};
use crate::reader::{parse_header, Reader};
use crate::table::{PagedTables, SizeTable, TableCursor, TableStep, TableSummary};
use crate::walker::SampleTable;

/// The largest `moov` accepted (a 24-hour file's moov is tens of MB). It is never read
/// whole: see the module docs.
pub const MAX_MOOV_SIZE: u64 = 256 << 20;
/// The default bound on the heap of the in-memory sample indexes of one movie
/// (fragmented files, or [`MovieOpener::new`]): ~5 bytes per sample, so about 6 million
/// samples (a day of 60 fps video). See [`MovieOpener::set_index_limit`].
pub const DEFAULT_INDEX_LIMIT: u64 = 32 << 20;
const MAX_FTYP_SIZE: u64 = 4096;
const HEADER_READ: u64 = 16;
/// Bytes asked for at once while walking the moov's boxes, and the window of each
/// sample table during the open-time pass: what one open holds at a time.
const WALK_READ: u64 = 64 << 10;
/// Boxes walked inside one moov: a real one has well under a hundred per track.
const MAX_MOOV_BOXES: u32 = 1 << 16;
/// Bytes of sample descriptions and edit lists kept from one moov (a real one: a few KB).
const MAX_LEAF_BYTES: u64 = 4 << 20;

/// What [`MovieOpener::poll`] wants next.
#[derive(Debug)]
pub enum OpenStep {
    /// Read `len` bytes at `offset` and pass them to [`MovieOpener::feed`].
    /// The range always lies inside the file size given to [`MovieOpener::new`].
    Read {
        /// Absolute file offset.
        offset: u64,
        /// Number of bytes (at most [`MAX_MOOF_SIZE`] + 16).
        len: u64,
    },
    /// The file is open.
    Done(Movie),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ftyp,
    Moof,
}

/// Walking the moov's boxes: where, inside which containers, and what was gathered.
#[derive(Debug)]
struct MoovWalk {
    /// Next child header.
    pos: u64,
    /// End of the moov: the top-level scan continues there.
    end: u64,
    /// Open containers (fourcc, end), innermost last; at most 5 deep (see `moov::want`).
    stack: Vec<([u8; 4], u64)>,
    boxes: MoovBoxes,
    walked: u32,
    leaf_bytes: u64,
}

/// The open-time pass over one track's sample tables, read from the file a window at a
/// time: counts the samples inside the file, gathers the [`TableSummary`], and, when
/// indexing, fills the track's index builder.
#[derive(Debug)]
struct TablePass {
    cursor: TableCursor,
    sum: TableSummary,
    first_cts: Option<i32>,
    chunk_end: Option<u64>,
    index: bool,
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
    /// Walking the moov (see [`MoovWalk`]).
    Moov,
    /// The open-time pass over track `track`'s tables (see [`TablePass`]); then the scan
    /// continues at `resume`.
    Tables {
        track: usize,
        resume: u64,
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
    walk: Option<MoovWalk>,
    pass: Option<TablePass>,
    deferred: VecDeque<(u64, u64)>,
    index_limit: u64,
    /// Keep progressive sample tables in the file ([`SampleTable::Paged`]) rather than
    /// indexing them in memory.
    paged: bool,
    /// Stop at the first `moof` after the `moov` and hand the fragments to a
    /// [`FragmentFollower`] ([`MovieOpener::leave_fragments`]).
    leave_fragments: bool,
    /// Where the top-level scan was last (where it stopped, once it has).
    scan_at: u64,
    follower: Option<FragmentFollower>,
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
            walk: None,
            pass: None,
            deferred: VecDeque::new(),
            index_limit: DEFAULT_INDEX_LIMIT,
            paged,
            leave_fragments: false,
            scan_at: 0,
            follower: None,
        }
    }

    /// For a file still being written (a recording): the scan stops at the first
    /// `moof` after the `moov`, so the movie holds only the moov's own samples, and a
    /// fragmented movie's fragments are left to the [`FragmentFollower`] that
    /// [`take_follower`](Self::take_follower) gives once the movie is `Done`. The
    /// follower indexes only whole fragments (a fragment being appended is not yet
    /// one) and can be asked again as the file grows.
    pub fn leave_fragments(&mut self) {
        self.leave_fragments = true;
    }

    /// After `Done`, with [`leave_fragments`](Self::leave_fragments) and a fragmented
    /// movie: what indexes its fragments, from where the scan stopped.
    pub fn take_follower(&mut self) -> Option<FragmentFollower> {
        self.follower.take()
    }

    /// Bounds the heap of the in-memory sample indexes (all tracks together) at `bytes`:
    /// a file that needs more fails with [`Mp4Error::IndexTooLarge`] while opening,
    /// before it gets there. Paged tables cost nothing against it.
    pub fn set_index_limit(&mut self, bytes: u64) {
        self.index_limit = bytes;
    }

    /// Heap held now by the sample indexes being built (for a caller's memory budget).
    pub fn index_bytes(&self) -> u64 {
        self.moov.as_ref().map_or(0, index_bytes)
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
        if offset.saturating_add(len) > self.file_size {
            // The file turned out shorter (a short feed) than a box inside it says.
            return Err(Mp4Error::Truncated(
                "the file ended inside a box the demuxer needs".into(),
            ));
        }
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
                    self.scan_at = pos;
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
                            // Walked box by box, never read whole.
                            self.walk = Some(MoovWalk {
                                pos: pos + header.header_len,
                                end,
                                stack: vec![(*b"moov", end)],
                                boxes: MoovBoxes::default(),
                                walked: 0,
                                leaf_bytes: 0,
                            });
                            self.state = State::Moov;
                        }
                        (b"moof", _) if self.leave_fragments && self.moov.is_some() => {
                            self.end_scan()?;
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
                        Kind::Moof => {
                            // Fragments belong to a movie only when its moov says so
                            // (`mvex`); counting them otherwise made `new` and `paged`
                            // give the same file different samples (found by fuzzing).
                            if let Some(m) = self.moov.as_mut().filter(|m| m.fragmented) {
                                let limit = self.index_limit;
                                parse_moof(&mut r, offset, &mut m.tracks, self.file_size, limit)?;
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
                State::Moov => {
                    if let Some((offset, len)) = self.walk_moov()? {
                        return self.read(offset, len);
                    }
                }
                State::Tables { track, resume } => {
                    if let Some((offset, len)) = self.walk_tables(track, resume)? {
                        return self.read(offset, len);
                    }
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
        let trex: Vec<_> = info.tracks.iter().map(|d| d.trex).collect();
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
        if self.leave_fragments && info.fragmented {
            self.follower = Some(FragmentFollower::new(
                &tracks,
                &trex,
                self.scan_at,
                self.index_limit,
            ));
        }
        let duration_us = tracks
            .iter()
            .map(super::movie::Track::duration_us)
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

fn index_bytes(m: &MoovInfo) -> u64 {
    m.tracks.iter().map(|d| d.builder.heap_bytes() as u64).sum()
}

impl MovieOpener {
    /// Walks the moov's boxes from `self.walk`: descends the containers the demuxer
    /// needs, reads small leaves and the heads of the sample tables, skips the rest by
    /// its size. Returns the read it needs, or `None` once the state has moved on.
    fn walk_moov(&mut self) -> Result<Option<(u64, u64)>, Mp4Error> {
        let Some(w) = self.walk.as_mut() else {
            return Err(Mp4Error::Misuse("moov walk without a moov".into()));
        };
        loop {
            // Close the containers whose children are all walked (up to 7 bytes of
            // padding after the last child are tolerated, as some muxers write them).
            while let Some(&(_, end)) = w.stack.last() {
                if end.saturating_sub(w.pos) >= 8 {
                    break;
                }
                w.pos = end;
                w.stack.pop();
            }
            let Some(&(parent, parent_end)) = w.stack.last() else {
                break;
            };
            let pos = w.pos;
            let left = parent_end - pos;
            let Some(bytes) = slice_at(&self.buf, self.buf_at, pos, HEADER_READ.min(left)) else {
                return Ok(Some((pos, WALK_READ.min(w.end - pos))));
            };
            let Some(h) = parse_header(bytes, pos)? else {
                return Err(Mp4Error::damaged(
                    parent,
                    pos,
                    "child box header is cut off",
                ));
            };
            let size = h.size.unwrap_or(left);
            if size > left {
                return Err(Mp4Error::damaged(
                    parent,
                    pos,
                    format!(
                        "child box {} of {size} bytes is larger than the {left} bytes left in its parent",
                        FourCc(h.fourcc)
                    ),
                ));
            }
            w.walked += 1;
            if w.walked > MAX_MOOV_BOXES {
                return Err(Mp4Error::damaged(
                    *b"moov",
                    pos,
                    format!("more than {MAX_MOOV_BOXES} boxes inside: not a real movie"),
                ));
            }
            let at = pos + h.header_len;
            let len = size - h.header_len;
            let take = match want(parent, h.fourcc) {
                Want::Skip => {
                    w.pos = pos + size;
                    continue;
                }
                Want::Descend => {
                    w.boxes.enter(h.fourcc, at);
                    w.stack.push((h.fourcc, pos + size));
                    w.pos = at;
                    continue;
                }
                Want::Head => len.min(HEAD_SIZE),
                Want::Whole => {
                    let limit = MAX_LEAF_SIZE.min(MAX_LEAF_BYTES.saturating_sub(w.leaf_bytes));
                    if len > limit {
                        return Err(Mp4Error::BoxTooLarge {
                            fourcc: FourCc(h.fourcc),
                            size,
                            offset: pos,
                            limit: MAX_LEAF_SIZE,
                        });
                    }
                    len
                }
            };
            let Some(bytes) = slice_at(&self.buf, self.buf_at, at, take) else {
                return Ok(Some((at, take.max(WALK_READ.min(w.end - at)))));
            };
            w.leaf_bytes += take;
            let leaf = Leaf {
                fourcc: h.fourcc,
                at,
                len,
                bytes: bytes.to_vec(),
            };
            w.boxes.add(parent, leaf);
            w.pos = pos + size;
        }
        // Every box walked: the tracks, then a pass over each one's tables.
        let Some(w) = self.walk.take() else {
            return Err(Mp4Error::Misuse("moov walk without a moov".into()));
        };
        self.moov = Some(parse_moov(&w.boxes, self.file_size)?);
        self.state = State::Tables {
            track: 0,
            resume: w.end,
        };
        Ok(None)
    }

    /// The open-time pass over the tables of track `track` and the ones after it (see
    /// [`TablePass`]). Returns the read it needs, or `None` once the state has moved on.
    fn walk_tables(&mut self, track: usize, resume: u64) -> Result<Option<(u64, u64)>, Mp4Error> {
        let index = !self.paged || self.moov.as_ref().is_some_and(|m| m.fragmented);
        let file_size = self.file_size;
        let limit = self.index_limit;
        let Some(m) = self.moov.as_mut() else {
            return Err(Mp4Error::Misuse("table pass without a moov".into()));
        };
        let Some(tables) = m.tracks.get(track).and_then(|d| d.tables) else {
            self.state = if track < m.tracks.len() {
                State::Tables {
                    track: track + 1,
                    resume,
                }
            } else {
                State::Scan { pos: resume }
            };
            return Ok(None);
        };
        let pass = self.pass.get_or_insert_with(|| TablePass {
            cursor: TableCursor::new(WALK_READ),
            sum: TableSummary::default(),
            first_cts: None,
            chunk_end: None,
            index,
        });
        if index && pass.cursor.next_index() == 0 {
            if let (SizeTable::Each(e), Some(d)) = (tables.sizes, m.tracks.get_mut(track)) {
                // Reserve only what the limit allows: the count is the file's word.
                if u64::from(e.count) * 4 <= limit {
                    d.builder.reserve_sizes(e.count as usize);
                }
            }
        }
        loop {
            match pass.cursor.next(&tables, tables.limit) {
                TableStep::Sample(s) => {
                    let i = pass.cursor.next_index() - 1;
                    if s.offset.saturating_add(u64::from(s.size)) > file_size {
                        pass.sum.beyond_eof = tables.limit - i; // i < limit
                        break;
                    }
                    if let Some(d) = m.tracks.get_mut(track) {
                        pass.add(i, &s, &tables, d);
                    }
                    if index && i.is_multiple_of(4096) && index_bytes(m) > limit {
                        return Err(Mp4Error::IndexTooLarge { limit });
                    }
                }
                TableStep::Read(need) => {
                    match slice_at(&self.buf, self.buf_at, need.offset, need.len) {
                        Some(bytes) => pass.cursor.feed(need.offset, bytes)?,
                        None => return Ok(Some((need.offset, need.len))),
                    }
                }
                TableStep::End => break,
            }
        }
        let pass = self.pass.take();
        if let (Some(pass), Some(d)) = (pass, m.tracks.get_mut(track)) {
            pass.finish(tables, d);
        }
        if index && index_bytes(m) > limit {
            return Err(Mp4Error::IndexTooLarge { limit });
        }
        self.state = State::Tables {
            track: track + 1,
            resume,
        };
        Ok(None)
    }
}

impl TablePass {
    /// Sample `i` lies inside the file: count it, and index it when indexing.
    fn add(&mut self, i: u32, s: &crate::SampleInfo, tables: &PagedTables, d: &mut TrackDraft) {
        let sum = &mut self.sum;
        sum.len = i + 1;
        sum.end_dts = s.dts.saturating_add(i64::from(s.duration));
        sum.has_cts |= s.cts_offset != 0;
        sum.cts_varies |= *self.first_cts.get_or_insert(s.cts_offset) != s.cts_offset;
        sum.sync_count += u32::from(s.sync);
        if !self.index {
            return;
        }
        let builder: &mut IndexBuilder = &mut d.builder;
        if self.chunk_end == Some(s.offset) {
            builder.extend_chunk(1);
        } else {
            builder.push_chunk(s.offset, 1);
        }
        self.chunk_end = Some(s.offset.saturating_add(u64::from(s.size)));
        if !matches!(tables.sizes, SizeTable::Constant(_)) {
            builder.push_size(s.size);
        }
        builder.push_times(1, s.duration);
        builder.push_cts(1, s.cts_offset);
        if s.sync {
            builder.push_sync(i);
        }
    }

    /// The pass is over: the summary goes with the tables.
    fn finish(self, mut tables: PagedTables, d: &mut TrackDraft) {
        if self.index {
            if let SizeTable::Constant(size) = tables.sizes {
                d.builder.set_constant_size(size, self.sum.len);
            }
        }
        tables.summary = self.sum;
        d.tables = Some(tables);
        d.indexed_tables = self.index;
    }
}
