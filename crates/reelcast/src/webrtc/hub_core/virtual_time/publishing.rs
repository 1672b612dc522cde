//! A publisher through the hub's core on virtual time: a real str0m client offers to send
//! H.264 and Opus, and its datagrams are passed to the [`HubCore`] by hand (and can be
//! lost on the way), with a clock the test moves. What comes out is read from the
//! publisher's channel, as the published stream would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind as RtcKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc;

use super::{forged_check, is_rtp, SERVER, TICK};
use crate::media::{Ending, FailReason, MediaKind, PublisherEvent};
use crate::webrtc::hub_core::{Command, HubCore};
use crate::webrtc::ids::ViewerId;
use crate::webrtc::publisher_peer::FRAME_QUEUE;
use crate::webrtc::udp::Path;
use crate::webrtc::{IceTransport, RtcFactory, WebRtcError};

/// The publishing browser's address.
const BROWSER: &str = "127.0.0.20:5000";
/// A picture every 40 ms; an Opus packet every 20 ms.
const FRAME: Duration = Duration::from_millis(40);
const RTP_TIMEOUT: Duration = Duration::from_secs(3);

/// A str0m client publishing to the core, and what it was told.
struct Net {
    core: HubCore,
    now: Instant,
    rtc: Rtc,
    video: (Mid, Pt),
    audio: (Mid, Pt),
    connected: bool,
    id: ViewerId,
    events: mpsc::Receiver<PublisherEvent>,
    /// Keyframe requests (PLI/FIR) the client got.
    keyframe_requests: usize,
    /// NACKs the client got, from its last egress stats.
    nacks: u64,
    outbox: VecDeque<Vec<u8>>,
    /// Drop the n-th large RTP packet the client sends from now on (1-based).
    drop_nth_large: Option<usize>,
    dropped: usize,
    /// The client's RTP packets reach the hub.
    up: bool,
}

/// A str0m offer to send H.264 and Opus (as a browser's camera and microphone).
fn publisher_client(now: Instant) -> (Rtc, String, str0m::change::SdpPendingOffer, Mid, Mid) {
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_stats_interval(Some(Duration::from_millis(100)))
        .build(now);
    rtc.add_local_candidate(Candidate::host(BROWSER.parse().unwrap(), "udp").unwrap())
        .unwrap();
    let mut api = rtc.sdp_api();
    let video = api.add_media(RtcKind::Video, Direction::SendOnly, None, None, None);
    let audio = api.add_media(RtcKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (rtc, offer.to_sdp_string(), pending, video, audio)
}

impl Net {
    fn new(queue: usize) -> Self {
        let server: SocketAddr = SERVER.parse().unwrap();
        let now = Instant::now();
        let mut core = HubCore::new(vec![server], vec![], now, SystemTime::now());
        let factory = RtcFactory::new(vec![server], vec![]).expect("factory");
        let (mut rtc, offer, pending, video_mid, audio_mid) = publisher_client(now);
        let accepted = factory
            .accept_publisher_offer(&offer, now, IceTransport::Udp)
            .expect("offer accepted");
        assert!(accepted.receives_video && accepted.receives_audio);
        assert!(
            accepted.answer_sdp.contains("transport-wide-cc"),
            "{}",
            accepted.answer_sdp
        );
        let answer = SdpAnswer::from_sdp_string(&accepted.answer_sdp).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let id = ViewerId::next();
        let (tx, events) = mpsc::channel(queue);
        core.handle_command(
            now,
            Command::AddPublisher {
                id,
                accepted: Box::new(accepted),
                events: tx,
                rtp_timeout: RTP_TIMEOUT,
            },
        );
        let pt = |rtc: &mut Rtc, mid, codec| {
            rtc.writer(mid)
                .expect("writer")
                .payload_params()
                .find(|p| {
                    p.spec().codec == codec
                        && (codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
                })
                .expect("negotiated")
                .pt()
        };
        let video = (video_mid, pt(&mut rtc, video_mid, Codec::H264));
        let audio = (audio_mid, pt(&mut rtc, audio_mid, Codec::Opus));
        let mut net = Net {
            core,
            now,
            rtc,
            video,
            audio,
            connected: false,
            id,
            events,
            keyframe_requests: 0,
            nacks: 0,
            outbox: VecDeque::new(),
            drop_nth_large: None,
            dropped: 0,
            up: true,
        };
        net.deliver();
        net
    }

    fn poll(&mut self) {
        loop {
            match self.rtc.poll_output().expect("client poll_output") {
                Output::Timeout(_) => return,
                Output::Transmit(t) => self.outbox.push_back(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(Event::MediaEgressStats(s)) if s.mid == self.video.0 => {
                    self.nacks = s.nacks;
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Passes datagrams both ways until neither side has more to send now.
    fn deliver(&mut self) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let browser: SocketAddr = BROWSER.parse().unwrap();
        for _ in 0..1000 {
            self.poll();
            let mut moved = false;
            while let Some(data) = self.outbox.pop_front() {
                moved = true;
                if is_rtp(&data) && !self.up {
                    continue;
                }
                if is_rtp(&data) && data.len() > 500 {
                    if let Some(n) = &mut self.drop_nth_large {
                        *n -= 1;
                        if *n == 0 {
                            self.drop_nth_large = None;
                            self.dropped += 1;
                            continue;
                        }
                    }
                }
                let from = Path {
                    remote: browser,
                    local: Some(server.ip()),
                    tcp: None,
                };
                self.core.handle_datagram(self.now, &data, from);
            }
            let mut datagrams = Vec::new();
            while let Some(t) = self.core.poll_transmit(self.now) {
                datagrams.extend(t.datagrams());
                t.clear();
            }
            for (path, data) in datagrams {
                moved = true;
                assert_eq!(path.remote, browser, "sent only to the publisher");
                let input = Input::Receive(
                    self.now,
                    Receive {
                        proto: Protocol::Udp,
                        source: server,
                        destination: browser,
                        contents: data.as_slice().try_into().unwrap(),
                    },
                );
                self.rtc.handle_input(input).expect("client handle_input");
                self.poll();
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange never settled");
    }

    fn pass(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += TICK;
            self.rtc.handle_input(Input::Timeout(self.now)).unwrap();
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_timeout(self.now);
            }
            self.deliver();
        }
    }

    fn connect(&mut self) {
        for _ in 0..300 {
            if self.connected {
                self.pass(Duration::from_millis(100));
                return;
            }
            self.pass(TICK);
        }
        panic!("the publisher did not connect");
    }

    /// Sends picture `n` (a keyframe with SPS/PPS when asked, about `len` bytes) and the
    /// two Opus packets of its 40 ms, then lets the 40 ms pass.
    fn send(&mut self, n: u32, keyframe: bool, len: usize) {
        let wallclock = self.now;
        let rtp = u64::from(n) * 3600;
        let (mid, pt) = self.video;
        self.rtc
            .writer(mid)
            .unwrap()
            .write(
                pt,
                wallclock,
                MediaTime::new(rtp, Frequency::NINETY_KHZ),
                picture(n, keyframe, len),
            )
            .expect("video written");
        for k in 0..2u64 {
            let (mid, pt) = self.audio;
            let rtp = u64::from(n) * 1920 + k * 960;
            self.rtc
                .writer(mid)
                .unwrap()
                .write(
                    pt,
                    wallclock,
                    MediaTime::new(rtp, Frequency::FORTY_EIGHT_KHZ),
                    vec![0xF8, n as u8, k as u8],
                )
                .expect("audio written");
        }
        self.deliver();
        self.pass(FRAME);
    }

    fn received(&mut self) -> Vec<PublisherEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

/// Picture `n` in Annex-B: SPS, PPS and an IDR slice for a keyframe, else a non-IDR slice;
/// its number in the first payload bytes, padded to about `len` bytes.
fn picture(n: u32, keyframe: bool, len: usize) -> Vec<u8> {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0xD9]);
        data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
    // No zero bytes: they could make a start code.
    data.extend_from_slice(&[0x80 | (n >> 7) as u8, 0x80 | (n & 0x7F) as u8]);
    data.resize(data.len() + len, 0xAB);
    data
}

/// The video frames among `events`: (picture number, keyframe, pts µs, length).
fn pictures(events: &[PublisherEvent]) -> Vec<(u32, bool, i64, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            PublisherEvent::Frame(f) if f.kind == MediaKind::Video => {
                // The slice's NAL header is followed by the number.
                let at = f
                    .data
                    .windows(5)
                    .rposition(|w| w[..4] == [0, 0, 0, 1] && (w[4] == 0x65 || w[4] == 0x41))
                    .expect("a slice");
                let n = (u32::from(f.data[at + 5] & 0x7F) << 7) | u32::from(f.data[at + 6] & 0x7F);
                Some((n, f.keyframe, f.pts_us, f.data.len()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn frames_come_out_whole_in_order_with_keyframe_flags_and_times() {
    let mut net = Net::new(FRAME_QUEUE);
    net.connect();
    assert!(matches!(
        net.received().first(),
        Some(PublisherEvent::Connected)
    ));
    for n in 0..20 {
        net.send(n, n % 10 == 0, 3000);
    }
    net.pass(Duration::from_millis(200));
    let events = net.received();
    let pics = pictures(&events);
    let numbers: Vec<u32> = pics.iter().map(|p| p.0).collect();
    assert_eq!(
        numbers,
        (0..20).collect::<Vec<_>>(),
        "every picture, in order"
    );
    for (n, keyframe, _, len) in &pics {
        assert_eq!(*keyframe, n % 10 == 0, "picture {n}");
        assert!(*len >= 3000, "picture {n} whole: {len} bytes");
    }
    // Video times step 40 ms from the first.
    for w in pics.windows(2) {
        assert_eq!(w[1].2 - w[0].2, 40_000, "{pics:?}");
    }
    let audio: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            PublisherEvent::Frame(f) if f.kind == MediaKind::Audio => Some(f.pts_us),
            _ => None,
        })
        .collect();
    assert_eq!(audio.len(), 40, "every Opus packet");
    for w in audio.windows(2) {
        assert_eq!(w[1] - w[0], 20_000);
    }
    // One clock: audio and video start together (sent at the same instant).
    assert!(
        (audio[0] - pics[0].2).abs() <= 20_000,
        "{} vs {}",
        audio[0],
        pics[0].2
    );
}

#[test]
fn a_lost_packet_is_nacked_and_its_picture_still_comes_out() {
    let mut net = Net::new(FRAME_QUEUE);
    net.connect();
    net.send(0, true, 3000);
    // Picture 1 is three packets; its second one is lost on the way.
    net.drop_nth_large = Some(2);
    for n in 1..10 {
        net.send(n, false, 3000);
    }
    net.pass(Duration::from_millis(500));
    assert_eq!(net.dropped, 1);
    assert!(net.nacks >= 1, "the hub asked for the lost packet");
    let pics = pictures(&net.received());
    let numbers: Vec<u32> = pics.iter().map(|p| p.0).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>(), "nothing missing");
    assert!(
        pics[1].3 >= 3000,
        "picture 1 whole after the retransmission"
    );
}

#[test]
fn keyframe_requests_reach_the_browser_at_most_every_500_ms() {
    let mut net = Net::new(FRAME_QUEUE);
    net.connect();
    net.send(0, true, 1000);
    let before = net.keyframe_requests;
    for _ in 0..5 {
        net.core
            .handle_command(net.now, Command::PublisherKeyframe { id: net.id });
        net.deliver();
        net.pass(Duration::from_millis(20));
    }
    net.pass(Duration::from_millis(200));
    assert_eq!(
        net.keyframe_requests - before,
        1,
        "five asks within 300 ms: one PLI"
    );
    net.pass(Duration::from_millis(400));
    assert_eq!(
        net.keyframe_requests - before,
        2,
        "the held one goes when 500 ms passed"
    );
    net.pass(Duration::from_secs(1));
    assert_eq!(net.keyframe_requests - before, 2, "nothing more unasked");
}

#[test]
fn a_silent_publisher_fails_by_rtp_activity_and_is_reaped() {
    let mut net = Net::new(FRAME_QUEUE);
    net.connect();
    for n in 0..5 {
        net.send(n, n == 0, 1000);
    }
    net.up = false;
    net.pass(RTP_TIMEOUT.saturating_sub(Duration::from_millis(500)));
    assert!(
        !net.received()
            .iter()
            .any(|e| matches!(e, PublisherEvent::Closed(_))),
        "not before the time-out"
    );
    net.pass(Duration::from_secs(1));
    let events = net.received();
    let closed: Vec<&Ending> = events
        .iter()
        .filter_map(|e| match e {
            PublisherEvent::Closed(reason) => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{events:?}");
    assert!(matches!(closed[0], Ending::Failed(FailReason::RtpActivity)));
    assert_eq!(closed[0].to_string(), "Failed by RTP activity");
    assert!(net.core.publishers.is_empty() && net.core.by_addr.is_empty());
    assert!(net.core.by_ufrag.is_empty());
}

#[test]
fn a_stream_that_falls_behind_loses_frames_not_the_hub_and_gets_a_keyframe() {
    // A small queue the test never reads while pictures arrive.
    let mut net = Net::new(8);
    net.connect();
    net.received();
    for n in 0..30 {
        net.send(n, n == 0, 1000);
    }
    let requests = net.keyframe_requests;
    let first = pictures(&net.received());
    assert!(first.len() < 8, "bounded: {}", first.len());
    // Drained: the next picture to come out is a keyframe, which was asked for.
    net.pass(Duration::from_millis(600));
    assert!(
        net.keyframe_requests > requests,
        "a keyframe was asked for once drained"
    );
    // The stream keeps up from now on.
    let mut events = Vec::new();
    for n in 30..40 {
        net.send(n, n == 33, 1000);
        events.extend(net.received());
    }
    let after = pictures(&events);
    assert_eq!(
        after.first().map(|p| (p.0, p.1)),
        Some((33, true)),
        "{after:?}"
    );
}

#[test]
fn forged_datagrams_do_nothing() {
    let mut net = Net::new(FRAME_QUEUE);
    net.connect();
    net.send(0, true, 1000);
    net.received();
    let stranger = Path {
        remote: "127.0.0.99:5000".parse().unwrap(),
        local: None,
        tcp: None,
    };
    let ufrag = net
        .core
        .publishers
        .values()
        .next()
        .unwrap()
        .local_ufrag
        .clone();
    let mut forged = vec![
        vec![0x80u8; 100],
        vec![0x16; 60],
        forged_check(&format!("{ufrag}:theirs")),
    ];
    // An RTP packet with a real header, unencrypted.
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    rtp.extend_from_slice(&picture(99, true, 200));
    forged.push(rtp);
    for data in &forged {
        net.core.handle_datagram(net.now, data, stranger);
    }
    assert!(
        net.core.poll_transmit(net.now).is_none(),
        "nothing answered"
    );
    assert!(net.received().is_empty());
    assert_eq!(net.core.by_addr.len(), 1, "no new route");
    // The same garbage from the publisher's own address is dropped too (SRTP fails).
    let own = Path {
        remote: BROWSER.parse().unwrap(),
        local: None,
        tcp: None,
    };
    for data in &forged[..2] {
        net.core.handle_datagram(net.now, data, own);
    }
    net.deliver();
    assert!(net.received().is_empty());
    net.send(1, false, 1000);
    assert_eq!(pictures(&net.received()).len(), 1, "still publishing");
}

#[test]
fn offers_that_send_nothing_we_take_are_refused_in_plain_words() {
    let factory = RtcFactory::new(vec![SERVER.parse().unwrap()], vec![]).expect("factory");
    let offer = |direction, vp8: bool| {
        let builder = Rtc::builder().clear_codecs().enable_opus(!vp8, false);
        let builder = if vp8 {
            builder.enable_vp8(true)
        } else {
            builder.enable_h264(true)
        };
        let mut rtc = builder.build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(RtcKind::Video, direction, None, None, None);
        if !vp8 {
            api.add_media(RtcKind::Audio, direction, None, None, None);
        }
        api.apply().unwrap().0.to_sdp_string()
    };
    for (direction, vp8) in [(Direction::RecvOnly, false), (Direction::SendOnly, true)] {
        let refused = factory.accept_publisher_offer(
            &offer(direction, vp8),
            Instant::now(),
            IceTransport::Any,
        );
        let Err(e @ WebRtcError::BadOffer(_)) = refused else {
            panic!("{direction:?} vp8={vp8} was accepted");
        };
        assert_eq!(
            e.to_string(),
            "Invalid SDP offer: it sends no H.264 (packetization-mode 1) video or Opus audio"
        );
    }
    let ok = factory
        .accept_publisher_offer(
            &offer(Direction::SendOnly, false),
            Instant::now(),
            IceTransport::Any,
        )
        .expect("a sendonly H.264 + Opus offer");
    assert!(ok.answer_sdp.contains("a=recvonly"), "{}", ok.answer_sdp);
    assert!(!ok.answer_sdp.contains("a=sendonly"), "{}", ok.answer_sdp);
}
