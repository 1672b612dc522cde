//! reelcast: a media server that plays MP4 files to browsers over WebRTC, speaking the
//! protocol of Flashphoner Web Call Server so existing WCS apps work unchanged.

pub mod media;
