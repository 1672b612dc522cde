//! One viewer's share of the hub: its engine and what must be per viewer.
//!
//! Per viewer is only what cannot be shared: the negotiated payload types, the SRTP and
//! congestion state inside `Rtc`, and whether video may flow yet (a decoder must start at a
//! keyframe), and the sequence numbers of its two RTP streams. RTP payloads are cut once
//! per feed ([`RtpFrame`]) and shared: writing them here costs a refcount per packet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind as RtcKind, Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tracing::{debug, info, warn};

use super::hub::{FeedId, ViewerEvent, ViewerEvents, ViewerId, ViewerPlan};
use super::outbox::Outbox;
use super::packets::RtpFrame;
use crate::media::MediaKind;

/// A picture-loss request within this long after a keyframe went out is not answered:
/// browsers ask for one while they wait for the first, and that one is on its way.
const KEYFRAME_REQUEST_GRACE: Duration = Duration::from_millis(1000);

/// How long sent video packets are kept to answer NACKs. A browser asks for a lost packet
/// as soon as a later one arrives and repeats every round trip; after about a second the
/// picture it belonged to is past its playout time and the browser asks for a keyframe
/// instead. One second covers several retries at any usable round-trip time.
const RESEND_CACHE_AGE: Duration = Duration::from_secs(1);
/// At most this many packets (a second of ~5 Mbit/s video); the cache grows to it only
/// when needed.
const RESEND_CACHE_PACKETS: usize = 512;
/// str0m's default: queued resends are dropped when they exceed 15 % of what is sent.
const RESEND_RATIO_CAP: Option<f32> = Some(0.15);

/// Spacing of a late joiner's catch-up pictures: just over one 90 kHz tick, so each gets
/// its own RTP timestamp.
const CATCH_UP_STEP_US: i64 = 12;

/// RTP clock rates: H.264 and Opus.
const VIDEO_CLOCK_HZ: u64 = 90_000;
const AUDIO_CLOCK_HZ: u64 = 48_000;

/// One negotiated RTP stream of this viewer.
struct Track {
    mid: Mid,
    /// Chosen once the browser's payload types are known; nothing is sent before.
    pt: Option<Pt>,
    /// Sequence numbers are per viewer (random start, RFC 3550); payloads are not.
    next_seq: SeqNo,
}

impl Track {
    fn new(mid: Mid) -> Self {
        Track {
            mid,
            pt: None,
            next_seq: SeqNo::default(),
        }
    }
}

pub(super) struct Viewer {
    pub id: ViewerId,
    pub feed: FeedId,
    pub rtc: Rtc,
    pub local_ufrag: String,
    plan: ViewerPlan,
    events: ViewerEvents,
    video: Option<Track>,
    audio: Option<Track>,
    connected: bool,
    /// Video is held back until a keyframe: a decoder cannot start anywhere else.
    awaiting_keyframe: bool,
    /// Any video written yet (a viewer joining mid-stream first gets the feed's GOP).
    video_started: bool,
    last_keyframe_sent: Option<Instant>,
    /// The catch-up burst grew the engine's resend cache; it is made anew at the next
    /// keyframe (see [`Self::write`]).
    resend_cache_oversized: bool,
    /// Presentation time of the last video frame written, to place a re-sent keyframe.
    last_video_pts_us: i64,
    /// Set when the browser asked for a picture; the hub answers from the feed's cache.
    pub wants_keyframe: bool,
    pub next_timeout: Instant,
    pub closed: bool,
}

impl Viewer {
    pub fn new(
        id: ViewerId,
        feed: FeedId,
        rtc: Rtc,
        local_ufrag: String,
        plan: ViewerPlan,
        events: ViewerEvents,
        now: Instant,
    ) -> Self {
        Viewer {
            id,
            feed,
            rtc,
            local_ufrag,
            plan,
            events,
            video: None,
            audio: None,
            connected: false,
            awaiting_keyframe: true,
            video_started: false,
            last_keyframe_sent: None,
            resend_cache_oversized: false,
            last_video_pts_us: 0,
            wants_keyframe: false,
            next_timeout: now,
            closed: false,
        }
    }

    /// Drains the engine until it asks to be woken later: sends what it transmits and turns
    /// its events into viewer events. This is str0m's "drain after every mutation" rule.
    pub fn drain(&mut self, out: &mut Outbox) {
        while !self.closed {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.push(t.destination, t.contents.into()),
                Ok(Output::Event(event)) => self.on_event(event),
                Err(e) => {
                    warn!(viewer = self.id.0, "WebRTC engine failed: {e}");
                    self.close("Failed by DTLS error");
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            // str0m announces the negotiated media only once DTLS is up, after `Connected`.
            Event::MediaAdded(m) => {
                match m.kind {
                    RtcKind::Video => {
                        self.video = Some(Track::new(m.mid));
                        self.size_resend_cache(m.mid);
                    }
                    RtcKind::Audio => self.audio = Some(Track::new(m.mid)),
                }
                self.choose_payload_types();
            }
            Event::Connected => {
                self.connected = true;
                info!(viewer = self.id.0, "WebRTC connected");
                let _ = self.events.send((self.id, ViewerEvent::Connected));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if self.connected {
                    self.close("Failed by RTP activity");
                } else {
                    self.close("Failed by ICE timeout");
                }
            }
            Event::KeyframeRequest(_) => {
                let recent = self
                    .last_keyframe_sent
                    .is_some_and(|t| t.elapsed() < KEYFRAME_REQUEST_GRACE);
                if !recent && !self.awaiting_keyframe {
                    self.wants_keyframe = true;
                }
            }
            Event::Closed => self.close("Stopped by session disconnect"),
            _ => {}
        }
    }

    /// Keeps sent video packets for answering NACKs for [`RESEND_CACHE_AGE`] rather than
    /// str0m's 3 s. The cache is per viewer (each engine packetizes for itself) and was
    /// most of a viewer's memory: 3 s of a 600 kbit/s stream is ~220 KB of payload plus
    /// ~430 B of bookkeeping per packet.
    fn size_resend_cache(&mut self, mid: Mid) {
        if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            stream.set_rtx_cache(RESEND_CACHE_PACKETS, RESEND_CACHE_AGE, RESEND_RATIO_CAP);
        }
    }

    /// Picks the H.264 payload type whose profile matches the file (a browser decodes any
    /// profile it offered, but the matching one keeps the SDP honest) and the Opus one.
    fn choose_payload_types(&mut self) {
        if let (Some(track), Some(profile)) = (&mut self.video, self.plan.h264_profile_idc) {
            if let Some(writer) = self.rtc.writer(track.mid) {
                let h264: Vec<_> = writer
                    .payload_params()
                    .filter(|p| p.spec().codec == Codec::H264)
                    .filter(|p| p.spec().format.packetization_mode == Some(1))
                    .map(|p| (p.pt(), p.spec().format.profile_level_id))
                    .collect();
                let same_profile = h264
                    .iter()
                    .find(|(_, plid)| plid.map(|v| (v >> 16) as u8) == Some(profile));
                track.pt = same_profile.or(h264.first()).map(|(pt, _)| *pt);
            }
            if track.pt.is_none() {
                warn!(
                    viewer = self.id.0,
                    "browser offered no H.264 with packetization-mode 1: video not sent"
                );
            }
        }
        if let (Some(track), true) = (&mut self.audio, self.plan.has_audio) {
            if let Some(writer) = self.rtc.writer(track.mid) {
                track.pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
            }
        }
    }

    /// Queues one frame's packets, stamped `pts_us` (its own time, or another one for a
    /// catch-up or a re-sent keyframe). Before the connection is up nothing is sent: the
    /// engine would drop it anyway. [`Self::transmit`] sends what was queued.
    pub fn write(&mut self, frame: &RtpFrame, pts_us: i64, epoch: Instant, now: Instant) {
        if !self.connected || self.closed {
            return;
        }
        let video = frame.kind == MediaKind::Video;
        if video && self.awaiting_keyframe && !frame.keyframe {
            return;
        }
        if video && frame.keyframe && self.resend_cache_oversized {
            // The cache is a ring that grows to hold what was sent within its age and never
            // shrinks: a GOP sent at once left it several times its steady size. Packets
            // from before a keyframe are not needed to decode after it, so here a fresh,
            // small cache loses nothing worth re-sending.
            self.resend_cache_oversized = false;
            if let Some(mid) = self.video.as_ref().map(|t| t.mid) {
                self.size_resend_cache(mid);
            }
        }
        let (track, clock_hz) = if video {
            (&mut self.video, VIDEO_CLOCK_HZ)
        } else {
            (&mut self.audio, AUDIO_CLOCK_HZ)
        };
        let Some(Track {
            mid,
            pt: Some(pt),
            next_seq,
        }) = track
        else {
            return;
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(*mid, None) else {
            return;
        };
        let pts_us = pts_us.max(0);
        // RTP time wraps at 32 bits by design; the receiver unwraps it.
        let rtp_time = (pts_us as u128 * clock_hz as u128 / 1_000_000) as u32;
        let wallclock = epoch + Duration::from_micros(pts_us as u64);
        let last = frame.payloads.len() - 1;
        for (i, payload) in frame.payloads.iter().enumerate() {
            let packet = RtpWrite::new(*pt, next_seq.inc(), rtp_time, wallclock, payload.clone())
                // Video: the marker ends a picture, and lost packets are re-sent on NACK.
                // Audio: a lost Opus packet is concealed; re-sending it would come too late.
                .marker(video && i == last)
                .nackable(video);
            stream.write_rtp(packet);
        }
        if video {
            self.video_started = true;
            self.last_video_pts_us = pts_us;
            if frame.keyframe {
                self.awaiting_keyframe = false;
                self.last_keyframe_sent = Some(now);
            }
        }
    }

    /// Sends what [`Self::write`] queued: the engine packs and encrypts queued packets when
    /// time moves, so it is given `now`, then drained.
    pub fn transmit(&mut self, now: Instant, out: &mut Outbox) {
        if self.closed {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            warn!(viewer = self.id.0, "engine timeout error: {e}");
        }
        self.drain(out);
    }

    /// True once the viewer can take video and has had none: time for [`Self::catch_up`].
    pub fn wants_catch_up(&self) -> bool {
        let video_negotiated = self.video.as_ref().is_some_and(|t| t.pt.is_some());
        self.connected && !self.closed && video_negotiated && !self.video_started
    }

    /// Sends a viewer who joins mid-stream the feed's current GOP, so its first picture
    /// comes now and not at the next keyframe (which may be seconds away). The frames keep
    /// their order, but their timestamps are packed one 90 kHz tick apart just before the
    /// newest one: the browser decodes them in one go and shows the newest picture when
    /// every other viewer does, then follows the shared timeline. Each frame is sent before
    /// the next is written, so the engine's send queue never holds the whole GOP (its
    /// queues keep the largest size they ever reached, for as long as the viewer stays).
    pub fn catch_up(
        &mut self,
        gop: &[Arc<RtpFrame>],
        epoch: Instant,
        now: Instant,
        out: &mut Outbox,
    ) {
        let Some(newest) = gop.last() else {
            return;
        };
        let count = gop.len() as i64;
        for (i, frame) in gop.iter().enumerate() {
            let pts_us = newest.pts_us - (count - 1 - i as i64) * CATCH_UP_STEP_US;
            self.write(frame, pts_us, epoch, now);
            self.transmit(now, out);
        }
        self.resend_cache_oversized = gop.len() > 1;
        debug!(
            viewer = self.id.0,
            frames = gop.len(),
            "joined mid-stream: sent the current GOP"
        );
    }

    /// Answers a picture-loss request with the feed's last keyframe. A file cannot make a
    /// new keyframe, so the cached one is re-sent just after the newest picture, and the
    /// pictures that depend on frames the browser lost are held back until the next real
    /// keyframe: the viewer sees a still picture, never a smeared one.
    pub fn resend_keyframe(&mut self, keyframe: &RtpFrame, epoch: Instant, now: Instant) {
        self.wants_keyframe = false;
        // One 90 kHz tick after the newest picture, so the browser treats it as new.
        self.write(keyframe, self.last_video_pts_us + 12, epoch, now);
        self.awaiting_keyframe = true;
        self.last_keyframe_sent = Some(now);
        debug!(
            viewer = self.id.0,
            "picture loss answered with the cached keyframe"
        );
    }

    pub fn close(&mut self, reason: &'static str) {
        if !self.closed {
            self.closed = true;
            self.rtc.disconnect();
            let _ = self.events.send((self.id, ViewerEvent::Closed(reason)));
        }
    }
}
