//! Records the commit the binary is built from, for `reelcast --version`.
//!
//! `REELCAST_COMMIT` from the build's environment wins (a package built from a tarball
//! sets it); else `git rev-parse` of the checkout; else "unknown". Never fails a build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=REELCAST_COMMIT");
    let commit = std::env::var("REELCAST_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // A new commit or checkout moves HEAD's reflog: build again then, not on every build.
    if let Some(reflog) = git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "logs/HEAD",
    ]) {
        if std::path::Path::new(&reflog).exists() {
            println!("cargo:rerun-if-changed={reflog}");
        }
    }
    println!("cargo:rustc-env=REELCAST_COMMIT={commit}");
}
