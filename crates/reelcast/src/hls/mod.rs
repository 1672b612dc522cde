//! HLS and Low-Latency HLS of a stream, from memory: the muxer sink and what it keeps.
//!
//! A stream's frames reach [`HlsSink`] like any sink's; its [`Segmenter`] cuts them into
//! CMAF parts and segments ([`cmaf`]: init segment, `moof`+`mdat` fragments, H.264 and
//! AAC as in the file), which go into the stream's [`Window`] (the last `hls_list_size`
//! segments, the media playlist made from them). [`Directory`] finds a stream's window by
//! its id. Serving them over HTTP (URLs, blocking reloads, headers, auto-start) is
//! `crate::hls_http`'s. A stream whose audio is Opus (a published stream) has
//! [`OpusHlsSink`] instead: the same segmenter and window, its Opus re-encoded to AAC on
//! a thread of its own ([`opus_sink`]). An ABR stream's multivariant playlist is
//! [`master`]'s. Nothing here does I/O or knows where frames
//! come from.

pub mod cmaf;
pub mod directory;
pub mod master;
pub mod opus_sink;
pub mod segmenter;
pub mod sink;
pub mod window;

pub use directory::Directory;
pub use opus_sink::{OpusHls, OpusHlsSink};
pub use segmenter::Segmenter;
pub use sink::HlsSink;
pub use window::{PartLookup, Readiness, Stored, Window, WindowConfig};
