//! WHEP (WebRTC-HTTP Egress Protocol): `POST /whep/{stream name}` with an SDP offer gets
//! `201 Created`, the answer, and a `Location`; `DELETE` on that location ends playback.
//! The stream name is URL-encoded in the path (`/whep/vod%3A%2F%2Fsample.mp4`).
//!
//! Failures answer with a status code and the same plain reason the WCS protocol gives
//! (`404 File not found`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::playback::{self, Requester};
use crate::server::ServerContext;
use crate::stream::{StreamError, StreamStatus};

/// Where a WHEP session's resource lives.
pub const RESOURCE_PREFIX: &str = "/whep/resource/";

pub async fn create(
    State(ctx): State<Arc<ServerContext>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(offer) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "SDP offer is not UTF-8").into_response();
    };
    if !offer.starts_with("v=") {
        return (StatusCode::BAD_REQUEST, "Body is not an SDP offer").into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    let requester = Requester {
        media_session_id: &id,
        protocol: "whep",
    };
    match playback::start(&ctx, &name, offer, requester).await {
        Err(e) => {
            info!(stream = %name, "WHEP play refused: {e}");
            (error_status(&e), e.to_string()).into_response()
        }
        Ok(p) => {
            ctx.whep_sessions.lock().await.insert(id.clone(), p.stopper);
            let (ctx2, id2, mut statuses) = (ctx.clone(), id.clone(), p.statuses);
            tokio::spawn(async move {
                while let Some(s) = statuses.recv().await {
                    if matches!(s, StreamStatus::Stopped(_) | StreamStatus::Failed(_)) {
                        ctx2.whep_sessions.lock().await.remove(&id2);
                        break;
                    }
                }
            });
            (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, "application/sdp".to_string()),
                    (header::LOCATION, format!("{RESOURCE_PREFIX}{id}")),
                ],
                p.answer_sdp,
            )
                .into_response()
        }
    }
}

pub async fn delete(State(ctx): State<Arc<ServerContext>>, Path(id): Path<String>) -> Response {
    match ctx.whep_sessions.lock().await.remove(&id) {
        Some(stopper) => {
            stopper.stop("Stopped by user");
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "Stream not found").into_response(),
    }
}

fn error_status(e: &StreamError) -> StatusCode {
    match e {
        StreamError::NotFound | StreamError::StreamNotFound => StatusCode::NOT_FOUND,
        StreamError::Restricted(_) => StatusCode::FORBIDDEN,
        StreamError::WrongFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StreamError::ReadFailed(_) | StreamError::Streaming(_) | StreamError::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        StreamError::UnknownStorage | StreamError::Other(_) => StatusCode::BAD_REQUEST,
    }
}
