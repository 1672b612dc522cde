//! When each frame of a stream goes to its sinks: the frame read next waits for its due
//! time on the stream clock ([`PacingClock`]), and audio then waits for its partner
//! ([`AudioPairs`]). Both stream tasks (personal VOD and live translation) pace through
//! this, so they have one timer for it: [`Pacer::wake_at`].
//!
//! A frame is due at its `dts`; the reader makes an audio frame's `dts` its time less
//! [`AUDIO_LEAD_US`], so audio leaves ahead of the pictures of the same time (see there).

use std::time::Instant;

use super::audio_pairs::AudioPairs;
use super::frame_queue::Routed;
use super::PacingClock;
use crate::media::Sink;

/// How long before its time an audio packet leaves. RTP timestamps and sender reports
/// stay exact; only the send time moves. Why: a browser holds audio longer than video
/// before playing it (Chromium: the audio jitter buffer's 40-60 ms, 20 ms of it for a
/// packet's length, plus the 20 ms a packet waits for its partner here, against ~10 ms
/// for pictures), and its A/V sync closes such a gap only by about an eighth a second
/// (and not at all below 30 ms). Sent at the same stream time, the sound of the first
/// ~10 s came 50-60 ms after its picture; sent this much earlier it arrives with the
/// lead the browser then spends buffering it, and is in sync from the first second
/// (measured: tests/e2e/lipsync.test.mjs, docs/DESIGN.md "Pacing and A/V sync").
pub const AUDIO_LEAD_US: i64 = 80_000;

/// The frame waiting for its time, the audio frame waiting for its partner, and what has
/// gone out so far.
pub struct Pacer {
    clock: PacingClock,
    next: Option<Routed>,
    pairs: AudioPairs,
    last_pts_us: i64,
}

impl Pacer {
    /// A pacer sending frames when `clock` says they are due.
    pub fn new(clock: PacingClock) -> Self {
        Pacer {
            clock,
            next: None,
            pairs: AudioPairs::default(),
            last_pts_us: 0,
        }
    }

    /// True when the next frame from the reader may be given ([`Self::put`]).
    pub fn wants_frame(&self) -> bool {
        self.next.is_none()
    }

    /// The next frame in decode order; it goes out at its due time.
    pub fn put(&mut self, frame: Routed) {
        debug_assert!(self.next.is_none(), "a frame is already waiting");
        self.next = Some(frame);
    }

    /// When [`Self::wake`] has something to do: a frame falls due, or a held audio frame
    /// must go out alone.
    pub fn wake_at(&self) -> Option<Instant> {
        let due = self.next.as_ref().map(|f| self.clock.due(f.frame.dts_us));
        match (due, self.pairs.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends what is due at `now`: the waiting frame (an audio frame paired with the held
    /// one if there is one), then a held audio frame whose partner is late.
    pub fn wake(&mut self, now: Instant, sink: &mut dyn Sink) {
        if self
            .next
            .as_ref()
            .is_some_and(|f| self.clock.due(f.frame.dts_us) <= now)
        {
            let Routed {
                frame,
                source_video,
            } = self.next.take().expect("checked above");
            self.last_pts_us = self.last_pts_us.max(frame.pts_us);
            if source_video {
                // A picture, never paired.
                sink.source_video(frame);
            } else {
                self.pairs.due(frame, now).send(sink);
            }
        }
        if self.pairs.deadline().is_some_and(|d| d <= now) {
            self.pairs.flush_to(sink);
        }
    }

    /// No more frames will come: a held audio frame goes out alone now.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.pairs.flush_to(sink);
    }

    /// The latest presentation time sent so far.
    pub fn last_pts_us(&self) -> i64 {
        self.last_pts_us
    }
}
