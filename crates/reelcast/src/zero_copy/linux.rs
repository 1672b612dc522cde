//! The Linux side of [`super`]: the bodies' pipes, where bodies lie, and the sender.

use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use nix::fcntl::{fcntl, splice, tee, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
use nix::unistd::pipe2;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Smaller bodies are not worth a pipe: the copy is cheap next to the request.
const MIN_LEN: usize = 16 * 1024;
/// At most this many bodies hold a pipe (two file descriptors each while it is made,
/// one after): a bound on descriptors and pipe memory whatever the streams. Beyond it,
/// bodies go the plain way. Less where the process may open few files: [`max_bodies`].
const MAX_BODIES: usize = 2048;

/// [`MAX_BODIES`], or a quarter of the process's limit on open files if that is less:
/// pipes must never take the descriptors its connections need.
fn max_bodies() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        bodies_allowed(getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft))
    })
}

/// How many bodies may hold a pipe when the process may open `open_files` files.
fn bodies_allowed(open_files: u64) -> usize {
    MAX_BODIES.min(usize::try_from(open_files / 4).unwrap_or(MAX_BODIES))
}

/// A body's pipe: its read end, holding the whole body, which is never read, only
/// `tee`d from.
struct Entry {
    id: u64,
    len: usize,
    /// The pipe's capacity in bytes: the connection's pipe must take as much.
    capacity: usize,
    pipe: Arc<OwnedFd>,
}

/// The bodies with a pipe, by the address of their first byte. An entry lives exactly as
/// long as its body's memory ([`Body`]'s drop removes it): a slice being written keeps
/// its body alive, so an address found here is that body's.
static BODIES: RwLock<BTreeMap<usize, Entry>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SPLICED: AtomicU64 = AtomicU64::new(0);

/// Bytes sent without a copy since the start (a test sees the path was taken).
pub fn spliced_bytes() -> u64 {
    SPLICED.load(Ordering::Relaxed)
}

/// The owner of a body's memory: takes its pipe out of [`BODIES`] when it goes.
struct Body {
    data: Vec<u8>,
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let mut bodies = BODIES.write().unwrap_or_else(PoisonError::into_inner);
        bodies.remove(&(self.data.as_ptr() as usize));
    }
}

/// `data` as `Bytes` that a [`Sender`] sends without copying (when `data` is large
/// enough and a pipe could be made for it; else plain `Bytes`). The bytes are copied once
/// here, into the pipe.
pub fn shareable(data: Vec<u8>) -> Bytes {
    let full = || BODIES.read().map_or(true, |b| b.len() >= max_bodies());
    if data.len() < MIN_LEN || full() {
        return Bytes::from(data);
    }
    let Ok((pipe, capacity)) = fill_pipe(&data) else {
        return Bytes::from(data);
    };
    let entry = Entry {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        len: data.len(),
        capacity,
        pipe: Arc::new(pipe),
    };
    {
        let mut bodies = BODIES.write().unwrap_or_else(PoisonError::into_inner);
        if bodies.len() >= max_bodies() {
            return Bytes::from(data);
        }
        // The heap buffer does not move when the Vec does: this stays its address.
        bodies.insert(data.as_ptr() as usize, entry);
    }
    Bytes::from_owner(Body { data })
}

/// A pipe holding `data`: its read end and capacity.
fn fill_pipe(data: &[u8]) -> io::Result<(OwnedFd, usize)> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let capacity = set_capacity(&write, data.len())?;
    let mut at = 0;
    while at < data.len() {
        // Never blocks (non-blocking) and never short of room (the capacity).
        at += nix::unistd::write(&write, &data[at..])?;
    }
    Ok((read, capacity))
}

/// Makes `pipe` hold at least `len` bytes; its capacity (the kernel rounds up). Fails
/// beyond `/proc/sys/fs/pipe-max-size` for an unprivileged process.
fn set_capacity(pipe: impl AsFd, len: usize) -> io::Result<usize> {
    let asked = i32::try_from(len).map_err(|_| io::Error::other("body too large for a pipe"))?;
    let got = usize::try_from(fcntl(pipe, FcntlArg::F_SETPIPE_SZ(asked))?).unwrap_or(0);
    if got < len {
        return Err(io::Error::other("pipe too small"));
    }
    Ok(got)
}

/// Where a slice being written lies: in body `id` from byte `offset`.
struct Found {
    id: u64,
    offset: usize,
    capacity: usize,
    pipe: Arc<OwnedFd>,
}

fn find(slice: &[u8]) -> Option<Found> {
    if slice.is_empty() {
        return None;
    }
    let at = slice.as_ptr() as usize;
    let bodies = BODIES.read().ok()?;
    let (start, entry) = bodies.range(..=at).next_back()?;
    let offset = at - start;
    (offset + slice.len() <= entry.len).then(|| Found {
        id: entry.id,
        offset,
        capacity: entry.capacity,
        pipe: entry.pipe.clone(),
    })
}

/// A connection's pipe, between a body's pipe and the socket, and which of a body's
/// bytes wait in it (a send the socket took only part of leaves the rest there).
struct ConnPipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    held: Option<Held>,
}

/// Bytes `next..end` of body `id` are in the connection's pipe.
#[derive(Clone, Copy)]
struct Held {
    id: u64,
    next: usize,
    end: usize,
}

impl ConnPipe {
    fn new() -> io::Result<Self> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(ConnPipe {
            read,
            write,
            capacity: 0,
            held: None,
        })
    }

    /// True when what waits in the pipe is where `found` starts.
    fn holds(&self, found: &Found) -> bool {
        self.held
            .is_some_and(|h| h.id == found.id && h.next == found.offset)
    }

    /// Puts the first `len` bytes of `found`'s body in the pipe (it must start the body).
    fn load(&mut self, found: &Found, len: usize) -> io::Result<()> {
        if self.held.is_some() {
            // Bytes of another answer the writer gave up on: a fresh pipe drops them.
            *self = ConnPipe::new()?;
        }
        if self.capacity < found.capacity {
            self.capacity = set_capacity(&self.write, found.capacity)?;
        }
        let teed = tee(
            &*found.pipe,
            &self.write,
            len,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        )?;
        if teed != len {
            *self = ConnPipe::new()?;
            return Err(io::Error::other(
                "the body did not fit the connection's pipe",
            ));
        }
        self.held = Some(Held {
            id: found.id,
            next: 0,
            end: len,
        });
        Ok(())
    }

    /// Sends up to `len` of the waiting bytes to `socket`; `WouldBlock` when it is full.
    fn send(&mut self, socket: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        let Some(held) = self.held.as_mut() else {
            return Ok(0);
        };
        let want = (held.end - held.next).min(len);
        let sent = splice(
            &self.read,
            None,
            socket,
            None,
            want,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        )?;
        held.next += sent;
        if held.next == held.end {
            self.held = None;
        }
        SPLICED.fetch_add(sent as u64, Ordering::Relaxed);
        Ok(sent)
    }
}

/// The socket of a connection, sending [`shareable`] bodies through pipes.
pub struct Sender {
    io: TcpStream,
    /// Made at the first body sent this way: two descriptors per such connection.
    pipe: Option<ConnPipe>,
}

/// `stream`, ready to send bodies without a copy.
pub fn sender(stream: TcpStream) -> Sender {
    Sender {
        io: stream,
        pipe: None,
    }
}

impl Sender {
    /// The first slice of `bufs` to send through the pipe, with its index, its pipe
    /// loaded; `None`: everything goes the plain way.
    fn body_in(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let (at, found) = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| Some((i, find(b)?)))?;
        if self.pipe.as_ref().is_some_and(|p| p.holds(&found)) {
            return Some(at);
        }
        // Only a body's start can be loaded (`tee` reads a pipe from its front): a part
        // in the middle of a segment goes the plain way.
        if found.offset != 0 {
            return None;
        }
        if self.pipe.is_none() {
            self.pipe = ConnPipe::new().ok();
            // A splice's last packet is small: with Nagle it waits for the peer's ACK of
            // the packets before it (a delayed ACK: the answers came at a third of the
            // rate). The head is held back for the body by `MSG_MORE` instead. Only on
            // connections that get such bodies: plain answers measured better with Nagle.
            let _ = self.io.set_nodelay(true);
        }
        self.pipe.as_mut()?.load(&found, bufs[at].len()).ok()?;
        Some(at)
    }

    /// One try at sending the loaded body bytes (at most `len`).
    fn try_send(&mut self, len: usize) -> io::Result<usize> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(0);
        };
        let socket = self.io.as_fd();
        self.io
            .try_io(Interest::WRITABLE, || pipe.send(socket, len))
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.io.poll_write_ready(cx))?;
            // Would block: readiness was cleared, wait for the next.
            let done = self.try_send(len);
            if !is_would_block(&done) {
                return Poll::Ready(done);
            }
        }
    }

    /// Sends `head` (the bytes before a body) marked as followed by more, so that it
    /// leaves in one packet with the body's start.
    fn poll_head(&mut self, cx: &mut Context<'_>, head: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.io.poll_write_ready(cx))?;
            let socket = self.io.as_raw_fd();
            let sent = self.io.try_io(Interest::WRITABLE, || {
                let flags =
                    MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL;
                sendmsg::<SockaddrStorage>(socket, head, &[], flags, None).map_err(io::Error::from)
            });
            if !is_would_block(&sent) {
                return Poll::Ready(sent);
            }
        }
    }
}

fn is_would_block(result: &io::Result<usize>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl AsyncRead for Sender {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sender {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let Some(at) = me.body_in(bufs) else {
            return Pin::new(&mut me.io).poll_write_vectored(cx, bufs);
        };
        let body = bufs[at].len();
        if at == 0 {
            return me.poll_send(cx, body);
        }
        let head = &bufs[..at];
        let head_len: usize = head.iter().map(|b| b.len()).sum();
        let sent = ready!(me.poll_head(cx, head))?;
        if sent < head_len {
            return Poll::Ready(Ok(sent));
        }
        // The head is out: as much of the body as goes now; an error shows at the next
        // write, which starts with the body.
        Poll::Ready(Ok(sent + me.try_send(body).unwrap_or(0)))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_take_at_most_a_quarter_of_the_descriptors_a_process_may_open() {
        assert_eq!(bodies_allowed(1024), 256, "a shell's usual limit");
        assert_eq!(bodies_allowed(65_536), MAX_BODIES, "the service unit's");
        assert_eq!(bodies_allowed(u64::MAX), MAX_BODIES);
        assert_eq!(bodies_allowed(0), 0);
    }
}
