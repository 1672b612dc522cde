//! Reading a file as a stream's frames: demux, then the per-stream codec work.
//!
//! Owns: finding the movie structure through ranged reads (so the same code reads local
//! files and S3 objects), choosing the tracks we can play, reading each sample's
//! bytes just before it is needed, turning H.264 samples into Annex-B with SPS/PPS before
//! keyframes, and AAC into Opus (and, for a translation with HLS, the AAC itself beside
//! it: [`MediaReader::emit_aac`]). Done once per stream, never per viewer.
//!
//! What browsers cannot take as it is goes through a transcode, still once per stream:
//! video other than H.264 without B-frames (H.264 with B-frames, HEVC, VP9, AV1, MPEG-4
//! Part 2) through the `transcode` stage's thread to H.264 constrained baseline; MP3,
//! AC-3, E-AC-3 and FLAC decoded here (libavcodec) into the same Opus encoding as AAC.
//! A translation's H.264 with B-frames ([`MediaReader::open_translation`]) is read by
//! `reordered` instead: the file's own pictures for HLS, the re-encode only while a
//! `ReencodeDemand` wants it (WebRTC viewers).
//! MP4 files only: the demuxer is ours (crates/mp4).
//!
//! Memory: the sample tables stay in the file and are read 4 KiB at a time per table as
//! playback advances (`SampleLane`), so a 2-hour file costs what a 10-second one does;
//! sample bytes are read one at a time; nothing is mapped or loaded whole.
//!
//! A recording still being written ([`ByteSource::growth`]) is read up to its live edge
//! and followed as it grows (`growing`): at the end of what is indexed the reader says
//! "nothing yet" ([`FrameSource::pending`]) instead of ending, until the recording is
//! finished.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ::transcode::{AudioDecoder, AudioInput, CodecKind, VideoInput};
use codec::audio::AacToOpus;
use codec::h264::{self, AvcConfig};
use codec::pcm_to_opus::PcmToOpus;
use mp4::{
    AudioFormat, Codec, FragmentFollower, Movie, MovieOpener, OpenStep, SampleIndex, SampleInfo,
    SampleTable, SampleWalker, Track, VideoFormat, WalkStep,
};
use tracing::warn;

use super::budget::{MemoryBudget, Reservation};
use super::constraints::VideoConstraints;
use super::frame_queue::{FrameSource, Routed};
use super::growing::{Check, GrowingFile, POLL_INTERVAL};
use super::pacer::AUDIO_LEAD_US;
use super::reencode_demand::ReencodeDemand;
use super::reordered::{self, ReorderedVideo};
use super::transcode::{Sample, TranscodeSpeed, TranscodedVideo};
use super::StreamError;
use crate::media::{Frame, MediaKind};
use crate::metrics::{TranscoderBusy, VideoTranscoderBusy};
use crate::source::ByteSource;

pub use super::transcode::{NO_TRANSCODERS, TRANSCODING_DISABLED};

/// What the server allows for transcoding (from its settings).
#[derive(Debug, Clone, Copy, Default)]
pub struct TranscodePolicy {
    /// `transcoding_disabled`: files that need it fail instead.
    pub disabled: bool,
    /// `video_transcoders_max`: at most this many video transcodes at once; 0: no limit.
    pub max_video: usize,
    /// The size or bit rate the one viewer of this reader asked for (a personal VOD's
    /// `constraints`): the video is transcoded to it unless the source already is so.
    pub video: Option<VideoConstraints>,
}

/// What a viewer and the REST API are told about a stream's media.
#[derive(Debug, Clone, Default)]
pub struct MediaInfo {
    /// The file has a video track we play.
    pub has_video: bool,
    /// The file has an audio track we play.
    pub has_audio: bool,
    /// Picture width in pixels (0 without video).
    pub width: u32,
    /// Picture height in pixels (0 without video).
    pub height: u32,
    /// `profile_idc` of the H.264 video.
    pub h264_profile_idc: Option<u8>,
    /// What viewers receive: `H264`, or `H264 (from HEVC)` and the like when transcoded.
    pub video_codec: Option<String>,
    /// What viewers receive: `opus`.
    pub audio_codec: Option<String>,
    /// Length of the longest track, in microseconds.
    pub duration_us: i64,
    /// The file's video has pictures out of presentation order (B-frames); WebRTC
    /// viewers get it transcoded (a translation's HLS gets the file's own pictures).
    pub reordered_video: bool,
    /// The video is decoded and re-encoded for viewers (`stream::transcode`).
    pub transcoded_video: bool,
    /// The AudioSpecificConfig of the file's AAC track (what an HLS init segment needs).
    pub aac_config: Option<Arc<[u8]>>,
    /// How fast the video transcode runs, when there is one (shared with its thread:
    /// every clone of this info reads the live value).
    pub transcode_speed: Option<Arc<TranscodeSpeed>>,
}

/// One track's samples in decode order, with the next one looked at but not taken.
struct SampleLane {
    track: Track,
    walker: SampleWalker,
    peeked: Option<SampleInfo>,
}

impl SampleLane {
    fn new(track: Track) -> Self {
        SampleLane {
            track,
            walker: SampleWalker::new(),
            peeked: None,
        }
    }

    /// The next sample, reading sample-table bytes from `source` when the walker asks.
    fn peek(&mut self, source: &impl ByteSource) -> Result<Option<SampleInfo>, StreamError> {
        while self.peeked.is_none() {
            match self.walker.poll(&self.track.samples) {
                WalkStep::Sample(s) => self.peeked = Some(s),
                WalkStep::Read { offset, len } => {
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    let bytes = source.read_at(offset, len)?;
                    self.walker
                        .feed(offset, &bytes)
                        .map_err(|e| StreamError::Streaming(e.to_string()))?;
                }
                WalkStep::End => return Ok(None),
            }
        }
        Ok(self.peeked)
    }

    /// Takes the next sample and its index.
    fn take(
        &mut self,
        source: &impl ByteSource,
    ) -> Result<Option<(usize, SampleInfo)>, StreamError> {
        let s = self.peek(source)?;
        self.peeked = None;
        Ok(s.map(|s| (self.walker.next_index() - 1, s)))
    }

    /// Back to the first sample.
    fn rewind(&mut self) {
        self.walker = SampleWalker::new();
        self.peeked = None;
    }

    fn next_dts_us(&mut self, source: &impl ByteSource) -> Result<Option<i64>, StreamError> {
        Ok(self
            .peek(source)?
            .map(|s| sample_times_us(&self.track, &s).0))
    }
}

struct VideoTrack {
    lane: SampleLane,
    codec: VideoCodec,
}

enum VideoCodec {
    /// H.264 without B-frames: sent as the file has it (in Annex-B).
    Direct(AvcConfig),
    /// Decoded and encoded again on the transcode thread.
    Transcoded {
        transcode: TranscodedVideo,
        /// To start a fresh one when a looping translation rewinds.
        input: VideoInput,
        /// The size and bit rate it encodes at (default: the source's size).
        output: VideoConstraints,
        /// Counts it in `reelcast_video_transcoders_busy` (and against the limit).
        _busy: VideoTranscoderBusy,
        /// Its speed, kept by every thread it runs on (a loop starts a new one).
        speed: Arc<TranscodeSpeed>,
    },
    /// H.264 with B-frames in a translation: the file's own pictures for sinks whose
    /// players reorder (HLS), re-encoded only while something wants it (`reordered`).
    Reordered(Box<ReorderedVideo>),
}

impl VideoCodec {
    /// The transcode's speed, when the video is transcoded.
    fn speed(&self) -> Option<Arc<TranscodeSpeed>> {
        match self {
            VideoCodec::Direct(_) => None,
            VideoCodec::Transcoded { speed, .. } => Some(speed.clone()),
            VideoCodec::Reordered(video) => Some(video.speed()),
        }
    }
}

impl VideoTrack {
    /// The time of the next video frame, `None` at the end of the track (for now, when
    /// `growing`).
    fn next_dts_us(
        &mut self,
        source: &impl ByteSource,
        growing: bool,
    ) -> Result<Option<i64>, StreamError> {
        match &mut self.codec {
            VideoCodec::Direct(_) => self.lane.next_dts_us(source),
            VideoCodec::Transcoded { transcode, .. } => {
                let lane = &mut self.lane;
                transcode.next_dts_us(growing, || next_sample(lane, source))
            }
            VideoCodec::Reordered(video) => {
                let lane = &mut self.lane;
                video.next_dts_us(growing, || next_sample(lane, source))
            }
        }
    }
}

/// The lane's next sample with its bytes, for the transcode thread.
fn next_sample(
    lane: &mut SampleLane,
    source: &impl ByteSource,
) -> Result<Option<Sample>, StreamError> {
    let Some((_, s)) = lane.take(source)? else {
        return Ok(None);
    };
    let data = source.read_at(s.offset, s.size as usize)?.to_vec();
    let (dts_us, pts_us) = sample_times_us(&lane.track, &s);
    Ok(Some(Sample {
        data,
        dts_us,
        pts_us,
        keyframe: s.sync,
    }))
}

enum AudioCodec {
    Aac(Box<AacToOpus>),
    Opus,
    /// MP3, AC-3, E-AC-3, FLAC: decoded by libavcodec, then Opus.
    Decoded(Box<(AudioDecoder, PcmToOpus)>),
}

struct AudioTrack {
    lane: SampleLane,
    codec: AudioCodec,
    /// Opus packets made from AAC but not handed out yet.
    pending: VecDeque<Frame>,
    /// Counts the AAC→Opus transcoder in `reelcast_transcoders_busy` while it lives.
    _busy: Option<TranscoderBusy>,
    /// The file's AAC access units not handed out yet, when asked for
    /// ([`MediaReader::emit_aac`]); `None`: not asked.
    aac: Option<VecDeque<Frame>>,
}

/// A file opened as a stream of frames.
pub struct MediaReader<S: ByteSource> {
    source: S,
    info: MediaInfo,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    annex_b: Vec<u8>,
    /// What the sample index (fragmented files) holds of the server's budget.
    index_memory: Reservation,
    /// A recording still being written: followed until it is finished.
    growing: Option<GrowingFile>,
    /// Which of the movie's tracks the video and audio lanes play (to append a growing
    /// file's new fragments to).
    track_of: [Option<usize>; 2],
    /// Set when `read_frame` gave `None` at a growing file's live edge.
    pending: Option<Duration>,
}

/// A track of a growing file holding back the other track's frames is taken as silent
/// once the other is this far past its end (a recording with a track that gets no
/// samples must still play).
const TRACK_LAG_US: i64 = 2_000_000;

impl<S: ByteSource> MediaReader<S> {
    /// Reads the movie's structure and prepares the tracks we can play, with no bound
    /// but the demuxer's own on the index memory (tools that open one file).
    pub fn open(source: S) -> Result<Self, StreamError> {
        Self::open_within(
            source,
            &MemoryBudget::unlimited(),
            TranscodePolicy::default(),
        )
    }

    /// Reads the movie's structure and prepares the tracks we can play; the memory the
    /// file's index needs is held from `budget` while the reader lives.
    pub fn open_within(
        source: S,
        budget: &Arc<MemoryBudget>,
        policy: TranscodePolicy,
    ) -> Result<Self, StreamError> {
        Self::open_with(source, budget, policy, None)
    }

    /// [`Self::open_within`] for a translation: H.264 with B-frames is re-encoded only
    /// while `reencode` wants it (`reordered`), and its own pictures can be handed out
    /// beside ([`Self::emit_source_video`]); other video that needs a transcode is
    /// transcoded as for any stream.
    pub fn open_translation(
        source: S,
        budget: &Arc<MemoryBudget>,
        policy: TranscodePolicy,
        reencode: Arc<ReencodeDemand>,
    ) -> Result<Self, StreamError> {
        Self::open_with(source, budget, policy, Some(reencode))
    }

    fn open_with(
        source: S,
        budget: &Arc<MemoryBudget>,
        policy: TranscodePolicy,
        reencode: Option<Arc<ReencodeDemand>>,
    ) -> Result<Self, StreamError> {
        let (movie, index_memory, follower) = open_movie(&source, budget)?;
        refuse_cut_short(&movie, source.size())?;
        let mut info = MediaInfo::default();
        let mut video = None;
        let mut audio = None;
        let mut unsupported = Vec::new();
        let mut track_of = [None, None];
        for (n, track) in movie.tracks.into_iter().enumerate() {
            match &track.codec {
                Codec::H264 {
                    avcc,
                    width,
                    height,
                    ..
                } if video.is_none() => {
                    let avc = AvcConfig::parse(avcc).map_err(|e| {
                        StreamError::WrongFormat(format!("bad H.264 configuration: {e}"))
                    })?;
                    let mut w = u32::from(*width);
                    let mut h = u32::from(*height);
                    if let Some(sps) = avc.sps.first().and_then(|s| h264::parse_sps(s).ok()) {
                        if sps.width > 0 && sps.height > 0 {
                            (w, h) = (sps.width, sps.height);
                        }
                    }
                    info.reordered_video = has_reordering(&track);
                    let asked = policy.video.filter(|c| c.need_transcode(w, h));
                    // Browsers' WebRTC H.264 decoders emit a picture per packet and cannot
                    // hold pictures back for reordering: sent as is, only keyframes would
                    // show (measured in Chromium 156: 7 of 100 pictures decoded). So
                    // B-frames are transcoded away.
                    let codec = if info.reordered_video || asked.is_some() {
                        info.h264_profile_idc = Some(CONSTRAINED_BASELINE);
                        info.video_codec = Some(if asked.is_some_and(|c| c.vp8) {
                            "VP8 (from H.264)".into()
                        } else if info.reordered_video {
                            "H264 (from H.264 with B-frames)".into()
                        } else {
                            "H264 (rendition)".into()
                        });
                        match reencode.clone().filter(|_| asked.is_none()) {
                            Some(demand) => VideoCodec::Reordered(Box::new(ReorderedVideo::new(
                                avc,
                                video_input(&track, CodecKind::H264, avcc.clone()),
                                demand,
                                Arc::default(),
                            ))),
                            None => transcoded(&track, CodecKind::H264, avcc.clone(), policy)?,
                        }
                    } else {
                        info.h264_profile_idc = Some(avc.profile_idc);
                        info.video_codec = Some("H264".into());
                        VideoCodec::Direct(avc)
                    };
                    info.transcoded_video = info.reordered_video || asked.is_some();
                    info.transcode_speed = codec.speed();
                    info.has_video = true;
                    (info.width, info.height) = asked.map_or((w, h), |c| c.size_for(w, h));
                    info.duration_us = info.duration_us.max(track_duration_us(&track));
                    video = Some(VideoTrack {
                        lane: SampleLane::new(track),
                        codec,
                    });
                    track_of[0] = Some(n);
                }
                Codec::OtherVideo {
                    format,
                    config,
                    width,
                    height,
                } if video.is_none() => {
                    let kind = match format {
                        VideoFormat::Hevc => CodecKind::Hevc,
                        VideoFormat::Vp9 => CodecKind::Vp9,
                        VideoFormat::Av1 => CodecKind::Av1,
                        VideoFormat::Mpeg4Part2 => CodecKind::Mpeg4Part2,
                    };
                    let codec = transcoded(&track, kind, config.clone(), policy)?;
                    info.has_video = true;
                    info.transcoded_video = true;
                    info.transcode_speed = codec.speed();
                    let (w, h) = (u32::from(*width), u32::from(*height));
                    (info.width, info.height) = policy.video.map_or((w, h), |c| c.size_for(w, h));
                    info.h264_profile_idc = Some(CONSTRAINED_BASELINE);
                    let to = if policy.video.is_some_and(|c| c.vp8) {
                        "VP8"
                    } else {
                        "H264"
                    };
                    info.video_codec = Some(format!("{to} (from {})", kind.name()));
                    info.duration_us = info.duration_us.max(track_duration_us(&track));
                    video = Some(VideoTrack {
                        lane: SampleLane::new(track),
                        codec,
                    });
                    track_of[0] = Some(n);
                }
                Codec::OtherAudio {
                    format,
                    config,
                    sample_rate,
                    channels,
                } if audio.is_none() => {
                    let kind = match format {
                        AudioFormat::Mp3 => CodecKind::Mp3,
                        AudioFormat::Ac3 => CodecKind::Ac3,
                        AudioFormat::Eac3 => CodecKind::Eac3,
                        AudioFormat::Flac => CodecKind::Flac,
                    };
                    let decoder = decoded_audio(kind, config, *sample_rate, *channels)?;
                    info.has_audio = true;
                    info.audio_codec = Some(format!("opus (from {})", kind.name()));
                    info.duration_us = info.duration_us.max(track_duration_us(&track));
                    audio = Some(AudioTrack {
                        lane: SampleLane::new(track),
                        codec: AudioCodec::Decoded(Box::new(decoder)),
                        pending: VecDeque::new(),
                        _busy: Some(TranscoderBusy::start()),
                        aac: None,
                    });
                    track_of[1] = Some(n);
                }
                Codec::Aac {
                    audio_specific_config,
                    ..
                } if audio.is_none() => {
                    let transcoder = AacToOpus::new(audio_specific_config)
                        .map_err(|e| StreamError::WrongFormat(e.to_string()))?;
                    info.has_audio = true;
                    info.audio_codec = Some("opus (from AAC)".into());
                    info.aac_config = Some(Arc::from(audio_specific_config.as_slice()));
                    info.duration_us = info.duration_us.max(track_duration_us(&track));
                    audio = Some(AudioTrack {
                        lane: SampleLane::new(track),
                        codec: AudioCodec::Aac(Box::new(transcoder)),
                        pending: VecDeque::new(),
                        _busy: Some(TranscoderBusy::start()),
                        aac: None,
                    });
                    track_of[1] = Some(n);
                }
                Codec::Opus { .. } if audio.is_none() => {
                    info.has_audio = true;
                    info.audio_codec = Some("opus".into());
                    info.duration_us = info.duration_us.max(track_duration_us(&track));
                    audio = Some(AudioTrack {
                        lane: SampleLane::new(track),
                        codec: AudioCodec::Opus,
                        pending: VecDeque::new(),
                        _busy: None,
                        aac: None,
                    });
                    track_of[1] = Some(n);
                }
                Codec::Unsupported { fourcc } => {
                    unsupported.push(String::from_utf8_lossy(fourcc).into_owned());
                }
                _ => {}
            }
        }
        // A track we cannot play fails the stream rather than being dropped: a viewer
        // getting a silent film or a black screen with no word why is worse than a reason.
        if !unsupported.is_empty() {
            return Err(StreamError::WrongFormat(format!(
                "{} is not supported",
                unsupported.join(", ")
            )));
        }
        if video.is_none() && audio.is_none() {
            return Err(StreamError::WrongFormat(
                "no video or audio track we can play".into(),
            ));
        }
        source.begin_playback(bytes_per_second(source.size(), info.duration_us));
        let mut reader = MediaReader {
            source,
            info,
            video,
            audio,
            annex_b: Vec::new(),
            index_memory,
            growing: follower.map(GrowingFile::new),
            track_of,
            pending: None,
        };
        // What is already written is indexed before the first frame.
        reader.follow_growth()?;
        Ok(reader)
    }

    /// True while the file is a recording still being written.
    pub fn is_growing(&self) -> bool {
        self.growing.is_some()
    }

    /// Looks for new whole fragments of a growing file and appends them to the lanes'
    /// tracks, holding what the index grows by from the budget. Once the recording is
    /// finished, the reader reads to the end as for any file.
    fn follow_growth(&mut self) -> Result<Check, StreamError> {
        let Some(mut growing) = self.growing.take() else {
            return Ok(Check::Finished);
        };
        let [video_at, audio_at] = self.track_of;
        let (video, audio) = (&mut self.video, &mut self.audio);
        let check = growing.check(&self.source, |track, piece: &SampleIndex| {
            let lane = if Some(track) == video_at {
                video.as_mut().map(|v| &mut v.lane)
            } else if Some(track) == audio_at {
                audio.as_mut().map(|a| &mut a.lane)
            } else {
                None
            };
            if let Some(SampleTable::Indexed(index)) = lane.map(|l| &mut l.track.samples) {
                index.append(piece);
            }
            Ok(())
        })?;
        let held: usize = [
            self.video.as_ref().map(|v| &v.lane),
            self.audio.as_ref().map(|a| &a.lane),
        ]
        .into_iter()
        .flatten()
        .map(|l| l.track.samples.heap_bytes())
        .sum();
        self.index_memory
            .resize(held as u64)
            .map_err(|e| over_budget(e.limit))?;
        if check != Check::Finished {
            self.growing = Some(growing);
        }
        Ok(check)
    }

    /// What viewers and the REST API are told about the media.
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// Also hand out the file's AAC access units as they are ([`MediaKind::Aac`]), in
    /// decode order among the other frames, beside the Opus made from them (for an HLS
    /// sink). Nothing changes for a file without AAC.
    pub fn emit_aac(&mut self) {
        if let Some(a) = &mut self.audio {
            if matches!(a.codec, AudioCodec::Aac(_)) {
                a.aac.get_or_insert_with(VecDeque::new);
            }
        }
    }

    /// The video is re-encoded only while a [`ReencodeDemand`] wants it (a translation
    /// of H.264 with B-frames, [`Self::open_translation`]).
    pub fn reencodes_on_demand(&self) -> bool {
        matches!(
            self.video.as_ref().map(|v| &v.codec),
            Some(VideoCodec::Reordered(_))
        )
    }

    /// Also hand out the file's own H.264 pictures beside their re-encode, when the
    /// video is re-encoded only on demand ([`Self::open_translation`], H.264 with
    /// B-frames): routed to [`Sink::source_video`](crate::media::Sink::source_video)
    /// (HLS), in decode order among the other frames. True when there are such pictures.
    pub fn emit_source_video(&mut self) -> bool {
        match self.video.as_mut().map(|v| &mut v.codec) {
            Some(VideoCodec::Reordered(video)) => {
                video.emit_own();
                true
            }
            _ => false,
        }
    }

    /// Goes back to the start of the file (a looping translation): every track to its
    /// first sample, and a fresh AAC decoder, since its state belongs to the last pass.
    pub fn rewind(&mut self) -> Result<(), StreamError> {
        if let Some(v) = &mut self.video {
            v.lane.rewind();
            if let VideoCodec::Transcoded {
                transcode,
                input,
                output,
                speed,
                ..
            } = &mut v.codec
            {
                // The old thread's decoder state belongs to the last pass; it ends when
                // its queues are dropped.
                *transcode =
                    TranscodedVideo::start_measured(input.clone(), *output, speed.clone())?;
            }
            if let VideoCodec::Reordered(video) = &mut v.codec {
                video.rewind()?;
            }
        }
        if let Some(a) = &mut self.audio {
            a.lane.rewind();
            a.pending.clear();
            if let Some(aac) = &mut a.aac {
                aac.clear();
            }
            match (&mut a.codec, &a.lane.track.codec) {
                (
                    AudioCodec::Aac(t),
                    Codec::Aac {
                        audio_specific_config,
                        ..
                    },
                ) => {
                    **t = AacToOpus::new(audio_specific_config)
                        .map_err(|e| StreamError::WrongFormat(e.to_string()))?;
                }
                (AudioCodec::Decoded(d), Codec::OtherAudio { .. }) => {
                    // Fresh state, and the timeline restarts at the first packet's time.
                    d.1 = PcmToOpus::new().map_err(|e| StreamError::Other(e.to_string()))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The next frame in decode order across tracks, `None` at the end of the file.
    ///
    /// Audio is ordered by the time of each Opus packet, not of the AAC frame that
    /// completed it: a packet comes out of the transcoder only once the AAC after it has
    /// gone in (one AAC frame is 21–23 ms, the decoder and resampler hold some back), so
    /// taken in AAC order it would follow the pictures of the next 20–60 ms and reach the
    /// browser that much after its sender-report time. The browser's A/V sync corrects
    /// that only a few ms a second: the sound of the first seconds came late.
    ///
    /// A growing file: at the end of what is indexed, the reader looks for new fragments;
    /// with none yet it returns `None` and [`FrameSource::pending`] says when to ask
    /// again. A frame of one track goes out while the other is at its end only when it
    /// comes before that end (so the order stays right) or [`TRACK_LAG_US`] after it.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            match self.read_routed()? {
                None => return Ok(None),
                Some(r) if !r.source_video => return Ok(Some(r.frame)),
                Some(_) => {}
            }
        }
    }

    /// [`Self::read_frame`] with whom each frame is for: the file's own pictures of a
    /// video re-encoded on demand come too when asked ([`Self::emit_source_video`]).
    pub fn read_routed(&mut self) -> Result<Option<Routed>, StreamError> {
        loop {
            let Some((frame, source_video)) = self.read_any()? else {
                return Ok(None);
            };
            let wanted = !source_video
                || matches!(
                    self.video.as_ref().map(|v| &v.codec),
                    Some(VideoCodec::Reordered(v)) if v.emits_own()
                );
            if wanted {
                return Ok(Some(Routed {
                    frame,
                    source_video,
                }));
            }
        }
    }

    /// The next item, own pictures of a re-encoded-on-demand video marked `true`.
    fn read_any(&mut self) -> Result<Option<(Frame, bool)>, StreamError> {
        self.pending = None;
        loop {
            let growing = self.growing.is_some();
            let video_dts = match self.video.as_mut() {
                Some(v) => v.next_dts_us(&self.source, growing)?,
                None => None,
            };
            let audio_dts = match self.audio.as_mut() {
                Some(a) => a.next_dts_us(&self.source, growing)?,
                None => None,
            };
            let video_ended = self.video.is_some() && video_dts.is_none();
            let audio_ended = self.audio.is_some() && audio_dts.is_none();
            if growing && (video_ended || audio_ended) {
                match self.follow_growth()? {
                    Check::Grew | Check::Finished => continue,
                    Check::Waiting => {
                        if !self.may_pass_ended_track(video_dts, audio_dts) {
                            self.pending = Some(POLL_INTERVAL);
                            return Ok(None);
                        }
                    }
                }
            }
            return self.take_next(video_dts, audio_dts);
        }
    }

    /// One track of a growing file is at its end: may the other's next frame (at
    /// `video_dts` / `audio_dts`) go out before more of the ended one comes?
    fn may_pass_ended_track(&self, video_dts: Option<i64>, audio_dts: Option<i64>) -> bool {
        // The end of a track in stream time; later samples of it come after it. Opus
        // packets leave AUDIO_LEAD_US early and the transcoder holds a frame or two.
        let end_of = |lane: &SampleLane, margin: i64| lane.track.duration_us() - margin;
        let (next, ended_end) = match (video_dts, audio_dts) {
            (Some(v), None) => match &self.audio {
                Some(a) => (v, end_of(&a.lane, AUDIO_LEAD_US + 50_000)),
                None => return true,
            },
            (None, Some(a)) => match &self.video {
                Some(v) => (a, end_of(&v.lane, 0)),
                None => return true,
            },
            _ => return false,
        };
        next < ended_end || next >= ended_end + TRACK_LAG_US
    }

    fn take_next(
        &mut self,
        video_dts: Option<i64>,
        audio_dts: Option<i64>,
    ) -> Result<Option<(Frame, bool)>, StreamError> {
        let audio = |r: &mut Self| r.take_audio().map(|f| (f, false));
        match (video_dts, audio_dts) {
            (None, None) => Ok(None),
            (Some(v), Some(a)) if a < v => Ok(audio(self)),
            (Some(_), _) => self.read_video().map(Some),
            (None, Some(_)) => Ok(audio(self)),
        }
    }

    /// The next video item; `true` with a picture of the file's own beside a re-encode.
    fn read_video(&mut self) -> Result<(Frame, bool), StreamError> {
        // Invariant: only called when `next_dts_us` found a sample on the video track.
        let v = self.video.as_mut().expect("video track present");
        let avc = match &mut v.codec {
            VideoCodec::Direct(avc) => avc,
            VideoCodec::Transcoded { transcode, .. } => {
                return transcode
                    .take()
                    .map(|f| (f, false))
                    .ok_or_else(|| StreamError::Streaming("no transcoded frame ready".into()));
            }
            VideoCodec::Reordered(video) => {
                return video
                    .take()
                    .map(|(f, out)| (f, out == reordered::Output::Own))
                    .ok_or_else(|| StreamError::Streaming("no video frame ready".into()));
            }
        };
        let (i, sample) = v
            .lane
            .take(&self.source)?
            .ok_or_else(|| StreamError::Streaming("video sample index out of range".into()))?;
        let bytes = self.source.read_at(sample.offset, sample.size as usize)?;
        self.annex_b.clear();
        h264::sample_to_annex_b(avc, &bytes, sample.sync, &mut self.annex_b)
            .map_err(|e| StreamError::Streaming(format!("bad H.264 sample {i}: {e}")))?;
        let (dts_us, pts_us) = sample_times_us(&v.lane.track, &sample);
        let frame = Frame {
            kind: MediaKind::Video,
            dts_us,
            pts_us,
            keyframe: sample.sync,
            data: Arc::from(self.annex_b.as_slice()),
        };
        Ok((frame, false))
    }

    /// The audio frame [`AudioTrack::next_dts_us`] made ready: the earlier of the next
    /// Opus packet and the next AAC access unit.
    fn take_audio(&mut self) -> Option<Frame> {
        let a = self.audio.as_mut()?;
        let opus = a.pending.front().map(|f| f.dts_us);
        let aac = a.aac.as_ref().and_then(|q| q.front()).map(|f| f.dts_us);
        match (opus, aac) {
            (Some(o), Some(c)) if c < o => a.aac.as_mut().and_then(VecDeque::pop_front),
            (None, Some(_)) => a.aac.as_mut().and_then(VecDeque::pop_front),
            _ => a.pending.pop_front(),
        }
    }
}

impl AudioTrack {
    /// The time of the next audio frame, reading and transcoding samples until there is
    /// one (`None` at the end of the track, after what the transcoder still held). With
    /// AAC asked for, the earlier of the next Opus packet and the next AAC unit: an AAC
    /// unit is read before the packets made from it come out, so it is always queued
    /// by the time a packet of a later time is. `growing`: more samples may still come,
    /// so the transcoder keeps what it holds (flushing ends its run).
    fn next_dts_us(
        &mut self,
        source: &impl ByteSource,
        growing: bool,
    ) -> Result<Option<i64>, StreamError> {
        while self.pending.is_empty() {
            let Some((i, sample)) = self.lane.take(source)? else {
                if growing {
                    break;
                }
                // Empty once flushed: the transcoder's run is over.
                let flushed = match &mut self.codec {
                    AudioCodec::Aac(t) => t.flush().ok(),
                    AudioCodec::Decoded(d) => d.1.flush().ok(),
                    AudioCodec::Opus => None,
                };
                if let Some(packets) = flushed {
                    self.pending.extend(packets.into_iter().map(opus_frame));
                }
                break;
            };
            let bytes = source.read_at(sample.offset, sample.size as usize)?;
            let (_, pts_us) = sample_times_us(&self.lane.track, &sample);
            if let Some(aac) = &mut self.aac {
                // Priming before stream time 0 is cut by the edit list, as for Opus.
                if pts_us >= 0 {
                    aac.push_back(Frame {
                        kind: MediaKind::Aac,
                        dts_us: pts_us,
                        pts_us,
                        keyframe: true,
                        data: Arc::from(&bytes[..]),
                    });
                }
            }
            match &mut self.codec {
                // Opus pre-skip makes the first packet start before 0: cut, as the edit says.
                AudioCodec::Opus if pts_us < 0 => {}
                AudioCodec::Opus => self.pending.push_back(audio_frame(pts_us, &bytes)),
                AudioCodec::Aac(t) => match t.push(&bytes, pts_us) {
                    // Packets before stream time 0 are the encoder's priming, which the
                    // edit list cuts: sending them would put two packets on RTP time 0.
                    Ok(packets) => self.pending.extend(
                        packets
                            .into_iter()
                            .filter(|p| p.pts_us >= 0)
                            .map(opus_frame),
                    ),
                    Err(e) => warn!("AAC frame {i} skipped: {e}"),
                },
                AudioCodec::Decoded(d) => {
                    let (decoder, opus) = &mut **d;
                    match decoder.push(&bytes, pts_us) {
                        Ok(pcm) => match opus.push(&pcm.samples, pcm.pts_us) {
                            Ok(packets) => self.pending.extend(
                                packets
                                    .into_iter()
                                    .filter(|p| p.pts_us >= 0)
                                    .map(opus_frame),
                            ),
                            Err(e) => warn!("audio frame {i} skipped: {e}"),
                        },
                        Err(e) => warn!("audio frame {i} skipped: {e}"),
                    }
                }
            }
        }
        let opus = self.pending.front().map(|f| f.dts_us);
        let aac = self.aac.as_ref().and_then(|q| q.front()).map(|f| f.dts_us);
        Ok(match (opus, aac) {
            (Some(o), Some(c)) => Some(o.min(c)),
            (o, c) => o.or(c),
        })
    }
}

impl<S: ByteSource> FrameSource for MediaReader<S> {
    fn next_frame(&mut self) -> Result<Option<Frame>, StreamError> {
        self.read_frame()
    }

    fn next_routed(&mut self) -> Result<Option<Routed>, StreamError> {
        self.read_routed()
    }

    fn pending(&self) -> Option<Duration> {
        self.pending
    }
}

fn opus_frame(p: codec::audio::OpusPacket) -> Frame {
    audio_frame(p.pts_us, &p.data)
}

/// An Opus packet at `pts_us`, due to leave [`AUDIO_LEAD_US`] before its time.
fn audio_frame(pts_us: i64, data: &[u8]) -> Frame {
    Frame {
        kind: MediaKind::Audio,
        dts_us: pts_us - AUDIO_LEAD_US,
        pts_us,
        keyframe: true,
        data: Arc::from(data),
    }
}

/// Runs the demuxer's open loop over `source`. What the opener holds (the read in hand,
/// twice: ours and its copy; the index built so far) is reserved from `budget` before
/// each read, and the finished index stays reserved.
/// A growing file (a recording being written) is opened up to its first fragment and
/// comes with the follower of its fragments.
fn open_movie(
    source: &impl ByteSource,
    budget: &Arc<MemoryBudget>,
) -> Result<(Movie, Reservation, Option<FragmentFollower>), StreamError> {
    let size = source.size();
    if size == 0 {
        return Err(StreamError::WrongFormat("file is empty".into()));
    }
    let mut held = budget.reserve();
    // Paged: the sample tables stay in the file (see the module docs). Fragmented files
    // are indexed in memory: one file may not take more than the budget, nor the
    // demuxer's own limit.
    let mut opener = MovieOpener::paged(size);
    opener.set_index_limit(mp4::DEFAULT_INDEX_LIMIT.min(budget.limit()));
    if source.growth().is_some_and(|g| g.writing) {
        opener.leave_fragments();
    }
    loop {
        match opener
            .poll()
            .map_err(|e| StreamError::WrongFormat(e.to_string()))?
        {
            OpenStep::Done(movie) => {
                let index: usize = movie.tracks.iter().map(|t| t.samples.heap_bytes()).sum();
                held.resize(index as u64)
                    .map_err(|e| over_budget(e.limit))?;
                return Ok((movie, held, opener.take_follower()));
            }
            OpenStep::Read { offset, len } => {
                let in_hand = opener.index_bytes().saturating_add(len.saturating_mul(2));
                held.resize(in_hand).map_err(|e| over_budget(e.limit))?;
                let len = len.min(size.saturating_sub(offset)) as usize;
                let data = source.read_at(offset, len)?;
                opener
                    .feed(offset, &data)
                    .map_err(|e| StreamError::WrongFormat(e.to_string()))?;
            }
        }
    }
}

/// `profile_idc` of what the transcode sends: constrained baseline (x264's `baseline`).
const CONSTRAINED_BASELINE: u8 = 0x42;

/// The transcode of `track`'s video, if the server allows one more.
fn transcoded(
    track: &Track,
    codec: CodecKind,
    config: Vec<u8>,
    policy: TranscodePolicy,
) -> Result<VideoCodec, StreamError> {
    if policy.disabled {
        return Err(StreamError::Other(TRANSCODING_DISABLED.into()));
    }
    let busy = VideoTranscoderBusy::try_start(policy.max_video)
        .ok_or_else(|| StreamError::Other(NO_TRANSCODERS.into()))?;
    let input = video_input(track, codec, config);
    let output = policy.video.unwrap_or_default();
    let speed = Arc::<TranscodeSpeed>::default();
    Ok(VideoCodec::Transcoded {
        transcode: TranscodedVideo::start_measured(input.clone(), output, speed.clone())?,
        input,
        output,
        _busy: busy,
        speed,
    })
}

/// What the video decoder of `track` is told: its codec, configuration and frame rate.
fn video_input(track: &Track, codec: CodecKind, config: Vec<u8>) -> VideoInput {
    let duration_us = track.duration_us();
    let frame_rate = if duration_us > 0 {
        track.samples.len() as f64 * 1_000_000.0 / duration_us as f64
    } else {
        0.0
    };
    VideoInput {
        codec,
        config,
        frame_rate,
    }
}

/// The decoder and Opus encoder for audio in `codec`.
fn decoded_audio(
    codec: CodecKind,
    config: &[u8],
    sample_rate: u32,
    channels: u16,
) -> Result<(AudioDecoder, PcmToOpus), StreamError> {
    let decoder = AudioDecoder::new(&AudioInput {
        codec,
        config: config.to_vec(),
        sample_rate,
        channels,
    })
    .map_err(|e| StreamError::WrongFormat(e.to_string()))?;
    let opus = PcmToOpus::new().map_err(|e| StreamError::Other(e.to_string()))?;
    Ok((decoder, opus))
}

fn over_budget(limit: u64) -> StreamError {
    StreamError::ReadFailed(format!(
        "the memory for file indexes is in use by other streams \
         (vod_index_memory_mb={}); try again later",
        limit >> 20
    ))
}

/// Fails a file whose sample tables point past its end (the first part of a download or
/// copy): it would play for the moment its bytes last and then stop with no word why.
/// The file's size is known when it is opened (local files and S3 objects alike), so
/// this is said before PLAYING. A file that shrinks while it plays fails its read instead.
fn refuse_cut_short(movie: &Movie, size: u64) -> Result<(), StreamError> {
    let missing: u64 = movie
        .tracks
        .iter()
        .map(|t| u64::from(t.samples_beyond_eof))
        .sum();
    if missing == 0 {
        return Ok(());
    }
    let kept: usize = movie.tracks.iter().map(|t| t.samples.len()).sum();
    Err(StreamError::WrongFormat(format!(
        "the file is cut short: it ends after {size} bytes, but its tables describe \
         {missing} more samples past that end ({kept} are inside it); \
         an incomplete download or copy?"
    )))
}

/// Decode and presentation time of a sample on the stream timeline, edit list applied.
fn sample_times_us(track: &Track, s: &mp4::SampleInfo) -> (i64, i64) {
    (
        track.to_us(track.decode_time(s)),
        track.to_us(track.presentation_time(s)),
    )
}

/// The average rate at which playback consumes the file (the whole file over its
/// duration: an overestimate by the size of the movie structure, which is small).
fn bytes_per_second(size: u64, duration_us: i64) -> u64 {
    match u64::try_from(duration_us) {
        Ok(us) if us > 0 => (u128::from(size) * 1_000_000 / u128::from(us))
            .try_into()
            .unwrap_or(u64::MAX),
        _ => 0,
    }
}

fn track_duration_us(track: &Track) -> i64 {
    track.duration_us()
}

/// True when composition offsets vary: pictures are stored out of presentation order.
fn has_reordering(track: &Track) -> bool {
    track.samples.cts_offsets_vary()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::{sample_bytes as sample, Memory};
    use bytes::Bytes;
    use std::process::Command;

    #[test]
    fn a_file_cut_short_after_its_moov_is_refused_at_open_with_the_reason() {
        // The first 60 KB of a faststart file: the moov is whole, the media is not.
        let cut = sample().slice(..60 * 1024);
        let err = MediaReader::open(Memory(cut))
            .err()
            .expect("a cut file must not open");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "File has wrong format: the file is cut short: it ends after 61440 bytes, \
                 but its tables describe "
            ),
            "{text}"
        );
        // The whole file opens.
        assert!(MediaReader::open(Memory(sample())).is_ok());
    }

    #[test]
    fn an_index_over_the_budget_fails_and_gives_the_budget_back() {
        // A budget smaller than what opening holds (its reads): the open fails with the
        // budget's reason and holds nothing afterwards.
        let budget = MemoryBudget::new(1024);
        let err = MediaReader::open_within(Memory(sample()), &budget, TranscodePolicy::default())
            .err()
            .expect("over budget");
        assert!(
            err.to_string()
                .contains("the memory for file indexes is in use by other streams"),
            "{err}"
        );
        assert_eq!(budget.used(), 0);
        // With room, a plain MP4 holds nothing once open (its tables stay in the file).
        let budget = MemoryBudget::new(1 << 20);
        let reader =
            MediaReader::open_within(Memory(sample()), &budget, TranscodePolicy::default())
                .unwrap();
        assert_eq!(budget.used(), 0);
        drop(reader);
    }

    /// The lip-sync probe as scripts/make-test-media makes it, shorter: black with a white
    /// picture and a 1 kHz beep starting at each whole second; AAC at 44.1 kHz (23.2 ms
    /// frames against Opus' 20 ms, through the resampler). `None` without ffmpeg
    /// (a failure under CI=true).
    fn probe_file(seconds: u32) -> Option<Bytes> {
        if !test_support::tools_available(&["ffmpeg"], "the A/V order tests") {
            return None;
        }
        let path = test_support::temp_dir("reader").join(format!("probe{seconds}.mp4"));
        let video = format!(
            "color=c=black:s=160x120:r=25:d={seconds},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),0.12)'"
        );
        let audio = format!(
            "aevalsrc=exprs='if(lt(mod(t,1),0.1),0.5*sin(2*PI*1000*t),0)':s=44100:d={seconds}:c=stereo"
        );
        let status = Command::new("ffmpeg")
            .args([
                "-v", "error", "-y", "-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio,
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "25",
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart"])
            .arg(&path)
            .status()
            .expect("ffmpeg ran a moment ago");
        assert!(status.success(), "ffmpeg failed ({status})");
        let data = std::fs::read(&path).expect("ffmpeg wrote its output");
        let _ = std::fs::remove_file(&path);
        Some(Bytes::from(data))
    }

    fn all_frames(file: Bytes) -> Vec<Frame> {
        let mut reader = MediaReader::open(Memory(file)).expect("the probe file opens");
        std::iter::from_fn(|| reader.read_frame().expect("the probe file reads")).collect()
    }

    #[test]
    fn frames_come_in_the_order_they_are_due_audio_by_its_own_packet_time() {
        let Some(file) = probe_file(3) else {
            return;
        };
        let frames = all_frames(file);
        let audio = frames.iter().filter(|f| f.kind == MediaKind::Audio).count();
        let video = frames.len() - audio;
        assert_eq!(video, 75, "3 s at 25 fps");
        assert!((148..=152).contains(&audio), "{audio} Opus packets for 3 s");
        for f in frames.iter().filter(|f| f.kind == MediaKind::Audio) {
            assert_eq!(
                f.dts_us,
                f.pts_us - AUDIO_LEAD_US,
                "audio leaves ahead of its time"
            );
        }
        // The pacer sends frames in this order, each at its dts: a frame behind one with a
        // later dts leaves late. Taken in AAC order, Opus packets came 20-60 ms late.
        for pair in frames.windows(2) {
            assert!(
                pair[0].dts_us <= pair[1].dts_us,
                "{:?} at {} us is read before {:?} at {} us",
                pair[0].kind,
                pair[0].dts_us,
                pair[1].kind,
                pair[1].dts_us
            );
        }
    }
}
