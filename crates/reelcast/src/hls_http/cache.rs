//! What a CDN or a browser cache needs from an HLS answer: `Last-Modified`, conditional
//! GETs (`If-None-Match`, `If-Modified-Since` → 304) and gzip of playlists.
//!
//! Owns: reading the request's cache and encoding headers and turning a full answer into
//! a 304 or a gzipped one. Must not: know URLs, windows or waits (that is `hls_http`).

use std::cell::RefCell;
use std::io::Write as _;
use std::time::SystemTime;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

/// The `Last-Modified` header of something made at `made`.
pub(super) fn last_modified(response: &mut Response, made: SystemTime) {
    if let Some(v) = http_date(made) {
        response.headers_mut().insert(header::LAST_MODIFIED, v);
    }
}

/// `made` as an HTTP date. The last one made on each thread is kept: the parts players
/// ask for were mostly made in the same second, and formatting a date per answer showed
/// in a part answer's profile.
fn http_date(made: SystemTime) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let second = made.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    LAST.with_borrow_mut(|last| match last {
        Some((s, value)) if *s == second => Some(value.clone()),
        _ => {
            let text = httpdate::fmt_http_date(made);
            let value = HeaderValue::from_maybe_shared(Bytes::from(text)).ok()?;
            *last = Some((second, value.clone()));
            Some(value)
        }
    })
}

/// `response` (a 200 with its `ETag` / `Last-Modified` set), or a 304 with the same
/// validators and cache headers and no body when the request's copy is still good.
/// `If-None-Match` wins over `If-Modified-Since` (RFC 9110 §13.2.2).
pub(super) fn conditional(request: &HeaderMap, mut response: Response) -> Response {
    if response.status() != StatusCode::OK || !still_fresh(request, response.headers()) {
        return response;
    }
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response.headers_mut().remove(header::CONTENT_TYPE);
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response.headers_mut().remove(header::CONTENT_ENCODING);
    *response.body_mut() = axum::body::Body::empty();
    response
}

fn still_fresh(request: &HeaderMap, answer: &HeaderMap) -> bool {
    if let Some(asked) = request.get(header::IF_NONE_MATCH) {
        let Some(etag) = answer.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // A weak comparison (RFC 9110 §13.1.2): `W/` is ignored on either side.
        let etag = etag.trim_start_matches("W/");
        return asked.to_str().is_ok_and(|list| {
            list.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        });
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let modified = answer
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    // Both are whole seconds (the header's precision).
    modified.is_some_and(|m| m <= since)
}

/// True when the request accepts gzip (`Accept-Encoding: gzip`, not with `q=0`).
pub(super) fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut fields = coding.split(';').map(str::trim);
            let name = fields.next().unwrap_or("");
            let refused = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `text` gzipped (fast level: playlists are a few KB, made per request).
pub(super) fn gzip(text: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 2),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn gzip_is_taken_only_when_offered() {
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "br, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip;q=0, br"
        )])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn validators_decide_freshness() {
        let answer = headers(&[
            (header::ETAG, "\"a-1\""),
            (header::LAST_MODIFIED, "Fri, 04 Dec 2026 00:00:10 GMT"),
        ]);
        let fresh = |req: &[(header::HeaderName, &str)]| still_fresh(&headers(req), &answer);
        assert!(fresh(&[(header::IF_NONE_MATCH, "\"x\", W/\"a-1\"")]));
        assert!(fresh(&[(header::IF_NONE_MATCH, "*")]));
        assert!(!fresh(&[(header::IF_NONE_MATCH, "\"a-2\"")]));
        // If-None-Match wins even when the date would match.
        assert!(!fresh(&[
            (header::IF_NONE_MATCH, "\"a-2\""),
            (header::IF_MODIFIED_SINCE, "Fri, 04 Dec 2026 00:00:10 GMT"),
        ]));
        assert!(fresh(&[(
            header::IF_MODIFIED_SINCE,
            "Fri, 04 Dec 2026 00:00:10 GMT"
        )]));
        assert!(!fresh(&[(
            header::IF_MODIFIED_SINCE,
            "Fri, 04 Dec 2026 00:00:09 GMT"
        )]));
        assert!(!fresh(&[(header::IF_MODIFIED_SINCE, "yesterday")]));
        assert!(!fresh(&[]));
    }
}
