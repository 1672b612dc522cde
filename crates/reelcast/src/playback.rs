//! Starting playback: a stream name and a browser's offer in, an answer and a running
//! stream out. The one path both signalling protocols (WCS WebSocket, WHEP) take, so they
//! cannot drift apart in what they accept or how they fail.

use std::time::Instant;

use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::server::ServerContext;
use crate::source::{PlayMode, StreamUri};
use crate::stream::open::open_media;
use crate::stream::vod::{PersonalVod, VodStopper};
use crate::stream::{MediaInfo, StreamError, StreamStatus};
use crate::webrtc::{FeedId, ViewerId, ViewerPlan};

/// A stream that has been answered and is starting.
pub struct Playback {
    pub answer_sdp: String,
    pub stopper: VodStopper,
    /// PLAYING, then STOPPED or FAILED.
    pub statuses: UnboundedReceiver<StreamStatus>,
    pub info: MediaInfo,
}

/// Opens `name` and answers `offer_sdp`. Errors are what the viewer is told.
pub async fn start(
    ctx: &ServerContext,
    name: &str,
    offer_sdp: &str,
) -> Result<Playback, StreamError> {
    let uri = StreamUri::parse(name).map_err(StreamError::from)?;
    if uri.mode != PlayMode::Personal {
        return Err(StreamError::Other(
            "Live translations (vod-live://) are not available in this version".into(),
        ));
    }
    let settings = ctx.settings.clone();
    let location = uri.location;
    let reader = tokio::task::spawn_blocking(move || open_media(&settings, &location))
        .await
        .map_err(|e| StreamError::Other(format!("internal error opening the file: {e}")))??;
    let info = reader.info().clone();

    let accepted = ctx
        .rtc
        .accept_offer(offer_sdp, Instant::now())
        .map_err(|e| StreamError::Other(e.to_string()))?;
    let answer_sdp = accepted.answer_sdp.clone();

    let viewer = ViewerId::next();
    let feed = FeedId::next();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (status_tx, statuses) = mpsc::unbounded_channel();
    let plan = ViewerPlan {
        h264_profile_idc: info.h264_profile_idc,
        has_audio: info.has_audio,
    };
    ctx.hub.open_feed(feed, Instant::now());
    ctx.hub.add_viewer(viewer, feed, accepted, plan, events_tx);
    let stopper = PersonalVod {
        hub: ctx.hub.clone(),
        viewer,
        feed,
        viewer_events: events_rx,
        status: status_tx,
        name: name.to_string(),
    }
    .spawn(reader);
    Ok(Playback {
        answer_sdp,
        stopper,
        statuses,
        info,
    })
}
