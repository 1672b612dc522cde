//! How a play's statuses reach whoever started it: one channel per signalling session.
//!
//! A session (a WCS WebSocket) makes one [`StatusTx`] and gives a clone with each play.
//! The stream task that runs the play holds its [`PlayTicket`] and sends PLAYING and the
//! ending straight into that channel, tagged with the play's [`PlayKey`]: no task in
//! between relays them. A viewer's link too narrow for the stream is told into the same
//! channel by what carries its media ([`StreamStatus::NotEnoughBandwidth`]). The ticket also takes the play off the registry when it ends
//! (before the ending is sent, so a client that has heard STOPPED no longer finds it
//! listed) or when the task holding it is gone.
//!
//! Must not: know the registry (it is handed what to do at the end) or signalling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use crate::media::Ending;

/// Which play an entry is: unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayKey(u64);

impl PlayKey {
    /// A key never used before.
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
    /// The viewer's link has carried less than the stream sends for a while (WCS's
    /// `notEnoughBandwidth`): the stream's bit rate and what the link carries, in bits per
    /// second. The play goes on. Told by the media's carrier, not the stream task.
    NotEnoughBandwidth {
        /// The stream's bit rate to the viewer.
        remote_bps: u64,
        /// What the viewer's link carries.
        network_bps: u64,
    },
}

/// One status of one play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayStatus {
    /// Which play.
    pub key: PlayKey,
    /// What happened to it.
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
    /// PLAYING was told: a viewer moved to another rendition is not told it again.
    told_playing: AtomicBool,
}

impl PlayTicket {
    /// A ticket for play `key`, telling `to` (none: nobody listens, as for WHEP).
    pub fn new(key: PlayKey, to: Option<StatusTx>, unlist: Unlist) -> Self {
        PlayTicket {
            key,
            to,
            unlist: Some(unlist),
            told_playing: AtomicBool::new(false),
        }
    }

    /// Which play this ticket is for.
    pub fn key(&self) -> PlayKey {
        self.key
    }

    /// Media flows to the viewer (told once per play).
    pub fn playing(&self) {
        if !self.told_playing.swap(true, Ordering::Relaxed) {
            self.send(StreamStatus::Playing);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::*;
    use crate::media::{FailReason, StopReason};

    /// A play's end unlists it before its session hears the ending (a client that has
    /// heard STOPPED no longer finds it listed); PLAYING leaves it listed.
    #[test]
    fn the_ending_is_told_after_the_play_is_unlisted() {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let heard = |rx: &Mutex<mpsc::UnboundedReceiver<PlayStatus>>| -> Vec<StreamStatus> {
            let mut rx = rx.lock().unwrap();
            std::iter::from_fn(|| rx.try_recv().ok().map(|s| s.status)).collect()
        };
        // What the session had heard when the play left the registry.
        let heard_at_unlist = Arc::new(Mutex::new(None));
        let (at_unlist, session) = (heard_at_unlist.clone(), rx.clone());
        let ticket = PlayTicket::new(
            PlayKey::next(),
            Some(tx),
            Box::new(move || *at_unlist.lock().unwrap() = Some(heard(&session))),
        );
        ticket.playing();
        assert_eq!(
            *heard_at_unlist.lock().unwrap(),
            None,
            "PLAYING keeps it listed"
        );
        ticket.end(StopReason::ByUser.into());
        assert_eq!(
            *heard_at_unlist.lock().unwrap(),
            Some(vec![StreamStatus::Playing]),
            "unlisted after PLAYING, before the ending"
        );
        assert_eq!(
            heard(&rx),
            vec![StreamStatus::Ended(StopReason::ByUser.into())]
        );
    }

    /// A play whose task is gone (or that never started) leaves the registry and tells
    /// nothing; a play nobody listens to (WHEP) still leaves it at its end.
    #[test]
    fn a_dropped_ticket_unlists_and_a_deaf_one_still_ends() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let unlisted = Arc::new(Mutex::new(0));
        let count = unlisted.clone();
        drop(PlayTicket::new(
            PlayKey::next(),
            Some(tx),
            Box::new(move || *count.lock().unwrap() += 1),
        ));
        assert_eq!(*unlisted.lock().unwrap(), 1);
        assert!(rx.try_recv().is_err(), "a dropped ticket tells nothing");

        let count = unlisted.clone();
        let deaf = PlayTicket::new(
            PlayKey::next(),
            None,
            Box::new(move || *count.lock().unwrap() += 1),
        );
        deaf.end(FailReason::IceTimeout.into());
        assert_eq!(*unlisted.lock().unwrap(), 2, "unlisted once, at its end");
    }
}
