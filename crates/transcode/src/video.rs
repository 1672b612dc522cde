//! Video in any codec the server knows → H.264 a browser's WebRTC decoder plays.
//!
//! Owns: one decoder (libavcodec), a scaler when the decoded pictures are not 8-bit
//! 4:2:0 of an even size (10-bit HEVC, 4:2:2 MPEG-4, odd sizes), and one libx264
//! encoder: constrained baseline (no B-frames: browsers do not reorder), `zerolatency`
//! (a picture in, its packet out, no look-ahead), the `superfast` preset, one thread each
//! (a transcode costs one core, so a server can count them), a keyframe wherever the
//! source has one and at most [`MAX_KEYFRAME_INTERVAL_US`] apart. Output is Annex-B with
//! SPS/PPS before every keyframe (x264's repeated headers), what the server's H.264
//! path sends as it is.
//!
//! With [`OutputCodec::Vp8`] (a viewer without H.264) the encoder is libvpx's VP8 at
//! realtime settings instead, under the same rules for keyframes, size and bit rate.
//!
//! Bad input: a packet the decoder refuses is an error for that packet, and the
//! transcoder then drops packets up to the next keyframe (decoding from a damaged
//! reference shows garbage), where it starts clean.

use ffmpeg_next::codec::{decoder, encoder, packet, threading, Context};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{frame, picture, Dictionary, Packet, Rational};

use ffmpeg_next::error::EAGAIN;

use crate::{ffi, init, CodecKind, TranscodeError, MICROS};

/// At most this long between keyframes: a viewer who joins (or loses a keyframe) waits
/// no longer for a picture.
pub const MAX_KEYFRAME_INTERVAL_US: i64 = 2_000_000;

/// What the decoder needs to start.
#[derive(Debug, Clone)]
pub struct VideoInput {
    /// The codec.
    pub codec: CodecKind,
    /// Its configuration record from the sample entry (`avcC`, `hvcC`, `av1C`, the
    /// MPEG-4 DecoderSpecificInfo), as the file has it; empty when there is none.
    pub config: Vec<u8>,
    /// Frames per second of the source (from its sample count and duration), for the
    /// encoder's rate control; 0 when unknown (30 is assumed).
    pub frame_rate: f64,
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// H.264 Annex-B: start codes, SPS/PPS before each keyframe (or, with
    /// [`OutputCodec::Vp8`], one VP8 frame).
    pub data: Vec<u8>,
    /// Presentation time in µs (also its decode time: there is no reordering).
    pub pts_us: i64,
    /// An IDR picture.
    pub keyframe: bool,
}

/// What the encoder was opened with (known at the first decoded picture).
struct Encoding {
    encoder: encoder::video::Encoder,
    bit_rate: u64,
    width: u32,
    height: u32,
    /// The decoded pictures' format and size, and the scaler to the encoder's, when
    /// they differ.
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
}

/// One stream's video transcode. Not thread-safe by itself: one owner feeds it.
pub struct VideoTranscoder {
    codec: CodecKind,
    decoder: decoder::Video,
    encoding: Option<Encoding>,
    frame_rate: f64,
    bit_rate: Option<u64>,
    /// The picture size asked for (a rendition), fitted to the source by [`fit_size`].
    size: (Option<u32>, Option<u32>),
    /// What the encoder makes.
    output: OutputCodec,
    /// After a decode error: packets are dropped up to the next keyframe.
    skipping: bool,
    /// Pictures decoded now are not encoded ([`Self::decode_only`]).
    decode_only: bool,
    last_keyframe_us: Option<i64>,
    last_pts_us: Option<i64>,
    decoded: frame::Video,
    scaled: frame::Video,
    packet: Packet,
}

impl VideoTranscoder {
    /// A decoder for `input` and, at the first picture, an encoder at the default bit
    /// rate for its size ([`default_bit_rate`]).
    pub fn new(input: &VideoInput) -> Result<Self, TranscodeError> {
        init();
        let unsupported = || TranscodeError::Unsupported(input.codec.name().to_string());
        let found = input.codec.decoder().ok_or_else(unsupported)?;
        let mut context = Context::new_with_codec(found);
        ffi::set_extradata(&mut context, &input.config);
        // One thread: a transcode costs one core (frame threads would also add a
        // picture of delay per thread).
        context.set_threading(threading::Config::count(1));
        let mut opening = context.decoder();
        opening.set_packet_time_base(MICROS);
        let decoder = opening
            .open_as(found)
            .and_then(decoder::Opened::video)
            .map_err(|e| TranscodeError::Decode {
                codec: input.codec.name(),
                reason: e.to_string(),
            })?;
        Ok(VideoTranscoder {
            codec: input.codec,
            decoder,
            encoding: None,
            frame_rate: if input.frame_rate.is_finite() && input.frame_rate >= 1.0 {
                input.frame_rate.min(240.0)
            } else {
                30.0
            },
            bit_rate: None,
            size: (None, None),
            output: OutputCodec::H264,
            skipping: false,
            decode_only: false,
            last_keyframe_us: None,
            last_pts_us: None,
            decoded: frame::Video::empty(),
            scaled: frame::Video::empty(),
            packet: Packet::empty(),
        })
    }

    /// Encode at this many bits per second instead of the default (before the first
    /// packet).
    pub fn set_bit_rate(&mut self, bits_per_second: u64) {
        self.bit_rate = Some(bits_per_second.max(50_000));
    }

    /// Encode at this picture size instead of the source's (before the first packet):
    /// width, height or both, fitted to the source by [`fit_size`] (aspect kept when one
    /// is given, never larger than the source).
    pub fn set_size(&mut self, width: Option<u32>, height: Option<u32>) {
        self.size = (width, height);
    }

    /// Encode to `codec` instead of H.264 (before the first packet): VP8 for a viewer
    /// whose browser offers no H.264.
    pub fn set_output(&mut self, codec: OutputCodec) {
        self.output = codec;
    }

    /// Makes the next picture a keyframe (a viewer joined and needs one to start).
    pub fn force_keyframe(&mut self) {
        self.last_keyframe_us = None;
    }

    /// The bit rate the encoder runs at, once it is open.
    pub fn bit_rate(&self) -> Option<u64> {
        self.encoding.as_ref().map(|e| e.bit_rate)
    }

    /// The picture size the encoder makes, once it is open.
    pub fn encoded_size(&self) -> Option<(u32, u32)> {
        self.encoding.as_ref().map(|e| (e.width, e.height))
    }

    /// Takes one compressed sample (its decode and presentation times in µs, whether it
    /// is a sync sample) and appends the pictures that came out to `out`. An error is
    /// for this sample only: the transcoder goes on from the next keyframe.
    pub fn push(
        &mut self,
        data: &[u8],
        dts_us: i64,
        pts_us: i64,
        keyframe: bool,
        out: &mut Vec<EncodedFrame>,
    ) -> Result<(), TranscodeError> {
        if self.skipping {
            if !keyframe {
                return Ok(());
            }
            self.decoder.flush();
            self.skipping = false;
        }
        let mut p = Packet::copy(data);
        p.set_dts(Some(dts_us));
        p.set_pts(Some(pts_us));
        if keyframe {
            p.set_flags(packet::Flags::KEY);
        }
        if let Err(e) = self.decoder.send_packet(&p) {
            self.skipping = true;
            return Err(self.decode_error(&e));
        }
        self.drain_decoder(out)
    }

    /// Takes one compressed sample as [`Self::push`] does, but only decodes it: its
    /// pictures are not encoded. For catching up: a transcode started in the middle of
    /// a GOP decodes the pictures since its keyframe and encodes from the newest, which
    /// is then its first keyframe.
    pub fn decode_only(
        &mut self,
        data: &[u8],
        dts_us: i64,
        pts_us: i64,
        keyframe: bool,
    ) -> Result<(), TranscodeError> {
        self.decode_only = true;
        let mut none = Vec::new();
        let decoded = self.push(data, dts_us, pts_us, keyframe, &mut none);
        self.decode_only = false;
        decoded
    }

    /// The end of the input: what the decoder and encoder still hold.
    pub fn flush(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), TranscodeError> {
        if !self.skipping && self.decoder.send_eof().is_ok() {
            self.drain_decoder(out)?;
        }
        if let Some(e) = &mut self.encoding {
            if e.encoder.send_eof().is_ok() {
                self.drain_encoder(out)?;
            }
        }
        Ok(())
    }

    fn decode_error(&self, e: &ffmpeg_next::Error) -> TranscodeError {
        TranscodeError::Decode {
            codec: self.codec.name(),
            reason: e.to_string(),
        }
    }

    fn drain_decoder(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), TranscodeError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => self.encode_decoded(out)?,
                Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => return Ok(()),
                Err(e) => {
                    self.skipping = true;
                    return Err(self.decode_error(&e));
                }
            }
        }
    }

    /// Encodes `self.decoded`: scaled if need be, its time made strictly increasing
    /// (x264 needs it), forced to a keyframe where the source has one or the last is
    /// [`MAX_KEYFRAME_INTERVAL_US`] old.
    fn encode_decoded(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), TranscodeError> {
        if self.decode_only {
            return Ok(());
        }
        let Some(pts) = self.decoded.timestamp().or(self.decoded.pts()) else {
            return Ok(());
        };
        if self.last_pts_us.is_some_and(|last| pts <= last) {
            return Ok(()); // a repeated or backwards time: the picture is dropped
        }
        self.last_pts_us = Some(pts);
        let key = self.decoded.is_key()
            || self
                .last_keyframe_us
                .is_none_or(|k| pts - k >= MAX_KEYFRAME_INTERVAL_US);
        if key {
            self.last_keyframe_us = Some(pts);
        }
        if self.encoding.is_none() {
            self.encoding = Some(self.open_encoder()?);
        }
        let output = self.output;
        let e = self.encoding.as_mut().expect("opened just above");
        let (w, h, format) = (
            self.decoded.width(),
            self.decoded.height(),
            self.decoded.format(),
        );
        let needs_scaling = format != Pixel::YUV420P || w != e.width || h != e.height;
        let input = if needs_scaling {
            if !e
                .scaler
                .as_ref()
                .is_some_and(|(f, sw, sh, _)| *f == format && *sw == w && *sh == h)
            {
                let s = scaling::Context::get(
                    format,
                    w,
                    h,
                    Pixel::YUV420P,
                    e.width,
                    e.height,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| TranscodeError::Encode {
                    codec: output.name(),
                    reason: format!("scaler: {e}"),
                })?;
                e.scaler = Some((format, w, h, s));
                self.scaled = frame::Video::empty();
            }
            // Reused from picture to picture: libx264 copies what it is given before
            // `send_frame` returns (no look-ahead, one thread), so nothing still reads it.
            let (_, _, _, scaler) = e.scaler.as_mut().expect("set just above");
            scaler
                .run(&self.decoded, &mut self.scaled)
                .map_err(|e| TranscodeError::Encode {
                    codec: output.name(),
                    reason: format!("scaler: {e}"),
                })?;
            &mut self.scaled
        } else {
            &mut self.decoded
        };
        input.set_pts(Some(pts));
        // libx264 takes a decoded picture's type as an order (a source B-picture would
        // ask for a B-frame): only ever I, or the encoder's own choice.
        input.set_kind(if key {
            picture::Type::I
        } else {
            picture::Type::None
        });
        e.encoder
            .send_frame(input)
            .map_err(|e| TranscodeError::Encode {
                codec: output.name(),
                reason: e.to_string(),
            })?;
        self.drain_encoder(out)
    }

    fn drain_encoder(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), TranscodeError> {
        let Some(e) = &mut self.encoding else {
            return Ok(());
        };
        loop {
            match e.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    if let (Some(data), Some(pts)) = (self.packet.data(), self.packet.pts()) {
                        out.push(EncodedFrame {
                            data: data.to_vec(),
                            pts_us: pts,
                            keyframe: self.packet.is_key(),
                        });
                    }
                }
                Err(ffmpeg_next::Error::Eof) => return Ok(()),
                Err(ffmpeg_next::Error::Other { errno: EAGAIN }) => return Ok(()),
                Err(err) => {
                    return Err(TranscodeError::Encode {
                        codec: self.output.name(),
                        reason: err.to_string(),
                    })
                }
            }
        }
    }

    /// libx264 for the size of the first decoded picture (rounded down to even: 4:2:0
    /// needs it).
    fn open_encoder(&self) -> Result<Encoding, TranscodeError> {
        let (width, height) = fit_size(
            self.decoded.width(),
            self.decoded.height(),
            self.size.0,
            self.size.1,
        );
        let bit_rate = self
            .bit_rate
            .unwrap_or_else(|| default_bit_rate(width, height, self.frame_rate));
        match self.output {
            // `superfast` rather than `veryfast`: a quarter less CPU for 0.001 less SSIM
            // on a hard 1080p source (docs/PERFORMANCE.md).
            OutputCodec::H264 => self.open_codec(
                "libx264",
                (width, height, bit_rate),
                &[
                    ("preset", "superfast"),
                    ("tune", "zerolatency"),
                    ("profile", "baseline"),
                    ("forced-idr", "1"),
                ],
            ),
            // Realtime settings: no look-ahead (a picture in, its frame out), error
            // resilient (a lost frame spoils less), the fastest speed that still spends
            // bits well.
            OutputCodec::Vp8 => self.open_codec(
                "libvpx",
                (width, height, bit_rate),
                &[
                    ("deadline", "realtime"),
                    ("cpu-used", "8"),
                    ("lag-in-frames", "0"),
                    ("auto-alt-ref", "0"),
                    ("error-resilient", "1"),
                ],
            ),
        }
    }

    /// Opens libavcodec's encoder `name` (for `self.output`) with what both encoders share:
    /// no B-frames, one thread, the rate control (the bit rate, peaks at most half again
    /// above it, a one-second VBV buffer so a keyframe does not burst a link that carries
    /// the average), x264's own keyframe bound at two seconds (the interval is kept by
    /// time in `encode_decoded`: this bounds a frame rate lower than the file said), and
    /// the codec's own `options`.
    fn open_codec(
        &self,
        name: &str,
        (width, height, bit_rate): (u32, u32, u64),
        options: &[(&str, &str)],
    ) -> Result<Encoding, TranscodeError> {
        let codec = self.output.name();
        let failed = |e: ffmpeg_next::Error| TranscodeError::Encode {
            codec,
            reason: e.to_string(),
        };
        let found = encoder::find_by_name(name).ok_or_else(|| {
            TranscodeError::Unsupported(format!("{codec} encoding (no {name} in libavcodec)"))
        })?;
        let mut video = Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(failed)?;
        video.set_width(width);
        video.set_height(height);
        video.set_format(Pixel::YUV420P);
        video.set_time_base(MICROS);
        video.set_frame_rate(Some(frame_rate_rational(self.frame_rate)));
        video.set_max_b_frames(0);
        video.set_gop((self.frame_rate * 2.0).round().max(1.0) as u32);
        video.set_bit_rate(bit_rate as usize);
        video.set_max_bit_rate((bit_rate * 3 / 2) as usize);
        let mut dictionary = Dictionary::new();
        for (key, value) in options {
            dictionary.set(key, value);
        }
        dictionary.set("threads", "1");
        dictionary.set("bufsize", &bit_rate.to_string());
        let encoder = video.open_as_with(found, dictionary).map_err(failed)?;
        Ok(Encoding {
            encoder,
            bit_rate,
            width,
            height,
            scaler: None,
        })
    }
}

/// What a [`VideoTranscoder`] encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputCodec {
    /// H.264 constrained baseline (x264), Annex-B: what every viewer gets by default.
    #[default]
    H264,
    /// VP8 (libvpx), one frame per picture: for browsers that offer no H.264.
    Vp8,
}

impl OutputCodec {
    /// The codec's name as errors say it.
    pub fn name(self) -> &'static str {
        match self {
            OutputCodec::H264 => "H.264",
            OutputCodec::Vp8 => "VP8",
        }
    }
}

/// The bit rate the encoder runs at when nobody asks for another. A smaller picture needs
/// more bits per pixel for the same quality (each pixel carries more of the scene), so the
/// share falls with the size: 0.08 bit per pixel per picture at 1080p, times
/// (1080p's pixels / the picture's)^0.75, at most 0.15 (1080p30: 5.0 Mbit/s; 720p30: 4.1;
/// 960×540×30: 2.3; 640×360×30: 1.0; close to Apple's HLS authoring ladder), from
/// 150 kbit/s to 8 Mbit/s. The lowest at which x264's `superfast` kept SSIM at 0.95
/// against the hard 720p and 1080p sources of `bench/transcode.sh` (docs/PERFORMANCE.md).
pub fn default_bit_rate(width: u32, height: u32, frame_rate: f64) -> u64 {
    const FULL_HD: f64 = 1920.0 * 1080.0;
    let pixels = (f64::from(width) * f64::from(height)).max(1.0);
    let bits_per_pixel = (0.08 * (FULL_HD / pixels).powf(0.75)).min(0.15);
    let bits = pixels * frame_rate * bits_per_pixel;
    (bits as u64).clamp(150_000, 8_000_000)
}

/// The picture size encoded for a source of `src_w`×`src_h` when `want_w`, `want_h` or
/// both are asked: one alone keeps the source's aspect; both are taken as they are,
/// but never larger than the source (scaled down together, aspect kept, until they fit);
/// none: the source's size. Always even (4:2:0) and at least 2×2.
pub fn fit_size(src_w: u32, src_h: u32, want_w: Option<u32>, want_h: Option<u32>) -> (u32, u32) {
    let (sw, sh) = (f64::from(src_w.max(1)), f64::from(src_h.max(1)));
    let (w, h) = match (want_w, want_h) {
        (None, None) => (sw, sh),
        (Some(w), None) => {
            let w = f64::from(w).min(sw);
            (w, sh * w / sw)
        }
        (None, Some(h)) => {
            let h = f64::from(h).min(sh);
            (sw * h / sh, h)
        }
        (Some(w), Some(h)) => {
            let (w, h) = (f64::from(w), f64::from(h));
            let shrink = (sw / w).min(sh / h).min(1.0);
            (w * shrink, h * shrink)
        }
    };
    let even = |v: f64| ((v.round() as u32) & !1).max(2);
    (even(w), even(h))
}

/// The frame rate as libavcodec wants it: thousandths, exact for 30000/1001 to within
/// rounding, which is all rate control needs.
fn frame_rate_rational(fps: f64) -> Rational {
    Rational((fps * 1000.0).round() as i32, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bit_rate_follows_the_picture_size_within_bounds() {
        let mbps = |w, h, fps| default_bit_rate(w, h, fps) as f64 / 1e6;
        assert!((mbps(1920, 1080, 30.0) - 4.98).abs() < 0.01);
        assert!((mbps(1280, 720, 30.0) - 4.07).abs() < 0.01);
        // Smaller pictures: at most 0.15 bit per pixel.
        assert!((mbps(960, 540, 30.0) - 2.33).abs() < 0.01);
        assert!((mbps(640, 360, 30.0) - 1.04).abs() < 0.01);
        // Larger ones: less per pixel, within the bounds.
        assert!((mbps(3840, 2160, 30.0) - 7.04).abs() < 0.01);
        assert_eq!(default_bit_rate(160, 120, 25.0), 150_000);
        assert_eq!(default_bit_rate(7680, 4320, 60.0), 8_000_000);
    }

    #[test]
    fn a_size_asked_is_fitted_to_the_source_even_and_never_larger() {
        assert_eq!(fit_size(1920, 1080, None, None), (1920, 1080));
        assert_eq!(fit_size(1921, 1081, None, None), (1920, 1080));
        assert_eq!(fit_size(1920, 1080, Some(320), Some(180)), (320, 180));
        // One side: the other follows the source's aspect, made even.
        assert_eq!(fit_size(1920, 1080, Some(640), None), (640, 360));
        assert_eq!(fit_size(1920, 1080, None, Some(240)), (426, 240));
        // Never up: the source's size, or both scaled down together to fit.
        assert_eq!(fit_size(1280, 720, Some(3840), None), (1280, 720));
        assert_eq!(fit_size(1280, 720, Some(2560), Some(720)), (1280, 360));
        assert_eq!(fit_size(1280, 720, Some(16), Some(16)), (16, 16));
    }
}
