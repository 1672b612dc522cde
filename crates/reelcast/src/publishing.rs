//! Starting a publisher: a stream name and a browser's sendonly offer in, an answer and a
//! running published stream out. The one path both signalling protocols (WCS
//! `publishStream`, WHIP) take, so they cannot drift apart in what they accept or how
//! they fail, as [`crate::playback`] is for viewers.
//!
//! Order: refused while draining; the name and the publishers' cap checked
//! ([`Registry::may_publish`](crate::stream::Registry::may_publish)) before the offer is
//! answered, so a refused publisher costs nothing; the offer answered and the browser
//! added to the hub as a publisher (`webrtc`); the published stream started and listed
//! ([`Registry::publish`](crate::stream::Registry::publish)), which checks the name
//! again (two publishers of one name at once: one wins, the other is closed).

use std::time::Instant;

use tracing::{info, warn, Span};

use crate::context::ServerContext;
use crate::media::Publisher;
use crate::stream::published::{PublishError, PublishProtocol, PublishSpec, PublishedHandle};
use crate::stream::{MediaInfo, StatusTx};
use crate::webrtc::{with_start_bitrate, IceTransport, WebRtcError};

/// A publisher that has been answered; its stream is listed.
pub struct Publishing {
    /// Our SDP answer to the publisher's offer.
    pub answer_sdp: String,
    /// The published stream (its `key` tags the publisher's statuses).
    pub stream: PublishedHandle,
    /// Lines about this publisher are written in it (`publisher`, with `stream`).
    pub span: Span,
}

/// Who publishes: the id its signalling knows it by, which signalling, where it hears
/// its statuses, and what it asked for.
pub struct PublishRequester<'a> {
    /// WCS `mediaSessionId`, or the WHIP resource id.
    pub media_session_id: &'a str,
    /// Which signalling asks.
    pub protocol: PublishProtocol,
    /// The session's status channel: PUBLISHING, then UNPUBLISHED or FAILED. None:
    /// nobody listens (WHIP).
    pub statuses: Option<StatusTx>,
    /// The candidates the client asked for (the WCS SDK's `transport`).
    pub transport: IceTransport,
    /// `record: true` in `publishStream`.
    pub record: bool,
    /// The signalling session (`{sessionId}` of a recording's name); empty for WHIP.
    pub session_id: &'a str,
    /// The session's SIP login (`{login}`); empty when it gave none.
    pub login: &'a str,
}

/// Answers `offer_sdp` and publishes it as `name`. Errors are what the publisher is told.
pub fn start(
    ctx: &ServerContext,
    name: &str,
    offer_sdp: &str,
    requester: PublishRequester<'_>,
) -> Result<Publishing, PublishError> {
    if ctx.shutdown.is_draining() {
        return Err(PublishError::ShuttingDown);
    }
    ctx.registry.may_publish(name)?;
    let epoch = Instant::now();
    let (answer_sdp, publisher, info) = accept(ctx, offer_sdp, epoch, requester.transport)?;
    // `record_streams`: every publisher is recorded, as if it asked.
    let record = requester.record || ctx.settings.record_streams;
    let spec = PublishSpec {
        name: name.to_string(),
        media_session_id: requester.media_session_id.to_string(),
        record,
        info,
        protocol: requester.protocol,
        session_id: requester.session_id.to_string(),
        login: requester.login.to_string(),
    };
    let stream = ctx
        .registry
        .publish(spec, publisher, epoch, requester.statuses)?;
    let span =
        tracing::info_span!("publisher", stream = %name, protocol = requester.protocol.as_str());
    span.in_scope(|| {
        info!(record, "publisher answered");
        if record {
            start_recording(ctx, requester.media_session_id);
        }
    });
    Ok(Publishing {
        answer_sdp,
        stream,
        span,
    })
}

/// Starts the recording a publisher asked for, before its answer goes out: its
/// `recordName` is then set before PUBLISHING can be sent. A recording that cannot start
/// (a full or read-only `record_dir`) is logged; the stream goes on unrecorded.
fn start_recording(ctx: &ServerContext, media_session_id: &str) {
    // Creating a file blocks briefly: on a multi-threaded runtime other tasks move off
    // this thread meanwhile (a current-thread runtime, in tests, just waits).
    let start = || ctx.registry.start_recording_blocking(media_session_id);
    let started = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(start),
        _ => start(),
    };
    match started {
        Ok(file) => info!(file = %file, "recording started"),
        Err(e) => warn!("the recording could not start: {e}"),
    }
}

/// Answers the offer and adds the publisher to the hub: the answer, the publisher, and
/// what it sends as viewers are told it.
fn accept(
    ctx: &ServerContext,
    offer_sdp: &str,
    now: Instant,
    transport: IceTransport,
) -> Result<(String, Publisher, MediaInfo), PublishError> {
    let accepted = ctx
        .rtc
        .accept_publisher_offer(offer_sdp, now, transport)
        .map_err(offer_refused)?;
    let info = MediaInfo {
        has_video: accepted.receives_video,
        has_audio: accepted.receives_audio,
        // Browsers publish Constrained Baseline; a viewer's answer prefers the same
        // profile and takes any H.264 it offered otherwise.
        h264_profile_idc: accepted.receives_video.then_some(0x42),
        video_codec: accepted.receives_video.then(|| "H264".to_string()),
        audio_codec: accepted.receives_audio.then(|| "opus".to_string()),
        ..MediaInfo::default()
    };
    let answer_sdp = with_start_bitrate(&accepted.answer_sdp, ctx.settings.publisher_start_bitrate);
    let publisher = ctx
        .feeds
        .add_publisher(accepted, ctx.settings.publisher_rtp_timeout);
    Ok((answer_sdp, publisher, info))
}

/// What a publisher is told when its offer cannot be answered: the offer's fault in
/// plain words, or, for our own failure, WCS's `Failed by error` (details in the log).
fn offer_refused(e: WebRtcError) -> PublishError {
    match e {
        WebRtcError::Setup(detail) => {
            warn!("answering a publisher's offer failed: {detail}");
            PublishError::Offer("Failed by error".into())
        }
        plain => PublishError::Offer(plain.to_string()),
    }
}
