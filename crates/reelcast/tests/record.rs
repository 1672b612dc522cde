//! Recording, end to end: the real `reelcast` binary records a live translation started
//! by REST, and what it writes is checked with ffprobe and ffmpeg (independent readers),
//! after a normal stop, after `kill -9` (then `reelcast recover`), on a full disk (a
//! 1 MB tmpfs this test mounts), and with an `on_record_hook_script`.
//!
//! Only loopback traffic. Times are never asserted as speeds: durations are compared
//! with the time the recording ran, with the slack a keyframe interval gives.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bundled sample: H.264 + AAC, 10 s, a keyframe every 2 s.
const GOP_S: f64 = 2.0;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    http: u16,
    log: PathBuf,
}

impl Server {
    fn start(record_dir: &Path, extra: &[&str]) -> Server {
        let media = concat!(env!("CARGO_MANIFEST_DIR"), "/../../media");
        let http = free_port();
        let log = record_dir.with_extension("log");
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelcast"));
        cmd.arg("serve")
            .args(["--media-dir", media])
            .args(["--http-port", &http.to_string()])
            .args(["--ws-port", &free_port().to_string()])
            .args(["--media-port", &free_port().to_string()])
            .args(["--ip", "127.0.0.1"])
            .args(["--set", "ip_local=127.0.0.1"])
            .args(["--set", "log_format=json"])
            .args(["--set", &format!("record_dir={}", record_dir.display())])
            .args(["--set", "vod_stream_timeout=60000"]);
        for s in extra {
            cmd.args(["--set", s]);
        }
        let child = cmd
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("reelcast starts");
        let server = Server { child, http, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "server listening within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// POSTs `body` to `/rest-api{path}`; (status, JSON body).
    fn rest(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "POST /rest-api{path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or_default())
    }

    /// `GET /metrics`: the Prometheus text.
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("response");
        raw
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A live translation of the sample; its mediaSessionId.
    fn translation(&self, name: &str) -> String {
        let (status, vod) = self.rest(
            "/vod/startup",
            &format!(r#"{{"uri":"vod-live://sample.mp4","localStreamName":"{name}","loop":true}}"#),
        );
        assert_eq!(status, 200, "{vod}");
        vod["localMediaSessionId"].as_str().unwrap().to_string()
    }

    fn sigterm_and_wait(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "exits within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = test_support::temp_dir("record").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn body(id: &str) -> String {
    format!(r#"{{"mediaSessionId":"{id}"}}"#)
}

/// Waits until `path` exists and no sidecar is left (finalized).
fn wait_finalized(dir: &Path, name: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    let sidecar = dir.join(format!(".{name}.recording"));
    while sidecar.exists() || !dir.join(name).exists() {
        assert!(Instant::now() < deadline, "{name} finalized within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    dir.join(name)
}

/// ffprobe's codecs and duration of a file.
fn probe(file: &Path) -> (Vec<String>, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
        ])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codecs = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_string())
        .collect();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (codecs, duration)
}

/// `ffmpeg -v error -i f -f null -` decodes the whole file without a word.
fn decodes_cleanly(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");
}

/// The top-level boxes of a file, in order.
fn top_level_boxes(file: &Path) -> Vec<String> {
    let data = std::fs::read(file).unwrap();
    let mut at = 0;
    let mut kinds = Vec::new();
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).to_string());
        if size < 8 {
            break;
        }
        at += size;
    }
    kinds
}

/// Unmounts the test's tmpfs when the test ends, passed or not.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn tools() -> bool {
    test_support::tools_available(&["ffprobe", "ffmpeg"], "the recording checks")
}

#[test]
fn a_translation_recorded_by_rest_is_a_faststart_h264_aac_mp4() {
    if !tools() {
        return;
    }
    let dir = fresh_dir("rest");
    let server = Server::start(&dir, &[]);
    let id = server.translation("rec1");

    assert_eq!(server.rest("/stream/startRecording", &body("nope")).0, 404);
    let (status, started) = server.rest("/stream/startRecording", &body(&id));
    let began = Instant::now();
    assert_eq!(status, 200, "{started}");
    let name = started["fileName"].as_str().unwrap().to_string();
    assert_eq!(name, format!("stream-{id}-.mp4"), "WCS's default template");
    assert_eq!(server.rest("/recorder/startup", &body(&id)).0, 409);
    let (_, list) = server.rest("/recorder/find_all", "");
    assert_eq!(list[0]["fileName"], name.as_str());
    assert_eq!(list[0]["mediaSessionId"], id.as_str());
    let (_, streams) = server.rest("/stream/find_all", "");
    assert_eq!(streams[0]["record"], true);
    let metrics = server.metrics();
    assert!(
        metrics.contains("reelcast_recordings{state=\"recording\"} 1\n"),
        "{metrics}"
    );

    std::thread::sleep(Duration::from_secs(3));
    let (status, stopped) = server.rest("/stream/stopRecording", &body(&id));
    let ran = began.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(server.rest("/recorder/terminate", &body(&id)).0, 404);
    let file = wait_finalized(&dir, &name);

    let (codecs, duration) = probe(&file);
    assert_eq!(codecs, ["h264", "aac"]);
    // The recording starts with the GOP in progress (up to one keyframe interval before
    // the request) and ends at the stop.
    assert!(
        duration >= ran - 0.5 && duration <= ran + GOP_S + 0.5,
        "{duration} s recorded over {ran} s"
    );
    let boxes = top_level_boxes(&file);
    let moov = boxes.iter().position(|b| b == "moov").expect("a moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("an mdat");
    assert!(moov < mdat, "moov before mdat: {boxes:?}");
    assert!(!boxes.iter().any(|b| b == "moof"), "progressive: {boxes:?}");
    decodes_cleanly(&file);
    // The translation went on.
    assert_eq!(server.rest("/stream/find_all", "").0, 200);
}

#[test]
fn after_kill_9_recover_makes_the_recording_playable_missing_at_most_a_second() {
    if !tools() {
        return;
    }
    let dir = fresh_dir("kill9");
    let server = Server::start(&dir, &["stream_record_policy=streamName"]);
    let id = server.translation("killed");
    let (status, started) = server.rest("/stream/startRecording", &body(&id));
    assert_eq!(status, 200, "{started}");
    let name = started["fileName"].as_str().unwrap().to_string();
    assert_eq!(name, "killed.mp4");
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    let ran = began.elapsed().as_secs_f64();
    let _ = server.child.wait();
    assert!(
        dir.join(format!(".{name}.recording")).exists(),
        "the sidecar stays"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_reelcast"))
        .arg("recover")
        .arg(&dir)
        .output()
        .expect("reelcast recover runs");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains("1 recordings recovered"), "{summary}");
    let file = wait_finalized(&dir, &name);
    let (codecs, duration) = probe(&file);
    assert_eq!(codecs, ["h264", "aac"]);
    assert!(
        duration >= ran - 1.0 - 0.5,
        "{duration} s kept of {ran} s recorded"
    );
    assert!(
        top_level_boxes(&file).iter().position(|b| b == "moov")
            < top_level_boxes(&file).iter().position(|b| b == "mdat")
    );
    decodes_cleanly(&file);
}

#[test]
fn sigterm_waits_for_the_recording_to_be_finalized() {
    if !tools() {
        return;
    }
    let dir = fresh_dir("term");
    let server = Server::start(&dir, &["stream_record_policy=streamName"]);
    let id = server.translation("termed");
    let (status, _) = server.rest("/stream/startRecording", &body(&id));
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_secs(2));
    server.sigterm_and_wait();
    assert!(
        !dir.join(".termed.mp4.recording").exists(),
        "finalized before exit"
    );
    decodes_cleanly(&dir.join("termed.mp4"));
}

#[test]
fn the_hook_script_runs_after_finalize_with_the_stream_name_and_the_absolute_path() {
    if !tools() {
        return;
    }
    let dir = fresh_dir("hook");
    let out = dir.with_extension("hook-out");
    let _ = std::fs::remove_file(&out);
    let script = dir.with_extension("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -f \"$2\" ] && [ ! -e \"$(dirname \"$2\")/.$(basename \"$2\").recording\" ] && echo \"$1|$2\" > {}\n",
            out.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let hook = format!("on_record_hook_script={}", script.display());
    let server = Server::start(
        &dir,
        &[
            &hook,
            "stream_record_policy_template={streamName}-{duration}",
        ],
    );
    let id = server.translation("hooked");
    let (_, started) = server.rest("/stream/startRecording", &body(&id));
    assert_eq!(
        started["fileName"], "hooked-0.mp4",
        "duration is 0 at start"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.rest("/stream/stopRecording", &body(&id)).0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.exists() {
        assert!(Instant::now() < deadline, "the hook ran within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = std::fs::read_to_string(&out).unwrap();
    let (stream, path) = line.trim().split_once('|').unwrap();
    assert_eq!(stream, "hooked");
    let path = Path::new(path);
    assert!(path.is_absolute(), "{}", path.display());
    // Renamed at finalize with the real duration.
    let file = path.file_name().unwrap().to_str().unwrap();
    let ms: u64 = file
        .strip_prefix("hooked-")
        .and_then(|f| f.strip_suffix(".mp4"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{file}"));
    assert!(ms >= 1500, "{file}");
    assert!(
        !dir.join("hooked-0.mp4").exists(),
        "the name at start is gone"
    );
    decodes_cleanly(path);
}

#[test]
fn a_full_disk_stops_the_recording_with_the_reason_and_the_stream_goes_on() {
    if !tools() {
        return;
    }
    let dir = fresh_dir("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mounting a tmpfs (the tests run as root)");
    let _unmount = Unmount(dir.clone());
    let server = Server::start(&dir, &["stream_record_policy=streamName"]);
    let id = server.translation("full");
    let (status, started) = server.rest("/stream/startRecording", &body(&id));
    assert_eq!(status, 200, "{started}");
    // The sample is ~600 kbit/s: 1 MB is full within ~15 s.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, list) = server.rest("/recorder/find_all", "");
        if list[0]["status"] == "FAILED: no space left on device" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disk filled within 40 s: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server
            .log_text()
            .contains("Recording full.mp4 stopped: no space left on device"),
        "{}",
        server.log_text()
    );
    // The translation still runs and still plays: its clock goes on.
    let (status, streams) = server.rest("/stream/find_all", "");
    assert_eq!(status, 200);
    assert_eq!(streams[0]["mediaSessionId"], id.as_str());
    let (status, _) = server.rest("/vod/find", r#"{"localStreamName":"full"}"#);
    assert_eq!(status, 200);
    drop(server);
}
