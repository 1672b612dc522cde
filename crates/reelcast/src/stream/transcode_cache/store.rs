//! The cache folder's finished entries: which there are, their sizes, when each was last
//! used, and keeping their total under the limit by removing the least recently used.
//!
//! Owns the files of finished entries (`S-V.mp4`, [`EntryName`]) and the
//! `reelcast_transcode_cache_bytes` gauge and evictions counter. A file's modification
//! time is its last use: set when it is played, so the order survives a restart.
//! Leftovers of jobs that did not finish (hidden `.…` files: a crash, a stop) are
//! removed when the folder is first read; nothing else in the folder is touched.
//! Must not: transcode or parse media.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracing::{info, warn};

use super::key::EntryName;
use crate::metrics::METRICS;

/// One finished entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its file's size.
    pub bytes: u64,
    /// Its last play (or its making).
    pub used: SystemTime,
}

/// The finished entries of one cache folder.
pub struct Store {
    dir: PathBuf,
    max_bytes: u64,
    entries: HashMap<EntryName, Entry>,
}

impl Store {
    /// Reads `dir` (none yet: empty; the first job makes it, so a server that never
    /// caches leaves no folder in `record_dir`): its entries kept, the leftovers of
    /// unfinished jobs removed, then as many least recently used entries evicted as the
    /// limit asks (it may have been lowered).
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let mut entries = HashMap::new();
        let items = match std::fs::read_dir(dir) {
            Ok(items) => Some(items),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        for item in items.into_iter().flatten().flatten() {
            let Ok(file_name) = item.file_name().into_string() else {
                continue;
            };
            if file_name.starts_with('.') {
                // A job's part file or the finalizer's temporary: never a finished entry.
                let _ = std::fs::remove_file(item.path());
                continue;
            }
            let Some(name) = EntryName::parse(&file_name) else {
                continue;
            };
            let Ok(meta) = item.metadata() else { continue };
            if meta.is_file() {
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.insert(
                    name,
                    Entry {
                        bytes: meta.len(),
                        used,
                    },
                );
            }
        }
        let mut store = Store {
            dir: dir.to_path_buf(),
            max_bytes,
            entries,
        };
        store.evict(0);
        store.publish();
        info!(
            dir = %dir.display(),
            entries = store.entries.len(),
            bytes = store.total(),
            "transcode cache ready"
        );
        Ok(store)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most the entries may take.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The bytes the entries take.
    pub fn total(&self) -> u64 {
        self.entries.values().map(|e| e.bytes).sum()
    }

    /// The path of `name`'s finished entry, marked used now; `None` when there is none.
    pub fn take(&mut self, name: &EntryName) -> Option<PathBuf> {
        let entry = self.entries.get_mut(name)?;
        let path = self.dir.join(name.file_name());
        let now = SystemTime::now();
        entry.used = now;
        // The order survives a restart; failing to set it only costs that.
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(now);
        }
        Some(path)
    }

    /// Removes `name`'s entry (unreadable, or stale).
    pub fn remove(&mut self, name: &EntryName) {
        if self.entries.remove(name).is_some() {
            let _ = std::fs::remove_file(self.dir.join(name.file_name()));
            self.publish();
        }
    }

    /// Takes in a finished entry of `bytes` whose file is in place: the other versions
    /// of its source go (they are stale), then the least recently used until all fit.
    /// An entry larger than the whole limit is removed at once.
    pub fn add(&mut self, name: EntryName, bytes: u64) {
        let stale: Vec<EntryName> = self
            .entries
            .keys()
            .filter(|n| n.source == name.source && n.version != name.version)
            .cloned()
            .collect();
        for n in &stale {
            self.remove(n);
        }
        if bytes > self.max_bytes {
            warn!(
                "a transcode of {bytes} bytes is larger than transcode_cache_max_size ({}): not kept",
                self.max_bytes
            );
            let _ = std::fs::remove_file(self.dir.join(name.file_name()));
            return;
        }
        self.evict(bytes);
        self.entries.insert(
            name,
            Entry {
                bytes,
                used: SystemTime::now(),
            },
        );
        self.publish();
    }

    /// Evicts until `incoming` more bytes fit.
    fn evict(&mut self, incoming: u64) {
        let listed: Vec<(EntryName, Entry)> =
            self.entries.iter().map(|(n, e)| (n.clone(), *e)).collect();
        for name in to_evict(&listed, self.max_bytes, incoming) {
            self.entries.remove(&name);
            let _ = std::fs::remove_file(self.dir.join(name.file_name()));
            METRICS.transcode_cache_evictions.inc();
            info!("transcode cache entry {} evicted", name.file_name());
        }
        self.publish();
    }

    fn publish(&self) {
        METRICS
            .transcode_cache_bytes
            .set(i64::try_from(self.total()).unwrap_or(i64::MAX));
    }
}

/// Which of `entries` go, least recently used first, so that `incoming` more bytes fit
/// under `max_bytes`.
pub fn to_evict<N: Clone>(entries: &[(N, Entry)], max_bytes: u64, incoming: u64) -> Vec<N> {
    let mut by_use: Vec<&(N, Entry)> = entries.iter().collect();
    by_use.sort_by_key(|(_, e)| e.used);
    let mut total: u64 = entries.iter().map(|(_, e)| e.bytes).sum();
    let mut out = Vec::new();
    for (name, entry) in by_use {
        if total.saturating_add(incoming) <= max_bytes {
            break;
        }
        total -= entry.bytes;
        out.push(name.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::source::Identity;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn entry(bytes: u64, used: u64) -> Entry {
        Entry {
            bytes,
            used: at(used),
        }
    }

    #[test]
    fn the_least_recently_used_go_until_the_new_entry_fits() {
        let entries = [
            ("recent", entry(40, 30)),
            ("oldest", entry(30, 10)),
            ("middle", entry(20, 20)),
        ];
        // 90 held, limit 100: 10 more fit, 11 need the oldest gone, 41 the middle too.
        assert!(to_evict(&entries, 100, 10).is_empty());
        assert_eq!(to_evict(&entries, 100, 11), vec!["oldest"]);
        assert_eq!(to_evict(&entries, 100, 41), vec!["oldest", "middle"]);
        // A limit lowered under what is held: trimmed without anything coming.
        assert_eq!(to_evict(&entries, 50, 0), vec!["oldest", "middle"]);
    }

    fn name(file: &str, version: &str) -> EntryName {
        EntryName::of(&Identity {
            name: file.into(),
            version: version.into(),
        })
    }

    fn put(dir: &Path, name: &EntryName, bytes: usize) {
        std::fs::write(dir.join(name.file_name()), vec![0u8; bytes]).unwrap();
    }

    #[test]
    fn a_folder_is_read_back_its_leftovers_removed_and_entries_evicted_and_replaced() {
        let dir = test_support::temp_dir("transcode-cache-store");
        let (a, b) = (name("file:/a", "1"), name("file:/b", "1"));
        put(&dir, &a, 300);
        put(&dir, &b, 300);
        std::fs::write(dir.join(format!(".{}.part", a.file_name())), b"torn").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not the cache's").unwrap();
        let past = |n: &EntryName, s| {
            let f = std::fs::File::options()
                .write(true)
                .open(dir.join(n.file_name()))
                .unwrap();
            f.set_modified(at(s)).unwrap();
        };
        past(&a, 1_000);
        past(&b, 2_000);

        let mut store = Store::open(&dir, 1_000).unwrap();
        assert_eq!(store.total(), 600);
        assert!(!dir.join(format!(".{}.part", a.file_name())).exists());
        assert!(dir.join("notes.txt").exists(), "files not the cache's stay");
        // Playing `a` makes it the most recent: `b` is evicted for a new 500.
        assert!(store.take(&a).is_some());
        let c = name("file:/c", "1");
        put(&dir, &c, 500);
        store.add(c.clone(), 500);
        assert!(store.take(&b).is_none());
        assert!(!dir.join(b.file_name()).exists());
        assert_eq!(store.total(), 800);
        // A new version of `a` replaces the old one.
        let a2 = name("file:/a", "2");
        put(&dir, &a2, 100);
        store.add(a2.clone(), 100);
        assert!(store.take(&a).is_none());
        assert!(!dir.join(a.file_name()).exists());
        assert_eq!(store.total(), 600);
        // One larger than the whole limit is not kept.
        let huge = name("file:/huge", "1");
        put(&dir, &huge, 1_001);
        store.add(huge.clone(), 1_001);
        assert!(store.take(&huge).is_none());
        assert!(!dir.join(huge.file_name()).exists());
        // Read again after a restart: the same entries.
        let again = Store::open(&dir, 1_000).unwrap();
        assert_eq!(again.total(), 600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
