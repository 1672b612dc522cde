//! Codec-level media handling: the `Frame` every stage passes along, H.264 bitstream
//! work and audio transcoding. Nothing here does I/O or knows about viewers.

pub mod frame;
pub use frame::{Frame, MediaKind};
