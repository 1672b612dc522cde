//! Which addresses go into our ICE candidates.
//!
//! `ip` lists them (e.g. a public IPv4 behind NAT, a private one, an IPv6 one). Without
//! it, a server bound to one address announces that one; a server bound to every address
//! announces every address of the host's interfaces (as MediaMTX does), so a browser
//! elsewhere on the LAN plays with no setting at all: IPv4 first, then IPv6, loopback
//! last (a browser prefers the first it can reach). Link-local addresses are left out:
//! they need an interface scope that an SDP candidate cannot carry.
//!
//! Must not: bind or send. Reads the interface list once, at start.

use std::net::IpAddr;

use crate::config::Settings;

/// The addresses to announce, for a media socket that takes IPv6 (`v6`) or IPv4 only.
pub fn announced_ips(settings: &Settings, v6: bool) -> Vec<IpAddr> {
    if !settings.ip.is_empty() {
        return settings.ip.clone();
    }
    if !settings.ip_local.is_unspecified() {
        return vec![settings.ip_local];
    }
    let interfaces: Vec<IpAddr> = match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter_map(|a| {
                let addr = a.address?;
                if let Some(v4) = addr.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list this host's addresses ({e}): announcing loopback");
            Vec::new()
        }
    };
    let mut ips = host_candidates(&interfaces, v6);
    if ips.is_empty() {
        ips.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    ips
}

/// The interface addresses worth a candidate, in order of preference, without repeats.
fn host_candidates(interfaces: &[IpAddr], with_v6: bool) -> Vec<IpAddr> {
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_unspecified() && !v4.is_multicast(),
        IpAddr::V6(v6) => {
            // fe80::/10: link-local.
            with_v6
                && (v6.segments()[0] & 0xffc0) != 0xfe80
                && !v6.is_unspecified()
                && !v6.is_multicast()
                && v6.to_ipv4_mapped().is_none()
        }
    };
    let rank = |ip: &IpAddr| (ip.is_loopback(), ip.is_ipv6());
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in interfaces.iter().filter(|ip| usable(ip)) {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    ips.sort_by_key(rank);
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn every_interface_address_but_link_local_ipv4_first_loopback_last() {
        let interfaces = ips(&[
            "127.0.0.1",
            "::1",
            "192.0.2.2",
            "fd00::2",
            "fe80::fc:ff:fe00:1",
            "169.254.1.1",
            "10.203.0.1",
            "192.0.2.2",
        ]);
        assert_eq!(
            host_candidates(&interfaces, true),
            ips(&["192.0.2.2", "10.203.0.1", "fd00::2", "127.0.0.1", "::1"])
        );
        // A socket without IPv6 announces no IPv6 address.
        assert_eq!(
            host_candidates(&interfaces, false),
            ips(&["192.0.2.2", "10.203.0.1", "127.0.0.1"])
        );
    }

    #[test]
    fn ip_wins_then_the_bind_address() {
        let mut s = Settings {
            ip_local: "10.1.2.3".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(announced_ips(&s, true), ips(&["10.1.2.3"]));
        s.ip = ips(&["203.0.113.7", "2001:db8::7"]);
        assert_eq!(announced_ips(&s, true), s.ip);
    }

    #[test]
    fn unbound_announces_this_hosts_addresses_with_loopback() {
        let listed = announced_ips(&Settings::default(), true);
        assert!(listed.contains(&"127.0.0.1".parse().unwrap()), "{listed:?}");
    }
}
