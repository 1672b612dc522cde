//! How a stream or one of its viewers ends, typed: [`Ending::Stopped`] (normal: end of
//! file, stopped by someone) or [`Ending::Failed`] (could not play, or broke). Display
//! gives the status info a WCS client reads, in WCS's own words
//! (`Stopped by user`, `Failed by ICE timeout`).
//!
//! Down here because every layer names endings: the WebRTC hub (a viewer's ICE or DTLS
//! failed), streams (end of file, nobody watching), signalling and REST (stopped by
//! the user, the session or `/terminate`), and sinks (told the stream ended).

use std::fmt;

use super::stream_error::StreamError;

/// How a stream or a viewer ended. Display: the WCS status info (empty for
/// [`StopReason::EndOfFile`], where WCS sends none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Ended normally: STOPPED.
    Stopped(StopReason),
    /// Could not play, or broke while playing: FAILED.
    Failed(FailReason),
}

/// Why a stream or a viewer stopped normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The stream ran out (end of file without loop). WCS gives no info.
    EndOfFile,
    /// `stopStream`, WHEP `DELETE`.
    ByUser,
    /// The viewer's signalling session or its browser went away.
    SessionDisconnect,
    /// The session stopped answering pings.
    KeepAlive,
    /// REST `/vod/terminate` or `/stream/terminate`.
    RestTerminate,
    /// A live translation nobody watched for `vod_stream_timeout`.
    NoViewers,
    /// The server is shutting down (SIGTERM).
    Shutdown,
    /// A published stream's publisher stopped (`unPublishStream`, WHIP `DELETE`, its
    /// session closed): what its viewers are told.
    PublisherStop,
}

/// Why a stream or a viewer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// ICE did not complete in time.
    IceTimeout,
    /// The DTLS handshake failed.
    DtlsError,
    /// The browser stopped answering consent checks, or its connection broke.
    RtpActivity,
    /// The stream's source broke while playing (or could not be read): why, typed; its
    /// Display is what the user reads (`Failed to read file: ...`).
    Stream(StreamError),
}

impl StopReason {
    /// WCS's words for it.
    pub const fn info(self) -> &'static str {
        match self {
            StopReason::EndOfFile => "",
            StopReason::ByUser => "Stopped by user",
            StopReason::SessionDisconnect => "Stopped by session disconnect",
            StopReason::KeepAlive => "Terminated by keep-alive",
            StopReason::RestTerminate => "Stopped by rest /terminate",
            StopReason::NoViewers => "Stopped: no viewers",
            StopReason::Shutdown => "Server is shutting down",
            StopReason::PublisherStop => "Stopped by publisher stop",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info())
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::IceTimeout => f.write_str("Failed by ICE timeout"),
            FailReason::DtlsError => f.write_str("Failed by DTLS error"),
            FailReason::RtpActivity => f.write_str("Failed by RTP activity"),
            FailReason::Stream(error) => error.fmt(f),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Stopped(reason) => reason.fmt(f),
            Ending::Failed(reason) => reason.fmt(f),
        }
    }
}

impl From<StopReason> for Ending {
    fn from(reason: StopReason) -> Self {
        Ending::Stopped(reason)
    }
}

impl From<StreamError> for FailReason {
    fn from(e: StreamError) -> Self {
        FailReason::Stream(e)
    }
}

impl From<FailReason> for Ending {
    fn from(reason: FailReason) -> Self {
        Ending::Failed(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_read_as_wcs_words() {
        let says = |e: Ending| e.to_string();
        assert_eq!(says(StopReason::ByUser.into()), "Stopped by user");
        assert_eq!(
            says(StopReason::SessionDisconnect.into()),
            "Stopped by session disconnect"
        );
        assert_eq!(
            says(StopReason::RestTerminate.into()),
            "Stopped by rest /terminate"
        );
        assert_eq!(
            says(StopReason::KeepAlive.into()),
            "Terminated by keep-alive"
        );
        assert_eq!(says(StopReason::EndOfFile.into()), "");
        assert_eq!(says(FailReason::IceTimeout.into()), "Failed by ICE timeout");
        assert_eq!(says(FailReason::DtlsError.into()), "Failed by DTLS error");
        assert_eq!(
            says(FailReason::RtpActivity.into()),
            "Failed by RTP activity"
        );
        assert_eq!(
            says(FailReason::Stream(StreamError::NotFound).into()),
            "File not found"
        );
        assert_eq!(
            says(FailReason::Stream(StreamError::Streaming("bad H.264 sample 7".into())).into()),
            "Got exception while streaming file: bad H.264 sample 7"
        );
        assert_eq!(
            says(
                FailReason::Stream(StreamError::ReadFailed("the file reader stopped".into()))
                    .into()
            ),
            "Failed to read file: the file reader stopped"
        );
        assert_eq!(
            says(FailReason::Stream(StreamError::Internal).into()),
            "Failed by error"
        );
        assert_eq!(
            says(FailReason::Stream(StreamError::ShuttingDown).into()),
            StopReason::Shutdown.info(),
            "a play refused while draining reads as its viewers' STOPPED does"
        );
    }
}
