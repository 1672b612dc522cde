//! `/vod/*`: start live translations of files, and find or stop VODs of both kinds
//! (personal `vod://` plays and `vod-live://` translations) as WCS VOD objects. Named
//! after WCS's `/rest-api/vod` methods; a personal VOD's own task is
//! `stream::personal_vod`.
//!
//! Owns the VOD object and the request shapes of these four methods. Must not: start a
//! personal VOD (only a viewer's play does), or reach into a stream: it starts
//! translations through the registry and stops them through its handles.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::json::{RestError, RestJson};
use super::{stop_all, Running};
use crate::context::ServerContext;
use crate::source::{PlayMode, SourceError, StreamUri};
use crate::stream::live::{StartError, TranslationHandle, TranslationSpec};
use crate::stream::registry::{PlayKind, PlayRecord};
use crate::stream::StreamError;

/// A VOD as WCS describes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VodObject {
    /// A translation's id, or a personal VOD's media session id.
    pub local_media_session_id: String,
    /// `localStreamName`: what viewers play.
    pub local_stream_name: String,
    /// The canonical `vod://` or `vod-live://` name of the file.
    pub uri: String,
    /// Always `PROCESSED_LOCAL` (WCS: the file is served by this server).
    pub status: &'static str,
    /// The file has audio.
    pub has_audio: bool,
    /// The file has video.
    pub has_video: bool,
    /// Always false: reelcast does not record.
    pub record: bool,
    #[serde(rename = "loop")]
    /// `loop`: a translation starts again at end of file.
    pub looped: bool,
}

impl VodObject {
    fn of_translation(t: &TranslationHandle) -> Self {
        VodObject {
            local_media_session_id: t.id.clone(),
            local_stream_name: t.name.clone(),
            uri: t.uri.clone(),
            status: "PROCESSED_LOCAL",
            has_audio: t.info.has_audio,
            has_video: t.info.has_video,
            record: false,
            looped: t.looped,
        }
    }

    fn of_play(p: &PlayRecord) -> Self {
        VodObject {
            local_media_session_id: p.media_session_id.clone(),
            local_stream_name: p.name.clone(),
            uri: p.uri.clone(),
            status: "PROCESSED_LOCAL",
            has_audio: p.info.has_audio,
            has_video: p.info.has_video,
            record: false,
            looped: false,
        }
    }
}

/// `/vod/startup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StartupRequest {
    /// `vod-live://FILE`.
    pub uri: String,
    /// Defaults to `uri`.
    #[serde(default)]
    pub local_stream_name: Option<String>,
    /// Wins over `vod_live_loop`.
    #[serde(default, rename = "loop")]
    pub looped: Option<bool>,
}

/// `/vod/find` and `/vod/terminate`: what to match (at least one field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VodSelector {
    #[serde(default)]
    /// Match this `localStreamName`.
    pub local_stream_name: Option<String>,
    #[serde(default)]
    /// Match this file name (`vod-live://FILE`).
    pub uri: Option<String>,
}

impl StartupRequest {
    /// Checks the request: the uri must name a live translation, the name must not be
    /// empty. Returns the parsed uri and the local stream name.
    pub fn validate(&self) -> Result<(StreamUri, String), RestError> {
        let uri = StreamUri::parse(self.uri.trim()).map_err(|e| match e {
            SourceError::UnknownScheme { .. } => RestError::bad_request(format!(
                "Failed to get agent storage: uri {:?} has no known scheme (expected vod-live://FILE)",
                self.uri
            )),
            SourceError::NotFound => RestError::bad_request("uri names no file (expected vod-live://FILE)"),
            other => RestError::bad_request(StreamError::from(other).to_string()),
        })?;
        if uri.mode != PlayMode::Live {
            return Err(RestError::bad_request(format!(
                "/vod/startup starts live translations only: use vod-live://{} (a vod:// personal VOD starts when a viewer plays it)",
                self.uri.trim().split_once("://").map(|(_, f)| f).unwrap_or_default()
            )));
        }
        let name = match &self.local_stream_name {
            None => self.uri.trim().to_string(),
            Some(n) if n.trim().is_empty() => {
                return Err(RestError::bad_request("localStreamName must not be empty"))
            }
            Some(n) => n.trim().to_string(),
        };
        Ok((uri, name))
    }
}

impl VodSelector {
    fn validate(&self) -> Result<(), RestError> {
        if self.local_stream_name.is_none() && self.uri.is_none() {
            return Err(RestError::bad_request(
                "Give localStreamName or uri (or both) to select VODs",
            ));
        }
        Ok(())
    }

    fn matches(&self, vod: &VodObject) -> bool {
        self.local_stream_name
            .as_ref()
            .is_none_or(|n| *n == vod.local_stream_name)
            && self
                .uri
                .as_ref()
                .is_none_or(|u| canonical_uri(u) == canonical_uri(&vod.uri))
    }
}

/// `vod://a%20b.mp4` and `vod://a b.mp4` name the same file: compare canonical forms.
fn canonical_uri(uri: &str) -> String {
    StreamUri::parse(uri.trim()).map_or_else(|_| uri.trim().to_string(), |u| u.uri_string())
}

/// Every VOD, translations first, each with what stops it.
fn all_vods(ctx: &ServerContext) -> Vec<(VodObject, Running)> {
    let registry = &ctx.registry;
    let translations = registry
        .translations()
        .into_iter()
        .filter(|t| !t.door.is_ended())
        .map(|t| (VodObject::of_translation(&t), Running::Translation(t)));
    let personal = registry
        .plays()
        .into_iter()
        .filter(|p| p.kind == PlayKind::Personal)
        .map(|p| (VodObject::of_play(&p), Running::Play(p.media_session_id)));
    translations.chain(personal).collect()
}

fn found(list: Vec<VodObject>, what: &str) -> Result<Json<Vec<VodObject>>, RestError> {
    if list.is_empty() {
        Err(RestError::not_found(format!("No VOD {what}")))
    } else {
        Ok(Json(list))
    }
}

/// `/vod/startup`: starts a live translation of a file under a `localStreamName`.
pub async fn startup(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(req): RestJson<StartupRequest>,
) -> Result<Json<VodObject>, RestError> {
    let (uri, name) = req.validate()?;
    let spec = TranslationSpec {
        name,
        uri,
        looped: req.looped.unwrap_or(ctx.settings.vod_live_loop),
        // WCS's translations are for WebRTC viewers: theirs is ready when they come.
        reencode_at_start: true,
    };
    match ctx.registry.start_translation(spec).await {
        Ok(t) => Ok(Json(VodObject::of_translation(&t))),
        Err(StartError::NameInUse) => Err(RestError::new(
            StatusCode::CONFLICT,
            "Stream name is already in use",
        )),
        Err(StartError::NotLive(uri)) => Err(RestError::bad_request(format!(
            "Not a live translation: {uri} (expected vod-live://FILE)"
        ))),
        Err(StartError::Stream(e)) => Err(start_failure(e)),
    }
}

/// A translation that could not open its file: WCS answers 500 with the reason;
/// a name the server refuses to read is the caller's mistake.
fn start_failure(e: StreamError) -> RestError {
    let status = match e {
        StreamError::Restricted(_) | StreamError::UnknownStorage => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    RestError::new(status, e.to_string())
}

/// `/vod/find`: the VODs that match; 404 when none does.
pub async fn find(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(sel): RestJson<VodSelector>,
) -> Result<Json<Vec<VodObject>>, RestError> {
    sel.validate()?;
    let list = all_vods(&ctx)
        .into_iter()
        .map(|(v, _)| v)
        .filter(|v| sel.matches(v))
        .collect();
    found(list, "matches")
}

/// No body is needed; any body is ignored (WCS scripts often send `{}`).
pub async fn find_all(
    State(ctx): State<Arc<ServerContext>>,
) -> Result<Json<Vec<VodObject>>, RestError> {
    found(
        all_vods(&ctx).into_iter().map(|(v, _)| v).collect(),
        "is running",
    )
}

/// Stops every matching VOD; answers the list of what was stopped.
pub async fn terminate(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(sel): RestJson<VodSelector>,
) -> Result<Json<Vec<VodObject>>, RestError> {
    sel.validate()?;
    let (vods, targets): (Vec<_>, Vec<_>) = all_vods(&ctx)
        .into_iter()
        .filter(|(v, _)| sel.matches(v))
        .unzip();
    if vods.is_empty() {
        return Err(RestError::not_found("No VOD matches"));
    }
    stop_all(&ctx.registry, &targets).await;
    Ok(Json(vods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::json::parse_body;

    fn startup(body: &str) -> Result<(String, String, Option<bool>), RestError> {
        let req: StartupRequest = parse_body(body.as_bytes())?;
        let (uri, name) = req.validate()?;
        Ok((uri.uri_string(), name, req.looped))
    }

    #[test]
    fn startup_takes_uri_name_and_loop() {
        assert_eq!(
            startup(r#"{"uri":"vod-live://sample.mp4","localStreamName":"test","loop":true}"#),
            Ok(("vod-live://sample.mp4".into(), "test".into(), Some(true)))
        );
        assert_eq!(
            startup(r#"{"uri":"vod-live://sample.mp4"}"#),
            Ok((
                "vod-live://sample.mp4".into(),
                "vod-live://sample.mp4".into(),
                None
            )),
            "localStreamName defaults to the uri, loop to the setting"
        );
    }

    #[test]
    fn startup_refusals() {
        let reason = |body: &str| startup(body).unwrap_err();
        let personal = reason(r#"{"uri":"vod://sample.mp4"}"#);
        assert_eq!(personal.status, StatusCode::BAD_REQUEST);
        assert!(
            personal.reason.contains("use vod-live://sample.mp4"),
            "{}",
            personal.reason
        );
        assert!(reason(r#"{"uri":"sample.mp4"}"#)
            .reason
            .contains("no known scheme"));
        assert!(reason(r#"{"uri":"rtmp://x/y"}"#)
            .reason
            .contains("no known scheme"));
        assert!(
            reason(r#"{"uri":"vod-live://a.mp4","localStreamName":" "}"#)
                .reason
                .contains("must not be empty")
        );
        assert!(reason(r#"{"localStreamName":"x"}"#)
            .reason
            .contains("missing field `uri`"));
        assert!(reason(r#"{"uri":"vod-live://a.mp4","loop":"true"}"#)
            .reason
            .contains("expected a boolean"));
        assert!(reason(r#"{"uri":"vod-live://a.mp4","looped":true}"#)
            .reason
            .contains("unknown field `looped`"));
    }

    fn vod(name: &str, uri: &str) -> VodObject {
        VodObject {
            local_media_session_id: "id".into(),
            local_stream_name: name.into(),
            uri: uri.into(),
            status: "PROCESSED_LOCAL",
            has_audio: true,
            has_video: true,
            record: false,
            looped: false,
        }
    }

    #[test]
    fn selector_matches_given_fields() {
        let sel: VodSelector = parse_body(br#"{"localStreamName":"test"}"#).unwrap();
        assert!(sel.matches(&vod("test", "vod-live://a.mp4")));
        assert!(!sel.matches(&vod("other", "vod-live://a.mp4")));
        let sel: VodSelector =
            parse_body(br#"{"uri":"vod://a%20b.mp4","localStreamName":"vod://a b.mp4"}"#).unwrap();
        assert!(sel.matches(&vod("vod://a b.mp4", "vod://a%20b.mp4")));
        assert!(!sel.matches(&vod("vod://a b.mp4", "vod-live://a%20b.mp4")));
        let empty: VodSelector = parse_body(b"{}").unwrap();
        assert_eq!(
            empty.validate().unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn vod_object_has_the_wcs_fields() {
        let v = serde_json::to_value(vod("test", "vod-live://a.mp4")).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "hasAudio",
                "hasVideo",
                "localMediaSessionId",
                "localStreamName",
                "loop",
                "record",
                "status",
                "uri"
            ]
        );
    }
}
