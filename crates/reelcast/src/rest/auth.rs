//! Who may call the REST API: HTTP Basic auth against `rest_auth_users`, on when
//! `disable_rest_auth=false` (WCS's key; off by default, as in WCS).
//!
//! Owns checking an `Authorization` header and the `401` answer with
//! `WWW-Authenticate: Basic realm="reelcast"`. Must not: run before CORS (a browser's
//! preflight carries no credentials; the CORS layer answers it first).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::json::RestError;
use crate::config::RestUser;
use crate::context::ServerContext;

/// The realm browsers and curl show when asking for credentials.
pub const REALM: &str = "reelcast";

/// True when `header` holds the Basic credentials of one of `users`.
pub fn credentials_match(header: Option<&HeaderValue>, users: &[RestUser]) -> bool {
    let Some((name, password)) = header.and_then(basic_credentials) else {
        return false;
    };
    // Every user is compared, in constant time, so timing tells nothing about which
    // part was wrong.
    users.iter().fold(false, |found, u| {
        let ok = constant_time_eq(u.name.as_bytes(), name.as_bytes())
            & constant_time_eq(u.password.as_bytes(), password.as_bytes());
        found | ok
    })
}

/// `Basic base64(user:password)` → `(user, password)`; the scheme is case-insensitive
/// (RFC 7617), the user ends at the first `:`.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// `a == b`, in a time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware on `/rest-api/*`: passes the request on when auth is off or the
/// credentials match, else answers `401`.
pub async fn require_basic_auth(
    State(ctx): State<Arc<ServerContext>>,
    request: Request,
    next: Next,
) -> Response {
    if allowed(&ctx.settings, request.headers()) {
        return next.run(request).await;
    }
    with_basic_challenge(
        RestError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: this server needs HTTP Basic credentials for REST",
        )
        .into_response(),
    )
}

/// True when REST auth is off, or `headers` carry the credentials of one of its users.
/// What the REST API and the operator's `/metrics` ask alike.
pub fn allowed(settings: &crate::config::Settings, headers: &HeaderMap) -> bool {
    settings.disable_rest_auth
        || credentials_match(
            headers.get(header::AUTHORIZATION),
            &settings.rest_auth_users,
        )
}

/// `response` (a `401`) with the challenge that makes browsers and curl ask for Basic
/// credentials.
pub fn with_basic_challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"reelcast\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<RestUser> {
        crate::config::parse_rest_users("admin:secret,ops:p:w").expect("valid users")
    }

    fn basic(raw: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header")
    }

    #[test]
    fn right_credentials_pass() {
        assert!(credentials_match(Some(&basic("admin:secret")), &users()));
        assert!(
            credentials_match(Some(&basic("ops:p:w")), &users()),
            "password with ':'"
        );
        let lower = HeaderValue::from_static("basic YWRtaW46c2VjcmV0");
        assert!(
            credentials_match(Some(&lower), &users()),
            "scheme is case-insensitive"
        );
    }

    #[test]
    fn wrong_or_malformed_credentials_fail() {
        let u = users();
        assert!(!credentials_match(None, &u));
        assert!(!credentials_match(Some(&basic("admin:wrong")), &u));
        assert!(!credentials_match(Some(&basic("nobody:secret")), &u));
        assert!(
            !credentials_match(Some(&basic("ops:secret")), &u),
            "another user's password"
        );
        assert!(
            !credentials_match(Some(&basic("adminsecret")), &u),
            "no colon"
        );
        assert!(!credentials_match(Some(&basic("admin:secre")), &u));
        assert!(!credentials_match(
            Some(&HeaderValue::from_static("Basic !!!")),
            &u
        ));
        assert!(!credentials_match(
            Some(&HeaderValue::from_static("Basic")),
            &u
        ));
        assert!(!credentials_match(
            Some(&HeaderValue::from_static("Bearer YWRtaW46c2VjcmV0")),
            &u
        ));
        assert!(!credentials_match(Some(&basic("admin:secret")), &[]));
    }
}
