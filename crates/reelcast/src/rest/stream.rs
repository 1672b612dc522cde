//! `/stream/*`: every stream and viewer as WCS stream objects. A browser's published
//! stream (WCS SDK or WHIP) is a *published* stream (`mediaType: publish`, status
//! `PUBLISHING`, or `PENDING` until its media flows; its publisher's `mediaSessionId`,
//! its name, `record`, and `protocol` `wcs` or `whip`); so is a live translation (its id
//! and local stream name); every viewer's play (WCS SDK or WHEP; personal VOD or translation viewer) is a
//! *play* stream (`mediaType: play`, status `PLAYING`, its media session id).
//!
//! Owns the stream object and the filter of `/stream/find`. Must not: reach into a
//! stream; stopping goes through the registry's handles.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::json::{RestError, RestJson};
use super::{epoch_ms, stop_all, Running};
use crate::context::ServerContext;
use crate::media::ViewerProtocol;
use crate::stream::live::TranslationHandle;
use crate::stream::published::PublishedHandle;
use crate::stream::registry::PlayRecord;
use crate::stream::MediaInfo;

/// A stream as WCS describes it, plus `uri`, `viewers` (published) and `protocol` (play).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamObject {
    /// `mediaSessionId`: a translation's or a viewer's id.
    pub media_session_id: String,
    /// The stream's name (`localStreamName`, or what the viewer played).
    pub name: String,
    /// True for a translation (WCS: a published stream), false for a viewer.
    pub published: bool,
    /// The media has video.
    pub has_video: bool,
    /// The media has audio.
    pub has_audio: bool,
    /// `PUBLISHING` (translation) or `PLAYING` (viewer).
    pub status: &'static str,
    /// The stream is being recorded now (for a publisher: also while it asked for one by
    /// `record: true` and the recording is starting).
    pub record: bool,
    /// Picture width in pixels (0 without video).
    pub width: u32,
    /// Picture height in pixels (0 without video).
    pub height: u32,
    /// What viewers receive: `opus`, or null without audio.
    pub audio_codec: Option<&'static str>,
    /// What viewers receive: `H264`, or null without video.
    pub video_codec: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub create_date: u64,
    /// `publish` or `play`.
    pub media_type: &'static str,
    /// Always `WebRTC`.
    pub media_provider: &'static str,
    /// The canonical `vod://` / `vod-live://` name of the file.
    pub uri: String,
    /// Published streams: viewers watching now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewers: Option<usize>,
    /// Play streams: `wcs` (WebSocket SDK), `whep` or `hls`; a browser's published
    /// stream: `wcs` or `whip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<&'static str>,
    /// A file whose video is transcoded: media seconds its transcode encodes per second
    /// of work, over its last 5 s of media (below 1: it cannot keep up, viewers see
    /// pauses). Absent before the first 5 s are judged, and for streams not transcoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcode_speed: Option<f64>,
}

impl StreamObject {
    fn media(info: &MediaInfo) -> (Option<&'static str>, Option<String>) {
        // Every audio track reaches WebRTC viewers as Opus (AAC is transcoded once).
        let audio = info.has_audio.then_some("opus");
        let video = info
            .has_video
            .then(|| info.video_codec.clone().unwrap_or_else(|| "H264".into()));
        (audio, video)
    }

    fn of_translation(t: &TranslationHandle, recording: bool) -> Self {
        let (audio_codec, video_codec) = Self::media(&t.info);
        StreamObject {
            media_session_id: t.id.clone(),
            name: t.name.clone(),
            published: true,
            has_video: t.info.has_video,
            has_audio: t.info.has_audio,
            status: "PUBLISHING",
            record: recording,
            width: t.info.width,
            height: t.info.height,
            audio_codec,
            video_codec,
            create_date: epoch_ms(t.created),
            media_type: "publish",
            media_provider: "WebRTC",
            uri: t.uri.clone(),
            viewers: Some(t.door.viewer_count()),
            protocol: None,
            transcode_speed: speed_of(&t.info),
        }
    }

    fn of_publisher(p: &PublishedHandle, recording: bool) -> Self {
        let (audio_codec, video_codec) = Self::media(&p.info);
        StreamObject {
            media_session_id: p.media_session_id.clone(),
            name: p.name.clone(),
            published: true,
            has_video: p.info.has_video,
            has_audio: p.info.has_audio,
            status: if p.is_publishing() {
                "PUBLISHING"
            } else {
                "PENDING"
            },
            record: recording,
            width: p.info.width,
            height: p.info.height,
            audio_codec,
            video_codec,
            create_date: epoch_ms(p.created),
            media_type: "publish",
            media_provider: "WebRTC",
            uri: p.name.clone(),
            viewers: Some(p.door.viewer_count()),
            protocol: Some(p.protocol.as_str()),
            transcode_speed: None,
        }
    }

    fn of_play(p: &PlayRecord) -> Self {
        let (audio_codec, video_codec) = Self::media(&p.info);
        StreamObject {
            media_session_id: p.media_session_id.clone(),
            name: p.name.clone(),
            published: false,
            has_video: p.info.has_video,
            has_audio: p.info.has_audio,
            status: "PLAYING",
            record: false,
            width: p.info.width,
            height: p.info.height,
            audio_codec,
            video_codec,
            create_date: epoch_ms(p.created),
            media_type: "play",
            media_provider: match p.protocol {
                ViewerProtocol::Hls => "HLS",
                ViewerProtocol::Wcs | ViewerProtocol::Whep => "WebRTC",
            },
            uri: p.uri.clone(),
            viewers: None,
            protocol: Some(p.protocol.as_str()),
            transcode_speed: speed_of(&p.info),
        }
    }
}

/// The transcode's speed, rounded to 0.01.
fn speed_of(info: &MediaInfo) -> Option<f64> {
    let speed = info.transcode_speed.as_ref()?.get()?;
    Some((speed * 100.0).round() / 100.0)
}

/// `/stream/find`: a stream matches when every given field equals its own.
/// `{}` matches every stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamFilter {
    #[serde(default)]
    /// Match this `mediaSessionId`.
    pub media_session_id: Option<String>,
    #[serde(default)]
    /// Match this name.
    pub name: Option<String>,
    #[serde(default)]
    /// Match translations (true) or viewers (false).
    pub published: Option<bool>,
    #[serde(default)]
    /// Match this status (`PUBLISHING`, `PLAYING`).
    pub status: Option<String>,
    #[serde(default)]
    /// Match this media type (`publish`, `play`).
    pub media_type: Option<String>,
    #[serde(default)]
    /// Match streams with (or without) video.
    pub has_video: Option<bool>,
    #[serde(default)]
    /// Match streams with (or without) audio.
    pub has_audio: Option<bool>,
    #[serde(default)]
    /// Match the record flag.
    pub record: Option<bool>,
    #[serde(default)]
    /// Match this canonical file name.
    pub uri: Option<String>,
    #[serde(default)]
    /// Match this signalling protocol (`wcs`, `whep`, `hls`).
    pub protocol: Option<String>,
}

impl StreamFilter {
    /// True when every field given equals the stream's own.
    pub fn matches(&self, s: &StreamObject) -> bool {
        fn eq<T: PartialEq + ?Sized>(want: Option<&T>, have: &T) -> bool {
            want.is_none_or(|w| w == have)
        }
        eq(
            self.media_session_id.as_deref(),
            s.media_session_id.as_str(),
        ) && eq(self.name.as_deref(), s.name.as_str())
            && eq(self.published.as_ref(), &s.published)
            && eq(self.status.as_deref(), s.status)
            && eq(self.media_type.as_deref(), s.media_type)
            && eq(self.has_video.as_ref(), &s.has_video)
            && eq(self.has_audio.as_ref(), &s.has_audio)
            && eq(self.record.as_ref(), &s.record)
            && eq(self.uri.as_deref(), s.uri.as_str())
            && self
                .protocol
                .as_deref()
                .is_none_or(|p| Some(p) == s.protocol)
    }
}

/// `/stream/terminate`: `mediaSessionId` or `name` (both: both must match).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TerminateRequest {
    #[serde(default)]
    /// The stream's `mediaSessionId`.
    pub media_session_id: Option<String>,
    #[serde(default)]
    /// The stream's name.
    pub name: Option<String>,
}

impl TerminateRequest {
    fn into_filter(self) -> Result<StreamFilter, RestError> {
        if self.media_session_id.is_none() && self.name.is_none() {
            return Err(RestError::bad_request(
                "Give mediaSessionId or name to select the streams to terminate",
            ));
        }
        Ok(StreamFilter {
            media_session_id: self.media_session_id,
            name: self.name,
            ..StreamFilter::default()
        })
    }
}

/// Every stream: published streams, translations, then plays (each oldest first).
fn all_streams(ctx: &ServerContext) -> Vec<(StreamObject, Running)> {
    let registry = &ctx.registry;
    let publishers = registry.publishers().into_iter().map(|p| {
        let recording = registry.recorder.is_recording(&p.media_session_id);
        (
            StreamObject::of_publisher(&p, recording),
            Running::Published(p),
        )
    });
    let published = registry
        .translations()
        .into_iter()
        .filter(|t| !t.door.is_ended())
        .map(|t| {
            let recording = registry.recorder.is_recording(&t.id);
            (
                StreamObject::of_translation(&t, recording),
                Running::Translation(t),
            )
        });
    let plays = registry
        .plays()
        .into_iter()
        .map(|p| (StreamObject::of_play(&p), Running::Play(p.media_session_id)));
    publishers.chain(published).chain(plays).collect()
}

fn found(list: Vec<StreamObject>, what: &str) -> Result<Json<Vec<StreamObject>>, RestError> {
    if list.is_empty() {
        Err(RestError::not_found(format!("Stream not found: {what}")))
    } else {
        Ok(Json(list))
    }
}

/// `/stream/find`: the streams that match the filter; 404 when none does.
pub async fn find(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(filter): RestJson<StreamFilter>,
) -> Result<Json<Vec<StreamObject>>, RestError> {
    let list = all_streams(&ctx)
        .into_iter()
        .map(|(s, _)| s)
        .filter(|s| filter.matches(s))
        .collect();
    found(list, "none matches")
}

/// No body is needed; any body is ignored.
pub async fn find_all(
    State(ctx): State<Arc<ServerContext>>,
) -> Result<Json<Vec<StreamObject>>, RestError> {
    found(
        all_streams(&ctx).into_iter().map(|(s, _)| s).collect(),
        "none is running",
    )
}

/// Stops every matching stream (a translation or a published stream with all its
/// viewers, who get STOPPED `Stopped by publisher stop` from a published one); answers
/// what was stopped.
pub async fn terminate(
    State(ctx): State<Arc<ServerContext>>,
    RestJson(req): RestJson<TerminateRequest>,
) -> Result<Json<Vec<StreamObject>>, RestError> {
    let filter = req.into_filter()?;
    let (streams, targets): (Vec<_>, Vec<_>) = all_streams(&ctx)
        .into_iter()
        .filter(|(s, _)| filter.matches(s))
        .unzip();
    if streams.is_empty() {
        return Err(RestError::not_found("Stream not found"));
    }
    stop_all(&ctx.registry, &targets).await;
    Ok(Json(streams))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::json::parse_body;

    fn object(published: bool) -> StreamObject {
        StreamObject {
            media_session_id: "m1".into(),
            name: "test".into(),
            published,
            has_video: true,
            has_audio: false,
            status: if published { "PUBLISHING" } else { "PLAYING" },
            record: false,
            width: 640,
            height: 360,
            audio_codec: None,
            video_codec: Some("H264".into()),
            create_date: 1,
            media_type: if published { "publish" } else { "play" },
            media_provider: "WebRTC",
            uri: "vod-live://a.mp4".into(),
            viewers: published.then_some(2),
            protocol: (!published).then_some("whep"),
            transcode_speed: None,
        }
    }

    fn filter(body: &str) -> StreamFilter {
        parse_body(body.as_bytes()).unwrap()
    }

    #[test]
    fn filter_matches_on_given_fields_only() {
        assert!(filter("{}").matches(&object(true)));
        assert!(filter(r#"{"name":"test","published":true}"#).matches(&object(true)));
        assert!(!filter(r#"{"name":"test","published":true}"#).matches(&object(false)));
        assert!(filter(r#"{"mediaType":"play","protocol":"whep"}"#).matches(&object(false)));
        assert!(!filter(r#"{"protocol":"whep"}"#).matches(&object(true)));
        assert!(!filter(r#"{"hasAudio":true}"#).matches(&object(true)));
        assert!(
            filter(r#"{"status":"PUBLISHING","uri":"vod-live://a.mp4"}"#).matches(&object(true))
        );
    }

    #[test]
    fn filter_refuses_unknown_fields_and_wrong_types() {
        let err = parse_body::<StreamFilter>(br#"{"nmae":"x"}"#).unwrap_err();
        assert!(
            err.reason.contains("unknown field `nmae`"),
            "{}",
            err.reason
        );
        let err = parse_body::<StreamFilter>(br#"{"published":"true"}"#).unwrap_err();
        assert!(err.reason.contains("expected a boolean"), "{}", err.reason);
    }

    #[test]
    fn terminate_needs_an_id_or_a_name() {
        let req: TerminateRequest = parse_body(b"{}").unwrap();
        assert!(req.into_filter().is_err());
        let req: TerminateRequest = parse_body(br#"{"mediaSessionId":"m1"}"#).unwrap();
        assert!(req.into_filter().unwrap().matches(&object(false)));
    }

    #[test]
    fn stream_object_fields() {
        let v = serde_json::to_value(object(true)).unwrap();
        for key in [
            "mediaSessionId",
            "name",
            "published",
            "hasVideo",
            "hasAudio",
            "status",
            "record",
            "width",
            "height",
            "audioCodec",
            "videoCodec",
            "createDate",
            "mediaType",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["viewers"], 2);
        assert!(v.get("protocol").is_none());
    }
}
