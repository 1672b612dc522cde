//! Serving an HTTP app on a TCP port with bounds on what each client can hold: the
//! accept loops and the per-connection HTTP/1.1 driver of every TCP port (http, ws,
//! https, wss).
//!
//! Owns, for every connection:
//! - Nagle's algorithm off ([`no_delay`]: messages leave when written), but on the HLS
//!   port, whose sender turns it off only for spliced segment bodies (`zero_copy`);
//! - admission: `http.max_connections` per port and `http.max_connections_per_client`
//!   per port and address ([`Gate`]); a plain connection over the cap gets a `503` with the
//!   reason and is closed, a TLS one is closed before its handshake;
//! - `http.header_read_timeout`: a request head must arrive whole within it, and a
//!   kept-alive connection waits at most that long for its next request (hyper's
//!   `header_read_timeout`, whose timer starts at every request head, the first one too:
//!   a connection that sends nothing, or half a request, is closed);
//! - `http.idle_timeout`: the longest wait for a client to take the next bytes of an
//!   answer ([`Watched`]); the same bound on request bodies is the app's
//!   (`RequestBodyTimeoutLayer`, see [`crate::server`]).
//!
//! What a port serves is an [`App`]: an axum `Router` (the HTTP and WebSocket ports), or
//! an app that answers hyper's requests itself (the HLS port's, whose answers are few and
//! asked for tens of thousands of times a second). A port may wrap each socket first
//! ([`serve_tcp_with`]: the HLS port's `zero_copy::Sender`).
//!
//! A connection upgraded to a WebSocket keeps its slot and its write time-out for as long
//! as the session lives (both travel inside the I/O object); reads on it are the WCS
//! keep-alive's business. Must not: know routes or what the app does.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tower::ServiceExt;
use tracing::debug;

use crate::gate::{Gate, Permit, Refused};

/// What a port serves: the answer to each request of a connection from `peer`.
pub trait App: Clone + Send + Sync + 'static {
    /// The answers' body.
    type Body: hyper::body::Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// What reading an answer's body can fail with.
    type BodyError: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// The answer to `request`.
    fn answer(
        self,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<Self::Body>> + Send + 'static;
}

/// An axum app: its handlers get the client's address as `ConnectInfo<SocketAddr>`, as
/// with `axum::serve(..).into_make_service_with_connect_info()`.
impl App for Router {
    type Body = axum::body::Body;
    type BodyError = axum::Error;

    fn answer(
        self,
        peer: SocketAddr,
        mut request: Request<Incoming>,
    ) -> impl Future<Output = Response<Self::Body>> + Send + 'static {
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            match self.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// The time-outs every connection of a port gets.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a body may pause, or a client take no bytes, before the connection closes.
    pub idle_timeout: Duration,
}

/// Accepts on `listener` forever, serving `app` on every admitted connection.
pub async fn serve_tcp(listener: TcpListener, gate: Arc<Gate>, app: impl App, limits: ConnLimits) {
    // Nagle off: a short answer (a WCS status, a REST reply) leaves at once instead of
    // waiting for the client's delayed ACK.
    serve_tcp_with(listener, gate, app, limits, |socket| {
        no_delay(&socket);
        socket
    })
    .await;
}

/// [`serve_tcp`], each admitted socket first wrapped by `wrap` (the HLS port's sender of
/// bodies without a copy, which sets Nagle off only where a body is spliced: parts and
/// playlists measured faster with it on).
pub async fn serve_tcp_with<A, I, W>(
    listener: TcpListener,
    gate: Arc<Gate>,
    app: A,
    limits: ConnLimits,
    wrap: W,
) where
    A: App,
    W: Fn(TcpStream) -> I,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                debug!("accept error: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.admit(peer.ip()) {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    wrap(socket),
                    peer,
                    permit,
                    app.clone(),
                    limits,
                ));
            }
            Err(refused) => {
                debug!(%peer, "connection refused: {refused}");
                // Best effort and never waiting: the answer fits any socket buffer.
                let _ = socket.try_write(busy_answer(refused).as_bytes());
            }
        }
    }
}

/// Turns Nagle's algorithm off on an accepted connection. Our writes are whole messages
/// (an answer, a WCS status); with Nagle on, a small one written while the previous is
/// not yet acknowledged waits for that ACK, which a browser delays up to 40 ms: a WCS
/// `PUBLISHING` right after its `setRemoteSDP` reached the browser ~30 ms late.
pub fn no_delay(socket: &tokio::net::TcpStream) {
    if let Err(e) = socket.set_nodelay(true) {
        debug!("TCP_NODELAY not set: {e}");
    }
}

/// The `503` a connection over the cap gets before it is closed.
fn busy_answer(refused: Refused) -> String {
    let body = format!("Too many connections: {refused}. Try again later.\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 5\r\n\r\n{body}",
        body.len()
    )
}

/// Serves one admitted connection until it closes, times out or is upgraded (then the
/// upgraded I/O, slot included, lives on in the WebSocket session).
pub async fn serve_connection<A, I>(
    io: I,
    peer: SocketAddr,
    permit: Permit,
    app: A,
    limits: ConnLimits,
) where
    A: App,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched::new(io, permit, limits.idle_timeout));
    let service = service_fn(move |request| {
        let answer = app.clone().answer(peer, request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = connection.await {
        debug!(%peer, "connection ended: {e}");
    }
}

/// A connection's I/O with its slot under the port's cap and a time-out on writes that
/// do not move: a client that stops taking bytes is dropped after `stall`.
pub struct Watched<I> {
    io: I,
    _permit: Permit,
    stall: Duration,
    /// Armed while a write is pending; reset by every write that goes through.
    write_wait: Option<Pin<Box<Sleep>>>,
}

impl<I> Watched<I> {
    /// Wraps `io`, holding the connection's `permit`; writes stalled for `stall` fail.
    pub fn new(io: I, permit: Permit, stall: Duration) -> Self {
        Watched {
            io,
            _permit: permit,
            stall,
            write_wait: None,
        }
    }

    /// Called when a write is pending: pending until the stall time-out, then an error.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.stall;
        let wait = self
            .write_wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match wait.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no bytes for http.idle_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn moved<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.stalled(cx),
            done @ Poll::Ready(_) => {
                self.write_wait = None;
                done
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.moved(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.moved(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_flush(cx);
        self.moved(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_shutdown(cx);
        self.moved(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "Nagle is on by default");
        no_delay(&accepted);
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
