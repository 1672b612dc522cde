//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/{stream name}` with an SDP offer gets
//! `201 Created`, the answer, and a `Location`; `DELETE` on that location ends playback.
//! The stream name is URL-encoded in the path (`/whep/vod%3A%2F%2Fsample.mp4`).
//!
//! A player may ask for a rendition in the URL's query, as the WCS SDK's `constraints`
//! do: `?width=320&height=180`, `?bitrate=500` (kbit/s), any of the three; bounds and
//! refusals are the same (`400` for nonsense).
//!
//! Failures answer with a status code and the same plain reason the WCS protocol gives
//! (`404 File not found`).
//!
//! With REST hooks on ([`crate::hooks`]), a POST is asked of the application's backend as
//! a WCS session and play would be: `/connect` with the request's Bearer token
//! (`Authorization: Bearer TOKEN`, RFC 9725) as `authToken`, then `/playStream`. A refused
//! connect answers `401` with `WWW-Authenticate: Bearer` and the backend's reason; a
//! refused play `403` with it; a backend that cannot be reached `503` (the token may be
//! fine: the client may try again later).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::info;

use crate::context::ServerContext;
use crate::hooks::{Denied, Hook};
use crate::media::{StopReason, ViewerProtocol};
use crate::playback::{self, Requester};
use crate::stream::constraints::VideoConstraints;
use crate::stream::StreamError;
use crate::webrtc::IceTransport;

/// Where a WHEP session's resource lives.
pub const RESOURCE_PREFIX: &str = "/whep/resource/";

/// `POST /whep/{name}`: plays the named stream to the offer's sender; `201` with the answer.
pub async fn create(
    State(ctx): State<Arc<ServerContext>>,
    Path(name): Path<String>,
    Query(query): Query<PlayQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let constraints = match play_constraints(&query) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let Ok(offer) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "SDP offer is not UTF-8").into_response();
    };
    if !offer.starts_with("v=") {
        return (StatusCode::BAD_REQUEST, "Body is not an SDP offer").into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(refused) = ask_hooks(&ctx, &headers, &id, &name, Hook::PlayStream).await {
        info!(stream = %name, "WHEP play refused by the application's backend");
        return refused;
    }
    let requester = Requester {
        media_session_id: &id,
        protocol: ViewerProtocol::Whep,
        // A WHEP player hears nothing after the answer; its session is the registry's.
        statuses: None,
        transport: IceTransport::Any,
        received,
        constraints,
    };
    match playback::start(&ctx, &name, offer, requester).await {
        Err(e) => {
            info!(stream = %name, "WHEP play refused: {e}");
            (error_status(&e), e.to_string()).into_response()
        }
        Ok(p) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, format!("{RESOURCE_PREFIX}{id}")),
            ],
            p.answer_sdp,
        )
            .into_response(),
    }
}

/// The rendition a WHEP player asks for in the URL's query (`?width=320&height=180`,
/// `?bitrate=500` in kbit/s): the SDK's `constraints`, same bounds.
fn play_constraints(query: &PlayQuery) -> Result<Option<VideoConstraints>, StreamError> {
    let value = |v: &Option<String>| v.clone().map(serde_json::Value::String);
    let (w, h, b) = (
        value(&query.width),
        value(&query.height),
        value(&query.bitrate),
    );
    VideoConstraints::from_request(w.as_ref(), h.as_ref(), b.as_ref())
}

/// The query of `POST /whep/{name}`: a rendition's size and bit rate (kbit/s), each
/// optional; anything else is ignored.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PlayQuery {
    width: Option<String>,
    height: Option<String>,
    bitrate: Option<String>,
}

/// The REST hooks' verdict on a WHEP (or WHIP) request, as a WCS session's `connect` and
/// `playStream` (`publishStream`) would be asked; the refusal as the answer to send.
pub(super) async fn ask_hooks(
    ctx: &ServerContext,
    headers: &HeaderMap,
    id: &str,
    name: &str,
    hook: Hook,
) -> Result<(), Response> {
    if !ctx.hooks.enabled() {
        return Ok(());
    }
    let token = bearer_token(headers);
    let (app, client) = match hook {
        Hook::PublishStream => ("whip", "WHIP"),
        _ => ("whep", "WHEP"),
    };
    let session = format!("{app}-{id}");
    let connect = json!({
        "appKey": app,
        "sessionId": session,
        "authToken": token,
        "mediaProviders": ["WebRTC"],
        "clientVersion": client,
    });
    match ctx.hooks.ask(Hook::Connect, connect).await {
        Ok(()) => {}
        Err(Denied::Unavailable) => return Err(unavailable()),
        Err(refused) => {
            let answer = (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                refused.to_string(),
            );
            return Err(answer.into_response());
        }
    }
    let play = json!({
        "appKey": app,
        "sessionId": session,
        "mediaSessionId": id,
        "name": name,
        "published": hook == Hook::PublishStream,
        "status": "PENDING",
        "authToken": token,
    });
    ctx.hooks
        .ask(hook, play)
        .await
        .map_err(|denied| match denied {
            Denied::Unavailable => unavailable(),
            refused @ Denied::Refused(_) => {
                (StatusCode::FORBIDDEN, refused.to_string()).into_response()
            }
        })
}

/// The answer when the hooks' backend gave no verdict.
fn unavailable() -> Response {
    let reason = Denied::Unavailable.to_string();
    (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
}

/// The token of `Authorization: Bearer TOKEN` (scheme in any case), if any.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// `DELETE` of a WHEP resource: ends that playback.
pub async fn delete(State(ctx): State<Arc<ServerContext>>, Path(id): Path<String>) -> Response {
    // The registry lists the session until its stream has ended.
    if ctx
        .registry
        .stop_play(&id, Some(ViewerProtocol::Whep), StopReason::ByUser)
    {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::NOT_FOUND, "Stream not found").into_response()
    }
}

fn error_status(e: &StreamError) -> StatusCode {
    match e {
        StreamError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        StreamError::NotFound | StreamError::StreamNotFound => StatusCode::NOT_FOUND,
        StreamError::Restricted(_) => StatusCode::FORBIDDEN,
        StreamError::WrongFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StreamError::ReadFailed(_) | StreamError::Streaming(_) | StreamError::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        StreamError::UnknownStorage | StreamError::Other(_) => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_in_any_case_and_nothing_else_is() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            bearer_token(&h)
        };
        assert_eq!(with("Bearer abc.def"), Some("abc.def".into()));
        assert_eq!(with("bearer  xyz "), Some("xyz".into()));
        assert_eq!(with("Basic dXNlcjpwYXNz"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
