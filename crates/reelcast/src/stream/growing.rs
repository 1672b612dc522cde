//! A recording still being written, followed as it grows: the reader's view of
//! [`mp4::FragmentFollower`].
//!
//! Owns: when to look at the file again ([`POLL_INTERVAL`]), reading what the follower
//! asks for, and when following is over: the recorder's sidecar is gone and nothing
//! more is whole (the recording is finished), or the file has not grown for
//! [`STALLED_AFTER`] while its sidecar stays (a recorder that died). Must not: know
//! tracks or frames; the reader appends each fragment's samples to its tracks.
//!
//! Bounds: one look (an `fstat`, a `stat` of the sidecar, and the reads of the whole
//! fragments that came) at most every [`POLL_INTERVAL`]; the index grows under the
//! follower's limit and the reader's memory budget.

use std::time::{Duration, Instant};

use mp4::{FollowStep, FragmentFollower, SampleIndex};
use tracing::warn;

use super::StreamError;
use crate::source::ByteSource;

/// How often a reader at the end of a growing file looks for new fragments.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A file that has not grown for this long, its sidecar still there, is taken as
/// finished: its recorder died, and the viewer is told end of file.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// What [`GrowingFile::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// New samples were appended.
    Grew,
    /// Nothing new yet; look again later.
    Waiting,
    /// No more will come: the end of the file is its end.
    Finished,
}

/// A growing file's follower, and when it last grew.
pub struct GrowingFile {
    follower: FragmentFollower,
    last_check: Option<Instant>,
    last_growth: Instant,
    size: u64,
}

impl GrowingFile {
    /// Follows the fragments from where the opener left them.
    pub fn new(follower: FragmentFollower) -> Self {
        GrowingFile {
            follower,
            last_check: None,
            last_growth: Instant::now(),
            size: 0,
        }
    }

    /// Looks at the file, unless it was looked at less than [`POLL_INTERVAL`] ago, and
    /// hands every new whole fragment's samples to `append` (the movie's track index,
    /// the samples).
    pub fn check(
        &mut self,
        source: &impl ByteSource,
        mut append: impl FnMut(usize, &SampleIndex) -> Result<(), StreamError>,
    ) -> Result<Check, StreamError> {
        let now = Instant::now();
        if self
            .last_check
            .is_some_and(|t| now.duration_since(t) < POLL_INTERVAL)
        {
            return Ok(Check::Waiting);
        }
        self.last_check = Some(now);
        let Some(growth) = source.growth() else {
            return Ok(Check::Finished);
        };
        if growth.size > self.size {
            self.size = growth.size;
            self.last_growth = now;
        }
        let mut grew = false;
        loop {
            match self.follower.poll(growth.size).map_err(streaming)? {
                FollowStep::Read { offset, len } => {
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    let bytes = source.read_at(offset, len)?;
                    self.follower.feed(offset, &bytes).map_err(streaming)?;
                }
                FollowStep::Fragment(pieces) => {
                    for (track, piece) in pieces.iter().enumerate() {
                        grew |= !piece.is_empty();
                        append(track, piece)?;
                    }
                }
                FollowStep::Wait => break,
            }
        }
        Ok(if grew {
            Check::Grew
        } else if !growth.writing {
            Check::Finished
        } else if now.duration_since(self.last_growth) >= STALLED_AFTER {
            warn!(
                "the recording has not grown for {} s while its sidecar stays: taken as finished",
                STALLED_AFTER.as_secs()
            );
            Check::Finished
        } else {
            Check::Waiting
        })
    }
}

fn streaming(e: mp4::Mp4Error) -> StreamError {
    StreamError::Streaming(e.to_string())
}
