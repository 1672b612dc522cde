//! Reading and writing [`Settings`] by key name: [`Settings::set`], [`Settings::get`],
//! the `aws_s3_credentials.HOST` family, and `Debug` (every key, secrets hidden).
//!
//! Owns: the bridge from a key's name to its field, through `keys::TABLE`; sits above
//! both `settings` (the plain struct) and `keys` (the table). Must not: read files or
//! the environment (that is `load`), or parse a value itself (that is the key's form).

use std::fmt;

use super::error::{ConfigError, Origin};
use super::keys::{self, TABLE};
use super::s3::{S3Credentials, CREDENTIALS, HOST_CREDENTIALS_KEY, HOST_CREDENTIALS_PREFIX};
use super::settings::Settings;
use super::values::is_host_text;

/// Debug shows every key but never the secret ones.
// Fields are shown by key through the table (values as `get` reads them), not by field.
#[allow(clippy::missing_fields_in_debug)]
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Settings");
        for key in TABLE {
            d.field(key.name, &self.shown_value(key));
        }
        for host in self.aws_s3_host_credentials.keys() {
            d.field(&format!("{HOST_CREDENTIALS_PREFIX}{host}"), &"<hidden>");
        }
        d.finish()
    }
}

impl Settings {
    /// Sets `key` from its text form, as a properties file would. Returns the key's
    /// canonical (static) name. Surrounding whitespace is ignored; an empty value means
    /// the built-in default (or unset, for optional keys). A refused value changes
    /// nothing.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        origin: &Origin,
    ) -> Result<&'static str, ConfigError> {
        if let Some(host) = key.strip_prefix(HOST_CREDENTIALS_PREFIX) {
            return self.set_host_credentials(host, value, origin);
        }
        let Some(entry) = keys::find(key) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_string(),
                origin: origin.clone(),
                known: keys::names().collect::<Vec<_>>().join(", "),
            });
        };
        // Empty means the built-in default: parse the default's text form instead
        // (`""` for the optional keys, which their forms read as unset).
        let default_text;
        let value = match value.trim() {
            "" => {
                default_text = entry.default_text();
                default_text.as_str()
            }
            trimmed => trimmed,
        };
        entry
            .set(self, value)
            .map_err(|expected| ConfigError::InvalidValue {
                key: entry.name.to_string(),
                value: if entry.secret {
                    "<hidden>".to_string()
                } else {
                    value.to_string()
                },
                origin: origin.clone(),
                expected: expected.to_string(),
            })?;
        Ok(entry.name)
    }

    /// `key`'s current value in its text form (as `set` accepts it; `""` for unset
    /// optional keys), or `None` for a key reelcast does not know.
    pub fn get(&self, key: &str) -> Option<String> {
        keys::find(key).map(|entry| entry.get(self))
    }

    /// Like [`get`](Self::get) but for people: secrets shown as `<hidden>`, unset as
    /// `(unset)`.
    pub(super) fn shown_value(&self, key: &keys::Key) -> String {
        let value = key.get(self);
        if value.is_empty() {
            "(unset)".to_string()
        } else if key.secret {
            "<hidden>".to_string()
        } else {
            value
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::S3Addressing;

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
