//! CMAF boxes for HLS: the fragmented-MP4 writer of `crates/mp4` (`mp4::write`), which
//! the recorder shares. Re-exported here so the segmenter names what HLS uses.

pub use mp4::write::fragmented::{
    fragment, init_segment, AudioCodec, AudioConfig, Sample, TrackRun, VideoConfig, AUDIO_TRACK,
    VIDEO_TIMESCALE, VIDEO_TRACK,
};
