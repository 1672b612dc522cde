//! Filling one cache entry: a thread that reads a file through its own stream reader
//! (the video transcoded, the audio as the reader passes it: Opus) as fast as the
//! machine goes, not paced, into a fragmented MP4 part file, then finalizes it (moov
//! first) and renames it into place.
//!
//! Owns the part file `.S-V.mp4.part` (hidden: never taken for an entry, removed at the
//! next start if the server stops first). The job's reader holds a video transcoder
//! (`reelcast_video_transcoders_busy`, within `video_transcoders_max`) while it runs.
//! A write error (a full disk), a read error or an entry growing past the cache's limit
//! stops the job and removes its part; the plays of the file never wait on it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Arc;

use tracing::{info, warn};

use super::key::EntryName;
use super::{AnyReader, TranscodeCache};
use crate::config::RecordAudioCodec;
use crate::record::fragmenter::Fragmenter;
use crate::record::writer::{finalize_file, reason};
use crate::stream::StreamError;

/// Opens the job's own reader of the file (on the job's thread).
pub type Opener = Box<dyn FnOnce() -> Result<AnyReader, StreamError> + Send>;

/// Removes the job from the cache's list when it ends, however it ends.
struct Running {
    cache: Arc<TranscodeCache>,
    name: EntryName,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cache.job_ended(&self.name);
    }
}

/// Runs the job for `name` on a thread of its own; the cache has listed it as running.
pub fn spawn(cache: Arc<TranscodeCache>, name: EntryName, open: Opener) {
    let running = Running { cache, name };
    let spawned = std::thread::Builder::new()
        .name("transcode-cache".into())
        .spawn(move || {
            let file_name = running.name.file_name();
            let _span = tracing::info_span!("transcode_cache", entry = %file_name).entered();
            let dir = running.cache.dir().to_path_buf();
            let part = format!(".{file_name}.part");
            // Made by the first job (not at start: a server that never caches leaves no
            // folder behind).
            let made = std::fs::create_dir_all(&dir).map_err(|e| format!("the cache folder: {e}"));
            match made.and_then(|()| fill(&running.cache, open, &dir.join(&part))) {
                Ok(()) => match finalize_file(&dir, &part, &file_name) {
                    Ok(done) => {
                        let bytes = std::fs::metadata(dir.join(&file_name)).map_or(0, |m| m.len());
                        info!("transcode cached: {} ms, {bytes} bytes", done.duration_ms);
                        running.cache.entry_made(running.name.clone(), bytes);
                    }
                    Err(e) => {
                        warn!("the transcode could not be cached: {e}");
                        let _ = std::fs::remove_file(dir.join(&part));
                    }
                },
                Err(e) => {
                    info!("the transcode is not cached: {e}");
                    let _ = std::fs::remove_file(dir.join(&part));
                }
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start a transcode cache job: {e}");
    }
}

/// Reads the whole file through the job's reader into the part file at `path`.
fn fill(cache: &TranscodeCache, open: Opener, path: &std::path::Path) -> Result<(), String> {
    let mut reader = open().map_err(|e| e.to_string())?;
    let info = reader.info().clone();
    if !info.transcoded_video {
        return Err("the file's video needs no transcoding".into());
    }
    let file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| reason(&e))?;
    let mut out = Output {
        file: BufWriter::with_capacity(256 << 10, file),
        written: 0,
        limit: cache.max_bytes(),
    };
    let mut fragmenter = Fragmenter::new(info.has_video, RecordAudioCodec::Opus);
    let mut pieces = Vec::new();
    while let Some(frame) = reader.read_frame().map_err(|e| e.to_string())? {
        fragmenter.push(&frame, &mut pieces);
        out.append(&mut pieces)?;
    }
    fragmenter.finish(&mut pieces);
    out.append(&mut pieces)?;
    out.file.flush().map_err(|e| reason(&e))?;
    if fragmenter.is_empty() {
        return Err("the transcode made no pictures".into());
    }
    Ok(())
}

/// The part file being written, and how much it holds.
struct Output {
    file: BufWriter<File>,
    written: u64,
    /// An entry larger than the whole cache would be evicted at once: stop early.
    limit: u64,
}

impl Output {
    /// Appends what the fragmenter made.
    fn append(&mut self, pieces: &mut Vec<Vec<u8>>) -> Result<(), String> {
        for bytes in pieces.drain(..) {
            self.file.write_all(&bytes).map_err(|e| reason(&e))?;
            self.written += bytes.len() as u64;
        }
        if self.written > self.limit {
            return Err("it is larger than transcode_cache_max_size".into());
        }
        Ok(())
    }
}
