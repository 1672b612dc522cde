//! The read-ahead buffer of one object, sans-IO: which bytes are held, which range to
//! fetch next, and which bytes may be dropped. No threads, no sockets, no clock; the
//! fetch thread (`fetch_thread`) drives it, and tests drive it by hand.
//!
//! The reader's reads pull a window along: after [`ByteWindow::begin_playback`] the
//! buffer is filled up to `ahead` bytes past the end of the latest read. `ahead` starts
//! at about half a second of media and grows by half the bytes played, up to the configured
//! read-ahead (`vod_mp4_container_new_buffer_ms` of media), so the first frame waits
//! for little more than the bytes it needs (a slow start, as TCP does it). A read of
//! bytes that are neither held nor coming is a *demand*: it is fetched next, at once.
//!
//! Memory: bytes behind the lowest of the recent reads (interleaved audio and video
//! read a little behind one another) and bytes far past the window are dropped; the
//! window is never filled past `max_buffer`, whatever the object's size.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Reads remembered to find how far back the reader still reads.
const RECENT_READS: usize = 64;

/// Sizes that shape the fetching, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sizes {
    /// Smallest request (a demand for 16 bytes still fetches this much).
    pub min_request: u64,
    /// Largest single request.
    pub max_request: u64,
    /// Read-ahead when playback starts.
    pub min_ahead: u64,
    /// Read-ahead once playback has run a while.
    pub max_ahead: u64,
    /// No window fetch while this much is held.
    pub max_buffer: u64,
}

impl Sizes {
    /// Sizes for media of `bytes_per_second`, with `buffer_ms` of read-ahead.
    pub(super) fn for_media(bytes_per_second: u64, buffer_ms: u64) -> Sizes {
        let per_ms = |ms: u64| bytes_per_second.saturating_mul(ms) / 1000;
        let min_request = per_ms(250).clamp(16 << 10, 1 << 20);
        let max_request = per_ms(2000).clamp(256 << 10, 8 << 20);
        // Half a second: the first frame waits for the moov, the reader's lead and this;
        // the window then grows with playback (docs/PERFORMANCE.md, S3).
        let min_ahead = per_ms(500).max(min_request);
        let max_ahead = per_ms(buffer_ms).clamp(min_ahead, 256 << 20);
        Sizes {
            min_request,
            max_request,
            min_ahead,
            max_ahead,
            max_buffer: max_ahead.saturating_mul(2).saturating_add(max_request),
        }
    }
}

impl Default for Sizes {
    /// Before the bitrate is known (while the movie structure is read).
    fn default() -> Self {
        Sizes::for_media(0, 0)
    }
}

/// What is held of one object and what to fetch next.
#[derive(Debug)]
pub(super) struct ByteWindow {
    size: u64,
    sizes: Sizes,
    /// Held bytes by start offset; pieces never overlap.
    pieces: BTreeMap<u64, Bytes>,
    held: u64,
    /// A read waiting for bytes that are neither held nor being fetched.
    demand: Option<Range<u64>>,
    /// End of the latest read: the window runs from here.
    position: u64,
    recent: VecDeque<u64>,
    /// Bytes served since `begin_playback`; `None` before it (no window yet).
    played: Option<u64>,
    /// Totals, for the fetched-per-played figure.
    pub fetched_total: u64,
    pub served_total: u64,
}

impl ByteWindow {
    pub(super) fn new(size: u64) -> ByteWindow {
        ByteWindow {
            size,
            sizes: Sizes::default(),
            pieces: BTreeMap::new(),
            held: 0,
            demand: None,
            position: 0,
            recent: VecDeque::new(),
            played: None,
            fetched_total: 0,
            served_total: 0,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(super) fn held(&self) -> u64 {
        self.held
    }

    /// The movie structure is read: from now on reads are playback, and the window
    /// is kept filled with `sizes`.
    pub(super) fn begin_playback(&mut self, sizes: Sizes) {
        self.sizes = sizes;
        self.played = Some(0);
    }

    /// Stores fetched bytes at `offset` (the parts already held are skipped).
    pub(super) fn insert(&mut self, offset: u64, bytes: Bytes) {
        self.fetched_total += bytes.len() as u64;
        let end = offset + bytes.len() as u64;
        let mut at = offset;
        while at < end {
            if let Some(covered_to) = self.covering(at) {
                at = covered_to.min(end);
            } else {
                let next_start = self
                    .pieces
                    .range(at..)
                    .next()
                    .map_or(u64::MAX, |(s, _)| *s)
                    .min(end);
                let piece = bytes.slice((at - offset) as usize..(next_start - offset) as usize);
                self.held += piece.len() as u64;
                self.pieces.insert(at, piece);
                at = next_start;
            }
        }
        if let Some(d) = &self.demand {
            if self.first_missing(d.clone()).is_none() {
                self.demand = None;
            }
        }
    }

    /// `len` bytes at `offset` if all are held (a read of playback: moves the window
    /// and drops what is behind it); else `None`, and the range becomes the demand.
    /// A range past the end of the object is refused (`Err`).
    pub(super) fn read(&mut self, offset: u64, len: usize) -> Result<Option<Bytes>, ()> {
        let end = offset.checked_add(len as u64).ok_or(())?;
        if end > self.size {
            return Err(());
        }
        if self.first_missing(offset..end).is_some() {
            self.demand = Some(offset..end);
            return Ok(None);
        }
        let bytes = self.copy_out(offset, len);
        self.served_total += len as u64;
        if let Some(played) = &mut self.played {
            *played += len as u64;
        }
        self.position = end;
        self.recent.push_back(offset);
        if self.recent.len() > RECENT_READS {
            self.recent.pop_front();
        }
        self.evict();
        Ok(Some(bytes))
    }

    /// The range to fetch next, if any: the demand first, then the window.
    pub(super) fn next_fetch(&self) -> Option<Range<u64>> {
        if let Some(demand) = &self.demand {
            if let Some(from) = self.first_missing(demand.clone()) {
                let end = demand
                    .end
                    .max(from + self.sizes.min_request)
                    .min(from + self.sizes.max_request.max(demand.end - from))
                    .min(self.size);
                return Some(from..self.held_or(end, from));
            }
        }
        self.played?;
        if self.held >= self.sizes.max_buffer {
            return None;
        }
        let window_end = self.position.saturating_add(self.ahead()).min(self.size);
        let from = self.first_missing(self.position..window_end)?;
        // Wait until a worthwhile request fits (or the object's end is near).
        if window_end - from < self.sizes.min_request && window_end < self.size {
            return None;
        }
        let end = window_end.min(from + self.sizes.max_request);
        Some(from..self.held_or(end, from))
    }

    /// Whether a request now at `at`, ending at `end`, should go on: not when a demand
    /// waits for bytes it will not bring.
    pub(super) fn keep_fetching(&self, at: u64, end: u64) -> bool {
        match &self.demand {
            Some(d) => match self.first_missing(d.clone()) {
                Some(missing) => (at..end).contains(&missing),
                None => true,
            },
            None => true,
        }
    }

    /// The current read-ahead: half the bytes played, within the sizes. Half, because
    /// "played" starts with the reader's lead over the clock (about 1.3 s of frames read
    /// before the first is shown): at the full rate the window would double that lead
    /// before the first frame (docs/PERFORMANCE.md, S3).
    fn ahead(&self) -> u64 {
        (self.played.unwrap_or(0) / 2).clamp(self.sizes.min_ahead, self.sizes.max_ahead)
    }

    /// `end`, or the start of the next held piece after `from` if that comes first.
    fn held_or(&self, end: u64, from: u64) -> u64 {
        self.pieces.range(from..end).next().map_or(end, |(s, _)| *s)
    }

    /// The end of the held piece that holds byte `at`, if one does.
    fn covering(&self, at: u64) -> Option<u64> {
        let (start, piece) = self.pieces.range(..=at).next_back()?;
        let end = start + piece.len() as u64;
        (at < end).then_some(end)
    }

    /// The first byte of `range` that is not held.
    fn first_missing(&self, range: Range<u64>) -> Option<u64> {
        let mut at = range.start;
        while at < range.end {
            match self.covering(at) {
                Some(covered_to) => at = covered_to,
                None => return Some(at),
            }
        }
        None
    }

    /// Copies (or slices, when one piece holds it all) `len` held bytes at `offset`.
    fn copy_out(&self, offset: u64, len: usize) -> Bytes {
        let end = offset + len as u64;
        let mut out: Option<BytesMut> = None;
        let mut at = offset;
        while at < end {
            // Invariant: the caller checked that every byte of offset..end is held.
            let (start, piece) = self
                .pieces
                .range(..=at)
                .next_back()
                .expect("every byte of the range is held");
            let from = (at - start) as usize;
            let to = ((end - start) as usize).min(piece.len());
            if at == offset && to - from == len {
                return piece.slice(from..to);
            }
            out.get_or_insert_with(|| BytesMut::with_capacity(len))
                .extend_from_slice(&piece[from..to]);
            at = start + to as u64;
        }
        out.map(BytesMut::freeze).unwrap_or_default()
    }

    /// Drops pieces wholly behind the recent reads or wholly past the window.
    fn evict(&mut self) {
        let low = self.recent.iter().copied().min().unwrap_or(0);
        let high = self
            .recent
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.position)
            .saturating_add(self.sizes.max_ahead)
            .saturating_add(self.sizes.max_request);
        let drop: Vec<u64> = self
            .pieces
            .iter()
            .filter(|(s, p)| **s + p.len() as u64 <= low || **s >= high)
            .map(|(s, _)| *s)
            .collect();
        for start in drop {
            if let Some(p) = self.pieces.remove(&start) {
                self.held -= p.len() as u64;
            }
        }
    }
}

/// How long to wait before attempt `attempt` (1-based) after a transient failure:
/// 100 ms doubling, at most 4 s.
pub(super) fn backoff_ms(attempt: u32) -> u64 {
    (100u64 << attempt.saturating_sub(1).min(6)).min(4000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_at(offset: u64, len: usize) -> Bytes {
        (0..len)
            .map(|i| ((offset + i as u64) % 251) as u8)
            .collect()
    }

    fn sizes() -> Sizes {
        Sizes {
            min_request: 100,
            max_request: 1000,
            min_ahead: 500,
            max_ahead: 2000,
            max_buffer: 5000,
        }
    }

    /// Fetches whatever `next_fetch` asks, whole, until it asks nothing.
    fn fill(ra: &mut ByteWindow) -> Vec<Range<u64>> {
        let mut asked = Vec::new();
        while let Some(r) = ra.next_fetch() {
            assert!(asked.len() < 1000, "endless fetching");
            ra.insert(r.start, bytes_at(r.start, (r.end - r.start) as usize));
            asked.push(r);
        }
        asked
    }

    #[test]
    fn a_read_of_missing_bytes_is_a_demand_fetched_at_least_min_request() {
        let mut ra = ByteWindow::new(10_000);
        ra.begin_playback(sizes());
        ra.sizes.min_ahead = 0;
        assert_eq!(ra.read(9000, 16), Ok(None));
        assert_eq!(ra.next_fetch(), Some(9000..9100));
        ra.insert(9000, bytes_at(9000, 100));
        assert_eq!(ra.read(9000, 16), Ok(Some(bytes_at(9000, 16))));
        // Reads past the object's end are refused, never fetched.
        assert_eq!(ra.read(9990, 11), Err(()));
        assert_eq!(ra.read(u64::MAX, 2), Err(()));
    }

    #[test]
    fn nothing_is_fetched_ahead_before_playback_begins() {
        let mut ra = ByteWindow::new(1 << 20);
        assert_eq!(ra.read(0, 16), Ok(None));
        let asked = fill(&mut ra);
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(ra.read(0, 16).unwrap().unwrap(), bytes_at(0, 16));
        assert_eq!(fill(&mut ra), vec![], "no window before begin_playback");
    }

    #[test]
    fn the_window_starts_small_and_grows_with_playback() {
        let mut ra = ByteWindow::new(1_000_000);
        ra.begin_playback(sizes());
        assert_eq!(ra.read(0, 10), Ok(None));
        fill(&mut ra);
        assert_eq!(ra.read(0, 10).unwrap().unwrap(), bytes_at(0, 10));
        fill(&mut ra);
        assert_eq!(
            ra.fetched_total, 500,
            "min_ahead (500), then a min_request at a time"
        );
        // Play 4000 bytes in 10-byte reads, refilling as a prefetcher would.
        for at in (10..4010).step_by(10) {
            fill(&mut ra);
            let got = ra
                .read(at, 10)
                .unwrap()
                .expect("held: read-ahead ran before");
            assert_eq!(got, bytes_at(at, 10));
        }
        fill(&mut ra);
        assert_eq!(ra.ahead(), 2000, "grown to max_ahead (half of 4010 played)");
        let fetched = ra.fetched_total;
        assert!(
            (5910..=6010).contains(&fetched),
            "max_ahead past the reads: {fetched}"
        );
        assert_eq!(ra.served_total, 4010);
        assert!(ra.held() <= 2000 + 64 * 10 + 100, "held {}", ra.held());
        assert_eq!(
            ra.held(),
            ra.pieces.values().map(|p| p.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn memory_stays_bounded_over_a_long_object() {
        let mut ra = ByteWindow::new(u64::MAX / 2);
        ra.begin_playback(sizes());
        let mut at = 0;
        for _ in 0..20_000 {
            fill(&mut ra);
            assert!(
                ra.read(at, 50).unwrap().is_some() || {
                    fill(&mut ra);
                    ra.read(at, 50).unwrap().is_some()
                }
            );
            let bound = sizes().max_buffer + sizes().max_request;
            assert!(ra.held() <= bound, "held {}", ra.held());
            at += 50;
        }
    }

    #[test]
    fn interleaved_reads_are_served_from_one_window() {
        // Video at 0.., audio at 5000.. read alternately, as a demuxer does with a file
        // whose tracks are interleaved in 5000-byte chunks; the buffer may hold both.
        let mut ra = ByteWindow::new(100_000);
        ra.begin_playback(Sizes {
            max_buffer: 12_000,
            ..sizes()
        });
        let mut demands = 0;
        for i in 0..40u64 {
            for at in [i * 100, 5000 + i * 100] {
                if ra.read(at, 100).unwrap().is_none() {
                    demands += 1;
                    fill(&mut ra);
                    assert!(ra.read(at, 100).unwrap().is_some());
                }
                fill(&mut ra);
            }
        }
        assert!(ra.fetched_total < 12_000, "fetched {}", ra.fetched_total);
        assert!(demands <= 3, "{demands} demands");
    }

    #[test]
    fn overlapping_inserts_keep_one_copy_and_reads_span_pieces() {
        let mut ra = ByteWindow::new(1000);
        ra.insert(100, bytes_at(100, 100));
        ra.insert(150, bytes_at(150, 100));
        ra.insert(0, bytes_at(0, 300));
        assert_eq!(ra.held(), 300);
        assert_eq!(ra.read(50, 200).unwrap().unwrap(), bytes_at(50, 200));
    }

    #[test]
    fn a_request_stops_when_a_demand_needs_other_bytes() {
        let mut ra = ByteWindow::new(10_000);
        assert!(ra.keep_fetching(0, 1000));
        assert_eq!(ra.read(5000, 10), Ok(None));
        assert!(!ra.keep_fetching(0, 1000));
        assert!(ra.keep_fetching(4000, 6000));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let waits: Vec<u64> = (1..=8).map(backoff_ms).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 4000, 4000]);
    }

    #[test]
    fn sizes_follow_the_bitrate() {
        let s = Sizes::for_media(250_000, 10_000); // 2 Mbit/s, 10 s buffer
        assert_eq!(s.min_ahead, 125_000);
        assert_eq!(s.max_ahead, 2_500_000);
        assert_eq!(s.max_request, 500_000);
        let low = Sizes::for_media(5_000, 10_000);
        assert_eq!(low.min_request, 16 << 10);
        assert!(low.max_ahead >= low.min_ahead);
    }
}
