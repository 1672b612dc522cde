//! Which streams have an HLS window: stream id → [`Window`]. The registry's sink factory
//! adds a stream's window when it makes its sinks; the sink marks it ended at the
//! stream's end, and it stays readable a short time after ([`Window::linger`]: players
//! read the last playlist, with `#EXT-X-ENDLIST`, and stop cleanly), found by the names
//! it was served under ([`Directory::named`]), then goes. The HTTP side finds a running
//! stream through the registry, then its window here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::window::{Window, WindowConfig};

/// Names one window is found by after its end, at most (a `localStreamName`, a
/// `vod-live://` URI, a few spellings of it).
const NAMES_KEPT: usize = 4;

struct Entry {
    window: Arc<Window>,
    /// The names the HTTP side served it under.
    names: Vec<String>,
    /// Ended: removed at this time.
    gone_at: Option<Instant>,
}

/// Every stream's HLS window, by stream id.
#[derive(Default)]
pub struct Directory {
    windows: Mutex<HashMap<String, Entry>>,
}

impl Directory {
    /// The map, with the ended windows whose time is up removed.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        let mut map = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, e| e.gone_at.is_none_or(|t| t > now));
        map
    }

    /// A new window for stream `id`.
    pub fn add(&self, id: &str, config: WindowConfig) -> Arc<Window> {
        let window = Arc::new(Window::new(config, id.chars().take(8).collect()));
        let entry = Entry {
            window: window.clone(),
            names: Vec::new(),
            gone_at: None,
        };
        self.map().insert(id.to_string(), entry);
        window
    }

    /// The window of stream `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Window>> {
        self.map().get(id).map(|e| e.window.clone())
    }

    /// Stream `id` is served under `name` (after its end, [`Self::named`] finds it by
    /// that name): its window.
    pub fn served_as(&self, id: &str, name: &str) -> Option<Arc<Window>> {
        let mut map = self.map();
        let e = map.get_mut(id)?;
        if e.names.len() < NAMES_KEPT && !e.names.iter().any(|n| n == name) {
            e.names.push(name.to_string());
        }
        Some(e.window.clone())
    }

    /// The ended window last served under `name`, while it lingers.
    pub fn named(&self, name: &str) -> Option<Arc<Window>> {
        self.map()
            .values()
            .filter(|e| e.gone_at.is_some() && e.names.iter().any(|n| n == name))
            .max_by_key(|e| e.gone_at)
            .map(|e| e.window.clone())
    }

    /// Stream `id` ended: its window lingers, then goes.
    pub fn ended(&self, id: &str) {
        if let Some(e) = self.map().get_mut(id) {
            e.gone_at = Some(Instant::now() + e.window.linger());
        }
    }

    /// How many streams have a window (ended ones that linger included).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No stream has a window.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}
