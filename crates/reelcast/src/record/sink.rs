//! A recording as a stream's [`Sink`]: each frame is handed to the recording's writer
//! thread with `try_send`, so the stream's task never waits on the disk. A full channel
//! (a disk that cannot keep up) stops the recording, never the stream; the end of the
//! stream, or a stop, drops the sender, which the writer takes as its end.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use super::writer::RecordingState;
use crate::media::{Ending, Frame, Sink};

/// The sink end of one recording.
pub struct RecordSink {
    tx: Option<SyncSender<Frame>>,
    state: Arc<RecordingState>,
}

impl RecordSink {
    pub(crate) fn new(tx: SyncSender<Frame>, state: Arc<RecordingState>) -> Self {
        RecordSink {
            tx: Some(tx),
            state,
        }
    }

    fn send(&mut self, frame: Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
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
