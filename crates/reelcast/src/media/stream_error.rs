//! Why a stream cannot play, or stopped playing: [`StreamError`], typed, its Display the
//! status info a WCS client reads (`File not found`, `File has wrong format: …`).
//!
//! Down here, beside the endings, because an ending carries it (`FailReason::Stream`) to
//! every layer that tells or counts endings; the stream layer makes these (from its
//! sources' errors and its reader's).

/// Why a stream cannot play. Display strings are the WCS status infos a user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("File not found")]
    /// No such file or object.
    NotFound,
    #[error("File has wrong format: {0}")]
    /// Not an MP4 we can play; the text says why.
    WrongFormat(String),
    #[error("Failed to read file: {0}")]
    /// Reading failed before playback; the text says why.
    ReadFailed(String),
    #[error("Got exception while streaming file: {0}")]
    /// Reading or decoding broke off while playing.
    Streaming(String),
    #[error("Failed to get agent storage")]
    /// A scheme reelcast does not serve.
    UnknownStorage,
    /// A plain name (no scheme) that no running stream has.
    #[error("Stream not found")]
    StreamNotFound,
    #[error("Restricted access: {0}")]
    /// The name reaches what it may not (outside `media_dir`, a store not allowed).
    Restricted(String),
    /// The server is draining (SIGTERM): no new plays. The words its viewers' STOPPED
    /// says (`StopReason::Shutdown`; a test in `ending` keeps the two equal).
    #[error("Server is shutting down")]
    ShuttingDown,
    /// Our own failure; its details are in the log only (see [`StreamError::internal`]).
    #[error("Failed by error")]
    Internal,
    #[error("{0}")]
    /// Any other reason, in its own words.
    Other(String),
}

impl StreamError {
    /// A fixed word per kind, for the metrics' `reason` label (never the message, which
    /// may name a file): one of `metrics::FAILURE_REASONS`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StreamError::NotFound => "file_not_found",
            StreamError::WrongFormat(_) => "wrong_format",
            StreamError::ReadFailed(_) => "read_failed",
            StreamError::Streaming(_) => "streaming",
            StreamError::UnknownStorage => "unknown_storage",
            StreamError::StreamNotFound => "stream_not_found",
            StreamError::Restricted(_) => "restricted",
            StreamError::ShuttingDown => "shutting_down",
            StreamError::Internal => "internal",
            StreamError::Other(_) => "other",
        }
    }

    /// Our own failure (a task that died, a setup that broke): logged with its details,
    /// told to the viewer as WCS's `Failed by error`, without them.
    pub fn internal(doing: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!("internal error {doing}: {detail}");
        StreamError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::StreamError;

    /// Every kind counts under one of the metric's fixed labels; a play refused while
    /// draining counts as `shutting_down`, whatever its words.
    #[test]
    fn every_failure_has_a_fixed_metric_label() {
        let all = [
            StreamError::NotFound,
            StreamError::WrongFormat("x".into()),
            StreamError::ReadFailed("x".into()),
            StreamError::Streaming("x".into()),
            StreamError::UnknownStorage,
            StreamError::StreamNotFound,
            StreamError::Restricted("x".into()),
            StreamError::ShuttingDown,
            StreamError::Internal,
            StreamError::Other("Server is shutting down".into()),
        ];
        for e in &all {
            assert!(
                crate::metrics::FAILURE_REASONS.contains(&e.metric_label()),
                "{e:?}"
            );
        }
        assert_eq!(StreamError::ShuttingDown.metric_label(), "shutting_down");
        assert_eq!(
            StreamError::ShuttingDown.to_string(),
            "Server is shutting down"
        );
    }
}
