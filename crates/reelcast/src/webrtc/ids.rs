//! The ids the hub names what it holds by: viewers ([`ViewerId`], the streams' own id of
//! a viewer), feeds ([`FeedId`], one per stream, named after its [`StreamId`]) and ICE-TCP
//! connections. Below the hub and its viewers, which both use them.

use crate::media::StreamId;
pub(super) use crate::media::ViewerId;

/// Identifies one stream's output inside the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedId(pub u64);

/// Identifies one accepted ICE-TCP connection for as long as the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TcpId(pub u64);

impl FeedId {
    /// An id never given before (the feed of a stream made up on the spot).
    pub fn next() -> Self {
        FeedId::from(StreamId::next())
    }
}

impl From<StreamId> for FeedId {
    /// A stream's feed: one per stream, so the stream's id names it.
    fn from(stream: StreamId) -> Self {
        FeedId(stream.0)
    }
}
