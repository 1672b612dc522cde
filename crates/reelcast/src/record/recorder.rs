//! The recorder: which streams are being recorded, and the one way to start and stop a
//! recording (REST, and signalling's `record: true` through the registry).
//!
//! Owns the list of recordings (by the stream's media session id) and their writer
//! threads. A recording is attached to a running stream through the stream's
//! [`SinkSlot`] and detached at stop; the writer finalizes it in the background. Must
//! not: know streams beyond their slot and name fields.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::info;

use super::names::{self, NameFields};
use super::sink::{Begin, RecordSink};
use super::writer::{self, Job, RecordStatus, RecordingState};
use crate::config::{RecordAudioCodec, RecordPolicy, Settings};
use crate::media::{AttachId, Ending, SinkSlot, StopReason};

/// Frames a recording's writer may lag behind its stream (the GOP in progress handed
/// over at start included): at 30 pictures and 50 audio packets a second, about 12 s. Frames share their bytes with the stream, so this bounds
/// what a slow disk holds in memory; past it the recording stops.
pub const WRITE_QUEUE_FRAMES: usize = 1024;

/// Why a recording cannot be started or stopped, in the words REST answers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// No running stream has this media session id.
    #[error("Stream not found")]
    NoSuchStream,
    /// The stream is being recorded already.
    #[error("Stream is already being recorded")]
    AlreadyRecording,
    /// The stream is not being recorded.
    #[error("Stream is not being recorded")]
    NotRecording,
    /// The stream ended while the recording was being started.
    #[error("Stream has ended")]
    Ended,
    /// The file could not be created (the reason, never the path).
    #[error("Failed to start recording: {0}")]
    Io(String),
}

/// One recording as REST lists it.
#[derive(Debug, Clone)]
pub struct RecordingInfo {
    /// The file name in `record_dir`.
    pub file_name: String,
    /// The recorded stream's media session id.
    pub media_session_id: String,
    /// Where it is.
    pub status: RecordStatus,
}

struct Entry {
    slot: SinkSlot,
    attach: AttachId,
    state: Arc<RecordingState>,
}

/// Every recording of the server; see the module docs.
pub struct Recorder {
    dir: PathBuf,
    codec: RecordAudioCodec,
    policy: RecordPolicy,
    template: String,
    hook: Option<PathBuf>,
    active: Mutex<HashMap<String, Entry>>,
    /// Every writer not yet finished (stopped ones finalize after leaving `active`).
    writers: Mutex<Vec<Arc<RecordingState>>>,
}

impl Recorder {
    /// A recorder writing where `settings` say.
    pub fn new(settings: &Settings) -> Self {
        Recorder {
            dir: settings.record_dir.clone(),
            codec: settings.record_audio_codec,
            policy: settings.stream_record_policy,
            template: settings.stream_record_policy_template.clone(),
            hook: settings.on_record_hook_script.clone(),
            active: Mutex::default(),
            writers: Mutex::default(),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts recording the stream behind `slot` (listed as `fields.media_session_id`)
    /// from where `begin` says: creates the file and its sidecar (blocking: call from a
    /// blocking thread), starts its writer, attaches its sink. Returns the file name
    /// (`recordName`).
    pub fn start(
        &self,
        slot: &SinkSlot,
        mut fields: NameFields,
        (has_video, has_audio): (bool, bool),
        begin: Begin,
    ) -> Result<String, RecordError> {
        let id = fields.media_session_id.clone();
        {
            let mut active = self.active();
            active.retain(|_, e| !e.slot.is_ended());
            if active.get(&id).is_some_and(|e| !e.state.is_finished()) {
                return Err(RecordError::AlreadyRecording);
            }
        }
        fields.start = Some(SystemTime::now());
        fields.audio_codec = if has_audio {
            match self.codec {
                RecordAudioCodec::Aac => "aac",
                RecordAudioCodec::Opus => "opus",
            }
        } else {
            ""
        }
        .to_string();
        fields.video_codec = if has_video { "H264" } else { "" }.to_string();
        let wanted = names::file_name(self.policy, &self.template, &fields);
        let dir = self.dir.clone();
        let name = names::unique(&wanted, |n| {
            dir.join(n).exists() || dir.join(names::sidecar(n)).exists()
        });
        let file = writer::create(&dir, &name).map_err(|e| RecordError::Io(writer::reason(&e)))?;
        let state = RecordingState::new(name.clone());
        let (tx, rx) = sync_channel(WRITE_QUEUE_FRAMES);
        let job = Job {
            dir: dir.clone(),
            file,
            fields,
            policy: self.policy,
            template: self.template.clone(),
            codec: self.codec,
            has_video,
            hook: self.hook.clone(),
            state: state.clone(),
            frames: rx,
        };
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer::run(job))
            .map_err(|e| RecordError::Io(writer::reason(&e)))?;
        let (sink, taking) = RecordSink::new(tx, state.clone(), begin);
        let Ok(attach) = slot.attach(Box::new(sink)) else {
            // The sink came back and is dropped: its writer finalizes what little it has.
            return Err(RecordError::Ended);
        };
        // The pre-roll has been handed over (and dropped, if so asked): what comes now is new.
        taking.store(true, std::sync::atomic::Ordering::Release);
        info!("Recording {name} started (stream {id})");
        self.writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(state.clone());
        self.active().insert(
            id,
            Entry {
                slot: slot.clone(),
                attach,
                state,
            },
        );
        Ok(name)
    }

    /// Stops the recording of stream `media_session_id`; the file is finalized in the
    /// background. Returns its name.
    pub fn stop(&self, media_session_id: &str) -> Result<String, RecordError> {
        let entry = self
            .active()
            .remove(media_session_id)
            .ok_or(RecordError::NotRecording)?;
        entry
            .slot
            .detach(entry.attach, &Ending::Stopped(StopReason::ByUser));
        Ok(entry.state.name())
    }

    /// Recordings of running streams (a failed one stays listed, with its reason, until
    /// it is stopped or its stream ends).
    pub fn list(&self) -> Vec<RecordingInfo> {
        let mut active = self.active();
        active.retain(|_, e| !e.slot.is_ended());
        let mut list: Vec<RecordingInfo> = active
            .iter()
            .map(|(id, e)| RecordingInfo {
                file_name: e.state.name(),
                media_session_id: id.clone(),
                status: e.state.status(),
            })
            .collect();
        list.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        list
    }

    /// Whether stream `media_session_id` is being recorded now.
    pub fn is_recording(&self, media_session_id: &str) -> bool {
        self.active()
            .get(media_session_id)
            .is_some_and(|e| !e.slot.is_ended() && e.state.status() == RecordStatus::Recording)
    }

    /// Recordings whose writer has not finished (finalizing included).
    pub fn unfinished(&self) -> usize {
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writers.retain(|w| !w.is_finished());
        writers.len()
    }

    /// Waits until every recording is finalized, at most `limit`; true when all are.
    pub async fn wait_finalized(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.unfinished();
            if left == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                tracing::warn!("{left} recordings not finalized before the grace period ended; the next start recovers them");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Sink;

    #[test]
    fn a_recording_stopped_before_its_first_keyframe_leaves_nothing_behind() {
        let dir =
            std::env::temp_dir().join(format!("reelcast-recorder-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = Settings {
            record_dir: dir.clone(),
            ..Settings::default()
        };
        let recorder = Recorder::new(&settings);
        let (slot, mut stream) = SinkSlot::new();
        stream.start(Instant::now());
        let fields = NameFields {
            stream_name: "cam".into(),
            media_session_id: "m-1".into(),
            ..NameFields::default()
        };
        let name = recorder
            .start(&slot, fields, (true, true), Begin::NextKeyframe)
            .unwrap();
        assert!(dir.join(&name).is_file() && dir.join(names::sidecar(&name)).is_file());
        // The publisher never sent a picture (it never connected): the stream ends.
        stream.end(&Ending::Stopped(StopReason::ByUser));
        let deadline = Instant::now() + Duration::from_secs(10);
        while recorder.unfinished() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(recorder.unfinished(), 0);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
