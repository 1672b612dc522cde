//! The multivariant playlist of an HLS ABR stream (RFC 8216bis §4.4.6): one
//! `#EXT-X-STREAM-INF` per variant, with what a player picks a variant by, read from the
//! variant's own CMAF output (its init segment's codecs, its segments' bit rates and
//! frame rate) rather than from settings, so that it says what is served.
//!
//! Owns: the playlist text and reading those figures out of the boxes. Must not: know
//! which variants a stream has or where their windows are (that is `crate::hls_http`).

use std::fmt::Write as _;

use super::cmaf::{VIDEO_TIMESCALE, VIDEO_TRACK};

/// One variant as the multivariant playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Its media playlist, relative to the multivariant one.
    pub uri: String,
    /// `BANDWIDTH`: the highest bit rate of a segment, bits/s.
    pub peak_bps: u64,
    /// `AVERAGE-BANDWIDTH`, bits/s.
    pub average_bps: u64,
    /// `RESOLUTION` (0×0: none, an audio-only variant).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// `CODECS` (`avc1.42c01f,mp4a.40.2`).
    pub codecs: String,
    /// `FRAME-RATE`, when known.
    pub frame_rate: Option<f64>,
}

/// The multivariant playlist of `variants`, highest first as given.
pub fn multivariant(variants: &[Variant]) -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        // Writing to a String cannot fail.
        let _ = write!(
            m,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            v.peak_bps.max(1),
            v.average_bps.max(1),
            v.codecs
        );
        if v.width > 0 && v.height > 0 {
            let _ = write!(m, ",RESOLUTION={}x{}", v.width, v.height);
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(m, ",FRAME-RATE={fps:.3}");
        }
        let _ = write!(m, "\n{}\n", v.uri);
    }
    m
}

/// The boxes of `data`: (type, payload).
fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = usize::try_from(u32::from_be_bytes(data.get(..4)?.try_into().ok()?)).ok()?;
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        // Size 0 (to the end) and 64-bit sizes are not written by our muxer.
        let body = data.get(8..size)?;
        data = &data[size..];
        Some((kind, body))
    })
}

/// The first box of `kind` anywhere in the tree of `data` under the container boxes
/// named in `through`.
fn find<'a>(data: &'a [u8], through: &[&[u8; 4]], kind: &[u8; 4]) -> Option<&'a [u8]> {
    for (k, body) in boxes(data) {
        if &k == kind {
            return Some(body);
        }
        if through.contains(&&k) {
            // `stsd` and the sample entries carry fields before their children.
            let skip = match &k {
                b"stsd" => 8,
                b"avc1" => 78,
                b"mp4a" => 28,
                _ => 0,
            };
            if let Some(found) = body.get(skip..).and_then(|b| find(b, through, kind)) {
                return Some(found);
            }
        }
    }
    None
}

const INIT_PATH: [&[u8; 4]; 9] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"avc1", b"mp4a", b"esds",
];

/// The `CODECS` of an init segment: `avc1.PPCCLL` from its `avcC` (profile,
/// constraint flags, level), `mp4a.40.N` from its AAC's audio object type.
pub fn codecs(init: &[u8]) -> String {
    let mut out = Vec::new();
    if let Some(avcc) = find(init, &INIT_PATH, b"avcC") {
        if let Some([profile, constraints, level]) = avcc.get(1..4) {
            out.push(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"));
        }
    }
    if find(init, &INIT_PATH, b"mp4a").is_some() {
        let object_type = find(init, &INIT_PATH, b"esds")
            .and_then(aac_object_type)
            .unwrap_or(2);
        out.push(format!("mp4a.40.{object_type}"));
    }
    out.join(",")
}

/// The audio object type of the AAC `esds` body (ISO 14496-1 descriptors: ES, decoder
/// configuration, decoder specific information, whose first five bits it is).
fn aac_object_type(esds: &[u8]) -> Option<u8> {
    // Version and flags.
    let mut d = esds.get(4..)?;
    let descriptor = |d: &mut &[u8], tag: u8| -> Option<()> {
        if *d.first()? != tag {
            return None;
        }
        let mut at = 1;
        // The size, 7 bits a byte, at most four bytes.
        while d.get(at)? & 0x80 != 0 && at < 4 {
            at += 1;
        }
        *d = d.get(at + 1..)?;
        Some(())
    };
    descriptor(&mut d, 0x03)?;
    let flags = *d.get(2)?;
    let mut skip = 3;
    if flags & 0x80 != 0 {
        skip += 2;
    }
    if flags & 0x40 != 0 {
        skip += 1 + usize::from(*d.get(skip)?);
    }
    if flags & 0x20 != 0 {
        skip += 2;
    }
    d = d.get(skip..)?;
    descriptor(&mut d, 0x04)?;
    d = d.get(13..)?;
    descriptor(&mut d, 0x05)?;
    let object_type = d.first()? >> 3;
    (object_type > 0).then_some(object_type)
}

/// Pictures per second of a CMAF segment lasting `duration_us`: from the typical
/// (median) duration of its video track's samples (`moof`/`traf`/`trun` of the video
/// track), so a gap (pictures an encoder dropped) does not lower it; over the segment's
/// length when the runs do not state durations.
pub fn frame_rate(segment: &[u8], duration_us: i64) -> Option<f64> {
    let (mut pictures, mut durations) = (0u64, Vec::new());
    for (kind, moof) in boxes(segment) {
        if &kind != b"moof" {
            continue;
        }
        for (kind, traf) in boxes(moof) {
            if &kind != b"traf" {
                continue;
            }
            let track = boxes(traf)
                .find(|(k, _)| k == b"tfhd")
                .and_then(|(_, b)| b.get(4..8))
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if track != Some(VIDEO_TRACK) {
                continue;
            }
            for (kind, trun) in boxes(traf) {
                if &kind == b"trun" {
                    pictures += u64::from(run_samples(trun, &mut durations)?);
                }
            }
        }
    }
    if pictures == 0 {
        return None;
    }
    durations.sort_unstable();
    match durations.get(durations.len() / 2) {
        Some(&typical) if typical > 0 => Some(f64::from(VIDEO_TIMESCALE) / f64::from(typical)),
        _ => (duration_us > 0).then(|| pictures as f64 * 1e6 / duration_us as f64),
    }
}

/// A `trun` body's sample count; each sample's duration, when stated, goes to
/// `durations` (timescale ticks).
fn run_samples(trun: &[u8], durations: &mut Vec<u32>) -> Option<u32> {
    let word = |at: usize| {
        trun.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let flags = word(0)? & 0x00ff_ffff;
    let count = word(4)?;
    let mut at = 8;
    if flags & 0x01 != 0 {
        at += 4;
    }
    if flags & 0x04 != 0 {
        at += 4;
    }
    if flags & 0x100 == 0 {
        return Some(count);
    }
    let per_sample = 4 * [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count();
    for i in 0..usize::try_from(count).ok()? {
        durations.push(word(at + i * per_sample)?);
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::cmaf::{fragment, init_segment, AudioCodec, AudioConfig, Sample, TrackRun};
    use crate::hls::cmaf::{VideoConfig, AUDIO_TRACK};

    #[test]
    fn a_variant_line_says_what_a_player_picks_by() {
        let text = multivariant(&[Variant {
            uri: "480p.m3u8".into(),
            peak_bps: 1_400_000,
            average_bps: 1_200_000,
            width: 854,
            height: 480,
            codecs: "avc1.42c01e,mp4a.40.2".into(),
            frame_rate: Some(30.0),
        }]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1400000,AVERAGE-BANDWIDTH=1200000,\
             CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=854x480,FRAME-RATE=30.000\n480p.m3u8\n"
        );
    }

    #[test]
    fn garbage_gives_no_codecs_and_no_rate() {
        assert_eq!(codecs(b"\0\0\0\x10moovxxxxxxxx"), "");
        assert_eq!(codecs(&[0xff; 40]), "");
        assert_eq!(frame_rate(&[0, 0, 0, 1], 1_000_000), None);
        assert_eq!(aac_object_type(&[0; 3]), None);
    }

    #[test]
    fn codecs_and_frame_rate_come_from_the_muxers_boxes() {
        let video = VideoConfig {
            width: 1280,
            height: 720,
            sps: vec![0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40],
            pps: vec![0x68, 0xeb, 0xe3, 0xcb],
        };
        let audio = AudioConfig {
            codec: AudioCodec::Aac {
                asc: vec![0x12, 0x10],
            },
            priming: 0,
            sample_rate: 44100,
            channels: 2,
        };
        let init = init_segment(Some(&video), Some(&audio));
        assert_eq!(codecs(&init), "avc1.64001f,mp4a.40.2");
        // 30 fps at the 90 kHz video timescale.
        let sample = |sync| Sample {
            duration: 3000,
            size: 1,
            sync,
            cts_offset: 0,
        };
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK,
                base_decode_time: 0,
                // A gap (dropped pictures) after the fifth does not change the rate.
                samples: (0..15)
                    .map(|i| Sample {
                        duration: if i == 4 { 30_000 } else { 3000 },
                        ..sample(i == 0)
                    })
                    .collect(),
                data: vec![0u8; 15],
            },
            TrackRun {
                track_id: AUDIO_TRACK,
                base_decode_time: 0,
                samples: vec![sample(true)],
                data: vec![0u8; 1],
            },
        ];
        let segment = fragment(1, &runs);
        // The pictures' own durations, whatever the segment's length says.
        assert_eq!(frame_rate(&segment, 800_000), Some(30.0));
    }
}
