//! End-to-end: a real reelcast server (HTTP + UDP on 127.0.0.1) played over WHEP by a real
//! WebRTC client written with str0m, the same stack a browser speaks.
//!
//! The bundled `media/sample.mp4` is 10 s of 640x360 H.264 at a constant 25 fps (a keyframe
//! every 2 s, no B-frames) with AAC audio that the server sends as 20 ms Opus frames.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

mod support;
use support::{post_sdp, start_server_in, start_server_with};

/// 90 kHz RTP clock / 25 fps.
const VIDEO_FRAME_TICKS: u64 = 3600;
/// 48 kHz RTP clock * 20 ms.
const OPUS_FRAME_TICKS: u64 = 960;
/// The sample has a keyframe every 2 s, i.e. every 50th picture.
const FRAMES_PER_GOP: u64 = 50;
/// How much media (by RTP time of the video) the client collects before hanging up.
const MEDIA_WANTED: Duration = Duration::from_millis(3500);
/// Whole-session deadline (connect + collect); generous for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(15);

/// When the client asks for a picture (sends a PLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pli {
    Never,
    /// Once, when this much video (RTP ticks) has arrived.
    Once(u64),
    /// After every picture received: a client asking in a loop.
    Flood,
}

async fn start_server() -> SocketAddr {
    start_server_with(reelcast::config::Settings {
        ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Default::default()
    })
    .await
    .0
}

/// A receive-only str0m peer (full ICE, the controlling side) with its UDP socket.
fn new_client() -> (Rtc, UdpSocket, SdpOffer, SdpPendingOffer) {
    new_client_on("127.0.0.1")
}

/// The same, its socket on `ip`.
fn new_client_on(ip: &str) -> (Rtc, UdpSocket, SdpOffer, SdpPendingOffer) {
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let socket = UdpSocket::bind((ip, 0)).expect("bind client udp");
    let local = socket.local_addr().expect("client udp address");
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"))
        .expect("candidate accepted");
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    (rtc, socket, offer, pending)
}

/// One received frame, as the test needs it.
#[derive(Debug, Clone)]
struct Frame {
    /// RTP time (extended) in the codec's clock.
    time: u64,
    keyframe: bool,
    data: Arc<[u8]>,
}

#[derive(Debug, Default)]
struct Session {
    connected: bool,
    video: Vec<Frame>,
    audio: Vec<Frame>,
    /// The RTP time of the newest picture when the client sent its (first) picture-loss
    /// request.
    pli_sent_after: Option<u64>,
    /// Video (RTP ticks) to collect before hanging up.
    wanted_ticks: u64,
    /// Datagrams from an address the client never sent to, dropped as a browser drops them
    /// (an ICE check is answered only by the address it went to), with their sources.
    strays: Vec<SocketAddr>,
    /// Addresses the client sent to.
    sent_to: HashSet<SocketAddr>,
}

impl Session {
    fn video_span(&self) -> u64 {
        match (self.video.first(), self.video.last()) {
            (Some(a), Some(b)) => b.time.saturating_sub(a.time),
            _ => 0,
        }
    }

    fn has_enough(&self) -> bool {
        self.video_span() >= self.wanted_ticks && self.audio.len() as u64 >= 100
    }
}

/// The str0m run loop: UDP in, timeouts, transmits out, media collected until `wanted` of
/// video has come (or the deadline); picture-loss requests (PLI) sent as `pli` says.
fn run_client(mut rtc: Rtc, socket: UdpSocket, pli: Pli, wanted: Duration) -> Session {
    let deadline = Instant::now() + DEADLINE + wanted;
    let local = socket.local_addr().unwrap();
    let mut session = Session {
        wanted_ticks: wanted.as_millis() as u64 * 90,
        ..Session::default()
    };
    let mut buf = vec![0u8; 2000];
    while Instant::now() < deadline && !session.has_enough() {
        let timeout = match rtc.poll_output().expect("poll_output") {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                session.sent_to.insert(t.destination);
                socket
                    .send_to(&t.contents, t.destination)
                    .expect("udp send");
                continue;
            }
            Output::Event(event) => {
                match event {
                    Event::Connected => session.connected = true,
                    Event::MediaData(m) => {
                        let frame = Frame {
                            time: m.time.numer(),
                            keyframe: m.is_keyframe(),
                            data: m.data.clone(),
                        };
                        match m.params.spec().codec {
                            Codec::H264 => {
                                session.video.push(frame);
                                let due = match pli {
                                    Pli::Never => false,
                                    Pli::Once(t) => {
                                        session.video_span() >= t
                                            && session.pli_sent_after.is_none()
                                    }
                                    Pli::Flood => true,
                                };
                                if due {
                                    if session.pli_sent_after.is_none() {
                                        session.pli_sent_after =
                                            session.video.last().map(|f| f.time);
                                    }
                                    rtc.writer(m.mid)
                                        .expect("a writer for the video mid")
                                        .request_keyframe(None, KeyframeRequestKind::Pli)
                                        .expect("a PLI can be sent");
                                }
                            }
                            Codec::Opus => session.audio.push(frame),
                            other => panic!("unexpected codec {other:?}"),
                        }
                    }
                    _ => {}
                }
                continue;
            }
        };
        // Short reads keep the deadline checks frequent.
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if wait.is_zero() {
            rtc.handle_input(Input::Timeout(Instant::now()))
                .expect("timeout input");
            continue;
        }
        socket.set_read_timeout(Some(wait)).unwrap();
        let input = match socket.recv_from(&mut buf) {
            Ok((_, source)) if !session.sent_to.contains(&source) => {
                if session.strays.len() < 100 {
                    session.strays.push(source);
                }
                Input::Timeout(Instant::now())
            }
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
        // Anything unparseable would be a server bug; str0m reports it as an error.
        rtc.handle_input(input).expect("handle_input");
    }
    rtc.disconnect();
    session
}

/// NAL unit types of an Annex-B access unit, in order.
fn nal_types(annexb: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 <= annexb.len() {
        if annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1 {
            if let Some(header) = annexb.get(i + 3) {
                types.push(header & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// Offers, plays `sample.mp4` and returns what the client received.
async fn play_sample() -> Session {
    play_sample_with(Pli::Never).await
}

/// [`play_sample`], sending picture-loss requests as `pli` says.
async fn play_sample_with(pli: Pli) -> Session {
    let http = start_server().await;
    play_sample_from_with(http, "127.0.0.1", pli).await
}

/// Plays `sample.mp4` from a client on `client_ip`, offered to the server at `http`.
async fn play_sample_from(http: SocketAddr, client_ip: &str) -> Session {
    play_sample_from_with(http, client_ip, Pli::Never).await
}

/// [`play_sample_from`], with a picture-loss request as in [`play_sample_with`].
async fn play_sample_from_with(http: SocketAddr, client_ip: &str, pli: Pli) -> Session {
    play(
        http,
        client_ip,
        "/whep/vod%3A%2F%2Fsample.mp4",
        pli,
        MEDIA_WANTED,
    )
    .await
}

/// Offers `whep_path` to the server at `http` from a client on `client_ip`, and collects
/// `wanted` of video (see [`run_client`]).
async fn play(
    http: SocketAddr,
    client_ip: &str,
    whep_path: &str,
    pli: Pli,
    wanted: Duration,
) -> Session {
    let (rtc, socket, offer, pending) = new_client_on(client_ip);
    let (status, answer) = post_sdp(http, whep_path, &offer.to_sdp_string()).await;
    assert_eq!(status, 201, "WHEP answer status; body: {answer}");
    let answer = SdpAnswer::from_sdp_string(&answer).expect("answer SDP parses");
    tokio::task::spawn_blocking(move || {
        let mut rtc = rtc;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        run_client(rtc, socket, pli, wanted)
    })
    .await
    .expect("client thread")
}

/// The steps between consecutive frames' RTP times that are not a whole, positive number
/// of `step`s (±1), as (index of the later frame, step). A frame lost on the way (UDP, a
/// loaded machine) makes a step of two; a step back, a zero or an off-grid one is a fault.
fn off_grid(frames: &[Frame], step: u64) -> Vec<(usize, i64)> {
    let step = step as i64;
    frames
        .windows(2)
        .map(|w| w[1].time as i64 - w[0].time as i64)
        .enumerate()
        .filter(|&(_, d)| {
            let nearest = (d + step / 2) / step;
            nearest < 1 || (d - nearest * step).abs() > 1
        })
        .map(|(i, d)| (i + 1, d))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewer_gets_keyframe_first_then_frames_in_order_at_file_timestamps() {
    let s = play_sample().await;
    assert!(s.connected, "the WebRTC connection never reached Connected");

    // Video: the first picture is a complete keyframe (SPS, PPS, then the IDR slice).
    let first = s.video.first().expect("no video frame received");
    let types = nal_types(&first.data);
    assert!(
        first.keyframe,
        "first video frame is not a keyframe: NALs {types:?}"
    );
    let sps = types.iter().position(|&t| t == 7);
    let pps = types.iter().position(|&t| t == 8);
    let idr = types.iter().position(|&t| t == 5);
    match (sps, pps, idr) {
        (Some(sps), Some(pps), Some(idr)) => {
            assert!(
                sps < idr && pps < idr,
                "SPS/PPS not before the IDR: {types:?}"
            );
        }
        _ => panic!("first video frame lacks SPS/PPS/IDR: NALs {types:?}"),
    }

    // Enough pictures, in order, every 40 ms of RTP time (25 fps on a 90 kHz clock).
    assert!(
        s.video.len() >= 70,
        "only {} video frames in {:.2} s of media",
        s.video.len(),
        s.video_span() as f64 / 90_000.0
    );
    let bad = off_grid(&s.video, VIDEO_FRAME_TICKS);
    assert!(
        bad.is_empty(),
        "video RTP time steps must all be {VIDEO_FRAME_TICKS} ±1; (frame index, step) off \
         grid: {bad:?} of {} frames",
        s.video.len()
    );

    // Each picture sits at the file's timestamp (picture k at k * 40 ms after the first,
    // whichever pictures a lost datagram took away), and keyframes are exactly where the
    // file has them (every 50th picture from the first).
    let t0 = first.time;
    for f in &s.video {
        let rel = f.time - t0;
        let k = (rel + VIDEO_FRAME_TICKS / 2) / VIDEO_FRAME_TICKS;
        assert!(
            rel.abs_diff(k * VIDEO_FRAME_TICKS) <= 1,
            "a picture at RTP +{rel}, between the file's pictures"
        );
        assert_eq!(
            f.keyframe,
            k.is_multiple_of(FRAMES_PER_GOP),
            "picture {k}: keyframe flag {} but the file has a keyframe every {FRAMES_PER_GOP}",
            f.keyframe
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewer_gets_opus_audio_every_20ms_from_the_first_frame() {
    let s = play_sample().await;
    assert!(s.connected, "the WebRTC connection never reached Connected");
    assert!(
        s.audio.len() >= 100,
        "only {} audio frames received",
        s.audio.len()
    );
    assert!(
        s.audio.iter().all(|f| !f.data.is_empty()),
        "an empty Opus frame was received"
    );
    // One Opus frame per 20 ms of a 48 kHz clock, from the very first one: two packets
    // with the same RTP time (or an off-grid step) make a browser drop or mistime audio.
    let bad = off_grid(&s.audio, OPUS_FRAME_TICKS);
    assert!(
        bad.is_empty(),
        "audio RTP time steps must all be {OPUS_FRAME_TICKS} ±1; (frame index, step) off \
         grid: {bad:?} of {} frames",
        s.audio.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_loss_mid_gop_is_answered_with_the_keyframe_and_every_picture_since_in_order() {
    // 1.4 s into a GOP of 2 s: the last keyframe is over a second old (earlier requests
    // are ignored as the browser's impatience), the next real one 0.6 s away.
    let pli_at = 1400 * 90;
    let s = play_sample_with(Pli::Once(pli_at)).await;
    assert!(s.connected, "the WebRTC connection never reached Connected");
    let asked_after = s.pli_sent_after.expect("the client sent its PLI");
    let v = &s.video;
    let t0 = v.first().expect("video").time;
    let gop_ticks = FRAMES_PER_GOP * VIDEO_FRAME_TICKS;
    let keyframes: Vec<u64> = v
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.time - t0)
        .collect();
    // The answer starts with a keyframe after the request and before the file's next one
    // at 2 s: the GOP's keyframe, re-sent just after the newest picture.
    let r = v
        .iter()
        .position(|f| f.keyframe && f.time > asked_after && f.time - t0 < gop_ticks)
        .unwrap_or_else(|| {
            panic!(
                "no keyframe between the PLI at RTP +{} and the file's next keyframe at \
                 +{gop_ticks}; keyframes at {keyframes:?}",
                asked_after - t0
            )
        });
    let types = nal_types(&v[r].data);
    assert!(
        types.contains(&7) && types.contains(&8) && types.contains(&5),
        "the re-sent keyframe lacks SPS/PPS/IDR: NALs {types:?}"
    );
    // Then every picture since, the same bytes in the same order as they first came (the
    // pictures from the file's keyframe at index 0 on), up to at least the newest one the
    // client had when it asked: the pictures after the keyframe have what they reference.
    let asked = v
        .iter()
        .position(|f| f.time == asked_after)
        .expect("the newest picture at the request was received");
    let run = v[r..]
        .iter()
        .zip(v)
        .take_while(|(again, first)| again.data == first.data)
        .count();
    assert_eq!(
        run,
        r,
        "the answer re-sent {run} pictures of the GOP in order; the GOP had {r} (the \
         client had {} when it asked)",
        asked + 1
    );
    // All new to the browser: each later than the one before, from the newest picture on.
    let times: Vec<u64> = v[r - 1..r + run].iter().map(|f| f.time - t0).collect();
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "re-sent pictures' RTP times do not rise: {times:?}"
    );
    // And the feed plays on: the next picture is the one after the GOP's newest.
    let next = v.get(r + run).expect("pictures after the answer");
    assert_eq!(
        (next.time - t0 + 1) / VIDEO_FRAME_TICKS,
        (v[r - 1].time - t0 + 1) / VIDEO_FRAME_TICKS + 1,
        "the picture after the answer at RTP +{} is not the next of the file's",
        next.time - t0
    );
}

/// A client asking for a picture after every picture it gets (a loop, or an attack), on a
/// file whose GOP is 10 s: each answer re-sends the GOP so far, so asking once a second
/// would re-send ever more (1 s, 2 s, 3 s... of video each second). The server re-sends a
/// GOP spanning D of video at most once per D: re-sent pictures stay within the pictures
/// that passed plus one GOP, and keyframes alone in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picture_loss_requests_in_a_loop_cannot_make_the_server_resend_without_bound() {
    let media = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/media");
    assert!(
        std::path::Path::new(media).join("long_gop.mp4").is_file(),
        "tests/media/long_gop.mp4 is missing: run scripts/make-test-media tests/media"
    );
    let (http, _) = start_server_in(
        media.into(),
        reelcast::config::Settings {
            ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .await;
    let wanted = Duration::from_secs(9);
    let s = play(
        http,
        "127.0.0.1",
        "/whep/vod%3A%2F%2Flong_gop.mp4",
        Pli::Flood,
        wanted,
    )
    .await;
    assert!(s.connected, "the WebRTC connection never reached Connected");
    // Live pictures step a frame (or more) forward; re-sent ones are packed a tick or two
    // after the newest picture. Runs of re-sent pictures, by length.
    let mut runs: Vec<usize> = Vec::new();
    let mut live = 1;
    let mut packed = false;
    for w in s.video.windows(2) {
        if w[1].time.saturating_sub(w[0].time) >= VIDEO_FRAME_TICKS / 2 {
            live += 1;
            packed = false;
        } else if packed {
            *runs.last_mut().expect("in a run") += 1;
        } else {
            runs.push(1);
            packed = true;
        }
    }
    let resent: usize = runs.iter().sum();
    let largest = runs.iter().copied().max().unwrap_or(0);
    let elapsed = (s.video_span() / VIDEO_FRAME_TICKS) as usize;
    let detail = format!(
        "{live} live pictures over {elapsed} pictures' time; re-sent runs {runs:?}; \
         collected {:.1} s of video",
        s.video_span() as f64 / 90_000.0
    );
    assert!(
        s.video_span() >= s.wanted_ticks,
        "the session ended early: {detail}"
    );
    assert!(largest > 1, "no GOP was re-sent at all: {detail}");
    // The bound with room for a loaded machine: one more GOP, and a keyframe a second.
    assert!(
        resent <= elapsed + 2 * largest,
        "{resent} pictures re-sent: {detail}"
    );
    println!("{resent} pictures re-sent: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_request_for_missing_file_answers_404_file_not_found() {
    let http = start_server().await;
    let (_rtc, _socket, offer, _pending) = new_client();
    let (status, body) = post_sdp(
        http,
        "/whep/vod%3A%2F%2Fno_such_file.mp4",
        &offer.to_sdp_string(),
    )
    .await;
    assert_eq!(status, 404, "body: {body}");
    assert_eq!(body, "File not found");
}

/// The server listens on every address and announces 127.0.0.3; the client writes to it
/// from 127.0.0.2. A reply sent with the kernel's choice of source would come from
/// 127.0.0.1 (its route to 127.0.0.2), and a client drops what does not come from where
/// it wrote: every answer must leave from 127.0.0.3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_leave_from_the_address_the_client_wrote_to() {
    let (http, media_port) = start_server_with(reelcast::config::Settings {
        ip: vec!["127.0.0.3".parse().unwrap()],
        ..Default::default()
    })
    .await;
    let s = play_sample_from(http, "127.0.0.2").await;
    let announced: SocketAddr = ("127.0.0.3".parse::<IpAddr>().unwrap(), media_port).into();
    assert_eq!(
        s.strays,
        vec![],
        "datagrams from addresses the client never wrote to"
    );
    assert_eq!(s.sent_to, HashSet::from([announced]));
    assert!(s.connected, "the WebRTC connection never reached Connected");
    assert!(
        s.has_enough(),
        "only {} video and {} audio frames",
        s.video.len(),
        s.audio.len()
    );
}

/// Two announced addresses: the client checks both, each answers from itself, and the
/// media comes from one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_announced_address_is_a_candidate_that_answers_from_itself() {
    let (http, media_port) = start_server_with(reelcast::config::Settings {
        ip: vec!["127.0.0.4".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        ..Default::default()
    })
    .await;
    let s = play_sample_from(http, "127.0.0.2").await;
    let at = |ip: &str| SocketAddr::from((ip.parse::<IpAddr>().unwrap(), media_port));
    assert_eq!(
        s.strays,
        vec![],
        "datagrams from addresses the client never wrote to"
    );
    assert_eq!(s.sent_to, HashSet::from([at("127.0.0.4"), at("127.0.0.3")]));
    assert!(s.connected, "the WebRTC connection never reached Connected");
    assert!(
        s.has_enough(),
        "only {} video and {} audio frames",
        s.video.len(),
        s.audio.len()
    );
}
