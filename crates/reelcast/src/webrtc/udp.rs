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
//! Owns: binding the media socket, receiving a datagram with its local address, the
//! address form on the wire. Does not own: batching sends (`outbox`), routing (`hub`).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self, recvmsg, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
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
                warn!("no IPv6 on the media port ({e}): IPv4 only");
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
pub(super) fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::in_pktinfo)
}

/// Receives one datagram into `buf` with its source and local addresses (canonical: an
/// IPv4 peer on a dual-stack socket is an IPv4 address). Cancel-safe.
pub(super) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<Received> {
    socket
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(control),
                MsgFlags::MSG_DONTWAIT,
            )?;
            let source = msg
                .address
                .as_ref()
                .and_then(socket_addr)
                .ok_or_else(|| io::Error::other("datagram without a source address"))?;
            let mut local = None;
            for cmsg in msg.cmsgs()? {
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
            Ok(Received {
                len: msg.bytes,
                path: Path {
                    remote: canonical(source),
                    local,
                    tcp: None,
                },
            })
        })
        .await
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

    /// A datagram sent to 127.0.0.3 on a socket bound to every address says it arrived
    /// at 127.0.0.3, whoever sent it, over IPv4 and IPv6 alike.
    #[tokio::test]
    async fn received_datagrams_name_the_local_address_they_reached() {
        let server = bind(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        client.send_to(b"hello", ("127.0.0.3", port)).await.unwrap();
        let mut buf = [0u8; 64];
        let mut control = control_buffer();
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            recv(&server, &mut buf, &mut control),
        )
        .await
        .expect("a datagram within 5 s")
        .unwrap();
        assert_eq!(&buf[..got.len], b"hello");
        assert_eq!(got.path.remote, client.local_addr().unwrap());
        assert_eq!(got.path.local, Some("127.0.0.3".parse().unwrap()));

        if server.local_addr().unwrap().is_ipv6() {
            let client6 = UdpSocket::bind("[::1]:0").await.unwrap();
            client6.send_to(b"six", ("::1", port)).await.unwrap();
            let got = recv(&server, &mut buf, &mut control).await.unwrap();
            assert_eq!(got.path.remote, client6.local_addr().unwrap());
            assert_eq!(got.path.local, Some("::1".parse().unwrap()));
        }
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
