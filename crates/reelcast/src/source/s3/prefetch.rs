//! The prefetch thread of one object: asks the read-ahead buffer what to fetch, fetches
//! it with ranged GETs, and resumes a dropped, stalled or failed request from the byte
//! where it stopped, with backoff, until no byte has come for [`STALL_LIMIT`].
//!
//! A store that accepts connections but sends nothing is noticed by the client's read
//! timeout (`client::READ_TIMEOUT`, 5 s) and retried; the fetch fails when the next
//! retry would start [`STALL_LIMIT`] after the last byte, so a store gone for good ends
//! the stream 12-20 s after its last byte (15 s for a silent one), and one back sooner
//! only paused it.
//!
//! Owns: the waiting and retrying. Must not: decide what to fetch (`readahead`) or
//! how a request is made (`client`).

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use super::client::{timed_out, ObjectClient, S3Error};
use super::readahead::{backoff_ms, ReadAhead};

/// A fetch gives up rather than start a retry this long after the last byte came.
pub const STALL_LIMIT: Duration = Duration::from_secs(12);
/// Largest piece read from a response body at a time (and handed to the reader).
const PIECE: usize = 64 * 1024;

/// The buffer and the news about it, shared by the reader and the prefetch thread.
pub struct Shared {
    state: Mutex<State>,
    /// Signalled on every change: bytes arrived, a read wants bytes, closed, failed.
    pub changed: Condvar,
}

pub struct State {
    pub buffer: ReadAhead,
    /// Why fetching stopped for good; reads of bytes not held fail with it.
    pub failed: Option<S3Error>,
    /// The reader is gone: the thread ends.
    pub closed: bool,
}

impl Shared {
    pub fn new(buffer: ReadAhead) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                buffer,
                failed: None,
                closed: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// The state, also after a thread panicked while holding it (the buffer stays
    /// consistent: every change to it is a single call).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts the prefetch thread; it ends when the object is closed or fetching failed.
pub fn spawn(client: ObjectClient, shared: Arc<Shared>, name: String) {
    let thread = std::thread::Builder::new()
        .name("s3-prefetch".into())
        .spawn(move || run(&client, &shared, &name));
    if let Err(e) = thread {
        warn!("cannot start the S3 prefetch thread: {e}");
    }
}

fn run(client: &ObjectClient, shared: &Shared, name: &str) {
    loop {
        let range = {
            let mut st = shared.lock();
            loop {
                if st.closed || st.failed.is_some() {
                    return;
                }
                if let Some(range) = st.buffer.next_fetch() {
                    break range;
                }
                st = shared.wait(st);
            }
        };
        if let Err(e) = fetch(client, shared, range.clone()) {
            warn!(
                object = name,
                "fetching bytes {range:?} failed for good: {e}"
            );
            let mut st = shared.lock();
            st.failed = Some(e);
            shared.changed.notify_all();
            return;
        }
    }
}

/// Fetches `range` into the buffer, resuming after transient failures. Returns early
/// (`Ok`) when the reader closed or now needs other bytes.
fn fetch(client: &ObjectClient, shared: &Shared, range: Range<u64>) -> Result<(), S3Error> {
    let mut at = range.start;
    let mut failures = 0u32;
    let mut last_byte = Instant::now();
    let mut piece = vec![0u8; PIECE];
    while at < range.end {
        let error = match client.get_range(at, Some(range.end)) {
            Ok(response) => {
                let mut body = response.body;
                loop {
                    if at >= range.end {
                        return Ok(());
                    }
                    let want = PIECE.min((range.end - at) as usize);
                    match body.read(&mut piece[..want]) {
                        Ok(0) => break S3Error::Transient("connection closed early".into()),
                        Ok(n) => {
                            failures = 0;
                            last_byte = Instant::now();
                            let mut st = shared.lock();
                            st.buffer.insert(at, Bytes::copy_from_slice(&piece[..n]));
                            at += n as u64;
                            shared.changed.notify_all();
                            if st.closed || !st.buffer.keep_fetching(at, range.end) {
                                return Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                            break S3Error::Transient(timed_out(ureq::Timeout::PerRead))
                        }
                        Err(e) => break S3Error::Transient(e.to_string()),
                    }
                }
            }
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        failures += 1;
        let wait = Duration::from_millis(backoff_ms(failures));
        let silent = last_byte.elapsed();
        if silent + wait >= STALL_LIMIT {
            return Err(S3Error::Transient(format!(
                "no data for {} s ({error})",
                silent.as_secs()
            )));
        }
        debug!(
            "bytes from {at}: {error}; attempt {} in {wait:?}",
            failures + 1
        );
        let st = shared.lock();
        let (st, _) = shared
            .changed
            .wait_timeout_while(st, wait, |st| !st.closed)
            .unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return Ok(());
        }
    }
    Ok(())
}
