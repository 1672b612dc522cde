//! What the hub's state machine wants sent, as values: the transmit queue the I/O edge
//! drains ([`super::udp_sender`] sends it).
//!
//! Owns the batching decisions, which are the hub's and cost nothing to test: consecutive
//! equal-sized packets to one path (a picture's packets to one viewer: all full-sized but
//! the last) become one *train* that the kernel cuts into datagrams (`UDP_SEGMENT`), so the
//! UDP stack is walked once per picture per viewer, not per packet; and the messages are
//! grouped by source address when the queue is finished, since one `sendmmsg(2)` takes one
//! set of control messages (order is kept per peer, which has one source at a time).
//! Packets to an ICE-TCP path are queued apart (they are framed onto the connection, never
//! cut by the kernel), as are what the hub tells ICE-TCP connections (proven, to close).
//!
//! Must not: touch a socket, a connection or a clock. Bytes are kept in arenas reused from
//! drain to drain: no allocation per datagram.

use std::net::{IpAddr, SocketAddr};

use super::ids::TcpId;
use super::udp::Path;

/// Messages after which the hub's state machine pauses a fan-out for the queue to be sent
/// (one `sendmmsg(2)` takes this many): the queue stays small however many viewers a
/// frame goes to. The kernel takes up to 1,024; past a few dozen the saving per message no
/// longer changes.
pub(super) const BATCH: usize = 64;
/// Segments in one `UDP_SEGMENT` message: the kernel's limit (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one `UDP_SEGMENT` message: under the 64 KiB of one IP packet with its headers.
const MAX_TRAIN_BYTES: usize = 60_000;

/// One UDP message: a datagram, or a train of packets the kernel is to cut into datagrams
/// of `segment` bytes (0 for a lone datagram). Its bytes are `bytes()[start..start + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Message {
    /// The peer.
    pub to: SocketAddr,
    /// The source address to send from (`None`: the kernel's choice).
    pub from: Option<IpAddr>,
    pub start: usize,
    pub len: usize,
    pub segment: u16,
}

/// A packet to put on an ICE-TCP connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct TcpPacket {
    pub conn: TcpId,
    pub start: usize,
    pub len: usize,
}

/// What the hub tells an ICE-TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TcpAction {
    /// It carried an authenticated ICE check: it may stay open.
    Prove(TcpId),
    /// Its viewer has ended: close it (after its queued packets).
    Close(TcpId),
}

/// Packets to one address being gathered into one segmented message.
struct Train {
    to: Path,
    start: usize,
    /// Size of every segment but the last.
    segment: usize,
    segments: usize,
    /// A shorter last segment has come: nothing more can join.
    closed: bool,
}

/// The hub's output, in the order it was queued (see the module docs).
pub(super) struct Transmits {
    /// Every queued UDP byte, back to back.
    bytes: Vec<u8>,
    messages: Vec<Message>,
    /// The train being gathered at the end of `bytes`.
    train: Option<Train>,
    /// False once the sender found the kernel refuses segmented messages.
    segmentation: bool,
    tcp_bytes: Vec<u8>,
    tcp_packets: Vec<TcpPacket>,
    tcp_actions: Vec<TcpAction>,
}

impl Default for Transmits {
    fn default() -> Self {
        Transmits {
            bytes: Vec::new(),
            messages: Vec::new(),
            train: None,
            segmentation: true,
            tcp_bytes: Vec::new(),
            tcp_packets: Vec::new(),
            tcp_actions: Vec::new(),
        }
    }
}

impl Transmits {
    /// Queues a datagram on its own (handshakes, RTCP, STUN).
    pub(super) fn push(&mut self, to: Path, datagram: &[u8]) {
        if let Some(conn) = to.tcp {
            return self.push_tcp(conn, datagram);
        }
        self.end_train();
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.queue(to, start, datagram.len(), 0);
    }

    /// Queues an RTP packet. Consecutive packets to the same path of the same size,
    /// perhaps ended by one shorter packet, leave as one segmented message.
    pub(super) fn push_packet(&mut self, to: Path, packet: &[u8]) {
        if let Some(conn) = to.tcp {
            return self.push_tcp(conn, packet);
        }
        let joins = self.segmentation
            && self.train.as_ref().is_some_and(|t| {
                t.to == to
                    && !t.closed
                    && packet.len() <= t.segment
                    && t.segments < MAX_SEGMENTS
                    && self.bytes.len() - t.start + packet.len() <= MAX_TRAIN_BYTES
            });
        if !joins {
            self.end_train();
            self.train = Some(Train {
                to,
                start: self.bytes.len(),
                segment: packet.len(),
                segments: 0,
                closed: false,
            });
        }
        let train = self.train.as_mut().expect("a train was just started");
        train.segments += 1;
        train.closed = packet.len() < train.segment;
        self.bytes.extend_from_slice(packet);
    }

    fn push_tcp(&mut self, conn: TcpId, packet: &[u8]) {
        let start = self.tcp_bytes.len();
        self.tcp_bytes.extend_from_slice(packet);
        self.tcp_packets.push(TcpPacket {
            conn,
            start,
            len: packet.len(),
        });
    }

    /// Tells an ICE-TCP connection something (see [`TcpAction`]).
    pub(super) fn tcp_action(&mut self, action: TcpAction) {
        self.tcp_actions.push(action);
    }

    /// Queues the gathered train: one packet as a lone datagram, several as one message.
    fn end_train(&mut self) {
        let Some(train) = self.train.take() else {
            return;
        };
        let len = self.bytes.len() - train.start;
        let segment = if train.segments > 1 {
            train.segment as u16
        } else {
            0
        };
        self.queue(train.to, train.start, len, segment);
    }

    fn queue(&mut self, to: Path, start: usize, len: usize, segment: u16) {
        self.messages.push(Message {
            to: to.remote,
            from: to.local,
            start,
            len,
            segment,
        });
    }

    /// Messages queued (a train being gathered counts as one), to decide when to pause a
    /// fan-out: see [`BATCH`].
    pub(super) fn len(&self) -> usize {
        self.messages.len() + usize::from(self.train.is_some()) + self.tcp_packets.len()
    }

    /// True when nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0 && self.tcp_actions.is_empty()
    }

    /// Ends the train being gathered and groups the messages by source address (stable:
    /// each peer's messages keep their order). To call before reading [`Self::messages`].
    pub(super) fn finish(&mut self) {
        self.end_train();
        self.messages.sort_by_key(|m| m.from);
    }

    /// The UDP messages, after [`Self::finish`].
    pub(super) fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The bytes the messages index.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The ICE-TCP packets and their bytes.
    pub(super) fn tcp_packets(&self) -> (&[TcpPacket], &[u8]) {
        (&self.tcp_packets, &self.tcp_bytes)
    }

    /// What the ICE-TCP connections are to be told, after their packets.
    pub(super) fn tcp_actions(&self) -> &[TcpAction] {
        &self.tcp_actions
    }

    /// From now on packets are queued one message each: the kernel refused `UDP_SEGMENT`.
    pub(super) fn disable_segmentation(&mut self) {
        self.segmentation = false;
    }

    /// Whether trains are gathered (false once the kernel refused them).
    #[cfg(test)]
    pub(super) fn segmentation(&self) -> bool {
        self.segmentation
    }

    /// Forgets everything queued (after sending it), keeping the arenas' memory.
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
        self.train = None;
        self.tcp_bytes.clear();
        self.tcp_packets.clear();
        self.tcp_actions.clear();
    }

    /// Every datagram queued, as the network would carry it (trains cut into their
    /// segments), with its path: UDP ones first (grouped by source), then ICE-TCP ones.
    /// For tests that look at what the hub sends; the sender does not need it.
    #[cfg(test)]
    pub(super) fn datagrams(&mut self) -> Vec<(Path, Vec<u8>)> {
        self.finish();
        let mut out = Vec::new();
        for m in split_into_datagrams(&self.messages) {
            let path = Path {
                remote: m.to,
                local: m.from,
                tcp: None,
            };
            out.push((path, self.bytes[m.start..m.start + m.len].to_vec()));
        }
        for p in &self.tcp_packets {
            let path = Path {
                remote: SocketAddr::from(([0, 0, 0, 0], 0)),
                local: None,
                tcp: Some(p.conn),
            };
            out.push((path, self.tcp_bytes[p.start..p.start + p.len].to_vec()));
        }
        out
    }
}

/// The messages with every train cut into its datagrams, for a kernel without
/// segmentation (and for [`Transmits::datagrams`]).
pub(super) fn split_into_datagrams(messages: &[Message]) -> Vec<Message> {
    let mut out = Vec::new();
    for m in messages {
        let size = if m.segment > 0 {
            usize::from(m.segment)
        } else {
            m.len
        };
        let mut at = m.start;
        while at < m.start + m.len {
            let len = size.min(m.start + m.len - at);
            out.push(Message {
                start: at,
                len,
                segment: 0,
                ..*m
            });
            at += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(to: &str, from: Option<&str>) -> Path {
        Path {
            remote: to.parse().unwrap(),
            local: from.map(|f| f.parse().unwrap()),
            tcp: None,
        }
    }

    /// A picture's packets (equal sizes, a shorter last one) become one message; a larger
    /// packet, another path or a lone datagram start a new one; each peer's order is kept
    /// when messages are grouped by source.
    #[test]
    fn a_pictures_packets_to_one_path_become_one_train() {
        let (a, b) = (
            path("10.0.0.2:1", Some("10.0.0.1")),
            path("10.0.0.3:1", None),
        );
        let mut t = Transmits::default();
        for len in [1100, 1100, 1100, 300, 1200] {
            t.push_packet(a, &vec![1; len]);
        }
        t.push_packet(b, &[2; 500]);
        t.push(a, b"sr");
        t.finish();
        let shape: Vec<(SocketAddr, usize, u16)> = t
            .messages()
            .iter()
            .map(|m| (m.to, m.len, m.segment))
            .collect();
        let (a, b) = (a.remote, b.remote);
        // b's message has no source: grouped first.
        assert_eq!(
            shape,
            vec![(b, 500, 0), (a, 3600, 1100), (a, 1200, 0), (a, 2, 0)]
        );
        let lens: Vec<usize> = t.datagrams().iter().map(|(_, d)| d.len()).collect();
        assert_eq!(lens, vec![500, 1100, 1100, 1100, 300, 1200, 2]);
    }

    #[test]
    fn without_segmentation_every_packet_is_its_own_message() {
        let a = path("10.0.0.2:1", None);
        let mut t = Transmits::default();
        t.disable_segmentation();
        t.push_packet(a, &[1; 1000]);
        t.push_packet(a, &[1; 1000]);
        t.finish();
        assert_eq!(t.messages().len(), 2);
        assert!(t.messages().iter().all(|m| m.segment == 0));
    }
}
