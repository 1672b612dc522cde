//! Sources: turning a stream name into bytes.
//!
//! Owns: parsing the stream names WCS users write (`vod://sample.mp4`,
//! `vod-live://dir/a%20b.mp4`, `vod://s3/bucket/key.mp4`) into a [`StreamUri`]
//! (`uri`), keeping every local name inside `media_dir` ([`MediaPath`]), and reading
//! byte ranges of local files without mapping or loading them whole ([`LocalFile`]).
//! S3 objects are read with signed ranged GETs and a read-ahead buffer ([`S3Object`],
//! module `s3`).
//!
//! Must not: parse MP4 (the demuxer asks for byte ranges and gets [`bytes::Bytes`]),
//! know about streams, viewers or signalling. Reads are blocking: callers run them on
//! a blocking thread (`tokio::task::spawn_blocking`).
//!
//! [`SourceError`]'s Display strings are the infos a user sees in the WCS SDK
//! (`File not found`, `Failed to read file: ...`, `Failed to get agent storage`).

mod local;
pub mod s3;
mod uri;

pub use local::{list_media, LocalFile, MEDIA_EXTENSIONS};
pub use s3::S3Object;
pub use uri::{Location, MediaPath, PlayMode, StreamUri};

/// Why a stream name could not be turned into bytes. `Display` is the user-facing info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No such file (or it is a folder, or not a regular file).
    #[error("File not found")]
    NotFound,
    /// The file exists but reading it failed; the text is the plain io reason.
    #[error("Failed to read file: {0}")]
    Read(String),
    /// The name would reach outside `media_dir`; the text says how.
    #[error("Restricted access: {0}")]
    Restricted(String),
    /// A scheme reelcast does not serve (`rtmp://x`, `foo`): WCS's words for it.
    #[error("Failed to get agent storage")]
    UnknownScheme { name: String },
    /// A name that is malformed in some other way; the text says how.
    #[error("Bad stream name: {0}")]
    BadName(String),
}

impl SourceError {
    /// A read error from an io error, in plain words (no `(os error N)` tail).
    pub(crate) fn read(e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return SourceError::Read("unexpected end of file".to_string());
        }
        let text = e.to_string();
        let text = match text.find(" (os error") {
            Some(at) => text[..at].to_string(),
            None => text,
        };
        SourceError::Read(text)
    }
}
