//! S3 objects as random-access bytes: `vod://s3/BUCKET/KEY` and
//! `vod://s3/https://host/BUCKET/KEY` play while they download.
//!
//! Owns: which stores a name may reach (`allowed`: the operator's list; `egress`: public
//! addresses only, checked on the address connected to), turning a name's endpoint,
//! bucket and key into presigned ranged GETs
//! (`address`, signed by `rusty-s3`; `client`; `trust`: the CAs for HTTPS), the
//! read-ahead buffer that keeps bytes just ahead of playback with bounded memory
//! (`byte_window`), and the thread that fills it and rides out a flaky or stalled link
//! (`fetch_thread`). Must not: parse MP4 (the demuxer asks for byte
//! ranges), or know about streams and viewers.
//!
//! How a stream starts: [`S3Object::open`] fetches the first 64 KiB (one request also
//! tells the object's size, from `Content-Range`); the demuxer then asks for the `moov`
//! wherever it is (a ranged read at the end for moov-last files); once the movie is
//! read, [`ByteSource::begin_playback`] sizes the read-ahead from the bitrate, and the
//! fetch thread keeps about `vod_mp4_container_new_buffer_ms` of media ahead of the
//! reader. A read of bytes that have not arrived waits: the viewer sees a pause, not a
//! failure. Only a permanent failure (404, 403, an untrusted certificate, or no byte
//! for `fetch_thread::STALL_LIMIT` while retrying) fails a read.
//!
//! Failures, as the viewer reads them: a missing object is `File not found`; a denied
//! request `Restricted access: S3 denied access to BUCKET/KEY (...)`; a store that is
//! not allowed, or at a private address, `Restricted access: S3 endpoint ...` with the
//! setting that allows it; a missing bucket, an unknown or unreachable host `Failed to
//! read file: ...` with the reason. The endpoint of `aws_s3_endpoint` is named by that
//! setting in these texts, never by its address.

mod address;
pub mod allowed;
mod byte_window;
mod client;
mod egress;
mod fetch_thread;
mod trust;

use std::sync::Arc;

use bytes::Bytes;
use tracing::info;

pub use address::ObjectAddress;
use byte_window::{backoff_ms, ByteWindow, Sizes};
use client::{ObjectClient, S3Error};
use fetch_thread::Shared;

use super::{ByteSource, Identity, SourceError};
use crate::config::Settings;

/// Bytes fetched by the first request (the `ftyp`, and the `moov` of most faststart
/// files of a few minutes).
const FIRST_READ: u64 = 64 * 1024;
/// Attempts at the first request before the stream fails: a refused connection fails
/// in 0.3 s, a store that accepts but stays silent in about 15 s (3 read timeouts).
const OPEN_ATTEMPTS: u32 = 3;

/// Checks the S3 settings that can be wrong in ways `config` cannot see (an unreadable
/// `aws_s3_ca_file`), so that the server refuses to start rather than fail every stream.
pub fn check_settings(settings: &Settings) -> Result<(), String> {
    trust::root_certs(settings.aws_s3_ca_file.as_deref()).map(drop)
}

/// An S3 object being played. Reads block until their bytes have arrived.
pub struct S3Object {
    shared: Arc<Shared>,
    address: ObjectAddress,
    size: u64,
    buffer_ms: u64,
    /// `ETag` (else `Last-Modified`) of the first answer, when the store sent one.
    version: Option<String>,
}

impl S3Object {
    /// Starts fetching `bucket`/`key` (decoded) from `endpoint` (`None`: the configured
    /// endpoint or AWS). Blocking: the first ranged GET is made here.
    pub fn open(
        settings: &Settings,
        endpoint: Option<&str>,
        bucket: &str,
        key: &str,
    ) -> Result<S3Object, SourceError> {
        // Before anything is resolved or connected: a viewer's name reaches only the
        // stores the operator named.
        let reach =
            allowed::reach(settings, endpoint, bucket, key).map_err(SourceError::Restricted)?;
        let address =
            ObjectAddress::resolve(settings, endpoint, bucket, key).map_err(SourceError::Read)?;
        let roots =
            trust::root_certs(settings.aws_s3_ca_file.as_deref()).map_err(SourceError::Read)?;
        let client = ObjectClient::new(address.clone(), roots, reach.private_ok);
        let (size, first, version) =
            first_bytes(&client).map_err(|e| describe(&e, &address, false))?;
        info!(object = ?address, size, "S3 object opened");
        let mut buffer = ByteWindow::new(size);
        if !first.is_empty() {
            buffer.insert(0, first);
        }
        let shared = Shared::new(buffer);
        fetch_thread::spawn(client, shared.clone(), format!("{bucket}/{key}"));
        Ok(S3Object {
            shared,
            address,
            size,
            buffer_ms: settings.vod_mp4_container_new_buffer_ms,
            version,
        })
    }
}

/// The object's size and its first bytes (fewer when the body broke off: the rest is
/// fetched on demand). An empty object is size 0.
fn first_bytes(client: &ObjectClient) -> Result<(u64, Bytes, Option<String>), S3Error> {
    let mut attempt = 1;
    loop {
        match client.get_range(0, Some(FIRST_READ)) {
            Ok(response) => {
                let mut data = Vec::new();
                let want = response.len.min(FIRST_READ);
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(response.body, want),
                    &mut data,
                );
                return Ok((response.total, Bytes::from(data), response.version));
            }
            Err(S3Error::RangeNotSatisfiable) => return Ok((0, Bytes::new(), None)),
            Err(e) if e.is_transient() && attempt < OPEN_ATTEMPTS => {
                std::thread::sleep(std::time::Duration::from_millis(backoff_ms(attempt)));
                attempt += 1;
                crate::metrics::METRICS.s3_retries.inc();
            }
            Err(e) => return Err(e),
        }
    }
}

/// A request's failure in the words the viewer sees.
fn describe(e: &S3Error, a: &ObjectAddress, streaming: bool) -> SourceError {
    let object = format!("{}/{}", a.bucket, a.key);
    match e {
        S3Error::NoSuchKey => SourceError::NotFound,
        S3Error::NoSuchBucket => SourceError::Read(format!(
            "S3 bucket \"{}\" does not exist at {}",
            a.bucket, a.endpoint
        )),
        S3Error::Denied(code) => {
            let hint = if a.signed() {
                "check aws_s3_credentials"
            } else {
                "no aws_s3_credentials are set for this endpoint"
            };
            SourceError::Restricted(format!("S3 denied access to {object} ({code}; {hint})"))
        }
        S3Error::PrivateAddress => SourceError::Restricted(format!(
            "S3 endpoint {} is at a private or local address; the server's \
             aws_s3_allow_private_addresses setting allows such stores",
            a.endpoint
        )),
        S3Error::Tls(why) => SourceError::Read(format!("S3 endpoint {}: {why}", a.endpoint)),
        S3Error::UnknownHost => SourceError::Read(format!(
            "S3 endpoint {} is unknown (host name not found)",
            a.endpoint
        )),
        S3Error::Transient(why) if streaming => {
            SourceError::Streaming(format!("S3 read of {object} stopped: {why}"))
        }
        S3Error::Transient(why) => SourceError::Read(format!(
            "S3 endpoint {} cannot be reached: {why}",
            a.endpoint
        )),
        S3Error::RangeNotSatisfiable => {
            SourceError::Streaming(format!("S3 object {object} became shorter while playing"))
        }
        S3Error::Permanent(why) => SourceError::Read(format!("S3 {object}: {why}")),
    }
}

impl ByteSource for S3Object {
    fn size(&self) -> u64 {
        self.size
    }
    /// Needs the store's `ETag` or `Last-Modified`: without one, a changed object could
    /// not be told from the one a cache was made of.
    fn identity(&self) -> Option<Identity> {
        let version = self.version.as_ref()?;
        let a = &self.address;
        Some(Identity {
            name: format!("s3:{}|{}|{}", a.endpoint, a.bucket, a.key),
            version: format!("{}:{version}", self.size),
        })
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let mut st = self.shared.lock();
        loop {
            match st.buffer.read(offset, len) {
                Ok(Some(bytes)) => return Ok(bytes),
                Ok(None) => {}
                Err(()) => return Err(SourceError::Read("unexpected end of file".into())),
            }
            if let Some(e) = &st.failed {
                return Err(describe(e, &self.address, true));
            }
            // The read is now the buffer's demand: wake the fetch thread.
            self.shared.changed.notify_all();
            st = self.shared.wait(st);
        }
    }

    fn begin_playback(&self, bytes_per_second: u64) {
        let sizes = Sizes::for_media(bytes_per_second, self.buffer_ms);
        let mut st = self.shared.lock();
        st.buffer.begin_playback(sizes);
        self.shared.changed.notify_all();
    }
}

impl Drop for S3Object {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.changed.notify_all();
        let (fetched, served) = (st.buffer.fetched_total, st.buffer.served_total);
        info!(
            object = ?self.address,
            fetched,
            served,
            "S3 object closed: {fetched} bytes fetched for {served} bytes read ({:.3} per byte)",
            fetched as f64 / served.max(1) as f64
        );
    }
}
