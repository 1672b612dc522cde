//! Starting playback: a stream name and a browser's offer in, an answer and a running
//! stream out. The one path both signalling protocols (WCS WebSocket, WHEP) take, so they
//! cannot drift apart in what they accept or how they fail.
//!
//! A name is, in this order: the local name of a running live translation (`test`, made
//! by REST `/vod/startup`); `vod-live://file` (joins that file's translation, starting it
//! if none runs); `vod://file` (a personal VOD from the file's start).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::server::ServerContext;
use crate::source::{PlayMode, StreamUri};
use crate::stream::live::{self, StartError, TranslationHandle, TranslationSpec};
use crate::stream::open::open_media;
use crate::stream::registry::{PlayKey, PlayKind, PlayRecord};
use crate::stream::vod::PersonalVod;
use crate::stream::{MediaInfo, Stopper, StreamError, StreamStatus};
use crate::webrtc::{FeedId, ViewerId, ViewerPlan, WebRtcError};

/// A stream that has been answered and is starting.
pub struct Playback {
    /// Which play this is, unique whatever ids the client reuses.
    pub key: PlayKey,
    pub answer_sdp: String,
    pub stopper: Stopper,
    /// PLAYING, then STOPPED or FAILED.
    pub statuses: UnboundedReceiver<StreamStatus>,
    pub info: MediaInfo,
}

/// Who asks: the id the viewer's signalling knows its playback by, and which signalling.
pub struct Requester<'a> {
    /// WCS `mediaSessionId`, or the WHEP resource id.
    pub media_session_id: &'a str,
    /// `"wcs"` or `"whep"`.
    pub protocol: &'static str,
}

/// Opens `name` and answers `offer_sdp`. Errors are what the viewer is told.
pub async fn start(
    ctx: &ServerContext,
    name: &str,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let protocol = requester.protocol;
    let started = start_play(ctx, name, offer_sdp, requester).await;
    crate::metrics::METRICS.count_play(protocol, started.as_ref().map(|_| ()));
    started
}

async fn start_play(
    ctx: &ServerContext,
    name: &str,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    if ctx.shutdown.is_draining() {
        return Err(StreamError::Other(crate::shutdown::REASON.to_string()));
    }
    if let Some(t) = ctx.registry.translation(name).filter(|t| !t.is_ended()) {
        return join_translation(ctx, name, t, offer_sdp, requester);
    }
    let uri = StreamUri::parse(name).map_err(|e| match e {
        // A plain name that is no running translation: WCS's words for it.
        crate::source::SourceError::UnknownScheme { .. } if !name.contains("://") => {
            StreamError::StreamNotFound
        }
        e => StreamError::from(e),
    })?;
    match uri.mode {
        PlayMode::Live => {
            let translation = find_or_start_translation(ctx, name, uri).await?;
            join_translation(ctx, name, translation, offer_sdp, requester)
        }
        PlayMode::Personal => start_personal(ctx, name, uri, offer_sdp, requester).await,
    }
}

/// The running translation of `uri`, or a new one named `name`.
async fn find_or_start_translation(
    ctx: &ServerContext,
    name: &str,
    uri: StreamUri,
) -> Result<TranslationHandle, StreamError> {
    let canonical = uri.uri_string();
    let running = || {
        ctx.registry
            .translation(name)
            .filter(|t| !t.is_ended())
            .or_else(|| ctx.registry.translation_of(&canonical))
    };
    if let Some(t) = running() {
        return Ok(t);
    }
    // One start at a time, so two viewers arriving together share one translation.
    let _starting = ctx.registry.starting.lock().await;
    if let Some(t) = running() {
        return Ok(t);
    }
    let spec = TranslationSpec {
        name: name.to_string(),
        uri,
        looped: ctx.settings.vod_live_loop,
    };
    live::start(&ctx.settings, &ctx.hub, &ctx.registry, spec)
        .await
        .map_err(|e| match e {
            StartError::Stream(e) => e,
            other => StreamError::Other(other.to_string()),
        })
}

fn join_translation(
    ctx: &ServerContext,
    name: &str,
    translation: TranslationHandle,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let accepted = ctx
        .rtc
        .accept_offer(offer_sdp, Instant::now())
        .map_err(offer_refused)?;
    refuse_without_video(&accepted, &translation.info)?;
    let answer_sdp = accepted.answer_sdp.clone();
    let info = translation.info.clone();
    let viewer = ViewerId::next();
    ctx.hub.add_viewer(
        viewer,
        translation.feed,
        accepted,
        plan(&info),
        translation.viewer_events.clone(),
    );
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    if !translation.join(viewer, status_tx) {
        ctx.hub.remove_viewer(viewer, "Stopped");
        return Err(StreamError::StreamNotFound);
    }
    let handle = translation.clone();
    let stopper = Stopper::new(move |reason| handle.leave(viewer, reason));
    let record = PlayRecord {
        key: PlayKey::next(),
        media_session_id: requester.media_session_id.to_string(),
        name: name.to_string(),
        uri: translation.uri.clone(),
        kind: PlayKind::Live {
            translation: translation.name.clone(),
        },
        info: info.clone(),
        created: SystemTime::now(),
        protocol: requester.protocol,
        stopper: stopper.clone(),
    };
    Ok(registered(ctx, record, answer_sdp, status_rx))
}

async fn start_personal(
    ctx: &ServerContext,
    name: &str,
    uri: StreamUri,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let settings = ctx.settings.clone();
    let location = uri.location.clone();
    let budget = ctx.registry.index_budget.clone();
    let reader = tokio::task::spawn_blocking(move || open_media(&settings, &location, &budget))
        .await
        .map_err(|e| StreamError::internal("opening the file", &e))??;
    let info = reader.info().clone();

    let accepted = ctx
        .rtc
        .accept_offer(offer_sdp, Instant::now())
        .map_err(offer_refused)?;
    refuse_without_video(&accepted, &info)?;
    let answer_sdp = accepted.answer_sdp.clone();

    let viewer = ViewerId::next();
    let feed = FeedId::next();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    ctx.hub.open_feed(feed, Instant::now());
    ctx.hub
        .add_viewer(viewer, feed, accepted, plan(&info), events_tx);
    let stopper = PersonalVod {
        hub: ctx.hub.clone(),
        viewer,
        feed,
        viewer_events: events_rx,
        status: status_tx,
        name: name.to_string(),
    }
    .spawn(reader);
    let record = PlayRecord {
        key: PlayKey::next(),
        media_session_id: requester.media_session_id.to_string(),
        name: name.to_string(),
        uri: uri.uri_string(),
        kind: PlayKind::Personal,
        info,
        created: SystemTime::now(),
        protocol: requester.protocol,
        stopper,
    };
    Ok(registered(ctx, record, answer_sdp, status_rx))
}

/// A stream with video for a browser that offered no H.264 fails with WCS's words: it
/// would play sound only while REST and the statuses said H.264 video was playing.
fn refuse_without_video(
    accepted: &crate::webrtc::Accepted,
    info: &MediaInfo,
) -> Result<(), StreamError> {
    if info.has_video && !accepted.sends_video {
        return Err(StreamError::Other("No common codecs".to_string()));
    }
    Ok(())
}

/// What a viewer is told when its offer cannot be answered: the offer's fault in plain
/// words, or, for our own failure, WCS's `Failed by error` (the details go to the log).
fn offer_refused(e: WebRtcError) -> StreamError {
    match e {
        WebRtcError::Setup(detail) => StreamError::internal("answering the offer", &detail),
        plain => StreamError::Other(plain.to_string()),
    }
}

fn plan(info: &MediaInfo) -> ViewerPlan {
    ViewerPlan {
        h264_profile_idc: info.h264_profile_idc,
        has_audio: info.has_audio,
    }
}

/// Lists the play in the registry for as long as it runs: its statuses pass through a
/// small task that removes the entry at STOPPED or FAILED.
fn registered(
    ctx: &ServerContext,
    record: PlayRecord,
    answer_sdp: String,
    mut inner: UnboundedReceiver<StreamStatus>,
) -> Playback {
    let (outer_tx, statuses): (UnboundedSender<StreamStatus>, _) = mpsc::unbounded_channel();
    let registry = Arc::clone(&ctx.registry);
    let key = record.key;
    let stopper = record.stopper.clone();
    let info = record.info.clone();
    registry.add_play(record);
    tokio::spawn(async move {
        while let Some(status) = inner.recv().await {
            let last = !matches!(status, StreamStatus::Playing);
            let _ = outer_tx.send(status);
            if last {
                break;
            }
        }
        registry.remove_play(key);
    });
    Playback {
        key,
        answer_sdp,
        stopper,
        statuses,
        info,
    }
}
