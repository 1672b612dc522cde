//! Soak benchmark (not a test): thousands of viewers join and leave the real server, in
//! the four ways real clients leave, and the server must end up as it started.
//!
//! ```text
//! bench/soak.sh [--cycles 2000] [--parallel 6]
//! # which is: cargo build --release -p reelcast --bin reelcast --example soak, then
//! target/release/examples/soak --server target/release/reelcast [--cycles N] [--parallel N]
//! ```
//!
//! What it does, bounded in count and time, on 127.0.0.1 only:
//! 1. Starts the server binary on free loopback ports with the repo's `media/sample.mp4`,
//!    `vod_live_loop=true` (translations never end by themselves) and
//!    `vod_stream_timeout=2000`.
//! 2. Runs `--cycles` join/leave cycles, `--parallel` at a time, taking turns between:
//!    - `whep-delete`: WHEP POST of `vod://sample.mp4`, ICE + DTLS, first media, `DELETE`;
//!    - `whep-abandon`: WHEP POST of `vod-live://sample.mp4`, first media, then the client
//!      vanishes (no DELETE, no DTLS alert, no RTCP BYE: a closed laptop);
//!    - `ws-stop`: WCS WebSocket `connection`, `playStream` of `vod-live://sample.mp4`,
//!      first media, `stopStream` (answered STOPPED), socket closed;
//!    - `ws-close`: the same with `vod://sample.mp4`, then the socket closed without
//!      `stopStream` and the media client vanishing (a closed tab).
//!
//!    Every client is a str0m `Rtc` (full ICE, controlling) on its own UDP socket; "first
//!    media" is the first decrypted RTP packet. A cycle has 10 s to get there.
//! 3. After a warm-up of 40 cycles and after every quarter, waits until
//!    `/rest-api/stream/find_all` lists nothing (abandoned viewers end when their consent
//!    checks stop: 15 s; the translation `vod_stream_timeout` after its last viewer) and
//!    reads the server's `VmRSS`, open fds and threads from `/proc`.
//! 4. Prints a table; exits non-zero when a cycle failed or the server did not empty
//!    within 25 s of the last cycle.

// A benchmark client: its cycles are awaited one at a time per task, large futures on
// the stack are fine (boxing them would add an allocation per cycle to what is measured).
#![allow(clippy::large_futures)]

mod bench_client;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_client::{free_tcp_port, new_client};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use str0m::change::SdpAnswer;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

/// Time for one cycle to reach its first media packet.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to list nothing after the last cycle: the 15 s consent
/// time-out of an abandoned viewer, the 2 s without viewers of a translation, and slack.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(25);
const WARM_UP: usize = 40;

#[derive(Clone, Copy, Debug)]
enum Kind {
    WhepDelete,
    WhepAbandon,
    WsStop,
    WsClose,
}

const KINDS: [Kind; 4] = [
    Kind::WhepDelete,
    Kind::WhepAbandon,
    Kind::WsStop,
    Kind::WsClose,
];

struct Options {
    cycles: usize,
    parallel: usize,
    server: PathBuf,
}

fn options() -> Result<Options> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let mut o = Options {
        cycles: 2000,
        parallel: 6,
        server: target.join("release/reelcast"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--cycles" => o.cycles = value.parse()?,
            "--parallel" => o.parallel = value.parse::<usize>()?.max(1),
            "--server" => o.server = value.into(),
            _ => bail!("unknown argument {arg}"),
        }
    }
    Ok(o)
}

struct Server {
    child: Child,
    http: SocketAddr,
    ws: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(binary: &Path, log: &Path) -> Result<Server> {
    let media_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../media");
    let log_file = std::fs::File::create(log)?;
    for _attempt in 0..3 {
        let (http, ws) = (free_tcp_port()?, free_tcp_port()?);
        let udp = StdUdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--media-dir")
            .arg(&media_dir)
            .args([
                "--http-port",
                &http.to_string(),
                "--ws-port",
                &ws.to_string(),
            ])
            .args(["--media-port", &udp.to_string(), "--ip", "127.0.0.1"])
            .args([
                "--set",
                "vod_live_loop=true",
                "--set",
                "vod_stream_timeout=2000",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file.try_clone()?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let http = SocketAddr::from(([127, 0, 0, 1], http));
        let ws = SocketAddr::from(([127, 0, 0, 1], ws));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && child.try_wait()?.is_none() {
            if TcpStream::connect(http).await.is_ok() && TcpStream::connect(ws).await.is_ok() {
                return Ok(Server { child, http, ws });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("the server did not start; see {}", log.display())
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, head, body).
async fn http(
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(to).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(CYCLE_TIMEOUT, stream.read_to_end(&mut raw)).await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad HTTP status line")?;
    Ok((status, head.to_string(), body.to_string()))
}

/// Runs the client until its first RTP packet (then returns it, still connected).
async fn first_media(mut rtc: Rtc, socket: StdUdpSocket) -> Result<(Rtc, UdpSocket)> {
    let socket = UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = match rtc.poll_output()? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(Event::RtpPacket(_)) => return Ok((rtc, socket)),
            Output::Event(_) => continue,
        };
        let input = tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, source) = received?;
                Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents: buf[..n].try_into()?,
                    },
                )
            }
            () = tokio::time::sleep_until(timeout.into()) => Input::Timeout(Instant::now()),
            () = tokio::time::sleep_until(deadline) => bail!("no media within {CYCLE_TIMEOUT:?}"),
        };
        rtc.handle_input(input)?;
    }
}

fn whep_path(stream: &str) -> String {
    format!(
        "/whep/{}",
        percent_encoding::utf8_percent_encode(stream, percent_encoding::NON_ALPHANUMERIC)
    )
}

async fn whep_cycle(server: &Server, stream: &str, delete: bool) -> Result<()> {
    let (mut rtc, socket, offer, pending) = new_client()?;
    let (status, head, answer) = http(server.http, "POST", &whep_path(stream), &offer).await?;
    if status != 201 {
        bail!("WHEP answered {status}: {answer}");
    }
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or(l.strip_prefix("Location: "))
        })
        .context("no Location")?
        .trim()
        .to_string();
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let (rtc, socket) = first_media(rtc, socket).await?;
    if delete {
        let (status, _, body) = http(server.http, "DELETE", &location, "").await?;
        if status != 200 {
            bail!("DELETE answered {status}: {body}");
        }
    }
    // Gone without a word: no DTLS alert, no BYE (str0m's disconnect would send neither
    // either, but dropping says it plainly).
    drop((rtc, socket));
    Ok(())
}

async fn ws_cycle(server: &Server, stream: &str, stop: bool) -> Result<()> {
    let tcp = TcpStream::connect(server.ws).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/", server.ws), tcp).await?;
    let send = |name: &str, data: Value| {
        Message::text(json!({"message": name, "data": [data]}).to_string())
    };
    ws.send(send(
        "connection",
        json!({"appKey": "defaultApp", "mediaProviders": ["WebRTC"]}),
    ))
    .await?;
    let (mut rtc, socket, offer, pending) = new_client()?;
    let id = uuid::Uuid::new_v4().to_string();
    ws.send(send(
        "playStream",
        json!({"mediaSessionId": id, "name": stream, "sdp": offer}),
    ))
    .await?;
    // Read until the answer; statuses and pings may come first.
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    let answer = loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .context("no setRemoteSDP in time")?
            .context("socket closed")??;
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text)?;
        match v["message"].as_str() {
            Some("setRemoteSDP") => break v["data"][1].as_str().context("no SDP")?.to_string(),
            Some("notifyStreamStatusEvent") if v["data"][0]["status"] == "FAILED" => {
                bail!("FAILED: {}", v["data"][0]["info"])
            }
            _ => {}
        }
    };
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let (rtc, socket) = first_media(rtc, socket).await?;
    if stop {
        ws.send(send(
            "stopStream",
            json!({"mediaSessionId": id, "name": stream}),
        ))
        .await?;
        loop {
            let msg = tokio::time::timeout_at(deadline + CYCLE_TIMEOUT, ws.next())
                .await
                .context("no STOPPED after stopStream")?
                .context("socket closed before STOPPED")??;
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text)?;
            if v["message"] == "notifyStreamStatusEvent" && v["data"][0]["status"] == "STOPPED" {
                break;
            }
        }
        let _ = ws.close(None).await;
    } else {
        // The tab closes: the TCP connection goes without a close frame.
        drop(ws);
    }
    drop((rtc, socket));
    Ok(())
}

async fn cycle(server: &Server, kind: Kind) -> Result<()> {
    match kind {
        Kind::WhepDelete => whep_cycle(server, "vod://sample.mp4", true).await,
        Kind::WhepAbandon => whep_cycle(server, "vod-live://sample.mp4", false).await,
        Kind::WsStop => ws_cycle(server, "vod-live://sample.mp4", true).await,
        Kind::WsClose => ws_cycle(server, "vod://sample.mp4", false).await,
    }
}

/// Runs cycles `from..to` on `parallel` tasks; returns the failures.
async fn run_cycles(server: &Arc<Server>, from: usize, to: usize, parallel: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(from));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (server, next, failed) = (server.clone(), next.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    break;
                }
                let kind = KINDS[i % KINDS.len()];
                if let Err(e) = cycle(&server, kind).await {
                    if failed.fetch_add(1, Ordering::Relaxed) < 10 {
                        eprintln!("cycle {i} ({kind:?}) failed: {e:#}");
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    failed.load(Ordering::Relaxed)
}

/// Waits until the server lists no stream; returns how long that took.
async fn wait_empty(server: &Server) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < EMPTY_TIMEOUT {
        let (status, _, body) = http(server.http, "POST", "/rest-api/stream/find_all", "").await?;
        let listed = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0);
        if status == 404 || listed == 0 {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("streams still listed {EMPTY_TIMEOUT:?} after the last cycle")
}

struct Usage {
    rss_kb: u64,
    fds: usize,
    threads: u64,
}

fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {key} in /proc/{pid}/status"))
    };
    Ok(Usage {
        rss_kb: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let o = options()?;
    let log = std::env::temp_dir().join(format!("reelcast-soak-{}.log", std::process::id()));
    let server = Arc::new(start_server(&o.server, &log).await?);
    let pid = server.child.id();
    println!(
        "soak: {} cycles, {} at a time, server {} (log {})",
        o.cycles,
        o.parallel,
        o.server.display(),
        log.display()
    );
    println!("| after cycles | failed | emptied after | RSS MB | fds | threads | elapsed |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    let mut failed = run_cycles(&server, 0, WARM_UP, o.parallel).await;
    let row = |done: usize, failed: usize, emptied: Duration| -> Result<()> {
        let u = usage(pid)?;
        println!(
            "| {done} | {failed} | {:.1} s | {:.1} | {} | {} | {:.0} s |",
            emptied.as_secs_f64(),
            u.rss_kb as f64 / 1024.0,
            u.fds,
            u.threads,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    };
    row(WARM_UP, failed, wait_empty(&server).await?)?;
    let total = WARM_UP + o.cycles;
    let quarter = o.cycles.div_ceil(4).max(1);
    let mut done = WARM_UP;
    while done < total {
        let to = (done + quarter).min(total);
        failed += run_cycles(&server, done, to, o.parallel).await;
        done = to;
        let emptied = wait_empty(&server).await?;
        row(done, failed, emptied)?;
    }
    if failed > 0 {
        bail!("{failed} cycles failed; server log: {}", log.display());
    }
    Ok(())
}
