//! Where a stream's frames go: a [`Sink`]. A stream has one source and any number of
//! sinks; each sink is told when the stream's clock starts, gets every frame when it is
//! due (in order, on the stream's timeline), and is told how the stream ended.
//!
//! A sink knows frames and the clock, never where they came from nor the other sinks.
//! The WebRTC feed (`webrtc::RtcFeed`, made for each stream by `webrtc::RtcFeeds`, the
//! registry's [`SinkFactory`] for it) is the first; an HLS muxer or a recorder is one
//! more module implementing this and one line where the registry makes a stream's
//! sinks (`stream::Registry::sinks_for`). Nothing in a stream or a source changes.
//!
//! Called from the stream's task: a sink must not block (hand work to a task or a
//! channel, as the WebRTC feed does).

use std::time::Instant;

use super::ending::Ending;
use super::frame::Frame;
use super::ids::StreamId;

/// One consumer of a stream's frames.
pub trait Sink: Send {
    /// The stream's clock runs: stream time 0 is `epoch`. May come again (a personal
    /// VOD's clock starts only when its viewer connects): the latest one holds.
    fn start(&mut self, epoch: Instant);

    /// Frames falling due now, in decode order. Two come together when they should
    /// leave back to back (an audio pair, `stream::audio_pairs`).
    fn frames(&mut self, first: Frame, second: Option<Frame>);

    /// The frames of the GOP in progress, given at once to a sink attached to a running
    /// stream (`media::attach`), before any frame that falls due after. By default they
    /// go as [`Self::frames`]; a sink with a bounded queue takes them as one batch.
    fn preroll(&mut self, frames: &[Frame]) {
        for f in frames {
            self.frames(f.clone(), None);
        }
    }

    /// A picture of the file's own H.264 (decode order, Annex-B, its composition offset
    /// in `pts_us - dts_us`), for a stream whose `Video` frames are a re-encode of it
    /// (H.264 with B-frames: browsers' WebRTC decoders do not reorder). A sink whose
    /// players reorder (HLS) carries these instead of the re-encode; the others ignore
    /// them (the default). Comes among [`Self::frames`] at its decode time.
    fn source_video(&mut self, _picture: Frame) {}

    /// True when this sink takes the stream's `Video` frames whoever watches, so a
    /// stream whose video is re-encoded only on demand (a translation of an H.264 file
    /// with B-frames) must re-encode while it is there: a recording or a rendition
    /// attached, an HLS muxer that carries the re-encode. The WebRTC feed keeps the
    /// default (`false`): its need is its viewers', which the stream counts.
    fn needs_reencode(&self) -> bool {
        false
    }

    /// The stream ended; nothing more comes.
    fn end(&mut self, ending: &Ending);

    /// When a reader of this sink that is not a listed viewer (an HLS player fetching
    /// playlists) last asked for the stream; `None`: never, or the sink has no such
    /// readers. A translation with no viewer stays up while this is recent.
    fn last_read(&self) -> Option<Instant> {
        None
    }
}

/// Makes one kind of sink for each new stream. The registry is handed one by whatever
/// owns that kind of sink (the WebRTC feeds), so streams never name it.
pub trait SinkFactory: Send + Sync {
    /// The sink of the new stream `stream`.
    fn sink(&self, stream: StreamId) -> Box<dyn Sink>;

    /// The sink of the new stream `stream` whose video frames are VP8 (a rendition for
    /// browsers without H.264). A sink that does not look into video bytes may keep the
    /// default, its usual sink.
    fn vp8_sink(&self, stream: StreamId) -> Box<dyn Sink> {
        self.sink(stream)
    }
}

/// Every sink of a stream, fed as one. Each frame is handed to each sink (a `Frame`
/// clone shares its bytes: nothing is copied).
#[derive(Default)]
pub struct Sinks(Vec<Box<dyn Sink>>);

impl Sinks {
    /// The stream's sinks, fed in this order.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Sinks(sinks)
    }

    /// Adds a sink, fed after the others.
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.0.push(sink);
    }

    /// How many sinks there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No sinks at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Sink for Sinks {
    fn start(&mut self, epoch: Instant) {
        for sink in &mut self.0 {
            sink.start(epoch);
        }
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        // The last sink takes the frames themselves; the others get clones.
        let Some((last, others)) = self.0.split_last_mut() else {
            return;
        };
        for sink in others {
            sink.frames(first.clone(), second.clone());
        }
        last.frames(first, second);
    }

    fn source_video(&mut self, picture: Frame) {
        for sink in &mut self.0 {
            sink.source_video(picture.clone());
        }
    }

    fn needs_reencode(&self) -> bool {
        self.0.iter().any(|s| s.needs_reencode())
    }

    fn end(&mut self, ending: &Ending) {
        for sink in &mut self.0 {
            sink.end(ending);
        }
    }

    fn last_read(&self) -> Option<Instant> {
        self.0.iter().filter_map(|s| s.last_read()).max()
    }
}
