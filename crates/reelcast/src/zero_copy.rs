//! Large bodies (HLS segments) sent to a TCP socket without copying them, on Linux.
//!
//! Owns: [`shareable`], which writes a body once into a pipe of its own (the pipe's
//! pages then hold it for as long as the body lives) and records where the body lies in
//! memory; and [`Sender`], a TCP connection's I/O which, when it is asked to write a slice
//! of memory that is such a body, sends it with `tee` (the body's pipe into the
//! connection's pipe: page references, no copy) and `splice` (that pipe into the socket)
//! instead of copying it into the socket with `writev`. The bytes a client receives are
//! the same either way. Anything else, and any body this cannot send (not Linux, the cap
//! on pipes reached, a slice that does not start the body, any error of the pipes),
//! goes the plain way.
//!
//! Why pipes and not `sendfile` from a memory file: on loopback, with a 200 KB body,
//! `tee` + `splice` took about a third less CPU than `sendfile` (which looks up every
//! page of the file on every send), and both far less than the copy
//! (docs/PERFORMANCE.md, "Serving: segments without a copy").
//!
//! Must not: know HTTP or HLS (the head before a body is any bytes).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{sender, shareable, spliced_bytes, Sender};

/// `data` as `Bytes`; elsewhere than Linux, nothing more.
#[cfg(not(target_os = "linux"))]
pub fn shareable(data: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(data)
}

/// Elsewhere than Linux, the plain socket.
#[cfg(not(target_os = "linux"))]
pub type Sender = tokio::net::TcpStream;

/// The plain socket.
#[cfg(not(target_os = "linux"))]
pub fn sender(stream: tokio::net::TcpStream) -> Sender {
    stream
}

/// Bytes sent without a copy since the start: none elsewhere than Linux.
#[cfg(not(target_os = "linux"))]
pub fn spliced_bytes() -> u64 {
    0
}
