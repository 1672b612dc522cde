//! The HLS ABR form of a stream: `/NAME-HLS-ABR-STREAM/NAME-HLS-ABR-STREAM.m3u8` (WCS's
//! name form; NAME as for plain HLS) is a multivariant playlist whose variants' media
//! playlists sit beside it (`source.m3u8` for the stream untouched, `480p.m3u8`, … for
//! its renditions), their init segments, segments and parts too, told apart by the run
//! tag their names carry. Each media playlist is served as a plain stream's is (blocking
//! reloads, parts, headers).
//!
//! Owns: those URLs, the multivariant playlist's answer (waiting, as a plain playlist
//! does, for each variant's first segment, whose figures it states), and counting a
//! request as a reader of the parent stream and as a use of the ladder. Must not: start
//! or stop renditions (that is `super::ladder`) or make playlist text (`crate::hls`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::ladder::{Ladder, Ladders, SOURCE};
use super::readers::{self, Readers};
use super::{changed, find_window, fnv1a, from_window, media, parse_file, plain, Asked};
use super::{ServerContext, FIRST_SEGMENT_WAIT};
use crate::hls::master::{self, Variant};
use crate::hls::Window;

/// What ends an ABR stream's name.
pub(super) const SUFFIX: &str = "-HLS-ABR-STREAM";

/// NAME of `NAME-HLS-ABR-STREAM`.
pub(super) fn base_name(name: &str) -> Option<&str> {
    name.strip_suffix(SUFFIX).filter(|base| !base.is_empty())
}

/// What a URL under `/NAME-HLS-ABR-STREAM/` asks for.
#[derive(Debug, PartialEq, Eq)]
enum AbrAsked {
    /// The multivariant playlist.
    Multivariant,
    /// A variant's media playlist, by its name (`source`, `480p`).
    Variant(String),
    /// An init segment, segment or part of some variant, by its run tag.
    Media(Asked),
}

fn parse(name: &str, file: &str) -> Option<AbrAsked> {
    if file.strip_suffix(".m3u8") == Some(name) {
        return Some(AbrAsked::Multivariant);
    }
    if let Some(stem) = file.strip_suffix(".m3u8") {
        let known = stem == SOURCE
            || stem
                .strip_suffix('p')
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()));
        return known.then(|| AbrAsked::Variant(stem.to_string()));
    }
    match parse_file(name, file)? {
        Asked::Playlist => None,
        media => Some(AbrAsked::Media(media)),
    }
}

/// One request under an ABR name.
pub(super) struct AbrRequest<'a> {
    pub readers: &'a Arc<Readers>,
    pub ladders: &'a Arc<Ladders>,
    pub peer: SocketAddr,
    /// `NAME-HLS-ABR-STREAM`.
    pub name: &'a str,
    /// NAME.
    pub base: &'a str,
    pub file: &'a str,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
    /// The token the backend let read this stream (`hls_auth_enabled`), handed on in
    /// every playlist's URIs.
    pub token: Option<&'a str>,
}

pub(super) async fn answer(ctx: &Arc<ServerContext>, r: AbrRequest<'_>) -> Response {
    if !ctx.settings.hls_abr_auto_start {
        return plain(
            StatusCode::NOT_FOUND,
            "Not found: HLS ABR is off (hls_abr_auto_start=false)",
        );
    }
    let Some(asked) = parse(r.name, r.file) else {
        return plain(StatusCode::NOT_FOUND, "Not found");
    };
    let is_playlist = !matches!(asked, AbrAsked::Media(_));
    let ladder = if is_playlist {
        // A playlist may start the stream (`hls_auto_start`) and the ladder.
        let (read, source) = match find_window(ctx, r.base, true).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        let Some(read) = read else {
            return plain(StatusCode::NOT_FOUND, "Stream not found: it has ended");
        };
        let started = r
            .ladders
            .find_or_start(&ctx.registry, &ctx.settings, r.name, read, source);
        match started {
            Some(ladder) => ladder,
            None => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many HLS ABR streams at once",
                )
            }
        }
    } else {
        match r.ladders.get(r.name) {
            Some(ladder) => ladder,
            None => return plain(StatusCode::NOT_FOUND, "Not found: the stream was restarted"),
        }
    };
    let request = readers::Request {
        peer: r.peer.ip(),
        agent: r
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        name: r.name,
        may_begin: is_playlist,
    };
    let _reader = r.readers.visit(&ctx.registry, &ladder.parent, &request);
    let _use = ladder.visit();
    match asked {
        AbrAsked::Multivariant => multivariant(&ladder, r.token).await,
        AbrAsked::Variant(stem) => match ladder.variant(&stem) {
            Some(window) => {
                from_window(ctx, &window, Asked::Playlist, r.query, r.headers, r.token).await
            }
            None => plain(StatusCode::NOT_FOUND, "No such variant"),
        },
        AbrAsked::Media(asked) => {
            let run = match &asked {
                Asked::Init(run) | Asked::Segment(run, _) | Asked::Part(run, _, _) => run,
                Asked::Playlist => return plain(StatusCode::NOT_FOUND, "Not found"),
            };
            match ladder.by_tag(run) {
                Some(window) => from_window(ctx, &window, asked, r.query, r.headers, r.token).await,
                None => plain(StatusCode::NOT_FOUND, "Not found: the stream was restarted"),
            }
        }
    }
}

/// The multivariant playlist: the source, then each running rung, each once it has a
/// segment to be measured by (a rung not ready within the first-segment wait is left
/// out of this answer; the next reload lists it).
async fn multivariant(ladder: &Ladder, token: Option<&str>) -> Response {
    let until = Instant::now() + FIRST_SEGMENT_WAIT;
    let source_size = (ladder.parent_info.width, ladder.parent_info.height);
    let mut variants = Vec::new();
    if let Some(v) = measured(&ladder.source, SOURCE, source_size, until).await {
        variants.push(v);
    }
    for rung in ladder.rungs.iter().filter(|r| r.is_running()) {
        let size = (rung.handle.info.width, rung.handle.info.height);
        if let Some(v) = measured(&rung.window, &rung.label, size, until).await {
            variants.push(v);
        }
    }
    if variants.is_empty() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "The stream has no media yet",
        );
    }
    let mut text = master::multivariant(&variants);
    if let Some(token) = token {
        text = super::auth::with_token(&text, token);
    }
    let etag = format!("{}-{:016x}", ladder.source.tag(), fnv1a(text.as_bytes()));
    media(
        Bytes::from(text),
        "application/vnd.apple.mpegurl",
        "max-age=1",
        format_args!("{etag}"),
    )
}

/// Variant `label` of `window` (its picture `size`), once it has a complete segment
/// (waiting until `until`): `None` when it has none by then.
async fn measured(
    window: &Arc<Window>,
    label: &str,
    size: (u32, u32),
    until: Instant,
) -> Option<Variant> {
    let _reading = Window::reading(window, Instant::now());
    loop {
        let mut changes = window.changes();
        if window.has_segment() {
            break;
        }
        if window.is_ended() || !changed(&mut changes, until).await {
            return None;
        }
    }
    let init = window.init()?;
    let (peak_bps, average_bps) = window.bit_rates()?;
    let frame_rate = window
        .last_segment()
        .and_then(|(segment, us)| master::frame_rate(&segment, us));
    Some(Variant {
        uri: format!("{label}.m3u8"),
        peak_bps,
        average_bps,
        width: size.0,
        height: size.1,
        codecs: master::codecs(&init.bytes),
        frame_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abr_urls() {
        let n = "x-HLS-ABR-STREAM";
        assert_eq!(base_name(n), Some("x"));
        assert_eq!(base_name("-HLS-ABR-STREAM"), None);
        assert_eq!(base_name("x"), None);
        assert_eq!(
            parse(n, "x-HLS-ABR-STREAM.m3u8"),
            Some(AbrAsked::Multivariant)
        );
        assert_eq!(
            parse(n, "source.m3u8"),
            Some(AbrAsked::Variant("source".into()))
        );
        assert_eq!(
            parse(n, "480p.m3u8"),
            Some(AbrAsked::Variant("480p".into()))
        );
        assert_eq!(parse(n, "p.m3u8"), None);
        assert_eq!(parse(n, "x.m3u8"), None);
        assert_eq!(
            parse(n, "1f2e-3.m4s"),
            Some(AbrAsked::Media(Asked::Segment("1f2e".into(), 3)))
        );
        assert_eq!(
            parse(n, "init-1f2e.mp4"),
            Some(AbrAsked::Media(Asked::Init("1f2e".into())))
        );
    }
}
