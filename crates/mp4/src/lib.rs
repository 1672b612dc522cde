//! # reelcast-mp4: a sans-IO MP4 demuxer with a compact sample index
//!
//! This crate finds out what an MP4 file holds — its video and audio tracks, their
//! codecs, and where every sample is and when it plays — **without doing any I/O**.
//! The caller reads bytes (a local file with positional reads, an S3 object with
//! ranged GETs, a test's `Vec<u8>`) and feeds them in; the crate says which byte range
//! it needs next. It never asks for `mdat` payload: reading samples is the caller's
//! job, using the offsets and sizes from the [`SampleIndex`].
//!
//! ## The open loop
//!
//! [`MovieOpener::poll`] returns either [`OpenStep::Read`] (read this range and call
//! [`MovieOpener::feed`]) or [`OpenStep::Done`] with the [`Movie`].
//!
//! ```no_run
//! use std::fs::File;
//! use std::os::unix::fs::FileExt;
//! use mp4::{MovieOpener, OpenStep};
//!
//! fn open(path: &str) -> Result<mp4::Movie, Box<dyn std::error::Error>> {
//!     let file = File::open(path)?;
//!     let mut opener = MovieOpener::new(file.metadata()?.len());
//!     loop {
//!         match opener.poll()? {
//!             OpenStep::Read { offset, len } => {
//!                 let mut buf = vec![0; len as usize];
//!                 let mut got = 0;
//!                 while got < buf.len() {
//!                     match file.read_at(&mut buf[got..], offset + got as u64)? {
//!                         0 => break, // the file shrank: feed what there is
//!                         n => got += n,
//!                     }
//!                 }
//!                 opener.feed(offset, &buf[..got])?;
//!             }
//!             OpenStep::Done(movie) => return Ok(movie),
//!         }
//!     }
//! }
//!
//! let movie = open("movie.mp4").unwrap();
//! for track in &movie.tracks {
//!     println!("track {} {:?}: {} samples", track.id, track.codec, track.samples.len());
//!     let index = track.samples.index().expect("MovieOpener::new indexes every track");
//!     for s in index.iter().take(3) {
//!         let pts_us = track.to_us(track.presentation_time(&s));
//!         println!("  {} bytes at {} plays at {pts_us} µs, key={}", s.size, s.offset, s.sync);
//!     }
//! }
//! ```
//!
//! Reads are: 16 bytes at each top-level box, the whole `ftyp` and each `moof`, and the
//! `moov` box by box, at most 64 KiB at a time: only the boxes the demuxer needs are
//! read (small leaves whole, sample tables only their first bytes, then their entries in
//! 64 KiB windows for one checking pass); the rest (`udta`, `meta`, `free`, …) is
//! skipped by its size. A faststart file of a few minutes opens in a handful of reads; a
//! file with the `moov` at the end costs one 16-byte read per top-level box before it. A
//! fragmented file costs a read per fragment. [`open_in_memory`] runs the loop over a
//! byte slice.
//!
//! ## What it understands
//! - `moov` before or after `mdat`; 32-bit, 64-bit (`size == 1`) and to-end (`size == 0`)
//!   box sizes.
//! - Progressive sample tables: `stts`, `ctts` (v0 and v1, negative offsets), `stsc`,
//!   `stsz`, `stz2`, `stco`, `co64`, `stss` (absent: every sample is sync).
//! - Fragmented files (`mvex`/`trex` + `moof`/`mdat` pairs, as `ffmpeg -movflags
//!   frag_keyframe+empty_moov[+default_base_moof]` writes): `tfhd` defaults,
//!   `tfdt`, `trun` with every optional field, base-data-offset rules.
//! - Edit lists: leading empty edits (delay) and one normal edit whose media time is
//!   shifted to zero; see [`EditShift`] for what is ignored.
//! - Codecs: H.264 (`avc1`, `avc3` with `avcC`), AAC (`mp4a` + `esds`, object types
//!   0x40 and 0x66–0x68, sample rate and channels from the AudioSpecificConfig),
//!   Opus (`Opus` + `dOps`); for the server to transcode, HEVC, VP9, AV1 and MPEG-4 Part 2
//!   video and MP3, AC-3, E-AC-3 and FLAC audio (`Codec::OtherVideo`, `Codec::OtherAudio`,
//!   with their decoder configuration). Any other sample entry is returned as
//!   [`Codec::Unsupported`] with its fourcc and an empty sample index, so the server
//!   can say what it cannot play.
//! - Only tracks with handler `vide` or `soun`; text, timecode, hint and metadata
//!   tracks are skipped. Only the first sample description of a track is used.
//!
//! ## Files still being written
//! A recording written as fragments can be played while it grows:
//! [`MovieOpener::leave_fragments`] opens only up to the first fragment, and the
//! [`FragmentFollower`] it hands over indexes whole fragments (every sample's bytes
//! inside the file) as the caller reports the file's new size, each as a
//! [`SampleIndex`] to [`SampleIndex::append`] to its track. A fragment still being
//! written is simply not whole yet; what was indexed stays valid as the file only grows.
//!
//! ## What it refuses, and how
//! Malformed input never panics; it yields an [`Mp4Error`] whose message a user can
//! read: `not an MP4 file`, `no moov box: not a playable MP4`, `truncated file: moov
//! box ends past end of file`, `box size 3 is smaller than its header at offset 1234`,
//! `damaged stts box at offset …: …`. Allocations are sized by the bytes present,
//! never by counts read from the file; the moov is capped at [`MAX_MOOV_SIZE`] (and never
//! held: at most 65 536 boxes are walked in it, 4 MiB of `stsd`/`elst` kept), a moof at
//! [`MAX_MOOF_SIZE`], a track at 2^26 samples, the in-memory indexes at
//! [`MovieOpener::set_index_limit`] ([`DEFAULT_INDEX_LIMIT`]). Box nesting is walked
//! along the fixed path moov → trak → mdia → minf → stbl → stsd, so depth is bounded by
//! construction. Samples whose bytes lie past the end of a truncated file are dropped
//! and counted in [`Track::samples_beyond_eof`]. A movie with no video or audio track
//! opens with `tracks` empty: the caller decides that is unplayable.
//!
//! ## Memory
//! Two ways to hold a track's samples ([`SampleTable`]):
//! - [`MovieOpener::paged`]: a progressive file's `stbl` tables stay in the file; the
//!   movie holds where they are (a few hundred bytes per track) and a [`SampleWalker`]
//!   reads them 4 KiB at a time as playback advances. Memory does not grow with the
//!   file's length. This is what a server wants. Fragmented files are indexed.
//! - [`MovieOpener::new`]: a [`SampleIndex`] in memory, about as compact as the file's
//!   tables (sizes as `u32`, times and composition offsets as runs or small per-sample
//!   integers, one entry per run of contiguous samples, keyframes as ranges), with random
//!   access: `get(i)` is O(log n), [`SampleCursor`] walks samples in O(1) each. That is
//!   4 to 15 bytes per sample depending on how finely the file interleaves its tracks.
//!
//! Either way the opener decodes the tables once, from the file in 64 KiB windows, to
//! count the samples that lie inside the file and check that the tables can be read;
//! the same decoder serves both ways, so they cannot disagree (tested). The `moov` is
//! never read whole: what a file's `moov` claims (a 250 MB one is tested) costs the
//! opener a few 64 KiB reads.
//!
//! ## Writing
//! [`write`]: fragmented MP4 (init segment, fragments) as HLS and the recorder make it,
//! and [`write::finalize`], from a fragmented file (or the complete fragments of a torn
//! one) to a progressive MP4 with its `moov` first, in bounded memory.
//!
//! ## Why not `mp4-atom`
//! The box decoding here is a small bounded reader ([`reader`](crate) module, private)
//! instead of the `mp4-atom` crate: we need to go straight from table bytes to the
//! compact index (decoding into owned `Vec`s of entries first would double peak
//! memory for long files), to bound every allocation by the bytes present, and to keep
//! the dependency list at `thiserror` alone on a 2-core build machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
mod error;
mod follow;
mod fragment;
mod index;
mod moov;
mod movie;
mod opener;
mod reader;
mod table;
mod walker;
pub mod write;

#[cfg(test)]
mod tests;

pub use codec::{AudioFormat, Codec, VideoFormat};
pub use error::{FourCc, Mp4Error};
pub use follow::{FollowStep, FragmentFollower};
pub use fragment::MAX_MOOF_SIZE;
pub use index::{SampleCursor, SampleIndex, SampleInfo};
pub use movie::{EditShift, Movie, Track, TrackKind};
pub use opener::{MovieOpener, OpenStep, DEFAULT_INDEX_LIMIT, MAX_MOOV_SIZE};
pub use table::PagedTables;
pub use walker::{SampleTable, SampleWalker, WalkStep};

/// Runs the open loop over a file that is already in memory.
pub fn open_in_memory(file: &[u8]) -> Result<Movie, Mp4Error> {
    let mut opener = MovieOpener::new(file.len() as u64);
    loop {
        match opener.poll()? {
            OpenStep::Read { offset, len } => {
                // Requests lie inside the file size given to `new`, so these conversions
                // and the slice are in range; `get` keeps it panic-free regardless.
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                let data = file.get(start..end.min(file.len())).unwrap_or_default();
                opener.feed(offset, data)?;
            }
            OpenStep::Done(movie) => return Ok(movie),
        }
    }
}
