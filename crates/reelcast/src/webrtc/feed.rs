//! The WebRTC side of a stream: its feed as a [`Sink`] (the stream's frames go to the
//! hub, which fans each out to the feed's viewers), and browsers added to it as the
//! stream's [`Viewer`]s. The stream that feeds it and holds its viewers knows nothing of
//! WebRTC: it is handed [`RtcFeeds`] as a [`SinkFactory`], and viewers that the hub
//! lets go of through [`Carrier`]. A browser that publishes is handed to the stream as a
//! [`Publisher`] ([`RtcFeeds::add_publisher`]), whose control asks the hub for keyframes
//! and closes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::hub::RtcHub;
use super::ids::FeedId;
use super::packets::VideoCodec;
use super::publisher_peer::FRAME_QUEUE;
use super::rtc_factory::Accepted;
use super::viewer::ViewerPlan;
use crate::media::{
    Carrier, Ending, Frame, MediaKind, Publisher, PublisherControl, Sink, SinkFactory, StreamId,
    Viewer, ViewerEvents, ViewerId, ViewerProtocol,
};

/// One stream's feed in the hub. Viewers are added to `feed` by whoever answers them.
pub struct RtcFeed {
    hub: RtcHub,
    feed: FeedId,
    /// How the stream's video frames are cut into RTP payloads.
    video: VideoCodec,
}

impl RtcFeed {
    /// The sink for `feed` of H.264 video; the feed opens when the stream's clock starts.
    pub fn new(hub: RtcHub, feed: FeedId) -> Self {
        Self::with_video(hub, feed, VideoCodec::H264)
    }

    /// The sink for `feed` whose video frames are `video` (a VP8 rendition's).
    pub fn with_video(hub: RtcHub, feed: FeedId, video: VideoCodec) -> Self {
        RtcFeed { hub, feed, video }
    }
}

impl Sink for RtcFeed {
    fn start(&mut self, epoch: Instant) {
        self.hub.open_feed(self.feed, epoch);
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        // AAC is for other sinks (HLS): viewers get the Opus made from it. AAC frames
        // come alone (only Opus is paired).
        if first.kind == MediaKind::Aac {
            return;
        }
        self.hub.send_frames(self.feed, first, second, self.video);
    }

    fn end(&mut self, _ending: &Ending) {
        // Viewers are told by their stream; the feed only stops.
        self.hub.close_feed(self.feed);
    }
}

/// Every stream's WebRTC feed and the browsers on it: makes each stream's [`RtcFeed`]
/// (the registry's [`SinkFactory`] for WebRTC) and adds answered browsers to a stream's
/// feed as its viewers. Cheap to clone.
#[derive(Clone)]
pub struct RtcFeeds {
    hub: RtcHub,
}

impl RtcFeeds {
    /// Feeds and viewers on `hub`.
    pub fn new(hub: RtcHub) -> Self {
        RtcFeeds { hub }
    }

    /// Opens `stream`'s feed now, before its clock starts (a personal VOD starts its clock
    /// when its viewer connects, and the hub sends a viewer nothing from a feed it does
    /// not know); the clock's start moves the feed's epoch.
    pub fn open_early(&self, stream: StreamId) {
        self.hub.open_feed(FeedId::from(stream), Instant::now());
    }

    /// Adds the browser answered with `accepted` as a viewer of `stream`: it gets the
    /// stream's feed, and its events (connected, closed) go to `events`. What the stream
    /// holds of it is the returned [`Viewer`].
    pub fn add_viewer(
        &self,
        stream: StreamId,
        accepted: Accepted,
        plan: ViewerPlan,
        protocol: ViewerProtocol,
        events: ViewerEvents,
    ) -> Viewer {
        let id = ViewerId::next();
        self.hub
            .add_viewer(id, FeedId::from(stream), accepted, plan, events);
        Viewer::new(id, protocol, Arc::new(self.clone()))
    }
}

impl RtcFeeds {
    /// Moves `viewer` to `stream`'s feed at its next keyframe, seamlessly for the browser
    /// (same tracks, sequence numbers going on, RTP time forward); its events go to
    /// `events` from then on, and it hears [`MoveNote::Switched`](crate::media::MoveNote)
    /// when done. `down`: to a lower rendition (else back up), for the counts.
    pub fn move_viewer(
        &self,
        viewer: ViewerId,
        stream: StreamId,
        events: ViewerEvents,
        down: bool,
    ) {
        self.hub
            .move_viewer(viewer, FeedId::from(stream), events, down);
    }
}

impl RtcFeeds {
    /// Takes the browser answered with
    /// [`accept_publisher_offer`](super::RtcFactory::accept_publisher_offer) as a publisher:
    /// its media, received by the hub, comes out of the returned [`Publisher`] as frames
    /// timed from when its offer was answered. `rtp_timeout`
    /// ([`Settings::publisher_rtp_timeout`](crate::config::Settings)) without media, or without a connection, closes it with `Failed by RTP
    /// activity` (`Failed by ICE timeout` before it connected).
    pub fn add_publisher(&self, accepted: Accepted, rtp_timeout: Duration) -> Publisher {
        let id = ViewerId::next();
        let (tx, rx) = mpsc::channel(FRAME_QUEUE);
        self.hub.add_publisher(id, accepted, tx, rtp_timeout);
        let control = PublisherHandle {
            hub: self.hub.clone(),
            id,
        };
        Publisher::new(id, rx, Arc::new(control))
    }
}

/// A publisher's control, as its stream holds it: requests and closes go to the hub.
struct PublisherHandle {
    hub: RtcHub,
    id: ViewerId,
}

impl PublisherControl for PublisherHandle {
    fn request_keyframe(&self) {
        self.hub.request_publisher_keyframe(self.id);
    }

    fn close(&self, ending: Ending) {
        self.hub.remove_publisher(self.id, ending);
    }
}

impl SinkFactory for RtcFeeds {
    fn sink(&self, stream: StreamId) -> Box<dyn Sink> {
        Box::new(RtcFeed::new(self.hub.clone(), FeedId::from(stream)))
    }

    fn vp8_sink(&self, stream: StreamId) -> Box<dyn Sink> {
        Box::new(RtcFeed::with_video(
            self.hub.clone(),
            FeedId::from(stream),
            VideoCodec::Vp8,
        ))
    }
}

impl Carrier for RtcFeeds {
    fn let_go(&self, viewer: ViewerId, ending: Ending) {
        self.hub.remove_viewer(viewer, ending);
    }
}
