//! WebRTC transport: every viewer on one shared UDP port.
//!
//! Owns: answering a browser's offer as an ICE-lite peer (`rtc_factory`); the hub's state
//! machine, which routes datagrams to viewers and drives them on the time it is given and
//! queues what to send as values (`hub_core`, `transmits`: sans-IO, tested on virtual time);
//! the I/O edge that owns the UDP socket, reads the clock and feeds the core (`hub`); the ids of
//! feeds (`ids`) and the viewer events it sends (`events`, the streams' own), each viewer's
//! handshake in a str0m [`Rtc`](str0m::Rtc) and what it needs on its own: payload types,
//! RTP time, keyframe gating (`viewer`); the SRTP keys the handshake exports
//! (`dtls_keys`) and its DTLS instances made ahead (`dtls_stock`), and once connected, the
//! viewer's media without str0m: RTP, SRTP and RTCP (`media_plane`, `srtp`; str0m's own
//! SRTP AES-GCM goes through `ring`: `srtp_gcm`), and what its link carries, from its
//! receiver reports
//! (`link_meter`), and when that calls for a move to a lower rendition or back
//! (`move_policy`); cutting frames into RTP payloads once per feed for all its
//! viewers (`packets`); sending the queue in segmented batches (`udp_sender`); the media
//! socket, which tells each datagram's local address so answers leave from it (`udp`);
//! which addresses we announce (`announce`); the same port over TCP for viewers whose
//! network blocks UDP (`ice_tcp`, framed by `tcp_framing`); a stream's frames in as a
//! [`Sink`](crate::media::Sink) and its browsers as the stream's
//! [`Viewer`](crate::media::Viewer)s (`feed`).
//!
//! Must not: read files, parse MP4, know stream names, signalling or the stream tasks. It
//! receives finished [`Frame`](crate::media::Frame)s on *feeds* (one feed per stream) and
//! fans each frame out to the feed's viewers. Everything per-stream (demux, transcoding)
//! has happened before.

mod announce;
mod dtls_keys;
mod dtls_stock;
mod early_nomination;
mod events;
mod feed;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod hub_core;
mod ice_tcp;
mod ids;
mod link_meter;
mod media_plane;
mod move_policy;
mod packets;
mod publisher_peer;
mod received_frames;
mod rtc_factory;
mod srtp;
mod srtp_gcm;
mod tcp_framing;
mod transmits;
mod udp;
mod udp_sender;
mod viewer;

pub use announce::announced_ips;
pub use feed::{RtcFeed, RtcFeeds};
pub use hub::RtcHub;
pub use ids::FeedId;
pub use packets::VideoCodec;
pub use rtc_factory::{offers_vp8_only, with_start_bitrate, Accepted, IceTransport, RtcFactory};
pub use udp::bind as bind_media_port;
pub use viewer::ViewerPlan;

/// Why a WebRTC session could not be set up. Display strings are what a user reads.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The reason is one of a few fixed texts: never the parser's own words.
    #[error("Invalid SDP offer: {0}")]
    BadOffer(&'static str),
    #[error("Offer has no audio or video we can send")]
    /// The offer accepts neither H.264 nor Opus.
    NothingToSend,
    #[error("WebRTC setup failed: {0}")]
    /// Setting up the session failed; the text says why.
    Setup(String),
}
