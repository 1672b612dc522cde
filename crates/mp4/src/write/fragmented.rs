//! Fragmented MP4 (CMAF) boxes: the init segment (`ftyp` + `moov` with `mvex`) and media
//! fragments (`moof` + `mdat`) of one H.264 track and one audio track (AAC or Opus)
//! (ISO/IEC 14496-12 and -15). HLS writes its segments with these, the recorder its file.
//!
//! Owns the byte layout only: what a track is (codec configuration) and what a fragment
//! holds (timed samples and their bytes) come from the caller, already in the tracks'
//! timescales. Sans-IO, no clock. Written by hand on a `Vec<u8>`: the dozen boxes fit
//! in this file, and a box crate (`mp4-atom`) would cost more compile time than they do.

/// Video track id in the init segment and fragments.
pub const VIDEO_TRACK: u32 = 1;
/// Audio track id.
pub const AUDIO_TRACK: u32 = 2;
/// Timescale of the video track: the 90 kHz of MPEG.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// The H.264 track of an init segment.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    /// The first sequence parameter set (no start code).
    pub sps: Vec<u8>,
    /// The first picture parameter set (no start code).
    pub pps: Vec<u8>,
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
}

/// The audio codec of an init segment's audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC (`mp4a` + `esds`) with this AudioSpecificConfig.
    Aac {
        /// The AudioSpecificConfig, as in a file's `esds`.
        asc: Vec<u8>,
    },
    /// Opus (`Opus` + `dOps`), with the decoder's pre-skip in 48 kHz samples.
    Opus {
        /// Samples to drop at the start (the encoder's lookahead).
        pre_skip: u16,
    },
}

/// The audio track of an init segment.
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// Its codec and the codec's configuration.
    pub codec: AudioCodec,
    /// Samples at the start that are the encoder's priming, not the media: written as an
    /// edit list (`elst` media time), which players apply. 0: none.
    pub priming: u32,
    /// Samples per second: the track's timescale.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
}

/// One sample of a fragment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Size of its bytes in the track's data.
    pub size: u32,
    /// A decoder can start here.
    pub sync: bool,
    /// Presentation time minus decode time, in the track's timescale.
    pub cts_offset: i32,
}

/// One track's run in a fragment: its first decode time, its samples, their bytes.
#[derive(Debug, Clone, Default)]
pub struct TrackRun {
    /// `VIDEO_TRACK` or `AUDIO_TRACK`.
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    /// The samples in decode order.
    pub samples: Vec<Sample>,
    /// The samples' bytes, back to back (H.264 length-prefixed, AAC raw).
    pub data: Vec<u8>,
}

/// Writes a box: its size is patched in once `body` has written its content.
pub(crate) fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: version and flags before the body.
pub(crate) fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    boxed(out, kind, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

pub(crate) fn u16b(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn u32b(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn u64b(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_be_bytes());
}

/// The unity matrix of `mvhd` and `tkhd`.
pub(crate) fn matrix(o: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
        u32b(o, v);
    }
}

/// The init segment of the tracks given (at least one).
pub fn init_segment(video: Option<&VideoConfig>, audio: Option<&AudioConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    boxed(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32b(o, 0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    boxed(&mut out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0); // creation time
            u32b(o, 0); // modification time
            u32b(o, 1000); // timescale
            u32b(o, 0); // duration: unknown (fragmented)
            u32b(o, 0x0001_0000); // rate 1.0
            u16b(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]);
            matrix(o);
            o.extend_from_slice(&[0; 24]); // pre_defined
            u32b(o, AUDIO_TRACK + 1); // next track id
        });
        if let Some(v) = video {
            trak(o, VIDEO_TRACK, VIDEO_TIMESCALE, Some(v), None);
        }
        if let Some(a) = audio {
            trak(o, AUDIO_TRACK, a.sample_rate, None, Some(a));
        }
        boxed(o, b"mvex", |o| {
            let ids = [video.map(|_| VIDEO_TRACK), audio.map(|_| AUDIO_TRACK)];
            for id in ids.into_iter().flatten() {
                full(o, b"trex", 0, 0, |o| {
                    u32b(o, id);
                    u32b(o, 1); // sample description index
                    u32b(o, 0); // default duration
                    u32b(o, 0); // default size
                    u32b(o, 0); // default flags
                });
            }
        });
    });
    out
}

fn trak(
    o: &mut Vec<u8>,
    id: u32,
    timescale: u32,
    video: Option<&VideoConfig>,
    audio: Option<&AudioConfig>,
) {
    boxed(o, b"trak", |o| {
        // Flags: enabled, in movie.
        full(o, b"tkhd", 0, 3, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, id);
            u32b(o, 0); // reserved
            u32b(o, 0); // duration
            o.extend_from_slice(&[0; 8]);
            u16b(o, 0); // layer
            u16b(o, 0); // alternate group
            u16b(o, if audio.is_some() { 0x0100 } else { 0 });
            u16b(o, 0);
            matrix(o);
            let (w, h) = video.map_or((0, 0), |v| (u32::from(v.width), u32::from(v.height)));
            u32b(o, w << 16);
            u32b(o, h << 16);
        });
        if let Some(a) = audio.filter(|a| a.priming > 0) {
            // The priming is skipped by a normal edit starting past it; its duration is
            // unknown while fragmented (0: to the end of the media).
            boxed(o, b"edts", |o| {
                full(o, b"elst", 0, 0, |o| {
                    u32b(o, 1);
                    u32b(o, 0);
                    u32b(o, a.priming);
                    u32b(o, 0x0001_0000);
                });
            });
        }
        boxed(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32b(o, 0);
                u32b(o, 0);
                u32b(o, timescale);
                u32b(o, 0);
                u16b(o, 0x55c4); // "und"
                u16b(o, 0);
            });
            let (handler, name): (&[u8; 4], &[u8]) = if video.is_some() {
                (b"vide", b"VideoHandler\0")
            } else {
                (b"soun", b"SoundHandler\0")
            };
            full(o, b"hdlr", 0, 0, |o| {
                u32b(o, 0);
                o.extend_from_slice(handler);
                o.extend_from_slice(&[0; 12]);
                o.extend_from_slice(name);
            });
            boxed(o, b"minf", |o| {
                if video.is_some() {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                } else {
                    full(o, b"smhd", 0, 0, |o| o.extend_from_slice(&[0; 4]));
                }
                boxed(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        u32b(o, 1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                boxed(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32b(o, 1);
                        if let Some(v) = video {
                            avc1(o, v);
                        }
                        if let Some(a) = audio {
                            match &a.codec {
                                AudioCodec::Aac { asc } => mp4a(o, a, asc),
                                AudioCodec::Opus { pre_skip } => opus(o, a, *pre_skip),
                            }
                        }
                    });
                    // Empty tables: the samples are in the fragments.
                    full(o, b"stts", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsc", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsz", 0, 0, |o| u64b(o, 0));
                    full(o, b"stco", 0, 0, |o| u32b(o, 0));
                });
            });
        });
    });
}

fn avc1(o: &mut Vec<u8>, v: &VideoConfig) {
    boxed(o, b"avc1", |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1); // data reference index
        o.extend_from_slice(&[0; 16]); // pre_defined, reserved
        u16b(o, v.width);
        u16b(o, v.height);
        u32b(o, 0x0048_0000); // 72 dpi
        u32b(o, 0x0048_0000);
        u32b(o, 0);
        u16b(o, 1); // frame count
        o.extend_from_slice(&[0; 32]); // compressor name
        u16b(o, 0x0018); // depth
        u16b(o, 0xffff); // pre_defined = -1
        boxed(o, b"avcC", |o| {
            let at = |i: usize| v.sps.get(i).copied().unwrap_or(0);
            o.extend_from_slice(&[1, at(1), at(2), at(3), 0xff, 0xe1]);
            u16b(o, u16::try_from(v.sps.len()).unwrap_or(u16::MAX));
            o.extend_from_slice(&v.sps);
            o.push(1);
            u16b(o, u16::try_from(v.pps.len()).unwrap_or(u16::MAX));
            o.extend_from_slice(&v.pps);
        });
    });
}

/// An MPEG-4 descriptor: tag, size (four 7-bit bytes: fits any ASC), body.
fn descriptor(o: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    let n = u32::try_from(inner.len()).unwrap_or(0);
    o.push(tag);
    o.extend_from_slice(&[
        0x80 | ((n >> 21) & 0x7f) as u8,
        0x80 | ((n >> 14) & 0x7f) as u8,
        0x80 | ((n >> 7) & 0x7f) as u8,
        (n & 0x7f) as u8,
    ]);
    o.extend_from_slice(&inner);
}

fn mp4a(o: &mut Vec<u8>, a: &AudioConfig, asc: &[u8]) {
    boxed(o, b"mp4a", |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1); // data reference index
        o.extend_from_slice(&[0; 8]);
        u16b(o, a.channels);
        u16b(o, 16); // sample size
        u32b(o, 0);
        // 16.16 fixed point; rates above 65535 Hz do not fit and are written as 0.
        u32b(
            o,
            u32::from(u16::try_from(a.sample_rate).unwrap_or(0)) << 16,
        );
        full(o, b"esds", 0, 0, |o| {
            descriptor(o, 3, |o| {
                u16b(o, 0); // ES id
                o.push(0); // flags
                descriptor(o, 4, |o| {
                    o.push(0x40); // MPEG-4 audio
                    o.push(0x15); // audio stream
                    o.extend_from_slice(&[0; 3]); // buffer size
                    u32b(o, 0); // max bit rate
                    u32b(o, 0); // average bit rate
                    descriptor(o, 5, |o| o.extend_from_slice(asc));
                });
                descriptor(o, 6, |o| o.push(2));
            });
        });
    });
}

/// The Opus sample entry (Opus in ISO-BMFF, opus-codec.org's mapping): 48 kHz, and a
/// `dOps` with channel mapping family 0 (mono or stereo).
fn opus(o: &mut Vec<u8>, a: &AudioConfig, pre_skip: u16) {
    boxed(o, b"Opus", |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1); // data reference index
        o.extend_from_slice(&[0; 8]);
        u16b(o, a.channels);
        u16b(o, 16);
        u32b(o, 0);
        u32b(o, 48_000 << 16);
        boxed(o, b"dOps", |o| {
            o.push(0); // version
            o.push(u8::try_from(a.channels).unwrap_or(2));
            u16b(o, pre_skip);
            u32b(o, a.sample_rate);
            u16b(o, 0); // output gain
            o.push(0); // channel mapping family
        });
    });
}

/// Sample flags: a sync sample depends on no other; any other is a non-sync one.
fn sample_flags(sync: bool) -> u32 {
    if sync {
        0x0200_0000
    } else {
        0x0101_0000
    }
}

/// One fragment (`moof` + `mdat`) holding `runs` (tracks with no sample are left out).
/// `sequence` numbers the fragments of a stream from 1.
pub fn fragment(sequence: u32, runs: &[TrackRun]) -> Vec<u8> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let data_len: usize = runs.iter().map(|r| r.data.len()).sum();
    let mut out = Vec::with_capacity(data_len + 256);
    // The data offsets point into the mdat, so they are patched once the moof's size is known.
    let mut offset_at = Vec::with_capacity(runs.len());
    boxed(&mut out, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32b(o, sequence));
        for run in &runs {
            boxed(o, b"traf", |o| {
                // default-base-is-moof: offsets count from this moof's first byte.
                full(o, b"tfhd", 0, 0x02_0000, |o| u32b(o, run.track_id));
                full(o, b"tfdt", 1, 0, |o| u64b(o, run.base_decode_time));
                // data offset, then per sample: duration, size, flags, composition offset.
                full(
                    o,
                    b"trun",
                    1,
                    0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800,
                    |o| {
                        u32b(o, u32::try_from(run.samples.len()).unwrap_or(u32::MAX));
                        offset_at.push(o.len());
                        u32b(o, 0);
                        for s in &run.samples {
                            u32b(o, s.duration);
                            u32b(o, s.size);
                            u32b(o, sample_flags(s.sync));
                            o.extend_from_slice(&s.cts_offset.to_be_bytes());
                        }
                    },
                );
            });
        }
    });
    let mut data_start = out.len() + 8;
    for (run, at) in runs.iter().zip(offset_at) {
        let offset = u32::try_from(data_start).unwrap_or(u32::MAX);
        out[at..at + 4].copy_from_slice(&offset.to_be_bytes());
        data_start += run.data.len();
    }
    boxed(&mut out, b"mdat", |o| {
        for run in &runs {
            o.extend_from_slice(&run.data);
        }
    });
    out
}
