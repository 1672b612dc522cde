//! The WebRTC feed as a stream's [`Sink`]: the stream's frames go to the hub, which
//! fans each out to the feed's viewers. The first sink; it lives beside the hub so the
//! stream that feeds it knows nothing of WebRTC.

use std::time::Instant;

use super::hub::RtcHub;
use super::ids::FeedId;
use crate::media::{Ending, Frame, MediaKind, Sink};

/// One stream's feed in the hub. Viewers are added to `feed` by whoever answers them.
pub struct RtcFeed {
    hub: RtcHub,
    feed: FeedId,
}

impl RtcFeed {
    /// The sink for `feed`; the feed opens when the stream's clock starts.
    pub fn new(hub: RtcHub, feed: FeedId) -> Self {
        RtcFeed { hub, feed }
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
        self.hub.send_frames(self.feed, first, second);
    }

    fn end(&mut self, _ending: &Ending) {
        // Viewers are told by their stream; the feed only stops.
        self.hub.close_feed(self.feed);
    }
}
