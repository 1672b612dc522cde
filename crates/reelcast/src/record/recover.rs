//! Recovery: every recording left unfinished in `record_dir` (its sidecar
//! `.NAME.recording` is there) becomes a playable file, keeping its complete fragments
//! (a torn last one is cut). Run at start, before any port opens, and by `reelcast
//! recover`. Bounded: one pass over the folder's entries (at most
//! [`MAX_ENTRIES`]), each recording finalized in bounded memory; every step logged.

use std::path::Path;

use tracing::{info, warn};

use super::names;
use super::writer::finalize_file;

/// Folder entries looked at, at most.
pub const MAX_ENTRIES: usize = 100_000;

/// What a recovery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Recordings made playable: (name, duration in ms).
    pub finalized: Vec<(String, u64)>,
    /// Sidecars whose file was gone (removed).
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
        if !dir.join(&name).is_file() {
            let _ = std::fs::remove_file(dir.join(names::sidecar(&name)));
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
