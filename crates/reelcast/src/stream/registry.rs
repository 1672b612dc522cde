//! The registry: every stream the server runs, for the REST API and for joining.
//!
//! Two kinds of entries. A *play* is one viewer's playback (a WCS `playStream` or a WHEP
//! session): a personal VOD, or a viewer of a live translation. Plays are keyed by a
//! [`PlayKey`] the server makes, never by the media session id a client chose: a client
//! may reuse an id (play, stop, play again) or pick another session's, and the entry of one
//! play must never replace or remove another's. A *translation* is one shared live timeline (`vod-live://`), keyed by its
//! local stream name. Entries are added when they start and removed by their own tasks
//! when they end, so what the registry lists is what is running.
//!
//! Must not: hold anything while a stream works; it stores handles (cheap clones), never
//! media, and its lock is held only to read or change the maps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::budget::MemoryBudget;
use super::live::TranslationHandle;
use super::{MediaInfo, Stopper};

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

/// Which play an entry is: unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayKey(u64);

impl PlayKey {
    /// A key never given before.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PlayKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
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
    /// `"wcs"` or `"whep"`: which signalling started it.
    pub protocol: &'static str,
    /// Ends this playback.
    pub stopper: Stopper,
}

#[derive(Default)]
struct Maps {
    plays: HashMap<PlayKey, PlayRecord>,
    translations: HashMap<String, TranslationHandle>,
}

/// Every running stream. Shared by the server's handlers (`Arc` in the server context).
pub struct Registry {
    maps: Mutex<Maps>,
    /// Held while a translation is being opened, so two viewers asking for the same new
    /// translation at once start it once.
    pub(crate) starting: tokio::sync::Mutex<()>,
    /// What the streams' file indexes may hold together (`vod_index_memory_mb`).
    pub index_budget: Arc<MemoryBudget>,
}

impl Registry {
    /// An empty registry; file indexes share `index_budget`.
    pub fn new(index_budget: Arc<MemoryBudget>) -> Self {
        Registry {
            maps: Mutex::default(),
            starting: tokio::sync::Mutex::default(),
            index_budget,
        }
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

    /// Stops every play with this media session id; `false` when there is none.
    pub fn stop_play(&self, media_session_id: &str, reason: &'static str) -> bool {
        let stoppers: Vec<Stopper> = self
            .maps()
            .plays
            .values()
            .filter(|p| p.media_session_id == media_session_id)
            .map(|p| p.stopper.clone())
            .collect();
        // Stopped outside the lock: a stopper may call back into the registry.
        for s in &stoppers {
            s.stop(reason);
        }
        !stoppers.is_empty()
    }

    pub(crate) fn add_play(&self, play: PlayRecord) {
        self.maps().plays.insert(play.key, play);
    }

    pub(crate) fn remove_play(&self, key: PlayKey) {
        self.maps().plays.remove(&key);
    }

    /// Adds a translation unless its name is taken by a running one (then `false`).
    pub(super) fn add_translation(&self, t: TranslationHandle) -> bool {
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
    pub(super) fn remove_translation(&self, name: &str, id: &str) {
        let mut maps = self.maps();
        if maps.translations.get(name).is_some_and(|t| t.id == id) {
            maps.translations.remove(name);
        }
    }
}
