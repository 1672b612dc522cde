//! The video transcoder on files ffmpeg makes: what comes out is what a browser's WebRTC
//! decoder plays (no reordering, constrained baseline, keyframes where the source has
//! them and at most 2 s apart), every picture comes out, and a damaged sample costs only
//! the pictures up to the next keyframe.

use std::path::Path;
use std::process::Command;

use mp4::{Codec, MovieOpener, OpenStep, SampleWalker, Track, VideoFormat, WalkStep};
use transcode::{CodecKind, EncodedFrame, VideoInput, VideoTranscoder};

/// One video sample: bytes, dts, pts (µs), sync.
type Sample = (Vec<u8>, i64, i64, bool);

/// Makes `name` with ffmpeg (320x240, 25 fps, 4 s, a keyframe every second); `None`
/// without ffmpeg (a failure under CI=true).
fn make(name: &str, video: &[&str]) -> Option<std::path::PathBuf> {
    if !test_support::tools_available(&["ffmpeg"], "the transcoder tests") {
        return None;
    }
    let path = test_support::temp_dir("transcode").join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=4")
        .args(video)
        .args(["-g", "25", "-an"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed for {name}");
    Some(path)
}

/// The file's video track and its samples, demuxed by the server's MP4 reader.
fn demux(path: &Path) -> (Track, Vec<Sample>) {
    let bytes = std::fs::read(path).expect("the file ffmpeg wrote");
    let mut opener = MovieOpener::paged(bytes.len() as u64);
    let at = |offset: u64, len: u64| &bytes[offset as usize..(offset + len) as usize];
    let movie = loop {
        match opener.poll().expect("an MP4 file") {
            OpenStep::Done(m) => break m,
            OpenStep::Read { offset, len } => {
                let len = len.min(bytes.len() as u64 - offset);
                opener.feed(offset, at(offset, len)).expect("an MP4 file");
            }
        }
    };
    let track = movie.video().expect("a video track").clone();
    let mut walker = SampleWalker::new();
    let mut samples = Vec::new();
    loop {
        match walker.poll(&track.samples) {
            WalkStep::Sample(s) => samples.push((
                at(s.offset, u64::from(s.size)).to_vec(),
                track.to_us(track.decode_time(&s)),
                track.to_us(track.presentation_time(&s)),
                s.sync,
            )),
            WalkStep::Read { offset, len } => {
                walker.feed(offset, at(offset, len)).expect("tables");
            }
            WalkStep::End => break,
        }
    }
    (track, samples)
}

fn transcoder(track: &Track) -> VideoTranscoder {
    let (codec, config) = match &track.codec {
        Codec::H264 { avcc, .. } => (CodecKind::H264, avcc.clone()),
        Codec::OtherVideo {
            format: VideoFormat::Hevc,
            config,
            ..
        } => (CodecKind::Hevc, config.clone()),
        other => panic!("unexpected {other:?}"),
    };
    VideoTranscoder::new(&VideoInput {
        codec,
        config,
        frame_rate: 25.0,
    })
    .expect("a decoder and encoder")
}

/// Pushes every sample (`damage` replaces sample `i`'s bytes with garbage); returns the
/// frames and how many samples were refused.
fn run(track: &Track, samples: &[Sample], damage: Option<usize>) -> (Vec<EncodedFrame>, usize) {
    let mut t = transcoder(track);
    let mut out = Vec::new();
    let mut refused = 0;
    for (i, (data, dts, pts, sync)) in samples.iter().enumerate() {
        let garbage = vec![
            0x00, 0x00, 0x00, 0x10, 0xff, 0xee, 0xdd, 0xcc, 0x01, 0x02, 0x03,
        ];
        let data = if damage == Some(i) { &garbage } else { data };
        if t.push(data, *dts, *pts, *sync, &mut out).is_err() {
            refused += 1;
        }
    }
    t.flush(&mut out).expect("flush");
    (out, refused)
}

/// NAL unit types in an Annex-B access unit.
fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            types.push(data[i + 3] & 0x1f);
            i += 3;
        }
        i += 1;
    }
    types
}

#[test]
fn b_frame_h264_comes_out_as_constrained_baseline_in_order_with_regular_keyframes() {
    let Some(path) = make(
        "bframes.mp4",
        &["-c:v", "libx264", "-preset", "veryfast", "-bf", "3"],
    ) else {
        return;
    };
    let (track, samples) = demux(&path);
    assert!(track.samples.cts_offsets_vary(), "the source has B-frames");
    let (out, refused) = run(&track, &samples, None);
    assert_eq!(refused, 0);
    assert_eq!(out.len(), samples.len(), "every picture comes out");
    // In presentation order, no reordering: times strictly rise.
    for pair in out.windows(2) {
        assert!(
            pair[0].pts_us < pair[1].pts_us,
            "{} then {}",
            pair[0].pts_us,
            pair[1].pts_us
        );
    }
    // Keyframes where the source has them (every second), SPS and PPS before each.
    let keys: Vec<i64> = out
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.pts_us)
        .collect();
    assert_eq!(keys, vec![0, 1_000_000, 2_000_000, 3_000_000]);
    for f in out.iter().filter(|f| f.keyframe) {
        let types = nal_types(&f.data);
        assert!(
            types.contains(&7) && types.contains(&8) && types.contains(&5),
            "{types:?}"
        );
    }
    // Constrained baseline: profile_idc 66 with constraint_set1.
    let first = &out[0].data;
    let sps = first
        .windows(4)
        .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
        .expect("an SPS");
    assert_eq!(first[sps + 4], 66, "profile_idc");
    assert_ne!(first[sps + 5] & 0x40, 0, "constraint_set1_flag");
}

#[test]
fn a_long_gop_gets_a_keyframe_at_least_every_two_seconds() {
    let Some(path) = make(
        "long_gop.mp4",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "2",
            "-x264-params",
            "keyint=250:min-keyint=250:scenecut=0",
        ],
    ) else {
        return;
    };
    let (track, samples) = demux(&path);
    let (out, _) = run(&track, &samples, None);
    let keys: Vec<i64> = out
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.pts_us)
        .collect();
    assert_eq!(keys, vec![0, 2_000_000], "one source keyframe in 4 s");
}

#[test]
fn a_damaged_sample_costs_the_pictures_up_to_the_next_keyframe_only() {
    let Some(path) = make(
        "damaged.mp4",
        &["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
    ) else {
        return;
    };
    let (track, samples) = demux(&path);
    // Sample 30 is a P-frame in the second GOP (keyframes at 0, 25, 50, 75).
    let (out, refused) = run(&track, &samples, Some(30));
    assert!(refused >= 1, "the garbage is refused");
    let times: Vec<i64> = out.iter().map(|f| f.pts_us).collect();
    // Pictures 30..49 are skipped; from the keyframe at 2 s on, all come out.
    assert!(times.contains(&(29 * 40_000)), "before the damage");
    assert!(!times.contains(&(30 * 40_000)), "the damaged one");
    assert!(!times.contains(&(49 * 40_000)), "up to the next keyframe");
    assert!(
        times.contains(&2_000_000) && times.contains(&(99 * 40_000)),
        "after it"
    );
}

#[test]
fn hevc_is_decoded_and_encoded_to_h264() {
    let Some(path) = make(
        "hevc.mp4",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-tag:v",
            "hvc1",
            "-x265-params",
            "log-level=error",
        ],
    ) else {
        return;
    };
    let (track, samples) = demux(&path);
    let (out, refused) = run(&track, &samples, None);
    assert_eq!(refused, 0);
    assert_eq!(out.len(), samples.len());
    assert!(out[0].keyframe);
}

/// A rendition (transcoding on play): the asked width with the source's aspect, and a
/// keyframe asked for mid-GOP (a viewer joined) is the very next picture.
#[test]
fn a_rendition_is_encoded_at_the_asked_size_with_a_keyframe_when_asked() {
    let Some(path) = make(
        "rendition.mp4",
        &["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
    ) else {
        return;
    };
    if !test_support::tools_available(&["ffprobe"], "the rendition test") {
        return;
    }
    let (track, samples) = demux(&path);
    let mut t = transcoder(&track);
    t.set_size(Some(160), None);
    t.set_bit_rate(100_000);
    let mut out = Vec::new();
    for (i, (data, dts, pts, sync)) in samples.iter().enumerate() {
        if i == 10 {
            t.force_keyframe();
        }
        t.push(data, *dts, *pts, *sync, &mut out).expect("decodes");
    }
    t.flush(&mut out).expect("flush");
    assert_eq!(t.bit_rate(), Some(100_000));
    let keys: Vec<i64> = out
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.pts_us)
        .collect();
    // The source's keyframes each second, and the one asked for at picture 10 (0.4 s).
    assert_eq!(keys, vec![0, 400_000, 1_000_000, 2_000_000, 3_000_000]);
    let file = test_support::temp_dir("transcode").join("rendition.h264");
    let bytes: Vec<u8> = out.iter().flat_map(|f| f.data.iter().copied()).collect();
    std::fs::write(&file, bytes).expect("written");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=width,height"])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "160,120");
}

/// VP8 for a browser without H.264: frames ffprobe reads as VP8 at the asked size, with
/// keyframes where the source has them and where one is asked for.
#[test]
fn vp8_output_has_the_asked_size_and_keyframes() {
    let Some(path) = make(
        "vp8_source.mp4",
        &["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
    ) else {
        return;
    };
    if !test_support::tools_available(&["ffprobe"], "the VP8 test") {
        return;
    }
    let (track, samples) = demux(&path);
    let mut t = transcoder(&track);
    t.set_output(transcode::OutputCodec::Vp8);
    t.set_size(None, Some(120));
    let mut out = Vec::new();
    for (i, (data, dts, pts, sync)) in samples.iter().enumerate() {
        if i == 10 {
            t.force_keyframe();
        }
        t.push(data, *dts, *pts, *sync, &mut out).expect("decodes");
    }
    t.flush(&mut out).expect("flush");
    assert_eq!(out.len(), samples.len(), "every picture comes out");
    let keys: Vec<i64> = out
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.pts_us)
        .collect();
    assert_eq!(keys, vec![0, 400_000, 1_000_000, 2_000_000, 3_000_000]);
    // A VP8 keyframe's tag: bit 0 clear, then the start code 9d 01 2a.
    for f in out.iter().filter(|f| f.keyframe) {
        assert_eq!(f.data[0] & 1, 0);
        assert_eq!(&f.data[3..6], &[0x9d, 0x01, 0x2a]);
    }
    // In an IVF file (32-byte header, 12 bytes before each frame) for ffprobe.
    let mut ivf = Vec::new();
    ivf.extend_from_slice(b"DKIF");
    ivf.extend_from_slice(&0u16.to_le_bytes());
    ivf.extend_from_slice(&32u16.to_le_bytes());
    ivf.extend_from_slice(b"VP80");
    ivf.extend_from_slice(&160u16.to_le_bytes());
    ivf.extend_from_slice(&120u16.to_le_bytes());
    ivf.extend_from_slice(&25u32.to_le_bytes());
    ivf.extend_from_slice(&1u32.to_le_bytes());
    ivf.extend_from_slice(&(out.len() as u32).to_le_bytes());
    ivf.extend_from_slice(&0u32.to_le_bytes());
    for (i, f) in out.iter().enumerate() {
        ivf.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        ivf.extend_from_slice(&(i as u64).to_le_bytes());
        ivf.extend_from_slice(&f.data);
    }
    let file = test_support::temp_dir("transcode").join("vp8.ivf");
    std::fs::write(&file, ivf).expect("written");
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("vp8,160,120,{}", out.len())
    );
}

/// A transcode started in the middle of a GOP catches up: the pictures since the keyframe
/// are decoded only, and the first one encoded (the newest) comes out as a keyframe, with
/// every later one after it.
#[test]
fn a_catch_up_decodes_the_gop_so_far_and_encodes_from_the_newest_as_a_keyframe() {
    let Some(path) = make(
        "catch_up.mp4",
        &["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
    ) else {
        return;
    };
    let (track, samples) = demux(&path);
    let mut t = transcoder(&track);
    t.set_size(Some(160), None);
    let mut out = Vec::new();
    // Pictures 0 (the keyframe) to 9 are the GOP so far; 10 (0.4 s) is the newest.
    for (data, dts, pts, sync) in &samples[..10] {
        t.decode_only(data, *dts, *pts, *sync).expect("decodes");
    }
    assert_eq!(t.encoded_size(), None, "nothing encoded while catching up");
    for (data, dts, pts, sync) in &samples[10..] {
        t.push(data, *dts, *pts, *sync, &mut out).expect("decodes");
    }
    t.flush(&mut out).expect("flush");
    assert_eq!(out.len(), samples.len() - 10);
    assert_eq!(out[0].pts_us, 400_000);
    assert!(out[0].keyframe && nal_types(&out[0].data).contains(&5));
}
