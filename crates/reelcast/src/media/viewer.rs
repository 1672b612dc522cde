//! A stream's viewers as the stream sees them, whatever protocol they came by: an id,
//! the protocol, what happens to them ([`ViewerEvent`]) and one way to let them go
//! ([`Carrier`]). The stream counts and ends viewers with this and nothing more; what
//! carries their media (the WebRTC hub for WCS SDK and WHEP viewers, `hls_http::readers` for HLS readers) stays on
//! its own side and implements [`Carrier`]. A carrier that finds a viewer's link too narrow
//! for the stream tells the viewer's signalling directly ([`LinkShort`] to
//! [`LinkNotices`]): the stream has nothing to do with it.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::ending::Ending;
use super::ids::ViewerId;

/// How a viewer came: the signalling that asked for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewerProtocol {
    /// The WCS WebSocket protocol (`@flashphoner/websdk`).
    Wcs,
    /// WHEP (`POST /whep/{name}`).
    Whep,
    /// HLS (`GET /{name}/{name}.m3u8` on `hls.port`): one reader, an address and a
    /// `User-Agent` (`hls_http::readers`).
    Hls,
}

impl ViewerProtocol {
    /// Its name in REST (`protocol`), metrics and logs: `wcs`, `whep`, `hls`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ViewerProtocol::Wcs => "wcs",
            ViewerProtocol::Whep => "whep",
            ViewerProtocol::Hls => "hls",
        }
    }
}

impl fmt::Display for ViewerProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a viewer, told by what carries it to the stream it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEvent {
    /// Its connection is up: media handed on from now on reaches it.
    Connected,
    /// The viewer is gone, and why.
    Closed(Ending),
}

/// Where a viewer's events go, each tagged with the viewer (a translation hears all of
/// its viewers on one channel).
pub type ViewerEvents = UnboundedSender<(ViewerId, ViewerEvent)>;

/// Where a stream hears its viewers' events.
pub type ViewerEventsRx = UnboundedReceiver<(ViewerId, ViewerEvent)>;

/// A viewer's link has carried less than its stream sends for a while: the stream's bit
/// rate to it and what its link carries, in bits per second, as its carrier measured them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkShort {
    /// The stream's payload bit rate to the viewer.
    pub sending_bps: u64,
    /// What the viewer's link carried of it.
    pub carries_bps: u64,
}

/// Who hears a viewer's [`LinkShort`]: its signalling, when that can tell the client (the
/// WCS SDK's `notEnoughBandwidth`). Called from the carrier's loop: must not block.
#[derive(Clone)]
pub struct LinkNotices(Arc<dyn Fn(LinkShort) + Send + Sync>);

impl LinkNotices {
    /// Notices that go to `tell`.
    pub fn new(tell: impl Fn(LinkShort) + Send + Sync + 'static) -> Self {
        LinkNotices(Arc::new(tell))
    }

    /// Tells one notice.
    pub fn tell(&self, short: LinkShort) {
        (self.0)(short);
    }
}

impl fmt::Debug for LinkNotices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkNotices")
    }
}

/// What a carrier tells whoever can move a viewer between renditions of its stream
/// (beyond WCS: the stream itself never sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveNote {
    /// The link has been too narrow for a while: a lower rendition, if there is one.
    Down(LinkShort),
    /// The link has been clean at the lower rate for a while: back to the parent stream.
    Up,
    /// The move asked last is done: the viewer now gets the stream it was moved to (from
    /// one of its keyframes on).
    Switched,
    /// The move asked last was given up (the target's feed ended before a keyframe).
    Abandoned,
}

/// Who hears a viewer's [`MoveNote`]s. Called from the carrier's loop: must not block.
#[derive(Clone)]
pub struct LinkMoves(Arc<dyn Fn(MoveNote) + Send + Sync>);

impl LinkMoves {
    /// Notes that go to `tell`.
    pub fn new(tell: impl Fn(MoveNote) + Send + Sync + 'static) -> Self {
        LinkMoves(Arc::new(tell))
    }

    /// Tells one note.
    pub fn tell(&self, note: MoveNote) {
        (self.0)(note);
    }
}

impl fmt::Debug for LinkMoves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkMoves")
    }
}

/// What carries viewers' media (the WebRTC hub), as a stream sees it: only how to let
/// one of them go.
pub trait Carrier: Send + Sync {
    /// Stops carrying `viewer`'s media and closes its connection; `ending` says why.
    fn let_go(&self, viewer: ViewerId, ending: Ending);
}

/// One viewer of a stream, as the stream holds it: made by whatever added the viewer to
/// its carrier, handed to the stream when it joins.
pub struct Viewer {
    id: ViewerId,
    protocol: ViewerProtocol,
    carrier: Arc<dyn Carrier>,
}

impl Viewer {
    /// Viewer `id`, come by `protocol`, carried by `carrier`.
    pub fn new(id: ViewerId, protocol: ViewerProtocol, carrier: Arc<dyn Carrier>) -> Self {
        Viewer {
            id,
            protocol,
            carrier,
        }
    }

    /// Which viewer this is (its events come tagged with it).
    pub fn id(&self) -> ViewerId {
        self.id
    }

    /// The protocol it came by.
    pub fn protocol(&self) -> ViewerProtocol {
        self.protocol
    }

    /// Takes the viewer off its carrier: no more media reaches it.
    pub fn leave(self, ending: Ending) {
        self.carrier.let_go(self.id, ending);
    }
}

/// What tests of streams hand them as a viewer's carrier.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use super::{Carrier, Viewer, ViewerId, ViewerProtocol};
    use crate::media::Ending;

    /// A carrier that notes whom it let go and why, in order.
    #[derive(Default)]
    pub(crate) struct NotingCarrier(pub(crate) Mutex<Vec<(ViewerId, Ending)>>);

    impl NotingCarrier {
        /// A new viewer on this carrier.
        pub(crate) fn viewer(self: &Arc<Self>, protocol: ViewerProtocol) -> Viewer {
            Viewer::new(ViewerId::next(), protocol, self.clone())
        }

        /// Whom it has let go so far, and why.
        pub(crate) fn released(&self) -> Vec<(ViewerId, Ending)> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Carrier for NotingCarrier {
        fn let_go(&self, viewer: ViewerId, ending: Ending) {
            self.0.lock().unwrap().push((viewer, ending));
        }
    }
}
