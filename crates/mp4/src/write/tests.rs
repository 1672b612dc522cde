//! The writer read back by this crate's own reader, and the finalized file by ffmpeg.

use std::io::Cursor;

use super::*;
use crate::{open_in_memory, Codec, TrackKind};

fn video() -> VideoConfig {
    VideoConfig {
        sps: vec![0x67, 0x42, 0xc0, 0x1e, 0xda],
        pps: vec![0x68, 0xce, 0x3c, 0x80],
        width: 320,
        height: 240,
    }
}

fn aac(priming: u32) -> AudioConfig {
    AudioConfig {
        codec: AudioCodec::Aac {
            asc: vec![0x11, 0x90],
        },
        priming,
        sample_rate: 48_000,
        channels: 2,
    }
}

/// `n` fragments of a second each: 25 pictures (keyframe first) and 47 AAC frames,
/// sample bytes numbered so a copy can be checked. Audio starts 20 ms after video.
fn fragmented(n: u32, priming: u32) -> Vec<u8> {
    let mut out = init_segment(Some(&video()), Some(&aac(priming)));
    for f in 0..n {
        let mut v = TrackRun {
            track_id: VIDEO_TRACK,
            base_decode_time: u64::from(f) * 90_000,
            ..TrackRun::default()
        };
        for i in 0..25u32 {
            let size = 100 + i;
            v.samples.push(Sample {
                duration: 3600,
                size,
                sync: i == 0,
                cts_offset: 0,
            });
            v.data
                .extend(std::iter::repeat_n((f * 25 + i) as u8, size as usize));
        }
        let mut a = TrackRun {
            track_id: AUDIO_TRACK,
            base_decode_time: 960 + u64::from(f) * 47 * 1024,
            ..TrackRun::default()
        };
        for i in 0..47u32 {
            a.samples.push(Sample {
                duration: 1024,
                size: 10,
                sync: true,
                cts_offset: 0,
            });
            a.data.extend([i as u8; 10]);
        }
        out.extend(fragment(f + 1, &[v, a]));
    }
    out
}

fn finalized(file: &[u8]) -> (Vec<u8>, Finalized) {
    let mut out = Vec::new();
    let done = finalize(&mut Cursor::new(file), file.len() as u64, &mut out).expect("finalizes");
    (out, done)
}

#[test]
fn finalized_file_has_moov_first_and_every_sample() {
    let file = fragmented(3, 0);
    let (out, done) = finalized(&file);
    assert_eq!(&out[4..8], b"ftyp");
    let moov_at = u32::from_be_bytes(out[0..4].try_into().unwrap()) as usize;
    assert_eq!(&out[moov_at + 4..moov_at + 8], b"moov");
    let m = open_in_memory(&out).expect("our reader opens it");
    assert!(!m.fragmented);
    assert_eq!(done.samples, 3 * (25 + 47));
    assert_eq!(done.torn_bytes, 0);
    let v = m
        .tracks
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .unwrap();
    assert!(matches!(
        v.codec,
        Codec::H264 {
            width: 320,
            height: 240,
            ..
        }
    ));
    let vs: Vec<_> = v.samples.index().unwrap().iter().collect();
    assert_eq!(vs.len(), 75);
    assert_eq!(vs.iter().filter(|s| s.sync).count(), 3);
    assert_eq!(vs[26].dts, 26 * 3600);
    // The bytes are the fragments' bytes, in order.
    for (i, s) in vs.iter().enumerate() {
        let at = s.offset as usize;
        assert_eq!(s.size as usize, 100 + i % 25);
        assert!(out[at..at + s.size as usize].iter().all(|&b| b == i as u8));
    }
    let a = m
        .tracks
        .iter()
        .find(|t| t.kind == TrackKind::Audio)
        .unwrap();
    assert_eq!(a.samples.index().unwrap().len(), 3 * 47);
    // Audio that started 20 ms late keeps its place: an empty edit of 20 ms.
    assert_eq!(a.edit.delay, 960);
}

#[test]
fn priming_becomes_the_edit_lists_media_time() {
    let (out, _) = finalized(&fragmented(2, 2048));
    let m = open_in_memory(&out).unwrap();
    let a = m
        .tracks
        .iter()
        .find(|t| t.kind == TrackKind::Audio)
        .unwrap();
    assert_eq!(a.edit.media_time, 2048);
}

#[test]
fn a_torn_file_keeps_its_complete_fragments() {
    let whole = fragmented(4, 0);
    let three = fragmented(3, 0).len();
    // Cut anywhere inside the fourth fragment: three are kept.
    for cut in [three + 3, three + 100, whole.len() - 1] {
        let torn = &whole[..cut];
        let s = scan(&mut Cursor::new(torn), torn.len() as u64).unwrap();
        assert_eq!(
            (s.fragments, s.complete_len),
            (3, three as u64),
            "cut at {cut}"
        );
        let (out, done) = finalized(torn);
        assert_eq!(done.samples, 3 * 72);
        assert_eq!(done.torn_bytes, (cut - three) as u64);
        assert!(open_in_memory(&out).is_ok());
    }
    // Cut inside the init segment: nothing to keep, said plainly.
    let init = init_segment(Some(&video()), Some(&aac(0))).len();
    let err = scan(&mut Cursor::new(&whole[..init - 5]), (init - 5) as u64).unwrap_err();
    assert!(matches!(err, FinalizeError::NoInit), "{err}");
}

#[test]
fn opus_entry_reads_back_as_opus() {
    let opus = AudioConfig {
        codec: AudioCodec::Opus { pre_skip: 312 },
        priming: 0,
        sample_rate: 48_000,
        channels: 2,
    };
    let mut file = init_segment(None, Some(&opus));
    let run = TrackRun {
        track_id: AUDIO_TRACK,
        base_decode_time: 0,
        samples: vec![
            Sample {
                duration: 960,
                size: 3,
                sync: true,
                cts_offset: 0
            };
            10
        ],
        data: vec![0xfc; 30],
    };
    file.extend(fragment(1, &[run]));
    let (out, _) = finalized(&file);
    let m = open_in_memory(&out).unwrap();
    assert!(matches!(
        m.tracks[0].codec,
        Codec::Opus {
            channels: 2,
            pre_skip: 312,
            ..
        }
    ));
}

/// Garbage where fragments should be never panics and keeps what came before.
#[test]
fn damaged_fragments_end_the_scan_without_panic() {
    let mut file = fragmented(2, 0);
    let keep = file.len();
    let mut x = 0x1234_5678u32;
    for _ in 0..64 {
        let mut f = file.clone();
        f.extend((0..200).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        if let Ok(s) = scan(&mut Cursor::new(&f), f.len() as u64) {
            assert!(s.complete_len >= keep as u64 || s.fragments <= 2);
        }
    }
    file.truncate(keep);
}
