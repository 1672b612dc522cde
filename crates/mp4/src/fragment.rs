//! Movie fragments (`moof`): append each track fragment's samples to its track.
//!
//! Owns: tfhd/tfdt/trun with all optional fields, defaults from trex and tfhd, and the
//! base-data-offset rules (explicit base, default-base-is-moof, first traf = moof start,
//! later trafs continue where the previous one's data ended; a trun without a data
//! offset continues after the previous trun). Must not touch: I/O, the moov.

use crate::error::Mp4Error;
use crate::moov::{TrackDraft, MAX_SAMPLES};
use crate::reader::Reader;

/// The largest `moof` read into memory (a fragment of an hour of video at 16 bytes per
/// sample is under 2 MB).
pub const MAX_MOOF_SIZE: u64 = 16 << 20;

const TFHD_BASE_DATA_OFFSET: u32 = 0x1;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x2;
const TFHD_DEFAULT_DURATION: u32 = 0x8;
const TFHD_DEFAULT_SIZE: u32 = 0x10;
const TFHD_DEFAULT_FLAGS: u32 = 0x20;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x20000;

const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x4;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;

const SAMPLE_IS_NON_SYNC: u32 = 0x1_0000;

/// Parses one moof payload (`moof_offset` = offset of the moof box's first byte) and
/// appends its samples to the matching drafts. Track fragments of unknown or
/// unindexed tracks are read (to follow the data position) but not stored.
pub(crate) fn parse_moof(
    moof: &mut Reader<'_>,
    moof_offset: u64,
    tracks: &mut [TrackDraft],
    file_size: u64,
    index_limit: u64,
) -> Result<(), Mp4Error> {
    let mut prev_data_end: Option<u64> = None;
    for child in moof.children() {
        let (h, mut traf) = child?;
        if &h.fourcc != b"traf" {
            continue;
        }
        let mut tfhd = None;
        let mut tfdt = None;
        let mut truns = Vec::new();
        for c in traf.children() {
            let (ch, cr) = c?;
            match &ch.fourcc {
                b"tfhd" => tfhd = Some(cr),
                b"tfdt" => tfdt = Some(cr),
                b"trun" => truns.push(cr),
                _ => {}
            }
        }
        let Some(mut tfhd) = tfhd else {
            return Err(traf.error("track fragment without tfhd"));
        };
        let (_, flags) = tfhd.full_box()?;
        let track_id = tfhd.u32()?;
        let base_data_offset = if flags & TFHD_BASE_DATA_OFFSET != 0 {
            Some(tfhd.u64()?)
        } else {
            None
        };
        if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
            tfhd.skip(4)?;
        }
        let other_tracks: u64 = tracks
            .iter()
            .filter(|t| t.id != track_id)
            .map(|t| t.builder.heap_bytes() as u64)
            .sum();
        let mut draft = tracks.iter_mut().find(|t| t.id == track_id);
        let trex = draft.as_ref().map(|d| d.trex).unwrap_or_default();
        let default_duration = if flags & TFHD_DEFAULT_DURATION != 0 {
            tfhd.u32()?
        } else {
            trex.duration
        };
        let default_size = if flags & TFHD_DEFAULT_SIZE != 0 {
            tfhd.u32()?
        } else {
            trex.size
        };
        let default_flags = if flags & TFHD_DEFAULT_FLAGS != 0 {
            tfhd.u32()?
        } else {
            trex.flags
        };
        let base = match base_data_offset {
            Some(b) => b,
            None if flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 => moof_offset,
            None => prev_data_end.unwrap_or(moof_offset),
        };
        if let (Some(d), Some(mut r)) = (draft.as_deref_mut(), tfdt) {
            let (v, _) = r.full_box()?;
            let t = if v == 1 {
                r.u64()?
            } else {
                u64::from(r.u32()?)
            };
            d.builder.align();
            d.builder.set_next_dts(i64::try_from(t).unwrap_or(i64::MAX));
        }
        let mut data_pos = base;
        for mut trun in truns {
            let (version, tflags) = trun.full_box()?;
            let entry = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS]
                .iter()
                .filter(|&&f| tflags & f != 0)
                .count()
                * 4;
            // Read the count and the optional fields, then bound the count.
            let raw_count = trun.u32()?;
            if tflags & TRUN_DATA_OFFSET != 0 {
                let off = trun.i32()?;
                data_pos = base.saturating_add_signed(i64::from(off));
            }
            let first_flags = if tflags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
                Some(trun.u32()?)
            } else {
                None
            };
            let count = if entry > 0 {
                if (raw_count as usize).saturating_mul(entry) > trun.remaining() {
                    return Err(trun.error(format!(
                        "says {raw_count} samples but holds only {} bytes",
                        trun.remaining()
                    )));
                }
                raw_count
            } else {
                // Every sample occupies default_size bytes: cap by the file size. Samples
                // of 0 bytes are capped as if of 1: a 36-byte trun of 16 million empty
                // samples took seconds of CPU to index (found by fuzzing).
                let cap = file_size / u64::from(default_size.max(1)) + 1;
                raw_count.min(u32::try_from(cap).unwrap_or(u32::MAX))
            };
            let indexed = draft.as_ref().is_some_and(|d| d.indexed());
            if !indexed {
                // Only the data position matters for the next traf.
                if tflags & TRUN_SIZE == 0 {
                    data_pos = data_pos
                        .saturating_add(u64::from(count).saturating_mul(u64::from(default_size)));
                    continue;
                }
            }
            if let Some(d) = draft.as_deref_mut().filter(|d| d.indexed()) {
                // The index grows by at least a size (4 bytes) per sample: refuse a run
                // that would take it past the limit before storing any of it (a 12-byte
                // `trun` with default sizes can claim millions of samples).
                let after = (d.builder.heap_bytes() as u64)
                    .saturating_add(u64::from(count).saturating_mul(4))
                    .saturating_add(other_tracks);
                if after > index_limit {
                    return Err(Mp4Error::IndexTooLarge { limit: index_limit });
                }
                d.builder.align();
                if u64::from(d.builder.time_samples()) + u64::from(count) > u64::from(MAX_SAMPLES) {
                    return Err(trun.error(format!(
                        "track {track_id} has more samples than this server handles"
                    )));
                }
                d.builder.push_chunk(data_pos, count);
            }
            for k in 0..count {
                let duration = if tflags & TRUN_DURATION != 0 {
                    trun.u32()?
                } else {
                    default_duration
                };
                let size = if tflags & TRUN_SIZE != 0 {
                    trun.u32()?
                } else {
                    default_size
                };
                let sflags = if tflags & TRUN_FLAGS != 0 {
                    trun.u32()?
                } else {
                    default_flags
                };
                let sflags = match first_flags {
                    Some(f) if k == 0 => f,
                    _ => sflags,
                };
                let cts = if tflags & TRUN_CTS != 0 {
                    let raw = trun.u32()?;
                    if version == 0 {
                        // Unsigned in version 0; values past i32::MAX are read as
                        // negative, as players do.
                        raw as i32
                    } else {
                        i32::from_be_bytes(raw.to_be_bytes())
                    }
                } else {
                    0
                };
                data_pos = data_pos.saturating_add(u64::from(size));
                if let Some(d) = draft.as_deref_mut().filter(|d| d.indexed()) {
                    let b = &mut d.builder;
                    let i = b.time_samples();
                    b.push_size(size);
                    b.push_times(1, duration);
                    b.push_cts(1, cts);
                    if sflags & SAMPLE_IS_NON_SYNC == 0 {
                        b.push_sync(i);
                    }
                }
            }
        }
        prev_data_end = Some(data_pos);
    }
    Ok(())
}
