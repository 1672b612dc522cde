//! Health checks for load balancers and orchestrators, on the HTTP port, unauthenticated
//! (a probe carries no credentials) and saying nothing about the host:
//!
//! - `GET /health`: `200 {"status":"alive"}` while the process answers requests.
//! - `GET /ready`: `200` when the server can take plays, else `503`, with each check:
//!   `ports` (every port bound; `shutting down` once SIGTERM came), `media_dir` (the
//!   folder can be listed), `s3_endpoint` (only when `aws_s3_endpoint` or per-host S3
//!   credentials are set: each such host resolves in DNS).
//!
//! Owns: the checks and their cache. Lookups and a directory listing cost something, and
//! anyone may call `/ready`, so its answer is kept [`READY_CACHE`] and one check runs at a
//! time: a client hammering `/ready` costs a mutex, not DNS traffic.
//! Must not: name paths, hosts or addresses in its answer (only "ok" or a fixed reason).

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::Settings;

/// How long a `/ready` answer is reused.
pub const READY_CACHE: Duration = Duration::from_secs(2);
/// Longest wait for one DNS lookup of an S3 endpoint.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The last `/ready` answer, shared by every request.
#[derive(Default)]
pub struct ReadyCache(pub Mutex<Option<(Instant, Readiness)>>);

/// What `/ready` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// Every check passed (and the server is not shutting down).
    pub ready: bool,
    /// Each check's word: `ok` or what is wrong, never a path or host.
    pub checks: Checks,
}

/// What each readiness check found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Checks {
    /// The ports are bound (or `shutting down`).
    pub ports: &'static str,
    /// `media_dir` can be read.
    pub media_dir: &'static str,
    /// Every configured S3 store's host resolves (absent without S3 settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<&'static str>,
}

const OK: &str = "ok";

/// Runs the checks. Ports are bound before anything is served, so a server that answers
/// has them.
pub async fn check(settings: &Settings) -> Readiness {
    let dir = settings.media_dir.clone();
    let media_dir = match tokio::task::spawn_blocking(move || std::fs::read_dir(dir).is_ok()).await
    {
        Ok(true) => OK,
        _ => "not readable",
    };
    let hosts = s3_hosts(settings);
    let s3_endpoint = if hosts.is_empty() {
        None
    } else {
        let mut all = true;
        for host in hosts {
            all &= resolves(&host).await;
        }
        Some(if all { OK } else { "not resolvable" })
    };
    Readiness {
        ready: media_dir == OK && s3_endpoint.is_none_or(|s| s == OK),
        checks: Checks {
            ports: OK,
            media_dir,
            s3_endpoint,
        },
    }
}

/// `host:port` of every S3 store the operator configured by name.
fn s3_hosts(settings: &Settings) -> Vec<String> {
    let mut hosts = Vec::new();
    if let Some(endpoint) = settings
        .aws_s3_endpoint
        .as_deref()
        .and_then(|e| url::Url::parse(e).ok())
    {
        if let (Some(host), Some(port)) = (endpoint.host_str(), endpoint.port_or_known_default()) {
            hosts.push(format!("{host}:{port}"));
        }
    }
    for host in settings.aws_s3_host_credentials.keys() {
        // Keyed `host` or `host:port`; a port only matters to the lookup's form.
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !host.starts_with('[')
        {
            host.clone()
        } else {
            format!("{host}:443")
        };
        hosts.push(with_port);
    }
    hosts
}

async fn resolves(host_port: &str) -> bool {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(host_port)).await {
        Ok(Ok(mut addrs)) => addrs.next().is_some(),
        _ => false,
    }
}
