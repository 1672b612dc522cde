//! Sources: turning a stream name into bytes.
//!
//! Owns: the random-access bytes every source gives the demuxer ([`ByteSource`]), parsing the stream names WCS users write (`vod://sample.mp4`,
//! `vod-live://dir/a%20b.mp4`, `vod://s3/bucket/key.mp4`) into a [`StreamUri`]
//! (`uri`), keeping every local name inside `media_dir` or `record_dir` ([`MediaPath`]), and reading
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
#[cfg(test)]
pub(crate) mod testing;
mod uri;

pub use local::{list_media, Growth, LocalFile, MEDIA_EXTENSIONS, RECORDING_SIDECAR_SUFFIX};
pub use s3::S3Object;
pub use uri::{Location, MediaPath, PlayMode, StreamUri};

use bytes::Bytes;

/// Random-access bytes: a local file or an S3 object. The demuxer asks for ranges.
pub trait ByteSource: Send + Sync + 'static {
    /// The whole length in bytes.
    fn size(&self) -> u64;
    /// Exactly `len` bytes at `offset`. May block until the bytes have arrived.
    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError>;
    /// The movie structure has been read; from now on reads follow playback, which
    /// consumes about `bytes_per_second`. A source that fetches ahead (S3) sizes its
    /// read-ahead from it; others ignore it.
    fn begin_playback(&self, _bytes_per_second: u64) {}
    /// For a file still being written (a recording in progress): its size now and
    /// whether more may come; reads may then go up to that size. `None` (the default):
    /// the source does not grow.
    fn growth(&self) -> Option<Growth> {
        None
    }
    /// What the bytes are and which version of them (see [`Identity`]); `None` when the
    /// source cannot say (then nothing derived from it may be kept, e.g. cached).
    fn identity(&self) -> Option<Identity> {
        None
    }
}

/// Which object a source reads and which version of it: what a cache of something
/// derived from the bytes is keyed (`name`) and invalidated (`version`) by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The storage and the path or key (`file:/abs/path`, `s3:endpoint/bucket/key`).
    pub name: String,
    /// Changes whenever the bytes may have: size, modification time and inode of a
    /// local file; ETag (else Last-Modified) and size of an S3 object.
    pub version: String,
}

impl<T: ByteSource + ?Sized> ByteSource for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        (**self).read_at(offset, len)
    }
    fn begin_playback(&self, bytes_per_second: u64) {
        (**self).begin_playback(bytes_per_second);
    }
    fn growth(&self) -> Option<Growth> {
        (**self).growth()
    }
    fn identity(&self) -> Option<Identity> {
        (**self).identity()
    }
}

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
    UnknownScheme {
        /// The name as given.
        name: String,
    },
    /// A name that is malformed in some other way; the text says how.
    #[error("Bad stream name: {0}")]
    BadName(String),
    /// Reading broke off after playback began (an S3 link that stayed down); the text
    /// says why.
    #[error("Got exception while streaming file: {0}")]
    Streaming(String),
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
