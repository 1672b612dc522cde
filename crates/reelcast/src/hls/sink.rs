//! The HLS muxer as a stream's [`Sink`]: frames go through the [`Segmenter`] into the
//! stream's [`Window`], in the stream's task (a part is a copy of its frames' bytes and a
//! few boxes: no waiting, no I/O). Readers are served from the window by the HTTP side.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::directory::Directory;
use super::segmenter::Segmenter;
use super::window::Window;
use crate::media::{Ending, Frame, Sink};

/// One stream's HLS muxer.
pub struct HlsSink {
    segmenter: Segmenter,
    window: Arc<Window>,
    directory: Arc<Directory>,
    id: String,
}

impl HlsSink {
    /// The muxer of the stream listed as `id` in `directory`, writing to `window`.
    pub fn new(
        segmenter: Segmenter,
        window: Arc<Window>,
        directory: Arc<Directory>,
        id: String,
    ) -> Self {
        HlsSink {
            segmenter,
            window,
            directory,
            id,
        }
    }
}

impl Sink for HlsSink {
    fn start(&mut self, epoch: Instant) {
        let ago = Instant::now().saturating_duration_since(epoch);
        self.window.set_wall_epoch(
            SystemTime::now()
                .checked_sub(ago)
                .unwrap_or_else(SystemTime::now),
        );
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        let mut cuts = Vec::new();
        for frame in std::iter::once(&first).chain(second.as_ref()) {
            self.segmenter.push(frame, &mut cuts);
        }
        self.window.add(cuts);
    }

    fn end(&mut self, _ending: &Ending) {
        let mut cuts = Vec::new();
        self.segmenter.finish(&mut cuts);
        self.window.add(cuts);
        self.window.end();
        self.directory.ended(&self.id);
    }

    fn last_read(&self) -> Option<Instant> {
        self.window.last_read()
    }
}
