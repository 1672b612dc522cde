//! Outgoing datagrams of the hub, sent in batches: one `sendmmsg(2)` per up to
//! [`BATCH`] datagrams instead of one `sendto(2)` each.
//!
//! Fanning one frame out to N viewers makes N × (packets per frame) datagrams at once, each
//! to another address; a system call per datagram was the largest single cost of the hub.
//! Datagrams wait here only until the hub finishes the event it is handling (it flushes
//! after every command, datagram and timeout), so batching adds no latency worth naming.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::net::UdpSocket;
use tracing::debug;

/// Datagrams per system call. The kernel takes up to 1,024; past a few dozen the saving
/// per datagram no longer changes.
const BATCH: usize = 64;

/// Datagrams to send on one socket.
pub(super) struct Outbox {
    socket: Arc<UdpSocket>,
    datagrams: Vec<Vec<u8>>,
    addresses: Vec<Option<SockaddrStorage>>,
}

impl Outbox {
    pub fn new(socket: Arc<UdpSocket>) -> Self {
        Outbox {
            socket,
            datagrams: Vec::with_capacity(BATCH),
            addresses: Vec::with_capacity(BATCH),
        }
    }

    /// Queues a datagram; a full batch goes out at once.
    pub fn push(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.datagrams.push(datagram);
        self.addresses.push(Some(SockaddrStorage::from(to)));
        if self.datagrams.len() >= BATCH {
            self.flush();
        }
    }

    /// Sends everything queued. UDP is lossy anyway: what the socket refuses (its buffer is
    /// full, or a viewer's address is unreachable) is dropped as a network would drop it,
    /// and NACK/RTX or the next packet recovers it.
    pub fn flush(&mut self) {
        if self.datagrams.is_empty() {
            return;
        }
        // Made per flush: the headers hold raw pointers, so they cannot live in the hub's
        // future (which must be `Send`); a few kilobytes next to dozens of datagrams.
        let mut headers = MultiHeaders::preallocate(self.datagrams.len(), None);
        let mut start = 0;
        while start < self.datagrams.len() {
            let slices: Vec<[IoSlice<'_>; 1]> = self.datagrams[start..]
                .iter()
                .map(|d| [IoSlice::new(d)])
                .collect();
            let sent = sendmmsg(
                self.socket.as_raw_fd(),
                &mut headers,
                &slices,
                &self.addresses[start..],
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|results| results.count());
            match sent {
                Ok(0) => break,
                Ok(n) => start += n,
                Err(Errno::EINTR) => {}
                Err(e @ (Errno::EAGAIN | Errno::ENOBUFS)) => {
                    // The send buffer is full: the rest would be refused one by one.
                    debug!(
                        "udp send buffer full: {} datagrams dropped ({e})",
                        self.datagrams.len() - start
                    );
                    break;
                }
                Err(e) => {
                    // The first datagram was refused; the rest may still go.
                    debug!("send to {:?} failed: {e}", self.addresses[start]);
                    start += 1;
                }
            }
        }
        self.datagrams.clear();
        self.addresses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_datagram_arrives_in_order_at_its_own_address() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Outbox::new(Arc::new(sender));
        // More than one batch, alternating between two receivers.
        for i in 0..(BATCH + 10) as u16 {
            let to = if i % 2 == 0 { &a } else { &b };
            outbox.push(to.local_addr().unwrap(), i.to_be_bytes().to_vec());
        }
        outbox.flush();
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
        let mut outbox = Outbox::new(Arc::new(sender));
        // An IPv6 destination on an IPv4 socket is refused by the kernel.
        outbox.push("[::1]:9".parse().unwrap(), b"lost".to_vec());
        outbox.push(good.local_addr().unwrap(), b"kept".to_vec());
        outbox.flush();
        let mut buf = [0u8; 8];
        let n = good.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"kept");
    }
}
