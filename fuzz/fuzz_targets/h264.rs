//! H.264 parsing of what a file carries: the `avcC` record, its SPS, samples of
//! length-prefixed NAL units turned into Annex-B, Annex-B walking, and the RTP
//! packetizer that cuts the result for every viewer.
//!
//! Input: `[avcc_len, avcc…, sample…]`.
#![no_main]

use codec::h264::{self, AnnexBNalUnits, AvcConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&avcc_len, rest)) = data.split_first() else {
        return;
    };
    let (avcc, sample) = rest.split_at(usize::from(avcc_len).min(rest.len()));
    let _ = h264::parse_sps(sample);
    for nal in AnnexBNalUnits::new(sample) {
        let _ = h264::nal_type(nal);
    }
    let Ok(cfg) = AvcConfig::parse(avcc) else {
        return;
    };
    let _ = cfg.profile_level_id();
    if let Some(Ok(sps)) = cfg.first_sps_info() {
        let _ = sps.may_reorder();
    }
    let _ = h264::sample_has_idr(&cfg, sample);
    let _ = h264::sample_nal_types(&cfg, sample);
    let mut annex_b = Vec::new();
    if h264::sample_to_annex_b(&cfg, sample, true, &mut annex_b).is_ok() {
        for size in reelcast::webrtc::fuzzing::packetize_picture(&annex_b, true) {
            assert!(
                size <= 1200,
                "an RTP payload of {size} bytes does not fit a datagram"
            );
        }
    }
});
