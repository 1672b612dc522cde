//! One recording's file: a thread of its own fed through a bounded channel, appending
//! each fragment and syncing it to disk (`sync_data`), then finalizing at the end.
//!
//! Owns the file I/O of a recording and its [`RecordingState`]. The stream's task never
//! waits on it: frames are handed over with `try_send` (`super::sink`), and the
//! channel's end (the sender dropped) is the stop. A write error (a full disk) stops
//! the recording with the plain reason in its state and one log line; the stream is
//! not touched. A thread rather than tokio's blocking pool: a recording lasts hours,
//! and the pool's 64 threads serve every stream's reads.
//!
//! The thread takes its frames in batches: after each batch it sleeps [`BATCH`], so the
//! frames of that time wait in the channel and the stream's `try_send`s find nobody to
//! wake. Woken for every frame (30 pictures and 50 audio packets a second), the thread
//! cost a published stream's recording about a tenth of its CPU in wake-ups alone. What a
//! `kill -9` can lose stays under a second: fragments are cut [`BATCH`] shorter
//! (`super::fragmenter::MAX_FRAGMENT_US`).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::fragmenter::Fragmenter;
use super::hook;
use super::names::{self, NameFields};
use crate::config::{RecordAudioCodec, RecordPolicy};
use crate::media::Frame;

/// How long the writer sleeps after each batch of frames (see the module docs).
pub const BATCH: Duration = Duration::from_millis(50);

/// Where a recording is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// Fragments are being appended.
    Recording,
    /// Stopped; the final file is being written.
    Finalizing,
    /// The final file is in place.
    Done,
    /// Stopped by an error (the plain reason); what was written before stays, as a
    /// fragmented file to recover when finalizing it failed too.
    Failed(String),
}

impl RecordStatus {
    /// `RECORDING`, `FINALIZING`, `DONE`, or `FAILED: reason`: what REST shows.
    pub fn text(&self) -> String {
        match self {
            RecordStatus::Recording => "RECORDING".into(),
            RecordStatus::Finalizing => "FINALIZING".into(),
            RecordStatus::Done => "DONE".into(),
            RecordStatus::Failed(why) => format!("FAILED: {why}"),
        }
    }
}

/// A recording's state, shared by its writer, its sink and the recorder's list.
#[derive(Debug)]
pub struct RecordingState {
    name: Mutex<String>,
    status: Mutex<RecordStatus>,
    /// Set once nothing more will be written (finalized, or given up).
    finished: std::sync::atomic::AtomicBool,
}

impl RecordingState {
    pub(crate) fn new(name: String) -> Arc<Self> {
        Arc::new(RecordingState {
            name: Mutex::new(name),
            status: Mutex::new(RecordStatus::Recording),
            finished: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The file's name in `record_dir` (the final one once finalized).
    pub fn name(&self) -> String {
        self.name.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Where it is now.
    pub fn status(&self) -> RecordStatus {
        self.status
            .lock()
            .map_or(RecordStatus::Failed("internal error".into()), |s| s.clone())
    }

    /// The writer has let go of the file.
    pub fn is_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set(&self, status: RecordStatus) {
        if let Ok(mut s) = self.status.lock() {
            // A failure is kept: a later stage does not hide it.
            if !matches!(*s, RecordStatus::Failed(_)) {
                *s = status;
            }
        }
    }

    /// Stops the recording for `why` and says so once in the log.
    pub(crate) fn fail(&self, why: &str) {
        if !matches!(self.status(), RecordStatus::Failed(_)) {
            warn!("Recording {} stopped: {why}", self.name());
        }
        self.set(RecordStatus::Failed(why.to_string()));
    }
}

/// The plain reason of an I/O error (never a path).
pub fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "no space left on device".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        kind => format!("write error ({kind})"),
    }
}

/// What a writer thread is given.
pub(crate) struct Job {
    pub dir: PathBuf,
    pub file: File,
    pub fields: NameFields,
    pub policy: RecordPolicy,
    pub template: String,
    pub codec: RecordAudioCodec,
    pub has_video: bool,
    pub hook: Option<PathBuf>,
    pub state: Arc<RecordingState>,
    pub frames: Receiver<Frame>,
}

/// The writer thread's body: append until the channel ends, then finalize.
pub(crate) fn run(job: Job) {
    let Job {
        dir,
        file,
        mut fields,
        policy,
        template,
        codec,
        has_video,
        hook,
        state,
        frames,
    } = job;
    let name = state.name();
    let mut file = Some(file);
    let mut fragmenter = Fragmenter::new(has_video, codec);
    let mut out = Vec::new();
    while let Ok(frame) = frames.recv() {
        fragmenter.push(&frame, &mut out);
        while let Ok(frame) = frames.try_recv() {
            fragmenter.push(&frame, &mut out);
        }
        append(&mut file, &mut out, &state);
        std::thread::sleep(BATCH);
    }
    fragmenter.finish(&mut out);
    append(&mut file, &mut out, &state);
    drop(file);
    if fragmenter.is_empty() {
        // Stopped before its first keyframe (a publisher that never connected, or left
        // at once): there is nothing to finalize, and an empty file with its sidecar
        // would stay behind, a recovery failure at every start.
        discard(&dir, &name);
        state.fail("nothing was recorded (no picture to begin at arrived)");
        state
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
        return;
    }
    if fragmenter.audio_errors > 0 {
        warn!(
            "Recording {name}: {} audio packets could not be re-encoded",
            fragmenter.audio_errors
        );
    }
    state.set(RecordStatus::Finalizing);
    fields.end = Some(SystemTime::now());
    let final_name = if policy == RecordPolicy::Template && names::needs_end(&template) {
        let wanted = names::file_name(policy, &template, &fields);
        names::unique(&wanted, |n| n != name && dir.join(n).exists())
    } else {
        name.clone()
    };
    match finalize_file(&dir, &name, &final_name) {
        Ok(done) => {
            if let Ok(mut n) = state.name.lock() {
                n.clone_from(&final_name);
            }
            state.set(RecordStatus::Done);
            info!(
                "Recording {final_name} complete: {} ms, {} bytes",
                done.duration_ms, done.bytes
            );
            state
                .finished
                .store(true, std::sync::atomic::Ordering::Release);
            if let Some(script) = hook {
                hook::run(&script, &fields.stream_name, &dir.join(&final_name));
            }
        }
        Err(e) => {
            state.fail(&format!("could not be finalized: {e}"));
            warn!(
                "Recording {name} is kept as it was written; `reelcast recover` (or the next start) finalizes it"
            );
            state
                .finished
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Removes the recording `name` (an empty one) and then its sidecar.
pub(crate) fn discard(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(dir.join(name));
    let _ = std::fs::remove_file(dir.join(names::sidecar(name)));
}

/// Writes what the fragmenter made and syncs it; on an error the file is let go.
fn append(file: &mut Option<File>, out: &mut Vec<Vec<u8>>, state: &RecordingState) {
    if out.is_empty() {
        return;
    }
    let Some(f) = file.as_mut() else {
        out.clear();
        return;
    };
    let result = out
        .drain(..)
        .try_for_each(|bytes| f.write_all(&bytes))
        .and_then(|()| f.sync_data());
    if let Err(e) = result {
        state.fail(&reason(&e));
        *file = None;
    }
}

/// What finalizing a fragmented recording gave.
pub type Finalized = mp4::write::Finalized;

/// Makes `dir/name` (fragmented, maybe torn) the faststart `dir/final_name`: written to
/// a hidden temporary, synced, renamed into place, then the sidecar removed.
pub fn finalize_file(dir: &Path, name: &str, final_name: &str) -> Result<Finalized, String> {
    let source = dir.join(name);
    let temp = dir.join(names::temporary(final_name));
    let result = (|| -> Result<Finalized, String> {
        let input = File::open(&source).map_err(|e| reason(&e))?;
        let len = input.metadata().map_err(|e| reason(&e))?.len();
        let output = File::create(&temp).map_err(|e| reason(&e))?;
        let mut w = BufWriter::with_capacity(256 << 10, output);
        let done =
            mp4::write::finalize(&mut BufReader::with_capacity(256 << 10, input), len, &mut w)
                .map_err(|e| match e {
                    mp4::write::FinalizeError::Io(e) => reason(&e),
                    other => other.to_string(),
                })?;
        let output = w.into_inner().map_err(|e| reason(e.error()))?;
        output.sync_all().map_err(|e| reason(&e))?;
        std::fs::rename(&temp, dir.join(final_name)).map_err(|e| reason(&e))?;
        if final_name != name {
            let _ = std::fs::remove_file(&source);
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let _ = std::fs::remove_file(dir.join(names::sidecar(name)));
        Ok(done)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `dir` if needed, then `dir/name` (new) and its sidecar.
pub(crate) fn create(dir: &Path, name: &str) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(name))?;
    File::create(dir.join(names::sidecar(name)))?.sync_all()?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}
