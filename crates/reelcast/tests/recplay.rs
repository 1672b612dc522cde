//! Playing a recording back by name while it is still being written: a real server plays
//! `vod://rec.mp4` from `record_dir` (`media_dir` has no such file) over the WCS WebSocket
//! protocol to a real WebRTC client (str0m), while the test appends the recording's
//! fragments as a recorder does (the sidecar `.rec.mp4.recording` beside it, fragments
//! torn in two on the way, the finished file renamed over the name, the sidecar removed).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// The bundled sample (25 fps H.264, AAC), cut to 6 s and written as a recorder writes:
/// fragmented, a fragment of at most 1 s each. `None` without ffmpeg (a failure under
/// CI=true).
fn fragmented_recording(dir: &Path) -> Option<Vec<u8>> {
    if !test_support::tools_available(&["ffmpeg"], "the growing-recording test") {
        return None;
    }
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../media/sample.mp4");
    let out = dir.join("made.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", sample, "-t", "6", "-c", "copy"])
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof"])
        .args(["-frag_duration", "1000000"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed: {status}");
    Some(std::fs::read(&out).expect("ffmpeg wrote the file"))
}

/// The file cut where a recorder appends: the head (`ftyp`, `moov`), then one piece per
/// fragment (a `moof` up to the next one).
fn pieces(file: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos + 8 <= file.len() {
        let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        if &file[pos + 4..pos + 8] == b"moof" {
            starts.push(pos);
        }
        assert!(size >= 8, "a plain 32-bit box size");
        pos += size;
    }
    assert!(starts.len() >= 5, "{} fragments", starts.len());
    let mut cuts = vec![0];
    cuts.extend(&starts);
    cuts.push(file.len());
    cuts.windows(2).map(|w| &file[w[0]..w[1]]).collect()
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("the recording is there");
    f.write_all(bytes).expect("append");
    f.flush().expect("flush");
}

/// The video samples of the whole file and the stream time its video ends at (µs).
fn video_of(file: &[u8]) -> (usize, i64) {
    let movie = mp4::open_in_memory(file).expect("the recording opens");
    let video = movie.video().expect("a video track");
    (video.samples.len(), video.duration_us())
}

async fn send(ws: &mut Ws, name: &str, data: serde_json::Value) {
    let text = serde_json::json!({ "message": name, "data": [data] }).to_string();
    ws.send(Message::text(text)).await.expect("send");
}

async fn next_message(ws: &mut Ws, within: Duration) -> Option<serde_json::Value> {
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).expect("WCS messages are JSON"))
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// What the client received: (RTP time, keyframe) of each picture, RTP times of audio.
#[derive(Default)]
struct Received {
    video: Vec<(u64, bool)>,
    audio: Vec<u64>,
}

/// The str0m run loop until `stop` is set (or 90 s pass).
fn run_client(mut rtc: Rtc, socket: UdpSocket, stop: &AtomicBool) -> Received {
    let deadline = Instant::now() + Duration::from_secs(90);
    let local = socket.local_addr().unwrap();
    let mut got = Received::default();
    let mut buf = vec![0u8; 2000];
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let timeout = match rtc.poll_output().expect("poll_output") {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket
                    .send_to(&t.contents, t.destination)
                    .expect("udp send");
                continue;
            }
            Output::Event(Event::MediaData(m)) => {
                match m.params.spec().codec {
                    Codec::H264 => got.video.push((m.time.numer(), m.is_keyframe())),
                    Codec::Opus => got.audio.push(m.time.numer()),
                    other => panic!("unexpected codec {other:?}"),
                }
                continue;
            }
            Output::Event(_) => continue,
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if wait.is_zero() {
            rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            continue;
        }
        socket.set_read_timeout(Some(wait)).unwrap();
        let input = match socket.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into().expect("a known packet kind"),
                },
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).expect("handle_input");
    }
    got
}

struct Dirs {
    root: PathBuf,
    media: PathBuf,
    records: PathBuf,
}

fn dirs(tag: &str) -> Dirs {
    let root = test_support::temp_dir(&format!("recplay-{tag}"));
    let media = root.join("media");
    let records = root.join("records");
    for d in [&media, &records] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    Dirs {
        root,
        media,
        records,
    }
}

async fn start(d: &Dirs) -> SocketAddr {
    let settings = reelcast::config::Settings {
        media_dir: d.media.clone(),
        record_dir: d.records.clone(),
        http_port: 0,
        ws_port: 0,
        media_port: Some(0),
        ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Default::default()
    };
    let (ports, _serving) = reelcast::server::start(settings)
        .await
        .expect("server starts");
    ports.ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_being_written_plays_from_its_start_to_its_end_then_stops() {
    let d = dirs("growing");
    let Some(file) = fragmented_recording(&d.root) else {
        return;
    };
    let pieces = pieces(&file);
    let (video_samples, video_end_us) = video_of(&file);
    let first_fragment_end_us = {
        let m = mp4::open_in_memory(&[pieces[0], pieces[1]].concat()).unwrap();
        m.video().unwrap().duration_us()
    };

    let ws_addr = start(&d).await;
    // The recorder has written the head and the first fragment. Only now: a sidecar
    // found at start is a crashed recording, which the start recovers.
    let rec = d.records.join("rec.mp4");
    let sidecar = d.records.join(".rec.mp4.recording");
    std::fs::write(&rec, [pieces[0], pieces[1]].concat()).unwrap();
    std::fs::write(&sidecar, b"").unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("ws://{ws_addr}/"),
        TcpStream::connect(ws_addr).await.expect("connect"),
    )
    .await
    .expect("websocket handshake");
    send(
        &mut ws,
        "connection",
        serde_json::json!({ "appKey": "defaultApp" }),
    )
    .await;
    let hello = next_message(&mut ws, Duration::from_secs(10))
        .await
        .expect("getUserData");
    assert_eq!(hello["message"], "getUserData", "{hello}");

    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap())
        .unwrap();
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    send(
        &mut ws,
        "playStream",
        serde_json::json!({
            "mediaSessionId": "rec1", "name": "vod://rec.mp4", "sdp": offer.to_sdp_string()
        }),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut client = None;
    let mut statuses = Vec::new();
    let mut writer = None;
    while let Some(msg) = next_message(&mut ws, Duration::from_secs(60)).await {
        match msg["message"].as_str() {
            Some("setRemoteSDP") => {
                let answer = msg["data"][1].as_str().expect("the answer SDP");
                let answer = SdpAnswer::from_sdp_string(answer).expect("answer parses");
                rtc.sdp_api()
                    .accept_answer(pending, answer)
                    .expect("accepted");
                let (stop, socket) = (stop.clone(), socket);
                let rtc = std::mem::replace(&mut rtc, Rtc::new(Instant::now()));
                client = Some(tokio::task::spawn_blocking(move || {
                    run_client(rtc, socket, &stop)
                }));
                break;
            }
            Some("ping") => send(&mut ws, "pong", serde_json::Value::Null).await,
            other => panic!("unexpected {other:?}: {msg}"),
        }
    }
    let client = client.expect("the play was answered");
    while let Some(msg) = next_message(&mut ws, Duration::from_secs(60)).await {
        match msg["message"].as_str() {
            Some("notifyStreamStatusEvent") => {
                let status = msg["data"][0]["status"].as_str().unwrap_or("").to_string();
                statuses.push(status.clone());
                if status == "PLAYING" && writer.is_none() {
                    // The recorder goes on: a fragment every 0.7 s, each written in two
                    // parts (a reader may find one torn), then the finished file renamed
                    // over the name and the sidecar removed.
                    let (rec, sidecar, dir) = (rec.clone(), sidecar.clone(), d.records.clone());
                    let rest: Vec<Vec<u8>> = pieces[2..].iter().map(|p| p.to_vec()).collect();
                    let whole = file.clone();
                    writer = Some(tokio::spawn(async move {
                        for piece in rest {
                            tokio::time::sleep(Duration::from_millis(600)).await;
                            let half = piece.len() / 2;
                            append(&rec, &piece[..half]);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            append(&rec, &piece[half..]);
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        std::fs::write(dir.join(".rec.mp4.final"), &whole).unwrap();
                        std::fs::rename(dir.join(".rec.mp4.final"), &rec).unwrap();
                        std::fs::remove_file(&sidecar).unwrap();
                    }));
                }
                if status != "PLAYING" {
                    break;
                }
            }
            Some("ping") => send(&mut ws, "pong", serde_json::Value::Null).await,
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let got = client.await.expect("client thread");
    writer.expect("the recording was written on").await.unwrap();
    assert_eq!(
        statuses,
        ["PLAYING", "STOPPED"],
        "PLAYING, then STOPPED at the end"
    );

    // Every picture, in order, the first a keyframe; the last is the recording's last.
    let times: Vec<u64> = got.video.iter().map(|v| v.0).collect();
    assert!(got.video.first().is_some_and(|v| v.1), "a keyframe first");
    assert!(times.windows(2).all(|w| w[0] < w[1]), "pictures in order");
    assert_eq!(times.len(), video_samples, "every picture of the recording");
    let span_us = (times[times.len() - 1] - times[0]) as i64 * 1_000_000 / 90_000;
    assert!(
        span_us > first_fragment_end_us + 3_000_000,
        "pictures appended after the open came ({span_us} µs of video)"
    );
    assert!(
        (span_us - (video_end_us - 40_000)).abs() <= 1_000,
        "the last picture is the recording's last ({span_us} of {video_end_us} µs)"
    );
    // Sound all along: an Opus packet per 20 ms of the recording, give or take a few.
    let expected_audio = (video_end_us / 20_000) as usize;
    assert!(
        got.audio.len() + 10 >= expected_audio,
        "{} Opus packets for {expected_audio} expected",
        got.audio.len()
    );
    let _ = std::fs::remove_dir_all(&d.root);
}
