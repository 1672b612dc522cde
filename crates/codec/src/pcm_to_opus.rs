//! 48 kHz stereo samples to Opus: the last stage for audio that another decoder made
//! (MP3, AC-3, E-AC-3, FLAC, decoded by libavcodec in the `transcode` crate).
//!
//! Owns: cutting the samples into 20 ms frames, the Opus encoder (the same settings as
//! [`crate::audio::AacToOpus`]'s), and the output timeline: the first packet is at the
//! first input's time, then counted in samples (drift-free), as for AAC. Input whose time
//! is more than [`RESYNC_US`] away from that count (a gap or a jump in the file) ends the
//! run (its last frame padded with silence) and starts a new one at the new time.

use crate::audio::{encode, new_encoder, AudioError, OpusPacket};

/// Stereo samples per 20 ms Opus frame at 48 kHz.
const FRAME: usize = 960;
/// Interleaved values per frame.
const FRAME_VALUES: usize = FRAME * 2;
/// How far input may be from the counted timeline before the count restarts.
pub const RESYNC_US: i64 = 100_000;

/// One stream's Opus encoder for decoded audio.
pub struct PcmToOpus {
    encoder: opus2::Encoder,
    /// Samples not yet making a whole frame (interleaved).
    pending: Vec<f32>,
    /// Time of `pending`'s first sample; `None` before the first input.
    pending_us: Option<i64>,
}

impl std::fmt::Debug for PcmToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcmToOpus")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl PcmToOpus {
    /// A new encoder.
    pub fn new() -> Result<Self, AudioError> {
        Ok(PcmToOpus {
            encoder: new_encoder()?,
            pending: Vec::with_capacity(FRAME_VALUES * 2),
            pending_us: None,
        })
    }

    /// Takes interleaved 48 kHz stereo `samples` starting at `pts_us`; returns the
    /// packets that are whole.
    pub fn push(&mut self, samples: &[f32], pts_us: i64) -> Result<Vec<OpusPacket>, AudioError> {
        let mut out = Vec::new();
        if samples.is_empty() {
            return Ok(out);
        }
        match self.pending_us {
            None => self.pending_us = Some(pts_us),
            Some(start) => {
                let expected = start + values_us(self.pending.len());
                if (pts_us - expected).abs() > RESYNC_US {
                    self.finish(&mut out)?;
                    self.pending_us = Some(pts_us);
                }
            }
        }
        self.pending.extend_from_slice(samples);
        self.encode_whole(&mut out)?;
        Ok(out)
    }

    /// The end of the input: the last frame, padded with silence.
    pub fn flush(&mut self) -> Result<Vec<OpusPacket>, AudioError> {
        let mut out = Vec::new();
        self.finish(&mut out)?;
        self.pending_us = None;
        Ok(out)
    }

    fn finish(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), AudioError> {
        if !self.pending.is_empty() {
            let whole = self.pending.len().div_ceil(FRAME_VALUES) * FRAME_VALUES;
            self.pending.resize(whole, 0.0);
            self.encode_whole(out)?;
        }
        Ok(())
    }

    fn encode_whole(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), AudioError> {
        let Some(mut at) = self.pending_us else {
            return Ok(());
        };
        let mut used = 0;
        while self.pending.len() - used >= FRAME_VALUES {
            let data = encode(&mut self.encoder, &self.pending[used..used + FRAME_VALUES])?;
            out.push(OpusPacket { data, pts_us: at });
            used += FRAME_VALUES;
            at += values_us(FRAME_VALUES);
        }
        self.pending.drain(..used);
        self.pending_us = Some(at);
        Ok(())
    }
}

/// The duration of `values` interleaved stereo values at 48 kHz, in µs.
fn values_us(values: usize) -> i64 {
    (values / 2) as i64 * 1_000_000 / 48_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_counted_from_the_first_time_and_restart_after_a_jump() {
        let mut t = PcmToOpus::new().unwrap();
        // 1152 samples (an MP3 frame) at a time: packets every 20 ms from 1 000 µs.
        let frame = vec![0.1f32; 1152 * 2];
        let mut got = Vec::new();
        for i in 0..5 {
            got.extend(t.push(&frame, 1_000 + i * 24_000).unwrap());
        }
        let times: Vec<i64> = got.iter().map(|p| p.pts_us).collect();
        assert_eq!(times, vec![1_000, 21_000, 41_000, 61_000, 81_000, 101_000]);
        // A jump of a second: counting restarts at the new time.
        let after = t.push(&frame, 1_200_000).unwrap();
        let times: Vec<i64> = after.iter().map(|p| p.pts_us).collect();
        assert_eq!(times, vec![1_200_000]);
        let rest = t.flush().unwrap();
        assert_eq!(rest.len(), 1, "the last partial frame");
        assert_eq!(rest[0].pts_us, 1_220_000);
    }
}
