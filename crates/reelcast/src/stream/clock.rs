//! The pacing clock: when each frame is due, given when the stream started.
//!
//! Sans-IO: it never reads the time, callers pass `now`. A file is sent in real time by its
//! own timestamps, so a frame with decode time `t` is due at `epoch + t`. Frames whose time
//! has already passed (the first B-frame reordering delay, or a slow reader) are due at
//! once; that is what keeps a late start from turning into a permanent lag.

use std::time::{Duration, Instant};

/// Sleeps until `at`, or forever when there is nothing to wait for (a disabled branch of a
/// `select!` over optional deadlines).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, Copy)]
/// When each frame is due: stream time on the wall clock from one epoch.
pub struct PacingClock {
    epoch: Instant,
}

impl PacingClock {
    /// A clock whose stream time 0 is `epoch`.
    pub fn new(epoch: Instant) -> Self {
        PacingClock { epoch }
    }

    /// The wall-clock time of stream time 0.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The instant a frame with stream time `time_us` is due (negative times are due at the
    /// epoch).
    pub fn due(&self, time_us: i64) -> Instant {
        self.epoch + Duration::from_micros(time_us.max(0) as u64)
    }

    /// How long to wait from `now` before sending a frame of stream time `time_us`.
    pub fn wait(&self, time_us: i64, now: Instant) -> Duration {
        self.due(time_us).saturating_duration_since(now)
    }

    /// Stream time at `now`, in microseconds.
    pub fn stream_time_us(&self, now: Instant) -> i64 {
        now.saturating_duration_since(self.epoch).as_micros() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_due_at_epoch_plus_their_time() {
        let t0 = Instant::now();
        let clock = PacingClock::new(t0);
        assert_eq!(clock.due(40_000), t0 + Duration::from_millis(40));
        assert_eq!(
            clock.wait(40_000, t0 + Duration::from_millis(10)),
            Duration::from_millis(30)
        );
    }

    #[test]
    fn past_and_negative_times_are_due_now() {
        let t0 = Instant::now();
        let clock = PacingClock::new(t0);
        assert_eq!(clock.due(-80_000), t0);
        assert_eq!(
            clock.wait(10_000, t0 + Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn an_hour_of_media_is_paced_without_drift() {
        let t0 = Instant::now();
        let clock = PacingClock::new(t0);
        // 90 000 frames at 25 fps = one hour, stepped in simulated time.
        let mut last = t0;
        for i in 0..90_000i64 {
            last = clock.due(i * 40_000);
        }
        assert_eq!(last - t0, Duration::from_micros(89_999 * 40_000));
        assert_eq!(
            clock.stream_time_us(t0 + Duration::from_secs(3600)),
            3_600_000_000
        );
    }
}
