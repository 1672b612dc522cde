//! Graceful shutdown: the first SIGTERM (or SIGINT) drains the server, a second one exits
//! at once.
//!
//! Draining, in order:
//! 1. [`Shutdown::is_draining`] turns true: new plays are refused with [`REASON`]
//!    (`playback::start`), `/ready` answers `503` so load balancers stop sending;
//! 2. every play is stopped with [`REASON`]: WCS SDK viewers get `STOPPED` with it, WHEP
//!    viewers an RTCP BYE; every live translation is terminated;
//! 3. each WCS WebSocket session closes itself (close frame with [`REASON`]) once its
//!    streams' last statuses are out;
//! 4. the server returns when no play and no WebSocket session is left, or when
//!    `shutdown_grace_period` has passed, whichever is first.
//!
//! Published streams, HLS and recordings do not exist yet; when they do, they are
//! stopped in step 2 (a recording finishing its file before it is counted as stopped).
//!
//! Owns: the draining flag and the signal handling. Must not: reach into streams itself;
//! it stops them through the registry's stoppers like any other caller.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::server::ServerContext;

/// What viewers are told when the server shuts down, and why a play is refused then.
pub const REASON: &str = "Server is shutting down";

/// How often the drain looks whether everyone has gone.
const POLL: Duration = Duration::from_millis(50);

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

    fn begin(&self) {
        self.draining.send_replace(true);
    }
}

/// Waits for SIGTERM or SIGINT, then drains `ctx` within `grace` and returns. A second
/// signal while draining exits the process at once (status 1).
pub async fn on_signal(ctx: Arc<ServerContext>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    let grace = ctx.settings.shutdown_grace_period;
    tokio::select! {
        () = drain(&ctx, grace) => {}
        _ = term.recv() => exit_now("SIGTERM"),
        _ = int.recv() => exit_now("SIGINT"),
    }
    Ok(())
}

fn exit_now(signal: &str) -> ! {
    warn!("second {signal} while shutting down: exiting at once");
    std::process::exit(1)
}

/// Steps 1–4 of the module docs; returns when everyone has gone or after `grace`.
pub async fn drain(ctx: &ServerContext, grace: Duration) {
    ctx.shutdown.begin();
    let plays = ctx.registry.plays();
    let translations = ctx.registry.translations();
    info!(
        plays = plays.len(),
        translations = translations.len(),
        grace_ms = grace.as_millis() as u64,
        "stopping every stream"
    );
    for play in &plays {
        play.stopper.stop(REASON);
    }
    for t in &translations {
        t.terminate(REASON);
    }
    let everyone_gone = async {
        while !ctx.registry.plays().is_empty() || ctx.ws_sessions.in_use() > 0 {
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(grace, everyone_gone).await {
        Ok(()) => info!("every stream stopped and every session closed: exiting"),
        Err(_) => warn!(
            plays = ctx.registry.plays().len(),
            sessions = ctx.ws_sessions.in_use(),
            "shutdown_grace_period passed: exiting with these still open"
        ),
    }
}
