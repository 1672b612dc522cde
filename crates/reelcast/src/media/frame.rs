//! The unit that flows from a source through a stream to its sinks.

use std::sync::Arc;

/// What a frame holds: its kind and, for audio, its codec.
///
/// AAC is a kind of its own rather than a codec field on every frame: the WebRTC path
/// (feed, hub, viewers) knows `Audio` as Opus and never sees AAC, and the HLS muxer
/// wants the file's AAC as it is. Only translations read it (the reader emits it beside
/// the Opus made from it when asked: `stream::MediaReader::emit_aac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Opus packets.
    Audio,
    /// H.264 pictures.
    Video,
    /// One raw AAC access unit as the file has it (no ADTS header), for sinks that
    /// carry AAC (HLS). Its `dts_us` is its presentation time (no audio lead).
    Aac,
}

/// One access unit, ready to be sent: a whole H.264 picture in Annex-B form (with SPS/PPS
/// in front of every keyframe), one Opus packet, or one AAC access unit.
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
