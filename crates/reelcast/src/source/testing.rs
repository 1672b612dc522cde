//! What tests of readers and muxers read from: a file held in memory, and the bundled
//! sample's bytes.

use bytes::Bytes;

use super::{ByteSource, SourceError};

/// A file held in memory.
pub(crate) struct Memory(pub(crate) Bytes);

impl ByteSource for Memory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        self.0
            .get(start..start.saturating_add(len))
            .map(|b| self.0.slice_ref(b))
            .ok_or_else(|| SourceError::Read("unexpected end of file".into()))
    }
}

/// The bytes of `media/sample.mp4`, bundled with the repository.
pub(crate) fn sample_bytes() -> Bytes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../media/sample.mp4");
    Bytes::from(std::fs::read(path).expect("media/sample.mp4 is in the repository"))
}
