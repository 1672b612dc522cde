//! A recording's frames to fragmented-MP4 bytes: sans-IO, frames in, the init segment
//! and fragments out, times from the frames themselves.
//!
//! Owns: where the recording starts (its first keyframe; audio presented before it is
//! dropped), where fragments are cut (at every keyframe, and before any frame that would
//! take a fragment past [`MAX_FRAGMENT_US`], so none is longer than a second with the
//! writer's batching delay), and what a
//! sample is (H.264 from Annex-B to length-prefixed NAL units, the first keyframe's
//! SPS/PPS in the init segment, later different ones kept in their pictures; Opus as it
//! came or re-encoded to AAC). The init segment goes out with the first fragment: by
//! then the audio's channel count is known.
//! Must not: touch the file (`super::writer`).
//!
//! Times: the recording's time 0 is its first keyframe. Video is in 90 kHz from the
//! pictures' decode times; audio in 48 kHz from the packets' presentation times (never
//! their send times, which lead by the pacer's audio lead). AAC units are counted in
//! samples from the first packet (`codec::opus_to_aac`), the encoder's priming in the
//! init segment's edit list. `MediaKind::Aac` frames (a translation's file AAC, present
//! only with HLS on) are ignored: a published stream has none, so every recording takes
//! one path, Opus in.

use codec::h264::{self, AnnexBNalUnits};
use codec::opus_to_aac::{OpusToAac, AAC_FRAME};
use mp4::write::{
    fragment, init_segment, AudioCodec, AudioConfig, Sample, TrackRun, VideoConfig, AUDIO_TRACK,
    VIDEO_TIMESCALE, VIDEO_TRACK,
};

use crate::config::RecordAudioCodec;
use crate::media::{Frame, MediaKind};

/// A fragment lasts at most this long. What a `kill -9` can cost is this plus the
/// writer's batching delay (`super::writer::BATCH`, 50 ms): under a second.
pub const MAX_FRAGMENT_US: i64 = 950_000;
/// Audio kept before the first keyframe, for the packets presented after it that were
/// sent before it (audio leaves ahead of its time).
const PRE_START_US: i64 = 300_000;
const AUDIO_RATE: u32 = 48_000;
const OPUS_PACKET: u32 = 960;

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

struct VideoSample {
    dts_us: i64,
    pts_us: i64,
    sync: bool,
    data: Vec<u8>,
}

/// One audio sample on the track's 48 kHz timeline (from the recording's start).
struct AudioSample {
    at: u64,
    data: Vec<u8>,
}

/// Frames to fragments; see the module docs.
pub struct Fragmenter {
    codec: RecordAudioCodec,
    has_video: bool,
    /// The recording's time 0 on the stream's timeline, once started.
    start_us: Option<i64>,
    video_config: Option<VideoConfig>,
    init_done: bool,
    /// The init segment has an audio track (audio before the first cut decides).
    init_audio: bool,
    pre_start_audio: Vec<Frame>,
    fragment_start_us: i64,
    video: Vec<VideoSample>,
    audio: Vec<AudioSample>,
    /// Opus packets waiting for their fragment (Opus mode), by presentation time.
    aac: Option<OpusToAac>,
    /// The AAC track's first sample on the 48 kHz timeline (the first packet's time).
    aac_base: u64,
    audio_channels: Option<u16>,
    last_interval_us: i64,
    last_video_dts_us: Option<i64>,
    sequence: u32,
    /// Audio dropped because it could not be transcoded (logged by the writer).
    pub audio_errors: u64,
}

fn ticks(us: i64, rate: u32) -> u64 {
    let us = u128::try_from(us.max(0)).unwrap_or(0);
    u64::try_from((us * u128::from(rate) + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

impl Fragmenter {
    /// A recording of a stream with video or not, its audio written as `codec`.
    pub fn new(has_video: bool, codec: RecordAudioCodec) -> Self {
        Fragmenter {
            codec,
            has_video,
            start_us: None,
            video_config: None,
            init_done: false,
            init_audio: false,
            pre_start_audio: Vec::new(),
            fragment_start_us: 0,
            video: Vec::new(),
            audio: Vec::new(),
            aac: None,
            aac_base: 0,
            audio_channels: None,
            last_interval_us: 33_333,
            last_video_dts_us: None,
            sequence: 0,
            audio_errors: 0,
        }
    }

    /// Recorded time so far, in µs (from the first keyframe to the newest frame).
    pub fn recorded_us(&self) -> i64 {
        match (self.start_us, self.last_video_dts_us) {
            (Some(s), Some(l)) => l - s,
            _ => 0,
        }
    }

    /// True while no fragment has been made: nothing worth a file yet (no keyframe
    /// arrived, or, audio only, no audio).
    pub fn is_empty(&self) -> bool {
        self.sequence == 0
    }

    /// One frame, in the order the stream sends them; bytes to append go to `out`.
    pub fn push(&mut self, frame: &Frame, out: &mut Vec<Vec<u8>>) {
        match frame.kind {
            MediaKind::Video if self.has_video => self.push_video(frame, out),
            MediaKind::Audio => self.push_audio(frame, out),
            _ => {}
        }
    }

    fn push_video(&mut self, frame: &Frame, out: &mut Vec<Vec<u8>>) {
        let t = frame.dts_us;
        let Some(start) = self.start_us else {
            if !frame.keyframe || !self.learn_parameter_sets(&frame.data) {
                return;
            }
            self.start_us = Some(t);
            self.fragment_start_us = t;
            for f in std::mem::take(&mut self.pre_start_audio) {
                if f.pts_us >= t {
                    self.push_audio(&f, out);
                }
            }
            self.add_video(frame);
            return;
        };
        let _ = start;
        if let Some(last) = self.last_video_dts_us {
            if t > last {
                self.last_interval_us = t - last;
            }
        }
        let too_long = t - self.fragment_start_us + self.last_interval_us > MAX_FRAGMENT_US;
        if (frame.keyframe || too_long) && !self.video.is_empty() {
            self.cut(t, out);
        }
        self.add_video(frame);
    }

    fn add_video(&mut self, frame: &Frame) {
        self.last_video_dts_us = Some(frame.dts_us);
        // Parameter sets are in the init segment; a picture that brings others (a
        // publisher's encoder changed its picture size, as WebRTC does under load) keeps
        // them, else nothing after it would decode.
        let keep_parameter_sets = self.new_parameter_sets(&frame.data);
        let mut data = Vec::with_capacity(frame.data.len() + 16);
        for nal in AnnexBNalUnits::new(&frame.data) {
            match h264::nal_type(nal) {
                Some(NAL_AUD) => continue,
                Some(NAL_SPS | NAL_PPS) if !keep_parameter_sets => continue,
                _ => {}
            }
            let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(nal);
        }
        self.video.push(VideoSample {
            dts_us: frame.dts_us,
            pts_us: frame.pts_us,
            sync: frame.keyframe,
            data,
        });
    }

    /// True when `annex_b` carries an SPS or PPS other than the init segment's.
    fn new_parameter_sets(&self, annex_b: &[u8]) -> bool {
        let Some(config) = &self.video_config else {
            return false;
        };
        AnnexBNalUnits::new(annex_b).any(|nal| match h264::nal_type(nal) {
            Some(NAL_SPS) => nal != config.sps.as_slice(),
            Some(NAL_PPS) => nal != config.pps.as_slice(),
            _ => false,
        })
    }

    /// The first SPS and PPS of a keyframe, and the picture size; false without them.
    fn learn_parameter_sets(&mut self, annex_b: &[u8]) -> bool {
        let (mut sps, mut pps) = (None, None);
        for nal in AnnexBNalUnits::new(annex_b) {
            match h264::nal_type(nal) {
                Some(NAL_SPS) if sps.is_none() => sps = Some(nal.to_vec()),
                Some(NAL_PPS) if pps.is_none() => pps = Some(nal.to_vec()),
                _ => {}
            }
        }
        let (Some(sps), Some(pps)) = (sps, pps) else {
            return false;
        };
        let (w, h) = h264::parse_sps(&sps).map_or((0, 0), |s| (s.width, s.height));
        self.video_config = Some(VideoConfig {
            sps,
            pps,
            width: u16::try_from(w).unwrap_or(0),
            height: u16::try_from(h).unwrap_or(0),
        });
        true
    }

    fn push_audio(&mut self, frame: &Frame, out: &mut Vec<Vec<u8>>) {
        let t = frame.pts_us;
        let Some(start) = self.start_us else {
            if self.has_video {
                // Kept a little: audio leaves ahead of the picture it goes with.
                self.pre_start_audio.retain(|f| t - f.pts_us < PRE_START_US);
                self.pre_start_audio.push(frame.clone());
                return;
            }
            // Audio only: the first packet starts the recording.
            self.start_us = Some(t);
            self.fragment_start_us = t;
            return self.push_audio(frame, out);
        };
        if t < start {
            return;
        }
        if self.audio_channels.is_none() {
            self.audio_channels = Some(if frame.data.first().is_none_or(|toc| toc & 0x04 != 0) {
                2
            } else {
                1
            });
        }
        if !self.has_video && t - self.fragment_start_us >= MAX_FRAGMENT_US {
            self.cut(t, out);
        }
        let at = ticks(t - start, AUDIO_RATE);
        match self.codec {
            RecordAudioCodec::Opus => self.audio.push(AudioSample {
                at,
                data: frame.data.to_vec(),
            }),
            RecordAudioCodec::Aac => {
                if self.aac.is_none() {
                    let Ok(t) = OpusToAac::new(&frame.data) else {
                        self.audio_errors += 1;
                        return;
                    };
                    self.aac = Some(t);
                    self.aac_base = at;
                }
                let Some(aac) = self.aac.as_mut() else {
                    return;
                };
                match aac.push(&frame.data, frame.pts_us) {
                    Ok(units) => {
                        for u in units {
                            self.audio.push(AudioSample {
                                at: self.aac_base + u.sample,
                                data: u.data,
                            });
                        }
                    }
                    Err(_) => self.audio_errors += 1,
                }
            }
        }
    }

    /// Priming samples at the head of the audio track (AAC only).
    fn priming(&self) -> u32 {
        self.aac.as_ref().map_or(0, OpusToAac::priming)
    }

    /// Where audio sample `at` plays, in µs from the recording's start.
    fn audio_us(&self, at: u64) -> i64 {
        let at = at.saturating_sub(u64::from(self.priming()));
        i64::try_from(at * 1_000_000 / u64::from(AUDIO_RATE)).unwrap_or(i64::MAX)
    }

    fn audio_config(&self) -> Option<AudioConfig> {
        let channels = self.audio_channels?;
        Some(match (&self.codec, &self.aac) {
            (RecordAudioCodec::Aac, Some(aac)) => AudioConfig {
                codec: AudioCodec::Aac {
                    asc: aac.audio_specific_config().to_vec(),
                },
                priming: aac.priming(),
                sample_rate: AUDIO_RATE,
                channels: aac.channels(),
            },
            (RecordAudioCodec::Aac, None) => return None,
            (RecordAudioCodec::Opus, _) => AudioConfig {
                codec: AudioCodec::Opus { pre_skip: 312 },
                priming: 0,
                sample_rate: AUDIO_RATE,
                channels,
            },
        })
    }

    /// Makes what is pending before `end_us` (stream time) a fragment; with `last`,
    /// all the audio pending too.
    fn cut(&mut self, end_us: i64, out: &mut Vec<Vec<u8>>) {
        self.cut_at(end_us, false, out);
    }

    fn cut_at(&mut self, end_us: i64, last: bool, out: &mut Vec<Vec<u8>>) {
        let Some(start) = self.start_us else {
            return;
        };
        if !self.init_done {
            let audio = self.audio_config();
            let video = self.video_config.as_ref().filter(|_| self.has_video);
            if video.is_none() && audio.is_none() {
                return;
            }
            out.push(init_segment(video, audio.as_ref()));
            self.init_done = true;
            self.init_audio = audio.is_some();
        }
        let mut runs = Vec::with_capacity(2);
        if !self.video.is_empty() {
            let mut run = TrackRun {
                track_id: VIDEO_TRACK,
                base_decode_time: ticks(self.video[0].dts_us - start, VIDEO_TIMESCALE),
                ..TrackRun::default()
            };
            for (i, s) in self.video.iter().enumerate() {
                let next = self.video.get(i + 1).map_or(end_us, |n| n.dts_us);
                let dts = ticks(s.dts_us - start, VIDEO_TIMESCALE);
                let next = ticks(next - start, VIDEO_TIMESCALE);
                let pts = ticks(s.pts_us - start, VIDEO_TIMESCALE);
                run.samples.push(Sample {
                    duration: u32::try_from(next.saturating_sub(dts)).unwrap_or(0),
                    size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                    sync: s.sync,
                    cts_offset: i32::try_from(i128::from(pts) - i128::from(dts)).unwrap_or(0),
                });
                run.data.extend_from_slice(&s.data);
            }
            runs.push(run);
        }
        // Audio presented before the cut goes in this fragment.
        let end_at = end_us - start;
        let take = self
            .audio
            .iter()
            .take_while(|a| last || self.audio_us(a.at) < end_at)
            .count();
        if take > 0 && self.init_audio {
            let samples: Vec<AudioSample> = self.audio.drain(..take).collect();
            let mut run = TrackRun {
                track_id: AUDIO_TRACK,
                base_decode_time: samples[0].at,
                ..TrackRun::default()
            };
            for (i, s) in samples.iter().enumerate() {
                let duration = match self.codec {
                    RecordAudioCodec::Aac => AAC_FRAME,
                    RecordAudioCodec::Opus => samples
                        .get(i + 1)
                        .or(self.audio.first())
                        .map_or(OPUS_PACKET, |n| {
                            u32::try_from(n.at.saturating_sub(s.at)).unwrap_or(OPUS_PACKET)
                        }),
                };
                run.samples.push(Sample {
                    duration,
                    size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                    sync: true,
                    cts_offset: 0,
                });
                run.data.extend_from_slice(&s.data);
            }
            runs.push(run);
        } else if take > 0 {
            self.audio.drain(..take);
        }
        self.video.clear();
        self.fragment_start_us = end_us;
        if runs.is_empty() {
            return;
        }
        self.sequence += 1;
        out.push(fragment(self.sequence, &runs));
    }

    /// The stream ended or the recording stops: what is pending becomes the last fragment.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        let Some(start) = self.start_us else {
            return;
        };
        if let Some(aac) = self.aac.as_mut() {
            if let Ok(units) = aac.flush() {
                for u in units {
                    self.audio.push(AudioSample {
                        at: self.aac_base + u.sample,
                        data: u.data,
                    });
                }
            }
        }
        let video_end = self.last_video_dts_us.map(|l| l + self.last_interval_us);
        let end = video_end.unwrap_or(start.max(self.fragment_start_us) + MAX_FRAGMENT_US);
        self.cut_at(end, true, out);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn picture(t: i64, keyframe: bool, nals: &[&[u8]]) -> Frame {
        let data: Vec<u8> = nals
            .iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect();
        Frame {
            kind: MediaKind::Video,
            dts_us: t,
            pts_us: t,
            keyframe,
            data: Arc::from(data),
        }
    }

    fn in_sample(out: &[u8], nal: &[u8]) -> bool {
        let len = u32::try_from(nal.len()).unwrap().to_be_bytes();
        let needle = [&len[..], nal].concat();
        out.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn parameter_sets_other_than_the_init_segments_stay_in_their_picture() {
        let (sps_a, sps_b, pps): (&[u8], &[u8], &[u8]) = (
            &[0x67, 0x42, 0xc0, 0x1e],
            &[0x67, 0x42, 0xc0, 0x15],
            &[0x68, 0xce],
        );
        let mut f = Fragmenter::new(true, RecordAudioCodec::Opus);
        let mut out = Vec::new();
        f.push(&picture(0, true, &[sps_a, pps, &[0x65, 1]]), &mut out);
        f.push(&picture(33_333, false, &[&[0x41, 2]]), &mut out);
        // The same parameter sets again, then a smaller picture's.
        f.push(&picture(66_666, true, &[sps_a, pps, &[0x65, 3]]), &mut out);
        f.push(&picture(100_000, true, &[sps_b, pps, &[0x65, 4]]), &mut out);
        f.finish(&mut out);
        let out = out.concat();
        assert!(
            !in_sample(&out, sps_a),
            "the init segment's SPS is not repeated"
        );
        assert!(in_sample(&out, sps_b) && in_sample(&out, pps));
        assert!(in_sample(&out, &[0x65, 4]));
    }
}
