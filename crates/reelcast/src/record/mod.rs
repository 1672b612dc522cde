//! Recording streams to MP4 files that survive `kill -9`.
//!
//! While a recording runs, its file at its final path `record_dir/NAME.mp4` *is* a
//! fragmented MP4 (init segment, then fragments of at most a second, each synced to
//! disk as it is written), and a sidecar `record_dir/.NAME.mp4.recording` says it is
//! unfinished. At stop it is finalized: the faststart MP4 is written to a hidden
//! temporary, renamed over the name, and the sidecar removed. Whatever kills the server,
//! at most the last second is lost: [`recover`] makes every file with a sidecar playable
//! (at start, and `reelcast recover`).
//!
//! - [`recorder`]: the list of recordings and the one way to start and stop one;
//! - [`sink`]: a recording as a stream's sink (never waits on the disk);
//! - [`writer`]: the file, on a thread per recording, and finalizing;
//! - [`fragmenter`]: frames to fragments (sans-IO; Opus → AAC here);
//! - [`names`]: file names from WCS's policy and template, made safe;
//! - [`hook`]: `on_record_hook_script`; [`recover`]: unfinished recordings.
//!
//! Must not: know where frames come from (any stream with a `media::SinkSlot` can be
//! recorded) or reach into streams.

pub mod fragmenter;
pub mod hook;
pub mod names;
pub mod recorder;
pub mod recover;
pub mod sink;
pub mod writer;

pub use recorder::{RecordError, Recorder, RecordingInfo};
pub use recover::{recover_dir, Recovered};
pub use sink::Begin;
pub use writer::RecordStatus;
