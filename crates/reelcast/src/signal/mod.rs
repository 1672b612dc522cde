//! Signalling: how browsers ask for streams and publish them. The WCS WebSocket protocol
//! (`wcs`, spoken by the official Flashphoner web SDK), WHEP (`whep`, plain HTTP) and
//! WHIP (`whip`, plain HTTP). All are thin: they turn messages into [`crate::playback`]
//! and [`crate::publishing`] calls and report stream statuses back.
//!
//! Must not: touch media or WebRTC engines directly.

pub mod wcs;
pub mod whep;
pub mod whip;
