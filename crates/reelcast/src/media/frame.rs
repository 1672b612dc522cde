//! The unit that flows from a source through a stream to its sinks.

use std::sync::Arc;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Opus packets.
    Audio,
    /// H.264 pictures.
    Video,
}

/// One access unit, ready to be sent: a whole H.264 picture in Annex-B form (with SPS/PPS
/// in front of every keyframe) or one Opus packet.
///
/// Times are microseconds on the stream's own timeline, which starts at 0 when the
/// stream starts and keeps rising across loop seams. `data` is shared between every sink and
/// never copied per viewer (the WebRTC hub cuts it into RTP payloads once per stream).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Audio or video.
    pub kind: MediaKind,
    /// When the frame is due to leave, and the order frames are read in: a picture's
    /// decode time; an audio packet's presentation time less
    /// [`AUDIO_LEAD_US`](crate::stream::pacer::AUDIO_LEAD_US).
    pub dts_us: i64,
    /// Presentation time: what RTP timestamps are made from.
    pub pts_us: i64,
    /// True for a picture a decoder can start from (IDR); always true for audio.
    pub keyframe: bool,
    /// The encoded bytes, shared by every sink.
    pub data: Arc<[u8]>,
}
