//! Audio in a codec browsers do not take over WebRTC (MP3, AC-3, E-AC-3, FLAC) → 48 kHz
//! stereo samples, for the server's Opus encoder.
//!
//! Owns: one libavcodec decoder and one libswresample context (any layout downmixed to
//! stereo, any rate to 48 kHz, any sample format to interleaved `f32`). The resampler is
//! made at the first decoded frame, from what the decoder says it outputs.

use ffmpeg_next::codec::{decoder, threading, Context};
use ffmpeg_next::format::sample::Type as SampleLayout;
use ffmpeg_next::format::Sample;
use ffmpeg_next::software::resampling;
use ffmpeg_next::{frame, ChannelLayout, Packet};

use ffmpeg_next::error::EAGAIN;

use crate::{ffi, init, CodecKind, TranscodeError, MICROS};

/// The output rate: Opus' own.
pub const OUTPUT_RATE: u32 = 48_000;

/// What the decoder needs to start.
#[derive(Debug, Clone)]
pub struct AudioInput {
    /// The codec.
    pub codec: CodecKind,
    /// Its configuration (FLAC: the `dfLa` metadata blocks), empty when none.
    pub config: Vec<u8>,
    /// Sample rate from the sample entry (the decoder's own output rate wins).
    pub sample_rate: u32,
    /// Channels from the sample entry.
    pub channels: u16,
}

/// Samples out of one packet.
#[derive(Debug, Clone, Default)]
pub struct DecodedAudio {
    /// Time of the packet they came from, in µs.
    pub pts_us: i64,
    /// 48 kHz stereo, interleaved (left, right, left, …).
    pub samples: Vec<f32>,
}

struct Resampler {
    format: Sample,
    layout: ChannelLayout,
    rate: u32,
    context: resampling::Context,
}

/// One stream's audio decoder.
pub struct AudioDecoder {
    codec: CodecKind,
    decoder: decoder::Audio,
    resampler: Option<Resampler>,
    decoded: frame::Audio,
}

impl AudioDecoder {
    /// A decoder for `input`.
    pub fn new(input: &AudioInput) -> Result<Self, TranscodeError> {
        init();
        let found = input
            .codec
            .decoder()
            .ok_or_else(|| TranscodeError::Unsupported(input.codec.name().to_string()))?;
        let mut context = Context::new_with_codec(found);
        ffi::set_extradata(&mut context, &input.config);
        context.set_threading(threading::Config::count(1));
        let mut opening = context.decoder();
        opening.set_packet_time_base(MICROS);
        let decoder = opening
            .open_as(found)
            .and_then(decoder::Opened::audio)
            .map_err(|e| TranscodeError::Decode {
                codec: input.codec.name(),
                reason: e.to_string(),
            })?;
        Ok(AudioDecoder {
            codec: input.codec,
            decoder,
            resampler: None,
            decoded: frame::Audio::empty(),
        })
    }

    /// Decodes one packet at `pts_us`. An error is for this packet only (its time is
    /// then silent: the caller's timeline fills it).
    pub fn push(&mut self, data: &[u8], pts_us: i64) -> Result<DecodedAudio, TranscodeError> {
        let mut p = Packet::copy(data);
        p.set_pts(Some(pts_us));
        p.set_dts(Some(pts_us));
        let mut out = DecodedAudio {
            pts_us,
            samples: Vec::new(),
        };
        if let Err(e) = self.decoder.send_packet(&p) {
            return Err(self.error(&e));
        }
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => self.resample(&mut out.samples)?,
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => break,
                Err(e) => return Err(self.error(&e)),
            }
        }
        Ok(out)
    }

    fn error(&self, e: &ffmpeg_next::Error) -> TranscodeError {
        TranscodeError::Decode {
            codec: self.codec.name(),
            reason: e.to_string(),
        }
    }

    /// Appends `self.decoded` as 48 kHz stereo f32 to `out`.
    fn resample(&mut self, out: &mut Vec<f32>) -> Result<(), TranscodeError> {
        let format = self.decoded.format();
        let rate = self.decoded.rate();
        let mut layout = self.decoded.channel_layout();
        if layout.is_empty() {
            layout = ChannelLayout::default(i32::from(self.decoded.channels().max(1)));
        }
        let fresh = !self
            .resampler
            .as_ref()
            .is_some_and(|r| r.format == format && r.layout == layout && r.rate == rate);
        if fresh {
            let context = resampling::Context::get(
                format,
                layout,
                rate,
                Sample::F32(SampleLayout::Packed),
                ChannelLayout::STEREO,
                OUTPUT_RATE,
            )
            .map_err(|e| TranscodeError::Decode {
                codec: self.codec.name(),
                reason: format!("resampler: {e}"),
            })?;
            self.resampler = Some(Resampler {
                format,
                layout,
                rate,
                context,
            });
        }
        let r = self.resampler.as_mut().expect("made just above");
        // Room for all of it at the new rate (and what the resampler held back), so
        // nothing piles up inside the resampler from frame to frame.
        let room = self.decoded.samples() * OUTPUT_RATE as usize / rate.max(1) as usize + 256;
        let mut converted = frame::Audio::new(
            Sample::F32(SampleLayout::Packed),
            room,
            ChannelLayout::STEREO,
        );
        r.context
            .run(&self.decoded, &mut converted)
            .map_err(|e| TranscodeError::Decode {
                codec: self.codec.name(),
                reason: format!("resampler: {e}"),
            })?;
        let bytes = converted.samples() * 2 * 4;
        let data = converted.data(0);
        out.extend(
            data[..bytes.min(data.len())]
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    }
}
