//! Helpers shared by the tests of reelcast's crates; a dev-dependency only.
//!
//! Owns: the policy for tests that need external tools (ffmpeg, ffprobe): a missing tool
//! fails the test, wherever it runs, so a bare `cargo test` never passes by skipping. A
//! developer without the tools may skip those tests on purpose with
//! `REELCAST_SKIP_MISSING_TOOLS=1` (ignored under CI). Must not hold anything a shipped
//! binary uses.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;

/// The variable a developer sets to skip, on purpose, tests whose tools are missing.
pub const SKIP_VARIABLE: &str = "REELCAST_SKIP_MISSING_TOOLS";

/// True when every program in `tools` runs (`tool -version`). When one does not, this
/// panics with an install hint, unless [`SKIP_VARIABLE`] is `1` outside CI: then it
/// prints a notice naming `skipping` (what the caller leaves out) and returns false.
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
    if skip_allowed(
        std::env::var("CI").ok().as_deref(),
        std::env::var(SKIP_VARIABLE).ok().as_deref(),
    ) {
        // Printed on stdout too: the harness shows it with --nocapture.
        println!("NOTICE: {missing} not found, skipping {skipping} ({SKIP_VARIABLE}=1)");
        eprintln!("NOTICE: {missing} not found, skipping {skipping} ({SKIP_VARIABLE}=1)");
        return false;
    }
    panic!(
        "{missing} not found on PATH: install ffmpeg (scripts/test does), \
         or set {SKIP_VARIABLE}=1 to skip {skipping} on purpose"
    );
}

/// Whether a missing tool may be skipped: only when asked for, and never on CI (any value
/// of `CI` but empty, `0` or `false` counts as CI, as CI services set it).
fn skip_allowed(ci: Option<&str>, skip: Option<&str>) -> bool {
    let on_ci = ci.is_some_and(|v| !matches!(v, "" | "0" | "false"));
    !on_ci && skip == Some("1")
}

/// A fresh folder under the system temp dir, unique to this test process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reelcast-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the system temp dir is writable");
    dir
}

#[cfg(test)]
mod tests {
    use super::skip_allowed;

    #[test]
    fn skipping_is_only_on_request_and_never_on_ci() {
        assert!(!skip_allowed(None, None));
        assert!(!skip_allowed(Some("false"), None));
        assert!(skip_allowed(None, Some("1")));
        assert!(skip_allowed(Some("false"), Some("1")));
        for ci in ["true", "1", "yes", "TRUE"] {
            assert!(!skip_allowed(Some(ci), Some("1")), "CI={ci}");
        }
    }

    #[test]
    #[should_panic(expected = "not found on PATH")]
    fn a_missing_tool_fails_the_test() {
        super::tools_available(&["reelcast-no-such-tool"], "nothing");
    }
}
