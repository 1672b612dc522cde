//! Following a fragmented file that is still being written (a recording): indexing its
//! whole fragments as the file grows, from where the opener stopped.
//!
//! Owns: the top-level scan after the opener ([`MovieOpener::leave_fragments`](crate::MovieOpener::leave_fragments)),
//! what makes a fragment whole (every sample's bytes lie inside the file: a `moof`
//! without its `mdat` yet, or with part of it, is waited for, never half-indexed),
//! and the bounds (a `moof` at most [`MAX_MOOF_SIZE`], the index limit the opener had
//! for all the movie's indexes together, a track's sample count). Must not touch: I/O,
//! clocks. The caller reads, says how big the file is now, and appends each new
//! fragment's samples to its tracks ([`SampleIndex::append`]).

use crate::error::{FourCc, Mp4Error};
use crate::fragment::{parse_moof, MAX_MOOF_SIZE};
use crate::index::{IndexBuilder, SampleIndex};
use crate::moov::{TrackDraft, Trex, MAX_SAMPLES};
use crate::movie::Track;
use crate::reader::{parse_header, Reader};

const HEADER_READ: u64 = 16;

/// What [`FragmentFollower::poll`] wants next.
#[derive(Debug)]
pub enum FollowStep {
    /// Read `len` bytes at `offset` (inside the size given to `poll`) and pass them to
    /// [`FragmentFollower::feed`], then poll again.
    Read {
        /// Absolute file offset.
        offset: u64,
        /// Number of bytes (at most [`MAX_MOOF_SIZE`]).
        len: u64,
    },
    /// One whole fragment: the new samples of each track of the movie, in the movie's
    /// track order (empty for a track the fragment does not carry). Poll again.
    Fragment(Vec<SampleIndex>),
    /// Nothing more is whole at this size: poll again when the file has grown.
    Wait,
}

/// A fragment parsed whose samples are not all inside the file yet.
#[derive(Debug)]
struct Parsed {
    pieces: Vec<SampleIndex>,
    /// The file must be this long for every sample to be inside it.
    needs: u64,
    /// The end of the `moof`: the scan goes on there.
    end: u64,
}

/// Indexes the fragments of a growing file, a whole fragment at a time. Made by the
/// opener ([`MovieOpener::take_follower`](crate::MovieOpener::take_follower)).
#[derive(Debug)]
pub struct FragmentFollower {
    drafts: Vec<TrackDraft>,
    /// Decode time (media ticks) after each track's last sample so far.
    next_dts: Vec<i64>,
    /// Samples each track has so far.
    lens: Vec<u64>,
    /// The next top-level box.
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
    pending: Option<(u64, u64)>,
    parsed: Option<Parsed>,
    index_limit: u64,
    /// Heap of every index of the movie so far, against `index_limit`.
    held: u64,
}

impl FragmentFollower {
    pub(crate) fn new(tracks: &[Track], trex: &[Trex], pos: u64, index_limit: u64) -> Self {
        let drafts = tracks
            .iter()
            .zip(trex)
            .map(|(t, trex)| TrackDraft {
                id: t.id,
                kind: t.kind,
                timescale: t.timescale,
                codec: t.codec.clone(),
                edit: t.edit,
                tables: None,
                indexed_tables: false,
                builder: IndexBuilder::default(),
                trex: *trex,
            })
            .collect();
        FragmentFollower {
            drafts,
            next_dts: tracks.iter().map(|t| t.samples.end_dts()).collect(),
            lens: tracks.iter().map(|t| t.samples.len() as u64).collect(),
            pos,
            buf: Vec::new(),
            buf_at: 0,
            pending: None,
            parsed: None,
            index_limit,
            held: tracks.iter().map(|t| t.samples.heap_bytes() as u64).sum(),
        }
    }

    /// Where the next top-level box starts (everything before it is indexed).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// What to do next, the file being `file_size` bytes long now.
    pub fn poll(&mut self, file_size: u64) -> Result<FollowStep, Mp4Error> {
        loop {
            if let Some(p) = &self.parsed {
                if p.needs > file_size {
                    return Ok(FollowStep::Wait);
                }
                let p = self.parsed.take().expect("checked above");
                return Ok(self.commit(p));
            }
            let pos = self.pos;
            if file_size < pos.saturating_add(8) {
                return Ok(FollowStep::Wait);
            }
            let want = HEADER_READ.min(file_size - pos);
            let Some(bytes) = self.slice(pos, want) else {
                return Ok(self.read(pos, want));
            };
            let Some(h) = parse_header(bytes, pos)? else {
                return Ok(FollowStep::Wait); // a 64-bit size not all there yet
            };
            if !h.fourcc.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Err(Mp4Error::damaged(
                    h.fourcc,
                    pos,
                    "unreadable top-level box: the file is damaged",
                ));
            }
            // A box "to the end of the file" never ends while the file grows.
            let Some(size) = h.size else {
                return Ok(FollowStep::Wait);
            };
            let end = pos.saturating_add(size);
            if &h.fourcc != b"moof" {
                if end > file_size {
                    return Ok(FollowStep::Wait);
                }
                self.pos = end;
                continue;
            }
            if size > MAX_MOOF_SIZE {
                return Err(Mp4Error::BoxTooLarge {
                    fourcc: FourCc(h.fourcc),
                    size,
                    offset: pos,
                    limit: MAX_MOOF_SIZE,
                });
            }
            if end > file_size {
                return Ok(FollowStep::Wait);
            }
            if self.slice(pos, size).is_none() {
                return Ok(self.read(pos, size));
            }
            // The moof is parsed once; only its bytes are dropped afterwards.
            let buf = std::mem::take(&mut self.buf);
            let start = usize::try_from(pos - self.buf_at).unwrap_or(usize::MAX);
            let whole = buf.get(start..).unwrap_or_default();
            let payload = whole
                .get(h.header_len as usize..size as usize)
                .unwrap_or_default();
            let mut r = Reader::new(payload, pos + h.header_len, h.fourcc);
            self.parsed = Some(self.parse(&mut r, pos, end, file_size)?);
        }
    }

    /// Gives the bytes asked for by the last [`FollowStep::Read`].
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Result<(), Mp4Error> {
        let Some((want_off, want_len)) = self.pending.take() else {
            return Err(Mp4Error::Misuse("feed without a pending Read".into()));
        };
        if offset != want_off || (data.len() as u64) < want_len {
            return Err(Mp4Error::Misuse(format!(
                "fed {} bytes at offset {offset}, but {want_len} at {want_off} were asked for",
                data.len()
            )));
        }
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.buf_at = offset;
        Ok(())
    }

    fn read(&mut self, offset: u64, len: u64) -> FollowStep {
        self.pending = Some((offset, len));
        FollowStep::Read { offset, len }
    }

    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(offset.checked_sub(self.buf_at)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.buf.get(start..end)
    }

    /// One `moof` into a fresh index per track, each continuing its track's time.
    fn parse(
        &mut self,
        moof: &mut Reader<'_>,
        offset: u64,
        end: u64,
        file_size: u64,
    ) -> Result<Parsed, Mp4Error> {
        for (d, &next) in self.drafts.iter_mut().zip(&self.next_dts) {
            d.builder = IndexBuilder::default();
            d.builder.set_next_dts(next);
        }
        let limit = self.index_limit.saturating_sub(self.held);
        // The file's size bounds what a `trun` of default sizes may claim: a whole
        // fragment's samples lie inside the file once it is there.
        let claim_bound = file_size.saturating_add(MAX_MOOF_SIZE);
        parse_moof(moof, offset, &mut self.drafts, claim_bound, limit)?;
        let pieces: Vec<SampleIndex> = self
            .drafts
            .iter_mut()
            .map(|d| std::mem::take(&mut d.builder).finish())
            .collect();
        let mut needs = end;
        for (i, piece) in pieces.iter().enumerate() {
            if self.lens[i] + piece.len() as u64 > u64::from(MAX_SAMPLES) {
                return Err(Mp4Error::damaged(
                    *b"moof",
                    offset,
                    "a track has more samples than this server handles",
                ));
            }
            for s in piece {
                needs = needs.max(s.offset.saturating_add(u64::from(s.size)));
            }
        }
        let heap: u64 = pieces.iter().map(|p| p.heap_bytes() as u64).sum();
        if self.held.saturating_add(heap) > self.index_limit {
            return Err(Mp4Error::IndexTooLarge {
                limit: self.index_limit,
            });
        }
        Ok(Parsed { pieces, needs, end })
    }

    fn commit(&mut self, p: Parsed) -> FollowStep {
        for (i, piece) in p.pieces.iter().enumerate() {
            if !piece.is_empty() {
                self.next_dts[i] = piece.end_dts();
                self.lens[i] += piece.len() as u64;
            }
        }
        self.held += p.pieces.iter().map(|x| x.heap_bytes() as u64).sum::<u64>();
        self.pos = p.end;
        FollowStep::Fragment(p.pieces)
    }
}
