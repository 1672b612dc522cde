//! Cache entry names: made by the server from a source's [`Identity`], never from what a
//! viewer wrote, so no name can reach outside the cache folder.
//!
//! An entry's file is `S-V.mp4`: `S` a hash of the storage and path or key (the same
//! for every version of one file), `V` a hash of the version (size, mtime and inode; or
//! the S3 ETag and size) and of [`FORMAT`]. A changed file gets another `V`, so a stale
//! entry is never found; it is removed when the new one is made, or evicted in its turn.

use ring::digest::{digest, SHA256};

use crate::source::Identity;

/// What an entry holds, as a part of its version: raised when the transcoder's output
/// or the entries' layout changes, so entries made by an older server are not played.
const FORMAT: &str = "h264-baseline+opus/1";

/// Hex digits kept of each SHA-256 (128 bits).
const HASH_HEX: usize = 32;

/// One entry's name: the source's part and the version's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryName {
    /// The hash of the storage and path: what one file's entries share.
    pub source: String,
    /// The hash of the version and [`FORMAT`].
    pub version: String,
}

impl EntryName {
    /// The name of `id`'s entry.
    pub fn of(id: &Identity) -> Self {
        EntryName {
            source: hash(&id.name),
            version: hash(&format!("{FORMAT}\n{}", id.version)),
        }
    }

    /// The finished entry's file name in the cache folder.
    pub fn file_name(&self) -> String {
        format!("{}-{}.mp4", self.source, self.version)
    }

    /// The entry a file name of the cache folder is, if it is one (anything else there
    /// is not the cache's and is left alone).
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_suffix(".mp4")?;
        let (source, version) = stem.split_once('-')?;
        let hex = |s: &str| s.len() == HASH_HEX && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(source) && hex(version)).then(|| EntryName {
            source: source.to_string(),
            version: version.to_string(),
        })
    }
}

fn hash(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(HASH_HEX);
    for b in digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .take(HASH_HEX / 2)
    {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, version: &str) -> Identity {
        Identity {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn one_file_keeps_its_source_part_and_a_new_version_gets_a_new_name() {
        let a = EntryName::of(&id("file:/m/a.mp4", "100:1:7"));
        assert_eq!(a, EntryName::of(&id("file:/m/a.mp4", "100:1:7")));
        let touched = EntryName::of(&id("file:/m/a.mp4", "100:2:7"));
        assert_eq!(a.source, touched.source);
        assert_ne!(a.version, touched.version);
        assert_ne!(a.file_name(), touched.file_name());
        let other = EntryName::of(&id("file:/m/b.mp4", "100:1:7"));
        assert_ne!(a.source, other.source);
        // Names are plain hex, and read back.
        assert_eq!(EntryName::parse(&a.file_name()), Some(a.clone()));
        for not_ours in [
            "a.mp4",
            "../x.mp4",
            &format!(".{}.part", a.file_name()),
            &a.file_name().replace(".mp4", ".mov"),
        ] {
            assert_eq!(EntryName::parse(not_ours), None, "{not_ours}");
        }
    }
}
