//! A track's samples as the caller sees them: indexed in memory, or paged from the file,
//! and walked in order the same way in both cases.
//!
//! Owns: [`SampleTable`] (what a [`Track`](crate::Track) holds) and [`SampleWalker`]
//! (sans-IO: yields samples, or asks for a byte range of the sample tables).
//! Must not touch: I/O, box parsing.

use crate::error::Mp4Error;
use crate::index::{SampleIndex, SampleInfo};
use crate::table::{PagedTables, TableCursor, TableStep, WINDOW_BYTES};

/// Where a track's samples are described.
#[derive(Debug, Clone)]
pub enum SampleTable {
    /// Every sample indexed in memory ([`MovieOpener::new`](crate::MovieOpener::new), and
    /// fragmented files): random access, a few bytes per sample.
    Indexed(SampleIndex),
    /// The file's own `stbl` tables, read a window at a time as a [`SampleWalker`]
    /// advances ([`MovieOpener::paged`](crate::MovieOpener::paged)): a few hundred bytes
    /// whatever the file's length.
    Paged(PagedTables),
}

impl SampleTable {
    /// The in-memory index, when the samples are indexed.
    pub fn index(&self) -> Option<&SampleIndex> {
        match self {
            SampleTable::Indexed(ix) => Some(ix),
            SampleTable::Paged(_) => None,
        }
    }

    /// Number of samples (those whose bytes lie inside the file).
    pub fn len(&self) -> usize {
        match self {
            SampleTable::Indexed(ix) => ix.len(),
            SampleTable::Paged(t) => t.summary.len as usize,
        }
    }

    /// True when the track has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode end of the last sample (sum of durations from the first DTS).
    pub fn end_dts(&self) -> i64 {
        match self {
            SampleTable::Indexed(ix) => ix.end_dts(),
            SampleTable::Paged(t) => t.summary.end_dts,
        }
    }

    /// True if any sample has a non-zero composition offset.
    pub fn has_cts_offsets(&self) -> bool {
        match self {
            SampleTable::Indexed(ix) => ix.has_cts_offsets(),
            SampleTable::Paged(t) => t.summary.has_cts,
        }
    }

    /// True when composition offsets differ between samples: pictures are stored out
    /// of presentation order (B-frames). A constant offset is not reordering.
    pub fn cts_offsets_vary(&self) -> bool {
        match self {
            SampleTable::Indexed(ix) => {
                let mut offsets = ix.iter().map(|s| s.cts_offset);
                let first = offsets.next().unwrap_or(0);
                ix.has_cts_offsets() && offsets.any(|o| o != first)
            }
            SampleTable::Paged(t) => t.summary.cts_varies,
        }
    }

    /// Number of sync samples.
    pub fn sync_count(&self) -> usize {
        match self {
            SampleTable::Indexed(ix) => ix.sync_count(),
            SampleTable::Paged(t) => t.summary.sync_count as usize,
        }
    }

    /// Heap memory held, in bytes (0 when paged: the tables are plain data).
    pub fn heap_bytes(&self) -> usize {
        match self {
            SampleTable::Indexed(ix) => ix.heap_bytes(),
            SampleTable::Paged(_) => 0,
        }
    }
}

/// What [`SampleWalker::poll`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkStep {
    /// The next sample, in decode order.
    Sample(SampleInfo),
    /// Read `len` bytes at `offset` (sample-table bytes, never `mdat`) and pass them to
    /// [`SampleWalker::feed`], then poll again.
    Read {
        /// Absolute file offset.
        offset: u64,
        /// Number of bytes (at most 4 KiB).
        len: u64,
    },
    /// No more samples.
    End,
}

/// Walks a [`SampleTable`] in decode order without I/O; the table is passed to every
/// call, so the walker borrows nothing. Memory: one 4 KiB window per table when paged.
///
/// ```no_run
/// # fn read(offset: u64, len: u64) -> Vec<u8> { unimplemented!() }
/// # let track: mp4::Track = unimplemented!();
/// let mut walker = mp4::SampleWalker::new();
/// loop {
///     match walker.poll(&track.samples) {
///         mp4::WalkStep::Sample(s) => println!("{} bytes at {}", s.size, s.offset),
///         mp4::WalkStep::Read { offset, len } => walker.feed(offset, &read(offset, len)).unwrap(),
///         mp4::WalkStep::End => break,
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SampleWalker {
    next: usize,
    cursor: TableCursor,
}

impl Default for SampleWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleWalker {
    /// A walker at the first sample.
    pub fn new() -> Self {
        Self::with_window(WINDOW_BYTES)
    }

    /// A walker that reads paged tables `window_bytes` at a time (tests use tiny windows).
    pub fn with_window(window_bytes: u64) -> Self {
        SampleWalker {
            next: 0,
            cursor: TableCursor::new(window_bytes),
        }
    }

    /// Index of the sample the next [`WalkStep::Sample`] is.
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// The next sample, or the read needed first.
    pub fn poll(&mut self, table: &SampleTable) -> WalkStep {
        let step = match table {
            SampleTable::Indexed(ix) => match ix.get(self.next) {
                Some(s) => WalkStep::Sample(s),
                None => WalkStep::End,
            },
            SampleTable::Paged(t) => match self.cursor.next(t, t.summary.len) {
                TableStep::Sample(s) => WalkStep::Sample(s),
                TableStep::Read(r) => WalkStep::Read {
                    offset: r.offset,
                    len: r.len,
                },
                TableStep::End => WalkStep::End,
            },
        };
        if matches!(step, WalkStep::Sample(_)) {
            self.next += 1;
        }
        step
    }

    /// Gives the bytes asked for by the last [`WalkStep::Read`]. Fewer bytes than asked
    /// (the file shrank) is an error.
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Result<(), Mp4Error> {
        self.cursor.feed(offset, data)
    }
}
