//! The fragment (`moof`/`traf`/`trun`) parser: a real fragmented file's `ftyp` and `moov`
//! (with `mvex`) followed by fuzzed top-level boxes, so every input reaches the fragments.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// `ftyp` + `moov` of a fragmented H.264 + AAC file (`ffmpeg -movflags
/// frag_keyframe+empty_moov+default_base_moof`), cut before its first `moof`.
const HEAD: &[u8] = include_bytes!("../data/fragmented_head.mp4");

fuzz_target!(|fragments: &[u8]| {
    let mut file = Vec::with_capacity(HEAD.len() + fragments.len());
    file.extend_from_slice(HEAD);
    file.extend_from_slice(fragments);
    if let Ok(movie) = mp4::open_in_memory(&file) {
        for track in &movie.tracks {
            let Some(index) = track.samples.index() else {
                continue;
            };
            for s in index.iter().take(20_000) {
                let _ = (track.presentation_time(&s), track.to_us(s.dts));
            }
            let _ = (index.end_dts(), index.sync_at_or_before(index.len() / 2));
        }
    }
});
