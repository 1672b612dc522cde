//! The hub's I/O edge: one task that owns the shared UDP socket, reads the clock, the
//! socket (a batch of datagrams per wake-up: [`udp::recv_batch`]), the command channel and
//! the ICE-TCP connections, feeds each input with `now` to
//! the state machine ([`HubCore`], which owns every viewer and feed and decides everything),
//! then hands what it queued to the sender ([`UdpSender`]: `sendmmsg`, `UDP_SEGMENT`, or the
//! connection's queue for an ICE-TCP path). [`RtcHub`] is the cheap handle streams and
//! signalling hold.
//!
//! Must not: decide anything about viewers or media; that belongs in the core, where tests
//! drive it on virtual time. The UDP receive counters are kept here, where UDP arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{debug, info, warn};

use super::events::ViewerEvents;
use super::hub_core::{Command, HubCore};
use super::ice_tcp::{self, TcpInput};
use super::ids::{FeedId, ViewerId};
use super::packets::VideoCodec;
use super::udp;
use super::udp_sender::UdpSender;
use super::viewer::ViewerPlan;
use super::Accepted;
use crate::gate::Gate;
use crate::media::{Ending, Frame};

/// Send buffer of the shared UDP socket: a late joiner's GOP and many viewers' packets of
/// one frame leave in one burst.
const SOCKET_SEND_BUFFER: usize = 8 << 20;

/// With no viewer waiting for a timeout, the loop still wakes this often (harmless).
const IDLE_WAKE: Duration = Duration::from_millis(500);

/// A cheap, cloneable handle to the hub task.
#[derive(Clone)]
pub struct RtcHub {
    tx: UnboundedSender<Command>,
    local_addr: SocketAddr,
}

impl RtcHub {
    /// Starts the hub on `socket` (made by [`udp::bind`]). `candidates` are the addresses
    /// in our ICE candidates, at least one. With `tcp`, viewers may also connect over
    /// ICE-TCP on that listener, admitted by the gate.
    pub fn start(
        socket: UdpSocket,
        mut candidates: Vec<SocketAddr>,
        tcp: Option<(TcpListener, Arc<Gate>)>,
    ) -> Self {
        let local_addr = socket
            .local_addr()
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), udp::canonical);
        // Never empty from here on: `candidate_for` relies on a first candidate.
        if candidates.is_empty() {
            candidates.push(local_addr);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let tcp_port = tcp
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
            .map(|a| a.port());
        let tcp_candidates =
            tcp_port.map_or_else(Vec::new, |port| ice_tcp::tcp_candidates(&candidates, port));
        let tcp_rx = tcp.map(|(listener, gate)| ice_tcp::spawn(listener, gate));
        tokio::spawn(run(socket, candidates, tcp_candidates, rx, tcp_rx));
        RtcHub { tx, local_addr }
    }

    /// The address the media socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a feed whose stream time 0 is `epoch`, or moves the epoch of an open one (a
    /// personal VOD opens its feed before its viewer connects and starts the clock after).
    pub fn open_feed(&self, feed: FeedId, epoch: Instant) {
        let _ = self.tx.send(Command::OpenFeed { feed, epoch });
    }

    /// Ends a feed; its viewers stay until removed.
    pub fn close_feed(&self, feed: FeedId) {
        let _ = self.tx.send(Command::CloseFeed { feed });
    }

    /// Adds a viewer of `feed`; events about it go to `events`.
    pub fn add_viewer(
        &self,
        id: ViewerId,
        feed: FeedId,
        accepted: Accepted,
        plan: ViewerPlan,
        events: ViewerEvents,
    ) {
        let _ = self.tx.send(Command::AddViewer {
            id,
            feed,
            accepted: Box::new(accepted),
            plan,
            events,
        });
    }

    /// Disconnects a viewer; it gets `Closed(reason)`.
    pub fn remove_viewer(&self, id: ViewerId, reason: Ending) {
        let _ = self.tx.send(Command::RemoveViewer { id, reason });
    }

    /// Moves viewer `id` to `feed` at that feed's next keyframe (see
    /// [`Command::MoveViewer`]); `down`: to a lower rendition, else back up.
    pub fn move_viewer(&self, id: ViewerId, feed: FeedId, events: ViewerEvents, down: bool) {
        let _ = self.tx.send(Command::MoveViewer {
            id,
            feed,
            events,
            down,
        });
    }

    /// Adds a publisher; its events go to `events`, and `rtp_timeout` without media ends it.
    pub(super) fn add_publisher(
        &self,
        id: ViewerId,
        accepted: Accepted,
        events: mpsc::Sender<crate::media::PublisherEvent>,
        rtp_timeout: Duration,
    ) {
        let _ = self.tx.send(Command::AddPublisher {
            id,
            accepted: Box::new(accepted),
            events,
            rtp_timeout,
        });
    }

    /// Asks publisher `id` for a keyframe (rate-limited in the hub).
    pub(super) fn request_publisher_keyframe(&self, id: ViewerId) {
        let _ = self.tx.send(Command::PublisherKeyframe { id });
    }

    /// Closes publisher `id`; it gets `Closed(reason)`.
    pub(super) fn remove_publisher(&self, id: ViewerId, reason: Ending) {
        let _ = self.tx.send(Command::RemovePublisher { id, reason });
    }

    /// Sends a frame, or two, to every viewer of `feed`. Two go to each viewer back to
    /// back, so two equal-sized packets leave as one message (`outbox`). Video frames are
    /// in `video`.
    pub fn send_frames(
        &self,
        feed: FeedId,
        first: Frame,
        second: Option<Frame>,
        video: VideoCodec,
    ) {
        let _ = self.tx.send(Command::Frames {
            feed,
            first,
            second,
            video,
        });
    }
}

async fn run(
    socket: UdpSocket,
    candidates: Vec<SocketAddr>,
    tcp_candidates: Vec<SocketAddr>,
    mut rx: UnboundedReceiver<Command>,
    mut tcp_rx: Option<mpsc::Receiver<TcpInput>>,
) {
    if let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(SOCKET_SEND_BUFFER) {
        warn!("cannot enlarge the udp send buffer: {e}");
    }
    let socket = Arc::new(socket);
    let mut sender = UdpSender::new(socket.clone());
    let announced: Vec<String> = candidates
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let mut core = HubCore::new(
        candidates,
        tcp_candidates,
        Instant::now(),
        SystemTime::now(),
    );
    let mut batch = udp::RecvBatch::new();
    info!(
        "WebRTC on udp {} (announced {})",
        socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        announced.join(", ")
    );
    loop {
        let idle = Instant::now() + IDLE_WAKE;
        let wake = core.poll_timeout().map_or(idle, |t| t.min(idle));
        tokio::select! {
            command = rx.recv() => match command {
                Some(command) => core.handle_command(Instant::now(), command),
                None => break,
            },
            received = udp::recv_batch(&socket, &mut batch) => match received {
                Ok(()) => {
                    // One clock reading for the batch: its datagrams were all queued by now.
                    let now = Instant::now();
                    let m = &crate::metrics::METRICS;
                    for (data, path) in batch.datagrams() {
                        // Counted here, where UDP arrives; ICE-TCP packets are not UDP (as
                        // on the send side, where only the socket's sends are counted).
                        m.udp_received_packets.inc();
                        m.udp_received_bytes.inc_by(data.len() as u64);
                        core.handle_datagram(now, data, path);
                        // What each datagram queued leaves before the next is handled, as
                        // when they came one per wake-up.
                        while let Some(transmits) = core.poll_transmit(now) {
                            sender.send(transmits);
                        }
                    }
                    if batch.truncated() > 0 {
                        debug!(
                            "udp receive: {} datagrams over {} bytes dropped",
                            batch.truncated(),
                            udp::DATAGRAM_MAX
                        );
                    }
                }
                // A socket error (Linux reports ICMP errors on connected sockets only, and
                // this one is not): logged, and receiving goes on.
                Err(e) => debug!("udp receive: {e}"),
            },
            Some(input) = recv_tcp(&mut tcp_rx) => match input {
                TcpInput::Opened { id, conn } => sender.add_tcp(id, conn),
                TcpInput::Packet { path, data } => core.handle_datagram(Instant::now(), &data, path),
                TcpInput::Closed { id } => {
                    sender.remove_tcp(id);
                    core.handle_tcp_closed(Instant::now(), id);
                }
            },
            () = tokio::time::sleep_until(wake.into()) => core.handle_timeout(Instant::now()),
        }
        // The clock is read once per drain: a fan-out paused for sending resumes "now".
        let now = Instant::now();
        while let Some(transmits) = core.poll_transmit(now) {
            sender.send(transmits);
        }
    }
}

/// The next input from the ICE-TCP connections; never, without ICE-TCP.
async fn recv_tcp(rx: &mut Option<mpsc::Receiver<TcpInput>>) -> Option<TcpInput> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
