//! HLS of a live translation as a validator sees it: every playlist served over a few
//! seconds is checked against the rules of RFC 8216bis a validator flags (target
//! duration, media sequence continuity, part durations, independent parts, blocking
//! reloads), and the errors a player can meet (unknown name, far-ahead reload, a segment
//! that left the window, a stream that ends while a reload waits). A real server on
//! 127.0.0.1, plain HTTP/1.1 requests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn settings() -> reelcast::config::Settings {
    reelcast::config::Settings {
        media_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../media").into(),
        http_port: 0,
        ws_port: 0,
        media_port: Some(0),
        hls_port: Some(0),
        ice_tcp_transport: false,
        vod_live_loop: true,
        ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Default::default()
    }
}

struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// One GET with `Connection: close`, 20 s at most.
async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, "").await
}

/// One GET with extra header lines (each ending in `\r\n`), 20 s at most.
async fn get_with(addr: SocketAddr, path: &str, extra: &str) -> Answer {
    request(addr, "GET", path, extra).await
}

/// One request with header lines `extra`, `Connection: close`, no body.
async fn request(addr: SocketAddr, method: &str, path: &str, extra: &str) -> Answer {
    request_with_body(addr, method, path, extra, "").await
}

/// One request with `Connection: close`, the extra header lines `extra` and `body`, 20 s
/// at most.
async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> Answer {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: reelcast\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        got
    };
    let got = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("an answer within 20 s");
    let split = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&got[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: got[split + 4..].to_vec(),
    }
}

const NAME: &str = "vod-live%3A%2F%2Fsample.mp4";

fn url(file: &str) -> String {
    format!("/{NAME}/{file}")
}

fn playlist_url() -> String {
    url(&format!("{NAME}.m3u8"))
}

#[derive(Debug, Clone, PartialEq)]
struct Part {
    duration: f64,
    uri: String,
    independent: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    msn: u64,
    duration: Option<f64>,
    uri: Option<String>,
    parts: Vec<Part>,
    dated: bool,
}

#[derive(Debug)]
struct Playlist {
    target: u64,
    part_target: f64,
    part_hold_back: f64,
    media_sequence: u64,
    map: String,
    segments: Vec<Segment>,
    hint: Option<String>,
}

fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_once(':')?
        .1
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// Parses a media playlist, checking its lines' syntax as it goes.
fn parse(text: &str) -> Playlist {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "{text}");
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(value("#EXT-X-VERSION:").parse::<u32>().unwrap() >= 6);
    let control = value("#EXT-X-SERVER-CONTROL:");
    assert!(control.contains("CAN-BLOCK-RELOAD=YES"), "{control}");
    let mut p = Playlist {
        target: value("#EXT-X-TARGETDURATION:").parse().unwrap(),
        part_target: value("#EXT-X-PART-INF:PART-TARGET=").parse().unwrap(),
        part_hold_back: attr(&format!("x:{control}"), "PART-HOLD-BACK")
            .unwrap()
            .parse()
            .unwrap(),
        media_sequence: value("#EXT-X-MEDIA-SEQUENCE:").parse().unwrap(),
        map: attr(&value("#EXT-X-MAP:").replace("URI", "x:URI"), "x:URI")
            .map(str::to_string)
            .unwrap_or_default(),
        segments: Vec::new(),
        hint: None,
    };
    let map_line = text.lines().find(|l| l.starts_with("#EXT-X-MAP:")).unwrap();
    p.map = attr(map_line, "URI").unwrap().to_string();
    let mut current = Segment {
        msn: p.media_sequence,
        duration: None,
        uri: None,
        parts: Vec::new(),
        dated: false,
    };
    let mut pending_extinf = None;
    for line in text.lines() {
        if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            current.dated = true;
        } else if line.starts_with("#EXT-X-PART:") {
            current.parts.push(Part {
                duration: attr(line, "DURATION").unwrap().parse().unwrap(),
                uri: attr(line, "URI").unwrap().to_string(),
                independent: attr(line, "INDEPENDENT") == Some("YES"),
            });
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            pending_extinf = Some(d.trim_end_matches(',').parse::<f64>().unwrap());
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attr(line, "TYPE"), Some("PART"));
            p.hint = Some(attr(line, "URI").unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            current.duration = pending_extinf.take();
            assert!(current.duration.is_some(), "a URI without EXTINF:\n{text}");
            current.uri = Some(line.to_string());
            let next = current.msn + 1;
            p.segments.push(std::mem::replace(
                &mut current,
                Segment {
                    msn: next,
                    duration: None,
                    uri: None,
                    parts: Vec::new(),
                    dated: false,
                },
            ));
        }
    }
    if !current.parts.is_empty() {
        p.segments.push(current);
    }
    p
}

/// What a validator flags in one playlist.
fn check_rules(p: &Playlist, text: &str) {
    assert!(
        p.part_hold_back >= 2.0 * p.part_target,
        "PART-HOLD-BACK below twice the part target:\n{text}"
    );
    for s in &p.segments {
        assert!(
            s.dated,
            "segment {} has no PROGRAM-DATE-TIME:\n{text}",
            s.msn
        );
        if let Some(d) = s.duration {
            assert!(
                d.round() <= p.target as f64,
                "segment {} lasts {d} s, over the target duration {}:\n{text}",
                s.msn,
                p.target
            );
            if !s.parts.is_empty() {
                let sum: f64 = s.parts.iter().map(|x| x.duration).sum();
                assert!(
                    (sum - d).abs() < 0.002,
                    "segment {}: parts sum to {sum}, EXTINF says {d}",
                    s.msn
                );
            }
        }
        for part in &s.parts {
            assert!(
                part.duration <= p.part_target + 1e-9,
                "part {} lasts {} s, over PART-TARGET {}:\n{text}",
                part.uri,
                part.duration,
                p.part_target
            );
        }
    }
}

/// With keyframes no further apart than the target (the sample's 2 s), every segment
/// starts at one, so its first part is `INDEPENDENT`.
fn check_segments_start_independent(p: &Playlist, text: &str) {
    for s in &p.segments {
        if let Some(first) = s.parts.first() {
            assert!(
                first.independent,
                "segment {} does not start with an independent part:\n{text}",
                s.msn
            );
        }
    }
}

/// Whether a part starts with a video keyframe as ffprobe's demuxer reads its sample
/// flags (`K` on the first video packet of the init segment + the part).
fn starts_with_keyframe(init: &[u8], part: &[u8], name: &str) -> bool {
    let path = test_support::temp_dir("hls-parts").join(name);
    std::fs::write(&path, [init, part].concat()).expect("write the part");
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let _ = std::fs::remove_file(&path);
    let flags = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !flags.trim().is_empty(),
        "ffprobe on {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    flags.lines().next().is_some_and(|l| l.contains('K'))
}

/// Every part of `p` not in `checked` is fetched: `INDEPENDENT=YES` exactly on the
/// parts ffprobe finds starting with a keyframe (RFC 8216bis §4.4.4.9). Returns the
/// segments (MSNs) whose first part is not independent.
async fn check_independent_parts(
    hls: SocketAddr,
    name: &str,
    init: &[u8],
    p: &Playlist,
    checked: &mut std::collections::HashSet<String>,
) -> Vec<u64> {
    let mut dependent_firsts = Vec::new();
    for s in &p.segments {
        for (k, part) in s.parts.iter().enumerate() {
            if k == 0 && !part.independent {
                dependent_firsts.push(s.msn);
            }
            if !checked.insert(part.uri.clone()) {
                continue;
            }
            let got = get(hls, &format!("/{name}/{}", part.uri)).await;
            assert_eq!(got.status, 200, "part {}", part.uri);
            let keyed = tokio::task::spawn_blocking({
                let (init, body, uri) = (init.to_vec(), got.body, part.uri.clone());
                move || starts_with_keyframe(&init, &body, &uri)
            })
            .await
            .expect("ffprobe task");
            assert_eq!(
                part.independent, keyed,
                "part {} INDEPENDENT={} but ffprobe finds keyframe first: {keyed}",
                part.uri, part.independent
            );
        }
    }
    dependent_firsts
}

async fn start() -> (
    reelcast::server::BoundPorts,
    std::sync::Arc<reelcast::context::ServerContext>,
) {
    let mut s = settings();
    s.hls_list_size = 1;
    let (ports, _serving, ctx) = reelcast::server::launch(s).await.expect("server starts");
    (ports, ctx)
}

#[tokio::test]
async fn every_playlist_follows_the_rules_a_validator_checks() {
    let (ports, ctx) = start().await;
    let hls = ports.hls.expect("hls.port is bound");

    // Unknown names are a plain 404; the first request starts the translation.
    let unknown = get(hls, "/nobody/nobody.m3u8").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text(), "Stream not found\n");
    let first = get(hls, &playlist_url()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.header("content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(first.header("access-control-allow-origin"), "*");
    assert_eq!(first.header("cache-control"), "max-age=1");
    assert!(first.header("etag").starts_with('"'));

    let init = get(hls, &url(&parse(&first.text()).map)).await;
    assert_eq!(init.status, 200);
    assert_eq!(&init.body[4..8], b"ftyp");
    assert!(init.header("cache-control").contains("immutable"));
    let mut checked_parts = std::collections::HashSet::new();

    // Reload for a few seconds until the window has moved past segment 0 (one segment
    // is kept): every playlist obeys the rules, and a segment keeps its number and URI.
    let mut known: HashMap<u64, Segment> = HashMap::new();
    let mut last_sequence = 0;
    let mut fetched = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut playlists = 0;
    let mut gone_uri = None;
    while Instant::now() < deadline {
        let answer = get(hls, &playlist_url()).await;
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let p = parse(&text);
        check_rules(&p, &text);
        check_segments_start_independent(&p, &text);
        check_independent_parts(hls, NAME, &init.body, &p, &mut checked_parts).await;
        assert!(
            p.media_sequence >= last_sequence,
            "media sequence went back"
        );
        assert!(
            p.media_sequence <= last_sequence + 1 || playlists == 0,
            "media sequence skipped from {last_sequence} to {}: a reload every 200 ms misses no segment of 2 s",
            p.media_sequence
        );
        last_sequence = p.media_sequence;
        for s in p.segments.iter().filter(|s| s.uri.is_some()) {
            if let Some(before) = known.get(&s.msn) {
                assert_eq!(before.uri, s.uri, "segment {} changed its URI", s.msn);
                assert_eq!(before.duration, s.duration, "segment {} changed", s.msn);
            } else {
                let uri = s.uri.clone().unwrap();
                let seg = get(hls, &url(&uri)).await;
                assert_eq!(seg.status, 200, "segment {uri}");
                assert_eq!(seg.header("content-type"), "video/mp4");
                assert!(seg.header("cache-control").contains("immutable"));
                assert_eq!(&seg.body[4..8], b"moof");
                fetched += 1;
                known.insert(s.msn, s.clone());
            }
        }
        playlists += 1;
        if p.media_sequence >= 2 {
            gone_uri = known.get(&0).and_then(|s| s.uri.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        fetched >= 2,
        "{fetched} segments fetched in {playlists} playlists"
    );
    let gone = get(hls, &url(&gone_uri.expect("segment 0 was listed"))).await;
    assert_eq!(gone.status, 404, "a segment that left the window");

    // A blocking reload for the hinted part returns a playlist that lists it; the
    // hinted part itself is answered once it exists.
    let p = parse(&get(hls, &playlist_url()).await.text());
    let hint = p.hint.expect("a preload hint");
    let (msn, part) = hint
        .trim_end_matches(".m4s")
        .split_once('-')
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(m, k)| (m.parse::<u64>().unwrap(), k.parse::<u64>().unwrap()))
        .expect("hint URI RUN-MSN.PART.m4s");
    let blocked = get(
        hls,
        &format!("{}?_HLS_msn={msn}&_HLS_part={part}", playlist_url()),
    )
    .await;
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert_eq!(blocked.header("cache-control"), "no-cache");
    let listed = parse(&blocked.text());
    check_rules(&listed, &blocked.text());
    check_segments_start_independent(&listed, &blocked.text());
    assert!(
        listed
            .segments
            .iter()
            .flat_map(|s| &s.parts)
            .any(|x| x.uri == hint),
        "the blocking reload lists {hint}:\n{}",
        blocked.text()
    );
    let hinted = get(hls, &url(&hint)).await;
    assert_eq!(hinted.status, 200);
    assert_eq!(&hinted.body[4..8], b"moof");

    // Further than two segments ahead: 400 at once; bad parameters too.
    let far = get(hls, &format!("{}?_HLS_msn={}", playlist_url(), msn + 10)).await;
    assert_eq!(far.status, 400, "{}", far.text());
    let part_alone = get(hls, &format!("{}?_HLS_part=1", playlist_url())).await;
    assert_eq!(part_alone.status, 400);

    // A reload waiting for the stream's next segments is answered as soon as the
    // stream ends, not at its time-out.
    let waiting = tokio::spawn(async move {
        let asked = Instant::now();
        let answer = get(hls, &format!("{}?_HLS_msn={}", playlist_url(), msn + 2)).await;
        (answer.status, answer.text(), asked.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in ctx.registry.translations() {
        t.terminate(reelcast::media::StopReason::RestTerminate);
    }
    let (status, text, waited) = waiting.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    assert!(!text.contains("PRELOAD-HINT"), "{text}");
    // Its time-out is three target durations (6 s); the end comes at once.
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    // The ended window stays readable a while (three target durations), with
    // `#EXT-X-ENDLIST`, then goes (polled, 20 s at most).
    let last = get(hls, &playlist_url()).await;
    assert_eq!(last.status, 200, "{}", last.text());
    let text = last.text();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let ended = parse(&text);
    check_rules(&ended, &text);
    check_segments_start_independent(&ended, &text);
    let seg = ended
        .segments
        .iter()
        .rev()
        .find_map(|s| s.uri.clone())
        .unwrap();
    assert_eq!(
        get(hls, &url(&seg)).await.status,
        200,
        "{seg} after the end"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = get(hls, &url(&seg)).await;
        if after.status == 404 {
            break;
        }
        assert_eq!(after.status, 200);
        assert!(Instant::now() < deadline, "still served 20 s after the end");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A file whose keyframes are 10 s apart under the 2 s target: segments are cut without
/// a keyframe rather than the target duration growing (RFC 8216 §6.2.1). Over 13 s of
/// playlists (past the second keyframe) the target stays 2, every playlist obeys the
/// rules, the first part of a segment cut without a keyframe is not `INDEPENDENT`, the
/// segment the keyframe at 10 s starts is, and ffprobe agrees part by part.
#[tokio::test]
async fn long_gops_keep_the_target_duration_and_only_keyframe_parts_are_independent() {
    let media = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/media");
    assert!(
        std::path::Path::new(media).join("long_gop.mp4").is_file(),
        "tests/media/long_gop.mp4 is missing: run scripts/make-test-media tests/media"
    );
    let mut s = settings();
    s.media_dir = media.into();
    let (ports, _serving, _ctx) = reelcast::server::launch(s).await.expect("server starts");
    let hls = ports.hls.expect("hls.port is bound");
    let name = "vod-live%3A%2F%2Flong_gop.mp4";
    let playlist = format!("/{name}/{name}.m3u8");
    let first = get(hls, &playlist).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let init = get(hls, &format!("/{name}/{}", parse(&first.text()).map)).await;
    assert_eq!(init.status, 200);

    let mut checked = std::collections::HashSet::new();
    let mut dependent = std::collections::BTreeSet::new();
    let mut keyed_later = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(13) {
        let answer = get(hls, &playlist).await;
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let p = parse(&text);
        check_rules(&p, &text);
        assert_eq!(p.target, 2, "the target duration is the setting:\n{text}");
        dependent.extend(check_independent_parts(hls, name, &init.body, &p, &mut checked).await);
        keyed_later |= p
            .segments
            .iter()
            .any(|s| s.msn > 0 && s.parts.first().is_some_and(|x| x.independent));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        dependent.len() >= 3,
        "segments starting without a keyframe: {dependent:?}"
    );
    assert!(
        keyed_later,
        "the keyframe at 10 s starts an independent segment"
    );
    assert!(checked.len() >= 20, "{} parts checked", checked.len());
}

#[tokio::test]
async fn without_auto_start_a_stream_not_running_is_404() {
    let mut s = settings();
    s.hls_auto_start = false;
    let (ports, _serving, ctx) = reelcast::server::launch(s).await.expect("server starts");
    let hls = ports.hls.expect("hls.port is bound");
    let answer = get(hls, &playlist_url()).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.text(), "Stream not found\n");
    assert!(ctx.registry.translations().is_empty(), "nothing started");
}

/// A translation with HLS readers but no WebRTC viewer stays up past
/// `vod_stream_timeout`, and stops once the readers go quiet.
#[tokio::test]
async fn hls_readers_keep_a_translation_up_and_it_stops_after_they_leave() {
    let mut s = settings();
    s.vod_stream_timeout = Duration::from_millis(1000);
    let (ports, _serving, ctx) = reelcast::server::launch(s).await.expect("server starts");
    let hls = ports.hls.expect("hls.port is bound");
    let first = get(hls, &playlist_url()).await;
    assert_eq!(first.status, 200);
    let run = parse(&first.text()).map;
    // Four timeouts' worth of playlist reloads, as a player makes them.
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let again = get(hls, &playlist_url()).await;
        assert_eq!(again.status, 200);
        assert_eq!(
            parse(&again.text()).map,
            run,
            "the same run of the translation"
        );
    }
    assert_eq!(ctx.registry.translations().len(), 1, "still running");
    // Quiet: it stops (polled, 10 s at most).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctx.registry.translations().is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running 10 s after the last request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a CDN needs: `Last-Modified` on media, conditional GETs answered 304 with the
/// same validators and no body, and playlists gzipped when asked, with `Vary`.
#[tokio::test]
async fn a_cdn_gets_validators_304s_and_gzipped_playlists() {
    use std::io::Read as _;
    let (ports, _ctx) = start().await;
    let hls = ports.hls.expect("hls.port is bound");
    let first = get(hls, &playlist_url()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("vary"), "Accept-Encoding");
    assert_eq!(first.header("content-encoding"), "");
    let p = parse(&first.text());
    let segment = url(p.segments[0].uri.as_ref().expect("a complete segment"));

    for path in [url(&p.map), segment] {
        let full = get(hls, &path).await;
        assert_eq!(full.status, 200);
        let etag = full.header("etag").to_string();
        let modified = full.header("last-modified").to_string();
        assert!(
            modified.ends_with(" GMT"),
            "{path}: Last-Modified {modified:?}"
        );
        let by_tag = get_with(hls, &path, &format!("If-None-Match: {etag}\r\n")).await;
        assert_eq!(by_tag.status, 304, "{path} with If-None-Match");
        assert!(by_tag.body.is_empty());
        assert_eq!(by_tag.header("etag"), etag);
        assert!(by_tag.header("cache-control").contains("immutable"));
        let by_date = get_with(hls, &path, &format!("If-Modified-Since: {modified}\r\n")).await;
        assert_eq!(by_date.status, 304, "{path} with If-Modified-Since");
        let other = get_with(hls, &path, "If-None-Match: \"other\"\r\n").await;
        assert_eq!(other.status, 200);
        assert_eq!(other.body, full.body);
        let old = get_with(
            hls,
            &path,
            "If-Modified-Since: Thu, 01 Jan 2015 00:00:00 GMT\r\n",
        )
        .await;
        assert_eq!(old.status, 200);
    }

    let zipped = get_with(hls, &playlist_url(), "Accept-Encoding: br, gzip\r\n").await;
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.header("content-encoding"), "gzip");
    assert_eq!(zipped.header("vary"), "Accept-Encoding");
    assert!(zipped.header("etag").ends_with("-gz\""), "its own ETag");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    check_rules(&parse(&text), &text);
    let refused = get_with(hls, &playlist_url(), "Accept-Encoding: gzip;q=0\r\n").await;
    assert_eq!(refused.header("content-encoding"), "");
    assert!(refused.text().starts_with("#EXTM3U"));
}

/// The HLS port reads hyper's requests itself (no router): methods, paths, percent-encoding
/// and queries are answered as a router would, HEAD as GET without the body.
#[tokio::test]
async fn the_port_answers_methods_paths_and_queries_as_a_router_would() {
    let (ports, _ctx) = start().await;
    let hls = ports.hls.expect("hls.port is bound");
    let first = get(hls, &playlist_url()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let p = parse(&first.text());
    let segment = url(p.segments[0].uri.as_ref().expect("a complete segment"));

    let full = get(hls, &segment).await;
    let head = request(hls, "HEAD", &segment, "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(head.header("content-length"), full.body.len().to_string());
    assert_eq!(head.header("etag"), full.header("etag"));
    assert_eq!(head.header("content-type"), "video/mp4");

    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let refused = request(hls, method, &segment, "").await;
        assert_eq!(refused.status, 405, "{method}");
        assert_eq!(refused.header("allow"), "GET,HEAD", "{method}");
    }
    for path in [
        "/",
        "/x",
        "/x/",
        "//x.m3u8",
        "/x/y/z.m3u8",
        &format!("{segment}/"),
    ] {
        let answer = get(hls, path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.text(), "Not found\n", "{path}");
    }
    let not_utf8 = get(hls, "/%FF/%FF.m3u8").await;
    assert_eq!(not_utf8.status, 400);
    assert_eq!(not_utf8.text(), "The URL is not valid UTF-8\n");

    // The query is read: a blocking reload's numbers are checked, encoded or not.
    for query in [
        "_HLS_msn=x",
        "_HLS%5Fmsn=x",
        "a=1&_HLS_msn=1&_HLS_part=%2D1",
    ] {
        let bad = get(hls, &format!("{}?{query}", playlist_url())).await;
        assert_eq!(bad.status, 400, "{query}: {}", bad.text());
        assert_eq!(
            bad.text(),
            "_HLS_msn and _HLS_part must be whole numbers\n",
            "{query}"
        );
    }
    let part_alone = get(hls, &format!("{}?_HLS_part=1", playlist_url())).await;
    assert_eq!(part_alone.status, 400);
    assert_eq!(part_alone.text(), "_HLS_part needs _HLS_msn\n");
}

/// A player's playlist request, as `agent`.
async fn read_as(hls: SocketAddr, agent: &str) -> u16 {
    request(
        hls,
        "GET",
        &playlist_url(),
        &format!("User-Agent: {agent}\r\n"),
    )
    .await
    .status
}

/// The HLS plays REST `/stream/find_all` lists (none: `[]`).
async fn hls_plays(http: SocketAddr) -> Vec<serde_json::Value> {
    let answer = request(http, "POST", "/rest-api/stream/find_all", "").await;
    if answer.status == 404 {
        return vec![];
    }
    assert_eq!(answer.status, 200, "{}", answer.text());
    let all: Vec<serde_json::Value> = serde_json::from_slice(&answer.body).expect("JSON");
    all.into_iter().filter(|s| s["protocol"] == "hls").collect()
}

/// `reelcast_viewers{protocol="hls"}` in `/metrics`.
async fn hls_viewers_metric(http: SocketAddr) -> String {
    let text = get(http, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix("reelcast_viewers{protocol=\"hls\"} "))
        .expect("viewers{protocol=\"hls\"}")
        .to_string()
}

/// Polls `hls_plays` until it lists `want`, 15 s at most, calling `meanwhile` each round.
async fn wait_for_plays<F: std::future::Future<Output = ()>>(
    http: SocketAddr,
    want: usize,
    mut meanwhile: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = hls_plays(http).await.len();
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} HLS plays listed, not {want}"
        );
        meanwhile().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// An HLS reader (one address, one User-Agent) is a viewer: REST lists it as a play of
/// the translation with `protocol` `hls` from its first playlist request, `/metrics`
/// counts it, a segment request alone makes none, and it leaves once it has made no
/// request for three target durations while another keeps reading.
#[tokio::test]
async fn hls_readers_are_listed_viewers_until_they_go_quiet() {
    let mut s = settings();
    s.hls_target_duration = Duration::from_millis(1000);
    s.vod_stream_timeout = Duration::from_secs(60);
    let (ports, _serving, _ctx) = reelcast::server::launch(s).await.expect("server starts");
    let hls = ports.hls.expect("hls.port is bound");
    assert_eq!(read_as(hls, "player-a").await, 200);
    assert_eq!(read_as(hls, "player-b").await, 200);
    assert_eq!(read_as(hls, "player-a").await, 200, "the same reader again");
    let playlist = get(hls, &playlist_url()).await.text();
    let segment = playlist
        .lines()
        .find(|l| l.contains(".m4s") && !l.starts_with('#'));
    let segment = url(segment.expect("a segment"));
    let by_c = request(hls, "GET", &segment, "User-Agent: player-c\r\n").await;
    assert_eq!(by_c.status, 200);

    // The two agents, and the one without a User-Agent that fetched the playlist above.
    let plays = hls_plays(ports.http).await;
    assert_eq!(plays.len(), 3, "{plays:?}");
    for p in &plays {
        assert_eq!(p["mediaType"], "play");
        assert_eq!(p["mediaProvider"], "HLS");
        assert_eq!(p["status"], "PLAYING");
        assert_eq!(p["uri"], "vod-live://sample.mp4");
        assert_eq!(p["name"], "vod-live://sample.mp4");
    }
    assert_eq!(hls_viewers_metric(ports.http).await, "3");

    // Only player-a keeps reading: the others leave after three target durations.
    wait_for_plays(ports.http, 1, || async {
        assert_eq!(read_as(hls, "player-a").await, 200);
    })
    .await;
    assert_eq!(hls_viewers_metric(ports.http).await, "1");
    // And player-a too, once quiet.
    wait_for_plays(ports.http, 0, || async {}).await;
}

/// One address makes at most 16 readers however many User-Agents it sends (the others
/// are served, not listed), and `/stream/terminate` of the translation ends its readers.
#[tokio::test]
async fn one_address_makes_a_bounded_number_of_readers_and_terminate_ends_them() {
    let (ports, _serving, ctx) = reelcast::server::launch(settings())
        .await
        .expect("server starts");
    let hls = ports.hls.expect("hls.port is bound");
    for i in 0..24 {
        assert_eq!(read_as(hls, &format!("agent-{i}")).await, 200, "served");
    }
    assert_eq!(hls_plays(ports.http).await.len(), 16);
    let name = ctx.registry.translations()[0].name.clone();
    let terminated = request_with_body(
        ports.http,
        "POST",
        "/rest-api/stream/terminate",
        "Content-Type: application/json\r\n",
        &format!("{{\"name\":\"{name}\"}}"),
    )
    .await;
    assert_eq!(terminated.status, 200, "{}", terminated.text());
    wait_for_plays(ports.http, 0, || async {}).await;
}

/// A publisher's side as the stream sees it: keyframe requests counted.
#[derive(Default)]
struct CountingControl {
    keyframes: std::sync::atomic::AtomicUsize,
}

impl reelcast::media::PublisherControl for CountingControl {
    fn request_keyframe(&self) {
        self.keyframes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn close(&self, _ending: reelcast::media::Ending) {}
}

/// The sample's frames as a publisher sends them: H.264 pictures and Opus packets, each
/// at its presentation time.
fn publisher_frames() -> Vec<reelcast::media::Frame> {
    use reelcast::source::{LocalFile, MediaPath};
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../media"));
    let file = LocalFile::open(dir, &MediaPath::new("sample.mp4").unwrap()).unwrap();
    let mut reader = reelcast::stream::MediaReader::open(file).expect("opens");
    let mut frames: Vec<_> = std::iter::from_fn(|| reader.read_frame().expect("reads"))
        .map(|mut f| {
            f.dts_us = f.pts_us;
            f
        })
        .collect();
    frames.sort_by_key(|f| f.dts_us);
    frames
}

/// A published stream (its publisher fed the sample in real time, without WebRTC) is
/// served over HLS under its name only once it is asked for, by the rules a validator
/// checks, with every segment starting at a keyframe; its reader is listed as a viewer
/// of the published stream; its publisher's end gives `#EXT-X-ENDLIST`, then 404.
#[tokio::test]
async fn a_published_stream_is_served_by_the_rules_and_ends_with_its_publisher() {
    use reelcast::media::{Publisher, PublisherEvent, StopReason, ViewerId};
    use reelcast::stream::published::{PublishProtocol, PublishSpec};
    use reelcast::stream::MediaInfo;
    use std::sync::atomic::Ordering;

    let (ports, ctx) = start().await;
    let hls = ports.hls.expect("hls.port is bound");
    let cam = "/cam/cam.m3u8";
    assert_eq!(get(hls, cam).await.status, 404, "not published yet");

    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let control = std::sync::Arc::new(CountingControl::default());
    let spec = PublishSpec {
        name: "cam".into(),
        media_session_id: uuid::Uuid::new_v4().to_string(),
        record: false,
        info: MediaInfo {
            has_video: true,
            has_audio: true,
            ..MediaInfo::default()
        },
        protocol: PublishProtocol::Whip,
        session_id: String::new(),
        login: String::new(),
    };
    let epoch = Instant::now();
    let publisher = Publisher::new(ViewerId::next(), rx, control.clone());
    ctx.registry
        .publish(spec, publisher, epoch, None)
        .expect("published");
    let frames = publisher_frames();
    let feeder = tokio::spawn(async move {
        let _ = tx.send(PublisherEvent::Connected).await;
        for f in frames {
            let due = epoch + Duration::from_micros(u64::try_from(f.pts_us).unwrap_or(0));
            tokio::time::sleep_until(due.into()).await;
            let _ = tx.send(PublisherEvent::Frame(f)).await;
        }
        tx
    });
    assert_eq!(
        control.keyframes.load(Ordering::Relaxed),
        0,
        "nothing asked before HLS is"
    );

    let first = get(hls, cam).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(
        control.keyframes.load(Ordering::Relaxed) >= 1,
        "a keyframe asked for"
    );
    let plays = ctx.registry.plays();
    assert!(
        plays
            .iter()
            .any(|p| p.protocol == reelcast::media::ViewerProtocol::Hls
                && p.kind
                    == reelcast::stream::registry::PlayKind::Published {
                        stream: "cam".into()
                    }),
        "the reader is listed as a viewer of the published stream"
    );
    let init = get(hls, &format!("/cam/{}", parse(&first.text()).map)).await;
    assert_eq!(init.status, 200);
    let mut checked_parts = std::collections::HashSet::new();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let answer = get(hls, cam).await;
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let p = parse(&text);
        check_rules(&p, &text);
        check_segments_start_independent(&p, &text);
        check_independent_parts(hls, "cam", &init.body, &p, &mut checked_parts).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The publisher goes: the last playlist ends the list, then the name is unknown.
    let tx = feeder.await.expect("fed");
    tx.send(PublisherEvent::Closed(StopReason::SessionDisconnect.into()))
        .await
        .expect("the stream hears its publisher's end");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = get(hls, cam).await;
        if answer.status == 200 && answer.text().contains("#EXT-X-ENDLIST") {
            break;
        }
        assert!(Instant::now() < deadline, "no ENDLIST: {}", answer.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(get(hls, cam).await.status, 404, "gone after its linger");
}
