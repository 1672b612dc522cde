//! Graceful shutdown: the first SIGTERM (or SIGINT) drains the server, a second one exits
//! at once.
//!
//! Draining, in order:
//! 1. [`Shutdown::is_draining`] turns true: new plays are refused with [`REASON`]
//!    (`playback::start`), `/ready` answers `503` so load balancers stop sending;
//! 2. every play is stopped with [`REASON`]: WCS SDK viewers get `STOPPED` with it, WHEP
//!    viewers an RTCP BYE; every live translation and published stream is terminated
//!    (a publisher hears UNPUBLISHED, its viewers STOPPED with [`REASON`]);
//! 3. each WCS WebSocket session closes itself (close frame with [`REASON`]) once its
//!    streams' last statuses are out;
//! 4. the server returns when no play, no WebSocket session and no unfinished recording
//!    is left (recordings end with their streams in step 2 and are finalized in the
//!    background), or when `shutdown_grace_period` has passed, whichever is first (a
//!    recording not finalized by then keeps its sidecar: the next start recovers it).
//!
//! Owns: the draining flag (the signal handling and the drain itself are `admin`'s). Must not: reach into streams itself;
//! it stops them through the registry's stoppers like any other caller.

use tokio::sync::watch;

use crate::media::StopReason;

/// What viewers are told when the server shuts down, and why a play is refused then.
pub const REASON: &str = StopReason::Shutdown.info();

/// The draining flag, shared by every handler.
pub struct Shutdown {
    draining: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            draining: watch::Sender::new(false),
        }
    }
}

impl Shutdown {
    /// True once shutdown began: take no new plays.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves when shutdown begins (at once if it has).
    pub async fn draining(&self) {
        let mut rx = self.draining.subscribe();
        // The sender lives as long as `self`, which the caller borrows: never an error.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Begins shutdown: from now on [`Shutdown::is_draining`] is true.
    pub fn begin(&self) {
        self.draining.send_replace(true);
    }
}
