//! REST hooks: the application's backend decides who may connect and what they may play,
//! as with WCS.
//!
//! With `rest_hook_url` set (and `disable_rest_requests` not true), the server POSTs JSON
//! to `{rest_hook_url}/connect` when a WCS session opens (and when a WHEP request comes,
//! with its Bearer token as `authToken`), to `{rest_hook_url}/playStream` before a
//! stream plays and to `{rest_hook_url}/publishStream` before one is published (WCS
//! `publishStream`, WHIP), and `{rest_hook_url}/playHLS` for an HLS token when
//! `hls_auth_enabled` is on. The body carries the session's fields and the client's `custom` data. A
//! `200` lets it go on; any other answer refuses it, and the client's FAILED info is the
//! answer's `reason` (or `info`) field when its body is JSON with one, else the status's
//! own words (`Forbidden`). A backend that cannot be reached, or answers later than
//! `rest_request_timeout`, refuses too (a hook that guards access fails closed), but as
//! [`Denied::Unavailable`]: the client is told the authorisation service is unavailable
//! (WHEP: `503`), not that its token was bad.
//!
//! Owns: the hook requests and their verdicts. Must not know sockets, streams or WebRTC;
//! callers build the bodies from what the client sent.

use std::time::Duration;

use serde_json::Value;
use tracing::{debug, warn};

/// At most this much of a backend's answer is read (its reason is all we need).
const ANSWER_LIMIT: u64 = 64 << 10;
/// A reason longer than this is cut: it travels to the client in a status event.
const REASON_LIMIT: usize = 200;
/// The FAILED info when the backend could not give a verdict.
pub const UNAVAILABLE: &str =
    "Authorization service unavailable: the application's backend did not answer";

/// Where the hooks go, or nowhere.
#[derive(Clone)]
pub struct RestHooks {
    /// `None`: no hooks, everything is allowed.
    base: Option<String>,
    agent: ureq::Agent,
}

/// Why a hook did not let the client go on; shown as the words the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The backend said no, with this reason.
    Refused(String),
    /// The backend could not be reached or did not answer in time: no verdict.
    Unavailable,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Refused(reason) => f.write_str(reason),
            Denied::Unavailable => f.write_str(UNAVAILABLE),
        }
    }
}

/// The hook methods reelcast calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `/connect`: a WCS session opens (or a WHEP request arrives).
    Connect,
    /// `/playStream`: before each play.
    PlayStream,
    /// `/publishStream`: before each publish (WCS `publishStream`, WHIP POST).
    PublishStream,
    /// `/playHLS`: an HLS token, with `hls_auth_enabled` (`crate::hls_http`).
    PlayHls,
}

impl Hook {
    fn path(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::PlayStream => "playStream",
            Hook::PublishStream => "publishStream",
            Hook::PlayHls => "playHLS",
        }
    }
}

impl RestHooks {
    /// Hooks to `base` (trailing `/` ignored), each answer awaited at most `timeout`.
    /// `None` calls nothing and allows everything.
    pub fn new(base: Option<&str>, timeout: Duration) -> Self {
        // HTTPS backends are checked against the system's CAs.
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(timeout))
            // A refusal is an answer, not an error.
            .http_status_as_error(false)
            // The operator's backend answers itself; a redirect is not followed.
            .max_redirects(0)
            .build()
            .new_agent();
        RestHooks {
            base: base.map(|b| b.trim_end_matches('/').to_string()),
            agent,
        }
    }

    /// True when hooks are called at all.
    pub fn enabled(&self) -> bool {
        self.base.is_some()
    }

    /// Asks the backend; `Ok` when it answered 200 (or no hooks are set).
    pub async fn ask(&self, hook: Hook, body: Value) -> Result<(), Denied> {
        let Some(base) = &self.base else {
            return Ok(());
        };
        let url = format!("{base}/{}", hook.path());
        let agent = self.agent.clone();
        let path = hook.path();
        let asked = tokio::task::spawn_blocking(move || post(&agent, &url, path, &body)).await;
        match asked {
            Ok(verdict) => verdict,
            Err(e) => {
                warn!("rest hook {}: {e}", hook.path());
                Err(Denied::Unavailable)
            }
        }
    }
}

/// Posts `body` to `url`. Logs name the hook by `path` only: the URL may hold a password
/// or a token (tests/e2e/logs.test.mjs).
fn post(agent: &ureq::Agent, url: &str, path: &str, body: &Value) -> Result<(), Denied> {
    let answer = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string());
    let mut answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            warn!("rest hook {path}: {e}");
            return Err(Denied::Unavailable);
        }
    };
    let status = answer.status();
    if status == ureq::http::StatusCode::OK {
        debug!("rest hook {path}: allowed");
        return Ok(());
    }
    let text = answer
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT)
        .read_to_string()
        .unwrap_or_default();
    let reason = reason_of(status.as_u16(), &text);
    debug!("rest hook {path}: refused ({status}): {reason}");
    Err(Denied::Refused(reason))
}

/// The words a refused client is told: the answer's `reason` or `info` field, else the
/// status's own words; printable, one line, at most [`REASON_LIMIT`] characters.
fn reason_of(status: u16, body: &str) -> String {
    let from_body = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        ["reason", "info"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
    });
    let reason = from_body.unwrap_or_else(|| {
        ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Refused")
            .to_string()
    });
    let clean: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REASON_LIMIT)
        .collect();
    match clean.trim() {
        "" => "Refused".to_string(),
        text => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    #[test]
    fn the_reason_comes_from_the_body_or_the_status() {
        assert_eq!(reason_of(403, r#"{"reason":"Bad token"}"#), "Bad token");
        assert_eq!(reason_of(403, r#"{"info":"No such user"}"#), "No such user");
        assert_eq!(reason_of(403, "<html>nope</html>"), "Forbidden");
        assert_eq!(reason_of(401, ""), "Unauthorized");
        assert_eq!(reason_of(599, ""), "Refused");
        assert_eq!(reason_of(403, r#"{"reason":"a\nb\u0000c"}"#), "a b c");
        assert_eq!(reason_of(403, r#"{"reason":"  "}"#), "Refused");
        assert_eq!(
            reason_of(403, &format!(r#"{{"reason":"{}"}}"#, "x".repeat(500))).len(),
            REASON_LIMIT
        );
    }

    /// A one-request HTTP backend on loopback: answers `status` with `body`, hands back
    /// the request line and body it got.
    fn backend(status: &str, body: &'static str) -> (String, mpsc::Receiver<(String, Value)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/app", listener.local_addr().unwrap());
        let status = status.to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut got = vec![0; length];
            reader.read_exact(&mut got).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let _ = tx.send((
                request_line.trim().to_string(),
                serde_json::from_slice(&got).unwrap(),
            ));
        });
        (base, rx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_200_allows_and_the_body_reaches_the_backend() {
        let (base, got) = backend("200 OK", "{}");
        let hooks = RestHooks::new(Some(&format!("{base}/")), Duration::from_secs(5));
        let body = serde_json::json!({"name": "vod://a.mp4", "custom": {"token": "t"}});
        assert_eq!(hooks.ask(Hook::PlayStream, body.clone()).await, Ok(()));
        let (line, sent) = got.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(line, "POST /app/playStream HTTP/1.1");
        assert_eq!(sent, body);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn any_other_status_refuses_with_the_backends_reason() {
        let (base, _got) = backend("403 Forbidden", r#"{"reason":"Token expired"}"#);
        let hooks = RestHooks::new(Some(&base), Duration::from_secs(5));
        let verdict = hooks.ask(Hook::Connect, serde_json::json!({})).await;
        assert_eq!(verdict, Err(Denied::Refused("Token expired".into())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backend_that_is_gone_or_silent_is_unavailable() {
        // Nothing listens on a port just freed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hooks = RestHooks::new(
            Some(&format!("http://127.0.0.1:{port}")),
            Duration::from_secs(2),
        );
        let verdict = hooks.ask(Hook::Connect, serde_json::json!({})).await;
        assert_eq!(verdict, Err(Denied::Unavailable));
        // One that accepts and never answers: refused after the time-out.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let hooks = RestHooks::new(
            Some(&format!("http://{}", silent.local_addr().unwrap())),
            Duration::from_millis(300),
        );
        let verdict = hooks.ask(Hook::PlayStream, serde_json::json!({})).await;
        assert_eq!(verdict, Err(Denied::Unavailable));
        drop(silent);
    }

    #[tokio::test]
    async fn without_a_url_everything_is_allowed() {
        let hooks = RestHooks::new(None, Duration::from_secs(1));
        assert!(!hooks.enabled());
        assert_eq!(hooks.ask(Hook::Connect, Value::Null).await, Ok(()));
    }
}
