//! Which stores a stream name may make the server fetch from: the operator's allow list.
//!
//! A name with a full URL (`vod://s3/https://host/BUCKET/KEY`) comes from a viewer, who
//! is not authenticated: without a list, any viewer could make the server request any
//! URL (SSRF). Such a name may reach only an endpoint the operator named:
//! - an entry of `aws_s3_allowed_endpoints` ([`AllowedEndpoint`], whose text form is
//!   `config::allowed_endpoint`'s);
//! - the endpoint of `aws_s3_endpoint`;
//! - a host that has its own `aws_s3_credentials.HOST[:PORT]`.
//!
//! A short name (`vod://s3/BUCKET/KEY`) goes to `aws_s3_endpoint` or AWS: always allowed.
//! The check runs before anything is resolved or connected, on the endpoint as a URL
//! parser reads it (so `0x7f.1` is `127.0.0.1`, and user-info or odd forms are refused).
//!
//! It also decides whether the endpoint may be at a private or local address
//! ([`Reach::private_ok`]): when `aws_s3_allow_private_addresses` is on, or when the
//! operator wrote the endpoint's host as that IP address itself (no DNS answer can
//! turn such an entry into another address). Names are checked after resolution by
//! `egress`.
//!
//! Pure: no I/O. Must not: resolve names or connect (`egress`, `client`).

use url::{Host, Url};

use crate::config::{AllowedEndpoint, HostPattern, Settings};

/// The endpoint of a name, as a URL parser reads it: what will be connected to.
struct Target {
    scheme: String,
    host: Host<String>,
    port: u16,
}

impl Target {
    fn parse(endpoint: &str) -> Option<Target> {
        let url = Url::parse(endpoint).ok()?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        plain.then_some(())?;
        Some(Target {
            scheme: url.scheme().to_string(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }
}

/// The entry allows the object `object` (bucket, then key segments) at `target`.
fn allows(entry: &AllowedEndpoint, target: &Target, object: &[&str]) -> bool {
    let host = match entry.host() {
        HostPattern::Any => true,
        HostPattern::Under(suffix) => {
            matches!(&target.host, Host::Domain(d) if d.ends_with(suffix.as_str()))
        }
        HostPattern::Exact(h) => *h == target.host,
    };
    host && entry.scheme().is_none_or(|s| s == target.scheme)
        && entry.port().is_none_or(|p| p == target.port)
        && entry.path().len() <= object.len()
        && entry.path().iter().zip(object).all(|(a, b)| a == b)
}

/// The entry names the target's host as that very IP address.
fn names_address(entry: &AllowedEndpoint, target: &Target) -> bool {
    matches!(entry.host(), HostPattern::Exact(h @ (Host::Ipv4(_) | Host::Ipv6(_))) if *h == target.host)
}

/// What the settings allow for one object's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The endpoint may be at a loopback, private, link-local or other non-public
    /// address.
    pub private_ok: bool,
}

/// Whether a name's `endpoint` (`None`: the short form) may be fetched for
/// `bucket`/`key`; `Err` is the reason, for `Restricted access: …`.
pub fn reach(
    settings: &Settings,
    endpoint: Option<&str>,
    bucket: &str,
    key: &str,
) -> Result<Reach, String> {
    let mut private_ok = settings.aws_s3_allow_private_addresses;
    let configured = settings
        .aws_s3_endpoint
        .as_deref()
        .and_then(AllowedEndpoint::parse);
    let Some(endpoint) = endpoint else {
        // The short form: the operator's own endpoint (or AWS).
        let literal = settings
            .aws_s3_endpoint
            .as_deref()
            .and_then(Target::parse)
            .is_some_and(|t| configured.as_ref().is_some_and(|e| names_address(e, &t)));
        private_ok |= literal;
        return Ok(Reach { private_ok });
    };
    let not_allowed = || {
        format!(
            "S3 endpoint {endpoint} is not an allowed store; the server's \
             aws_s3_allowed_endpoints setting lists the stores names may use"
        )
    };
    let target = Target::parse(endpoint).ok_or_else(not_allowed)?;
    let object: Vec<&str> = std::iter::once(bucket).chain(key.split('/')).collect();
    let credential_hosts = settings
        .aws_s3_host_credentials
        .keys()
        .filter_map(|h| AllowedEndpoint::parse(h));
    let mut allowed = false;
    for entry in settings
        .aws_s3_allowed_endpoints
        .iter()
        .cloned()
        .chain(configured)
        .chain(credential_hosts)
    {
        if allows(&entry, &target, &object) {
            allowed = true;
            private_ok |= names_address(&entry, &target);
        }
    }
    if allowed {
        Ok(Reach { private_ok })
    } else {
        Err(not_allowed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, v, &Origin::Default).unwrap();
        }
        s
    }

    fn check(s: &Settings, endpoint: &str, object: &str) -> Result<Reach, String> {
        let (bucket, key) = object.split_once('/').unwrap();
        reach(s, Some(endpoint), bucket, key)
    }

    #[test]
    fn by_default_no_full_url_name_is_allowed_and_the_reason_names_the_setting() {
        let s = settings(&[]);
        let e = check(&s, "http://127.0.0.1:9000", "b/k.mp4").unwrap_err();
        assert_eq!(
            e,
            "S3 endpoint http://127.0.0.1:9000 is not an allowed store; the server's \
             aws_s3_allowed_endpoints setting lists the stores names may use"
        );
        assert!(check(&s, "https://s3.amazonaws.com", "b/k.mp4").is_err());
        // The short form is the operator's own store.
        assert_eq!(
            reach(&s, None, "b", "k.mp4"),
            Ok(Reach { private_ok: false })
        );
    }

    #[test]
    fn hosts_ports_wildcards_and_prefixes() {
        let s = settings(&[(
            "aws_s3_allowed_endpoints",
            "minio.lan:9000, *.digitaloceanspaces.com, store.example, \
             https://cdn.example/media/public/, http://[fd00::5]:9000",
        )]);
        assert!(check(&s, "http://minio.lan:9000", "b/k").is_ok());
        assert!(check(&s, "http://MINIO.lan:9000", "b/k").is_ok());
        assert!(check(&s, "http://minio.lan:9001", "b/k").is_err());
        assert!(check(&s, "https://ams3.digitaloceanspaces.com", "b/k").is_ok());
        assert!(check(&s, "https://digitaloceanspaces.com", "b/k").is_err());
        assert!(check(&s, "https://evil-digitaloceanspaces.com", "b/k").is_err());
        assert!(check(&s, "http://store.example:1234", "b/k").is_ok());
        assert!(check(&s, "https://cdn.example", "media/public/a.mp4").is_ok());
        assert!(check(&s, "https://cdn.example:443", "media/public/x/a.mp4").is_ok());
        assert!(check(&s, "https://cdn.example", "media/publicity.mp4").is_err());
        assert!(check(&s, "https://cdn.example", "media/private/a.mp4").is_err());
        assert!(check(&s, "http://cdn.example", "media/public/a.mp4").is_err());
        assert!(check(&s, "https://cdn.example:8443", "media/public/a.mp4").is_err());
        assert!(check(&s, "http://[fd00::5]:9000", "b/k").is_ok());
        assert!(check(&s, "http://[fd00:0::5]:9000", "b/k").is_ok());
    }

    #[test]
    fn what_a_url_parser_would_connect_to_is_what_is_checked() {
        let s = settings(&[("aws_s3_allowed_endpoints", "127.0.0.1:9000,store.example")]);
        // User-info: the host is after the '@'.
        assert!(check(&s, "http://127.0.0.1:9000@evil.example", "b/k").is_err());
        assert!(check(&s, "http://store.example@127.0.0.2:9000", "b/k").is_err());
        // Other spellings of an address are that address.
        assert!(check(&s, "http://0x7f.0.0.1:9000", "b/k").is_ok());
        assert!(check(&s, "http://2130706433:9000", "b/k").is_ok());
        assert!(check(&s, "http://127.1:9001", "b/k").is_err());
        assert!(check(&s, "http://store.example/x", "b/k").is_err());
    }

    #[test]
    fn operator_named_endpoints_are_allowed_and_literal_addresses_may_be_private() {
        let s = settings(&[
            ("aws_s3_endpoint", "http://127.0.0.1:9000"),
            ("aws_s3_credentials.localhost:9100", "r;k;s"),
            ("aws_s3_credentials.10.0.0.7", "r;k;s"),
        ]);
        assert_eq!(
            check(&s, "http://127.0.0.1:9000", "b/k"),
            Ok(Reach { private_ok: true })
        );
        assert!(check(&s, "https://127.0.0.1:9000", "b/k").is_err());
        assert!(check(&s, "http://127.0.0.1:9001", "b/k").is_err());
        // A host name: allowed, but what it resolves to is checked.
        assert_eq!(
            check(&s, "http://localhost:9100", "b/k"),
            Ok(Reach { private_ok: false })
        );
        assert_eq!(
            check(&s, "http://10.0.0.7:1234", "b/k"),
            Ok(Reach { private_ok: true })
        );
        assert_eq!(reach(&s, None, "b", "k"), Ok(Reach { private_ok: true }));
        // `*` allows any host, never an address by itself.
        let any = settings(&[("aws_s3_allowed_endpoints", "*")]);
        assert_eq!(
            check(&any, "http://127.0.0.1:9000", "b/k"),
            Ok(Reach { private_ok: false })
        );
        let open = settings(&[
            ("aws_s3_allowed_endpoints", "*"),
            ("aws_s3_allow_private_addresses", "true"),
        ]);
        assert_eq!(
            check(&open, "http://localhost:1", "b/k"),
            Ok(Reach { private_ok: true })
        );
    }
}
