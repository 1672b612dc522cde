//! A recording as a stream's [`Sink`]: each frame is handed to the recording's writer
//! thread with `try_send`, so the stream's task never waits on the disk. A full channel
//! (a disk that cannot keep up) stops the recording, never the stream; the end of the
//! stream, or a stop, drops the sender, which the writer takes as its end.
//!
//! A recording of a stream that makes keyframes on request (a publisher) skips the GOP
//! in progress its slot hands over when it is attached ([`Begin::NextKeyframe`]): it
//! begins at the keyframe asked for, when the recording was asked for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use super::writer::RecordingState;
use crate::media::{Ending, Frame, Sink};

/// Where a recording begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// At the GOP in progress (the slot's pre-roll), so it has a picture at once: for a
    /// stream read from a file, which cannot make a keyframe when asked.
    GopInProgress,
    /// At the next keyframe: for a publisher, which is asked for one as the recording
    /// starts. Its GOP in progress may have begun seconds before the recording was asked
    /// for (a browser sends keyframes only when asked), and would be recorded too.
    NextKeyframe,
}

/// The sink end of one recording.
pub struct RecordSink {
    tx: Option<SyncSender<Frame>>,
    state: Arc<RecordingState>,
    /// False while frames are dropped: during `SinkSlot::attach`, which hands the
    /// pre-roll over before it returns, under [`Begin::NextKeyframe`].
    taking: Arc<AtomicBool>,
}

impl RecordSink {
    /// The sink and, when it starts by dropping frames ([`Begin::NextKeyframe`]), the
    /// switch to set once it is attached.
    pub(crate) fn new(
        tx: SyncSender<Frame>,
        state: Arc<RecordingState>,
        begin: Begin,
    ) -> (Self, Arc<AtomicBool>) {
        let taking = Arc::new(AtomicBool::new(begin == Begin::GopInProgress));
        let sink = RecordSink {
            tx: Some(tx),
            state,
            taking: taking.clone(),
        };
        (sink, taking)
    }

    fn send(&mut self, frame: Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
        if !self.taking.load(Ordering::Acquire) {
            return;
        }
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.state
                    .fail("the disk could not keep up (the write queue was full)");
                self.tx = None;
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }
}

impl Sink for RecordSink {
    fn start(&mut self, _epoch: Instant) {}

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        self.send(first);
        if let Some(second) = second {
            self.send(second);
        }
    }

    fn end(&mut self, _ending: &Ending) {
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaKind, SinkSlot, StopReason};
    use std::sync::mpsc::sync_channel;

    fn picture(t: i64, keyframe: bool) -> Frame {
        Frame {
            kind: MediaKind::Video,
            dts_us: t,
            pts_us: t,
            keyframe,
            data: Arc::from(&b"x"[..]),
        }
    }

    /// What a recording attached after keyframe 0 and picture 1 receives, then 2 and 3.
    fn received(begin: Begin) -> Vec<i64> {
        let (slot, mut stream) = SinkSlot::new();
        stream.start(Instant::now());
        stream.frames(picture(0, true), None);
        stream.frames(picture(1, false), None);
        let (tx, rx) = sync_channel(16);
        let (sink, taking) = RecordSink::new(tx, RecordingState::new("r.mp4".into()), begin);
        slot.attach(Box::new(sink)).ok().unwrap();
        taking.store(true, Ordering::Release);
        stream.frames(picture(2, false), None);
        stream.frames(picture(3, true), None);
        stream.end(&Ending::Stopped(StopReason::ByUser));
        rx.iter().map(|f| f.dts_us).collect()
    }

    #[test]
    fn a_publishers_recording_skips_the_gop_in_progress_a_files_keeps_it() {
        assert_eq!(received(Begin::GopInProgress), [0, 1, 2, 3]);
        assert_eq!(received(Begin::NextKeyframe), [2, 3]);
    }
}
