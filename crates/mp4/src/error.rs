//! The one error type of this crate. Messages are the plain words a user reads.

use std::fmt;

/// A box type ("moov", "stts", …) printed as text for error messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

/// Why a file cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// The first bytes are not an MP4/QuickTime box structure.
    #[error("not an MP4 file")]
    NotMp4,
    /// The top-level scan found no `moov` box.
    #[error("no moov box: not a playable MP4")]
    NoMoov,
    /// A box the demuxer needs ends past the end of the file.
    #[error("truncated file: {0}")]
    Truncated(String),
    /// A box header declares a size smaller than the header itself.
    #[error("box size {size} is smaller than its header at offset {offset}")]
    BoxTooSmall {
        /// The declared size.
        size: u64,
        /// Absolute offset of the box.
        offset: u64,
    },
    /// A box is larger than this crate is willing to hold in memory.
    #[error("{fourcc} box of {size} bytes at offset {offset} is too large (limit {limit} bytes)")]
    BoxTooLarge {
        /// The box type.
        fourcc: FourCc,
        /// The declared size.
        size: u64,
        /// Absolute offset of the box.
        offset: u64,
        /// The largest size accepted.
        limit: u64,
    },
    /// A box's content contradicts itself or its parent.
    #[error("damaged {fourcc} box at offset {offset}: {reason}")]
    Damaged {
        /// The box being read.
        fourcc: FourCc,
        /// Absolute file offset where reading failed.
        offset: u64,
        /// What was wrong, in plain words.
        reason: String,
    },
    /// The in-memory sample index would grow past the limit set for it (see
    /// [`MovieOpener::set_index_limit`](crate::MovieOpener::set_index_limit)).
    #[error("its sample index would need more than {limit} bytes of memory (too many samples)")]
    IndexTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The caller broke the `poll`/`feed` contract (a bug in the caller, not in the file).
    #[error("wrong use of MovieOpener: {0}")]
    Misuse(String),
}

impl Mp4Error {
    pub(crate) fn damaged(fourcc: [u8; 4], offset: u64, reason: impl Into<String>) -> Self {
        Mp4Error::Damaged {
            fourcc: FourCc(fourcc),
            offset,
            reason: reason.into(),
        }
    }
}
