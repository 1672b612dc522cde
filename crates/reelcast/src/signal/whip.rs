//! WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725): `POST /whip/{stream name}` with a
//! sendonly SDP offer publishes it under that name: `201 Created`, the answer
//! (`application/sdp`) and `Location: /whip/{name}/{id}`; `DELETE` on that location ends
//! it (UNPUBLISHED, its viewers STOPPED `Stopped by publisher stop`). The name is
//! URL-encoded in the path, as WHEP's is. Trickle ICE (`PATCH`) is not offered: the answer
//! carries every candidate.
//!
//! Who may publish is decided as for WHEP ([`super::whep`]): with REST hooks on, `/connect`
//! with the request's Bearer token as `authToken`, then `/publishStream` (401 / 403 / 503
//! as WHEP answers). Refusals, with the same words a WCS publisher reads: a name in use
//! `409 Conflict` (`Stream name is already in use`), a bad name or offer `400`, past
//! `max_publishers` or while shutting down `503`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tracing::info;

use crate::context::ServerContext;
use crate::hooks::Hook;
use crate::media::StopReason;
use crate::publishing::{self, PublishRequester};
use crate::stream::published::{PublishError, PublishProtocol};
use crate::webrtc::IceTransport;

/// `POST /whip/{name}`: publishes the offer's sender as `name`; `201` with the answer.
pub async fn create(
    State(ctx): State<Arc<ServerContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(offer) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "SDP offer is not UTF-8").into_response();
    };
    if !offer.starts_with("v=") {
        return (StatusCode::BAD_REQUEST, "Body is not an SDP offer").into_response();
    }
    // Checked before the backend is asked: a refused name costs it nothing.
    if let Err(e) = ctx.registry.may_publish(&name) {
        info!(stream = %name, "WHIP publish refused: {e}");
        return (error_status(&e), e.to_string()).into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(refused) =
        super::whep::ask_hooks(&ctx, &headers, &id, &name, Hook::PublishStream).await
    {
        info!(stream = %name, "WHIP publish refused by the application's backend");
        return refused;
    }
    let requester = PublishRequester {
        media_session_id: &id,
        protocol: PublishProtocol::Whip,
        // A WHIP client hears nothing after the answer; its end is the registry's.
        statuses: None,
        transport: IceTransport::Any,
        record: false,
        session_id: "",
        login: "",
    };
    match publishing::start(&ctx, &name, offer, requester) {
        Err(e) => {
            info!(stream = %name, "WHIP publish refused: {e}");
            (error_status(&e), e.to_string()).into_response()
        }
        Ok(p) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp".to_string()),
                (header::LOCATION, location(&name, &id)),
            ],
            p.answer_sdp,
        )
            .into_response(),
    }
}

/// Where a WHIP session's resource lives: `/whip/{name}/{id}`, the name URL-encoded.
fn location(name: &str, id: &str) -> String {
    let name = utf8_percent_encode(name, NON_ALPHANUMERIC);
    format!("/whip/{name}/{id}")
}

/// `DELETE /whip/{name}/{id}`: ends that publisher.
pub async fn delete(
    State(ctx): State<Arc<ServerContext>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    match ctx.registry.published(&name) {
        Some(p) if p.media_session_id == id && p.protocol == PublishProtocol::Whip => {
            p.terminate(StopReason::ByUser);
            StatusCode::OK.into_response()
        }
        _ => (StatusCode::NOT_FOUND, "Stream not found").into_response(),
    }
}

fn error_status(e: &PublishError) -> StatusCode {
    match e {
        PublishError::NameInUse => StatusCode::CONFLICT,
        PublishError::TooMany(_) | PublishError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        PublishError::BadName(_) | PublishError::Offer(_) => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_names_the_stream_url_encoded() {
        assert_eq!(location("cam 1", "abc"), "/whip/cam%201/abc");
    }
}
