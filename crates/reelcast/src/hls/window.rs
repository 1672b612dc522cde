//! One stream's HLS window: the init segment, the last `hls_list_size` segments and the
//! parts of the newest ones, in memory, and the media playlist made from them.
//!
//! Owns what readers are served and when they may be answered: the segmenter's output
//! goes in ([`Window::add`]), requests read out (playlist, init, segment, part) and learn
//! whether what they ask for exists, is coming next (wait: [`Window::changes`]) or is
//! gone. Bounded: at most `list_size` complete segments and `max_bytes` in all (the
//! oldest segments leave first). A part's bytes are a slice of its segment's once the
//! segment is complete, so nothing is held twice. Must not: do I/O or wait itself (the
//! HTTP side waits on [`Window::changes`] with its own time-out).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::segmenter::{Cut, PartOut};

/// Complete segments whose parts the playlist still lists (LL-HLS asks for the parts of
/// the last three target durations at least; older ones are listed as segments only).
const SEGMENTS_WITH_PARTS: usize = 3;

/// What a window is made with.
#[derive(Debug, Clone, Copy)]
pub struct WindowConfig {
    /// `hls_target_duration`.
    pub target: Duration,
    /// `ll_hls_part_target`.
    pub part_target: Duration,
    /// `hls_list_size`: complete segments kept.
    pub list_size: usize,
    /// Bytes the segments may hold together.
    pub max_bytes: usize,
}

struct Part {
    duration_us: i64,
    independent: bool,
    bytes: Bytes,
    /// When it came (its `Last-Modified`).
    made: SystemTime,
}

struct Segment {
    msn: u64,
    start_us: i64,
    parts: Vec<Part>,
    /// The whole segment, once complete.
    whole: Option<Bytes>,
    /// When it was completed (its `Last-Modified`).
    made: SystemTime,
}

impl Segment {
    fn duration_us(&self) -> i64 {
        self.parts.iter().map(|p| p.duration_us).sum()
    }
    fn bytes(&self) -> usize {
        self.whole.as_ref().map_or_else(
            || self.parts.iter().map(|p| p.bytes.len()).sum(),
            Bytes::len,
        )
    }
}

#[derive(Default)]
struct State {
    init: Option<Stored>,
    /// Complete segments, oldest first, then the open one (possibly with no part yet).
    segments: VecDeque<Segment>,
    next_msn: u64,
    /// The stream's time 0 on the wall clock (for `#EXT-X-PROGRAM-DATE-TIME`).
    wall_epoch: Option<SystemTime>,
    /// The longest complete segment so far, µs (the target duration may not be less).
    longest_us: i64,
    ended: bool,
    bytes: usize,
}

/// Bytes the window serves, with the time they were made (`Last-Modified`: a URL's
/// bytes never change after that).
#[derive(Debug, Clone)]
pub struct Stored {
    /// The body.
    pub bytes: Bytes,
    /// When the window got them.
    pub made: SystemTime,
}

/// Whether a blocking playlist request can be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The playlist holds what was asked.
    Ready,
    /// Not yet: wait for a change.
    Wait,
    /// Further ahead than the spec lets a client wait for (400).
    TooFar,
    /// The stream has ended without it.
    Ended,
}

/// A part asked for by its URL.
#[derive(Debug)]
pub enum PartLookup {
    /// Here it is.
    Ready(Stored),
    /// The next part to come (the preload hint): wait for a change.
    Coming,
    /// Not in the window (gone, or too far ahead).
    Missing,
}

/// One stream's window; shared by its sink (writing) and the HTTP side (reading).
pub struct Window {
    config: WindowConfig,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// A tag unique to this stream's run, in ETags.
    tag: String,
    created: Instant,
    /// Milliseconds after `created` of the last request, plus one (0: none yet).
    last_read_ms: AtomicU64,
    /// Requests being answered now.
    in_flight: AtomicUsize,
}

/// A request being answered ([`Window::reading`]); its end is a read too.
pub struct Reading(Arc<Window>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.touch(Instant::now());
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Window {
    /// An empty window; `tag` makes its ETags differ from another run's.
    pub fn new(config: WindowConfig, tag: String) -> Self {
        Window {
            config,
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            tag,
            created: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data: usable after a panic elsewhere.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver that sees every change (new part, segment, end).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The stream's time 0 is `wall` on the wall clock.
    pub fn set_wall_epoch(&self, wall: SystemTime) {
        self.state().wall_epoch = Some(wall);
    }

    /// A request is being answered from `now` until the guard is dropped: the stream
    /// counts as read all that time (a blocking reload may wait longer than
    /// `vod_stream_timeout`).
    pub fn reading(window: &Arc<Window>, now: Instant) -> Reading {
        window.touch(now);
        window.in_flight.fetch_add(1, Ordering::Relaxed);
        Reading(window.clone())
    }

    /// A reader asked for something now.
    pub fn touch(&self, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.created).as_millis())
            .unwrap_or(u64::MAX);
        self.last_read_ms
            .store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// When a reader last asked for something: now, while a request is being answered.
    pub fn last_read(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(Instant::now());
        }
        match self.last_read_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.created + Duration::from_millis(ms - 1)),
        }
    }

    /// The ETag tag of this stream's run.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// What the segmenter cut.
    pub fn add(&self, cuts: Vec<Cut>) {
        if cuts.is_empty() {
            return;
        }
        {
            let mut s = self.state();
            for cut in cuts {
                match cut {
                    Cut::Init(bytes) => {
                        s.init = Some(Stored {
                            bytes: Bytes::from(bytes),
                            made: SystemTime::now(),
                        });
                    }
                    Cut::Part(part) => Self::add_part(&mut s, part),
                    Cut::SegmentEnd => self.end_segment(&mut s),
                }
            }
        }
        self.notify();
    }

    fn add_part(s: &mut State, part: PartOut) {
        if s.segments.back().is_none_or(|seg| seg.whole.is_some()) {
            let msn = s.next_msn;
            s.next_msn += 1;
            s.segments.push_back(Segment {
                msn,
                start_us: part.start_us,
                parts: Vec::new(),
                whole: None,
                made: SystemTime::now(),
            });
        }
        s.bytes += part.bytes.len();
        if let Some(open) = s.segments.back_mut() {
            open.parts.push(Part {
                duration_us: part.duration_us,
                independent: part.independent,
                bytes: Bytes::from(part.bytes),
                made: SystemTime::now(),
            });
        }
    }

    fn end_segment(&self, s: &mut State) {
        let Some(open) = s.segments.back_mut().filter(|seg| seg.whole.is_none()) else {
            return;
        };
        // One copy into the whole segment; the parts become slices of it.
        let mut whole = Vec::with_capacity(open.bytes());
        for p in &open.parts {
            whole.extend_from_slice(&p.bytes);
        }
        // Sent without a copy to plain-TCP readers (`zero_copy`).
        let whole = crate::zero_copy::shareable(whole);
        let mut at = 0;
        for p in &mut open.parts {
            let len = p.bytes.len();
            p.bytes = whole.slice(at..at + len);
            at += len;
        }
        open.whole = Some(whole);
        open.made = SystemTime::now();
        let duration = open.duration_us();
        s.longest_us = s.longest_us.max(duration);
        let complete = |s: &State| s.segments.iter().filter(|g| g.whole.is_some()).count();
        while complete(s) > self.config.list_size
            || (s.bytes > self.config.max_bytes && complete(s) > 1)
        {
            if let Some(old) = s.segments.pop_front() {
                s.bytes -= old.bytes();
            }
        }
    }

    /// The stream ended: nothing more comes; waiting readers are answered.
    pub fn end(&self) {
        self.state().ended = true;
        self.notify();
    }

    /// How long an ended window stays readable: three target durations (a player
    /// reloading once per target duration sees `#EXT-X-ENDLIST`).
    pub fn linger(&self) -> Duration {
        self.config.target * 3
    }

    /// True once the stream has ended.
    pub fn is_ended(&self) -> bool {
        self.state().ended
    }

    /// True once a regular HLS client has something to play: the init segment and a
    /// complete segment (a playlist of parts only is empty to it: ffmpeg gives up).
    pub fn has_segment(&self) -> bool {
        let s = self.state();
        s.init.is_some() && s.segments.iter().any(|g| g.whole.is_some())
    }

    /// The init segment.
    pub fn init(&self) -> Option<Stored> {
        self.state().init.clone()
    }

    /// Complete segment `msn`, if it is in the window.
    pub fn segment(&self, msn: u64) -> Option<Stored> {
        self.state()
            .segments
            .iter()
            .find(|g| g.msn == msn)
            .and_then(|g| {
                g.whole.clone().map(|bytes| Stored {
                    bytes,
                    made: g.made,
                })
            })
    }

    /// Part `index` of segment `msn`.
    pub fn part(&self, msn: u64, index: usize) -> PartLookup {
        let s = self.state();
        if let Some(seg) = s.segments.iter().find(|g| g.msn == msn) {
            if let Some(p) = seg.parts.get(index) {
                return PartLookup::Ready(Stored {
                    bytes: p.bytes.clone(),
                    made: p.made,
                });
            }
        }
        if !s.ended && (msn, index) == next_part(&s) {
            PartLookup::Coming
        } else {
            PartLookup::Missing
        }
    }

    /// Whether the playlist holds segment `msn` (complete), or its part `part`.
    pub fn readiness(&self, msn: u64, part: Option<usize>) -> Readiness {
        let s = self.state();
        let last = s.segments.back();
        let ready = last.is_some_and(|open| {
            let complete_to = if open.whole.is_some() {
                Some(open.msn)
            } else {
                open.msn.checked_sub(1)
            };
            if complete_to.is_some_and(|c| msn <= c) {
                return true;
            }
            // Asked for a part of the open segment.
            part.is_some_and(|p| open.whole.is_none() && msn == open.msn && p < open.parts.len())
        });
        if ready {
            return Readiness::Ready;
        }
        if s.ended {
            return Readiness::Ended;
        }
        // The spec: more than two segments past the last one in the playlist is an error.
        let last_msn = last.map_or(0, |g| g.msn);
        if msn > last_msn + 2 {
            Readiness::TooFar
        } else {
            Readiness::Wait
        }
    }

    /// The target duration in whole seconds: the setting rounded up (the segmenter cuts
    /// long GOPs to fit it), or a longer segment's rounded length should one exist.
    fn target_duration_s(&self, s: &State) -> u64 {
        let target_us = i64::try_from(self.config.target.as_micros()).unwrap_or(i64::MAX);
        let configured = super::segmenter::declared_target_s(target_us);
        // The segmenter keeps segments under this; only pictures further apart than the
        // target itself (a frame every few seconds) can make a longer one.
        let longest = (s.longest_us.max(0) + 500_000) / 1_000_000;
        u64::try_from(configured.max(longest)).unwrap_or(1)
    }

    /// The media playlist (RFC 8216bis), parts and preload hint included.
    pub fn playlist(&self) -> String {
        let s = self.state();
        let part_target = self.config.part_target.as_secs_f64();
        let mut m = String::with_capacity(2048);
        // Writing to a String cannot fail.
        let _ = write!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
             #EXT-X-PART-INF:PART-TARGET={part_target:.3}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-MAP:URI=\"init-{}.mp4\"\n",
            self.target_duration_s(&s),
            part_target * 3.0,
            s.segments.front().map_or(0, |g| g.msn),
            self.tag,
        );
        let complete = s.segments.iter().filter(|g| g.whole.is_some()).count();
        for (i, seg) in s.segments.iter().enumerate() {
            if let Some(epoch) = s.wall_epoch {
                let at = epoch + Duration::from_micros(u64::try_from(seg.start_us).unwrap_or(0));
                let _ = writeln!(m, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(at));
            }
            if i + SEGMENTS_WITH_PARTS >= complete {
                for (k, p) in seg.parts.iter().enumerate() {
                    let _ = writeln!(
                        m,
                        "#EXT-X-PART:DURATION={:.5},URI=\"{}-{}.{k}.m4s\"{}",
                        secs(p.duration_us),
                        self.tag,
                        seg.msn,
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if seg.whole.is_some() {
                let _ = write!(
                    m,
                    "#EXTINF:{:.5},\n{}-{}.m4s\n",
                    secs(seg.duration_us()),
                    self.tag,
                    seg.msn
                );
            }
        }
        if s.ended {
            m.push_str("#EXT-X-ENDLIST\n");
        } else {
            let (msn, index) = next_part(&s);
            let _ = writeln!(
                m,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}-{msn}.{index}.m4s\"",
                self.tag
            );
        }
        m
    }

    /// Bytes the window holds (segments and parts, init excluded).
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// The bit rates of the complete segments in the window, bits per second: the
    /// highest one segment had and the average over all (a multivariant playlist's
    /// `BANDWIDTH` and `AVERAGE-BANDWIDTH`). `None` before the first complete segment.
    pub fn bit_rates(&self) -> Option<(u64, u64)> {
        let s = self.state();
        let (mut peak, mut bytes, mut us) = (0u64, 0u64, 0i64);
        for seg in s.segments.iter().filter(|g| g.whole.is_some()) {
            let d = seg.duration_us();
            if d <= 0 {
                continue;
            }
            let len = seg.bytes() as u64;
            peak = peak.max(len * 8_000_000 / d.unsigned_abs());
            bytes += len;
            us += d;
        }
        (us > 0).then(|| (peak, bytes * 8_000_000 / us.unsigned_abs()))
    }

    /// The newest complete segment and its length in µs.
    pub fn last_segment(&self) -> Option<(Bytes, i64)> {
        let s = self.state();
        s.segments
            .iter()
            .rev()
            .find_map(|g| g.whole.clone().map(|w| (w, g.duration_us())))
    }
}

/// The part that comes next: the open segment's next one, or a new segment's first.
fn next_part(s: &State) -> (u64, usize) {
    match s.segments.back() {
        Some(open) if open.whole.is_none() => (open.msn, open.parts.len()),
        _ => (s.next_msn, 0),
    }
}

fn secs(us: i64) -> f64 {
    // Stream times are far below 2^52 µs: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let s = us as f64 / 1e6;
    s
}

/// `2026-12-03T22:19:33.123Z`.
fn iso8601(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso8601_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_336_373_123);
        assert_eq!(iso8601(t), "2026-12-03T22:19:33.123Z");
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
