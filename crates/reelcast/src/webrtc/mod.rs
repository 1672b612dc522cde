//! WebRTC transport: every viewer on one shared UDP port.
//!
//! Owns: answering a browser's offer as an ICE-lite peer (`answer`), the UDP socket and the
//! loop that demultiplexes datagrams to viewers and drives them (`hub`), each viewer's
//! handshake in a str0m [`Rtc`](str0m::Rtc) and what it needs on its own: payload types,
//! RTP time, keyframe gating (`viewer`); the SRTP keys the handshake exports
//! (`dtls_keys`), and once connected, the viewer's media without str0m: RTP, SRTP and RTCP
//! (`media_plane`, `srtp`); cutting frames into RTP payloads once per feed for all its
//! viewers (`packets`); sending datagrams in segmented batches (`outbox`); the media
//! socket, which tells each datagram's local address so answers leave from it (`udp`);
//! which addresses we announce (`announce`); the same port over TCP for viewers whose
//! network blocks UDP (`ice_tcp`, framed by `tcp_framing`).
//!
//! Must not: read files, parse MP4, know stream names or signalling. It receives finished
//! [`Frame`](crate::media::Frame)s on *feeds* (one feed per stream) and fans each frame out
//! to the feed's viewers. Everything per-stream (demux, transcoding) has happened before.

mod announce;
mod answer;
mod dtls_keys;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod ice_tcp;
mod media_plane;
mod outbox;
mod packets;
mod srtp;
mod tcp_framing;
mod udp;
mod viewer;

pub use announce::announced_ips;
pub use answer::{Accepted, IceTransport, RtcFactory};
pub use hub::{FeedId, RtcHub, ViewerEvent, ViewerEvents, ViewerId, ViewerPlan};
pub use udp::bind as bind_media_port;

/// Why a WebRTC session could not be set up. Display strings are what a user reads.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The reason is one of a few fixed texts: never the parser's own words.
    #[error("Invalid SDP offer: {0}")]
    BadOffer(&'static str),
    #[error("Offer has no audio or video we can send")]
    NothingToSend,
    #[error("WebRTC setup failed: {0}")]
    Setup(String),
}
