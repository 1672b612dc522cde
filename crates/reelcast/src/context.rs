//! What every request handler shares: the settings, the WebRTC answering and fan-out,
//! the registry of running streams, the session gate and the REST hooks.
//!
//! Sits below everything that serves a request (`playback`, `rest`, `signal`) and above
//! the parts it holds, so handlers import it from below and `server` only builds it and
//! wires ports and tasks. Must not: bind ports or start tasks.

use std::sync::Arc;

use crate::config::Settings;
use crate::gate::Gate;
use crate::health::ReadyCache;
use crate::hooks::RestHooks;
use crate::shutdown::Shutdown;
use crate::stream::Registry;
use crate::webrtc::{RtcFactory, RtcFeeds};

/// What every request handler shares (`Arc`ed, one per server).
pub struct ServerContext {
    /// The settings in force.
    pub settings: Settings,
    /// Answers offers (certificate, candidates, codecs).
    pub rtc: RtcFactory,
    /// Every viewer's WebRTC media: each stream's feed and the browsers on it.
    pub feeds: RtcFeeds,
    /// Every running stream and viewer, whichever signalling or REST call started it.
    pub registry: Arc<Registry>,
    /// WebSocket sessions open now, under `ws.max_sessions` (WS and WSS together).
    pub ws_sessions: Arc<Gate>,
    /// The application's backend, asked before a session or play goes on.
    pub hooks: RestHooks,
    /// Set by SIGTERM: no new plays ([`crate::shutdown`]).
    pub shutdown: Shutdown,
    /// The last `/ready` answer ([`crate::health`]).
    pub ready_cache: ReadyCache,
}
