//! The S3 settings' value forms, and the credentials for each store.
//!
//! Owns: [`S3Credentials`] (`region;access_key_id;secret`, never shown), the
//! `aws_s3_credentials.HOST[:PORT]` key family (the one family of keys whose names are
//! not fixed, so it is not a row of `keys::TABLE`), which credentials a request to a
//! host uses ([`Settings::s3_credentials_for`]), and the forms of `aws_s3_endpoint`,
//! `aws_s3_addressing` and `aws_s3_allowed_endpoints`. Must not: sign, connect or
//! resolve anything (that is `source::s3`).

use std::fmt;

use super::allowed_endpoint::{self, AllowedEndpoint};
use super::error::{ConfigError, Origin};
use super::settings::Settings;
use super::values::{is_host_text, join, Form};

/// `aws_s3_credentials.HOST[:PORT]=region;key;secret`: credentials for one S3 endpoint.
/// Recorded in `Loaded::origins` under this name.
pub const HOST_CREDENTIALS_KEY: &str = "aws_s3_credentials.<host>";
pub(super) const HOST_CREDENTIALS_PREFIX: &str = "aws_s3_credentials.";
/// How docs/CONFIGURATION.md names the family in its key table.
pub const HOST_CREDENTIALS_DOC_KEY: &str = "aws_s3_credentials.HOST";

const CREDENTIALS: &str = "expected region;access_key_id;secret_access_key \
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

impl Settings {
    /// `aws_s3_credentials.HOST=...`: empty value removes that host's credentials.
    pub(super) fn set_host_credentials(
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
        if !is_host_text(&host) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
