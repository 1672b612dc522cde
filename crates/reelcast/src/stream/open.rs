//! Opening a stream's media: a parsed stream name in, a [`MediaReader`] out.
//!
//! The one place that knows which [`ByteSource`] serves which [`Location`], so personal
//! VODs and live translations open local files (from `media_dir`, else `record_dir`)
//! and S3 objects the same way.
//! Blocking: call it on a blocking thread.

use std::sync::Arc;

use super::budget::MemoryBudget;
use super::constraints::VideoConstraints;
use super::reader::TranscodePolicy;
use super::{MediaReader, StreamError};
use crate::config::Settings;
use crate::source::{ByteSource, LocalFile, Location, S3Object};

/// A reader over whichever byte source the name points at.
pub type AnyReader = MediaReader<Box<dyn ByteSource>>;

/// Opens `location` and reads its movie structure, holding what its index needs from
/// `budget`. Errors are what the viewer is told.
pub fn open_media(
    settings: &Settings,
    location: &Location,
    budget: &Arc<MemoryBudget>,
) -> Result<AnyReader, StreamError> {
    open_media_for(settings, location, budget, None)
}

/// [`open_media`] for one viewer who asked for a size or bit rate (a personal VOD's
/// `constraints`): the reader's video is encoded so when the source is not.
pub fn open_media_for(
    settings: &Settings,
    location: &Location,
    budget: &Arc<MemoryBudget>,
    video: Option<VideoConstraints>,
) -> Result<AnyReader, StreamError> {
    let source: Box<dyn ByteSource> = match location {
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
    };
    let policy = TranscodePolicy {
        disabled: settings.transcoding_disabled,
        max_video: settings.video_transcoders_max.unwrap_or(0),
        video,
    };
    MediaReader::open_within(source, budget, policy)
}
