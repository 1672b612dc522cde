//! When one viewer is to move to a lower rendition of its stream, and when back up: the
//! decision only, from the link meter's windows ([`super::link_meter`]).
//!
//! Down: after [`DOWN_AFTER`] of short windows (lossy, and the stream's rate above what the
//! link carried), or sooner, after [`HEAVY_DOWN_AFTER`], when at least two windows in a
//! row lost [`HEAVY_LOSS`](super::link_meter::HEAVY_LOSS) or more (a link that fell far below the stream, not a moment of
//! loss: one window, a join's burst, never moves a viewer), the viewer asks for a lower
//! rendition, with the link's figures; whoever
//! hears it picks the rendition (or has none to offer: then the viewer keeps the
//! not-enough-bandwidth event alone, and asks again no sooner than [`ASK_TIMEOUT`]).
//! Up: once on a lower rendition, after a clean run (every window under
//! [`RECOVERED_LOSS`]) of the current wait, it asks to go back to the parent. The wait
//! starts at [`UP_AFTER`] and doubles (up to [`MAX_UP_AFTER`]) each time the link falls
//! short again within [`PROBE_FAILED_WITHIN`] of going up, so a viewer on a link just
//! between two rates does not flap; a move down long after the last move up starts over.
//!
//! Owns: one viewer's verdict and backoff, a few dozen bytes, touched once a receiver
//! report. Must not: read a clock, know streams or renditions, send anything.

use std::time::{Duration, Instant};

use super::link_meter::{heavy_for, heavy_run, LinkEstimate, RECOVERED_LOSS};

/// Short windows must span this long (a window's start to a later one's end) to move down:
/// two of the browser's one-second reports.
pub(super) const DOWN_AFTER: Duration = Duration::from_millis(1500);
/// Heavy windows (two at least) must span this long to move down: as long as the link
/// meter's for the not-enough-bandwidth event, so both come at one report.
pub(super) const HEAVY_DOWN_AFTER: Duration = super::link_meter::HEAVY_SUSTAIN;
/// Clean windows at the lower rate must span this long to probe back up, at first.
pub(super) const UP_AFTER: Duration = Duration::from_secs(10);
/// The longest wait before probing up.
pub(super) const MAX_UP_AFTER: Duration = Duration::from_secs(160);
/// Short again this soon after moving up: the probe failed, the next wait doubles.
pub(super) const PROBE_FAILED_WITHIN: Duration = Duration::from_secs(30);
/// An ask not answered by a move within this long is taken as refused (no rendition to
/// offer): the viewer may ask again after it.
pub(super) const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the viewer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// A lower rendition: the stream's rate to the viewer and what its link carried.
    Down { stream_bps: u64, carries_bps: u64 },
    /// Back to the parent stream.
    Up,
}

/// One viewer's move verdict (see the module docs).
#[derive(Debug)]
pub(super) struct MovePolicy {
    /// On a lower rendition (not the stream the viewer joined).
    lower: bool,
    /// When the last ask went out, while unanswered.
    asked_at: Option<Instant>,
    /// Start of the first window of the current run of short windows.
    short_since: Option<Instant>,
    /// The current run of heavy windows: the first one's start, and how many.
    heavy: Option<(Instant, u32)>,
    /// Start of the first window of the current run of clean windows.
    clean_since: Option<Instant>,
    /// The current wait before probing up.
    up_after: Duration,
    /// When the viewer last moved up.
    moved_up_at: Option<Instant>,
}

impl Default for MovePolicy {
    fn default() -> Self {
        MovePolicy {
            lower: false,
            asked_at: None,
            short_since: None,
            heavy: None,
            clean_since: None,
            up_after: UP_AFTER,
            moved_up_at: None,
        }
    }
}

impl MovePolicy {
    /// A window from `from` to `now` was measured; returns what to ask for now, if anything.
    pub(super) fn on_window(
        &mut self,
        from: Instant,
        now: Instant,
        e: &LinkEstimate,
    ) -> Option<Want> {
        if let Some(at) = self.asked_at {
            if now.saturating_duration_since(at) < ASK_TIMEOUT {
                return None;
            }
            // Nobody moved the viewer: nothing to offer. Judge afresh from here.
            self.asked_at = None;
            self.forget_runs();
        }
        if e.lossy && e.stream_bps > e.carries_bps {
            self.clean_since = None;
            let since = *self.short_since.get_or_insert(from);
            self.heavy = heavy_run(self.heavy, from, e.loss);
            let heavy_long_enough = heavy_for(self.heavy, now, HEAVY_DOWN_AFTER);
            if now.saturating_duration_since(since) < DOWN_AFTER && !heavy_long_enough {
                return None;
            }
            self.asked_at = Some(now);
            return Some(Want::Down {
                stream_bps: e.stream_bps,
                carries_bps: e.carries_bps,
            });
        }
        self.short_since = None;
        self.heavy = None;
        if !self.lower || e.loss >= RECOVERED_LOSS {
            self.clean_since = None;
            return None;
        }
        let since = *self.clean_since.get_or_insert(from);
        if now.saturating_duration_since(since) < self.up_after {
            return None;
        }
        self.asked_at = Some(now);
        Some(Want::Up)
    }

    /// The viewer was moved at `now`: down to a lower rendition, or back up.
    pub(super) fn moved(&mut self, now: Instant, down: bool) {
        self.asked_at = None;
        self.forget_runs();
        if down {
            let probe_failed = self
                .moved_up_at
                .is_some_and(|t| now.saturating_duration_since(t) < PROBE_FAILED_WITHIN);
            self.up_after = if probe_failed {
                (self.up_after * 2).min(MAX_UP_AFTER)
            } else {
                UP_AFTER
            };
            self.lower = true;
        } else {
            self.lower = false;
            self.moved_up_at = Some(now);
        }
    }

    /// The move asked for came to nothing (its target ended first): the viewer may ask
    /// again once the link says so anew.
    pub(super) fn abandoned(&mut self) {
        self.asked_at = None;
        self.forget_runs();
    }

    /// Runs of windows judged so far count no more.
    fn forget_runs(&mut self) {
        self.short_since = None;
        self.heavy = None;
        self.clean_since = None;
    }

    /// The current wait before probing up.
    #[cfg(test)]
    pub(super) fn up_after(&self) -> Duration {
        self.up_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(loss: f64, stream_bps: u64, carries_bps: u64) -> LinkEstimate {
        LinkEstimate {
            sending_bps: stream_bps,
            stream_bps,
            carries_bps,
            loss,
            lossy: loss >= super::super::link_meter::SHORT_LOSS,
        }
    }

    /// Feeds one-second windows of `e` for `secs` seconds from `t`; returns what was asked
    /// and when (seconds from `t0`).
    fn run(
        p: &mut MovePolicy,
        t0: Instant,
        t: &mut Instant,
        secs: u64,
        e: LinkEstimate,
    ) -> Vec<(u64, Want)> {
        let mut asked = Vec::new();
        for _ in 0..secs {
            let from = *t;
            *t += Duration::from_secs(1);
            if let Some(w) = p.on_window(from, *t, &e) {
                asked.push(((*t - t0).as_secs(), w));
            }
        }
        asked
    }

    #[test]
    fn two_short_windows_ask_down_and_one_does_not() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut p = MovePolicy::default();
        let short = window(0.3, 1_600_000, 400_000);
        assert!(run(&mut p, t0, &mut t, 1, short).is_empty());
        // A clean window in between starts the run again.
        assert!(run(&mut p, t0, &mut t, 1, window(0.0, 1_600_000, 1_600_000)).is_empty());
        assert!(run(&mut p, t0, &mut t, 1, short).is_empty());
        let asked = run(&mut p, t0, &mut t, 1, short);
        assert_eq!(
            asked,
            vec![(
                4,
                Want::Down {
                    stream_bps: 1_600_000,
                    carries_bps: 400_000
                }
            )]
        );
        // Not again while the ask is open; again once it timed out unanswered.
        assert!(run(&mut p, t0, &mut t, 9, short).is_empty());
        assert_eq!(run(&mut p, t0, &mut t, 3, short).len(), 1);
    }

    /// Feeds `n` windows of `e`, each `len` long, from `t`; returns when (ms from `t0`)
    /// a move down was asked.
    fn run_windows(
        p: &mut MovePolicy,
        t0: Instant,
        t: &mut Instant,
        n: u32,
        len: Duration,
        e: LinkEstimate,
    ) -> Vec<u128> {
        let mut asked = Vec::new();
        for _ in 0..n {
            let from = *t;
            *t += len;
            if let Some(Want::Down { .. }) = p.on_window(from, *t, &e) {
                asked.push((*t - t0).as_millis());
            }
        }
        asked
    }

    const HALF: Duration = Duration::from_millis(500);

    #[test]
    fn heavy_loss_over_two_windows_asks_down_after_a_second_lighter_loss_after_one_and_a_half() {
        // A 1.9 Mbit/s stream on a 400 kbit/s link: 80 % lost.
        let heavy = window(0.8, 1_900_000, 400_000);
        let t0 = Instant::now();
        let (mut t, mut p) = (t0, MovePolicy::default());
        assert_eq!(run_windows(&mut p, t0, &mut t, 3, HALF, heavy), vec![1000]);
        // 15 % lost: short, not heavy: the usual wait.
        let (mut t, mut p) = (t0, MovePolicy::default());
        let light = window(0.15, 1_900_000, 1_600_000);
        assert_eq!(run_windows(&mut p, t0, &mut t, 4, HALF, light), vec![1500]);
        // One heavy window a second long is one report: not yet.
        let (mut t, mut p) = (t0, MovePolicy::default());
        assert!(run_windows(&mut p, t0, &mut t, 1, 2 * HALF, heavy).is_empty());
        assert_eq!(
            run_windows(&mut p, t0, &mut t, 1, 2 * HALF, heavy),
            vec![2000]
        );
    }

    #[test]
    fn one_heavy_window_a_joins_burst_does_not_move_a_viewer_sooner() {
        let t0 = Instant::now();
        let heavy = window(0.8, 1_900_000, 400_000);
        let light = window(0.15, 1_900_000, 1_600_000);
        let clean = window(0.0, 1_900_000, 1_900_000);
        // A heavy window then clean ones: nothing.
        let (mut t, mut p) = (t0, MovePolicy::default());
        assert!(run_windows(&mut p, t0, &mut t, 1, HALF, heavy).is_empty());
        assert!(run_windows(&mut p, t0, &mut t, 10, HALF, clean).is_empty());
        // Heavy, then lighter loss: the heavy run is broken, the short one goes on to
        // the usual wait.
        let (mut t, mut p) = (t0, MovePolicy::default());
        assert!(run_windows(&mut p, t0, &mut t, 1, HALF, heavy).is_empty());
        assert!(run_windows(&mut p, t0, &mut t, 1, HALF, light).is_empty());
        assert_eq!(run_windows(&mut p, t0, &mut t, 1, HALF, heavy), vec![1500]);
        // A join's catch-up lost heavily got through faster than the stream runs: not
        // short at all, and the heavy run starts after it.
        let burst = window(0.5, 1_900_000, 4_000_000);
        let (mut t, mut p) = (t0, MovePolicy::default());
        assert!(run_windows(&mut p, t0, &mut t, 1, HALF, burst).is_empty());
        assert!(run_windows(&mut p, t0, &mut t, 1, HALF, heavy).is_empty());
        assert_eq!(run_windows(&mut p, t0, &mut t, 1, HALF, heavy), vec![1500]);
    }

    #[test]
    fn a_clean_run_at_the_lower_rate_probes_up_and_a_failed_probe_doubles_the_wait() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut p = MovePolicy::default();
        let clean = window(0.0, 200_000, 200_000);
        // On the parent a clean link never asks anything.
        assert!(run(&mut p, t0, &mut t, 30, clean).is_empty());
        p.moved(t, true);
        // A slightly lossy window (under the short mark, over the recovered one) restarts
        // the clean run.
        assert!(run(&mut p, t0, &mut t, 9, clean).is_empty());
        assert!(run(&mut p, t0, &mut t, 1, window(0.05, 200_000, 190_000)).is_empty());
        let asked = run(&mut p, t0, &mut t, 10, clean);
        assert_eq!(asked, vec![(50, Want::Up)]);
        p.moved(t, false);
        // Short again soon after going up: down, and the next wait is twice as long.
        let short = window(0.3, 1_600_000, 400_000);
        assert_eq!(run(&mut p, t0, &mut t, 2, short).len(), 1);
        p.moved(t, true);
        assert_eq!(p.up_after(), UP_AFTER * 2);
        assert!(run(&mut p, t0, &mut t, 19, clean).is_empty());
        assert_eq!(run(&mut p, t0, &mut t, 1, clean), vec![(72, Want::Up)]);
        p.moved(t, false);
        // A fall long after the last probe starts over from the first wait.
        assert!(run(&mut p, t0, &mut t, 40, clean).is_empty());
        assert_eq!(run(&mut p, t0, &mut t, 2, short).len(), 1);
        p.moved(t, true);
        assert_eq!(p.up_after(), UP_AFTER);
    }

    #[test]
    fn the_wait_stops_growing_at_its_bound() {
        let t0 = Instant::now();
        let mut p = MovePolicy::default();
        let mut t = t0;
        for _ in 0..10 {
            p.moved(t, false);
            t += Duration::from_secs(1);
            p.moved(t, true);
        }
        assert_eq!(p.up_after(), MAX_UP_AFTER);
    }
}
