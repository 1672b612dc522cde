//! The WCS REST API on `http.port` (and `https.port`): `POST /rest-api/...` with a JSON
//! body, JSON answers, the methods, fields and codes existing WCS scripts rely on.
//!
//! - `vod`: `/vod/startup`, `/vod/find`, `/vod/find_all`, `/vod/terminate` (personal
//!   VODs and live translations);
//! - `stream`: `/stream/find`, `/stream/find_all`, `/stream/terminate` (every
//!   translation, as a published stream, and every viewer, as a play stream);
//! - `recorder`: `/stream/startRecording`, `/stream/stopRecording`, their `/recorder/*`
//!   aliases and `/recorder/find_all`;
//! - `json`: strict request bodies and the `{"status", "error"}` answers;
//! - `auth`: HTTP Basic auth when `disable_rest_auth=false`.
//!
//! `GET /rest-api/openapi.json` serves `docs/openapi.json`, which describes all of it
//! (tests check real answers against it). Must not: own any stream; everything here
//! reads the [`Registry`] and asks streams to start or stop through their handles.

pub mod auth;
pub mod json;
pub mod recorder;
pub mod stream;
pub mod vod;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::handler::Handler;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::context::ServerContext;
use crate::media::StopReason;
use crate::stream::live::TranslationHandle;
use crate::stream::published::PublishedHandle;
use crate::stream::Registry;
use json::{method_not_allowed, RestError};

/// The OpenAPI 3.1 document of this API, built into the binary.
pub const OPENAPI_JSON: &str = include_str!("../../../../docs/openapi.json");

/// Every REST method, as routed under `/rest-api` (the OpenAPI document lists the same).
pub const METHODS: &[&str] = &[
    "/vod/startup",
    "/vod/find",
    "/vod/find_all",
    "/vod/terminate",
    "/stream/find",
    "/stream/find_all",
    "/stream/terminate",
    "/stream/startRecording",
    "/stream/stopRecording",
    "/recorder/startup",
    "/recorder/terminate",
    "/recorder/find_all",
];

/// What a viewer stopped by `/vod/terminate` or `/stream/terminate` is told.
pub const TERMINATE_REASON: StopReason = StopReason::RestTerminate;

/// How long a terminate waits for what it stopped to leave the registry, so that a
/// `find` right after its `200` no longer lists it.
const TERMINATE_SETTLE: Duration = Duration::from_secs(3);

/// The router to nest at `/rest-api`: every method (auth applied when on), the OpenAPI
/// document (public: it holds no data), JSON `404` for unknown paths.
pub fn router(ctx: Arc<ServerContext>) -> Router<Arc<ServerContext>> {
    let methods = Router::new()
        .route("/vod/startup", method(vod::startup))
        .route("/vod/find", method(vod::find))
        .route("/vod/find_all", method(vod::find_all))
        .route("/vod/terminate", method(vod::terminate))
        .route("/stream/find", method(stream::find))
        .route("/stream/find_all", method(stream::find_all))
        .route("/stream/terminate", method(stream::terminate))
        .route("/stream/startRecording", method(recorder::start))
        .route("/stream/stopRecording", method(recorder::stop))
        .route("/recorder/startup", method(recorder::start))
        .route("/recorder/terminate", method(recorder::stop))
        .route("/recorder/find_all", method(recorder::find_all))
        .fallback(unknown_method)
        // `layer`, not `route_layer`: the fallback is checked too.
        .layer(axum::middleware::from_fn_with_state(
            ctx,
            auth::require_basic_auth,
        ));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(methods)
}

/// A REST method: POST only; anything else answers `405`.
fn method<H, T>(handler: H) -> MethodRouter<Arc<ServerContext>>
where
    H: Handler<T, Arc<ServerContext>>,
    T: 'static,
{
    post(handler).fallback(method_not_allowed)
}

/// Unknown paths: `404` after the auth check (so auth on hides which methods exist).
async fn unknown_method(uri: Uri) -> RestError {
    // Nesting strips the prefix from `uri`.
    RestError::not_found(format!("Unknown REST method /rest-api{}", uri.path()))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Something a REST call can stop: a live translation, or one viewer's play.
#[derive(Clone)]
pub(crate) enum Running {
    Translation(TranslationHandle),
    /// A published stream (its publisher and, through it, its viewers).
    Published(PublishedHandle),
    /// A play, by its media session id.
    Play(String),
}

impl Running {
    /// Asks it to stop; viewers get STOPPED with [`TERMINATE_REASON`].
    fn stop(&self, registry: &Registry) {
        match self {
            Running::Translation(t) => t.terminate(TERMINATE_REASON),
            Running::Published(p) => p.terminate(TERMINATE_REASON),
            Running::Play(id) => {
                registry.stop_play(id, None, TERMINATE_REASON);
            }
        }
    }

    /// True while the registry still lists it (or, for a translation, one of its viewers).
    fn listed(&self, registry: &Registry) -> bool {
        match self {
            Running::Translation(t) => {
                registry.translation(&t.name).is_some_and(|r| r.id == t.id)
                    || registry.plays().iter().any(|p| {
                        matches!(&p.kind, crate::stream::registry::PlayKind::Live { translation }
                            if *translation == t.name)
                    })
            }
            Running::Published(p) => {
                registry.published(&p.name).is_some_and(|r| r.key == p.key)
                    || registry.plays().iter().any(|v| {
                        matches!(&v.kind, crate::stream::registry::PlayKind::Published { stream }
                            if *stream == p.name)
                    })
            }
            Running::Play(id) => registry.play(id).is_some(),
        }
    }
}

/// Stops everything in `targets`, then waits (a little) until the registry has let go
/// of it. Stream tasks remove themselves; this only waits for them to have done so.
pub(crate) async fn stop_all(registry: &Registry, targets: &[Running]) {
    for target in targets {
        target.stop(registry);
    }
    let deadline = Instant::now() + TERMINATE_SETTLE;
    while Instant::now() < deadline && targets.iter().any(|t| t.listed(registry)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Milliseconds since the Unix epoch (`createDate`); 0 for a clock before 1970.
pub(crate) fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_exactly_the_routed_methods() {
        let doc: serde_json::Value =
            serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths is an object");
        let mut documented: Vec<&str> = paths
            .keys()
            .filter_map(|p| p.strip_prefix("/rest-api"))
            .filter(|p| *p != "/openapi.json")
            .collect();
        documented.sort_unstable();
        let mut routed = METHODS.to_vec();
        routed.sort_unstable();
        assert_eq!(documented, routed);
        for m in METHODS {
            let op = &paths[&format!("/rest-api{m}")]["post"];
            for code in ["200", "401"] {
                assert!(op["responses"][code].is_object(), "{m} documents {code}");
            }
        }
    }

    #[test]
    fn epoch_ms_counts_from_1970() {
        assert_eq!(epoch_ms(SystemTime::UNIX_EPOCH), 0);
        assert_eq!(
            epoch_ms(SystemTime::UNIX_EPOCH + Duration::from_millis(1234)),
            1234
        );
    }
}
