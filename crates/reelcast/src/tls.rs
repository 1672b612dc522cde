//! TLS for HTTPS (`https.port`) and WSS (`wss.port`): an [`axum::serve::Listener`] whose
//! connections are already decrypted, so the same apps serve plain and TLS ports.
//!
//! Owns loading `https.cert` / `https.key` (OpenSSL, already linked for DTLS) and the
//! handshakes. A connection is admitted under the port's caps ([`Gate`]) before its
//! handshake (over the cap it is closed at once), and each handshake runs in its own task
//! with a deadline: a client that stalls or fails its handshake costs only itself, never
//! the accept loop. Must not: know what is served over the connections.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_openssl::SslStream;
use tracing::debug;

use crate::gate::{Gate, Permit};
use crate::http_conn::{no_delay, serve_connection, App, ConnLimits};

/// A client must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for `accept` (beyond this, new ones wait their turn).
const READY_QUEUE: usize = 64;

/// Why TLS could not be set up: the file and OpenSSL's words.
#[derive(Debug, thiserror::Error)]
#[error("cannot load {what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

/// The server side of TLS, from a PEM certificate chain and its PEM private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<Arc<SslAcceptor>, TlsError> {
    let fail = |what, path: &Path, e: &dyn std::fmt::Display| TlsError {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // OpenSSL's words for a missing file are a stack of codes: say it plainly first.
    for (what, path) in [("https.cert", cert), ("https.key", key)] {
        std::fs::File::open(path).map_err(|e| fail(what, path, &e))?;
    }
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| fail("TLS defaults for", cert, &e))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| fail("https.cert", cert, &e))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| fail("https.key", key, &e))?;
    builder
        .check_private_key()
        .map_err(|e| fail("https.key (does it belong to https.cert?)", key, &e))?;
    Ok(Arc::new(builder.build()))
}

/// A connection that finished its handshake, with its slot under the port's caps.
type Ready = (SslStream<TcpStream>, SocketAddr, Permit);

/// A TCP listener whose accepted connections have completed a TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<Ready>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp`; handshakes run in the background.
    pub fn new(
        tcp: TcpListener,
        acceptor: Arc<SslAcceptor>,
        gate: Arc<Gate>,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, gate, tx));
        Ok(TlsListener {
            ready,
            local,
            accept_task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Arc<SslAcceptor>,
    gate: Arc<Gate>,
    ready: mpsc::Sender<Ready>,
) {
    loop {
        let (socket, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin (as axum does).
                debug!("tls accept error: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let permit = match gate.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                debug!(%peer, "TLS connection refused: {refused}");
                continue;
            }
        };
        no_delay(&socket);
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, socket)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer, permit)).await;
                }
                Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn handshake(
    acceptor: &SslAcceptor,
    socket: TcpStream,
) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, socket).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .accept()
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Serves `app` on every connection that finishes its handshake, forever.
pub async fn serve(mut listener: TlsListener, app: impl App, limits: ConnLimits) {
    while let Some((stream, peer, permit)) = listener.ready.recv().await {
        tokio::spawn(serve_connection(stream, peer, permit, app.clone(), limits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let Err(err) = acceptor(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        ) else {
            panic!("a missing certificate must be refused");
        };
        assert_eq!(
            err.to_string(),
            "cannot load https.cert /nonexistent/cert.pem: No such file or directory (os error 2)"
        );
    }
}
