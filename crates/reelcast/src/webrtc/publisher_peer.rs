//! One publisher's share of the hub: a browser sending its camera and microphone.
//!
//! Unlike a viewer, a publisher keeps its str0m [`Rtc`] for the whole session: str0m does
//! its ICE, DTLS and SRTP, reorders and depacketizes what arrives (its jitter buffer waits
//! for late and retransmitted packets), asks for lost packets (NACK, with RTX negotiated),
//! sends receiver reports and transport-wide congestion feedback (TWCC), and sends our
//! keyframe requests (PLI). Each whole picture or Opus packet it gives
//! ([`Event::MediaData`]) becomes a [`Frame`] on the publisher's channel
//! ([`PublisherEvent`]), timed by [`TrackClock`] and with SPS/PPS in front of every keyframe
//! ([`ParameterSets`]).
//!
//! Bounds: the channel to the stream is bounded in frames ([`FRAME_QUEUE`]) and bytes
//! ([`QUEUE_BYTES`]): when the stream falls behind, frames are dropped here, never queued
//! without end and never waited for (the hub serves every peer); video then waits for the
//! next keyframe, which is asked for once the queue has room again. A picture over
//! [`MAX_PICTURE_BYTES`] is dropped the same way. str0m holds at most 4096 packets per
//! track while reordering. Keyframe requests reach the browser at most once per
//! [`PLI_INTERVAL`], however often they are asked for.
//!
//! Ends (one [`PublisherEvent::Closed`], the last event): ICE or DTLS failed or never
//! completed within the RTP time-out, consent lost, no media for the RTP time-out (`Failed
//! by RTP activity`), the browser closed, or the stream closed it.
//!
//! Part of the hub's sans-IO core: time comes in as `now`, datagrams go out through
//! [`Transmits`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaData, MediaKind as RtcKind, Mid};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, info, warn};

use super::ids::ViewerId;
use super::received_frames::{ParameterSets, TrackClock};
use super::transmits::Transmits;
use super::udp::Path;
use super::viewer::{nominate_early, path_for, received_input, remember_link, Link};
use crate::media::{Ending, FailReason, Frame, MediaKind, PublisherEvent, StopReason};

/// Frames the channel to the stream holds (about 1.5 s of 30 fps video with its audio).
pub(super) const FRAME_QUEUE: usize = 128;
/// Bytes the frames queued on that channel may hold together.
pub(super) const QUEUE_BYTES: usize = 16 << 20;
/// A picture larger than this is dropped (a 4K keyframe is about 1 MB).
pub(super) const MAX_PICTURE_BYTES: usize = 4 << 20;
/// Keyframe requests to the browser are at least this far apart.
pub(super) const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// While a keyframe is wanted but the queue is still full, the peer looks again this often.
const DRAIN_CHECK: Duration = Duration::from_millis(100);

const VIDEO_CLOCK_HZ: u32 = 90_000;
const AUDIO_CLOCK_HZ: u32 = 48_000;

pub(super) struct PublisherPeer {
    pub id: ViewerId,
    pub local_ufrag: String,
    rtc: Rtc,
    events: mpsc::Sender<PublisherEvent>,
    /// The sizes of the last frames sent, newest last: the channel is FIFO, so the frames
    /// still queued are the newest `max_capacity - capacity` of them.
    sent_sizes: VecDeque<usize>,
    sent_bytes: usize,
    /// Time 0 of the frames: when the offer was answered.
    epoch: Instant,
    rtp_timeout: Duration,
    links: Vec<Link>,
    /// Browser paths proven since the hub last looked: the hub routes their datagrams here.
    pub new_routes: Vec<Path>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    sets: ParameterSets,
    connected: bool,
    /// The browser's first check has been seen (and, not nominating, nominated for it:
    /// [`super::early_nomination`]).
    first_check_seen: bool,
    last_media_at: Instant,
    /// Video is dropped until a keyframe (after loss or a dropped picture).
    awaiting_keyframe: bool,
    keyframe_wanted: bool,
    last_pli: Option<Instant>,
    engine_timeout: Instant,
    pub next_timeout: Instant,
    pub closed: bool,
}

impl PublisherPeer {
    /// A publisher answered at `epoch`, whose events go to `events` (made with
    /// [`FRAME_QUEUE`] slots).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: ViewerId,
        rtc: Rtc,
        local_ufrag: String,
        events: mpsc::Sender<PublisherEvent>,
        epoch: Instant,
        rtp_timeout: Duration,
        now: Instant,
    ) -> Self {
        PublisherPeer {
            id,
            local_ufrag,
            rtc,
            events,
            sent_sizes: VecDeque::new(),
            sent_bytes: 0,
            epoch,
            rtp_timeout,
            links: Vec::new(),
            new_routes: Vec::new(),
            video_mid: None,
            audio_mid: None,
            video_clock: TrackClock::new(VIDEO_CLOCK_HZ),
            audio_clock: TrackClock::new(AUDIO_CLOCK_HZ),
            sets: ParameterSets::default(),
            connected: false,
            first_check_seen: false,
            last_media_at: now,
            awaiting_keyframe: true,
            keyframe_wanted: false,
            last_pli: None,
            engine_timeout: now,
            next_timeout: now,
            closed: false,
        }
    }

    /// True once the publisher has ended.
    pub(super) fn is_finished(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    /// Handles a datagram from the browser that came on `from` and that str0m is to see as
    /// sent to our `candidate`.
    pub(super) fn on_datagram(
        &mut self,
        data: &[u8],
        from: Path,
        candidate: SocketAddr,
        now: Instant,
        out: &mut Transmits,
    ) {
        if self.closed {
            return;
        }
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = received_input(now, &from, candidate, contents);
        // STUN must carry our password; anything else must come on a pair already checked.
        if !self.rtc.accepts(&input) {
            return;
        }
        let is_stun = matches!(data.first(), Some(0..=3));
        if remember_link(&mut self.links, from, candidate) && is_stun {
            self.new_routes.push(from);
        }
        if let Err(e) = self.rtc.handle_input(input) {
            debug!(publisher = self.id.0, "bad input: {e}");
        }
        if is_stun && !self.first_check_seen {
            self.first_check_seen = true;
            nominate_early(&mut self.rtc, data, from, candidate, now);
        }
        self.drain(now, out);
    }

    /// Drives the engine and the time-outs at `now`.
    pub(super) fn on_timeout(&mut self, now: Instant, out: &mut Transmits) {
        if self.closed {
            return;
        }
        if self.engine_timeout <= now {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                warn!(publisher = self.id.0, "engine timeout error: {e}");
            }
        }
        if now >= self.last_media_at + self.rtp_timeout {
            let reason = if self.connected {
                FailReason::RtpActivity
            } else {
                FailReason::IceTimeout
            };
            info!(publisher = self.id.0, "{reason}");
            self.close(reason.into());
        }
        self.drain(now, out);
    }

    /// The stream wants a keyframe: a PLI goes now, or when the last one is
    /// [`PLI_INTERVAL`] old.
    pub(super) fn request_keyframe(&mut self, now: Instant, out: &mut Transmits) {
        self.keyframe_wanted = true;
        self.drain(now, out);
    }

    /// Drains the engine (str0m's rule after every input), turns its events into frames,
    /// sends a wanted keyframe request when it may, and computes the next wake-up.
    pub(super) fn drain(&mut self, now: Instant, out: &mut Transmits) {
        for _ in 0..2 {
            loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        self.engine_timeout = t;
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        let tcp = t.proto == str0m::net::Protocol::Tcp;
                        let path = path_for(&self.links, t.destination, t.source, tcp);
                        out.push(path, &t.contents);
                    }
                    Ok(Output::Event(event)) => self.on_event(event, now),
                    Err(e) => {
                        warn!(publisher = self.id.0, "WebRTC engine failed: {e}");
                        self.close(FailReason::DtlsError.into());
                        break;
                    }
                }
            }
            // A keyframe request is a mutation: str0m queues the PLI, drained on the next
            // round.
            if !self.send_keyframe_request(now) {
                break;
            }
        }
        self.update_timeout(now);
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected => {
                self.connected = true;
                self.last_media_at = now;
                info!(publisher = self.id.0, "WebRTC publisher connected");
                let _ = self.events.try_send(PublisherEvent::Connected);
            }
            Event::MediaAdded(m) => match m.kind {
                RtcKind::Video => self.video_mid = Some(m.mid),
                RtcKind::Audio => self.audio_mid = Some(m.mid),
            },
            Event::MediaData(data) => self.on_media(data, now),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                let reason = if self.connected {
                    FailReason::RtpActivity
                } else {
                    FailReason::IceTimeout
                };
                self.close(reason.into());
            }
            Event::Closed => self.close(StopReason::SessionDisconnect.into()),
            _ => {}
        }
    }

    /// One depacketized frame from str0m: made a [`Frame`] and sent, or dropped (see the
    /// module docs).
    fn on_media(&mut self, data: MediaData, now: Instant) {
        if self.closed {
            return;
        }
        self.last_media_at = now;
        if Some(data.mid) == self.video_mid {
            if data.data.len() > MAX_PICTURE_BYTES {
                debug!(publisher = self.id.0, "picture over the size cap dropped");
                self.lose_video();
                return;
            }
            if !data.contiguous {
                // Packets were lost for good before it: what follows may not decode.
                self.lose_video();
            }
            let picture = self.sets.picture(&data.data);
            if self.awaiting_keyframe && !picture.keyframe {
                return;
            }
            let pts_us = self
                .video_clock
                .pts_us(data.time.numer(), data.network_time, self.epoch);
            let frame = Frame {
                kind: MediaKind::Video,
                dts_us: pts_us,
                pts_us,
                keyframe: picture.keyframe,
                data: Arc::from(picture.data),
            };
            if self.push(frame) {
                if picture.keyframe {
                    if self.awaiting_keyframe {
                        debug!(publisher = self.id.0, "keyframe received");
                    }
                    self.awaiting_keyframe = false;
                }
            } else {
                self.lose_video();
            }
        } else if Some(data.mid) == self.audio_mid {
            if data.data.len() > MAX_PICTURE_BYTES {
                return;
            }
            let pts_us = self
                .audio_clock
                .pts_us(data.time.numer(), data.network_time, self.epoch);
            self.push(Frame {
                kind: MediaKind::Audio,
                dts_us: pts_us,
                pts_us,
                keyframe: true,
                data: data.data,
            });
        }
    }

    /// Video was lost: drop pictures until a keyframe, and ask for one.
    fn lose_video(&mut self) {
        self.awaiting_keyframe = true;
        self.keyframe_wanted = true;
    }

    /// Queues a frame for the stream if the queue has room (one slot always stays free for
    /// the `Closed` event); false when dropped.
    fn push(&mut self, frame: Frame) -> bool {
        let queued = self.events.max_capacity() - self.events.capacity();
        while self.sent_sizes.len() > queued {
            if let Some(size) = self.sent_sizes.pop_front() {
                self.sent_bytes -= size;
            }
        }
        let size = frame.data.len();
        if self.events.capacity() <= 1 || self.sent_bytes + size > QUEUE_BYTES {
            debug!(publisher = self.id.0, "stream behind: frame dropped");
            return false;
        }
        match self.events.try_send(PublisherEvent::Frame(frame)) {
            Ok(()) => {
                self.sent_sizes.push_back(size);
                self.sent_bytes += size;
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Closed(_)) => {
                // Nobody listens any more: the stream is gone.
                self.close(StopReason::SessionDisconnect.into());
                false
            }
        }
    }

    /// True when the queue to the stream has drained to half.
    fn queue_has_room(&self) -> bool {
        self.events.capacity() * 2 >= self.events.max_capacity()
    }

    /// Sends a PLI if one is wanted, the last is [`PLI_INTERVAL`] old and the stream
    /// would take the keyframe; true when one was queued in the engine.
    fn send_keyframe_request(&mut self, now: Instant) -> bool {
        if !self.keyframe_wanted || !self.connected || self.closed {
            return false;
        }
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL)
            || !self.queue_has_room()
        {
            return false;
        }
        let Some(mid) = self.video_mid else {
            self.keyframe_wanted = false;
            return false;
        };
        self.keyframe_wanted = false;
        self.last_pli = Some(now);
        match self.rtc.writer(mid) {
            Some(mut writer) => {
                if let Err(e) = writer.request_keyframe(None, KeyframeRequestKind::Pli) {
                    debug!(publisher = self.id.0, "keyframe request not sent: {e}");
                    return false;
                }
                debug!(publisher = self.id.0, "keyframe requested (PLI)");
                true
            }
            None => false,
        }
    }

    fn update_timeout(&mut self, now: Instant) {
        let silence = self.last_media_at + self.rtp_timeout;
        let mut next = self.engine_timeout.min(silence);
        if self.keyframe_wanted && self.connected {
            let pli_at = self.last_pli.map_or(now, |t| t + PLI_INTERVAL);
            let at = if self.queue_has_room() {
                pli_at
            } else {
                pli_at.max(now + DRAIN_CHECK)
            };
            next = next.min(at.max(now));
        }
        // Never a time already passed: the hub would drive the peer again at once, forever.
        self.next_timeout = next.max(now + Duration::from_millis(1));
    }

    /// Closes the publisher: the browser is told (DTLS close), the stream gets `Closed`.
    pub(super) fn close(&mut self, reason: Ending) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.rtc.disconnect();
        info!(publisher = self.id.0, "publisher closed: {reason}");
        let _ = self.events.try_send(PublisherEvent::Closed(reason));
    }
}
