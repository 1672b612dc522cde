//! Starting playback: a stream name and a browser's offer in, an answer and a running
//! stream out. The one path both signalling protocols (WCS WebSocket, WHEP) take, so they
//! cannot drift apart in what they accept or how they fail.
//!
//! A name is, in this order: the name of a running published stream (a browser
//! publishing through the WCS SDK or WHIP); the local name of a running live translation
//! (`test`, made by REST `/vod/startup`); `vod-live://file` (joins that file's translation, starting it
//! if none runs); `vod://file` (a personal VOD from the file's start).
//!
//! Sources are opened and translations started through the registry; each play is
//! listed there ([`Registry::add_play`](crate::stream::Registry::add_play)) and its
//! statuses go to the requester's channel, tagged with the play's key. The browser is
//! added to the stream's WebRTC feed here
//! ([`RtcFeeds`](crate::webrtc::RtcFeeds)), and the stream is handed the
//! [`Viewer`](crate::media::Viewer) that makes: streams never see WebRTC.
//!
//! Each answered play gets a `viewer` span (`stream`, `viewer`: [`Playback::span`]),
//! made here, where the viewer's id is chosen; signalling writes its lines about the
//! play in it. A personal VOD's stream task has its own `vod` span with the same fields.

mod moves;

use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::{info, Span};

use crate::context::ServerContext;
use crate::media::{LinkNotices, StreamId, ViewerId, ViewerProtocol};
use crate::metrics::PlayRequest;
use crate::source::{PlayMode, StreamUri};
use crate::stream::constraints::VideoConstraints;
use crate::stream::door::ViewerDoor;
use crate::stream::live::TranslationHandle;
use crate::stream::personal_vod::PersonalVod;
use crate::stream::published::PublishedHandle;
use crate::stream::registry::{PlayKey, PlayKind, PlayRecord, RenditionParent};
use crate::stream::rendition::RenditionHandle;
use crate::stream::{MediaInfo, PlayStatus, StatusTx, Stopper, StreamError, StreamStatus};
use crate::webrtc::{IceTransport, ViewerPlan, WebRtcError};

/// A stream that has been answered and is starting.
pub struct Playback {
    /// Which play this is, unique whatever ids the client reuses; its statuses come
    /// tagged with it, and the registry stops it by it.
    pub key: PlayKey,
    /// Our SDP answer to the viewer's offer.
    pub answer_sdp: String,
    /// What the stream carries (tracks, codecs, duration), for the client.
    pub info: MediaInfo,
    /// The play's span (`viewer`, with `stream` and `viewer`): lines about this viewer
    /// are written in it, so both log formats carry which stream and viewer they are.
    pub span: Span,
}

/// Who asks: the id the viewer's signalling knows its playback by, which signalling, and
/// where it hears its statuses.
pub struct Requester<'a> {
    /// WCS `mediaSessionId`, or the WHEP resource id.
    pub media_session_id: &'a str,
    /// Which signalling asks.
    pub protocol: ViewerProtocol,
    /// The session's status channel: PLAYING, then STOPPED or FAILED, tagged with the
    /// play's key. None: nobody listens (WHEP).
    pub statuses: Option<StatusTx>,
    /// The candidates the client asked for (the WCS SDK's `transport`).
    pub transport: IceTransport,
    /// When the request arrived (before any hook was asked): where the play's time to
    /// first frame starts.
    pub received: Instant,
    /// The size or bit rate the viewer asked for (WCS `constraints`, WHEP's query):
    /// it gets that rendition.
    pub constraints: Option<VideoConstraints>,
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
    crate::metrics::METRICS.count_play(
        protocol.as_str(),
        started
            .as_ref()
            .map(|_| ())
            .map_err(StreamError::metric_label),
    );
    started
}

async fn start_play(
    ctx: &ServerContext,
    name: &str,
    offer_sdp: &str,
    mut requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    // A browser without H.264 gets the stream encoded to VP8, as a rendition (a shared
    // stream) or its reader's transcode (a personal VOD), refused when transcoding is
    // disabled.
    if crate::webrtc::offers_vp8_only(offer_sdp) {
        requester.constraints = Some(VideoConstraints::vp8(requester.constraints));
    }
    if ctx.shutdown.is_draining() {
        return Err(StreamError::ShuttingDown);
    }
    if let Some(p) = ctx.registry.published(name) {
        return join_parent(ctx, name, &p, offer_sdp, requester);
    }
    if let Some(t) = ctx
        .registry
        .translation(name)
        .filter(|t| !t.door.is_ended())
    {
        return join_parent(ctx, name, &t, offer_sdp, requester);
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
            let translation = ctx.registry.find_or_start_translation(name, uri).await?;
            join_parent(ctx, name, &translation, offer_sdp, requester)
        }
        PlayMode::Personal => start_personal(ctx, name, uri, offer_sdp, requester).await,
    }
}

/// A viewer of a translation or a published stream: it joins the rendition its
/// constraints ask for, or the stream itself. A published stream asks its publisher for a
/// keyframe when the viewer connects.
fn join_parent(
    ctx: &ServerContext,
    name: &str,
    stream: &impl ParentStream,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let listing = stream.listing();
    if let Some(rendition) = rendition_for(ctx, stream.as_parent(), &requester)? {
        return join_shared(ctx, name, &rendition, listing, offer_sdp, requester);
    }
    join_shared(
        ctx,
        name,
        stream,
        listing,
        offer_sdp,
        requester.untranscoded(),
    )
}

/// The rendition a viewer asked for by its constraints, when the stream is not already
/// so (`None`: it gets the stream itself).
fn rendition_for(
    ctx: &ServerContext,
    parent: RenditionParent<'_>,
    requester: &Requester<'_>,
) -> Result<Option<RenditionHandle>, StreamError> {
    let Some(c) = requester.constraints.filter(|c| {
        parent.info.has_video && c.need_transcode(parent.info.width, parent.info.height)
    }) else {
        return Ok(None);
    };
    let c = c.resolved_for(parent.info.width, parent.info.height);
    ctx.registry.find_or_start_rendition(parent, c).map(Some)
}

/// A stream many viewers join on its one timeline: a live translation or a published
/// stream (their handles, seen alike by [`join_shared`]).
trait SharedStream: Clone + Send + Sync + 'static {
    /// The stream as a moving viewer's place, with the id its renditions' slot is listed
    /// by; `None`: its viewers are not moved (a rendition asked for by constraints).
    fn movable(&self) -> Option<(moves::Holder, String)>;
    fn feed(&self) -> StreamId;
    fn media(&self) -> &MediaInfo;
    fn door(&self) -> &ViewerDoor;
}

impl SharedStream for TranslationHandle {
    fn movable(&self) -> Option<(moves::Holder, String)> {
        Some((moves::Holder::Translation(self.clone()), self.id.clone()))
    }
    fn feed(&self) -> StreamId {
        self.stream
    }
    fn media(&self) -> &MediaInfo {
        &self.info
    }
    fn door(&self) -> &ViewerDoor {
        &self.door
    }
}

impl SharedStream for RenditionHandle {
    fn movable(&self) -> Option<(moves::Holder, String)> {
        None
    }
    fn feed(&self) -> StreamId {
        self.stream
    }
    fn media(&self) -> &MediaInfo {
        &self.info
    }
    fn door(&self) -> &ViewerDoor {
        &self.door
    }
}

impl SharedStream for PublishedHandle {
    fn movable(&self) -> Option<(moves::Holder, String)> {
        Some((
            moves::Holder::Published(self.clone()),
            self.media_session_id.clone(),
        ))
    }
    fn feed(&self) -> StreamId {
        self.stream
    }
    fn media(&self) -> &MediaInfo {
        &self.info
    }
    fn door(&self) -> &ViewerDoor {
        &self.door
    }
}

/// A shared stream viewers play by its name, which renditions can be made of.
trait ParentStream: SharedStream {
    /// How its viewers' plays are listed.
    fn listing(&self) -> Listing;
    /// It as the parent of its renditions.
    fn as_parent(&self) -> RenditionParent<'_>;
}

impl ParentStream for TranslationHandle {
    fn listing(&self) -> Listing {
        Listing {
            uri: self.uri.clone(),
            kind: PlayKind::Live {
                translation: self.name.clone(),
            },
            joined: "joined the translation",
        }
    }
    fn as_parent(&self) -> RenditionParent<'_> {
        RenditionParent {
            slot_id: &self.id,
            stream: self.stream,
            info: &self.info,
            published: false,
        }
    }
}

impl ParentStream for PublishedHandle {
    fn listing(&self) -> Listing {
        Listing {
            uri: self.name.clone(),
            kind: PlayKind::Published {
                stream: self.name.clone(),
            },
            joined: "joined the published stream",
        }
    }
    fn as_parent(&self) -> RenditionParent<'_> {
        RenditionParent {
            slot_id: &self.media_session_id,
            stream: self.stream,
            info: &self.info,
            published: true,
        }
    }
}

/// How a viewer of a shared stream is listed, and the line its joining logs.
struct Listing {
    uri: String,
    kind: PlayKind,
    joined: &'static str,
}

/// Answers the viewer's offer, adds it to `shared`'s feed, lists its play and hands the
/// viewer to the stream.
fn join_shared(
    ctx: &ServerContext,
    name: &str,
    shared: &impl SharedStream,
    listing: Listing,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let accepted = accept(ctx, offer_sdp, &requester)?;
    refuse_without_video(&accepted, shared.media())?;
    let answer_sdp = accepted.answer_sdp.clone();
    let info = shared.media().clone();
    let key = PlayKey::next();
    // A viewer of the stream itself, with H.264 video, may be moved for its link.
    let moving = shared
        .movable()
        .filter(|_| ctx.settings.rendition_moves && info.has_video && !accepted.sends_vp8)
        .filter(|_| requester.constraints.is_none())
        .map(|(parent, slot_id)| {
            moves::start(
                ctx.registry.clone(),
                ctx.feeds.clone(),
                parent,
                slot_id,
                key,
            )
        });
    let mut plan = plan(&info, &requester, key, name);
    plan.link_moves = moving.as_ref().map(|m| m.notes.clone());
    let viewer = ctx.feeds.add_viewer(
        shared.feed(),
        accepted,
        plan,
        requester.protocol,
        shared.door().viewer_events(),
    );
    let (handle, viewer_id) = (shared.clone(), viewer.id());
    let span = viewer_span(name, viewer_id);
    if let Some(m) = &moving {
        m.set_viewer(viewer_id, &span);
    }
    // A moved viewer is stopped where it is now.
    let stopper = match moving.map(|m| m.place) {
        Some(place) => Stopper::new(move |reason| moves::leave_place(&place, viewer_id, reason)),
        None => Stopper::new(move |reason| handle.door().leave(viewer_id, reason)),
    };
    let record = PlayRecord {
        key,
        media_session_id: requester.media_session_id.to_string(),
        name: name.to_string(),
        uri: listing.uri,
        kind: listing.kind,
        info: info.clone(),
        created: SystemTime::now(),
        protocol: requester.protocol,
        stopper,
    };
    let ticket = ctx.registry.add_play(record, requester.statuses);
    // A stream that has just ended lets the viewer go and drops the ticket, which
    // unlists the play.
    if !shared.door().join(viewer, ticket) {
        return Err(StreamError::StreamNotFound);
    }
    // Entered, not named as `parent:`: the JSON form lists only entered spans in `spans`.
    span.in_scope(|| info!(protocol = requester.protocol.as_str(), "{}", listing.joined));
    Ok(Playback {
        key,
        answer_sdp,
        info,
        span,
    })
}

async fn start_personal(
    ctx: &ServerContext,
    name: &str,
    uri: StreamUri,
    offer_sdp: &str,
    requester: Requester<'_>,
) -> Result<Playback, StreamError> {
    let reader = ctx
        .registry
        .open_personal(&uri.location, requester.constraints)
        .await?;
    let info = reader.info().clone();

    let accepted = accept(ctx, offer_sdp, &requester)?;
    refuse_without_video(&accepted, &info)?;
    let vp8 = accepted.sends_vp8;
    let answer_sdp = accepted.answer_sdp.clone();

    let stream = StreamId::next();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    // The feed exists before its viewer is added; its clock starts when the viewer
    // connects (the sinks' `start`).
    ctx.feeds.open_early(stream);
    let key = PlayKey::next();
    let viewer = ctx.feeds.add_viewer(
        stream,
        accepted,
        plan(&info, &requester, key, name),
        requester.protocol,
        events_tx,
    );
    let span = viewer_span(name, viewer.id());
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let record = PlayRecord {
        key,
        media_session_id: requester.media_session_id.to_string(),
        name: name.to_string(),
        uri: uri.uri_string(),
        kind: PlayKind::Personal,
        info: info.clone(),
        created: SystemTime::now(),
        protocol: requester.protocol,
        stopper: Stopper::new(move |reason| {
            let _ = stop_tx.send(reason);
        }),
    };
    let ticket = ctx.registry.add_play(record, requester.statuses);
    PersonalVod {
        viewer,
        viewer_events: events_rx,
        sinks: ctx.registry.video_sinks_for(stream, vp8),
        ticket,
        name: name.to_string(),
    }
    .spawn(reader, stop_rx);
    Ok(Playback {
        key,
        answer_sdp,
        info,
        span,
    })
}

impl Requester<'_> {
    /// The requester joining the stream itself, not a rendition: its VP8 mark dropped
    /// (the stream has no video to encode), so its offer is answered as it is.
    fn untranscoded(self) -> Self {
        Requester {
            constraints: self.constraints.filter(|c| !c.vp8),
            ..self
        }
    }

    /// Its video is encoded to VP8 ([`VideoConstraints::vp8`]).
    fn wants_vp8(&self) -> bool {
        self.constraints.is_some_and(|c| c.vp8)
    }
}

/// Answers the viewer's offer: in VP8 when its stream is encoded so for it.
fn accept(
    ctx: &ServerContext,
    offer_sdp: &str,
    requester: &Requester<'_>,
) -> Result<crate::webrtc::Accepted, StreamError> {
    let now = Instant::now();
    if requester.wants_vp8() {
        ctx.rtc
            .accept_offer_or_vp8(offer_sdp, now, requester.transport)
    } else {
        ctx.rtc.accept_offer(offer_sdp, now, requester.transport)
    }
    .map_err(offer_refused)
}

/// The span of lines about one viewer of stream `name`.
fn viewer_span(name: &str, viewer: ViewerId) -> Span {
    tracing::info_span!("viewer", stream = %name, viewer = viewer.0)
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

fn plan(info: &MediaInfo, requester: &Requester<'_>, key: PlayKey, name: &str) -> ViewerPlan {
    ViewerPlan {
        stream: name.into(),
        h264_profile_idc: info.h264_profile_idc,
        has_audio: info.has_audio,
        request: PlayRequest {
            at: requester.received,
            protocol: requester.protocol.as_str(),
        },
        link_notices: requester.statuses.clone().map(|to| link_notices(to, key)),
        link_moves: None,
    }
}

/// The viewer's link too narrow for its stream, told on its session's status channel as
/// play `key`'s NOT_ENOUGH_BANDWIDTH (straight from the hub: the stream plays on as before).
fn link_notices(to: StatusTx, key: PlayKey) -> LinkNotices {
    LinkNotices::new(move |short| {
        // A session already closed hears nothing.
        let _ = to.send(PlayStatus {
            key,
            status: StreamStatus::NotEnoughBandwidth {
                remote_bps: short.sending_bps,
                network_bps: short.carries_bps,
            },
        });
    })
}
