//! Which streams have an HLS window: stream id → [`Window`]. The registry's sink factory
//! adds a stream's window when it makes its sinks; the sink removes it at the stream's
//! end. The HTTP side finds a stream through the registry, then its window here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::window::{Window, WindowConfig};

/// Every stream's HLS window, by stream id.
#[derive(Default)]
pub struct Directory {
    windows: Mutex<HashMap<String, Arc<Window>>>,
}

impl Directory {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Window>>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new window for stream `id`.
    pub fn add(&self, id: &str, config: WindowConfig) -> Arc<Window> {
        let window = Arc::new(Window::new(config, id.chars().take(8).collect()));
        self.map().insert(id.to_string(), window.clone());
        window
    }

    /// The window of stream `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Window>> {
        self.map().get(id).cloned()
    }

    /// Stream `id` ended.
    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    /// How many streams have a window.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No stream has a window.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}
