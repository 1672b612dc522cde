//! Recording on demand: `/stream/startRecording` (alias `/recorder/startup`),
//! `/stream/stopRecording` (alias `/recorder/terminate`), `/recorder/find_all`, with
//! WCS's fields. Codes: 404 for a stream that is not running (or, at stop, not being
//! recorded), 409 for a stream already being recorded (as `/vod/startup` answers a name
//! in use), 500 when the file cannot be made (the reason, never the path).
//!
//! Must not: touch files or streams; everything goes through the registry.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::json::{RestError, RestJson};
use crate::context::ServerContext;
use crate::record::RecordError;

/// `{mediaSessionId}` of the stream to record (WCS's optional `config` is accepted and
/// not used: names come from `stream_record_policy_template`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordRequest {
    /// The stream's `mediaSessionId` (`/stream/find_all` lists it).
    pub media_session_id: String,
    /// WCS's `{fileTemplate, rotation}`; accepted, not used.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// One recording, as `/recorder/find_all` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecorderObject {
    /// The file's name in `record_dir` (`recordName`).
    pub file_name: String,
    /// The recorded stream.
    pub media_session_id: String,
    /// `RECORDING`, `FINALIZING`, `DONE` or `FAILED: reason` (reelcast's own field).
    pub status: String,
}

fn rest_error(e: &RecordError) -> RestError {
    let status = match e {
        RecordError::NoSuchStream | RecordError::NotRecording | RecordError::Ended => {
            StatusCode::NOT_FOUND
        }
        RecordError::AlreadyRecording => StatusCode::CONFLICT,
        RecordError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    RestError::new(status, e.to_string())
}

/// Starts recording the stream; answers the recording.
pub async fn start(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(req): RestJson<RecordRequest>,
) -> Result<Json<RecorderObject>, RestError> {
    let _ = req.config;
    let name = ctx
        .registry
        .start_recording(&req.media_session_id)
        .await
        .map_err(|e| rest_error(&e))?;
    Ok(Json(RecorderObject {
        file_name: name,
        media_session_id: req.media_session_id,
        status: "RECORDING".into(),
    }))
}

/// Stops the stream's recording (finalized in the background); answers its file name.
pub async fn stop(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(req): RestJson<RecordRequest>,
) -> Result<Json<RecorderObject>, RestError> {
    let name = ctx
        .registry
        .stop_recording(&req.media_session_id)
        .map_err(|e| rest_error(&e))?;
    Ok(Json(RecorderObject {
        file_name: name,
        media_session_id: req.media_session_id,
        status: "FINALIZING".into(),
    }))
}

/// Every recording of a running stream; 404 when there is none (as `find_all`s answer).
pub async fn find_all(
    State(ctx): State<Arc<ServerContext>>,
) -> Result<Json<Vec<RecorderObject>>, RestError> {
    let list: Vec<RecorderObject> = ctx
        .registry
        .recordings()
        .into_iter()
        .map(|r| RecorderObject {
            file_name: r.file_name,
            media_session_id: r.media_session_id,
            status: r.status.text(),
        })
        .collect();
    if list.is_empty() {
        return Err(RestError::not_found("No recordings"));
    }
    Ok(Json(list))
}
