//! Sample descriptions (`stsd` entries): which codec a track carries and its setup data.
//!
//! Owns: avc1/avc3 + avcC, mp4a + esds (ES descriptor chain → AudioSpecificConfig),
//! Opus + dOps. Everything else becomes [`Codec::Unsupported`] so the server can name it.
//! Must not touch: sample tables.

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
    /// Anything else (hev1, vp09, mp4a carrying MP3, encrypted entries, a missing
    /// decoder configuration box, …). The server reports `fourcc`.
    Unsupported {
        /// The sample entry type, or for mp4a with a non-AAC object type, `mp4a`.
        fourcc: [u8; 4],
    },
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
        _ => Codec::Unsupported { fourcc: h.fourcc },
    })
}

fn parse_avc(e: &mut Reader<'_>, avc3: bool) -> Result<Codec, Mp4Error> {
    let fourcc = e.fourcc();
    // SampleEntry: reserved(6) data_reference_index(2); VisualSampleEntry:
    // pre_defined/reserved(16) width(2) height(2) then 50 bytes up to the child boxes.
    e.skip(6 + 2 + 16)?;
    let width = e.u16()?;
    let height = e.u16()?;
    e.skip(50)?;
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
}
