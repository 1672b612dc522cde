//! The video transcode stage: a stream's video that browsers cannot take as it is (H.264
//! with B-frames, HEVC, VP9, AV1, MPEG-4 Part 2), decoded and encoded to H.264 on a
//! thread of its own, between the file's samples and the stream's frames.
//!
//! Owns: that thread and the two bounded queues around it. The stream's reader (which
//! runs on tokio's blocking threads, in batches: `frame_queue`) hands it samples and
//! takes encoded frames; the thread decodes and encodes ([`transcode::VideoTranscoder`])
//! as far ahead as the queues allow: [`SAMPLES_AHEAD`] samples in, [`FRAMES_AHEAD`]
//! frames out, on top of the stream's own read-ahead. So the encoder is never on an
//! async thread, never blocks the stream's task, and its memory is bounded. The reader
//! is per stream, so a translation's transcode runs once for all its viewers.
//!
//! Why a thread of its own rather than the reader's batches: an encode costs
//! milliseconds per picture (tens for 1080p), which would hold a blocking thread for
//! seconds per batch; and a dedicated thread lets decoding run while the reader waits
//! for room. The thread ends when the reader drops its side (the stream ended), or after
//! the last frame.
//!
//! Reported, not hidden: a decoder error skips to the next keyframe and is logged; an
//! encoder slower than real time is logged once per stream with its speed, and the speed
//! of its last [`SPEED_WINDOW_US`] of media is kept in a [`TranscodeSpeed`] the stream's
//! [`MediaInfo`](super::MediaInfo) shares (REST's `transcodeSpeed`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::transcode::{TranscodeError, VideoInput, VideoTranscoder};
use tracing::{info, warn, Span};

use super::constraints::VideoConstraints;
use super::StreamError;
use crate::media::{Frame, MediaKind};

/// Why a file that needs transcoding fails when `transcoding_disabled` is set (WCS's words).
pub const TRANSCODING_DISABLED: &str = "Transcoding required, but disabled";
/// Why a file that needs transcoding fails when `video_transcoders_max` are at work
/// (WCS's words).
pub const NO_TRANSCODERS: &str = "No available transcoders";

/// Samples queued for the transcode thread (a second at 30 fps, a few MB of 1080p).
pub const SAMPLES_AHEAD: usize = 32;
/// Encoded frames the thread may have ready before the reader takes them.
pub const FRAMES_AHEAD: usize = 32;
/// How long the reader waits for a frame before handing the thread more samples.
const POLL: Duration = Duration::from_millis(5);
/// Media time over which the transcode's speed is judged.
const SPEED_WINDOW_US: i64 = 5_000_000;
/// Decoder errors logged one by one before they are only counted.
const LOGGED_DECODE_ERRORS: u32 = 5;

/// How fast a stream's transcode runs: media time encoded per time spent decoding and
/// encoding it, over its last judged window (below 1: it cannot keep up, and viewers see
/// pauses). Shared by the thread that measures it and whoever reports it.
#[derive(Debug, Default)]
pub struct TranscodeSpeed {
    /// The speed × 1000; 0 until a first window was judged.
    permille: AtomicU32,
}

impl TranscodeSpeed {
    /// The last window's speed, `None` before the first.
    pub fn get(&self) -> Option<f64> {
        match self.permille.load(Ordering::Relaxed) {
            0 => None,
            p => Some(f64::from(p) / 1000.0),
        }
    }

    fn set(&self, ratio: f64) {
        // At least 1 ‰, so a judged window never reads as none.
        let p = (ratio * 1000.0).round().clamp(1.0, f64::from(u32::MAX));
        self.permille.store(p as u32, Ordering::Relaxed);
    }
}

/// A compressed sample on its way to the transcode thread.
pub struct Sample {
    /// The sample's bytes, as the file has them.
    pub data: Vec<u8>,
    /// Decode time, µs.
    pub dts_us: i64,
    /// Presentation time, µs.
    pub pts_us: i64,
    /// A sync sample.
    pub keyframe: bool,
}

enum Input {
    Sample(Sample),
    /// The end of the file: flush, send what is left, stop.
    End,
}

enum Output {
    Frame(Frame),
    Failed(String),
}

/// The reader's side of one stream's transcode thread.
pub struct TranscodedVideo {
    input: SyncSender<Input>,
    output: Receiver<Output>,
    /// What the full queue did not take yet.
    held: Option<Input>,
    /// The end was handed to the thread.
    input_done: bool,
    peeked: Option<Frame>,
    ended: bool,
}

impl TranscodedVideo {
    /// Starts the thread and its decoder; an error (no decoder for the codec, a
    /// configuration it refuses) is the stream's.
    pub fn start(input: VideoInput) -> Result<Self, StreamError> {
        Self::start_sized(input, VideoConstraints::default())
    }

    /// [`Self::start`], encoding at the size and bit rate a viewer asked for (a personal
    /// VOD's rendition).
    pub fn start_sized(input: VideoInput, output: VideoConstraints) -> Result<Self, StreamError> {
        Self::start_measured(input, output, Arc::default())
    }

    /// [`Self::start_sized`], keeping its speed in `speed`.
    pub fn start_measured(
        input: VideoInput,
        output: VideoConstraints,
        speed: Arc<TranscodeSpeed>,
    ) -> Result<Self, StreamError> {
        let (in_tx, in_rx) = mpsc::sync_channel(SAMPLES_AHEAD);
        let (out_tx, out_rx) = mpsc::sync_channel(FRAMES_AHEAD);
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let span = Span::current();
        std::thread::Builder::new()
            .name("transcode".into())
            .spawn(move || {
                let _entered = span.enter();
                // Made here: libswscale's context may not move between threads.
                match VideoTranscoder::new(&input) {
                    Ok(mut t) => {
                        t.set_size(output.width, output.height);
                        if output.vp8 {
                            t.set_output(::transcode::OutputCodec::Vp8);
                        }
                        if let Some(bits) = output.bit_rate() {
                            t.set_bit_rate(bits);
                        }
                        let _ = ready_tx.send(Ok(()));
                        run(t, &in_rx, &out_tx, &speed);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StreamError::Other(format!("cannot start a transcoder: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(TranscodeError::Unsupported(what))) => {
                return Err(StreamError::WrongFormat(format!("{what} is not supported")))
            }
            Ok(Err(e)) => return Err(StreamError::WrongFormat(e.to_string())),
            Err(_) => return Err(StreamError::Other("the transcoder stopped".into())),
        }
        Ok(TranscodedVideo {
            input: in_tx,
            output: out_rx,
            held: None,
            input_done: false,
            peeked: None,
            ended: false,
        })
    }

    /// The time of the next encoded frame (`None` after the last one), handing the
    /// thread samples from `next_sample` while it has room. `next_sample` gives `None`
    /// at the end of the track; with `growing`, that is only the end for now.
    pub fn next_dts_us(
        &mut self,
        growing: bool,
        mut next_sample: impl FnMut() -> Result<Option<Sample>, StreamError>,
    ) -> Result<Option<i64>, StreamError> {
        loop {
            if let Some(f) = &self.peeked {
                return Ok(Some(f.dts_us));
            }
            if self.ended {
                return Ok(None);
            }
            let waiting_for_growth = self.feed(growing, &mut next_sample)?;
            match self.output.recv_timeout(POLL) {
                Ok(Output::Frame(f)) => self.peeked = Some(f),
                Ok(Output::Failed(reason)) => return Err(StreamError::Streaming(reason)),
                Err(RecvTimeoutError::Timeout) if waiting_for_growth && self.held.is_none() => {
                    return Ok(None);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) if self.input_done => self.ended = true,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(StreamError::Streaming(
                        "the video transcoder stopped".into(),
                    ))
                }
            }
        }
    }

    /// Takes the frame [`next_dts_us`](Self::next_dts_us) found.
    pub fn take(&mut self) -> Option<Frame> {
        self.peeked.take()
    }

    /// Hands the thread samples until its queue is full or the track ends. True when a
    /// growing file has no more samples yet.
    fn feed(
        &mut self,
        growing: bool,
        next_sample: &mut impl FnMut() -> Result<Option<Sample>, StreamError>,
    ) -> Result<bool, StreamError> {
        loop {
            let item = match self.held.take() {
                Some(item) => item,
                None if self.input_done => return Ok(false),
                None => match next_sample()? {
                    Some(s) => Input::Sample(s),
                    None if growing => return Ok(true),
                    None => Input::End,
                },
            };
            let end = matches!(item, Input::End);
            match self.input.try_send(item) {
                Ok(()) if end => {
                    self.input_done = true;
                    return Ok(false);
                }
                Ok(()) => {}
                Err(TrySendError::Full(item)) => {
                    self.held = Some(item);
                    return Ok(false);
                }
                // The thread is gone: the output side says why.
                Err(TrySendError::Disconnected(_)) => return Ok(false),
            }
        }
    }
}

/// The thread's loop: samples in, frames out, until the end or the reader leaves.
fn run(
    mut t: VideoTranscoder,
    input: &Receiver<Input>,
    output: &SyncSender<Output>,
    shared: &Arc<TranscodeSpeed>,
) {
    let mut out = Vec::new();
    let mut speed = Speed::new(shared);
    let mut decode_errors = 0u32;
    while let Ok(item) = input.recv() {
        let started = Instant::now();
        let (result, pts_us, end) = match item {
            Input::Sample(s) => (
                t.push(&s.data, s.dts_us, s.pts_us, s.keyframe, &mut out),
                Some(s.pts_us),
                false,
            ),
            Input::End => (t.flush(&mut out), None, true),
        };
        match result {
            Ok(()) => {}
            Err(e @ TranscodeError::Decode { .. }) => {
                decode_errors += 1;
                if decode_errors <= LOGGED_DECODE_ERRORS {
                    warn!("{e}; the picture is skipped up to the next keyframe");
                } else if decode_errors.is_power_of_two() {
                    warn!("{decode_errors} video decoding errors so far; the last: {e}");
                }
            }
            Err(e) => {
                warn!("video transcode stopped: {e}");
                let _ = output.send(Output::Failed(e.to_string()));
                return;
            }
        }
        if let Some(ratio) = pts_us.and_then(|pts| speed.add(started.elapsed(), pts)) {
            warn!(
                "the video transcode runs slower than real time ({ratio:.2}x): viewers will \
                 see pauses; the machine is too busy or the picture too large"
            );
        }
        for f in out.drain(..) {
            let frame = Frame {
                kind: MediaKind::Video,
                dts_us: f.pts_us,
                pts_us: f.pts_us,
                keyframe: f.keyframe,
                data: Arc::from(f.data),
            };
            if output.send(Output::Frame(frame)).is_err() {
                return; // the stream is gone
            }
        }
        if end {
            if decode_errors > 0 {
                info!("video transcode ended after {decode_errors} decoding errors");
            }
            return;
        }
    }
}

/// Whether a transcode keeps up with real time: the time spent decoding and encoding
/// against the media time it covered, judged over [`SPEED_WINDOW_US`] of media; each
/// window's speed kept in the shared [`TranscodeSpeed`], the first slow one said.
pub(crate) struct Speed {
    shared: Arc<TranscodeSpeed>,
    first_pts_us: Option<i64>,
    last_pts_us: i64,
    busy: Duration,
    said: bool,
}

impl Speed {
    /// A meter keeping its windows' speed in `shared`.
    pub(crate) fn new(shared: &Arc<TranscodeSpeed>) -> Self {
        Speed {
            shared: shared.clone(),
            first_pts_us: None,
            last_pts_us: 0,
            busy: Duration::ZERO,
            said: false,
        }
    }

    /// Counts `took` for the picture at `pts_us`; the speed (media time per time spent,
    /// below 1) the first time a window was slower than real time, to be said.
    pub(crate) fn add(&mut self, took: Duration, pts_us: i64) -> Option<f64> {
        let first = *self.first_pts_us.get_or_insert(pts_us);
        self.last_pts_us = self.last_pts_us.max(pts_us);
        self.busy += took;
        let media_us = self.last_pts_us - first;
        if media_us < SPEED_WINDOW_US {
            return None;
        }
        let busy_us = self.busy.as_micros() as f64;
        let ratio = media_us as f64 / busy_us.max(1.0);
        // A new window: a slow start (a busy moment) is not judged forever.
        self.first_pts_us = Some(self.last_pts_us);
        self.busy = Duration::ZERO;
        self.shared.set(ratio);
        if ratio < 1.0 && !self.said {
            self.said = true;
            return Some(ratio);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seconds` of 25 fps pictures from `start_s`, each taking `ms_each`; what
    /// was said.
    fn feed(speed: &mut Speed, start_s: i64, seconds: i64, ms_each: u64) -> Vec<f64> {
        (0..seconds * 25)
            .filter_map(|i| {
                speed.add(
                    Duration::from_millis(ms_each),
                    start_s * 1_000_000 + i * 40_000,
                )
            })
            .collect()
    }

    #[test]
    fn a_transcode_slower_than_real_time_is_said_once_and_each_windows_speed_kept() {
        let shared = Arc::<TranscodeSpeed>::default();
        let mut speed = Speed::new(&shared);
        assert_eq!(shared.get(), None, "nothing judged yet");
        // 20 ms a 40 ms picture: twice real time, nothing to say.
        assert!(feed(&mut speed, 0, 12, 20).is_empty());
        assert_eq!(shared.get(), Some(2.0));
        // 50 ms a picture: 0.8x, said once, not again in the windows after.
        let said = feed(&mut speed, 12, 20, 50);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!((said[0] - 0.8).abs() < 0.01, "{said:?}");
        assert_eq!(shared.get(), Some(0.8));
    }

    #[test]
    fn the_shared_speed_reads_none_before_a_window_then_the_last_one() {
        let shared = TranscodeSpeed::default();
        assert_eq!(shared.get(), None);
        shared.set(12.345);
        assert_eq!(shared.get(), Some(12.345));
        shared.set(0.0);
        assert_eq!(shared.get(), Some(0.001), "a judged window is never none");
    }
}
