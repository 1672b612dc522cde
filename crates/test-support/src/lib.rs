//! Helpers shared by the tests of reelcast's crates; a dev-dependency only.
//!
//! Owns: the policy for tests that need external tools (ffmpeg, ffprobe): skipped with a
//! notice on a developer's machine that lacks them, a failure under CI (`CI=true`),
//! where a silently skipped test would hide a broken setup. Must not hold anything a
//! shipped binary uses.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

/// True when every program in `tools` runs (`tool -version`). When one does not: under
/// `CI=true` this panics with an install hint; otherwise it prints a notice naming
/// `skipping` (what the caller leaves out) and returns false.
pub fn tools_available(tools: &[&str], skipping: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| Command::new(t).arg("-version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{missing} not found on PATH: install ffmpeg (CI=true requires it)");
    }
    eprintln!("NOTICE: {missing} not found, skipping {skipping}");
    false
}

/// A fresh folder under the system temp dir, unique to this test process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reelcast-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the system temp dir is writable");
    dir
}
