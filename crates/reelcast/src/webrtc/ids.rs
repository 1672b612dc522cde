//! The ids of viewers and feeds: how streams, signalling and the hub name what the hub
//! holds. Below the hub and its viewers, which both use them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one viewer (one `Rtc`) inside the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerId(pub u64);

/// Identifies one stream's output inside the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedId(pub u64);

/// Identifies one accepted ICE-TCP connection for as long as the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TcpId(pub u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ViewerId {
    /// An id never given before.
    pub fn next() -> Self {
        ViewerId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl FeedId {
    /// An id never given before.
    pub fn next() -> Self {
        FeedId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}
