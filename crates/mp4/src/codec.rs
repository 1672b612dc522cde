//! Sample descriptions (`stsd` entries): which codec a track carries and its setup data.
//!
//! Owns: avc1/avc3 + avcC, mp4a + esds (ES descriptor chain → AudioSpecificConfig),
//! Opus + dOps; and, for the server to transcode ([`Codec::OtherVideo`],
//! [`Codec::OtherAudio`]): hvc1/hev1 + hvcC, vp09 + vpcC, av01 + av1C, mp4v + esds
//! (MPEG-4 Part 2, object type 0x20), `.mp3` and mp4a with MP3's object types
//! (0x6B, 0x69), ac-3, ec-3, fLaC + dfLa. Everything else becomes [`Codec::Unsupported`]
//! so the server can name it. Must not touch: sample tables.

use crate::error::Mp4Error;
use crate::reader::Reader;

/// The codec of a track, with what a decoder or packetizer needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 / AVC.
    H264 {
        /// The raw AVCDecoderConfigurationRecord (payload of `avcC`).
        avcc: Vec<u8>,
        /// Width in pixels, from the visual sample entry.
        width: u16,
        /// Height in pixels, from the visual sample entry.
        height: u16,
        /// `avc3`: SPS/PPS may also come inside the samples.
        in_band_parameter_sets: bool,
    },
    /// MPEG-4 AAC (object type indication 0x40, or MPEG-2 AAC 0x66..=0x68).
    Aac {
        /// The raw AudioSpecificConfig (DecoderSpecificInfo of `esds`).
        audio_specific_config: Vec<u8>,
        /// Audio object type: 2 = AAC-LC, 5 = HE-AAC (SBR), 29 = HE-AACv2 (PS), …
        object_type: u8,
        /// Output sample rate in Hz (the SBR extension rate for explicit HE-AAC).
        sample_rate: u32,
        /// Channel count (channel configuration 1..=7; 0 falls back to the sample entry).
        channels: u16,
    },
    /// Opus in ISO-BMFF (`Opus` sample entry with `dOps`).
    Opus {
        /// Output channel count.
        channels: u8,
        /// Samples (at 48 kHz) to discard at the start.
        pre_skip: u16,
        /// The original input sample rate (informational; Opus always decodes at 48 kHz).
        input_sample_rate: u32,
    },
    /// Video a browser does not take over WebRTC: the server decodes and re-encodes it.
    OtherVideo {
        /// Which codec.
        format: VideoFormat,
        /// Its decoder configuration as the file has it: the payload of `hvcC`, `av1C`
        /// or `vpcC`, or MPEG-4 Part 2's DecoderSpecificInfo (may be empty).
        config: Vec<u8>,
        /// Width in pixels, from the visual sample entry.
        width: u16,
        /// Height in pixels, from the visual sample entry.
        height: u16,
    },
    /// Audio a browser does not take over WebRTC: the server decodes it and encodes Opus.
    OtherAudio {
        /// Which codec.
        format: AudioFormat,
        /// Its decoder configuration: FLAC's metadata blocks from `dfLa` (STREAMINFO
        /// first); empty for the others, whose frames carry their own headers.
        config: Vec<u8>,
        /// Sample rate from the sample entry.
        sample_rate: u32,
        /// Channel count from the sample entry.
        channels: u16,
    },
    /// Anything else (VP8, mp4v with another object type, encrypted entries, a missing
    /// decoder configuration box, …). The server reports `fourcc`.
    Unsupported {
        /// The sample entry type, or for mp4a with a non-AAC object type, `mp4a`.
        fourcc: [u8; 4],
    },
}

/// Video codecs the server transcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// HEVC / H.265 (`hvc1`, `hev1`).
    Hevc,
    /// VP9 (`vp09`).
    Vp9,
    /// AV1 (`av01`).
    Av1,
    /// MPEG-4 Part 2 Visual (`mp4v`, object type 0x20).
    Mpeg4Part2,
}

/// Audio codecs the server transcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// MPEG audio layer III (`.mp3`, or `mp4a` with object type 0x6B or 0x69).
    Mp3,
    /// AC-3 (`ac-3`).
    Ac3,
    /// E-AC-3 (`ec-3`).
    Eac3,
    /// FLAC (`fLaC`).
    Flac,
}

/// Parses the first entry of an `stsd` payload (the reader is positioned after the
/// full-box header). Further entries (several codecs in one track) are ignored.
pub(crate) fn parse_stsd(r: &mut Reader<'_>) -> Result<Codec, Mp4Error> {
    let _count = r.u32()?;
    let Some(entry) = r.children().next() else {
        return Err(r.error("no sample description"));
    };
    let (h, mut e) = entry?;
    Ok(match &h.fourcc {
        b"avc1" | b"avc3" => parse_avc(&mut e, h.fourcc == *b"avc3")?,
        b"mp4a" => parse_mp4a(&mut e)?,
        b"Opus" => parse_opus(&mut e)?,
        b"hvc1" | b"hev1" => parse_other_video(&mut e, VideoFormat::Hevc, b"hvcC")?,
        b"vp09" => parse_other_video(&mut e, VideoFormat::Vp9, b"vpcC")?,
        b"av01" => parse_other_video(&mut e, VideoFormat::Av1, b"av1C")?,
        b"mp4v" => parse_mp4v(&mut e)?,
        b".mp3" => parse_other_audio(&mut e, AudioFormat::Mp3)?,
        b"ac-3" => parse_other_audio(&mut e, AudioFormat::Ac3)?,
        b"ec-3" => parse_other_audio(&mut e, AudioFormat::Eac3)?,
        b"fLaC" => parse_other_audio(&mut e, AudioFormat::Flac)?,
        _ => Codec::Unsupported { fourcc: h.fourcc },
    })
}

fn parse_avc(e: &mut Reader<'_>, avc3: bool) -> Result<Codec, Mp4Error> {
    let fourcc = e.fourcc();
    let (width, height) = visual_entry_header(e)?;
    for child in e.children() {
        let (h, mut c) = child?;
        if &h.fourcc == b"avcC" {
            let avcc = c.rest().to_vec();
            if avcc.len() < 7 || avcc.first() != Some(&1) {
                return Err(c.error("not an AVCDecoderConfigurationRecord version 1"));
            }
            return Ok(Codec::H264 {
                avcc,
                width,
                height,
                in_band_parameter_sets: avc3,
            });
        }
    }
    Ok(Codec::Unsupported { fourcc })
}

/// A visual sample entry whose decoder configuration is the box `config_box`: missing,
/// the entry is [`Codec::Unsupported`] (the decoder could not start).
fn parse_other_video(
    e: &mut Reader<'_>,
    format: VideoFormat,
    config_box: &[u8; 4],
) -> Result<Codec, Mp4Error> {
    let fourcc = e.fourcc();
    let (width, height) = visual_entry_header(e)?;
    for child in e.children() {
        let (h, mut c) = child?;
        if &h.fourcc == config_box {
            let mut config = c.rest().to_vec();
            if format == VideoFormat::Vp9 {
                // vpcC is a full box of colour facts; the VP9 decoder needs none of it
                // (every frame header says what it is), so nothing is handed on.
                config.clear();
            }
            return Ok(Codec::OtherVideo {
                format,
                config,
                width,
                height,
            });
        }
    }
    Ok(Codec::Unsupported { fourcc })
}

/// `mp4v`: MPEG-4 Part 2 (object type 0x20) with its DecoderSpecificInfo (the VOL
/// header); other object types (MPEG-1/2 video, JPEG) are not played.
fn parse_mp4v(e: &mut Reader<'_>) -> Result<Codec, Mp4Error> {
    let (width, height) = visual_entry_header(e)?;
    let unsupported = Codec::Unsupported { fourcc: *b"mp4v" };
    for child in e.children() {
        let (h, mut c) = child?;
        if &h.fourcc != b"esds" {
            continue;
        }
        c.full_box()?;
        return Ok(match parse_es_descriptor(&mut c)? {
            Some((0x20, config)) => Codec::OtherVideo {
                format: VideoFormat::Mpeg4Part2,
                config,
                width,
                height,
            },
            _ => unsupported,
        });
    }
    Ok(unsupported)
}

/// Skips the VisualSampleEntry fields up to its child boxes; returns width and height.
fn visual_entry_header(e: &mut Reader<'_>) -> Result<(u16, u16), Mp4Error> {
    // SampleEntry: reserved(6) data_reference_index(2); VisualSampleEntry:
    // pre_defined/reserved(16) width(2) height(2) then 50 bytes up to the child boxes.
    e.skip(6 + 2 + 16)?;
    let width = e.u16()?;
    let height = e.u16()?;
    e.skip(50)?;
    Ok((width, height))
}

/// An audio sample entry of a codec the server transcodes. FLAC needs its `dfLa`
/// (STREAMINFO); the others' frames describe themselves.
fn parse_other_audio(e: &mut Reader<'_>, format: AudioFormat) -> Result<Codec, Mp4Error> {
    let fourcc = e.fourcc();
    let (channels, sample_rate) = audio_entry_header(e)?;
    let mut config = Vec::new();
    if format == AudioFormat::Flac {
        let Some(dfla) = e.children().find_map(|c| match c {
            Ok((h, c)) if &h.fourcc == b"dfLa" => Some(c),
            _ => None,
        }) else {
            return Ok(Codec::Unsupported { fourcc });
        };
        let mut dfla = dfla;
        dfla.full_box()?;
        config = flac_streaminfo(dfla.rest()).ok_or_else(|| dfla.error("no FLAC STREAMINFO"))?;
    }
    Ok(Codec::OtherAudio {
        format,
        config,
        sample_rate,
        channels,
    })
}

/// The STREAMINFO block's 34 bytes from `dfLa`'s metadata blocks (the first block must be
/// STREAMINFO, type 0): what libavcodec's FLAC decoder takes as its configuration.
fn flac_streaminfo(blocks: &[u8]) -> Option<Vec<u8>> {
    let header = blocks.get(..4)?;
    if header[0] & 0x7f != 0 {
        return None;
    }
    let len = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    if len < 34 {
        return None;
    }
    Some(blocks.get(4..4 + 34)?.to_vec())
}

/// Skips the AudioSampleEntry fields (QuickTime versions 0, 1, 2) and returns the
/// channel count and integer sample rate it declares.
fn audio_entry_header(e: &mut Reader<'_>) -> Result<(u16, u32), Mp4Error> {
    e.skip(6 + 2)?;
    let version = e.u16()?;
    e.skip(2 + 4)?; // revision, vendor
    let channels = e.u16()?;
    e.skip(2 + 2 + 2)?; // sample size, compression id, packet size
    let rate = e.u32()? >> 16;
    match version {
        1 => e.skip(16)?,
        2 => {
            // sizeOfStructOnly(4) audioSampleRate(f64) numAudioChannels(4) + 20 more.
            e.skip(4)?;
            let rate2 = f64::from_bits(e.u64()?);
            let ch2 = e.u32()?;
            e.skip(20)?;
            let rate2 = if rate2.is_finite() && rate2 > 0.0 && rate2 < 1e7 {
                rate2 as u32
            } else {
                rate
            };
            return Ok((u16::try_from(ch2).unwrap_or(channels), rate2));
        }
        _ => {}
    }
    Ok((channels, rate))
}

fn parse_mp4a(e: &mut Reader<'_>) -> Result<Codec, Mp4Error> {
    let (entry_channels, entry_rate) = audio_entry_header(e)?;
    let mut esds = None;
    for child in e.children() {
        let (h, c) = child?;
        match &h.fourcc {
            b"esds" => esds = Some(c),
            // QuickTime puts esds inside a `wave` box.
            b"wave" if esds.is_none() => {
                let mut w = c;
                for inner in w.children() {
                    let (ih, ic) = inner?;
                    if &ih.fourcc == b"esds" {
                        esds = Some(ic);
                    }
                }
            }
            _ => {}
        }
    }
    let unsupported = Codec::Unsupported { fourcc: *b"mp4a" };
    let Some(mut esds) = esds else {
        return Ok(unsupported);
    };
    esds.full_box()?;
    let Some((oti, asc)) = parse_es_descriptor(&mut esds)? else {
        return Ok(unsupported);
    };
    if matches!(oti, 0x6B | 0x69) {
        return Ok(Codec::OtherAudio {
            format: AudioFormat::Mp3,
            config: Vec::new(),
            sample_rate: entry_rate,
            channels: entry_channels,
        });
    }
    if !matches!(oti, 0x40 | 0x66..=0x68) {
        return Ok(unsupported);
    }
    let Some(info) = parse_audio_specific_config(&asc) else {
        return Err(esds.error("unreadable AAC AudioSpecificConfig"));
    };
    let sample_rate = if info.sample_rate == 0 {
        entry_rate
    } else {
        info.sample_rate
    };
    let channels = if info.channels == 0 {
        entry_channels
    } else {
        info.channels
    };
    Ok(Codec::Aac {
        audio_specific_config: asc,
        object_type: info.object_type,
        sample_rate,
        channels,
    })
}

/// Reads a descriptor header: (tag, size), size in the 7-bits-per-byte encoding.
fn descriptor_header(r: &mut Reader<'_>) -> Result<(u8, usize), Mp4Error> {
    let tag = r.u8()?;
    let mut size = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        size = (size << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok((tag, size))
}

/// ES_Descriptor (tag 3) → DecoderConfigDescriptor (4) → DecoderSpecificInfo (5).
/// Returns the objectTypeIndication and the DecoderSpecificInfo bytes.
fn parse_es_descriptor(esds: &mut Reader<'_>) -> Result<Option<(u8, Vec<u8>)>, Mp4Error> {
    let (tag, size) = descriptor_header(esds)?;
    if tag != 3 {
        return Err(esds.error(format!(
            "expected an ES descriptor (tag 3), found tag {tag}"
        )));
    }
    let base = esds.offset();
    let mut es = Reader::new(esds.bytes(size.min(esds.remaining()))?, base, *b"esds");
    es.skip(2)?; // ES_ID
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let n = es.u8()?;
        es.skip(usize::from(n))?; // URL
    }
    if flags & 0x20 != 0 {
        es.skip(2)?; // OCR_ES_Id
    }
    while es.remaining() > 0 {
        let (tag, size) = descriptor_header(&mut es)?;
        let base = es.offset();
        let body = es.bytes(size.min(es.remaining()))?;
        if tag != 4 {
            continue;
        }
        let mut dc = Reader::new(body, base, *b"esds");
        let oti = dc.u8()?;
        dc.skip(1 + 3 + 4 + 4)?; // streamType, bufferSizeDB, maxBitrate, avgBitrate
        while dc.remaining() > 0 {
            let (tag, size) = descriptor_header(&mut dc)?;
            let body = dc.bytes(size.min(dc.remaining()))?;
            if tag == 5 {
                return Ok(Some((oti, body.to_vec())));
            }
        }
        return Ok(Some((oti, Vec::new())));
    }
    Ok(None)
}

/// What the AudioSpecificConfig says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AscInfo {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u16,
}

struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl BitReader<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.bit / 8)?;
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u32::from(b);
            self.bit += 1;
        }
        Some(v)
    }
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

fn read_rate(b: &mut BitReader<'_>) -> Option<u32> {
    let idx = b.read(4)?;
    if idx == 0xf {
        return b.read(24);
    }
    Some(AAC_RATES.get(idx as usize).copied().unwrap_or(0))
}

fn read_object_type(b: &mut BitReader<'_>) -> Option<u8> {
    let t = b.read(5)?;
    let t = if t == 31 { 32 + b.read(6)? } else { t };
    u8::try_from(t).ok()
}

/// Parses the start of an AudioSpecificConfig (ISO 14496-3 1.6.2.1): object type
/// (with the escape 31), sampling frequency (with the 0xF explicit escape), channel
/// configuration (1..=7; 7 means 8 channels), and the explicit SBR/PS extension rate.
pub(crate) fn parse_audio_specific_config(asc: &[u8]) -> Option<AscInfo> {
    let mut b = BitReader { data: asc, bit: 0 };
    let object_type = read_object_type(&mut b)?;
    let mut sample_rate = read_rate(&mut b)?;
    let cfg = b.read(4)?;
    let channels = match cfg {
        1..=6 => cfg as u16,
        7 => 8,
        _ => 0, // 0: program config element; others reserved
    };
    if object_type == 5 || object_type == 29 {
        if let Some(ext) = read_rate(&mut b) {
            sample_rate = ext;
        }
    }
    Some(AscInfo {
        object_type,
        sample_rate,
        channels,
    })
}

fn parse_opus(e: &mut Reader<'_>) -> Result<Codec, Mp4Error> {
    audio_entry_header(e)?;
    for child in e.children() {
        let (h, mut c) = child?;
        if &h.fourcc == b"dOps" {
            let _version = c.u8()?;
            let channels = c.u8()?;
            let pre_skip = c.u16()?;
            let input_sample_rate = c.u32()?;
            return Ok(Codec::Opus {
                channels,
                pre_skip,
                input_sample_rate,
            });
        }
    }
    Ok(Codec::Unsupported { fourcc: *b"Opus" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_lc_stereo_44100() {
        // AAC-LC (2), index 4 (44100), 2 channels: 00010 0100 0010 000
        let i = parse_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(
            i,
            AscInfo {
                object_type: 2,
                sample_rate: 44100,
                channels: 2
            }
        );
    }

    #[test]
    fn asc_explicit_frequency_escape() {
        // AOT 2, index 0xF, 24-bit rate 44056, channel config 7 (8 channels).
        let rate: u32 = 44056;
        let bits: u64 = (2u64 << 35) | (0xfu64 << 31) | (u64::from(rate) << 7) | (7 << 3);
        let bytes = bits.to_be_bytes();
        let i = parse_audio_specific_config(&bytes[3..]).unwrap();
        assert_eq!(
            i,
            AscInfo {
                object_type: 2,
                sample_rate: 44056,
                channels: 8
            }
        );
    }

    #[test]
    fn asc_he_aac_reports_extension_rate() {
        // AOT 5, index 6 (24000), 2 ch, ext index 3 (48000), then AOT 2.
        // 00101 0110 0010 0011 00010 -> 0010 1011 0001 0001 1000 10..
        let i = parse_audio_specific_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            i,
            AscInfo {
                object_type: 5,
                sample_rate: 48000,
                channels: 2
            }
        );
    }

    #[test]
    fn asc_too_short_is_none() {
        assert!(parse_audio_specific_config(&[0x12]).is_none());
        assert!(parse_audio_specific_config(&[]).is_none());
    }

    /// A box: size, type, payload.
    fn mp4_box(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(fourcc);
        b.extend_from_slice(payload);
        b
    }

    /// An `stsd` payload after its full-box header: one entry of type `fourcc`.
    fn stsd(fourcc: &[u8; 4], entry: &[u8]) -> Codec {
        let mut data = 1u32.to_be_bytes().to_vec();
        data.extend(mp4_box(fourcc, entry));
        parse_stsd(&mut Reader::new(&data, 0, *b"stsd")).expect("parses")
    }

    /// A VisualSampleEntry of 640×360 with `children` after its fixed fields.
    fn visual(children: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 6 + 2 + 16];
        e.extend_from_slice(&640u16.to_be_bytes());
        e.extend_from_slice(&360u16.to_be_bytes());
        e.extend_from_slice(&[0u8; 50]);
        e.extend_from_slice(children);
        e
    }

    /// An AudioSampleEntry (version 0) of `channels` at `rate` with `children`.
    fn audio(channels: u16, rate: u32, children: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 6 + 2 + 2 + 2 + 4];
        e.extend_from_slice(&channels.to_be_bytes());
        e.extend_from_slice(&[0, 16, 0, 0, 0, 0]);
        e.extend_from_slice(&(rate << 16).to_be_bytes());
        e.extend_from_slice(children);
        e
    }

    /// An esds full box: ES descriptor → DecoderConfig (object type `oti`) → `dsi`.
    fn esds(oti: u8, dsi: &[u8]) -> Vec<u8> {
        let mut dc = vec![oti, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dc.extend_from_slice(&[5, dsi.len() as u8]);
        dc.extend_from_slice(dsi);
        let mut es = vec![0, 1, 0, 4, dc.len() as u8];
        es.extend(dc);
        let mut payload = vec![0, 0, 0, 0, 3, es.len() as u8];
        payload.extend(es);
        mp4_box(b"esds", &payload)
    }

    #[test]
    fn hevc_vp9_and_av1_entries_carry_their_configuration_and_size() {
        let hvcc = [
            1u8, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc,
        ];
        for fourcc in [b"hvc1", b"hev1"] {
            assert_eq!(
                stsd(fourcc, &visual(&mp4_box(b"hvcC", &hvcc))),
                Codec::OtherVideo {
                    format: VideoFormat::Hevc,
                    config: hvcc.to_vec(),
                    width: 640,
                    height: 360
                }
            );
        }
        let av1c = [0x81u8, 0x08, 0x0c, 0x00, 0x0a, 0x0b];
        assert_eq!(
            stsd(b"av01", &visual(&mp4_box(b"av1C", &av1c))),
            Codec::OtherVideo {
                format: VideoFormat::Av1,
                config: av1c.to_vec(),
                width: 640,
                height: 360
            }
        );
        // vpcC's colour facts are not handed to the decoder.
        let vpcc = [1u8, 0, 0, 0, 0, 10, 8, 0x10, 1, 1, 1, 0, 0, 0];
        assert_eq!(
            stsd(b"vp09", &visual(&mp4_box(b"vpcC", &vpcc))),
            Codec::OtherVideo {
                format: VideoFormat::Vp9,
                config: Vec::new(),
                width: 640,
                height: 360
            }
        );
        // No configuration box: nothing could decode it.
        assert_eq!(
            stsd(b"hvc1", &visual(&[])),
            Codec::Unsupported { fourcc: *b"hvc1" }
        );
    }

    #[test]
    fn mp4v_is_mpeg4_part2_only_for_object_type_0x20() {
        let vol = [0u8, 0, 1, 0xb0, 1, 0, 0, 1, 0xb5];
        assert_eq!(
            stsd(b"mp4v", &visual(&esds(0x20, &vol))),
            Codec::OtherVideo {
                format: VideoFormat::Mpeg4Part2,
                config: vol.to_vec(),
                width: 640,
                height: 360
            }
        );
        // JPEG in mp4v (0x6C) is named, not played.
        assert_eq!(
            stsd(b"mp4v", &visual(&esds(0x6c, &[]))),
            Codec::Unsupported { fourcc: *b"mp4v" }
        );
    }

    #[test]
    fn mp3_ac3_eac3_entries_take_rate_and_channels_from_the_entry() {
        for (fourcc, format) in [
            (b".mp3", AudioFormat::Mp3),
            (b"ac-3", AudioFormat::Ac3),
            (b"ec-3", AudioFormat::Eac3),
        ] {
            assert_eq!(
                stsd(fourcc, &audio(2, 44100, &[])),
                Codec::OtherAudio {
                    format,
                    config: Vec::new(),
                    sample_rate: 44100,
                    channels: 2
                },
                "{format:?}"
            );
        }
        // MP3 as ffmpeg writes it: mp4a with object type 0x6B (MPEG-1) or 0x69 (MPEG-2).
        for oti in [0x6b, 0x69] {
            assert_eq!(
                stsd(b"mp4a", &audio(1, 48000, &esds(oti, &[]))),
                Codec::OtherAudio {
                    format: AudioFormat::Mp3,
                    config: Vec::new(),
                    sample_rate: 48000,
                    channels: 1
                }
            );
        }
    }

    #[test]
    fn flac_takes_its_streaminfo_from_dfla() {
        let streaminfo: Vec<u8> = (0..34).collect();
        let mut dfla = vec![0, 0, 0, 0]; // version, flags
        dfla.extend_from_slice(&[0x80, 0, 0, 34]); // last block, STREAMINFO, 34 bytes
        dfla.extend_from_slice(&streaminfo);
        assert_eq!(
            stsd(b"fLaC", &audio(2, 48000, &mp4_box(b"dfLa", &dfla))),
            Codec::OtherAudio {
                format: AudioFormat::Flac,
                config: streaminfo,
                sample_rate: 48000,
                channels: 2
            }
        );
        // Without dfLa nothing could decode it.
        assert_eq!(
            stsd(b"fLaC", &audio(2, 48000, &[])),
            Codec::Unsupported { fourcc: *b"fLaC" }
        );
    }
}
