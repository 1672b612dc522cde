//! Connections nobody closes: a real reelcast server on 127.0.0.1 and real TCP and
//! WebSocket clients that misbehave. Slowloris connections (half a request, or nothing)
//! are closed after `http.header_read_timeout`; connections over `http.max_connections`
//! get a `503` with the reason; WebSocket sessions that answer no ping are closed after
//! `keep_alive.probes` pings, and their streams end; sessions over
//! `ws.max_sessions[_per_client]` are refused with a plain close reason.
//!
//! Every wait has a deadline; what is asserted is what each client received, never how
//! fast (the time-outs here are short so that the deadlines can be generous).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn start(
    adjust: impl FnOnce(&mut reelcast::config::Settings),
) -> reelcast::server::BoundPorts {
    let mut settings = reelcast::config::Settings {
        media_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../media").into(),
        http_port: 0,
        ws_port: 0,
        media_port: Some(0),
        ip_local: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..Default::default()
    };
    adjust(&mut settings);
    let (ports, _serving) = reelcast::server::start(settings)
        .await
        .expect("server starts");
    ports
}

/// Reads until the server closes the connection (EOF or reset); what it sent before.
/// `None` if it is still open at the deadline.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_after_the_header_read_timeout() {
    const CONNECTIONS: usize = 1000;
    let ports = start(|s| {
        s.http_header_read_timeout = Duration::from_millis(1000);
        // Every connection here is admitted: what closes them must be the time-out.
        s.http_max_connections_per_client = 5000;
    })
    .await;
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        // Half on the HTTP port, half on the WebSocket port; half of each send half a
        // request head, the others nothing at all.
        let port = if i % 2 == 0 { ports.http } else { ports.ws };
        let mut stream = TcpStream::connect(port).await.expect("connect");
        if i % 4 < 2 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: reelcast\r\nX-Slow: ")
                .await
                .expect("send half a request");
        }
        clients.push(stream);
    }
    // All at once: each gets the whole deadline (many times the 1 s time-out).
    let closed = futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|c| read_until_closed(c, Duration::from_secs(30))),
    )
    .await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} of {CONNECTIONS} slow connections still open"
    );
    let refused = closed
        .iter()
        .flatten()
        .filter(|got| got.starts_with(b"HTTP/1.1 503"))
        .count();
    assert_eq!(refused, 0, "connections were refused, not timed out");

    // A whole request is still served, on a fresh connection.
    let mut ok = TcpStream::connect(ports.http).await.expect("connect");
    ok.write_all(b"GET /api/files HTTP/1.1\r\nHost: reelcast\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let answer = read_until_closed(&mut ok, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_with_the_reason() {
    let ports = start(|s| {
        s.http_max_connections = 20;
        s.http_max_connections_per_client = 20;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(ports.http).await.expect("connect"));
    }
    let mut over = TcpStream::connect(ports.http).await.expect("connect");
    let answer = read_until_closed(&mut over, Duration::from_secs(10))
        .await
        .expect("the connection over the cap is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(
        answer.contains("Too many connections: too many at once on this server"),
        "{answer}"
    );

    // A slot given back is a slot to take.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(ports.http).await.expect("connect");
        again
            .write_all(b"GET /api/files HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let answer = read_until_closed(&mut again, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_client_cap_get_503_with_the_reason() {
    let ports = start(|s| s.http_max_connections_per_client = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(ports.ws).await.expect("connect"));
    }
    let mut over = TcpStream::connect(ports.ws).await.expect("connect");
    let answer = read_until_closed(&mut over, Duration::from_secs(10))
        .await
        .expect("the connection over the cap is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("too many at once from your address"),
        "{answer}"
    );
}

/// A WCS session: WebSocket connected, `connection` sent, `getUserData` received.
async fn wcs_session(ws_port: SocketAddr) -> Ws {
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("ws://{ws_port}/"),
        TcpStream::connect(ws_port).await.expect("connect"),
    )
    .await
    .expect("websocket handshake");
    send(
        &mut ws,
        "connection",
        serde_json::json!({ "appKey": "defaultApp" }),
    )
    .await;
    let first = next_message(&mut ws)
        .await
        .expect("an answer to connection");
    assert_eq!(first["message"], "getUserData", "{first}");
    ws
}

async fn send(ws: &mut Ws, name: &str, data: serde_json::Value) {
    let text = serde_json::json!({ "message": name, "data": [data] }).to_string();
    ws.send(Message::text(text)).await.expect("send");
}

/// The next WCS message, or `None` when the socket closed (or 30 s passed).
async fn next_message(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).expect("WCS messages are JSON"))
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// How the server closed `ws`: the close frame's code and reason (`None`: no frame, or
/// still open after 30 s).
async fn close_of(ws: &mut Ws) -> Option<(CloseCode, String)> {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return frame.map(|f| (f.code, f.reason.to_string()))
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// A browser-like offer (receive H.264 video and Opus audio) from str0m.
fn offer() -> String {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

/// POST /rest-api/stream/find_all: the HTTP status.
async fn find_all_status(http: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(http).await.expect("connect");
    s.write_all(
        b"POST /rest-api/stream/find_all HTTP/1.1\r\nHost: r\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send");
    let answer = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("answered");
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_answers_no_ping_is_closed_and_its_streams_end() {
    let ports = start(|s| {
        s.keep_alive_server_interval = Duration::from_millis(300);
        s.keep_alive_probes = 3;
    })
    .await;
    let mut silent = wcs_session(ports.ws).await;
    // The other session answers every ping from its first one on, in its own task (it
    // must not miss pings while this task watches the silent one); it counts them.
    let mut alive = wcs_session(ports.ws).await;
    let (answered_tx, mut answered_rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        let mut answered = 0;
        while let Some(msg) = next_message(&mut alive).await {
            if msg["message"] == "ping" {
                send(&mut alive, "pong", serde_json::Value::Null).await;
                answered += 1;
                let _ = answered_tx.send(answered);
            }
        }
        // Closed: dropping the sender tells the waiter below.
    });

    // The silent one plays (its browser never connects: the play waits 20 s for ICE).
    send(
        &mut silent,
        "playStream",
        serde_json::json!({ "mediaSessionId": "m1", "name": "vod://sample.mp4", "sdp": offer() }),
    )
    .await;
    let mut pings = 0;
    let mut answered = false;
    let reason = loop {
        let Some(msg) = next_message(&mut silent).await else {
            break None;
        };
        match msg["message"].as_str() {
            Some("setRemoteSDP") => {
                answered = true;
                assert_eq!(find_all_status(ports.http).await, 200, "the play is listed");
            }
            Some("ping") => pings += 1,
            other => panic!("unexpected {other:?}: {msg}"),
        }
        if pings == 3 {
            break close_of(&mut silent).await;
        }
    };
    assert!(answered, "the play was answered before the session ended");
    assert_eq!(pings, 3, "exactly keep_alive.probes pings before the close");
    assert_eq!(
        reason,
        Some((CloseCode::Away, "Terminated by keep-alive".to_string()))
    );
    // The play ended with the session, long before its 20 s wait for ICE would have.
    let deadline = Instant::now() + Duration::from_secs(10);
    while find_all_status(ports.http).await != 404 {
        assert!(
            Instant::now() < deadline,
            "the silent session's play is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The session that answers is still there, many pings later.
    answered_rx
        .wait_for(|answered| *answered >= 8)
        .await
        .expect("the answering session stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_the_caps_are_refused_with_a_plain_reason() {
    let ports = start(|s| {
        s.ws_max_sessions = 3;
        s.ws_max_sessions_per_client = 2;
    })
    .await;
    let first = wcs_session(ports.ws).await;
    let _second = wcs_session(ports.ws).await;
    let (mut third, _) = tokio_tungstenite::client_async(
        format!("ws://{}/", ports.ws),
        TcpStream::connect(ports.ws).await.expect("connect"),
    )
    .await
    .expect("the upgrade itself is answered");
    assert_eq!(
        close_of(&mut third).await,
        Some((
            CloseCode::Again,
            "Session refused: too many at once from your address".to_string()
        ))
    );
    // A closed session gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (mut ws, _) = tokio_tungstenite::client_async(
            format!("ws://{}/", ports.ws),
            TcpStream::connect(ports.ws).await.expect("connect"),
        )
        .await
        .expect("upgrade");
        send(&mut ws, "connection", serde_json::json!({})).await;
        match next_message(&mut ws).await {
            Some(m) if m["message"] == "getUserData" => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "the closed session's place was never given back"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The next message named `name` (others, such as pings, are skipped); `None` when the
/// socket closed first (or 30 s passed).
async fn next_named(ws: &mut Ws, name: &str) -> Option<serde_json::Value> {
    loop {
        let msg = next_message(ws).await?;
        if msg["message"] == name {
            return Some(msg);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_over_the_per_session_cap_fail_with_a_plain_reason() {
    let ports = start(|s| s.ws_max_streams_per_session = 2).await;
    let mut ws = wcs_session(ports.ws).await;
    let play = |id: &str| serde_json::json!({ "mediaSessionId": id, "name": "vod://sample.mp4", "sdp": offer() });
    // Two plays are answered (their browser never connects: each waits for ICE).
    for id in ["m1", "m2"] {
        send(&mut ws, "playStream", play(id)).await;
        let answer = next_named(&mut ws, "setRemoteSDP").await;
        assert_eq!(answer.map(|m| m["data"][0].clone()), Some(id.into()));
    }
    // The third fails at once, saying why (not answered); the session stays open.
    send(&mut ws, "playStream", play("m3")).await;
    let failed = loop {
        let msg = next_message(&mut ws).await.expect("an answer to m3");
        if msg["message"] == "setRemoteSDP" || msg["message"] == "notifyStreamStatusEvent" {
            break msg;
        }
    };
    assert_eq!(failed["message"], "notifyStreamStatusEvent", "{failed}");
    let event = &failed["data"][0];
    assert_eq!(event["mediaSessionId"], "m3", "{failed}");
    assert_eq!(event["status"], "FAILED", "{failed}");
    assert_eq!(
        event["info"],
        "Too many streams in this session: at most 2 play at once (stop one first)"
    );
    // A stopped stream no longer counts: the next play is answered.
    send(
        &mut ws,
        "stopStream",
        serde_json::json!({ "mediaSessionId": "m1", "name": "vod://sample.mp4" }),
    )
    .await;
    send(&mut ws, "playStream", play("m4")).await;
    let answer = next_named(&mut ws, "setRemoteSDP").await;
    assert_eq!(answer.map(|m| m["data"][0].clone()), Some("m4".into()));
}
