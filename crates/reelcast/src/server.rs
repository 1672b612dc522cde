//! The server: binds the ports the settings name and wires the parts together.
//!
//! - HTTP (`http.port`, 8081): the demo page, `/api/files`, WHEP, the REST API
//!   (`/rest-api/...`, see [`crate::rest`]).
//! - WebSocket (`ws.port`, 8080): the WCS protocol, on any path.
//! - With `https.cert` and `https.key`: the same HTTP app over TLS (`https.port`, 8444)
//!   and the same WebSocket over TLS (`wss.port`, 8443), see [`crate::tls`].
//! - UDP (`media_port`, else `media_port_from`, 31001): every viewer's WebRTC traffic (see
//!   [`crate::webrtc`]); dual-stack when bound to every address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::{Html, IntoResponse};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::sync::Mutex;
use tower_http::cors::{Any, CorsLayer};
use tracing::info;

use crate::config::Settings;
use crate::rest;
use crate::signal::{wcs, whep};
use crate::source::list_media;
use crate::stream::budget::MemoryBudget;
use crate::stream::{Registry, Stopper};
use crate::tls::{self, TlsListener};
use crate::webrtc::{announced_ips, bind_media_port, RtcFactory, RtcHub};

/// The demo player page, built into the binary so the server needs no files beside it.
const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// What every request handler shares.
pub struct ServerContext {
    pub settings: Settings,
    pub rtc: RtcFactory,
    pub hub: RtcHub,
    /// Every running stream (plays and live translations).
    pub registry: Arc<Registry>,
    /// Live WHEP sessions by resource id.
    pub whep_sessions: Mutex<HashMap<String, Stopper>>,
}

/// Ports actually bound (differs from the settings when a port is 0).
#[derive(Debug, Clone, Copy)]
pub struct BoundPorts {
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub media: SocketAddr,
    /// `https.port`, when a certificate is configured.
    pub https: Option<SocketAddr>,
    /// `wss.port`, when a certificate is configured.
    pub wss: Option<SocketAddr>,
}

/// The most threads blocking work may use at once. An S3 read waiting for a stalled
/// store holds one for up to 20 s, so this leaves room for many of them beside the
/// local files' reads.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// The runtime the server runs on. Blocking threads run file opens and streams'
/// read-ahead batches (file and S3 reads, AAC→Opus: `stream::read_ahead`), which are
/// short and mostly CPU: more of them than a few per core only adds threads and memory.
/// tokio's defaults (up to 512, each kept 10 s after its last job) let a loaded machine
/// grow one per stream: 29 for 30 personal VODs (docs/PERFORMANCE.md). Jobs beyond the
/// cap wait in a queue.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .enable_all()
        .build()
}

/// Binds everything and serves until the process is stopped.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (ports, serving) = start(settings).await?;
    info!(
        "reelcast listening: http {} (open http://localhost:{}/), ws {}, webrtc udp {}",
        ports.http,
        ports.http.port(),
        ports.ws,
        ports.media
    );
    if let (Some(https), Some(wss)) = (ports.https, ports.wss) {
        info!("reelcast listening with TLS: https {https}, wss {wss}");
    }
    serving.await.context("server task failed")?
}

/// Binds every port and starts serving in the background.
pub async fn start(
    settings: Settings,
) -> anyhow::Result<(BoundPorts, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let bind_ip = settings.ip_local;
    // A bad certificate fails the start before any port is taken.
    let acceptor = match (&settings.https_cert, &settings.https_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    crate::source::s3::check_settings(&settings).map_err(anyhow::Error::msg)?;
    let media_port = settings.udp_port();
    if settings.media_port.is_none() {
        info!(
            "media_port is not set: WebRTC on udp {media_port}, the first port of \
             media_port_from-media_port_to ({}-{})",
            settings.media_port_from, settings.media_port_to
        );
    }
    let udp = bind_media_port(bind_ip, media_port)
        .with_context(|| format!("cannot bind WebRTC udp port {media_port}"))?;
    let media = udp.local_addr()?;
    let ips = announced_ips(&settings, media.is_ipv6());
    let candidates: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, media.port()))
        .collect();
    let listed: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
    if settings.ip.is_empty() && bind_ip.is_unspecified() {
        info!(
            "ip is not set: announcing every address of this host in ICE candidates: {} \
             (set ip to the addresses browsers reach, e.g. a public one behind NAT)",
            listed.join(", ")
        );
    } else {
        info!("announcing {} in ICE candidates", listed.join(", "));
    }
    let rtc = RtcFactory::new(candidates.clone()).context("WebRTC setup")?;
    let hub = RtcHub::start(udp, candidates);

    let http = tokio::net::TcpListener::bind(SocketAddr::new(bind_ip, settings.http_port))
        .await
        .with_context(|| format!("cannot bind http.port {}", settings.http_port))?;
    let ws = tokio::net::TcpListener::bind(SocketAddr::new(bind_ip, settings.ws_port))
        .await
        .with_context(|| format!("cannot bind ws.port {}", settings.ws_port))?;
    let (https, wss) = match acceptor {
        Some(acceptor) => {
            let https =
                tokio::net::TcpListener::bind(SocketAddr::new(bind_ip, settings.https_port))
                    .await
                    .with_context(|| format!("cannot bind https.port {}", settings.https_port))?;
            let wss = tokio::net::TcpListener::bind(SocketAddr::new(bind_ip, settings.wss_port))
                .await
                .with_context(|| format!("cannot bind wss.port {}", settings.wss_port))?;
            (
                Some(TlsListener::new(https, acceptor.clone())?),
                Some(TlsListener::new(wss, acceptor)?),
            )
        }
        None => (None, None),
    };
    let ports = BoundPorts {
        http: http.local_addr()?,
        ws: ws.local_addr()?,
        media,
        https: https.as_ref().map(|l| l.local_addr()),
        wss: wss.as_ref().map(|l| l.local_addr()),
    };

    let index_budget = MemoryBudget::new(settings.vod_index_memory_mb.saturating_mul(1 << 20));
    let ctx = Arc::new(ServerContext {
        settings,
        rtc,
        hub,
        registry: Arc::new(Registry::new(index_budget)),
        whep_sessions: Mutex::new(HashMap::new()),
    });

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([axum::http::header::LOCATION]);
    let http_app = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/api/files", get(files))
        .route("/whep/{name}", post(whep::create))
        .route("/whep/resource/{id}", delete(whep::delete))
        .nest("/rest-api", rest::router(ctx.clone()))
        .layer(cors)
        .with_state(ctx.clone());
    let ws_app = Router::new()
        .fallback(get(ws_upgrade))
        .with_state(ctx.clone());

    let serving = tokio::spawn(async move {
        let (https_app, wss_app) = (http_app.clone(), ws_app.clone());
        let https_server = async move {
            match https {
                Some(listener) => axum::serve(listener, https_app).await,
                None => Ok(()),
            }
        };
        let wss_server = async move {
            match wss {
                // `tap_io` is what gives a custom listener axum's `ConnectInfo<SocketAddr>`.
                Some(listener) => {
                    axum::serve(
                        listener.tap_io(|_| {}),
                        wss_app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let http_server = axum::serve(http, http_app);
        let ws_server = axum::serve(
            ws,
            ws_app.into_make_service_with_connect_info::<SocketAddr>(),
        );
        tokio::try_join!(http_server, ws_server, https_server, wss_server)?;
        Ok(())
    });
    Ok((ports, serving))
}

async fn files(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let dir = ctx.settings.media_dir.clone();
    let list = tokio::task::spawn_blocking(move || list_media(&dir))
        .await
        .unwrap_or_default();
    Json(list)
}

async fn ws_upgrade(
    upgrade: WebSocketUpgrade,
    State(ctx): State<Arc<ServerContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> impl IntoResponse {
    let max = ctx.settings.signalling_max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| wcs::serve_session(socket, ctx, peer.to_string()))
}
