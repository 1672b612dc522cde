//! One entry of `aws_s3_allowed_endpoints` as a value: [`AllowedEndpoint`].
//!
//! Owns: the entries' text forms (how one parses, how a list parses, how it reads
//! back). Must not: decide whether a request may go to a store (that is
//! `source::s3::allowed`, which reads these entries from `Settings`).

use std::fmt;

use url::{Host, Url};

/// One entry of `aws_s3_allowed_endpoints`.
///
/// | entry | allows |
/// |---|---|
/// | `*` | every host (addresses still checked) |
/// | `*.example.com[:PORT]` | every host under `example.com` |
/// | `host`, `10.0.0.5`, `[fd00::5]` | that host, any port |
/// | `host:9000` | that host, that port |
/// | `https://host[:PORT][/BUCKET[/KEY-PREFIX]]` | that scheme, host and port (the scheme's default when none), objects under that path (whole segments) |
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedEndpoint {
    /// The entry as written, for messages and `get`.
    text: String,
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
    /// Decoded path segments the object's `BUCKET/KEY` must start with.
    path: Vec<String>,
}

/// The hosts an [`AllowedEndpoint`] names.
#[derive(Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every host.
    Any,
    /// `.example.com`: a host ending with it.
    Under(String),
    /// That one host (a name or an address).
    Exact(Host<String>),
}

impl fmt::Debug for AllowedEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What an entry of `aws_s3_allowed_endpoints` may look like, for error messages.
pub const ENTRY_FORMS: &str = "expected a comma-separated list of host, host:port, \
    *.domain, * or http[s]://host[:port][/bucket[/prefix]] entries";

impl AllowedEndpoint {
    /// Parses one entry; `None` when it is not one of the forms above.
    pub fn parse(entry: &str) -> Option<AllowedEndpoint> {
        let text = entry.trim().to_string();
        if text.contains("://") {
            return Self::parse_url(text);
        }
        if text == "*" {
            return Some(AllowedEndpoint {
                text,
                scheme: None,
                host: HostPattern::Any,
                port: None,
                path: Vec::new(),
            });
        }
        if let Ok(v6) = text.parse::<std::net::Ipv6Addr>() {
            // A bare IPv6 address (`fd00::5`): colons, but no port.
            return Some(AllowedEndpoint {
                text,
                scheme: None,
                host: HostPattern::Exact(Host::Ipv6(v6)),
                port: None,
                path: Vec::new(),
            });
        }
        let (host, port) = split_port(&text)?;
        let (under, host) = match host.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, host),
        };
        if host.contains('*') {
            return None;
        }
        let host = match Host::parse(host).ok()? {
            Host::Domain(d) if under => HostPattern::Under(format!(".{d}")),
            _ if under => return None,
            exact => HostPattern::Exact(exact),
        };
        Some(AllowedEndpoint {
            text,
            scheme: None,
            host,
            port,
            path: Vec::new(),
        })
    }

    fn parse_url(text: String) -> Option<AllowedEndpoint> {
        let url = Url::parse(&text).ok()?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        if !plain {
            return None;
        }
        let path = url
            .path_segments()?
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(std::borrow::Cow::into_owned)
            })
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(AllowedEndpoint {
            scheme: Some(url.scheme().to_string()),
            host: HostPattern::Exact(url.host()?.to_owned()),
            port: url.port_or_known_default(),
            path,
            text,
        })
    }

    /// The entry as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme the entry names (`http`, `https`), or `None`: any.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }

    /// The hosts the entry names.
    pub fn host(&self) -> &HostPattern {
        &self.host
    }

    /// The port the entry names (a URL entry: its scheme's default when none), or
    /// `None`: any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Decoded path segments an object's `BUCKET/KEY` must start with (empty: any).
    pub fn path(&self) -> &[String] {
        &self.path
    }
}

/// `host[:port]` → (host, port); a bare IPv6 address has no port.
fn split_port(text: &str) -> Option<(&str, Option<u16>)> {
    if text.is_empty() {
        return None;
    }
    if text.starts_with('[') {
        let close = text.find(']')?;
        let (host, rest) = text.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port_number(port)?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port_number(port)?))),
        _ => Some((text, None)),
    }
}

fn port_number(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

/// Parses `aws_s3_allowed_endpoints`: entries separated by commas (empty: none).
pub fn parse_list(value: &str) -> Result<Vec<AllowedEndpoint>, &'static str> {
    value
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| AllowedEndpoint::parse(e).ok_or(ENTRY_FORMS))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "ftp://host",
            "http://user@host",
            "http://host/?q",
            "host:0",
            "host:99999",
            "*.1.2.3.4",
            "a b",
            "[::1",
            "**",
        ] {
            assert!(parse_list(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(parse_list(" , ").unwrap(), vec![]);
        assert_eq!(parse_list("::1").unwrap().len(), 1);
    }
}
