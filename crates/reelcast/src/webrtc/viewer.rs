//! One viewer's share of the hub: its handshake engine, then its lean media plane.
//!
//! A viewer starts as a str0m [`Rtc`] doing ICE and DTLS. Once connected, the SRTP keys
//! the handshake exported (see [`super::dtls_keys`]) go to a [`MediaPlane`] that sends and
//! hears media without str0m; the engine stays only until the browser shows it has the
//! keys too (its first authenticated RTCP), in case our last handshake flight was lost and
//! must be answered again, and is then dropped with everything it held.
//!
//! Per viewer is only what cannot be shared: the negotiated payload types and SSRCs, the
//! SRTP contexts and sequence numbers, and whether video may flow yet (a decoder must start
//! at a keyframe). RTP payloads are cut once per feed ([`RtpFrame`]) and shared.
//!
//! When the media plane's link meter finds the viewer's link too narrow for the stream
//! (see [`super::link_meter`]), the viewer logs it, counts it and tells whoever asked to
//! hear it (its WCS session; a WHEP viewer has no channel to be told on). Each window the
//! meter measures also goes to the viewer's move policy ([`super::move_policy`]); its asks
//! (down a rendition, back up) go to `ViewerPlan::link_moves`, and a move the hub makes
//! keeps the browser's one stream going: same tracks, sequence numbers going on, RTP time
//! forward through an offset added to the feed's times.
//!
//! Part of the hub's sans-IO core: time comes in as `now` (no clock is read here), and what
//! a viewer sends goes into the hub's [`Transmits`] queue, never to a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::format::Codec;
use str0m::media::{MediaKind as RtcKind, Mid, Pt};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tracing::{debug, info, warn};

use super::dtls_keys::KeySlot;
use super::events::{ViewerEvent, ViewerEvents};
use super::ids::{FeedId, TcpId, ViewerId};
use super::link_meter::{LinkEstimate, Shortfall};
use super::media_plane::{Heard, MediaPlane, OutTrack, RtxTrack};
use super::move_policy::{MovePolicy, Want};
use super::packets::RtpFrame;
use super::srtp::SrtpKeys;
use super::transmits::Transmits;
use super::udp::Path;
use crate::media::{
    Ending, FailReason, LinkMoves, LinkNotices, LinkShort, MediaKind, MoveNote, StopReason,
};

/// A picture-loss request within this long after a keyframe went out is not answered:
/// browsers ask for one while they wait for the first, and that one is on its way.
const KEYFRAME_REQUEST_GRACE: Duration = Duration::from_millis(1000);

/// Spacing of re-sent pictures (a late joiner's catch-up, a GOP re-sent on picture loss):
/// just over one 90 kHz tick, so each gets its own RTP timestamp.
const PACKED_STEP_US: i64 = 12;

/// The handshake engine is dropped this long after connecting even if the browser has not
/// sent RTCP yet (it sends a report within about a second of receiving media).
const HANDSHAKE_LINGER: Duration = Duration::from_secs(5);

/// Pairs remembered per viewer during the handshake (a browser checks one per candidate
/// it has and address we announce): beyond this the oldest is forgotten.
const MAX_LINKS: usize = 8;

/// After a move, the target's first picture follows the last one sent by at least this (a
/// frame at 30 fps), so RTP time only goes forward.
const SWITCH_STEP_US: i64 = 33_333;

/// RTP clock rates: H.264 and Opus.
const VIDEO_CLOCK_HZ: u32 = 90_000;
const AUDIO_CLOCK_HZ: u32 = 48_000;

/// A pair the browser's authenticated datagrams came on during the handshake: its path
/// (address, our address it actually reached, which differs from the candidate behind NAT,
/// and the ICE-TCP connection if any) and the candidate str0m was told it wrote to.
/// str0m's transmits name the candidate and the protocol; this gives the path to send on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub path: Path,
    pub candidate: SocketAddr,
}

/// What a stream will send, so a viewer can pick payload types when it connects, and who
/// hears that its link is too narrow.
#[derive(Debug, Clone)]
pub struct ViewerPlan {
    /// `profile_idc` of the H.264 video, `None` when there is no video.
    pub h264_profile_idc: Option<u8>,
    /// The stream has audio.
    pub has_audio: bool,
    /// The play request: its time to first frame is observed at the first video frame.
    pub request: crate::metrics::PlayRequest,
    /// The name the viewer asked for: the engine's log lines carry it (the hub runs
    /// outside the play's span).
    pub stream: Arc<str>,
    /// Told when the viewer's link carries less than the stream sends; none: the shortfall
    /// is only logged and counted (WHEP).
    pub link_notices: Option<LinkNotices>,
    /// Told when the viewer is to move to a lower rendition of its stream or back up, and
    /// when a move is done; none: the viewer is never moved (a personal VOD, a viewer
    /// that asked for its size, moves turned off).
    pub link_moves: Option<LinkMoves>,
}

/// A move the hub was asked to make: the feed the viewer goes to at its next keyframe.
pub(super) struct PendingMove {
    pub feed: FeedId,
    /// Where the viewer's events go from the move on (the target stream's channel).
    events: ViewerEvents,
    /// To a lower rendition (else back up).
    down: bool,
}

/// Where the viewer's handshake stands.
pub(super) struct Handshake {
    pub rtc: Rtc,
    keys: KeySlot,
    ice_password: String,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    connected_at: Option<Instant>,
    next_timeout: Instant,
}

pub(super) struct Viewer {
    pub id: ViewerId,
    pub feed: FeedId,
    pub local_ufrag: String,
    plan: ViewerPlan,
    events: ViewerEvents,
    /// str0m's engine while it is needed (see the module docs).
    handshake: Option<Box<Handshake>>,
    plane: Option<MediaPlane>,
    /// The pairs the browser's authenticated datagrams came on (see [`Link`]).
    links: Vec<Link>,
    /// The pair the browser nominated, as str0m sends its DTLS on it: where media goes.
    nominated: Option<Path>,
    /// The browser's first check has been seen (and, not nominating, nominated for it:
    /// [`super::early_nomination`]).
    first_check_seen: bool,
    /// Browser paths proven since the hub last looked (authenticated ICE checks): the hub
    /// routes their other datagrams here.
    pub new_routes: Vec<Path>,
    /// Video is held back until a keyframe: a decoder cannot start anywhere else.
    awaiting_keyframe: bool,
    /// Any video written yet (a viewer joining mid-stream first gets the feed's GOP).
    video_started: bool,
    last_keyframe_sent: Option<Instant>,
    /// Presentation time of the last video frame written, to place re-sent pictures.
    last_video_pts_us: i64,
    /// No GOP is re-sent on picture loss before this (see [`Self::answer_picture_loss`]).
    gop_resend_after: Instant,
    /// Set when the browser asked for a picture; the hub answers from the feed's cache.
    pub wants_keyframe: bool,
    /// When to move to a lower rendition and back (used only with `plan.link_moves`).
    policy: MovePolicy,
    /// A move waiting for the target feed's next keyframe.
    pub pending: Option<PendingMove>,
    /// Added to the feed's presentation times (µs): after a move, the target's timeline
    /// may be behind what was sent (an encoder's delay), and RTP time must not go back.
    offset_us: i64,
    /// Presentation time of the last audio frame written (as sent).
    last_audio_pts_us: i64,
    /// After a move, audio up to this time (as sent) is left out: it would go back.
    audio_floor_us: Option<i64>,
    pub next_timeout: Instant,
    pub closed: bool,
}

impl Viewer {
    /// The name the viewer asked for.
    pub(super) fn stream(&self) -> &str {
        &self.plan.stream
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: ViewerId,
        feed: FeedId,
        rtc: Rtc,
        keys: KeySlot,
        local_ufrag: String,
        ice_password: String,
        plan: ViewerPlan,
        events: ViewerEvents,
        now: Instant,
    ) -> Self {
        Viewer {
            id,
            feed,
            local_ufrag,
            plan,
            events,
            handshake: Some(Box::new(Handshake {
                rtc,
                keys,
                ice_password,
                video_mid: None,
                audio_mid: None,
                connected_at: None,
                next_timeout: now,
            })),
            plane: None,
            links: Vec::new(),
            nominated: None,
            first_check_seen: false,
            new_routes: Vec::new(),
            awaiting_keyframe: true,
            video_started: false,
            last_keyframe_sent: None,
            last_video_pts_us: 0,
            gop_resend_after: now,
            wants_keyframe: false,
            policy: MovePolicy::default(),
            pending: None,
            offset_us: 0,
            last_audio_pts_us: 0,
            audio_floor_us: None,
            next_timeout: now,
            closed: false,
        }
    }

    /// True once the viewer has ended (closed, or its handshake engine gave up).
    pub(super) fn is_finished(&self) -> bool {
        self.closed || self.handshake.as_ref().is_some_and(|h| !h.rtc.is_alive())
    }

    /// Handles a datagram from the browser, which came on `from` and which str0m is to see
    /// as sent to our `candidate`: RTCP goes to the media plane, the handshake's STUN and
    /// DTLS to the engine while there is one, the rest to the media plane.
    pub(super) fn on_datagram(
        &mut self,
        data: &[u8],
        from: Path,
        candidate: SocketAddr,
        now: Instant,
        out: &mut Transmits,
    ) {
        let to_plane = MediaPlane::is_rtcp_datagram(data) || self.handshake.is_none();
        if let (Some(plane), true) = (&mut self.plane, to_plane) {
            let before = plane.path();
            let heard = plane.on_datagram(data, from, now, out);
            if plane.path() != before {
                self.new_routes.push(plane.path());
            }
            let window = plane.link.take_window();
            if let Some(shortfall) = plane.shortfall.take() {
                self.tell_link_short(shortfall);
            }
            if let Some((from, estimate)) = window {
                self.judge_moves(from, now, &estimate);
            }
            match heard {
                Heard::Nothing => {}
                Heard::KeyframeRequest => self.on_keyframe_request(now),
                Heard::Gone => self.close(StopReason::SessionDisconnect.into()),
            }
            self.drop_handshake_when_done(now);
            self.update_timeout(now);
            return;
        }
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = received_input(now, &from, candidate, contents);
        // For STUN this checks the message's integrity with our password; anything else
        // is accepted only from a pair already checked.
        if !handshake.rtc.accepts(&input) {
            return;
        }
        let is_stun = matches!(data.first(), Some(0..=3));
        if self.remember_link(from, candidate) && is_stun {
            self.new_routes.push(from);
        }
        // A nomination while the engine lingers after connecting moves the media too.
        if let (Some(plane), true) = (&mut self.plane, is_stun && nominates(data)) {
            plane.follow(from);
            self.new_routes.push(from);
        }
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        if let Err(e) = handshake.rtc.handle_input(input) {
            warn!(viewer = self.id.0,
            stream = %self.plan.stream, "bad input: {e}");
        }
        if is_stun && !self.first_check_seen {
            self.first_check_seen = true;
            nominate_early(&mut handshake.rtc, data, from, candidate, now);
        }
        self.drain(now, out);
    }

    /// Notes the pair a datagram came on; true when it is new.
    fn remember_link(&mut self, from: Path, candidate: SocketAddr) -> bool {
        remember_link(&mut self.links, from, candidate)
    }

    /// Drives the engine and the media plane at `now`; `epoch` is the feed's stream time 0,
    /// `wall` the time of day at `now` (for sender reports).
    pub(super) fn on_timeout(
        &mut self,
        epoch: Option<Instant>,
        now: Instant,
        wall: SystemTime,
        out: &mut Transmits,
    ) {
        if self.closed {
            return;
        }
        if let Some(handshake) = &mut self.handshake {
            if handshake.next_timeout <= now {
                if let Err(e) = handshake.rtc.handle_input(Input::Timeout(now)) {
                    warn!(viewer = self.id.0,
            stream = %self.plan.stream, "engine timeout error: {e}");
                }
                self.drain(now, out);
            }
        }
        // Stream time as sent runs `offset_us` ahead of the feed's: the sender reports'
        // clock mapping follows it.
        let offset = Duration::from_micros(self.offset_us.max(0) as u64);
        let epoch = epoch.map(|e| e.checked_sub(offset).unwrap_or(e));
        if let Some(plane) = &mut self.plane {
            if plane.next_timeout() <= now && !plane.on_timeout(epoch, now, wall, out) {
                self.close(FailReason::RtpActivity.into());
            }
        }
        self.drop_handshake_when_done(now);
        self.update_timeout(now);
    }

    /// Drains the engine until it asks to be woken later: sends what it transmits and turns
    /// its events into viewer events (str0m's "drain after every mutation" rule), then
    /// starts the media plane once the handshake is done.
    pub(super) fn drain(&mut self, now: Instant, out: &mut Transmits) {
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        let mut events = Vec::new();
        loop {
            match handshake.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    handshake.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let tcp = t.proto == str0m::net::Protocol::Tcp;
                    let path = path_for(&self.links, t.destination, t.source, tcp);
                    // str0m sends anything but its STUN answers (DTLS) only on the pair
                    // the browser nominated.
                    if !matches!(t.contents.first(), Some(0..=3)) {
                        self.nominated = Some(path);
                    }
                    out.push(path, &t.contents);
                }
                Ok(Output::Event(event)) => events.push(event),
                Err(e) => {
                    warn!(viewer = self.id.0,
            stream = %self.plan.stream, "WebRTC engine failed: {e}");
                    events.push(Event::Closed);
                    break;
                }
            }
        }
        for event in events {
            self.on_event(event, now);
        }
        if self.plane.is_none() && !self.closed {
            self.start_media_plane(now);
        }
        self.update_timeout(now);
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        match event {
            // str0m announces the negotiated media only once DTLS is up, after `Connected`.
            Event::MediaAdded(m) => match m.kind {
                RtcKind::Video => handshake.video_mid = Some(m.mid),
                RtcKind::Audio => handshake.audio_mid = Some(m.mid),
            },
            Event::Connected => handshake.connected_at = Some(now),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if self.plane.is_some() {
                    self.close(FailReason::RtpActivity.into());
                } else {
                    self.close(FailReason::IceTimeout.into());
                }
            }
            Event::KeyframeRequest(_) => self.on_keyframe_request(now),
            Event::Closed => self.close(StopReason::SessionDisconnect.into()),
            _ => {}
        }
    }

    /// The link has carried less than the stream sends for a while (told at most once per
    /// shortfall: [`super::link_meter`]): logged, counted, and told to the signalling.
    fn tell_link_short(&self, s: Shortfall) {
        let protocol = self.plan.request.protocol;
        info!(
            viewer = self.id.0,
            stream = %self.plan.stream,
            stream_bps = s.stream_bps,
            carries_bps = s.carries_bps,
            "not enough bandwidth: the link carries {} of the stream's {} kbit/s",
            s.carries_bps / 1000,
            s.stream_bps / 1000
        );
        crate::metrics::METRICS.count_bandwidth_short(protocol);
        if let Some(notices) = &self.plan.link_notices {
            notices.tell(LinkShort {
                sending_bps: s.stream_bps,
                carries_bps: s.carries_bps,
            });
        }
    }

    /// A link window was measured: asks to move down or up when the policy says so (only
    /// a viewer that can be moved, and not while a move is under way).
    fn judge_moves(&mut self, from: Instant, now: Instant, estimate: &LinkEstimate) {
        let Some(moves) = &self.plan.link_moves else {
            return;
        };
        if self.pending.is_some() || self.closed {
            return;
        }
        let note = match self.policy.on_window(from, now, estimate) {
            None => return,
            Some(Want::Down {
                stream_bps,
                carries_bps,
            }) => {
                info!(
                        viewer = self.id.0,
                stream = %self.plan.stream,
                        stream_bps, carries_bps, "link short for a while: asking for a lower rendition"
                    );
                MoveNote::Down(LinkShort {
                    sending_bps: stream_bps,
                    carries_bps,
                })
            }
            Some(Want::Up) => {
                info!(
                        viewer = self.id.0,
                stream = %self.plan.stream,
                        "link clean at the lower rate for a while: probing back up"
                    );
                MoveNote::Up
            }
        };
        moves.tell(note);
    }

    /// The hub was asked to move the viewer to `feed` (events from then on to `events`):
    /// it goes there at that feed's next keyframe ([`Self::switch_to_pending`]).
    pub(super) fn plan_move(&mut self, feed: FeedId, events: ViewerEvents, down: bool) {
        self.pending = Some(PendingMove { feed, events, down });
    }

    /// The move under way cannot be made (its target ended, or the viewer is there
    /// already): it stays, and hears it.
    pub(super) fn abandon_move(&mut self) {
        self.pending = None;
        self.policy.abandoned();
        if let Some(moves) = &self.plan.link_moves {
            moves.tell(MoveNote::Abandoned);
        }
    }

    /// Makes the move under way at the target's keyframe stamped `keyframe_pts_us`: the
    /// viewer's feed and events change, its timeline offset is set so that RTP time goes
    /// on forward, the old feed's pictures are no longer re-sent on NACK, and the stream
    /// it now gets hears it connected (it asks its source for a fresh keyframe, as for any
    /// newcomer). Returns the feed it left.
    pub(super) fn switch_to_pending(
        &mut self,
        keyframe_pts_us: i64,
        now: Instant,
    ) -> Option<FeedId> {
        let PendingMove { feed, events, down } = self.pending.take()?;
        let left = std::mem::replace(&mut self.feed, feed);
        if self.video_started {
            // Each timeline is the parent's; a rendition's lags it by its encoder's delay.
            self.offset_us = (self.last_video_pts_us + SWITCH_STEP_US - keyframe_pts_us).max(0);
            self.audio_floor_us = Some(self.last_audio_pts_us);
        }
        // The old feed's pictures are no use now: NACKs for them go unanswered.
        if let Some(plane) = &mut self.plane {
            plane.forget_sent_video();
        }
        self.events = events;
        let _ = self.events.send((self.id, ViewerEvent::Connected));
        self.policy.moved(now, down);
        let direction = if down { "down" } else { "up" };
        crate::metrics::METRICS.count_rendition_move(direction);
        info!(
            viewer = self.id.0,
            stream = %self.plan.stream,
            direction,
            offset_ms = self.offset_us / 1000,
            "moved {direction} a rendition"
        );
        if let Some(moves) = &self.plan.link_moves {
            moves.tell(MoveNote::Switched);
        }
        Some(left)
    }

    /// What the viewer's link carried in the last measured window (see
    /// [`super::link_meter`]): for a switch between renditions of the stream to read.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn link_estimate(&self) -> Option<LinkEstimate> {
        self.plane.as_ref().and_then(|p| p.link.estimate())
    }

    fn on_keyframe_request(&mut self, now: Instant) {
        let recent = self
            .last_keyframe_sent
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_GRACE);
        // Before the first picture the catch-up (or the first keyframe) is on its way.
        if !recent && self.video_started {
            self.wants_keyframe = true;
        }
    }

    /// Once DTLS is up: takes the exported keys, the negotiated payload types and SSRCs,
    /// and makes the media plane. From then on media flows.
    fn start_media_plane(&mut self, now: Instant) {
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        if handshake.connected_at.is_none() {
            return;
        }
        let (Some(path), Some(exported)) = (self.nominated, handshake.keys.take()) else {
            // str0m reports the connection only after DTLS exported its keys, which the
            // wrapped provider copied: missing keys mean that wrapping is broken.
            warn!(
                viewer = self.id.0,
            stream = %self.plan.stream,
                "connected, but no SRTP keys were captured"
            );
            self.close(FailReason::DtlsError.into());
            return;
        };
        let Some(keys) = SrtpKeys::from_keying_material(
            &exported.material,
            exported.profile,
            exported.we_are_client,
        ) else {
            warn!(
                viewer = self.id.0,
            stream = %self.plan.stream,
                "DTLS exported keys of an unexpected size"
            );
            self.close(FailReason::DtlsError.into());
            return;
        };
        let provider = super::rtc_factory::crypto_provider();
        let video = handshake
            .video_mid
            .zip(self.plan.h264_profile_idc)
            .and_then(|(mid, profile)| video_track(&mut handshake.rtc, mid, profile));
        let audio = handshake
            .audio_mid
            .filter(|_| self.plan.has_audio)
            .and_then(|mid| audio_track(&mut handshake.rtc, mid));
        if self.plan.h264_profile_idc.is_some() && handshake.video_mid.is_some() && video.is_none()
        {
            warn!(
                viewer = self.id.0,
            stream = %self.plan.stream,
                "browser offered no H.264 with packetization-mode 1: video not sent"
            );
        }
        self.plane = Some(MediaPlane::new(
            path,
            &keys,
            provider,
            &handshake.ice_password,
            video,
            audio,
            now,
        ));
        info!(viewer = self.id.0,
            stream = %self.plan.stream, "WebRTC connected");
        let _ = self.events.send((self.id, ViewerEvent::Connected));
    }

    /// Drops the handshake engine once the browser has the keys, or after a while anyway.
    fn drop_handshake_when_done(&mut self, now: Instant) {
        let (Some(plane), Some(handshake)) = (&self.plane, &self.handshake) else {
            return;
        };
        let lingered = handshake
            .connected_at
            .is_some_and(|t| now.duration_since(t) >= HANDSHAKE_LINGER);
        if plane.peer_has_keys || lingered {
            self.handshake = None;
            debug!(viewer = self.id.0,
            stream = %self.plan.stream, "handshake engine dropped");
        }
    }

    /// Recomputes when the viewer wants to be woken; with nothing to wait for, a second
    /// after `now`.
    fn update_timeout(&mut self, now: Instant) {
        let engine = self.handshake.as_ref().map(|h| {
            // Wake when the engine may be dropped, too.
            let linger = h.connected_at.map(|t| t + HANDSHAKE_LINGER);
            linger.map_or(h.next_timeout, |l| l.min(h.next_timeout))
        });
        let plane = self
            .plane
            .as_ref()
            .map(super::media_plane::MediaPlane::next_timeout);
        self.next_timeout = match (engine, plane) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => now + Duration::from_secs(1),
        };
    }

    /// Sends one frame's packets, stamped `pts_us` (its own time on the feed's timeline,
    /// or another one for a catch-up or a re-sent keyframe; the viewer's offset is added). `fresh`: the frame is the feed's next one, not a
    /// catch-up or a repair (only those make the stream's bit rate the viewer is told of).
    /// Before the media plane is up nothing is sent.
    pub(super) fn write(
        &mut self,
        frame: &Arc<RtpFrame>,
        pts_us: i64,
        fresh: bool,
        now: Instant,
        out: &mut Transmits,
    ) {
        if self.closed {
            return;
        }
        let Some(plane) = &mut self.plane else {
            return;
        };
        let video = frame.kind == MediaKind::Video;
        if video && self.awaiting_keyframe && !frame.keyframe {
            return;
        }
        let pts_us = pts_us.saturating_add(self.offset_us).max(0);
        if !video {
            // After a move the audio's offset may have shrunk: what would go back is left
            // out (a moment of silence, not a jump back).
            if let Some(floor) = self.audio_floor_us {
                if pts_us <= floor {
                    return;
                }
                self.audio_floor_us = None;
            }
            self.last_audio_pts_us = pts_us;
        }
        plane.send_frame(frame, pts_us as u64, now, out);
        if fresh {
            plane.count_fresh(frame);
        }
        if video && plane.video.is_some() {
            if !self.video_started {
                self.plan.request.first_frame_sent(now);
                debug!(viewer = self.id.0,
            stream = %self.plan.stream, "first video frame sent");
            }
            self.video_started = true;
            self.last_video_pts_us = pts_us;
            if frame.keyframe {
                self.awaiting_keyframe = false;
                self.last_keyframe_sent = Some(now);
            }
        }
    }

    /// True once the viewer can take video and has had none: time for [`Self::catch_up`].
    pub(super) fn wants_catch_up(&self) -> bool {
        let video_negotiated = self.plane.as_ref().is_some_and(|p| p.video.is_some());
        !self.closed && video_negotiated && !self.video_started
    }

    /// Sends a viewer who joins mid-stream the feed's current GOP, so its first picture
    /// comes now and not at the next keyframe (which may be seconds away). The frames keep
    /// their order, but their timestamps are packed one 90 kHz tick apart just before the
    /// newest one: the browser decodes them in one go and shows the newest picture when
    /// every other viewer does, then follows the shared timeline.
    pub(super) fn catch_up(&mut self, gop: &[Arc<RtpFrame>], now: Instant, out: &mut Transmits) {
        let Some(newest) = gop.last() else {
            return;
        };
        let count = gop.len() as i64;
        for (i, frame) in gop.iter().enumerate() {
            let pts_us = newest.pts_us - (count - 1 - i as i64) * PACKED_STEP_US;
            self.write(frame, pts_us, false, now, out);
        }
        debug!(
            viewer = self.id.0,
            stream = %self.plan.stream,
            frames = gop.len(),
            "joined mid-stream: sent the current GOP"
        );
    }

    /// Answers a picture-loss request from the feed's current GOP (its keyframe and every
    /// picture since, as sent). A file cannot make a new keyframe, and the keyframe alone
    /// would leave the pictures after it without the frames they reference; so the whole
    /// GOP is re-sent, packed one tick apart just after the newest picture, and the
    /// browser decodes up to "now" again and plays on.
    ///
    /// Bound: after re-sending a GOP that spans D of video, the viewer's requests for the
    /// next D (at least [`KEYFRAME_REQUEST_GRACE`]) get the keyframe alone, so re-sent video
    /// never exceeds the time that passed plus one GOP, however often a client asks. The
    /// keyframe alone (at most one per [`KEYFRAME_REQUEST_GRACE`]) holds back the pictures
    /// after it until the next real keyframe: a still picture, never a smeared one.
    pub(super) fn answer_picture_loss(
        &mut self,
        gop: &[Arc<RtpFrame>],
        now: Instant,
        out: &mut Transmits,
    ) {
        self.wants_keyframe = false;
        let (Some(keyframe), Some(newest)) = (gop.first(), gop.last()) else {
            // The GOP cache overflowed: the next real keyframe is the answer.
            return;
        };
        // On the feed's timeline (`write` adds the offset back).
        let base = self.last_video_pts_us - self.offset_us;
        if now >= self.gop_resend_after {
            let span =
                Duration::from_micros(newest.pts_us.saturating_sub(keyframe.pts_us).max(0) as u64);
            self.gop_resend_after = now + span.max(KEYFRAME_REQUEST_GRACE);
            for (i, frame) in gop.iter().enumerate() {
                let pts_us = base + (i as i64 + 1) * PACKED_STEP_US;
                self.write(frame, pts_us, false, now, out);
            }
            debug!(
                viewer = self.id.0,
            stream = %self.plan.stream,
                frames = gop.len(),
                "picture loss answered with the GOP so far"
            );
            return;
        }
        self.write(keyframe, base + PACKED_STEP_US, false, now, out);
        self.awaiting_keyframe = true;
        debug!(
            viewer = self.id.0,
            stream = %self.plan.stream,
            "picture loss answered with the keyframe alone (a GOP was re-sent recently)"
        );
    }

    pub(super) fn close(&mut self, reason: Ending) {
        if !self.closed {
            self.closed = true;
            if let Some(handshake) = &mut self.handshake {
                handshake.rtc.disconnect();
            }
            let _ = self.events.send((self.id, ViewerEvent::Closed(reason)));
        }
    }

    /// Closes the viewer from our side, telling the browser its streams ended.
    pub(super) fn close_and_say_goodbye(&mut self, reason: Ending, out: &mut Transmits) {
        if !self.closed {
            if let Some(plane) = &mut self.plane {
                plane.say_goodbye(out);
            }
        }
        self.close(reason);
    }
}

/// The video stream the viewer gets: the H.264 payload type whose profile matches the
/// file (a browser decodes any profile it offered, but the matching one keeps the SDP
/// honest), or VP8's when the answer has VP8 alone (`Accepted::sends_vp8`: the feed is
/// then VP8), its SSRC, and the retransmission stream when negotiated.
fn video_track(rtc: &mut Rtc, mid: Mid, profile_idc: u8) -> Option<OutTrack> {
    let writer = rtc.writer(mid)?;
    let h264: Vec<(Pt, Option<Pt>, Option<u32>)> = writer
        .payload_params()
        .filter(|p| p.spec().codec == Codec::H264)
        .filter(|p| p.spec().format.packetization_mode == Some(1))
        .map(|p| (p.pt(), p.resend(), p.spec().format.profile_level_id))
        .collect();
    let vp8 = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| (p.pt(), p.resend(), None));
    let same_profile = h264
        .iter()
        .find(|(_, _, plid)| plid.map(|v| (v >> 16) as u8) == Some(profile_idc));
    let (pt, rtx_pt, _) = same_profile.or(h264.first()).copied().or(vp8)?;
    let mut api = rtc.direct_api();
    let stream = api.stream_tx_by_mid(mid, None)?;
    let rtx = stream.rtx().zip(rtx_pt).map(|(ssrc, pt)| RtxTrack {
        ssrc: *ssrc,
        pt: *pt,
        next_seq: u64::from(random_u16()),
    });
    Some(OutTrack::new(
        *stream.ssrc(),
        *pt,
        VIDEO_CLOCK_HZ,
        random_u16(),
        rtx,
    ))
}

fn audio_track(rtc: &mut Rtc, mid: Mid) -> Option<OutTrack> {
    let pt = rtc
        .writer(mid)?
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .map(str0m::format::PayloadParams::pt)?;
    let mut api = rtc.direct_api();
    let stream = api.stream_tx_by_mid(mid, None)?;
    Some(OutTrack::new(
        *stream.ssrc(),
        *pt,
        AUDIO_CLOCK_HZ,
        random_u16(),
        None,
    ))
}

/// A random first sequence number (RFC 3550 §5.1), kept below 2^15 so that the SRTP
/// roll-over counter a browser infers from the first packets cannot be off by one.
fn random_u16() -> u16 {
    fastrand::u16(..0x8000)
}

/// A datagram that came on `from` to our `candidate`, as str0m takes it. The engine
/// knows only the announced candidates; behind NAT the address a datagram reached
/// differs, so the hub names the candidate it stands for.
pub(super) fn received_input<'a>(
    now: Instant,
    from: &Path,
    candidate: SocketAddr,
    contents: str0m::net::DatagramRecv<'a>,
) -> Input<'a> {
    Input::Receive(
        now,
        str0m::net::Receive {
            proto: if from.tcp.is_some() {
                str0m::net::Protocol::Tcp
            } else {
                str0m::net::Protocol::Udp
            },
            source: from.remote,
            destination: candidate,
            contents,
        },
    )
}

/// Notes in `links` the pair a datagram came on (forgetting the oldest past
/// [`MAX_LINKS`]); true when it is new.
pub(super) fn remember_link(links: &mut Vec<Link>, from: Path, candidate: SocketAddr) -> bool {
    let same = |l: &Link| l.path.route() == from.route() && l.candidate == candidate;
    if let Some(link) = links.iter_mut().find(|l| same(l)) {
        link.path.local = from.local;
        return false;
    }
    if links.len() >= MAX_LINKS {
        links.remove(0);
    }
    links.push(Link {
        path: from,
        candidate,
    });
    true
}

/// The pair for a datagram str0m sends from our `candidate` to `remote`, over TCP or UDP:
/// from the address that browser address reached (by that candidate, else by any), on the
/// connection it came on. A TCP packet without a connection to go on is sent nowhere (a
/// path naming no connection would put it on UDP).
pub(super) fn path_for(
    links: &[Link],
    remote: SocketAddr,
    candidate: SocketAddr,
    tcp: bool,
) -> Path {
    let on_transport = |l: &&Link| l.path.remote == remote && l.path.tcp.is_some() == tcp;
    let link = links
        .iter()
        .rev()
        .filter(on_transport)
        .find(|l| l.candidate == candidate)
        .or_else(|| links.iter().rev().find(on_transport));
    Path {
        remote,
        local: link.and_then(|l| l.path.local),
        tcp: if tcp {
            Some(link.and_then(|l| l.path.tcp).unwrap_or(TcpId(0)))
        } else {
            None
        },
    }
}

/// Feeds `rtc` the nominating copy of the browser's first check (accepted just before),
/// so DTLS answers at once: see [`super::early_nomination`].
pub(super) fn nominate_early(
    rtc: &mut Rtc,
    check: &[u8],
    from: Path,
    candidate: SocketAddr,
    now: Instant,
) {
    let password = rtc.direct_api().local_ice_credentials().pass;
    let Some(copy) = super::early_nomination::nominating_copy(check, &password) else {
        return;
    };
    let Ok(contents) = copy.as_slice().try_into() else {
        return;
    };
    if let Err(e) = rtc.handle_input(received_input(now, &from, candidate, contents)) {
        debug!("early nomination refused: {e}");
    }
}

/// True for an ICE check that nominates its pair (USE-CANDIDATE).
fn nominates(data: &[u8]) -> bool {
    str0m::ice::StunMessage::parse(data).is_ok_and(|m| m.is_binding_request() && m.use_candidate())
}
