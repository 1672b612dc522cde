//! How a play's statuses reach whoever started it: one channel per signalling session.
//!
//! A session (a WCS WebSocket) makes one [`StatusTx`] and gives a clone with each play.
//! The stream task that runs the play holds its [`PlayTicket`] and sends PLAYING and the
//! ending straight into that channel, tagged with the play's [`PlayKey`]: no task in
//! between relays them. The ticket also takes the play off the registry when it ends
//! (before the ending is sent, so a client that has heard STOPPED no longer finds it
//! listed) or when the task holding it is gone.
//!
//! Must not: know the registry (it is handed what to do at the end) or signalling.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use crate::media::Ending;

/// Which play an entry is: unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayKey(u64);

impl PlayKey {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PlayKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The life of a play as its viewer hears it (WCS stream statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// Media is flowing to the viewer.
    Playing,
    /// STOPPED or FAILED, and why; the last status of a play.
    Ended(Ending),
}

/// One status of one play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayStatus {
    pub key: PlayKey,
    pub status: StreamStatus,
}

/// Where a session hears all its plays' statuses.
pub type StatusTx = UnboundedSender<PlayStatus>;

/// What ends a play's listing (removes it from the registry).
pub type Unlist = Box<dyn FnOnce() + Send + Sync>;

/// One play, as the task that runs it holds it: tells its statuses and, at its end,
/// takes it off the registry. Dropped without [`PlayTicket::end`] (the play never
/// started, or its task died), it only unlists the play.
pub struct PlayTicket {
    key: PlayKey,
    to: Option<StatusTx>,
    unlist: Option<Unlist>,
}

impl PlayTicket {
    /// A ticket for play `key`, telling `to` (none: nobody listens, as for WHEP).
    pub fn new(key: PlayKey, to: Option<StatusTx>, unlist: Unlist) -> Self {
        PlayTicket {
            key,
            to,
            unlist: Some(unlist),
        }
    }

    pub fn key(&self) -> PlayKey {
        self.key
    }

    /// Media flows to the viewer.
    pub fn playing(&self) {
        self.send(StreamStatus::Playing);
    }

    /// The play ended: unlisted, then its viewer is told.
    pub fn end(mut self, ending: Ending) {
        if let Some(unlist) = self.unlist.take() {
            unlist();
        }
        self.send(StreamStatus::Ended(ending));
    }

    fn send(&self, status: StreamStatus) {
        if let Some(to) = &self.to {
            // A session already closed hears nothing; the play still ends.
            let _ = to.send(PlayStatus {
                key: self.key,
                status,
            });
        }
    }
}

impl Drop for PlayTicket {
    fn drop(&mut self) {
        if let Some(unlist) = self.unlist.take() {
            unlist();
        }
    }
}
