//! What tests of stream tasks play: the bundled sample, opened as a stream reader.

use super::open::AnyReader;
use super::MediaReader;
use crate::source::{ByteSource, LocalFile, MediaPath};

/// `media/sample.mp4`, opened from the repository's media folder.
pub(crate) fn sample_reader() -> AnyReader {
    let media_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../media");
    let path = MediaPath::new("sample.mp4").expect("valid name");
    let file = LocalFile::open(&media_dir, &path).expect("media/sample.mp4 is bundled");
    MediaReader::open(Box::new(file) as Box<dyn ByteSource>).expect("sample opens")
}
