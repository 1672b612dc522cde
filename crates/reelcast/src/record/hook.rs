//! `on_record_hook_script`: the operator's program, run after a recording is complete
//! with `$1` the stream name and `$2` the file's absolute path. No shell: the program is
//! started directly (its arguments are never parsed as shell text). Bounded: it gets
//! [`HOOK_TIMEOUT`], then it is killed; its output (the first [`OUTPUT_LOG_BYTES`]) and
//! exit status are logged. Runs on the recording's writer thread, so no stream waits.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How long a hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Output logged from a hook, per stream.
pub const OUTPUT_LOG_BYTES: u64 = 4096;

/// Runs `script` with the stream name and `file` (made absolute), waits (bounded), logs.
pub fn run(script: &Path, stream_name: &str, file: &Path) {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let child = Command::new(script)
        .arg(stream_name)
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!("on_record_hook_script could not be started: {}", e.kind());
            return;
        }
    };
    // Output is read on threads so a chatty hook cannot fill its pipe and stall.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(p) = pipe {
                let _ = p.take(OUTPUT_LOG_BYTES).read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + HOOK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if let Some(s) = status {
        info!(
            "on_record_hook_script for {stream_name}: {s}; stdout: {:?}; stderr: {:?}",
            out.trim(),
            err.trim()
        );
    } else {
        warn!(
            "on_record_hook_script for {stream_name} killed after {} s",
            HOOK_TIMEOUT.as_secs()
        );
    }
}
