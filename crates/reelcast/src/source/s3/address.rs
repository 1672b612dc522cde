//! Where an object's requests go and how they are signed: the endpoint, the bucket's
//! URL (path or virtual-host style), the key and the credentials, from a stream name's
//! parts and the settings; and the presigned (AWS SigV4, query-string) URL of a `GET`,
//! made by `rusty-s3`. Pure: no I/O.
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
//!
//! Signing in the URL rather than in an `Authorization` header lets the signature
//! leave the `Range` header out: the same request shape for every range.

use std::time::Duration;

use rusty_s3::actions::GetObject;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::config::{S3Addressing, Settings};

/// Region used for AWS URLs and signing when no credentials name one.
const DEFAULT_REGION: &str = "us-east-1";
/// How long a presigned URL is valid. It is used at once; the margin covers a clock
/// behind the store's (S3 refuses a URL signed "in the future" only past 15 min).
const PRESIGN_TTL: Duration = Duration::from_secs(15 * 60);

/// One object's request target.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectAddress {
    /// The bucket's base URL and signing region.
    target: Bucket,
    /// `None`: unsigned requests (public objects).
    credentials: Option<Credentials>,
    /// The endpoint as a viewer may read it, for messages: the name's own
    /// (`https://host`), the AWS URL, or for `aws_s3_endpoint` that setting's name: the
    /// address of the operator's store is not the viewer's to read.
    pub endpoint: String,
    /// The bucket name.
    pub bucket: String,
    /// The decoded key: `dir/a b.mp4`.
    pub key: String,
}

impl std::fmt::Debug for ObjectAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The unsigned URL: a presigned one is a credential for a while.
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
            .map_or_else(|| DEFAULT_REGION.to_string(), |c| c.region.clone());
        let shown = match (endpoint, &settings.aws_s3_endpoint) {
            (None, Some(_)) => Some("aws_s3_endpoint".to_string()),
            _ => None,
        };
        let endpoint = match endpoint.or(settings.aws_s3_endpoint.as_deref()) {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{aws_region}.amazonaws.com"),
        };
        let shown = shown.unwrap_or_else(|| endpoint.clone());
        let bad_endpoint = || format!("bad S3 endpoint {shown}: expected http[s]://host[:port]");
        let (scheme, endpoint_host) = endpoint
            .split_once("://")
            .filter(|(s, h)| (*s == "http" || *s == "https") && !h.is_empty() && !h.contains('/'))
            .ok_or_else(bad_endpoint)?;
        let url = Url::parse(&endpoint).map_err(|_| bad_endpoint())?;
        // URLs resolve `.` and `..` segments: such a key would name another object.
        if key.split('/').any(|s| s == "." || s == "..") {
            return Err(format!(
                "S3 key \"{key}\" has a '.' or '..' segment, which a request URL cannot carry"
            ));
        }
        let credentials = settings.s3_credentials_for(endpoint_host);
        let region = credentials.map_or(DEFAULT_REGION, |c| c.region.as_str());
        let virtual_host = match settings.aws_s3_addressing {
            S3Addressing::Path => false,
            S3Addressing::VirtualHost => true,
            S3Addressing::Auto => {
                let host_only = endpoint_host.split(':').next().unwrap_or_default();
                host_only.ends_with(".amazonaws.com") && dns_bucket(bucket, scheme == "https")
            }
        };
        let style = if virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let target =
            Bucket::new(url, style, bucket.to_string(), region.to_string()).map_err(|_| {
                format!(
                    "virtual-host addressing (aws_s3_addressing) cannot put bucket \"{bucket}\" \
                 in the host name of {shown}: it needs a host name, not an address, and a \
                 bucket name valid in one; use aws_s3_addressing=path"
                )
            })?;
        Ok(ObjectAddress {
            target,
            credentials: credentials
                .map(|c| Credentials::new(c.access_key_id.clone(), c.secret_access_key.clone())),
            endpoint: shown,
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// Requests are signed (credentials are set for this endpoint).
    pub fn signed(&self) -> bool {
        self.credentials.is_some()
    }

    /// The object's URL, unsigned: for messages and logs.
    pub fn url(&self) -> Url {
        self.target.object_url(&self.key)
    }

    /// The URL of a `GET` of the object made now: presigned for `PRESIGN_TTL` with
    /// credentials, the plain URL without. Any `Range` header may be added.
    pub fn get_url(&self) -> Url {
        self.get_object().sign(PRESIGN_TTL)
    }

    fn get_object(&self) -> GetObject<'_> {
        self.target.get_object(self.credentials.as_ref(), &self.key)
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

    fn query(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn aws_short_form_is_virtual_host_in_the_credentials_region() {
        let s = settings(&[("aws_s3_credentials", "eu-west-1;AK;SK")]);
        let a = ObjectAddress::resolve(&s, None, "media", "dir/a b.mp4").unwrap();
        assert_eq!(
            a.url().as_str(),
            "https://media.s3.eu-west-1.amazonaws.com/dir/a%20b.mp4"
        );
        let signed = a.get_url();
        assert_eq!(signed.host_str(), Some("media.s3.eu-west-1.amazonaws.com"));
        assert_eq!(signed.path(), "/dir/a%20b.mp4");
        let credential = query(&signed, "X-Amz-Credential").unwrap();
        assert!(
            credential.starts_with("AK/") && credential.ends_with("/eu-west-1/s3/aws4_request"),
            "{credential}"
        );
        assert_eq!(query(&signed, "X-Amz-Expires").as_deref(), Some("900"));
        assert_eq!(
            query(&signed, "X-Amz-SignedHeaders").as_deref(),
            Some("host")
        );
    }

    #[test]
    fn aws_buckets_with_dots_use_path_style_over_https() {
        let a = ObjectAddress::resolve(&Settings::default(), None, "my.media", "k.mp4").unwrap();
        assert_eq!(
            a.url().as_str(),
            "https://s3.us-east-1.amazonaws.com/my.media/k.mp4"
        );
        assert!(!a.signed());
        assert_eq!(a.get_url(), a.url(), "no credentials: an unsigned URL");
    }

    #[test]
    fn full_url_form_is_path_style_with_that_hosts_credentials() {
        let s = settings(&[
            ("aws_s3_credentials", "us-east-1;AK;SK"),
            ("aws_s3_credentials.minio:9000", "local;MK;MS"),
        ]);
        let a = ObjectAddress::resolve(&s, Some("http://minio:9000"), "b", "x/é%+!.mp4").unwrap();
        assert_eq!(
            a.url().as_str(),
            "http://minio:9000/b/x/%C3%A9%25%2B%21.mp4"
        );
        let credential = query(&a.get_url(), "X-Amz-Credential").unwrap();
        assert!(credential.starts_with("MK/") && credential.contains("/local/s3/"));
        let other = ObjectAddress::resolve(&s, Some("https://other.example"), "b", "k").unwrap();
        let credential = query(&other.get_url(), "X-Amz-Credential").unwrap();
        assert!(credential.starts_with("AK/") && credential.contains("/us-east-1/s3/"));
    }

    #[test]
    fn endpoint_setting_serves_the_short_form_and_addressing_can_be_forced() {
        let s = settings(&[
            ("aws_s3_endpoint", "http://store.test:4566"),
            ("aws_s3_addressing", "virtual"),
        ]);
        let a = ObjectAddress::resolve(&s, None, "b1", "k.mp4").unwrap();
        assert_eq!(a.url().as_str(), "http://b1.store.test:4566/k.mp4");
        let s = settings(&[("aws_s3_addressing", "path")]);
        let a = ObjectAddress::resolve(&s, None, "media", "k.mp4").unwrap();
        assert_eq!(
            a.url().as_str(),
            "https://s3.us-east-1.amazonaws.com/media/k.mp4"
        );
    }

    #[test]
    fn names_no_url_can_carry_are_refused() {
        let virt = settings(&[("aws_s3_addressing", "virtual")]);
        let e =
            ObjectAddress::resolve(&virt, Some("http://127.0.0.1:9000"), "b1", "k").unwrap_err();
        assert!(e.contains("aws_s3_addressing=path"), "{e}");
        let e = ObjectAddress::resolve(&virt, Some("http://h.test"), "Bad_Name", "k").unwrap_err();
        assert!(e.contains("aws_s3_addressing=path"), "{e}");
        for key in ["a/../b.mp4", "./b.mp4", "a/.."] {
            let e = ObjectAddress::resolve(&Settings::default(), None, "b1", key).unwrap_err();
            assert!(e.contains("'..'"), "{key}: {e}");
        }
        // A key with empty segments or a leading '/' is kept as it is.
        let a =
            ObjectAddress::resolve(&Settings::default(), Some("http://h"), "b1", "/a//b").unwrap();
        assert_eq!(a.url().path(), "/b1//a//b");
    }

    /// The presigned `GET` example of the AWS S3 documentation ("Authenticating
    /// Requests: Using Query Parameters"): `test.txt` of `examplebucket`, valid 86400 s
    /// from 2013-05-24, whose signature AWS publishes; through the same `GetObject` the
    /// client signs.
    #[test]
    fn signs_the_aws_documented_presigned_example() {
        let s = settings(&[(
            "aws_s3_credentials",
            "us-east-1;AKIAIOSFODNN7EXAMPLE;wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )]);
        let a = ObjectAddress::resolve(
            &s,
            Some("https://s3.amazonaws.com"),
            "examplebucket",
            "test.txt",
        )
        .unwrap();
        let at = jiff::Timestamp::from_second(1_369_353_600).unwrap();
        let url = a
            .get_object()
            .sign_with_time(Duration::from_secs(86_400), &at);
        assert_eq!(
            query(&url, "X-Amz-Signature").as_deref(),
            Some("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        );
        assert_eq!(url.host_str(), Some("examplebucket.s3.amazonaws.com"));
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
