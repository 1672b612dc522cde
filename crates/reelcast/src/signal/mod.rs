//! Signalling: how browsers ask for streams. The WCS WebSocket protocol (`wcs`, spoken by
//! the official Flashphoner web SDK) and WHEP (`whep`, plain HTTP). Both are thin: they
//! turn messages into [`crate::playback`] calls and report stream statuses back.
//!
//! Must not: touch media or WebRTC engines directly.

pub mod wcs;
pub mod whep;
