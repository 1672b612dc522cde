//! Cutting each frame into RTP payloads once per feed, for every viewer to share.
//!
//! The payload of an RTP packet (an H.264 FU-A fragment, a STAP-A with SPS and PPS, a
//! VP8 partition piece behind its payload descriptor, an Opus packet) is the same for every viewer of a feed; only the header (SSRC, sequence
//! number, timestamp offset) and the SRTP encryption differ. So the feed packetizes a frame
//! once and hands every viewer the same `Arc`ed payloads: a viewer's engine only writes
//! headers and encrypts, and its retransmission cache holds references, not copies. With
//! str0m's per-viewer packetizer both the work and the cached bytes grew with every viewer.

use std::sync::Arc;

use crate::media::{Frame, MediaKind};

/// Largest RTP payload: str0m's datagram target less the SRTP tag, rounded down to the
/// cipher block, which is how str0m sizes its own packetization. Header and extensions
/// still fit under a 1,500-byte path MTU.
const MAX_PAYLOAD: usize = {
    let budget = str0m::DATAGRAM_MTU_TARGET - 16;
    budget - budget % 16
};

/// The codec of a feed's video frames: it decides how they are cut into payloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VideoCodec {
    /// Annex-B H.264 access units, sent as RFC 6184 packetization mode 1.
    #[default]
    H264,
    /// VP8 frames as an encoder writes them, sent as RFC 7741.
    Vp8,
}

/// One frame as RTP payloads, shared by every viewer of a feed.
#[derive(Debug)]
pub(super) struct RtpFrame {
    pub kind: MediaKind,
    /// Presentation time on the stream's timeline; a viewer may send it at another one
    /// (a late joiner's catch-up, a re-sent keyframe).
    pub pts_us: i64,
    pub keyframe: bool,
    /// In sending order; for video the last one ends the picture (RTP marker bit).
    pub payloads: Box<[Arc<[u8]>]>,
    /// Sum of the payload sizes, for the GOP cache's budget.
    pub bytes: usize,
    /// RTP padding at the end of the (single) payload, whose last byte counts it: the
    /// header then carries the P bit. See [`packetize_pair`].
    pub padding: u8,
}

/// Cuts `frame` into payloads, video as `codec`; `None` for a frame that yields none
/// (empty, or only access unit delimiters and filler).
pub(super) fn packetize(frame: &Frame, codec: VideoCodec) -> Option<Arc<RtpFrame>> {
    let payloads: Vec<Arc<[u8]>> = match frame.kind {
        MediaKind::Video if codec == VideoCodec::Vp8 => vp8_payloads(&frame.data, MAX_PAYLOAD),
        MediaKind::Video => h264_payloads(&frame.data, MAX_PAYLOAD),
        // An Opus packet is one payload (RFC 7587); at most 1,275 bytes, it fits a datagram.
        MediaKind::Audio if frame.data.is_empty() => Vec::new(),
        MediaKind::Audio => vec![frame.data.clone()],
        // Not sent over WebRTC (the feed drops it before the hub).
        MediaKind::Aac => Vec::new(),
    };
    if payloads.is_empty() {
        return None;
    }
    let bytes = payloads.iter().map(|p| p.len()).sum();
    Some(Arc::new(RtpFrame {
        kind: frame.kind,
        pts_us: frame.pts_us,
        keyframe: frame.keyframe,
        payloads: payloads.into(),
        bytes,
        padding: 0,
    }))
}

/// Cuts two frames handed over together (an audio pair, see `stream::audio_pairs`) into
/// payloads, in order.
///
/// Two packets to one viewer leave as one segmented message only if the first is at
/// least as long as the second (`super::transmits`). A browser's Opus is variable-rate,
/// so half its pairs have a shorter first packet and would leave as two messages: that
/// first packet gets RTP padding (RFC 3550 §5.1) up to the second's length. Done here,
/// once per feed, so each viewer only sets the header's P bit. At most 255 bytes, what
/// one padding count byte can say; a larger gap goes unpadded.
pub(super) fn packetize_pair(
    first: &Frame,
    second: Option<&Frame>,
    codec: VideoCodec,
) -> Vec<Arc<RtpFrame>> {
    let mut frames: Vec<Arc<RtpFrame>> = std::iter::once(first)
        .chain(second)
        .filter_map(|f| packetize(f, codec))
        .collect();
    if let [a, b] = frames.as_mut_slice() {
        if let Some(padded) = padded_to(a, b) {
            *a = Arc::new(padded);
        }
    }
    frames
}

/// `short` padded to `long`'s length, when both are single-payload audio and the gap is
/// 1 to 255 bytes.
fn padded_to(short: &RtpFrame, long: &RtpFrame) -> Option<RtpFrame> {
    let single_audio = |f: &RtpFrame| f.kind == MediaKind::Audio && f.payloads.len() == 1;
    if !single_audio(short) || !single_audio(long) || short.padding != 0 {
        return None;
    }
    let gap = long.payloads[0]
        .len()
        .checked_sub(short.payloads[0].len())?;
    let padding = u8::try_from(gap).ok().filter(|&p| p > 0)?;
    let mut payload = Vec::with_capacity(long.payloads[0].len());
    payload.extend_from_slice(&short.payloads[0]);
    payload.resize(payload.len() + usize::from(padding) - 1, 0);
    payload.push(padding);
    Some(RtpFrame {
        kind: short.kind,
        pts_us: short.pts_us,
        keyframe: short.keyframe,
        payloads: Box::new([Arc::from(payload)]),
        bytes: short.bytes,
        padding,
    })
}

/// RFC 7741 payload descriptor with only the S bit: set on the packet that starts a
/// frame (partition 0), clear on the rest.
const VP8_START: u8 = 0x10;
const VP8_CONTINUED: u8 = 0x00;

/// RFC 7741 packetization of one VP8 frame: the frame cut into pieces that fit `max`
/// with the one-byte descriptor in front. No picture id: nothing here needs it (a
/// browser's decoder finds a lost frame by the sequence numbers), and the descriptor stays
/// the same for every viewer. (str0m has such a packetizer but does not export it.)
fn vp8_payloads(frame: &[u8], max: usize) -> Vec<Arc<[u8]>> {
    frame
        .chunks(max - 1)
        .enumerate()
        .map(|(i, piece)| {
            let descriptor = if i == 0 { VP8_START } else { VP8_CONTINUED };
            let mut payload = Vec::with_capacity(1 + piece.len());
            payload.push(descriptor);
            payload.extend_from_slice(piece);
            Arc::from(payload)
        })
        .collect()
}

/// NAL unit types (H.264 table 7-1) and RTP payload types (RFC 6184) used here.
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// RFC 6184 packetization mode 1 of one Annex-B access unit.
///
/// NAL units that fit go out whole; consecutive small ones (SPS, PPS, SEI in front of a
/// keyframe) share one STAP-A; one that does not fit is cut into FU-A fragments. Access
/// unit delimiters and filler carry nothing a receiver needs and are dropped, as browsers'
/// own senders do. (str0m has such a packetizer but does not export it.)
fn h264_payloads(annex_b: &[u8], max: usize) -> Vec<Arc<[u8]>> {
    let mut out = Vec::new();
    let mut aggregate: Vec<&[u8]> = Vec::new();
    for nal in nal_units(annex_b) {
        let kind = nal[0] & 0x1F;
        if kind == NAL_AUD || kind == NAL_FILLER {
            continue;
        }
        if stap_a_len(&aggregate, nal) <= max {
            aggregate.push(nal);
            continue;
        }
        flush_aggregate(&mut aggregate, &mut out);
        if nal.len() <= max {
            aggregate.push(nal);
        } else {
            fragment(nal, max, &mut out);
        }
    }
    flush_aggregate(&mut aggregate, &mut out);
    out
}

/// The NAL units of an Annex-B byte stream, without start codes or trailing zeros.
fn nal_units(annex_b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|next| next - 3)
        .chain(std::iter::once(annex_b.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter_map(move |(start, end)| {
            // A four-byte start code and trailing_zero_8bits leave zeros before the next one.
            let mut end = end;
            while end > start && annex_b[end - 1] == 0 {
                end -= 1;
            }
            (end > start).then(|| &annex_b[start..end])
        })
}

/// Size of a STAP-A carrying `aggregate` plus `nal` (or of `nal` alone when it is the
/// only one, sent as a single NAL unit packet).
fn stap_a_len(aggregate: &[&[u8]], nal: &[u8]) -> usize {
    if aggregate.is_empty() {
        return nal.len();
    }
    1 + aggregate
        .iter()
        .chain([&nal])
        .map(|n| 2 + n.len())
        .sum::<usize>()
}

/// Emits the pending NAL units: one alone as itself, several as a STAP-A.
fn flush_aggregate(aggregate: &mut Vec<&[u8]>, out: &mut Vec<Arc<[u8]>>) {
    match aggregate.as_slice() {
        [] => {}
        [single] => out.push(Arc::from(*single)),
        several => {
            // F is the OR of the parts' F bits, NRI their highest (RFC 6184 5.7.1).
            let f = several.iter().fold(0, |acc, n| acc | (n[0] & 0x80));
            let nri = several.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
            let mut stap = Vec::with_capacity(stap_a_len(&several[1..], several[0]));
            stap.push(f | nri | STAP_A);
            for nal in several {
                stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                stap.extend_from_slice(nal);
            }
            out.push(stap.into());
        }
    }
    aggregate.clear();
}

/// Cuts one NAL unit into FU-A fragments of at most `max` bytes (RFC 6184 5.8): the NAL
/// header moves into each fragment's indicator and header bytes.
fn fragment(nal: &[u8], max: usize, out: &mut Vec<Arc<[u8]>>) {
    let indicator = (nal[0] & 0xE0) | FU_A;
    let kind = nal[0] & 0x1F;
    let body = &nal[1..];
    let chunk = max - 2;
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == count { 0x40 } else { 0 };
        let mut fu = Vec::with_capacity(2 + part.len());
        fu.extend_from_slice(&[indicator, start | end | kind]);
        fu.extend_from_slice(part);
        out.push(fu.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opus(len: usize, pts_ms: i64) -> Frame {
        Frame {
            kind: MediaKind::Audio,
            dts_us: pts_ms * 1000,
            pts_us: pts_ms * 1000,
            keyframe: true,
            data: vec![0x5A; len].into(),
        }
    }

    #[test]
    fn the_shorter_first_packet_of_a_pair_is_padded_to_the_second() {
        let frames = packetize_pair(&opus(90, 0), Some(&opus(130, 20)), VideoCodec::H264);
        let [a, b] = frames.as_slice() else {
            panic!("two frames")
        };
        assert_eq!(a.payloads[0].len(), 130);
        assert_eq!(a.padding, 40);
        assert_eq!(&a.payloads[0][..90], &[0x5A; 90][..]);
        assert!(a.payloads[0][90..129].iter().all(|&x| x == 0));
        assert_eq!(a.payloads[0][129], 40, "the last byte counts the padding");
        assert_eq!((b.payloads[0].len(), b.padding), (130, 0));
    }

    #[test]
    fn pairs_that_already_merge_or_cannot_be_padded_are_left_alone() {
        for (first, second) in [(130, 90), (100, 100), (10, 10 + 256)] {
            let frames = packetize_pair(&opus(first, 0), Some(&opus(second, 20)), VideoCodec::H264);
            let sizes: Vec<(usize, u8)> = frames
                .iter()
                .map(|f| (f.payloads[0].len(), f.padding))
                .collect();
            assert_eq!(sizes, vec![(first, 0), (second, 0)]);
        }
        let frames = packetize_pair(
            &opus(50, 0),
            Some(&video(vec![0, 0, 0, 1, 0x65, 1, 2], true)),
            VideoCodec::H264,
        );
        assert_eq!(frames[0].padding, 0, "only audio pairs are padded");
        assert_eq!(
            packetize_pair(&opus(50, 0), None, VideoCodec::H264).len(),
            1
        );
    }

    fn video(data: Vec<u8>, keyframe: bool) -> Frame {
        Frame {
            kind: MediaKind::Video,
            dts_us: 0,
            pts_us: 40_000,
            keyframe,
            data: data.into(),
        }
    }

    #[test]
    fn a_large_picture_is_cut_into_payloads_that_fit_a_datagram() {
        let mut nal = vec![0, 0, 0, 1, 0x65];
        nal.extend(std::iter::repeat_n(0xAB, 10_000));
        let frame = packetize(&video(nal.clone(), true), VideoCodec::H264).expect("payloads");
        let n = frame.payloads.len();
        assert_eq!(n, 10_000_usize.div_ceil(MAX_PAYLOAD - 2));
        assert!(frame.payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        // FU-A: indicator keeps F and NRI with type 28; start and end bits on first and last.
        assert!(frame.payloads.iter().all(|p| p[0] == 0x60 | 28));
        assert_eq!(frame.payloads[0][1], 0x80 | 5);
        assert_eq!(frame.payloads[n - 1][1], 0x40 | 5);
        assert!(frame.payloads[1..n - 1].iter().all(|p| p[1] == 5));
        // The fragments' bodies put back together are the NAL unit without its header.
        let body: Vec<u8> = frame
            .payloads
            .iter()
            .flat_map(|p| p[2..].to_vec())
            .collect();
        assert_eq!(body, nal[5..]);
        assert_eq!((frame.pts_us, frame.keyframe), (40_000, true));
    }

    #[test]
    fn sps_and_pps_travel_with_the_keyframe() {
        let sps = [0x67, 0x42, 0xC0, 0x1E];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let mut idr = vec![0x65];
        idr.extend(std::iter::repeat_n(0x11, 2_000));
        let annex_b = [
            &[0, 0, 0, 1, 0x09, 0xF0][..], // access unit delimiter: dropped
            &[0, 0, 0, 1],
            &sps,
            &[0, 0, 1],
            &pps,
            &[0, 0, 0, 1],
            &idr,
        ]
        .concat();
        let frame = packetize(&video(annex_b, true), VideoCodec::H264).expect("payloads");
        // STAP-A (NRI of the highest part) with SPS and PPS, then the IDR slice in fragments.
        let stap = &frame.payloads[0];
        assert_eq!(
            &stap[..],
            &[
                0x60 | 24,
                0,
                4,
                0x67,
                0x42,
                0xC0,
                0x1E,
                0,
                4,
                0x68,
                0xCE,
                0x3C,
                0x80
            ]
        );
        assert!(frame.payloads[1..].iter().all(|p| p[0] & 0x1F == 28));
        assert_eq!(frame.payloads[1][1], 0x80 | 5);
    }

    #[test]
    fn an_empty_frame_yields_nothing() {
        assert!(packetize(&video(Vec::new(), false), VideoCodec::H264).is_none());
        assert!(packetize(
            &video(vec![0, 0, 0, 1, 0x09, 0xF0], false),
            VideoCodec::H264
        )
        .is_none());
    }

    #[test]
    fn small_slices_go_out_whole_and_opus_packets_as_they_are() {
        let p_slice = [0x41, 0x9A, 0x02, 0x03];
        let frame = packetize(
            &video([&[0, 0, 0, 1][..], &p_slice].concat(), false),
            VideoCodec::H264,
        )
        .unwrap();
        assert_eq!(frame.payloads.len(), 1);
        assert_eq!(&frame.payloads[0][..], &p_slice);
        let opus = Frame {
            kind: MediaKind::Audio,
            dts_us: 0,
            pts_us: 0,
            keyframe: true,
            data: vec![0xFC, 1, 2, 3].into(),
        };
        let frame = packetize(&opus, VideoCodec::H264).unwrap();
        assert_eq!(&frame.payloads[..], std::slice::from_ref(&opus.data));
    }

    #[test]
    fn a_vp8_frame_is_cut_behind_one_byte_descriptors_start_bit_on_the_first() {
        let data: Vec<u8> = (0..5_000u32).map(|i| i as u8).collect();
        let frame = packetize(&video(data.clone(), true), VideoCodec::Vp8).expect("payloads");
        let n = frame.payloads.len();
        assert_eq!(n, 5_000_usize.div_ceil(MAX_PAYLOAD - 1));
        assert!(frame.payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(frame.payloads[0][0], 0x10);
        assert!(frame.payloads[1..].iter().all(|p| p[0] == 0x00));
        let body: Vec<u8> = frame
            .payloads
            .iter()
            .flat_map(|p| p[1..].to_vec())
            .collect();
        assert_eq!(body, data);
        // A small frame is one packet; an empty one none.
        let small = packetize(&video(vec![1, 2, 3], false), VideoCodec::Vp8).unwrap();
        assert_eq!(&small.payloads[..], &[Arc::from(&[0x10, 1, 2, 3][..])]);
        assert!(packetize(&video(Vec::new(), false), VideoCodec::Vp8).is_none());
    }
}
