//! The viewers of a shared stream (a live translation, a published stream) as its task
//! holds them: each [`Viewer`] with the [`PlayTicket`] its statuses go through, and the
//! count its handle reads.
//!
//! Owns: joining, PLAYING when a viewer's carrier says it is connected, and letting a
//! viewer go with its ending (one, or all at the stream's end). Must not: know what
//! carries a viewer or what the stream plays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tracing::debug;

use super::status::PlayTicket;
use crate::media::{Ending, Viewer, ViewerId};

/// Where a stream's task sends a viewer it hands over ([`Audience::hand_over`]).
pub(crate) type HandOver = tokio::sync::oneshot::Sender<(Viewer, PlayTicket)>;

/// What asks a stream's task to hand a viewer over: its handle's side.
pub(crate) type HandedOver = tokio::sync::oneshot::Receiver<(Viewer, PlayTicket)>;

/// A stream's viewers, held by its task.
pub(super) struct Audience {
    viewers: HashMap<ViewerId, (Viewer, PlayTicket)>,
    /// Viewers now, read by the stream's handles.
    count: Arc<AtomicUsize>,
}

impl Audience {
    /// No viewer yet; `count` is what the stream's handles read.
    pub(super) fn new(count: Arc<AtomicUsize>) -> Self {
        Audience {
            viewers: HashMap::new(),
            count,
        }
    }

    /// Adds a viewer; its statuses go through `ticket`.
    pub(super) fn join(&mut self, viewer: Viewer, ticket: PlayTicket) {
        self.viewers.insert(viewer.id(), (viewer, ticket));
        self.count.store(self.viewers.len(), Ordering::Relaxed);
    }

    /// The viewer's media flows: it is told PLAYING. `false` for a viewer not here.
    pub(super) fn connected(&self, id: ViewerId) -> bool {
        self.viewers
            .get(&id)
            .map(|(_, ticket)| ticket.playing())
            .is_some()
    }

    /// Lets a viewer go and tells it why.
    pub(super) fn drop_viewer(&mut self, id: ViewerId, ending: Ending) {
        if let Some((viewer, ticket)) = self.viewers.remove(&id) {
            viewer.leave(ending.clone());
            ticket.end(ending);
            debug!(viewer = id.0, "viewer left");
        }
        self.count.store(self.viewers.len(), Ordering::Relaxed);
    }

    /// Hands a viewer over as it is, still carried and playing, to join another stream
    /// (a rendition of this one, or back): `None` for a viewer not here.
    pub(super) fn hand_over(&mut self, id: ViewerId) -> Option<(Viewer, PlayTicket)> {
        let held = self.viewers.remove(&id);
        self.count.store(self.viewers.len(), Ordering::Relaxed);
        held
    }

    /// Hands viewer `id` over to `to` ([`Self::hand_over`]); if nobody takes it, it stays.
    /// True when it is no longer here.
    pub(super) fn hand_over_to(&mut self, id: ViewerId, to: HandOver) -> bool {
        let Some(held) = self.hand_over(id) else {
            return false;
        };
        if let Err((viewer, ticket)) = to.send(held) {
            self.join(viewer, ticket);
            return false;
        }
        true
    }

    /// Lets every viewer go with `ending` (the stream's end).
    pub(super) fn end_all(&mut self, ending: &Ending) {
        let ids: Vec<ViewerId> = self.viewers.keys().copied().collect();
        for id in ids {
            self.drop_viewer(id, ending.clone());
        }
    }

    /// Whether some viewer is so.
    pub(super) fn any(&self, f: impl Fn(&Viewer) -> bool) -> bool {
        self.viewers.values().any(|(v, _)| f(v))
    }

    /// Nobody watches.
    pub(super) fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }
}
