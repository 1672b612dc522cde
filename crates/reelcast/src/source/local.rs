//! Files under `media_dir` (and `record_dir`): opened only when they really are inside
//! their folder, read by position, never mapped and never read whole (WCS's `Map failed`
//! is what mapping whole files does to a server with many long VODs).
//!
//! A name is looked up in each folder in turn ([`LocalFile::open_first`]: `media_dir`,
//! then `record_dir`), each with the same confinement. Hidden names (a segment starting
//! with `.`: a recording's sidecar, a recorder's temporary file) are never opened.
//!
//! A recording still being written has a sidecar `.NAME.recording` beside it: such a
//! file is opened as *growing* ([`LocalFile::growth`]), its size read again on request
//! so reads may follow its end.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{ByteSource, Identity, MediaPath, SourceError};

/// File name extensions [`list_media`] reports (compared case-insensitively).
pub const MEDIA_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "m4a"];

/// Deepest folder level below `media_dir` that [`list_media`] looks into.
const MAX_LIST_DEPTH: usize = 8;

/// Why a hidden name is refused.
const HIDDEN: &str = "hidden files are not played";

/// The suffix of the sidecar a recorder keeps beside a recording it is still writing:
/// `.NAME.recording` beside `NAME`.
pub const RECORDING_SIDECAR_SUFFIX: &str = ".recording";

/// An open regular file inside `media_dir` (or `record_dir`).
///
/// Reads are blocking positional reads (`pread`): many readers may share one
/// `LocalFile` (`&self`), and callers run them on a blocking thread.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    path: PathBuf,
    /// The size as last read: at open, and again by [`LocalFile::growth`] for a file
    /// being written. Reads stop here.
    size: AtomicU64,
    /// Where the recorder's sidecar is, when it was there right after the open.
    sidecar: Option<PathBuf>,
    /// Size, modification time (ns) and inode at open: the file's version.
    version: String,
}

/// How a file being written stands now ([`LocalFile::growth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    /// Its size in bytes now.
    pub size: u64,
    /// Its sidecar is still there: more may be appended.
    pub writing: bool,
}

impl LocalFile {
    /// Opens `media_dir/name`. Both are canonicalized first and the file must lie
    /// inside `media_dir`, so a symlink pointing outside is refused like `..` is.
    ///
    /// Errors: missing, a folder or not a regular file → [`SourceError::NotFound`];
    /// outside `media_dir` or a hidden name → [`SourceError::Restricted`]; anything
    /// else → [`SourceError::Read`] with the io reason.
    pub fn open(media_dir: &Path, name: &MediaPath) -> Result<LocalFile, SourceError> {
        Self::open_in(media_dir, "media_dir", name)
    }

    /// Opens `name` from the first of `dirs` (folder, its setting's name) that has it:
    /// a folder without the file (or missing altogether) passes to the next; any other
    /// failure (a name leaving its folder, an unreadable file) is the answer, so a
    /// later folder never hides it. None has it: [`SourceError::NotFound`], or the
    /// first folder's own error when it could not be read.
    pub fn open_first(
        dirs: &[(&Path, &'static str)],
        name: &MediaPath,
    ) -> Result<LocalFile, SourceError> {
        let mut first_error = None;
        for (i, (dir, key)) in dirs.iter().enumerate() {
            match Self::open_in(dir, key, name) {
                Err(SourceError::NotFound) => {}
                // A later folder missing (record_dir before the first recording) has
                // no file: that is all a viewer needs to hear.
                Err(e @ SourceError::Read(_)) if !dir.is_dir() => {
                    if i == 0 {
                        first_error = Some(e);
                    }
                }
                other => return other,
            }
        }
        Err(first_error.unwrap_or(SourceError::NotFound))
    }

    fn open_in(dir: &Path, key: &str, name: &MediaPath) -> Result<LocalFile, SourceError> {
        if name.as_str().split('/').any(|s| s.starts_with('.')) {
            return Err(SourceError::Restricted(HIDDEN.to_string()));
        }
        let root = dir.canonicalize().map_err(|e| {
            // The folder's path is the operator's business, not the viewer's.
            tracing::warn!(dir = %dir.display(), "{key} cannot be read: {e}");
            SourceError::Read(format!("{key} cannot be read ({})", io_words(&e)))
        })?;
        let path = root
            .join(name.as_path())
            .canonicalize()
            .map_err(not_found_or_read)?;
        let Ok(inside) = path.strip_prefix(&root) else {
            return Err(SourceError::Restricted(format!("path leaves {key}")));
        };
        // A symlink with a plain name may still point at a hidden file.
        if inside
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            return Err(SourceError::Restricted(HIDDEN.to_string()));
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
        // Looked for after the open: a recorder renames the finished file over this
        // name before removing the sidecar, so a file opened without a sidecar is final.
        let sidecar = sidecar_of(&path).filter(|s| s.symlink_metadata().is_ok());
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let version = format!(
            "{}:{mtime_ns}:{}",
            meta.len(),
            std::os::unix::fs::MetadataExt::ino(&meta)
        );
        Ok(LocalFile {
            file,
            path,
            size: AtomicU64::new(meta.len()),
            sidecar,
            version,
        })
    }

    /// The file's size in bytes: as it was when opened, or at the last
    /// [`growth`](Self::growth).
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// For a recording that was being written when opened (its sidecar was there):
    /// its size now (read from the open file, so a finished recording renamed over the
    /// name does not change what is read) and whether the sidecar is still there.
    /// `None` for any other file. Reads may go up to the new size from then on.
    pub fn growth(&self) -> Option<Growth> {
        let sidecar = self.sidecar.as_ref()?;
        let size = self.file.metadata().map_or(self.size(), |m| m.len());
        // The file only grows; a smaller size (truncated in place) is not followed.
        let size = self.size.fetch_max(size, Ordering::Relaxed).max(size);
        Some(Growth {
            size,
            writing: sidecar.symlink_metadata().is_ok(),
        })
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
        if end > self.size() {
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
    fn growth(&self) -> Option<Growth> {
        LocalFile::growth(self)
    }
    /// `None` for a recording still being written: its bytes are not final.
    fn identity(&self) -> Option<Identity> {
        if self.sidecar.is_some() {
            return None;
        }
        Some(Identity {
            name: format!("file:{}", self.path.display()),
            version: self.version.clone(),
        })
    }
}

/// `dir/.NAME.recording` for `dir/NAME`.
fn sidecar_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!(".{name}{RECORDING_SIDECAR_SUFFIX}")))
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

    /// `media_dir` and `record_dir` side by side in a fresh temp folder.
    fn media_and_records(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let (dir, media) = temp_media(tag);
        let records = dir.join("records");
        std::fs::create_dir(&records).unwrap();
        (dir, media, records)
    }

    fn open_either(media: &Path, records: &Path, n: &str) -> Result<LocalFile, SourceError> {
        LocalFile::open_first(&[(media, "media_dir"), (records, "record_dir")], &name(n))
    }

    #[test]
    fn a_name_is_looked_up_in_media_dir_then_record_dir() {
        let (dir, media, records) = media_and_records("lookup");
        std::fs::write(records.join("rec.mp4"), b"recording").unwrap();
        std::fs::write(records.join("both.mp4"), b"recording").unwrap();
        std::fs::write(media.join("both.mp4"), b"media").unwrap();
        let read = |n: &str| {
            let f = open_either(&media, &records, n).unwrap();
            f.read_at(0, f.size() as usize).unwrap()
        };
        assert_eq!(&read("rec.mp4")[..], b"recording", "only in record_dir");
        assert_eq!(&read("both.mp4")[..], b"media", "media_dir wins a clash");
        assert_eq!(
            open_either(&media, &records, "none.mp4").unwrap_err(),
            SourceError::NotFound
        );
        // A missing media_dir does not hide the recordings.
        let gone = media.join("gone");
        assert_eq!(
            &open_either(&gone, &records, "rec.mp4")
                .unwrap()
                .read_at(0, 3)
                .unwrap()[..],
            b"rec"
        );
        assert_eq!(
            open_either(&gone, &records, "none.mp4")
                .unwrap_err()
                .to_string(),
            "Failed to read file: media_dir cannot be read (No such file or directory)"
        );
        // Nor does a record_dir not made yet turn a missing file into a read error.
        let no_records = records.join("gone");
        std::fs::write(media.join("m.mp4"), b"media").unwrap();
        assert!(open_either(&media, &no_records, "m.mp4").is_ok());
        assert_eq!(
            open_either(&media, &no_records, "none.mp4").unwrap_err(),
            SourceError::NotFound
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn record_dir_keeps_names_inside_it_as_media_dir_does() {
        let (dir, media, records) = media_and_records("confine");
        std::fs::create_dir(dir.join("outside")).unwrap();
        std::fs::write(dir.join("outside/secret.mp4"), b"secret").unwrap();
        std::fs::write(records.join("rec.mp4"), b"recording").unwrap();
        symlink(dir.join("outside/secret.mp4"), records.join("out.mp4")).unwrap();
        symlink(dir.join("outside"), records.join("outdir")).unwrap();
        // Out of record_dir.
        for n in ["out.mp4", "outdir/secret.mp4"] {
            assert_eq!(
                open_either(&media, &records, n).unwrap_err().to_string(),
                "Restricted access: path leaves record_dir",
                "{n}"
            );
        }
        // Into record_dir from media_dir: refused, not found through the back door.
        symlink(records.join("rec.mp4"), media.join("into.mp4")).unwrap();
        assert_eq!(
            open_either(&media, &records, "into.mp4")
                .unwrap_err()
                .to_string(),
            "Restricted access: path leaves media_dir"
        );
        // `..` never gets this far (MediaPath), whichever folder would serve it.
        assert!(MediaPath::new("../records/rec.mp4").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hidden_names_sidecars_and_temporaries_are_never_played() {
        let (dir, media, records) = media_and_records("hidden");
        for f in [".rec.mp4.recording", ".rec.mp4.tmp", ".hidden.mp4"] {
            std::fs::write(records.join(f), b"x").unwrap();
            std::fs::write(media.join(f), b"x").unwrap();
        }
        std::fs::create_dir(records.join(".cache")).unwrap();
        std::fs::write(records.join(".cache/a.mp4"), b"x").unwrap();
        symlink(records.join(".rec.mp4.tmp"), records.join("alias.mp4")).unwrap();
        for n in [
            ".rec.mp4.recording",
            ".rec.mp4.tmp",
            ".hidden.mp4",
            ".cache/a.mp4",
            "alias.mp4",
        ] {
            assert_eq!(
                open_either(&media, &records, n).unwrap_err().to_string(),
                "Restricted access: hidden files are not played",
                "{n}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_with_its_sidecar_is_growing_until_the_sidecar_goes() {
        let (dir, _media, records) = media_and_records("growth");
        std::fs::write(records.join("rec.mp4"), b"0123").unwrap();
        std::fs::write(records.join("plain.mp4"), b"0123").unwrap();
        std::fs::write(records.join(".rec.mp4.recording"), b"").unwrap();
        let plain = LocalFile::open(&records, &name("plain.mp4")).unwrap();
        assert_eq!(plain.growth(), None, "no sidecar: a finished file");
        let f = LocalFile::open(&records, &name("rec.mp4")).unwrap();
        assert_eq!(
            f.growth(),
            Some(Growth {
                size: 4,
                writing: true
            })
        );
        assert!(f.read_at(4, 2).is_err(), "not read past the size last seen");
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(records.join("rec.mp4"))
            .unwrap();
        std::io::Write::write_all(&mut w, b"45").unwrap();
        assert!(f.read_at(4, 2).is_err(), "until the size is read again");
        assert_eq!(
            f.growth(),
            Some(Growth {
                size: 6,
                writing: true
            })
        );
        assert_eq!(&f.read_at(4, 2).unwrap()[..], b"45");
        // Finished: the final file renamed over the name, then the sidecar removed. The
        // open file still reads what it was.
        std::fs::write(records.join(".rec.mp4.final"), b"final file").unwrap();
        std::fs::rename(records.join(".rec.mp4.final"), records.join("rec.mp4")).unwrap();
        std::fs::remove_file(records.join(".rec.mp4.recording")).unwrap();
        assert_eq!(
            f.growth(),
            Some(Growth {
                size: 6,
                writing: false
            })
        );
        assert_eq!(&f.read_at(0, 6).unwrap()[..], b"012345");
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
