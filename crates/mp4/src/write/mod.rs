//! The writing side, sans-IO like the reader: fragmented MP4 as it is made
//! ([`fragmented`]: init segment and `moof`+`mdat` fragments, for HLS and the recorder),
//! and the step from a fragmented file to a progressive one with its `moov` first
//! ([`finalize`], with the scan that keeps the complete fragments of a torn file).

pub mod finalize;
pub mod fragmented;

#[cfg(test)]
mod tests;

pub use finalize::{finalize, scan, FinalizeError, Finalized, Scan};
pub use fragmented::{
    fragment, init_segment, AudioCodec, AudioConfig, Sample, TrackRun, VideoConfig, AUDIO_TRACK,
    VIDEO_TIMESCALE, VIDEO_TRACK,
};
