//! Opening a stream's media: a parsed stream name in, a [`MediaReader`] out.
//!
//! The one place that knows which [`ByteSource`] serves which [`Location`], so personal
//! VODs and live translations open local files (from `media_dir`, else `record_dir`)
//! and S3 objects the same way.
//! A personal VOD opens through the transcode cache ([`open_personal`]).
//! Blocking: call it on a blocking thread.

use std::sync::Arc;

use super::budget::MemoryBudget;
use super::constraints::VideoConstraints;
use super::reader::TranscodePolicy;
use super::reencode_demand::ReencodeDemand;
use super::transcode_cache::TranscodeCache;
use super::{MediaReader, StreamError};
use crate::config::Settings;
use crate::source::{ByteSource, LocalFile, Location, S3Object};

/// A reader over whichever byte source the name points at.
pub type AnyReader = MediaReader<Box<dyn ByteSource>>;

/// Opens `location` for a translation and reads its movie structure, holding what its
/// index needs from `budget`; H.264 with B-frames is re-encoded only while `reencode`
/// wants it. Errors are what the viewer is told.
pub fn open_translation(
    settings: &Settings,
    location: &Location,
    budget: &Arc<MemoryBudget>,
    reencode: Arc<ReencodeDemand>,
) -> Result<AnyReader, StreamError> {
    MediaReader::open_translation(
        open_source(settings, location)?,
        budget,
        policy(settings, None),
        reencode,
    )
}

/// As [`open_translation`], for a personal VOD: from `cache` when it holds the file's transcode
/// (no transcoder then); else as any file (B-frames always re-encoded: one viewer, over WebRTC), and when the video is transcoded, the
/// cache's job for the file is started beside the play (`stream::transcode_cache`).
/// A viewer who asked for a size or bit rate (`video`, its `constraints`) gets the
/// reader's video encoded so when the source is not, never through the cache (it holds
/// the file's one transcode at its own size).
pub fn open_personal(
    settings: &Settings,
    location: &Location,
    budget: &Arc<MemoryBudget>,
    cache: Option<&Arc<TranscodeCache>>,
    video: Option<VideoConstraints>,
) -> Result<AnyReader, StreamError> {
    let source = open_source(settings, location)?;
    if video.is_some() {
        return MediaReader::open_within(source, budget, policy(settings, video));
    }
    // A source that cannot say its version (a recording being written, an S3 store
    // without ETag or Last-Modified) is never cached.
    let Some((cache, id)) = cache.zip(source.identity()) else {
        return MediaReader::open_within(source, budget, policy(settings, None));
    };
    if let Some(reader) = cache.open_entry(&id, budget) {
        return Ok(reader);
    }
    let reader = MediaReader::open_within(source, budget, policy(settings, None))?;
    if reader.info().transcoded_video {
        let (settings, location, budget) = (settings.clone(), location.clone(), budget.clone());
        let version = id.clone();
        cache.missed(
            &id,
            Box::new(move || {
                // The job opens the file again: it must be the version the entry is
                // named after, or the entry would hold another version's pictures.
                let source = open_source(&settings, &location)?;
                if source.identity().as_ref() != Some(&version) {
                    return Err(StreamError::Other("the file changed since the play".into()));
                }
                MediaReader::open_within(source, &budget, policy(&settings, None))
            }),
        );
    }
    Ok(reader)
}

/// The bytes `location` names.
fn open_source(
    settings: &Settings,
    location: &Location,
) -> Result<Box<dyn ByteSource>, StreamError> {
    Ok(match location {
        // `media_dir` first, so a recording never hides a file published there.
        Location::Local(path) => Box::new(LocalFile::open_first(
            &[
                (&settings.media_dir, "media_dir"),
                (&settings.record_dir, "record_dir"),
            ],
            path,
        )?),
        Location::S3 {
            endpoint,
            bucket,
            key,
        } => Box::new(S3Object::open(settings, endpoint.as_deref(), bucket, key)?),
    })
}

/// What the settings allow for transcoding, and what the viewer asked (`video`).
fn policy(settings: &Settings, video: Option<VideoConstraints>) -> TranscodePolicy {
    TranscodePolicy {
        disabled: settings.transcoding_disabled,
        max_video: settings.video_transcoders_max.unwrap_or(0),
        video,
    }
}
