//! Transcoding for reelcast: what a WebRTC browser cannot take, decoded and re-encoded.
//!
//! - [`video`]: any video the server knows (H.264 with B-frames, HEVC, VP9, AV1, MPEG-4
//!   Part 2) decoded and encoded to H.264 constrained baseline: no B-frames, keyframes
//!   where the source has them and at least every 2 s, what browsers' WebRTC decoders
//!   play; at another size or bit rate when asked (a rendition); or VP8 (libvpx, realtime
//!   settings) for a browser without H.264 ([`OutputCodec`]).
//! - [`audio`]: MP3, AC-3, E-AC-3 and FLAC decoded to 48 kHz stereo samples (the server
//!   encodes those to Opus, as it does decoded AAC).
//! - [`aac`]: AAC decoded (LC, HE-AAC v1/v2, mono to 5.1) to stereo at its own rate, and
//!   48 kHz PCM encoded to AAC-LC: what the `codec` crate's AAC → Opus and Opus → AAC
//!   transcoders use.
//!
//! Owns: the FFmpeg libraries (libavcodec, libswscale, libswresample from the system,
//! through `ffmpeg-next`) and so this workspace's whole FFI surface for them: the one
//! `unsafe` block is in [`ffi`], the rest uses the binding's safe API. Must not: do I/O,
//! read a clock, or know threads or async: it takes compressed packets with their times
//! and returns packets or samples with theirs. The server runs it on a thread of its own
//! per stream (`stream::transcode` in the reelcast crate).
//!
//! **The H.264 encoder is x264** (libx264 through libavcodec), not OpenH264: x264 gives
//! the better picture at a given bit rate and speed, and Debian's libavcodec offers no
//! OpenH264 encoder anyway. Debian's libavcodec is a GPL build (it links x264 and x265),
//! so a reelcast binary linked with it is, as distributed, covered by the GPL (version 2
//! or later): whoever ships such a binary must offer its complete source under the GPL.
//! reelcast's own code stays MIT OR Apache-2.0. See the README's "Licences".

pub mod aac;
pub mod audio;
mod ffi;
pub mod video;

use std::sync::Once;

pub use aac::{AacCoder, AacDecoder, AacEncoder};
pub use audio::{AudioDecoder, AudioInput, DecodedAudio};
pub use video::{fit_size, EncodedFrame, OutputCodec, VideoInput, VideoTranscoder};

/// The codecs the decoders here take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    /// H.264 (configuration: the `avcC` record).
    H264,
    /// HEVC (configuration: the `hvcC` record).
    Hevc,
    /// VP9 (configuration: none needed; `vpcC` carries colour facts only).
    Vp9,
    /// AV1 (configuration: the `av1C` record).
    Av1,
    /// MPEG-4 Part 2 video (configuration: the esds DecoderSpecificInfo).
    Mpeg4Part2,
    /// MP3 (MPEG-1/2 audio layer III).
    Mp3,
    /// AC-3.
    Ac3,
    /// E-AC-3.
    Eac3,
    /// FLAC (configuration: the STREAMINFO block of `dfLa`).
    Flac,
}

impl CodecKind {
    /// The codec's usual name, as users know it.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::H264 => "H.264",
            CodecKind::Hevc => "HEVC",
            CodecKind::Vp9 => "VP9",
            CodecKind::Av1 => "AV1",
            CodecKind::Mpeg4Part2 => "MPEG-4 Part 2",
            CodecKind::Mp3 => "MP3",
            CodecKind::Ac3 => "AC-3",
            CodecKind::Eac3 => "E-AC-3",
            CodecKind::Flac => "FLAC",
        }
    }

    /// libavcodec's decoder for it: by name where Debian's build has several (AV1: the
    /// dav1d decoder, since the built-in one only drives hardware).
    fn decoder(self) -> Option<ffmpeg_next::Codec> {
        use ffmpeg_next::codec::{decoder, Id};
        let id = match self {
            CodecKind::H264 => Id::H264,
            CodecKind::Hevc => Id::HEVC,
            CodecKind::Vp9 => Id::VP9,
            CodecKind::Av1 => {
                return decoder::find_by_name("libdav1d").or_else(|| decoder::find(Id::AV1))
            }
            CodecKind::Mpeg4Part2 => Id::MPEG4,
            CodecKind::Mp3 => Id::MP3,
            CodecKind::Ac3 => Id::AC3,
            CodecKind::Eac3 => Id::EAC3,
            CodecKind::Flac => Id::FLAC,
        };
        decoder::find(id)
    }
}

/// Why a transcode cannot start or go on. The text is what a viewer may be told.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// This build of the FFmpeg libraries has no decoder or encoder for it.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// The decoder refused a packet (a damaged file).
    #[error("{codec} decoding failed: {reason}")]
    Decode {
        /// The codec's name.
        codec: &'static str,
        /// libavcodec's words.
        reason: String,
    },
    /// The video encoder (H.264 or VP8) or the scaler failed.
    #[error("{codec} encoding failed: {reason}")]
    Encode {
        /// What was being made: `H.264`, `VP8`, or `scaled pictures` for the scaler.
        codec: &'static str,
        /// libavcodec's words.
        reason: String,
    },
    /// The AAC encoder failed.
    #[error("AAC encoding failed: {0}")]
    AacEncode(String),
}

/// Once per process: libavcodec's own log lines stay quiet (the callers log what
/// matters, in the server's log format; libav's would go to stderr unformatted).
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

/// `time_base` of every packet and frame here: microseconds, the server's unit.
const MICROS: ffmpeg_next::Rational = ffmpeg_next::Rational(1, 1_000_000);
