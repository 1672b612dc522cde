//! Reading a stream's frames ahead of its clock, on the runtime's shared blocking threads.
//!
//! Owns: the bounded queue between a [`FrameSource`] (blocking: file or S3 reads, AAC→Opus)
//! and the stream task that paces the frames out. Must not: pace, or know what a frame is
//! for.
//!
//! Why in batches: a source blocks, so it cannot run on the async threads, and a thread of
//! its own per stream for the whole playback ran into tokio's cap on blocking threads (512
//! by default): the next stream's reader, and every file open after it, waited for one of
//! them to end. So a reader holds a blocking thread only while it fills the queue: when
//! at least half of [`READ_AHEAD_FRAMES`] is free, one blocking call reads that many frames
//! (sending each as it is read, so the first frame of a stream is not held back) and gives
//! the thread back. A stream at 80 frames a second takes a thread about twice a second.
//!
//! A source that has nothing *yet* (a recording still being written, read up to its
//! end) says when to ask again ([`FrameSource::pending`]): the queue waits on a timer,
//! not on a blocking thread.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::StreamError;
use crate::media::Frame;

/// How many frames the reader may run ahead of the clock (about a second of media): the
/// bound on a stream's buffered memory.
pub const READ_AHEAD_FRAMES: usize = 96;

/// Free room in the queue that starts a batch of reads.
const BATCH_FRAMES: usize = READ_AHEAD_FRAMES / 2;

/// A frame read, and whom it is for.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The frame.
    pub frame: Frame,
    /// The file's own picture beside its re-encode (H.264 with B-frames), for the sinks
    /// that carry it ([`Sink::source_video`](crate::media::Sink::source_video)); `false`:
    /// for every sink ([`Sink::frames`](crate::media::Sink::frames)).
    pub source_video: bool,
}

impl Routed {
    /// A frame for every sink.
    pub fn all(frame: Frame) -> Self {
        Routed {
            frame,
            source_video: false,
        }
    }
}

/// Anything that yields a stream's frames in order. Runs on a blocking thread.
pub trait FrameSource: Send + 'static {
    /// The next frame, `None` at the end (or, see [`pending`](Self::pending), for now).
    fn next_frame(&mut self) -> Result<Option<Frame>, StreamError>;

    /// The next frame with whom it is for; a source that has only frames for every
    /// sink keeps the default.
    fn next_routed(&mut self) -> Result<Option<Routed>, StreamError> {
        Ok(self.next_frame()?.map(Routed::all))
    }

    /// After `next_frame` gave `None`: `Some(wait)` when more may still come (a file
    /// still being written), to be asked again after `wait`; `None` (the default) when
    /// that was the end.
    fn pending(&self) -> Option<Duration> {
        None
    }
}

/// How a batch of reads ended.
enum Batch {
    /// Room ran out: read on when there is room again.
    Full,
    /// The source has nothing yet: ask again after this long.
    Later(Duration),
    /// The source ended or failed, or nobody listens.
    Over,
}

/// One frame, or the reason the stream cannot go on; the queue ends after the last frame.
pub type ReadResult = Result<Routed, StreamError>;

/// Reads `source` ahead of the consumer, at most [`READ_AHEAD_FRAMES`] ahead. Reading stops
/// when the source ends or fails (the failure is the last item) or the receiver is dropped.
pub fn spawn_reader(source: impl FrameSource) -> mpsc::Receiver<ReadResult> {
    let (tx, rx) = mpsc::channel(READ_AHEAD_FRAMES);
    tokio::spawn(async move {
        let mut source = source;
        loop {
            // The only sender is this task's, so room once free stays free until we send.
            match tx.reserve_many(BATCH_FRAMES).await {
                Ok(permits) => drop(permits),
                Err(_) => return, // the stream is gone
            }
            let batch_tx = tx.clone();
            let read = tokio::task::spawn_blocking(move || {
                let more = read_batch(&mut source, &batch_tx);
                (source, more)
            });
            match read.await {
                Ok((back, Batch::Full)) => source = back,
                Ok((back, Batch::Later(wait))) => {
                    source = back;
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = tx.closed() => return,
                    }
                }
                Ok((_, Batch::Over)) => return,
                Err(e) => {
                    // A panic in a source: the stream fails rather than hangs.
                    warn!("frame reader stopped: {e}");
                    let reason = StreamError::ReadFailed("the file reader stopped".into());
                    let _ = tx.send(Err(reason)).await;
                    return;
                }
            }
        }
    });
    rx
}

/// Reads up to a batch of frames into `tx`, and says how it ended.
fn read_batch(source: &mut impl FrameSource, tx: &mpsc::Sender<ReadResult>) -> Batch {
    for _ in 0..BATCH_FRAMES {
        let item = match source.next_routed() {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => return source.pending().map_or(Batch::Over, Batch::Later),
            Err(e) => {
                warn!("read failed: {e}");
                Err(e)
            }
        };
        let failed = item.is_err();
        // Room was reserved, so this does not wait; `blocking_send` covers the case
        // where it would (it is allowed here: this is a blocking thread).
        let sent = match tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => tx.blocking_send(item).is_ok(),
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if !sent || failed {
            return Batch::Over;
        }
    }
    Batch::Full
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::media::MediaKind;

    /// Endless frames, numbered.
    struct Counter(i64);

    impl FrameSource for Counter {
        fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
            self.0 += 1;
            Ok(Some(Frame {
                kind: MediaKind::Audio,
                dts_us: self.0,
                pts_us: self.0,
                keyframe: true,
                data: Arc::from(&[0u8; 4][..]),
            }))
        }
    }

    /// `n` frames, then a failure.
    struct FailsAfter(usize);

    impl FrameSource for FailsAfter {
        fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
            if self.0 == 0 {
                return Err(StreamError::ReadFailed("disk on fire".into()));
            }
            self.0 -= 1;
            Counter(0).next_frame()
        }
    }

    /// More streams than blocking threads all read at once: none waits for another to end.
    #[test]
    fn more_streams_than_blocking_threads_all_read() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // Nobody drains these: each queue fills and stays full.
            let mut streams: Vec<_> = (0..20).map(|_| spawn_reader(Counter(0))).collect();
            for (i, frames) in streams.iter_mut().enumerate() {
                let first = tokio::time::timeout(Duration::from_secs(5), frames.recv()).await;
                let first = first.unwrap_or_else(|_| panic!("stream {i} never got a frame"));
                assert_eq!(first.unwrap().unwrap().frame.dts_us, 1, "stream {i}");
            }
            // And a full queue is refilled as it is drained, in order.
            let frames = &mut streams[0];
            for expected in 2..=(3 * READ_AHEAD_FRAMES as i64) {
                let frame = frames.recv().await.unwrap().unwrap();
                assert_eq!(frame.frame.dts_us, expected);
            }
        });
    }

    /// Endless frames, each taking 20 ms to read (a loaded machine, a slow disk).
    struct Slow;

    impl FrameSource for Slow {
        fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
            std::thread::sleep(Duration::from_millis(20));
            Counter(0).next_frame()
        }
    }

    /// 200 streams whose reads are slow all read on the server's runtime, and its
    /// threads stay bounded: tokio's default pool grew one thread per stream.
    #[test]
    fn the_server_runtime_reads_many_slow_streams_on_bounded_threads() {
        let threads = || std::fs::read_dir("/proc/self/task").map_or(0, std::iter::Iterator::count);
        let before = threads();
        let runtime = crate::server::runtime().unwrap();
        let most = runtime.block_on(async {
            let mut streams: Vec<_> = (0..200).map(|_| spawn_reader(Slow)).collect();
            let mut most = 0;
            for (i, frames) in streams.iter_mut().enumerate() {
                let first = tokio::time::timeout(Duration::from_secs(60), frames.recv()).await;
                assert!(first.is_ok(), "stream {i} never got a frame");
                most = most.max(threads());
            }
            most
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        let workers = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
        // Other tests of this process may run threads meanwhile: a margin of 16.
        let grown = most.saturating_sub(before);
        assert!(
            grown <= crate::server::MAX_BLOCKING_THREADS + workers + 16,
            "{grown} threads for 200 streams"
        );
    }

    /// Three frames now, then nothing for a while, then three more and the end.
    struct Gappy {
        sent: i64,
        gap_until: Option<std::time::Instant>,
    }

    impl FrameSource for Gappy {
        fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
            if self.sent == 3 {
                let until = *self
                    .gap_until
                    .get_or_insert_with(|| std::time::Instant::now() + Duration::from_millis(300));
                if std::time::Instant::now() < until {
                    return Ok(None);
                }
            }
            if self.sent == 6 {
                self.gap_until = None;
                return Ok(None);
            }
            self.sent += 1;
            Counter(self.sent - 1).next_frame()
        }

        fn pending(&self) -> Option<Duration> {
            (self.sent < 6).then_some(Duration::from_millis(50))
        }
    }

    #[tokio::test]
    async fn a_source_with_nothing_yet_is_asked_again_and_its_end_closes_the_queue() {
        let mut frames = spawn_reader(Gappy {
            sent: 0,
            gap_until: None,
        });
        for expected in 1..=6 {
            let frame = tokio::time::timeout(Duration::from_secs(10), frames.recv())
                .await
                .expect("a frame within 10 s");
            assert_eq!(frame.unwrap().unwrap().frame.dts_us, expected);
        }
        let end = tokio::time::timeout(Duration::from_secs(10), frames.recv()).await;
        assert!(end.expect("the end within 10 s").is_none());
    }

    #[tokio::test]
    async fn a_failure_is_the_last_item_and_the_end_closes_the_queue() {
        let mut frames = spawn_reader(FailsAfter(70));
        for _ in 0..70 {
            assert!(frames.recv().await.unwrap().is_ok());
        }
        let failure = frames.recv().await.unwrap().unwrap_err();
        assert!(failure.to_string().contains("disk on fire"), "{failure}");
        assert!(frames.recv().await.is_none());
    }
}
