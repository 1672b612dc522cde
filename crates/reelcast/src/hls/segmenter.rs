//! Cutting a stream's frames into CMAF parts and segments: sans-IO, frames in, fragments
//! out, times from the frames themselves.
//!
//! Owns: where parts and segments begin and end, and turning frames into fragment
//! samples (H.264 from Annex-B to length-prefixed NAL units, the SPS/PPS of the first
//! keyframe into the init segment; AAC as it is). Opus frames are not HLS's and are
//! skipped (a published stream's Opus comes re-encoded to AAC: `super::opus_sink`).
//! Segments start at a keyframe once the segment has lasted the target duration; parts are cut before the frame that would take a part past the part
//! target, so no part is longer than it (with the last picture's interval taken as the
//! next one's). A file whose keyframes are further apart than the playlist's
//! `#EXT-X-TARGETDURATION` (the target in whole seconds, rounded up) gets its segment cut
//! without a keyframe before it would round above that: RFC 8216 §6.2.1 lets the target
//! duration never change, and nobody can know a file's longest GOP before playing it
//! (fragmented files, S3 objects read as they play). Such a segment's first part is not
//! `INDEPENDENT`; a player joining there shows its first picture at the next keyframe.
//! The next keyframe always starts a segment, and once one GOP has been seen to be that
//! long, each GOP is cut into equal segments (a 10 s GOP under a 2 s target: five of
//! 2 s, the first starting at the keyframe), so the cuts stay in step with the keyframes.
//! Must not: keep the window or serve anything (`super::window`).

use codec::h264::{self, AnnexBNalUnits};

use super::cmaf::{self, AudioConfig, Sample, TrackRun, VideoConfig};
use crate::media::{Frame, MediaKind};

/// NAL unit types carried in the init segment or of no use in a fragment.
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// What the segmenter hands on.
#[derive(Debug)]
pub enum Cut {
    /// The init segment: comes once, before the first part.
    Init(Vec<u8>),
    /// The next part of the open segment.
    Part(PartOut),
    /// The open segment is complete; the next part starts a new one.
    SegmentEnd,
}

/// One part: a fragment and what the playlist says of it.
#[derive(Debug)]
pub struct PartOut {
    /// `moof` + `mdat`.
    pub bytes: Vec<u8>,
    /// Stream time of its first frame, µs.
    pub start_us: i64,
    /// Its length, µs.
    pub duration_us: i64,
    /// It starts with a keyframe (or holds only audio).
    pub independent: bool,
}

struct VideoSample {
    dts_us: i64,
    pts_us: i64,
    sync: bool,
    data: Vec<u8>,
}

/// Frames to fragments; see the module docs.
pub struct Segmenter {
    target_us: i64,
    /// A segment must end before this long (it would round above the declared target).
    max_segment_us: i64,
    /// The open segment started with a keyframe.
    segment_keyed: bool,
    /// The last video keyframe's time, and the interval between the last two.
    last_key_us: Option<i64>,
    last_gop_us: Option<i64>,
    part_target_us: i64,
    has_video: bool,
    audio: Option<AudioConfig>,
    /// Length of one AAC frame in its timescale (1024, or 2048 with SBR).
    audio_frame: u32,
    video_config: Option<VideoConfig>,
    started: bool,
    segment_start_us: i64,
    part_start_us: i64,
    video: Vec<VideoSample>,
    aac: Vec<(i64, Vec<u8>)>,
    last_video_dts_us: Option<i64>,
    last_interval_us: i64,
    sequence: u32,
    /// Added to every picture's decode time: the first keyframe's composition offset
    /// (0 without B-frames). See [`Self::push_video`].
    reorder_us: i64,
}

impl Segmenter {
    /// A segmenter for a stream with video or not, with AAC (its AudioSpecificConfig) or
    /// not; segments of at least `target_us`, parts of at most `part_target_us`.
    pub fn new(target_us: i64, part_target_us: i64, has_video: bool, asc: Option<&[u8]>) -> Self {
        let parsed = asc.and_then(|a| codec::audio::AacConfig::parse(a).ok().map(|c| (a, c)));
        let audio = parsed.map(|(asc, c)| AudioConfig {
            codec: cmaf::AudioCodec::Aac { asc: asc.to_vec() },
            priming: 0,
            sample_rate: c.sample_rate,
            channels: u16::try_from(c.channels()).unwrap_or(2),
        });
        let sbr = parsed.is_some_and(|(_, c)| matches!(c.object_type, 5 | 29));
        Segmenter {
            target_us,
            max_segment_us: declared_target_s(target_us) * 1_000_000 + 500_000,
            segment_keyed: true,
            last_key_us: None,
            last_gop_us: None,
            part_target_us,
            has_video,
            audio,
            audio_frame: if sbr { 2048 } else { 1024 },
            video_config: None,
            started: false,
            segment_start_us: 0,
            part_start_us: 0,
            video: Vec::new(),
            aac: Vec::new(),
            last_video_dts_us: None,
            last_interval_us: 40_000,
            sequence: 0,
            reorder_us: 0,
        }
    }

    /// True when the stream has something HLS carries (H.264 or AAC).
    pub fn has_media(&self) -> bool {
        self.has_video || self.audio.is_some()
    }

    /// Stream time where the open segment began, µs; `None` before the first segment.
    pub fn segment_start_us(&self) -> Option<i64> {
        self.started.then_some(self.segment_start_us)
    }

    /// One frame, in the order the stream sends them; what it completes is appended to `out`.
    pub fn push(&mut self, frame: &Frame, out: &mut Vec<Cut>) {
        match frame.kind {
            MediaKind::Video if self.has_video => self.push_video(frame, out),
            MediaKind::Aac if self.audio.is_some() => self.push_aac(frame, out),
            _ => {}
        }
    }

    /// A picture in decode order. With B-frames a picture's decode time comes before its
    /// presentation time (a file's first ones before 0); the segmenter works on decode
    /// times moved later by the first keyframe's composition offset, so a keyframe's time
    /// is its presentation time: segments are cut at keyframes in decode order, their
    /// durations are those of presentation, `tfdt` never goes below the first keyframe's
    /// presentation time, and audio stays on its own clock. The pictures keep their
    /// presentation times through `trun`'s signed composition offsets (version 1: a
    /// B-frame's is negative), as hls.js, browsers' MSE and FFmpeg read them.
    fn push_video(&mut self, frame: &Frame, out: &mut Vec<Cut>) {
        if !self.started && frame.keyframe {
            self.reorder_us = (frame.pts_us - frame.dts_us).max(0);
        }
        let t = frame.dts_us + self.reorder_us;
        if self.started {
            if let Some(last) = self.last_video_dts_us {
                if t > last {
                    self.last_interval_us = t - last;
                }
            }
            if frame.keyframe {
                if let Some(last) = self.last_key_us.filter(|&k| t > k) {
                    self.last_gop_us = Some(t - last);
                }
                self.last_key_us = Some(t);
            }
            if self.ends_segment(t, frame.keyframe) {
                self.close_part(t, out);
                out.push(Cut::SegmentEnd);
                // Where the part just closed ended: `t`, or a little before it.
                self.segment_start_us = self.part_start_us;
                self.segment_keyed = frame.keyframe;
            } else if t - self.part_start_us + self.last_interval_us > self.part_target_us
                && !self.video.is_empty()
            {
                self.close_part(t, out);
            }
        } else {
            // The first segment starts with the first keyframe; its SPS/PPS make the init.
            if !frame.keyframe {
                return;
            }
            self.learn_parameter_sets(&frame.data);
            let Some(video) = &self.video_config else {
                return;
            };
            out.push(Cut::Init(cmaf::init_segment(
                Some(video),
                self.audio.as_ref(),
            )));
            self.started = true;
            self.segment_start_us = t;
            self.part_start_us = t;
            self.last_key_us = Some(t);
        }
        self.last_video_dts_us = Some(t);
        let mut data = Vec::with_capacity(frame.data.len() + 16);
        for nal in AnnexBNalUnits::new(&frame.data) {
            if matches!(h264::nal_type(nal), Some(NAL_SPS | NAL_PPS | NAL_AUD)) {
                continue;
            }
            let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(nal);
        }
        self.video.push(VideoSample {
            dts_us: t,
            pts_us: frame.pts_us,
            sync: frame.keyframe,
            data,
        });
    }

    /// Whether the picture at `t` starts a new segment. A keyframe does once the segment
    /// has lasted the target, or at once if the segment started without one. Any picture
    /// does if the next would take the segment to a length that rounds above the declared
    /// target, or, in a GOP longer than that, where an equal share of the GOP ends.
    fn ends_segment(&self, t: i64, keyframe: bool) -> bool {
        let long = t - self.segment_start_us;
        if self.video.is_empty() || long <= 0 {
            return false;
        }
        if keyframe {
            return long >= self.target_us || !self.segment_keyed;
        }
        if long + self.last_interval_us >= self.max_segment_us {
            return true;
        }
        let share = match self.last_gop_us {
            // The fewest equal segments that each stay under the limit.
            Some(gop) if gop >= self.max_segment_us => gop / (gop / self.max_segment_us + 1),
            // A long GOP not measured yet: the first cut came at the limit (a keyframe
            // could have come until then); the next ones at the target.
            _ if !self.segment_keyed => self.target_us,
            _ => return false,
        };
        // The picture nearest the share's end starts the next segment.
        long + self.last_interval_us / 2 >= share
    }

    /// The first SPS and PPS of a keyframe, and the picture size from the SPS.
    fn learn_parameter_sets(&mut self, annex_b: &[u8]) {
        let (mut sps, mut pps) = (None, None);
        for nal in AnnexBNalUnits::new(annex_b) {
            match h264::nal_type(nal) {
                Some(NAL_SPS) if sps.is_none() => sps = Some(nal.to_vec()),
                Some(NAL_PPS) if pps.is_none() => pps = Some(nal.to_vec()),
                _ => {}
            }
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let (w, h) = h264::parse_sps(&sps).map_or((0, 0), |s| (s.width, s.height));
            self.video_config = Some(VideoConfig {
                sps,
                pps,
                width: u16::try_from(w).unwrap_or(0),
                height: u16::try_from(h).unwrap_or(0),
            });
        }
    }

    fn push_aac(&mut self, frame: &Frame, out: &mut Vec<Cut>) {
        let t = frame.pts_us;
        if self.has_video {
            // Audio joins the first segment with its first picture.
            if !self.started {
                return;
            }
        } else if !self.started {
            out.push(Cut::Init(cmaf::init_segment(None, self.audio.as_ref())));
            self.started = true;
            self.segment_start_us = t;
            self.part_start_us = t;
        } else {
            let frame_us = self.audio_frame_us();
            if t - self.segment_start_us >= self.target_us {
                self.close_part(t, out);
                out.push(Cut::SegmentEnd);
                self.segment_start_us = t;
            } else if t - self.part_start_us + frame_us > self.part_target_us {
                self.close_part(t, out);
            }
        }
        self.aac.push((t, frame.data.to_vec()));
    }

    fn audio_frame_us(&self) -> i64 {
        let rate = self.audio.as_ref().map_or(48_000, |a| a.sample_rate.max(1));
        i64::from(self.audio_frame) * 1_000_000 / i64::from(rate)
    }

    /// The stream ended: what is pending becomes the last part and segment.
    pub fn finish(&mut self, out: &mut Vec<Cut>) {
        if !self.started || (self.video.is_empty() && self.aac.is_empty()) {
            return;
        }
        let end = match self.last_video_dts_us {
            Some(last) if self.has_video => last + self.last_interval_us,
            _ => self.aac.last().map_or(self.part_start_us, |(t, _)| *t) + self.audio_frame_us(),
        };
        self.close_part(end, out);
        out.push(Cut::SegmentEnd);
    }

    /// Where a part cut before a picture at `next_us` ends. Parts and segments are cut
    /// on the last interval between pictures taken as the next one's; a live source's
    /// pictures are not that regular (a browser's capture times jitter, a dropped frame
    /// doubles an interval), so the next picture may come later than that and would take
    /// the part past the part target, or the segment to a length that rounds above the
    /// declared target. The part then ends at that limit instead: its last picture is
    /// shown a little shorter, and the next part starts with a gap of those few ms before
    /// its first picture, so the playlist's durations never break the limits.
    fn part_end(&self, next_us: i64) -> i64 {
        let Some(last) = self.video.last() else {
            return next_us;
        };
        let limit = (self.part_start_us + self.part_target_us)
            .min(self.segment_start_us + self.max_segment_us - 1_000);
        if next_us > limit && last.dts_us < limit {
            limit
        } else {
            next_us
        }
    }

    /// Makes the pending frames a part ending at `end_us` (the next part's start), or
    /// earlier ([`Self::part_end`]).
    fn close_part(&mut self, end_us: i64, out: &mut Vec<Cut>) {
        let end_us = self.part_end(end_us);
        let mut runs = Vec::with_capacity(2);
        let independent = self.video.first().is_none_or(|v| v.sync);
        if !self.video.is_empty() {
            let mut run = TrackRun {
                track_id: cmaf::VIDEO_TRACK,
                base_decode_time: video_ticks(self.video[0].dts_us),
                ..TrackRun::default()
            };
            for (i, s) in self.video.iter().enumerate() {
                let next = self.video.get(i + 1).map_or(end_us, |n| n.dts_us);
                let dts = video_ticks(s.dts_us);
                run.samples.push(Sample {
                    duration: u32::try_from(video_ticks(next).saturating_sub(dts)).unwrap_or(0),
                    size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                    sync: s.sync,
                    cts_offset: i32::try_from(
                        i64::try_from(video_ticks(s.pts_us)).unwrap_or(0)
                            - i64::try_from(dts).unwrap_or(0),
                    )
                    .unwrap_or(0),
                });
                run.data.extend_from_slice(&s.data);
            }
            runs.push(run);
        }
        if let (Some(audio), Some((first, _))) = (&self.audio, self.aac.first()) {
            let mut run = TrackRun {
                track_id: cmaf::AUDIO_TRACK,
                base_decode_time: ticks(*first, audio.sample_rate),
                ..TrackRun::default()
            };
            for (_, data) in &self.aac {
                run.samples.push(Sample {
                    duration: self.audio_frame,
                    size: u32::try_from(data.len()).unwrap_or(u32::MAX),
                    sync: true,
                    cts_offset: 0,
                });
                run.data.extend_from_slice(data);
            }
            runs.push(run);
        }
        self.video.clear();
        self.aac.clear();
        self.sequence += 1;
        out.push(Cut::Part(PartOut {
            bytes: cmaf::fragment(self.sequence, &runs),
            start_us: self.part_start_us,
            duration_us: end_us - self.part_start_us,
            independent,
        }));
        self.part_start_us = end_us;
    }
}

/// `#EXT-X-TARGETDURATION` for a target of `target_us`: whole seconds, rounded up, at
/// least 1 (the playlist declares this; segments are kept from rounding above it).
pub fn declared_target_s(target_us: i64) -> i64 {
    (target_us.max(1) + 999_999) / 1_000_000
}

/// Microseconds on the stream's timeline in a track's `timescale`, rounded (0 before
/// the timeline's start).
fn ticks(us: i64, timescale: u32) -> u64 {
    let us = u128::try_from(us.max(0)).unwrap_or(0);
    u64::try_from((us * u128::from(timescale) + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

fn video_ticks(us: i64) -> u64 {
    ticks(us, cmaf::VIDEO_TIMESCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::{sample_bytes, Memory};
    use crate::stream::MediaReader;
    use bytes::Bytes;
    use std::sync::Arc;

    fn frames_of(file: Bytes) -> Vec<Frame> {
        let mut reader = MediaReader::open(Memory(file)).expect("opens");
        reader.emit_aac();
        std::iter::from_fn(|| reader.read_frame().expect("reads")).collect()
    }

    /// The bundled sample cut into CMAF (init, then every part): one fragmented MP4.
    fn sample_as_cmaf() -> (Vec<Frame>, Vec<u8>, usize) {
        let file = sample_bytes();
        let frames = frames_of(file.clone());
        let asc = MediaReader::open(Memory(file))
            .unwrap()
            .info()
            .aac_config
            .clone();
        let mut segmenter = Segmenter::new(2_000_000, 500_000, true, asc.as_deref());
        let mut cuts = Vec::new();
        for f in &frames {
            segmenter.push(f, &mut cuts);
        }
        segmenter.finish(&mut cuts);
        let mut out = Vec::new();
        let mut parts = 0;
        for cut in cuts {
            match cut {
                Cut::Init(b) => {
                    assert!(out.is_empty(), "the init segment comes first, once");
                    out.extend_from_slice(&b);
                }
                Cut::Part(p) => {
                    assert!(p.duration_us <= 500_000, "part of {} µs", p.duration_us);
                    parts += 1;
                    out.extend_from_slice(&p.bytes);
                }
                Cut::SegmentEnd => {}
            }
        }
        (frames, out, parts)
    }

    /// Read back by our own demuxer, the fragments hold every picture and AAC frame of
    /// the file, at its times, with its keyframes.
    #[test]
    fn fragments_read_back_give_the_files_frames() {
        let (frames, cmaf, parts) = sample_as_cmaf();
        assert!(parts >= 20, "{parts} parts for 10 s");
        let back = frames_of(Bytes::from(cmaf));
        for kind in [MediaKind::Video, MediaKind::Aac] {
            let want: Vec<(i64, bool)> = frames
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| (f.pts_us, f.keyframe))
                .collect();
            let got: Vec<(i64, bool)> = back
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| (f.pts_us, f.keyframe))
                .collect();
            assert_eq!(want.len(), got.len(), "{kind:?} frames");
            for (w, g) in want.iter().zip(&got) {
                // 90 kHz and the audio rate round to within a tick.
                assert!(
                    (w.0 - g.0).abs() <= 25,
                    "{kind:?} at {} read back at {}",
                    w.0,
                    g.0
                );
                assert_eq!(w.1, g.1, "{kind:?} keyframe flag at {}", w.0);
            }
        }
        // The AAC bytes are the file's, untouched.
        let aac = |v: &[Frame]| -> Vec<Arc<[u8]>> {
            v.iter()
                .filter(|f| f.kind == MediaKind::Aac)
                .map(|f| f.data.clone())
                .collect()
        };
        assert_eq!(aac(&frames), aac(&back));
    }

    /// A 10 s GOP (the sample with only its first keyframe kept, played three times on
    /// rising times) under a 2 s target: #EXT-X-TARGETDURATION stays 2 in every playlist
    /// and no segment rounds above it (RFC 8216 §4.4.3.1, §6.2.1); a part is
    /// `INDEPENDENT` exactly when it starts with the keyframe, so the first part of a
    /// segment cut without one is not. Each keyframe starts a segment, and once the GOP
    /// is known (from 10 s on) it is cut into five segments of 2 s.
    #[test]
    fn long_gops_never_change_the_target_duration() {
        use super::super::window::{Window, WindowConfig};
        use std::time::Duration;
        let file = sample_bytes();
        let frames = frames_of(file.clone());
        let asc = MediaReader::open(Memory(file))
            .unwrap()
            .info()
            .aac_config
            .clone();
        let mut segmenter = Segmenter::new(2_000_000, 500_000, true, asc.as_deref());
        let window = Window::new(
            WindowConfig {
                target: Duration::from_secs(2),
                part_target: Duration::from_millis(500),
                list_size: 8,
                max_bytes: 64 << 20,
            },
            "t".into(),
        );
        let first_key = frames
            .iter()
            .find(|f| f.keyframe && f.kind == MediaKind::Video);
        let first_key = first_key.expect("the sample has a keyframe").dts_us;
        let (mut segments, mut unkeyed, mut dependent_firsts) = (0, 0, 0);
        let mut cut_at = Vec::new();
        // Whether the next part starts a segment, and with the keyframe.
        let mut next_starts_segment = true;
        let mut keyed_next = true;
        for pass in 0..3_i64 {
            for f in &frames {
                let mut f = f.clone();
                if f.kind == MediaKind::Video {
                    f.keyframe = f.dts_us == first_key;
                }
                f.dts_us += pass * 10_000_000;
                f.pts_us += pass * 10_000_000;
                let mut cuts = Vec::new();
                segmenter.push(&f, &mut cuts);
                for cut in &cuts {
                    match cut {
                        Cut::Part(p) => {
                            assert_eq!(p.independent, keyed_next, "part at {} µs", p.start_us);
                            if next_starts_segment && !p.independent {
                                dependent_firsts += 1;
                            }
                            next_starts_segment = false;
                            // A part ends before the frame being pushed, which starts the next.
                            keyed_next = f.kind == MediaKind::Video && f.keyframe;
                        }
                        Cut::SegmentEnd => next_starts_segment = true,
                        Cut::Init(_) => {}
                    }
                }
                let ends = cuts.iter().filter(|c| matches!(c, Cut::SegmentEnd)).count();
                if ends == 0 {
                    window.add(cuts);
                    continue;
                }
                segments += ends;
                unkeyed += usize::from(!f.keyframe);
                cut_at.push((f.dts_us, f.keyframe));
                window.add(cuts);
                let playlist = window.playlist();
                assert!(playlist.contains("#EXT-X-TARGETDURATION:2\n"), "{playlist}");
                for line in playlist.lines().filter_map(|l| l.strip_prefix("#EXTINF:")) {
                    let secs: f64 = line.trim_end_matches(',').parse().unwrap();
                    assert!(secs.round() <= 2.0, "a segment of {secs} s:\n{playlist}");
                }
            }
        }
        assert_eq!(segments, 14, "segments in 30 s: {cut_at:?}");
        assert_eq!(unkeyed, 12, "cut without a keyframe: {cut_at:?}");
        let keyed: Vec<i64> = cut_at.iter().filter(|c| c.1).map(|c| c.0).collect();
        assert_eq!(keyed, [first_key + 10_000_000, first_key + 20_000_000]);
        let later = cut_at.iter().filter(|c| c.0 >= first_key + 10_000_000);
        for (t, _) in later {
            assert_eq!(
                (t - first_key) % 2_000_000,
                0,
                "a cut at {t} µs: {cut_at:?}"
            );
        }
        assert_eq!(
            dependent_firsts, unkeyed,
            "segments starting without INDEPENDENT"
        );
    }

    /// Pictures as a live source sends them: capture times that jitter by a few ms and
    /// dropped frames (a doubled interval), with keyframes further apart than the
    /// target. No part lasts more than the part target, and no segment rounds above the
    /// declared target duration (RFC 8216bis §4.4.3.1, §4.4.3.7); parts and segments
    /// still cover the timeline without overlap.
    #[test]
    fn irregular_pictures_never_take_a_part_or_segment_past_its_limit() {
        let mut segmenter = Segmenter::new(2_000_000, 500_000, true, None);
        let mut cuts = Vec::new();
        let mut t = 0_i64;
        for n in 0..600_i64 {
            // 30 fps, 0–7 ms late, every 11th picture dropped; a keyframe each 4 s.
            t += 33_333 + (n * 7919) % 8_000 + if n % 11 == 10 { 33_333 } else { 0 };
            let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47];
            data.extend_from_slice(&[0xfe, 0xc8, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
            data.extend_from_slice(&[0, 0, 0, 1, if n % 120 == 0 { 0x65 } else { 0x41 }, 0x88]);
            let frame = Frame {
                kind: MediaKind::Video,
                dts_us: t,
                pts_us: t,
                keyframe: n % 120 == 0,
                data: Arc::from(data),
            };
            segmenter.push(&frame, &mut cuts);
        }
        segmenter.finish(&mut cuts);
        let (mut segment_us, mut next_start, mut segments) = (0, None, 0);
        for cut in &cuts {
            match cut {
                Cut::Part(p) => {
                    assert!(p.duration_us <= 500_000, "a part of {} µs", p.duration_us);
                    assert!(p.duration_us > 0);
                    if let Some(start) = next_start {
                        assert_eq!(p.start_us, start, "parts follow each other");
                    }
                    next_start = Some(p.start_us + p.duration_us);
                    segment_us += p.duration_us;
                }
                Cut::SegmentEnd => {
                    assert!(segment_us < 2_500_000, "a segment of {segment_us} µs");
                    segment_us = 0;
                    segments += 1;
                }
                Cut::Init(_) => {}
            }
        }
        assert!(segments >= 9, "{segments} segments in about 21 s");
    }

    /// ffprobe, an independent reader, decodes every picture and finds no error.
    #[test]
    fn ffprobe_reads_the_fragments_without_error() {
        if !test_support::tools_available(&["ffprobe"], "the CMAF check") {
            return;
        }
        let (frames, cmaf, _) = sample_as_cmaf();
        let path = test_support::temp_dir("cmaf").join("sample_cmaf.mp4");
        std::fs::write(&path, cmaf).unwrap();
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe runs");
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        let pictures = frames.iter().filter(|f| f.kind == MediaKind::Video).count();
        let aac = frames.iter().filter(|f| f.kind == MediaKind::Aac).count();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.trim(),
            format!("h264,{pictures}\naac,{aac}"),
            "streams and frame counts"
        );
    }

    /// A file with B-frames as ffmpeg makes them (`-bf 2`, pyramid: composition offsets
    /// of 0 to 3 frames, the first pictures decoded before time 0), 2 s at 25 fps with
    /// AAC. `None` without ffmpeg (a failure under CI=true).
    fn bframe_file() -> Option<Bytes> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        if !test_support::tools_available(&["ffmpeg"], "the B-frame CMAF tests") {
            return None;
        }
        // One file per test: tests run at once.
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = test_support::temp_dir("cmaf-bf").join(format!("bframes{n}.mp4"));
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=s=160x120:r=25:d=2",
            ])
            .args(["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:v", "libx264"])
            .args([
                "-pix_fmt",
                "yuv420p",
                "-profile:v",
                "high",
                "-bf",
                "2",
                "-g",
                "25",
            ])
            .args(["-c:a", "aac"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg failed ({status})");
        let data = std::fs::read(&path).expect("ffmpeg wrote it");
        let _ = std::fs::remove_file(&path);
        Some(Bytes::from(data))
    }

    /// What a translation of `file` hands its HLS muxer: the file's own pictures (routed
    /// to `source_video`, no re-encode wanted) and its AAC.
    fn own_frames(file: Bytes) -> (Vec<Frame>, Option<Arc<[u8]>>) {
        use crate::stream::budget::MemoryBudget;
        use crate::stream::reader::TranscodePolicy;
        use crate::stream::reencode_demand::ReencodeDemand;
        let mut reader = MediaReader::open_translation(
            Memory(file),
            &MemoryBudget::unlimited(),
            TranscodePolicy::default(),
            Arc::new(ReencodeDemand::new(0, None)),
        )
        .expect("opens");
        reader.emit_aac();
        assert!(reader.emit_source_video(), "H.264 with B-frames");
        let asc = reader.info().aac_config.clone();
        let mut frames = Vec::new();
        while let Some(r) = reader.read_routed().expect("reads") {
            assert!(
                r.source_video || r.frame.kind != MediaKind::Video,
                "no re-encode when nobody wants it"
            );
            if r.frame.kind != MediaKind::Audio {
                frames.push(r.frame);
            }
        }
        (frames, asc)
    }

    fn cmaf_of(frames: &[Frame], asc: Option<&[u8]>) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut segmenter = Segmenter::new(1_000_000, 500_000, true, asc);
        let mut cuts = Vec::new();
        for f in frames {
            segmenter.push(f, &mut cuts);
        }
        segmenter.finish(&mut cuts);
        let (mut init, mut parts) = (Vec::new(), Vec::new());
        for cut in cuts {
            match cut {
                Cut::Init(b) => init = b,
                Cut::Part(p) => parts.push(p.bytes),
                Cut::SegmentEnd => {}
            }
        }
        (init, parts)
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The video `tfdt` and `trun` of a fragment (the first `traf`): the version, each
    /// sample's presentation time (90 kHz) and composition offset.
    fn video_run(fragment: &[u8]) -> (u8, Vec<(i64, i32)>) {
        let find = |kind: &[u8]| fragment.windows(4).position(|w| w == kind).unwrap();
        let tfdt = find(b"tfdt");
        let mut decode = i64::try_from(u64::from_be_bytes(
            fragment[tfdt + 8..tfdt + 16].try_into().unwrap(),
        ))
        .unwrap();
        let trun = find(b"trun");
        let version = fragment[trun + 4];
        let count = be32(fragment, trun + 8) as usize;
        // After the count: the data offset, then duration, size, flags, offset per sample.
        let mut at = trun + 16;
        let mut samples = Vec::new();
        for _ in 0..count {
            let duration = i64::from(be32(fragment, at));
            let cts = i32::from_be_bytes(fragment[at + 12..at + 16].try_into().unwrap());
            samples.push((decode + i64::from(cts), cts));
            decode += duration;
            at += 16;
        }
        (version, samples)
    }

    /// The file's pictures keep their presentation times through the fragments:
    /// `tfdt` + durations + `trun`'s signed composition offsets (version 1), negative for
    /// B-frames, 0 for the first keyframe; decode times never go below 0.
    #[test]
    fn b_frames_keep_their_presentation_times_through_signed_composition_offsets() {
        let Some(file) = bframe_file() else {
            return;
        };
        let (frames, asc) = own_frames(file);
        let pictures: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == MediaKind::Video)
            .collect();
        assert_eq!(pictures.len(), 50, "2 s at 25 fps");
        assert!(
            pictures[0].dts_us < 0,
            "the file's first pictures decode before 0"
        );
        let (_, parts) = cmaf_of(&frames, asc.as_deref());
        let mut got = Vec::new();
        for part in &parts {
            let (version, samples) = video_run(part);
            assert_eq!(version, 1, "signed composition offsets");
            got.extend(samples);
        }
        assert_eq!(got.len(), pictures.len());
        assert_eq!(
            got[0].1, 0,
            "the first keyframe is presented at its decode time"
        );
        assert!(
            got.iter().any(|s| s.1 < 0),
            "B-frames come out of order: {got:?}"
        );
        for (want, (pts, _)) in pictures.iter().zip(&got) {
            let want = i64::try_from(video_ticks(want.pts_us)).unwrap();
            assert!(
                (want - pts).abs() <= 1,
                "presented at {pts}, the file says {want}"
            );
        }
    }

    /// FFmpeg reads the fragments as the file's H.264 (High profile, B-frames), decodes
    /// every picture and finds no error; each picture's bytes are the file's.
    #[test]
    fn ffmpeg_reads_b_frame_fragments_as_the_files_own_pictures() {
        if !test_support::tools_available(&["ffprobe", "ffmpeg"], "the B-frame CMAF check") {
            return;
        }
        let Some(file) = bframe_file() else {
            return;
        };
        let dir = test_support::temp_dir("cmaf-bf-probe");
        let original = dir.join("original.mp4");
        std::fs::write(&original, &file).unwrap();
        let (frames, asc) = own_frames(file);
        let (init, parts) = cmaf_of(&frames, asc.as_deref());
        let cmaf = dir.join("own.mp4");
        std::fs::write(&cmaf, [init, parts.concat()].concat()).unwrap();
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
            ])
            .args([
                "stream=profile,has_b_frames,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&cmaf)
            .output()
            .expect("ffprobe runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.trim(), "High,2,50", "profile, B-frames, pictures");
        // Per-packet hashes of the video as stored (length-prefixed NAL units), in order.
        let hashes = |path: &std::path::Path| {
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(path)
                .args(["-map", "0:v", "-c", "copy", "-f", "framemd5", "-"])
                .output()
                .expect("ffmpeg runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
                .collect::<Vec<_>>()
        };
        let (ours, theirs) = (hashes(&cmaf), hashes(&original));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ours.len(), 50);
        assert_eq!(ours, theirs, "every picture's bytes are the file's");
    }
}
