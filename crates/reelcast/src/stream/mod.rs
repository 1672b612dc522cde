//! Streams: one timeline of frames from a source, paced in real time, fed to the hub.
//!
//! Owns: opening a source as media (`reader`: demux, H.264 to Annex-B, AAC to Opus, once
//! per stream), real-time pacing (`clock`), and a stream's life (`vod`: personal VOD, one
//! viewer from the file's start). Must not: touch sockets or signalling; it reports what
//! happens as [`StreamStatus`] and sends frames through [`RtcHub`](crate::webrtc::RtcHub).

pub mod clock;
pub mod open;
pub mod reader;
pub mod vod;

pub use clock::PacingClock;
pub use reader::{MediaInfo, MediaReader};

/// Why a stream cannot play. Display strings are the WCS status infos a user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("File not found")]
    NotFound,
    #[error("File has wrong format: {0}")]
    WrongFormat(String),
    #[error("Failed to read file: {0}")]
    ReadFailed(String),
    #[error("Got exception while streaming file: {0}")]
    Streaming(String),
    #[error("Failed to get agent storage")]
    UnknownStorage,
    #[error("Restricted access: {0}")]
    Restricted(String),
    #[error("{0}")]
    Other(String),
}

/// The life of a stream as its viewer hears it (WCS stream statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// Media is flowing to the viewer.
    Playing,
    /// Ended normally: end of file, or stopped; the info says why.
    Stopped(String),
    /// Could not play, or broke while playing; the info says why.
    Failed(String),
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
        }
    }
}
