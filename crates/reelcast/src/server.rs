//! The server: binds the ports the settings name and wires the parts together (what
//! the handlers share, [`ServerContext`], lives below them in [`crate::context`]).
//!
//! - HTTP (`http.port`, 8081): the demo page, `/api/files`, `/api/hls` (the demo page's
//!   HLS player settings), WHEP, WHIP, the REST
//!   API
//!   (`/rest-api/...`, see [`crate::rest`]).
//! - WebSocket (`ws.port`, 8080): the WCS protocol, on any path.
//! - With `https.cert` and `https.key`: the same HTTP app over TLS (`https.port`, 8444)
//!   and the same WebSocket over TLS (`wss.port`, 8443), see [`crate::tls`]; with
//!   `hls.https.port` (WCS: 8445) too, the HLS app over TLS.
//! - UDP (`media_port`, else `media_port_from`, 31001): every viewer's WebRTC traffic (see
//!   [`crate::webrtc`]); dual-stack when bound to every address.
//!
//! Every TCP port is served by [`crate::http_conn`] (connection caps, header-read and
//! idle time-outs). CORS: REST answers only the origins in `rest_allowed_origins` (none by
//! default), WHEP and WHIP those in `whep_allowed_origins` (any by default: WHEP players are
//! pages of other sites, and a WHEP play or WHIP publish gives a page nothing the
//! WebSocket port, which browsers never hold to CORS, does not); the demo page and `/api/files` need none (same origin).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{Html, IntoResponse};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::{info, warn};

use crate::config::{AllowedOrigins, Settings};
pub use crate::context::ServerContext;
use crate::gate::Gate;
use crate::health::ReadyCache;
use crate::hooks::RestHooks;
use crate::http_conn::{self, ConnLimits};
use crate::rest;
use crate::shutdown::Shutdown;
use crate::signal::{wcs, whep, whip};
use crate::source::list_media;
use crate::stream::budget::MemoryBudget;
use crate::stream::Registry;
use crate::tls::{self, TlsListener};
use crate::webrtc::{announced_ips, bind_media_port, RtcFactory, RtcFeeds, RtcHub};

/// The demo player page, built into the binary so the server needs no files beside it.
const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// Ports actually bound (differs from the settings when a port is 0).
#[derive(Debug, Clone, Copy)]
pub struct BoundPorts {
    /// The HTTP port (REST, WHEP, the demo page).
    pub http: SocketAddr,
    /// The WebSocket port (WCS signalling).
    pub ws: SocketAddr,
    /// The UDP media port.
    pub media: SocketAddr,
    /// `https.port`, when a certificate is configured.
    pub https: Option<SocketAddr>,
    /// `wss.port`, when a certificate is configured.
    pub wss: Option<SocketAddr>,
    /// `metrics_port`, when set (`/metrics` is then served there alone).
    pub metrics: Option<SocketAddr>,
    /// `hls.port`, when set.
    pub hls: Option<SocketAddr>,
    /// `hls.https.port`, when set (it needs a certificate).
    pub hls_https: Option<SocketAddr>,
}

/// The most threads blocking work may use at once. An S3 read waiting for a stalled
/// store holds one for up to 20 s, so this leaves room for many of them beside the
/// local files' reads.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// The runtime the server runs on. Blocking threads run file opens and streams'
/// read-ahead batches (file and S3 reads, AAC→Opus: `stream::frame_queue`), which are
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

/// Binds everything and serves until SIGTERM has drained it ([`crate::shutdown`]).
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let (ports, serving, ctx) = launch(settings).await?;
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
    if let Some(metrics) = ports.metrics {
        info!("metrics on http {metrics}/metrics (not on the HTTP port)");
    }
    tokio::select! {
        ended = serving => ended.context("server task failed")?,
        drained = crate::admin::on_signal(ctx) => drained.context("cannot watch for SIGTERM"),
    }
}

/// Binds every port and starts serving in the background.
pub async fn start(
    settings: Settings,
) -> anyhow::Result<(BoundPorts, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let (ports, serving, _ctx) = launch(settings).await?;
    Ok((ports, serving))
}

/// [`start`], also giving the context the handlers share (for the shutdown drain).
pub async fn launch(
    settings: Settings,
) -> anyhow::Result<(
    BoundPorts,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Arc<ServerContext>,
)> {
    let bind_ip = settings.ip_local;
    // A bad certificate fails the start before any port is taken.
    let acceptor = match (&settings.https_cert, &settings.https_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    crate::source::s3::check_settings(&settings).map_err(anyhow::Error::msg)?;
    // Recordings a killed server left unfinished become playable before anyone can ask
    // for them (bounded: one pass over record_dir, logged).
    let record_dir = settings.record_dir.clone();
    let recovered = tokio::task::spawn_blocking(move || crate::record::recover_dir(&record_dir))
        .await
        .unwrap_or_default();
    if recovered != crate::record::Recovered::default() {
        info!("recovery of {}: {recovered}", settings.record_dir.display());
    }
    let media_port = settings.udp_port();
    if settings.media_port.is_none() {
        info!(
            "media_port is not set: WebRTC on udp {media_port}, the first port of \
             media_port_from-media_port_to ({}-{})",
            settings.media_port_from, settings.media_port_to
        );
    }
    let (udp, ice_tcp_listener) =
        bind_media_ports(bind_ip, media_port, settings.ice_tcp_transport)?;
    let media = udp.local_addr()?;
    let ips = announced_ips(&settings, media.is_ipv6());
    let candidates: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, media.port()))
        .collect();
    let listed: Vec<String> = ips.iter().map(std::string::ToString::to_string).collect();
    if settings.ip.is_empty() && bind_ip.is_unspecified() {
        info!(
            "ip is not set: announcing every address of this host in ICE candidates: {} \
             (set ip to the addresses browsers reach, e.g. a public one behind NAT)",
            listed.join(", ")
        );
    } else {
        info!("announcing {} in ICE candidates", listed.join(", "));
    }
    let ice_tcp = ice_tcp_listener.map(|listener| (listener, port_gate(&settings)));
    let tcp_candidates: Vec<SocketAddr> = match &ice_tcp {
        Some((listener, _)) => {
            let port = listener.local_addr()?.port();
            candidates
                .iter()
                .map(|c| SocketAddr::new(c.ip(), port))
                .collect()
        }
        None => Vec::new(),
    };
    let rtc = RtcFactory::new(candidates.clone(), tcp_candidates).context("WebRTC setup")?;
    rtc.warm_up();
    let feeds = RtcFeeds::new(RtcHub::start(udp, candidates, ice_tcp));

    let http = bind_tcp(bind_ip, settings.http_port, "http.port")?;
    let ws = bind_tcp(bind_ip, settings.ws_port, "ws.port")?;
    // Settings loading refuses hls.https.port without a certificate; a Settings built in
    // code without one gets no HLS over TLS rather than a port that cannot handshake.
    let hls_https = match (&acceptor, settings.hls_https_port) {
        (Some(acceptor), Some(port)) => Some(TlsListener::new(
            bind_tcp(bind_ip, port, "hls.https.port")?,
            acceptor.clone(),
            port_gate(&settings),
        )?),
        _ => None,
    };
    let (https, wss) = match acceptor {
        Some(acceptor) => {
            let https = bind_tcp(bind_ip, settings.https_port, "https.port")?;
            let wss = bind_tcp(bind_ip, settings.wss_port, "wss.port")?;
            (
                Some(TlsListener::new(
                    https,
                    acceptor.clone(),
                    port_gate(&settings),
                )?),
                Some(TlsListener::new(wss, acceptor, port_gate(&settings))?),
            )
        }
        None => (None, None),
    };
    let metrics = match settings.metrics_port {
        Some(port) => Some(bind_tcp(bind_ip, port, "metrics_port")?),
        None => None,
    };
    let hls = match settings.hls_port {
        Some(port) => Some(bind_tcp(bind_ip, port, "hls.port")?),
        None => None,
    };
    let ports = BoundPorts {
        metrics: metrics
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()?,
        http: http.local_addr()?,
        ws: ws.local_addr()?,
        media,
        https: https.as_ref().map(super::tls::TlsListener::local_addr),
        wss: wss.as_ref().map(super::tls::TlsListener::local_addr),
        hls: hls
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()?,
        hls_https: hls_https.as_ref().map(TlsListener::local_addr),
    };

    let index_budget = MemoryBudget::new(settings.vod_index_memory_mb.saturating_mul(1 << 20));
    let limits = ConnLimits {
        header_read_timeout: settings.http_header_read_timeout,
        idle_timeout: settings.http_idle_timeout,
    };
    let (http_gate, ws_gate) = (port_gate(&settings), port_gate(&settings));
    let hook_url = settings.rest_hook_url.as_deref();
    let hooks = RestHooks::new(
        hook_url.filter(|_| !settings.disable_rest_requests),
        settings.rest_request_timeout,
    );
    if hooks.enabled() {
        info!("REST hooks on: every session and play is asked of the application's backend");
    }
    let registry = Arc::new(Registry::new(
        settings.clone(),
        Arc::new(feeds.clone()),
        index_budget,
    ));
    let ctx = Arc::new(ServerContext {
        hooks,
        rtc,
        feeds,
        registry,
        ws_sessions: Gate::new(
            settings.ws_max_sessions,
            settings.ws_max_sessions_per_client,
        ),
        settings,
        shutdown: Shutdown::default(),
        ready_cache: ReadyCache::default(),
    });

    let mut rest_api = rest::router(ctx.clone());
    if let Some(cors) = cors(&ctx.settings.rest_allowed_origins, &[Method::POST]) {
        rest_api = rest_api.layer(cors);
    }
    let mut whep = Router::new()
        .route("/whep/{name}", post(whep::create))
        .route("/whep/resource/{id}", delete(whep::delete))
        .route("/whip/{name}", post(whip::create))
        .route("/whip/{name}/{id}", delete(whip::delete));
    if let Some(cors) = cors(
        &ctx.settings.whep_allowed_origins,
        &[Method::POST, Method::DELETE],
    ) {
        whep = whep.layer(cors);
    }
    let http_app = Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/api/files", get(files))
        .route("/api/hls", get(hls_player))
        .merge(crate::admin::router(&ctx.settings))
        .merge(whep)
        .nest("/rest-api", rest_api)
        // A request body that stops coming ends the request (bodies are read whole).
        .layer(RequestBodyTimeoutLayer::new(ctx.settings.http_idle_timeout))
        .with_state(ctx.clone());
    // HLS on its own port (and over TLS on hls.https.port), with the same connection caps
    // as the others; a blocked playlist reload holds its connection's slot while it waits.
    let (hls_gate, hls_app) = (port_gate(&ctx.settings), crate::hls_http::app(ctx.clone()));
    let ws_app = Router::new()
        .fallback(get(ws_upgrade))
        .with_state(ctx.clone());
    let metrics = metrics.map(|listener| {
        let app = crate::admin::metrics_router().with_state(ctx.clone());
        (listener, port_gate(&ctx.settings), app)
    });

    let serving = tokio::spawn(async move {
        let mut servers = tokio::task::JoinSet::new();
        servers.spawn(http_conn::serve_tcp(
            http,
            http_gate,
            http_app.clone(),
            limits,
        ));
        servers.spawn(http_conn::serve_tcp(ws, ws_gate, ws_app.clone(), limits));
        if let Some((listener, gate, app)) = metrics {
            servers.spawn(http_conn::serve_tcp(listener, gate, app, limits));
        }
        if let Some(listener) = https {
            servers.spawn(tls::serve(listener, http_app, limits));
        }
        if let Some(listener) = wss {
            servers.spawn(tls::serve(listener, ws_app, limits));
        }
        if let Some(listener) = hls_https {
            servers.spawn(tls::serve(listener, hls_app.clone(), limits));
        }
        if let Some(listener) = hls {
            // Segments leave through pipes, not copied into the socket (`zero_copy`).
            let sender = crate::zero_copy::sender;
            servers.spawn(http_conn::serve_tcp_with(
                listener, hls_gate, hls_app, limits, sender,
            ));
        }
        // The servers run forever; one ending is a bug worth stopping for.
        if let Some(ended) = servers.join_next().await {
            ended.context("a listener task failed")?;
        }
        anyhow::bail!("a listener stopped accepting")
    });
    Ok((ports, serving, ctx))
}

/// Listens on `port` of `ip`; the error names the settings `key` that chose the port.
/// Bound to every address (`0.0.0.0` or `::`), the port takes IPv6 and IPv4 both on one
/// dual-stack socket, as the media port does (a client that reaches the media over IPv6
/// reaches the signalling and HLS too), or IPv4 alone on a host without IPv6.
fn bind_tcp(ip: IpAddr, port: u16, key: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = if ip.is_unspecified() {
        listen_tcp(ip, port, true).or_else(|e| {
            warn!("{key} {port} not bound on IPv6 and IPv4 both ({e}): trying IPv4 only");
            listen_tcp(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port, false)
        })
    } else {
        listen_tcp(ip, port, false)
    };
    listener.with_context(|| format!("cannot bind {key} {port}"))
}

/// How many ephemeral UDP ports are tried for one whose TCP twin is free too.
const EPHEMERAL_PAIR_TRIES: usize = 20;

/// The media port over UDP and, with ICE-TCP, the same number over TCP. With port 0 the
/// kernel picks the UDP port, and its TCP twin may be taken by another program: then
/// another UDP port is tried (a fixed port fails at once, saying which).
fn bind_media_ports(
    ip: IpAddr,
    port: u16,
    ice_tcp: bool,
) -> anyhow::Result<(tokio::net::UdpSocket, Option<tokio::net::TcpListener>)> {
    let tries = if port == 0 && ice_tcp {
        EPHEMERAL_PAIR_TRIES
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..tries {
        let udp = bind_media_port(ip, port)
            .with_context(|| format!("cannot bind WebRTC udp port {port}"))?;
        if !ice_tcp {
            return Ok((udp, None));
        }
        let media = udp.local_addr()?;
        match bind_ice_tcp(ip, media.port(), media.is_ipv6()) {
            Ok(listener) => return Ok((udp, Some(listener))),
            Err(e) => last_error = Some((media.port(), e)),
        }
    }
    let (port, e) = last_error.expect("at least one try");
    Err(anyhow::Error::new(e).context(format!(
        "cannot bind ICE-TCP tcp port {port} (set ice_tcp_transport=false to run without)"
    )))
}

/// The ICE-TCP listener: the media port's number over TCP, which is where WCS users'
/// firewalls already let media in (WCS serves WebRTC over TCP on its media ports). Bound
/// like the UDP port: on `ip`, or dual-stack on every address when the UDP port is.
fn bind_ice_tcp(ip: IpAddr, port: u16, v6: bool) -> std::io::Result<tokio::net::TcpListener> {
    listen_tcp(ip, port, ip.is_unspecified() && v6)
}

/// A TCP listener on `port` of `ip`, or with `dual_stack` on every IPv6 and IPv4 address.
fn listen_tcp(ip: IpAddr, port: u16, dual_stack: bool) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = if dual_stack {
        SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(ip, port)
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// The connection caps of one TCP port.
fn port_gate(settings: &Settings) -> Arc<Gate> {
    Gate::new(
        settings.http_max_connections,
        settings.http_max_connections_per_client,
    )
}

/// CORS for `origins` (none: no layer, so no CORS headers at all). Credentials are never
/// allowed from other origins: REST's Basic auth comes from scripts, not browser cookies.
fn cors(origins: &AllowedOrigins, methods: &[Method]) -> Option<CorsLayer> {
    let allow_origin = match origins {
        AllowedOrigins::None => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(methods.to_vec())
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            // A WHEP player reads where its session lives, and why a token was refused.
            .expose_headers([header::LOCATION, header::WWW_AUTHENTICATE]),
    )
}

async fn files(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let dir = ctx.settings.media_dir.clone();
    let list = tokio::task::spawn_blocking(move || list_media(&dir))
        .await
        .unwrap_or_default();
    Json(list)
}

/// What the demo page's HLS player needs: the HLS ports (the page builds the URL from its
/// own host name) and where to load hls.js from.
async fn hls_player(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let s = &ctx.settings;
    Json(serde_json::json!({
        "port": s.hls_port,
        "httpsPort": s.hls_https_port,
        "player": s.hls_player_url,
    }))
}

async fn ws_upgrade(
    upgrade: WebSocketUpgrade,
    State(ctx): State<Arc<ServerContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> impl IntoResponse {
    let max = ctx.settings.signalling_max_message_bytes;
    let upgrade = upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite's default 128 KiB read buffer per session was most of what an idle
        // session cost; WCS messages are small and a bigger one is read in steps.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0);
    match ctx.ws_sessions.admit(peer.ip()) {
        Ok(slot) => upgrade
            .on_upgrade(move |socket| wcs::serve_session(socket, ctx, peer.to_string(), slot)),
        Err(refused) => {
            info!(%peer, "WebSocket session refused: {refused}");
            let reason = format!("Session refused: {refused}");
            upgrade.on_upgrade(move |socket| wcs::refuse_session(socket, reason))
        }
    }
}

/// Bytes a WebSocket session reads from its socket at a time.
const WS_READ_BUFFER: usize = 4096;
