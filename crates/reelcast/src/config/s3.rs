//! The S3 settings' value forms, and the credentials for each store.
//!
//! Owns: the plain values `Settings`' S3 fields hold ([`S3Credentials`]
//! (`region;access_key_id;secret`, never shown), [`S3Addressing`]), the names of the
//! `aws_s3_credentials.HOST[:PORT]` key family (the one family of keys whose names are
//! not fixed, so it is not a row of `keys::TABLE`; `access` sets it and
//! `Settings::s3_credentials_for` reads it), and the forms of `aws_s3_credentials`,
//! `aws_s3_endpoint`, `aws_s3_addressing` and `aws_s3_allowed_endpoints`. Sits below
//! `settings`: knows nothing of `Settings`. Must not: sign, connect or resolve anything
//! (that is `source::s3`).

use std::fmt;

use super::allowed_endpoint::{self, AllowedEndpoint};
use super::values::{is_host_text, join, Form};

/// `aws_s3_credentials.HOST[:PORT]=region;key;secret`: credentials for one S3 endpoint.
/// Recorded in `Loaded::origins` under this name.
pub const HOST_CREDENTIALS_KEY: &str = "aws_s3_credentials.<host>";
pub(super) const HOST_CREDENTIALS_PREFIX: &str = "aws_s3_credentials.";
/// How docs/CONFIGURATION.md names the family in its key table.
pub const HOST_CREDENTIALS_DOC_KEY: &str = "aws_s3_credentials.HOST";

pub(super) const CREDENTIALS: &str = "expected region;access_key_id;secret_access_key \
    (in a properties file, write a port in the key as \\:, e.g. aws_s3_credentials.host\\:9000=...)";

/// The three parts of `aws_s3_credentials` (WCS's form `region;access_key_id;secret`).
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The store's region (`us-east-1` when the store has none).
    pub region: String,
    /// The access key's id.
    pub access_key_id: String,
    /// The secret key (never shown).
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

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .finish()
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

/// `aws_s3_credentials` (wrapped in `Opt`).
pub struct Credentials;

impl Form for Credentials {
    type Value = S3Credentials;
    fn parse(text: &str) -> Result<S3Credentials, &'static str> {
        S3Credentials::parse(text).ok_or(CREDENTIALS)
    }
    fn show(value: &S3Credentials) -> String {
        value.to_text()
    }
}

/// `aws_s3_endpoint`: `http[s]://host[:port]` with an optional trailing `/`, normalised
/// without it and with the scheme lower-cased.
pub struct Endpoint;

impl Form for Endpoint {
    type Value = String;
    fn parse(text: &str) -> Result<String, &'static str> {
        const EXPECTED: &str = "expected http://host[:port] or https://host[:port]";
        let text = text.trim_end_matches('/');
        let (scheme, host) = text.split_once("://").ok_or(EXPECTED)?;
        let scheme = scheme.to_ascii_lowercase();
        let web = scheme == "http" || scheme == "https";
        (web && is_host_text(host))
            .then(|| format!("{scheme}://{host}"))
            .ok_or(EXPECTED)
    }
    fn show(value: &String) -> String {
        value.clone()
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
    /// The text form `parse` reads.
    pub fn as_str(self) -> &'static str {
        match self {
            S3Addressing::Auto => "auto",
            S3Addressing::Path => "path",
            S3Addressing::VirtualHost => "virtual",
        }
    }
}

/// `aws_s3_addressing`: `auto`, `path` or `virtual`, any case.
pub struct Addressing;

impl Form for Addressing {
    type Value = S3Addressing;
    fn parse(text: &str) -> Result<S3Addressing, &'static str> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(S3Addressing::Auto),
            "path" => Ok(S3Addressing::Path),
            "virtual" => Ok(S3Addressing::VirtualHost),
            _ => Err("expected auto, path or virtual"),
        }
    }
    fn show(value: &S3Addressing) -> String {
        value.as_str().to_string()
    }
}

/// `aws_s3_allowed_endpoints`: the entries `source::s3::allowed` reads ([`AllowedEndpoint`]).
pub struct AllowedEndpoints;

impl Form for AllowedEndpoints {
    type Value = Vec<AllowedEndpoint>;
    fn parse(text: &str) -> Result<Vec<AllowedEndpoint>, &'static str> {
        allowed_endpoint::parse_list(text)
    }
    fn show(value: &Vec<AllowedEndpoint>) -> String {
        join(value.iter().map(|e| e.as_str().to_string()))
    }
}
