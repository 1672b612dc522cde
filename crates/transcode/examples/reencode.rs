//! Benchmark helper (bench/transcode.sh): runs one MP4 file's video through the server's
//! transcoder as fast as it goes and writes what it encodes as raw H.264 (Annex-B), so
//! its CPU cost and its SSIM against the source can be measured from outside.
//!
//!   cargo run --release -p reelcast-transcode --example reencode -- IN.mp4 OUT.h264
//!   … -- IN.mp4 OUT.h264 640x360 [KBPS]   # a rendition (bench/rendition.sh): scaled
//!
//! A size of `0xH` or `Wx0` gives one side only (the other keeps the aspect), as a
//! viewer's `constraints` do. An output named `*.ivf` gets VP8 (what a viewer without
//! H.264 is sent) in an IVF file, which ffprobe reads.
//!
//! Prints the media duration, the CPU time spent (user + system, this process: the
//! transcoder runs on this one thread, as on the server), and the default bit rate.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

use mp4::{Codec, MovieOpener, OpenStep, SampleWalker, VideoFormat, WalkStep};
use transcode::{CodecKind, EncodedFrame, OutputCodec, VideoInput, VideoTranscoder};

fn read_at(file: &mut File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_exact(&mut buf).expect("read");
    buf
}

/// CPU seconds (user + system) of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ, 100 on Linux
}

/// Where the encoded frames go: raw H.264 (Annex-B), or VP8 in IVF (a 32-byte file
/// header, then each frame after its size and time; the header's frame count and picture
/// size are written at the end, when known).
struct Output {
    file: File,
    ivf: bool,
    frames: u32,
}

impl Output {
    fn create(path: &str) -> Output {
        let mut file = File::create(path).expect("create the output");
        let ivf = std::path::Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ivf"));
        if ivf {
            file.write_all(&[0; 32]).expect("write");
        }
        Output {
            file,
            ivf,
            frames: 0,
        }
    }

    fn write(&mut self, frame: &EncodedFrame) {
        if self.ivf {
            let mut head = (frame.data.len() as u32).to_le_bytes().to_vec();
            head.extend_from_slice(&(frame.pts_us as u64).to_le_bytes());
            self.file.write_all(&head).expect("write");
        }
        self.file.write_all(&frame.data).expect("write");
        self.frames += 1;
    }

    fn finish(mut self, (width, height): (u32, u32)) {
        if !self.ivf {
            return;
        }
        let mut head = b"DKIF".to_vec();
        head.extend_from_slice(&0u16.to_le_bytes()); // version
        head.extend_from_slice(&32u16.to_le_bytes()); // header size
        head.extend_from_slice(b"VP80");
        head.extend_from_slice(&(width as u16).to_le_bytes());
        head.extend_from_slice(&(height as u16).to_le_bytes());
        head.extend_from_slice(&1_000_000u32.to_le_bytes()); // time base: microseconds
        head.extend_from_slice(&1u32.to_le_bytes());
        head.extend_from_slice(&self.frames.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        self.file.seek(SeekFrom::Start(0)).expect("seek");
        self.file.write_all(&head).expect("write");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, output, asked, kbps) = match args.as_slice() {
        [_, i, o] => (i, o, None, None),
        [_, i, o, s] => (i, o, Some(s), None),
        [_, i, o, s, k] => (i, o, Some(s), Some(k)),
        _ => {
            eprintln!("usage: reencode IN.mp4 OUT.h264 [WIDTHxHEIGHT [KBPS]]");
            std::process::exit(2);
        }
    };
    let side = |v: &str| v.parse::<u32>().ok().filter(|&n| n > 0);
    let asked = asked.map(|s| {
        let (w, h) = s.split_once('x').expect("a size is WIDTHxHEIGHT");
        (side(w), side(h))
    });
    let mut file = File::open(input).expect("open the input");
    let size = file.metadata().expect("size").len();
    let mut opener = MovieOpener::paged(size);
    let movie = loop {
        match opener.poll().expect("an MP4 file") {
            OpenStep::Done(m) => break m,
            OpenStep::Read { offset, len } => {
                let len = len.min(size - offset) as usize;
                let data = read_at(&mut file, offset, len);
                opener.feed(offset, &data).expect("an MP4 file");
            }
        }
    };
    let track = movie.video().expect("a video track");
    let (codec, config) = match &track.codec {
        Codec::H264 { avcc, .. } => (CodecKind::H264, avcc.clone()),
        Codec::OtherVideo { format, config, .. } => (
            match format {
                VideoFormat::Hevc => CodecKind::Hevc,
                VideoFormat::Vp9 => CodecKind::Vp9,
                VideoFormat::Av1 => CodecKind::Av1,
                VideoFormat::Mpeg4Part2 => CodecKind::Mpeg4Part2,
            },
            config.clone(),
        ),
        other => panic!("not a video codec the transcoder takes: {other:?}"),
    };
    let duration_us = track.duration_us();
    let frame_rate = track.samples.len() as f64 * 1e6 / duration_us as f64;
    let mut t = VideoTranscoder::new(&VideoInput {
        codec,
        config,
        frame_rate,
    })
    .expect("a decoder");
    if let Some((w, h)) = asked {
        t.set_size(w, h);
    }
    if let Some(k) = kbps {
        t.set_bit_rate(k.parse::<u64>().expect("kbit/s") * 1000);
    }
    let mut out = Output::create(output);
    if out.ivf {
        t.set_output(OutputCodec::Vp8);
    }
    let mut frames = Vec::new();
    let mut walker = SampleWalker::new();
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut count = 0usize;
    loop {
        let sample = match walker.poll(&track.samples) {
            WalkStep::Sample(s) => s,
            WalkStep::Read { offset, len } => {
                let data = read_at(&mut file, offset, len as usize);
                walker.feed(offset, &data).expect("sample tables");
                continue;
            }
            WalkStep::End => break,
        };
        let data = read_at(&mut file, sample.offset, sample.size as usize);
        let dts = track.to_us(track.decode_time(&sample));
        let pts = track.to_us(track.presentation_time(&sample));
        if let Err(e) = t.push(&data, dts, pts, sample.sync, &mut frames) {
            eprintln!("sample skipped: {e}");
        }
        for f in frames.drain(..) {
            out.write(&f);
            count += 1;
        }
    }
    t.flush(&mut frames).expect("flush");
    for f in frames.drain(..) {
        out.write(&f);
        count += 1;
    }
    out.finish(t.encoded_size().unwrap_or((0, 0)));
    let cpu = cpu_seconds() - cpu0;
    let media = duration_us as f64 / 1e6;
    println!(
        "{input}: {count} frames, {media:.2} s of media at {frame_rate:.2} fps; \
         CPU {cpu:.2} s ({:.0} % of one core in real time), wall {:.2} s; bit rate {} bit/s",
        100.0 * cpu / media,
        wall0.elapsed().as_secs_f64(),
        t.bit_rate().unwrap_or(0)
    );
}
