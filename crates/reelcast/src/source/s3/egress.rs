//! Which addresses S3 requests may connect to: public ones, unless the endpoint may be
//! private (`allowed::Reach::private_ok`).
//!
//! The check is on the address actually connected to: [`CheckedResolver`] is the S3
//! client's resolver; ureq connects only to the addresses it returns, so a name is
//! resolved once, its non-public answers dropped, and exactly what was checked is
//! connected to (a DNS answer that changes between a check and the connection, "DNS
//! rebinding", has nothing to slip through). Redirects are not followed (`client`), so
//! no other host is ever reached.
//!
//! Through a proxy (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`) the proxy resolves and
//! connects: then only the host as written can be checked ([`check_proxied_host`]:
//! an IP address must be public) and the proxy's own rules decide what a name reaches.
//! The proxy itself is the operator's and is not checked.
//!
//! Owns: the list of non-public ranges ([`is_public`]) and the resolver. Must not:
//! decide which stores are allowed (`allowed`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// A resolver's refusal: every address of the host is non-public. Travels through
/// ureq as `Error::Other` and becomes `S3Error::PrivateAddress`.
#[derive(Debug, thiserror::Error)]
#[error("the store's address is not a public one")]
pub(super) struct NotPublic;

/// Resolves with the system's resolver and keeps only the public addresses (all of
/// them when `private_ok`).
#[derive(Debug)]
pub(super) struct CheckedResolver {
    pub private_ok: bool,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let found = DefaultResolver::default().resolve(uri, config, timeout)?;
        // The proxy's own address is the operator's setting, not a viewer's.
        let is_proxy = config.proxy().is_some_and(|p| p.uri() == uri);
        if self.private_ok || is_proxy {
            return Ok(found);
        }
        let mut kept = self.empty();
        for addr in found.iter().filter(|a| is_public(a.ip())) {
            kept.push(*addr);
        }
        if kept.is_empty() {
            return Err(ureq::Error::Other(Box::new(NotPublic)));
        }
        Ok(kept)
    }
}

/// For a request that a proxy will carry (the proxy resolves the name): an IP address
/// written as the host must be public. `Err` when it is not.
pub(super) fn check_proxied_host(
    config: &Config,
    uri: &Uri,
    private_ok: bool,
) -> Result<(), NotPublic> {
    let Some(proxy) = config.proxy() else {
        return Ok(());
    };
    if private_ok || proxy.is_no_proxy(uri) || proxy.resolve_target() {
        // Not proxied, or resolved here (then `CheckedResolver` checks it).
        return Ok(());
    }
    let host = uri.host().unwrap_or_default();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(NotPublic),
        _ => Ok(()),
    }
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, ULA),
/// link-local (incl. cloud metadata at 169.254.169.254), unspecified, multicast,
/// broadcast, shared (CGNAT), documentation, benchmarking or reserved (IANA's
/// special-purpose registries). IPv6 forms that carry an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are judged by that address.
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", incl. 0.0.0.0
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback() // 127/8
        || ip.is_link_local() // 169.254/16: metadata services live here
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, shared (CGNAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24, protocol assignments
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15, benchmarking
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        // ::a.b.c.d, IPv4-compatible (deprecated).
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // 64:ff9b::/96, NAT64: reaches the IPv4 address inside.
        return is_public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 2002::/16, 6to4: the IPv4 address in bits 16..48.
        return is_public_v4(embedded(s[1], s[2]));
    }
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast() // ff00::/8
        || ip.is_unique_local() // fc00::/7
        || ip.is_unicast_link_local() // fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10, site-local (deprecated)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48, local NAT64
        || (s[0] == 0x100 && s[1..4] == [0; 3]) // 100::/64, discard
        || (s[0] == 0x2001 && s[1] < 0x200) // 2001::/23, protocol assignments (Teredo, ...)
        || (s[0] == 0x2001 && s[1] == 0xdb8) // 2001:db8::/32, documentation
        || (s[0] & 0xfff0) == 0x3ff0 // 3fff::/20, documentation
        || s[0] == 0x5f00 // 5f00::/16, SRv6 SIDs
        || s[0] == 0; // the rest of ::/16 (reserved)
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254", // cloud metadata
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.2",
            "198.51.100.7",
            "203.0.113.7",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fd00::2",
            "fc00::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::1",
            "2002:7f00:1::1", // 6to4 of 127.0.0.1
            "2002:a00:1::1",  // 6to4 of 10.0.0.1
            "2001:db8::1",
            "2001::1", // Teredo
            "100::1",
            "3fff::1",
        ] {
            assert!(!public(ip), "{ip} counted as public");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "52.216.8.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "2600:1f18::1",
            "2a03:b0c0::1",
            "::ffff:52.216.8.1",
            "64:ff9b::3408:801",
            "2002:3408:801::1",
        ] {
            assert!(public(ip), "{ip} counted as not public");
        }
    }

    fn timeout() -> NextTimeout {
        NextTimeout {
            after: ureq::unversioned::transport::time::Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            ..NextTimeout::default()
        }
    }

    #[test]
    fn the_resolver_refuses_names_and_addresses_that_are_not_public() {
        let config = Config::default();
        let strict = CheckedResolver { private_ok: false };
        for uri in [
            "http://localhost:9000/",
            "http://127.0.0.1:9000/",
            "http://[::1]:9000/",
        ] {
            let e = strict
                .resolve(&uri.parse().unwrap(), &config, timeout())
                .unwrap_err();
            assert!(
                matches!(&e, ureq::Error::Other(o) if o.is::<NotPublic>()),
                "{uri}: {e}"
            );
        }
        let open = CheckedResolver { private_ok: true };
        let found = open
            .resolve(
                &"http://127.0.0.1:9000/".parse().unwrap(),
                &config,
                timeout(),
            )
            .unwrap();
        assert_eq!(found.to_vec(), vec!["127.0.0.1:9000".parse().unwrap()]);
    }

    #[test]
    fn through_a_proxy_an_address_written_as_the_host_is_checked_and_the_proxy_is_not() {
        let proxy = ureq::Proxy::new("http://127.0.0.1:3128").unwrap();
        let config = Config::builder().proxy(Some(proxy.clone())).build();
        let uri = |u: &str| u.parse::<Uri>().unwrap();
        assert!(check_proxied_host(&config, &uri("http://127.0.0.1:9000/b/k"), false).is_err());
        assert!(check_proxied_host(&config, &uri("http://[fd00::1]:9000/b/k"), false).is_err());
        assert!(check_proxied_host(&config, &uri("http://127.0.0.1:9000/b/k"), true).is_ok());
        // A name: the proxy resolves it, by its own rules.
        assert!(check_proxied_host(&config, &uri("https://store.example/b/k"), false).is_ok());
        // Without a proxy the resolver checks instead.
        let direct = Config::builder().proxy(None).build();
        assert!(check_proxied_host(&direct, &uri("http://127.0.0.1:9000/b/k"), false).is_ok());
        // The operator's proxy on loopback is reachable, though viewers' stores there are not.
        let strict = CheckedResolver { private_ok: false };
        assert!(strict.resolve(proxy.uri(), &config, timeout()).is_ok());
    }
}
