//! The hub: one task that owns the shared UDP socket and every viewer.
//!
//! Inputs are datagrams, commands from streams and signalling, and timeouts; outputs are
//! datagrams and [`ViewerEvent`](super::ViewerEvent)s. Datagrams are routed without asking every viewer: a STUN
//! request names our ICE ufrag (which identifies the viewer), and once an authenticated
//! check has come from a browser address, everything from that address goes to it.
//!
//! Viewers on ICE-TCP ([`ice_tcp`]) are the same to the hub: each packet from a connection
//! arrives as a datagram whose [`Path`] names the connection, str0m is told it came over
//! TCP to our TCP candidate, and the outbox frames whatever goes back onto that connection.
//! The hub tells a connection when it has carried an authenticated check (else it is closed
//! soon after opening) and closes a viewer's connections when the viewer ends.
//!
//! Each datagram comes with the local address it reached ([`udp`]); the viewer keeps it
//! with the browser's address, so every answer leaves from where the browser wrote to.
//! We announce several candidates (one per address); str0m is told which one a datagram
//! reached: the candidate with that address, or behind NAT (the address is not announced)
//! the first candidate of its family.
//!
//! A *feed* is one stream as the hub sees it: its epoch (wall-clock time of stream time 0,
//! used for RTCP sender reports so audio and video share one clock), its viewers, and its
//! current GOP (the last keyframe and the pictures since). Frames arrive once per feed, are
//! cut into RTP payloads once ([`packets`]) and are written to each of its viewers. The GOP answers picture-loss requests (re-sent
//! whole, so the pictures after its keyframe have what they reference) and gives a viewer who joins mid-stream a picture at once: the whole GOP is
//! sent on connect, its timestamps packed just before the newest picture, so the browser
//! decodes up to "now" in one go and then follows the shared timeline.
//!
//! Every wake-up costs O(1) in the number of viewers, apart from fanning a frame out (which
//! must visit the feed's viewers): viewers' timeouts wait in a min-heap ([`Wakeups`]), and
//! only viewers driven since the last wake-up are checked for having ended.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{debug, info, warn};

use super::events::ViewerEvents;
use super::ice_tcp::{self, TcpInput};
use super::ids::{FeedId, TcpId, ViewerId};
use super::outbox::Outbox;
use super::packets::{self, RtpFrame};
use super::udp::{self, Path};
use super::viewer::{Viewer, ViewerPlan};
use super::Accepted;
use crate::gate::Gate;
use crate::media::{Ending, Frame, MediaKind, StopReason};

/// The GOP cache stops growing past these (a file with one keyframe in an hour must not
/// grow without bound): late joiners of such a file wait for the next keyframe.
const GOP_CACHE_MAX_FRAMES: usize = 1200;
const GOP_CACHE_MAX_BYTES: usize = 16 << 20;

/// Send buffer of the shared UDP socket: a late joiner's GOP and many viewers' packets of
/// one frame leave in one burst.
const SOCKET_SEND_BUFFER: usize = 8 << 20;

enum Command {
    OpenFeed {
        feed: FeedId,
        epoch: Instant,
    },
    CloseFeed {
        feed: FeedId,
    },
    AddViewer {
        id: ViewerId,
        feed: FeedId,
        accepted: Box<Accepted>,
        plan: ViewerPlan,
        events: ViewerEvents,
    },
    RemoveViewer {
        id: ViewerId,
        reason: Ending,
    },
    Frames {
        feed: FeedId,
        first: Frame,
        second: Option<Frame>,
    },
}

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

    /// Sends a frame, or two, to every viewer of `feed`. Two go to each viewer back to
    /// back, so two equal-sized packets leave as one message (`outbox`).
    pub fn send_frames(&self, feed: FeedId, first: Frame, second: Option<Frame>) {
        let _ = self.tx.send(Command::Frames {
            feed,
            first,
            second,
        });
    }
}

struct Feed {
    epoch: Instant,
    gop: GopCache,
    viewers: Vec<ViewerId>,
}

/// The video frames from the last keyframe on, as sent.
#[derive(Default)]
struct GopCache {
    frames: Vec<Arc<RtpFrame>>,
    bytes: usize,
    /// Too long to keep: empty until the next keyframe.
    overflowed: bool,
}

impl GopCache {
    fn push(&mut self, frame: &Arc<RtpFrame>) {
        if frame.kind != MediaKind::Video {
            return;
        }
        if frame.keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.overflowed || self.frames.is_empty() {
            return;
        }
        if self.frames.len() >= GOP_CACHE_MAX_FRAMES || self.bytes >= GOP_CACHE_MAX_BYTES {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += frame.bytes;
        self.frames.push(frame.clone());
    }
}

struct HubState {
    /// Our ICE candidates' addresses, as announced: UDP, and TCP (empty without ICE-TCP).
    candidates: Vec<SocketAddr>,
    tcp_candidates: Vec<SocketAddr>,
    feeds: HashMap<FeedId, Feed>,
    /// Boxed: a map of viewers inline would move them all on every rehash and keep up to
    /// twice their size per viewer as spare capacity.
    viewers: HashMap<ViewerId, Box<Viewer>>,
    by_ufrag: HashMap<String, ViewerId>,
    /// Proven browser paths: (address, ICE-TCP connection or `None` for UDP).
    by_addr: HashMap<(SocketAddr, Option<TcpId>), ViewerId>,
    wakeups: Wakeups,
}

/// When each viewer next wants to be woken (its engine's timers, its sender reports and
/// consent deadline), and which viewers have ended.
///
/// A min-heap of (time, viewer) with at most one live entry per viewer: the earliest time
/// asked for, kept in `armed`. A viewer that later asks for an earlier time gets a new entry
/// and the old one turns stale (skipped when it comes up); one that asks for a later time
/// keeps its earlier entry, is woken then, and is simply re-armed if not yet due (the hub
/// only drives a viewer at a time it asked for).
#[derive(Default)]
struct Wakeups {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    armed: HashMap<ViewerId, Instant>,
    /// Viewers found ended after being driven: to reap.
    finished: Vec<ViewerId>,
}

impl Wakeups {
    /// To call after every [`Viewer::drain`]: arms the viewer's next timeout, or notes that
    /// it has ended.
    fn after_drain(&mut self, viewer: &Viewer) {
        if viewer.is_finished() {
            self.finished.push(viewer.id);
        } else {
            self.arm(viewer.id, viewer.next_timeout);
        }
    }

    /// Wakes `id` at `at`, unless it is already to be woken no later.
    fn arm(&mut self, id: ViewerId, at: Instant) {
        if self.armed.get(&id).is_some_and(|armed| *armed <= at) {
            return;
        }
        self.armed.insert(id, at);
        self.heap.push(Reverse((at, id.0)));
    }

    /// The earliest armed time (a stale entry may make it early: a harmless extra wake-up).
    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next viewer whose armed time has come, disarmed.
    fn pop_due(&mut self, now: Instant) -> Option<ViewerId> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            let id = ViewerId(id);
            if self.armed.get(&id) == Some(&at) {
                self.armed.remove(&id);
                return Some(id);
            }
        }
        None
    }

    fn forget(&mut self, id: ViewerId) {
        // Its heap entries become stale and are dropped when they come up.
        self.armed.remove(&id);
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
    let mut out = Outbox::new(socket.clone());
    let announced: Vec<String> = candidates
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let mut state = HubState {
        candidates,
        tcp_candidates,
        feeds: HashMap::new(),
        viewers: HashMap::new(),
        by_ufrag: HashMap::new(),
        by_addr: HashMap::new(),
        wakeups: Wakeups::default(),
    };
    let mut buf = vec![0u8; 2048];
    let mut control = udp::control_buffer();
    info!(
        "WebRTC on udp {} (announced {})",
        socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        announced.join(", ")
    );
    loop {
        let wake = state.next_timeout();
        tokio::select! {
            command = rx.recv() => match command {
                Some(command) => state.on_command(command, &mut out),
                None => break,
            },
            received = udp::recv(&socket, &mut buf, &mut control) => match received {
                Ok(r) => {
                    // Counted here, where UDP arrives; ICE-TCP packets are not UDP (as on
                    // the send side, where only the socket's sends are counted).
                    let m = &crate::metrics::METRICS;
                    m.udp_received_packets.inc();
                    m.udp_received_bytes.inc_by(r.len as u64);
                    state.on_datagram(&buf[..r.len], r.path, &mut out);
                }
                // ICMP "port unreachable" from a closed browser surfaces here on Linux.
                Err(e) => debug!("udp receive: {e}"),
            },
            Some(input) = recv_tcp(&mut tcp_rx) => state.on_tcp(input, &mut out),
            () = tokio::time::sleep_until(wake.into()) => state.on_timeout(&mut out),
        }
        out.flush();
        state.reap(&mut out);
    }
}

/// The next input from the ICE-TCP connections; never, without ICE-TCP.
async fn recv_tcp(rx: &mut Option<mpsc::Receiver<TcpInput>>) -> Option<TcpInput> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl HubState {
    fn next_timeout(&self) -> Instant {
        let idle = Instant::now() + Duration::from_millis(500);
        self.wakeups.next().map_or(idle, |t| t.min(idle))
    }

    fn on_command(&mut self, command: Command, out: &mut Outbox) {
        let now = Instant::now();
        match command {
            Command::OpenFeed { feed, epoch } => {
                let f = self.feeds.entry(feed).or_insert(Feed {
                    epoch,
                    gop: GopCache::default(),
                    viewers: Vec::new(),
                });
                f.epoch = epoch;
            }
            Command::CloseFeed { feed } => {
                self.feeds.remove(&feed);
            }
            Command::AddViewer {
                id,
                feed,
                accepted,
                plan,
                events,
            } => {
                let Accepted {
                    rtc,
                    local_ufrag,
                    ice_password,
                    keys,
                    ..
                } = *accepted;
                let mut viewer = Box::new(Viewer::new(
                    id,
                    feed,
                    rtc,
                    keys,
                    local_ufrag.clone(),
                    ice_password,
                    plan,
                    events,
                    now,
                ));
                viewer.drain(now, out);
                self.wakeups.after_drain(&viewer);
                self.by_ufrag.insert(local_ufrag, id);
                self.viewers.insert(id, viewer);
                if let Some(f) = self.feeds.get_mut(&feed) {
                    f.viewers.push(id);
                }
            }
            Command::RemoveViewer { id, reason } => {
                if let Some(v) = self.viewers.get_mut(&id) {
                    v.close_and_say_goodbye(reason, out);
                    v.drain(now, out);
                    self.wakeups.after_drain(v);
                }
            }
            Command::Frames {
                feed,
                first,
                second,
            } => {
                let Some(f) = self.feeds.get_mut(&feed) else {
                    return;
                };
                let frames: Vec<Arc<RtpFrame>> = std::iter::once(&first)
                    .chain(second.as_ref())
                    .filter_map(packets::packetize)
                    .collect();
                for frame in &frames {
                    f.gop.push(frame);
                }
                for id in &f.viewers {
                    if let Some(v) = self.viewers.get_mut(id) {
                        for frame in &frames {
                            v.write(frame, frame.pts_us, now, out);
                        }
                        if v.wants_keyframe {
                            v.answer_picture_loss(&f.gop.frames, now, out);
                        }
                    }
                }
            }
        }
    }

    fn on_tcp(&mut self, input: TcpInput, out: &mut Outbox) {
        match input {
            TcpInput::Opened { id, conn } => out.add_tcp(id, conn),
            TcpInput::Packet { path, data } => self.on_datagram(&data, path, out),
            TcpInput::Closed { id } => {
                out.remove_tcp(id);
                self.by_addr.retain(|(_, tcp), _| *tcp != Some(id));
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: Path, out: &mut Outbox) {
        let Some(id) = self.route(data, from) else {
            debug!("datagram from {} matches no viewer", from.remote);
            return;
        };
        let candidate = if from.tcp.is_some() {
            candidate_for(&self.tcp_candidates, from.local)
        } else {
            candidate_for(&self.candidates, from.local)
        };
        let Some(viewer) = self.viewers.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        viewer.on_datagram(data, from, candidate, now, out);
        if viewer.wants_catch_up() {
            if let Some(f) = self.feeds.get(&viewer.feed) {
                viewer.catch_up(&f.gop.frames, now, out);
            }
        }
        self.wakeups.after_drain(viewer);
        for path in viewer.new_routes.drain(..) {
            self.by_addr.insert(path.route(), id);
            if let Some(conn) = path.tcp.and_then(|tcp| out.tcp(tcp)) {
                conn.prove();
            }
        }
    }

    /// Finds the viewer a datagram is for: by our ufrag in a STUN request, else by the path
    /// it came on.
    fn route(&self, data: &[u8], source: Path) -> Option<ViewerId> {
        if let Some(ufrag) = stun_local_ufrag(data) {
            if let Some(id) = self.by_ufrag.get(&ufrag) {
                return Some(*id);
            }
        }
        self.by_addr.get(&source.route()).copied()
    }

    fn on_timeout(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        while let Some(id) = self.wakeups.pop_due(now) {
            let Some(viewer) = self.viewers.get_mut(&id) else {
                continue;
            };
            if viewer.next_timeout <= now && !viewer.closed {
                let epoch = self.feeds.get(&viewer.feed).map(|f| f.epoch);
                viewer.on_timeout(epoch, now, out);
            }
            self.wakeups.after_drain(viewer);
        }
    }

    /// Forgets viewers that have ended (only those driven since the last call can have: a
    /// viewer changes only when it is given input or woken).
    fn reap(&mut self, out: &mut Outbox) {
        let dead = std::mem::take(&mut self.wakeups.finished);
        for id in dead {
            self.wakeups.forget(id);
            if let Some(mut v) = self.viewers.remove(&id) {
                v.close(StopReason::SessionDisconnect.into());
                self.by_ufrag.remove(&v.local_ufrag);
                self.by_addr.retain(|(_, tcp), vid| {
                    if *vid != id {
                        return true;
                    }
                    // Its ICE-TCP connections end with it.
                    if let Some(conn) = tcp.and_then(|tcp| out.tcp(tcp)) {
                        conn.close();
                    }
                    false
                });
                if let Some(f) = self.feeds.get_mut(&v.feed) {
                    f.viewers.retain(|x| *x != id);
                }
                drop::<Box<Viewer>>(v);
                debug!(viewer = id.0, "viewer removed");
            }
        }
    }
}

/// The candidate str0m is to see a datagram as sent to, given the address it reached: the
/// candidate of that address, else (behind NAT, or no address known) the first of its
/// family, else the first.
fn candidate_for(candidates: &[SocketAddr], local: Option<IpAddr>) -> SocketAddr {
    let Some(local) = local else {
        return candidates[0];
    };
    candidates
        .iter()
        .find(|c| c.ip() == local)
        .or_else(|| candidates.iter().find(|c| c.is_ipv4() == local.is_ipv4()))
        .copied()
        .unwrap_or(candidates[0])
}

/// The local (our) ufrag of a STUN binding request: USERNAME is "ours:theirs".
fn stun_local_ufrag(data: &[u8]) -> Option<String> {
    // STUN: first two bits zero and the magic cookie at bytes 4..8.
    if data.len() < 20 || data[0] >= 2 || data[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let msg = str0m::ice::StunMessage::parse(data).ok()?;
    let (local, _) = msg.split_username()?;
    Some(local.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_stun_datagrams_have_no_ufrag() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        assert_eq!(stun_local_ufrag(&[]), None);
        let mut fake = [0u8; 20];
        fake[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(stun_local_ufrag(&fake), None);
    }

    #[test]
    fn wakeups_come_in_time_order_once_each_and_skip_superseded_times() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b, c) = (ViewerId(1), ViewerId(2), ViewerId(3));
        let mut w = Wakeups::default();
        w.arm(a, ms(10));
        w.arm(b, ms(5));
        w.arm(c, ms(30));
        // A later time does not replace an earlier one; an earlier one does.
        w.arm(b, ms(8));
        w.arm(a, ms(2));
        assert_eq!(w.next(), Some(ms(2)));
        assert_eq!(w.pop_due(ms(1)), None);
        assert_eq!(w.pop_due(ms(20)), Some(a));
        assert_eq!(w.pop_due(ms(20)), Some(b));
        // a's superseded entry at 10 ms is skipped, c is not due yet.
        assert_eq!(w.pop_due(ms(20)), None);
        w.forget(c);
        assert_eq!(w.pop_due(ms(100)), None);
        assert!(w.heap.is_empty() && w.armed.is_empty());
    }
}
