//! What happens to a viewer, as the hub and the viewer tell whoever added it. Below the
//! hub and its viewers, which both send these.

use tokio::sync::mpsc::UnboundedSender;

use super::ids::ViewerId;
use crate::media::Ending;

/// What happens to a viewer, told to whoever added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEvent {
    /// ICE and DTLS are up: media written from now on reaches the browser.
    Connected,
    /// The viewer is gone, and why.
    Closed(Ending),
}

/// Where a viewer's events go, each tagged with the viewer (a translation hears all of
/// its viewers on one channel).
pub type ViewerEvents = UnboundedSender<(ViewerId, ViewerEvent)>;
