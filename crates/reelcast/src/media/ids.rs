//! The ids every layer names streams and viewers by: a [`StreamId`] per stream (its
//! sinks are made for it), a [`ViewerId`] per viewer whatever protocol it came by. Drawn
//! from one counter, so no id is ever given twice in a process.

use std::sync::atomic::{AtomicU64, Ordering};

/// One stream: what its sinks are made for (the WebRTC feed of a stream is named by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub u64);

/// One viewer of a stream (a WebRTC peer today), whichever protocol it came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerId(pub u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl StreamId {
    /// An id never given before.
    pub fn next() -> Self {
        StreamId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl ViewerId {
    /// An id never given before.
    pub fn next() -> Self {
        ViewerId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}
