//! Bytes the kernel sends without copying them: immutable buffers kept in an anonymous
//! memory file (`memfd`, RAM like the heap, never a disk) and mapped read-only, and a
//! socket writer that hands such a buffer to `sendfile(2)` instead of `writev(2)`.
//!
//! Why: serving an HLS segment from the heap costs a copy of every byte into the
//! socket's buffers, the largest single cost of a segment answer (a third of the
//! server's CPU under load, docs/PERFORMANCE.md); `sendfile` from a memory file lets the
//! socket take references to the file's pages, as nginx does from tmpfs.
//!
//! How a writer knows: every mapping is listed (its address range and its file) for as
//! long as it lives; [`Stream`] looks up each slice it is asked to write. A slice inside a
//! live mapping is alive for the whole write (its writer holds it), so the lookup cannot
//! meet a stale entry. Anything else (headers, TLS records, heap bodies) is written as
//! before.
//!
//! Owns: [`sendable`] (bytes into a mapped memory file, with a heap fallback), the table
//! of mappings, and [`Stream`] (a `TcpStream` that writes mapped slices with
//! `sendfile`). Must not: know HTTP, HLS or what the bytes are.

use std::collections::BTreeMap;
use std::io::{self, IoSlice, Write as _};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::socket::{sendmsg, MsgFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The live mappings by start address: (end address, the file mapped there).
type Table = BTreeMap<usize, (usize, Arc<OwnedFd>)>;

static MAPPINGS: RwLock<Table> = RwLock::new(BTreeMap::new());

/// `chunks` joined into one buffer that [`Stream`] sends without copying it; on any
/// failure (no memfd, out of file descriptors or address space), the same bytes on the
/// heap, which every writer sends the ordinary way.
pub fn sendable(chunks: &[&[u8]]) -> Bytes {
    let len: usize = chunks.iter().map(|c| c.len()).sum();
    match Mapping::new(chunks, len) {
        Ok(mapping) => Bytes::from_owner(mapping),
        Err(_) => Bytes::from(chunks.concat()),
    }
}

/// One read-only mapping of a memory file holding the bytes; listed while it lives.
struct Mapping {
    at: NonNull<u8>,
    len: NonZeroUsize,
}

// The mapping is read-only and never changes after it is made: shared reads are sound.
#[allow(unsafe_code)]
unsafe impl Send for Mapping {}
#[allow(unsafe_code)]
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(chunks: &[&[u8]], len: usize) -> io::Result<Mapping> {
        let size = NonZeroUsize::new(len).ok_or(io::ErrorKind::InvalidInput)?;
        let fd = memfd_create(c"reelcast-hls", MFdFlags::MFD_CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        for chunk in chunks {
            file.write_all(chunk)?;
        }
        let fd = OwnedFd::from(file);
        // Safety: a fresh shared read-only mapping of a file of exactly `len` bytes that
        // nothing writes or truncates after this point (its only descriptor is ours and
        // is used for `sendfile` reads only).
        #[allow(unsafe_code)]
        let at = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        let start = at.as_ptr() as usize;
        MAPPINGS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(start, (start + len, Arc::new(fd)));
        Ok(Mapping {
            at: at.cast(),
            len: size,
        })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // Safety: `at` maps `len` readable bytes until `drop` unmaps them.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.at.as_ptr(), self.len.get())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Off the list first: no writer may find an address about to be reused.
        MAPPINGS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.at.as_ptr() as usize));
        // Safety: the range was mapped by `new` and no slice of it outlives `self`
        // (`Bytes` drops its owner after its last slice).
        #[allow(unsafe_code)]
        let _ = unsafe { munmap(self.at.cast(), self.len.get()) };
    }
}

/// The memory file behind `slice` and where in it the slice starts, when the slice lies
/// in a live mapping.
fn find(slice: &[u8]) -> Option<(Arc<OwnedFd>, i64)> {
    if slice.is_empty() {
        return None;
    }
    let start = slice.as_ptr() as usize;
    let table = MAPPINGS.read().unwrap_or_else(PoisonError::into_inner);
    let (&base, (end, fd)) = table.range(..=start).next_back()?;
    (start + slice.len() <= *end).then(|| (fd.clone(), (start - base) as i64))
}

/// A TCP stream whose writes send slices of [`sendable`] buffers with `sendfile`
/// (the bytes before such a slice go first, held back with `MSG_MORE` so they share its
/// packets), and everything else as a `TcpStream` would.
pub struct Stream(TcpStream);

impl Stream {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> Self {
        Stream(stream)
    }

    /// Runs the non-blocking `op` on the socket when it is writable.
    fn poll_op(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_io(Interest::WRITABLE, &mut op) {
                // The readiness was cleared: wait for the next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.as_mut()
            .poll_write_vectored(cx, std::slice::from_ref(&IoSlice::new(buf)))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some((at, (fd, offset))) = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| find(b).map(|found| (i, found)))
        else {
            return Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        };
        let socket = self.0.as_raw_fd();
        if bufs[..at].iter().any(|b| !b.is_empty()) {
            let head = &bufs[..at];
            // nix has no name for MSG_MORE (Linux): the body follows at once.
            let flags = MsgFlags::from_bits_retain(nix::libc::MSG_MORE)
                | MsgFlags::MSG_NOSIGNAL
                | MsgFlags::MSG_DONTWAIT;
            return self.poll_op(cx, || Ok(sendmsg::<()>(socket, head, &[], flags, None)?));
        }
        let count = bufs[at].len();
        self.poll_op(cx, || {
            let mut from = offset;
            Ok(nix::sys::sendfile::sendfile(
                self.0.as_fd(),
                fd.as_fd(),
                Some(&mut from),
                count,
            )?)
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn sendable_bytes_are_the_chunks_and_are_found_while_alive() {
        let bytes = sendable(&[b"hello ", b"world"]);
        assert_eq!(&bytes[..], b"hello world");
        let (_, offset) = find(&bytes[6..]).expect("a mapped slice");
        assert_eq!(offset, 6);
        assert!(find(b"elsewhere").is_none());
        let start = bytes.as_ptr() as usize;
        drop(bytes);
        assert!(!MAPPINGS.read().unwrap().contains_key(&start));
        // Nothing to map: the heap.
        assert!(sendable(&[]).is_empty());
    }

    #[tokio::test]
    async fn a_stream_sends_head_and_mapped_body_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = sendable(&[&vec![7u8; 300_000], b"end"]);
        let expected = [b"HEAD".as_slice(), &body, b"tail"].concat();
        let writer = tokio::spawn(async move {
            let mut stream = Stream::new(TcpStream::connect(addr).await.unwrap());
            // As hyper writes: every part still unsent in one vectored write.
            let mut parts = vec![
                Bytes::from_static(b"HEAD"),
                body,
                Bytes::from_static(b"tail"),
            ];
            while !parts.is_empty() {
                let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
                let mut n = stream.write_vectored(&slices).await.unwrap();
                assert!(n > 0);
                while n > 0 {
                    let take = n.min(parts[0].len());
                    bytes::Buf::advance(&mut parts[0], take);
                    n -= take;
                    if parts[0].is_empty() {
                        parts.remove(0);
                    }
                }
            }
            stream.shutdown().await.unwrap();
        });
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        socket.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, expected);
    }
}
