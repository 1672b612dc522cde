//! The viewer door of a shared stream (a live translation, a published stream, a
//! rendition): the one way its viewers come in, leave, or are handed over to another
//! stream, and the count of those inside.
//!
//! The handle side, [`ViewerDoor`], is the same for every shared stream. The task side,
//! [`Entrance`], gives the stream's task what came through the door; how a stream admits
//! a viewer, counts its idle time or asks for keyframes stays in its task. At the end,
//! [`Entrance::close_into`] shuts the door so no viewer is lost between the last command
//! and the end: a join queued behind the end joins the audience that is then let go.
//!
//! Owns: the door's channels, the viewer count handles read, and what a viewer arriving
//! after the end is told. Must not: know what a stream plays or what carries a viewer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::audience::{Audience, HandOver, HandedOver};
use super::status::PlayTicket;
use crate::media::{StopReason, Viewer, ViewerEvents, ViewerEventsRx, ViewerId};

/// What comes through a shared stream's door, for its task.
pub(super) enum DoorCommand {
    /// A viewer already given to its carrier; its statuses go through `ticket`.
    Join { viewer: Viewer, ticket: PlayTicket },
    /// A viewer leaves; it gets STOPPED with `reason`.
    Leave {
        viewer: ViewerId,
        reason: StopReason,
    },
    /// Hand this viewer over, still carried and playing, to another stream.
    HandOver { viewer: ViewerId, to: HandOver },
}

/// The handle side of a shared stream's door (cloned into every handle of the stream).
#[derive(Clone)]
pub struct ViewerDoor {
    commands: UnboundedSender<DoorCommand>,
    events: ViewerEvents,
    count: Arc<AtomicUsize>,
    /// What a viewer who comes after the end is told.
    closed_reason: StopReason,
}

/// The task side of a shared stream's door.
pub(super) struct Entrance {
    /// Joins, leaves and hand-overs.
    pub(super) commands: UnboundedReceiver<DoorCommand>,
    /// What the viewers' carriers report (connected, closed).
    pub(super) events: ViewerEventsRx,
}

/// A new door: its handle side, its task side, and the audience behind it (which keeps
/// the count the handles read). A viewer who comes after the end is told `closed_reason`.
pub(super) fn open(closed_reason: StopReason) -> (ViewerDoor, Entrance, Audience) {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (events, event_rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    let door = ViewerDoor {
        commands,
        events,
        count: count.clone(),
        closed_reason,
    };
    let entrance = Entrance {
        commands: command_rx,
        events: event_rx,
    };
    (door, entrance, Audience::new(count))
}

impl ViewerDoor {
    /// True once the stream has ended (nobody can join any more).
    pub fn is_ended(&self) -> bool {
        self.commands.is_closed()
    }

    /// Viewers watching now.
    pub fn viewer_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Where a viewer's carrier reports its events (connected, closed), given when the
    /// viewer is added to it.
    pub fn viewer_events(&self) -> ViewerEvents {
        self.events.clone()
    }

    /// Adds a viewer already given to its carrier (its events going to
    /// [`Self::viewer_events`]); its statuses go through `ticket`. `false` when the stream
    /// has just ended (the viewer is let go and the ticket dropped).
    pub(crate) fn join(&self, viewer: Viewer, ticket: PlayTicket) -> bool {
        match self.commands.send(DoorCommand::Join { viewer, ticket }) {
            Ok(()) => true,
            Err(mpsc::error::SendError(command)) => {
                if let DoorCommand::Join { viewer, .. } = command {
                    viewer.leave(self.closed_reason.into());
                }
                false
            }
        }
    }

    /// Removes a viewer; it gets STOPPED with `reason`.
    pub(crate) fn leave(&self, viewer: ViewerId, reason: StopReason) {
        let _ = self.commands.send(DoorCommand::Leave { viewer, reason });
    }

    /// Hands `viewer` over, still carried and playing, to join another stream (a viewer
    /// moved between renditions): it comes out of the returned receiver, or nothing
    /// comes when it is not here.
    pub(crate) fn hand_over(&self, viewer: ViewerId) -> HandedOver {
        let (to, rx) = tokio::sync::oneshot::channel();
        let _ = self.commands.send(DoorCommand::HandOver { viewer, to });
        rx
    }
}

impl Entrance {
    /// Shuts the door at the stream's end: from now on a join fails at once. A viewer
    /// whose join was already queued joins `audience`, to be let go with everyone else.
    pub(super) fn close_into(&mut self, audience: &mut Audience) {
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let DoorCommand::Join { viewer, ticket } = command {
                audience.join(viewer, ticket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::viewer::testing::NotingCarrier;
    use crate::media::{Ending, ViewerProtocol};
    use crate::stream::registry::PlayKey;

    fn ticket() -> (
        PlayTicket,
        mpsc::UnboundedReceiver<crate::stream::status::PlayStatus>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            PlayTicket::new(PlayKey::next(), Some(tx), Box::new(|| {})),
            rx,
        )
    }

    #[test]
    fn a_join_queued_behind_the_end_is_let_go_with_the_audience() {
        let carrier = Arc::new(NotingCarrier::default());
        let (door, mut entrance, mut audience) = open(StopReason::SessionDisconnect);
        let viewer = carrier.viewer(ViewerProtocol::Wcs);
        let id = viewer.id();
        let (ticket, mut statuses) = ticket();
        assert!(door.join(viewer, ticket));
        entrance.close_into(&mut audience);
        assert_eq!(door.viewer_count(), 1, "the queued viewer joined");
        let end: Ending = StopReason::EndOfFile.into();
        audience.end_all(&end);
        assert_eq!(carrier.released(), vec![(id, end)]);
        assert!(statuses.try_recv().is_ok(), "its ticket was told the end");
        assert_eq!(door.viewer_count(), 0);
    }

    #[test]
    fn a_join_after_the_end_fails_and_the_viewer_is_told_the_closed_reason() {
        let carrier = Arc::new(NotingCarrier::default());
        let (door, mut entrance, mut audience) = open(StopReason::PublisherStop);
        entrance.close_into(&mut audience);
        assert!(door.is_ended());
        let viewer = carrier.viewer(ViewerProtocol::Whep);
        let id = viewer.id();
        let (ticket, _statuses) = ticket();
        assert!(!door.join(viewer, ticket));
        assert_eq!(
            carrier.released(),
            vec![(id, StopReason::PublisherStop.into())]
        );
    }
}
