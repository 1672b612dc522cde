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
//! A stream's sinks are made in one place, [`Registry::sinks_for`]: a new sink (HLS,
//! recorder) is registered there. The WebRTC feeds come from a [`SinkFactory`] the
//! registry is handed; it knows nothing else of WebRTC. Each play records the
//! [`ViewerProtocol`] its viewer came by.
//!
//! Must not: hold anything while a stream works; it stores handles (cheap clones), never
//! media, and its lock is held only to read or change the maps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::budget::MemoryBudget;
use super::live::{self, Parts, StartError, TranslationHandle, TranslationSpec};
use super::open::{open_media, AnyReader};
use super::status::{PlayTicket, StatusTx};
use super::{MediaInfo, Stopper, StreamError};
use crate::config::Settings;
use crate::hls::{Directory, HlsSink, Segmenter, WindowConfig};
use crate::media::{SinkFactory, Sinks, StopReason, StreamId, ViewerProtocol};
use crate::source::{Location, StreamUri};

pub use super::status::PlayKey;

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
}

/// What the HLS sink of a stream is made from.
pub struct HlsOf<'a> {
    /// The stream's id (a translation's `localMediaSessionId`).
    pub id: &'a str,
    /// Its media.
    pub info: &'a MediaInfo,
}

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
            settings,
            rtc_feeds,
            hls: Arc::default(),
        }
    }

    /// Opens a source (on a blocking thread) and reads its structure. Errors are what
    /// the viewer is told.
    pub async fn open(&self, location: &Location) -> Result<AnyReader, StreamError> {
        let (settings, location) = (self.settings.clone(), location.clone());
        let budget = self.index_budget.clone();
        tokio::task::spawn_blocking(move || open_media(&settings, &location, &budget))
            .await
            .map_err(|e| StreamError::internal("opening the file", &e))?
    }

    /// The sinks of a stream `stream`; with `hls` (a
    /// translation, when `hls.port` is set), also its HLS muxer, its window listed in
    /// [`Self::hls`] under the stream's id. A new kind of sink is added here (and in no
    /// source or stream).
    pub fn sinks_for(&self, stream: StreamId, hls: Option<HlsOf<'_>>) -> Sinks {
        let webrtc = self.rtc_feeds.sink(stream);
        let mut sinks = vec![webrtc];
        if let Some(HlsOf { id, info }) = hls.filter(|_| self.settings.hls_enabled()) {
            let segmenter = Segmenter::new(
                micros(self.settings.hls_target_duration),
                micros(self.settings.ll_hls_part_target),
                info.has_video,
                info.aac_config.as_deref(),
            );
            if segmenter.has_media() {
                let window = self.hls.add(
                    id,
                    WindowConfig {
                        target: self.settings.hls_target_duration,
                        part_target: self.settings.ll_hls_part_target,
                        list_size: self.settings.hls_list_size,
                        max_bytes: usize::try_from(self.settings.hls_max_window_mb << 20)
                            .unwrap_or(usize::MAX),
                    },
                );
                let sink = HlsSink::new(segmenter, window, self.hls.clone(), id.to_string());
                sinks.push(Box::new(sink));
            }
        }
        Sinks::new(sinks)
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
        if self.translation(&spec.name).is_some_and(|t| !t.is_ended()) {
            return Err(StartError::NameInUse);
        }
        let mut reader = self.open(&spec.uri.location).await?;
        if self.settings.hls_enabled() {
            reader.emit_aac();
        }
        let stream = StreamId::next();
        let id = uuid::Uuid::new_v4().to_string();
        let hls = HlsOf {
            id: &id,
            info: reader.info(),
        };
        let sinks = self.sinks_for(stream, Some(hls));
        let (registry, name, id_at_end) = (Arc::clone(self), spec.name.clone(), id.clone());
        let parts = Parts {
            id,
            spec,
            reader,
            sinks,
            stream,
            idle_timeout: self.settings.vod_stream_timeout,
            unlist: Box::new(move || registry.remove_translation(&name, &id_at_end)),
        };
        live::start(parts, |handle| self.add_translation(handle.clone()))
    }

    /// The running translation named `name` or playing `uri`, or a new one of `uri`
    /// named `name` (looping by `vod_live_loop`).
    pub async fn find_or_start_translation(
        self: &Arc<Self>,
        name: &str,
        uri: StreamUri,
    ) -> Result<TranslationHandle, StreamError> {
        let canonical = uri.uri_string();
        let running = || {
            self.translation(name)
                .filter(|t| !t.is_ended())
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

    /// Stops the play `key`; `false` when it is not running.
    pub fn stop(&self, key: PlayKey, reason: StopReason) -> bool {
        let stopper = self.maps().plays.get(&key).map(|p| p.stopper.clone());
        // Stopped outside the lock: a stopper may call back into the registry.
        stopper.map(|s| s.stop(reason)).is_some()
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        // A panic while holding this lock leaves plain maps behind: still usable.
        self.maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every play, oldest first.
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
            .filter(|t| t.uri == uri && !t.is_ended())
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

    /// Adds a translation unless its name is taken by a running one (then `false`).
    fn add_translation(&self, t: TranslationHandle) -> bool {
        let mut maps = self.maps();
        if maps
            .translations
            .get(&t.name)
            .is_some_and(|e| !e.is_ended())
        {
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
}
