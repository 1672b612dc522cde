//! Recovery: every recording left unfinished in `record_dir` (its sidecar
//! `.NAME.recording` is there) becomes a playable file, keeping its complete fragments
//! (a torn last one is cut). Run at start, before any port opens, and by `reelcast
//! recover`. Bounded: one pass over the folder's entries (at most
//! [`MAX_ENTRIES`]), each recording finalized in bounded memory; every step logged.

use std::path::Path;

use tracing::{info, warn};

use super::names;
use super::writer::{discard, finalize_file};

/// Folder entries looked at, at most.
pub const MAX_ENTRIES: usize = 100_000;

/// What a recovery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Recordings made playable: (name, duration in ms).
    pub finalized: Vec<(String, u64)>,
    /// Sidecars whose file was gone or empty (a recording cut before its first
    /// fragment): removed, with the empty file.
    pub orphans: usize,
    /// Recordings that could not be finalized: (name, reason); their sidecar stays.
    pub failed: Vec<(String, String)>,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recordings recovered, {} failed, {} stale markers removed",
            self.finalized.len(),
            self.failed.len(),
            self.orphans
        )
    }
}

/// Recovers every unfinished recording in `dir` (a missing folder has none).
pub fn recover_dir(dir: &Path) -> Recovered {
    let mut done = Recovered::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return done;
    };
    let mut sidecars = Vec::new();
    for entry in entries.take(MAX_ENTRIES).flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else {
            continue;
        };
        if let Some(name) = names::of_sidecar(file) {
            sidecars.push(name.to_string());
        } else if file.starts_with('.') && file.ends_with(".finalizing") {
            // A temporary of a finalize that was cut: its recording is finalized again.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for name in sidecars {
        let file = dir.join(&name);
        if !file.is_file() {
            let _ = std::fs::remove_file(dir.join(names::sidecar(&name)));
            done.orphans += 1;
            continue;
        }
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            discard(dir, &name);
            done.orphans += 1;
            continue;
        }
        match finalize_file(dir, &name, &name) {
            Ok(f) => {
                info!(
                    "Recovered recording {name}: {} ms kept, {} bytes of a torn fragment cut",
                    f.duration_ms, f.torn_bytes
                );
                done.finalized.push((name, f.duration_ms));
            }
            Err(why) => {
                warn!("Recording {name} could not be recovered: {why}");
                done.failed.push((name, why));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_recording_and_a_lone_sidecar_are_removed() {
        let dir =
            std::env::temp_dir().join(format!("reelcast-recover-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Cut before its first fragment; a sidecar whose file is gone.
        std::fs::write(dir.join("a.mp4"), b"").unwrap();
        std::fs::write(dir.join(names::sidecar("a.mp4")), b"").unwrap();
        std::fs::write(dir.join(names::sidecar("b.mp4")), b"").unwrap();
        let done = recover_dir(&dir);
        assert_eq!(done.orphans, 2, "{done:?}");
        assert!(done.failed.is_empty(), "{done:?}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
