//! Fan-out benchmark (not a test): the server's CPU and memory per viewer of one live
//! translation, with viewers that are real WebRTC clients.
//!
//! ```text
//! cargo build --release
//! cargo run --release -p reelcast --example fanout -- --viewers 100,250,500,1000
//! ```
//!
//! What it does, bounded in time and stopping by itself:
//! 1. Makes (once, cached in `/tmp/reelcast-bench`) a 60 s 640x360 30 fps H.264 + AAC file
//!    of about 600 kbit/s with ffmpeg, and puts it in a fresh media dir.
//! 2. Starts the real server binary (`target/release/reelcast serve`) on free 127.0.0.1
//!    ports with `vod_live_loop=true`, logging at `warn`.
//! 3. Opens viewers of ONE translation, `vod-live://file.mp4`, over WHEP (`POST
//!    /whep/vod-live%3A%2F%2Ffile.mp4`, SDP offer, 201 + answer). Every viewer is a str0m
//!    `Rtc` (full ICE, controlling) with its own UDP socket, driven by its own task on a
//!    small multi-threaded tokio runtime in this process; it completes ICE and DTLS with the
//!    server and then receives SRTP, which it decrypts and counts (str0m RTP mode: packets,
//!    not reassembled frames, so the client spends less CPU). Viewers join in batches; a
//!    batch must be receiving before the next one starts.
//! 4. At each viewer count: settles, then for a steady window reads the server process's
//!    CPU (utime + stime, `/proc/PID/stat`) and memory (`VmRSS`, `RssAnon` and the
//!    `Anonymous` of `smaps_rollup`), this process's own CPU, and the whole machine's busy
//!    share (`/proc/stat`: the machine is shared). Each viewer's packets in the window are
//!    compared with what the server sent it (the span of RTP sequence numbers per SSRC) and
//!    its video bytes with the file's video bit rate: a viewer below 90 % of either counts
//!    as starved.
//! 5. Prints a Markdown table; per-viewer figures are the change from the idle server
//!    (N = 0) divided by N, so they include the translation's fixed cost; the marginal
//!    ones are the slope from the previous viewer count (what one more viewer costs).
//!
//! Options: `--viewers LIST` (default `0,100,250,500,1000`), `--window S` (20), `--settle S`
//! (5), `--batch N` (50), `--client-threads N` (2), `--server PATH`, `--stream NAME` (default
//! `vod-live://file.mp4`; `vod://file.mp4` gives every viewer a personal VOD: what a stream
//! costs, threads included), `--media PATH` (play this file as `file.mp4` instead of the
//! made one; hard-linked, so a sparse file stays sparse), `--tcp` (every viewer has only an
//! active TCP candidate and plays over ICE-TCP: one TCP connection, RFC 4571 framing).
//!
//! Against another build (`--baseline PATH`, e.g. an older `reelcast` binary): the two
//! servers are measured in turn, `--rounds N` times each (default 3), under the same
//! client, and a last table compares their per-viewer figures (medians over the rounds).
//! The machine's speed drifts over minutes; alternating is what makes the two comparable.

mod bench_client;

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_client::{free_tcp_port, new_client, new_tcp_client};

use anyhow::{bail, Context, Result};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::Pt;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Viewers play over ICE-TCP (`--tcp`).
static TCP: AtomicBool = AtomicBool::new(false);
/// The stream every viewer plays (`--stream`).
static STREAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The test file, made once and reused.
const BENCH_DIR: &str = "/tmp/reelcast-bench";
const MEDIA_FILE: &str = "fanout_600k.mp4";
/// A viewer of a batch that is not receiving after this long counts as failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A viewer must get this share of what was sent to it.
const MIN_SHARE: f64 = 0.90;

struct Options {
    viewers: Vec<usize>,
    window: Duration,
    settle: Duration,
    batch: usize,
    client_threads: usize,
    server: PathBuf,
    baseline: Option<PathBuf>,
    rounds: usize,
    stream: String,
    media: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut o = Options {
            viewers: vec![0, 100, 250, 500, 1000],
            window: Duration::from_secs(20),
            settle: Duration::from_secs(5),
            batch: 50,
            client_threads: 2,
            server: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/reelcast"),
            baseline: None,
            rounds: 0,
            stream: "vod-live://file.mp4".into(),
            media: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--viewers" => {
                    o.viewers = value()?
                        .split(',')
                        .map(|n| n.trim().parse().context("--viewers: a list of numbers"))
                        .collect::<Result<_>>()?;
                }
                "--window" => o.window = Duration::from_secs(value()?.parse()?),
                "--settle" => o.settle = Duration::from_secs(value()?.parse()?),
                "--batch" => o.batch = value()?.parse::<usize>()?.max(1),
                "--client-threads" => o.client_threads = value()?.parse::<usize>()?.max(1),
                "--server" => o.server = value()?.into(),
                "--baseline" => o.baseline = Some(value()?.into()),
                "--rounds" => o.rounds = value()?.parse::<usize>()?.max(1),
                "--stream" => o.stream = value()?,
                "--media" => o.media = Some(value()?.into()),
                "--tcp" => TCP.store(true, Ordering::Relaxed),
                other => bail!("unknown option {other} (see the example's docs)"),
            }
        }
        o.viewers.sort_unstable();
        o.viewers.dedup();
        if o.viewers.first() != Some(&0) {
            // The idle server is the baseline every per-viewer figure is measured from.
            o.viewers.insert(0, 0);
        }
        if o.rounds == 0 {
            o.rounds = if o.baseline.is_some() { 3 } else { 1 };
        }
        Ok(o)
    }
}

fn main() -> Result<()> {
    let options = Options::parse()?;
    let servers: Vec<(&str, &Path)> = match &options.baseline {
        Some(baseline) => vec![("baseline", baseline), ("reelcast", &options.server)],
        None => vec![("reelcast", &options.server)],
    };
    for (_, path) in &servers {
        if !path.exists() {
            bail!(
                "{} not found: run `cargo build --release` first",
                path.display()
            );
        }
    }
    STREAM.get_or_init(|| options.stream.clone());
    let media = match &options.media {
        Some(path) => probe_media(path.clone())?,
        None => make_media()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads)
        .enable_all()
        .build()?;
    let root = std::env::temp_dir().join(format!("reelcast-fanout-{}", std::process::id()));
    let mut results: Vec<(&str, Vec<Point>)> = Vec::new();
    for round in 1..=options.rounds {
        for (label, path) in &servers {
            if servers.len() > 1 || options.rounds > 1 {
                eprintln!(
                    "\n== round {round}/{}: {label} ({})",
                    options.rounds,
                    path.display()
                );
            }
            let points = runtime.block_on(run(&options, path, &media, &root));
            let _ = std::fs::remove_dir_all(&root);
            let points = points?;
            print_table(&points, &options);
            results.push((label, points));
        }
    }
    if servers.len() > 1 {
        print_comparison(&results, &options);
    }
    Ok(())
}

/// The file's video bit rate, from ffprobe.
struct MediaFacts {
    path: PathBuf,
    video_bps: f64,
}

fn make_media() -> Result<MediaFacts> {
    let path = Path::new(BENCH_DIR).join(MEDIA_FILE);
    if !path.exists() {
        std::fs::create_dir_all(BENCH_DIR)?;
        let tmp = Path::new(BENCH_DIR).join("fanout_600k.tmp.mp4");
        eprintln!("making {} with ffmpeg ...", path.display());
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=640x360:rate=30")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t", "60", "-c:v", "libx264", "-b:v", "550k", "-maxrate", "600k",
            ])
            .args([
                "-bufsize", "600k", "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
            ])
            .arg(&tmp)
            .status()
            .context("running ffmpeg")?;
        if !status.success() {
            bail!("ffmpeg failed: {status}");
        }
        std::fs::rename(&tmp, &path)?;
    }
    probe_media(path)
}

fn probe_media(path: PathBuf) -> Result<MediaFacts> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=bit_rate", "-of", "default=nw=1:nk=1"])
        .arg(&path)
        .output()
        .context("running ffprobe")?;
    let video_bps: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("ffprobe gave no video bit rate")?;
    Ok(MediaFacts { path, video_bps })
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(server: &Path, media: &MediaFacts, root: &Path) -> Result<Server> {
    let media_dir = root.join("media");
    std::fs::create_dir_all(&media_dir)?;
    let file = media_dir.join("file.mp4");
    if std::fs::hard_link(&media.path, &file).is_err() {
        std::fs::copy(&media.path, &file)?;
    }
    let log = std::fs::File::create(root.join("server.log"))?;
    for _attempt in 0..3 {
        let (http, ws) = (free_tcp_port()?, free_tcp_port()?);
        let udp = StdUdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(server)
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
            .args(["--set", "vod_live_loop=true"])
            .env(
                "RUST_LOG",
                std::env::var("FANOUT_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let http = SocketAddr::from(([127, 0, 0, 1], http));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                break;
            }
            if tokio::net::TcpStream::connect(http).await.is_ok() {
                return Ok(Server { child, http });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!(
        "the server did not start; its log: {}",
        std::fs::read_to_string(root.join("server.log")).unwrap_or_default()
    )
}

/// What one viewer has received so far, shared with the measuring task.
#[derive(Default)]
struct Counters {
    /// ICE and DTLS are up.
    connected: AtomicBool,
    receiving: AtomicBool,
    failed: AtomicBool,
    packets: AtomicU64,
    video_bytes: AtomicU64,
    /// Per SSRC (video, audio): highest extended sequence number seen + 1 (0: none yet).
    seq_end: [AtomicU64; 2],
}

/// A snapshot of [`Counters`] at one moment.
#[derive(Clone, Copy, Default)]
struct Snapshot {
    packets: u64,
    video_bytes: u64,
    seq_end: [u64; 2],
}

impl Counters {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            packets: self.packets.load(Ordering::Relaxed),
            video_bytes: self.video_bytes.load(Ordering::Relaxed),
            seq_end: [
                self.seq_end[0].load(Ordering::Relaxed),
                self.seq_end[1].load(Ordering::Relaxed),
            ],
        }
    }
}

/// One HTTP/1.1 POST; returns (status, body).
async fn post_sdp(http: SocketAddr, path: &str, sdp: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(http).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(JOIN_TIMEOUT, stream.read_to_end(&mut raw)).await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad HTTP status line")?;
    Ok((status, body.to_string()))
}

/// One viewer: offer over WHEP, then the str0m run loop until `stop`.
async fn viewer(http: SocketAddr, counters: Arc<Counters>, stop: watch::Receiver<bool>) {
    if let Err(e) = Box::pin(run_viewer(http, &counters, stop)).await {
        if !counters.failed.swap(true, Ordering::Relaxed) {
            eprintln!("viewer failed: {e:#}");
        }
    }
}

async fn run_viewer(
    http: SocketAddr,
    counters: &Counters,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    if TCP.load(Ordering::Relaxed) {
        return run_tcp_viewer(http, counters, stop).await;
    }
    let (mut rtc, socket, offer, pending) = new_client()?;
    let answer = whep(http, &offer).await?;
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let socket = UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    let (video_pts, audio_pts) = media_pts(&rtc);
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = match rtc.poll_output()? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(event) => {
                on_event(event, counters, &video_pts, &audio_pts)?;
                continue;
            }
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
            _ = stop.changed() => break,
        };
        rtc.handle_input(input)?;
    }
    rtc.disconnect();
    Ok(())
}

/// The WHEP path of the stream every viewer plays.
fn whep_path() -> String {
    format!(
        "/whep/{}",
        percent_encoding::utf8_percent_encode(
            STREAM.get().map_or("vod-live://file.mp4", String::as_str),
            percent_encoding::NON_ALPHANUMERIC
        )
    )
}

/// POSTs the offer; the answer of a 201.
async fn whep(http: SocketAddr, offer: &str) -> Result<String> {
    let (status, answer) = post_sdp(http, &whep_path(), offer).await?;
    if status != 201 {
        bail!("WHEP answered {status}: {answer}");
    }
    Ok(answer)
}

/// Counts a received packet; fails on a lost connection.
fn on_event(event: Event, counters: &Counters, video_pts: &[Pt], audio_pts: &[Pt]) -> Result<()> {
    match event {
        Event::RtpPacket(p) => {
            let pt = p.header.payload_type;
            let slot = if video_pts.contains(&pt) {
                counters
                    .video_bytes
                    .fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                Some(0)
            } else if audio_pts.contains(&pt) {
                Some(1)
            } else {
                None
            };
            counters.packets.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = slot {
                counters.seq_end[slot].fetch_max(*p.seq_no + 1, Ordering::Relaxed);
            }
            counters.receiving.store(true, Ordering::Relaxed);
        }
        Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
            bail!("ICE disconnected")
        }
        Event::Connected => counters.connected.store(true, Ordering::Relaxed),
        _ => {}
    }
    Ok(())
}

/// Which payload types are video (H.264) and audio (Opus). Anything else, e.g. a resend
/// on the RTX payload type, is counted as a packet but not used to track sequence numbers.
fn media_pts(rtc: &Rtc) -> (Vec<Pt>, Vec<Pt>) {
    let pts_of = |codec: Codec| -> Vec<Pt> {
        rtc.codec_config()
            .params()
            .iter()
            .filter(|p| p.spec().codec == codec)
            .map(str0m::format::PayloadParams::pt)
            .collect()
    };
    (pts_of(Codec::H264), pts_of(Codec::Opus))
}

/// One viewer over ICE-TCP: one connection to the first candidate str0m checks, every
/// packet framed with a two-byte length (RFC 4571).
async fn run_tcp_viewer(
    http: SocketAddr,
    counters: &Counters,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let (mut rtc, offer, pending) = new_tcp_client()?;
    let answer = whep(http, &offer).await?;
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;
    let local: SocketAddr = "127.0.0.1:9".parse()?;
    let (video_pts, audio_pts) = media_pts(&rtc);
    let mut stream: Option<(tokio::net::TcpStream, SocketAddr)> = None;
    let mut inbound: Vec<u8> = Vec::new();
    // Packets of one read, given to str0m one at a time: its outputs must be drained
    // after every input, or an event is lost.
    let mut packets = std::collections::VecDeque::<Vec<u8>>::default();
    let mut buf = vec![0u8; 16384];
    loop {
        let timeout = match rtc.poll_output()? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                if stream.is_none() {
                    let s = tokio::net::TcpStream::connect(t.destination).await?;
                    s.set_nodelay(true)?;
                    stream = Some((s, t.destination));
                }
                let (s, to) = stream.as_mut().context("connected")?;
                if *to == t.destination {
                    let mut framed = (t.contents.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&t.contents);
                    s.write_all(&framed).await?;
                }
                continue;
            }
            Output::Event(event) => {
                on_event(event, counters, &video_pts, &audio_pts)?;
                continue;
            }
        };
        if let Some(packet) = packets.pop_front() {
            let source = stream.as_ref().map(|(_, to)| *to).context("connected")?;
            rtc.handle_input(Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Tcp,
                    source,
                    destination: local,
                    contents: packet.as_slice().try_into()?,
                },
            ))?;
            continue;
        }
        let read = async {
            match stream.as_mut() {
                Some((s, _)) => s.read(&mut buf).await,
                None => std::future::pending().await,
            }
        };
        let n = tokio::select! {
            n = read => n?,
            () = tokio::time::sleep_until(timeout.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
                continue;
            }
            _ = stop.changed() => break,
        };
        if n == 0 {
            bail!("the server closed the TCP connection");
        }
        inbound.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while inbound.len() - at >= 2 {
            let len = usize::from(u16::from_be_bytes([inbound[at], inbound[at + 1]]));
            if inbound.len() - at < 2 + len {
                break;
            }
            packets.push_back(inbound[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        inbound.drain(..at);
    }
    rtc.disconnect();
    Ok(())
}

/// CPU time (utime + stime) of a process, in seconds.
fn cpu_seconds(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// USER_HZ: 100 on every Linux we run on; `getconf` says for sure.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Whole machine: (busy, total) jiffies from /proc/stat.
fn machine_jiffies() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    Ok((total - idle, total))
}

/// A `kB` field of a /proc file.
fn proc_kb(path: &str, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} in {path}"))
}

struct Memory {
    rss_kb: u64,
    anon_kb: u64,
    smaps_anon_kb: u64,
    threads: u64,
}

fn memory(pid: &str) -> Result<Memory> {
    let status = format!("/proc/{pid}/status");
    let threads = std::fs::read_to_string(&status)?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        .unwrap_or(0);
    Ok(Memory {
        rss_kb: proc_kb(&status, "VmRSS")?,
        anon_kb: proc_kb(&status, "RssAnon")?,
        smaps_anon_kb: proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Anonymous")?,
        threads,
    })
}

/// One measurement point.
struct Point {
    viewers: usize,
    receiving: usize,
    failed: usize,
    server_cpu: f64,
    client_cpu: f64,
    machine_busy: f64,
    mem: Memory,
    starved: usize,
    worst_share: f64,
    median_kbps: f64,
}

/// Measures one server at every viewer count of `options`.
async fn run(
    options: &Options,
    server: &Path,
    media: &MediaFacts,
    root: &Path,
) -> Result<Vec<Point>> {
    let server = start_server(server, media, root).await?;
    let pid = server.child.id().to_string();
    let own = std::process::id().to_string();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut viewers: Vec<Arc<Counters>> = Vec::new();
    let mut tasks = Vec::new();
    let mut points: Vec<Point> = Vec::new();
    eprintln!(
        "server pid {pid} on {}; file video {:.0} kbit/s; window {:?}, settle {:?}",
        server.http,
        media.video_bps / 1000.0,
        options.window,
        options.settle
    );

    for &target in &options.viewers {
        let ramp_started = Instant::now();
        while viewers.len() < target {
            let batch = options.batch.min(target - viewers.len());
            let fresh: Vec<Arc<Counters>> = (0..batch).map(|_| Arc::default()).collect();
            for c in &fresh {
                tasks.push(tokio::spawn(viewer(
                    server.http,
                    c.clone(),
                    stop_rx.clone(),
                )));
            }
            let deadline = Instant::now() + JOIN_TIMEOUT;
            while Instant::now() < deadline
                && !fresh.iter().all(|c| {
                    c.receiving.load(Ordering::Relaxed) || c.failed.load(Ordering::Relaxed)
                })
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            viewers.extend(fresh);
        }
        let silent = viewers
            .iter()
            .filter(|c| !c.receiving.load(Ordering::Relaxed) && !c.failed.load(Ordering::Relaxed))
            .count();
        let unconnected = viewers
            .iter()
            .filter(|c| !c.connected.load(Ordering::Relaxed))
            .count();
        eprintln!(
            "N={target}: ramp took {:.1} s ({silent} silent, {unconnected} never connected); \
             settling",
            ramp_started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(options.settle).await;

        let before: Vec<Snapshot> = viewers.iter().map(|c| c.snapshot()).collect();
        let (s0, c0, m0) = (cpu_seconds(&pid)?, cpu_seconds(&own)?, machine_jiffies()?);
        let t0 = Instant::now();
        tokio::time::sleep(options.window).await;
        let (s1, c1, m1) = (cpu_seconds(&pid)?, cpu_seconds(&own)?, machine_jiffies()?);
        let elapsed = t0.elapsed().as_secs_f64();
        let after: Vec<Snapshot> = viewers.iter().map(|c| c.snapshot()).collect();
        let mem = memory(&pid)?;

        // Each viewer against what was sent to it and against the file's bit rate.
        let wanted_video_bytes = media.video_bps / 8.0 * elapsed;
        let mut shares = Vec::new();
        let mut kbps = Vec::new();
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let sent: u64 = (0..2)
                .map(|i| {
                    if b.seq_end[i] == 0 {
                        a.seq_end[i]
                    } else {
                        a.seq_end[i] - b.seq_end[i]
                    }
                })
                .sum();
            let got = a.packets - b.packets;
            let packet_share = if sent == 0 {
                0.0
            } else {
                (got as f64 / sent as f64).min(1.0)
            };
            let video = (a.video_bytes - b.video_bytes) as f64;
            let byte_share = (video / wanted_video_bytes).min(1.0);
            if packet_share.min(byte_share) < MIN_SHARE {
                eprintln!(
                    "  viewer {i} starved: {got} of {sent} packets, {video:.0} of {wanted_video_bytes:.0} video bytes"
                );
            }
            shares.push(packet_share.min(byte_share));
            kbps.push(video * 8.0 / elapsed / 1000.0);
        }
        kbps.sort_by(f64::total_cmp);
        let point = Point {
            viewers: target,
            receiving: viewers
                .iter()
                .filter(|c| c.receiving.load(Ordering::Relaxed))
                .count(),
            failed: viewers
                .iter()
                .filter(|c| c.failed.load(Ordering::Relaxed))
                .count(),
            server_cpu: (s1 - s0) / elapsed,
            client_cpu: (c1 - c0) / elapsed,
            machine_busy: (m1.0 - m0.0) / (m1.1 - m0.1).max(1.0),
            mem,
            starved: shares.iter().filter(|s| **s < MIN_SHARE).count(),
            worst_share: shares.iter().copied().fold(1.0, f64::min),
            median_kbps: kbps.get(kbps.len() / 2).copied().unwrap_or(0.0),
        };
        eprintln!(
            "N={target}: server {:.1} % of a core, RSS {} kB, client {:.1} %, {} starved",
            point.server_cpu * 100.0,
            point.mem.rss_kb,
            point.client_cpu * 100.0,
            point.starved
        );
        points.push(point);
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    drop(server);
    // Warnings the server logged (it runs at `warn`), so a failure can be told from a loss.
    let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
    // Kept after the run (set FANOUT_SERVER_LOG=debug for the whole story).
    let _ = std::fs::write(Path::new(BENCH_DIR).join("fanout-server.log"), &log);
    let lines: Vec<&str> = log.lines().collect();
    if !lines.is_empty() {
        eprintln!("server log ({} lines, last 20):", lines.len());
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("  {line}");
        }
    }
    Ok(points)
}

/// Per viewer of `point` over the idle server: (share of a core, KB of `smaps` anonymous).
fn per_viewer(point: &Point, idle: &Point) -> (f64, f64) {
    let n = point.viewers.max(1) as f64;
    (
        (point.server_cpu - idle.server_cpu) / n,
        (point.mem.smaps_anon_kb as f64 - idle.mem.smaps_anon_kb as f64) / n,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The baseline against reelcast, per viewer count: every round's figure and the median.
fn print_comparison(results: &[(&str, Vec<Point>)], options: &Options) {
    println!(
        "\nper viewer, {} rounds alternating (medians decide)\n",
        options.rounds
    );
    println!("| viewers | server | % of a core per viewer (each round) | median → viewers per core | KB per viewer (each round) | median KB |");
    println!("|---|---|---|---|---|---|");
    for (i, &viewers) in options.viewers.iter().enumerate().skip(1) {
        for label in ["baseline", "reelcast"] {
            let rounds: Vec<(f64, f64)> = results
                .iter()
                .filter(|(l, _)| *l == label)
                .filter_map(|(_, points)| Some(per_viewer(points.get(i)?, points.first()?)))
                .collect();
            let cpu: Vec<f64> = rounds.iter().map(|r| r.0).collect();
            let kb: Vec<f64> = rounds.iter().map(|r| r.1).collect();
            let list = |v: &[f64], f: fn(f64) -> String| {
                v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(", ")
            };
            let cpu_median = median(cpu.clone());
            println!(
                "| {viewers} | {label} | {} | {:.4} → {:.0} | {} | {:.0} |",
                list(&cpu, |x| format!("{:.4}", x * 100.0)),
                cpu_median * 100.0,
                1.0 / cpu_median.max(1e-9),
                list(&kb, |x| format!("{x:.0}")),
                median(kb.clone()),
            );
        }
    }
}

fn print_table(points: &[Point], options: &Options) {
    let Some(idle) = points.first() else {
        return;
    };
    println!(
        "\nwindow {} s per point, settle {} s, batches of {}, {} client threads\n",
        options.window.as_secs(),
        options.settle.as_secs(),
        options.batch,
        options.client_threads
    );
    println!(
        "| viewers | receiving / failed | server CPU % core | per viewer % core | \
         viewers per core | VmRSS MB | RssAnon MB | smaps Anonymous MB | per viewer KB (RSS) | \
         per viewer KB (Anon) | marginal % core per viewer | marginal KB per viewer | threads | \
         client CPU % core | machine busy % | starved (<90 %) | worst share | median video kbit/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, p) in points.iter().enumerate() {
        let n = p.viewers as f64;
        let (per_cpu, per_core, per_rss, per_anon) = if p.viewers == 0 {
            (String::new(), String::new(), String::new(), String::new())
        } else {
            let (cpu, anon_kb) = per_viewer(p, idle);
            (
                format!("{:.4}", cpu * 100.0),
                format!("{:.0}", 1.0 / cpu.max(1e-9)),
                format!("{:.1}", (p.mem.rss_kb as f64 - idle.mem.rss_kb as f64) / n),
                format!("{anon_kb:.1}"),
            )
        };
        // What one more viewer costs: the slope from the previous point, which leaves out
        // the translation's fixed cost (demux, transcoding, GOP cache).
        let (marginal_cpu, marginal_kb) = match i.checked_sub(1).and_then(|j| points.get(j)) {
            Some(prev) if p.viewers > prev.viewers => {
                let added = (p.viewers - prev.viewers) as f64;
                (
                    format!("{:.4}", (p.server_cpu - prev.server_cpu) / added * 100.0),
                    format!(
                        "{:.1}",
                        (p.mem.smaps_anon_kb as f64 - prev.mem.smaps_anon_kb as f64) / added
                    ),
                )
            }
            _ => (String::new(), String::new()),
        };
        println!(
            "| {} | {} / {} | {:.1} | {per_cpu} | {per_core} | {:.1} | {:.1} | {:.1} | {per_rss} | \
             {per_anon} | {marginal_cpu} | {marginal_kb} | {} | {:.1} | {:.0} | {} | {:.3} | {:.0} |",
            p.viewers,
            p.receiving,
            p.failed,
            p.server_cpu * 100.0,
            p.mem.rss_kb as f64 / 1024.0,
            p.mem.anon_kb as f64 / 1024.0,
            p.mem.smaps_anon_kb as f64 / 1024.0,
            p.mem.threads,
            p.client_cpu * 100.0,
            p.machine_busy * 100.0,
            p.starved,
            p.worst_share,
            p.median_kbps,
        );
    }
}
