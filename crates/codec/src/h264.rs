//! H.264 bitstream handling: from the samples an MP4 file stores to what a WebRTC
//! packetizer wants.
//!
//! This module owns:
//! - the `avcC` decoder configuration record ([`AvcConfig`]): NAL length size, SPS/PPS,
//!   and the SDP `profile-level-id`;
//! - the sequence parameter set ([`parse_sps`]): picture size after cropping, profile,
//!   level and the B-frame hints (`max_num_reorder_frames`, `pic_order_cnt_type`);
//! - the conversion of one MP4 sample (length-prefixed NAL units) to Annex-B
//!   ([`sample_to_annex_b`]), putting SPS and PPS before every keyframe, because a
//!   browser that joins mid-stream or loses a packet can only decode from there;
//! - small helpers to walk the NAL units of a sample ([`LengthPrefixedNalUnits`],
//!   [`AnnexBNalUnits`]) and to classify them ([`nal_type()`]).
//!
//! It must not touch: files, sockets, clocks or RTP. It takes bytes and returns bytes;
//! RTP packetization is str0m's, the sample table is the mp4 crate's.
//!
//! Malformed input never panics here: every length is checked before it is used, and the
//! errors say in plain words what is wrong with the file.

use bytes::Bytes;
use thiserror::Error;

/// NAL unit types (ITU-T H.264 table 7-1) that this crate acts on.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const NON_IDR_SLICE: u8 = 1;
    /// Coded slice of an IDR picture: a keyframe.
    pub const IDR_SLICE: u8 = 5;
    /// Supplemental enhancement information (kept: it may carry captions or HDR data).
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter (dropped: it means nothing once the sample is framed).
    pub const AUD: u8 = 9;
    /// Filler data (dropped: it only pads bitrate).
    pub const FILLER: u8 = 12;
}

/// What is wrong with H.264 data, in the words a user may read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum H264Error {
    /// The `avcC` record cannot be used.
    #[error("H.264 decoder configuration (avcC) is invalid: {0}")]
    InvalidConfig(String),
    /// A sample's NAL length runs past the end of the sample.
    #[error("H.264 sample is truncated: NAL length {nal_len} exceeds the {left} bytes left")]
    TruncatedSample {
        /// The NAL length read from the prefix.
        nal_len: usize,
        /// The bytes of the sample after the prefix.
        left: usize,
    },
    /// A sample ends inside a NAL length prefix.
    #[error("H.264 sample is truncated: {left} bytes left, too few for a {size}-byte NAL length")]
    TruncatedLength {
        /// Bytes left in the sample.
        left: usize,
        /// The NAL length size from `avcC`.
        size: u8,
    },
    /// The sequence parameter set cannot be parsed.
    #[error("H.264 sequence parameter set (SPS) is invalid: {0}")]
    InvalidSps(String),
}

/// The `avcC` record of an MP4 `avc1`/`avc3` sample entry (ISO/IEC 14496-15 5.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// Size in bytes of each NAL unit's length prefix in a sample: 1, 2 or 4.
    pub nal_length_size: u8,
    /// Sequence parameter sets, without start codes or length prefixes.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, without start codes or length prefixes.
    pub pps: Vec<Bytes>,
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility` (the constraint flags byte).
    pub profile_compat: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
}

impl AvcConfig {
    /// Parses an `avcC` box payload (the bytes after the box header).
    ///
    /// An `avc3` entry may carry no parameter sets at all (they travel in-band); that is
    /// accepted, and [`sample_to_annex_b`] then relies on the samples to carry them.
    pub fn parse(avcc: &[u8]) -> Result<Self, H264Error> {
        let bad = |why: &str| H264Error::InvalidConfig(why.to_string());
        if avcc.len() < 7 {
            return Err(bad(&format!(
                "it is {} bytes long, the minimum is 7",
                avcc.len()
            )));
        }
        if avcc[0] != 1 {
            return Err(bad(&format!(
                "configuration version is {}, only version 1 exists",
                avcc[0]
            )));
        }
        let profile_idc = avcc[1];
        let profile_compat = avcc[2];
        let level_idc = avcc[3];
        let nal_length_size = (avcc[4] & 0b11) + 1;
        if nal_length_size == 3 {
            return Err(bad(
                "NAL length size is 3 bytes; only 1, 2 or 4 are allowed",
            ));
        }
        let mut pos = 6;
        let sps = read_parameter_sets(avcc, &mut pos, usize::from(avcc[5] & 0x1f), "SPS")?;
        let num_pps = usize::from(
            *avcc
                .get(pos)
                .ok_or_else(|| bad("it ends before the PPS count"))?,
        );
        pos += 1;
        let pps = read_parameter_sets(avcc, &mut pos, num_pps, "PPS")?;
        // Anything after the PPS (the High-profile chroma/bit-depth extension) is not
        // needed: the SPS carries the same facts.
        Ok(AvcConfig {
            nal_length_size,
            sps,
            pps,
            profile_idc,
            profile_compat,
            level_idc,
        })
    }

    /// The SDP `profile-level-id` (RFC 6184), six lower-case hex digits, e.g. `"64001f"`.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_compat, self.level_idc
        )
    }

    /// Parses the first SPS, if the record has one.
    pub fn first_sps_info(&self) -> Option<Result<SpsInfo, H264Error>> {
        self.sps.first().map(|sps| parse_sps(sps))
    }
}

/// Reads `count` parameter sets (16-bit length, then bytes) from `avcc` at `*pos`.
fn read_parameter_sets(
    avcc: &[u8],
    pos: &mut usize,
    count: usize,
    what: &str,
) -> Result<Vec<Bytes>, H264Error> {
    let bad = |why: String| H264Error::InvalidConfig(why);
    let mut sets = Vec::with_capacity(count);
    for i in 1..=count {
        let len_bytes = avcc
            .get(*pos..*pos + 2)
            .ok_or_else(|| bad(format!("it ends before the length of {what} {i}")))?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        *pos += 2;
        let data = avcc.get(*pos..*pos + len).ok_or_else(|| {
            bad(format!(
                "{what} {i} is {len} bytes long but only {} bytes are left",
                avcc.len() - *pos
            ))
        })?;
        *pos += len;
        if !data.is_empty() {
            sets.push(Bytes::copy_from_slice(data));
        }
    }
    Ok(sets)
}

/// The NAL unit type (low five bits of the header byte), `None` for an empty NAL.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Iterates the NAL units of an MP4 sample (each preceded by a big-endian length of
/// `nal_length_size` bytes). Yields an error once and then stops if the sample is
/// truncated. Zero-length NAL units are skipped.
#[derive(Debug, Clone)]
pub struct LengthPrefixedNalUnits<'a> {
    data: &'a [u8],
    nal_length_size: u8,
    failed: bool,
}

impl<'a> LengthPrefixedNalUnits<'a> {
    /// Walks `sample` with the given length-prefix size (from [`AvcConfig::nal_length_size`]).
    pub fn new(sample: &'a [u8], nal_length_size: u8) -> Self {
        LengthPrefixedNalUnits {
            data: sample,
            nal_length_size,
            failed: false,
        }
    }
}

impl<'a> Iterator for LengthPrefixedNalUnits<'a> {
    type Item = Result<&'a [u8], H264Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed || self.data.is_empty() {
                return None;
            }
            let size = usize::from(self.nal_length_size);
            if !matches!(size, 1 | 2 | 4) {
                self.failed = true;
                return Some(Err(H264Error::InvalidConfig(format!(
                    "NAL length size is {size} bytes; only 1, 2 or 4 are allowed"
                ))));
            }
            if self.data.len() < size {
                self.failed = true;
                return Some(Err(H264Error::TruncatedLength {
                    left: self.data.len(),
                    size: self.nal_length_size,
                }));
            }
            let (prefix, rest) = self.data.split_at(size);
            let nal_len = prefix
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if nal_len > rest.len() {
                self.failed = true;
                return Some(Err(H264Error::TruncatedSample {
                    nal_len,
                    left: rest.len(),
                }));
            }
            let (nal, rest) = rest.split_at(nal_len);
            self.data = rest;
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// Iterates the NAL units of an Annex-B byte stream (3- or 4-byte start codes). Bytes
/// before the first start code are ignored; trailing zero bytes of a NAL are trimmed
/// (they are `trailing_zero_8bits` of the stream, not part of the NAL).
#[derive(Debug, Clone)]
pub struct AnnexBNalUnits<'a> {
    data: &'a [u8],
}

impl<'a> AnnexBNalUnits<'a> {
    /// Walks an Annex-B buffer.
    pub fn new(data: &'a [u8]) -> Self {
        let start = find_start_code(data).map_or(data.len(), |(_, end)| end);
        AnnexBNalUnits {
            data: &data[start..],
        }
    }
}

/// Finds the first `00 00 01`; returns (index of its first byte, index after it).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

impl<'a> Iterator for AnnexBNalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        while !self.data.is_empty() {
            let (nal, rest) = match find_start_code(self.data) {
                Some((begin, end)) => (&self.data[..begin], &self.data[end..]),
                None => (self.data, &self.data[self.data.len()..]),
            };
            self.data = rest;
            let trimmed_len = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if trimmed_len > 0 {
                return Some(&nal[..trimmed_len]);
            }
        }
        None
    }
}

/// True if the MP4 sample holds an IDR slice (a keyframe a decoder can start from).
pub fn sample_has_idr(cfg: &AvcConfig, sample: &[u8]) -> Result<bool, H264Error> {
    for nal in LengthPrefixedNalUnits::new(sample, cfg.nal_length_size) {
        if nal_type(nal?) == Some(nal_type::IDR_SLICE) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The NAL unit types of an MP4 sample, in order (useful in logs and tests).
pub fn sample_nal_types(cfg: &AvcConfig, sample: &[u8]) -> Result<Vec<u8>, H264Error> {
    LengthPrefixedNalUnits::new(sample, cfg.nal_length_size)
        .map(|nal| nal.map(|n| n[0] & 0x1f))
        .collect()
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Turns one MP4 sample into Annex-B, appending to `out`.
///
/// If `keyframe`, the SPS and PPS from `cfg` go first, unless the sample already carries
/// both (an `avc3` entry or an encoder that repeats them in-band). Access unit
/// delimiters (type 9) and filler data (type 12) are dropped; SEI is kept. Every NAL
/// gets a 4-byte start code.
///
/// The whole sample is checked before anything is written, so on error `out` is left as
/// it was.
pub fn sample_to_annex_b(
    cfg: &AvcConfig,
    sample: &[u8],
    keyframe: bool,
    out: &mut Vec<u8>,
) -> Result<(), H264Error> {
    let mut has_sps = false;
    let mut has_pps = false;
    let mut kept_len = 0usize;
    for nal in LengthPrefixedNalUnits::new(sample, cfg.nal_length_size) {
        let nal = nal?;
        match nal[0] & 0x1f {
            nal_type::SPS => has_sps = true,
            nal_type::PPS => has_pps = true,
            _ => {}
        }
        kept_len += START_CODE.len() + nal.len();
    }
    let insert_params = keyframe && !(has_sps && has_pps);
    if insert_params {
        kept_len += cfg
            .sps
            .iter()
            .chain(&cfg.pps)
            .map(|p| START_CODE.len() + p.len())
            .sum::<usize>();
    }
    out.reserve(kept_len);
    if insert_params {
        for ps in cfg.sps.iter().chain(&cfg.pps) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(ps);
        }
    }
    for nal in LengthPrefixedNalUnits::new(sample, cfg.nal_length_size).flatten() {
        // flatten() is lossless here: the first pass returned on any error.
        if matches!(nal[0] & 0x1f, nal_type::AUD | nal_type::FILLER) {
            continue;
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Ok(())
}

/// What the sequence parameter set says that a server needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpsInfo {
    /// Picture width in pixels, after cropping.
    pub width: u32,
    /// Picture height in pixels, after cropping.
    pub height: u32,
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, …).
    pub profile_idc: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
    /// `max_num_reorder_frames` from the VUI `bitstream_restriction`, when present. Zero
    /// means no B-frame reordering; `None` means the stream does not say.
    pub max_num_reorder_frames: Option<u32>,
    /// `pic_order_cnt_type`: 2 means output order equals decode order (no B-frames).
    pub pic_order_cnt_type: u8,
    /// False for interlaced (field or MBAFF) coding.
    pub frame_mbs_only: bool,
}

impl SpsInfo {
    /// Whether frames may be output in another order than decoded (B-frames), as far as
    /// the SPS tells: the explicit reorder count when present, else "no" only for
    /// `pic_order_cnt_type` 2 and the Baseline profile, which cannot have B-frames.
    pub fn may_reorder(&self) -> bool {
        match self.max_num_reorder_frames {
            Some(n) => n > 0,
            None => self.pic_order_cnt_type != 2 && self.profile_idc != 66,
        }
    }
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`), giving the RBSP.
fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP with exp-Golomb codes.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The reader ran off the end; the caller turns it into a plain error.
#[derive(Debug)]
struct OutOfBits;

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, OutOfBits> {
        let byte = self.data.get(self.pos / 8).ok_or(OutOfBits)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn flag(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.bit()? == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, OutOfBits> {
        debug_assert!(n <= 32);
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// ue(v). Codes longer than 32 bits cannot occur in a valid SPS; they are reported
    /// as running out of bits' worth of sense, i.e. an error.
    fn ue(&mut self) -> Result<u32, OutOfBits> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(OutOfBits);
            }
        }
        let rest = self.bits(zeros)?;
        // (1 << 31) - 1 + rest fits in u32 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i32, OutOfBits> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), OutOfBits> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn skip_hrd_parameters(r: &mut BitReader<'_>) -> Result<(), OutOfBits> {
    let cpb_cnt = r.ue()? + 1;
    if cpb_cnt > 32 {
        return Err(OutOfBits);
    }
    r.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?;
        r.ue()?;
        r.flag()?;
    }
    r.bits(20)?; // four 5-bit delay/length fields
    Ok(())
}

/// Reads the VUI up to `max_num_reorder_frames`. Returns `None` when the VUI has no
/// `bitstream_restriction`.
fn parse_vui_reorder(r: &mut BitReader<'_>) -> Result<Option<u32>, OutOfBits> {
    if r.flag()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.bits(32)?; // sar_width, sar_height
        }
    }
    if r.flag()? {
        r.flag()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        // video_signal_type_present_flag
        r.bits(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.bits(24)?; // colour primaries, transfer, matrix
        }
    }
    if r.flag()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?;
    }
    if r.flag()? {
        // timing_info_present_flag
        r.bits(32)?;
        r.bits(32)?;
        r.flag()?;
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        skip_hrd_parameters(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        skip_hrd_parameters(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.flag()?; // low_delay_hrd_flag
    }
    r.flag()?; // pic_struct_present_flag
    if !r.flag()? {
        return Ok(None);
    }
    r.flag()?; // motion_vectors_over_pic_boundaries_flag
    r.ue()?; // max_bytes_per_pic_denom
    r.ue()?; // max_bits_per_mb_denom
    r.ue()?; // log2_max_mv_length_horizontal
    r.ue()?; // log2_max_mv_length_vertical
    let reorder = r.ue()?;
    r.ue()?; // max_dec_frame_buffering
    Ok(Some(reorder))
}

/// Parses a sequence parameter set NAL unit (with its one-byte NAL header, without a
/// start code), as found in `avcC` or in-band.
///
/// Handles emulation-prevention bytes, the High-profile fields (chroma format, bit depth,
/// scaling lists) and the VUI. A VUI cut short (some encoders write one) is tolerated:
/// the size is still returned, with `max_num_reorder_frames: None`.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let bad = |why: &str| H264Error::InvalidSps(why.to_string());
    match nal_type(nal) {
        None => return Err(bad("it is empty")),
        Some(nal_type::SPS) => {}
        Some(t) => return Err(bad(&format!("NAL unit type is {t}, not 7"))),
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let truncated = |_| bad("it ends too early");

    let profile_idc = r.bits(8).map_err(truncated)? as u8;
    r.bits(8).map_err(truncated)?; // constraint flags
    let level_idc = r.bits(8).map_err(truncated)? as u8;
    let sps_id = r.ue().map_err(truncated)?;
    if sps_id > 31 {
        return Err(bad(&format!(
            "seq_parameter_set_id is {sps_id}, at most 31"
        )));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue().map_err(truncated)?;
        if chroma_format_idc > 3 {
            return Err(bad(&format!(
                "chroma_format_idc is {chroma_format_idc}, at most 3"
            )));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag().map_err(truncated)?;
        }
        r.ue().map_err(truncated)?; // bit_depth_luma_minus8
        r.ue().map_err(truncated)?; // bit_depth_chroma_minus8
        r.flag().map_err(truncated)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag().map_err(truncated)? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag().map_err(truncated)? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 }).map_err(truncated)?;
                }
            }
        }
    }
    r.ue().map_err(truncated)?; // log2_max_frame_num_minus4
    let pic_order_cnt_type = r.ue().map_err(truncated)?;
    match pic_order_cnt_type {
        0 => {
            r.ue().map_err(truncated)?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.flag().map_err(truncated)?;
            r.se().map_err(truncated)?;
            r.se().map_err(truncated)?;
            let cycle = r.ue().map_err(truncated)?;
            if cycle > 255 {
                return Err(bad(&format!(
                    "num_ref_frames_in_pic_order_cnt_cycle is {cycle}, at most 255"
                )));
            }
            for _ in 0..cycle {
                r.se().map_err(truncated)?;
            }
        }
        2 => {}
        other => {
            return Err(bad(&format!("pic_order_cnt_type is {other}, at most 2")));
        }
    }
    r.ue().map_err(truncated)?; // max_num_ref_frames
    r.flag().map_err(truncated)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue().map_err(truncated)?) + 1;
    let height_map_units = u64::from(r.ue().map_err(truncated)?) + 1;
    let frame_mbs_only = r.flag().map_err(truncated)?;
    if !frame_mbs_only {
        r.flag().map_err(truncated)?; // mb_adaptive_frame_field_flag
    }
    r.flag().map_err(truncated)?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.flag().map_err(truncated)? {
        crop_l = r.ue().map_err(truncated)?.into();
        crop_r = r.ue().map_err(truncated)?.into();
        crop_t = r.ue().map_err(truncated)?.into();
        crop_b = r.ue().map_err(truncated)?.into();
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width_c, sub_height_c) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1), // 4:4:4 and monochrome/separate planes
    };
    let frame_height_factor = if frame_mbs_only { 1 } else { 2 };
    let full_width = width_mbs * 16;
    let full_height = height_map_units * 16 * frame_height_factor;
    let crop_x = sub_width_c * (crop_l + crop_r);
    let crop_y = sub_height_c * frame_height_factor * (crop_t + crop_b);
    if crop_x >= full_width || crop_y >= full_height {
        return Err(bad("the cropping removes the whole picture"));
    }
    let width = u32::try_from(full_width - crop_x).map_err(|_| bad("the width is too large"))?;
    let height = u32::try_from(full_height - crop_y).map_err(|_| bad("the height is too large"))?;

    let vui_present = r.flag().map_err(truncated)?;
    // A VUI cut short (seen in the wild) still leaves a usable size.
    let max_num_reorder_frames = if vui_present {
        parse_vui_reorder(&mut r).ok().flatten()
    } else {
        None
    };
    Ok(SpsInfo {
        width,
        height,
        profile_idc,
        level_idc,
        max_num_reorder_frames,
        // Checked above to be 0..=2.
        pic_order_cnt_type: pic_order_cnt_type as u8,
        frame_mbs_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex is valid"))
            .collect()
    }

    /// x264, `-profile:v high -bf 2`, 320x240 (avcC as written by ffmpeg's mp4 muxer,
    /// including the High-profile extension bytes at the end).
    const AVCC_HIGH_320X240: &str = "0164000dffe100196764000dacd94141fb011000000300100000030320f142996001000668ebe3cb22c0fdf8f800";
    /// x264, `-profile:v baseline`, 176x144.
    const AVCC_BASELINE_176X144: &str =
        "0142c00bffe100166742c00bd902c4ec0440000003004000000c83c50a9201000568cb83cb20";
    /// x264, `-profile:v main -bf 1`, 1920x1080 (coded as 1088, cropped by 8 lines).
    const AVCC_MAIN_1080P: &str =
        "014d4028ffe1001a674d4028f200f0044fcb80880000030008000003019078c1889001000568ebe3cb20";

    #[test]
    fn high_profile_avcc_and_sps_parse() {
        let cfg = AvcConfig::parse(&hex(AVCC_HIGH_320X240)).expect("valid avcC");
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(cfg.sps.len(), 1);
        assert_eq!(cfg.pps.len(), 1);
        assert_eq!(cfg.profile_level_id(), "64000d");
        let sps = cfg.first_sps_info().expect("has SPS").expect("valid SPS");
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.level_idc, 13);
        assert_eq!(sps.max_num_reorder_frames, Some(2));
        assert!(sps.frame_mbs_only);
        assert!(sps.may_reorder());
    }

    #[test]
    fn baseline_sps_has_no_reordering() {
        let cfg = AvcConfig::parse(&hex(AVCC_BASELINE_176X144)).expect("valid avcC");
        assert_eq!(cfg.profile_level_id(), "42c00b");
        let sps = parse_sps(&cfg.sps[0]).expect("valid SPS");
        assert_eq!((sps.width, sps.height), (176, 144));
        assert_eq!(sps.profile_idc, 66);
        assert_eq!(sps.max_num_reorder_frames, Some(0));
        assert!(!sps.may_reorder());
    }

    #[test]
    fn main_1080p_sps_applies_cropping() {
        let cfg = AvcConfig::parse(&hex(AVCC_MAIN_1080P)).expect("valid avcC");
        let sps = parse_sps(&cfg.sps[0]).expect("valid SPS");
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_idc, 77);
        assert_eq!(sps.level_idc, 40);
        assert_eq!(sps.max_num_reorder_frames, Some(1));
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn exp_golomb_codes_decode() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0,1,2,3 then se(4) = -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.se().unwrap(), -2);
    }

    fn length_prefixed(nals: &[&[u8]], size: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            let len = nal.len() as u32;
            out.extend_from_slice(&len.to_be_bytes()[4 - usize::from(size)..]);
            out.extend_from_slice(nal);
        }
        out
    }

    fn cfg_with(size: u8) -> AvcConfig {
        AvcConfig {
            nal_length_size: size,
            sps: vec![Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![Bytes::from_static(&[0x68, 3])],
            profile_idc: 66,
            profile_compat: 0xc0,
            level_idc: 31,
        }
    }

    #[test]
    fn keyframe_gets_sps_pps_and_loses_aud_and_filler() {
        let aud: &[u8] = &[0x09, 0xf0];
        let sei: &[u8] = &[0x06, 5, 1, 0x80];
        let idr: &[u8] = &[0x65, 0x88, 0, 0, 3, 1];
        let filler: &[u8] = &[0x0c, 0xff, 0xff];
        for size in [1u8, 2, 4] {
            let cfg = cfg_with(size);
            let sample = length_prefixed(&[aud, sei, idr, filler], size);
            assert!(sample_has_idr(&cfg, &sample).unwrap());
            assert_eq!(sample_nal_types(&cfg, &sample).unwrap(), vec![9, 6, 5, 12]);
            let mut out = vec![0xaa];
            sample_to_annex_b(&cfg, &sample, true, &mut out).unwrap();
            let nals: Vec<&[u8]> = AnnexBNalUnits::new(&out[1..]).collect();
            assert_eq!(nals, vec![&cfg.sps[0][..], &cfg.pps[0][..], sei, idr]);
            assert_eq!(out[0], 0xaa, "appends, never overwrites");
            assert_eq!(&out[1..5], &START_CODE);
        }
    }

    #[test]
    fn parameter_sets_go_before_keyframes_only() {
        let cfg = cfg_with(4);
        let slice: &[u8] = &[0x41, 0x9a, 0x02];
        let sample = length_prefixed(&[slice], 4);
        assert!(!sample_has_idr(&cfg, &sample).unwrap());
        let mut out = Vec::new();
        sample_to_annex_b(&cfg, &sample, false, &mut out).unwrap();
        assert_eq!(out, [&START_CODE[..], slice].concat());
    }

    #[test]
    fn in_band_parameter_sets_are_not_doubled() {
        let cfg = cfg_with(4);
        let sps: &[u8] = &[0x67, 9, 9];
        let pps: &[u8] = &[0x68, 9];
        let idr: &[u8] = &[0x65, 1];
        let sample = length_prefixed(&[sps, pps, idr], 4);
        let mut out = Vec::new();
        sample_to_annex_b(&cfg, &sample, true, &mut out).unwrap();
        let nals: Vec<&[u8]> = AnnexBNalUnits::new(&out).collect();
        assert_eq!(nals, vec![sps, pps, idr]);
    }

    #[test]
    fn round_trip_annex_b_back_to_samples() {
        let cfg = cfg_with(2);
        let nals: Vec<Vec<u8>> = vec![vec![0x65, 0, 0, 3, 0, 7], vec![0x41, 1, 2, 3]];
        let refs: Vec<&[u8]> = nals.iter().map(|n| &n[..]).collect();
        let sample = length_prefixed(&refs, 2);
        let mut out = Vec::new();
        sample_to_annex_b(&cfg, &sample, false, &mut out).unwrap();
        let back: Vec<&[u8]> = AnnexBNalUnits::new(&out).collect();
        assert_eq!(back, refs);
        assert_eq!(length_prefixed(&back, 2), sample);
    }

    #[test]
    fn truncated_sample_is_an_error_in_plain_words() {
        let cfg = cfg_with(4);
        let mut sample = length_prefixed(&[&[0x65, 1, 2]], 4);
        sample[3] = 200;
        let mut out = vec![1, 2, 3];
        let err = sample_to_annex_b(&cfg, &sample, true, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "H.264 sample is truncated: NAL length 200 exceeds the 3 bytes left"
        );
        assert_eq!(out, vec![1, 2, 3], "nothing written on error");
        let err = sample_to_annex_b(&cfg, &[0, 0], false, &mut out).unwrap_err();
        assert!(matches!(
            err,
            H264Error::TruncatedLength { left: 2, size: 4 }
        ));
    }

    #[test]
    fn bad_avcc_is_rejected() {
        assert!(AvcConfig::parse(&[]).is_err());
        assert!(AvcConfig::parse(&[0, 0x64, 0, 0x1f, 0xff, 0xe1, 0]).is_err());
        // NAL length size 3.
        assert!(AvcConfig::parse(&[1, 0x64, 0, 0x1f, 0xfe, 0xe0, 0]).is_err());
        // SPS length past the end.
        let err = AvcConfig::parse(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 9, 0x67]).unwrap_err();
        assert!(err.to_string().contains("SPS 1 is 9 bytes long"), "{err}");
        // avc3 style: no parameter sets is fine.
        let cfg = AvcConfig::parse(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]).unwrap();
        assert!(cfg.sps.is_empty() && cfg.pps.is_empty());
    }

    /// xorshift64*: a tiny deterministic PRNG so the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = (self.next() % (max_len as u64 + 1)) as usize;
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let real: Vec<Vec<u8>> = [AVCC_HIGH_320X240, AVCC_BASELINE_176X144, AVCC_MAIN_1080P]
            .iter()
            .map(|h| hex(h))
            .collect();
        let mut out = Vec::new();
        for i in 0..20_000 {
            // Half pure noise, half real data with a few bytes flipped or cut.
            let data = if i % 2 == 0 {
                rng.bytes(64)
            } else {
                let mut d = real[i % real.len()].clone();
                for _ in 0..(rng.next() % 4) {
                    let at = (rng.next() as usize) % d.len();
                    d[at] = rng.next() as u8;
                }
                d.truncate((rng.next() as usize) % (d.len() + 1));
                d
            };
            if let Ok(cfg) = AvcConfig::parse(&data) {
                for sps in &cfg.sps {
                    let _ = parse_sps(sps);
                }
            }
            let _ = parse_sps(&data);
            let mut sps_like = data.clone();
            if let Some(b) = sps_like.get_mut(0) {
                *b = 0x67;
            }
            let _ = parse_sps(&sps_like);
            for size in [1u8, 2, 3, 4] {
                let cfg = cfg_with(size);
                out.clear();
                let _ = sample_to_annex_b(&cfg, &data, i % 3 == 0, &mut out);
                let _ = sample_has_idr(&cfg, &data);
            }
            let _ = AnnexBNalUnits::new(&data).count();
        }
    }
}
