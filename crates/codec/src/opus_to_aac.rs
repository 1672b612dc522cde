//! Opus to AAC, once per recording: what an MP4 recording carries so every player plays
//! it (the recorder's `record_audio_codec=aac`).
//!
//! Owns the transcode only: Opus decode (libopus through `opus2`) at 48 kHz with the
//! stream's channel count (from the first packet), AAC-LC encode (FFmpeg's native `aac`
//! encoder through the `transcode` crate's [`transcode::AacEncoder`]) at 128 kbit/s
//! stereo or 64 kbit/s mono, raw access units of 1024 samples. No files, clocks or
//! containers.
//!
//! Mono is encoded with libavcodec's `fast` coder, stereo with its default `twoloop`:
//! mono Opus is what a browser's microphone sends (speech), where `fast` scored as well
//! or better at ~40 % of the CPU; a page asks for stereo for music, where `twoloop`
//! scored better (docs/PERFORMANCE.md, "Publishing and recording").
//!
//! # Timestamps
//! Output is counted in 48 kHz samples from the first packet's start: access unit *k*
//! holds encoder samples `k × 1024 …`, so the track never drifts whatever the packets'
//! timestamps round to. The input is checked against that count: a packet more than
//! 30 ms later than expected (lost packets, a pause) is preceded by silence of the gap
//! (at most [`MAX_GAP_SAMPLES`] at a time), so audio stays in step with video; a packet
//! earlier than expected (overlap at a loop seam) is taken as it comes.
//!
//! # Priming
//! The encoder's output starts [`OpusToAac::priming`] samples (libavcodec's
//! `initial_padding`, 1024 for its AAC-LC encoder) before the first input sample. It is not trimmed here: the MP4 writer puts it
//! in the track's edit list (`elst` media time), as encoders' MP4 files do, so players
//! skip it exactly and a decoder keeps its warm-up.

use opus2::{Channels, Decoder};
use transcode::{AacCoder, AacEncoder};

use crate::audio::AudioError;

/// Samples per second in and out.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per AAC access unit.
pub const AAC_FRAME: u32 = 1024;
/// The largest gap filled with silence at once: 10 s.
pub const MAX_GAP_SAMPLES: u64 = 10 * SAMPLE_RATE as u64;
/// A packet this much later than the count expects is a gap (30 ms).
const GAP_TOLERANCE: u64 = SAMPLE_RATE as u64 * 30 / 1000;
/// The longest Opus packet is 120 ms.
const MAX_PACKET_SAMPLES: usize = 5760;

/// One AAC access unit and where it starts, in samples counted from the first Opus
/// packet's start (priming included: the first unit starts at 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacUnit {
    /// Raw AAC (no ADTS header).
    pub data: Vec<u8>,
    /// Its first sample, counted from 0.
    pub sample: u64,
}

/// One stream's Opus → AAC transcoder; see the module docs.
pub struct OpusToAac {
    decoder: Decoder,
    encoder: AacEncoder,
    channels: u16,
    /// Presentation time of the first packet, in µs.
    first_pts_us: Option<i64>,
    /// Samples (per channel) handed to the encoder.
    fed: u64,
    /// Interleaved PCM waiting for a whole encoder frame.
    pcm: Vec<i16>,
    /// Room for one decoded packet, kept from packet to packet.
    decoded: Vec<i16>,
    /// Access units produced.
    units: u64,
    decode_failures: u64,
}

impl std::fmt::Debug for OpusToAac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToAac")
            .field("channels", &self.channels)
            .field("fed", &self.fed)
            .finish_non_exhaustive()
    }
}

fn internal(what: &str, e: impl std::fmt::Debug) -> AudioError {
    AudioError::Internal(format!("{what}: {e:?}"))
}

impl OpusToAac {
    /// A transcoder for a stream whose first packet is `first_packet` (its TOC byte says
    /// mono or stereo; anything unreadable counts as stereo).
    pub fn new(first_packet: &[u8]) -> Result<Self, AudioError> {
        let stereo = first_packet.first().is_none_or(|toc| toc & 0x04 != 0);
        let (channels, count, rate, coder) = if stereo {
            (Channels::Stereo, 2, 128_000, AacCoder::TwoLoop)
        } else {
            (Channels::Mono, 1, 64_000, AacCoder::Fast)
        };
        let decoder =
            Decoder::new(SAMPLE_RATE, channels).map_err(|e| internal("Opus decoder", e))?;
        let encoder =
            AacEncoder::with_coder(count, rate, coder).map_err(|e| internal("AAC encoder", e))?;
        Ok(OpusToAac {
            decoder,
            encoder,
            channels: count,
            first_pts_us: None,
            fed: 0,
            pcm: Vec::new(),
            decoded: vec![0; MAX_PACKET_SAMPLES * usize::from(count)],
            units: 0,
            decode_failures: 0,
        })
    }

    /// The AudioSpecificConfig of the output (for the MP4 `esds`).
    pub fn audio_specific_config(&self) -> &[u8] {
        self.encoder.audio_specific_config()
    }

    /// Output channels: 1 or 2.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Samples of encoder priming at the start of the output (see the module docs).
    pub fn priming(&self) -> u32 {
        self.encoder.priming()
    }

    /// Presentation time of the first packet pushed, in µs.
    pub fn first_pts_us(&self) -> Option<i64> {
        self.first_pts_us
    }

    /// Packets that failed to decode (each became silence of 20 ms).
    pub fn decode_failures(&self) -> u64 {
        self.decode_failures
    }

    /// One Opus packet presented at `pts_us`; returns the access units completed.
    pub fn push(&mut self, opus: &[u8], pts_us: i64) -> Result<Vec<AacUnit>, AudioError> {
        let first = *self.first_pts_us.get_or_insert(pts_us);
        let at = u64::try_from(pts_us.saturating_sub(first)).unwrap_or(0);
        let at_samples = at.saturating_mul(u64::from(SAMPLE_RATE)) / 1_000_000;
        if at_samples > self.fed + GAP_TOLERANCE {
            let gap = (at_samples - self.fed).min(MAX_GAP_SAMPLES);
            let n = usize::try_from(gap).unwrap_or(0) * usize::from(self.channels);
            self.pcm.resize(self.pcm.len() + n, 0);
            self.fed += gap;
        }
        let ch = usize::from(self.channels);
        let n = if let Ok(n) = self.decoder.decode(opus, &mut self.decoded, false) {
            n.min(MAX_PACKET_SAMPLES)
        } else {
            // Its 20 ms as silence.
            self.decode_failures += 1;
            self.decoded[..960 * ch].fill(0);
            960
        };
        self.pcm.extend_from_slice(&self.decoded[..n * ch]);
        self.fed += n as u64;
        self.encode_whole_frames()
    }

    /// The end: the last samples are padded with silence to whole access units, and
    /// the encoder is run until every input sample has come out.
    pub fn flush(&mut self) -> Result<Vec<AacUnit>, AudioError> {
        if self.first_pts_us.is_none() {
            return Ok(Vec::new());
        }
        let needed = (u64::from(self.priming()) + self.fed).div_ceil(u64::from(AAC_FRAME));
        let mut out = Vec::new();
        // Silence pushes the encoder's delay out; bounded by the units still owed.
        let mut rounds = 0;
        while self.units < needed && rounds < 16 {
            let frame = AAC_FRAME as usize * usize::from(self.channels);
            let whole = self.pcm.len().div_ceil(frame).max(1) * frame;
            self.pcm.resize(whole, 0);
            out.extend(self.encode_whole_frames()?);
            rounds += 1;
        }
        Ok(out
            .into_iter()
            .filter(|u| u.sample < needed * u64::from(AAC_FRAME))
            .collect())
    }

    fn encode_whole_frames(&mut self) -> Result<Vec<AacUnit>, AudioError> {
        let frame = AAC_FRAME as usize * usize::from(self.channels);
        let mut units = Vec::new();
        let mut encoded = Vec::new();
        let mut start = 0;
        while self.pcm.len() - start >= frame {
            self.encoder
                .encode(&self.pcm[start..start + frame], &mut encoded)
                .map_err(|e| internal("AAC encoder", e))?;
            for data in encoded.drain(..) {
                units.push(AacUnit {
                    data,
                    sample: self.units * u64::from(AAC_FRAME),
                });
                self.units += 1;
            }
            start += frame;
        }
        self.pcm.drain(..start);
        Ok(units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AacToOpus;

    /// A 1 kHz tone of `seconds`, as stereo Opus packets of 20 ms.
    fn opus_tone(seconds: u32) -> Vec<Vec<u8>> {
        let mut enc =
            opus2::Encoder::new(48_000, Channels::Stereo, opus2::Application::Audio).unwrap();
        (0..seconds * 50)
            .map(|p| {
                let pcm: Vec<i16> = (0..960)
                    .flat_map(|i| {
                        let t = f64::from(p * 960 + i) / 48_000.0;
                        let v = ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 12_000.0) as i16;
                        [v, v]
                    })
                    .collect();
                enc.encode_vec(&pcm, 4000).unwrap()
            })
            .collect()
    }

    #[test]
    fn units_are_counted_in_samples_and_cover_the_input() {
        let packets = opus_tone(3);
        let mut t = OpusToAac::new(&packets[0]).unwrap();
        assert_eq!(t.channels(), 2);
        assert!(t.priming() > 0 && t.priming() <= 4096, "{}", t.priming());
        let mut units = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            units.extend(t.push(p, 5_000_000 + i as i64 * 20_000).unwrap());
        }
        units.extend(t.flush().unwrap());
        let want = (u64::from(t.priming()) + 3 * 48_000).div_ceil(1024);
        assert_eq!(units.len() as u64, want);
        for (k, u) in units.iter().enumerate() {
            assert_eq!(u.sample, k as u64 * 1024);
        }
        assert_eq!(t.decode_failures(), 0);
        // The AAC decodes back (through the playback side's decoder) to audio.
        let mut back = AacToOpus::new(t.audio_specific_config()).unwrap();
        let mut out = 0;
        for (k, u) in units.iter().enumerate() {
            out += back.push(&u.data, k as i64 * 21_333).unwrap().len();
        }
        assert!(out >= 140, "{out} Opus packets back from 3 s");
    }

    #[test]
    fn a_gap_in_the_packets_is_filled_so_later_audio_keeps_its_time() {
        let packets = opus_tone(2);
        let mut t = OpusToAac::new(&packets[0]).unwrap();
        let mut n = 0;
        for (i, p) in packets.iter().enumerate() {
            // Half a second of packets lost in the middle.
            if (40..65).contains(&i) {
                continue;
            }
            n += t.push(p, i as i64 * 20_000).unwrap().len();
        }
        n += t.flush().unwrap().len();
        let want = (u64::from(t.priming()) + 2 * 48_000).div_ceil(1024);
        assert_eq!(n as u64, want, "the gap became silence of its length");
    }

    #[test]
    fn mono_packets_make_a_mono_track() {
        let mut enc =
            opus2::Encoder::new(48_000, Channels::Mono, opus2::Application::Audio).unwrap();
        let p = enc.encode_vec(&[0i16; 960], 4000).unwrap();
        let t = OpusToAac::new(&p).unwrap();
        assert_eq!(t.channels(), 1);
        assert!(t.audio_specific_config().len() >= 2);
    }
}
