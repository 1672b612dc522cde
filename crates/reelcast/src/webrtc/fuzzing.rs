//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off in every
//! normal build): the media plane's handling of what a connected browser sends, and the
//! RTP packetizer fed with a file's pictures. The rest of the API stays as it is.
//!
//! Owns nothing the server uses. What the plane sends goes into a transmit queue that is
//! thrown away: no socket, no runtime (the plane is sans-IO).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::crypto::dtls::SrtpProfile;

use super::media_plane::{MediaPlane, OutTrack, RtxTrack};
use super::packets::{packetize, RtpFrame, VideoCodec};
use super::rtc_factory::crypto_provider;
use super::srtp::SrtpKeys;
use super::transmits::Transmits;
use crate::media::{Frame, MediaKind};

/// The viewer's ICE password in [`media_plane_datagrams`] (a consent check signed with
/// it is answered).
pub const ICE_PASSWORD: &str = "fuzz-ice-password-22ch";
const VIDEO_SSRC: u32 = 0x1111_1111;

/// Keys of both ends from one made-up DTLS export: ours (DTLS server) and the browser's.
fn keys(gcm: bool) -> (SrtpKeys, SrtpKeys) {
    let (profile, len) = if gcm {
        (SrtpProfile::AEAD_AES_128_GCM, 56)
    } else {
        (SrtpProfile::AES128_CM_SHA1_80, 60)
    };
    let material: Vec<u8> = (0..len as u8).collect();
    (
        SrtpKeys::from_keying_material(&material, profile, false).expect("our keys"),
        SrtpKeys::from_keying_material(&material, profile, true).expect("browser's keys"),
    )
}

fn picture(packets: usize) -> Arc<RtpFrame> {
    let payloads: Vec<Arc<[u8]>> = (0..packets)
        .map(|i| Arc::from(vec![i as u8; 50].into_boxed_slice()))
        .collect();
    Arc::new(RtpFrame {
        kind: MediaKind::Video,
        pts_us: 0,
        keyframe: true,
        payloads: payloads.into(),
        bytes: packets * 50,
        padding: 0,
    })
}

/// Drives one connected viewer's media plane with datagrams from `data`, as a browser (or
/// anyone who knows its address) could send them after the handshake.
///
/// `data[0]`: bit 0 picks the SRTP profile (AES-GCM or AES-CM/HMAC-SHA1). Then records of
/// `[flags, len_hi, len_lo, bytes…]`: flags bit 0 set means the bytes are plain RTCP that
/// is first protected with the browser's SRTCP keys (so the fuzzer reaches the RTCP
/// parsing behind authentication), else they are sent as they are (STUN, DTLS, forged
/// SRTCP); bit 1 lets a second pass on the clock (sender reports, consent time-out).
/// Ten pictures of 1 to 10 packets are sent first, for NACKs to name.
pub fn media_plane_datagrams(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let (ours, browsers) = keys(mode & 1 == 0);
    let mut browser = browsers.sender(crypto_provider());
    let t0 = Instant::now();
    let video = OutTrack::new(
        VIDEO_SSRC,
        102,
        90_000,
        65_530,
        Some(RtxTrack {
            ssrc: 0x2222_2222,
            pt: 103,
            next_seq: 65_000,
        }),
    );
    let audio = OutTrack::new(0x3333_3333, 111, 48_000, 7, None);
    let path = super::udp::Path {
        // Never bound nor sent to: the queue is not sent.
        remote: SocketAddr::from((Ipv4Addr::LOCALHOST, 9)),
        local: None,
        tcp: None,
    };
    let mut plane = MediaPlane::new(
        path,
        &ours,
        crypto_provider(),
        ICE_PASSWORD,
        Some(video),
        Some(audio),
        t0,
    );
    let mut out = Transmits::default();
    for i in 0..10 {
        plane.send_frame(&picture(i + 1), i as u64 * 40_000, t0, &mut out);
    }
    let mut now = t0;
    let mut sealed = Vec::with_capacity(1500);
    while let [flags, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, after) = tail.split_at(len);
        rest = after;
        let datagram = if flags & 1 != 0 && datagram.len() >= 8 {
            sealed.clear();
            browser.protect_rtcp(datagram, &mut sealed);
            &sealed[..]
        } else {
            datagram
        };
        plane.on_datagram(datagram, path, now, &mut out);
        if flags & 2 != 0 {
            now += Duration::from_secs(1);
            plane.on_timeout(Some(t0), now, std::time::SystemTime::now(), &mut out);
        }
    }
    plane.say_goodbye(&mut out);
    out.finish();
}

/// Cuts one picture in Annex-B form into RTP payloads, as the hub does once per frame.
/// Returns the payloads' sizes.
pub fn packetize_picture(annex_b: &[u8], keyframe: bool) -> Vec<usize> {
    let frame = Frame {
        kind: MediaKind::Video,
        dts_us: 0,
        pts_us: 0,
        keyframe,
        data: Arc::from(annex_b),
    };
    packetize(&frame, VideoCodec::H264)
        .map(|f| f.payloads.iter().map(|p| p.len()).collect())
        .unwrap_or_default()
}
