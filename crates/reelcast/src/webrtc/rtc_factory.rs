//! Turning a browser's SDP offer into an `Rtc` and our answer.
//!
//! reelcast is an ICE-lite peer: its host candidates (the shared UDP port, at each
//! announced address: public and private IPv4, IPv6) go into every answer, so browsers
//! that do not trickle (the WCS SDK sends its offer before gathering ends) connect at once,
//! over whichever pair works for them. With ICE-TCP on, each address also gets a passive
//! TCP candidate (RFC 6544) on the TCP port, for browsers whose network blocks UDP; the
//! WCS SDK's `transport` option asks for one kind only, as WCS answers it. The DTLS certificate and crypto
//! provider are made once per server: generating a key per viewer would cost milliseconds
//! of CPU on every join. Each answer's DTLS instance is made ahead (`dtls_stock`), for the
//! same reason.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::net::TcpType;
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, IceCreds, Rtc};

use tracing::debug;

use super::dtls_keys::{self, KeySlot};
use super::dtls_stock::DtlsStock;
use super::packets::VideoCodec;
use super::srtp_gcm;
use super::WebRtcError;

/// The server's crypto provider: str0m's, with DTLS wrapped so each viewer's SRTP keys can
/// be taken for its media plane, its instances made ahead (`dtls_stock`), and SRTP's
/// AES-GCM done by `ring` (`srtp_gcm`).
pub(super) fn crypto_provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        dtls_keys::capturing_provider(
            srtp_gcm::with_ring_gcm(str0m::crypto::from_feature_flags()),
            dtls_stock().clone(),
        )
    })
}

/// The one stock of DTLS instances, made by str0m's own provider.
fn dtls_stock() -> &'static Arc<DtlsStock> {
    static STOCK: OnceLock<Arc<DtlsStock>> = OnceLock::new();
    STOCK.get_or_init(|| DtlsStock::new(str0m::crypto::from_feature_flags().dtls_provider))
}

/// Makes answering `Rtc`s that all share one certificate and one UDP port.
pub struct RtcFactory {
    provider: Arc<CryptoProvider>,
    cert: DtlsCert,
    candidates: Vec<SocketAddr>,
    tcp_candidates: Vec<SocketAddr>,
}

/// Which of our candidates an answer carries: what the WCS SDK's `transport` option asks
/// (`"UDP"` or `"TCP"`); both when the client does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceTransport {
    /// UDP and TCP candidates.
    #[default]
    Any,
    /// UDP candidates only.
    Udp,
    /// TCP candidates only (ICE-TCP).
    Tcp,
}

impl IceTransport {
    /// The SDK's `transport` value; anything else is as if it were absent.
    pub fn from_wcs(value: Option<&str>) -> Self {
        match value.map(str::to_ascii_uppercase).as_deref() {
            Some("UDP") => IceTransport::Udp,
            Some("TCP") => IceTransport::Tcp,
            _ => IceTransport::Any,
        }
    }
}

/// An offer accepted: the engine to hand to the hub, and the answer to send back.
pub struct Accepted {
    /// The viewer's engine, for the hub.
    pub rtc: Rtc,
    /// Our SDP answer.
    pub answer_sdp: String,
    /// Our ICE username fragment: STUN requests from the browser carry it, which is how the
    /// hub finds this viewer before it knows the browser's address.
    pub local_ufrag: String,
    /// Our ICE password, to answer the browser's consent checks once str0m is gone.
    pub(crate) ice_password: String,
    /// Where the SRTP keys land when DTLS is done.
    pub(crate) keys: KeySlot,
    /// The answer sends video: H.264 when the offer had an H.264 video section, else VP8
    /// when it had VP8 and the caller allowed it ([`RtcFactory::accept_offer_or_vp8`]).
    pub sends_video: bool,
    /// The video the answer sends is VP8 (the offer had no H.264): the viewer must be
    /// given a VP8 stream.
    pub sends_vp8: bool,
    /// A publisher's answer receives H.264 video (packetization-mode 1) from it.
    pub receives_video: bool,
    /// A publisher's answer receives Opus audio from it.
    pub receives_audio: bool,
    /// When the offer was answered: a publisher's frames are timed from it.
    pub(crate) answered_at: Instant,
}

impl RtcFactory {
    /// `candidates` are the addresses browsers are told to send to (each announced IP with
    /// the shared media port), in order of preference; `tcp_candidates` the same on the
    /// ICE-TCP port (empty: no ICE-TCP).
    pub fn new(
        candidates: Vec<SocketAddr>,
        tcp_candidates: Vec<SocketAddr>,
    ) -> Result<Self, WebRtcError> {
        if candidates.is_empty() {
            return Err(WebRtcError::Setup("no address to announce".into()));
        }
        let provider = crypto_provider().clone();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| WebRtcError::Setup("could not generate a DTLS certificate".into()))?;
        dtls_stock().keep_for(&cert);
        Ok(RtcFactory {
            provider: Arc::new(provider),
            cert,
            candidates,
            tcp_candidates,
        })
    }

    /// The addresses of our ICE candidates.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// Accepts `offer_sdp` (the browser wants to receive) and answers it with the candidates
    /// `transport` asks for. TCP asked of a server without ICE-TCP is answered with UDP:
    /// the client may still reach it.
    pub fn accept_offer(
        &self,
        offer_sdp: &str,
        now: Instant,
        transport: IceTransport,
    ) -> Result<Accepted, WebRtcError> {
        self.answer(
            offer_sdp,
            now,
            transport,
            extensions_without_twcc(),
            VideoCodec::H264,
        )
    }

    /// As [`accept_offer`](Self::accept_offer), but an offer whose video has no H.264 and
    /// has VP8 (some Android and Firefox builds) is answered with VP8
    /// ([`Accepted::sends_vp8`]). For callers that can transcode the stream to VP8; an
    /// offer with H.264 is answered with H.264 alone, as by `accept_offer`.
    pub fn accept_offer_or_vp8(
        &self,
        offer_sdp: &str,
        now: Instant,
        transport: IceTransport,
    ) -> Result<Accepted, WebRtcError> {
        let video = if offers_vp8_only(offer_sdp) {
            VideoCodec::Vp8
        } else {
            VideoCodec::H264
        };
        self.answer(offer_sdp, now, transport, extensions_without_twcc(), video)
    }

    /// Accepts `offer_sdp` from a browser that wants to *send* (a publisher: its camera as
    /// H.264 with packetization-mode 1, its microphone as Opus) and answers it recvonly,
    /// with the same candidates as a viewer's answer. The answer keeps transport-wide
    /// congestion control: str0m then sends the browser TWCC feedback, without which its
    /// bandwidth estimate stays low and it sends a fraction of its quality. NACK (with RTX)
    /// and PLI come with str0m's H.264 parameters. An offer that sends nothing we can take
    /// (receive-only, or other codecs) is a [`WebRtcError::BadOffer`].
    pub fn accept_publisher_offer(
        &self,
        offer_sdp: &str,
        now: Instant,
        transport: IceTransport,
    ) -> Result<Accepted, WebRtcError> {
        let accepted = self.answer(
            offer_sdp,
            now,
            transport,
            ExtensionMap::standard(),
            VideoCodec::H264,
        )?;
        if !accepted.receives_video && !accepted.receives_audio {
            return Err(WebRtcError::BadOffer(
                "it sends no H.264 (packetization-mode 1) video or Opus audio",
            ));
        }
        Ok(accepted)
    }

    /// Answers an offer with the header extensions `extensions` and `video` as the one
    /// video codec.
    fn answer(
        &self,
        offer_sdp: &str,
        now: Instant,
        transport: IceTransport,
        extensions: ExtensionMap,
        video: VideoCodec,
    ) -> Result<Accepted, WebRtcError> {
        // str0m's words stay in our log: its parse errors carry a heap address
        // (`PointerOffset(0x7f…)`), nothing a client should read.
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| {
            debug!("offer not parsed: {e}");
            WebRtcError::BadOffer("it is not an SDP description this server can read")
        })?;
        let creds = IceCreds::new();
        let local_ufrag = creds.ufrag.clone();
        let ice_password = creds.pass.clone();
        let (mut rtc, keys) =
            dtls_keys::build_with_slot(|| self.engine(creds, extensions, video, now));
        let tcp_only = transport == IceTransport::Tcp && !self.tcp_candidates.is_empty();
        let udp = if tcp_only { &[][..] } else { &self.candidates };
        let tcp = match transport {
            IceTransport::Udp => &[][..],
            _ => &self.tcp_candidates,
        };
        let mut added = 0;
        // str0m refuses what no peer could reach (link-local IPv4, unspecified): such an
        // address is left out of the answer, not a failure.
        for addr in udp {
            if let Ok(candidate) = Candidate::host(*addr, "udp") {
                added += usize::from(rtc.add_local_candidate(candidate).is_some());
            }
        }
        for addr in tcp {
            let passive = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build();
            if let Ok(candidate) = passive {
                added += usize::from(rtc.add_local_candidate(candidate).is_some());
            }
        }
        if added == 0 {
            return Err(WebRtcError::Setup("no usable host candidate".into()));
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
            debug!("offer not answered: {e}");
            WebRtcError::BadOffer("it cannot be answered (its media sections are inconsistent)")
        })?;
        let answer_sdp = one_media_stream(&answer.to_sdp_string());
        let sends_vp8 = video == VideoCodec::Vp8 && has_video_codec(&answer_sdp, " VP8/90000");
        Ok(Accepted {
            rtc,
            sends_video: has_video_codec(&answer_sdp, " H264/90000") || sends_vp8,
            sends_vp8,
            receives_video: receives(&answer_sdp, "video", " H264/90000"),
            receives_audio: receives(&answer_sdp, "audio", " opus/48000"),
            answered_at: now,
            answer_sdp,
            local_ufrag,
            ice_password,
            keys,
        })
    }
}

impl RtcFactory {
    /// A new answering engine (its DTLS instance from the stock when one is ready).
    fn engine(
        &self,
        creds: IceCreds,
        extensions: ExtensionMap,
        video: VideoCodec,
        now: Instant,
    ) -> Rtc {
        let builder = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(self.provider.clone())
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_opus(true, false);
        match video {
            VideoCodec::H264 => builder.enable_h264(true),
            VideoCodec::Vp8 => builder.enable_vp8(true),
        }
        .set_extension_map(extensions)
        .build(now)
    }

    /// Makes one engine as an answer would, and drops it: the DTLS stock learns what
    /// answers ask for and fills up before the first browser comes (else the first
    /// answer makes its own). Costs a few ms of CPU, once; call it at start.
    pub fn warm_up(&self) {
        let engine = self.engine(
            IceCreds::new(),
            ExtensionMap::standard(),
            VideoCodec::H264,
            Instant::now(),
        );
        drop(engine);
    }
}

/// True when `offer_sdp` receives video in VP8 and not in H.264 (some Android and
/// Firefox builds): its viewer needs a VP8 stream, answered by
/// [`RtcFactory::accept_offer_or_vp8`].
pub fn offers_vp8_only(offer_sdp: &str) -> bool {
    !has_video_codec(offer_sdp, " H264/90000") && has_video_codec(offer_sdp, " VP8/90000")
}

/// str0m's standard RTP header extensions minus transport-wide congestion control.
///
/// TWCC is feedback for a sender's bandwidth estimation, which reelcast does not run (a
/// file's bit rate is what it is). Negotiating it made every browser send a feedback packet
/// every ~100 ms that the engine then matched against a record it kept of every packet
/// sent: in the fan-out benchmark that was ~6 % of the server's CPU, the largest single
/// item in str0m, for nothing. Put it back together with BWE.
fn extensions_without_twcc() -> ExtensionMap {
    let mut map = ExtensionMap::empty();
    for (id, ext) in ExtensionMap::standard().iter() {
        if *ext != Extension::TransportSequenceNumber {
            map.set(id, ext.clone());
        }
    }
    map
}

/// True when `sdp` has an active (port not 0) video section with the codec whose rtpmap
/// ends in `rtpmap` (`" H264/90000"`).
fn has_video_codec(sdp: &str, rtpmap: &str) -> bool {
    sdp.split("\nm=").skip(1).any(|section| {
        let mut words = section.split_whitespace();
        words.next() == Some("video") && words.next() != Some("0") && section.contains(rtpmap)
    })
}

/// True when `sdp` (our answer) has an active `kind` section that receives (`recvonly` or
/// `sendrecv`) the codec whose rtpmap ends in `rtpmap`; for H.264 with packetization-mode 1
/// (the only one str0m depacketizes into whole pictures).
fn receives(sdp: &str, kind: &str, rtpmap: &str) -> bool {
    sdp.split("\nm=").skip(1).any(|section| {
        let mut words = section.split_whitespace();
        let receiving = section
            .lines()
            .any(|l| matches!(l.trim_end(), "a=recvonly" | "a=sendrecv"));
        let mode_ok = kind != "video" || section.contains("packetization-mode=1");
        words.next() == Some(kind)
            && words.next() != Some("0")
            && receiving
            && mode_ok
            && section.contains(rtpmap)
    })
}

/// `answer` with `x-google-start-bitrate=KBPS` on each H.264 format's `a=fmtp` line.
///
/// A publishing Chromium starts its bandwidth estimate at 300 kbit/s: at 720p its encoder
/// then drops and downscales the first pictures, and a viewer's first frame waits for it
/// (docs/PERFORMANCE.md, publishing). Chromium reads this parameter from the answer it
/// sends to; other browsers ignore an unknown format parameter. TWCC feedback then moves
/// the estimate to what the link carries. `kbps` 0: the answer unchanged.
pub fn with_start_bitrate(answer: &str, kbps: u32) -> String {
    if kbps == 0 {
        return answer.to_string();
    }
    let h264: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter(|l| l.contains(" H264/90000"))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut out = String::with_capacity(answer.len() + 64);
    for line in answer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        out.push_str(body);
        let pt = body
            .strip_prefix("a=fmtp:")
            .and_then(|r| r.split(' ').next());
        if pt.is_some_and(|pt| h264.contains(&pt)) && !body.contains("x-google-start-bitrate") {
            out.push_str(";x-google-start-bitrate=");
            out.push_str(&kbps.to_string());
        }
        out.push_str(&line[body.len()..]);
    }
    out
}

/// The media stream id every track of an answer is put in.
const MEDIA_STREAM_ID: &str = "reelcast";

/// Puts every track of `sdp` into one media stream.
///
/// str0m gives each answered m-line a random stream id, so a browser sees the audio and the
/// video as two `MediaStream`s. Players that do `video.srcObject = event.streams[0]` on each
/// track (the WCS SDK does) would then keep only the last track and lose the sound. One
/// stream id also tells the browser to lip-sync the two tracks.
fn one_media_stream(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("a=msid-semantic:") {
            out.push_str("a=msid-semantic: WMS ");
            out.push_str(MEDIA_STREAM_ID);
        } else if let Some(rest) = body.strip_prefix("a=msid:") {
            out.push_str("a=msid:");
            out.push_str(&replace_stream_id(rest));
        } else if let Some((head, rest)) = body
            .strip_prefix("a=ssrc:")
            .and_then(|r| r.split_once(" msid:"))
        {
            out.push_str("a=ssrc:");
            out.push_str(head);
            out.push_str(" msid:");
            out.push_str(&replace_stream_id(rest));
        } else {
            out.push_str(body);
        }
        out.push_str(ending);
    }
    out
}

/// `"<stream id> <track id>"` with the stream id replaced.
fn replace_stream_id(msid: &str) -> String {
    match msid.split_once(' ') {
        Some((_, track)) => format!("{MEDIA_STREAM_ID} {track}"),
        None => MEDIA_STREAM_ID.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_start_bitrate_goes_on_h264_formats_only() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                      a=fmtp:111 minptime=10;useinbandfec=1\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=rtpmap:102 H264/90000\r\n\
                      a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1\r\n\
                      a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";
        let out = super::with_start_bitrate(answer, 1500);
        assert!(out.contains(
            "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;x-google-start-bitrate=1500\r\n"
        ));
        assert!(
            out.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"),
            "{out}"
        );
        assert!(out.contains("a=fmtp:103 apt=102\r\n"), "{out}");
        assert_eq!(
            out.len(),
            answer.len() + ";x-google-start-bitrate=1500".len()
        );
        assert_eq!(super::with_start_bitrate(answer, 0), answer);
    }

    use super::*;

    /// A browser's offer to receive video only, with str0m's default codecs.
    fn video_only_offer() -> String {
        let mut browser = Rtc::builder().build(Instant::now());
        let mut api = browser.sdp_api();
        api.add_media(
            str0m::media::MediaKind::Video,
            str0m::media::Direction::RecvOnly,
            None,
            None,
            None,
        );
        api.apply().expect("an offer").0.to_sdp_string()
    }

    #[test]
    fn audio_and_video_share_one_media_stream() {
        let sdp = "v=0\r\na=msid-semantic: WMS abc def\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=msid:abc t1\r\na=ssrc:1 msid:abc t1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
                   a=msid:def t2\r\na=ssrc:2 cname:x\r\na=ssrc:2 msid:def t2\r\n";
        let out = one_media_stream(sdp);
        assert!(out.contains("a=msid-semantic: WMS reelcast\r\n"));
        assert!(out.contains("a=msid:reelcast t1\r\n"));
        assert!(out.contains("a=msid:reelcast t2\r\n"));
        assert!(out.contains("a=ssrc:2 msid:reelcast t2\r\n"));
        assert!(out.contains("a=ssrc:2 cname:x\r\n"));
        assert!(!out.contains("abc") && !out.contains("def"));
    }

    #[test]
    fn a_vp8_only_offer_is_answered_without_video() {
        let offer = |vp8_only: bool| {
            let builder = Rtc::builder().clear_codecs().enable_opus(true, false);
            let builder = if vp8_only {
                builder.enable_vp8(true)
            } else {
                builder.enable_h264(true)
            };
            let mut browser = builder.build(Instant::now());
            let mut api = browser.sdp_api();
            for kind in [
                str0m::media::MediaKind::Video,
                str0m::media::MediaKind::Audio,
            ] {
                api.add_media(kind, str0m::media::Direction::RecvOnly, None, None, None);
            }
            api.apply().expect("an offer").0.to_sdp_string()
        };
        let factory =
            RtcFactory::new(vec!["127.0.0.1:9".parse().unwrap()], vec![]).expect("factory");
        let vp8 = factory
            .accept_offer(&offer(true), Instant::now(), IceTransport::Any)
            .expect("answered");
        assert!(!vp8.sends_video && !vp8.sends_vp8, "{}", vp8.answer_sdp);
        let h264 = factory
            .accept_offer(&offer(false), Instant::now(), IceTransport::Any)
            .expect("answered");
        assert!(h264.sends_video && !h264.sends_vp8, "{}", h264.answer_sdp);
    }

    #[test]
    fn vp8_is_answered_when_allowed_and_the_offer_has_no_h264() {
        let factory =
            RtcFactory::new(vec!["127.0.0.1:9".parse().unwrap()], vec![]).expect("factory");
        let vp8_only = {
            let mut browser = Rtc::builder()
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .build(Instant::now());
            let mut api = browser.sdp_api();
            api.add_media(
                str0m::media::MediaKind::Video,
                str0m::media::Direction::RecvOnly,
                None,
                None,
                None,
            );
            api.apply().expect("an offer").0.to_sdp_string()
        };
        let vp8 = factory
            .accept_offer_or_vp8(&vp8_only, Instant::now(), IceTransport::Any)
            .expect("answered");
        assert!(vp8.sends_video && vp8.sends_vp8, "{}", vp8.answer_sdp);
        assert!(vp8.answer_sdp.contains(" VP8/90000"), "{}", vp8.answer_sdp);
        // A browser offering both (str0m's defaults have H.264 and VP8) keeps H.264 alone.
        let both = video_only_offer();
        assert!(both.contains(" VP8/90000") && both.contains(" H264/90000"));
        let h264 = factory
            .accept_offer_or_vp8(&both, Instant::now(), IceTransport::Any)
            .expect("answered");
        assert!(h264.sends_video && !h264.sends_vp8, "{}", h264.answer_sdp);
        assert!(
            !h264.answer_sdp.contains(" VP8/90000"),
            "{}",
            h264.answer_sdp
        );
    }

    #[test]
    fn the_sdks_transport_picks_the_candidates_tcp_ones_passive() {
        let offer = video_only_offer();
        let udp = vec!["10.0.0.1:31001".parse().unwrap()];
        let tcp = vec!["10.0.0.1:31001".parse().unwrap()];
        let factory = RtcFactory::new(udp.clone(), tcp).expect("factory");
        let answer = |t| {
            factory
                .accept_offer(&offer, Instant::now(), t)
                .expect("answered")
                .answer_sdp
        };
        let has = |sdp: &str, proto: &str| {
            sdp.lines()
                .any(|l| l.starts_with("a=candidate:") && l.contains(&format!(" {proto} ")))
        };
        let any = answer(IceTransport::Any);
        assert!(has(&any, "udp") && has(&any, "tcp"), "{any}");
        assert!(
            any.contains("10.0.0.1 31001 typ host tcptype passive"),
            "{any}"
        );
        let tcp_only = answer(IceTransport::from_wcs(Some("TCP")));
        assert!(
            !has(&tcp_only, "udp") && has(&tcp_only, "tcp"),
            "{tcp_only}"
        );
        let udp_only = answer(IceTransport::from_wcs(Some("udp")));
        assert!(
            has(&udp_only, "udp") && !has(&udp_only, "tcp"),
            "{udp_only}"
        );
        // Without ICE-TCP, TCP asked is answered with UDP.
        let factory = RtcFactory::new(udp, vec![]).expect("factory");
        let fallback = factory
            .accept_offer(&offer, Instant::now(), IceTransport::Tcp)
            .expect("answered")
            .answer_sdp;
        assert!(
            has(&fallback, "udp") && !has(&fallback, "tcp"),
            "{fallback}"
        );
    }

    #[test]
    fn garbage_offers_fail_in_plain_words_without_internals() {
        let factory =
            RtcFactory::new(vec!["127.0.0.1:9".parse().unwrap()], vec![]).expect("factory");
        for garbage in ["v=0\r\ngarbage", "hello", "v=0\r\nm=video x y z\r\n", ""] {
            let Err(e) = factory.accept_offer(garbage, Instant::now(), IceTransport::Any) else {
                panic!("{garbage:?} was answered");
            };
            let text = e.to_string();
            assert!(text.starts_with("Invalid SDP offer: "), "{text}");
            assert!(!text.contains("0x") && !text.contains("Pointer"), "{text}");
        }
    }

    #[test]
    fn answer_leaves_out_transport_wide_congestion_control() {
        let offer = video_only_offer();
        assert!(offer.contains("transport-wide-cc"), "offer: {offer}");
        let factory =
            RtcFactory::new(vec!["127.0.0.1:9".parse().unwrap()], vec![]).expect("factory");
        let answer = factory
            .accept_offer(&offer, Instant::now(), IceTransport::Any)
            .expect("offer accepted")
            .answer_sdp;
        assert!(!answer.contains("transport-wide-cc"), "answer: {answer}");
        assert!(answer.contains("urn:ietf:params:rtp-hdrext:sdes:mid"));
    }
}
