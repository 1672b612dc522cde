//! The fetch thread of one object: asks the read-ahead buffer what to fetch, fetches
//! it with ranged GETs, and resumes a dropped, stalled or failed request from the byte
//! where it stopped, with backoff, until no byte has come for [`STALL_LIMIT`].
//!
//! A store that accepts connections but sends nothing is noticed by the client's read
//! timeout (`client::READ_TIMEOUT`, 5 s) and retried; the fetch fails when the next
//! retry would start [`STALL_LIMIT`] after the last byte, so a store gone for good ends
//! the stream 12-20 s after its last byte (15 s for a silent one), and one back sooner
//! only paused it.
//!
//! Owns: the waiting and retrying. Must not: decide what to fetch (`byte_window`) or
//! how a request is made (`client`).

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use super::byte_window::{backoff_ms, ByteWindow};
use super::client::{timed_out, ObjectClient, S3Error};
use crate::metrics::METRICS;

/// A fetch gives up rather than start a retry this long after the last byte came.
pub(super) const STALL_LIMIT: Duration = Duration::from_secs(12);
/// Largest piece read from a response body at a time (and handed to the reader).
const PIECE: usize = 64 * 1024;

/// The buffer and the news about it, shared by the reader and the fetch thread.
pub(super) struct Shared {
    state: Mutex<State>,
    /// Signalled on every change: bytes arrived, a read wants bytes, closed, failed.
    pub changed: Condvar,
}

pub(super) struct State {
    pub buffer: ByteWindow,
    /// Why fetching stopped for good; reads of bytes not held fail with it.
    pub failed: Option<S3Error>,
    /// The reader is gone: the thread ends.
    pub closed: bool,
}

impl Shared {
    pub(super) fn new(buffer: ByteWindow) -> Arc<Shared> {
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
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts the fetch thread; it ends when the object is closed or fetching failed.
pub(super) fn spawn(client: ObjectClient, shared: Arc<Shared>, name: String) {
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
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.closed {
            return Ok(());
        }
        METRICS.s3_retries.inc();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A store on 127.0.0.1 that serves one object to ranged GETs and cuts every
    //! answer after a known number of body bytes, as a flaky link does: the object is
    //! read through [`S3Object`] as playback reads it, and every request after a cut
    //! must start at the exact byte where the cut one stopped.

    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use super::super::S3Object;
    use crate::config::{Origin, Settings};
    use crate::source::ByteSource;

    /// One answered request: the range asked for and the body bytes sent.
    #[derive(Debug, Clone, Copy)]
    struct Served {
        start: u64,
        sent: u64,
        cut: bool,
    }

    struct CuttingStore {
        port: u16,
        served: Arc<Mutex<Vec<Served>>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    impl CuttingStore {
        /// Serves `body` at any path; every answer stops after `cut_after` body bytes.
        fn start(body: Vec<u8>, cut_after: u64) -> CuttingStore {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let served = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (log, halt) = (served.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if halt.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(conn) = conn {
                        if let Some(s) = answer(conn, &body, cut_after) {
                            log.lock().unwrap().push(s);
                        }
                    }
                }
            });
            CuttingStore {
                port,
                served,
                stop,
                thread: Some(thread),
            }
        }

        fn served(&self) -> Vec<Served> {
            self.served.lock().unwrap().clone()
        }
    }

    impl Drop for CuttingStore {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Answers one request on `conn` (then closes it); `None` for a request without a
    /// usable `Range`.
    fn answer(mut conn: TcpStream, body: &[u8], cut_after: u64) -> Option<Served> {
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        let mut reader = BufReader::new(conn.try_clone().ok()?);
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("range") {
                    range = value.trim().strip_prefix("bytes=").map(str::to_string);
                }
            }
        }
        let (first, last) = range?.split_once('-').map(|(a, b)| {
            let first: u64 = a.parse().unwrap();
            let last = b.parse::<u64>().unwrap_or(u64::MAX);
            (first, last.min(body.len() as u64 - 1))
        })?;
        let len = last - first + 1;
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{}\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).ok()?;
        let sent = len.min(cut_after);
        let part = &body[first as usize..(first + sent) as usize];
        conn.write_all(part).ok()?;
        conn.flush().ok()?;
        let _ = conn.shutdown(std::net::Shutdown::Both);
        Some(Served {
            start: first,
            sent,
            cut: sent < len,
        })
    }

    fn settings(port: u16) -> Settings {
        let mut s = Settings::default();
        s.set(
            "aws_s3_endpoint",
            &format!("http://127.0.0.1:{port}"),
            &Origin::Default,
        )
        .unwrap();
        s
    }

    #[test]
    fn a_cut_read_resumes_from_the_exact_byte_where_it_stopped() {
        let body = object(1_000_000);
        // Cut every answer after 40 kB: the fetches are 50 kB or more (a cut's remainder
        // excepted), so most answers are cut however far ahead the read-ahead runs.
        let store = CuttingStore::start(body.clone(), 40_000);
        let object = S3Object::open(&settings(store.port), None, "b", "obj.mp4").unwrap();
        assert_eq!(object.size(), body.len() as u64);
        // As playback reads: the start, then the rest in order, 10 kB at a time.
        object.begin_playback(200_000);
        let mut got = Vec::with_capacity(body.len());
        while (got.len() as u64) < object.size() {
            let len = 10_000.min(body.len() - got.len());
            got.extend_from_slice(&object.read_at(got.len() as u64, len).unwrap());
        }
        drop(object);
        assert!(got == body, "the bytes read differ from the object");

        let served = store.served();
        let cuts: Vec<&Served> = served.iter().filter(|s| s.cut).collect();
        assert!(
            cuts.len() >= 10,
            "only {} answers were cut: {served:?}",
            cuts.len()
        );
        for (i, s) in served.iter().enumerate() {
            if s.cut {
                let stopped_at = s.start + s.sent;
                let next = served.get(i + 1).map(|n| n.start);
                assert_eq!(
                    next,
                    Some(stopped_at),
                    "the request after the cut at byte {stopped_at}: {served:?}"
                );
            }
        }
        let sent: u64 = served.iter().map(|s| s.sent).sum();
        assert_eq!(sent, body.len() as u64, "bytes fetched twice: {served:?}");
    }

    #[test]
    fn a_cut_first_answer_resumes_too() {
        // The opening request (64 KiB) is cut at 1000 bytes: the demuxer's next read
        // asks from byte 1000.
        let body = object(300_000);
        let store = CuttingStore::start(body.clone(), 1000);
        let object = S3Object::open(&settings(store.port), None, "b", "obj.mp4").unwrap();
        let head = object.read_at(0, 5000).unwrap();
        assert_eq!(&head[..], &body[..5000]);
        let served = store.served();
        assert_eq!(served[0].start, 0);
        assert_eq!(served[1].start, 1000, "{served:?}");
        assert_eq!(served[2].start, 2000, "{served:?}");
    }
}
