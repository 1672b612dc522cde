//! Live translations (`vod-live://file`): one file played once, on one timeline, for
//! every viewer at the same time, like a TV channel made from a file.
//!
//! Owns a translation's life: its reader (demux and AAC→Opus run once here, never per
//! viewer), real-time pacing, looping, who watches, and when it ends: at end of file
//! (without loop), on `terminate`, or after `vod_stream_timeout` with no viewer. Viewers
//! join and leave through a [`TranslationHandle`], as [`Viewer`]s of any protocol: the
//! translation hears their events on one channel and lets them go at its end. Frames go to the translation's sinks;
//! the WebRTC feed among them fans them out and gives a newcomer the current picture at
//! once from its GOP cache. Started only by the registry (`start` is `pub(super)`),
//! which it does not know: it is handed what to do at its end.
//!
//! A file whose H.264 has B-frames is re-encoded for WebRTC only while it is needed: the
//! task wants the reader's re-encode when a viewer that is not an HLS reader joins (or
//! is refused, with the reason) and, every [`NEED_CHECK`], while such viewers or sinks
//! that take the re-encode are there; it lets it go [`REENCODE_LINGER`](super::reencode_demand::REENCODE_LINGER) after
//! (`reencode_demand`, `reordered`).
//!
//! Looping: the same reader is rewound and its timestamps shifted by the file's length
//! per pass, so RTP time keeps rising across the seam and audio and video share the
//! shift exactly (no drift however many passes).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{info, Instrument};

use super::audience::Audience;
use super::clock::sleep_until;
use super::door::{self, DoorCommand, Entrance, ViewerDoor};
use super::frame_queue::{spawn_reader, FrameSource, Routed};
use super::open::AnyReader;
use super::pacer::Pacer;
use super::reencode_demand::{Follower, ReencodeDemand};
use super::status::Unlist;
use super::{MediaInfo, PacingClock, StreamError};
use crate::media::{Ending, FailReason, Frame, MediaKind, Sink, Sinks, StopReason, StreamId};
use crate::media::{Viewer, ViewerEvent, ViewerProtocol};

use crate::source::{PlayMode, StreamUri};

/// A running translation as others see it: what it plays and how to join or end it.
/// Cheap to clone (one reference count: the HLS port clones it for every request), its
/// fields read through [`TranslationInfo`].
#[derive(Clone)]
pub struct TranslationHandle(Arc<TranslationInfo>);

/// What a [`TranslationHandle`] holds.
pub struct TranslationInfo {
    /// `localMediaSessionId` in the REST API.
    pub id: String,
    /// `localStreamName`: what viewers play to join.
    pub name: String,
    /// The canonical `vod-live://` name of the file.
    pub uri: String,
    /// The translation starts again at end of file.
    pub looped: bool,
    /// What viewers are told about the media.
    pub info: MediaInfo,
    /// When it started.
    pub created: SystemTime,
    /// The stream its sinks were made for (viewers are added to its WebRTC feed).
    pub stream: StreamId,
    /// How its viewers come in and go.
    pub door: ViewerDoor,
    commands: UnboundedSender<Command>,
}

impl std::ops::Deref for TranslationHandle {
    type Target = TranslationInfo;

    fn deref(&self) -> &TranslationInfo {
        &self.0
    }
}

impl TranslationHandle {
    /// Ends the translation; every viewer gets STOPPED with `reason`.
    pub fn terminate(&self, reason: StopReason) {
        let _ = self.commands.send(Command::Terminate { reason });
    }
}

enum Command {
    Terminate { reason: StopReason },
}

/// Why a translation could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A running translation already has this name.
    #[error("Stream name is already in use")]
    NameInUse,
    /// The uri does not name a live translation.
    #[error("Not a live translation: {0} (expected vod-live://FILE)")]
    NotLive(String),
    #[error(transparent)]
    /// The file could not be opened or played.
    Stream(#[from] StreamError),
}

/// What to translate.
pub struct TranslationSpec {
    /// `localStreamName`.
    pub name: String,
    /// The file.
    pub uri: StreamUri,
    /// Start again at end of file.
    pub looped: bool,
    /// For a file whose video is re-encoded on demand (H.264 with B-frames): re-encode
    /// from the first picture, for the WebRTC viewer about to join (or expected, for
    /// REST), rather than from the first keyframe after it joins. Kept only while
    /// needed: released [`REENCODE_LINGER`](super::reencode_demand::REENCODE_LINGER)
    /// after it is not. False for a translation HLS starts.
    pub reencode_at_start: bool,
}

/// What a translation is made of, made by the registry ([`super::Registry`]).
pub(super) struct Parts {
    /// `localMediaSessionId`.
    pub id: String,
    pub spec: TranslationSpec,
    /// The source, opened.
    pub reader: AnyReader,
    /// Where its frames go, made for `stream`.
    pub sinks: Sinks,
    /// The reader's video is re-encoded only while this wants it (H.264 with B-frames).
    pub reencode: Option<Arc<ReencodeDemand>>,
    pub stream: StreamId,
    /// `vod_stream_timeout`.
    pub idle_timeout: Duration,
    /// Takes the translation off the registry when it ends.
    pub unlist: Unlist,
}

/// Starts a translation from its opened parts. `register` lists it (`false`: its name
/// was taken meanwhile, and nothing starts). The sinks have their clock before it can be
/// found: a viewer added to a sink not started yet (a WebRTC feed the hub does not know)
/// would never get frames.
pub(super) fn start(
    parts: Parts,
    register: impl FnOnce(&TranslationHandle) -> bool,
) -> Result<TranslationHandle, StartError> {
    let Parts {
        id,
        spec,
        reader,
        mut sinks,
        reencode,
        stream,
        idle_timeout,
        unlist,
    } = parts;
    if spec.uri.mode != PlayMode::Live {
        return Err(StartError::NotLive(spec.uri.uri_string()));
    }
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (door, entrance, audience) = door::open(StopReason::SessionDisconnect);
    let handle = TranslationHandle(Arc::new(TranslationInfo {
        id,
        name: spec.name,
        uri: spec.uri.uri_string(),
        looped: spec.looped,
        info: reader.info().clone(),
        created: SystemTime::now(),
        stream,
        door,
        commands,
    }));
    let clock = PacingClock::new(Instant::now());
    sinks.start(clock.epoch());
    if !register(&handle) {
        sinks.end(&Ending::Stopped(StopReason::EndOfFile));
        return Err(StartError::NameInUse);
    }
    let task = Translation {
        sinks,
        unlist: Some(unlist),
        idle_timeout,
        audience,
        reencode: reencode.map(Follower::new),
    };
    let span = tracing::info_span!("live", stream = %handle.name);
    let source = LoopingReader::new(reader, handle.looped);
    tokio::spawn(
        task.run(clock, source, command_rx, entrance)
            .instrument(span),
    );
    info!(stream = %handle.name, uri = %handle.uri, looped = handle.looped, "translation started");
    Ok(handle)
}

struct Translation {
    sinks: Sinks,
    unlist: Option<Unlist>,
    idle_timeout: Duration,
    audience: Audience,
    /// Wants the reader's video re-encode while WebRTC viewers or sinks need it.
    reencode: Option<Follower>,
}

/// How often a translation whose re-encode is on demand looks at what its sinks need.
const NEED_CHECK: Duration = Duration::from_millis(500);

impl Translation {
    async fn run(
        mut self,
        clock: PacingClock,
        source: LoopingReader,
        mut commands: UnboundedReceiver<Command>,
        mut entrance: Entrance,
    ) {
        let mut frames = spawn_reader(source);
        let mut pacer = Pacer::new(clock);
        let mut reader_done = false;
        // No viewer yet: a translation nobody joins ends like one everybody left.
        let mut idle_since = Some(Instant::now());
        let mut need_check = tokio::time::interval(NEED_CHECK);

        let ending: Ending = loop {
            let wake_at = pacer.wake_at();
            let idle_deadline = idle_since.map(|t| t + self.idle_timeout);
            // After the last frame: the last picture is shown, then everybody is told.
            let end_at =
                reader_done.then(|| clock.due(pacer.last_pts_us()) + Duration::from_millis(200));
            tokio::select! {
                Some(door) = entrance.commands.recv() => match door {
                    DoorCommand::Join { viewer, ticket } => {
                        if let Err(ending) = self.admit(&viewer) {
                            viewer.leave(ending.clone());
                            ticket.end(ending);
                            continue;
                        }
                        self.audience.join(viewer, ticket);
                        idle_since = None;
                    }
                    DoorCommand::Leave { viewer, reason } => {
                        self.audience.drop_viewer(viewer, reason.into());
                        if self.audience.is_empty() {
                            idle_since = Some(Instant::now());
                        }
                    }
                    DoorCommand::HandOver { viewer, to } => {
                        // Its rendition keeps the translation up meanwhile (its sink).
                        if self.audience.hand_over_to(viewer, to) && self.audience.is_empty() {
                            idle_since = Some(Instant::now());
                        }
                    }
                },
                command = commands.recv() => match command {
                    Some(Command::Terminate { reason }) => break reason.into(),
                    // Every handle is gone (cannot happen while registered): nothing can join.
                    None => break StopReason::EndOfFile.into(),
                },
                Some((viewer, event)) = entrance.events.recv() => match event {
                    ViewerEvent::Connected => {
                        self.audience.connected(viewer);
                    }
                    ViewerEvent::Closed(ending) => {
                        self.audience.drop_viewer(viewer, ending);
                        if self.audience.is_empty() {
                            idle_since = Some(Instant::now());
                        }
                    }
                },
                next = frames.recv(), if pacer.wants_frame() && !reader_done => match next {
                    Some(Ok(frame)) => pacer.put(frame),
                    Some(Err(e)) => break FailReason::from(e).into(),
                    None => {
                        reader_done = true;
                        pacer.finish(&mut self.sinks);
                    }
                },
                () = sleep_until(wake_at), if wake_at.is_some() => {
                    pacer.wake(Instant::now(), &mut self.sinks);
                }
                () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                    // Readers that are not viewers (HLS) keep it up as viewers do.
                    if let Some(read) = self.sinks.last_read().filter(|r| idle_since < Some(*r)) {
                        idle_since = Some(read);
                        continue;
                    }
                    info!("no viewer for {:?}: stopping", self.idle_timeout);
                    break StopReason::NoViewers.into();
                }
                () = sleep_until(end_at), if end_at.is_some() => break StopReason::EndOfFile.into(),
                _ = need_check.tick(), if self.reencode.is_some() => self.follow_need(),
            }
        };
        if let Some(reencode) = &mut self.reencode {
            reencode.end();
        }

        info!("translation ended: {ending:?}");
        if let Some(unlist) = self.unlist.take() {
            unlist();
        }
        commands.close();
        entrance.close_into(&mut self.audience);
        self.audience.end_all(&ending);
        self.sinks.end(&ending);
    }
}

impl Translation {
    /// A viewer joining: one that needs the re-encode (WebRTC) gets it started, or the
    /// ending it is refused with (transcoding disabled, no free transcoder).
    fn admit(&mut self, viewer: &Viewer) -> Result<(), Ending> {
        match &mut self.reencode {
            Some(reencode) if needs_reencode(viewer.protocol()) => reencode
                .admit()
                .map_err(|e| Ending::Failed(FailReason::Stream(e))),
            _ => Ok(()),
        }
    }

    /// Wants the re-encode while a WebRTC viewer or a sink needs it.
    fn follow_need(&mut self) {
        let needed =
            self.audience.any(|v| needs_reencode(v.protocol())) || self.sinks.needs_reencode();
        if let Some(reencode) = &mut self.reencode {
            reencode.update(needed, Instant::now());
        }
    }
}

/// A viewer by `protocol` decodes pictures in decode order without reordering (WebRTC):
/// it needs the re-encode of a file with B-frames. HLS players reorder.
fn needs_reencode(protocol: ViewerProtocol) -> bool {
    protocol != ViewerProtocol::Hls
}

/// The reader, rewound at the end when looping, with each pass's timestamps shifted by
/// the file's length so the timeline keeps rising.
struct LoopingReader {
    reader: AnyReader,
    looped: bool,
    /// Added to every timestamp of the current pass.
    offset_us: i64,
    /// One pass's length: the longest track.
    pass_us: i64,
    /// Frames read in the current pass (a pass with none must not loop forever).
    frames_this_pass: u64,
    /// The end of the last audio packet sent (taking packets as 20 ms): right after a
    /// seam, packets of the new pass that would overlap it (the file's audio ran a little
    /// past its length) are dropped.
    audio_end_us: i64,
    after_seam: bool,
}

impl LoopingReader {
    fn new(reader: AnyReader, looped: bool) -> Self {
        let pass_us = reader.info().duration_us;
        LoopingReader {
            reader,
            looped,
            offset_us: 0,
            pass_us,
            frames_this_pass: 0,
            audio_end_us: i64::MIN,
            after_seam: false,
        }
    }
}

/// Opus packets are 20 ms.
const AUDIO_PACKET_US: i64 = 20_000;

impl FrameSource for LoopingReader {
    fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            match self.next_routed()? {
                None => return Ok(None),
                Some(r) if !r.source_video => return Ok(Some(r.frame)),
                Some(_) => {}
            }
        }
    }

    fn next_routed(&mut self) -> Result<Option<Routed>, StreamError> {
        loop {
            let Some(Routed {
                mut frame,
                source_video,
            }) = self.reader.read_routed()?
            else {
                // A recording still being written: not its end yet.
                if self.reader.pending().is_some()
                    || !self.looped
                    || self.frames_this_pass == 0
                    || self.pass_us <= 0
                {
                    return Ok(None);
                }
                self.reader.rewind()?;
                self.offset_us += self.pass_us;
                self.frames_this_pass = 0;
                self.after_seam = true;
                continue;
            };
            self.frames_this_pass += 1;
            frame.dts_us += self.offset_us;
            frame.pts_us += self.offset_us;
            if frame.kind == MediaKind::Audio {
                if self.after_seam && frame.pts_us < self.audio_end_us {
                    continue;
                }
                self.after_seam = false;
                self.audio_end_us = frame.pts_us + AUDIO_PACKET_US;
            }
            return Ok(Some(Routed {
                frame,
                source_video,
            }));
        }
    }

    fn pending(&self) -> Option<std::time::Duration> {
        self.reader.pending()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::media::viewer::testing::NotingCarrier;
    use crate::media::ViewerProtocol;
    use crate::stream::status::{PlayKey, PlayStatus, PlayTicket, StreamStatus};
    use crate::stream::testing::sample_reader;

    /// Many passes of the 10 s sample (read as fast as it decodes, no pacing): the
    /// timeline rises without a step at the seams, and audio and video stay together.
    #[test]
    fn looping_keeps_one_rising_timeline_without_drift() {
        const PASSES: i64 = 30; // five minutes of stream time
        let mut looping = LoopingReader::new(sample_reader(), true);
        let pass_us = looping.pass_us;
        assert!(
            pass_us > 9_900_000 && pass_us < 10_200_000,
            "pass {pass_us} µs"
        );
        let (mut last_video, mut last_audio) = (i64::MIN, i64::MIN);
        let (mut worst_video_step, mut worst_audio_step) = (0i64, 0i64);
        let mut keyframes_at_seams = 0;
        while last_video < PASSES * pass_us {
            let frame = looping.next_frame().expect("reads").expect("never ends");
            match frame.kind {
                MediaKind::Video => {
                    assert!(
                        frame.pts_us > last_video,
                        "video went back at {}",
                        frame.pts_us
                    );
                    if last_video != i64::MIN {
                        worst_video_step = worst_video_step.max(frame.pts_us - last_video);
                    }
                    if frame.pts_us % pass_us < 1_000 {
                        assert!(frame.keyframe, "a pass starts with a keyframe");
                        keyframes_at_seams += 1;
                    }
                    last_video = frame.pts_us;
                }
                MediaKind::Audio => {
                    assert!(
                        frame.pts_us > last_audio,
                        "audio went back at {}",
                        frame.pts_us
                    );
                    if last_audio != i64::MIN {
                        worst_audio_step = worst_audio_step.max(frame.pts_us - last_audio);
                    }
                    last_audio = frame.pts_us;
                }
                MediaKind::Aac => {}
            }
        }
        assert!(
            keyframes_at_seams >= PASSES,
            "{keyframes_at_seams} seams seen"
        );
        // 25 fps: 40 ms a picture, also across a seam (the file's length is whole frames).
        assert!(
            worst_video_step <= 41_000,
            "video step {worst_video_step} µs"
        );
        // 20 ms Opus packets; a seam may drop at most one overlapping packet.
        assert!(
            worst_audio_step <= 40_000,
            "audio step {worst_audio_step} µs"
        );
        // After five minutes, audio is where video is (read its lead ahead of it): no
        // drift from the passes.
        let lead = crate::stream::pacer::AUDIO_LEAD_US;
        assert!(
            (last_audio - lead - last_video).abs() < 60_000,
            "audio at {last_audio} µs, video at {last_video} µs"
        );
    }

    /// What a test sink saw, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Start,
        Frame {
            kind: MediaKind,
            dts_us: i64,
            /// Handed over at or after its due time on the stream's clock.
            on_clock: bool,
        },
        End(Ending),
    }

    struct TestSink {
        log: Arc<std::sync::Mutex<Vec<Seen>>>,
        clock: Option<PacingClock>,
    }

    impl Sink for TestSink {
        fn start(&mut self, epoch: Instant) {
            self.clock = Some(PacingClock::new(epoch));
            self.log.lock().unwrap().push(Seen::Start);
        }

        fn frames(&mut self, first: Frame, second: Option<Frame>) {
            let now = Instant::now();
            let clock = self.clock.expect("frames come after start");
            for f in std::iter::once(first).chain(second) {
                self.log.lock().unwrap().push(Seen::Frame {
                    kind: f.kind,
                    dts_us: f.dts_us,
                    on_clock: now >= clock.due(f.dts_us),
                });
            }
        }

        fn end(&mut self, ending: &Ending) {
            self.log.lock().unwrap().push(Seen::End(ending.clone()));
        }
    }

    /// A translation with two sinks: each is started on the stream's clock, gets every
    /// frame in order and no earlier than it is due, and hears how the stream ended;
    /// the translation leaves the registry (its unlist runs) when it ends.
    #[tokio::test]
    async fn a_translation_feeds_every_sink_in_order_on_its_clock_and_tells_its_ending() {
        let logs: [Arc<std::sync::Mutex<Vec<Seen>>>; 2] = Default::default();
        let sinks = logs
            .iter()
            .map(|log| {
                Box::new(TestSink {
                    log: log.clone(),
                    clock: None,
                }) as Box<dyn Sink>
            })
            .collect();
        let (unlisted_tx, mut unlisted) = mpsc::unbounded_channel();
        let parts = Parts {
            id: "t1".into(),
            spec: TranslationSpec {
                name: "t".into(),
                uri: StreamUri::parse("vod-live://sample.mp4").expect("a live uri"),
                looped: false,
                reencode_at_start: false,
            },
            reader: sample_reader(),
            sinks: Sinks::new(sinks),
            reencode: None,
            stream: StreamId::next(),
            idle_timeout: Duration::from_secs(60),
            unlist: Box::new(move || {
                let _ = unlisted_tx.send(());
            }),
        };
        let handle = start(parts, |_| true).expect("starts");

        let frames = |log: &Arc<std::sync::Mutex<Vec<Seen>>>| log.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while logs.iter().any(|log| frames(log) < 40) {
            assert!(Instant::now() < deadline, "40 frames took over 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.terminate(StopReason::RestTerminate);
        tokio::time::timeout(Duration::from_secs(10), unlisted.recv())
            .await
            .expect("unlisted within 10 s")
            .expect("unlist ran");
        let ended = Seen::End(StopReason::RestTerminate.into());
        while logs
            .iter()
            .any(|log| log.lock().unwrap().last() != Some(&ended))
        {
            assert!(Instant::now() < deadline, "the sinks never heard the end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let [a, b] = logs.map(|log| log.lock().unwrap().clone());
        assert_eq!(a, b, "both sinks saw the same");
        assert_eq!(a.first(), Some(&Seen::Start));
        assert_eq!(a.iter().filter(|s| matches!(s, Seen::End(_))).count(), 1);
        let mut last = HashMap::new();
        for seen in &a[1..a.len() - 1] {
            let Seen::Frame {
                kind,
                dts_us,
                on_clock,
            } = seen
            else {
                panic!("{seen:?} between start and end");
            };
            assert!(on_clock, "{seen:?} came before it was due");
            let before = last.insert(*kind, *dts_us);
            assert!(before < Some(*dts_us), "{kind:?} went back at {dts_us}");
        }
        assert_eq!(last.len(), 2, "audio and video both reached the sinks");
    }

    /// Waits (at most 10 s) for the next status a session hears.
    async fn next_status(rx: &mut UnboundedReceiver<PlayStatus>) -> PlayStatus {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a status within 10 s")
            .expect("the session channel is open")
    }

    /// A translation knows its viewers only as [`Viewer`]s: their carrier's events make
    /// their statuses (connected: PLAYING; closed: the carrier's reason), and the
    /// translation lets each go through its carrier: one that closed, the rest at its end
    /// with its ending, and one joining after the end at once. No WebRTC involved.
    #[tokio::test]
    async fn a_translation_hears_its_viewers_events_and_lets_each_go_with_its_ending() {
        let carrier = Arc::new(NotingCarrier::default());
        let (status_tx, mut statuses) = mpsc::unbounded_channel();
        let ticket = |key| PlayTicket::new(key, Some(status_tx.clone()), Box::new(|| {}));
        let parts = Parts {
            id: "t2".into(),
            spec: TranslationSpec {
                name: "t2".into(),
                uri: StreamUri::parse("vod-live://sample.mp4").expect("a live uri"),
                // Looping: the file's end never comes first, however slow the machine.
                looped: true,
                reencode_at_start: false,
            },
            reader: sample_reader(),
            sinks: Sinks::default(),
            reencode: None,
            stream: StreamId::next(),
            idle_timeout: Duration::from_secs(60),
            unlist: Box::new(|| {}),
        };
        let handle = start(parts, |_| true).expect("starts");

        let (sdk, whep) = (
            carrier.viewer(ViewerProtocol::Wcs),
            carrier.viewer(ViewerProtocol::Whep),
        );
        let (sdk_id, whep_id) = (sdk.id(), whep.id());
        let (sdk_key, whep_key) = (PlayKey::next(), PlayKey::next());
        assert!(handle.door.join(sdk, ticket(sdk_key)));
        assert!(handle.door.join(whep, ticket(whep_key)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.door.viewer_count() < 2 {
            assert!(Instant::now() < deadline, "the viewers never joined");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let events = handle.door.viewer_events();
        events.send((sdk_id, ViewerEvent::Connected)).unwrap();
        let status = next_status(&mut statuses).await;
        assert_eq!(
            (status.key, status.status),
            (sdk_key, StreamStatus::Playing)
        );

        let dtls: Ending = FailReason::DtlsError.into();
        events
            .send((whep_id, ViewerEvent::Closed(dtls.clone())))
            .unwrap();
        let status = next_status(&mut statuses).await;
        assert_eq!(
            (status.key, status.status),
            (whep_key, StreamStatus::Ended(dtls.clone()))
        );
        assert_eq!(carrier.released(), vec![(whep_id, dtls.clone())]);
        assert_eq!(handle.door.viewer_count(), 1);

        handle.terminate(StopReason::RestTerminate);
        let terminated: Ending = StopReason::RestTerminate.into();
        let status = next_status(&mut statuses).await;
        assert_eq!(
            (status.key, status.status),
            (sdk_key, StreamStatus::Ended(terminated.clone()))
        );
        assert_eq!(
            carrier.released(),
            vec![(whep_id, dtls), (sdk_id, terminated)],
            "the viewer left was let go with the translation's ending"
        );

        while !handle.door.is_ended() {
            assert!(Instant::now() < deadline, "the translation never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let late = carrier.viewer(ViewerProtocol::Wcs);
        let late_id = late.id();
        assert!(!handle.door.join(late, ticket(PlayKey::next())));
        assert_eq!(
            carrier.released().last(),
            Some(&(late_id, StopReason::SessionDisconnect.into())),
            "a viewer too late for the translation is let go at once"
        );
    }

    #[test]
    fn without_loop_the_reader_ends() {
        let mut once = LoopingReader::new(sample_reader(), false);
        let mut last = 0;
        while let Some(frame) = once.next_frame().expect("reads") {
            last = last.max(frame.pts_us);
        }
        assert!(last < 10_100_000, "read past one pass: {last} µs");
    }
}
