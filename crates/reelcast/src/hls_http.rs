//! HLS over HTTP on `hls.port`, WCS's URL form: `/NAME/NAME.m3u8`, where NAME is a
//! translation's `localStreamName`, a URL-encoded `vod-live://file.mp4` or a published
//! stream's name; the init segment, segments and parts are relative to it
//! (`/NAME/init-RUN.mp4`, `/NAME/RUN-MSN.m4s`, `/NAME/RUN-MSN.PART.m4s`; RUN names the
//! stream's run, so a cache never serves one run's segment for another's).
//!
//! Owns: the URLs, finding the stream through the registry (starting a translation with
//! `hls_auto_start`, through `Registry::find_or_start_translation_for_hls`; a published stream
//! is never started here, its muxer attached by `Registry::published_hls`), blocking
//! playlist reloads (`_HLS_msn`, `_HLS_part`) and preload-hinted parts, each waiting at
//! most a bounded time, and the headers a CDN and a player on another origin need. Everything
//! is served from the stream's window in memory ([`crate::hls::Window`]). Who reads is
//! [`readers`]'. The ABR form (`/NAME-HLS-ABR-STREAM/NAME-HLS-ABR-STREAM.m3u8`: a
//! multivariant playlist of NAME and its renditions) is [`abr`]'s, its running ladders
//! [`ladder`]'s. Must not:
//! mux or keep media (that is `crate::hls`).

mod abr;
pub mod auth;
mod cache;
pub mod ladder;
pub mod readers;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Incoming;

use crate::context::ServerContext;
use crate::hls::{PartLookup, Readiness, Stored, Window};
use crate::http_conn;
use crate::source::{PlayMode, StreamUri};
use auth::Auth;
use ladder::Ladders;
use readers::{Read, Readers};

/// How long a newly started translation may take to make its first segment.
const FIRST_SEGMENT_WAIT: Duration = Duration::from_secs(10);

/// The HLS app: what the HLS ports serve. Not an axum `Router`: its requests are
/// few in kind and come by the tens of thousands a second (LL-HLS parts), so it reads
/// hyper's request itself. With the per-request clones and allocations that went with it,
/// the router and its layers were ~30 % of a part answer's CPU (docs/PERFORMANCE.md).
#[derive(Clone)]
pub struct HlsApp(Arc<Shared>);

struct Shared {
    ctx: Arc<ServerContext>,
    readers: Arc<Readers>,
    ladders: Arc<Ladders>,
    auth: Arc<Auth>,
}

/// The HLS app of the server `ctx`.
pub fn app(ctx: Arc<ServerContext>) -> HlsApp {
    // A player reloads its playlist at least every target duration: three without a
    // request and it has gone.
    let quiet = ctx.settings.hls_target_duration * 3;
    HlsApp(Arc::new(Shared {
        readers: Readers::new(quiet),
        ladders: Ladders::new(quiet),
        auth: Auth::new(&ctx),
        ctx,
    }))
}

impl http_conn::App for HlsApp {
    type Body = Body;
    type BodyError = axum::Error;

    async fn answer(self, peer: SocketAddr, request: Request<Incoming>) -> Response {
        self.0.serve(peer, request).await
    }
}

impl Shared {
    async fn serve(&self, peer: SocketAddr, request: Request<Incoming>) -> Response {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
            return response;
        }
        let Some((name, file)) = split_path(request.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "Not found");
        };
        let (Some(name), Some(file)) = (decoded(name), decoded(file)) else {
            return plain(StatusCode::BAD_REQUEST, "The URL is not valid UTF-8");
        };
        let query: HashMap<String, String> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let headers = request.headers();
        let asked = Url {
            name: &name,
            file: &file,
            query: &query,
        };
        let response = self.answer(peer, asked, headers).await;
        cache::conditional(headers, response)
    }
}

/// `/NAME/FILE` → (NAME, FILE), both not empty, still percent-encoded.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (name, file) = path.strip_prefix('/')?.split_once('/')?;
    (!name.is_empty() && !file.is_empty() && !file.contains('/')).then_some((name, file))
}

/// A path segment percent-decoded; `None` when that is not UTF-8.
fn decoded(segment: &str) -> Option<Cow<'_, str>> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
}

/// What a URL under `/NAME/` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Playlist,
    Init(String),
    Segment(String, u64),
    Part(String, u64, usize),
}

fn parse_file(name: &str, file: &str) -> Option<Asked> {
    if file.strip_suffix(".m3u8") == Some(name) {
        return Some(Asked::Playlist);
    }
    if let Some(run) = file
        .strip_prefix("init-")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        return Some(Asked::Init(run.to_string()));
    }
    let (run, rest) = file.strip_suffix(".m4s")?.split_once('-')?;
    match rest.split_once('.') {
        None => Some(Asked::Segment(run.to_string(), rest.parse().ok()?)),
        Some((msn, part)) => Some(Asked::Part(
            run.to_string(),
            msn.parse().ok()?,
            part.parse().ok()?,
        )),
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A segment, part or init answer: immutable, with its ETag and `Last-Modified`.
fn stored(item: Stored, etag: fmt::Arguments<'_>) -> Response {
    let mut response = media(item.bytes, "video/mp4", IMMUTABLE, etag);
    cache::last_modified(&mut response, item.made);
    response
}

/// A media answer: its type, how long it may be cached, its ETag (without the quotes).
/// Built header by header from static values (a part is asked for tens of thousands of
/// times a second).
fn media(
    body: Bytes,
    content_type: &'static str,
    cache: &'static str,
    etag: fmt::Arguments<'_>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.reserve(6);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(format!("\"{etag}\""))) {
        headers.insert(header::ETAG, v);
    }
    response
}

const IMMUTABLE: &str = "max-age=31536000, immutable";

/// What a request's URL holds.
struct Url<'a> {
    name: &'a str,
    file: &'a str,
    query: &'a HashMap<String, String>,
}

impl Shared {
    /// The answer to `url` from `peer`: an ABR name's, or a stream's from its window.
    async fn answer(&self, peer: SocketAddr, url: Url<'_>, headers: &HeaderMap) -> Response {
        let Shared {
            ctx,
            readers,
            ladders,
            auth,
        } = self;
        let Url { name, file, query } = url;
        if let Some(base) = abr::base_name(name) {
            // Asked of the backend under the name the client asked for.
            let token = match auth
                .check(ctx, name, query.get("token").map(String::as_str))
                .await
            {
                Ok(token) => token,
                Err(response) => return response,
            };
            let request = abr::AbrRequest {
                readers,
                ladders,
                peer,
                name,
                base,
                file,
                query,
                headers,
                token,
            };
            return abr::answer(ctx, request).await;
        }
        let Some(asked) = parse_file(name, file) else {
            return plain(StatusCode::NOT_FOUND, "Not found");
        };
        // Before anything is looked up or started: a refused client costs nothing more.
        let token = match auth
            .check(ctx, name, query.get("token").map(String::as_str))
            .await
        {
            Ok(token) => token,
            Err(response) => return response,
        };
        let (stream, window) = match find_window(ctx, name, asked == Asked::Playlist).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        let request = readers::Request {
            peer: peer.ip(),
            agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            name,
            may_begin: asked == Asked::Playlist,
        };
        // A stream that has just ended (its last window lingers) has no readers to count.
        let _visit = stream
            .as_ref()
            .map(|t| readers.visit(&ctx.registry, t, &request));
        from_window(ctx, &window, asked, query, headers, token).await
    }
}

/// The answer to `asked` from `window` (a stream's, or a variant's of an ABR stream);
/// a playlist hands `token` on in its URIs (`auth`).
async fn from_window(
    ctx: &ServerContext,
    window: &Arc<Window>,
    asked: Asked,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    // The stream stays up while this request lasts, waits included.
    let _reading = Window::reading(window, Instant::now());
    if let Err(response) = first_segment(window).await {
        return response;
    }
    let part_wait = ctx.settings.ll_hls_part_target * 3 + ctx.settings.hls_target_duration;
    match asked {
        Asked::Playlist => {
            let gzip = cache::accepts_gzip(headers);
            playlist(ctx, window, query, gzip, token).await
        }
        Asked::Init(run) if run == window.tag() => match window.init() {
            Some(init) => stored(init, format_args!("{run}-init")),
            None => plain(StatusCode::NOT_FOUND, "Not found"),
        },
        Asked::Segment(run, msn) if run == window.tag() => match window.segment(msn) {
            Some(seg) => stored(seg, format_args!("{run}-{msn}")),
            None => plain(
                StatusCode::NOT_FOUND,
                "Segment not in the playlist's window",
            ),
        },
        Asked::Part(run, msn, index) if run == window.tag() => {
            let until = Instant::now() + part_wait;
            loop {
                let mut changes = window.changes();
                match window.part(msn, index) {
                    PartLookup::Ready(p) => return stored(p, format_args!("{run}-{msn}.{index}")),
                    PartLookup::Missing => {
                        return plain(StatusCode::NOT_FOUND, "Part not in the playlist's window")
                    }
                    PartLookup::Coming => {
                        if !changed(&mut changes, until).await {
                            return plain(StatusCode::SERVICE_UNAVAILABLE, "Part not ready yet");
                        }
                    }
                }
            }
        }
        // Another run of the stream (it was restarted): gone.
        _ => plain(StatusCode::NOT_FOUND, "Not found: the stream was restarted"),
    }
}

/// Waits for the window to change until `until`; `false` at the time-out.
async fn changed(changes: &mut tokio::sync::watch::Receiver<u64>, until: Instant) -> bool {
    tokio::time::timeout_at(until.into(), changes.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The window of the running stream named `name`: a translation (its
/// `localStreamName`, or its `vod-live://` URI) or a published stream; for a playlist
/// with `hls_auto_start`, a translation of a `vod-live://` name is started. `Err` is the
/// answer to give.
async fn find_window(
    ctx: &Arc<ServerContext>,
    name: &str,
    may_start: bool,
) -> Result<(Option<Read>, Arc<Window>), Response> {
    let registry = &ctx.registry;
    if let Some(published) = registry.published(name) {
        let Some((id, window)) = registry.published_hls(&published) else {
            return Err(plain(
                StatusCode::NOT_FOUND,
                "Stream not found: it has ended or has no media HLS carries",
            ));
        };
        let _ = registry.hls.served_as(&id, name);
        return Ok((Some(Read::Published(published, id)), window));
    }
    // The name is read as a `vod-live://` URI only when no translation has it.
    let (running, live_uri) =
        if let Some(t) = registry.translation(name).filter(|t| !t.door.is_ended()) {
            (Some(t), None)
        } else {
            let uri = StreamUri::parse(name)
                .ok()
                .filter(|u| u.mode == PlayMode::Live);
            let running = uri
                .as_ref()
                .and_then(|u| registry.translation_of(&u.uri_string()));
            (running, uri)
        };
    if running.is_none() {
        // Just ended: its last window, while it lingers.
        if let Some(window) = registry.hls.named(name) {
            return Ok((None, window));
        }
    }
    let handle = match (running, live_uri) {
        (Some(t), _) => t,
        (None, Some(uri)) if may_start && ctx.settings.hls_auto_start => {
            if ctx.shutdown.is_draining() {
                return Err(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is shutting down",
                ));
            }
            registry
                .find_or_start_translation_for_hls(name, uri)
                .await
                .map_err(|e| plain(StatusCode::NOT_FOUND, &e.to_string()))?
        }
        _ => return Err(plain(StatusCode::NOT_FOUND, "Stream not found")),
    };
    let Some(window) = registry.hls.served_as(&handle.id, name) else {
        return Err(plain(
            StatusCode::NOT_FOUND,
            "Stream has no HLS: it has no H.264 video or AAC audio",
        ));
    };
    Ok((Some(Read::Translation(handle)), window))
}

/// Waits until the window has a complete segment (a stream just started has none: a
/// player is better served by waiting for it than by an empty playlist). `Err` is the
/// answer to give.
async fn first_segment(window: &Window) -> Result<(), Response> {
    let until = Instant::now() + FIRST_SEGMENT_WAIT;
    loop {
        let mut changes = window.changes();
        if window.has_segment() || window.is_ended() {
            return Ok(());
        }
        if !changed(&mut changes, until).await {
            return Err(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The stream has no media yet",
            ));
        }
    }
}

/// The playlist, after waiting for what `_HLS_msn` / `_HLS_part` ask for; gzipped when
/// the client takes it.
async fn playlist(
    ctx: &ServerContext,
    window: &Window,
    query: &HashMap<String, String>,
    gzip: bool,
    token: Option<&str>,
) -> Response {
    let number = |key: &str| query.get(key).map(|v| v.parse::<u64>());
    let blocking = match (number("_HLS_msn"), number("_HLS_part")) {
        (None, None) => None,
        (Some(Ok(msn)), None) => Some((msn, None)),
        (Some(Ok(msn)), Some(Ok(part))) => Some((msn, usize::try_from(part).ok())),
        (None, Some(_)) => {
            return plain(StatusCode::BAD_REQUEST, "_HLS_part needs _HLS_msn");
        }
        _ => {
            return plain(
                StatusCode::BAD_REQUEST,
                "_HLS_msn and _HLS_part must be whole numbers",
            )
        }
    };
    if let Some((msn, part)) = blocking {
        // The spec: a server that cannot answer within three target durations says so.
        let until = Instant::now() + ctx.settings.hls_target_duration * 3;
        loop {
            let mut changes = window.changes();
            match window.readiness(msn, part) {
                Readiness::Ready => break,
                Readiness::TooFar => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "_HLS_msn is more than two segments ahead of the playlist",
                    )
                }
                // The last playlist, with `#EXT-X-ENDLIST`: the player stops there.
                Readiness::Ended => break,
                Readiness::Wait => {
                    if !changed(&mut changes, until).await {
                        return plain(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "The asked segment did not come in time",
                        );
                    }
                }
            }
        }
    }
    let mut text = window.playlist();
    if let Some(token) = token {
        // The segments' URIs hand the token on (`auth`).
        text = auth::with_token(&text, token);
    }
    let mut etag = format!("{}-{:016x}", window.tag(), fnv1a(text.as_bytes()));
    let cache = if blocking.is_some() {
        "no-cache"
    } else {
        "max-age=1"
    };
    // Another encoding is another representation: its own ETag (RFC 9110 §8.8.3).
    let body = if gzip {
        etag.push_str("-gz");
        cache::gzip(text.as_bytes())
    } else {
        Bytes::from(text)
    };
    let mut response = media(
        body,
        "application/vnd.apple.mpegurl",
        cache,
        format_args!("{etag}"),
    );
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// FNV-1a: a playlist's ETag (cheap, not a security hash).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_a_name_and_a_file() {
        assert_eq!(split_path("/a/a.m3u8"), Some(("a", "a.m3u8")));
        assert_eq!(
            split_path("/vod-live%3A%2F%2Fx.mp4/init-1.mp4"),
            Some(("vod-live%3A%2F%2Fx.mp4", "init-1.mp4"))
        );
        for path in ["", "/", "/a", "/a/", "//a", "/a/b/c", "a/b"] {
            assert_eq!(split_path(path), None, "{path}");
        }
        assert_eq!(
            decoded("vod-live%3A%2F%2Fx.mp4").unwrap(),
            "vod-live://x.mp4"
        );
        assert_eq!(decoded("%FF"), None);
    }

    #[test]
    fn urls_under_the_stream_name() {
        assert_eq!(parse_file("a", "a.m3u8"), Some(Asked::Playlist));
        assert_eq!(
            parse_file("vod-live://x.mp4", "vod-live://x.mp4.m3u8"),
            Some(Asked::Playlist)
        );
        assert_eq!(parse_file("a", "b.m3u8"), None);
        assert_eq!(
            parse_file("a", "init-1f2e.mp4"),
            Some(Asked::Init("1f2e".into()))
        );
        assert_eq!(
            parse_file("a", "1f2e-12.m4s"),
            Some(Asked::Segment("1f2e".into(), 12))
        );
        assert_eq!(
            parse_file("a", "1f2e-12.3.m4s"),
            Some(Asked::Part("1f2e".into(), 12, 3))
        );
        assert_eq!(parse_file("a", "1f2e-x.m4s"), None);
        assert_eq!(parse_file("a", "12.m4s"), None);
    }
}
