//! Personal VOD (`vod://file`): one viewer, the file from its start, ended at end of file.
//!
//! The task waits for the viewer's WebRTC connection, then starts the stream clock (so the
//! first keyframe is the first thing the browser gets, and time to first frame is only the
//! handshake), reads frames a little ahead of the clock (`frame_queue`), and hands each
//! frame to the hub when it is due.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::{debug, info, Instrument};

use super::clock::sleep_until;
use super::frame_queue::{spawn_reader, FrameSource};
use super::pacer::Pacer;
use super::{PacingClock, Stopper, StreamStatus};
use crate::webrtc::{FeedId, RtcHub, ViewerEvent, ViewerId};

/// How long a viewer has to complete ICE and DTLS after the answer went out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything a personal VOD task needs.
pub struct PersonalVod {
    /// Where the frames go.
    pub hub: RtcHub,
    /// The one viewer.
    pub viewer: ViewerId,
    /// The stream's feed in the hub.
    pub feed: FeedId,
    /// The viewer's connection events, from the hub.
    pub viewer_events: UnboundedReceiver<(ViewerId, ViewerEvent)>,
    /// Where the viewer hears PLAYING, STOPPED or FAILED.
    pub status: UnboundedSender<StreamStatus>,
    /// The stream name, for the log.
    pub name: String,
}

impl PersonalVod {
    /// Starts the task; statuses arrive on `self.status`.
    pub fn spawn(self, source: impl FrameSource) -> Stopper {
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("vod", stream = %self.name, viewer = self.viewer.0);
        tokio::spawn(self.run(source, stop_rx).instrument(span));
        Stopper::new(move |reason| {
            let _ = stop_tx.send(reason);
        })
    }

    async fn run(mut self, source: impl FrameSource, mut stop: StopRx) {
        let outcome = self.play(source, &mut stop).await;
        let status = match outcome {
            Ok(()) => StreamStatus::Stopped(String::new()),
            Err(Ending::Stopped(reason)) => StreamStatus::Stopped(reason.to_string()),
            Err(Ending::Failed(reason)) => StreamStatus::Failed(reason),
        };
        info!("ended: {status:?}");
        self.hub.remove_viewer(self.viewer, "Stopped");
        self.hub.close_feed(self.feed);
        let _ = self.status.send(status);
    }

    async fn play(&mut self, source: impl FrameSource, stop: &mut StopRx) -> Result<(), Ending> {
        // 1. The viewer connects.
        tokio::select! {
            event = self.viewer_events.recv() => match event.map(|(_, e)| e) {
                Some(ViewerEvent::Connected) => {}
                Some(ViewerEvent::Closed(reason)) => return Err(Ending::from_reason(reason)),
                None => return Err(Ending::Failed("Failed by ICE timeout".into())),
            },
            reason = stop.recv() => return Err(Ending::Stopped(reason.unwrap_or("Stopped by user"))),
            () = tokio::time::sleep(CONNECT_TIMEOUT) => return Err(Ending::Failed("Failed by ICE timeout".into())),
        }

        // 2. The clock starts now; the reader runs ahead of it on its own thread.
        let clock = PacingClock::new(Instant::now());
        self.hub.open_feed(self.feed, clock.epoch());
        let _ = self.status.send(StreamStatus::Playing);
        let mut frames = spawn_reader(source);
        let mut pacer = Pacer::new(clock);

        // 3. Each frame goes out when it is due (audio two at a time: `pacer`).
        loop {
            let wake_at = pacer.wake_at();
            tokio::select! {
                next = frames.recv(), if pacer.wants_frame() => match next {
                    Some(Ok(frame)) => pacer.put(frame),
                    Some(Err(e)) => return Err(Ending::Failed(e.to_string())),
                    None => break,
                },
                () = sleep_until(wake_at), if wake_at.is_some() => {
                    pacer.wake(Instant::now(), &self.hub, self.feed);
                }
                event = self.viewer_events.recv() => match event.map(|(_, e)| e) {
                    Some(ViewerEvent::Closed(reason)) => return Err(Ending::from_reason(reason)),
                    Some(ViewerEvent::Connected) => {}
                    None => return Err(Ending::Failed("Failed by RTP activity".into())),
                },
                reason = stop.recv() => return Err(Ending::Stopped(reason.unwrap_or("Stopped by user"))),
            }
        }
        pacer.finish(&self.hub, self.feed);

        // 4. End of file: let the last picture be shown before saying STOPPED.
        let tail = clock.wait(pacer.last_pts_us(), Instant::now()) + Duration::from_millis(200);
        debug!("end of file; stopping in {tail:?}");
        tokio::select! {
            () = tokio::time::sleep(tail) => Ok(()),
            reason = stop.recv() => Err(Ending::Stopped(reason.unwrap_or("Stopped by user"))),
        }
    }
}

type StopRx = UnboundedReceiver<&'static str>;

enum Ending {
    Stopped(&'static str),
    Failed(String),
}

impl Ending {
    fn from_reason(reason: &'static str) -> Self {
        if reason.starts_with("Stopped") {
            Ending::Stopped(reason)
        } else {
            Ending::Failed(reason.to_string())
        }
    }
}
