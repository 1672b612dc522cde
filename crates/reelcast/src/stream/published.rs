//! Published streams: a stream whose source is a [`Publisher`] (a browser publishing
//! through the WCS SDK or WHIP), watched live by its name.
//!
//! Owns a published stream's life: its publisher's events (PUBLISHING when it connects, its
//! frames handed to the sinks as they arrive: no pacer, the publisher's own clock is the
//! stream's; audio two packets at a time, as a translation's, see [`super::audio_pairs`]:
//! the first waits ≤ 30 ms for the second), who watches (as a translation's viewers:
//! [`Viewer`]s joined and let go through a [`PublishedHandle`]), a keyframe asked of the
//! publisher for each viewer that connects (but HLS readers: their segments begin at
//! keyframes the HLS muxer asks for), and when it ends: the publisher closes or
//! fails, `terminate` (REST, the publisher's own `unPublishStream` / WHIP `DELETE`,
//! shutdown). Its viewers then get STOPPED `Stopped by publisher stop` (or the shutdown's
//! reason); the publisher hears its own ending through its [`PlayTicket`] (a stop:
//! UNPUBLISHED; a failure such as `Failed by RTP activity`: FAILED).
//!
//! Started only by the registry (`start` is `pub(super)`), which it does not know: it is
//! handed its ticket, whose end unlists it. Must not: know what receives the publisher's
//! media (WebRTC) or what carries its viewers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{info, Instrument};

use super::audience::Audience;
use super::audio_pairs::AudioPairs;
use super::clock::sleep_until;
use super::door::{self, DoorCommand, Entrance, ViewerDoor};
use super::status::{PlayKey, PlayTicket};
use super::MediaInfo;
use crate::media::{Ending, Publisher, PublisherEvent, Sink, Sinks, StopReason, StreamId};
use crate::media::{ViewerEvent, ViewerId, ViewerProtocol};

/// How a publisher came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishProtocol {
    /// WCS `publishStream` (`@flashphoner/websdk`).
    Wcs,
    /// WHIP (`POST /whip/{name}`).
    Whip,
}

impl PublishProtocol {
    /// Its name in REST (`protocol`) and logs: `wcs`, `whip`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PublishProtocol::Wcs => "wcs",
            PublishProtocol::Whip => "whip",
        }
    }
}

/// Why a publisher is refused; Display is what it is told (WCS's words where they exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// A running published stream or live translation has this name.
    #[error("Stream name is already in use")]
    NameInUse,
    /// `max_publishers` publish already.
    #[error("Too many publishers: at most {0} publish at once")]
    TooMany(usize),
    /// The name is not one a stream can have (see [`check_name`]).
    #[error("Bad stream name: {0}")]
    BadName(&'static str),
    /// The server is shutting down.
    #[error("Server is shutting down")]
    ShuttingDown,
    /// The offer could not be answered, in plain words.
    #[error("{0}")]
    Offer(String),
}

/// Longest stream name a publisher may use, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Whether `name` can be published. WCS takes almost any string; reelcast refuses what
/// would be ambiguous or unsafe where names are used: empty names, over
/// [`MAX_NAME_CHARS`] characters, control characters (log lines, headers), `/` and `\`
/// (file names of recordings, HLS paths, and `vod://` names all use `/`), and names
/// with leading or trailing spaces (two names that look the same).
pub fn check_name(name: &str) -> Result<(), PublishError> {
    if name.is_empty() {
        return Err(PublishError::BadName("empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(PublishError::BadName("longer than 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(PublishError::BadName("control characters"));
    }
    if name.contains(['/', '\\']) {
        return Err(PublishError::BadName("'/' and '\\' are not allowed"));
    }
    if name.trim() != name {
        return Err(PublishError::BadName("leading or trailing spaces"));
    }
    Ok(())
}

/// What is published: everything about the stream but its media.
pub struct PublishSpec {
    /// The stream's name: what viewers play.
    pub name: String,
    /// The publisher's WCS `mediaSessionId` (or the WHIP resource id).
    pub media_session_id: String,
    /// The publisher asked for a recording (`record: true`).
    pub record: bool,
    /// What its offer sends (tracks, codecs; picture size 0 until known).
    pub info: MediaInfo,
    /// Which signalling it came by.
    pub protocol: PublishProtocol,
    /// The signalling session it came by (a recording's `{sessionId}`); empty for WHIP.
    pub session_id: String,
    /// The session's SIP login (a recording's `{login}`, as WCS fills it); often empty.
    pub login: String,
}

/// A running published stream as others see it: what it is and how to join or end it.
/// Cheap to clone (one reference count: the HLS port clones it for every request), its
/// fields read through [`PublishedInfo`].
#[derive(Clone)]
pub struct PublishedHandle(Arc<PublishedInfo>);

/// What a [`PublishedHandle`] holds.
pub struct PublishedInfo {
    /// The publisher's status key: its statuses come tagged with it, and the registry
    /// stops it by it.
    pub key: PlayKey,
    /// The publisher's `mediaSessionId` (or WHIP resource id).
    pub media_session_id: String,
    /// The stream's name.
    pub name: String,
    /// The publisher asked for a recording.
    pub record: bool,
    /// What viewers are told about the media.
    pub info: MediaInfo,
    /// When it was accepted.
    pub created: SystemTime,
    /// The stream its sinks were made for (viewers are added to its WebRTC feed).
    pub stream: StreamId,
    /// Which signalling the publisher came by.
    pub protocol: PublishProtocol,
    /// The recording's file name, set by whoever starts a recording of this stream
    /// (WCS's `recordName`).
    record_name: Mutex<Option<String>>,
    /// True once the publisher's connection is up (PUBLISHING).
    publishing: AtomicBool,
    /// How its viewers come in and go.
    pub door: ViewerDoor,
    commands: UnboundedSender<Command>,
}

impl std::ops::Deref for PublishedHandle {
    type Target = PublishedInfo;

    fn deref(&self) -> &PublishedInfo {
        &self.0
    }
}

impl PublishedHandle {
    /// True once the publisher's media flows (WCS status `PUBLISHING`; before: `PENDING`).
    pub fn is_publishing(&self) -> bool {
        self.publishing.load(Ordering::Relaxed)
    }

    /// The recording's file name, once a recording of this stream has one.
    pub fn record_name(&self) -> Option<String> {
        self.record_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets (or clears) the recording's file name: called by whoever starts or stops
    /// recording this stream.
    pub fn set_record_name(&self, name: Option<String>) {
        *self
            .record_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    }

    /// Asks the publisher for a keyframe (a recording starting needs one to begin at;
    /// rate-limited on the receiving side).
    pub fn request_keyframe(&self) {
        let _ = self.commands.send(Command::RequestKeyframe);
    }

    /// Ends the stream: the publisher is closed with `reason` (UNPUBLISHED with it) and
    /// every viewer gets STOPPED `Stopped by publisher stop`.
    pub fn terminate(&self, reason: StopReason) {
        let _ = self.commands.send(Command::Terminate { reason });
    }
}

enum Command {
    Terminate { reason: StopReason },
    RequestKeyframe,
}

/// What a published stream is made of, made by the registry.
pub(super) struct Parts {
    pub key: PlayKey,
    pub spec: PublishSpec,
    pub publisher: Publisher,
    /// When the publisher's offer was answered: its frames' times count from here.
    pub epoch: Instant,
    /// Where its frames go, made for `stream`.
    pub sinks: Sinks,
    pub stream: StreamId,
    /// The publisher's statuses; its end takes the stream off the registry.
    pub ticket: PlayTicket,
}

/// Starts a published stream. `register` lists it (an error: its name was taken, or the
/// publishers' cap reached, meanwhile; nothing starts and the publisher is closed). The
/// sinks have their clock before the stream can be found, as a translation's do.
pub(super) fn start<E>(
    parts: Parts,
    register: impl FnOnce(&PublishedHandle) -> Result<(), E>,
) -> Result<PublishedHandle, E> {
    let Parts {
        key,
        spec,
        publisher,
        epoch,
        mut sinks,
        stream,
        ticket,
    } = parts;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (door, entrance, audience) = door::open(StopReason::PublisherStop);
    let handle = PublishedHandle(Arc::new(PublishedInfo {
        key,
        media_session_id: spec.media_session_id,
        name: spec.name,
        record: spec.record,
        info: spec.info,
        created: SystemTime::now(),
        stream,
        protocol: spec.protocol,
        record_name: Mutex::default(),
        publishing: AtomicBool::default(),
        door,
        commands,
    }));
    sinks.start(epoch);
    if let Err(e) = register(&handle) {
        let ending = Ending::Stopped(StopReason::ByUser);
        sinks.end(&ending);
        publisher.close(ending);
        return Err(e);
    }
    let task = Published {
        handle: handle.clone(),
        sinks,
        audience,
        pairs: AudioPairs::default(),
        hls_readers: HashSet::new(),
    };
    let span = tracing::info_span!("published", stream = %handle.name);
    tokio::spawn(
        task.run(publisher, ticket, command_rx, entrance)
            .instrument(span),
    );
    info!(stream = %handle.name, protocol = handle.protocol.as_str(), record = handle.record, "publisher accepted");
    Ok(handle)
}

struct Published {
    handle: PublishedHandle,
    sinks: Sinks,
    audience: Audience,
    pairs: AudioPairs,
    /// The viewers that are HLS readers: no keyframe is asked for them.
    hls_readers: HashSet<ViewerId>,
}

impl Published {
    async fn run(
        mut self,
        mut publisher: Publisher,
        ticket: PlayTicket,
        mut commands: UnboundedReceiver<Command>,
        mut entrance: Entrance,
    ) {
        // Whether the publisher must still be told to close (it did not end itself).
        let (ending, close_publisher): (Ending, bool) = loop {
            let hold = self.pairs.deadline();
            tokio::select! {
                // The publisher first: its frames are what everybody waits for.
                biased;
                event = publisher.next() => match event {
                    Some(PublisherEvent::Connected) => {
                        if !self.handle.publishing.swap(true, Ordering::Relaxed) {
                            info!("PUBLISHING");
                            ticket.playing();
                        }
                    }
                    Some(PublisherEvent::Frame(frame)) => {
                        self.pairs.due(frame, Instant::now()).send(&mut self.sinks);
                    }
                    Some(PublisherEvent::Closed(ending)) => break (ending, false),
                    // The receiving side is gone without a word: as if its session closed.
                    None => break (StopReason::SessionDisconnect.into(), false),
                },
                // An audio frame whose partner did not come in time goes alone.
                () = sleep_until(hold) => self.pairs.flush_to(&mut self.sinks),
                // Before the door: a terminate sent ahead of its viewers' stops ends them
                // all with the publisher's ending, not each with its own.
                command = commands.recv() => match command {
                    Some(Command::Terminate { reason }) => break (reason.into(), true),
                    Some(Command::RequestKeyframe) => publisher.request_keyframe(),
                    // Every handle is gone (cannot happen while registered).
                    None => break (StopReason::PublisherStop.into(), true),
                },
                Some(door) = entrance.commands.recv() => match door {
                    DoorCommand::Join { viewer, ticket } => {
                        let hls = viewer.protocol() == ViewerProtocol::Hls;
                        if hls {
                            self.hls_readers.insert(viewer.id());
                        }
                        self.audience.join(viewer, ticket);
                        // The hub's GOP cache gives a picture at once; a fresh keyframe
                        // makes it a clean one soon after.
                        if !hls {
                            publisher.request_keyframe();
                        }
                    }
                    DoorCommand::Leave { viewer, reason } => {
                        self.hls_readers.remove(&viewer);
                        self.audience.drop_viewer(viewer, reason.into());
                    }
                    DoorCommand::HandOver { viewer, to } => {
                        self.audience.hand_over_to(viewer, to);
                    }
                },
                Some((viewer, event)) = entrance.events.recv() => match event {
                    ViewerEvent::Connected => {
                        if self.audience.connected(viewer) && !self.hls_readers.contains(&viewer) {
                            publisher.request_keyframe();
                        }
                    }
                    ViewerEvent::Closed(ending) => {
                        self.hls_readers.remove(&viewer);
                        self.audience.drop_viewer(viewer, ending);
                    }
                },
            }
        };

        info!("published stream ended: {ending}");
        commands.close();
        entrance.close_into(&mut self.audience);
        if close_publisher {
            publisher.close(ending.clone());
        }
        // Unlisted, then the publisher is told (UNPUBLISHED or FAILED).
        ticket.end(ending.clone());
        self.audience.end_all(&viewers_ending(&ending));
        self.pairs.flush_to(&mut self.sinks);
        self.sinks.end(&ending);
    }
}

/// What the viewers of a published stream are told when it ends: `Stopped by publisher
/// stop`, whatever ended the publisher, but for the server's own shutdown.
pub(super) fn viewers_ending(publisher: &Ending) -> Ending {
    match publisher {
        Ending::Stopped(StopReason::Shutdown) => StopReason::Shutdown.into(),
        _ => StopReason::PublisherStop.into(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A publisher fed from a channel, for tests of streams that have no WebRTC.

    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use crate::media::{Ending, Publisher, PublisherControl, PublisherEvent, ViewerId};

    /// What a test publisher was asked: keyframes counted, closes noted.
    #[derive(Default)]
    pub(crate) struct NotingControl {
        pub(crate) keyframes: Mutex<usize>,
        pub(crate) closed: Mutex<Vec<Ending>>,
    }

    impl PublisherControl for NotingControl {
        fn request_keyframe(&self) {
            *self.keyframes.lock().unwrap() += 1;
        }

        fn close(&self, ending: Ending) {
            self.closed.lock().unwrap().push(ending);
        }
    }

    /// A publisher whose events the test sends, and what it was asked.
    pub(crate) fn test_publisher() -> (Publisher, mpsc::Sender<PublisherEvent>, Arc<NotingControl>)
    {
        let (tx, rx) = mpsc::channel(64);
        let control = Arc::new(NotingControl::default());
        (
            Publisher::new(ViewerId::next(), rx, control.clone()),
            tx,
            control,
        )
    }
}
