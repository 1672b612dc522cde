//! Server settings, under the key names of Flashphoner WCS's `flashphoner.properties`.
//!
//! Settings are layered from four sources, later wins: built-in defaults
//! ([`Settings::default`]); a Java properties file (`--config FILE`, else
//! `./flashphoner.properties` when it exists); environment variables `REELCAST_<KEY>`
//! ([`env_var_name`]); command-line flags (`--http-port`, `--set KEY=VALUE`, ...) given
//! as [`Override`]s. An empty value (`http.port=`) means "the built-in default" (for
//! optional keys: unset). docs/CONFIGURATION.md is the user's side of this.
//!
//! One module per job:
//! - [`keys`]: the key table, every key defined once (name, field, form, doc, flag,
//!   secret). **Adding a key** is one `Settings` field (with its default) plus one entry
//!   there; its module doc says how, and a test prints the docs row to paste.
//! - [`settings`]: the [`Settings`] struct and its defaults (plain data).
//! - [`access`]: `Settings::set`/`get` by key name and `Debug`, through the key table.
//! - [`values`]: value forms (how text parses, what a wrong value is told, how it reads
//!   back) and the small value types; [`s3`]: the S3 ones and per-store credentials;
//!   [`allowed_endpoint`]: an `aws_s3_allowed_endpoints` entry; [`record`]: the
//!   recorder's; [`ladder`]: the HLS ABR ladder's.
//! - [`properties`]: the Java properties parser.
//! - [`load`](mod@load): the layered loader, checks between keys, the start-up summary.
//! - [`error`]: [`Origin`] and [`ConfigError`], the words a user reads.
//!
//! Layers inside, bottom first (a file imports only from files below it): `error`,
//! `values`, `allowed_endpoint`, `properties`; `s3`, `record`, `ladder`; `settings`; `keys`; `access`;
//! `load`.
//!
//! Must not: open sockets, start anything, or read media.

pub mod access;
pub mod allowed_endpoint;
pub mod error;
pub mod keys;
pub mod ladder;
pub mod load;
pub mod properties;
pub mod record;
pub mod s3;
pub mod settings;
pub mod values;

pub use allowed_endpoint::{AllowedEndpoint, HostPattern};
pub use error::{ConfigError, Origin};
pub use keys::{env_var_name, ENV_PREFIX};
pub use load::{load, ConfigFile, Loaded, Override, Sources, DEFAULT_CONFIG_FILE};
pub use properties::{parse_properties, PropertyEntry};
pub use record::{RecordAudioCodec, RecordPolicy};
pub use s3::{S3Addressing, S3Credentials, HOST_CREDENTIALS_KEY};
pub use settings::Settings;
pub use values::{parse_rest_users, AllowedOrigins, LogFormat, RestUser};
