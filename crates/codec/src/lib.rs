//! Codec work for reelcast: everything that looks inside the compressed media, and
//! nothing that moves it.
//!
//! - [`h264`]: `avcC` and SPS parsing, MP4 samples (length-prefixed NAL units) to Annex-B
//!   with SPS/PPS before every keyframe — what the WebRTC packetizer wants.
//! - [`audio`]: AAC (LC, HE-AAC, HE-AACv2; mono to 5.1) to Opus (48 kHz stereo, 20 ms
//!   packets) with a drift-free timeline — what a WebRTC browser can play.
//! - [`pcm_to_opus`]: 48 kHz stereo samples (audio another decoder made) to Opus, with
//!   the same timeline rules.
//! - [`opus_to_aac`]: Opus to AAC-LC (48 kHz, the stream's channels), counted in samples,
//!   priming left for the MP4 edit list — what a recording carries.
//!
//! AAC itself is decoded and encoded by libavcodec's own AAC codecs through the
//! `transcode` crate (the workspace's one FFI to FFmpeg); this crate keeps the timelines,
//! resampling and Opus around them.
//!
//! This crate does no I/O and reads no clock: it takes bytes (and presentation times)
//! and returns bytes. Demuxing is the `mp4` crate's job; RTP, pacing and fan-out are the
//! server's. Work here runs once per stream, never once per viewer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod h264;
pub mod opus_to_aac;
pub mod pcm_to_opus;
