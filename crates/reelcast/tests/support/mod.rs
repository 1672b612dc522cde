//! What the Rust tests that talk to a real server share: starting it on free ports and
//! POSTing an SDP offer over plain HTTP/1.1.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts a server on free ports with `settings` otherwise; returns its HTTP address
/// (on 127.0.0.1) and its media port.
pub(crate) async fn start_server_with(settings: reelcast::config::Settings) -> (SocketAddr, u16) {
    let media = concat!(env!("CARGO_MANIFEST_DIR"), "/../../media");
    start_server_in(media.into(), settings).await
}

/// [`start_server_with`], playing files from `media_dir`.
pub(crate) async fn start_server_in(
    media_dir: std::path::PathBuf,
    settings: reelcast::config::Settings,
) -> (SocketAddr, u16) {
    let settings = reelcast::config::Settings {
        media_dir,
        http_port: 0,
        ws_port: 0,
        media_port: Some(0),
        ..settings
    };
    let (ports, _serving) = reelcast::server::start(settings)
        .await
        .expect("server starts");
    let http = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), ports.http.port());
    (http, ports.media.port())
}

/// One HTTP/1.1 POST over a plain TCP stream; returns (status, body).
pub(crate) async fn post_sdp(http: SocketAddr, path: &str, sdp: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(http)
        .await
        .expect("connect to http");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("http response within 10 s")
        .expect("read response");
    let raw = String::from_utf8(raw).expect("response is UTF-8");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("response has a header/body separator");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = match length {
        Some(n) => body[..n.min(body.len())].to_string(),
        None => body.to_string(),
    };
    (status, body)
}
