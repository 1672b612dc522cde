//! The registry: every stream and viewer the server runs, and the one way to start,
//! find and stop them, for WCS signalling, WHEP and REST alike.
//!
//! Two kinds of entries. A *play* is one viewer's playback (a WCS `playStream` or a WHEP
//! session): a personal VOD, or a viewer of a live translation. Plays are keyed by a
//! [`PlayKey`] the server makes, never by the media session id a client chose: a client
//! may reuse an id (play, stop, play again) or pick another session's, and the entry of one
//! play must never replace or remove another's. A *translation* is one shared live
//! timeline (`vod-live://`), keyed by its local stream name, started only here
//! ([`Registry::start_translation`]). Entries are added when they start and removed
//! when they end (through what their tasks are handed: [`PlayTicket`], an unlist
//! closure), so what the registry lists is what is running.
//!
//! A *published stream* is one publisher's media watched live by its name
//! ([`Registry::publish`]); a name is a published stream's or a translation's, never
//! both, and `max_publishers` bounds how many publish at once.
//!
//! A stream's sinks are made in one place, [`Registry::sinks_for`]: a new sink (HLS)
//! is registered there. A published stream's HLS muxer re-encodes its Opus, which costs:
//! it is attached only when its name is first asked for over HLS
//! ([`Registry::published_hls`]), through a slot the stream holds from its start. A
//! stream that can be recorded while it runs (a translation, a published stream) also
//! takes [`Registry::recordable`]'s sink, through which
//! [`Registry::start_recording`] attaches a recording later. The WebRTC feeds come from a [`SinkFactory`] the
//! registry is handed; it knows nothing else of WebRTC. Each play records the
//! [`ViewerProtocol`] its viewer came by.
//!
//! Must not: hold anything while a stream works; it stores handles (cheap clones), never
//! media, and its lock is held only to read or change the maps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::budget::MemoryBudget;
use super::constraints::VideoConstraints;
use super::live::{self, Parts, StartError, TranslationHandle, TranslationSpec};
use super::open::{open_personal, open_translation, AnyReader};
use super::published::{self, PublishError, PublishSpec, PublishedHandle};
use super::reader::{NO_TRANSCODERS, TRANSCODING_DISABLED};
use super::reencode_demand::ReencodeDemand;
use super::rendition::{self, RenditionHandle, RenditionKey};
use super::status::{PlayTicket, StatusTx};
use super::transcode_cache::TranscodeCache;
use super::{MediaInfo, Stopper, StreamError};
use crate::config::Settings;
use crate::hls::{Directory, HlsSink, OpusHls, OpusHlsSink, Segmenter, Window, WindowConfig};
use crate::media::{
    AttachId, Ending, Publisher, Sink, SinkFactory, SinkSlot, Sinks, StopReason, StreamId,
    ViewerProtocol,
};
use crate::metrics::VideoTranscoderBusy;
use crate::record::{names::NameFields, Begin, RecordError, Recorder, RecordingInfo};
use crate::source::{Location, StreamUri};

pub use super::status::PlayKey;

/// The shared stream a rendition is made of.
pub struct RenditionParent<'a> {
    /// The id its slot for late sinks is listed by: a translation's
    /// `localMediaSessionId`, a publisher's media session id.
    pub slot_id: &'a str,
    /// Its stream.
    pub stream: StreamId,
    /// Its media.
    pub info: &'a MediaInfo,
    /// A published stream (its viewers are told `Stopped by publisher stop` at its end).
    pub published: bool,
}

/// What kind of stream a play is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayKind {
    /// `vod://file`: this viewer's own stream.
    Personal,
    /// A viewer of the live translation named here.
    Live {
        /// The translation's `localStreamName`.
        translation: String,
    },
    /// A viewer of the published stream named here.
    Published {
        /// The published stream's name.
        stream: String,
    },
}

/// One viewer's playback.
#[derive(Clone)]
pub struct PlayRecord {
    /// Which play this is.
    pub key: PlayKey,
    /// The WCS media session id (SDK), or the WHEP resource id.
    pub media_session_id: String,
    /// The name the viewer asked for (`vod://sample.mp4`, `vod-live://x.mp4`, `test`).
    pub name: String,
    /// The canonical `vod://` or `vod-live://` name of what plays.
    pub uri: String,
    /// Personal or a translation's viewer.
    pub kind: PlayKind,
    /// What the viewer is told about the media.
    pub info: MediaInfo,
    /// When it started.
    pub created: SystemTime,
    /// How its viewer came: which signalling started it.
    pub protocol: ViewerProtocol,
    /// Ends this playback.
    pub stopper: Stopper,
}

#[derive(Default)]
struct Maps {
    plays: HashMap<PlayKey, PlayRecord>,
    translations: HashMap<String, TranslationHandle>,
    /// Published streams by name.
    publishers: HashMap<String, PublishedHandle>,
    /// Streams that can be recorded, by media session id (ended ones pruned lazily).
    recordable: HashMap<String, Recordable>,
    /// Where the HLS muxer of a published stream is attached (on its first HLS
    /// request), by the publisher's key.
    published_hls: HashMap<PlayKey, PublishedHls>,
    /// Running renditions of shared streams (ended ones pruned lazily).
    renditions: HashMap<RenditionKey, RenditionHandle>,
}

/// A published stream's HLS: the slot its muxer is attached through, and the window
/// (its id in [`Registry::hls`]) once attached.
struct PublishedHls {
    slot: SinkSlot,
    window_id: Option<String>,
    /// The muxer's place on the stream.
    attached: Option<AttachId>,
}

impl Maps {
    /// A running translation or published stream has this name.
    fn name_in_use(&self, name: &str) -> bool {
        self.translations
            .get(name)
            .is_some_and(|t| !t.door.is_ended())
            || self
                .publishers
                .get(name)
                .is_some_and(|p| !p.door.is_ended())
    }

    /// Whether one more publisher named `name` may start (of `max` at most).
    fn may_publish(&self, name: &str, max: usize) -> Result<(), PublishError> {
        if self.name_in_use(name) {
            return Err(PublishError::NameInUse);
        }
        if self
            .publishers
            .values()
            .filter(|p| !p.door.is_ended())
            .count()
            >= max
        {
            return Err(PublishError::TooMany(max));
        }
        Ok(())
    }
}

/// A running stream a recording can be attached to.
#[derive(Clone)]
struct Recordable {
    slot: SinkSlot,
    stream: RecordableStream,
    /// A published stream's handle: a recording starting asks its publisher for a
    /// keyframe (a browser sends one only when asked) and sets its `recordName`.
    publisher: Option<PublishedHandle>,
}

/// What a recording needs to know of a stream: its name fields and its media.
#[derive(Debug, Clone, Default)]
pub struct RecordableStream {
    /// The stream's name (`{streamName}`).
    pub name: String,
    /// The publisher's signalling session (`{sessionId}`); empty for a translation.
    pub session_id: String,
    /// The publisher's login (`{login}`); empty for a translation.
    pub login: String,
    /// The stream has video.
    pub has_video: bool,
    /// The stream has audio.
    pub has_audio: bool,
}

/// Every running stream and viewer. Shared by the server's handlers (`Arc` in the
/// server context).
pub struct Registry {
    maps: Mutex<Maps>,
    /// Held while a translation is being opened, so two viewers asking for the same new
    /// translation at once start it once.
    starting: tokio::sync::Mutex<()>,
    /// What the streams' file indexes may hold together (`vod_index_memory_mb`).
    pub index_budget: Arc<MemoryBudget>,
    /// What sources are opened with (`media_dir`, S3) and translations run by
    /// (`vod_stream_timeout`, `vod_live_loop`).
    settings: Settings,
    /// Makes each stream's WebRTC feed.
    rtc_feeds: Arc<dyn SinkFactory>,
    /// The HLS windows of the streams with an HLS sink, by stream id.
    pub hls: Arc<Directory>,
    /// Every recording.
    pub recorder: Arc<Recorder>,
    /// Personal VODs' transcodes kept for later plays; `None`: off.
    transcode_cache: Option<Arc<TranscodeCache>>,
}

/// What the HLS sink of a stream is made from.
pub struct HlsOf<'a> {
    /// The stream's id (a translation's `localMediaSessionId`).
    pub id: &'a str,
    /// Its media.
    pub info: &'a MediaInfo,
    /// Its video reaches sinks as the file's own H.264 beside a re-encode (B-frames):
    /// the muxer carries the file's pictures.
    pub source_video: bool,
}

/// What a stream name in a URL path escapes (as JavaScript's `encodeURIComponent`).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Registry {
    /// An empty registry; streams it starts send to viewers through the feeds
    /// `rtc_feeds` makes (`webrtc::RtcFeeds`) and share `index_budget`.
    pub fn new(
        settings: Settings,
        rtc_feeds: Arc<dyn SinkFactory>,
        index_budget: Arc<MemoryBudget>,
    ) -> Self {
        Registry {
            maps: Mutex::default(),
            starting: tokio::sync::Mutex::default(),
            index_budget,
            recorder: Arc::new(Recorder::new(&settings)),
            transcode_cache: TranscodeCache::new(&settings),
            settings,
            rtc_feeds,
            hls: Arc::default(),
        }
    }

    /// The sink through which the running stream `media_session_id` can be recorded:
    /// push it into the stream's sinks (one line per recordable kind of stream).
    pub fn recordable(&self, media_session_id: &str, stream: RecordableStream) -> Box<dyn Sink> {
        let (slot, sink) = SinkSlot::new();
        let mut maps = self.maps();
        maps.recordable.retain(|_, r| !r.slot.is_ended());
        maps.recordable.insert(
            media_session_id.to_string(),
            Recordable {
                slot,
                stream,
                publisher: None,
            },
        );
        Box::new(sink)
    }

    /// Starts recording the running stream `media_session_id`; returns the file name.
    pub async fn start_recording(
        self: &Arc<Self>,
        media_session_id: &str,
    ) -> Result<String, RecordError> {
        let (registry, id) = (Arc::clone(self), media_session_id.to_string());
        // Creating the file and its sidecar touches the disk: not on the async threads.
        tokio::task::spawn_blocking(move || registry.start_recording_blocking(&id))
            .await
            .map_err(|_| RecordError::Io("internal error".into()))?
    }

    /// [`Self::start_recording`] on the calling thread, which it blocks while the file
    /// and its sidecar are created. A published stream's publisher is asked for a
    /// keyframe (the recording begins at one) and its `recordName` set.
    pub fn start_recording_blocking(&self, media_session_id: &str) -> Result<String, RecordError> {
        let found = self
            .maps()
            .recordable
            .get(media_session_id)
            .filter(|r| !r.slot.is_ended())
            .cloned();
        let r = found.ok_or(RecordError::NoSuchStream)?;
        let fields = NameFields {
            stream_name: r.stream.name.clone(),
            media_session_id: media_session_id.to_string(),
            session_id: r.stream.session_id.clone(),
            login: r.stream.login.clone(),
            ..NameFields::default()
        };
        // A publisher makes a keyframe when asked (below): the recording begins there,
        // not at a GOP that may have begun long before it was asked for.
        let begin = if r.publisher.is_some() {
            Begin::NextKeyframe
        } else {
            Begin::GopInProgress
        };
        let media = (r.stream.has_video, r.stream.has_audio);
        let name = self.recorder.start(&r.slot, fields, media, begin)?;
        if let Some(publisher) = &r.publisher {
            publisher.set_record_name(Some(name.clone()));
            publisher.request_keyframe();
        }
        Ok(name)
    }

    /// Stops the recording of stream `media_session_id` (finalized in the background);
    /// returns the file name.
    pub fn stop_recording(&self, media_session_id: &str) -> Result<String, RecordError> {
        let known = self
            .maps()
            .recordable
            .get(media_session_id)
            .is_some_and(|r| !r.slot.is_ended());
        match self.recorder.stop(media_session_id) {
            Err(RecordError::NotRecording) if !known => Err(RecordError::NoSuchStream),
            other => other,
        }
    }

    /// Recordings of running streams.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        self.recorder.list()
    }

    /// Opens a translation's source (on a blocking thread) and reads its structure;
    /// H.264 with B-frames is re-encoded only while `reencode` wants it. Errors are what
    /// the viewer is told.
    pub async fn open_translation(
        &self,
        location: &Location,
        reencode: Arc<ReencodeDemand>,
    ) -> Result<AnyReader, StreamError> {
        let (settings, location) = (self.settings.clone(), location.clone());
        let budget = self.index_budget.clone();
        tokio::task::spawn_blocking(move || {
            open_translation(&settings, &location, &budget, reencode)
        })
        .await
        .map_err(|e| StreamError::internal("opening the file", &e))?
    }

    /// The re-encode demand of a new translation named `name`: its slot counted against
    /// `video_transcoders_max`; with transcoding disabled, what a WebRTC viewer is told
    /// (WCS's words, and where the file plays as it is: its HLS URL).
    fn reencode_demand(&self, name: &str) -> Arc<ReencodeDemand> {
        let s = &self.settings;
        let disabled = s.transcoding_disabled.then(|| {
            let encoded: String =
                percent_encoding::utf8_percent_encode(name, URI_COMPONENT).collect();
            let host = s.ip.first().copied().unwrap_or(s.ip_local);
            let host = if host.is_unspecified() {
                "SERVER".to_string()
            } else if host.is_ipv6() {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let url = match (s.hls_port, s.hls_https_port) {
                (Some(port), _) => Some(format!("http://{host}:{port}/{encoded}/{encoded}.m3u8")),
                (None, Some(port)) => {
                    Some(format!("https://{host}:{port}/{encoded}/{encoded}.m3u8"))
                }
                (None, None) => None,
            };
            match url {
                Some(url) => format!(
                    "{TRANSCODING_DISABLED}: H.264 with B-frames plays over WebRTC only \
                     re-encoded; play it over HLS: {url}"
                ),
                None => TRANSCODING_DISABLED.to_string(),
            }
        });
        Arc::new(ReencodeDemand::new(
            s.video_transcoders_max.unwrap_or(0),
            disabled,
        ))
    }

    /// Opens a personal VOD's source (on a blocking thread): as [`Self::open`], through
    /// the transcode cache; a viewer who asked for a size or bit rate (`video`) gets the
    /// reader's video encoded so when the source is not (never from the cache).
    pub async fn open_personal(
        &self,
        location: &Location,
        video: Option<VideoConstraints>,
    ) -> Result<AnyReader, StreamError> {
        let (settings, location) = (self.settings.clone(), location.clone());
        let (budget, cache) = (self.index_budget.clone(), self.transcode_cache.clone());
        tokio::task::spawn_blocking(move || {
            open_personal(&settings, &location, &budget, cache.as_ref(), video)
        })
        .await
        .map_err(|e| StreamError::internal("opening the file", &e))?
    }

    /// The rendition of the running shared stream `parent` for `constraints`, started if
    /// none runs (its encoder counted against `video_transcoders_max`; refused with WCS's
    /// words when transcoding is disabled or no transcoder is free).
    pub fn find_or_start_rendition(
        self: &Arc<Self>,
        parent: RenditionParent<'_>,
        constraints: VideoConstraints,
    ) -> Result<RenditionHandle, StreamError> {
        let key = RenditionKey {
            parent: parent.stream,
            constraints,
            hls: false,
        };
        self.find_or_start_rendition_of(parent, key)
    }

    /// The rung of an HLS ABR ladder of the running shared stream `parent` at
    /// `constraints` (H.264): a rendition as [`Self::find_or_start_rendition`]'s, counted
    /// and refused alike, whose child stream has an HLS muxer, its window listed in
    /// [`Self::hls`] under [`RenditionHandle::hls_window`].
    pub fn find_or_start_hls_rendition(
        self: &Arc<Self>,
        parent: RenditionParent<'_>,
        constraints: VideoConstraints,
    ) -> Result<RenditionHandle, StreamError> {
        let key = RenditionKey {
            parent: parent.stream,
            constraints: VideoConstraints {
                vp8: false,
                ..constraints
            },
            hls: true,
        };
        self.find_or_start_rendition_of(parent, key)
    }

    fn find_or_start_rendition_of(
        self: &Arc<Self>,
        parent: RenditionParent<'_>,
        key: RenditionKey,
    ) -> Result<RenditionHandle, StreamError> {
        let constraints = key.constraints;
        // Under the lock: two viewers asking the same at once share one encoder.
        let mut maps = self.maps();
        maps.renditions.retain(|_, r| !r.door.is_ended());
        if let Some(r) = maps.renditions.get(&key) {
            return Ok(r.clone());
        }
        if self.settings.transcoding_disabled {
            return Err(StreamError::Other(TRANSCODING_DISABLED.into()));
        }
        let (slot, publisher) = maps
            .recordable
            .get(parent.slot_id)
            .filter(|r| !r.slot.is_ended())
            .map(|r| (r.slot.clone(), r.publisher.clone()))
            .ok_or(StreamError::StreamNotFound)?;
        let busy = VideoTranscoderBusy::try_start(self.settings.video_transcoders_max.unwrap_or(0))
            .ok_or_else(|| StreamError::Other(NO_TRANSCODERS.into()))?;
        let stream = StreamId::next();
        let registry = Arc::clone(self);
        let (sinks, hls_window) = if key.hls {
            self.hls_rung_sinks(stream, parent.info)
        } else {
            (self.video_sinks_for(stream, constraints.vp8), None)
        };
        let parts = rendition::Parts {
            key,
            parent: parent.info.clone(),
            stream,
            sinks,
            hls_window,
            busy,
            viewers_ending: if parent.published {
                published::viewers_ending
            } else {
                Ending::clone
            },
            parent_keyframe: publisher
                .map(|p| Arc::new(move || p.request_keyframe()) as rendition::ParentKeyframe),
            unlist: Box::new(move || {
                let mut maps = registry.maps();
                if maps
                    .renditions
                    .get(&key)
                    .is_some_and(|r| r.stream == stream)
                {
                    maps.renditions.remove(&key);
                }
            }),
        };
        let handle = rendition::start(parts, |sink| {
            let id = slot.attach(sink)?;
            let detach = move || {
                slot.detach(id, &StopReason::NoViewers.into());
            };
            Ok(Box::new(detach) as Box<dyn FnOnce() + Send>)
        })?;
        maps.renditions.insert(key, handle.clone());
        Ok(handle)
    }

    /// The sinks of an HLS ladder's rung `stream` made of a stream whose media is
    /// `parent`: its WebRTC feed and an HLS muxer taking the parent's audio (its AAC, or
    /// its Opus re-encoded) beside the rung's H.264; and the muxer's window id, `None`
    /// when no muxer could be made.
    fn hls_rung_sinks(&self, stream: StreamId, parent: &MediaInfo) -> (Sinks, Option<String>) {
        let id = uuid::Uuid::new_v4().to_string();
        let info = MediaInfo {
            has_video: true,
            ..parent.clone()
        };
        let sinks = self.sinks_for(
            stream,
            Some(HlsOf {
                id: &id,
                info: &info,
                // The rung's own H.264, made from the parent's browser-safe pictures.
                source_video: false,
            }),
        );
        let made = self.hls.get(&id).is_some();
        (sinks, made.then_some(id))
    }

    /// The sinks of a stream `stream` without HLS (a rendition, a personal VOD): with
    /// `vp8`, its video frames are VP8 and only the WebRTC feed takes them.
    pub fn video_sinks_for(&self, stream: StreamId, vp8: bool) -> Sinks {
        if vp8 {
            Sinks::new(vec![self.rtc_feeds.vp8_sink(stream)])
        } else {
            self.sinks_for(stream, None)
        }
    }

    /// The sinks of a stream `stream`; with `hls` (a
    /// translation, when `hls.port` is set), also its HLS muxer, its window listed in
    /// [`Self::hls`] under the stream's id. A new kind of sink is added here (and in no
    /// source or stream).
    pub fn sinks_for(&self, stream: StreamId, hls: Option<HlsOf<'_>>) -> Sinks {
        let webrtc = self.rtc_feeds.sink(stream);
        let mut sinks = vec![webrtc];
        if let Some(HlsOf {
            id,
            info,
            source_video,
        }) = hls.filter(|_| self.settings.hls_enabled())
        {
            if info.has_audio && info.aac_config.is_none() {
                // Audio the file does not have as AAC (Opus, or MP3/AC-3/FLAC the reader
                // decodes into Opus): HLS carries it re-encoded to AAC, as for a
                // published stream.
                if let Some(sink) = self.opus_hls_sink(id, info) {
                    sinks.push(sink);
                }
                return Sinks::new(sinks);
            }
            let segmenter = Segmenter::new(
                micros(self.settings.hls_target_duration),
                micros(self.settings.ll_hls_part_target),
                info.has_video,
                info.aac_config.as_deref(),
            );
            if segmenter.has_media() {
                let window = self.hls.add(id, self.hls_window_config());
                let mut sink = HlsSink::new(segmenter, window, self.hls.clone(), id.to_string());
                if source_video {
                    sink.take_source_video();
                }
                sinks.push(Box::new(sink));
            }
        }
        Sinks::new(sinks)
    }

    /// Whether a translation's HLS muxer carries the file's own H.264 when its video has
    /// B-frames (HLS players reorder) rather than the re-encode WebRTC viewers get: unless
    /// `h264_b_frames_force_transcoding` (WCS's behaviour), and only with the file's AAC
    /// (the muxer of Opus audio takes the stream's `Video`).
    fn hls_takes_source_video(&self, info: &MediaInfo) -> bool {
        !self.settings.h264_b_frames_force_transcoding
            && (info.aac_config.is_some() || !info.has_audio)
    }

    /// The HLS muxer of a translation whose audio reaches its sinks as Opus, listed in
    /// [`Self::hls`] as `id`. No keyframe can be asked of a file: its segments are cut at
    /// the keyframes it has (or the transcoder makes, at least every 2 s).
    fn opus_hls_sink(&self, id: &str, info: &MediaInfo) -> Option<Box<dyn crate::media::Sink>> {
        let window = self.hls.add(id, self.hls_window_config());
        let muxer = OpusHls {
            target_us: micros(self.settings.hls_target_duration),
            part_target_us: micros(self.settings.ll_hls_part_target),
            has_video: info.has_video,
            has_audio: info.has_audio,
            keyframe: Box::new(|| {}),
            idle_close: None,
        };
        match OpusHlsSink::new(muxer, window, self.hls.clone(), id.to_string(), id) {
            Ok(sink) => Some(Box::new(sink)),
            Err(e) => {
                tracing::warn!(stream = %id, "HLS of the stream not started: {e}");
                self.hls.ended(id);
                None
            }
        }
    }

    /// The HLS window of a stream, as the settings make it.
    fn hls_window_config(&self) -> WindowConfig {
        WindowConfig {
            target: self.settings.hls_target_duration,
            part_target: self.settings.ll_hls_part_target,
            list_size: self.settings.hls_list_size,
            max_bytes: usize::try_from(self.settings.hls_max_window_mb << 20).unwrap_or(usize::MAX),
        }
    }

    /// The HLS window of the running published stream `handle` and its id in
    /// [`Self::hls`]: its muxer is attached on the first call (its publisher asked for a
    /// keyframe), and again after a window that ended while the stream runs (its muxer
    /// could not keep up) has gone. `None`: HLS is off, the stream has no media HLS
    /// carries, or it has ended.
    pub fn published_hls(&self, handle: &PublishedHandle) -> Option<(String, Arc<Window>)> {
        if !self.settings.hls_enabled() || !(handle.info.has_video || handle.info.has_audio) {
            return None;
        }
        // Under the lock: two first requests at once attach one muxer.
        let mut maps = self.maps();
        let entry = maps.published_hls.get_mut(&handle.key)?;
        if let Some(id) = &entry.window_id {
            if let Some(window) = self.hls.get(id).filter(|w| !w.is_ended()) {
                return Some((id.clone(), window));
            }
        }
        // A muxer that closed (no request for `hls_muxer_idle_timeout`, or it could not
        // keep up) leaves the stream before a new one comes.
        if let Some(old) = entry.attached.take() {
            entry
                .slot
                .detach(old, &Ending::Stopped(StopReason::NoViewers));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let window = self.hls.add(&id, self.hls_window_config());
        let publisher = handle.clone();
        let muxer = OpusHls {
            target_us: micros(self.settings.hls_target_duration),
            part_target_us: micros(self.settings.ll_hls_part_target),
            has_video: handle.info.has_video,
            has_audio: handle.info.has_audio,
            keyframe: Box::new(move || publisher.request_keyframe()),
            idle_close: Some(self.settings.hls_muxer_idle_timeout),
        };
        let sink = OpusHlsSink::new(
            muxer,
            window.clone(),
            self.hls.clone(),
            id.clone(),
            &handle.name,
        )
        .ok()?;
        match entry.slot.attach(Box::new(sink)) {
            Ok(attached) => entry.attached = Some(attached),
            // Ended meanwhile: the sink, dropped, ends its thread and the window.
            Err(_) => return None,
        }
        entry.window_id = Some(id.clone());
        Some((id, window))
    }

    /// Opens the file and starts its translation, listed under `spec.name`: the one way
    /// a translation starts (REST `/vod/startup`, or a viewer of `vod-live://`).
    pub async fn start_translation(
        self: &Arc<Self>,
        spec: TranslationSpec,
    ) -> Result<TranslationHandle, StartError> {
        if spec.uri.mode != crate::source::PlayMode::Live {
            return Err(StartError::NotLive(spec.uri.uri_string()));
        }
        if self.maps().name_in_use(&spec.name) {
            return Err(StartError::NameInUse);
        }
        let reencode = self.reencode_demand(&spec.name);
        let mut reader = self
            .open_translation(&spec.uri.location, reencode.clone())
            .await?;
        let on_demand = reader.reencodes_on_demand();
        if on_demand && spec.reencode_at_start {
            // Before the first read: the reader re-encodes from the first picture. A
            // refusal (no free transcoder) waits for the first viewer, who is told it.
            let _ = reencode.want();
        }
        let mut source_video = false;
        if self.settings.hls_enabled() {
            reader.emit_aac();
            source_video = self.hls_takes_source_video(reader.info()) && reader.emit_source_video();
        }
        let stream = StreamId::next();
        let id = uuid::Uuid::new_v4().to_string();
        let hls = HlsOf {
            id: &id,
            info: reader.info(),
            source_video,
        };
        let mut sinks = self.sinks_for(stream, Some(hls));
        let info = reader.info();
        sinks.push(self.recordable(
            &id,
            RecordableStream {
                name: spec.name.clone(),
                has_video: info.has_video,
                has_audio: info.has_audio,
                ..RecordableStream::default()
            },
        ));
        let (registry, name, id_at_end) = (Arc::clone(self), spec.name.clone(), id.clone());
        let parts = Parts {
            id,
            spec,
            reader,
            sinks,
            reencode: on_demand.then_some(reencode),
            stream,
            idle_timeout: self.settings.vod_stream_timeout,
            unlist: Box::new(move || registry.remove_translation(&name, &id_at_end)),
        };
        live::start(parts, |handle| self.add_translation(handle.clone()))
    }

    /// The running translation named `name` or playing `uri`, or a new one of `uri`
    /// named `name` (looping by `vod_live_loop`), for a WebRTC viewer.
    pub async fn find_or_start_translation(
        self: &Arc<Self>,
        name: &str,
        uri: StreamUri,
    ) -> Result<TranslationHandle, StreamError> {
        self.find_or_start(name, uri, true).await
    }

    /// [`Self::find_or_start_translation`] for an HLS reader: a new translation of a
    /// B-frame file re-encodes nothing until a WebRTC viewer comes.
    pub async fn find_or_start_translation_for_hls(
        self: &Arc<Self>,
        name: &str,
        uri: StreamUri,
    ) -> Result<TranslationHandle, StreamError> {
        self.find_or_start(name, uri, false).await
    }

    async fn find_or_start(
        self: &Arc<Self>,
        name: &str,
        uri: StreamUri,
        reencode_at_start: bool,
    ) -> Result<TranslationHandle, StreamError> {
        let canonical = uri.uri_string();
        let running = || {
            self.translation(name)
                .filter(|t| !t.door.is_ended())
                .or_else(|| self.translation_of(&canonical))
        };
        if let Some(t) = running() {
            return Ok(t);
        }
        // One start at a time, so two viewers arriving together share one translation.
        let _starting = self.starting.lock().await;
        if let Some(t) = running() {
            return Ok(t);
        }
        let spec = TranslationSpec {
            name: name.to_string(),
            uri,
            looped: self.settings.vod_live_loop,
            reencode_at_start,
        };
        self.start_translation(spec).await.map_err(|e| match e {
            StartError::Stream(e) => e,
            other => StreamError::Other(other.to_string()),
        })
    }

    /// Lists a play until its ticket ends (or is dropped); its statuses go to `to`.
    pub fn add_play(self: &Arc<Self>, play: PlayRecord, to: Option<StatusTx>) -> PlayTicket {
        let key = play.key;
        self.maps().plays.insert(key, play);
        let registry = Arc::clone(self);
        PlayTicket::new(key, to, Box::new(move || registry.remove_play(key)))
    }

    /// Stops the play or the publisher `key`; `false` when it is not running.
    pub fn stop(&self, key: PlayKey, reason: StopReason) -> bool {
        let (stopper, publisher) = {
            let maps = self.maps();
            let stopper = maps.plays.get(&key).map(|p| p.stopper.clone());
            let publisher = maps.publishers.values().find(|p| p.key == key).cloned();
            (stopper, publisher)
        };
        if let Some(p) = &publisher {
            p.terminate(reason);
        }
        // Stopped outside the lock: a stopper may call back into the registry.
        stopper.map(|s| s.stop(reason)).is_some() || publisher.is_some()
    }

    /// Whether `name` may be published now: a good name, not in use, under
    /// `max_publishers`. Asked before an offer is answered, so a refused publisher
    /// costs nothing; [`Self::publish`] asks again when it lists the stream.
    pub fn may_publish(&self, name: &str) -> Result<(), PublishError> {
        published::check_name(name)?;
        self.maps().may_publish(name, self.settings.max_publishers)
    }

    /// Starts the published stream of `publisher` (accepted at `epoch`), listed under
    /// `spec.name` until it ends; its publisher's statuses (PUBLISHING, then its ending)
    /// go to `to`. Refused for a bad name, a name in use (by a published stream or a
    /// translation) and past `max_publishers`: the publisher is closed then.
    pub fn publish(
        self: &Arc<Self>,
        spec: PublishSpec,
        publisher: Publisher,
        epoch: Instant,
        to: Option<StatusTx>,
    ) -> Result<PublishedHandle, PublishError> {
        if let Err(e) = published::check_name(&spec.name) {
            publisher.close(StopReason::ByUser.into());
            return Err(e);
        }
        let stream = StreamId::next();
        let key = PlayKey::next();
        let (registry, name) = (Arc::clone(self), spec.name.clone());
        let ticket = PlayTicket::new(
            key,
            to,
            Box::new(move || registry.remove_publisher(&name, key)),
        );
        let mut sinks = self.sinks_for(stream, None);
        let hls_slot = self.settings.hls_enabled().then(|| {
            let (slot, sink) = SinkSlot::new();
            sinks.push(Box::new(sink));
            slot
        });
        sinks.push(self.recordable(
            &spec.media_session_id,
            RecordableStream {
                name: spec.name.clone(),
                session_id: spec.session_id.clone(),
                login: spec.login.clone(),
                has_video: spec.info.has_video,
                has_audio: spec.info.has_audio,
            },
        ));
        let parts = published::Parts {
            key,
            spec,
            publisher,
            epoch,
            sinks,
            stream,
            ticket,
        };
        let max = self.settings.max_publishers;
        published::start(parts, |handle| {
            let mut maps = self.maps();
            maps.may_publish(&handle.name, max)?;
            maps.publishers.insert(handle.name.clone(), handle.clone());
            if let Some(slot) = hls_slot {
                let hls = PublishedHls {
                    slot,
                    window_id: None,
                    attached: None,
                };
                maps.published_hls.insert(handle.key, hls);
            }
            if let Some(r) = maps.recordable.get_mut(&handle.media_session_id) {
                r.publisher = Some(handle.clone());
            }
            Ok(())
        })
    }

    /// The running published stream named `name`.
    pub fn published(&self, name: &str) -> Option<PublishedHandle> {
        self.maps()
            .publishers
            .get(name)
            .filter(|p| !p.door.is_ended())
            .cloned()
    }

    /// Every running published stream, oldest first.
    pub fn publishers(&self) -> Vec<PublishedHandle> {
        let mut list: Vec<_> = self
            .maps()
            .publishers
            .values()
            .filter(|p| !p.door.is_ended())
            .cloned()
            .collect();
        list.sort_by_key(|p| p.created);
        list
    }

    /// Removes the published stream `key` (a newer one of the same name stays).
    fn remove_publisher(&self, name: &str, key: PlayKey) {
        let mut maps = self.maps();
        if maps.publishers.get(name).is_some_and(|p| p.key == key) {
            maps.publishers.remove(name);
        }
        maps.published_hls.remove(&key);
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        // A panic while holding this lock leaves plain maps behind: still usable.
        self.maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A play moved to another rendition of its stream (for its link): what it plays now,
    /// as listed (REST's size and codec).
    pub fn play_moved(&self, key: PlayKey, info: MediaInfo) {
        if let Some(play) = self.maps().plays.get_mut(&key) {
            play.info = info;
        }
    }

    /// Every play running now, oldest first.
    pub fn plays(&self) -> Vec<PlayRecord> {
        let mut plays: Vec<_> = self.maps().plays.values().cloned().collect();
        plays.sort_by_key(|p| p.created);
        plays
    }

    /// The oldest running play with this media session id.
    pub fn play(&self, media_session_id: &str) -> Option<PlayRecord> {
        self.plays()
            .into_iter()
            .find(|p| p.media_session_id == media_session_id)
    }

    /// Every live translation, oldest first.
    pub fn translations(&self) -> Vec<TranslationHandle> {
        let mut list: Vec<_> = self.maps().translations.values().cloned().collect();
        list.sort_by_key(|t| t.created);
        list
    }

    /// The translation with this local stream name.
    pub fn translation(&self, name: &str) -> Option<TranslationHandle> {
        self.maps().translations.get(name).cloned()
    }

    /// A running translation of `uri` (canonical `vod-live://` name), whatever its name.
    pub fn translation_of(&self, uri: &str) -> Option<TranslationHandle> {
        let maps = self.maps();
        let mut found: Vec<_> = maps
            .translations
            .values()
            .filter(|t| t.uri == uri && !t.door.is_ended())
            .collect();
        found.sort_by_key(|t| t.created);
        found.first().map(|t| (*t).clone())
    }

    /// Stops every play with this media session id (started by `protocol`, when
    /// given); `false` when there is none.
    pub fn stop_play(
        &self,
        media_session_id: &str,
        protocol: Option<ViewerProtocol>,
        reason: StopReason,
    ) -> bool {
        let stoppers: Vec<Stopper> = self
            .maps()
            .plays
            .values()
            .filter(|p| p.media_session_id == media_session_id)
            .filter(|p| protocol.is_none_or(|want| p.protocol == want))
            .map(|p| p.stopper.clone())
            .collect();
        // Stopped outside the lock: a stopper may call back into the registry.
        for s in &stoppers {
            s.stop(reason);
        }
        !stoppers.is_empty()
    }

    fn remove_play(&self, key: PlayKey) {
        self.maps().plays.remove(&key);
    }

    /// Adds a translation unless its name is taken by a running translation or published
    /// stream (then `false`).
    fn add_translation(&self, t: TranslationHandle) -> bool {
        let mut maps = self.maps();
        if maps.name_in_use(&t.name) {
            return false;
        }
        maps.translations.insert(t.name.clone(), t);
        true
    }

    /// Removes the translation `id` (a newer one of the same name stays).
    fn remove_translation(&self, name: &str, id: &str) {
        let mut maps = self.maps();
        if maps.translations.get(name).is_some_and(|t| t.id == id) {
            maps.translations.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// Streams made here have no sinks (these tests start none).
    struct NoFeeds;

    impl SinkFactory for NoFeeds {
        fn sink(&self, _stream: StreamId) -> Box<dyn crate::media::Sink> {
            Box::new(Sinks::default())
        }
    }

    fn registry() -> Arc<Registry> {
        Arc::new(Registry::new(
            Settings::default(),
            Arc::new(NoFeeds),
            MemoryBudget::new(1 << 20),
        ))
    }

    /// A play whose stopper notes the reasons it was stopped with.
    fn play(
        media_session_id: &str,
        protocol: ViewerProtocol,
        stops: &Arc<StdMutex<Vec<(String, StopReason)>>>,
    ) -> PlayRecord {
        let (stops, label) = (stops.clone(), format!("{protocol}:{media_session_id}"));
        PlayRecord {
            key: PlayKey::next(),
            media_session_id: media_session_id.into(),
            name: "vod://sample.mp4".into(),
            uri: "vod://sample.mp4".into(),
            kind: PlayKind::Personal,
            info: MediaInfo::default(),
            created: SystemTime::now(),
            protocol,
            stopper: Stopper::new(move |reason| {
                stops.lock().unwrap().push((label.clone(), reason));
            }),
        }
    }

    /// Plays of every signalling live in the one registry: a WHEP `DELETE` stops only the
    /// WHEP play with that id (a WCS client may have picked the same id), REST stops
    /// every play with it, a session stops its own by key, and an ended play is gone.
    #[tokio::test]
    async fn plays_of_every_signalling_are_found_and_stopped_in_one_place() {
        let registry = registry();
        let stops = Arc::new(StdMutex::new(vec![]));
        let wcs = registry.add_play(play("same-id", ViewerProtocol::Wcs, &stops), None);
        let whep = registry.add_play(play("same-id", ViewerProtocol::Whep, &stops), None);
        assert_eq!(registry.plays().len(), 2);

        assert!(registry.stop_play("same-id", Some(ViewerProtocol::Whep), StopReason::ByUser));
        assert_eq!(
            *stops.lock().unwrap(),
            vec![("whep:same-id".to_string(), StopReason::ByUser)]
        );
        stops.lock().unwrap().clear();

        assert!(registry.stop(wcs.key(), StopReason::SessionDisconnect));
        assert_eq!(
            *stops.lock().unwrap(),
            vec![("wcs:same-id".to_string(), StopReason::SessionDisconnect)]
        );
        stops.lock().unwrap().clear();

        assert!(registry.stop_play("same-id", None, StopReason::RestTerminate));
        assert_eq!(stops.lock().unwrap().len(), 2, "REST stops both");

        whep.end(StopReason::ByUser.into());
        assert_eq!(
            registry.plays().len(),
            1,
            "an ended play leaves the registry"
        );
        assert!(!registry.stop_play("same-id", Some(ViewerProtocol::Whep), StopReason::ByUser));
        drop(wcs);
        assert!(
            registry.plays().is_empty(),
            "so does a play whose task is gone"
        );
        assert!(!registry.stop_play("same-id", None, StopReason::ByUser));
    }

    mod published_streams {
        use std::time::{Duration, Instant};

        use tokio::sync::mpsc;

        use super::*;
        use crate::media::viewer::testing::NotingCarrier;
        use crate::media::{FailReason, Frame, PublisherEvent, Sink, ViewerEvent};
        use crate::stream::published::testing::test_publisher;
        use crate::stream::published::{PublishProtocol, PublishSpec};
        use crate::stream::status::{PlayStatus, StreamStatus};
        use crate::stream::testing::sample_reader;

        /// What the streams' sinks saw, in order, across all streams.
        #[derive(Debug, Clone, PartialEq)]
        enum Seen {
            Start(Instant),
            Frame(i64),
            End(Ending),
        }

        #[derive(Default)]
        struct NotingFeeds(Arc<StdMutex<Vec<Seen>>>);

        struct NotingSink(Arc<StdMutex<Vec<Seen>>>);

        impl Sink for NotingSink {
            fn start(&mut self, epoch: Instant) {
                self.0.lock().unwrap().push(Seen::Start(epoch));
            }
            fn frames(&mut self, first: Frame, second: Option<Frame>) {
                for f in std::iter::once(first).chain(second) {
                    self.0.lock().unwrap().push(Seen::Frame(f.dts_us));
                }
            }
            fn end(&mut self, ending: &Ending) {
                self.0.lock().unwrap().push(Seen::End(ending.clone()));
            }
        }

        impl SinkFactory for NotingFeeds {
            fn sink(&self, _stream: StreamId) -> Box<dyn crate::media::Sink> {
                Box::new(NotingSink(self.0.clone()))
            }
        }

        fn registry_with(settings: Settings) -> (Arc<Registry>, Arc<StdMutex<Vec<Seen>>>) {
            let feeds = NotingFeeds::default();
            let seen = feeds.0.clone();
            let registry = Registry::new(settings, Arc::new(feeds), MemoryBudget::new(1 << 20));
            (Arc::new(registry), seen)
        }

        fn spec(name: &str) -> PublishSpec {
            PublishSpec {
                name: name.into(),
                media_session_id: format!("pub-{name}"),
                record: true,
                info: MediaInfo {
                    has_video: true,
                    has_audio: true,
                    ..MediaInfo::default()
                },
                protocol: PublishProtocol::Wcs,
                session_id: String::new(),
                login: String::new(),
            }
        }

        /// The next status (at most 10 s).
        async fn next(rx: &mut mpsc::UnboundedReceiver<PlayStatus>) -> PlayStatus {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a status within 10 s")
                .expect("the channel is open")
        }

        /// Waits (at most 10 s) until `done` holds.
        async fn until(what: &str, done: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(Instant::now() < deadline, "{what}: not within 10 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        /// A published stream: its sinks start on the publisher's epoch and get each
        /// frame as it arrives, in order; the publisher hears PUBLISHING when it
        /// connects; a viewer joins by the stream's handle, hears PLAYING when its
        /// carrier connects it and a keyframe is asked of the publisher; when the
        /// publisher goes (its session closed), the publisher hears its own ending, the
        /// viewer STOPPED `Stopped by publisher stop`, the sinks the end, and the name
        /// is free again.
        #[tokio::test]
        async fn a_published_stream_feeds_its_sinks_as_frames_arrive_and_stops_its_viewers_when_the_publisher_goes(
        ) {
            let (registry, seen) = registry_with(Settings::default());
            let (publisher, events, control) = test_publisher();
            let (status_tx, mut statuses) = mpsc::unbounded_channel();
            let epoch = Instant::now();
            let stream = registry
                .publish(spec("cam"), publisher, epoch, Some(status_tx.clone()))
                .expect("published");
            assert_eq!(registry.published("cam").map(|p| p.key), Some(stream.key));
            assert_eq!(seen.lock().unwrap().first(), Some(&Seen::Start(epoch)));
            assert!(!stream.is_publishing());

            events.send(PublisherEvent::Connected).await.unwrap();
            let s = next(&mut statuses).await;
            assert_eq!((s.key, s.status), (stream.key, StreamStatus::Playing));
            assert!(stream.is_publishing());

            // Frames of the sample as a publisher would send them: handed on at once,
            // in order (no pacing: the whole second arrives at once).
            let mut reader = sample_reader();
            let mut sent = vec![];
            while sent.len() < 50 {
                let frame = reader
                    .read_frame()
                    .unwrap()
                    .expect("the sample has 50 frames");
                sent.push(frame.dts_us);
                events.send(PublisherEvent::Frame(frame)).await.unwrap();
            }
            until("50 frames reach the sink", || {
                seen.lock().unwrap().len() == 51
            })
            .await;
            let got: Vec<i64> = seen.lock().unwrap()[1..]
                .iter()
                .map(|s| match s {
                    Seen::Frame(dts) => *dts,
                    other => panic!("{other:?} among the frames"),
                })
                .collect();
            assert_eq!(got, sent);

            let carrier = Arc::new(NotingCarrier::default());
            let viewer = carrier.viewer(ViewerProtocol::Whep);
            let viewer_id = viewer.id();
            let viewer_key = PlayKey::next();
            let ticket = PlayTicket::new(viewer_key, Some(status_tx.clone()), Box::new(|| {}));
            assert!(stream.door.join(viewer, ticket));
            until("the viewer is counted", || stream.door.viewer_count() == 1).await;
            let keyframes = *control.keyframes.lock().unwrap();
            assert!(keyframes >= 1, "a joining viewer asks for a keyframe");
            stream
                .door
                .viewer_events()
                .send((viewer_id, ViewerEvent::Connected))
                .unwrap();
            let s = next(&mut statuses).await;
            assert_eq!((s.key, s.status), (viewer_key, StreamStatus::Playing));
            until("a keyframe for the connected viewer", || {
                *control.keyframes.lock().unwrap() > keyframes
            })
            .await;

            let gone: Ending = StopReason::SessionDisconnect.into();
            events
                .send(PublisherEvent::Closed(gone.clone()))
                .await
                .unwrap();
            let publisher_end = next(&mut statuses).await;
            assert_eq!(
                (publisher_end.key, publisher_end.status),
                (stream.key, StreamStatus::Ended(gone.clone()))
            );
            let viewer_end = next(&mut statuses).await;
            let stopped: Ending = StopReason::PublisherStop.into();
            assert_eq!(
                (viewer_end.key, viewer_end.status),
                (viewer_key, StreamStatus::Ended(stopped.clone()))
            );
            assert_eq!(stopped.to_string(), "Stopped by publisher stop");
            assert_eq!(carrier.released(), vec![(viewer_id, stopped)]);
            until("the sinks hear the end", || {
                seen.lock().unwrap().last() == Some(&Seen::End(gone.clone()))
            })
            .await;
            assert!(registry.published("cam").is_none(), "unlisted at its end");
            assert!(
                registry.may_publish("cam").is_ok(),
                "the name is free again"
            );
            assert!(
                control.closed.lock().unwrap().is_empty(),
                "a publisher that went itself is not closed again"
            );
        }

        /// A publisher gone silent (`Failed by RTP activity` from the receiving side)
        /// fails with that info; its viewers get STOPPED `Stopped by publisher stop`.
        #[tokio::test]
        async fn a_silent_publisher_fails_with_rtp_activity_and_its_viewers_stop() {
            let (registry, _) = registry_with(Settings::default());
            let (publisher, events, _control) = test_publisher();
            let (status_tx, mut statuses) = mpsc::unbounded_channel();
            let stream = registry
                .publish(
                    spec("quiet"),
                    publisher,
                    Instant::now(),
                    Some(status_tx.clone()),
                )
                .expect("published");
            let carrier = Arc::new(NotingCarrier::default());
            let viewer = carrier.viewer(ViewerProtocol::Wcs);
            let viewer_key = PlayKey::next();
            assert!(stream.door.join(
                viewer,
                PlayTicket::new(viewer_key, Some(status_tx), Box::new(|| {}))
            ));
            until("the viewer is counted", || stream.door.viewer_count() == 1).await;

            let silent: Ending = FailReason::RtpActivity.into();
            events
                .send(PublisherEvent::Closed(silent.clone()))
                .await
                .unwrap();
            let s = next(&mut statuses).await;
            assert_eq!(
                (s.key, s.status),
                (stream.key, StreamStatus::Ended(silent.clone()))
            );
            assert_eq!(silent.to_string(), "Failed by RTP activity");
            let s = next(&mut statuses).await;
            assert_eq!(
                (s.key, s.status),
                (
                    viewer_key,
                    StreamStatus::Ended(StopReason::PublisherStop.into())
                )
            );
        }

        /// One name, one stream: a second publisher of a published name, a translation
        /// of it, and a publisher past `max_publishers` are refused with the reason (the
        /// refused publisher is closed); bad names are refused before anything is
        /// answered. Stopping the publisher by its key (REST terminate, `unPublishStream`)
        /// closes it with that reason and stops its viewers with `Stopped by publisher
        /// stop`.
        #[tokio::test]
        async fn a_name_is_published_once_publishers_are_capped_and_a_stop_reaches_the_viewers() {
            let settings = Settings {
                max_publishers: 2,
                ..Settings::default()
            };
            let (registry, _) = registry_with(settings);
            let (first, _first_events, first_control) = test_publisher();
            let (status_tx, mut statuses) = mpsc::unbounded_channel();
            let stream = registry
                .publish(spec("live"), first, Instant::now(), Some(status_tx.clone()))
                .expect("published");

            assert_eq!(registry.may_publish("live"), Err(PublishError::NameInUse));
            let (second, _e2, second_control) = test_publisher();
            let refused = registry.publish(spec("live"), second, Instant::now(), None);
            assert_eq!(refused.err(), Some(PublishError::NameInUse));
            assert_eq!(
                PublishError::NameInUse.to_string(),
                "Stream name is already in use"
            );
            assert_eq!(
                second_control.closed.lock().unwrap().len(),
                1,
                "the refused one is closed"
            );
            let translation = TranslationSpec {
                name: "live".into(),
                uri: StreamUri::parse("vod-live://sample.mp4").unwrap(),
                looped: false,
                reencode_at_start: false,
            };
            assert!(matches!(
                registry.start_translation(translation).await,
                Err(StartError::NameInUse)
            ));

            let (other, _e3, _c3) = test_publisher();
            let _other = registry
                .publish(spec("other"), other, Instant::now(), None)
                .expect("two may publish");
            assert_eq!(registry.may_publish("third"), Err(PublishError::TooMany(2)));
            let (third, _e4, _c4) = test_publisher();
            assert_eq!(
                registry
                    .publish(spec("third"), third, Instant::now(), None)
                    .err(),
                Some(PublishError::TooMany(2))
            );

            for bad in ["", "a/b", "a\\b", "tab\there", " padded", &"x".repeat(256)] {
                assert!(
                    matches!(registry.may_publish(bad), Err(PublishError::BadName(_))),
                    "{bad:?} was allowed"
                );
            }
            assert!(registry
                .may_publish(&"é".repeat(255))
                .is_err_and(|e| e == PublishError::TooMany(2)));

            let carrier = Arc::new(NotingCarrier::default());
            let viewer = carrier.viewer(ViewerProtocol::Whep);
            let viewer_key = PlayKey::next();
            assert!(stream.door.join(
                viewer,
                PlayTicket::new(viewer_key, Some(status_tx), Box::new(|| {}))
            ));
            until("the viewer is counted", || stream.door.viewer_count() == 1).await;
            assert!(registry.stop(stream.key, StopReason::RestTerminate));
            let s = next(&mut statuses).await;
            assert_eq!(
                (s.key, s.status),
                (
                    stream.key,
                    StreamStatus::Ended(StopReason::RestTerminate.into())
                )
            );
            let s = next(&mut statuses).await;
            assert_eq!(
                (s.key, s.status),
                (
                    viewer_key,
                    StreamStatus::Ended(StopReason::PublisherStop.into())
                )
            );
            assert_eq!(
                *first_control.closed.lock().unwrap(),
                vec![Ending::from(StopReason::RestTerminate)],
                "the publisher is closed with the reason"
            );
            until("unlisted", || registry.published("live").is_none()).await;
            assert_eq!(registry.publishers().len(), 1);
        }
    }
}
