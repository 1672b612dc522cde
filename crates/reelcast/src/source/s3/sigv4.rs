//! AWS Signature Version 4 for S3 requests, sans-IO: a request's parts and the time in,
//! the `Authorization` header out. No clock, no sockets; the caller passes the time.
//!
//! Only what reelcast sends is covered: requests without a body and without a query
//! string (ranged `GET`s), signed in headers (not presigned URLs), with the
//! `x-amz-content-sha256` header S3 requires.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::config::S3Credentials;

/// SHA-256 of an empty body: the `x-amz-content-sha256` of every request we send.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What S3 leaves unescaped in a path: RFC 3986 unreserved characters and `/`.
const PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// An object key (or `bucket/key`) as the path of a request and of the canonical
/// request: every byte but unreserved characters and `/` as `%XX`, once.
pub fn encode_path(decoded: &str) -> String {
    utf8_percent_encode(decoded, PATH_ENCODE).to_string()
}

/// `YYYYMMDDTHHMMSSZ` (the `x-amz-date` form) for `time`, in UTC.
pub fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (the proleptic calendar algorithm
/// by eras of 400 years).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A request to sign.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header: `host` or `host:port` (as the URL has it).
    pub host: &'a str,
    /// The encoded path, from [`encode_path`]: `/bucket/a%20b.mp4`.
    pub path: &'a str,
    /// The `Range` header, if any: `bytes=0-9`.
    pub range: Option<&'a str>,
    /// `x-amz-date`, from [`amz_date`].
    pub amz_date: &'a str,
}

/// The `Authorization` header value for `req`, signed with `creds` for service `s3`.
/// The request must also carry `x-amz-date: req.amz_date` and
/// `x-amz-content-sha256:` [`EMPTY_BODY_SHA256`].
pub fn authorization(req: &Request<'_>, creds: &S3Credentials) -> String {
    let mut headers: Vec<(&str, &str)> = vec![("host", req.host)];
    if let Some(range) = req.range {
        headers.push(("range", range));
    }
    headers.push(("x-amz-content-sha256", EMPTY_BODY_SHA256));
    headers.push(("x-amz-date", req.amz_date));
    let signed_headers = headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = format!("{}\n{}\n\n", req.method, req.path);
    for (name, value) in &headers {
        canonical.push_str(&format!("{name}:{}\n", value.trim()));
    }
    canonical.push_str(&format!("\n{signed_headers}\n{EMPTY_BODY_SHA256}"));

    let date = req.amz_date.get(..8).unwrap_or(req.amz_date);
    let scope = format!("{date}/{}/s3/aws4_request", creds.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        req.amz_date,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [creds.region.as_str(), "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example_credentials() -> S3Credentials {
        S3Credentials {
            region: "us-east-1".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// The "GET Object" example of the AWS S3 SigV4 documentation ("Examples of
    /// signature calculations", header-based authentication): a ranged GET of
    /// `/test.txt` from `examplebucket`, whose signature AWS publishes.
    #[test]
    fn matches_the_aws_documented_get_object_example() {
        let auth = authorization(
            &Request {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                range: Some("bytes=0-9"),
                amz_date: "20130524T000000Z",
            },
            &example_credentials(),
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn without_range_the_range_header_is_not_signed() {
        let auth = authorization(
            &Request {
                method: "GET",
                host: "h",
                path: "/b/k",
                range: None,
                amz_date: "20240101T000000Z",
            },
            &example_credentials(),
        );
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
    }

    #[test]
    fn paths_are_encoded_once_with_slashes_kept() {
        assert_eq!(encode_path("/b/dir/a b.mp4"), "/b/dir/a%20b.mp4");
        assert_eq!(encode_path("/b/100%+x~y_z-.mp4"), "/b/100%25%2Bx~y_z-.mp4");
        assert_eq!(encode_path("/b/café.mp4"), "/b/caf%C3%A9.mp4");
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24
        assert_eq!(amz_date(t), "20130524T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(amz_date(t), "20000229T010101Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(amz_date(t), "20991231T235959Z");
    }
}
