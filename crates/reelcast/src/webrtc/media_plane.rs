//! A connected viewer's media, sent and heard by the hub itself: the lean per-viewer path.
//!
//! str0m runs a viewer's ICE and DTLS handshakes; after that a viewer that only receives
//! needs little: an RTP header and SRTP per packet (the payloads are cut once per feed and
//! shared), a sender report per second per track, answers to the browser's consent checks
//! (STUN, every ~5 s), and reading its RTCP for lost packets (NACK) and picture-loss
//! requests. A general engine per viewer kept ~100 KB of queues, caches and statistics
//! and did bookkeeping per packet for features a file server does not use (bandwidth
//! estimation, pacing, simulcast), which made it most of a viewer's cost.
//!
//! Owns per viewer: the SRTP contexts, the sequence numbers of its streams, packet and byte
//! counts for sender reports, which pictures it sent in the last second (references to
//! the shared frames, to answer NACKs), and the meter of what its link carries, fed with
//! the browser's receiver reports and those byte counts ([`LinkMeter`]). Does not own: what
//! to send and when (the hub and [`super::viewer`]), the handshakes (str0m). Time is an input: no clock is read here,
//! and what it sends goes into the hub's [`Transmits`] queue.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::crypto::{CryptoProvider, Sha1HmacProvider};
use str0m::ice::StunMessage;
use str0m::rtp::rtcp::{ReceptionReport, Rtcp};

use super::link_meter::{LinkMeter, Shortfall};
use super::packets::RtpFrame;
use super::srtp::{SrtcpReceiver, SrtpKeys, SrtpSender};
use super::transmits::Transmits;
use super::udp::Path;
use crate::media::MediaKind;

/// How long sent pictures are kept for NACKs: a browser asks for a lost packet as soon as
/// a later one arrives and repeats every round trip; after about a second the picture is
/// past its playout time and it asks for a keyframe instead.
const RESEND_WINDOW: Duration = Duration::from_secs(1);
/// At most this many packets are re-sent for one NACK packet (a burst of loss asks for
/// more than is worth sending again; the keyframe request that follows repairs it).
const RESEND_PER_NACK: usize = 64;
/// Sender reports give the browser the RTP-to-wall-clock mapping it lip-syncs with.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// No consent check for this long: the browser is gone (RFC 7675 says 30 s at most; str0m's
/// ICE-lite agent gives up after 15 s, which this keeps).
const CONSENT_TIMEOUT: Duration = Duration::from_secs(15);
/// The SRTCP index our sender reports start at: above any str0m may have used for the
/// same keys during the handshake (an SRTCP receiver refuses an index it has seen).
const FIRST_SRTCP_INDEX: u32 = 1 << 16;

const RTP_VERSION: u8 = 0x80;
/// The P bit: the payload ends in padding whose last byte counts it.
const RTP_PADDING: u8 = 0x20;
const RTCP_SR: u8 = 200;
const RTCP_BYE: u8 = 203;
/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One of this viewer's outgoing RTP streams.
pub(super) struct OutTrack {
    pub ssrc: u32,
    pub pt: u8,
    pub clock_hz: u32,
    /// Extended (64-bit) sequence number of the next packet; the SRTP index is its low 48 bits.
    pub next_seq: u64,
    /// The retransmission stream (RFC 4588), when the browser negotiated one.
    pub rtx: Option<RtxTrack>,
    packets: u32,
    octets: u32,
}

pub(super) struct RtxTrack {
    pub ssrc: u32,
    pub pt: u8,
    pub next_seq: u64,
}

impl OutTrack {
    pub(super) fn new(
        ssrc: u32,
        pt: u8,
        clock_hz: u32,
        first_seq: u16,
        rtx: Option<RtxTrack>,
    ) -> Self {
        OutTrack {
            ssrc,
            pt,
            clock_hz,
            next_seq: u64::from(first_seq),
            rtx,
            packets: 0,
            octets: 0,
        }
    }
}

/// A picture as this viewer got it: where its packets start and the time it was stamped.
struct SentPicture {
    first_seq: u64,
    rtp_time: u32,
    sent_at: Instant,
    frame: Arc<RtpFrame>,
}

/// What a datagram from the browser asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    Nothing,
    /// A picture-loss or full-intra request for the video.
    KeyframeRequest,
    /// The browser ended the session (DTLS close alert or RTCP BYE).
    Gone,
}

pub(super) struct MediaPlane {
    /// The candidate pair the browser nominated (USE-CANDIDATE): its address, and ours it
    /// wrote to. Media goes there; another pair takes over only when nominated.
    path: Path,
    srtp: SrtpSender,
    srtcp: SrtcpReceiver,
    hmac: &'static dyn Sha1HmacProvider,
    ice_password: Box<str>,
    pub video: Option<OutTrack>,
    pub audio: Option<OutTrack>,
    sent_video: VecDeque<SentPicture>,
    last_consent: Instant,
    next_report: Instant,
    /// An SRTCP packet from the browser authenticated: it has the keys, so its DTLS
    /// handshake is over and str0m's engine is no longer needed.
    pub peer_has_keys: bool,
    /// Reused for every datagram made here; each datagram handed on is a copy of its size.
    scratch: Vec<u8>,
    /// What the link carries, from the receiver reports of the video (else the audio).
    pub link: LinkMeter,
    /// Payload octets of the feed's own frames sent (wrapping): the stream's bit rate to
    /// this viewer, without catch-ups and repairs.
    fresh_octets: u32,
    /// Payload octets re-sent on NACK (wrapping): part of what is sent to this viewer.
    resent_octets: u32,
    /// A sustained shortfall the meter found, for the viewer to tell and take.
    pub shortfall: Option<Shortfall>,
}

impl MediaPlane {
    pub(super) fn new(
        path: Path,
        keys: &SrtpKeys,
        provider: &'static CryptoProvider,
        ice_password: &str,
        video: Option<OutTrack>,
        audio: Option<OutTrack>,
        now: Instant,
    ) -> Self {
        let mut srtp = keys.sender(provider);
        srtp.set_next_rtcp_index(FIRST_SRTCP_INDEX);
        MediaPlane {
            path,
            srtp,
            srtcp: keys.receiver(provider),
            hmac: provider.sha1_hmac_provider,
            ice_password: ice_password.into(),
            video,
            audio,
            sent_video: VecDeque::new(),
            last_consent: now,
            next_report: now,
            peer_has_keys: false,
            scratch: Vec::with_capacity(1500),
            link: LinkMeter::default(),
            fresh_octets: 0,
            resent_octets: 0,
            shortfall: None,
        }
    }

    /// When [`Self::on_timeout`] wants to run next.
    pub(super) fn next_timeout(&self) -> Instant {
        self.next_report.min(self.last_consent + CONSENT_TIMEOUT)
    }

    /// Sends one frame's packets stamped with stream time `stream_us`. Video packets are
    /// remembered for a second to answer NACKs.
    pub(super) fn send_frame(
        &mut self,
        frame: &Arc<RtpFrame>,
        stream_us: u64,
        now: Instant,
        out: &mut Transmits,
    ) {
        let video = frame.kind == MediaKind::Video;
        let track = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        let Some(track) = track else {
            return;
        };
        let rtp_time = rtp_time(stream_us, track.clock_hz);
        let first_seq = track.next_seq;
        let last = frame.payloads.len() - 1;
        for (i, payload) in frame.payloads.iter().enumerate() {
            let seq = track.next_seq;
            track.next_seq += 1;
            track.packets = track.packets.wrapping_add(1);
            // Sender reports count payload octets without padding (RFC 3550 §6.4.1).
            let octets = payload.len() - usize::from(frame.padding);
            track.octets = track.octets.wrapping_add(octets as u32);
            let mut header = rtp_header(track.pt, video && i == last, seq, rtp_time, track.ssrc);
            if frame.padding > 0 {
                header[0] |= RTP_PADDING;
            }
            self.scratch.clear();
            self.srtp.protect_rtp(
                &header,
                payload,
                track.ssrc,
                srtp_index(seq),
                &mut self.scratch,
            );
            out.push_packet(self.path, &self.scratch);
        }
        if video {
            while self
                .sent_video
                .front()
                .is_some_and(|p| now.duration_since(p.sent_at) > RESEND_WINDOW)
            {
                self.sent_video.pop_front();
            }
            // A late joiner's catch-up made the queue large; give the memory back.
            if self.sent_video.capacity() > 64
                && self.sent_video.len() < self.sent_video.capacity() / 4
            {
                self.sent_video.shrink_to_fit();
            }
            self.sent_video.push_back(SentPicture {
                first_seq,
                rtp_time,
                sent_at: now,
                frame: frame.clone(),
            });
        }
    }

    /// Counts a frame just sent that is the feed's own next one (see `fresh_octets`).
    pub(super) fn count_fresh(&mut self, frame: &RtpFrame) {
        let track = match frame.kind {
            MediaKind::Video => &self.video,
            _ => &self.audio,
        };
        if track.is_some() {
            self.fresh_octets = self.fresh_octets.wrapping_add(frame.bytes as u32);
        }
    }

    /// The pair media goes on.
    pub(super) fn path(&self) -> Path {
        self.path
    }

    /// Moves the media to a pair the browser nominated in a check the handshake engine
    /// verified.
    pub(super) fn follow(&mut self, nominated: Path) {
        self.path = nominated;
    }

    /// Handles a datagram from the browser once connected (`from`: its address and ours it
    /// reached): consent checks, RTCP, DTLS alerts.
    pub(super) fn on_datagram(
        &mut self,
        data: &[u8],
        from: Path,
        now: Instant,
        out: &mut Transmits,
    ) -> Heard {
        match data.first() {
            Some(0..=3) => {
                self.answer_consent(data, from, now, out);
                Heard::Nothing
            }
            // DTLS: after the handshake only an alert is expected, and an alert ends it. It
            // cannot be read without the DTLS state, so only the browser's own address is
            // believed.
            Some(21) if from.route() == self.path.route() => Heard::Gone,
            Some(20..=63) => Heard::Nothing,
            Some(128..=191) if is_rtcp(data) => self.on_rtcp(data, now, out),
            _ => Heard::Nothing,
        }
    }

    /// True for an SRTCP packet (RTP and RTCP share the port, RFC 5761: RTCP packet types
    /// 192–223 sit where RTP's marker bit and payload type would be).
    pub(super) fn is_rtcp_datagram(data: &[u8]) -> bool {
        matches!(data.first(), Some(128..=191)) && is_rtcp(data)
    }

    /// Answers an authenticated check on the pair it came on. A check on the media's pair
    /// renews consent (RFC 7675); one that nominates another pair (USE-CANDIDATE, RFC 8445
    /// §7.3.1.5) moves the media there. Other checks are answered and change nothing.
    fn answer_consent(&mut self, data: &[u8], from: Path, now: Instant, out: &mut Transmits) {
        let Ok(request) = StunMessage::parse(data) else {
            return;
        };
        let hmac = |key: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(key, parts);
        if !request.is_binding_request() || !request.verify(self.ice_password.as_bytes(), hmac) {
            return;
        }
        let reply = StunMessage::binding_reply(request.trans_id(), from.remote);
        let mut buf = [0u8; 256];
        let hmac = |key: &[u8], parts: &[&[u8]]| self.hmac.sha1_hmac(key, parts);
        if let Ok(n) = reply.to_bytes(Some(self.ice_password.as_bytes()), &mut buf, hmac) {
            out.push(from, &buf[..n]);
        }
        if request.use_candidate() && from != self.path {
            tracing::debug!("media moves to the nominated pair {from:?}");
            self.path = from;
        }
        if from == self.path {
            self.last_consent = now;
        }
    }

    fn on_rtcp(&mut self, data: &[u8], now: Instant, out: &mut Transmits) -> Heard {
        let Some(compound) = self.srtcp.unprotect_rtcp(data) else {
            return Heard::Nothing;
        };
        self.peer_has_keys = true;
        let mut heard = Heard::Nothing;
        for packet in rtcp_packets(&compound) {
            if packet.get(1) == Some(&RTCP_BYE) {
                return Heard::Gone;
            }
            match Rtcp::try_from(packet) {
                Ok(Rtcp::Nack(nack))
                    if self.video.as_ref().is_some_and(|v| *nack.ssrc == v.ssrc) =>
                {
                    let lost = nack
                        .reports
                        .iter()
                        .flat_map(|e| nacked_seqs(e.pid, e.blp))
                        .take(RESEND_PER_NACK);
                    let lost: Vec<u16> = lost.collect();
                    crate::metrics::METRICS
                        .nack_requested
                        .inc_by(lost.len() as u64);
                    for seq in lost {
                        self.resend(seq, out);
                    }
                }
                Ok(Rtcp::Pli(_) | Rtcp::Fir(_)) => {
                    crate::metrics::METRICS.keyframe_requests.inc();
                    heard = Heard::KeyframeRequest;
                }
                Ok(Rtcp::ReceiverReport(rr)) => {
                    for block in rr.reports.iter() {
                        self.on_reception_report(block, now);
                    }
                }
                Ok(Rtcp::SenderReport(sr)) => {
                    for block in sr.reports.iter() {
                        self.on_reception_report(block, now);
                    }
                }
                _ => {}
            }
        }
        heard
    }

    /// Feeds the link meter a report on the stream it follows: the video's, or the audio's
    /// when there is no video. The bytes are both tracks' (each loses alike on a full link).
    fn on_reception_report(&mut self, block: &ReceptionReport, now: Instant) {
        let Some(followed) = self.video.as_ref().or(self.audio.as_ref()) else {
            return;
        };
        if *block.ssrc != followed.ssrc {
            return;
        }
        let octets = [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .fold(0u32, |sum, t| sum.wrapping_add(t.octets));
        let sent = super::link_meter::Sent {
            octets,
            fresh_octets: self.fresh_octets,
            resent_octets: self.resent_octets,
        };
        let found = self
            .link
            .on_report(now, block.max_seq, block.packets_lost, sent);
        if found.is_some() {
            self.shortfall = found;
        }
    }

    /// Forgets the pictures sent so far: none is re-sent on NACK any more. After a move to
    /// another feed the browser decodes from the new feed's keyframe on; repairs of the
    /// old feed's pictures would take the link (one just too narrow for them) from it.
    pub(super) fn forget_sent_video(&mut self) {
        self.sent_video.clear();
    }

    /// Sends a lost video packet again: on the RTX stream when negotiated (RFC 4588: the
    /// original sequence number first, then the payload), else as it was.
    fn resend(&mut self, seq16: u16, out: &mut Transmits) {
        let Some(track) = &mut self.video else {
            return;
        };
        let seq = extend_seq(track.next_seq, seq16);
        let Some(picture) = self
            .sent_video
            .iter()
            .rev()
            .find(|p| p.first_seq <= seq && seq < p.first_seq + p.frame.payloads.len() as u64)
        else {
            return;
        };
        let index = (seq - picture.first_seq) as usize;
        crate::metrics::METRICS.rtx_sent.inc();
        let payload = &picture.frame.payloads[index];
        self.resent_octets = self.resent_octets.wrapping_add(payload.len() as u32);
        let marker = index == picture.frame.payloads.len() - 1;
        let (header, ssrc, index, body) = if let Some(rtx) = &mut track.rtx {
            let rtx_seq = rtx.next_seq;
            rtx.next_seq += 1;
            let mut body = Vec::with_capacity(payload.len() + 2);
            body.extend_from_slice(&seq16.to_be_bytes());
            body.extend_from_slice(payload);
            let header = rtp_header(rtx.pt, marker, rtx_seq, picture.rtp_time, rtx.ssrc);
            (header, rtx.ssrc, rtx_seq, Cow::Owned(body))
        } else {
            let header = rtp_header(track.pt, marker, seq, picture.rtp_time, track.ssrc);
            (header, track.ssrc, seq, Cow::Borrowed(&payload[..]))
        };
        self.scratch.clear();
        self.srtp
            .protect_rtp(&header, &body, ssrc, srtp_index(index), &mut self.scratch);
        out.push_packet(self.path, &self.scratch);
    }

    /// Sends due sender reports; returns false when the browser stopped answering.
    /// `epoch` is the wall-clock time of stream time 0, the same for audio and video; with
    /// none (the stream's feed is gone) no report is sent, but time still moves on.
    /// `wall` is the time of day at `now`, for the reports' NTP time.
    pub(super) fn on_timeout(
        &mut self,
        epoch: Option<Instant>,
        now: Instant,
        wall: SystemTime,
        out: &mut Transmits,
    ) -> bool {
        if now.duration_since(self.last_consent) >= CONSENT_TIMEOUT {
            return false;
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            let Some(epoch) = epoch else {
                return true;
            };
            let ntp = ntp_time(wall);
            let stream_us = now.saturating_duration_since(epoch).as_micros() as u64;
            for track in [&self.video, &self.audio].into_iter().flatten() {
                if track.packets == 0 {
                    continue;
                }
                let rtp_time = rtp_time(stream_us, track.clock_hz);
                let report = sender_report(track.ssrc, ntp, rtp_time, track.packets, track.octets);
                self.scratch.clear();
                self.srtp.protect_rtcp(&report, &mut self.scratch);
                out.push(self.path, &self.scratch);
            }
        }
        true
    }

    /// Tells the browser the streams end (RTCP BYE), when the server closes the viewer.
    pub(super) fn say_goodbye(&mut self, out: &mut Transmits) {
        let ssrcs: Vec<u32> = [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .map(|t| t.ssrc)
            .collect();
        if ssrcs.is_empty() {
            return;
        }
        let mut bye = vec![RTP_VERSION | ssrcs.len() as u8, RTCP_BYE];
        bye.extend_from_slice(&(ssrcs.len() as u16).to_be_bytes());
        for ssrc in ssrcs {
            bye.extend_from_slice(&ssrc.to_be_bytes());
        }
        self.scratch.clear();
        self.srtp.protect_rtcp(&bye, &mut self.scratch);
        out.push(self.path, &self.scratch);
    }
}

/// The RTP time of stream time `us` on a `clock_hz` clock: one mapping for the packets and
/// the sender reports. It wraps at 32 bits by design; the receiver unwraps it.
fn rtp_time(us: u64, clock_hz: u32) -> u32 {
    (u128::from(us) * u128::from(clock_hz) / 1_000_000) as u32
}

/// The SRTP packet index of an extended sequence number: 48 bits (ROC and sequence).
fn srtp_index(seq: u64) -> u64 {
    seq & 0xFFFF_FFFF_FFFF
}

fn rtp_header(pt: u8, marker: bool, seq: u64, rtp_time: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = RTP_VERSION;
    h[1] = (pt & 0x7F) | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    h[4..8].copy_from_slice(&rtp_time.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && (192..=223).contains(&data[1])
}

/// The packets of a compound RTCP packet, each cut to its stated length less padding.
fn rtcp_packets(compound: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = compound;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if len > rest.len() {
            return None;
        }
        let (packet, tail) = rest.split_at(len);
        rest = tail;
        let padding = if packet[0] & 0x20 != 0 {
            usize::from(packet[len - 1])
        } else {
            0
        };
        Some(&packet[..len.saturating_sub(padding).max(4)])
    })
}

/// The sequence numbers one NACK entry names: `pid` and each set bit of `blp` after it.
fn nacked_seqs(pid: u16, blp: u16) -> impl Iterator<Item = u16> {
    std::iter::once(pid).chain(
        (0..16)
            .filter(move |bit| blp & (1 << bit) != 0)
            .map(move |bit| pid.wrapping_add(bit + 1)),
    )
}

/// The extended sequence number of `seq16`, taken as at most 32768 behind `next`.
fn extend_seq(next: u64, seq16: u16) -> u64 {
    let behind = (next as u16).wrapping_sub(seq16);
    next.saturating_sub(u64::from(behind))
}

/// 64-bit NTP time: seconds since 1900 and a binary fraction.
fn ntp_time(now: SystemTime) -> u64 {
    let since_unix = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// An RTCP sender report (RFC 3550 §6.4.1) without report blocks: we receive nothing.
fn sender_report(ssrc: u32, ntp: u64, rtp_time: u32, packets: u32, octets: u32) -> [u8; 28] {
    let mut sr = [0u8; 28];
    sr[0] = RTP_VERSION;
    sr[1] = RTCP_SR;
    sr[2..4].copy_from_slice(&6u16.to_be_bytes()); // length in words, less one
    sr[4..8].copy_from_slice(&ssrc.to_be_bytes());
    sr[8..16].copy_from_slice(&ntp.to_be_bytes());
    sr[16..20].copy_from_slice(&rtp_time.to_be_bytes());
    sr[20..24].copy_from_slice(&packets.to_be_bytes());
    sr[24..28].copy_from_slice(&octets.to_be_bytes());
    sr
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use str0m::crypto::dtls::SrtpProfile;
    use str0m::ice::TransId;

    /// The browser's address (virtual: nothing is sent anywhere, the test reads the queue).
    const PEER: &str = "192.0.2.10:5000";
    /// Another address of the browser's.
    const OTHER: &str = "192.0.2.10:5001";

    /// The pair of a peer at `remote`, on the kernel's choice of our address.
    fn at(remote: SocketAddr) -> Path {
        Path {
            remote,
            local: None,
            tcp: None,
        }
    }

    const PASSWORD: &str = "our-ice-password-of-22+";
    const VIDEO_SSRC: u32 = 0x1111_1111;
    const RTX_SSRC: u32 = 0x2222_2222;

    /// Both ends' keys from one made-up DTLS export: ours (the DTLS server) and the
    /// browser's (the client).
    fn keys() -> (SrtpKeys, SrtpKeys) {
        let material: Vec<u8> = (0..56u8).collect();
        let profile = SrtpProfile::AEAD_AES_128_GCM;
        (
            SrtpKeys::from_keying_material(&material, profile, false).unwrap(),
            SrtpKeys::from_keying_material(&material, profile, true).unwrap(),
        )
    }

    /// A plane whose peer is at [`PEER`], with the queue it sends into.
    fn plane(now: Instant) -> (MediaPlane, Transmits, SocketAddr, SrtpKeys) {
        let peer: SocketAddr = PEER.parse().unwrap();
        let (ours, browsers) = keys();
        let video = OutTrack::new(
            VIDEO_SSRC,
            102,
            90_000,
            100,
            Some(RtxTrack {
                ssrc: RTX_SSRC,
                pt: 103,
                next_seq: 500,
            }),
        );
        let plane = MediaPlane::new(
            at(peer),
            &ours,
            super::super::rtc_factory::crypto_provider(),
            PASSWORD,
            Some(video),
            None,
            now,
        );
        (plane, Transmits::default(), peer, browsers)
    }

    /// The datagrams queued to `to`, in order, taken out of the queue (which is emptied).
    fn sent_to(out: &mut Transmits, to: SocketAddr) -> Vec<Vec<u8>> {
        let sent = out
            .datagrams()
            .into_iter()
            .filter(|(path, _)| path.remote == to)
            .map(|(_, d)| d)
            .collect();
        out.clear();
        sent
    }

    fn picture(packets: usize) -> Arc<RtpFrame> {
        let payloads: Vec<Arc<[u8]>> = (0..packets)
            .map(|i| Arc::from(vec![i as u8; 100].into_boxed_slice()))
            .collect();
        Arc::new(RtpFrame {
            kind: MediaKind::Video,
            pts_us: 0,
            keyframe: true,
            payloads: payloads.into(),
            bytes: packets * 100,
            padding: 0,
        })
    }

    fn consent_request(password: &str) -> Vec<u8> {
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            super::super::rtc_factory::crypto_provider()
                .sha1_hmac_provider
                .sha1_hmac(key, parts)
        };
        let request =
            StunMessage::binding_request("ours:theirs", TransId::new(), true, 7, 1, false);
        let mut buf = [0u8; 256];
        let n = request
            .to_bytes(Some(password.as_bytes()), &mut buf, hmac)
            .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn consent_checks_are_answered_and_keep_the_viewer() {
        let t0 = Instant::now();
        let (mut plane, mut out, peer, _) = plane(t0);
        let from = at(peer);
        let at = t0 + Duration::from_secs(10);
        assert_eq!(
            plane.on_datagram(&consent_request(PASSWORD), from, at, &mut out),
            Heard::Nothing
        );
        let sent = sent_to(&mut out, peer);
        assert_eq!(sent.len(), 1, "one reply");
        let reply = StunMessage::parse(&sent[0]).expect("a STUN reply");
        assert!(reply.is_successful_binding_response());
        assert_eq!(reply.mapped_address(), Some(from.remote));
        // 20 s after start but 10 s after the check: still alive; 15 s after it: gone.
        let wall = SystemTime::now();
        assert!(plane.on_timeout(Some(t0), t0 + Duration::from_secs(20), wall, &mut out));
        assert!(!plane.on_timeout(Some(t0), t0 + Duration::from_secs(25), wall, &mut out));
    }

    fn nominating_request(password: &str) -> Vec<u8> {
        let hmac = |key: &[u8], parts: &[&[u8]]| {
            super::super::rtc_factory::crypto_provider()
                .sha1_hmac_provider
                .sha1_hmac(key, parts)
        };
        let request = StunMessage::binding_request("ours:theirs", TransId::new(), true, 7, 1, true);
        let mut buf = [0u8; 256];
        let n = request
            .to_bytes(Some(password.as_bytes()), &mut buf, hmac)
            .unwrap();
        buf[..n].to_vec()
    }

    /// A check on another pair is answered on that pair but moves nothing, nor renews the
    /// media pair's consent; a check that nominates another pair moves the media there.
    #[test]
    fn media_follows_the_nominated_pair_not_the_last_check() {
        let t0 = Instant::now();
        let other: SocketAddr = OTHER.parse().unwrap();
        let there = at(other);
        let wall = SystemTime::now();

        let (mut first, mut out, peer, _) = plane(t0);
        // A plain check from elsewhere: answered there, media stays.
        first.on_datagram(&consent_request(PASSWORD), there, t0, &mut out);
        first.send_frame(&picture(1), 0, t0, &mut out);
        let queued = out.datagrams();
        out.clear();
        let to = |addr| queued.iter().filter(move |(p, _)| p.remote == addr);
        let replies: Vec<_> = to(other).collect();
        assert_eq!(replies.len(), 1);
        assert!(StunMessage::parse(&replies[0].1).is_ok());
        let media: Vec<_> = to(peer).collect();
        assert_eq!(media.len(), 1, "media still to the peer");
        assert_eq!(media[0].1[0], RTP_VERSION);
        assert_eq!(first.path().remote, peer);
        // It did not renew the media pair's consent.
        assert!(!first.on_timeout(Some(t0), t0 + CONSENT_TIMEOUT, wall, &mut out));

        let (mut plane, mut out, peer, _) = plane(t0);
        // A nomination of the other pair: the media goes there from now on.
        plane.on_datagram(&nominating_request(PASSWORD), there, t0, &mut out);
        plane.send_frame(&picture(1), 0, t0, &mut out);
        let queued = out.datagrams();
        out.clear();
        let to_other: Vec<_> = queued.iter().filter(|(p, _)| p.remote == other).collect();
        assert_eq!(to_other.len(), 2, "the reply, then the media");
        assert!(StunMessage::parse(&to_other[0].1).is_ok());
        assert_eq!(to_other[1].1[0], RTP_VERSION, "media to the nominated pair");
        assert_eq!(plane.path(), there);
        assert!(
            queued.iter().all(|(p, _)| p.remote != peer),
            "nothing to the old pair"
        );
        // A nomination with the wrong password moves nothing.
        let forged = nominating_request("not-the-password-at-all");
        plane.on_datagram(&forged, at(peer), t0, &mut out);
        assert_eq!(plane.path(), there);
    }

    #[test]
    fn a_dtls_alert_ends_the_viewer_only_from_its_own_address() {
        let t0 = Instant::now();
        let (mut plane, mut out, peer, _) = plane(t0);
        let alert = [21, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0];
        let elsewhere = at("127.0.0.1:9".parse().unwrap());
        assert_eq!(
            plane.on_datagram(&alert, elsewhere, t0, &mut out),
            Heard::Nothing
        );
        assert_eq!(
            plane.on_datagram(&alert, at(peer), t0, &mut out),
            Heard::Gone
        );
    }

    #[test]
    fn without_a_feed_time_moves_on_and_consent_still_runs_out() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let (mut plane, mut out, _peer, _) = plane(t0);
        plane.send_frame(&picture(1), 0, t0, &mut out);
        let at = t0 + Duration::from_secs(1);
        assert!(plane.on_timeout(None, at, wall, &mut out));
        // The next wake-up is later than now: the hub is not woken again at once.
        assert!(plane.next_timeout() > at);
        assert!(!plane.on_timeout(None, t0 + CONSENT_TIMEOUT, wall, &mut out));
    }

    #[test]
    fn a_check_with_the_wrong_password_is_ignored() {
        let t0 = Instant::now();
        let (mut plane, mut out, peer, _) = plane(t0);
        plane.on_datagram(
            &consent_request("not-the-password-at-all"),
            at(peer),
            t0,
            &mut out,
        );
        assert!(out.is_empty(), "no reply to a forged check");
        let wall = SystemTime::now();
        assert!(!plane.on_timeout(Some(t0), t0 + Duration::from_secs(15), wall, &mut out));
    }

    #[test]
    fn a_nack_is_answered_on_the_rtx_stream_with_the_original_sequence_number() {
        let t0 = Instant::now();
        let (mut plane, mut out, peer, browsers) = plane(t0);
        let from = at(peer);
        // One picture of three packets at 100 ms (9000 ticks): sequence numbers 100–102.
        plane.send_frame(&picture(3), 100_000, t0, &mut out);
        assert_eq!(sent_to(&mut out, peer).len(), 3);
        // The browser lost 101: a generic NACK (RFC 4585) for the video SSRC.
        let mut nack = vec![0x81, 205, 0, 3];
        nack.extend_from_slice(&0xAAAA_AAAAu32.to_be_bytes());
        nack.extend_from_slice(&VIDEO_SSRC.to_be_bytes());
        nack.extend_from_slice(&[0, 101, 0, 0]);
        let mut srtcp = Vec::new();
        browsers
            .sender(super::super::rtc_factory::crypto_provider())
            .protect_rtcp(&nack, &mut srtcp);
        assert_eq!(
            plane.on_datagram(&srtcp, from, t0, &mut out),
            Heard::Nothing
        );
        assert!(
            plane.peer_has_keys,
            "an authenticated RTCP packet proves the keys"
        );
        let sent = sent_to(&mut out, peer);
        assert_eq!(sent.len(), 1, "exactly the lost packet");
        let buf = &sent[0];
        // Header in the clear: RTX payload type, RTX SSRC, its own sequence, same time.
        assert_eq!(buf[1] & 0x7F, 103);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 500);
        assert_eq!(u32::from_be_bytes(buf[4..8].try_into().unwrap()), 9000);
        assert_eq!(u32::from_be_bytes(buf[8..12].try_into().unwrap()), RTX_SSRC);
        // Original sequence number (2 bytes) + payload (100) + GCM tag (16).
        assert_eq!(buf.len(), 12 + 2 + 100 + 16);
        // A NACK for another SSRC, or a forged one, re-sends nothing.
        let mut other = nack.clone();
        other[8..12].copy_from_slice(&0x3333_3333u32.to_be_bytes());
        let mut srtcp = Vec::new();
        browsers
            .sender(super::super::rtc_factory::crypto_provider())
            .protect_rtcp(&other, &mut srtcp);
        plane.on_datagram(&srtcp, from, t0, &mut out);
        let mut forged = srtcp.clone();
        forged[10] ^= 1;
        plane.on_datagram(&forged, from, t0, &mut out);
        assert!(
            out.is_empty(),
            "a NACK for another SSRC or a forged one re-sent"
        );
    }

    #[test]
    fn picture_loss_is_heard_and_sender_reports_go_out() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let (mut plane, mut out, peer, browsers) = plane(t0);
        let from = at(peer);
        let mut pli = vec![0x81, 206, 0, 2];
        pli.extend_from_slice(&0xAAAA_AAAAu32.to_be_bytes());
        pli.extend_from_slice(&VIDEO_SSRC.to_be_bytes());
        let mut srtcp = Vec::new();
        browsers
            .sender(super::super::rtc_factory::crypto_provider())
            .protect_rtcp(&pli, &mut srtcp);
        assert_eq!(
            plane.on_datagram(&srtcp, from, t0, &mut out),
            Heard::KeyframeRequest
        );
        // Nothing sent yet: no report. After a picture, a report per second.
        assert!(plane.on_timeout(Some(t0), t0, wall, &mut out));
        assert!(out.is_empty());
        plane.send_frame(&picture(1), 0, t0, &mut out);
        let one_s = t0 + Duration::from_secs(1);
        assert!(plane.on_timeout(Some(t0), one_s, wall + Duration::from_secs(1), &mut out));
        let sent = sent_to(&mut out, peer);
        assert_eq!(sent.len(), 2, "the picture, then the report");
        let provider = super::super::rtc_factory::crypto_provider();
        let (ours, _) = keys();
        assert!(
            ours.receiver(provider).unprotect_rtcp(&sent[1]).is_none(),
            "our own receive keys must not open what we send"
        );
        let report = browsers
            .receiver(provider)
            .unprotect_rtcp(&sent[1])
            .expect("the browser opens our report");
        assert!(matches!(
            Rtcp::try_from(&report[..]),
            Ok(Rtcp::SenderReport(_))
        ));
        // The NTP time is the wall time given.
        let ntp = u64::from_be_bytes(report[8..16].try_into().unwrap());
        assert_eq!(ntp, ntp_time(wall + Duration::from_secs(1)));
        // 90 kHz stream time at one second after the epoch.
        assert_eq!(
            u32::from_be_bytes(report[16..20].try_into().unwrap()),
            90_000
        );
        assert_eq!(
            u32::from_be_bytes(report[20..24].try_into().unwrap()),
            1,
            "packets"
        );
    }

    #[test]
    fn nack_entry_names_pid_and_each_bit_after_it() {
        let seqs: Vec<u16> = nacked_seqs(65534, 0b101).collect();
        assert_eq!(seqs, vec![65534, 65535, 1]);
        assert_eq!(nacked_seqs(7, 0).collect::<Vec<_>>(), vec![7]);
    }

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        assert_eq!(extend_seq(70_000, 4_463), 69_999);
        assert_eq!(extend_seq(65_540, 65_535), 65_535);
        assert_eq!(extend_seq(10, 5), 5);
        // Never below zero for a number from "before" the first packet.
        assert_eq!(extend_seq(3, 65_000), 0);
    }

    #[test]
    fn compound_rtcp_is_cut_into_packets_without_padding() {
        // RR (2 words after the header) then a padded PLI with 4 bytes of padding.
        let mut data = vec![0x80, 201, 0, 1, 1, 2, 3, 4];
        data.extend_from_slice(&[0xA1, 206, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4]);
        let packets: Vec<&[u8]> = rtcp_packets(&data).collect();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].len(), 8);
        assert_eq!(packets[1].len(), 12);
        // A length past the end stops the walk instead of reading out of bounds.
        assert_eq!(rtcp_packets(&[0x80, 201, 0, 9, 0, 0, 0, 0]).count(), 0);
    }

    #[test]
    fn sender_report_carries_the_clock_mapping() {
        let sr = sender_report(0xAABB_CCDD, 0x0102_0304_0506_0708, 90_000, 7, 1000);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[4..8], &[0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(&sr[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(u32::from_be_bytes(sr[16..20].try_into().unwrap()), 90_000);
        let parsed = Rtcp::try_from(&sr[..]).expect("str0m parses our SR");
        assert!(matches!(parsed, Rtcp::SenderReport(_)));
    }

    #[test]
    fn ntp_time_counts_from_1900() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        let ntp = ntp_time(t);
        assert_eq!(ntp >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(ntp & 0xFFFF_FFFF, 1 << 31);
    }
}
