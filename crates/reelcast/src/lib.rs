//! reelcast: a media server that plays MP4 files to browsers over WebRTC, speaking the
//! protocol of Flashphoner Web Call Server so existing WCS apps work unchanged.

pub mod config;
pub mod context;
pub mod gate;
pub mod hooks;
pub mod http_conn;
pub mod media;
pub mod playback;
pub mod rest;
pub mod server;
pub mod signal;
pub mod source;
pub mod stream;
pub mod tls;
pub mod webrtc;
