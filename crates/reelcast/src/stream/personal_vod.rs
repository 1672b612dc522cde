//! Personal VOD (`vod://file`): one viewer, the file from its start, ended at end of file.
//!
//! The task waits for the viewer's connection (WebRTC: ICE and DTLS), then starts the stream clock (so the
//! first keyframe is the first thing the browser gets, and time to first frame is only the
//! handshake), reads frames a little ahead of the clock (`frame_queue`), and hands each
//! frame to its sinks (the viewer's WebRTC feed) when it is due. It knows its viewer only
//! as a [`Viewer`]: its events, and how to let it go at the end.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info, Instrument};

use super::clock::sleep_until;
use super::frame_queue::{spawn_reader, FrameSource};
use super::pacer::Pacer;
use super::{PacingClock, PlayTicket};
use crate::media::{Ending, FailReason, Sink, Sinks, StopReason};
use crate::media::{Viewer, ViewerEvent, ViewerEventsRx};

/// How long a viewer has to connect (WebRTC: ICE and DTLS) after the answer went out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything a personal VOD task needs.
pub struct PersonalVod {
    /// The one viewer (let go at the end).
    pub viewer: Viewer,
    /// What happens to the viewer (connected, closed).
    pub viewer_events: ViewerEventsRx,
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
        let span = tracing::info_span!("vod", stream = %self.name, viewer = self.viewer.id().0);
        tokio::spawn(self.run(source, stop).instrument(span));
    }

    async fn run(mut self, source: impl FrameSource, mut stop: StopRx) {
        let ending = match self.play(source, &mut stop).await {
            Ok(()) => Ending::Stopped(StopReason::EndOfFile),
            Err(ending) => ending,
        };
        info!("ended: {ending:?}");
        self.viewer.leave(ending.clone());
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::media::viewer::testing::NotingCarrier;
    use crate::media::{ViewerEvents, ViewerProtocol};
    use crate::stream::status::{PlayKey, PlayStatus, StreamStatus};
    use crate::stream::testing::sample_reader;

    /// A personal VOD of the sample to one viewer on `carrier`: where the viewer's events
    /// go, where its stop goes, and what its session hears.
    fn spawn_vod(
        carrier: &Arc<NotingCarrier>,
    ) -> (
        crate::media::ViewerId,
        ViewerEvents,
        mpsc::UnboundedSender<StopReason>,
        mpsc::UnboundedReceiver<PlayStatus>,
    ) {
        let viewer = carrier.viewer(ViewerProtocol::Whep);
        let id = viewer.id();
        let (events, viewer_events) = mpsc::unbounded_channel();
        let (status_tx, statuses) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        PersonalVod {
            viewer,
            viewer_events,
            sinks: Sinks::default(),
            ticket: PlayTicket::new(PlayKey::next(), Some(status_tx), Box::new(|| {})),
            name: "vod://sample.mp4".into(),
        }
        .spawn(sample_reader(), stop_rx);
        (id, events, stop_tx, statuses)
    }

    /// Waits (at most 10 s) for the next status the session hears.
    async fn next_status(rx: &mut mpsc::UnboundedReceiver<PlayStatus>) -> StreamStatus {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a status within 10 s")
            .expect("the session channel is open")
            .status
    }

    /// The personal VOD's one viewer, as its carrier reports it: PLAYING once connected;
    /// stopped, it is let go through its carrier with the reason its session hears.
    #[tokio::test]
    async fn a_personal_vod_plays_once_its_viewer_connects_and_lets_it_go_when_stopped() {
        let carrier = Arc::new(NotingCarrier::default());
        let (viewer, events, stop, mut statuses) = spawn_vod(&carrier);
        events.send((viewer, ViewerEvent::Connected)).unwrap();
        assert_eq!(next_status(&mut statuses).await, StreamStatus::Playing);
        stop.send(StopReason::ByUser).unwrap();
        let stopped: Ending = StopReason::ByUser.into();
        assert_eq!(
            next_status(&mut statuses).await,
            StreamStatus::Ended(stopped.clone())
        );
        assert_eq!(carrier.released(), vec![(viewer, stopped)]);
    }

    /// A viewer whose connection fails before it is up ends the play with its carrier's
    /// reason (FAILED, never PLAYING) and is let go with it.
    #[tokio::test]
    async fn a_viewer_that_never_connects_fails_the_play_with_its_carriers_reason() {
        let carrier = Arc::new(NotingCarrier::default());
        let (viewer, events, _stop, mut statuses) = spawn_vod(&carrier);
        let dtls: Ending = FailReason::DtlsError.into();
        events
            .send((viewer, ViewerEvent::Closed(dtls.clone())))
            .unwrap();
        assert_eq!(
            next_status(&mut statuses).await,
            StreamStatus::Ended(dtls.clone())
        );
        assert_eq!(carrier.released(), vec![(viewer, dtls)]);
    }
}
