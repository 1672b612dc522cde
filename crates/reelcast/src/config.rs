//! Server settings, under the key names of Flashphoner WCS's `flashphoner.properties`.
//!
//! Owns: the [`Settings`] every other module reads, their built-in defaults, and how
//! they are layered from four sources, later wins:
//!
//! 1. built-in defaults ([`Settings::default`]);
//! 2. a Java properties file (`--config FILE`, else `./flashphoner.properties` when it
//!    exists), parsed by [`parse_properties`];
//! 3. environment variables `REELCAST_<KEY>` (key upper-cased, `.` → `_`, see
//!    [`env_var_name`]);
//! 4. command-line flags (`--http-port`, `--set KEY=VALUE`, ...), given as [`Override`]s.
//!
//! A WCS properties file holds many keys reelcast does not use: those are ignored with
//! one debug log line each, never an error. A value that is wrong fails the start with
//! a message that names the key, the value and where it came from ([`Origin`]). An
//! empty value (`http.port=`) means "the built-in default" (for optional keys: unset).
//!
//! Must not: open sockets, start anything, or read media. Checking that `media_dir`
//! exists is the one file-system look it takes, so that a wrong folder fails at start.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logging::LogFormat;
use crate::source::s3::allowed::{self, AllowedEndpoint};

/// The file read when no `--config` is given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "flashphoner.properties";

/// Prefix of the environment variables that set keys (`REELCAST_HTTP_PORT`).
pub const ENV_PREFIX: &str = "REELCAST_";

/// Every key reelcast understands, in the order the documentation lists them.
pub const KEYS: &[&str] = &[
    "media_dir",
    "http.port",
    "ws.port",
    "media_port",
    "media_port_from",
    "media_port_to",
    "ip",
    "ip_local",
    "vod_stream_timeout",
    "vod_live_loop",
    "disable_rest_auth",
    "rest_auth_users",
    "https.port",
    "wss.port",
    "https.cert",
    "https.key",
    "keep_alive.server_interval",
    "keep_alive.probes",
    "ws.max_message_size",
    "ws.max_sessions",
    "ws.max_sessions_per_client",
    "http.header_read_timeout",
    "http.idle_timeout",
    "http.max_connections",
    "http.max_connections_per_client",
    "rest_allowed_origins",
    "whep_allowed_origins",
    "rest_hook_url",
    "disable_rest_requests",
    "rest_request_timeout",
    "aws_s3_credentials",
    "aws_s3_endpoint",
    "aws_s3_addressing",
    "aws_s3_ca_file",
    "aws_s3_allowed_endpoints",
    "aws_s3_allow_private_addresses",
    "vod_mp4_container_new",
    "vod_mp4_container_new_buffer_ms",
    "vod_index_memory_mb",
    "shutdown_grace_period",
    "log_format",
];

/// Keys whose value is a secret: never shown in logs, summaries or error messages.
const SECRET_KEYS: &[&str] = &[
    "aws_s3_credentials",
    HOST_CREDENTIALS_KEY,
    "rest_auth_users",
    // A hook URL may carry a user and password, or a token in its query.
    "rest_hook_url",
];

/// `aws_s3_credentials.HOST[:PORT]=region;key;secret`: credentials for one S3 endpoint.
/// The one key family whose names are not fixed; recorded in [`Loaded::origins`] under
/// this name.
pub const HOST_CREDENTIALS_KEY: &str = "aws_s3_credentials.<host>";
const HOST_CREDENTIALS_PREFIX: &str = "aws_s3_credentials.";

/// Smallest accepted `ws.max_message_size`: a browser's SDP offer alone is a few KiB.
const MIN_MESSAGE_BYTES: usize = 4096;

/// The server's settings. Build with [`Settings::default`] and adjust fields (tests),
/// or [`load`] them from the user's sources (the binary).
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `media_dir`: the folder `vod://NAME` and `vod-live://NAME` are read from.
    pub media_dir: PathBuf,
    /// `http.port`: REST API (`/rest-api/...`).
    pub http_port: u16,
    /// `ws.port`: WebSocket signalling, where the WCS browser SDK connects.
    pub ws_port: u16,
    /// `media_port`: the one UDP port every WebRTC viewer shares. `None`: the first port
    /// of `media_port_from`–`media_port_to` (see [`Settings::udp_port`]).
    pub media_port: Option<u16>,
    /// `media_port_from`: first port of WCS's media port range, which a WCS firewall
    /// opens; reelcast takes this one port of it when `media_port` is not set.
    pub media_port_from: u16,
    /// `media_port_to`: last port of that range (checked, not used: one port is enough).
    pub media_port_to: u16,
    /// `ip`: the addresses announced in ICE candidates (e.g. the public one behind NAT,
    /// a private one, an IPv6 one), each a candidate. Empty: see `webrtc::announce`.
    pub ip: Vec<IpAddr>,
    /// `ip_local`: the address the server binds to.
    pub ip_local: IpAddr,
    /// `vod_stream_timeout`: how long a VOD stream stays up after its last viewer left.
    pub vod_stream_timeout: Duration,
    /// `vod_live_loop`: a live translation restarts at the end of its file.
    pub vod_live_loop: bool,
    /// `disable_rest_auth`: `false` turns on HTTP Basic auth for REST.
    pub disable_rest_auth: bool,
    /// `rest_auth_users`: who may call REST when auth is on, as `user:password` pairs
    /// (the text form is `admin:secret,ops:pw2`). A secret: never logged.
    pub rest_auth_users: Vec<RestUser>,
    /// `https.port`: the HTTP app (page, WHEP, REST) over TLS; bound only with a certificate.
    pub https_port: u16,
    /// `wss.port`: WCS WebSocket signalling over TLS; bound only with a certificate.
    pub wss_port: u16,
    /// `https.cert`: PEM certificate chain (server certificate first) for HTTPS and WSS.
    pub https_cert: Option<PathBuf>,
    /// `https.key`: the PEM private key of `https.cert`.
    pub https_key: Option<PathBuf>,
    /// `keep_alive.server_interval`: how often the server pings each WebSocket session.
    pub keep_alive_server_interval: Duration,
    /// `keep_alive.probes`: server pings in a row a WebSocket session may leave
    /// unanswered; at the next ping time it is closed and its streams end.
    pub keep_alive_probes: u32,
    /// `ws.max_message_size`: largest signalling message accepted, in bytes.
    pub signalling_max_message_bytes: usize,
    /// `ws.max_sessions`: WebSocket sessions open at once, in total (WS and WSS).
    pub ws_max_sessions: usize,
    /// `ws.max_sessions_per_client`: WebSocket sessions open at once from one address.
    pub ws_max_sessions_per_client: usize,
    /// `http.header_read_timeout`: a request's head must arrive within this, and a
    /// kept-alive connection is closed after this long without a next request.
    pub http_header_read_timeout: Duration,
    /// `http.idle_timeout`: longest wait for the next piece of a request body, or for a
    /// client to take the next bytes of an answer.
    pub http_idle_timeout: Duration,
    /// `http.max_connections`: open TCP connections per port (each of http, ws, https, wss).
    pub http_max_connections: usize,
    /// `http.max_connections_per_client`: open TCP connections per port from one address.
    pub http_max_connections_per_client: usize,
    /// `rest_allowed_origins`: web origins whose pages may call REST from a browser
    /// (CORS). Empty: none (no CORS headers); `*`: any.
    pub rest_allowed_origins: AllowedOrigins,
    /// `whep_allowed_origins`: web origins whose pages may use WHEP from a browser.
    pub whep_allowed_origins: AllowedOrigins,
    /// `rest_hook_url`: the application's backend, asked `/connect` and `/playStream`
    /// before a session or play goes on ([`crate::hooks`]). `None`: no hooks.
    pub rest_hook_url: Option<String>,
    /// `disable_rest_requests`: `true` calls no hooks even with `rest_hook_url` set.
    pub disable_rest_requests: bool,
    /// `rest_request_timeout`: how long a hook's answer is awaited (WCS: seconds).
    pub rest_request_timeout: Duration,
    /// `aws_s3_credentials`: `region;access_key_id;secret`, for every S3 endpoint that
    /// has no credentials of its own. A secret: never logged.
    pub aws_s3_credentials: Option<S3Credentials>,
    /// `aws_s3_credentials.HOST[:PORT]`: credentials for one endpoint, keyed by the
    /// lower-cased host as written (`nyc3.digitaloceanspaces.com`, `127.0.0.1:9000`).
    pub aws_s3_host_credentials: BTreeMap<String, S3Credentials>,
    /// `aws_s3_endpoint`: where `vod://s3/BUCKET/KEY` (no URL in the name) is fetched
    /// from, `http[s]://host[:port]`. `None`: AWS, `https://s3.REGION.amazonaws.com`.
    pub aws_s3_endpoint: Option<String>,
    /// `aws_s3_addressing`: path-style or virtual-host-style requests.
    pub aws_s3_addressing: S3Addressing,
    /// `aws_s3_ca_file`: PEM CA certificates trusted for S3 endpoints over HTTPS, next
    /// to the system's (a store with a private or self-signed CA).
    pub aws_s3_ca_file: Option<PathBuf>,
    /// `aws_s3_allowed_endpoints`: the stores that names with a full URL
    /// (`vod://s3/https://host/...`) may reach, besides `aws_s3_endpoint` and the hosts
    /// with their own credentials (see `source::s3::allowed`).
    pub aws_s3_allowed_endpoints: Vec<AllowedEndpoint>,
    /// `aws_s3_allow_private_addresses`: S3 requests may connect to loopback, private,
    /// link-local and other non-public addresses.
    pub aws_s3_allow_private_addresses: bool,
    /// `vod_mp4_container_new`: play an S3 file while it is still downloading.
    pub vod_mp4_container_new: bool,
    /// `vod_mp4_container_new_buffer_ms`: read-ahead for that, in ms of media.
    pub vod_mp4_container_new_buffer_ms: u64,
    /// `vod_index_memory_mb`: memory all streams together may hold for the in-memory
    /// sample indexes of fragmented files (`stream::budget`), in MiB.
    pub vod_index_memory_mb: u64,
    /// `shutdown_grace_period` (reelcast's own; WCS has none): after SIGTERM, how long
    /// viewers' streams and sessions are given to end before the process exits anyway.
    pub shutdown_grace_period: Duration,
    /// `log_format` (reelcast's own): `text` or `json` lines ([`crate::logging`]).
    pub log_format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            media_dir: PathBuf::from("./media"),
            http_port: 8081,
            ws_port: 8080,
            media_port: None,
            media_port_from: 31001,
            media_port_to: 32000,
            ip: Vec::new(),
            ip_local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            vod_stream_timeout: Duration::from_millis(30_000),
            vod_live_loop: false,
            disable_rest_auth: true,
            rest_auth_users: Vec::new(),
            https_port: 8444,
            wss_port: 8443,
            https_cert: None,
            https_key: None,
            keep_alive_server_interval: Duration::from_millis(5_000),
            keep_alive_probes: 5,
            signalling_max_message_bytes: 1024 * 1024,
            ws_max_sessions: 10_000,
            ws_max_sessions_per_client: 100,
            http_header_read_timeout: Duration::from_millis(10_000),
            http_idle_timeout: Duration::from_millis(30_000),
            http_max_connections: 10_000,
            http_max_connections_per_client: 256,
            rest_allowed_origins: AllowedOrigins::None,
            whep_allowed_origins: AllowedOrigins::Any,
            rest_hook_url: None,
            disable_rest_requests: false,
            rest_request_timeout: Duration::from_secs(15),
            aws_s3_credentials: None,
            aws_s3_host_credentials: BTreeMap::new(),
            aws_s3_endpoint: None,
            aws_s3_addressing: S3Addressing::Auto,
            aws_s3_ca_file: None,
            aws_s3_allowed_endpoints: Vec::new(),
            aws_s3_allow_private_addresses: false,
            vod_mp4_container_new: false,
            vod_mp4_container_new_buffer_ms: 10_000,
            vod_index_memory_mb: 256,
            shutdown_grace_period: Duration::from_millis(10_000),
            log_format: LogFormat::Text,
        }
    }
}

/// Debug shows every key but never the secret ones.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Settings");
        for key in KEYS {
            // Every entry of KEYS is answered by `get` (test `every_key_round_trips`).
            let value = self.shown_value(key).unwrap_or_default();
            d.field(key, &value);
        }
        for host in self.aws_s3_host_credentials.keys() {
            d.field(&format!("{HOST_CREDENTIALS_PREFIX}{host}"), &"<hidden>");
        }
        d.finish()
    }
}

/// One REST user (`rest_auth_users`). Debug hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RestUser {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for RestUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RestUser({}:<hidden>)", self.name)
    }
}

/// Parses `rest_auth_users`: `user:password` pairs separated by commas. A name may not
/// hold `:` (Basic auth splits there); a password may, but not `,`. Names are unique.
pub fn parse_rest_users(value: &str) -> Result<Vec<RestUser>, &'static str> {
    const EXPECTED: &str = "expected user:password pairs separated by commas, e.g. admin:secret,ops:pw2 (no empty names or passwords, no name twice)";
    let mut users: Vec<RestUser> = Vec::new();
    for pair in value.split(',') {
        let (name, password) = pair.trim().split_once(':').ok_or(EXPECTED)?;
        if name.is_empty() || password.is_empty() || users.iter().any(|u| u.name == name) {
            return Err(EXPECTED);
        }
        users.push(RestUser {
            name: name.to_string(),
            password: password.to_string(),
        });
    }
    Ok(users)
}

/// Where a value came from; named in every error so the user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it.
    Default,
    /// A properties file, with the line the entry starts on (1-based).
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env { var: String },
    /// A command-line flag (`--http-port`, `--set`).
    Flag { flag: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File { path, line } => write!(f, "{} line {line}", path.display()),
            Origin::Env { var } => write!(f, "environment {var}"),
            Origin::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

/// Why the settings could not be loaded. Each message is one plain line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {reason}", path.display())]
    ReadFile { path: PathBuf, reason: String },
    #[error("invalid value \"{value}\" for {key} (from {origin}): {expected}")]
    InvalidValue {
        key: String,
        /// The value as given, or `<hidden>` for secret keys.
        value: String,
        origin: Origin,
        expected: String,
    },
    #[error("unknown setting \"{key}\" (from {origin}); known settings: {}", KEYS.join(", "))]
    UnknownKey { key: String, origin: Origin },
    #[error("invalid {flag} argument \"{arg}\": expected KEY=VALUE")]
    BadOverride { flag: String, arg: String },
    #[error(
        "media_dir {} (from {origin}) does not exist; set media_dir in the properties \
         file, REELCAST_MEDIA_DIR or --media-dir",
        path.display()
    )]
    MediaDirMissing { path: PathBuf, origin: Origin },
    #[error("media_dir {} (from {origin}) is not a directory", path.display())]
    MediaDirNotDir { path: PathBuf, origin: Origin },
    #[error(
        "disable_rest_auth=false (from {origin}) turns REST auth on, but rest_auth_users \
         names nobody: set rest_auth_users=user:password[,user2:password2]"
    )]
    RestAuthWithoutUsers { origin: Origin },
    #[error(
        "TLS needs both https.cert and https.key: {given} is set (from {origin}), {missing} is not"
    )]
    TlsIncomplete {
        given: &'static str,
        missing: &'static str,
        origin: Origin,
    },
    #[error("media_dir {} (from {origin}) cannot be read: {reason}", path.display())]
    MediaDirUnreadable {
        path: PathBuf,
        origin: Origin,
        reason: String,
    },
}

/// Which properties file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigFile {
    /// None at all.
    #[default]
    None,
    /// This one if it exists, else none (the `./flashphoner.properties` default).
    IfExists(PathBuf),
    /// This one; missing or unreadable is an error (`--config FILE`).
    Required(PathBuf),
}

/// One value given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub key: String,
    pub value: String,
    /// The flag it came from, for messages: `--http-port`, `--set`.
    pub flag: String,
}

impl Override {
    /// An override from a dedicated flag: `Override::new("http.port", "9000", "--http-port")`.
    pub fn new(key: &str, value: &str, flag: &str) -> Self {
        Override {
            key: key.to_string(),
            value: value.to_string(),
            flag: flag.to_string(),
        }
    }

    /// Parses the argument of `--set KEY=VALUE` (split at the first `=`).
    pub fn parse_set(arg: &str) -> Result<Self, ConfigError> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(Override::new(key.trim(), value, "--set"))
            }
            _ => Err(ConfigError::BadOverride {
                flag: "--set".to_string(),
                arg: arg.to_string(),
            }),
        }
    }
}

/// Everything [`load`] reads, gathered by the caller so that tests need no process state.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_file: ConfigFile,
    /// Environment variables as `(NAME, value)`; only `REELCAST_*` ones are looked at.
    pub env: Vec<(String, String)>,
    /// Command-line values, applied in order after everything else.
    pub overrides: Vec<Override>,
}

impl Sources {
    /// The sources of this process: `config` (else `./flashphoner.properties` if it
    /// exists), the real environment, and the given command-line overrides.
    pub fn from_process(config: Option<PathBuf>, overrides: Vec<Override>) -> Self {
        let config_file = match config {
            Some(path) => ConfigFile::Required(path),
            None => ConfigFile::IfExists(PathBuf::from(DEFAULT_CONFIG_FILE)),
        };
        let env = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                k.starts_with(ENV_PREFIX)
                    .then(|| (k, v.to_string_lossy().into_owned()))
            })
            .collect();
        Sources {
            config_file,
            env,
            overrides,
        }
    }
}

/// Loaded settings together with where each value came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The properties file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// The origin of every key that was set by something other than the defaults.
    pub origins: BTreeMap<&'static str, Origin>,
}

impl Loaded {
    /// Where `key`'s value came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// One line per key, `key = value (origin)`, secrets hidden: for the start-up log.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for key in KEYS {
            let value = self.settings.shown_value(key).unwrap_or_default();
            out.push_str(&format!("{key} = {value} ({})\n", self.origin(key)));
        }
        for host in self.settings.aws_s3_host_credentials.keys() {
            out.push_str(&format!(
                "{HOST_CREDENTIALS_PREFIX}{host} = <hidden> ({})\n",
                self.origin(HOST_CREDENTIALS_KEY)
            ));
        }
        out
    }
}

/// Loads the settings from `sources` (defaults < file < environment < overrides) and
/// checks that `media_dir` is a readable folder.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut settings = Settings::default();
    let mut origins = BTreeMap::new();

    let file = match &sources.config_file {
        ConfigFile::None => None,
        ConfigFile::IfExists(path) if !path.exists() => None,
        ConfigFile::IfExists(path) | ConfigFile::Required(path) => Some(path.clone()),
    };
    if let Some(path) = &file {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::ReadFile {
            path: path.clone(),
            reason: io_reason(&e),
        })?;
        for entry in parse_properties(&decode_text(bytes)) {
            let origin = Origin::File {
                path: path.clone(),
                line: entry.line,
            };
            match settings.set(&entry.key, &entry.value, &origin) {
                Ok(key) => {
                    origins.insert(key, origin);
                }
                Err(ConfigError::UnknownKey { .. }) => {
                    tracing::debug!(key = %entry.key, "{origin}: ignoring a key reelcast does not use");
                }
                Err(e) => return Err(e),
            }
        }
    }

    for (var, value) in &sources.env {
        let Some(key) = KEYS.iter().find(|k| env_var_name(k) == *var) else {
            if var.starts_with(ENV_PREFIX) {
                tracing::debug!(%var, "ignoring an environment variable that names no setting");
            }
            continue;
        };
        let origin = Origin::Env { var: var.clone() };
        settings.set(key, value, &origin)?;
        origins.insert(key, origin);
    }

    for o in &sources.overrides {
        let origin = Origin::Flag {
            flag: o.flag.clone(),
        };
        let key = settings.set(&o.key, &o.value, &origin)?;
        origins.insert(key, origin);
    }

    let media_origin = origins.get("media_dir").cloned().unwrap_or(Origin::Default);
    check_media_dir(&settings.media_dir, &media_origin)?;
    check_combinations(&settings, &origins)?;

    Ok(Loaded {
        settings,
        config_file: file,
        origins,
    })
}

/// `REELCAST_` + the key upper-cased with `.` turned to `_`: `http.port` → `REELCAST_HTTP_PORT`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "_"))
}

impl Settings {
    /// Sets `key` from its text form, as a properties file would. Returns the key's
    /// canonical (static) name. Surrounding whitespace is ignored; an empty value means
    /// the built-in default (or unset, for optional keys).
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        origin: &Origin,
    ) -> Result<&'static str, ConfigError> {
        if let Some(host) = key.strip_prefix(HOST_CREDENTIALS_PREFIX) {
            return self.set_host_credentials(host, value, origin);
        }
        let Some(&canon) = KEYS.iter().find(|k| **k == key) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_string(),
                origin: origin.clone(),
            });
        };
        // Empty means the built-in default: parse the default's text form instead
        // (`""` for the optional keys, which the arms below read as unset).
        let default_text;
        let value = match value.trim() {
            "" => {
                default_text = Settings::default().get(canon).unwrap_or_default();
                default_text.as_str()
            }
            trimmed => trimmed,
        };
        let bad = |expected: &str| ConfigError::InvalidValue {
            key: canon.to_string(),
            value: if SECRET_KEYS.contains(&canon) {
                "<hidden>".to_string()
            } else {
                value.to_string()
            },
            origin: origin.clone(),
            expected: expected.to_string(),
        };
        match canon {
            "media_dir" => self.media_dir = PathBuf::from(value),
            "http.port" => self.http_port = port(value).ok_or_else(|| bad(PORT))?,
            "ws.port" => self.ws_port = port(value).ok_or_else(|| bad(PORT))?,
            "media_port" if value.is_empty() => self.media_port = None,
            "media_port" => self.media_port = Some(port(value).ok_or_else(|| bad(PORT))?),
            "media_port_from" => self.media_port_from = port(value).ok_or_else(|| bad(PORT))?,
            "media_port_to" => self.media_port_to = port(value).ok_or_else(|| bad(PORT))?,
            "ip" => self.ip = ip_list(value).ok_or_else(|| bad(IP))?,
            "ip_local" => self.ip_local = value.parse().map_err(|_| bad(IP))?,
            "vod_stream_timeout" => {
                self.vod_stream_timeout = millis(value, 0).ok_or_else(|| bad(MS))?
            }
            "vod_live_loop" => self.vod_live_loop = boolean(value).ok_or_else(|| bad(BOOL))?,
            "disable_rest_auth" => {
                self.disable_rest_auth = boolean(value).ok_or_else(|| bad(BOOL))?
            }
            "rest_auth_users" if value.is_empty() => self.rest_auth_users = Vec::new(),
            "rest_auth_users" => self.rest_auth_users = parse_rest_users(value).map_err(bad)?,
            "https.port" => self.https_port = port(value).ok_or_else(|| bad(PORT))?,
            "wss.port" => self.wss_port = port(value).ok_or_else(|| bad(PORT))?,
            "https.cert" if value.is_empty() => self.https_cert = None,
            "https.cert" => self.https_cert = Some(PathBuf::from(value)),
            "https.key" if value.is_empty() => self.https_key = None,
            "https.key" => self.https_key = Some(PathBuf::from(value)),
            "keep_alive.server_interval" => {
                self.keep_alive_server_interval =
                    millis(value, 1).ok_or_else(|| bad(MS_POSITIVE))?
            }
            "keep_alive.probes" => {
                self.keep_alive_probes = count(value).ok_or_else(|| bad(COUNT))?
            }
            "ws.max_sessions" => self.ws_max_sessions = count(value).ok_or_else(|| bad(COUNT))?,
            "ws.max_sessions_per_client" => {
                self.ws_max_sessions_per_client = count(value).ok_or_else(|| bad(COUNT))?
            }
            "http.header_read_timeout" => {
                self.http_header_read_timeout = millis(value, 1).ok_or_else(|| bad(MS_POSITIVE))?
            }
            "http.idle_timeout" => {
                self.http_idle_timeout = millis(value, 1).ok_or_else(|| bad(MS_POSITIVE))?
            }
            "http.max_connections" => {
                self.http_max_connections = count(value).ok_or_else(|| bad(COUNT))?
            }
            "http.max_connections_per_client" => {
                self.http_max_connections_per_client = count(value).ok_or_else(|| bad(COUNT))?
            }
            "rest_allowed_origins" => {
                self.rest_allowed_origins = AllowedOrigins::parse(value).map_err(bad)?
            }
            "whep_allowed_origins" => {
                self.whep_allowed_origins = AllowedOrigins::parse(value).map_err(bad)?
            }
            "rest_hook_url" if value.is_empty() => self.rest_hook_url = None,
            "rest_hook_url" => {
                self.rest_hook_url = Some(hook_url(value).ok_or_else(|| bad(HOOK_URL))?)
            }
            "disable_rest_requests" => {
                self.disable_rest_requests = boolean(value).ok_or_else(|| bad(BOOL))?
            }
            "rest_request_timeout" => {
                self.rest_request_timeout = hook_timeout(value).ok_or_else(|| bad(SECONDS))?
            }
            "ws.max_message_size" => {
                self.signalling_max_message_bytes = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= MIN_MESSAGE_BYTES)
                    .ok_or_else(|| bad("expected a number of bytes, at least 4096"))?
            }
            "aws_s3_credentials" if value.is_empty() => self.aws_s3_credentials = None,
            "aws_s3_credentials" => {
                self.aws_s3_credentials =
                    Some(S3Credentials::parse(value).ok_or_else(|| bad(CREDENTIALS))?)
            }
            "aws_s3_endpoint" if value.is_empty() => self.aws_s3_endpoint = None,
            "aws_s3_endpoint" => {
                self.aws_s3_endpoint = Some(endpoint(value).ok_or_else(|| bad(ENDPOINT))?)
            }
            "aws_s3_addressing" => {
                self.aws_s3_addressing =
                    S3Addressing::parse(value).ok_or_else(|| bad(ADDRESSING))?
            }
            "aws_s3_ca_file" if value.is_empty() => self.aws_s3_ca_file = None,
            "aws_s3_ca_file" => self.aws_s3_ca_file = Some(PathBuf::from(value)),
            "aws_s3_allowed_endpoints" => {
                self.aws_s3_allowed_endpoints = allowed::parse_list(value).map_err(bad)?
            }
            "aws_s3_allow_private_addresses" => {
                self.aws_s3_allow_private_addresses = boolean(value).ok_or_else(|| bad(BOOL))?
            }
            "vod_mp4_container_new" => {
                self.vod_mp4_container_new = boolean(value).ok_or_else(|| bad(BOOL))?
            }
            "vod_mp4_container_new_buffer_ms" => {
                self.vod_mp4_container_new_buffer_ms = value.parse().map_err(|_| bad(MS))?
            }
            "vod_index_memory_mb" => {
                self.vod_index_memory_mb = value.parse().map_err(|_| bad(MIB))?
            }
            "shutdown_grace_period" => {
                self.shutdown_grace_period = millis(value, 0).ok_or_else(|| bad(MS))?
            }
            "log_format" => {
                self.log_format =
                    LogFormat::parse(value).ok_or_else(|| bad("expected text or json"))?
            }
            // Not reached: every entry of KEYS has an arm above (test
            // `every_key_round_trips`); refused rather than panicking all the same.
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_string(),
                    origin: origin.clone(),
                })
            }
        }
        Ok(canon)
    }

    /// `key`'s current value in its text form (as `set` accepts it; `""` for unset
    /// optional keys), or `None` for a key reelcast does not know.
    pub fn get(&self, key: &str) -> Option<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        Some(match key {
            "media_dir" => self.media_dir.display().to_string(),
            "http.port" => self.http_port.to_string(),
            "ws.port" => self.ws_port.to_string(),
            "media_port" => self.media_port.map(|p| p.to_string()).unwrap_or_default(),
            "media_port_from" => self.media_port_from.to_string(),
            "media_port_to" => self.media_port_to.to_string(),
            "ip" => self
                .ip
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(","),
            "ip_local" => self.ip_local.to_string(),
            "vod_stream_timeout" => ms(self.vod_stream_timeout),
            "vod_live_loop" => self.vod_live_loop.to_string(),
            "disable_rest_auth" => self.disable_rest_auth.to_string(),
            "rest_auth_users" => self
                .rest_auth_users
                .iter()
                .map(|u| format!("{}:{}", u.name, u.password))
                .collect::<Vec<_>>()
                .join(","),
            "https.port" => self.https_port.to_string(),
            "wss.port" => self.wss_port.to_string(),
            "https.cert" => path_text(&self.https_cert),
            "https.key" => path_text(&self.https_key),
            "keep_alive.server_interval" => ms(self.keep_alive_server_interval),
            "keep_alive.probes" => self.keep_alive_probes.to_string(),
            "ws.max_message_size" => self.signalling_max_message_bytes.to_string(),
            "ws.max_sessions" => self.ws_max_sessions.to_string(),
            "ws.max_sessions_per_client" => self.ws_max_sessions_per_client.to_string(),
            "http.header_read_timeout" => ms(self.http_header_read_timeout),
            "http.idle_timeout" => ms(self.http_idle_timeout),
            "http.max_connections" => self.http_max_connections.to_string(),
            "http.max_connections_per_client" => self.http_max_connections_per_client.to_string(),
            "rest_allowed_origins" => self.rest_allowed_origins.to_text(),
            "whep_allowed_origins" => self.whep_allowed_origins.to_text(),
            "rest_hook_url" => self.rest_hook_url.clone().unwrap_or_default(),
            "disable_rest_requests" => self.disable_rest_requests.to_string(),
            "rest_request_timeout" => self.rest_request_timeout.as_secs().to_string(),
            "aws_s3_credentials" => self
                .aws_s3_credentials
                .as_ref()
                .map(S3Credentials::to_text)
                .unwrap_or_default(),
            "aws_s3_endpoint" => self.aws_s3_endpoint.clone().unwrap_or_default(),
            "aws_s3_addressing" => self.aws_s3_addressing.as_str().to_string(),
            "aws_s3_ca_file" => path_text(&self.aws_s3_ca_file),
            "aws_s3_allowed_endpoints" => self
                .aws_s3_allowed_endpoints
                .iter()
                .map(AllowedEndpoint::as_str)
                .collect::<Vec<_>>()
                .join(","),
            "aws_s3_allow_private_addresses" => self.aws_s3_allow_private_addresses.to_string(),
            "vod_mp4_container_new" => self.vod_mp4_container_new.to_string(),
            "vod_mp4_container_new_buffer_ms" => self.vod_mp4_container_new_buffer_ms.to_string(),
            "vod_index_memory_mb" => self.vod_index_memory_mb.to_string(),
            "shutdown_grace_period" => ms(self.shutdown_grace_period),
            "log_format" => self.log_format.as_str().to_string(),
            _ => return None,
        })
    }

    /// Like [`get`](Self::get) but for people: secrets shown as `<hidden>`, unset as `(unset)`.
    fn shown_value(&self, key: &str) -> Option<String> {
        let value = self.get(key)?;
        Some(if value.is_empty() {
            "(unset)".to_string()
        } else if SECRET_KEYS.contains(&key) {
            "<hidden>".to_string()
        } else {
            value
        })
    }

    /// The WebRTC UDP port: `media_port`, else `media_port_from` (WCS's range, which a
    /// WCS firewall already opens).
    pub fn udp_port(&self) -> u16 {
        self.media_port.unwrap_or(self.media_port_from)
    }
}

const PORT: &str = "expected a port number 1-65535";

fn path_text(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
const IP: &str =
    "expected an IP address such as 203.0.113.7, or several separated by commas (203.0.113.7,10.0.0.5,2001:db8::7)";

/// `ip`: addresses separated by commas, no repeats; empty for none.
fn ip_list(value: &str) -> Option<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip: IpAddr = part.parse().ok()?;
        if ip.is_unspecified() || ips.contains(&ip) {
            return None;
        }
        ips.push(ip);
    }
    Some(ips)
}
const MS: &str = "expected a number of milliseconds";
const MS_POSITIVE: &str = "expected a number of milliseconds greater than 0";
const BOOL: &str = "expected true or false";
const MIB: &str = "expected a number of MiB";
const COUNT: &str = "expected a whole number greater than 0";
const CREDENTIALS: &str = "expected region;access_key_id;secret_access_key \
    (in a properties file, write a port in the key as \\:, e.g. aws_s3_credentials.host\\:9000=...)";
const ENDPOINT: &str = "expected http://host[:port] or https://host[:port]";
const HOOK_URL: &str = "expected an http:// or https:// URL, e.g. http://backend:8080/rest/my_api";
const SECONDS: &str = "expected a number of seconds, 0 (at most 60) to 60";
const ADDRESSING: &str = "expected auto, path or virtual";

/// The three parts of `aws_s3_credentials` (WCS's form `region;access_key_id;secret`).
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Credentials {
    /// `region;access_key_id;secret_access_key`, each part non-empty (spaces around
    /// parts are dropped); `None` otherwise.
    pub fn parse(text: &str) -> Option<S3Credentials> {
        let parts: Vec<&str> = text.split(';').map(str::trim).collect();
        match parts[..] {
            [region, key, secret]
                if valid_region(region) && !key.is_empty() && !secret.is_empty() =>
            {
                Some(S3Credentials {
                    region: region.to_string(),
                    access_key_id: key.to_string(),
                    secret_access_key: secret.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The text form `parse` reads.
    pub fn to_text(&self) -> String {
        format!(
            "{};{};{}",
            self.region, self.access_key_id, self.secret_access_key
        )
    }
}

/// A region name: letters, digits, `-` and `_` (`us-east-1`, `ams3`, MinIO's own).
/// Anything else is most likely a misplaced separator (an unescaped `:` in a
/// properties file key makes the rest of the line the value).
fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .finish()
    }
}

/// Which web origins may call an HTTP API from a page served elsewhere (CORS): the text
/// form is empty (none), `*` (any) or a comma-separated list of `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// No CORS headers: only pages of the server's own origin (and non-browser clients).
    None,
    /// Any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// These origins, lower-cased, without a trailing `/`.
    List(Vec<String>),
}

impl AllowedOrigins {
    fn parse(text: &str) -> Result<AllowedOrigins, &'static str> {
        const EXPECTED: &str = "expected *, or origins separated by commas \
            (e.g. https://app.example.com,http://localhost:3000), or nothing for none";
        let text = text.trim();
        if text.is_empty() {
            return Ok(AllowedOrigins::None);
        }
        if text == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut list = Vec::new();
        for origin in text.split(',') {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            let (scheme, host) = origin.split_once("://").ok_or(EXPECTED)?;
            let host_ok = !host.is_empty()
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_')
                });
            if !matches!(scheme, "http" | "https") || !host_ok {
                return Err(EXPECTED);
            }
            list.push(origin);
        }
        Ok(AllowedOrigins::List(list))
    }

    /// The text form `parse` reads.
    pub fn to_text(&self) -> String {
        match self {
            AllowedOrigins::None => String::new(),
            AllowedOrigins::Any => "*".to_string(),
            AllowedOrigins::List(list) => list.join(","),
        }
    }
}

/// `aws_s3_addressing`: how a bucket is named in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum S3Addressing {
    /// Virtual-host style for AWS hosts (`*.amazonaws.com`) when the bucket name allows
    /// it, path style for every other store (MinIO, local stores).
    #[default]
    Auto,
    /// `https://host/BUCKET/KEY`.
    Path,
    /// `https://BUCKET.host/KEY`.
    VirtualHost,
}

impl S3Addressing {
    fn parse(text: &str) -> Option<S3Addressing> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(S3Addressing::Auto),
            "path" => Some(S3Addressing::Path),
            "virtual" => Some(S3Addressing::VirtualHost),
            _ => None,
        }
    }

    /// The text form `parse` reads.
    pub fn as_str(self) -> &'static str {
        match self {
            S3Addressing::Auto => "auto",
            S3Addressing::Path => "path",
            S3Addressing::VirtualHost => "virtual",
        }
    }
}

/// `http[s]://host[:port]` with an optional trailing `/`, normalised without it; the
/// host part holds only host-name and address characters.
/// `rest_hook_url`: an absolute http(s) URL with a host, kept as written (less a trailing `/`).
fn hook_url(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    let web = matches!(url.scheme(), "http" | "https") && url.host_str().is_some();
    web.then(|| value.trim_end_matches('/').to_string())
}

/// `rest_request_timeout` in seconds. WCS reads 0 as "no limit"; a hook nobody answers
/// must not hold a client forever, so 0 is the longest allowed wait, 60 s.
fn hook_timeout(value: &str) -> Option<Duration> {
    match value.parse::<u64>().ok()? {
        0 => Some(Duration::from_secs(60)),
        n @ 1..=60 => Some(Duration::from_secs(n)),
        _ => None,
    }
}

fn endpoint(value: &str) -> Option<String> {
    let value = value.trim_end_matches('/');
    let (scheme, host) = value.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let ok_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    ((scheme == "http" || scheme == "https") && ok_host).then(|| format!("{scheme}://{host}"))
}

impl Settings {
    /// `aws_s3_credentials.HOST=...`: empty value removes that host's credentials.
    fn set_host_credentials(
        &mut self,
        host: &str,
        value: &str,
        origin: &Origin,
    ) -> Result<&'static str, ConfigError> {
        let bad = |expected: &str| ConfigError::InvalidValue {
            key: format!("{HOST_CREDENTIALS_PREFIX}{host}"),
            value: "<hidden>".to_string(),
            origin: origin.clone(),
            expected: expected.to_string(),
        };
        let host = host.trim().to_ascii_lowercase();
        let ok_host = !host.is_empty()
            && host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_')
            });
        if !ok_host {
            return Err(bad(
                "a host name after the dot: aws_s3_credentials.HOST[:PORT]=region;key;secret",
            ));
        }
        if value.trim().is_empty() {
            self.aws_s3_host_credentials.remove(&host);
        } else {
            let creds = S3Credentials::parse(value).ok_or_else(|| bad(CREDENTIALS))?;
            self.aws_s3_host_credentials.insert(host, creds);
        }
        Ok(HOST_CREDENTIALS_KEY)
    }

    /// The credentials for requests to `host` (`host[:port]` as in the endpoint URL):
    /// that host's own (`aws_s3_credentials.host:port`, then `aws_s3_credentials.host`),
    /// else `aws_s3_credentials`, else none (unsigned requests, for public buckets).
    pub fn s3_credentials_for(&self, host: &str) -> Option<&S3Credentials> {
        let host = host.to_ascii_lowercase();
        let without_port = host
            .rsplit_once(':')
            .filter(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h);
        self.aws_s3_host_credentials
            .get(&host)
            .or_else(|| without_port.and_then(|h| self.aws_s3_host_credentials.get(h)))
            .or(self.aws_s3_credentials.as_ref())
    }
}

fn port(value: &str) -> Option<u16> {
    value.parse::<u16>().ok().filter(|p| *p != 0)
}

/// A count of at least 1 (a limit of 0 would refuse everything).
fn count<T: std::str::FromStr + PartialOrd + From<u8>>(value: &str) -> Option<T> {
    value.parse::<T>().ok().filter(|n| *n >= T::from(1))
}

fn millis(value: &str, min: u64) -> Option<Duration> {
    let n = value.parse::<u64>().ok().filter(|n| *n >= min)?;
    Some(Duration::from_millis(n))
}

/// `true`/`false` in any case. Java's `Boolean.parseBoolean` takes every other word as
/// false; a typo turning a feature silently off is worse than a clear error.
fn boolean(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Checks between keys, once every source has been applied.
fn check_combinations(
    settings: &Settings,
    origins: &BTreeMap<&'static str, Origin>,
) -> Result<(), ConfigError> {
    let origin = |key: &str| origins.get(key).cloned().unwrap_or(Origin::Default);
    if settings.media_port_to < settings.media_port_from {
        return Err(ConfigError::InvalidValue {
            key: "media_port_to".into(),
            value: settings.media_port_to.to_string(),
            origin: origin("media_port_to"),
            expected: format!(
                "expected a port no lower than media_port_from ({})",
                settings.media_port_from
            ),
        });
    }
    if !settings.disable_rest_auth && settings.rest_auth_users.is_empty() {
        return Err(ConfigError::RestAuthWithoutUsers {
            origin: origin("disable_rest_auth"),
        });
    }
    match (&settings.https_cert, &settings.https_key) {
        (Some(_), None) => Err(ConfigError::TlsIncomplete {
            given: "https.cert",
            missing: "https.key",
            origin: origin("https.cert"),
        }),
        (None, Some(_)) => Err(ConfigError::TlsIncomplete {
            given: "https.key",
            missing: "https.cert",
            origin: origin("https.key"),
        }),
        _ => Ok(()),
    }
}

fn check_media_dir(path: &Path, origin: &Origin) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(ConfigError::MediaDirUnreadable {
                path: path.to_path_buf(),
                origin: origin.clone(),
                reason: io_reason(&e),
            }),
        },
        Ok(_) => Err(ConfigError::MediaDirNotDir {
            path: path.to_path_buf(),
            origin: origin.clone(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::MediaDirMissing {
            path: path.to_path_buf(),
            origin: origin.clone(),
        }),
        Err(e) => Err(ConfigError::MediaDirUnreadable {
            path: path.to_path_buf(),
            origin: origin.clone(),
            reason: io_reason(&e),
        }),
    }
}

/// An io error's words without the `(os error N)` tail.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Properties files are UTF-8 in practice; Java's default is ISO-8859-1, which maps
/// every byte to the char of the same number, so fall back to that.
fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(s),
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEntry {
    pub key: String,
    pub value: String,
    /// 1-based number of the line the entry starts on.
    pub line: usize,
}

/// Parses Java properties text (`java.util.Properties.load`): `key=value`, `key: value`
/// or `key value`; `#` and `!` comment lines; a line ending in an odd number of `\`
/// continues on the next; escapes `\t \n \r \f \uXXXX` and `\x` → `x`. Surrounding
/// whitespace of values is trimmed. Never fails: malformed `\u` escapes are kept as text.
pub fn parse_properties(text: &str) -> Vec<PropertyEntry> {
    let mut entries = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let first = strip_line_end(raw).trim_start_matches(is_prop_space);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => {
                    logical.push_str(strip_line_end(next).trim_start_matches(is_prop_space))
                }
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        entries.push(PropertyEntry {
            key: unescape(key),
            value: unescape(value).trim().to_string(),
            line: index + 1,
        });
    }
    entries
}

fn is_prop_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn strip_line_end(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, as Java does.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_prop_space(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches(is_prop_space);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = after.trim_start_matches(is_prop_space);
    }
    (key, rest)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    None => out.push_str("\\u"),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reelcast-config-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir can be created");
        dir
    }

    /// A temp folder with a `media` subfolder and a properties file holding `text`.
    fn setup(tag: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = temp_dir(tag);
        std::fs::create_dir(dir.join("media")).expect("media dir can be created");
        let file = dir.join("test.properties");
        std::fs::write(&file, text).expect("properties file can be written");
        (dir, file)
    }

    fn sources(file: &Path, env: &[(&str, &str)], overrides: Vec<Override>) -> Sources {
        Sources {
            config_file: ConfigFile::Required(file.to_path_buf()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides,
        }
    }

    fn media_line(dir: &Path) -> String {
        format!("media_dir={}\n", dir.join("media").display())
    }

    #[test]
    fn defaults_match_wcs() {
        let s = Settings::default();
        assert_eq!(s.media_dir, PathBuf::from("./media"));
        assert_eq!((s.http_port, s.ws_port), (8081, 8080));
        // WCS's media port range; reelcast takes its first port.
        assert_eq!(
            (s.media_port, s.media_port_from, s.media_port_to),
            (None, 31001, 32000)
        );
        assert_eq!(s.udp_port(), 31001);
        assert!(s.ip.is_empty());
        assert_eq!(s.ip_local, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(s.vod_stream_timeout, Duration::from_secs(30));
        assert!(!s.vod_live_loop);
        assert!(s.disable_rest_auth);
        assert_eq!(s.keep_alive_server_interval, Duration::from_secs(5));
        assert_eq!(s.signalling_max_message_bytes, 1 << 20);
        assert_eq!(s.keep_alive_probes, 5);
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::None);
    }

    #[test]
    fn rest_hook_settings_parse_and_refuse_nonsense() {
        let mut s = Settings::default();
        assert_eq!(s.rest_hook_url, None);
        assert_eq!(s.rest_request_timeout, Duration::from_secs(15));
        let o = Origin::Flag {
            flag: "--set".into(),
        };
        s.set("rest_hook_url", "http://backend:8080/rest/my_api/", &o)
            .unwrap();
        assert_eq!(
            s.rest_hook_url.as_deref(),
            Some("http://backend:8080/rest/my_api")
        );
        assert_eq!(
            s.get("rest_hook_url").unwrap(),
            "http://backend:8080/rest/my_api"
        );
        for bad in ["backend:8080", "ftp://backend/x", "http://", "/rest"] {
            assert!(s.set("rest_hook_url", bad, &o).is_err(), "{bad}");
        }
        s.set("rest_request_timeout", "3", &o).unwrap();
        assert_eq!(s.rest_request_timeout, Duration::from_secs(3));
        s.set("rest_request_timeout", "0", &o).unwrap();
        assert_eq!(s.rest_request_timeout, Duration::from_secs(60));
        assert!(s.set("rest_request_timeout", "61", &o).is_err());
        s.set("disable_rest_requests", "true", &o).unwrap();
        assert!(s.disable_rest_requests);
        s.set("rest_hook_url", "", &o).unwrap();
        assert_eq!(s.rest_hook_url, None);
    }

    #[test]
    fn allowed_origins_parse() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("rest_allowed_origins", "*", &o).unwrap();
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::Any);
        s.set(
            "rest_allowed_origins",
            " https://App.example.com/ , http://localhost:3000",
            &o,
        )
        .unwrap();
        assert_eq!(
            s.rest_allowed_origins,
            AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        s.set("rest_allowed_origins", "", &o).unwrap();
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::None);
        for bad in ["example.com", "ftp://x", "https://", "https://a b"] {
            assert!(s.set("rest_allowed_origins", bad, &o).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_key_round_trips() {
        let mut s = Settings::default();
        for key in KEYS {
            let text = s.get(key).expect("every listed key has a getter");
            assert_eq!(s.set(key, &text, &Origin::Default).unwrap(), *key);
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

    #[test]
    fn precedence_default_file_env_flag() {
        let (dir, file) = setup("prec", "");
        let text = format!(
            "{}http.port=9001\nws.port=9002\nmedia_port=9003\nvod_live_loop=true\n",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(
            &file,
            &[
                ("REELCAST_WS_PORT", "9102"),
                ("REELCAST_MEDIA_PORT", "9103"),
                ("REELCAST_UNRELATED", "x"),
                ("HOME", "/root"),
            ],
            vec![Override::new("media_port", "9203", "--media-port")],
        ))
        .unwrap();
        let s = &loaded.settings;
        assert_eq!(s.http_port, 9001, "file beats default");
        assert_eq!(s.ws_port, 9102, "env beats file");
        assert_eq!(s.media_port, Some(9203), "flag beats env");
        assert!(s.vod_live_loop);
        assert_eq!(
            s.vod_stream_timeout,
            Duration::from_secs(30),
            "default kept"
        );
        assert_eq!(
            loaded.origin("http.port"),
            Origin::File {
                path: file.clone(),
                line: 2
            }
        );
        assert_eq!(
            loaded.origin("ws.port"),
            Origin::Env {
                var: "REELCAST_WS_PORT".into()
            }
        );
        assert_eq!(
            loaded.origin("media_port"),
            Origin::Flag {
                flag: "--media-port".into()
            }
        );
        assert_eq!(loaded.origin("vod_stream_timeout"), Origin::Default);
        assert!(loaded
            .summary()
            .contains("media_port = 9203 (flag --media-port)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn later_override_wins_and_set_takes_any_key() {
        let (dir, file) = setup("set", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let overrides = vec![
            Override::parse_set("vod_stream_timeout=5000").unwrap(),
            Override::parse_set("http.port=1000").unwrap(),
            Override::new("http.port", "2000", "--http-port"),
        ];
        let s = load(&sources(&file, &[], overrides)).unwrap().settings;
        assert_eq!(s.vod_stream_timeout, Duration::from_millis(5000));
        assert_eq!(s.http_port, 2000);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_file_keys_are_ignored() {
        let (dir, file) = setup("unknown", "");
        let text = format!(
            "# a WCS file\nrtc_ice_add_local_component = true\nhls.port=8082\n{}",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(&file, &[], vec![])).unwrap();
        assert_eq!(loaded.settings.http_port, 8081);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_set_key_is_an_error() {
        let (dir, file) = setup("unknown-set", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let err = load(&sources(
            &file,
            &[],
            vec![Override::parse_set("htp.port=1").unwrap()],
        ))
        .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }));
        assert!(err
            .to_string()
            .starts_with("unknown setting \"htp.port\" (from flag --set)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_value_names_key_value_file_and_line() {
        let (dir, file) = setup("bad", "");
        let text = format!("{}# comment\n\nhttp.port = abc\n", media_line(&dir));
        std::fs::write(&file, text).unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid value \"abc\" for http.port (from {} line 4): expected a port number 1-65535",
                file.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_env_and_flag_values_name_their_origin() {
        let (dir, file) = setup("bad-env", "");
        std::fs::write(&file, media_line(&dir)).unwrap();
        let err = load(&sources(
            &file,
            &[("REELCAST_VOD_LIVE_LOOP", "yes")],
            vec![],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"yes\" for vod_live_loop (from environment REELCAST_VOD_LIVE_LOOP): expected true or false"
        );
        let err = load(&sources(
            &file,
            &[],
            vec![Override::new("ip", "1.2.3", "--ip")],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"1.2.3\" for ip (from flag --ip): expected an IP address such as 203.0.113.7, or several separated by commas (203.0.113.7,10.0.0.5,2001:db8::7)"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_value_check() {
        let mut s = Settings::default();
        let o = Origin::Default;
        let bad = |s: &mut Settings, k: &str, v: &str| {
            assert!(
                matches!(s.set(k, v, &o), Err(ConfigError::InvalidValue { .. })),
                "{k}={v} should be refused"
            )
        };
        for key in ["http.port", "ws.port", "media_port"] {
            bad(&mut s, key, "0");
            bad(&mut s, key, "65536");
            bad(&mut s, key, "-1");
            bad(&mut s, key, "80a");
        }
        bad(&mut s, "ip", "localhost");
        bad(&mut s, "ip_local", "300.1.1.1");
        bad(&mut s, "vod_stream_timeout", "30s");
        bad(&mut s, "vod_stream_timeout", "-5");
        bad(&mut s, "keep_alive.server_interval", "0");
        bad(&mut s, "keep_alive.probes", "0");
        bad(&mut s, "ws.max_sessions", "0");
        bad(&mut s, "ws.max_sessions_per_client", "-1");
        bad(&mut s, "http.header_read_timeout", "0");
        bad(&mut s, "http.idle_timeout", "10s");
        bad(&mut s, "http.max_connections", "many");
        bad(&mut s, "http.max_connections_per_client", "0");
        bad(&mut s, "disable_rest_auth", "1");
        bad(&mut s, "vod_mp4_container_new", "on");
        bad(&mut s, "ws.max_message_size", "100");
        bad(&mut s, "ws.max_message_size", "1MB");
        bad(&mut s, "vod_mp4_container_new_buffer_ms", "x");
        bad(&mut s, "aws_s3_credentials", "us-east-1;key");
        assert_eq!(s, Settings::default(), "refused values change nothing");

        s.set("ip", "::1", &o).unwrap();
        s.set("vod_stream_timeout", "0", &o).unwrap();
        s.set("vod_live_loop", " TRUE ", &o).unwrap();
        s.set("aws_s3_credentials", "ams3;key;secret", &o).unwrap();
        assert_eq!(s.ip, vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.vod_stream_timeout, Duration::ZERO);
        assert!(s.vod_live_loop);
        assert_eq!(
            s.aws_s3_credentials.as_ref().map(S3Credentials::to_text),
            Some("ams3;key;secret".to_string())
        );
    }

    #[test]
    fn s3_settings() {
        let mut s = Settings::default();
        let o = Origin::Default;
        let refused = |s: &mut Settings, k: &str, v: &str| {
            let err = s.set(k, v, &o).expect_err(v);
            assert!(
                matches!(err, ConfigError::InvalidValue { .. }),
                "{k}={v}: {err}"
            );
            err.to_string()
        };
        refused(&mut s, "aws_s3_endpoint", "ftp://host");
        refused(&mut s, "aws_s3_endpoint", "host:9000");
        refused(&mut s, "aws_s3_endpoint", "http://ho st");
        refused(&mut s, "aws_s3_addressing", "dns");
        refused(&mut s, "aws_s3_credentials", "r;;secret");
        refused(&mut s, "aws_s3_credentials", "r;k;s;extra");
        let err = refused(&mut s, "aws_s3_credentials.h/x", "r;k;s");
        assert!(err.contains("aws_s3_credentials.HOST"), "{err}");
        let err = refused(&mut s, "aws_s3_credentials.minio:9000", "r;k");
        assert!(!err.contains("r;k"), "a secret in {err}");
        // What an unescaped `:` in a properties key gives: refused, with the fix.
        let err = refused(&mut s, "aws_s3_credentials.minio", "9000=r;k;s");
        assert!(err.contains("\\:9000"), "{err}");
        assert_eq!(s, Settings::default(), "refused values change nothing");

        s.set("aws_s3_endpoint", "HTTP://127.0.0.1:9000/", &o)
            .unwrap();
        assert_eq!(s.aws_s3_endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        s.set("aws_s3_addressing", "Virtual", &o).unwrap();
        assert_eq!(s.aws_s3_addressing, S3Addressing::VirtualHost);
        assert_eq!(s.get("aws_s3_addressing").unwrap(), "virtual");

        s.set("aws_s3_credentials", " us-east-1 ; AK ; SK ", &o)
            .unwrap();
        let key = s
            .set("aws_s3_credentials.Minio:9000", "eu;mk;mysecretvalue", &o)
            .unwrap();
        assert_eq!(key, HOST_CREDENTIALS_KEY);
        s.set("aws_s3_credentials.spaces.example", "ams3;dk;ds", &o)
            .unwrap();
        let id = |s: &Settings, h: &str| s.s3_credentials_for(h).map(|c| c.access_key_id.clone());
        assert_eq!(id(&s, "minio:9000").as_deref(), Some("mk"));
        assert_eq!(
            id(&s, "minio:9001").as_deref(),
            Some("AK"),
            "other port: the default"
        );
        assert_eq!(
            id(&s, "SPACES.example:443").as_deref(),
            Some("dk"),
            "any port of a host"
        );
        assert_eq!(id(&s, "s3.amazonaws.com").as_deref(), Some("AK"));
        assert_eq!(s.s3_credentials_for("minio:9000").unwrap().region, "eu");
        assert!(!format!("{s:?}").contains("mysecretvalue"), "{s:?}");

        s.set("aws_s3_credentials.minio:9000", "", &o).unwrap();
        s.set("aws_s3_credentials", "", &o).unwrap();
        assert_eq!(id(&s, "minio:9000"), None);
        assert_eq!(id(&s, "spaces.example").as_deref(), Some("dk"));
    }

    #[test]
    fn host_credentials_from_a_file_are_hidden_in_the_summary() {
        let (dir, file) = setup("s3hosts", "");
        let text = format!(
            "{}aws_s3_credentials.minio.local\\:9000=r;key;verysecret\n\
             aws_s3_credentials.other.local=r;key;secret2\n",
            media_line(&dir)
        );
        std::fs::write(&file, text).unwrap();
        let loaded = load(&sources(&file, &[], vec![])).unwrap();
        let summary = loaded.summary();
        assert!(!summary.contains("verysecret"), "{summary}");
        assert!(
            summary.contains("aws_s3_credentials.minio.local:9000 = <hidden> ("),
            "{summary}"
        );
        assert!(summary.contains("aws_s3_credentials.other.local = <hidden> ("));
        let creds = &loaded.settings.aws_s3_host_credentials;
        assert_eq!(creds["minio.local:9000"].secret_access_key, "verysecret");
    }

    #[test]
    fn empty_value_means_default() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("http.port", "9000", &o).unwrap();
        s.set("ip", "10.0.0.1", &o).unwrap();
        s.set("http.port", "", &o).unwrap();
        s.set("ip", "  ", &o).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn secrets_never_shown() {
        let mut s = Settings::default();
        let err = s
            .set("aws_s3_credentials", "region;xyzzy", &Origin::Default)
            .unwrap_err();
        assert!(!err.to_string().contains("xyzzy"), "{err}");
        s.set("aws_s3_credentials", "r;k;topsecret", &Origin::Default)
            .unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        let loaded = Loaded {
            settings: s,
            config_file: None,
            origins: BTreeMap::new(),
        };
        assert!(!loaded.summary().contains("topsecret"));
        assert!(loaded.summary().contains("aws_s3_credentials = <hidden>"));
    }

    #[test]
    fn missing_required_config_file() {
        let dir = temp_dir("nofile");
        let file = dir.join("absent.properties");
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read config file {}: No such file or directory",
                file.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn optional_config_file_may_be_absent() {
        let dir = temp_dir("optfile");
        std::fs::create_dir(dir.join("media")).unwrap();
        let src = Sources {
            config_file: ConfigFile::IfExists(dir.join("flashphoner.properties")),
            env: vec![(
                "REELCAST_MEDIA_DIR".into(),
                dir.join("media").display().to_string(),
            )],
            overrides: vec![],
        };
        let loaded = load(&src).unwrap();
        assert_eq!(loaded.config_file, None);
        assert_eq!(loaded.settings.media_dir, dir.join("media"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn media_dir_errors() {
        let (dir, file) = setup("mediadir", "");
        let missing = dir.join("nope");
        std::fs::write(&file, format!("media_dir={}\n", missing.display())).unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(matches!(err, ConfigError::MediaDirMissing { .. }), "{err}");
        assert!(err
            .to_string()
            .contains(&format!("{} line 1", file.display())));

        let not_dir = dir.join("plain");
        std::fs::write(&not_dir, b"x").unwrap();
        let err = load(&sources(
            &file,
            &[],
            vec![Override::new(
                "media_dir",
                &not_dir.display().to_string(),
                "--media-dir",
            )],
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "media_dir {} (from flag --media-dir) is not a directory",
                not_dir.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_set_argument() {
        for arg in ["novalue", "=5", " =5"] {
            let err = Override::parse_set(arg).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid --set argument \"{arg}\": expected KEY=VALUE")
            );
        }
        let o = Override::parse_set("ip_local = 10.0.0.2").unwrap();
        assert_eq!(
            (o.key.as_str(), o.value.as_str()),
            ("ip_local", " 10.0.0.2")
        );
    }

    #[test]
    fn ip_lists_several_addresses_of_both_families() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("ip", "203.0.113.7, 10.0.0.5,2001:db8::7", &o)
            .unwrap();
        let want: Vec<IpAddr> = ["203.0.113.7", "10.0.0.5", "2001:db8::7"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(s.ip, want);
        assert_eq!(s.get("ip").unwrap(), "203.0.113.7,10.0.0.5,2001:db8::7");
        for wrong in ["10.0.0.5,10.0.0.5", "10.0.0.5,x", "0.0.0.0"] {
            let err = s.set("ip", wrong, &o).unwrap_err().to_string();
            assert!(err.contains("several separated by commas"), "{err}");
        }
    }

    #[test]
    fn media_port_defaults_to_the_start_of_wcs_range_and_wins_when_set() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("media_port_from", "40000", &o).unwrap();
        s.set("media_port_to", "40100", &o).unwrap();
        assert_eq!(s.udp_port(), 40000);
        s.set("media_port", "31000", &o).unwrap();
        assert_eq!(s.udp_port(), 31000);
        s.set("media_port", "", &o).unwrap();
        assert_eq!(s.udp_port(), 40000);
    }

    #[test]
    fn rest_auth_users_parse_and_stay_hidden() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("rest_auth_users", " admin:secret , ops:p:w2 ", &o)
            .unwrap();
        let pairs: Vec<(&str, &str)> = s
            .rest_auth_users
            .iter()
            .map(|u| (u.name.as_str(), u.password.as_str()))
            .collect();
        assert_eq!(pairs, [("admin", "secret"), ("ops", "p:w2")]);
        assert_eq!(
            s.get("rest_auth_users").as_deref(),
            Some("admin:secret,ops:p:w2")
        );
        assert!(!format!("{s:?}").contains("secret"));
        for wrong in ["admin", "admin:", ":pw", "a:1,,b:2", "a:1,a:2", "a:1,b"] {
            let err = s.set("rest_auth_users", wrong, &o).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("expected user:password pairs"),
                "{wrong}: {text}"
            );
            assert!(text.contains("<hidden>"), "the value is a secret: {text}");
        }
        s.set("rest_auth_users", "", &o).unwrap();
        assert!(s.rest_auth_users.is_empty());
    }

    #[test]
    fn rest_auth_on_needs_users() {
        let (dir, file) = setup("auth", "");
        std::fs::write(
            &file,
            format!("{}disable_rest_auth=false\n", media_line(&dir)),
        )
        .unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert!(
            matches!(err, ConfigError::RestAuthWithoutUsers { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("rest_auth_users"), "{err}");
        let loaded = load(&sources(
            &file,
            &[("REELCAST_REST_AUTH_USERS", "admin:secret")],
            vec![],
        ))
        .unwrap();
        assert!(!loaded.settings.disable_rest_auth);
        assert_eq!(loaded.settings.rest_auth_users[0].name, "admin");
        assert!(loaded.summary().contains("rest_auth_users = <hidden>"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_keys_default_ports_and_pairing() {
        let s = Settings::default();
        assert_eq!((s.https_port, s.wss_port), (8444, 8443));
        assert_eq!((s.https_cert.as_ref(), s.https_key.as_ref()), (None, None));
        let (dir, file) = setup("tls", "");
        std::fs::write(
            &file,
            format!("{}https.cert=/x/cert.pem\n", media_line(&dir)),
        )
        .unwrap();
        let err = load(&sources(&file, &[], vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "TLS needs both https.cert and https.key: https.cert is set (from {} line 2), https.key is not",
                file.display()
            )
        );
        let loaded = load(&sources(
            &file,
            &[],
            vec![
                Override::parse_set("https.key=/x/key.pem").unwrap(),
                Override::parse_set("wss.port=9443").unwrap(),
            ],
        ))
        .unwrap();
        assert_eq!(loaded.settings.https_key, Some(PathBuf::from("/x/key.pem")));
        assert_eq!(loaded.settings.wss_port, 9443);
        let mut s = Settings::default();
        assert!(s.set("https.port", "0", &Origin::Default).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse_properties(text)
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn properties_separators_and_comments() {
        let text = "# comment\n! also comment\n\n  a=1\nb : 2\nc 3\nd\t=\t4  \ne=\nf\n   # indented comment\ng==x\nh=a=b\n";
        let got = kv(text);
        let want: Vec<(String, String, usize)> = [
            ("a", "1", 4),
            ("b", "2", 5),
            ("c", "3", 6),
            ("d", "4", 7),
            ("e", "", 8),
            ("f", "", 9),
            ("g", "=x", 11),
            ("h", "a=b", 12),
        ]
        .iter()
        .map(|(k, v, l)| (k.to_string(), v.to_string(), *l))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn properties_continuations_escapes_and_crlf() {
        let text = "list = a,\\\r\n    b,\\\n    c\r\nkey\\ with\\:odd\\=chars = v\\tx\\u0041\\\\\nbad=\\u00zz\nlast=\\";
        let got = kv(text);
        assert_eq!(got[0], ("list".into(), "a,b,c".into(), 1));
        assert_eq!(got[1], ("key with:odd=chars".into(), "v\txA\\".into(), 4));
        assert_eq!(got[2], ("bad".into(), "\\u00zz".into(), 5));
        assert_eq!(got[3], ("last".into(), "".into(), 6));
    }

    #[test]
    fn properties_file_in_latin1_and_with_bom() {
        let (dir, file) = setup("latin1", "");
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(media_line(&dir).as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        assert!(load(&sources(&file, &[], vec![])).is_ok(), "BOM is skipped");
        let mut bytes = b"comment_key=caf\xe9\n".to_vec();
        bytes.extend_from_slice(media_line(&dir).as_bytes());
        std::fs::write(&file, &bytes).unwrap();
        assert!(
            load(&sources(&file, &[], vec![])).is_ok(),
            "latin-1 accepted"
        );
        assert_eq!(decode_text(b"caf\xe9".to_vec()), "café");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
