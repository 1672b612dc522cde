//! Progressive sample tables (`stsz`/`stz2`, `stco`/`co64`, `stsc`, `stts`, `ctts`,
//! `stss`) read where they lie in the file, a window at a time.
//!
//! Owns: where each table is ([`PagedTables`], a few dozen bytes per track whatever the
//! file's length) and decoding them in sample order ([`TableCursor`]): the cursor keeps
//! one small window of each table's bytes and, when it needs an entry outside it, says
//! which byte range to read. The same cursor decodes the tables at open time (to count,
//! check and summarise them, or to build a [`SampleIndex`](crate::SampleIndex)), with
//! 64 KiB windows, and during playback, with 4 KiB ones; both read from the file.
//! Must not touch: I/O (the caller reads), fragments (see `fragment`).
//!
//! The cursor only moves forward. It advances in small steps, each of which commits its
//! state only once every entry it needs is present, so a step interrupted by a read is
//! simply retried after the feed, and a window never has to hold two far-apart entries.

use crate::error::Mp4Error;
use crate::index::SampleInfo;

/// Bytes of one table kept in memory at a time (1024 `stsz` entries: ~40 s of video).
pub(crate) const WINDOW_BYTES: u64 = 4096;

/// One table's entries in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entries {
    /// Absolute file offset of the first entry.
    pub offset: u64,
    /// Number of entries (checked against the box size when parsed).
    pub count: u32,
    /// Bits per entry: 4, 8, 16 (`stz2`), 32, 64 or 96 (`stsc`).
    pub bits: u8,
}

impl Entries {
    fn byte_len(&self) -> u64 {
        (u64::from(self.count) * u64::from(self.bits)).div_ceil(8)
    }
}

/// Sample sizes: one for all, or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeTable {
    Constant(u32),
    Each(Entries),
}

/// Where a progressive track's sample tables are, and what the open-time pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedTables {
    pub(crate) sizes: SizeTable,
    pub(crate) chunk_offsets: Entries,
    pub(crate) sample_to_chunk: Entries,
    pub(crate) times: Entries,
    pub(crate) cts: Option<Entries>,
    pub(crate) sync: Option<Entries>,
    /// Samples described by the tables (before any cut at end of file).
    pub(crate) limit: u32,
    pub(crate) summary: TableSummary,
}

/// Facts about all samples, gathered in one pass when the file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TableSummary {
    /// Samples whose bytes lie inside the file (the walk stops at the first that does not).
    pub len: u32,
    /// Samples the tables describe whose bytes lie past the end of the file.
    pub beyond_eof: u32,
    pub end_dts: i64,
    pub has_cts: bool,
    pub cts_varies: bool,
    pub sync_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Sizes,
    ChunkOffsets,
    SampleToChunk,
    Times,
    Cts,
    Sync,
}

const TABLES: usize = 6;

impl PagedTables {
    fn entries(&self, t: Table) -> Option<Entries> {
        match t {
            Table::Sizes => match self.sizes {
                SizeTable::Each(e) => Some(e),
                SizeTable::Constant(_) => None,
            },
            Table::ChunkOffsets => Some(self.chunk_offsets),
            Table::SampleToChunk => Some(self.sample_to_chunk),
            Table::Times => Some(self.times),
            Table::Cts => self.cts,
            Table::Sync => self.sync,
        }
    }
}

/// A read the cursor needs before it can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeedRead {
    pub offset: u64,
    pub len: u64,
}

/// What [`TableCursor::next`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableStep {
    Sample(SampleInfo),
    Read(NeedRead),
    End,
}

#[derive(Debug, Default, Clone)]
struct Window {
    at: u64,
    bytes: Vec<u8>,
}

/// Decodes [`PagedTables`] in sample order with one window of bytes per table.
#[derive(Debug, Clone)]
pub(crate) struct TableCursor {
    windows: [Window; TABLES],
    window_bytes: u64,
    pending: Option<(Table, NeedRead)>,
    /// Next sample (0-based).
    i: u32,
    /// Chunks opened so far (the current chunk is number `chunk`, 1-based).
    chunk: u32,
    chunk_left: u32,
    next_offset: u64,
    stsc_next: u32,
    /// The `stsc` run in force: (first chunk, samples per chunk).
    run: Option<(u32, u32)>,
    stts_next: u32,
    stts_left: u32,
    delta: u32,
    dts: i64,
    ctts_next: u32,
    ctts_left: u32,
    cts: i32,
    stss_next: u32,
    /// 1-based number of the next sync sample at or after `i + 1`.
    next_sync: u32,
}

impl TableCursor {
    pub(crate) fn new(window_bytes: u64) -> Self {
        TableCursor {
            windows: Default::default(),
            window_bytes: window_bytes.max(16),
            pending: None,
            i: 0,
            chunk: 0,
            chunk_left: 0,
            next_offset: 0,
            stsc_next: 0,
            run: None,
            stts_next: 0,
            stts_left: 0,
            delta: 0,
            dts: 0,
            ctts_next: 0,
            ctts_left: 0,
            cts: 0,
            stss_next: 0,
            next_sync: 0,
        }
    }

    /// Index of the sample the next `Sample` step yields.
    pub(crate) fn next_index(&self) -> u32 {
        self.i
    }

    /// Gives the bytes of the last `Read`. Shorter data means the file shrank.
    pub(crate) fn feed(&mut self, offset: u64, data: &[u8]) -> Result<(), Mp4Error> {
        let Some((table, want)) = self.pending.take() else {
            return Err(Mp4Error::Misuse(
                "feed without a pending sample-table read".into(),
            ));
        };
        if offset != want.offset || (data.len() as u64) < want.len {
            return Err(Mp4Error::Truncated(format!(
                "sample table read at offset {} returned {} of {} bytes",
                offset,
                data.len(),
                want.len
            )));
        }
        let w = &mut self.windows[table as usize];
        w.at = offset;
        w.bytes.clear();
        // want.len <= data.len() (checked above).
        w.bytes
            .extend_from_slice(data.get(..want.len as usize).unwrap_or(data));
        Ok(())
    }

    /// Entry `k` of `t` as up to 12 big-endian bytes, or the read that brings it.
    fn entry(&mut self, tables: &PagedTables, t: Table, k: u32) -> Result<[u8; 12], NeedRead> {
        let Some(e) = tables.entries(t) else {
            return Ok([0; 12]);
        };
        let bit = u64::from(k) * u64::from(e.bits);
        let start = e.offset + bit / 8;
        let n = usize::from(e.bits).div_ceil(8);
        let w = &self.windows[t as usize];
        if let Some(b) = start
            .checked_sub(w.at)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| w.bytes.get(s..s + n))
        {
            let mut out = [0u8; 12];
            out[..n].copy_from_slice(b); // n <= 12: bits <= 96
            if e.bits == 4 {
                out[0] = if bit % 8 == 0 {
                    out[0] >> 4
                } else {
                    out[0] & 0xf
                };
            }
            return Ok(out);
        }
        let end = e.offset + e.byte_len();
        let need = NeedRead {
            offset: start,
            len: self
                .window_bytes
                .min(end.saturating_sub(start))
                .max(n as u64),
        };
        self.pending = Some((t, need));
        Err(need)
    }

    /// The next sample of the first `limit`, or the read needed first.
    pub(crate) fn next(&mut self, tables: &PagedTables, limit: u32) -> TableStep {
        match self.step(tables, limit) {
            Ok(Some(s)) => TableStep::Sample(s),
            Ok(None) => TableStep::End,
            Err(need) => TableStep::Read(need),
        }
    }

    fn step(&mut self, tables: &PagedTables, limit: u32) -> Result<Option<SampleInfo>, NeedRead> {
        if self.i >= limit {
            return Ok(None);
        }
        // Decode time: open `stts` entries until one has samples left; past the table's
        // end the last duration goes on (as the index builder always did).
        while self.stts_left == 0 {
            if self.stts_next < tables.times.count {
                let b = self.entry(tables, Table::Times, self.stts_next)?;
                self.stts_next += 1;
                self.stts_left = be32(&b, 0);
                self.delta = be32(&b, 4);
            } else {
                self.stts_left = u32::MAX;
            }
        }
        // Composition offsets: past the table's end they are 0.
        if let Some(ctts) = tables.cts {
            while self.ctts_left == 0 {
                if self.ctts_next < ctts.count {
                    let b = self.entry(tables, Table::Cts, self.ctts_next)?;
                    self.ctts_next += 1;
                    self.ctts_left = be32(&b, 0);
                    self.cts = be32(&b, 4) as i32; // v0 is read as signed too, as players do
                } else {
                    self.ctts_left = u32::MAX;
                    self.cts = 0;
                }
            }
        }
        // Chunk: open chunks (skipping empty ones) until one has samples left.
        while self.chunk_left == 0 {
            let c = self.chunk + 1;
            if c > tables.chunk_offsets.count {
                return Ok(None); // the chunks hold fewer samples than the sizes say
            }
            if self.stsc_next < tables.sample_to_chunk.count {
                let b = self.entry(tables, Table::SampleToChunk, self.stsc_next)?;
                let first = be32(&b, 0);
                if first <= c {
                    self.run = Some((first, be32(&b, 4)));
                    self.stsc_next += 1;
                    continue;
                }
            }
            let b = self.entry(tables, Table::ChunkOffsets, c - 1)?;
            self.next_offset = if tables.chunk_offsets.bits == 64 {
                u64::from(be32(&b, 0)) << 32 | u64::from(be32(&b, 4))
            } else {
                u64::from(be32(&b, 0))
            };
            self.chunk = c;
            self.chunk_left = match self.run {
                Some((first, n)) if first <= c => n,
                _ => 0,
            };
        }
        // Sync: skip `stss` entries before this sample (an unsorted table is read in
        // file order; entries out of order are ignored).
        let number = self.i + 1;
        if let Some(stss) = tables.sync {
            while self.next_sync < number {
                if self.stss_next < stss.count {
                    let b = self.entry(tables, Table::Sync, self.stss_next)?;
                    self.stss_next += 1;
                    self.next_sync = be32(&b, 0);
                } else {
                    self.next_sync = u32::MAX;
                }
            }
        }
        let size = match tables.sizes {
            SizeTable::Constant(s) => s,
            SizeTable::Each(e) => {
                let b = self.entry(tables, Table::Sizes, self.i)?;
                match e.bits {
                    4 | 8 => u32::from(b[0]),
                    16 => u32::from(u16::from_be_bytes([b[0], b[1]])),
                    _ => be32(&b, 0),
                }
            }
        };
        // Every entry is present: commit the sample.
        let sample = SampleInfo {
            offset: self.next_offset,
            size,
            dts: self.dts,
            cts_offset: if tables.cts.is_some() { self.cts } else { 0 },
            duration: self.delta,
            sync: tables.sync.is_none() || self.next_sync == number,
        };
        self.i += 1;
        self.chunk_left -= 1;
        self.next_offset = self.next_offset.saturating_add(u64::from(size));
        self.stts_left -= 1;
        self.dts = self.dts.saturating_add(i64::from(self.delta));
        if tables.cts.is_some() {
            self.ctts_left -= 1;
        }
        Ok(Some(sample))
    }
}

fn be32(b: &[u8; 12], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
