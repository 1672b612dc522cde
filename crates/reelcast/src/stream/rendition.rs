//! Renditions: a shared stream (a live translation, a published stream) at another
//! picture size or bit rate, for the viewers who asked for it on play
//! ([`VideoConstraints`]). One rendition per stream and constraints, shared by every
//! viewer asking the same; it ends when its last viewer leaves, when nobody joins it
//! within [`UNJOINED_TIMEOUT`] (one started for a move that was then abandoned), or with
//! its stream.
//!
//! Shape: a rendition is a [`Sink`] attached to its parent stream (through the parent's
//! [`SinkSlot`](crate::media::SinkSlot)) feeding a child stream of its own, whose sinks
//! (its WebRTC feed) viewers join as they join any shared stream. The parent's frames
//! come already paced: audio goes on to the child at once, as it came; video goes to
//! a thread of its own (decode the parent's H.264, scale, encode with x264 at the asked
//! size and bit rate: [`VideoTranscoder`]) whose pictures go to the child as soon as
//! each is encoded, on the parent's timeline and clock, never re-paced. At the start the
//! parent's GOP so far (given on attach) is decoded only, and the newest picture is the
//! first encoded, a keyframe at once (an HLS rung encodes it whole). A viewer that
//! connects gets a keyframe asked of the encoder (the hub's GOP cache gives it the
//! pictures since the last one meanwhile).
//!
//! Owns: the child stream's sinks, its encoder thread and bounded queue (a full queue,
//! an encoder slower than real time, drops pictures up to the next keyframe and says so
//! once), its viewers (an [`Audience`]) and its slot in the transcoder count
//! ([`VideoTranscoderBusy`]). Started only by the registry, which it does not know: it
//! is handed what to do at its end (unlist, detach from the parent).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self as std_mpsc, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::transcode::{CodecKind, VideoInput, VideoTranscoder};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{info, warn, Instrument, Span};

use super::audience::Audience;
use super::constraints::VideoConstraints;
use super::door::{self, DoorCommand, Entrance, ViewerDoor};
use super::status::Unlist;
use super::transcode::{Speed, TranscodeSpeed};
use super::{MediaInfo, StreamError};
use crate::media::ViewerEvent;
use crate::media::{Ending, FailReason, Frame, MediaKind, Sink, Sinks, StopReason, StreamId};
use crate::metrics::{HlsAbrRung, VideoTranscoderBusy};

/// Pictures queued for a rendition's encoder (a second at 30 fps). The parent's GOP in
/// progress, given at the start, takes one place: [`Input::Preroll`].
const PICTURES_AHEAD: usize = 32;

/// What the encoder thread is given.
enum Input {
    /// A picture falling due now.
    Picture(Frame),
    /// The parent's GOP so far, from its keyframe, at the start (decoded only, up to its
    /// newest picture): one batch, however long, so it never fills the queue.
    Preroll(Vec<Frame>),
}

/// A rendition nobody has joined this long after its start ends (one started for a
/// viewer's move that was then abandoned). Short in unit tests, which wait for it in
/// real time.
pub const UNJOINED_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(10)
};

/// Which rendition: its parent stream and what its viewers asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenditionKey {
    /// The parent stream.
    pub parent: StreamId,
    /// What was asked.
    pub constraints: VideoConstraints,
    /// A rung of an HLS ABR ladder: its child stream has an HLS muxer (WebRTC viewers'
    /// renditions have none, so the two are never the same rendition).
    pub hls: bool,
}

/// A running rendition as others see it: what it plays and how to join it. Cheap to
/// clone.
#[derive(Clone)]
pub struct RenditionHandle {
    /// Which rendition.
    pub key: RenditionKey,
    /// The child stream its viewers' feed is made for.
    pub stream: StreamId,
    /// What its viewers are told: the parent's media at the rendition's size.
    pub info: MediaInfo,
    /// The id of its HLS window in the registry's directory (an HLS ladder's rung).
    pub hls_window: Option<String>,
    /// How its viewers come in and go.
    pub door: ViewerDoor,
    /// Asks the encoder for a keyframe.
    keyframe: Arc<AtomicBool>,
}

impl RenditionHandle {
    /// Asks the encoder for a keyframe (a viewer is on its way here: it switches at one).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }
}

enum Command {
    /// The parent stream ended so.
    ParentEnded(Ending),
    /// The encoder failed so.
    Failed(Ending),
}

/// How a rendition asks its parent for a keyframe.
pub(super) type ParentKeyframe = Arc<dyn Fn() + Send + Sync>;

/// What a rendition is made of, made by the registry.
pub(super) struct Parts {
    pub key: RenditionKey,
    /// The parent's media (its video H.264).
    pub parent: MediaInfo,
    /// The child stream and its sinks (its WebRTC feed), not started yet.
    pub stream: StreamId,
    pub sinks: Sinks,
    /// Its place among the server's video transcoders.
    pub busy: VideoTranscoderBusy,
    /// What the parent's viewers are told when it ends, from the parent's ending.
    pub viewers_ending: fn(&Ending) -> Ending,
    /// Asks the parent for a keyframe (a published stream's publisher: its GOPs end
    /// only when asked), when the encoder needs one: to start, after dropped pictures,
    /// after a picture it could not decode.
    pub parent_keyframe: Option<ParentKeyframe>,
    /// Takes it off the registry.
    pub unlist: Unlist,
    /// The id of the child's HLS window, when it has one (an HLS ladder's rung): the
    /// parent's AAC goes on to the child, and the encoder makes a keyframe where the
    /// parent has one, so that the ladder's segments begin at the same pictures.
    pub hls_window: Option<String>,
}

/// Makes a rendition: its handle, and the sink to attach to the parent, which starts
/// its encoder thread. `attach` attaches the sink to the parent and returns what detaches
/// it again (called at the rendition's end), or gives the sink back when the parent has
/// ended; the task starts only once attached.
pub(super) fn start(
    parts: Parts,
    attach: impl FnOnce(Box<dyn Sink>) -> Result<Box<dyn FnOnce() + Send>, Box<dyn Sink>>,
) -> Result<RenditionHandle, StreamError> {
    let Parts {
        key,
        parent,
        stream,
        sinks,
        busy,
        viewers_ending,
        parent_keyframe,
        unlist,
        hls_window,
    } = parts;
    if parent
        .video_codec
        .as_deref()
        .is_some_and(|c| !c.starts_with("H264"))
    {
        return Err(StreamError::WrongFormat(format!(
            "{} cannot be transcoded on play",
            parent.video_codec.unwrap_or_default()
        )));
    }
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (door, entrance, audience) = door::open(StopReason::SessionDisconnect);
    let speed = Arc::<TranscodeSpeed>::default();
    let info = MediaInfo {
        transcode_speed: Some(speed.clone()),
        ..rendition_info(&parent, key.constraints)
    };
    let handle = RenditionHandle {
        key,
        stream,
        info,
        hls_window: hls_window.clone(),
        door,
        keyframe: Arc::new(AtomicBool::new(false)),
    };
    let span = tracing::info_span!(
        "rendition",
        width = handle.info.width,
        height = handle.info.height,
        kbps = key.constraints.bitrate_kbps.unwrap_or(0)
    );
    let keyframe = handle.keyframe.clone();
    let sink = RenditionSink::start(
        sinks,
        key.constraints,
        EncoderShared {
            keyframe: keyframe.clone(),
            speed,
            for_hls: hls_window.is_some(),
        },
        commands,
        busy,
        span.clone(),
        parent_keyframe.clone(),
    )?;
    let detach = attach(Box::new(sink)).map_err(|_| StreamError::StreamNotFound)?;
    if let Some(ask) = &parent_keyframe {
        // The GOP in progress may have been too long to keep: a fresh one to start at.
        ask();
    }
    let task = Rendition {
        audience,
        keyframe,
        viewers_ending,
    };
    tokio::spawn(
        task.run(command_rx, entrance, unlist, detach)
            .instrument(span.clone()),
    );
    span.in_scope(|| info!("rendition started"));
    Ok(handle)
}

/// The parent's media as a rendition's viewers get it: H.264 constrained baseline at the
/// rendition's size (the asked size when the parent's is not known yet).
fn rendition_info(parent: &MediaInfo, constraints: VideoConstraints) -> MediaInfo {
    let (width, height) = if parent.width > 0 && parent.height > 0 {
        constraints.size_for(parent.width, parent.height)
    } else {
        (
            constraints.width.unwrap_or(0),
            constraints.height.unwrap_or(0),
        )
    };
    MediaInfo {
        width,
        height,
        h264_profile_idc: Some(CONSTRAINED_BASELINE),
        video_codec: Some(if constraints.vp8 {
            format!("VP8 ({width}x{height} rendition)")
        } else {
            format!("H264 ({width}x{height} rendition)")
        }),
        transcoded_video: true,
        aac_config: None,
        ..parent.clone()
    }
}

/// `profile_idc` of what x264 makes here.
const CONSTRAINED_BASELINE: u8 = 66;

struct Rendition {
    audience: Audience,
    keyframe: Arc<AtomicBool>,
    viewers_ending: fn(&Ending) -> Ending,
}

impl Rendition {
    async fn run(
        mut self,
        mut commands: UnboundedReceiver<Command>,
        mut entrance: Entrance,
        unlist: Unlist,
        detach: Box<dyn FnOnce() + Send>,
    ) {
        let unjoined = tokio::time::sleep(UNJOINED_TIMEOUT);
        tokio::pin!(unjoined);
        let ending: Ending = loop {
            tokio::select! {
                // Only while empty: a rendition that had viewers ends with its last.
                () = &mut unjoined, if self.audience.is_empty() => break StopReason::NoViewers.into(),
                Some(door) = entrance.commands.recv() => match door {
                    DoorCommand::Join { viewer, ticket } => self.audience.join(viewer, ticket),
                    DoorCommand::Leave { viewer, reason } => {
                        self.audience.drop_viewer(viewer, reason.into());
                        if self.audience.is_empty() {
                            break StopReason::NoViewers.into();
                        }
                    }
                    DoorCommand::HandOver { viewer, to } => {
                        // The last viewer moved back up: the rendition stops as when it left.
                        if self.audience.hand_over_to(viewer, to) && self.audience.is_empty() {
                            break StopReason::NoViewers.into();
                        }
                    }
                },
                command = commands.recv() => match command {
                    Some(Command::ParentEnded(ending)) => break (self.viewers_ending)(&ending),
                    Some(Command::Failed(ending)) => break ending,
                    None => break StopReason::NoViewers.into(),
                },
                Some((viewer, event)) = entrance.events.recv() => match event {
                    ViewerEvent::Connected => {
                        if self.audience.connected(viewer) {
                            // A fresh keyframe for the newcomer (the hub's GOP cache
                            // shows the current picture meanwhile).
                            self.keyframe.store(true, Ordering::Relaxed);
                        }
                    }
                    ViewerEvent::Closed(ending) => {
                        self.audience.drop_viewer(viewer, ending);
                        if self.audience.is_empty() {
                            break StopReason::NoViewers.into();
                        }
                    }
                },
            }
        };
        info!("rendition ended: {ending}");
        unlist();
        commands.close();
        entrance.close_into(&mut self.audience);
        self.audience.end_all(&ending);
        // Off the parent: the sink's end stops the encoder and closes the child feed.
        detach();
    }
}

/// The sink on the parent: audio on to the child, video to the encoder thread.
struct RenditionSink {
    pictures: Option<SyncSender<Input>>,
    child: Arc<Mutex<Sinks>>,
    /// Until the next keyframe (the start, or pictures dropped): pictures are not queued.
    want_keyframe: bool,
    /// The queue was full once (said once).
    said_full: bool,
    commands: UnboundedSender<Command>,
    span: Span,
    parent_keyframe: Option<ParentKeyframe>,
    /// The child has an HLS muxer: the AAC beside the parent's Opus goes on to it.
    aac: bool,
}

impl RenditionSink {
    fn start(
        sinks: Sinks,
        constraints: VideoConstraints,
        shared: EncoderShared,
        commands: UnboundedSender<Command>,
        busy: VideoTranscoderBusy,
        span: Span,
        parent_keyframe: Option<ParentKeyframe>,
    ) -> Result<Self, StreamError> {
        let child = Arc::new(Mutex::new(sinks));
        let (tx, rx) = std_mpsc::sync_channel(PICTURES_AHEAD);
        let encoder = Encoder {
            child: child.clone(),
            constraints,
            keyframe: shared.keyframe,
            speed: Speed::new(&shared.speed),
            commands: commands.clone(),
            parent_keyframe: parent_keyframe.clone(),
            aligned: shared.for_hls,
            _rung: shared.for_hls.then(HlsAbrRung::start),
            _busy: busy,
        };
        let thread_span = span.clone();
        std::thread::Builder::new()
            .name("rendition".into())
            .spawn(move || {
                let _entered = thread_span.enter();
                encoder.run(&rx);
            })
            .map_err(|e| StreamError::Other(format!("cannot start a transcoder: {e}")))?;
        Ok(RenditionSink {
            pictures: Some(tx),
            child,
            want_keyframe: true,
            said_full: false,
            commands,
            span,
            parent_keyframe,
            aac: shared.for_hls,
        })
    }

    fn picture(&mut self, frame: Frame) {
        let Some(pictures) = &self.pictures else {
            return;
        };
        if self.want_keyframe && !frame.keyframe {
            return;
        }
        match pictures.try_send(Input::Picture(frame)) {
            Ok(()) => self.want_keyframe = false,
            Err(TrySendError::Full(_)) => {
                // Decoding on from a gap would show garbage: the next keyframe.
                self.want_keyframe = true;
                if let Some(ask) = &self.parent_keyframe {
                    ask();
                }
                if !std::mem::replace(&mut self.said_full, true) {
                    self.span.in_scope(|| {
                        warn!(
                            "the rendition's encoder cannot keep up: pictures dropped up to \
                             the next keyframe; the machine is too busy"
                        );
                    });
                }
            }
            Err(TrySendError::Disconnected(_)) => self.pictures = None,
        }
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Sinks> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Sink for RenditionSink {
    fn start(&mut self, epoch: Instant) {
        self.child().start(epoch);
    }

    fn preroll(&mut self, frames: &[Frame]) {
        let (video, other): (Vec<&Frame>, Vec<&Frame>) =
            frames.iter().partition(|f| f.kind == MediaKind::Video);
        for f in other {
            self.frames(f.clone(), None);
        }
        // A GOP from its keyframe, or nothing: the next keyframe then.
        if !video.first().is_some_and(|f| f.keyframe) {
            return;
        }
        let Some(pictures) = &self.pictures else {
            return;
        };
        let batch = video.into_iter().cloned().collect();
        match pictures.try_send(Input::Preroll(batch)) {
            Ok(()) => self.want_keyframe = false,
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => self.pictures = None,
        }
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        match first.kind {
            // An audio pair goes on as it came.
            MediaKind::Audio => self.child().frames(first, second),
            MediaKind::Video => {
                self.picture(first);
                if let Some(second) = second {
                    self.frames(second, None);
                }
            }
            // The AAC beside Opus is for an HLS muxer: the child's, if it has one.
            MediaKind::Aac if self.aac => self.child().frames(first, second),
            MediaKind::Aac => {}
        }
    }

    fn end(&mut self, ending: &Ending) {
        // The encoder thread ends when its queue closes.
        self.pictures = None;
        self.child().end(ending);
        let _ = self.commands.send(Command::ParentEnded(ending.clone()));
    }

    fn last_read(&self) -> Option<Instant> {
        // Viewers of a rendition watch its parent: a translation stays up for them.
        Some(Instant::now())
    }
}

/// What a rendition's encoder thread shares with the rest of it.
struct EncoderShared {
    /// A viewer joined: the next picture is to be a keyframe.
    keyframe: Arc<AtomicBool>,
    /// How fast the encoder runs (REST's `transcodeSpeed` of its viewers).
    speed: Arc<TranscodeSpeed>,
    /// The child has an HLS muxer (see [`Parts::hls_window`]).
    for_hls: bool,
}

/// The next picture for the encoder: the queued ones first, then the channel's (a
/// pre-roll batch joins the queue); waits for one when `wait`, else `None` when none is
/// there yet.
fn next_picture(
    queued: &mut VecDeque<Frame>,
    pictures: &Receiver<Input>,
    wait: bool,
) -> Option<Frame> {
    loop {
        if let Some(frame) = queued.pop_front() {
            return Some(frame);
        }
        let input = if wait {
            pictures.recv().ok()?
        } else {
            pictures.try_recv().ok()?
        };
        match input {
            Input::Picture(frame) => return Some(frame),
            Input::Preroll(batch) => queued.extend(batch),
        }
    }
}

/// The encoder thread: the parent's pictures in, the rendition's out to the child.
struct Encoder {
    child: Arc<Mutex<Sinks>>,
    constraints: VideoConstraints,
    keyframe: Arc<AtomicBool>,
    speed: Speed,
    commands: UnboundedSender<Command>,
    parent_keyframe: Option<ParentKeyframe>,
    /// A keyframe where the parent has one (an HLS rung: segments aligned across the
    /// ladder, so a player switching rungs finds the same cut points).
    aligned: bool,
    _rung: Option<HlsAbrRung>,
    _busy: VideoTranscoderBusy,
}

impl Encoder {
    fn run(mut self, pictures: &Receiver<Input>) {
        let mut queued = VecDeque::new();
        // The first two pictures tell the frame rate (x264's rate control needs it).
        let Some(first) = next_picture(&mut queued, pictures, true) else {
            return;
        };
        let Some(second) = next_picture(&mut queued, pictures, true) else {
            return;
        };
        let step = second.dts_us - first.dts_us;
        let frame_rate = if step > 0 {
            (1_000_000.0 / step as f64).clamp(1.0, 120.0)
        } else {
            0.0
        };
        let input = VideoInput {
            codec: CodecKind::H264,
            // Annex-B with SPS/PPS before each keyframe: no configuration record needed.
            config: Vec::new(),
            frame_rate,
        };
        let mut t = match VideoTranscoder::new(&input) {
            Ok(t) => t,
            Err(e) => return self.fail(&e.to_string()),
        };
        t.set_size(self.constraints.width, self.constraints.height);
        if self.constraints.vp8 {
            t.set_output(::transcode::OutputCodec::Vp8);
        }
        if let Some(bits) = self.constraints.bit_rate() {
            t.set_bit_rate(bits);
        }
        let mut out = Vec::new();
        let mut decode_errors = 0u32;
        queued.push_front(second);
        queued.push_front(first);
        // An HLS rung encodes the parent's GOP whole: its segments start where the
        // parent's do.
        let mut caught_up = self.aligned;
        while let Some(frame) = next_picture(&mut queued, pictures, true) {
            // Until the first picture is encoded, one with another queued behind it (the
            // parent's GOP so far, given at the start) is only decoded: the first keyframe
            // is the newest picture, at once, and not a GOP's worth of old ones in a burst.
            if !caught_up && queued.is_empty() {
                if let Some(behind) = next_picture(&mut queued, pictures, false) {
                    queued.push_front(behind);
                }
            }
            let catching_up = !caught_up && !queued.is_empty();
            caught_up |= !catching_up;
            if !catching_up
                && (self.keyframe.swap(false, Ordering::Relaxed)
                    || (self.aligned && frame.keyframe))
            {
                t.force_keyframe();
            }
            let started = Instant::now();
            let pushed = if catching_up {
                t.decode_only(&frame.data, frame.dts_us, frame.pts_us, frame.keyframe)
            } else {
                t.push(
                    &frame.data,
                    frame.dts_us,
                    frame.pts_us,
                    frame.keyframe,
                    &mut out,
                )
            };
            if let Some(ratio) = self.speed.add(started.elapsed(), frame.pts_us) {
                warn!(
                    "the rendition's encoder runs slower than real time ({ratio:.2}x): its \
                     viewers will see pauses"
                );
            }
            match pushed {
                Ok(()) => {}
                Err(e @ ::transcode::TranscodeError::Decode { .. }) => {
                    decode_errors += 1;
                    if decode_errors <= 5 || decode_errors.is_power_of_two() {
                        warn!("{e}; pictures are skipped up to the next keyframe");
                    }
                    // A publisher makes the next one only when asked.
                    if let Some(ask) = &self.parent_keyframe {
                        ask();
                    }
                }
                Err(e) => return self.fail(&e.to_string()),
            }
            if out.is_empty() {
                continue;
            }
            let mut child = self
                .child
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for f in out.drain(..) {
                let picture = Frame {
                    kind: MediaKind::Video,
                    dts_us: f.pts_us,
                    pts_us: f.pts_us,
                    keyframe: f.keyframe,
                    data: Arc::from(f.data),
                };
                child.frames(picture, None);
            }
        }
    }

    fn fail(&self, reason: &str) {
        warn!("rendition stopped: {reason}");
        let failed = FailReason::from(StreamError::Streaming(reason.to_string()));
        let _ = self.commands.send(Command::Failed(failed.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rendition started for a move that was abandoned (nobody joins) ends after
    /// [`UNJOINED_TIMEOUT`]: unlisted, off its parent, its transcoder slot free.
    #[tokio::test]
    async fn a_rendition_nobody_joins_ends_after_the_unjoined_timeout() {
        let unlisted = Arc::new(AtomicBool::new(false));
        let detached = Arc::new(AtomicBool::new(false));
        let (u, d) = (unlisted.clone(), detached.clone());
        let parts = Parts {
            key: RenditionKey {
                parent: StreamId::next(),
                constraints: VideoConstraints {
                    height: Some(180),
                    ..VideoConstraints::default()
                },
                hls: false,
            },
            parent: MediaInfo {
                has_video: true,
                width: 1280,
                height: 720,
                video_codec: Some("H264".into()),
                ..MediaInfo::default()
            },
            stream: StreamId::next(),
            sinks: Sinks::default(),
            busy: VideoTranscoderBusy::try_start(0).expect("no limit"),
            viewers_ending: |e| e.clone(),
            parent_keyframe: None,
            unlist: Box::new(move || u.store(true, Ordering::SeqCst)),
            hls_window: None,
        };
        let attach = move |sink: Box<dyn Sink>| {
            // The parent would hold the sink until detached.
            let held = Mutex::new(Some(sink));
            Ok(Box::new(move || {
                drop(held.lock().map(|mut s| s.take()));
                d.store(true, Ordering::SeqCst);
            }) as Box<dyn FnOnce() + Send>)
        };
        let handle = start(parts, attach).expect("an H.264 parent");
        tokio::time::sleep(UNJOINED_TIMEOUT / 3).await;
        assert!(!unlisted.load(Ordering::SeqCst), "not before the time-out");
        tokio::time::sleep(UNJOINED_TIMEOUT * 3).await;
        assert!(unlisted.load(Ordering::SeqCst), "unlisted at the time-out");
        assert!(detached.load(Ordering::SeqCst), "off its parent");
        assert!(handle.door.is_ended());
    }

    fn frame(kind: MediaKind, i: i64, keyframe: bool) -> Frame {
        Frame {
            kind,
            dts_us: i * 33_333,
            pts_us: i * 33_333,
            keyframe,
            data: Arc::from(vec![0u8; 8]),
        }
    }

    /// A rendition started three seconds into its parent's GOP gets the GOP so far (90
    /// pictures, more than its queue holds) as one batch and the pictures after it in
    /// turn: nothing dropped, no wait for the next keyframe.
    #[test]
    fn a_long_gop_so_far_reaches_the_encoder_whole_and_the_pictures_after_it_follow() {
        let (tx, rx) = std_mpsc::sync_channel(PICTURES_AHEAD);
        let (commands, _commands_rx) = mpsc::unbounded_channel();
        let mut sink = RenditionSink {
            pictures: Some(tx),
            child: Arc::new(Mutex::new(Sinks::default())),
            want_keyframe: true,
            said_full: false,
            commands,
            span: Span::none(),
            parent_keyframe: None,
            aac: false,
        };
        let gop: Vec<Frame> = (0..90)
            .flat_map(|i| {
                [
                    frame(MediaKind::Video, i, i == 0),
                    frame(MediaKind::Audio, i, true),
                ]
            })
            .collect();
        sink.preroll(&gop);
        for i in 90..100 {
            sink.frames(frame(MediaKind::Video, i, false), None);
        }
        let (mut queued, mut got) = (VecDeque::new(), Vec::new());
        while let Some(f) = next_picture(&mut queued, &rx, false) {
            got.push(f);
        }
        assert_eq!(got.len(), 100, "the GOP so far and every picture after it");
        assert!(got[0].keyframe);
        assert!(got.iter().zip(0..).all(|(f, i)| f.dts_us == i * 33_333));
        assert!(!sink.said_full, "the queue never filled");
    }

    #[test]
    fn a_renditions_viewers_are_told_its_size_and_codec() {
        let parent = MediaInfo {
            has_video: true,
            has_audio: true,
            width: 1280,
            height: 720,
            h264_profile_idc: Some(100),
            video_codec: Some("H264".into()),
            ..MediaInfo::default()
        };
        let c = VideoConstraints {
            height: Some(180),
            ..VideoConstraints::default()
        };
        let info = rendition_info(&parent, c);
        assert_eq!((info.width, info.height), (320, 180));
        assert_eq!(info.h264_profile_idc, Some(CONSTRAINED_BASELINE));
        assert!(info.has_audio && info.transcoded_video);
        let unknown = MediaInfo {
            width: 0,
            height: 0,
            ..parent
        };
        assert_eq!(rendition_info(&unknown, c).height, 180);
    }
}
