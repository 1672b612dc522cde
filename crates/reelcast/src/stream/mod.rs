//! Streams: one timeline of frames from one source, paced in real time, handed to the
//! stream's sinks ([`Sink`](crate::media::Sink): the WebRTC feed today).
//!
//! Owns: opening a source as media (`reader`: demux, H.264 to Annex-B, AAC to Opus, once
//! per stream; `transcode`: the thread that re-encodes video browsers cannot take;
//! `reordered`, `reencode_demand`: a translation's B-frame H.264, its own pictures for
//! HLS and a re-encode for WebRTC only while one is wanted; `budget`: the server-wide bound on what files' indexes hold; `growing`: a
//! recording still being written, followed as it grows; `transcode_cache`: personal VODs'
//! transcodes kept for the next plays of the file), reading it ahead of the clock on shared blocking threads (`frame_queue`),
//! real-time pacing (`clock`, `pacer`, `audio_pairs`), and a stream's life (`personal_vod`: personal VOD, one
//! viewer from the file's start; `live`: a live translation shared by many viewers;
//! `rendition`: a shared stream re-encoded at the size or bit rate some viewers asked for
//! on play, `constraints`), and
//! the list of what runs and the one way to start and stop it (`registry`), and how a
//! play's statuses reach its session (`status`). Must not: touch sockets or signalling,
//! or know what carries frames to viewers: it reports what happens as [`StreamStatus`],
//! hands frames to sinks (made by the [`SinkFactory`](crate::media::SinkFactory) it is
//! given) and knows its viewers only as [`Viewer`](crate::media::Viewer)s: ids, their
//! protocol, their events, a way to let them go.

mod audience;
pub mod audio_pairs;
pub mod budget;
pub mod clock;
pub mod constraints;
pub mod door;
pub mod frame_queue;
pub mod growing;
pub mod live;
pub mod open;
pub mod pacer;
pub mod personal_vod;
pub mod published;
pub mod reader;
pub mod reencode_demand;
pub mod registry;
pub mod rendition;
pub mod reordered;
pub mod status;
#[cfg(test)]
pub(crate) mod testing;
pub mod transcode;
pub mod transcode_cache;

use std::sync::Arc;

pub use clock::PacingClock;
pub use reader::{MediaInfo, MediaReader};
pub use registry::Registry;
pub use status::{PlayKey, PlayStatus, PlayTicket, StatusTx, StreamStatus};

use crate::media::StopReason;
/// Why a stream cannot play: defined with the endings that carry it
/// ([`crate::media::FailReason::Stream`]), made here from sources' and readers' errors.
pub use crate::media::StreamError;

/// Ends one viewer's playback, from wherever asks: its signalling (`stopStream`, WHEP
/// `DELETE`, a closed socket) or the REST API. Cheap to clone; stopping twice is harmless.
#[derive(Clone)]
pub struct Stopper(Arc<dyn Fn(StopReason) + Send + Sync>);

impl Stopper {
    /// A stopper that calls `stop` with the reason.
    pub fn new(stop: impl Fn(StopReason) + Send + Sync + 'static) -> Self {
        Stopper(Arc::new(stop))
    }

    /// Ends the playback; the viewer gets STOPPED with `reason`.
    pub fn stop(&self, reason: StopReason) {
        (self.0)(reason);
    }
}

impl From<crate::source::SourceError> for StreamError {
    fn from(e: crate::source::SourceError) -> Self {
        use crate::source::SourceError as S;
        match e {
            S::NotFound => StreamError::NotFound,
            S::Read(r) => StreamError::ReadFailed(r),
            S::Restricted(r) => StreamError::Restricted(r),
            S::UnknownScheme { .. } => StreamError::UnknownStorage,
            S::BadName(r) => StreamError::Other(format!("Bad stream name: {r}")),
            S::Streaming(r) => StreamError::Streaming(r),
        }
    }
}
