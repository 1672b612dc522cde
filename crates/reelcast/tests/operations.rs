//! Running reelcast as a server: `--version`, `/health` and `/ready`, and what a drain
//! (SIGTERM) does to new plays. A real server on 127.0.0.1, plain HTTP/1.1 requests.
//! The SIGTERM of the real process, with real viewers, is `tests/e2e/shutdown.test.mjs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn settings() -> reelcast::config::Settings {
    reelcast::config::Settings {
        media_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../media").into(),
        http_port: 0,
        ws_port: 0,
        media_port: Some(0),
        ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Default::default()
    }
}

/// `(status, body)` of one request with `Connection: close`.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request_with(addr, method, path, "", body).await;
    (status, body)
}

/// `(status, head, body)` of one request with `Connection: close` and the header lines
/// `headers` (each ending `\r\n`).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: reelcast\r\nConnection: close\r\n{headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        String::from_utf8_lossy(&got).into_owned()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an answer within 10 s");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reelcast"))
        .arg("--version")
        .output()
        .expect("run reelcast --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let expected_commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        );
    // The binary may be a commit behind the checkout if built before the last commit;
    // what matters is the shape, and that a checkout's build names a real commit.
    let (version, commit) = text
        .trim()
        .strip_prefix("reelcast ")
        .and_then(|r| r.split_once(" (commit "))
        .unwrap_or_else(|| panic!("unexpected --version output: {text}"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let commit = commit.trim_end_matches(')');
    assert_eq!(commit.len(), expected_commit.len(), "{text}");
    assert_ne!(commit, "", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_alive_and_ready_checks_media_dir_and_s3() {
    // Everything fine; an S3 endpoint written as an address resolves without DNS traffic.
    let (ports, _serving) = reelcast::server::start(reelcast::config::Settings {
        aws_s3_endpoint: Some("http://127.0.0.1:9".into()),
        ..settings()
    })
    .await
    .unwrap();
    let (status, body) = request(ports.http, "GET", "/health", "").await;
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({"status": "alive"}))
    );
    let (status, body) = request(ports.http, "GET", "/ready", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({"ready": true, "checks": {"ports": "ok", "media_dir": "ok", "s3_endpoint": "ok"}})
    );

    // A media_dir that cannot be read: not ready, and the path is not echoed.
    let missing = "/nonexistent/reelcast-media";
    let (ports, _serving) = reelcast::server::start(reelcast::config::Settings {
        media_dir: missing.into(),
        ..settings()
    })
    .await
    .unwrap();
    let (status, body) = request(ports.http, "GET", "/ready", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(json(&body)["checks"]["media_dir"], "not readable");
    assert_eq!(json(&body)["checks"].get("s3_endpoint"), None);
    assert!(!body.contains(missing), "{body}");
    // /health does not care: the process is alive.
    assert_eq!(request(ports.http, "GET", "/health", "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_ready_is_503_and_new_plays_are_refused_with_the_reason() {
    let (ports, _serving, ctx) = reelcast::server::launch(reelcast::config::Settings {
        shutdown_grace_period: Duration::from_secs(5),
        ..settings()
    })
    .await
    .unwrap();
    assert_eq!(request(ports.http, "GET", "/ready", "").await.0, 200);
    // Nobody plays: the drain returns at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        reelcast::admin::drain(&ctx, Duration::from_secs(5)),
    )
    .await
    .expect("an empty server drains at once");
    let (status, body) = request(ports.http, "GET", "/ready", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(json(&body)["checks"]["ports"], "shutting down");
    // A WHEP play is refused before its offer is looked at, with the plain reason.
    let offer = "v=0\r\n";
    let (status, body) = request(ports.http, "POST", "/whep/vod%3A%2F%2Fsample.mp4", offer).await;
    assert_eq!((status, body.as_str()), (503, "Server is shutting down"));
}

/// What a `/metrics` text must name: every series of docs/OPERATIONS.md's table.
const SERIES: [&str; 8] = [
    "# TYPE reelcast_viewers gauge",
    "# TYPE reelcast_time_to_first_frame_seconds histogram",
    "# TYPE reelcast_s3_fetched_bytes_total counter",
    "# TYPE reelcast_s3_requests_total counter",
    "# TYPE reelcast_s3_retries_total counter",
    "# TYPE reelcast_s3_request_duration_seconds histogram",
    "# TYPE reelcast_transcoders_busy gauge",
    "# TYPE reelcast_process_cpu_seconds_total counter",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_token_set_metrics_needs_that_bearer_token_not_the_rest_auth() {
    const TOKEN: &str = "scrape-7f3a9c1e5b2d4680";
    let (ports, _serving) = reelcast::server::start(reelcast::config::Settings {
        disable_rest_auth: false,
        rest_auth_users: reelcast::config::parse_rest_users("admin:rest-pw").unwrap(),
        metrics_token: Some(TOKEN.into()),
        ..settings()
    })
    .await
    .unwrap();
    let metrics = |headers: String| async move {
        request_with(ports.http, "GET", "/metrics", &headers, "").await
    };
    let (status, head, body) = metrics(String::new()).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(!body.contains(TOKEN), "{body}");
    // The REST credentials no longer open it; a wrong token does not either.
    let basic = "Authorization: Basic YWRtaW46cmVzdC1wdw==\r\n".to_string();
    assert_eq!(metrics(basic.clone()).await.0, 401);
    let wrong = "Authorization: Bearer scrape-7f3a9c1e5b2d4681\r\n".to_string();
    assert_eq!(metrics(wrong).await.0, 401);
    let (status, _, body) = metrics(format!("Authorization: Bearer {TOKEN}\r\n")).await;
    assert_eq!(status, 200, "{body}");
    for series in SERIES {
        assert!(body.contains(series), "no {series:?} in:\n{body}");
    }
    // The REST API keeps its own auth.
    let (status, _, _) = request_with(
        ports.http,
        "POST",
        "/rest-api/stream/find_all",
        &basic,
        "{}",
    )
    .await;
    assert_ne!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_port_set_metrics_is_served_there_and_not_on_the_http_port() {
    let (ports, _serving) = reelcast::server::start(reelcast::config::Settings {
        metrics_port: Some(0),
        ..settings()
    })
    .await
    .unwrap();
    let metrics = ports.metrics.expect("metrics_port is bound");
    assert_ne!(metrics.port(), ports.http.port());
    let (status, body) = request(metrics, "GET", "/metrics", "").await;
    assert_eq!(status, 200, "{body}");
    for series in SERIES {
        assert!(body.contains(series), "no {series:?} in:\n{body}");
    }
    assert_eq!(request(ports.http, "GET", "/metrics", "").await.0, 404);
    // The rest of the HTTP port is as it was; the metrics port serves /metrics alone.
    assert_eq!(request(ports.http, "GET", "/health", "").await.0, 200);
    assert_eq!(request(metrics, "GET", "/health", "").await.0, 404);
}
