//! HLS authentication, WCS's `hls_auth_enabled`: every request under `/NAME/` carries
//! `?token=…`; the application's backend is asked once per token and stream (REST hook
//! `/playHLS`) and its verdict is kept for `hls_auth_token_cache` seconds. The playlist
//! hands the token on in every URI it lists (segments, parts, the init segment, preload
//! hints), so a player or a CDN passes it with each segment request; a request without a
//! token, or with one the backend refused, gets `401`.
//!
//! Bounds, so a client cannot make the server call the backend at will: one call per
//! token and stream at a time (requests for the same pair wait for that call), at most
//! [`MAX_CALLS`] calls in flight (more wait, at most `rest_request_timeout`, then `503`),
//! each bounded by `rest_request_timeout` ([`crate::hooks`]), and at most [`MAX_ENTRIES`]
//! verdicts kept (beyond that, a verdict is used once and not kept).
//!
//! Owns: the token check, the verdict cache and the token in playlist URIs. Must not:
//! find streams or serve media (that is `hls_http`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;
use tokio::sync::{OnceCell, Semaphore};
use tracing::warn;

use crate::context::ServerContext;
use crate::hooks::{Denied, Hook};

/// Backend calls in flight at once, all tokens together.
pub const MAX_CALLS: usize = 16;
/// Verdicts kept at once.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest token taken (a JWT is well under this).
const MAX_TOKEN_LEN: usize = 2048;

/// What the backend said of a token for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Refused(String),
    /// No answer (unreachable, too slow, too many calls): not kept.
    Unavailable,
}

struct Entry {
    made: Instant,
    verdict: Arc<OnceCell<Verdict>>,
}

/// The HLS port's authentication state (one per HLS app).
pub struct Auth {
    /// `hls_auth_enabled`.
    enabled: bool,
    /// `hls_auth_token_cache`.
    keep: Duration,
    /// How long a call may wait for a free slot.
    wait: Duration,
    entries: Mutex<HashMap<(String, String), Entry>>,
    calls: Semaphore,
}

impl Auth {
    /// The state for the server's settings.
    pub fn new(ctx: &ServerContext) -> Arc<Auth> {
        let enabled = ctx.settings.hls_auth_enabled;
        if enabled && !ctx.hooks.enabled() {
            warn!("hls_auth_enabled is true but no REST hook is called (rest_hook_url not set, or disable_rest_requests): every HLS request is refused");
        }
        Arc::new(Auth {
            enabled,
            keep: Duration::from_secs(ctx.settings.hls_auth_token_cache),
            wait: ctx.settings.rest_request_timeout,
            entries: Mutex::default(),
            calls: Semaphore::new(MAX_CALLS),
        })
    }

    /// The token a request under `/NAME/` carries, once the backend let it read `name`;
    /// `Ok(None)` when authentication is off; `Err` is the answer to give.
    pub async fn check<'a>(
        &self,
        ctx: &ServerContext,
        name: &str,
        token: Option<&'a str>,
    ) -> Result<Option<&'a str>, Response> {
        if !self.enabled {
            return Ok(None);
        }
        let token = match token {
            Some(t) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => t,
            Some(t) if !t.is_empty() => return Err(unauthorized("The token is too long")),
            _ => return Err(unauthorized("A token is needed: ?token=…")),
        };
        if !ctx.hooks.enabled() {
            return Err(super::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "HLS authentication is on but the server has no backend to ask",
            ));
        }
        let key = (token.to_string(), name.to_string());
        let cell = self.cell(&key);
        let verdict = cell
            .get_or_init(|| self.ask(ctx, name, token))
            .await
            .clone();
        match verdict {
            Verdict::Allowed => Ok(Some(token)),
            Verdict::Refused(reason) => Err(unauthorized(&format!("Not authorized: {reason}"))),
            Verdict::Unavailable => {
                self.forget(&key, &cell);
                Err(super::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    crate::hooks::UNAVAILABLE,
                ))
            }
        }
    }

    /// The verdict cell of `key`: the kept one while fresh, else a new one (kept when
    /// there is room).
    fn cell(&self, key: &(String, String)) -> Arc<OnceCell<Verdict>> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get(key) {
            if now.duration_since(entry.made) < self.keep {
                return entry.verdict.clone();
            }
        }
        if entries.len() >= MAX_ENTRIES {
            let keep = self.keep;
            entries.retain(|_, e| now.duration_since(e.made) < keep);
        }
        let verdict = Arc::new(OnceCell::new());
        if entries.len() < MAX_ENTRIES || entries.contains_key(key) {
            entries.insert(
                key.clone(),
                Entry {
                    made: now,
                    verdict: verdict.clone(),
                },
            );
        }
        verdict
    }

    /// Drops `key`'s verdict if it is still `cell` (no answer is not a verdict to keep).
    fn forget(&self, key: &(String, String), cell: &Arc<OnceCell<Verdict>>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.verdict, cell))
        {
            entries.remove(key);
        }
    }

    /// Asks the backend's `/playHLS` (WCS's fields), within the bound on calls.
    async fn ask(&self, ctx: &ServerContext, name: &str, token: &str) -> Verdict {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.wait, self.calls.acquire()).await else {
            return Verdict::Unavailable;
        };
        let body = json!({
            "appKey": "defaultApp",
            "sessionId": format!("{name}-HLS"),
            "mediaSessionId": format!("{name}-HLS-{:016x}", super::fnv1a(token.as_bytes())),
            "name": name,
            "published": false,
            "status": "NEW",
            "record": false,
            "mediaProvider": "HLS",
            "token": token,
        });
        match ctx.hooks.ask(Hook::PlayHls, body).await {
            Ok(()) => Verdict::Allowed,
            Err(Denied::Refused(reason)) => Verdict::Refused(reason),
            Err(Denied::Unavailable) => Verdict::Unavailable,
        }
    }
}

/// A `401` with a plain body.
fn unauthorized(text: &str) -> Response {
    super::plain(StatusCode::UNAUTHORIZED, text)
}

/// What is escaped of a token in a query: all but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `playlist` with `token=…` added to the query of every URI it lists: the lines that
/// are URIs and the `URI="…"` attributes of tags.
pub fn with_token(playlist: &str, token: &str) -> String {
    let query = format!("token={}", utf8_percent_encode(token, QUERY_VALUE));
    let add = |uri: &str| {
        let joint = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{joint}{query}")
    };
    let mut out = String::with_capacity(playlist.len() * 2);
    for line in playlist.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(&add(line));
        } else {
            let mut rest = line;
            while let Some(at) = rest.find("URI=\"") {
                let (before, after) = rest.split_at(at + 5);
                out.push_str(before);
                let Some(end) = after.find('"') else {
                    rest = after;
                    break;
                };
                out.push_str(&add(&after[..end]));
                rest = &after[end..];
            }
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_of_a_playlist_gets_the_token() {
        let playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"init-a.mp4\"\n#EXTINF:2.0,\na-1.m4s\n\
                        #EXT-X-PART:DURATION=0.5,URI=\"a-2.0.m4s\",INDEPENDENT=YES\n\
                        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-2.1.m4s\"\n";
        assert_eq!(
            with_token(playlist, "t k/1="),
            "#EXTM3U\n#EXT-X-MAP:URI=\"init-a.mp4?token=t%20k%2F1%3D\"\n#EXTINF:2.0,\n\
             a-1.m4s?token=t%20k%2F1%3D\n\
             #EXT-X-PART:DURATION=0.5,URI=\"a-2.0.m4s?token=t%20k%2F1%3D\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-2.1.m4s?token=t%20k%2F1%3D\"\n"
        );
        assert_eq!(with_token("x.m4s?a=1\n", "t"), "x.m4s?a=1&token=t\n");
    }
}
