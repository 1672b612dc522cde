//! reelcast: a media server that plays MP4 files to browsers over WebRTC, speaking the
//! protocol of Flashphoner Web Call Server so existing WCS apps work unchanged.

pub mod admin;
pub mod config;
pub mod context;
pub mod gate;
pub mod health;
pub mod hls;
pub mod hls_http;
pub mod hooks;
pub mod http_conn;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod playback;
pub mod publishing;
pub mod record;
pub mod rest;
pub mod server;
pub mod shutdown;
pub mod signal;
pub mod source;
pub mod stream;
pub mod tls;
pub mod webrtc;
pub mod zero_copy;

/// This build's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this build was made from (`build.rs`: `REELCAST_COMMIT`, git, or "unknown").
pub const COMMIT: &str = env!("REELCAST_COMMIT");
/// What `reelcast --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("REELCAST_COMMIT"),
    ")"
);
