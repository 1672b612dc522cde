//! Where log lines go and in what form: `log_format=text` (the default, for people) or
//! `json` (one JSON object per line, for Loki, Elasticsearch, journald's readers).
//!
//! A JSON line carries `timestamp`, `level`, `target`, the event's `message` and fields at
//! the top level, and the spans it happened in: `span` (the innermost) and `spans` (all,
//! outermost first), whose fields name the stream and viewer (`stream`, `viewer`, `peer`),
//! so one viewer's story can be filtered out. The text form shows the same spans as
//! `vod{stream=vod://a.mp4 viewer=3}:`.
//!
//! Owns: the subscriber set-up. Must not: decide what is logged; secrets are kept out at
//! the source (settings print `<hidden>`, credentials are never formatted), and
//! `tests/e2e/logs.test.mjs` greps a debug run for them.

use tracing_subscriber::EnvFilter;

pub use crate::config::LogFormat;

/// Installs the process's subscriber: `RUST_LOG` if set (e.g. `RUST_LOG=reelcast=debug`),
/// else `info`, to stderr in `format`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
