//! Personal VOD (`vod://file`): one viewer, the file from its start, ended at end of file.
//!
//! The task waits for the viewer's WebRTC connection, then starts the stream clock (so the
//! first keyframe is the first thing the browser gets, and time to first frame is only the
//! handshake), reads frames a little ahead of the clock (`frame_queue`), and hands each
//! frame to its sinks (the viewer's WebRTC feed) when it is due.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, Instrument};

use super::clock::sleep_until;
use super::frame_queue::{spawn_reader, FrameSource};
use super::pacer::Pacer;
use super::{PacingClock, PlayTicket};
use crate::media::{Ending, FailReason, Sink, Sinks, StopReason};
use crate::webrtc::{RtcHub, ViewerEvent, ViewerId};

/// How long a viewer has to complete ICE and DTLS after the answer went out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything a personal VOD task needs.
pub struct PersonalVod {
    /// Where its viewer is (taken off at the end).
    pub hub: RtcHub,
    /// The one viewer.
    pub viewer: ViewerId,
    /// What happens to the viewer (connected, closed).
    pub viewer_events: UnboundedReceiver<(ViewerId, ViewerEvent)>,
    /// Where the frames go (the viewer's WebRTC feed).
    pub sinks: Sinks,
    /// The play: PLAYING and the ending go through it.
    pub ticket: PlayTicket,
    /// The stream's name, for logs.
    pub name: String,
}

impl PersonalVod {
    /// Starts the task; statuses go through `self.ticket`, and it stops when a reason
    /// arrives on `stop` (the play's [`Stopper`](super::Stopper) sends it).
    pub fn spawn(self, source: impl FrameSource, stop: UnboundedReceiver<StopReason>) {
        let span = tracing::info_span!("vod", stream = %self.name, viewer = self.viewer.0);
        tokio::spawn(self.run(source, stop).instrument(span));
    }

    async fn run(mut self, source: impl FrameSource, mut stop: StopRx) {
        let ending = match self.play(source, &mut stop).await {
            Ok(()) => Ending::Stopped(StopReason::EndOfFile),
            Err(ending) => ending,
        };
        info!("ended: {ending:?}");
        self.hub.remove_viewer(self.viewer, ending.clone());
        self.sinks.end(&ending);
        self.ticket.end(ending);
    }

    async fn play(&mut self, source: impl FrameSource, stop: &mut StopRx) -> Result<(), Ending> {
        let stopped =
            |reason: Option<StopReason>| Ending::Stopped(reason.unwrap_or(StopReason::ByUser));
        // 1. The viewer connects.
        tokio::select! {
            event = self.viewer_events.recv() => match event.map(|(_, e)| e) {
                Some(ViewerEvent::Connected) => {}
                Some(ViewerEvent::Closed(ending)) => return Err(ending),
                None => return Err(FailReason::IceTimeout.into()),
            },
            reason = stop.recv() => return Err(stopped(reason)),
            () = tokio::time::sleep(CONNECT_TIMEOUT) => return Err(FailReason::IceTimeout.into()),
        }

        // 2. The clock starts now; the reader runs ahead of it on its own thread.
        let clock = PacingClock::new(Instant::now());
        self.sinks.start(clock.epoch());
        self.ticket.playing();
        let mut frames = spawn_reader(source);
        let mut pacer = Pacer::new(clock);

        // 3. Each frame goes out when it is due (audio two at a time: `pacer`).
        loop {
            let wake_at = pacer.wake_at();
            tokio::select! {
                next = frames.recv(), if pacer.wants_frame() => match next {
                    Some(Ok(frame)) => pacer.put(frame),
                    Some(Err(e)) => return Err(FailReason::from(e).into()),
                    None => break,
                },
                () = sleep_until(wake_at), if wake_at.is_some() => {
                    pacer.wake(Instant::now(), &mut self.sinks);
                }
                event = self.viewer_events.recv() => match event.map(|(_, e)| e) {
                    Some(ViewerEvent::Closed(ending)) => return Err(ending),
                    Some(ViewerEvent::Connected) => {}
                    None => return Err(FailReason::RtpActivity.into()),
                },
                reason = stop.recv() => return Err(stopped(reason)),
            }
        }
        pacer.finish(&mut self.sinks);

        // 4. End of file: let the last picture be shown before saying STOPPED.
        let tail = clock.wait(pacer.last_pts_us(), Instant::now()) + Duration::from_millis(200);
        debug!("end of file; stopping in {tail:?}");
        tokio::select! {
            () = tokio::time::sleep(tail) => Ok(()),
            reason = stop.recv() => Err(stopped(reason)),
        }
    }
}

type StopRx = UnboundedReceiver<StopReason>;
