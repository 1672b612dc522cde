//! What a publisher's depacketized media needs to become [`Frame`](crate::media::Frame)s:
//! a track's RTP time on the publisher's clock ([`TrackClock`]) and H.264 pictures that a
//! decoder can start from ([`ParameterSets`]). Pure functions of their inputs: no engine,
//! no clock, no I/O (the publisher peer, [`super::publisher_peer`], drives them).
//!
//! The clock: each track's RTP time is mapped once, at its first frame, to the time that
//! frame arrived (microseconds since the publisher's epoch); after that a frame's time is
//! the first one's plus the RTP time elapsed, so jitter in arrival never moves a frame. The
//! tracks come over one BUNDLEd path, so their first packets see the same network delay;
//! what is left between audio and video is the sender's own capture-to-send difference
//! (tens of ms at most). Sender reports (NTP↔RTP) would remove that too, but browsers send
//! the first one only after their first frames, and re-mapping a track once it arrives
//! would make its times jump: a recording and a live viewer both prefer a steady clock.

use std::time::Instant;

/// NAL unit types (H.264 §7.4.1): an IDR slice, a sequence and a picture parameter set.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// The largest parameter set kept (a real SPS or PPS is tens of bytes).
const MAX_PARAMETER_SET: usize = 1024;

/// One track's RTP time mapped to microseconds since the publisher's epoch (see the
/// module docs). RTP timestamps are 32 bits and wrap (after 13 h at 90 kHz); they are
/// extended here, so times keep rising.
#[derive(Debug)]
pub(super) struct TrackClock {
    rate: u64,
    /// (extended RTP time, µs since the epoch) of the first frame.
    anchor: Option<(i64, i64)>,
    /// The last RTP timestamp seen and its extension.
    last: Option<(u32, i64)>,
}

impl TrackClock {
    /// A clock for a track whose RTP clock runs at `rate` Hz.
    pub(super) fn new(rate: u32) -> Self {
        TrackClock {
            rate: u64::from(rate.max(1)),
            anchor: None,
            last: None,
        }
    }

    /// The time of a frame with RTP timestamp `rtp` (only its low 32 bits count) that
    /// arrived at `arrived`, in µs since `epoch`.
    pub(super) fn pts_us(&mut self, rtp: u64, arrived: Instant, epoch: Instant) -> i64 {
        let raw = rtp as u32;
        let extended = match self.last {
            None => i64::from(raw),
            // The signed difference: a frame a little older than the last (reordered, or
            // a retransmission) goes back, one past a wrap goes on.
            Some((last_raw, last_ext)) => last_ext + i64::from(raw.wrapping_sub(last_raw) as i32),
        };
        self.last = Some((raw, extended));
        let (anchor_rtp, anchor_us) = *self.anchor.get_or_insert_with(|| {
            let since = arrived.saturating_duration_since(epoch).as_micros();
            (extended, i64::try_from(since).unwrap_or(i64::MAX))
        });
        let ticks = extended - anchor_rtp;
        anchor_us + (ticks * 1_000_000) / self.rate as i64
    }
}

/// The last SPS and PPS a publisher sent, put in front of a keyframe that comes without
/// them (browsers send them before every IDR; a sink starting at a keyframe needs them).
#[derive(Debug, Default)]
pub(super) struct ParameterSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// A picture ready to go out: its Annex-B bytes and whether it is a keyframe.
#[derive(Debug)]
pub(super) struct Picture {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

impl ParameterSets {
    /// Takes a depacketized H.264 picture (Annex-B): remembers its SPS/PPS, and when it
    /// holds an IDR slice makes it a keyframe with SPS and PPS in front. An IDR before any
    /// SPS/PPS was seen is not a keyframe (nothing could decode it).
    pub(super) fn picture(&mut self, annex_b: &[u8]) -> Picture {
        let (mut has_idr, mut has_sps, mut has_pps) = (false, false, false);
        for nal in nal_units(annex_b) {
            let Some(&header) = nal.first() else {
                continue;
            };
            match header & 0x1F {
                NAL_IDR => has_idr = true,
                NAL_SPS if nal.len() <= MAX_PARAMETER_SET => {
                    has_sps = true;
                    self.sps = Some(nal.to_vec());
                }
                NAL_PPS if nal.len() <= MAX_PARAMETER_SET => {
                    has_pps = true;
                    self.pps = Some(nal.to_vec());
                }
                _ => {}
            }
        }
        if !has_idr || (has_sps && has_pps) {
            return Picture {
                data: annex_b.to_vec(),
                keyframe: has_idr,
            };
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return Picture {
                data: annex_b.to_vec(),
                keyframe: false,
            };
        };
        let mut data = Vec::with_capacity(annex_b.len() + sps.len() + pps.len() + 8);
        for set in [sps, pps] {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(set);
        }
        data.extend_from_slice(annex_b);
        Picture {
            data,
            keyframe: true,
        }
    }
}

/// The NAL units of an Annex-B byte stream (start codes of 3 or 4 bytes), without their
/// start codes.
fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&next| {
            // The unit ends before the next start code (and the zero of a 4-byte one).
            let mut end = next - 3;
            while end > 0 && data[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| &data[s..e.max(s)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SPS: [u8; 5] = [0x67, 0x42, 0xC0, 0x1E, 0xD9];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|u| [0, 0, 0, 1].iter().chain(u.iter()).copied())
            .collect()
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_the_last_ones_in_front() {
        let mut sets = ParameterSets::default();
        let idr = [0x65, 0x88, 0x80];
        // Before any SPS/PPS an IDR is not a keyframe.
        assert!(!sets.picture(&annex_b(&[&idr])).keyframe);
        let full = annex_b(&[&SPS, &PPS, &idr]);
        let first = sets.picture(&full);
        assert!(first.keyframe);
        assert_eq!(first.data, full, "a complete keyframe is left as it is");
        let bare = sets.picture(&annex_b(&[&idr]));
        assert!(bare.keyframe);
        assert_eq!(bare.data, full);
        let delta = sets.picture(&annex_b(&[&[0x41, 0x9A]]));
        assert!(!delta.keyframe);
    }

    #[test]
    fn nal_units_split_on_three_and_four_byte_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65];
        let units: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(units, vec![&[0x67, 1][..], &[0x68, 2][..], &[0x65][..]]);
        assert_eq!(nal_units(&[]).count(), 0);
        let empty: Vec<&[u8]> = nal_units(&[0, 0, 1]).collect();
        assert_eq!(empty, vec![&[] as &[u8]]);
    }

    #[test]
    fn rtp_time_maps_from_the_first_arrival_and_survives_the_wrap() {
        let epoch = Instant::now();
        let mut clock = TrackClock::new(90_000);
        let first = u64::from(u32::MAX - 4_499);
        assert_eq!(
            clock.pts_us(first, epoch + Duration::from_millis(200), epoch),
            200_000
        );
        // Arrival jitter does not move later frames; the wrap does not either.
        let later = epoch + Duration::from_millis(900);
        assert_eq!(clock.pts_us(first + 3_000, later, epoch), 200_000 + 33_333);
        assert_eq!(clock.pts_us(4_500, later, epoch), 300_000);
        // A reordered older frame goes back.
        assert_eq!(clock.pts_us(first, later, epoch), 200_000);
    }
}
