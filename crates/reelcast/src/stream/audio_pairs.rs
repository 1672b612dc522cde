//! Audio leaves a stream for its sinks two frames at a time.
//!
//! Why: an Opus frame lasts 20 ms, so audio alone is 50 packets a second to every viewer,
//! more than the 30 pictures of the video. Sent one by one, each is one message through
//! the kernel's UDP stack per viewer, and that walk is most of what a viewer costs the
//! server. Two audio packets of equal size to one viewer, queued back to back, leave as one
//! segmented message (`webrtc::outbox`); the transcoder's Opus is constant-bitrate so its
//! packets are. The first of a pair waits for the second, 20 ms: a browser's jitter buffer
//! takes that in its stride, and audio leaves ahead of its time by more than that
//! ([`super::pacer::AUDIO_LEAD_US`]), so the first of a pair still arrives early.
//!
//! Sans-IO: callers pass `now` and send what they are handed. A frame is never held longer
//! than [`MAX_HOLD`], so a gap in the audio, a last frame or a file with longer audio
//! frames costs at most that much delay; [`AudioPairs::flush`] hands back what is held at the
//! end of the frames.

use std::time::{Duration, Instant};

use crate::media::Sink;
use crate::media::{Frame, MediaKind};

/// How long the first frame of a pair may wait for the second: one 20 ms Opus frame and
/// room for a late timer.
pub const MAX_HOLD: Duration = Duration::from_millis(30);

/// What to send to the sinks now.
#[derive(Debug)]
pub enum Release {
    /// Nothing: the frame is held for a partner.
    Held,
    /// One frame, alone.
    One(Frame),
    /// Two audio frames, in this order.
    Pair(Frame, Frame),
}

impl Release {
    /// Hands the released frames to the sinks; a pair together (the WebRTC feed sends
    /// it to each viewer back to back).
    pub fn send(self, sink: &mut dyn Sink) {
        match self {
            Release::Held => {}
            Release::One(frame) => sink.frames(frame, None),
            Release::Pair(first, second) => sink.frames(first, Some(second)),
        }
    }
}

/// The audio frame waiting for its partner, if any.
#[derive(Debug, Default)]
pub struct AudioPairs {
    held: Option<(Frame, Instant)>,
}

impl AudioPairs {
    /// `frame` is due at `now`: what goes out. Video goes at once; audio waits for a partner.
    pub fn due(&mut self, frame: Frame, now: Instant) -> Release {
        if frame.kind != MediaKind::Audio {
            return Release::One(frame);
        }
        if let Some((first, _)) = self.held.take() {
            Release::Pair(first, frame)
        } else {
            self.held = Some((frame, now + MAX_HOLD));
            Release::Held
        }
    }

    /// When the held frame must go out alone.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.as_ref().map(|(_, deadline)| *deadline)
    }

    /// The held frame, to send alone (its deadline passed, or no more frames will come).
    pub fn flush(&mut self) -> Option<Frame> {
        self.held.take().map(|(frame, _)| frame)
    }

    /// Sends the held frame alone, if there is one.
    pub fn flush_to(&mut self, sink: &mut dyn Sink) {
        if let Some(frame) = self.flush() {
            sink.frames(frame, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: MediaKind, t_ms: i64) -> Frame {
        Frame {
            kind,
            dts_us: t_ms * 1000,
            pts_us: t_ms * 1000,
            keyframe: true,
            data: vec![0u8; 4].into(),
        }
    }

    fn times(release: &Release) -> Vec<i64> {
        match release {
            Release::Held => vec![],
            Release::One(f) => vec![f.pts_us / 1000],
            Release::Pair(a, b) => vec![a.pts_us / 1000, b.pts_us / 1000],
        }
    }

    #[test]
    fn audio_goes_in_pairs_and_video_at_once() {
        let now = Instant::now();
        let mut pairs = AudioPairs::default();
        assert!(matches!(
            pairs.due(frame(MediaKind::Audio, 0), now),
            Release::Held
        ));
        assert_eq!(pairs.deadline(), Some(now + MAX_HOLD));
        let video = pairs.due(frame(MediaKind::Video, 10), now);
        assert_eq!(times(&video), vec![10]);
        let pair = pairs.due(frame(MediaKind::Audio, 20), now);
        assert_eq!(times(&pair), vec![0, 20]);
        assert_eq!(pairs.deadline(), None);
        assert!(pairs.flush().is_none());
    }

    #[test]
    fn a_frame_without_partner_is_handed_back() {
        let now = Instant::now();
        let mut pairs = AudioPairs::default();
        let _ = pairs.due(frame(MediaKind::Audio, 40), now);
        assert_eq!(pairs.flush().map(|f| f.pts_us), Some(40_000));
        assert_eq!(pairs.deadline(), None);
        // After a flush the next audio frame starts a new pair.
        assert!(matches!(
            pairs.due(frame(MediaKind::Audio, 60), now),
            Release::Held
        ));
    }
}
