//! The video of a translation whose file is H.264 with B-frames: its own pictures for the
//! sinks whose players reorder (HLS), and an H.264 re-encode without B-frames for the
//! others (WebRTC) only while one is wanted ([`ReencodeDemand`]).
//!
//! Owns: one lane of the file's samples fed to two outputs, the file's own pictures (as
//! Annex-B, at their decode time with their composition offset: HLS carries them as they
//! are) and, while wanted, the transcode thread ([`TranscodedVideo`]); starting that
//! thread at the next keyframe read when the re-encode becomes wanted, and dropping it
//! (and its slot) when it no longer is; handing out whichever of the two comes first.
//! So an HLS-only translation of such a file costs no encoder.
//!
//! A re-encode started mid-file begins at the next keyframe the reader reaches (up to a
//! GOP plus the read-ahead after a WebRTC viewer arrives); the translation keeps it a
//! while after its last viewer leaves (`live`), so a viewer coming back does not wait.

use std::collections::VecDeque;
use std::sync::Arc;

use ::transcode::VideoInput;
use codec::h264::{self, AvcConfig};
use tracing::info;

use super::constraints::VideoConstraints;
use super::reencode_demand::ReencodeDemand;
use super::transcode::{Sample, TranscodeSpeed, TranscodedVideo};
use super::StreamError;
use crate::media::{Frame, MediaKind};

/// Which of the two outputs a video item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A picture of the file's own H.264.
    Own,
    /// A picture of the re-encode.
    Reencoded,
}

/// See the module docs.
pub struct ReorderedVideo {
    avc: AvcConfig,
    input: VideoInput,
    demand: Arc<ReencodeDemand>,
    speed: Arc<TranscodeSpeed>,
    transcode: Option<TranscodedVideo>,
    /// The re-encode has been given its first keyframe (it starts at one).
    keyed: bool,
    /// The file's pictures read and not handed out yet.
    own: VecDeque<Frame>,
    /// Own pictures are wanted by a sink (else they only keep the lane moving, bytes
    /// left out).
    emit_own: bool,
    /// Which output the last `next_dts_us` found first.
    next: Option<Output>,
    annex_b: Vec<u8>,
}

impl ReorderedVideo {
    /// The file's video (`avc`; `input` for its decoder), re-encoded while `demand`
    /// wants it, the transcode's speed kept in `speed`.
    pub fn new(
        avc: AvcConfig,
        input: VideoInput,
        demand: Arc<ReencodeDemand>,
        speed: Arc<TranscodeSpeed>,
    ) -> Self {
        ReorderedVideo {
            avc,
            input,
            demand,
            speed,
            transcode: None,
            keyed: false,
            own: VecDeque::new(),
            emit_own: false,
            next: None,
            annex_b: Vec::new(),
        }
    }

    /// Hand out the file's own pictures too (a sink carries them: HLS).
    pub fn emit_own(&mut self) {
        self.emit_own = true;
    }

    /// The re-encode's speed (kept across its restarts).
    pub fn speed(&self) -> Arc<TranscodeSpeed> {
        self.speed.clone()
    }

    /// Own pictures are handed out.
    pub fn emits_own(&self) -> bool {
        self.emit_own
    }

    /// Back to the file's start (a looping translation): a running re-encode restarts
    /// fresh (its decoder's state belongs to the last pass).
    pub fn rewind(&mut self) -> Result<(), StreamError> {
        self.own.clear();
        self.next = None;
        if self.transcode.is_some() {
            self.transcode = Some(self.start()?);
            self.keyed = false;
        }
        Ok(())
    }

    fn start(&self) -> Result<TranscodedVideo, StreamError> {
        TranscodedVideo::start_measured(
            self.input.clone(),
            VideoConstraints::default(),
            self.speed.clone(),
        )
    }

    /// Starts or stops the re-encode as the demand says.
    fn follow_demand(&mut self) -> Result<(), StreamError> {
        match (self.demand.is_wanted(), self.transcode.is_some()) {
            (true, false) => {
                self.transcode = Some(self.start()?);
                self.keyed = false;
                info!("video re-encode started (a viewer needs H.264 without B-frames)");
            }
            (false, true) => {
                // Dropping its queues ends the thread.
                self.transcode = None;
                info!("video re-encode stopped (no viewer needs it)");
            }
            _ => {}
        }
        Ok(())
    }

    /// The time of the next video item of either output (`None` at the end of the
    /// track, or for now when `growing`), reading samples from `next_sample` as needed.
    pub fn next_dts_us(
        &mut self,
        growing: bool,
        mut next_sample: impl FnMut() -> Result<Option<Sample>, StreamError>,
    ) -> Result<Option<i64>, StreamError> {
        self.follow_demand()?;
        let Self {
            avc,
            transcode,
            keyed,
            own,
            emit_own,
            annex_b,
            ..
        } = self;
        // Every sample read becomes an own picture; the re-encode gets them from its
        // first keyframe on.
        // Without a re-encode, one sample is read only when no own picture waits.
        let mut read = |for_transcode: bool| -> Result<Option<Sample>, StreamError> {
            if !for_transcode && !own.is_empty() {
                return Ok(None);
            }
            loop {
                let Some(s) = next_sample()? else {
                    return Ok(None);
                };
                own.push_back(own_picture(avc, &s, *emit_own, annex_b)?);
                if !for_transcode {
                    return Ok(Some(s));
                }
                if *keyed || s.keyframe {
                    *keyed = true;
                    return Ok(Some(s));
                }
            }
        };
        let reencoded = if let Some(t) = transcode {
            t.next_dts_us(growing, || read(true))?
        } else {
            read(false)?;
            None
        };
        let own_dts = self.own.front().map(|f| f.dts_us);
        let (dts, next) = match (own_dts, reencoded) {
            (Some(o), Some(r)) if r < o => (Some(r), Some(Output::Reencoded)),
            (Some(o), _) => (Some(o), Some(Output::Own)),
            (None, Some(r)) => (Some(r), Some(Output::Reencoded)),
            (None, None) => (None, None),
        };
        self.next = next;
        Ok(dts)
    }

    /// Takes the item [`Self::next_dts_us`] found, with which output it is.
    pub fn take(&mut self) -> Option<(Frame, Output)> {
        match self.next.take()? {
            Output::Own => self.own.pop_front().map(|f| (f, Output::Own)),
            Output::Reencoded => self
                .transcode
                .as_mut()
                .and_then(TranscodedVideo::take)
                .map(|f| (f, Output::Reencoded)),
        }
    }
}

/// The file's picture `s` as a frame: Annex-B with SPS/PPS before a keyframe, at its
/// decode time with its presentation time; no bytes when nobody takes own pictures.
fn own_picture(
    avc: &AvcConfig,
    s: &Sample,
    with_bytes: bool,
    annex_b: &mut Vec<u8>,
) -> Result<Frame, StreamError> {
    annex_b.clear();
    if with_bytes {
        h264::sample_to_annex_b(avc, &s.data, s.keyframe, annex_b)
            .map_err(|e| StreamError::Streaming(format!("bad H.264 sample: {e}")))?;
    }
    Ok(Frame {
        kind: MediaKind::Video,
        dts_us: s.dts_us,
        pts_us: s.pts_us,
        keyframe: s.keyframe,
        data: Arc::from(annex_b.as_slice()),
    })
}
