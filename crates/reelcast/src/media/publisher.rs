//! A live source as a stream sees it: a [`Publisher`], a browser (WCS `publishStream`,
//! WHIP) or any other sender whose frames arrive when it sends them. What receives its
//! media (the WebRTC hub: ICE, DTLS, SRTP, jitter buffer, depacketizer, NACK, receiver
//! feedback) stays on its own side and implements [`PublisherControl`]; the published
//! stream (`stream::published`) only reads [`PublisherEvent`]s and feeds its sinks.

use std::sync::Arc;

use tokio::sync::mpsc::Receiver;

use super::ending::Ending;
use super::frame::Frame;
use super::ids::ViewerId;

/// What happens to a publisher, in order.
#[derive(Debug)]
pub enum PublisherEvent {
    /// Its connection is up: frames follow.
    Connected,
    /// One frame as it arrived, whole and in order for its track: an H.264 picture in
    /// Annex-B form (a keyframe carries SPS/PPS in front, as sinks expect) or one Opus
    /// packet. Times are microseconds since the `epoch` the publisher was made with (the
    /// time its offer was answered), on one clock for both tracks; a picture's `dts_us`
    /// equals its `pts_us` (browsers send no B-frames).
    Frame(Frame),
    /// The publisher is gone, and why (its session closed, `Failed by RTP activity` after
    /// silence, ICE or DTLS failed). Nothing follows.
    Closed(Ending),
}

/// What a stream can ask of whatever receives a publisher's media.
pub trait PublisherControl: Send + Sync {
    /// Asks the sender for a keyframe (PLI/FIR), rate-limited on the receiving side: a
    /// new viewer or a recorder starting needs one.
    fn request_keyframe(&self);
    /// Stops receiving and closes the connection; `ending` says why. No more events come
    /// after a `Closed`.
    fn close(&self, ending: Ending);
}

/// One publisher, as a published stream holds it.
pub struct Publisher {
    id: ViewerId,
    events: Receiver<PublisherEvent>,
    control: Arc<dyn PublisherControl>,
}

impl Publisher {
    /// Publisher `id` (one id space with viewers), whose events come on `events`.
    pub fn new(
        id: ViewerId,
        events: Receiver<PublisherEvent>,
        control: Arc<dyn PublisherControl>,
    ) -> Self {
        Publisher {
            id,
            events,
            control,
        }
    }

    /// Which publisher this is.
    pub fn id(&self) -> ViewerId {
        self.id
    }

    /// The next event; `None` once the receiving side has dropped its sender (treat as
    /// closed).
    pub async fn next(&mut self) -> Option<PublisherEvent> {
        self.events.recv().await
    }

    /// The control side, to share with whoever needs keyframes.
    pub fn control(&self) -> Arc<dyn PublisherControl> {
        self.control.clone()
    }

    /// Asks for a keyframe.
    pub fn request_keyframe(&self) {
        self.control.request_keyframe();
    }

    /// Closes the publisher from our side.
    pub fn close(self, ending: Ending) {
        self.control.close(ending);
    }
}
