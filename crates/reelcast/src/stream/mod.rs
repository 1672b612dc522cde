//! Streams: one timeline of frames from one source, paced in real time, handed to the
//! stream's sinks ([`Sink`](crate::media::Sink): the WebRTC feed today).
//!
//! Owns: opening a source as media (`reader`: demux, H.264 to Annex-B, AAC to Opus, once
//! per stream; `budget`: the server-wide bound on what files' indexes hold), reading it ahead of the clock on shared blocking threads (`frame_queue`),
//! real-time pacing (`clock`, `pacer`, `audio_pairs`), and a stream's life (`personal_vod`: personal VOD, one
//! viewer from the file's start; `live`: a live translation shared by many viewers), and
//! the list of what runs and the one way to start and stop it (`registry`), and how a
//! play's statuses reach its session (`status`). Must not: touch sockets or signalling;
//! it reports what happens as [`StreamStatus`] and hands frames to sinks.

pub mod audio_pairs;
pub mod budget;
pub mod clock;
pub mod frame_queue;
pub mod live;
pub mod open;
pub mod pacer;
pub mod personal_vod;
pub mod reader;
pub mod registry;
pub mod status;

use std::sync::Arc;

pub use clock::PacingClock;
pub use reader::{MediaInfo, MediaReader};
pub use registry::Registry;
pub use status::{PlayKey, PlayStatus, PlayTicket, StatusTx, StreamStatus};

use crate::media::StopReason;

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

/// Why a stream cannot play. Display strings are the WCS status infos a user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("File not found")]
    /// No such file or object.
    NotFound,
    #[error("File has wrong format: {0}")]
    /// Not an MP4 we can play; the text says why.
    WrongFormat(String),
    #[error("Failed to read file: {0}")]
    /// Reading failed before playback; the text says why.
    ReadFailed(String),
    #[error("Got exception while streaming file: {0}")]
    /// Reading or decoding broke off while playing.
    Streaming(String),
    #[error("Failed to get agent storage")]
    /// A scheme reelcast does not serve.
    UnknownStorage,
    /// A plain name (no scheme) that no running stream has.
    #[error("Stream not found")]
    StreamNotFound,
    #[error("Restricted access: {0}")]
    /// The name reaches what it may not (outside `media_dir`, a store not allowed).
    Restricted(String),
    /// Our own failure; its details are in the log only (see [`StreamError::internal`]).
    #[error("Failed by error")]
    Internal,
    #[error("{0}")]
    /// Any other reason, in its own words.
    Other(String),
}

impl StreamError {
    /// A fixed word per kind, for the metrics' `reason` label (never the message, which
    /// may name a file): one of [`crate::metrics::FAILURE_REASONS`].
    pub fn metric_label(&self) -> &'static str {
        match self {
            StreamError::NotFound => "file_not_found",
            StreamError::WrongFormat(_) => "wrong_format",
            StreamError::ReadFailed(_) => "read_failed",
            StreamError::Streaming(_) => "streaming",
            StreamError::UnknownStorage => "unknown_storage",
            StreamError::StreamNotFound => "stream_not_found",
            StreamError::Restricted(_) => "restricted",
            StreamError::Internal => "internal",
            StreamError::Other(r) if r == crate::shutdown::REASON => "shutting_down",
            StreamError::Other(_) => "other",
        }
    }

    /// Our own failure (a task that died, a setup that broke): logged with its details,
    /// told to the viewer as WCS's `Failed by error`, without them.
    pub fn internal(doing: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!("internal error {doing}: {detail}");
        StreamError::Internal
    }
}

impl From<StreamError> for crate::media::FailReason {
    fn from(e: StreamError) -> Self {
        crate::media::FailReason::Stream(e.to_string())
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
