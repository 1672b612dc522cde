//! AAC through libavcodec's own codecs (FFmpeg's native AAC decoder and its `aac`
//! encoder): what the `codec` crate's AAC ↔ Opus transcoders build on.
//!
//! Owns: [`AacDecoder`], raw access units (every kind FFmpeg decodes: AAC-LC, HE-AAC
//! with SBR, HE-AAC v2 with parametric stereo, explicit or implicit signalling, mono to
//! 5.1) to stereo `f32` at the decoder's own output rate (downmixed by libswresample when
//! there are more than two channels; mono is duplicated); and [`AacEncoder`], 48 kHz PCM
//! to AAC-LC raw access units with the AudioSpecificConfig and the priming the encoder
//! reports. No timelines here: callers count samples.
//!
//! These replace Fraunhofer FDK AAC, whose licence is held incompatible with the GPL that
//! Debian's libavcodec (a GPL build) puts the server binary under: see the README's
//! "Licences".

use ffmpeg_next::codec::{decoder, encoder, threading, Context, Id};
use ffmpeg_next::error::EAGAIN;
use ffmpeg_next::format::sample::Type as SampleLayout;
use ffmpeg_next::format::Sample;
use ffmpeg_next::software::resampling;
use ffmpeg_next::{frame, ChannelLayout, Packet, Rational};

use crate::{ffi, init, TranscodeError};

const PLANAR_F32: Sample = Sample::F32(SampleLayout::Planar);
const PACKED_F32: Sample = Sample::F32(SampleLayout::Packed);

fn decode_error(reason: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Decode {
        codec: "AAC",
        reason: reason.to_string(),
    }
}

fn encode_error(reason: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::AacEncode(reason.to_string())
}

/// The downmix of a layout with more than two channels, made at the first frame of it.
struct Downmix {
    format: Sample,
    layout: ChannelLayout,
    rate: u32,
    context: resampling::Context,
}

/// One stream's AAC decoder; see the module docs.
pub struct AacDecoder {
    decoder: decoder::Audio,
    decoded: frame::Audio,
    downmix: Option<Downmix>,
}

impl std::fmt::Debug for AacDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacDecoder").finish_non_exhaustive()
    }
}

impl AacDecoder {
    /// A decoder for raw access units of this AudioSpecificConfig.
    pub fn new(audio_specific_config: &[u8]) -> Result<Self, TranscodeError> {
        init();
        let found = decoder::find(Id::AAC)
            .ok_or_else(|| TranscodeError::Unsupported("AAC decoding".to_string()))?;
        let mut context = Context::new_with_codec(found);
        ffi::set_extradata(&mut context, audio_specific_config);
        context.set_threading(threading::Config::count(1));
        let decoder = context
            .decoder()
            .open_as(found)
            .and_then(decoder::Opened::audio)
            .map_err(decode_error)?;
        Ok(AacDecoder {
            decoder,
            decoded: frame::Audio::empty(),
            downmix: None,
        })
    }

    /// Decodes one raw access unit, appending its samples to `left` and `right` (f32 in
    /// -1..1); returns the output rate. An error is for this unit only.
    pub fn decode(
        &mut self,
        unit: &[u8],
        left: &mut Vec<f32>,
        right: &mut Vec<f32>,
    ) -> Result<u32, TranscodeError> {
        // An empty packet would tell libavcodec the stream has ended.
        if unit.is_empty() {
            return Err(decode_error("the access unit is empty"));
        }
        self.decoder
            .send_packet(&Packet::copy(unit))
            .map_err(decode_error)?;
        let mut rate = None;
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => rate = Some(self.take_stereo(left, right)?),
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => break,
                Err(e) => return Err(decode_error(e)),
            }
        }
        rate.ok_or_else(|| decode_error("the access unit gave no audio"))
    }

    /// Appends `self.decoded` as stereo to `left`/`right`; returns its rate.
    fn take_stereo(
        &mut self,
        left: &mut Vec<f32>,
        right: &mut Vec<f32>,
    ) -> Result<u32, TranscodeError> {
        let frame = &self.decoded;
        let rate = frame.rate();
        let n = frame.samples();
        let channels = usize::from(frame.channels());
        if frame.format() == PLANAR_F32 && (1..=2).contains(&channels) {
            // The common case, without a converter: FFmpeg's AAC decoder gives planar
            // float; mono plays the same on both sides.
            // (`plane` is bounded by the frame's samples; only the first plane's size is
            // recorded in an audio frame, so `data(1)` would be empty.)
            let l = frame.plane::<f32>(0);
            let r = if channels == 2 {
                frame.plane::<f32>(1)
            } else {
                l
            };
            left.extend_from_slice(&l[..n.min(l.len())]);
            right.extend_from_slice(&r[..n.min(r.len())]);
            return Ok(rate);
        }
        let format = frame.format();
        let mut layout = frame.channel_layout();
        if layout.is_empty() {
            layout = ChannelLayout::default(i32::from(frame.channels().max(1)));
        }
        let fresh = !self
            .downmix
            .as_ref()
            .is_some_and(|d| d.format == format && d.layout == layout && d.rate == rate);
        if fresh {
            let context = resampling::Context::get(
                format,
                layout,
                rate,
                PACKED_F32,
                ChannelLayout::STEREO,
                rate,
            )
            .map_err(|e| decode_error(format!("downmix: {e}")))?;
            self.downmix = Some(Downmix {
                format,
                layout,
                rate,
                context,
            });
        }
        let d = self
            .downmix
            .as_mut()
            .ok_or_else(|| decode_error("downmix"))?;
        // Same rate in and out: the converter holds nothing back.
        let mut stereo = frame::Audio::new(PACKED_F32, n + 64, ChannelLayout::STEREO);
        d.context
            .run(&self.decoded, &mut stereo)
            .map_err(|e| decode_error(format!("downmix: {e}")))?;
        let bytes = plane(&stereo, 0, stereo.samples() * 2);
        for pair in bytes.chunks_exact(8) {
            left.push(f32::from_ne_bytes([pair[0], pair[1], pair[2], pair[3]]));
            right.push(f32::from_ne_bytes([pair[4], pair[5], pair[6], pair[7]]));
        }
        Ok(rate)
    }
}

/// The first `values` f32 of plane `index`, as bytes (bounded by the plane's size).
fn plane(frame: &frame::Audio, index: usize, values: usize) -> &[u8] {
    let data = frame.data(index);
    &data[..(values * 4).min(data.len())]
}

/// Samples per second the encoder takes.
pub const ENCODER_RATE: u32 = 48_000;
/// Samples (per channel) in one AAC access unit.
pub const ENCODER_FRAME: usize = 1024;

/// How the encoder chooses its quantizers: libavcodec's `aac_coder` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AacCoder {
    /// `twoloop`, libavcodec's default: an iterative search per band, the better choice
    /// for tonal music.
    TwoLoop,
    /// `fast`: one pass per band, about 40 % of `twoloop`'s CPU. Measured on speech
    /// through Opus 32 kbit/s mono (docs/PERFORMANCE.md), it scores as well or better
    /// (PESQ-WB, segmental SNR) at 64 kbit/s mono; on tonal music PESQ scores it lower.
    Fast,
}

impl AacCoder {
    fn option(self) -> &'static str {
        match self {
            AacCoder::TwoLoop => "twoloop",
            AacCoder::Fast => "fast",
        }
    }
}

/// One stream's AAC-LC encoder (48 kHz, mono or stereo); see the module docs.
pub struct AacEncoder {
    encoder: encoder::audio::Encoder,
    channels: u16,
    asc: Vec<u8>,
    priming: u32,
    /// Samples handed to the encoder: the next frame's pts.
    pts: i64,
    packet: Packet,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl AacEncoder {
    /// An AAC-LC encoder at 48 kHz for `channels` (1 or 2) at `bit_rate` bits/s, with
    /// libavcodec's default coder ([`AacCoder::TwoLoop`]).
    pub fn new(channels: u16, bit_rate: usize) -> Result<Self, TranscodeError> {
        Self::with_coder(channels, bit_rate, AacCoder::TwoLoop)
    }

    /// As [`AacEncoder::new`], with the quantizer search `coder`.
    pub fn with_coder(
        channels: u16,
        bit_rate: usize,
        coder: AacCoder,
    ) -> Result<Self, TranscodeError> {
        init();
        let aac = encoder::find(Id::AAC)
            .ok_or_else(|| TranscodeError::Unsupported("AAC encoding".to_string()))?;
        let mut audio = Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(encode_error)?;
        let layout = if channels == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        audio.set_rate(ENCODER_RATE as i32);
        audio.set_channel_layout(layout);
        audio.set_format(PLANAR_F32);
        audio.set_bit_rate(bit_rate);
        audio.set_time_base(Rational(1, ENCODER_RATE as i32));
        let mut options = ffmpeg_next::Dictionary::new();
        options.set("aac_coder", coder.option());
        let encoder = audio.open_as_with(aac, options).map_err(encode_error)?;
        if encoder.frame_size() as usize != ENCODER_FRAME {
            return Err(encode_error(format!(
                "unexpected frame size {}",
                encoder.frame_size()
            )));
        }
        let asc = ffi::extradata(&encoder);
        if asc.len() < 2 {
            return Err(encode_error("no AudioSpecificConfig"));
        }
        let priming = u32::try_from(ffi::initial_padding(&encoder)).unwrap_or(0);
        Ok(AacEncoder {
            encoder,
            channels: if channels == 1 { 1 } else { 2 },
            asc,
            priming,
            pts: 0,
            packet: Packet::empty(),
        })
    }

    /// The AudioSpecificConfig of the output (for the MP4 `esds`).
    pub fn audio_specific_config(&self) -> &[u8] {
        &self.asc
    }

    /// Samples of priming before the first input sample in the output (the encoder's
    /// `initial_padding`).
    pub fn priming(&self) -> u32 {
        self.priming
    }

    /// Encodes one frame of [`ENCODER_FRAME`] interleaved i16 samples per channel,
    /// appending the access units that come out (the encoder holds one frame back).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<Vec<u8>>) -> Result<(), TranscodeError> {
        let ch = usize::from(self.channels);
        if pcm.len() != ENCODER_FRAME * ch {
            return Err(encode_error("a frame of the wrong length"));
        }
        let layout = if ch == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        let mut frame = frame::Audio::new(PLANAR_F32, ENCODER_FRAME, layout);
        frame.set_rate(ENCODER_RATE);
        frame.set_pts(Some(self.pts));
        for c in 0..ch {
            for (dst, &s) in frame
                .plane_mut::<f32>(c)
                .iter_mut()
                .zip(pcm.iter().skip(c).step_by(ch))
            {
                *dst = f32::from(s) / 32_768.0;
            }
        }
        self.pts += ENCODER_FRAME as i64;
        self.encoder.send_frame(&frame).map_err(encode_error)?;
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => out.push(self.packet.data().unwrap_or_default().to_vec()),
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => break,
                Err(e) => return Err(encode_error(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `seconds` of stereo: silence, then a 1 kHz tone from sample `onset`.
    fn encode_onset(onset: usize, frames: usize) -> (AacEncoder, Vec<Vec<u8>>) {
        let mut enc = AacEncoder::new(2, 128_000).expect("FFmpeg's AAC encoder");
        let mut units = Vec::new();
        for f in 0..frames {
            let pcm: Vec<i16> = (0..ENCODER_FRAME)
                .flat_map(|i| {
                    let n = f * ENCODER_FRAME + i;
                    let t = n as f32 / ENCODER_RATE as f32;
                    let v = if n >= onset {
                        ((2.0 * std::f32::consts::PI * 1000.0 * t).sin() * 16_000.0) as i16
                    } else {
                        0
                    };
                    [v, v]
                })
                .collect();
            enc.encode(&pcm, &mut units).expect("encode");
        }
        (enc, units)
    }

    #[test]
    fn priming_is_where_the_first_input_sample_comes_out() {
        let onset = 10_000;
        let (enc, units) = encode_onset(onset, 40);
        assert_eq!(enc.priming(), 1024, "FFmpeg's AAC-LC initial_padding");
        // The encoder holds one frame back: one unit less than the frames given.
        assert_eq!(units.len(), 39);
        let mut dec = AacDecoder::new(enc.audio_specific_config()).expect("decoder");
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for u in &units {
            assert_eq!(dec.decode(u, &mut l, &mut r).expect("decodes"), 48_000);
        }
        assert_eq!(l.len(), r.len());
        let at = l.iter().position(|s| s.abs() > 0.1).expect("the tone");
        let want = onset + enc.priming() as usize;
        assert!(
            at.abs_diff(want) < 48,
            "the tone comes out at {at}, expected {want} (input onset + priming)"
        );
    }

    #[test]
    fn the_fast_coder_is_taken_and_decodes() {
        // The same second of a chord, both ways: if the option were not taken, the
        // output would be the same bytes.
        let encode = |coder| {
            let mut enc = AacEncoder::with_coder(1, 64_000, coder).expect("encoder");
            let mut units = Vec::new();
            for f in 0..48 {
                let pcm: Vec<i16> = (0..ENCODER_FRAME)
                    .map(|i| {
                        let t = (f * ENCODER_FRAME + i) as f32 / ENCODER_RATE as f32;
                        let v: f32 = [440.0f32, 554.4, 659.3, 3520.0]
                            .iter()
                            .map(|hz| (2.0 * std::f32::consts::PI * hz * t).sin())
                            .sum();
                        (v * 6_000.0) as i16
                    })
                    .collect();
                enc.encode(&pcm, &mut units).expect("encode");
            }
            (enc, units)
        };
        let (slow, slow_units) = encode(AacCoder::TwoLoop);
        let (fast, fast_units) = encode(AacCoder::Fast);
        assert_ne!(slow_units, fast_units, "aac_coder=fast was not taken");
        assert_eq!(fast.priming(), slow.priming());
        let mut dec = AacDecoder::new(fast.audio_specific_config()).expect("decoder");
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for u in &fast_units {
            dec.decode(u, &mut l, &mut r).expect("decodes");
        }
        let loud = l.iter().skip(4096).filter(|s| s.abs() > 0.2).count();
        assert!(loud > 1000, "the chord comes back ({loud} loud samples)");
    }

    #[test]
    fn empty_and_garbage_units_are_errors_not_panics() {
        let (enc, _) = encode_onset(0, 2);
        let mut dec = AacDecoder::new(enc.audio_specific_config()).expect("decoder");
        let (mut l, mut r) = (Vec::new(), Vec::new());
        assert!(dec.decode(&[], &mut l, &mut r).is_err());
        let _ = dec.decode(&[0xff; 300], &mut l, &mut r);
        assert_eq!(l.len(), r.len());
    }
}
