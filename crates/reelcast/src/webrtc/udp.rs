//! The media port's socket and what the platform must be asked so that every answer to a
//! peer leaves from the local address that peer wrote to.
//!
//! A socket bound to the unspecified address (`0.0.0.0`, `[::]`) hears every local address,
//! but the kernel picks a reply's source address by route: a browser that sent to
//! 127.0.0.1 from its LAN address is answered *from* the LAN address, and drops the answer
//! (an ICE check is only answered by the address it was sent to). So each datagram's
//! destination address is received with it (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), the hub
//! keeps it with the peer's address as a [`Path`], and every datagram to that peer carries
//! it back as its source (a packet-info control message on each send, see `outbox`).
//!
//! Bound to the unspecified address, the socket is dual-stack (`[::]` with `IPV6_V6ONLY`
//! off): IPv4 peers appear as v4-mapped IPv6 addresses on the wire, and are turned into
//! plain IPv4 ones here ([`canonical`]) so that the rest of the server, str0m and the SDP
//! see the addresses the peers wrote. Where IPv6 is unavailable it falls back to `0.0.0.0`.
//!
//! Datagrams are received in batches ([`recv_batch`]: one `recvmmsg` takes all that is
//! queued, up to [`BATCH`]): a picture's packets arrive together, and one system call
//! and one wake-up per picture instead of one per packet is most of the intake's cost
//! that is not str0m's.
//!
//! Owns: binding the media socket, receiving datagrams with their local addresses, the
//! address form on the wire. Does not own: batching sends (`outbox`), routing (`hub`).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    self, recvmmsg, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::warn;

use super::ids::TcpId;

/// Where one peer is, and which of our addresses it reached: replies to `remote` leave
/// from `local` (`None`: the kernel chooses, as for a socket bound to one address).
/// `tcp` names the ICE-TCP connection the peer's packets came on (`None`: UDP); replies
/// go back on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Path {
    pub remote: SocketAddr,
    pub local: Option<IpAddr>,
    pub tcp: Option<TcpId>,
}

impl Path {
    /// What the hub routes a peer's later packets by: its address on that transport.
    pub(super) fn route(&self) -> (SocketAddr, Option<TcpId>) {
        (self.remote, self.tcp)
    }
}

/// One datagram received: its length in the buffer, who sent it, where it arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    pub len: usize,
    pub path: Path,
}

/// Binds the media port: on `ip`, or on every address of both families when `ip` is
/// unspecified. Asks for each datagram's destination address.
pub fn bind(ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let socket = if ip.is_unspecified() {
        match dual_stack(port) {
            Ok(socket) => socket,
            Err(e) => {
                warn!("media port not bound on IPv6 and IPv4 both ({e}): trying IPv4 only");
                plain(SocketAddr::new(
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    port,
                ))?
            }
        }
    } else {
        plain(SocketAddr::new(ip, port))?
    };
    let v6 = socket.local_addr()?.is_ipv6();
    let fd = &socket;
    if v6 {
        socket::setsockopt(fd, sockopt::Ipv6RecvPacketInfo, &true)?;
    }
    // IPv4 datagrams on a dual-stack socket carry IP_PKTINFO when this is on.
    if !v6 || ip.is_unspecified() {
        socket::setsockopt(fd, sockopt::Ipv4PacketInfo, &true)?;
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

fn dual_stack(port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(socket)
}

fn plain(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Room for one packet-info control message of either family.
fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::in_pktinfo)
}

/// Datagrams one receive call takes at most: a 720p picture's packets arrive together
/// (about 8 at 2 Mbit/s), so one call takes a picture.
pub(super) const BATCH: usize = 16;
/// Room for one datagram. Longer ones (nothing WebRTC sends at our MTU) arrive truncated
/// and are dropped.
pub(super) const DATAGRAM_MAX: usize = 2048;

/// Room for [`BATCH`] datagrams and what the last receive put there. Made once per
/// socket loop: receiving allocates only the kernel's message headers.
pub(super) struct RecvBatch {
    buf: Vec<u8>,
    /// Which slot of `buf` each received datagram is in, and its length and path.
    got: Vec<(usize, Received)>,
    /// Datagrams of the last receive dropped as truncated.
    truncated: usize,
}

impl RecvBatch {
    pub(super) fn new() -> Self {
        RecvBatch {
            buf: vec![0; BATCH * DATAGRAM_MAX],
            got: Vec::with_capacity(BATCH),
            truncated: 0,
        }
    }

    /// The datagrams of the last receive, in the order they arrived.
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (&[u8], Path)> + '_ {
        self.got.iter().map(|(slot, r)| {
            let start = slot * DATAGRAM_MAX;
            (&self.buf[start..start + r.len], r.path)
        })
    }

    /// Datagrams the last receive dropped because they did not fit [`DATAGRAM_MAX`].
    pub(super) fn truncated(&self) -> usize {
        self.truncated
    }

    /// One `recvmmsg` without waiting. `Ok` when every slot was filled (more may be
    /// queued); `WouldBlock` when the queue was emptied, whether or not anything came: the
    /// caller then has the socket's readiness cleared without a further empty call.
    fn fill(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        self.got.clear();
        self.truncated = 0;
        // Made per call: the kernel shortens each header's address and control lengths to
        // what it wrote, and nix does not restore them, so reused headers could truncate
        // the next call's packet info.
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(control_buffer()));
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buf
            .chunks_exact_mut(DATAGRAM_MAX)
            .map(|chunk| [IoSliceMut::new(chunk)])
            .collect();
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut received = 0;
        for (slot, msg) in results.enumerate() {
            received += 1;
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                self.truncated += 1;
                continue;
            }
            let Some(source) = msg.address.as_ref().and_then(socket_addr) else {
                continue;
            };
            let mut local = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    match cmsg {
                        ControlMessageOwned::Ipv4PacketInfo(info) => {
                            // `ipi_spec_dst`: the local address a reply should come from.
                            let octets = info.ipi_spec_dst.s_addr.to_ne_bytes();
                            local = Some(IpAddr::from(octets));
                        }
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            local = Some(IpAddr::from(info.ipi6_addr.s6_addr).to_canonical());
                        }
                        _ => {}
                    }
                }
            }
            let received = Received {
                len: msg.bytes.min(DATAGRAM_MAX),
                path: Path {
                    remote: canonical(source),
                    local,
                    tcp: None,
                },
            };
            self.got.push((slot, received));
        }
        if received < BATCH {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }
}

/// Receives what is queued on the socket, up to [`BATCH`] datagrams, into `batch`,
/// each with its source and local addresses (canonical: an IPv4 peer on a dual-stack
/// socket is an IPv4 address); waits while nothing is. Cancel-safe: nothing is read but
/// in the poll that returns it.
pub(super) async fn recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<()> {
    loop {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || batch.fill(socket.as_raw_fd())) {
            Ok(()) => return Ok(()),
            // The queue is empty; readiness is cleared, so the next call waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !batch.got.is_empty() || batch.truncated > 0 {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// The address as the rest of the server sees it: v4-mapped IPv6 as plain IPv4.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The address as a socket of the given family must be given it: IPv4 as v4-mapped IPv6
/// on an IPv6 (dual-stack) socket.
pub(super) fn on_wire(addr: SocketAddr, v6_socket: bool) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v6_socket => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    /// The next batch, within 5 s.
    async fn next(server: &UdpSocket, batch: &mut RecvBatch) -> io::Result<Vec<(Vec<u8>, Path)>> {
        tokio::time::timeout(Duration::from_secs(5), recv_batch(server, batch))
            .await
            .expect("datagrams within 5 s")?;
        Ok(batch.datagrams().map(|(d, p)| (d.to_vec(), p)).collect())
    }

    /// Lets loopback deliver what was sent before the receive under test, so one call
    /// finds it all queued.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Datagrams sent to 127.0.0.3 and ::1 on a socket bound to every address come in
    /// one receive call, in order, each saying whom it came from and which local address
    /// it reached, over IPv4 and IPv6 alike.
    #[tokio::test]
    async fn one_call_takes_every_queued_datagram_with_its_addresses() {
        let server = bind(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0).unwrap();
        let port = server.local_addr().unwrap().port();
        let v6 = server.local_addr().unwrap().is_ipv6();
        let client = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let client6 = UdpSocket::bind("[::1]:0").await.ok().filter(|_| v6);
        let mut sent = Vec::new();
        for i in 0..5u8 {
            let data = vec![i; 100 + 300 * usize::from(i)];
            if let (Some(c6), 1) = (&client6, i % 2) {
                c6.send_to(&data, ("::1", port)).await.unwrap();
                sent.push((data, c6.local_addr().unwrap(), "::1"));
            } else {
                client.send_to(&data, ("127.0.0.3", port)).await.unwrap();
                sent.push((data, client.local_addr().unwrap(), "127.0.0.3"));
            }
        }
        settle().await;
        let mut batch = RecvBatch::new();
        let got = next(&server, &mut batch).await.unwrap();
        assert_eq!(got.len(), sent.len(), "all in one call");
        for ((data, path), (want, from, local)) in got.iter().zip(&sent) {
            assert_eq!(data, want);
            assert_eq!(path.remote, *from);
            assert_eq!(path.local, Some(local.parse().unwrap()));
            assert_eq!(path.tcp, None);
        }
    }

    /// More than a batch waits for the next call; a datagram over [`DATAGRAM_MAX`] is
    /// dropped (and counted), not passed on cut short, and the ones around it come.
    #[tokio::test]
    async fn a_full_batch_leaves_the_rest_and_oversized_datagrams_are_dropped() {
        let server = bind(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0).unwrap();
        let to = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..BATCH + 3 {
            let len = if i == 2 { DATAGRAM_MAX + 1 } else { 10 + i };
            client.send_to(&vec![i as u8; len], to).await.unwrap();
        }
        settle().await;
        let mut batch = RecvBatch::new();
        let first = next(&server, &mut batch).await.unwrap();
        assert_eq!(batch.truncated(), 1);
        assert_eq!(
            first.len(),
            BATCH - 1,
            "a full call: {BATCH} read, one dropped"
        );
        let second = next(&server, &mut batch).await.unwrap();
        assert_eq!(batch.truncated(), 0);
        let lens: Vec<usize> = first.iter().chain(&second).map(|(d, _)| d.len()).collect();
        let want: Vec<usize> = (0..BATCH + 3).filter(|&i| i != 2).map(|i| 10 + i).collect();
        assert_eq!(lens, want);
        // A datagram of exactly the room is whole.
        client.send_to(&vec![7u8; DATAGRAM_MAX], to).await.unwrap();
        let got = next(&server, &mut batch).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.len(), DATAGRAM_MAX);
    }

    /// A socket error comes back as an error, and the datagram queued behind it comes on
    /// the next call. (The error: ICMP port unreachable, which Linux reports on a
    /// connected socket only, before any queued datagram; an error alone wakes no reader.)
    #[tokio::test]
    async fn errors_are_returned_and_receiving_goes_on() {
        let server = bind(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0).unwrap();
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        server.connect(closed_addr).await.unwrap();
        server.send(b"anyone?").await.unwrap();
        settle().await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        server.connect(client.local_addr().unwrap()).await.unwrap();
        client
            .send_to(b"again", server.local_addr().unwrap())
            .await
            .unwrap();
        settle().await;
        let mut batch = RecvBatch::new();
        let err = next(&server, &mut batch).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let got = next(&server, &mut batch).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"again");
    }

    #[test]
    fn addresses_are_mapped_on_the_wire_and_plain_inside() {
        let v4: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let mapped = on_wire(v4, true);
        assert_eq!(mapped, "[::ffff:10.0.0.1]:5".parse().unwrap());
        assert_eq!(canonical(mapped), v4);
        assert_eq!(on_wire(v4, false), v4);
        let v6: SocketAddr = "[fd00::1]:5".parse().unwrap();
        assert_eq!(on_wire(v6, true), v6);
        assert_eq!(canonical(v6), v6);
    }
}
