//! Where a value came from ([`Origin`]) and why settings could not be loaded
//! ([`ConfigError`]): the words a user reads when a start fails.
//!
//! Owns: the error messages of the whole `config` module. Must not: print a secret
//! value (callers pass `<hidden>` for secret keys).

use std::fmt;
use std::path::PathBuf;

/// Where a value came from; named in every error so the user knows what to fix.
// The variants' fields are named for what they hold (path, line, var, flag).
#[allow(missing_docs)]
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
// Each variant's `#[error]` text is its documentation; its fields are named for what
// they hold.
#[allow(missing_docs)]
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
    #[error("unknown setting \"{key}\" (from {origin}); known settings: {known}")]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The names of every key, comma-separated (filled where the error is made).
        known: String,
    },
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
    #[error("hls.https.port (from {origin}) needs a certificate: set https.cert and https.key")]
    HlsHttpsWithoutCert { origin: Origin },
    #[error("media_dir {} (from {origin}) cannot be read: {reason}", path.display())]
    MediaDirUnreadable {
        path: PathBuf,
        origin: Origin,
        reason: String,
    },
}
