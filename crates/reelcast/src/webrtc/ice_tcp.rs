//! ICE-TCP (RFC 6544): the media port over TCP, for viewers whose network blocks UDP.
//!
//! We announce passive TCP candidates; the browser connects, and every packet it would
//! have sent as a UDP datagram comes framed on the stream (RFC 4571, [`tcp_framing`]).
//! Each accepted connection's packets go to the hub as datagrams of a [`Path`] that names
//! the connection ([`TcpId`]): the hub routes them exactly as UDP ones (STUN by our ufrag,
//! the rest by the path it proved), and whatever it sends on such a path is framed onto
//! that connection ([`TcpConn::send`]) instead of the UDP socket.
//!
//! What a client can cost is bounded here: connections are admitted by a [`Gate`] (in all
//! and per address); a connection that brings no authenticated ICE check within
//! [`FIRST_CHECK_DEADLINE`] is closed; an inbound frame larger than the UDP path takes ends
//! the connection; the bytes queued to a connection are capped ([`MAX_QUEUED_BYTES`]:
//! packets that do not fit are dropped whole, as a full UDP buffer drops them) and a
//! connection whose peer stops reading for [`WRITE_STALL`] is closed. One task per
//! connection, reading and writing; the hub is told of its packets on one bounded channel,
//! so a peer that sends faster than the hub reads is slowed by TCP itself.
//!
//! Owns: the listener, each connection's task and its send queue. Must not: know viewers,
//! STUN or DTLS (the hub decides what a packet is and whether the connection is proven).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info};

use super::ids::TcpId;
use super::tcp_framing::{self, FrameReader, MAX_INBOUND_FRAME};
use super::udp::{self, Path};
use crate::gate::Gate;

/// A connection that has not brought an ICE check signed with a viewer's password by then
/// is closed: a browser sends its first check as soon as the connection is up.
pub(super) const FIRST_CHECK_DEADLINE: Duration = Duration::from_secs(5);

/// Bytes waiting to be written to one connection. About 2 s of a 4 Mbit/s stream: room for
/// a late joiner's GOP burst; past it, packets are dropped whole (NACK/RTX and the next
/// keyframe recover, as after UDP loss). The task holds at most twice this (one chunk being
/// written, one filling).
pub(super) const MAX_QUEUED_BYTES: usize = 1 << 20;

/// A connection whose peer has not taken a queued chunk within this long is closed.
pub(super) const WRITE_STALL: Duration = Duration::from_secs(10);

/// Spare queue room kept between writes (a few packets' worth); more is given back.
const KEPT_SPARE_BYTES: usize = 16 << 10;

/// Packets from all connections waiting for the hub.
const TO_HUB_CAPACITY: usize = 1024;

/// What the connections tell the hub, in order per connection.
pub(super) enum TcpInput {
    Opened { id: TcpId, conn: Arc<TcpConn> },
    Packet { path: Path, data: Bytes },
    Closed { id: TcpId },
}

/// The hub's handle to one connection: its send queue and whether the hub has seen an
/// authenticated check on it.
pub(super) struct TcpConn {
    queue: Mutex<BytesMut>,
    wake: Notify,
    proven: AtomicBool,
    closing: AtomicBool,
    dropped: AtomicU64,
}

impl TcpConn {
    fn new() -> Self {
        TcpConn {
            queue: Mutex::new(BytesMut::new()),
            wake: Notify::new(),
            proven: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `packet` framed; dropped whole when the queue is full. The writer is woken
    /// by [`Self::flush`], once per batch.
    pub(super) fn send(&self, packet: &[u8]) {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.len() + tcp_framing::framed_len(packet) > MAX_QUEUED_BYTES
            || !tcp_framing::frame_into(&mut queue, packet)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes the writer for what was queued.
    pub(super) fn flush(&self) {
        self.wake.notify_one();
    }

    /// The hub saw an authenticated ICE check on this connection: it may stay.
    pub(super) fn prove(&self) {
        self.proven.store(true, Ordering::Relaxed);
    }

    /// Ends the connection (its viewer is gone).
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn take_queued(&self) -> Bytes {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let chunk = queue.split().freeze();
        // The queue's spare room shares the chunk's allocation: after a burst (a late
        // joiner's GOP) let the whole of it go once written, instead of keeping it.
        if queue.capacity() > KEPT_SPARE_BYTES {
            *queue = BytesMut::new();
        }
        chunk
    }
}

/// Accepts ICE-TCP connections on `listener` until the hub is gone.
pub(super) fn spawn(listener: TcpListener, gate: Arc<Gate>) -> mpsc::Receiver<TcpInput> {
    let (tx, rx) = mpsc::channel(TO_HUB_CAPACITY);
    if let Ok(addr) = listener.local_addr() {
        info!("WebRTC ICE-TCP on tcp {addr}");
    }
    tokio::spawn(accept_loop(listener, gate, tx));
    rx
}

async fn accept_loop(listener: TcpListener, gate: Arc<Gate>, to_hub: mpsc::Sender<TcpInput>) {
    let mut next_id = 0u64;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                debug!("ice-tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if to_hub.is_closed() {
            return;
        }
        let permit = match gate.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                debug!("ice-tcp connection refused: {refused}");
                continue;
            }
        };
        next_id += 1;
        let id = TcpId(next_id);
        let to_hub = to_hub.clone();
        tokio::spawn(async move {
            serve(stream, id, to_hub).await;
            drop(permit);
        });
    }
}

/// One connection: frames in to the hub, queued packets out, until either side ends, the
/// first-check deadline passes unproven, or the peer stops reading.
async fn serve(stream: TcpStream, id: TcpId, to_hub: mpsc::Sender<TcpInput>) {
    let (Ok(remote), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    // Media is paced by the source: never hold a small packet back.
    let _ = stream.set_nodelay(true);
    let path = Path {
        remote: udp::canonical(remote),
        local: Some(local.ip().to_canonical()),
        tcp: Some(id),
    };
    let conn = Arc::new(TcpConn::new());
    let opened = TcpInput::Opened {
        id,
        conn: conn.clone(),
    };
    if to_hub.send(opened).await.is_err() {
        return;
    }
    let (reader, writer) = stream.into_split();
    let why = tokio::select! {
        why = read_packets(reader, path, &to_hub) => why,
        why = write_queued(writer, &conn) => why,
        why = first_check_deadline(&conn) => why,
    };
    let dropped = conn.dropped.load(Ordering::Relaxed);
    debug!(tcp = id.0, peer = %path.remote, dropped, "ice-tcp connection closed: {why}");
    let _ = to_hub.send(TcpInput::Closed { id }).await;
}

async fn read_packets(
    mut reader: OwnedReadHalf,
    path: Path,
    to_hub: &mpsc::Sender<TcpInput>,
) -> &'static str {
    let mut frames = FrameReader::new(MAX_INBOUND_FRAME);
    let mut buf = [0u8; 4096];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return "closed by the peer",
            Ok(n) => n,
            Err(_) => return "read error",
        };
        frames.push(&buf[..n]);
        loop {
            match frames.next_packet() {
                Ok(Some(data)) => {
                    if to_hub.send(TcpInput::Packet { path, data }).await.is_err() {
                        return "server stopping";
                    }
                }
                Ok(None) => break,
                Err(_) => return "frame larger than any packet",
            }
        }
    }
}

async fn write_queued(mut writer: OwnedWriteHalf, conn: &TcpConn) -> &'static str {
    loop {
        conn.wake.notified().await;
        if conn.closing.load(Ordering::Relaxed) {
            let _ = writer.shutdown().await;
            return "its viewer ended";
        }
        let chunk = conn.take_queued();
        if chunk.is_empty() {
            continue;
        }
        match tokio::time::timeout(WRITE_STALL, writer.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return "write error",
            Err(_) => return "the peer stopped reading",
        }
    }
}

async fn first_check_deadline(conn: &TcpConn) -> &'static str {
    tokio::time::sleep(FIRST_CHECK_DEADLINE).await;
    if conn.proven.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    "no authenticated ICE check in time"
}

/// The TCP candidates for the UDP ones: the same addresses on the ICE-TCP port.
pub(super) fn tcp_candidates(udp: &[SocketAddr], port: u16) -> Vec<SocketAddr> {
    udp.iter().map(|c| SocketAddr::new(c.ip(), port)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that reads nothing costs at most the queue's bound: packets past it are
    /// dropped whole (the queue stays a sequence of whole frames), and counted.
    #[test]
    fn a_full_queue_drops_whole_packets_and_never_grows_past_its_bound() {
        let conn = TcpConn::new();
        let packet = [7u8; 1200];
        let sent = 2 * MAX_QUEUED_BYTES / packet.len();
        for _ in 0..sent {
            conn.send(&packet);
        }
        let queued = conn.take_queued();
        assert!(queued.len() <= MAX_QUEUED_BYTES, "{}", queued.len());
        assert_eq!(queued.len() % tcp_framing::framed_len(&packet), 0);
        let kept = queued.len() / tcp_framing::framed_len(&packet);
        assert_eq!(conn.dropped.load(Ordering::Relaxed) as usize, sent - kept);
        // Once written, there is room again.
        conn.send(&packet);
        assert_eq!(conn.take_queued().len(), tcp_framing::framed_len(&packet));
    }
}
