//! What the benchmark programs (`fanout`, `soak`) share: a free port to start the server
//! on, and a receive-only str0m client's offer. Included by each with `mod bench_client;`
//! (a folder, so cargo does not take it for an example of its own).

use std::net::{TcpListener, UdpSocket as StdUdpSocket};
use std::time::Instant;

use anyhow::{Context, Result};
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

/// A TCP port free on loopback now (the server binds it a moment later).
pub(crate) fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A receive-only client in RTP mode, with its socket and offer.
pub(crate) fn new_client() -> Result<(Rtc, StdUdpSocket, String, SdpPendingOffer)> {
    let socket = StdUdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    let (rtc, offer, pending) = client_with(Candidate::host(socket.local_addr()?, "udp")?)?;
    Ok((rtc, socket, offer, pending))
}

/// The same client with one active TCP candidate instead (ICE-TCP, RFC 6544): it connects
/// to the server's passive candidate and frames every packet (RFC 4571).
#[allow(dead_code)] // fanout uses it, soak does not
pub(crate) fn new_tcp_client() -> Result<(Rtc, String, SdpPendingOffer)> {
    // An active candidate's port is 9 (discard): it connects, it is never connected to.
    let active = Candidate::builder()
        .tcp()
        .host("127.0.0.1:9".parse()?)
        .tcptype(str0m::net::TcpType::Active)
        .build()?;
    client_with(active)
}

/// A receive-only H.264 + Opus client in RTP mode with `candidate`, and its offer.
fn client_with(candidate: Candidate) -> Result<(Rtc, String, SdpPendingOffer)> {
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(candidate)
        .context("candidate refused")?;
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().context("no offer")?;
    Ok((rtc, offer.to_sdp_string(), pending))
}
