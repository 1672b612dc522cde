//! Where an object's requests go: the endpoint, the `Host` header, the path and the
//! credentials, from a stream name's parts and the settings. Pure: no I/O.
//!
//! | name | endpoint |
//! |---|---|
//! | `vod://s3/BUCKET/KEY` | `aws_s3_endpoint`, else AWS `https://s3.REGION.amazonaws.com` |
//! | `vod://s3/https://host/BUCKET/KEY` | `https://host` |
//!
//! Addressing (`aws_s3_addressing`): path style puts the bucket in the path
//! (`https://host/BUCKET/KEY`), virtual-host style in the host name
//! (`https://BUCKET.host/KEY`); `auto` uses virtual-host style for AWS hosts when the
//! bucket name is a valid DNS label (no dots over HTTPS, whose certificate would not
//! match), path style everywhere else.

use crate::config::{S3Addressing, S3Credentials, Settings};

use super::sigv4::encode_path;

/// Region used for AWS URLs and signing when no credentials name one.
const DEFAULT_REGION: &str = "us-east-1";

/// One object's request target.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectAddress {
    /// `http` or `https`.
    pub scheme: String,
    /// The `Host` header: `host` or `host:port`.
    pub host: String,
    /// The encoded request path: `/bucket/a%20b.mp4` or `/a%20b.mp4`.
    pub path: String,
    /// Signing region (from the credentials, else `us-east-1`).
    pub region: String,
    /// `None`: unsigned requests (public objects).
    pub credentials: Option<S3Credentials>,
    /// The endpoint as the user knows it, for messages: `https://host`.
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Debug for ObjectAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url())
    }
}

impl ObjectAddress {
    /// Resolves `endpoint` (from the name, `http[s]://host[:port]`, or `None`),
    /// `bucket` and `key` (decoded) against the settings.
    pub fn resolve(
        settings: &Settings,
        endpoint: Option<&str>,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectAddress, String> {
        let aws_region = settings
            .aws_s3_credentials
            .as_ref()
            .map(|c| c.region.clone())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let endpoint = match endpoint.or(settings.aws_s3_endpoint.as_deref()) {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{aws_region}.amazonaws.com"),
        };
        let (scheme, endpoint_host) = endpoint
            .split_once("://")
            .filter(|(s, h)| (*s == "http" || *s == "https") && !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| format!("bad S3 endpoint {endpoint}: expected http[s]://host[:port]"))?;
        let credentials = settings.s3_credentials_for(endpoint_host).cloned();
        let region = credentials
            .as_ref()
            .map(|c| c.region.clone())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let virtual_host = match settings.aws_s3_addressing {
            S3Addressing::Path => false,
            S3Addressing::VirtualHost => true,
            S3Addressing::Auto => {
                let host_only = endpoint_host.split(':').next().unwrap_or_default();
                host_only.ends_with(".amazonaws.com") && dns_bucket(bucket, scheme == "https")
            }
        };
        let (host, path) = if virtual_host {
            (
                format!("{bucket}.{endpoint_host}"),
                encode_path(&format!("/{key}")),
            )
        } else {
            (
                endpoint_host.to_string(),
                encode_path(&format!("/{bucket}/{key}")),
            )
        };
        Ok(ObjectAddress {
            scheme: scheme.to_string(),
            host,
            path,
            region,
            credentials,
            endpoint: endpoint.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

/// A bucket name usable as a host name label: 3-63 lower-case letters, digits and
/// hyphens (dots too over plain HTTP), starting and ending with a letter or digit.
fn dns_bucket(bucket: &str, https: bool) -> bool {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && !https);
    (3..=63).contains(&bucket.len())
        && bucket.chars().all(ok_char)
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::default();
        for (k, v) in pairs {
            s.set(k, v, &Origin::Default).unwrap();
        }
        s
    }

    #[test]
    fn aws_short_form_is_virtual_host_in_the_credentials_region() {
        let s = settings(&[("aws_s3_credentials", "eu-west-1;AK;SK")]);
        let a = ObjectAddress::resolve(&s, None, "media", "dir/a b.mp4").unwrap();
        assert_eq!(
            a.url(),
            "https://media.s3.eu-west-1.amazonaws.com/dir/a%20b.mp4"
        );
        assert_eq!(a.host, "media.s3.eu-west-1.amazonaws.com");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.credentials.unwrap().access_key_id, "AK");
    }

    #[test]
    fn aws_buckets_with_dots_use_path_style_over_https() {
        let a = ObjectAddress::resolve(&Settings::default(), None, "my.media", "k.mp4").unwrap();
        assert_eq!(a.url(), "https://s3.us-east-1.amazonaws.com/my.media/k.mp4");
        assert_eq!(a.credentials, None, "no credentials: unsigned requests");
    }

    #[test]
    fn full_url_form_is_path_style_with_that_hosts_credentials() {
        let s = settings(&[
            ("aws_s3_credentials", "us-east-1;AK;SK"),
            ("aws_s3_credentials.minio:9000", "local;MK;MS"),
        ]);
        let a = ObjectAddress::resolve(&s, Some("http://minio:9000"), "b", "x/é%.mp4").unwrap();
        assert_eq!(a.url(), "http://minio:9000/b/x/%C3%A9%25.mp4");
        assert_eq!(a.host, "minio:9000");
        assert_eq!(a.region, "local");
        assert_eq!(a.credentials.unwrap().access_key_id, "MK");
        let other = ObjectAddress::resolve(&s, Some("https://other.example"), "b", "k").unwrap();
        assert_eq!(other.credentials.unwrap().access_key_id, "AK");
    }

    #[test]
    fn endpoint_setting_serves_the_short_form_and_addressing_can_be_forced() {
        let s = settings(&[
            ("aws_s3_endpoint", "http://127.0.0.1:4566"),
            ("aws_s3_addressing", "virtual"),
        ]);
        let a = ObjectAddress::resolve(&s, None, "b", "k.mp4").unwrap();
        assert_eq!(a.url(), "http://b.127.0.0.1:4566/k.mp4");
        let s = settings(&[("aws_s3_addressing", "path")]);
        let a = ObjectAddress::resolve(&s, None, "media", "k.mp4").unwrap();
        assert_eq!(a.url(), "https://s3.us-east-1.amazonaws.com/media/k.mp4");
    }

    #[test]
    fn dns_bucket_names() {
        assert!(dns_bucket("media-01", true));
        assert!(!dns_bucket("Media", true));
        assert!(!dns_bucket("a.b.c", true));
        assert!(dns_bucket("a.b.c", false));
        assert!(!dns_bucket("-ab", true));
        assert!(!dns_bucket("ab", true));
    }
}
