//! The hub's state machine on virtual time: real str0m clients (the WebRTC stack a browser
//! speaks: full ICE, DTLS, SRTP, NACK, PLI) talk to a [`HubCore`] through datagrams passed
//! by hand, with a clock the test moves. No socket, no sleep: a test of fifteen seconds of
//! consent runs in milliseconds and sees every datagram either side sent.
//!
//! Addresses are loopback ones, never bound: nothing here reaches a network.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind as RtcKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::{Command, HubCore};
use crate::media::{
    Ending, FailReason, Frame, LinkMoves, LinkNotices, LinkShort, MediaKind, MoveNote, StopReason,
};
use crate::webrtc::events::ViewerEvent;
use crate::webrtc::ids::{FeedId, ViewerId};
use crate::webrtc::packets::VideoCodec;
use crate::webrtc::transmits::Message;
use crate::webrtc::udp::Path;
use crate::webrtc::viewer::ViewerPlan;
use crate::webrtc::{IceTransport, RtcFactory};

/// Our one candidate.
const SERVER: &str = "127.0.0.1:40000";
/// Steps of the virtual clock while time passes.
const TICK: Duration = Duration::from_millis(10);
/// A picture every 40 ms (25 fps).
const FRAME: Duration = Duration::from_millis(40);

/// One browser: a str0m peer that offered to receive H.264 and Opus.
struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    id: ViewerId,
    video_mid: Mid,
    connected: bool,
    /// Pictures received, in order: (RTP time, keyframe).
    pictures: Vec<(u64, bool)>,
    /// Audio payloads received, in order.
    audio: Vec<Vec<u8>>,
    /// False: its network is gone (nothing it sends arrives, nothing reaches it).
    up: bool,
    /// What it sent, not yet passed to the hub: (datagram, to).
    outbox: VecDeque<(Vec<u8>, SocketAddr)>,
}

impl Browser {
    /// Drains the engine after an input (str0m's rule): keeps what it sends, records its
    /// events.
    fn poll(&mut self) {
        loop {
            match self.rtc.poll_output().expect("browser poll_output") {
                Output::Timeout(_) => return,
                Output::Transmit(t) if self.up => {
                    self.outbox.push_back((t.contents.to_vec(), t.destination));
                }
                Output::Transmit(_) => {}
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(m)) if m.mid == self.video_mid => {
                    self.pictures.push((m.time.numer(), m.is_keyframe()));
                }
                Output::Event(Event::MediaData(m)) => self.audio.push(m.data.to_vec()),
                Output::Event(_) => {}
            }
        }
    }
}

/// A link to one browser that carries `bytes_per_s` of RTP (a token bucket of a tenth of a
/// second): a packet that finds the bucket short is dropped, as a full router queue would.
struct NarrowLink {
    to: SocketAddr,
    bytes_per_s: f64,
    tokens: f64,
    last: Instant,
}

impl NarrowLink {
    fn new(to: SocketAddr, bits_per_s: u64, now: Instant) -> Self {
        NarrowLink {
            to,
            bytes_per_s: bits_per_s as f64 / 8.0,
            tokens: 0.0,
            last: now,
        }
    }

    /// True when a packet of `len` bytes gets through at `now`.
    fn carries(&mut self, now: Instant, len: usize) -> bool {
        let depth = self.bytes_per_s / 10.0;
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.bytes_per_s;
        self.tokens = (self.tokens + refill).min(depth);
        self.last = now;
        if self.tokens < len as f64 {
            return false;
        }
        self.tokens -= len as f64;
        true
    }
}

/// A datagram the hub sent, as the network carried it.
struct Sent {
    to: SocketAddr,
    data: Vec<u8>,
}

/// The hub's core, its browsers and the virtual clock.
struct Net {
    core: HubCore,
    now: Instant,
    factory: RtcFactory,
    feed: FeedId,
    events_tx: mpsc::UnboundedSender<(ViewerId, ViewerEvent)>,
    events: UnboundedReceiver<(ViewerId, ViewerEvent)>,
    browsers: Vec<Browser>,
    /// Every datagram the hub sent, in order.
    sent: Vec<Sent>,
    /// The hub's UDP messages (a segmented one carries several datagrams), in order.
    messages: Vec<Message>,
    /// Drop the n-th large RTP packet to a browser from now on (1-based), as a lossy link
    /// would; the dropped one is kept.
    drop_nth_large: Option<usize>,
    dropped: Option<Vec<u8>>,
    /// The link to one browser carries only so much: what exceeds it is dropped.
    narrow_link: Option<NarrowLink>,
    /// Every viewer's link-too-narrow notices, in order.
    link_shorts: Arc<Mutex<Vec<(ViewerId, LinkShort)>>>,
    /// Every viewer's move notes, in order.
    move_notes: Arc<Mutex<Vec<(ViewerId, MoveNote)>>>,
}

impl Net {
    /// A hub with one open feed whose epoch is now.
    fn new() -> Self {
        let server: SocketAddr = SERVER.parse().unwrap();
        let now = Instant::now();
        let mut core = HubCore::new(vec![server], vec![], now, SystemTime::now());
        let feed = FeedId::next();
        core.handle_command(now, Command::OpenFeed { feed, epoch: now });
        let (events_tx, events) = mpsc::unbounded_channel();
        Net {
            core,
            now,
            factory: RtcFactory::new(vec![server], vec![]).expect("factory"),
            feed,
            events_tx,
            events,
            browsers: Vec::new(),
            sent: Vec::new(),
            messages: Vec::new(),
            drop_nth_large: None,
            dropped: None,
            narrow_link: None,
            link_shorts: Arc::default(),
            move_notes: Arc::default(),
        }
    }

    /// A browser joins the feed (offer, answer, viewer added); returns its index.
    fn join(&mut self) -> usize {
        let n = self.browsers.len();
        let addr: SocketAddr = format!("127.0.0.{}:5000", 10 + n).parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap())
            .unwrap();
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(RtcKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(RtcKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let accepted = self
            .factory
            .accept_offer(&offer.to_sdp_string(), self.now, IceTransport::Udp)
            .expect("offer accepted");
        let answer = SdpAnswer::from_sdp_string(&accepted.answer_sdp).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let id = ViewerId::next();
        let shorts = self.link_shorts.clone();
        let link_notices = LinkNotices::new(move |s| shorts.lock().unwrap().push((id, s)));
        let notes = self.move_notes.clone();
        let link_moves = LinkMoves::new(move |n| notes.lock().unwrap().push((id, n)));
        self.core.handle_command(
            self.now,
            Command::AddViewer {
                id,
                feed: self.feed,
                accepted: Box::new(accepted),
                plan: ViewerPlan {
                    stream: "virtual".into(),
                    h264_profile_idc: Some(0x42),
                    has_audio: true,
                    request: crate::metrics::PlayRequest {
                        at: self.now,
                        protocol: "whep",
                    },
                    link_notices: Some(link_notices),
                    link_moves: Some(link_moves),
                },
                events: self.events_tx.clone(),
            },
        );
        self.browsers.push(Browser {
            rtc,
            addr,
            id,
            video_mid,
            connected: false,
            pictures: Vec::new(),
            audio: Vec::new(),
            up: true,
            outbox: VecDeque::new(),
        });
        self.deliver();
        n
    }

    /// Passes datagrams both ways until neither side has more to send now.
    fn deliver(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for b in 0..self.browsers.len() {
                self.browsers[b].poll();
                while let Some(datagram) = self.browsers[b].outbox.pop_front() {
                    moved = true;
                    let from = Path {
                        remote: self.browsers[b].addr,
                        local: Some(datagram.1.ip()),
                        tcp: None,
                    };
                    self.core.handle_datagram(self.now, &datagram.0, from);
                }
            }
            moved |= self.hub_output();
            if !moved {
                return;
            }
        }
        panic!("the exchange never settled");
    }

    /// Sends what the hub queued to the browsers that are up; true when anything went.
    fn hub_output(&mut self) -> bool {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut datagrams = Vec::new();
        while let Some(t) = self.core.poll_transmit(self.now) {
            t.finish();
            self.messages.extend_from_slice(t.messages());
            datagrams.extend(t.datagrams());
            t.clear();
        }
        let any = !datagrams.is_empty();
        for (path, data) in datagrams {
            self.sent.push(Sent {
                to: path.remote,
                data: data.clone(),
            });
            if is_rtp(&data) && data.len() > 500 {
                if let Some(n) = &mut self.drop_nth_large {
                    *n -= 1;
                    if *n == 0 {
                        self.drop_nth_large = None;
                        self.dropped = Some(data);
                        continue;
                    }
                }
            }
            if let Some(link) = &mut self.narrow_link {
                if path.remote == link.to && is_rtp(&data) && !link.carries(self.now, data.len()) {
                    continue;
                }
            }
            let Some(browser) = self.browsers.iter_mut().find(|b| b.addr == path.remote) else {
                continue;
            };
            if !browser.up {
                continue;
            }
            let source = SocketAddr::new(path.local.unwrap_or(server.ip()), server.port());
            let Ok(contents) = data.as_slice().try_into() else {
                continue;
            };
            let input = Input::Receive(
                self.now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: browser.addr,
                    contents,
                },
            );
            browser
                .rtc
                .handle_input(input)
                .expect("browser handle_input");
            browser.poll();
        }
        any
    }

    /// Lets `d` of virtual time pass in small steps, both sides woken when due.
    fn pass(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += TICK;
            for browser in &mut self.browsers {
                browser.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                browser.poll();
            }
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_timeout(self.now);
            }
            self.deliver();
        }
    }

    /// Lets time pass until every browser is connected (a few seconds at most), and the
    /// last handshake flight has reached the hub.
    fn connect_all(&mut self) {
        for _ in 0..300 {
            if self.browsers.iter().all(|b| b.connected) {
                self.pass(Duration::from_millis(100));
                return;
            }
            self.pass(TICK);
        }
        panic!("browsers did not connect");
    }

    /// Sends one picture of the feed at stream time `pts` (`len` bytes), then lets its
    /// duration pass.
    fn picture(&mut self, pts: Duration, keyframe: bool, len: usize) {
        let frame = picture(pts, keyframe, len);
        self.core.handle_command(
            self.now,
            Command::Frames {
                feed: self.feed,
                first: frame,
                second: None,
                video: VideoCodec::H264,
            },
        );
        self.deliver();
        self.pass(FRAME);
    }

    /// A GOP of `count` pictures from stream time `start`: a keyframe, then the rest.
    fn gop(&mut self, start: Duration, count: u32) {
        for i in 0..count {
            self.picture(start + FRAME * i, i == 0, 1200);
        }
    }

    /// The browser asks for a picture (RTCP PLI).
    fn ask_for_picture(&mut self, b: usize) {
        let browser = &mut self.browsers[b];
        browser
            .rtc
            .writer(browser.video_mid)
            .expect("video writer")
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .expect("a PLI can be sent");
        browser.poll();
        // str0m sends it with its next RTCP, on its timer.
        self.pass(Duration::from_millis(100));
    }

    /// The events the hub has told so far.
    fn events(&mut self) -> Vec<(ViewerId, ViewerEvent)> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

/// An H.264 access unit in Annex-B form: SPS, PPS and an IDR slice for a keyframe, a
/// non-IDR slice otherwise, padded to about `len` bytes. (The hub cuts it into RTP
/// payloads; the browser's depacketizer knows a keyframe by its IDR.)
fn picture(pts: Duration, keyframe: bool, len: usize) -> Frame {
    let mut data = Vec::new();
    if keyframe {
        data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0xD9]);
        data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80]);
    }
    data.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
    data.resize(data.len() + len, 0xAB);
    let us = pts.as_micros() as i64;
    Frame {
        kind: MediaKind::Video,
        dts_us: us,
        pts_us: us,
        keyframe,
        data: Arc::from(data),
    }
}

/// `len` bytes of Opus at stream time `pts` (the hub does not look inside).
fn opus(pts: Duration, len: usize) -> Frame {
    let us = pts.as_micros() as i64;
    Frame {
        kind: MediaKind::Audio,
        dts_us: us,
        pts_us: us,
        keyframe: true,
        data: Arc::from(vec![len as u8; len]),
    }
}

/// RTP, not RTCP (RFC 5761: RTCP's packet types sit where RTP's marker and type would).
mod moves;
mod publishing;

fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1])
}

fn ssrc(rtp: &[u8]) -> u32 {
    u32::from_be_bytes(rtp[8..12].try_into().unwrap())
}

/// A viewer whose link carries half the stream's bit rate is told so once, after two
/// seconds of it and not on the first bad report, with what its link carries; the viewer
/// beside it on a clean link is told nothing and its estimate says so.
#[test]
fn a_full_link_is_told_once_after_a_sustained_while_and_a_clean_one_never() {
    let mut net = Net::new();
    let clean = net.join();
    let full = net.join();
    net.connect_all();
    let (clean_id, full_id) = (net.browsers[clean].id, net.browsers[full].id);
    // 3 s on clean links: nobody is told.
    net.gop(Duration::ZERO, 75);
    assert!(net.link_shorts.lock().unwrap().is_empty());
    // Then one viewer's link carries 120 of the stream's 240 kbit/s (1200-byte pictures at
    // 25 fps): after a second of it, not told yet.
    net.narrow_link = Some(NarrowLink::new(net.browsers[full].addr, 120_000, net.now));
    net.gop(FRAME * 75, 25);
    assert!(
        net.link_shorts.lock().unwrap().is_empty(),
        "told on the first bad report"
    );
    // Within two more seconds (reports come once a second): told, once, however long
    // the loss lasts.
    net.gop(FRAME * 100, 50);
    let told = net.link_shorts.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    net.gop(FRAME * 150, 125);
    let told = net.link_shorts.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "told again without a recovery: {told:?}");
    let (who, short) = told[0];
    assert_eq!(who, full_id);
    // What the link carries, roughly: str0m counts a packet repaired on NACK as received
    // on the media stream (browsers do not), which makes the estimate high here (170 kbit/s
    // on a 120 kbit/s link); but below the stream's rate.
    assert!(
        short.carries_bps > 60_000 && short.carries_bps < short.sending_bps,
        "{short:?}"
    );
    // The stream's own rate (1200-byte pictures at 25 fps), repairs not counted.
    assert!(
        (230_000..=250_000).contains(&short.sending_bps),
        "{short:?}"
    );
    let clean_estimate = net.core.viewers[&clean_id]
        .link_estimate()
        .expect("the clean viewer's link was measured");
    assert!(!clean_estimate.lossy, "{clean_estimate:?}");
    assert_eq!(clean_estimate.carries_bps, clean_estimate.sending_bps);
    assert!(net.core.viewers[&full_id].link_estimate().unwrap().lossy);
}

/// The viewer is found by our ufrag in its STUN checks before its address is known, and by
/// its address (proven by an authenticated check) for everything else; another browser's
/// datagrams go to that browser's viewer.
#[test]
fn datagrams_are_routed_by_ufrag_then_by_the_proven_address() {
    let mut net = Net::new();
    let a = net.join();
    let b = net.join();
    let (a_id, b_id) = (net.browsers[a].id, net.browsers[b].id);
    let a_addr = net.browsers[a].addr;
    // Before any check (a browser whose network is slow to come up): nothing is routed by
    // address, so a non-STUN datagram from a's address goes nowhere.
    let path = |remote| Path {
        remote,
        local: None,
        tcp: None,
    };
    net.connect_all();
    let ufrag = net.core.viewers[&a_id].local_ufrag.clone();
    assert_eq!(net.core.by_ufrag.get(&ufrag), Some(&a_id));
    // After the checks: each address routes to its own viewer, and only those.
    assert_eq!(net.core.route(&[0x80; 40], path(a_addr)), Some(a_id));
    assert_eq!(
        net.core.route(&[0x80; 40], path(net.browsers[b].addr)),
        Some(b_id)
    );
    let stranger: SocketAddr = "127.0.0.99:5000".parse().unwrap();
    assert_eq!(net.core.route(&[0x80; 40], path(stranger)), None);
    assert_eq!(net.core.by_addr.len(), 2);
    // And by behaviour: a's picture request (RTCP, routed by address) is answered to a
    // only.
    net.gop(Duration::ZERO, 40);
    let (a_before, b_before) = (
        net.browsers[a].pictures.len(),
        net.browsers[b].pictures.len(),
    );
    net.ask_for_picture(a);
    net.picture(FRAME * 40, false, 1200);
    assert_eq!(net.browsers[a].pictures.len() - a_before, 1 + 41);
    assert_eq!(net.browsers[b].pictures.len() - b_before, 1);
}

/// A viewer who joins mid-GOP gets, as soon as it is connected and before the next
/// picture, every picture of the GOP so far, keyframe first, packed one tick apart just
/// before the newest; then it follows the feed.
#[test]
fn a_late_joiner_gets_the_gop_so_far_at_once_keyframe_first() {
    let mut net = Net::new();
    net.gop(Duration::ZERO, 7);
    let b = net.join();
    net.connect_all();
    let got = net.browsers[b].pictures.clone();
    assert_eq!(got.len(), 7, "the whole GOP so far: {got:?}");
    assert!(got[0].1, "a keyframe first");
    assert!(got[1..].iter().all(|p| !p.1));
    // Packed just before the newest, in order, about one tick (12 µs) apart.
    let newest = got[6].0;
    for pair in got.windows(2) {
        assert!((1..=2).contains(&(pair[1].0 - pair[0].0)), "{got:?}");
    }
    // Then the shared timeline.
    net.picture(FRAME * 7, false, 1200);
    let next = net.browsers[b].pictures[7].0;
    assert_eq!(next - newest, 3600);
}

/// A variable-rate audio pair whose first packet is the shorter leaves as one segmented
/// message all the same (the first padded to the second's length), and the browser gets
/// both payloads as they were, padding stripped.
#[test]
fn an_audio_pair_with_a_shorter_first_packet_leaves_as_one_message() {
    let mut net = Net::new();
    net.gop(Duration::ZERO, 1);
    let b = net.join();
    net.connect_all();
    net.messages.clear();
    net.core.handle_command(
        net.now,
        Command::Frames {
            feed: net.feed,
            first: opus(Duration::from_millis(40), 90),
            second: Some(opus(Duration::from_millis(60), 130)),
            video: VideoCodec::H264,
        },
    );
    net.deliver();
    let media: Vec<&Message> = net.messages.iter().filter(|m| m.len > 100).collect();
    assert_eq!(
        media.len(),
        1,
        "one message for the pair: {:?}",
        net.messages
    );
    assert_eq!(
        media[0].len,
        2 * usize::from(media[0].segment),
        "two equal segments"
    );
    assert_eq!(
        net.browsers[b].audio,
        vec![vec![90u8; 90], vec![130u8; 130]]
    );
}

/// A picture-loss request is answered with the GOP so far (keyframe first) at the next
/// picture; another within the GOP's span gets the keyframe alone, and the pictures after
/// it wait for the next real keyframe.
#[test]
fn picture_loss_is_answered_with_the_gop_then_the_keyframe_alone() {
    let mut net = Net::new();
    let b = net.join();
    net.connect_all();
    // A 2 s GOP: requests within a second of a keyframe are ignored.
    net.gop(Duration::ZERO, 50);
    assert_eq!(net.browsers[b].pictures.len(), 50);
    net.ask_for_picture(b);
    net.picture(FRAME * 50, false, 1200);
    let after = &net.browsers[b].pictures[50..];
    // The new picture, then the GOP (now 51 pictures) again, keyframe first.
    assert_eq!(after.len(), 1 + 51, "{after:?}");
    assert!(!after[0].1 && after[1].1);
    assert_eq!(after.iter().filter(|p| p.1).count(), 1);

    // 1.2 s later (past the grace after the re-sent keyframe, within the GOP's 2 s span).
    for i in 51..81 {
        net.picture(FRAME * i, false, 1200);
    }
    let before = net.browsers[b].pictures.len();
    net.ask_for_picture(b);
    net.picture(FRAME * 81, false, 1200);
    net.picture(FRAME * 82, false, 1200);
    let after = &net.browsers[b].pictures[before..];
    // The new picture, then the keyframe alone; the next picture is held back.
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(!after[0].1 && after[1].1);
    // The next real keyframe lets pictures flow again.
    net.gop(FRAME * 83, 2);
    assert_eq!(net.browsers[b].pictures.len(), before + 4);
}

/// A video packet lost on the way is asked for (the browser's NACK) and re-sent once, on
/// the RTX stream, with its original sequence number in front; the browser then has the
/// whole picture. Nothing else is re-sent.
#[test]
fn a_nack_is_answered_with_rtx_of_exactly_the_lost_packet() {
    let mut net = Net::new();
    let b = net.join();
    net.connect_all();
    net.gop(Duration::ZERO, 5);
    let video_ssrc = ssrc(
        net.sent
            .iter()
            .rev()
            .find(|s| is_rtp(&s.data))
            .unwrap()
            .data
            .as_slice(),
    );
    // A picture of three packets (two full, one shorter): the second is lost.
    let from = net.sent.len();
    net.drop_nth_large = Some(2);
    net.picture(FRAME * 5, false, 2500);
    let lost = net.dropped.take().expect("a packet was dropped");
    let lost_seq = u16::from_be_bytes([lost[2], lost[3]]);
    net.pass(Duration::from_millis(300));
    let rtx: Vec<&Sent> = net.sent[from..]
        .iter()
        .filter(|s| s.to == net.browsers[b].addr && is_rtp(&s.data))
        .filter(|s| ssrc(&s.data) != video_ssrc)
        .collect();
    assert_eq!(rtx.len(), 1, "one retransmission");
    // The RTX payload is the original sequence number (2 bytes, encrypted here) and the
    // lost packet's payload: exactly 2 bytes longer.
    assert_eq!(rtx[0].data.len(), lost.len() + 2);
    // The browser has the picture whole: 6 pictures, the last at 5 × 40 ms after the first.
    let got = &net.browsers[b].pictures;
    assert_eq!(got.len(), 6, "{got:?} (lost seq {lost_seq})");
    assert_eq!(got[5].0 - got[0].0, 5 * 3600);
}

/// A browser that stops answering (its consent checks stop) is closed after the consent
/// time-out, told as `Failed by RTP activity`, and forgotten: no route by its ufrag or its
/// address is left, and its datagrams go nowhere afterwards.
#[test]
fn a_silent_viewer_is_closed_after_the_consent_timeout_and_reaped() {
    let mut net = Net::new();
    let a = net.join();
    let b = net.join();
    net.connect_all();
    let (a_id, b_id) = (net.browsers[a].id, net.browsers[b].id);
    let ufrag = net.core.viewers[&a_id].local_ufrag.clone();
    let connected = net.events();
    assert!(connected.contains(&(a_id, ViewerEvent::Connected)));
    net.browsers[a].up = false;
    // Within the time-out nothing happens.
    net.pass(Duration::from_secs(10));
    assert!(net.events().is_empty());
    assert!(net.core.viewers.contains_key(&a_id));
    net.pass(Duration::from_secs(7));
    assert_eq!(
        net.events(),
        vec![(
            a_id,
            ViewerEvent::Closed(Ending::Failed(FailReason::RtpActivity))
        )]
    );
    assert!(!net.core.viewers.contains_key(&a_id));
    assert!(!net.core.by_ufrag.contains_key(&ufrag));
    assert!(net.core.by_addr.values().all(|id| *id == b_id));
    assert_eq!(net.core.feeds[&net.feed].viewers, vec![b_id]);
    // The other viewer plays on.
    net.gop(Duration::ZERO, 2);
    assert_eq!(net.browsers[b].pictures.len(), 2);
    // Removing the living one tells it, with the reason.
    net.core.handle_command(
        net.now,
        Command::RemoveViewer {
            id: b_id,
            reason: StopReason::ByUser.into(),
        },
    );
    net.deliver();
    assert_eq!(
        net.events(),
        vec![(b_id, ViewerEvent::Closed(StopReason::ByUser.into()))]
    );
    assert!(net.core.viewers.is_empty() && net.core.by_addr.is_empty());
}

/// A datagram from nobody we know, or a STUN check naming a ufrag we never gave, changes
/// nothing and is answered with nothing.
#[test]
fn an_unknown_datagram_is_dropped_without_effect() {
    let mut net = Net::new();
    net.join();
    net.connect_all();
    net.events();
    let sent = net.sent.len();
    let stranger = Path {
        remote: "127.0.0.99:5000".parse().unwrap(),
        local: None,
        tcp: None,
    };
    let mut stun = [0u8; 40];
    stun[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    for data in [&[0x80u8; 100][..], &[0x16; 60], &stun, &[]] {
        net.core.handle_datagram(net.now, data, stranger);
    }
    // Checks from a stranger: naming a ufrag we never gave, and naming the viewer's ufrag
    // but signed without its password. Neither is answered nor proves the address.
    let ufrag = net
        .core
        .viewers
        .values()
        .next()
        .unwrap()
        .local_ufrag
        .clone();
    for name in ["nobody:theirs".to_string(), format!("{ufrag}:theirs")] {
        let check = forged_check(&name);
        net.core.handle_datagram(net.now, &check, stranger);
    }
    net.deliver();
    assert_eq!(net.sent.len(), sent, "nothing sent");
    assert!(net.events().is_empty());
    assert_eq!(net.core.by_addr.len(), 1);
    assert_eq!(net.core.viewers.len(), 1);
}

/// A STUN binding request from `username` ("ours:theirs"), signed with a password that is
/// not ours.
fn forged_check(username: &str) -> Vec<u8> {
    let check = str0m::ice::StunMessage::binding_request(
        username,
        str0m::ice::TransId::new(),
        true,
        1,
        1,
        true,
    );
    let mut buf = [0u8; 256];
    let n = check
        .to_bytes(Some(b"password-of-nobody-22ch"), &mut buf, |k, p| {
            crate::webrtc::rtc_factory::crypto_provider()
                .sha1_hmac_provider
                .sha1_hmac(k, p)
        })
        .unwrap();
    buf[..n].to_vec()
}
