//! A publisher over real UDP: a str0m client (the WebRTC stack a browser speaks: full ICE,
//! DTLS, SRTP, RTX, TWCC) sends H.264 and Opus from its own socket to the hub's media port
//! on 127.0.0.1, answered by `RtcFactory::accept_publisher_offer` and taken by
//! `RtcFeeds::add_publisher` as the publish signalling does; what comes out is read from
//! the `Publisher`, as a published stream would.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelcast::media::{Ending, FailReason, MediaKind, PublisherEvent};
use reelcast::webrtc::{bind_media_port, IceTransport, RtcFactory, RtcFeeds, RtcHub};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind as RtcKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Pictures sent (25 fps, a keyframe every 25th), then silence.
const PICTURES: u32 = 75;
const RTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Every wait in this test ends by then.
const DEADLINE: Duration = Duration::from_secs(30);

/// Picture `n` in Annex-B (SPS+PPS+IDR for a keyframe), its number in two bytes without
/// zeros, about 4 KB (several packets).
fn picture(n: u32, keyframe: bool) -> Vec<u8> {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0xD9]);
        data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
    data.extend_from_slice(&[0x80 | (n >> 7) as u8, 0x80 | (n & 0x7F) as u8]);
    data.resize(data.len() + 4000, 0xAB);
    data
}

/// The picture number in a frame that came out.
fn number(data: &[u8]) -> u32 {
    let at = data
        .windows(5)
        .rposition(|w| w[..4] == [0, 0, 0, 1] && (w[4] == 0x65 || w[4] == 0x41))
        .expect("a slice");
    (u32::from(data[at + 5] & 0x7F) << 7) | u32::from(data[at + 6] & 0x7F)
}

/// Runs the client: connects, sends `PICTURES` pictures with their audio in real time,
/// then keeps its ICE alive without media until `stop` (or the deadline).
fn run_client(mut rtc: Rtc, socket: UdpSocket, mids: (Mid, Mid), stop: Instant) -> bool {
    let local = socket.local_addr().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; 2000];
    let mut connected = false;
    let mut next_picture = 0u32;
    let mut next_at = Instant::now();
    while Instant::now() < deadline.min(stop) {
        let timeout = match rtc.poll_output().expect("poll_output") {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket
                    .send_to(&t.contents, t.destination)
                    .expect("udp send");
                continue;
            }
            Output::Event(Event::Connected) => {
                connected = true;
                continue;
            }
            Output::Event(_) => continue,
        };
        let now = Instant::now();
        if connected {
            let (video, audio) = mids;
            if next_picture < PICTURES && now >= next_at {
                let n = next_picture;
                let pt = |rtc: &mut Rtc, mid, codec| {
                    rtc.writer(mid)
                        .expect("writer")
                        .payload_params()
                        .find(|p| {
                            p.spec().codec == codec
                                && (codec != Codec::H264
                                    || p.spec().format.packetization_mode == Some(1))
                        })
                        .expect("negotiated")
                        .pt()
                };
                let vpt = pt(&mut rtc, video, Codec::H264);
                let apt = pt(&mut rtc, audio, Codec::Opus);
                rtc.writer(video)
                    .unwrap()
                    .write(
                        vpt,
                        now,
                        MediaTime::new(u64::from(n) * 3600, Frequency::NINETY_KHZ),
                        picture(n, n.is_multiple_of(25)),
                    )
                    .expect("video written");
                for k in 0..2u64 {
                    rtc.writer(audio)
                        .unwrap()
                        .write(
                            apt,
                            now,
                            MediaTime::new(
                                u64::from(n) * 1920 + k * 960,
                                Frequency::FORTY_EIGHT_KHZ,
                            ),
                            vec![0xF8, 0xFF, 0xFE],
                        )
                        .expect("audio written");
                }
                next_picture += 1;
                next_at += Duration::from_millis(40);
                continue;
            }
        }
        let mut wait = timeout
            .saturating_duration_since(now)
            .min(Duration::from_millis(10));
        if next_picture < PICTURES && connected {
            wait = wait.min(next_at.saturating_duration_since(now));
        }
        if wait.is_zero() {
            rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            continue;
        }
        socket.set_read_timeout(Some(wait)).unwrap();
        let input = match socket.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into().expect("a known packet kind"),
                },
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Input::Timeout(Instant::now())
            }
            Err(e) => panic!("udp recv: {e}"),
        };
        rtc.handle_input(input).expect("handle_input");
    }
    next_picture == PICTURES
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_over_real_udp_comes_out_as_frames_then_fails_by_rtp_activity() {
    let socket = bind_media_port(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).expect("media port");
    let server: SocketAddr = socket.local_addr().unwrap();
    let hub = RtcHub::start(socket, vec![server], None);
    let factory = RtcFactory::new(vec![server], vec![]).expect("factory");
    let feeds = RtcFeeds::new(hub);

    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let client = UdpSocket::bind("127.0.0.1:0").expect("client udp");
    rtc.add_local_candidate(Candidate::host(client.local_addr().unwrap(), "udp").unwrap())
        .unwrap();
    let mut api = rtc.sdp_api();
    let video = api.add_media(RtcKind::Video, Direction::SendOnly, None, None, None);
    let audio = api.add_media(RtcKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let accepted = factory
        .accept_publisher_offer(&offer.to_sdp_string(), Instant::now(), IceTransport::Udp)
        .expect("offer accepted");
    let answer = SdpAnswer::from_sdp_string(&accepted.answer_sdp).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let mut publisher = feeds.add_publisher(accepted, RTP_TIMEOUT);

    // The client keeps its ICE going well past the time-out: the end must come from the
    // missing media alone.
    let stop = Instant::now() + Duration::from_secs(3) + RTP_TIMEOUT * 4;
    let client_task =
        tokio::task::spawn_blocking(move || run_client(rtc, client, (video, audio), stop));

    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, publisher.next()).await {
            Ok(Some(PublisherEvent::Closed(reason))) => {
                events.push(PublisherEvent::Closed(reason));
                break;
            }
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("the hub dropped the publisher without Closed"),
            Err(elapsed) => panic!("no end within {DEADLINE:?}: {elapsed}"),
        }
    }
    assert!(matches!(events.first(), Some(PublisherEvent::Connected)));
    let Some(PublisherEvent::Closed(reason)) = events.last() else {
        unreachable!()
    };
    assert!(
        matches!(reason, Ending::Failed(FailReason::RtpActivity)),
        "{reason}"
    );
    let video: Vec<(u32, bool, i64)> = events
        .iter()
        .filter_map(|e| match e {
            PublisherEvent::Frame(f) if f.kind == MediaKind::Video => {
                Some((number(&f.data), f.keyframe, f.pts_us))
            }
            _ => None,
        })
        .collect();
    let numbers: Vec<u32> = video.iter().map(|v| v.0).collect();
    assert_eq!(
        numbers,
        (0..PICTURES).collect::<Vec<_>>(),
        "every picture in order"
    );
    for (n, keyframe, _) in &video {
        assert_eq!(*keyframe, n.is_multiple_of(25), "picture {n}");
    }
    for w in video.windows(2) {
        assert_eq!(w[1].2 - w[0].2, 40_000, "times from the RTP clock");
    }
    let audio = events
        .iter()
        .filter(|e| matches!(e, PublisherEvent::Frame(f) if f.kind == MediaKind::Audio))
        .count();
    assert_eq!(audio, 2 * PICTURES as usize, "every Opus packet");
    assert!(client_task.await.unwrap(), "the client sent everything");
}
