//! Measures what AAC → Opus costs per stream: CPU seconds per media second.
//!
//! ```text
//! cargo run --release -p reelcast-codec --example transcode_cost [SECONDS]
//! ```
//! Makes 60 s (or SECONDS) of AAC-LC with ffmpeg (a 44.1 kHz stereo tone and 44.1 kHz
//! stereo noise, the easy and the hard case for the encoder), transcodes it with
//! [`codec::audio::AacToOpus`] and prints the cost. The target is ≤ 1 % of a core per
//! stream (0.010 CPU s per media s). CPU time is this thread's, from
//! `/proc/thread-self/schedstat` (Linux); elsewhere wall time is printed instead.

use codec::audio::AacToOpus;
use std::process::Command;
use std::time::Instant;

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let cases = [
        (
            "tone 44.1 kHz stereo",
            "sine=frequency=1000:sample_rate=44100",
        ),
        ("noise 44.1 kHz stereo", "anoisesrc=r=44100:a=0.3"),
        (
            "tone 48 kHz stereo",
            "sine=frequency=1000:sample_rate=48000",
        ),
    ];
    for (name, source) in cases {
        let adts = make_aac(source, seconds);
        let (asc, rate, frames) = split_adts(&adts);
        let media_s = frames.len() as f64 * 1024.0 / f64::from(rate);
        let mut t = AacToOpus::new(&asc).expect("ffmpeg makes AAC-LC");
        let cpu0 = thread_cpu_seconds();
        let wall0 = Instant::now();
        let mut packets = 0usize;
        let mut bytes = 0usize;
        for (i, f) in frames.iter().enumerate() {
            let pts = (i as i64 * 1024 * 1_000_000) / i64::from(rate);
            for p in t.push(f, pts).expect("transcode") {
                packets += 1;
                bytes += p.data.len();
            }
        }
        for p in t.flush().expect("flush") {
            packets += 1;
            bytes += p.data.len();
        }
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => wall,
        };
        println!(
            "{name}: {media_s:.1} s of media, {packets} Opus packets, {:.0} kbit/s, \
             {cpu:.3} CPU s -> {:.4} CPU s per media s ({:.2} % of a core per stream)",
            bytes as f64 * 8.0 / media_s / 1000.0,
            cpu / media_s,
            cpu / media_s * 100.0,
        );
    }
}

fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn make_aac(source: &str, seconds: u32) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("transcode-cost-{}.aac", std::process::id()));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", source, "-ac", "2"])
        .args([
            "-t",
            &seconds.to_string(),
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "adts",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg is needed to make the test AAC");
    assert!(status.success(), "ffmpeg failed");
    let data = std::fs::read(&path).expect("ffmpeg wrote the file");
    let _ = std::fs::remove_file(&path);
    data
}

/// Splits ADTS into raw access units; builds the AudioSpecificConfig from the header.
fn split_adts(data: &[u8]) -> (Vec<u8>, u32, Vec<&[u8]>) {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let (mut asc, mut rate, mut frames, mut pos) = (Vec::new(), 0, Vec::new(), 0);
    while pos + 7 <= data.len() {
        let h = &data[pos..pos + 7];
        let header = if h[1] & 1 == 1 { 7 } else { 9 };
        let sf_index = (h[2] >> 2) & 0xf;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if asc.is_empty() {
            let aot = u16::from(h[2] >> 6) + 1;
            let v = (aot << 11) | (u16::from(sf_index) << 7) | (u16::from(channels) << 3);
            asc = v.to_be_bytes().to_vec();
            rate = RATES[usize::from(sf_index)];
        }
        if len < header || pos + len > data.len() {
            break;
        }
        frames.push(&data[pos + header..pos + len]);
        pos += len;
    }
    (asc, rate, frames)
}
