//! The key table: every setting reelcast reads, defined once.
//!
//! Owns: [`TABLE`], one [`Key`] per setting, in the order docs/CONFIGURATION.md lists
//! them: its name, the `Settings` field it fills, the [`Form`] its text has (how it
//! parses, what a wrong value is told, how it reads back), a one-line doc, an optional
//! dedicated command-line flag, and whether it is a secret. `Settings::set`/`get`, the
//! loader's environment mapping ([`env_var_name`]), the start-up summary, `Debug` and
//! the doc check (test `configuration_md_matches_the_table`) all read this table.
//! The default is the field's value in `Settings::default` (shown back through the
//! form), so it is written once too.
//!
//! # Adding a key
//! 1. a field in `Settings` (`settings.rs`) and its value in `Settings::default`;
//! 2. one entry here: `Key::new("my.key", field!(my_field: Form), "What it does.")`,
//!    plus `.flag("--my-flag")` when `main.rs` has a flag for it, `.secret()` when its
//!    value must never be shown. Pick the form in `values.rs` (or `s3.rs`); a new kind
//!    of value is a new `Form` there;
//! 3. its row in docs/CONFIGURATION.md: `cargo test -p reelcast configuration_md`
//!    fails and prints the expected row to paste (write the meaning in full there).
//!
//! The environment variable is derived from the name (`my.key` → `REELCAST_MY_KEY`).
//! `aws_s3_credentials.HOST` is not a row: its names are not fixed (`super::s3`).
//!
//! Must not: hold checks between keys (`load::check_combinations`) or read files.

use super::ladder::AbrLadder;
use super::record::{AudioCodecForm, PolicyForm, Template};
use super::s3::{Addressing, AllowedEndpoints, Credentials, Endpoint};
use super::settings::Settings;
use super::values::{
    Bool, ByteSize, Count, Form, HookSeconds, HookUrl, Ip, IpList, LogFormat, MessageBytes, Mib,
    Millis, MillisNumber, Opt, Origins, Path, Port, PositiveMillis, RestUsers, ScriptUrl, Token,
};

/// Prefix of the environment variables that set keys (`REELCAST_HTTP_PORT`).
pub const ENV_PREFIX: &str = "REELCAST_";

/// One settings key. Build with [`Key::new`] and the `field!` macro.
pub struct Key {
    /// The name in a properties file and in `--set` (WCS's where WCS has the key).
    pub name: &'static str,
    /// What it does, in one line (the full text is docs/CONFIGURATION.md's).
    pub doc: &'static str,
    /// A dedicated command-line flag of `reelcast serve`, besides `--set`.
    pub flag: Option<&'static str>,
    /// Never shown in logs, summaries or error messages.
    pub secret: bool,
    access: Access,
}

/// How a key reaches its `Settings` field; made by the `field!` macro.
pub struct Access {
    /// Parses trimmed text into the field; leaves the field as it was on error.
    pub set: fn(&mut Settings, &str) -> Result<(), &'static str>,
    /// The field's text form, as `set` reads it.
    pub get: fn(&Settings) -> String,
}

/// `field!(settings_field: Form)`: the [`Access`] that parses with `Form` into
/// `Settings::settings_field` and shows it back. The compiler checks that the form's
/// value type is the field's type.
macro_rules! field {
    ($field:ident : $form:ty) => {{
        fn set(s: &mut Settings, text: &str) -> Result<(), &'static str> {
            s.$field = <$form as Form>::parse(text)?;
            Ok(())
        }
        fn get(s: &Settings) -> String {
            <$form as Form>::show(&s.$field)
        }
        Access { set, get }
    }};
}

impl Key {
    /// A key that is neither secret nor has a dedicated flag.
    pub const fn new(name: &'static str, access: Access, doc: &'static str) -> Key {
        Key {
            name,
            doc,
            flag: None,
            secret: false,
            access,
        }
    }

    /// With the dedicated flag `flag` (which `main.rs` must define).
    #[must_use]
    pub const fn flag(mut self, flag: &'static str) -> Key {
        self.flag = Some(flag);
        self
    }

    /// A secret: its value is never shown.
    #[must_use]
    pub const fn secret(mut self) -> Key {
        self.secret = true;
        self
    }

    /// `REELCAST_` + the name upper-cased, `.` → `_`.
    pub fn env_var(&self) -> String {
        env_var_name(self.name)
    }

    /// Sets the field from trimmed text; on error the field is unchanged and the
    /// answer is what was expected.
    pub(super) fn set(&self, settings: &mut Settings, text: &str) -> Result<(), &'static str> {
        (self.access.set)(settings, text)
    }

    /// The field's value in its text form (`""` for an unset optional key).
    pub fn get(&self, settings: &Settings) -> String {
        (self.access.get)(settings)
    }

    /// The default in its text form.
    pub fn default_text(&self) -> String {
        self.get(&Settings::default())
    }
}

/// Every key, in the order docs/CONFIGURATION.md lists them.
pub static TABLE: &[Key] = &[
    Key::new(
        "media_dir",
        field!(media_dir: Path),
        "Folder the files of vod://NAME and vod-live://NAME are read from.",
    )
    .flag("--media-dir"),
    Key::new(
        "record_dir",
        field!(record_dir: Path),
        "Folder recordings are written to; vod://NAME looks here after media_dir.",
    ),
    Key::new(
        "record_streams",
        field!(record_streams: Bool),
        "true: every published stream is recorded (WCS's key).",
    ),
    Key::new(
        "record_audio_codec",
        field!(record_audio_codec: AudioCodecForm),
        "A recording's audio: aac (Opus re-encoded once) or opus (as it came).",
    ),
    Key::new(
        "stream_record_policy",
        field!(stream_record_policy: PolicyForm),
        "How recordings are named: template or streamName (WCS's key).",
    ),
    Key::new(
        "stream_record_policy_template",
        field!(stream_record_policy_template: Template),
        "A recording's file name with {fields} filled in (WCS's key).",
    ),
    Key::new(
        "on_record_hook_script",
        field!(on_record_hook_script: Opt<Path>),
        "Program run with the stream name and the file's path after a recording is complete.",
    ),
    Key::new(
        "http.port",
        field!(http_port: Port),
        "TCP port of the REST API (/rest-api/...).",
    )
    .flag("--http-port"),
    Key::new(
        "ws.port",
        field!(ws_port: Port),
        "TCP port of the WebSocket signalling the WCS browser SDK connects to.",
    )
    .flag("--ws-port"),
    Key::new(
        "media_port",
        field!(media_port: Opt<Port>),
        "The one UDP port every WebRTC viewer shares; not set: media_port_from.",
    )
    .flag("--media-port"),
    Key::new(
        "media_port_from",
        field!(media_port_from: Port),
        "First port of WCS's media port range; used when media_port is not set.",
    ),
    Key::new(
        "media_port_to",
        field!(media_port_to: Port),
        "Last port of WCS's media port range (checked, otherwise unused).",
    ),
    Key::new(
        "ice_tcp_transport",
        field!(ice_tcp_transport: Bool),
        "Also listen on the media port's number over TCP (ICE-TCP) for viewers whose network blocks UDP.",
    ),
    Key::new(
        "ip",
        field!(ip: IpList),
        "Addresses announced in ICE candidates, comma-separated.",
    )
    .flag("--ip"),
    Key::new(
        "ip_local",
        field!(ip_local: Ip),
        "Address the server binds its ports to.",
    ),
    Key::new(
        "vod_stream_timeout",
        field!(vod_stream_timeout: Millis),
        "Milliseconds a VOD stream stays up after its last viewer left.",
    ),
    Key::new(
        "vod_live_loop",
        field!(vod_live_loop: Bool),
        "true: a live translation restarts at the end of its file.",
    ),
    Key::new(
        "publisher_rtp_timeout",
        field!(publisher_rtp_timeout: PositiveMillis),
        "Milliseconds a WebRTC publisher may send no media before it fails (Failed by RTP activity).",
    ),
    Key::new(
        "publisher_start_bitrate",
        field!(publisher_start_bitrate: Count<u32>),
        "kbit/s a publishing Chromium starts its estimate at (x-google-start-bitrate); 300: its own.",
    ),
    Key::new(
        "hls.port",
        field!(hls_port: Opt<Port>),
        "TCP port serving live translations over HLS and LL-HLS (WCS: 8082); not set: no HLS.",
    ),
    Key::new(
        "hls_auto_start",
        field!(hls_auto_start: Bool),
        "true: a playlist request for a translation that is not running starts it.",
    ),
    Key::new(
        "hls_auth_enabled",
        field!(hls_auth_enabled: Bool),
        "true: HLS requests need ?token=, which the backend's /playHLS hook must allow.",
    ),
    Key::new(
        "hls_auth_token_cache",
        field!(hls_auth_token_cache: Count<u64>),
        "Seconds a /playHLS verdict is kept per token and stream.",
    ),
    Key::new(
        "hls_list_size",
        field!(hls_list_size: Count<usize>),
        "Segments an HLS playlist lists (and the server keeps in memory) per stream.",
    ),
    Key::new(
        "hls_target_duration",
        field!(hls_target_duration: PositiveMillis),
        "Milliseconds an HLS segment lasts at least (cut at the next keyframe after it).",
    ),
    Key::new(
        "ll_hls_part_target",
        field!(ll_hls_part_target: PositiveMillis),
        "Milliseconds an LL-HLS partial segment lasts at most.",
    ),
    Key::new(
        "hls_muxer_idle_timeout",
        field!(hls_muxer_idle_timeout: PositiveMillis),
        "Milliseconds a published stream's HLS muxer runs with no HLS request before it closes.",
    ),
    Key::new(
        "hls_abr_auto_start",
        field!(hls_abr_auto_start: Bool),
        "true: a request for NAME-HLS-ABR-STREAM starts NAME's ladder of renditions; false: no ABR.",
    ),
    Key::new(
        "hls_abr_ladder",
        field!(hls_abr_ladder: AbrLadder),
        "HEIGHT:KBPS renditions an HLS ABR playlist offers below its source's height.",
    ),
    Key::new(
        "hls_max_window_mb",
        field!(hls_max_window_mb: Count<u64>),
        "MiB one stream's HLS segments may hold in memory; the oldest leave first.",
    ),
    Key::new(
        "hls_player_url",
        field!(hls_player_url: ScriptUrl),
        "Where the demo page loads hls.js from (URL or /path); native HLS without MSE.",
    ),
    Key::new(
        "disable_rest_auth",
        field!(disable_rest_auth: Bool),
        "false turns on HTTP Basic authentication for the REST API.",
    ),
    Key::new(
        "rest_auth_users",
        field!(rest_auth_users: RestUsers),
        "Who may call REST when auth is on: user:password pairs, comma-separated.",
    )
    .secret(),
    Key::new(
        "https.cert",
        field!(https_cert: Opt<Path>),
        "PEM certificate chain for HTTPS and WSS.",
    ),
    Key::new(
        "https.key",
        field!(https_key: Opt<Path>),
        "PEM private key of https.cert.",
    ),
    Key::new(
        "https.port",
        field!(https_port: Port),
        "TCP port of the HTTP app over TLS; bound only with a certificate.",
    ),
    Key::new(
        "wss.port",
        field!(wss_port: Port),
        "TCP port of the WebSocket signalling over TLS; bound only with a certificate.",
    ),
    Key::new(
        "hls.https.port",
        field!(hls_https_port: Opt<Port>),
        "TCP port serving HLS over TLS (WCS: 8445); needs https.cert; not set: none.",
    ),
    Key::new(
        "keep_alive.server_interval",
        field!(keep_alive_server_interval: PositiveMillis),
        "Milliseconds between the server's pings on each WebSocket session.",
    ),
    Key::new(
        "keep_alive.probes",
        field!(keep_alive_probes: Count<u32>),
        "Server pings in a row a WebSocket session may leave unanswered.",
    ),
    Key::new(
        "ws.max_sessions",
        field!(ws_max_sessions: Count<usize>),
        "WebSocket sessions open at once, WS and WSS together.",
    ),
    Key::new(
        "ws.max_sessions_per_client",
        field!(ws_max_sessions_per_client: Count<usize>),
        "WebSocket sessions open at once from one IP address.",
    ),
    Key::new(
        "ws.max_streams_per_session",
        field!(ws_max_streams_per_session: Count<usize>),
        "Streams one WebSocket session may play at once.",
    ),
    Key::new(
        "max_publishers",
        field!(max_publishers: Count<usize>),
        "Streams that may be published at once (WCS SDK and WHIP together).",
    ),
    Key::new(
        "http.header_read_timeout",
        field!(http_header_read_timeout: PositiveMillis),
        "Milliseconds a client has to send a whole request head.",
    ),
    Key::new(
        "http.idle_timeout",
        field!(http_idle_timeout: PositiveMillis),
        "Milliseconds a request body or an answer may stall.",
    ),
    Key::new(
        "http.max_connections",
        field!(http_max_connections: Count<usize>),
        "Open TCP connections per port.",
    ),
    Key::new(
        "http.max_connections_per_client",
        field!(http_max_connections_per_client: Count<usize>),
        "Open TCP connections per port from one IP address.",
    ),
    Key::new(
        "rest_allowed_origins",
        field!(rest_allowed_origins: Origins),
        "Web origins whose pages may call REST from a browser (CORS).",
    ),
    Key::new(
        "whep_allowed_origins",
        field!(whep_allowed_origins: Origins),
        "Web origins whose pages may use WHEP from a browser (CORS).",
    ),
    // A hook URL may carry a user and password, or a token in its query.
    Key::new(
        "rest_hook_url",
        field!(rest_hook_url: Opt<HookUrl>),
        "The application's backend, asked /connect and /playStream (REST hooks).",
    )
    .secret(),
    Key::new(
        "disable_rest_requests",
        field!(disable_rest_requests: Bool),
        "true: no REST hooks are called even with rest_hook_url set.",
    ),
    Key::new(
        "rest_request_timeout",
        field!(rest_request_timeout: HookSeconds),
        "Seconds a REST hook's answer is awaited, 1 to 60 (0: 60).",
    ),
    Key::new(
        "ws.max_message_size",
        field!(signalling_max_message_bytes: MessageBytes),
        "Largest signalling message accepted, in bytes.",
    ),
    Key::new(
        "aws_s3_credentials",
        field!(aws_s3_credentials: Opt<Credentials>),
        "region;access_key_id;secret for every S3 endpoint without its own.",
    )
    .secret(),
    Key::new(
        "aws_s3_endpoint",
        field!(aws_s3_endpoint: Opt<Endpoint>),
        "Where vod://s3/BUCKET/KEY is fetched from; not set: AWS.",
    ),
    Key::new(
        "aws_s3_addressing",
        field!(aws_s3_addressing: Addressing),
        "How requests name the bucket: auto, path or virtual.",
    ),
    Key::new(
        "aws_s3_ca_file",
        field!(aws_s3_ca_file: Opt<Path>),
        "PEM CA certificates trusted for S3 endpoints, besides the system's.",
    ),
    Key::new(
        "aws_s3_allowed_endpoints",
        field!(aws_s3_allowed_endpoints: AllowedEndpoints),
        "The stores that names with a full URL may reach.",
    ),
    Key::new(
        "aws_s3_allow_private_addresses",
        field!(aws_s3_allow_private_addresses: Bool),
        "true: S3 requests may connect to loopback, private and other non-public addresses.",
    ),
    Key::new(
        "vod_mp4_container_new",
        field!(vod_mp4_container_new: Bool),
        "Accepted for WCS compatibility; no effect.",
    ),
    Key::new(
        "vod_mp4_container_new_buffer_ms",
        field!(vod_mp4_container_new_buffer_ms: MillisNumber),
        "Read-ahead for S3 objects, in milliseconds of media.",
    ),
    Key::new(
        "vod_index_memory_mb",
        field!(vod_index_memory_mb: Mib),
        "Memory all streams together may hold for fragmented files' sample indexes, in MiB.",
    ),
    Key::new(
        "transcoding_disabled",
        field!(transcoding_disabled: Bool),
        "true: files that need transcoding (HEVC, VP9, AV1, MPEG-4 Part 2, H.264 with B-frames) fail instead.",
    ),
    Key::new(
        "h264_b_frames_force_transcoding",
        field!(h264_b_frames_force_transcoding: Bool),
        "true: HLS of an H.264 file with B-frames carries the re-encode too, not the file's own pictures.",
    ),
    Key::new(
        "video_transcoders_max",
        field!(video_transcoders_max: Opt<Count<usize>>),
        "How many video transcodes may run at once; not set: no limit.",
    ),
    Key::new(
        "rendition_moves",
        field!(rendition_moves: Bool),
        "false: a viewer whose link is too narrow is only told so, never moved to a lower rendition.",
    ),
    Key::new(
        "transcode_cache_dir",
        field!(transcode_cache_dir: Path),
        "Folder a personal VOD's transcoded video is cached in (relative: inside record_dir); empty: no cache.",
    ),
    Key::new(
        "transcode_cache_max_size",
        field!(transcode_cache_max_size: ByteSize),
        "Most the transcode cache holds (bytes, or with K, M, G, T); least recently used go first.",
    ),
    Key::new(
        "shutdown_grace_period",
        field!(shutdown_grace_period: Millis),
        "Milliseconds viewers are given to end after SIGTERM before the process exits.",
    ),
    Key::new(
        "log_format",
        field!(log_format: LogFormat),
        "Form of the log lines: text or json (one object per line).",
    ),
    Key::new(
        "metrics_port",
        field!(metrics_port: Opt<Port>),
        "TCP port serving /metrics alone; not set: /metrics is on http.port.",
    ),
    Key::new(
        "metrics_token",
        field!(metrics_token: Opt<Token>),
        "Bearer token /metrics requires instead of the REST auth; not set: the REST auth.",
    )
    .secret(),
];

/// The key named exactly `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    TABLE.iter().find(|k| k.name == name)
}

/// The key that the dedicated command-line flag `flag` (`--http-port`) sets.
pub fn find_flag(flag: &str) -> Option<&'static Key> {
    TABLE.iter().find(|k| k.flag == Some(flag))
}

/// The key whose environment variable is `var`.
pub fn find_env(var: &str) -> Option<&'static Key> {
    TABLE.iter().find(|k| k.env_var() == var)
}

/// Every key's name, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|k| k.name)
}

/// `REELCAST_` + the key upper-cased with `.` turned to `_`: `http.port` → `REELCAST_HTTP_PORT`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Origin;

    #[test]
    fn every_key_round_trips() {
        let mut s = Settings::default();
        for key in names() {
            let text = s.get(key).expect("every listed key has a getter");
            assert_eq!(s.set(key, &text, &Origin::Default).unwrap(), key);
            assert_eq!(s, Settings::default(), "{key}");
        }
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name("media_dir"), "REELCAST_MEDIA_DIR");
        assert_eq!(env_var_name("http.port"), "REELCAST_HTTP_PORT");
        assert_eq!(
            env_var_name("keep_alive.server_interval"),
            "REELCAST_KEEP_ALIVE_SERVER_INTERVAL"
        );
    }

    /// Two keys that differ only in `.` against `_` would share a variable: the
    /// environment could then set only the first.
    #[test]
    fn every_key_has_its_own_environment_variable() {
        for key in TABLE {
            let found = find_env(&key.env_var()).map(|k| k.name);
            assert_eq!(found, Some(key.name), "{}", key.env_var());
        }
    }

    /// Refused or accepted, a secret key's value shows nowhere: not in the error, not
    /// in `Debug`.
    #[test]
    fn no_secret_value_is_shown() {
        const MARK: &str = "zzsecretzz";
        let o = Origin::Default;
        let secrets: Vec<&Key> = TABLE.iter().filter(|k| k.secret).collect();
        assert!(!secrets.is_empty(), "the table marks the secrets");
        for key in secrets {
            let mut s = Settings::default();
            if let Err(e) = s.set(key.name, &format!("{MARK};{MARK}"), &o) {
                assert!(!e.to_string().contains(MARK), "{}: {e}", key.name);
            }
            let good = match key.name {
                "rest_auth_users" => format!("admin:{MARK}"),
                "rest_hook_url" => format!("http://u:{MARK}@backend/x"),
                _ => format!("region;key;{MARK}"),
            };
            s.set(key.name, &good, &o).expect("a valid value");
            assert!(!format!("{s:?}").contains(MARK), "{}: {s:?}", key.name);
        }
    }

    /// The key cells of one row of docs/CONFIGURATION.md's key table.
    #[derive(Debug)]
    struct DocRow {
        key: String,
        default: String,
        env: String,
        flag: String,
    }

    /// The rows of the table under `## Keys`: `| key | default | meaning | env | flag |`
    /// (the meaning, free prose, is not checked and may hold `|`).
    fn doc_rows(md: &str) -> Vec<DocRow> {
        let section = md
            .split("\n## Keys\n")
            .nth(1)
            .expect("docs/CONFIGURATION.md has a `## Keys` section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                assert!(cells.len() >= 5, "a key row has 5 cells: {line}");
                DocRow {
                    key: cells[0].trim_matches('`').to_string(),
                    default: cells[1].to_string(),
                    env: cells[cells.len() - 2].to_string(),
                    flag: cells[cells.len() - 1].to_string(),
                }
            })
            .collect()
    }

    /// The default cell: `` `text` ``, or `not set` for an empty default.
    fn default_cell(key: &Key) -> String {
        match key.default_text() {
            text if text.is_empty() => "not set".to_string(),
            text => format!("`{text}`"),
        }
    }

    /// What the flag cell starts with: the dedicated flag, else `--set KEY=`.
    fn flag_cell_start(key: &Key) -> String {
        match key.flag {
            Some(flag) => format!("`{flag} "),
            None => format!("`--set {}=", key.name),
        }
    }

    /// A row to paste (the meaning is the one-line doc: write it in full there).
    fn expected_row(key: &Key) -> String {
        let flag = match key.flag {
            Some(flag) => format!("`{flag} VALUE`"),
            None => format!("`--set {}=VALUE`", key.name),
        };
        format!(
            "| `{}` | {} | {} | `{}` | {flag} |",
            key.name,
            default_cell(key),
            key.doc,
            key.env_var()
        )
    }

    #[test]
    fn configuration_md_matches_the_table() {
        use crate::config::s3::HOST_CREDENTIALS_DOC_KEY;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIGURATION.md");
        let md = std::fs::read_to_string(path).expect("docs/CONFIGURATION.md is readable");
        let rows = doc_rows(&md);
        let mut problems = Vec::new();
        let mut wrong_rows = Vec::new();
        for key in TABLE {
            let Some(row) = rows.iter().find(|r| r.key == key.name) else {
                problems.push(format!("`{}` is not documented", key.name));
                wrong_rows.push(expected_row(key));
                continue;
            };
            let (default, env) = (default_cell(key), format!("`{}`", key.env_var()));
            let flag = flag_cell_start(key);
            let mismatches = [
                (
                    "default",
                    row.default != default,
                    &row.default,
                    default.clone(),
                ),
                (
                    "environment variable",
                    row.env != env,
                    &row.env,
                    env.clone(),
                ),
                (
                    "flag",
                    !row.flag.starts_with(&flag),
                    &row.flag,
                    format!("{flag}...`"),
                ),
            ];
            for (what, differs, documented, real) in &mismatches {
                if *differs {
                    problems.push(format!(
                        "`{}`: documented {what} {documented}, real {real}",
                        key.name
                    ));
                }
            }
            if mismatches.iter().any(|m| m.1) {
                wrong_rows.push(expected_row(key));
            }
        }
        for row in &rows {
            if row.key == HOST_CREDENTIALS_DOC_KEY {
                let as_expected = row.default == "not set" && row.env == "(none: file or flag)";
                if !as_expected {
                    problems.push(format!("`{}`: {row:?}", row.key));
                }
            } else if find(&row.key).is_none() {
                problems.push(format!("`{}` is documented but is no key", row.key));
            }
        }
        if !rows.iter().any(|r| r.key == HOST_CREDENTIALS_DOC_KEY) {
            problems.push(format!("`{HOST_CREDENTIALS_DOC_KEY}` is not documented"));
        }
        let documented: Vec<&str> = rows
            .iter()
            .map(|r| r.key.as_str())
            .filter(|k| find(k).is_some())
            .collect();
        let table: Vec<&str> = names().collect();
        if problems.is_empty() && documented != table {
            problems.push("the rows are not in keys::TABLE's order".to_string());
            wrong_rows = TABLE.iter().map(expected_row).collect();
        }
        assert!(
            problems.is_empty(),
            "docs/CONFIGURATION.md's key table disagrees with keys::TABLE:\n- {}\n\n\
             Rows to paste (then write each meaning in full):\n{}\n",
            problems.join("\n- "),
            wrong_rows.join("\n")
        );
    }
}
