//! The HLS muxer as a stream's [`Sink`]: frames go through the [`Segmenter`] into the
//! stream's [`Window`], in the stream's task (a part is a copy of its frames' bytes and a
//! few boxes: no waiting, no I/O). Readers are served from the window by the HTTP side.
//! For a file with B-frames it carries the file's own pictures ([`Sink::source_video`]),
//! never their re-encode, unless told to carry the re-encode (then it needs one).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::directory::Directory;
use super::segmenter::Segmenter;
use super::window::Window;
use crate::media::{Ending, Frame, MediaKind, Sink};

/// One stream's HLS muxer.
pub struct HlsSink {
    segmenter: Segmenter,
    window: Arc<Window>,
    directory: Arc<Directory>,
    id: String,
    /// Carries the file's own H.264 ([`Sink::source_video`]) rather than the stream's
    /// `Video` frames (its re-encode).
    source_video: bool,
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
            source_video: false,
        }
    }

    /// Carry the file's own H.264 pictures the stream hands out beside their re-encode
    /// (a file with B-frames: HLS players reorder them), not the re-encode.
    pub fn take_source_video(&mut self) {
        self.source_video = true;
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
            // The re-encode is WebRTC's when the file's own pictures come.
            if self.source_video && frame.kind == MediaKind::Video {
                continue;
            }
            self.segmenter.push(frame, &mut cuts);
        }
        self.window.add(cuts);
    }

    fn source_video(&mut self, picture: Frame) {
        if self.source_video {
            let mut cuts = Vec::new();
            self.segmenter.push(&picture, &mut cuts);
            self.window.add(cuts);
        }
    }

    fn needs_reencode(&self) -> bool {
        !self.source_video
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
