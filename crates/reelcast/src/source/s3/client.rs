//! Ranged, presigned `GET`s of one object over blocking HTTP(S) (ureq), and S3's answers
//! sorted into what they mean for playback ([`S3Error`]): retry, or fail with a reason.
//!
//! Connections go only to the addresses `egress` lets through, and redirects are not
//! followed (an S3 client has no use for them; following one would reach a host nobody
//! checked).
//!
//! What reaches a viewer from here is fixed words: an answer's body is read only for
//! its S3 error code, and only codes from S3's documented list ([`S3_ERROR_CODES`])
//! are passed on; messages, other bodies and headers never are (a viewer who could
//! read them could map the services behind the store).
//!
//! Owns: one request's life. Must not: decide when to retry (see `fetch_thread`), or hold
//! bytes beyond the response it hands back.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::transport::DefaultConnector;
use ureq::Agent;

use super::address::ObjectAddress;
use super::egress::{self, CheckedResolver, NotPublic};
use crate::metrics::METRICS;

/// Longest wait for a TCP connection and its TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the status line, and for any one read of the body: a connection
/// that stalls is dropped and the range resumed on a new one (`fetch_thread`). Short, so a
/// stall is noticed while the read-ahead still covers it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error answer's body we read (S3 error documents are < 1 KiB).
const MAX_ERROR_BODY: u64 = 16 * 1024;

/// What went wrong with a request, in the terms playback needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum S3Error {
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
    /// The store's address is not public and the endpoint may not be private
    /// (`egress`). Not retried.
    #[error("not a public address")]
    PrivateAddress,
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
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, S3Error::Transient(_))
    }
}

/// An answer to a ranged GET: the body starts at the asked offset of an object of
/// `total` bytes.
pub(super) struct RangeBody {
    pub total: u64,
    /// Bytes the body holds (`Content-Length`).
    pub len: u64,
    /// The object's version as the store names it: its `ETag`, else `Last-Modified`.
    pub version: Option<String>,
    pub body: Box<dyn Read + Send>,
}

/// Signs and sends requests for one object.
pub(super) struct ObjectClient {
    agent: Agent,
    address: ObjectAddress,
    private_ok: bool,
}

impl ObjectClient {
    /// A client of `address` trusting `roots` over HTTPS (see `trust`), connecting only
    /// to public addresses unless `private_ok` (see `egress`).
    pub(super) fn new(address: ObjectAddress, roots: RootCerts, private_ok: bool) -> ObjectClient {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(READ_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .max_idle_connections_per_host(2)
            .tls_config(tls)
            .build();
        let agent = Agent::with_parts(
            config,
            DefaultConnector::new(),
            CheckedResolver { private_ok },
        );
        ObjectClient {
            agent,
            address,
            private_ok,
        }
    }

    /// `GET` bytes `start..end` (end exclusive, `None`: to the end of the object),
    /// counted in the S3 metrics: the request by outcome and latency (to the answer's
    /// head), the body's bytes as they are read.
    pub(super) fn get_range(&self, start: u64, end: Option<u64>) -> Result<RangeBody, S3Error> {
        let sent = Instant::now();
        let answer = self.request(start, end);
        METRICS.count_s3_request(outcome(&answer), sent.elapsed());
        answer.map(|body| RangeBody {
            body: Box::new(CountedBody(body.body)),
            ..body
        })
    }

    fn request(&self, start: u64, end: Option<u64>) -> Result<RangeBody, S3Error> {
        let range = match end {
            Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
            None => format!("bytes={start}-"),
        };
        let url = self.address.get_url();
        let uri: ureq::http::Uri = url
            .as_str()
            .parse()
            .map_err(|_| S3Error::Permanent("the object's URL is not valid".into()))?;
        egress::check_proxied_host(self.agent.config(), &uri, self.private_ok)
            .map_err(|NotPublic| S3Error::PrivateAddress)?;
        let response = self
            .agent
            .get(uri)
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
        let version = header("etag").or_else(|| header("last-modified"));
        let (_, body) = response.into_parts();
        match status {
            206 => {
                let (first, total) = content_range
                    .as_deref()
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        S3Error::Permanent("206 answer without a usable Content-Range".into())
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
                    version,
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
                    version,
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

/// The `outcome` label of a request's answer (one of [`crate::metrics::S3_OUTCOMES`]).
fn outcome(answer: &Result<RangeBody, S3Error>) -> &'static str {
    match answer {
        Ok(_) => "ok",
        Err(S3Error::NoSuchKey | S3Error::NoSuchBucket) => "not_found",
        Err(S3Error::Denied(_)) => "denied",
        Err(S3Error::Transient(_)) => "transient",
        Err(_) => "failed",
    }
}

/// An answer's body, counting the bytes read from it in `reelcast_s3_fetched_bytes_total`.
struct CountedBody(Box<dyn Read + Send>);

impl Read for CountedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        METRICS.s3_fetched_bytes.inc_by(n as u64);
        Ok(n)
    }
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL).
pub(super) fn parse_content_range(value: &str) -> Option<(u64, u64)> {
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

/// S3's documented error codes (the `<Code>` of an error answer) that a viewer may
/// read: fixed words that say what to fix. Any other code, and every `<Message>`,
/// stays in the server (a store's answer is not the viewer's to read).
pub(super) const S3_ERROR_CODES: &[&str] = &[
    "AccessDenied",
    "AccountProblem",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "ExpiredToken",
    "InternalError",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidObjectState",
    "InvalidRange",
    "InvalidRequest",
    "InvalidToken",
    "KeyTooLongError",
    "MethodNotAllowed",
    "NoSuchBucket",
    "NoSuchKey",
    "NotImplemented",
    "PermanentRedirect",
    "RequestTimeTooSkewed",
    "RequestTimeout",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "TemporaryRedirect",
    "TokenRefreshRequired",
];

/// Sorts a non-2xx answer by its status and S3 error code. The words are the status
/// and, when it is one of [`S3_ERROR_CODES`], the code: nothing else of the answer.
pub(super) fn status_error(status: u16, body: &str) -> S3Error {
    let code = xml_field(body, "Code")
        .and_then(|c| S3_ERROR_CODES.iter().find(|known| **known == c))
        .copied()
        .unwrap_or_default();
    let words = |fallback: &str| {
        if code.is_empty() {
            format!("HTTP {status} {fallback}")
        } else {
            format!("HTTP {status} {code}")
        }
    };
    match (status, code) {
        (404, "NoSuchBucket") => S3Error::NoSuchBucket,
        (404, _) => S3Error::NoSuchKey,
        (403, "") => S3Error::Denied("AccessDenied".into()),
        (403, code) => S3Error::Denied(code.to_string()),
        (416, _) => S3Error::RangeNotSatisfiable,
        (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => S3Error::Permanent(format!(
            "HTTP {status} {code}: wrong region or endpoint (check aws_s3_credentials)"
        )),
        (300..=399, _) => S3Error::Permanent(format!(
            "HTTP {status}: the store answered with a redirect, which is not followed \
             (check the endpoint and region)"
        )),
        (408 | 429 | 500..=599, _) => S3Error::Transient(words("from the store")),
        _ => S3Error::Permanent(words("from the store")),
    }
}

/// A failed request in fixed words (the OS's for socket errors); nothing the store
/// or a proxy sent is quoted.
fn transport_error(e: ureq::Error) -> S3Error {
    match e {
        ureq::Error::HostNotFound => S3Error::UnknownHost,
        ureq::Error::Other(o) if o.is::<NotPublic>() => S3Error::PrivateAddress,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            S3Error::Transient("connection refused".into())
        }
        ureq::Error::Io(io) if names_unknown_host(&io) => S3Error::UnknownHost,
        ureq::Error::Io(io) => S3Error::Transient(io_words(&io)),
        ureq::Error::Timeout(t) => S3Error::Transient(timed_out(t)),
        ureq::Error::ConnectionFailed => S3Error::Transient("connection failed".into()),
        ureq::Error::NativeTls(e) => S3Error::Tls(tls_words(&e.to_string())),
        ureq::Error::ConnectProxyFailed(_) => {
            S3Error::Transient("the proxy (ALL_PROXY, HTTPS_PROXY) did not open a tunnel".into())
        }
        ureq::Error::Protocol(_) => {
            S3Error::Permanent("the store's answer is not valid HTTP/1.1".into())
        }
        _ => S3Error::Transient("the request failed".into()),
    }
}

/// An io error's words without the `(os error N)` tail.
fn io_words(io: &std::io::Error) -> String {
    let text = io.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
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
pub(super) fn timed_out(t: ureq::Timeout) -> String {
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
        // "error:0A00010B:SSL routines:ssl3_get_record:wrong version number:FILE:LINE:":
        // the reason is the fifth field; OpenSSL's source places are of no use.
        let reason = openssl
            .strip_prefix("error:")
            .and_then(|rest| rest.split(':').nth(3))
            .filter(|r| !r.is_empty())
            .unwrap_or(openssl);
        return format!("TLS handshake failed ({reason})");
    }
    // "error:...:certificate verify failed:...: (self-signed certificate)": the reason
    // is in the last parentheses.
    let reason = openssl
        .rsplit_once('(')
        .map_or("certificate verify failed", |(_, r)| {
            r.trim_end_matches(')')
        });
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
        assert_eq!(bad.to_string(), "HTTP 400 InvalidArgument");
    }

    #[test]
    fn nothing_of_an_answer_but_a_known_code_is_passed_on() {
        let secret =
            "<Error><Code>InternalServiceX</Code><Message>db at 10.1.2.3 says no</Message></Error>";
        assert_eq!(
            status_error(400, secret).to_string(),
            "HTTP 400 from the store"
        );
        assert_eq!(
            status_error(503, secret).to_string(),
            "HTTP 503 from the store"
        );
        assert_eq!(
            status_error(403, secret),
            S3Error::Denied("AccessDenied".into())
        );
        let html = "<html><body>Method Not Allowed on admin console v1.2</body></html>";
        assert_eq!(
            status_error(405, html).to_string(),
            "HTTP 405 from the store"
        );
        let redirect = status_error(307, "").to_string();
        assert!(
            redirect.contains("redirect, which is not followed"),
            "{redirect}"
        );
        assert!(
            status_error(301, "<Error><Code>PermanentRedirect</Code></Error>")
                .to_string()
                .starts_with("HTTP 301 PermanentRedirect: wrong region or endpoint")
        );
        assert_eq!(
            tls_words("error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/ssl3_record.c:354:"),
            "TLS handshake failed (wrong version number)"
        );
    }
}
