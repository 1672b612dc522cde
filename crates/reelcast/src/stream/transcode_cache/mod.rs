//! The transcode cache of personal VODs: a file whose video browsers cannot take as it
//! is (H.264 with B-frames, HEVC, VP9, AV1, MPEG-4 Part 2) is transcoded once into
//! `transcode_cache_dir`, and later plays of the unchanged file read that H.264 + Opus
//! MP4 as a plain file: no transcoder, the cost of a plain H.264 file.
//!
//! How a play goes (`super::open::open_personal`): a finished entry of the file's
//! current version ([`key`]) is opened and played (a hit); one that does not open
//! (truncated, corrupt) is deleted and the play goes on as a miss. A miss plays as
//! before (transcoded as it plays) and starts one background job for the file
//! ([`job`]; a second play meanwhile starts none) that transcodes the whole file at
//! full speed into a part file, finalized and renamed into place when done. Finished
//! entries are kept under `transcode_cache_max_size`, least recently used evicted
//! ([`store`]).
//!
//! Must not: pace or send frames; know viewers. Blocking: called on blocking threads.

pub mod job;
pub mod key;
pub mod store;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use self::key::EntryName;
use self::store::Store;
use super::budget::MemoryBudget;
use super::reader::TranscodePolicy;
use super::{MediaReader, StreamError};
use crate::config::Settings;
use crate::metrics::METRICS;
use crate::source::{ByteSource, Identity, LocalFile, MediaPath};

/// A stream reader over any byte source (the same type as `open::AnyReader`, named
/// here so this module does not depend on the opener that uses it).
pub type AnyReader = MediaReader<Box<dyn ByteSource>>;

/// One cache folder and its running jobs. Shared by every play (`Arc`).
pub struct TranscodeCache {
    dir: PathBuf,
    max_bytes: u64,
    store: Mutex<Store>,
    /// The sources (their [`EntryName::source`]) a job is filling an entry of.
    jobs: Mutex<HashSet<String>>,
}

impl TranscodeCache {
    /// The cache `settings` ask for; `None` when it is off (`transcode_cache_dir`
    /// empty or `transcode_cache_max_size` 0) or its folder cannot be made or read
    /// (said in the log; plays then transcode as they go).
    pub fn new(settings: &Settings) -> Option<Arc<Self>> {
        // Relative: inside `record_dir` (the server's data folder); absolute: as it is.
        let dir = &settings.record_dir.join(&settings.transcode_cache_dir);
        let max_bytes = settings.transcode_cache_max_size;
        if settings.transcode_cache_dir.as_os_str().is_empty() || max_bytes == 0 {
            return None;
        }
        match Store::open(dir, max_bytes) {
            Ok(store) => Some(Arc::new(TranscodeCache {
                dir: dir.clone(),
                max_bytes,
                store: Mutex::new(store),
                jobs: Mutex::default(),
            })),
            Err(e) => {
                warn!(dir = %dir.display(), "the transcode cache is off: its folder cannot be used ({e})");
                None
            }
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most the entries may take.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn jobs(&self) -> MutexGuard<'_, HashSet<String>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reader of `id`'s finished entry, counted as a hit; `None` when there is none
    /// or it does not open as plain H.264 (then it is deleted).
    pub fn open_entry(&self, id: &Identity, budget: &Arc<MemoryBudget>) -> Option<AnyReader> {
        let name = EntryName::of(id);
        let path = self.store().take(&name)?;
        match open_file(&self.dir, &name, budget) {
            Ok(reader) => {
                METRICS.transcode_cache_hits.inc();
                info!("played from the transcode cache ({})", path.display());
                Some(reader)
            }
            // A busy memory budget says nothing about the entry: kept.
            Err(StreamError::ReadFailed(e)) if e.contains("memory") => None,
            Err(e) => {
                warn!(
                    "transcode cache entry {} is unusable ({e}): deleted, the file is transcoded",
                    path.display()
                );
                self.store().remove(&name);
                None
            }
        }
    }

    /// A play of `id` that needs video transcoding found no entry: counted as a miss,
    /// and a job filling its entry is started with `open`, unless one runs for this
    /// file already. True when a job was started.
    pub fn missed(self: &Arc<Self>, id: &Identity, open: job::Opener) -> bool {
        METRICS.transcode_cache_misses.inc();
        let name = EntryName::of(id);
        if !self.jobs().insert(name.source.clone()) {
            return false;
        }
        job::spawn(self.clone(), name, open);
        true
    }

    fn job_ended(&self, name: &EntryName) {
        self.jobs().remove(&name.source);
    }

    fn entry_made(&self, name: EntryName, bytes: u64) {
        self.store().add(name, bytes);
    }
}

/// Opens the entry file `name` in `dir` as a stream reader; it must be plain H.264.
fn open_file(
    dir: &Path,
    name: &EntryName,
    budget: &Arc<MemoryBudget>,
) -> Result<AnyReader, StreamError> {
    // The name is ours (hex), so it is a valid path; the folder's confinement applies.
    let path = MediaPath::new(&name.file_name()).map_err(StreamError::from)?;
    let file = LocalFile::open(dir, &path).map_err(StreamError::from)?;
    let source: Box<dyn ByteSource> = Box::new(file);
    let reader = MediaReader::open_within(source, budget, TranscodePolicy::default())?;
    if reader.info().transcoded_video || !reader.info().has_video {
        return Err(StreamError::WrongFormat(
            "the cached entry is not plain H.264".into(),
        ));
    }
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::sample_bytes;

    fn id(version: &str) -> Identity {
        Identity {
            name: "file:/media/a.mp4".into(),
            version: version.into(),
        }
    }

    /// A cache in a fresh folder holding `entries` (identity, bytes) from the start.
    fn cache_with(tag: &str, entries: &[(&Identity, &[u8])]) -> (Arc<TranscodeCache>, PathBuf) {
        let root = test_support::temp_dir(&format!("transcode-cache-{tag}"));
        let settings = Settings {
            record_dir: root.clone(),
            ..Settings::default()
        };
        let dir = root.join(".transcode-cache");
        std::fs::create_dir_all(&dir).unwrap();
        for (id, bytes) in entries {
            std::fs::write(dir.join(EntryName::of(id).file_name()), bytes).unwrap();
        }
        (TranscodeCache::new(&settings).expect("on by default"), dir)
    }

    #[test]
    fn an_entry_of_the_files_version_plays_and_one_that_does_not_open_is_deleted() {
        let budget = MemoryBudget::unlimited();
        let sample = sample_bytes();
        let (good, cut) = (id("1"), id("2"));
        // `sample.mp4` is plain H.264 as an entry is; its first half is a torn one.
        let (cache, dir) = cache_with(
            "entries",
            &[(&good, &sample[..]), (&cut, &sample[..sample.len() / 2])],
        );
        let hits = METRICS.transcode_cache_hits.get();
        let reader = cache.open_entry(&good, &budget).expect("a hit");
        assert!(!reader.info().transcoded_video);
        assert!(METRICS.transcode_cache_hits.get() > hits);
        // Another version of the file has no entry.
        assert!(cache.open_entry(&id("3"), &budget).is_none());
        // The torn one: no reader, and its file is gone.
        let cut_file = dir.join(EntryName::of(&cut).file_name());
        assert!(cut_file.exists());
        assert!(cache.open_entry(&cut, &budget).is_none());
        assert!(!cut_file.exists(), "an entry that does not open is deleted");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_cache_is_off_with_an_empty_folder_or_no_room() {
        for (dir, max) in [("", 1 << 30), (".transcode-cache", 0)] {
            let settings = Settings {
                transcode_cache_dir: PathBuf::from(dir),
                transcode_cache_max_size: max,
                ..Settings::default()
            };
            assert!(TranscodeCache::new(&settings).is_none(), "{dir:?} {max}");
        }
    }

    /// A 2 s B-frame H.264 + AAC file (160x120, 25 fps) in a fresh folder: the folder
    /// and the file's identity. `None` without ffmpeg (a failure under CI=true).
    fn bframe_file(tag: &str) -> Option<(PathBuf, Identity)> {
        if !test_support::tools_available(&["ffmpeg"], "the transcode cache job tests") {
            return None;
        }
        let dir = test_support::temp_dir(&format!("transcode-cache-src-{tag}"));
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=s=160x120:r=25:d=2")
            .args([
                "-f", "lavfi", "-i", "sine=d=2", "-c:v", "libx264", "-bf", "2",
            ])
            .args(["-g", "25", "-c:a", "aac", "-shortest"])
            .arg(dir.join("src.mp4"))
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg failed ({status})");
        let id = source_of(&dir).identity().expect("a plain file has one");
        Some((dir, id))
    }

    fn source_of(dir: &Path) -> LocalFile {
        LocalFile::open(dir, &MediaPath::new("src.mp4").unwrap()).unwrap()
    }

    /// Starts the job for `dir/src.mp4` as a miss would, and waits for it to end.
    fn run_job(cache: &Arc<TranscodeCache>, dir: &Path, id: &Identity) {
        let (dir, budget) = (dir.to_path_buf(), MemoryBudget::unlimited());
        let open: job::Opener = Box::new(move || {
            let source: Box<dyn ByteSource> = Box::new(source_of(&dir));
            MediaReader::open_within(source, &budget, TranscodePolicy::default())
        });
        assert!(cache.missed(id, open), "a job starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !cache.jobs().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the job ends");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn a_job_fills_an_entry_that_plays_as_plain_h264_with_every_picture() {
        let Some((src, id)) = bframe_file("fill") else {
            return;
        };
        let (cache, dir) = cache_with("fill", &[]);
        run_job(&cache, &src, &id);
        let budget = MemoryBudget::unlimited();
        let mut reader = cache.open_entry(&id, &budget).expect("a hit after the job");
        assert!(!reader.info().transcoded_video && reader.info().has_audio);
        let (mut video, mut audio) = (0, 0);
        while let Some(f) = reader.read_frame().unwrap() {
            match f.kind {
                crate::media::MediaKind::Video => video += 1,
                _ => audio += 1,
            }
        }
        assert_eq!(video, 50, "2 s at 25 fps");
        assert!(audio >= 95, "{audio} Opus packets for 2 s");
        // Nothing but the entry in the folder: the part file is gone.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![EntryName::of(&id).file_name()]);
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
        std::fs::remove_dir_all(src).unwrap();
    }

    #[test]
    fn a_job_that_cannot_write_all_stops_and_leaves_nothing() {
        let Some((src, id)) = bframe_file("stop") else {
            return;
        };
        // Room for less than the transcode: the job stops as on a full disk.
        let root = test_support::temp_dir("transcode-cache-stop");
        let settings = Settings {
            record_dir: root.clone(),
            transcode_cache_max_size: 2_000,
            ..Settings::default()
        };
        let cache = TranscodeCache::new(&settings).unwrap();
        run_job(&cache, &src, &id);
        assert!(cache.open_entry(&id, &MemoryBudget::unlimited()).is_none());
        let left: Vec<_> = std::fs::read_dir(root.join(".transcode-cache"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(root).unwrap();
        std::fs::remove_dir_all(src).unwrap();
    }
}
