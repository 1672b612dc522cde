//! Whether a translation's video re-encode is wanted now, for a file whose own H.264
//! only some sinks can take (B-frames: HLS players reorder, browsers' WebRTC decoders do
//! not). Shared by the translation's task, which says what its viewers and sinks need,
//! and its reader (`reordered`), which starts or stops its transcode thread to match.
//!
//! Owns: the wish, the `video_transcoders_max` slot the re-encode holds while wanted
//! (so `reelcast_video_transcoders_busy` counts it from the moment a viewer needs it),
//! and the refusal when it cannot be had (`transcoding_disabled`, or no free slot).
//! [`Follower`] is the task's side: need in, wish out, with a linger.
//! Must not: know viewers or sinks; the task decides what is needed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

use super::transcode::NO_TRANSCODERS;
use super::StreamError;
use crate::metrics::VideoTranscoderBusy;

/// One translation's re-encode: wanted or not, and its slot while wanted.
#[derive(Debug)]
pub struct ReencodeDemand {
    wanted: AtomicBool,
    busy: Mutex<Option<VideoTranscoderBusy>>,
    /// `video_transcoders_max` (0: no limit).
    max: usize,
    /// `Some(why)`: transcoding is disabled; what a viewer that needs it is told.
    disabled: Option<String>,
}

impl ReencodeDemand {
    /// Not wanted yet. `max` is `video_transcoders_max` (0: no limit); `disabled` is
    /// what a viewer needing the re-encode is told when transcoding is disabled.
    pub fn new(max: usize, disabled: Option<String>) -> Self {
        ReencodeDemand {
            wanted: AtomicBool::new(false),
            busy: Mutex::new(None),
            max,
            disabled,
        }
    }

    /// Wants the re-encode (taking a transcoder slot if it holds none); the reason when
    /// it cannot be had.
    pub fn want(&self) -> Result<(), StreamError> {
        if let Some(why) = &self.disabled {
            return Err(StreamError::Other(why.clone()));
        }
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if busy.is_none() {
            *busy = Some(
                VideoTranscoderBusy::try_start(self.max)
                    .ok_or_else(|| StreamError::Other(NO_TRANSCODERS.into()))?,
            );
        }
        self.wanted.store(true, Ordering::Release);
        Ok(())
    }

    /// Nobody needs it any more: the reader stops its thread and the slot is free.
    pub fn release(&self) {
        self.wanted.store(false, Ordering::Release);
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether the re-encode is wanted now (read by the reader before each video item).
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }
}

/// How long a re-encode nobody needs keeps running: a viewer who reloads the page (or
/// the next one) finds its pictures at once instead of waiting for a keyframe.
pub const REENCODE_LINGER: Duration = Duration::from_secs(5);

/// The translation task's side: told what is needed now, it wants or releases the
/// re-encode, releasing only after [`REENCODE_LINGER`] without need.
pub struct Follower {
    demand: Arc<ReencodeDemand>,
    unneeded_since: Option<Instant>,
    /// A failure to get the re-encode for a sink was said (once until it works).
    said: bool,
}

impl Follower {
    /// Follows `demand`.
    pub fn new(demand: Arc<ReencodeDemand>) -> Self {
        Follower {
            demand,
            unneeded_since: None,
            said: false,
        }
    }

    /// A viewer that needs the re-encode joins: the reason when it cannot be had.
    pub fn admit(&mut self) -> Result<(), StreamError> {
        self.demand.want()?;
        self.unneeded_since = None;
        Ok(())
    }

    /// What the stream needs at `now` (a viewer or a sink takes the re-encode).
    pub fn update(&mut self, needed: bool, now: Instant) {
        if needed {
            self.unneeded_since = None;
            if !self.demand.is_wanted() {
                match self.demand.want() {
                    Ok(()) => self.said = false,
                    Err(e) if !self.said => {
                        self.said = true;
                        warn!("a sink needs the video re-encoded, but: {e}");
                    }
                    Err(_) => {}
                }
            }
        } else if self.demand.is_wanted() {
            let since = *self.unneeded_since.get_or_insert(now);
            if now.duration_since(since) >= REENCODE_LINGER {
                self.demand.release();
                self.unneeded_since = None;
            }
        }
    }

    /// The stream ended.
    pub fn end(&mut self) {
        self.demand.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wish_holds_one_slot_until_released_and_a_disabled_one_says_why() {
        let demand = ReencodeDemand::new(0, None);
        assert!(!demand.is_wanted());
        demand.want().unwrap();
        demand.want().unwrap();
        assert!(demand.is_wanted());
        assert!(demand.busy.lock().unwrap().is_some());
        demand.release();
        assert!(!demand.is_wanted());
        assert!(demand.busy.lock().unwrap().is_none());
        let off = ReencodeDemand::new(0, Some("no: use HLS".into()));
        assert_eq!(off.want().unwrap_err().to_string(), "no: use HLS");
        assert!(!off.is_wanted());
    }

    #[test]
    fn the_re_encode_lingers_after_the_last_need_then_is_released() {
        let demand = Arc::new(ReencodeDemand::new(0, None));
        let mut follower = Follower::new(demand.clone());
        let t0 = Instant::now();
        follower.update(false, t0);
        assert!(!demand.is_wanted(), "nobody needs it: not started");
        follower.admit().unwrap();
        follower.update(true, t0);
        assert!(demand.is_wanted());
        follower.update(false, t0 + Duration::from_secs(1));
        follower.update(false, t0 + Duration::from_secs(5));
        assert!(demand.is_wanted(), "still within the linger");
        follower.update(false, t0 + Duration::from_secs(6));
        assert!(!demand.is_wanted(), "released after the linger");
        follower.update(true, t0 + Duration::from_secs(7));
        assert!(demand.is_wanted(), "a sink that needs it again gets it");
    }
}
