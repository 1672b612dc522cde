//! What a connected browser (or anyone who learns its address and port) sends to the
//! media port once the handshake is over: consent checks (STUN), SRTCP (forged, and
//! authenticated RTCP with NACK/PLI/FIR/BYE), DTLS records. See
//! `reelcast::webrtc::fuzzing::media_plane_datagrams` for the input layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reelcast::webrtc::fuzzing::media_plane_datagrams(data);
});
