//! Files under `media_dir`: opened only when they really are inside it, read by
//! position, never mapped and never read whole (WCS's `Map failed` is what mapping
//! whole files does to a server with many long VODs).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{ByteSource, MediaPath, SourceError};

/// File name extensions [`list_media`] reports (compared case-insensitively).
pub const MEDIA_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "m4a"];

/// Deepest folder level below `media_dir` that [`list_media`] looks into.
const MAX_LIST_DEPTH: usize = 8;

/// An open regular file inside `media_dir`.
///
/// Reads are blocking positional reads (`pread`): many readers may share one
/// `LocalFile` (`&self`), and callers run them on a blocking thread.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    path: PathBuf,
    size: u64,
}

impl LocalFile {
    /// Opens `media_dir/name`. Both are canonicalized first and the file must lie
    /// inside `media_dir`, so a symlink pointing outside is refused like `..` is.
    ///
    /// Errors: missing, a folder or not a regular file → [`SourceError::NotFound`];
    /// outside `media_dir` → [`SourceError::Restricted`]; anything else →
    /// [`SourceError::Read`] with the io reason.
    pub fn open(media_dir: &Path, name: &MediaPath) -> Result<LocalFile, SourceError> {
        let root = media_dir.canonicalize().map_err(|e| {
            // The folder's path is the operator's business, not the viewer's.
            tracing::warn!(dir = %media_dir.display(), "media_dir cannot be read: {e}");
            SourceError::Read(format!("media_dir cannot be read ({})", io_words(&e)))
        })?;
        let path = root
            .join(name.as_path())
            .canonicalize()
            .map_err(not_found_or_read)?;
        if !path.starts_with(&root) {
            return Err(SourceError::Restricted("path leaves media_dir".to_string()));
        }
        // Checked before opening: opening a FIFO for reading would block.
        let meta = std::fs::metadata(&path).map_err(not_found_or_read)?;
        if !meta.is_file() {
            return Err(SourceError::NotFound);
        }
        let file = File::open(&path).map_err(not_found_or_read)?;
        // Checked again on the open file, in case the path changed in between.
        let meta = file.metadata().map_err(|e| SourceError::read(&e))?;
        if !meta.is_file() {
            return Err(SourceError::NotFound);
        }
        Ok(LocalFile {
            file,
            path,
            size: meta.len(),
        })
    }

    /// The file's size in bytes, as it was when opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The canonical path of the file (for logs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads exactly `len` bytes at `offset`. A range past the end (as of `open`) is
    /// `Failed to read file: unexpected end of file`, without allocating for it.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let eof = || SourceError::Read("unexpected end of file".to_string());
        let end = u64::try_from(len)
            .ok()
            .and_then(|len| offset.checked_add(len))
            .ok_or_else(eof)?;
        if end > self.size {
            return Err(eof());
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| SourceError::read(&e))?;
        Ok(Bytes::from(buf))
    }
}

impl ByteSource for LocalFile {
    fn size(&self) -> u64 {
        LocalFile::size(self)
    }
    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        LocalFile::read_at(self, offset, len)
    }
}

fn not_found_or_read(e: std::io::Error) -> SourceError {
    use std::io::ErrorKind;
    match e.kind() {
        // NotADirectory: a path segment is a plain file (`a.mp4/b.mp4`).
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
            SourceError::NotFound
        }
        _ => SourceError::read(&e),
    }
}

fn io_words(e: &std::io::Error) -> String {
    match SourceError::read(e) {
        SourceError::Read(words) => words,
        other => other.to_string(),
    }
}

/// The playable files under `media_dir`: relative `/`-separated paths of files whose
/// extension is one of [`MEDIA_EXTENSIONS`], at most 8 folders deep, sorted.
///
/// Symlinked folders are not followed; symlinked files are listed only when they point
/// inside `media_dir`. Hidden entries (`.name`, e.g. macOS `._x.mp4`) and names that
/// [`MediaPath`] would refuse are left out, so every listed name can be played as
/// `vod://NAME` (percent-encoded with [`MediaPath::encoded`]). Unreadable folders are
/// skipped. Never fails: a missing `media_dir` lists nothing.
pub fn list_media(media_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(root) = media_dir.canonicalize() else {
        return found;
    };
    walk(&root, &root, "", 0, &mut found);
    found.sort();
    found
}

fn walk(root: &Path, dir: &Path, prefix: &str, depth: usize, found: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "skipping unreadable folder");
            return;
        }
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if depth < MAX_LIST_DEPTH {
                walk(root, &entry.path(), &format!("{rel}/"), depth + 1, found);
            }
            continue;
        }
        let playable_ext = Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MEDIA_EXTENSIONS.iter().any(|m| m.eq_ignore_ascii_case(e)));
        if !playable_ext || MediaPath::new(&rel).is_err() {
            continue;
        }
        let is_file = if file_type.is_symlink() {
            entry
                .path()
                .canonicalize()
                .ok()
                .filter(|target| target.starts_with(root))
                .and_then(|target| std::fs::metadata(target).ok())
                .is_some_and(|meta| meta.is_file())
        } else {
            file_type.is_file()
        };
        if is_file {
            found.push(rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh temp folder holding `media/` (returned second) and room for `outside/`.
    fn temp_media(tag: &str) -> (PathBuf, PathBuf) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reelcast-local-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let media = dir.join("media");
        std::fs::create_dir_all(&media).expect("temp dir can be created");
        (dir, media)
    }

    fn name(s: &str) -> MediaPath {
        MediaPath::new(s).expect(s)
    }

    #[test]
    fn reads_ranges() {
        let (dir, media) = temp_media("read");
        std::fs::create_dir(media.join("sub")).unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(media.join("sub/a b.mp4"), &data).unwrap();
        let f = LocalFile::open(&media, &name("sub/a b.mp4")).unwrap();
        assert_eq!(f.size(), 10_000);
        assert_eq!(&f.read_at(0, 4).unwrap()[..], &data[..4]);
        assert_eq!(&f.read_at(9_990, 10).unwrap()[..], &data[9_990..]);
        assert_eq!(f.read_at(10_000, 0).unwrap().len(), 0);
        assert!(f.path().ends_with("sub/a b.mp4"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn short_reads_are_errors() {
        let (dir, media) = temp_media("eof");
        std::fs::write(media.join("a.mp4"), b"0123456789").unwrap();
        let f = LocalFile::open(&media, &name("a.mp4")).unwrap();
        for (offset, len) in [(5, 6), (10, 1), (u64::MAX, 1), (0, usize::MAX)] {
            assert_eq!(
                f.read_at(offset, len).unwrap_err().to_string(),
                "Failed to read file: unexpected end of file",
                "{offset} {len}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_after_open_is_an_error() {
        let (dir, media) = temp_media("trunc");
        std::fs::write(media.join("a.mp4"), b"0123456789").unwrap();
        let f = LocalFile::open(&media, &name("a.mp4")).unwrap();
        std::fs::write(media.join("a.mp4"), b"0123").unwrap();
        assert_eq!(
            f.read_at(2, 6).unwrap_err().to_string(),
            "Failed to read file: unexpected end of file"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_folder_and_special_files_are_not_found() {
        let (dir, media) = temp_media("missing");
        std::fs::create_dir(media.join("folder.mp4")).unwrap();
        std::fs::write(media.join("plain.mp4"), b"x").unwrap();
        for n in ["nope.mp4", "folder.mp4", "plain.mp4/x.mp4", "dir/nope.mp4"] {
            let e = LocalFile::open(&media, &name(n)).unwrap_err();
            assert_eq!(e, SourceError::NotFound, "{n}");
            assert_eq!(e.to_string(), "File not found");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlink_leaving_media_dir_is_refused() {
        let (dir, media) = temp_media("symlink");
        std::fs::create_dir(dir.join("outside")).unwrap();
        std::fs::write(dir.join("outside/secret.mp4"), b"secret").unwrap();
        symlink(dir.join("outside/secret.mp4"), media.join("link.mp4")).unwrap();
        symlink(dir.join("outside"), media.join("linkdir")).unwrap();
        for n in ["link.mp4", "linkdir/secret.mp4"] {
            assert_eq!(
                LocalFile::open(&media, &name(n)).unwrap_err().to_string(),
                "Restricted access: path leaves media_dir",
                "{n}"
            );
        }
        // A symlink that stays inside is fine.
        std::fs::write(media.join("real.mp4"), b"real").unwrap();
        symlink(media.join("real.mp4"), media.join("alias.mp4")).unwrap();
        let f = LocalFile::open(&media, &name("alias.mp4")).unwrap();
        assert_eq!(&f.read_at(0, 4).unwrap()[..], b"real");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn media_dir_may_itself_be_a_symlink() {
        let (dir, media) = temp_media("rootlink");
        std::fs::write(media.join("a.mp4"), b"abc").unwrap();
        symlink(&media, dir.join("media-link")).unwrap();
        let f = LocalFile::open(&dir.join("media-link"), &name("a.mp4")).unwrap();
        assert_eq!(f.size(), 3);
        assert_eq!(list_media(&dir.join("media-link")), vec!["a.mp4"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unreadable_file_says_why() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, media) = temp_media("perm");
        let path = media.join("locked.mp4");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        // The suite runs as root, who reads anything: the open happens on a thread of its
        // own without the capabilities that override file permissions (capabilities are
        // per thread on Linux).
        let opener = {
            let media = media.clone();
            std::thread::spawn(move || {
                use caps::{CapSet, Capability};
                for cap in [
                    Capability::CAP_DAC_OVERRIDE,
                    Capability::CAP_DAC_READ_SEARCH,
                ] {
                    caps::drop(None, CapSet::Effective, cap).expect("dropping a capability");
                }
                assert!(
                    std::fs::read(media.join("locked.mp4")).is_err(),
                    "this thread can still read a mode 000 file"
                );
                LocalFile::open(&media, &name("locked.mp4")).map(|_| ())
            })
        };
        let result = opener.join().expect("the opening thread");
        assert_eq!(
            result.unwrap_err().to_string(),
            "Failed to read file: Permission denied"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_media_dir_is_a_read_error() {
        let (dir, media) = temp_media("nodir");
        let gone = media.join("gone");
        let e = LocalFile::open(&gone, &name("a.mp4")).unwrap_err();
        assert!(matches!(e, SourceError::Read(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "Failed to read file: media_dir cannot be read (No such file or directory)"
        );
        assert!(list_media(&gone).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_playable_files_recursively_sorted() {
        let (dir, media) = temp_media("list");
        std::fs::create_dir(dir.join("outside")).unwrap();
        std::fs::write(dir.join("outside/out.mp4"), b"x").unwrap();
        let mut deep = media.clone();
        for level in 1..=10 {
            deep = deep.join(format!("d{level}"));
            std::fs::create_dir(&deep).unwrap();
            std::fs::write(deep.join("f.mp4"), b"x").unwrap();
        }
        for f in [
            "b.MP4",
            "a.mp4",
            "c.mov",
            "d.m4v",
            "e.M4A",
            "notes.txt",
            "noext",
            ".hidden.mp4",
            "back\\slash.mp4",
            "d1/z.mkv",
        ] {
            std::fs::write(media.join(f), b"x").unwrap();
        }
        std::fs::create_dir(media.join(".cache")).unwrap();
        std::fs::write(media.join(".cache/x.mp4"), b"x").unwrap();
        std::fs::create_dir(media.join("folder.mp4")).unwrap();
        symlink(dir.join("outside"), media.join("linkdir")).unwrap();
        symlink(dir.join("outside/out.mp4"), media.join("out-link.mp4")).unwrap();
        symlink(media.join("a.mp4"), media.join("in-link.mp4")).unwrap();
        symlink(media.join("missing.mp4"), media.join("dangling.mp4")).unwrap();

        let mut want: Vec<String> = ["a.mp4", "b.MP4", "c.mov", "d.m4v", "e.M4A", "in-link.mp4"]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        // media_dir is depth 0; d1..d8 are looked into, d9 is not.
        let mut rel = String::new();
        for level in 1..=8 {
            rel = format!("{rel}d{level}/");
            want.push(format!("{rel}f.mp4"));
        }
        want.sort();
        assert_eq!(list_media(&media), want);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
