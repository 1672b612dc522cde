//! The I/O edge's sender: puts the hub's [`Transmits`] on the wire. UDP messages go in
//! batches, one `sendmmsg(2)` per drained queue (the hub pauses a fan-out at about
//! [`BATCH`](super::transmits::BATCH) messages; at most [`MAX_RUN`] per call), a train as one message that the
//! kernel cuts into datagrams (UDP generic segmentation offload, `UDP_SEGMENT`); packets to
//! an ICE-TCP path are framed onto that connection's queue ([`TcpConn`]), whose task writes
//! them (woken once per drain).
//!
//! Fanning one frame out to N viewers makes N × (packets per frame) datagrams at once, each
//! to another address; a system call per datagram was the largest single cost of the hub,
//! and after batching, the kernel's per-datagram walk down the stack was: which packets
//! make a train is decided in the queue ([`super::transmits`]); this module only sends.
//! Where the kernel refuses segmentation (older than 4.18), the trains are cut and sent
//! one by one, and the queue is told to gather no more trains.
//!
//! Every message leaves from the local address its peer wrote to ([`Path`]): a
//! packet-info control message (`IP_PKTINFO`, `IPV6_PKTINFO`) sets its source. One system
//! call takes one set of control messages and one segment size, so a run of messages
//! shares both (the queue is grouped by source).
//!
//! Owns the socket's sending side, the open ICE-TCP connections and the UDP send counters
//! (they count what the socket really sent). Must not decide what to send.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::ice_tcp::TcpConn;
use super::ids::TcpId;
#[cfg(test)]
use super::transmits::BATCH;
use super::transmits::{split_into_datagrams, Message, TcpAction, Transmits};
use super::udp;
#[cfg(test)]
use super::udp::Path;

/// Messages in one `sendmmsg(2)` at most: the kernel's limit (`UIO_MAXIOV`). The hub
/// pauses a fan-out once [`BATCH`](super::transmits::BATCH) messages are queued, after
/// the viewer that crossed it: a drained queue is a little over the batch, and goes in one
/// call rather than a full one and a short one.
const MAX_RUN: usize = 1024;

/// Sends [`Transmits`] on one socket and the ICE-TCP connections.
pub(super) struct UdpSender {
    socket: Arc<UdpSocket>,
    /// The socket is IPv6 (dual-stack): IPv4 addresses go out v4-mapped.
    v6_socket: bool,
    /// The open ICE-TCP connections.
    tcp: HashMap<TcpId, Arc<TcpConn>>,
    tcp_written: Vec<TcpId>,
}

impl UdpSender {
    pub(super) fn new(socket: Arc<UdpSocket>) -> Self {
        let v6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        UdpSender {
            v6_socket,
            socket,
            tcp: HashMap::new(),
            tcp_written: Vec::new(),
        }
    }

    /// An ICE-TCP connection to send on from now on.
    pub(super) fn add_tcp(&mut self, id: TcpId, conn: Arc<TcpConn>) {
        self.tcp.insert(id, conn);
    }

    /// Forgets a connection that ended; packets to it are dropped from now on.
    pub(super) fn remove_tcp(&mut self, id: TcpId) {
        self.tcp.remove(&id);
    }

    /// Sends everything queued and empties the queue. UDP is lossy anyway: what the socket
    /// refuses (its buffer is full, or a viewer's address is unreachable) is dropped as a
    /// network would drop it, and NACK/RTX or the next packet recovers it. Packets to a
    /// closed ICE-TCP connection are dropped.
    pub(super) fn send(&mut self, transmits: &mut Transmits) {
        transmits.finish();
        let refused = self.send_udp(transmits.messages(), transmits.bytes());
        if refused {
            transmits.disable_segmentation();
        }
        let (packets, bytes) = transmits.tcp_packets();
        for p in packets {
            if let Some(conn) = self.tcp.get(&p.conn) {
                conn.send(&bytes[p.start..p.start + p.len]);
                if self.tcp_written.last() != Some(&p.conn) {
                    self.tcp_written.push(p.conn);
                }
            }
        }
        for id in self.tcp_written.drain(..) {
            if let Some(conn) = self.tcp.get(&id) {
                conn.flush();
            }
        }
        for action in transmits.tcp_actions() {
            match *action {
                TcpAction::Prove(id) => {
                    if let Some(conn) = self.tcp.get(&id) {
                        conn.prove();
                    }
                }
                TcpAction::Close(id) => {
                    if let Some(conn) = self.tcp.get(&id) {
                        conn.close();
                    }
                }
            }
        }
        transmits.clear();
    }

    /// Sends the messages in order, in runs that can share one system call: one source
    /// and one segment size per call, which lone datagrams no larger than it may join (the
    /// kernel sends a message no longer than the segment size as it is). True when the
    /// kernel refused segmentation (what it refused went out one by one).
    fn send_udp(&self, messages: &[Message], bytes: &[u8]) -> bool {
        let mut refused = false;
        let mut i = 0;
        while i < messages.len() {
            let (end, segment) = run_from(&messages[i..]);
            let end = i + end;
            let run = &messages[i..end];
            let from = run[0].from;
            let v6 = self.v6_socket;
            if let Err(sent) = send(&self.socket, bytes, run, segment, from, v6) {
                if !refused {
                    warn!("udp segmentation offload refused by the kernel: sending packets one by one");
                }
                refused = true;
                let singles = split_into_datagrams(&run[sent..]);
                for chunk in singles.chunks(MAX_RUN) {
                    let _ = send(&self.socket, bytes, chunk, None, from, v6);
                }
            }
            i = end;
        }
        refused
    }
}

/// Adds a sent batch to the metrics: one relaxed add per counter per system call.
fn count_sent(sent: &[Message]) {
    let m = &crate::metrics::METRICS;
    let bytes: usize = sent.iter().map(|m| m.len).sum();
    m.udp_sent_bytes.inc_by(bytes as u64);
    m.udp_sent_packets.inc_by(datagrams(sent));
}

fn count_dropped(dropped: &[Message]) {
    crate::metrics::METRICS
        .udp_send_dropped
        .inc_by(datagrams(dropped));
}

/// Datagrams in `messages`: a segmented message is cut into `len / segment` (rounded up).
fn datagrams(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| match m.segment {
            0 => 1,
            s => m.len.div_ceil(s as usize) as u64,
        })
        .sum()
}

/// The longest run at the start of `messages` (at most [`MAX_RUN`]) that one system call can
/// send, and its segment size. A run has one source address.
fn run_from(messages: &[Message]) -> (usize, Option<u16>) {
    let mut segment: Option<u16> = None;
    let mut largest_lone = 0;
    let from = messages.first().and_then(|m| m.from);
    for (i, m) in messages.iter().enumerate().take(MAX_RUN) {
        if m.from != from {
            return (i, segment);
        }
        if m.segment > 0 {
            match segment {
                None if largest_lone <= usize::from(m.segment) => segment = Some(m.segment),
                Some(s) if s == m.segment => {}
                _ => return (i, segment),
            }
        } else if segment.is_some_and(|s| m.len > usize::from(s)) {
            return (i, segment);
        } else {
            largest_lone = largest_lone.max(m.len);
        }
    }
    (messages.len().min(MAX_RUN), segment)
}

/// Sends `messages` (at most [`MAX_RUN`]) with `segment` as the segment size of each, from
/// the source address `from`. `Err(n)` when the kernel refused segmentation after `n`
/// messages went out: the caller sends the rest another way.
fn send(
    socket: &UdpSocket,
    bytes: &[u8],
    messages: &[Message],
    segment: Option<u16>,
    from: Option<IpAddr>,
    v6_socket: bool,
) -> Result<(), usize> {
    if messages.is_empty() {
        return Ok(());
    }
    let segment_size = segment.unwrap_or(0);
    let source = from.map(|ip| SourceInfo::new(ip, v6_socket));
    // Exactly the room the control messages take: the kernel reads the whole buffer
    // given, and a zeroed tail is an invalid message (EINVAL).
    let cmsg_space = match (segment.is_some(), &source) {
        (false, None) => None,
        (true, None) => Some(nix::cmsg_space!(u16)),
        (false, Some(SourceInfo::V4(_))) => Some(nix::cmsg_space!(nix::libc::in_pktinfo)),
        (false, Some(SourceInfo::V6(_))) => Some(nix::cmsg_space!(nix::libc::in6_pktinfo)),
        (true, Some(SourceInfo::V4(_))) => Some(nix::cmsg_space!(u16, nix::libc::in_pktinfo)),
        (true, Some(SourceInfo::V6(_))) => Some(nix::cmsg_space!(u16, nix::libc::in6_pktinfo)),
    };
    let mut headers = MultiHeaders::preallocate(messages.len(), cmsg_space);
    let mut cmsgs: Vec<ControlMessage> = Vec::with_capacity(2);
    if segment.is_some() {
        cmsgs.push(ControlMessage::UdpGsoSegments(&segment_size));
    }
    match &source {
        Some(SourceInfo::V4(info)) => cmsgs.push(ControlMessage::Ipv4PacketInfo(info)),
        Some(SourceInfo::V6(info)) => cmsgs.push(ControlMessage::Ipv6PacketInfo(info)),
        None => {}
    }
    let addresses: Vec<Option<SockaddrStorage>> = messages
        .iter()
        .map(|m| Some(SockaddrStorage::from(udp::on_wire(m.to, v6_socket))))
        .collect();
    let slices: Vec<[IoSlice<'_>; 1]> = messages
        .iter()
        .map(|m| [IoSlice::new(&bytes[m.start..m.start + m.len])])
        .collect();
    let mut start = 0;
    while start < messages.len() {
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices[start..],
            &addresses[start..],
            &cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(std::iter::Iterator::count);
        match sent {
            Ok(0) => break,
            Ok(n) => {
                count_sent(&messages[start..start + n]);
                start += n;
            }
            Err(Errno::EINTR) => {}
            Err(e @ (Errno::EAGAIN | Errno::ENOBUFS)) => {
                // The send buffer is full: the rest would be refused one by one.
                count_dropped(&messages[start..]);
                debug!(
                    "udp send buffer full: {} messages dropped ({e})",
                    messages.len() - start
                );
                break;
            }
            Err(Errno::EINVAL | Errno::EIO | Errno::ENOPROTOOPT) if segment.is_some() => {
                return Err(start);
            }
            Err(e) => {
                // The first message was refused; the rest may still go.
                debug!("send to {:?} failed: {e}", addresses[start]);
                start += 1;
            }
        }
    }
    Ok(())
}

/// A source address as the packet-info control message of the socket's family wants it.
enum SourceInfo {
    V4(nix::libc::in_pktinfo),
    V6(nix::libc::in6_pktinfo),
}

impl SourceInfo {
    fn new(ip: IpAddr, v6_socket: bool) -> Self {
        match ip {
            IpAddr::V4(v4) if !v6_socket => SourceInfo::V4(nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            }),
            // On a dual-stack socket an IPv4 source is given v4-mapped, like its peer.
            IpAddr::V4(v4) => SourceInfo::V6(in6_pktinfo(v4.to_ipv6_mapped().octets())),
            IpAddr::V6(v6) => SourceInfo::V6(in6_pktinfo(v6.octets())),
        }
    }
}

fn in6_pktinfo(octets: [u8; 16]) -> nix::libc::in6_pktinfo {
    nix::libc::in6_pktinfo {
        ipi6_addr: nix::libc::in6_addr { s6_addr: octets },
        ipi6_ifindex: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn path(to: SocketAddr) -> Path {
        Path {
            remote: to,
            local: None,
            tcp: None,
        }
    }

    #[tokio::test]
    async fn every_datagram_arrives_in_order_at_its_own_address() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Transmits::default();
        let mut sender = UdpSender::new(Arc::new(sender));
        // More than one batch, alternating between two receivers.
        for i in 0..(BATCH + 10) as u16 {
            let to = if i % 2 == 0 { &a } else { &b };
            outbox.push(path(to.local_addr().unwrap()), &i.to_be_bytes());
        }
        sender.send(&mut outbox);
        let mut buf = [0u8; 8];
        for i in 0..(BATCH + 10) as u16 {
            let from = if i % 2 == 0 { &a } else { &b };
            let n = from.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &i.to_be_bytes());
        }
    }

    #[tokio::test]
    async fn an_unreachable_address_does_not_stop_the_others() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let good = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Transmits::default();
        let mut sender = UdpSender::new(Arc::new(sender));
        // An IPv6 destination on an IPv4 socket is refused by the kernel.
        outbox.push(path("[::1]:9".parse().unwrap()), b"lost");
        outbox.push(path(good.local_addr().unwrap()), b"kept");
        sender.send(&mut outbox);
        let mut buf = [0u8; 8];
        let n = good.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"kept");
    }

    /// A picture's packets (equal sizes, a shorter last one) interleaved over viewers, a
    /// packet larger than the train's size, and more trains than one batch: each receiver
    /// gets exactly its datagrams, whole and in order.
    #[tokio::test]
    async fn packet_trains_arrive_as_the_datagrams_they_were() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Transmits::default();
        let mut sender = UdpSender::new(Arc::new(sender));
        let packet = |picture: usize, i: usize, len: usize| -> Vec<u8> {
            let mut p = vec![(picture % 251) as u8; len];
            p[0] = i as u8;
            p
        };
        // Per picture: three full packets, one shorter, then one longer (a new train).
        let sizes = [1100, 1100, 1100, 300, 1200];
        // Five messages per picture: past one batch, within the receivers' socket buffers.
        let pictures = 20;
        for picture in 0..pictures {
            for to in [&a, &b] {
                for (i, len) in sizes.iter().enumerate() {
                    outbox.push_packet(path(to.local_addr().unwrap()), &packet(picture, i, *len));
                }
            }
            // A single datagram between pictures ends any train.
            outbox.push(path(a.local_addr().unwrap()), b"sr");
        }
        sender.send(&mut outbox);
        assert!(outbox.segmentation(), "the kernel refused UDP_SEGMENT");
        let mut buf = [0u8; 2048];
        for picture in 0..pictures {
            for from in [&a, &b] {
                for (i, len) in sizes.iter().enumerate() {
                    let n = from.recv(&mut buf).await.unwrap();
                    assert_eq!(
                        &buf[..n],
                        &packet(picture, i, *len)[..],
                        "picture {picture}"
                    );
                }
            }
            // Queued after the picture, it arrives after it: order is kept.
            let n = a.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"sr");
        }
    }

    /// Datagrams and packet trains to peers that wrote to different local addresses, queued
    /// interleaved on a socket bound to every address: each leaves from its own source.
    #[tokio::test]
    async fn each_datagram_leaves_from_the_source_its_path_names() {
        let sender = udp::bind("0.0.0.0".parse().unwrap(), 0).unwrap();
        let a = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.3:0").await.unwrap();
        let port = sender.local_addr().unwrap().port();
        let mut outbox = Transmits::default();
        let mut sender = UdpSender::new(Arc::new(sender));
        let to = |s: &UdpSocket, from: &str| Path {
            remote: s.local_addr().unwrap(),
            local: Some(from.parse().unwrap()),
            tcp: None,
        };
        for i in 0..10u8 {
            outbox.push(to(&a, "127.0.0.4"), &[i]);
            outbox.push_packet(to(&b, "127.0.0.5"), &[i; 1000]);
            outbox.push_packet(to(&b, "127.0.0.5"), &[i; 1000]);
        }
        sender.send(&mut outbox);
        let mut buf = [0u8; 2048];
        for i in 0..10u8 {
            let (n, from) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[i][..], SocketAddr::from(([127, 0, 0, 4], port)))
            );
            for _ in 0..2 {
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!(n, 1000);
                assert_eq!(buf[0], i);
                assert_eq!(from, SocketAddr::from(([127, 0, 0, 5], port)));
            }
        }
    }

    #[test]
    fn runs_share_a_segment_size_and_take_lone_datagrams_that_fit() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let m = |len, segment| Message {
            to,
            from: None,
            start: 0,
            len,
            segment,
        };
        // Lone datagrams no larger than the trains' segments ride along.
        let run = [m(200, 0), m(3000, 1100), m(80, 0), m(2500, 1100)];
        assert_eq!(run_from(&run), (4, Some(1100)));
        // Another segment size, or a lone datagram too large for the segment, starts a run.
        let run = [m(3000, 1100), m(2000, 1000)];
        assert_eq!(run_from(&run), (1, Some(1100)));
        let run = [m(3000, 1100), m(1200, 0)];
        assert_eq!(run_from(&run), (1, Some(1100)));
        let run = [m(1200, 0), m(3000, 1100)];
        assert_eq!(run_from(&run), (1, None));
        // Cut into datagrams, a train keeps its shorter last one.
        let split = split_into_datagrams(&[m(2500, 1100)]);
        let lens: Vec<usize> = split.iter().map(|d| d.len).collect();
        assert_eq!(lens, vec![1100, 1100, 300]);
    }
}
