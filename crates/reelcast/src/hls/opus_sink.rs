//! HLS of a stream whose audio is Opus (a published stream, or a translation of a file
//! whose audio is not AAC): the same [`Segmenter`] and [`Window`] as
//! [`super::HlsSink`]'s, with the Opus re-encoded to AAC-LC once per stream
//! (`codec::opus_to_aac`, the recorder's transcoder), since CMAF for HLS carries AAC.
//!
//! Owns: handing the frames to a thread of its own and, on it, the transcode and the
//! cutting. Re-encoding costs a few hundred µs per 20 ms packet (decode, then libavcodec's AAC
//! encode: see docs/PERFORMANCE.md), far more than a stream's task may spend on a sink,
//! so [`OpusHlsSink`] only `try_send`s each frame (a clone of its handle) to the thread,
//! as the recorder's sink does; a channel that fills (a machine that cannot keep up)
//! ends this HLS window, never the stream.
//!
//! Segments start at keyframes, which a browser sends only when asked: the publisher is
//! asked for one when the sink is attached and again each time the open segment reaches
//! the target duration (`keyframe`, rate-limited on the receiving side). The keyframe
//! then comes a round trip later, within the `max_segment` margin the segmenter keeps,
//! so every segment begins `INDEPENDENT` and a player joins on a picture. Asking rather
//! than relying on the segmenter's long-GOP cuts alone: a segment cut without a
//! keyframe makes a joining player wait for the next one (seconds for a browser, which
//! sends none unasked). If the keyframe is late anyway, the segmenter's long-GOP rule
//! still cuts in time, so the target duration never changes, and the segment it began
//! without a keyframe asks again at once.
//!
//! A muxer attached on demand (a published stream's, on its first HLS request) closes
//! itself once no HLS request has come for [`OpusHls::idle_close`]: its re-encode then
//! stops costing CPU; the next request attaches a new one.
//!
//! The AAC track's channel count is the Opus stream's (from its first packet), so the
//! segmenter is made only when the first Opus packet comes: the pictures before it wait
//! ([`MAX_AUDIO_WAIT_US`] at most, then the window goes on without audio).
//! Must not: know what a publisher is or where the frames come from.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use codec::opus_to_aac::{OpusToAac, SAMPLE_RATE};
use tracing::{info, warn};

use super::directory::Directory;
use super::segmenter::{Cut, Segmenter};
use super::window::Window;
use crate::media::{Ending, Frame, MediaKind, Sink};

/// Frames the channel to the thread holds: a GOP in progress handed over at attach
/// (`media::attach::MAX_PREROLL_FRAMES`, 256) and a few seconds of both tracks besides.
pub const CHANNEL_FRAMES: usize = 1024;
/// How long (stream time of the pictures held) the window waits for the first Opus
/// packet before it starts without audio.
pub const MAX_AUDIO_WAIT_US: i64 = 1_000_000;
/// How often the stream's side looks whether the window is still read.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Asks the stream's sender for a keyframe.
pub type KeyframeRequest = Box<dyn Fn() + Send>;

/// What the muxer of an Opus stream is made of.
pub struct OpusHls {
    /// Segments of at least this long, µs.
    pub target_us: i64,
    /// Parts of at most this long, µs.
    pub part_target_us: i64,
    /// The stream has video (H.264).
    pub has_video: bool,
    /// The stream has audio (Opus).
    pub has_audio: bool,
    /// Asks the sender for a keyframe.
    pub keyframe: KeyframeRequest,
    /// Close after this long without an HLS request (`None`: run as long as the stream).
    pub idle_close: Option<Duration>,
}

/// The stream's side: hands frames to the muxer's thread.
pub struct OpusHlsSink {
    tx: Option<SyncSender<Frame>>,
    window: Arc<Window>,
    name: String,
    idle_close: Option<Duration>,
    /// Read since (before the first request).
    attached: Instant,
    next_idle_check: Instant,
}

impl OpusHlsSink {
    /// The muxer of the stream listed as `id` in `directory`, writing to `window`, on a
    /// thread of its own named after `name` (the stream's name, for logs). The sender
    /// is asked for a keyframe at once.
    pub fn new(
        muxer: OpusHls,
        window: Arc<Window>,
        directory: Arc<Directory>,
        id: String,
        name: &str,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(CHANNEL_FRAMES);
        (muxer.keyframe)();
        let idle_close = muxer.idle_close;
        let into = window.clone();
        std::thread::Builder::new()
            .name("hls-opus".into())
            .spawn(move || Worker::new(muxer, into).run(&rx, &directory, &id))?;
        let now = Instant::now();
        Ok(OpusHlsSink {
            tx: Some(tx),
            window,
            name: name.to_string(),
            idle_close,
            attached: now,
            next_idle_check: now + IDLE_CHECK,
        })
    }

    /// Nobody has read the window for `idle_close` (looked at once per [`IDLE_CHECK`]).
    fn unread(&mut self) -> bool {
        let Some(limit) = self.idle_close else {
            return false;
        };
        let now = Instant::now();
        if now < self.next_idle_check {
            return false;
        }
        self.next_idle_check = now + IDLE_CHECK;
        let since = self.window.last_read().unwrap_or(self.attached);
        now.saturating_duration_since(since) >= limit
    }

    fn send(&mut self, frame: Frame) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(
                    stream = %self.name,
                    "HLS of the stream stopped: re-encoding its audio could not keep up"
                );
                // The thread takes the closed channel as the end and ends the window.
                self.tx = None;
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }
}

impl Sink for OpusHlsSink {
    fn start(&mut self, epoch: Instant) {
        let ago = Instant::now().saturating_duration_since(epoch);
        self.window.set_wall_epoch(
            SystemTime::now()
                .checked_sub(ago)
                .unwrap_or_else(SystemTime::now),
        );
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        if self.tx.is_some() && self.unread() {
            info!(stream = %self.name, "HLS of the stream closed: no HLS request came for a while");
            // The thread takes the closed channel as the end and ends the window.
            self.tx = None;
        }
        self.send(first);
        if let Some(second) = second {
            self.send(second);
        }
    }

    fn end(&mut self, _ending: &Ending) {
        self.tx = None;
    }

    fn needs_reencode(&self) -> bool {
        // It carries the stream's `Video` (a file with B-frames: the re-encode) while open.
        self.tx.is_some()
    }

    fn last_read(&self) -> Option<Instant> {
        self.window.last_read()
    }
}

/// The thread's state: frames in, the window's cuts out.
struct Worker {
    config: OpusHls,
    window: Arc<Window>,
    /// Made once the audio's channel count is known (or its wait is over).
    segmenter: Option<Segmenter>,
    transcoder: Option<OpusToAac>,
    /// Frames before the segmenter exists.
    held: Vec<Frame>,
    /// The start of the segment a keyframe was last asked for in.
    asked_in: Option<i64>,
    /// The start of the open segment, as last seen.
    segment_seen: Option<i64>,
    /// Opus packets that could not be re-encoded.
    audio_errors: u64,
}

impl Worker {
    fn new(config: OpusHls, window: Arc<Window>) -> Self {
        Worker {
            config,
            window,
            segmenter: None,
            transcoder: None,
            held: Vec::new(),
            asked_in: None,
            segment_seen: None,
            audio_errors: 0,
        }
    }

    fn run(mut self, rx: &Receiver<Frame>, directory: &Directory, id: &str) {
        let mut cuts = Vec::new();
        while let Ok(frame) = rx.recv() {
            self.push(frame, &mut cuts);
            self.window.add(std::mem::take(&mut cuts));
        }
        self.finish(&mut cuts);
        self.window.add(cuts);
        self.window.end();
        directory.ended(id);
        if self.audio_errors > 0 {
            warn!(
                "HLS: {} audio packets could not be re-encoded",
                self.audio_errors
            );
        }
    }

    fn push(&mut self, frame: Frame, out: &mut Vec<Cut>) {
        if self.segmenter.is_none() {
            self.hold(frame, out);
        } else {
            self.feed(&frame, out);
        }
    }

    /// Before the segmenter: the first Opus packet makes the transcoder (its channel
    /// count the AAC track's), and what was held goes through.
    fn hold(&mut self, frame: Frame, out: &mut Vec<Cut>) {
        if frame.kind == MediaKind::Audio && self.transcoder.is_none() && self.config.has_audio {
            match OpusToAac::new(&frame.data) {
                Ok(t) => self.transcoder = Some(t),
                Err(_) => self.audio_errors += 1,
            }
        }
        self.held.push(frame);
        let mut pictures = self
            .held
            .iter()
            .filter(|f| f.kind == MediaKind::Video)
            .map(|f| f.dts_us);
        let first = pictures.next();
        let span = first.map_or(0, |first| pictures.next_back().unwrap_or(first) - first);
        let waited = span >= MAX_AUDIO_WAIT_US || self.held.len() >= CHANNEL_FRAMES;
        if self.transcoder.is_some() || !self.config.has_audio || waited {
            self.start_segmenter(out);
        }
    }

    /// Makes the segmenter (with the AAC track if the transcoder is there) and feeds it
    /// what was held.
    fn start_segmenter(&mut self, out: &mut Vec<Cut>) {
        if self.transcoder.is_none() && self.config.has_audio {
            warn!("HLS: no audio came with the first pictures; the playlist has video only");
        }
        let asc = self
            .transcoder
            .as_ref()
            .map(OpusToAac::audio_specific_config);
        self.segmenter = Some(Segmenter::new(
            self.config.target_us,
            self.config.part_target_us,
            self.config.has_video,
            asc,
        ));
        for f in std::mem::take(&mut self.held) {
            self.feed(&f, out);
        }
    }

    fn feed(&mut self, frame: &Frame, out: &mut Vec<Cut>) {
        let Some(segmenter) = self.segmenter.as_mut() else {
            return;
        };
        match frame.kind {
            MediaKind::Audio => {
                let Some(transcoder) = self.transcoder.as_mut() else {
                    return;
                };
                let Ok(units) = transcoder.push(&frame.data, frame.pts_us) else {
                    self.audio_errors += 1;
                    return;
                };
                for unit in units {
                    segmenter.push(&aac_frame(transcoder, unit), out);
                }
            }
            MediaKind::Video => {
                segmenter.push(frame, out);
                // A segment as long as the target: its successor wants a keyframe. A
                // segment begun without one (the keyframe asked for is late or lost)
                // asks again at once: the segmenter cuts those before the target.
                if let Some(start) = segmenter.segment_start_us() {
                    let unkeyed =
                        self.segment_seen.is_some_and(|seen| seen != start) && !frame.keyframe;
                    self.segment_seen = Some(start);
                    let due = frame.dts_us - start >= self.config.target_us;
                    if (due || unkeyed) && self.asked_in != Some(start) {
                        self.asked_in = Some(start);
                        (self.config.keyframe)();
                    }
                }
            }
            // Not a publisher's; a stream with its own AAC has `HlsSink`.
            MediaKind::Aac => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Cut>) {
        if self.segmenter.is_none() && !self.held.is_empty() {
            // Ended before the audio's wait was over: what was held is all there is.
            self.start_segmenter(out);
        }
        if let (Some(segmenter), Some(transcoder)) =
            (self.segmenter.as_mut(), self.transcoder.as_mut())
        {
            if let Ok(units) = transcoder.flush() {
                for unit in units {
                    segmenter.push(&aac_frame(transcoder, unit), out);
                }
            }
        }
        if let Some(segmenter) = self.segmenter.as_mut() {
            segmenter.finish(out);
        }
    }
}

/// An AAC access unit as a frame on the stream's timeline: its first sample after the
/// encoder's priming, counted from the first Opus packet's time (so the track never
/// drifts from the samples' count).
fn aac_frame(transcoder: &OpusToAac, unit: codec::opus_to_aac::AacUnit) -> Frame {
    let first = transcoder.first_pts_us().unwrap_or(0);
    let sample = i64::try_from(unit.sample).unwrap_or(i64::MAX) - i64::from(transcoder.priming());
    let pts_us = first + sample * 1_000_000 / i64::from(SAMPLE_RATE);
    Frame {
        kind: MediaKind::Aac,
        dts_us: pts_us,
        pts_us,
        keyframe: true,
        data: Arc::from(unit.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::window::WindowConfig;
    use crate::source::testing::{sample_bytes, Memory};
    use crate::stream::MediaReader;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The bundled sample as a publisher sends it: H.264 pictures and Opus packets.
    fn published_frames() -> Vec<Frame> {
        let mut reader = MediaReader::open(Memory(sample_bytes())).expect("opens");
        std::iter::from_fn(|| reader.read_frame().expect("reads")).collect()
    }

    /// A worker (no thread) whose keyframe requests are counted.
    fn worker() -> (Worker, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let config = OpusHls {
            target_us: 2_000_000,
            part_target_us: 500_000,
            has_video: true,
            has_audio: true,
            keyframe: Box::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
            idle_close: None,
        };
        let window = Window::new(
            WindowConfig {
                target: Duration::from_secs(2),
                part_target: Duration::from_millis(500),
                list_size: 8,
                max_bytes: 64 << 20,
            },
            "t".into(),
        );
        (Worker::new(config, Arc::new(window)), asked)
    }

    /// Every cut of `frames` through a worker, as one fragmented file (init, then every
    /// part), and the keyframes it asked for.
    fn mux(frames: Vec<Frame>) -> (Vec<u8>, usize) {
        let (mut w, asked) = worker();
        let mut cuts = Vec::new();
        for f in frames {
            w.push(f, &mut cuts);
        }
        w.finish(&mut cuts);
        let mut file = Vec::new();
        for cut in cuts {
            match cut {
                Cut::Init(b) => file.extend_from_slice(&b),
                Cut::Part(p) => file.extend_from_slice(&p.bytes),
                Cut::SegmentEnd => {}
            }
        }
        (file, asked.load(Ordering::Relaxed))
    }

    /// ffprobe, an independent reader, finds H.264 and AAC (the Opus re-encoded, about
    /// one AAC frame per 21.3 ms of the sample's 10 s) and no error.
    #[test]
    fn opus_comes_out_as_aac_that_ffprobe_reads() {
        if !test_support::tools_available(&["ffprobe"], "the Opus HLS check") {
            return;
        }
        let frames = published_frames();
        let pictures = frames.iter().filter(|f| f.kind == MediaKind::Video).count();
        let (file, _) = mux(frames);
        let path = test_support::temp_dir("opus-hls").join("published_cmaf.mp4");
        std::fs::write(&path, file).unwrap();
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe runs");
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.first(), Some(&format!("h264,{pictures}").as_str()));
        let aac: usize = lines
            .get(1)
            .and_then(|l| l.strip_prefix("aac,"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no AAC track: {stdout}"));
        // 10 s of 48 kHz in frames of 1024, less what came before the first picture.
        assert!((440..=475).contains(&aac), "{aac} AAC frames");
    }

    /// Keyframes 2 s apart under a 2 s target: none asked for. Only the first kept (a
    /// browser's GOP, which ends only when asked, and a publisher that does not
    /// answer): one asked per segment.
    #[test]
    fn a_keyframe_is_asked_for_each_segment_the_stream_does_not_cut_itself() {
        let frames = published_frames();
        assert_eq!(mux(frames.clone()).1, 0);
        let first_key = frames
            .iter()
            .find(|f| f.kind == MediaKind::Video && f.keyframe)
            .map(|f| f.dts_us);
        let long_gop = frames
            .into_iter()
            .map(|mut f| {
                if f.kind == MediaKind::Video {
                    f.keyframe = Some(f.dts_us) == first_key;
                }
                f
            })
            .collect();
        let asked = mux(long_gop).1;
        // No keyframe comes: asked at 2 s in the first segment, then at the start of
        // each segment cut without one (about 2 s each).
        assert!((4..=6).contains(&asked), "{asked} keyframes asked for");
    }

    /// What re-encoding costs, per 20 ms Opus packet of the sample (stereo): the figure
    /// that put it on a thread of its own. Run by hand (docs/PERFORMANCE.md):
    /// `cargo test --release -p reelcast --lib opus_sink -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_the_transcode_per_packet() {
        let opus: Vec<Frame> = published_frames()
            .into_iter()
            .filter(|f| f.kind == MediaKind::Audio)
            .collect();
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let mut t = OpusToAac::new(&opus[0].data).unwrap();
            let began = Instant::now();
            for f in &opus {
                std::hint::black_box(t.push(&f.data, f.pts_us).unwrap());
            }
            best = best.min(began.elapsed());
        }
        let per = best / u32::try_from(opus.len()).unwrap();
        println!(
            "Opus→AAC: {} packets, {per:?} per packet (best of 5), {:.2} % of one core per stream",
            opus.len(),
            per.as_secs_f64() / 0.020 * 100.0
        );
    }
}
