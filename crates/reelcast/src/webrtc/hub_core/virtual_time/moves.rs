//! A viewer moved between two feeds (a stream and its lower rendition) on virtual time:
//! what the browser gets across the move (one SSRC and payload type, sequence numbers
//! going on, RTP time forward, the target from its keyframe on), and when the hub asks
//! for a move.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{is_rtp, opus, picture, ssrc, NarrowLink, Net, FRAME};
use crate::media::{MoveNote, ViewerEvent, ViewerEventsRx};
use crate::webrtc::hub_core::Command;
use crate::webrtc::ids::FeedId;
use crate::webrtc::packets::VideoCodec;

/// Sends one frame on `feed` and passes it to the browsers.
fn send(net: &mut Net, feed: FeedId, frame: crate::media::Frame) {
    net.core.handle_command(
        net.now,
        Command::Frames {
            feed,
            first: frame,
            second: None,
            video: VideoCodec::H264,
        },
    );
    net.deliver();
}

/// One 40 ms step of both feeds: the stream's picture `i` and audio, and the rendition's
/// audio and its picture five frames behind (its encoder's delay), a keyframe when
/// `rendition_key`. Sizes tell them apart: the stream's pictures are larger.
fn step(net: &mut Net, rendition: FeedId, i: u32, rendition_key: bool) {
    let main = net.feed;
    send(net, main, picture(FRAME * i, i == 0, 1200));
    send(net, main, opus(FRAME * i, 100));
    send(net, rendition, opus(FRAME * i, 90));
    if i >= 5 {
        send(net, rendition, picture(FRAME * (i - 5), rendition_key, 300));
    }
    net.pass(FRAME);
}

/// (sequence number, RTP time, payload type) of each RTP packet the hub sent with `ssrc`.
fn headers(net: &Net, of: u32) -> Vec<(u16, u32, u8)> {
    net.sent
        .iter()
        .filter(|s| is_rtp(&s.data) && ssrc(&s.data) == of)
        .map(|s| {
            let d = &s.data;
            (
                u16::from_be_bytes([d[2], d[3]]),
                u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                d[1] & 0x7F,
            )
        })
        .collect()
}

/// The SSRC of the audio the net sent beside `video_ssrc` (small RTP packets).
fn audio_ssrc(net: &Net, video_ssrc: u32) -> u32 {
    net.sent
        .iter()
        .find(|s| is_rtp(&s.data) && s.data.len() < 200 && ssrc(&s.data) != video_ssrc)
        .map(|s| ssrc(&s.data))
        .expect("audio sent")
}

/// A net with a second feed open (a rendition's) beside the stream's, one connected
/// viewer of the stream, and `frames` steps of both sent: the net, the rendition's feed
/// and the viewer.
fn viewer_beside_a_rendition(frames: u32) -> (Net, FeedId, usize) {
    let mut net = Net::new();
    let rendition = FeedId::next();
    net.core.handle_command(
        net.now,
        Command::OpenFeed {
            feed: rendition,
            epoch: net.now,
        },
    );
    let b = net.join();
    net.connect_all();
    for i in 0..frames {
        step(&mut net, rendition, i, false);
    }
    (net, rendition, b)
}

/// Asks the hub to move viewer `b` down to `rendition`; the events the move tells.
fn move_down(net: &mut Net, b: usize, rendition: FeedId) -> ViewerEventsRx {
    let (events_tx, events) = mpsc::unbounded_channel();
    net.core.handle_command(
        net.now,
        Command::MoveViewer {
            id: net.browsers[b].id,
            feed: rendition,
            events: events_tx,
            down: true,
        },
    );
    events
}

#[test]
fn a_moved_viewer_switches_at_the_targets_keyframe_with_one_stream_going_on_forward() {
    let (mut net, rendition, b) = viewer_beside_a_rendition(25);
    assert_eq!(net.browsers[b].pictures.len(), 25, "the stream's only");
    let mut events = move_down(&mut net, b, rendition);
    // The rendition's keyframe comes at step 35 (its picture of step 30).
    for i in 25..45 {
        step(&mut net, rendition, i, i == 35);
    }
    let got = net.browsers[b].pictures.clone();
    // The stream's 25 + 11 (up to the keyframe's step), then the rendition's 10.
    assert_eq!(got.len(), 46, "{got:?}");
    assert!(got[36].1, "switched at the rendition's keyframe: {got:?}");
    for pair in got.windows(2) {
        assert!(pair[1].0 > pair[0].0, "RTP time went back: {got:?}");
    }
    // The keyframe follows the stream's last picture by a frame's time at most; then the
    // rendition's own spacing.
    assert!(got[36].0 - got[35].0 <= 3600, "{got:?}");
    assert!(got[37..].windows(2).all(|p| p[1].0 - p[0].0 == 3600));
    // One video stream: same SSRC and payload type, sequence numbers one after another.
    let video_ssrc = net
        .sent
        .iter()
        .find(|s| is_rtp(&s.data) && s.data.len() > 1000)
        .map(|s| ssrc(&s.data))
        .expect("video sent");
    let video = headers(&net, video_ssrc);
    assert!(video.windows(2).all(|p| p[1].0 == p[0].0.wrapping_add(1)));
    assert!(video.iter().all(|h| h.2 == video[0].2));
    // Audio: one stream too, its time never going back.
    let audio_ssrc = audio_ssrc(&net, video_ssrc);
    let audio = headers(&net, audio_ssrc);
    assert!(audio.len() > 40);
    assert!(audio.windows(2).all(|p| p[1].0 == p[0].0.wrapping_add(1)));
    assert!(audio.windows(2).all(|p| p[1].1 > p[0].1), "{audio:?}");
    // The stream it went to hears it connected; whoever moves it, that it is done.
    assert_eq!(
        events.try_recv().ok(),
        Some((net.browsers[b].id, ViewerEvent::Connected))
    );
    let notes = net.move_notes.lock().unwrap().clone();
    assert_eq!(notes, vec![(net.browsers[b].id, MoveNote::Switched)]);
    // The stream it left feeds it no more.
    let before = net.browsers[b].pictures.len();
    let main = net.feed;
    send(&mut net, main, picture(FRAME * 45, true, 1200));
    net.pass(FRAME);
    assert_eq!(net.browsers[b].pictures.len(), before);
}

/// A packet of the stream lost just before the switch is not re-sent when the browser
/// asks: the browser decodes from the rendition's keyframe on, and repairs of the old
/// stream would take the narrow link from it.
#[test]
fn after_a_move_the_old_streams_lost_packets_are_not_re_sent() {
    let (mut net, rendition, b) = viewer_beside_a_rendition(25);
    let _events = move_down(&mut net, b, rendition);
    for i in 25..35 {
        step(&mut net, rendition, i, false);
    }
    // The stream's picture of the step where the rendition's keyframe comes is lost.
    let from = net.sent.len();
    net.drop_nth_large = Some(1);
    step(&mut net, rendition, 35, true);
    assert!(net.dropped.is_some(), "a packet of the stream was lost");
    for i in 36..45 {
        step(&mut net, rendition, i, false);
    }
    let notes = net.move_notes.lock().unwrap().clone();
    assert_eq!(notes, vec![(net.browsers[b].id, MoveNote::Switched)]);
    let video_ssrc = ssrc(&net.dropped.take().unwrap());
    let audio_ssrc = audio_ssrc(&net, video_ssrc);
    let resent = net.sent[from..]
        .iter()
        .filter(|s| s.to == net.browsers[b].addr && is_rtp(&s.data))
        .filter(|s| ![video_ssrc, audio_ssrc].contains(&ssrc(&s.data)))
        .count();
    assert_eq!(resent, 0, "the old stream's packet was re-sent");
}

#[test]
fn a_move_whose_target_ends_before_its_keyframe_is_abandoned_and_the_viewer_stays() {
    let (mut net, rendition, b) = viewer_beside_a_rendition(10);
    let id = net.browsers[b].id;
    let _events = move_down(&mut net, b, rendition);
    net.core
        .handle_command(net.now, Command::CloseFeed { feed: rendition });
    let notes = net.move_notes.lock().unwrap().clone();
    assert_eq!(notes, vec![(id, MoveNote::Abandoned)]);
    let before = net.browsers[b].pictures.len();
    for i in 10..15 {
        let main = net.feed;
        send(&mut net, main, picture(FRAME * i, false, 1200));
        net.pass(FRAME);
    }
    assert_eq!(net.browsers[b].pictures.len(), before + 5);
}

/// A viewer whose link carries half its stream asks to move down within a few seconds,
/// with what its link carried; the viewer beside it on a clean link never asks.
#[test]
fn a_sustained_short_link_asks_for_a_lower_rendition_and_a_clean_one_never() {
    let mut net = Net::new();
    let clean = net.join();
    let full = net.join();
    net.connect_all();
    net.gop(Duration::ZERO, 75);
    assert!(net.move_notes.lock().unwrap().is_empty());
    net.narrow_link = Some(NarrowLink::new(net.browsers[full].addr, 120_000, net.now));
    net.gop(FRAME * 75, 100);
    let notes = net.move_notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (who, MoveNote::Down(short)) = notes[0] else {
        panic!("not a move down: {notes:?}");
    };
    assert_eq!(who, net.browsers[full].id);
    assert!(short.carries_bps < short.sending_bps, "{short:?}");
    assert!(notes.iter().all(|(id, _)| *id != net.browsers[clean].id));
}
