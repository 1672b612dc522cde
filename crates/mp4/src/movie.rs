//! What an opened file is: a [`Movie`] of [`Track`]s, each with its codec, edit shift
//! and [`SampleIndex`](crate::index::SampleIndex). Plain data; no parsing here.

use crate::codec::Codec;
use crate::index::SampleInfo;
use crate::walker::SampleTable;

/// An opened MP4: its playable-looking tracks and a few facts about the file.
#[derive(Debug, Clone)]
pub struct Movie {
    /// Video (`vide`) and audio (`soun`) tracks in file order; other handler types
    /// (text, timecode, hint, metadata) are left out. May be empty; tracks may carry
    /// [`Codec::Unsupported`]: the caller decides what it can play.
    pub tracks: Vec<Track>,
    /// The longest track's presentation length (after its edit shift), in microseconds.
    pub duration_us: i64,
    /// `ftyp` major brand (`[0; 4]` when there is no `ftyp`, e.g. old QuickTime files).
    pub major_brand: [u8; 4],
    /// `ftyp` compatible brands.
    pub compatible_brands: Vec<[u8; 4]>,
    /// True when the moov has an `mvex` box (samples come from `moof` fragments).
    pub fragmented: bool,
    /// The movie timescale (`mvhd`).
    pub timescale: u32,
}

impl Movie {
    /// The first video track, if any.
    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Video)
    }

    /// The first audio track, if any.
    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Audio)
    }
}

/// Whether a track is picture or sound (from the `hdlr` handler type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// Handler `vide`.
    Video,
    /// Handler `soun`.
    Audio,
}

/// How the edit list (`elst`) maps media time to presentation time.
///
/// `presentation = media - media_time + delay`, all in the track's timescale.
/// Supported: any number of leading empty edits (`media_time = -1`, summed into
/// `delay`), followed by one normal edit whose `media_time` is shifted to 0 (ffmpeg
/// writes this for B-frame video and for AAC priming). Not applied, counted in
/// `ignored_entries`: edits after the first normal one (the file then plays from that
/// edit to the end of the media), the duration of the normal edit (no trimming at the
/// end), rates other than 1, negative media times other than -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EditShift {
    /// Media time (track ticks) that is presented first.
    pub media_time: i64,
    /// Empty time before the first sample is presented (track ticks).
    pub delay: i64,
    /// Edit-list entries that were not applied (see above).
    pub ignored_entries: u32,
}

impl EditShift {
    /// Maps a media time (e.g. a sample's pts) to presentation time, in track ticks.
    pub fn apply(&self, media_ticks: i64) -> i64 {
        media_ticks
            .saturating_sub(self.media_time)
            .saturating_add(self.delay)
    }
}

/// One video or audio track.
#[derive(Debug, Clone)]
pub struct Track {
    /// `tkhd` track id.
    pub id: u32,
    /// Video or audio.
    pub kind: TrackKind,
    /// Ticks per second of all times in this track (never 0).
    pub timescale: u32,
    /// The codec and its setup data.
    pub codec: Codec,
    /// Shift, in timescale units, to apply to media times (see [`EditShift`]).
    pub edit: EditShift,
    /// Where each sample is and when it plays: indexed in memory, or left in the file's
    /// tables (see [`MovieOpener::paged`](crate::MovieOpener::paged)). Empty for
    /// [`Codec::Unsupported`].
    pub samples: SampleTable,
    /// Samples the tables describe but whose bytes lie past the end of the file
    /// (a truncated download or recording); they are not in `samples`.
    pub samples_beyond_eof: u32,
}

impl Track {
    /// Converts ticks of this track's timescale to microseconds (rounding toward minus
    /// infinity). Exact for any i64 input; saturates at the i64 range.
    pub fn to_us(&self, ticks: i64) -> i64 {
        let ts = i128::from(self.timescale.max(1));
        let us = (i128::from(ticks) * 1_000_000).div_euclid(ts);
        i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
    }

    /// A sample's presentation time after the edit shift, in track ticks.
    pub fn presentation_time(&self, s: &SampleInfo) -> i64 {
        self.edit.apply(s.pts())
    }

    /// A sample's decode time after the edit shift, in track ticks.
    pub fn decode_time(&self, s: &SampleInfo) -> i64 {
        self.edit.apply(s.dts)
    }

    /// Presentation length of the track after the edit shift, in microseconds.
    pub fn duration_us(&self) -> i64 {
        self.to_us(self.edit.apply(self.samples.end_dts()))
    }
}
