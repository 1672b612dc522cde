//! The operator's side of a running server: the `/health`, `/ready` and `/metrics`
//! endpoints on the HTTP port (`/metrics` on its own port instead with `metrics_port`;
//! behind `metrics_token` when set, else the REST auth), and the SIGTERM drain. Names, meanings and the drain's
//! steps: docs/OPERATIONS.md; the pieces below it are `health` (the readiness checks),
//! `metrics` (the metric set) and `shutdown` (the draining flag).
//!
//! Sits above the handlers (it reads the registry and sessions the way REST does) and
//! below `server`, which mounts the routes and runs [`on_signal`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::config::Settings;
use crate::context::ServerContext;
use crate::health::{check, Checks, Readiness, READY_CACHE};
use crate::media::StopReason;
use crate::metrics::{Gauges, RecordingCounts, METRICS};
use crate::record::{RecordStatus, RecordingInfo};
use crate::rest::auth;
use crate::stream::registry::PlayKind;

/// How often the drain looks whether everyone has gone.
const POLL: Duration = Duration::from_millis(50);

/// The routes of the HTTP app: `/health`, `/ready`, and `/metrics` unless
/// `metrics_port` gives it a port of its own ([`metrics_router`]).
pub fn router(settings: &Settings) -> Router<Arc<ServerContext>> {
    let router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    if settings.metrics_port.is_some() {
        router
    } else {
        router.merge(metrics_router())
    }
}

/// `/metrics` alone: the app of `metrics_port`.
pub fn metrics_router() -> Router<Arc<ServerContext>> {
    Router::new().route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn ready(State(ctx): State<Arc<ServerContext>>) -> Response {
    let readiness = {
        let mut cached = ctx.ready_cache.0.lock().await;
        match &*cached {
            Some((at, r)) if at.elapsed() < READY_CACHE => r.clone(),
            _ => {
                let r = check(&ctx.settings).await;
                *cached = Some((Instant::now(), r.clone()));
                r
            }
        }
    };
    // Draining is read on every call: a load balancer must see it at once.
    let readiness = if ctx.shutdown.is_draining() {
        Readiness {
            ready: false,
            checks: Checks {
                ports: "shutting down",
                ..readiness.checks
            },
        }
    } else {
        readiness
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /metrics`: behind `metrics_token` when set, else behind the REST Basic auth
/// when it is on.
async fn metrics(State(ctx): State<Arc<ServerContext>>, headers: HeaderMap) -> Response {
    if let Some(token) = &ctx.settings.metrics_token {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "Unauthorized: this server needs the metrics token (Authorization: Bearer) for /metrics",
            )
                .into_response();
        }
    } else if !auth::allowed(&ctx.settings, &headers) {
        return auth::with_basic_challenge(
            (
                StatusCode::UNAUTHORIZED,
                "Unauthorized: this server needs HTTP Basic credentials for /metrics",
            )
                .into_response(),
        );
    }
    let plays = ctx.registry.plays();
    let viewers = |protocol: &str| {
        plays
            .iter()
            .filter(|p| p.protocol.as_str() == protocol)
            .count()
    };
    let mut translations = ctx.registry.translations();
    translations.retain(|t| !t.door.is_ended());
    let now = Gauges {
        personal: plays
            .iter()
            .filter(|p| p.kind == PlayKind::Personal)
            .count(),
        translations: translations.len(),
        published: ctx.registry.publishers().len(),
        recordings: recording_counts(&ctx.registry.recordings()),
        hls_streams: translations
            .iter()
            .filter(|t| ctx.registry.hls.get(&t.id).is_some())
            .count(),
        draining: ctx.shutdown.is_draining(),
        wcs_viewers: viewers("wcs"),
        whep_viewers: viewers("whep"),
        hls_viewers: viewers("hls"),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.render(&now),
    )
        .into_response()
}

/// True when `headers` carry `Authorization: Bearer TOKEN` (scheme in any case) with
/// `token`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    given.is_some_and(|t| auth::constant_time_eq(t.as_bytes(), token.as_bytes()))
}

/// Waits for SIGTERM or SIGINT, then drains `ctx` within `grace` and returns. A second
/// signal while draining exits the process at once (status 1).
pub async fn on_signal(ctx: Arc<ServerContext>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    let grace = ctx.settings.shutdown_grace_period;
    tokio::select! {
        () = drain(&ctx, grace) => {}
        _ = term.recv() => exit_now("SIGTERM"),
        _ = int.recv() => exit_now("SIGINT"),
    }
    Ok(())
}

fn exit_now(signal: &str) -> ! {
    warn!("second {signal} while shutting down: exiting at once");
    std::process::exit(1)
}

/// Steps 1–4 of the module docs; returns when everyone has gone or after `grace`.
pub async fn drain(ctx: &ServerContext, grace: Duration) {
    ctx.shutdown.begin();
    let plays = ctx.registry.plays();
    let translations = ctx.registry.translations();
    info!(
        plays = plays.len(),
        translations = translations.len(),
        grace_ms = grace.as_millis() as u64,
        "stopping every stream"
    );
    for play in &plays {
        play.stopper.stop(StopReason::Shutdown);
    }
    for t in &translations {
        t.terminate(StopReason::Shutdown);
    }
    for p in ctx.registry.publishers() {
        p.terminate(StopReason::Shutdown);
    }
    let everyone_gone = async {
        // Recordings end with their streams and are finalized in the background: their
        // files must be complete before the process goes.
        while !ctx.registry.plays().is_empty()
            || !ctx.registry.publishers().is_empty()
            || ctx.ws_sessions.in_use() > 0
            || ctx.registry.recorder.unfinished() > 0
        {
            tokio::time::sleep(POLL).await;
        }
    };
    if tokio::time::timeout(grace, everyone_gone).await.is_ok() {
        info!("every stream stopped and every session closed: exiting");
    } else {
        warn!(
            plays = ctx.registry.plays().len(),
            sessions = ctx.ws_sessions.in_use(),
            recordings = ctx.registry.recorder.unfinished(),
            "shutdown_grace_period passed: exiting with these still open"
        );
    }
}

/// The recordings of running streams by state, for the `reelcast_recordings` gauge.
fn recording_counts(list: &[RecordingInfo]) -> RecordingCounts {
    let mut counts = RecordingCounts::default();
    for r in list {
        match r.status {
            RecordStatus::Recording => counts.recording += 1,
            RecordStatus::Finalizing => counts.finalizing += 1,
            RecordStatus::Failed(_) => counts.failed += 1,
            RecordStatus::Done => {}
        }
    }
    counts
}
