//! Ranged, presigned `GET`s of one object over blocking HTTP(S) (ureq), and S3's answers
//! sorted into what they mean for playback ([`S3Error`]): retry, or fail with a reason.
//!
//! Owns: one request's life. Must not: decide when to retry (see `prefetch`), or hold
//! bytes beyond the response it hands back.

use std::io::Read;
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::Agent;

use super::address::ObjectAddress;

/// Longest wait for a TCP connection and its TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the status line, and for any one read of the body: a connection
/// that stalls is dropped and the range resumed on a new one (`prefetch`). Short, so a
/// stall is noticed while the read-ahead still covers it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error answer's body we read (S3 error documents are < 1 KiB).
const MAX_ERROR_BODY: u64 = 16 * 1024;

/// What went wrong with a request, in the terms playback needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// `404 NoSuchKey`.
    #[error("no such object")]
    NoSuchKey,
    /// `404 NoSuchBucket`.
    #[error("no such bucket")]
    NoSuchBucket,
    /// `403`: the S3 error code (`AccessDenied`, `InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, ...).
    #[error("access denied ({0})")]
    Denied(String),
    /// `416`: the range starts at or past the end of the object.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// The host name does not resolve.
    #[error("unknown host")]
    UnknownHost,
    /// The TLS handshake failed (mostly: a certificate not trusted). Not retried: it
    /// fails the same way until the certificate or `aws_s3_ca_file` changes.
    #[error("{0}")]
    Tls(String),
    /// May pass: connection refused or dropped, timeout, `5xx`, `429`.
    #[error("{0}")]
    Transient(String),
    /// Will not pass by retrying: other `4xx`, answers that break the protocol.
    #[error("{0}")]
    Permanent(String),
}

impl S3Error {
    /// Worth trying again.
    pub fn is_transient(&self) -> bool {
        matches!(self, S3Error::Transient(_))
    }
}

/// An answer to a ranged GET: the body starts at the asked offset of an object of
/// `total` bytes.
pub struct RangeBody {
    pub total: u64,
    /// Bytes the body holds (`Content-Length`).
    pub len: u64,
    pub body: Box<dyn Read + Send>,
}

/// Signs and sends requests for one object.
pub struct ObjectClient {
    agent: Agent,
    address: ObjectAddress,
}

impl ObjectClient {
    /// A client of `address` trusting `roots` over HTTPS (see `trust`).
    pub fn new(address: ObjectAddress, roots: RootCerts) -> ObjectClient {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(READ_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .max_idle_connections_per_host(2)
            .tls_config(tls)
            .build()
            .into();
        ObjectClient { agent, address }
    }

    /// `GET` bytes `start..end` (end exclusive, `None`: to the end of the object).
    pub fn get_range(&self, start: u64, end: Option<u64>) -> Result<RangeBody, S3Error> {
        let range = match end {
            Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
            None => format!("bytes={start}-"),
        };
        let response = self
            .agent
            .get(self.address.get_url().as_str())
            .header("Range", &range)
            .call()
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_range = header("content-range");
        let content_length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let (_, body) = response.into_parts();
        match status {
            206 => {
                let (first, total) = content_range
                    .as_deref()
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        S3Error::Permanent(format!(
                            "206 answer without a usable Content-Range ({content_range:?})"
                        ))
                    })?;
                if first != start {
                    return Err(S3Error::Permanent(format!(
                        "asked for bytes from {start}, got bytes from {first}"
                    )));
                }
                let len = content_length.unwrap_or(total - first);
                Ok(RangeBody {
                    total,
                    len,
                    body: Box::new(body.into_reader()),
                })
            }
            // A store that ignores Range sends the whole object: usable from byte 0.
            200 if start == 0 => {
                let total = content_length.ok_or_else(|| {
                    S3Error::Permanent("200 answer without Content-Length".into())
                })?;
                Ok(RangeBody {
                    total,
                    len: total,
                    body: Box::new(body.into_reader()),
                })
            }
            200 => Err(S3Error::Permanent(
                "the store ignores ranged requests (Range)".into(),
            )),
            _ => {
                let mut text = String::new();
                let _ = body
                    .into_with_config()
                    .limit(MAX_ERROR_BODY)
                    .reader()
                    .take(MAX_ERROR_BODY)
                    .read_to_string(&mut text);
                Err(status_error(status, &text))
            }
        }
    }
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL).
pub fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.trim().parse::<u64>().ok()?,
        last.trim().parse::<u64>().ok()?,
        total.trim().parse::<u64>().ok()?,
    );
    (first <= last && last < total).then_some((first, total))
}

/// The text of `<Tag>` in an S3 error document.
fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find("</")?;
    Some(xml[start..start + len].trim())
}

/// Sorts a non-2xx answer by its status and S3 error code.
pub fn status_error(status: u16, body: &str) -> S3Error {
    let code = xml_field(body, "Code").unwrap_or_default();
    let message = xml_field(body, "Message").unwrap_or_default();
    let words = |fallback: &str| {
        let what = [code, message]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(": ");
        if what.is_empty() {
            format!("HTTP {status} {fallback}")
        } else {
            format!("HTTP {status} {what}")
        }
    };
    match (status, code) {
        (404, "NoSuchBucket") => S3Error::NoSuchBucket,
        (404, _) => S3Error::NoSuchKey,
        (403, "") => S3Error::Denied("AccessDenied".into()),
        (403, code) => S3Error::Denied(code.to_string()),
        (416, _) => S3Error::RangeNotSatisfiable,
        (301 | 307 | 400, "PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            S3Error::Permanent(words("wrong region or endpoint (check aws_s3_credentials)"))
        }
        (408 | 429 | 500..=599, _) => S3Error::Transient(words("from the store")),
        _ => S3Error::Permanent(words("from the store")),
    }
}

fn transport_error(e: ureq::Error) -> S3Error {
    match e {
        ureq::Error::HostNotFound => S3Error::UnknownHost,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            S3Error::Transient("connection refused".into())
        }
        ureq::Error::Io(io) if names_unknown_host(&io) => S3Error::UnknownHost,
        ureq::Error::Io(io) => S3Error::Transient(io.to_string()),
        ureq::Error::Timeout(t) => S3Error::Transient(timed_out(t)),
        ureq::Error::ConnectionFailed => S3Error::Transient("connection failed".into()),
        ureq::Error::NativeTls(e) => S3Error::Tls(tls_words(&e.to_string())),
        other => S3Error::Transient(other.to_string()),
    }
}

/// The resolver's "no such name" (EAI_NONAME, EAI_NODATA). std reports getaddrinfo
/// failures as an `io::Error` with no kind of their own, only `gai_strerror`'s words;
/// "temporary failure in name resolution" (EAI_AGAIN) is not among these: it may pass.
fn names_unknown_host(io: &std::io::Error) -> bool {
    let words = io.to_string();
    words.contains("failed to lookup address information")
        && (words.contains("Name or service not known")
            || words.contains("No address associated with hostname"))
}

/// A timeout in words for the viewer: "waiting for the answer timed out".
pub fn timed_out(t: ureq::Timeout) -> String {
    let what = match t {
        ureq::Timeout::Connect => "connecting",
        ureq::Timeout::RecvResponse => "waiting for the answer",
        ureq::Timeout::RecvBody | ureq::Timeout::PerRead => "reading the answer",
        other => return format!("{other} timed out"),
    };
    format!("{what} timed out")
}

/// OpenSSL's words for a failed handshake, with what to do about it.
fn tls_words(openssl: &str) -> String {
    if !openssl.contains("certificate verify failed") {
        return format!("TLS handshake failed ({openssl})");
    }
    // "error:...:certificate verify failed:...: (self-signed certificate)": the reason
    // is in the last parentheses.
    let reason = openssl
        .rsplit_once('(')
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap_or("certificate verify failed");
    if reason.contains("hostname mismatch") {
        format!(
            "its TLS certificate is not for this host name ({reason}); check the endpoint, \
             and aws_s3_addressing (a bucket name with dots cannot be a host name over HTTPS)"
        )
    } else {
        format!(
            "its TLS certificate is not trusted ({reason}); if a private CA issued it, set \
             aws_s3_ca_file to that CA's PEM file"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_does_not_exist_is_final_a_resolver_hiccup_is_not() {
        let lookup = |why: &str| {
            transport_error(ureq::Error::Io(std::io::Error::other(format!(
                "failed to lookup address information: {why}"
            ))))
        };
        assert_eq!(lookup("Name or service not known"), S3Error::UnknownHost);
        assert!(lookup("Temporary failure in name resolution").is_transient());
    }

    #[test]
    fn tls_failures_say_what_to_do() {
        let untrusted = tls_words(
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate \
             verify failed:../ssl/statem/statem_clnt.c:1889: (self-signed certificate)",
        );
        assert!(
            untrusted.starts_with("its TLS certificate is not trusted (self-signed certificate)"),
            "{untrusted}"
        );
        assert!(untrusted.contains("aws_s3_ca_file"));
        let wrong_name = tls_words("error:...:certificate verify failed:...: (hostname mismatch)");
        assert!(
            wrong_name.starts_with("its TLS certificate is not for this host name"),
            "{wrong_name}"
        );
        assert_eq!(
            tls_words("wrong version"),
            "TLS handshake failed (wrong version)"
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 100)));
        assert_eq!(parse_content_range("bytes 90-99/100"), Some((90, 100)));
        assert_eq!(parse_content_range("bytes 90-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes 5-1/9"), None);
    }

    #[test]
    fn answers_are_sorted_by_status_and_code() {
        let doc = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        assert_eq!(status_error(404, &doc("NoSuchKey")), S3Error::NoSuchKey);
        assert_eq!(
            status_error(404, &doc("NoSuchBucket")),
            S3Error::NoSuchBucket
        );
        assert_eq!(status_error(404, ""), S3Error::NoSuchKey);
        assert_eq!(
            status_error(403, &doc("SignatureDoesNotMatch")),
            S3Error::Denied("SignatureDoesNotMatch".into())
        );
        assert_eq!(
            status_error(403, ""),
            S3Error::Denied("AccessDenied".into())
        );
        assert_eq!(status_error(416, ""), S3Error::RangeNotSatisfiable);
        assert!(status_error(503, &doc("SlowDown")).is_transient());
        assert!(status_error(500, "").is_transient());
        assert!(status_error(429, "").is_transient());
        let bad = status_error(400, &doc("InvalidArgument"));
        assert!(!bad.is_transient());
        assert_eq!(bad.to_string(), "HTTP 400 InvalidArgument: m");
    }
}
