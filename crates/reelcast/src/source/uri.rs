//! Stream names as WCS users write them, parsed into a [`StreamUri`].
//!
//! | name | mode | location |
//! |---|---|---|
//! | `vod://sample.mp4` | [`PlayMode::Personal`] | `media_dir/sample.mp4` |
//! | `vod-live://dir/a%20b.mp4` | [`PlayMode::Live`] | `media_dir/dir/a b.mp4` |
//! | `vod://s3/bucket/dir/f.mp4` | personal | S3 (AWS) bucket `bucket`, key `dir/f.mp4` |
//! | `vod://s3/https://host/bucket/f.mp4` | personal | S3-compatible store at `https://host` |
//!
//! Paths are percent-decoded once. A local name becomes a [`MediaPath`], which cannot
//! leave `media_dir`: `..`, `.` and empty segments, absolute paths, backslashes and NUL
//! are refused, also when they only appear after decoding (`%2e%2e`, `..%2f`). A
//! top-level folder of `media_dir` named `s3` cannot be played: `vod://s3/...` is S3.

use std::fmt;
use std::path::Path;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::SourceError;

/// Characters written as `%XX` when a name is printed back (`/` stays a separator).
const NAME_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\');

/// Longest accepted name, and longest path segment (the common file-system limits).
const MAX_NAME_BYTES: usize = 4096;
const MAX_SEGMENT_BYTES: usize = 255;

/// Who a stream plays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayMode {
    /// `vod://`: from its start, for one viewer.
    Personal,
    /// `vod-live://`: one timeline shared by every viewer.
    Live,
}

impl PlayMode {
    /// The scheme that names this mode: `vod` or `vod-live`.
    pub fn scheme(self) -> &'static str {
        match self {
            PlayMode::Personal => "vod",
            PlayMode::Live => "vod-live",
        }
    }
}

/// Where the bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A file under `media_dir`.
    Local(MediaPath),
    /// An S3 object. `endpoint` is `Some("https://host[:port]")` for non-AWS stores
    /// (path-style addressing), `None` for AWS with the region from the settings.
    S3 {
        /// `Some("https://host[:port]")` for a store named in the stream name.
        endpoint: Option<String>,
        /// The bucket name.
        bucket: String,
        /// The decoded object key.
        key: String,
    },
}

/// A parsed stream name: `vod-live://dir/a%20b.mp4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamUri {
    /// Personal VOD or live translation.
    pub mode: PlayMode,
    /// Where the bytes are.
    pub location: Location,
}

impl StreamUri {
    /// Parses a stream name. Errors are the infos the user sees:
    /// an unknown scheme is `Failed to get agent storage`, an empty path `File not found`.
    pub fn parse(name: &str) -> Result<StreamUri, SourceError> {
        let unknown = || SourceError::UnknownScheme {
            name: name.to_string(),
        };
        let (scheme, rest) = name.split_once("://").ok_or_else(unknown)?;
        let mode = if scheme.eq_ignore_ascii_case("vod") {
            PlayMode::Personal
        } else if scheme.eq_ignore_ascii_case("vod-live") {
            PlayMode::Live
        } else {
            return Err(unknown());
        };
        if rest.is_empty() {
            return Err(SourceError::NotFound);
        }
        let location = match rest.strip_prefix("s3") {
            Some("") => return Err(bad_s3()),
            Some(s3) if s3.starts_with('/') => parse_s3(&s3[1..])?,
            _ => Location::Local(MediaPath::from_encoded(rest)?),
        };
        Ok(StreamUri { mode, location })
    }

    /// The name in canonical form (lower-case scheme, `%XX` only where needed); parsing
    /// it gives this same `StreamUri` back. For REST answers, status and logs.
    pub fn uri_string(&self) -> String {
        let scheme = self.mode.scheme();
        match &self.location {
            Location::Local(path) => format!("{scheme}://{}", path.encoded()),
            Location::S3 {
                endpoint,
                bucket,
                key,
            } => {
                let endpoint = endpoint
                    .as_deref()
                    .map(|e| format!("{e}/"))
                    .unwrap_or_default();
                format!("{scheme}://s3/{endpoint}{}/{}", encode(bucket), encode(key))
            }
        }
    }

    /// The local file this name plays, if it is one.
    pub fn media_path(&self) -> Option<&MediaPath> {
        match &self.location {
            Location::Local(path) => Some(path),
            Location::S3 { .. } => None,
        }
    }
}

impl fmt::Display for StreamUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri_string())
    }
}

impl std::str::FromStr for StreamUri {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamUri::parse(s)
    }
}

fn bad_s3() -> SourceError {
    SourceError::BadName(
        "expected vod://s3/BUCKET/KEY or vod://s3/https://HOST/BUCKET/KEY".to_string(),
    )
}

/// `bucket/key` or `http[s]://host[:port]/bucket/key` (after `s3/`).
fn parse_s3(rest: &str) -> Result<Location, SourceError> {
    let (endpoint, rest) = match ["https://", "http://"]
        .iter()
        .find(|p| rest.starts_with(*p))
    {
        Some(prefix) => {
            let after = &rest[prefix.len()..];
            let (host, rest) = after.split_once('/').ok_or_else(bad_s3)?;
            if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad_s3());
            }
            (Some(format!("{prefix}{host}")), rest)
        }
        None => (None, rest),
    };
    let (bucket, key) = rest.split_once('/').ok_or_else(bad_s3)?;
    let bucket = decode(bucket)?;
    let key = decode(key)?;
    if bucket.is_empty() || key.is_empty() || bucket.contains('/') {
        return Err(bad_s3());
    }
    if bucket.chars().chain(key.chars()).any(char::is_control) {
        return Err(SourceError::BadName(
            "control character in S3 name".to_string(),
        ));
    }
    Ok(Location::S3 {
        endpoint,
        bucket,
        key,
    })
}

fn decode(encoded: &str) -> Result<String, SourceError> {
    percent_decode_str(encoded)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| SourceError::BadName("not valid UTF-8 after percent-decoding".to_string()))
}

fn encode(decoded: &str) -> String {
    utf8_percent_encode(decoded, NAME_ENCODE).to_string()
}

/// A relative path under `media_dir` that cannot leave it: `/`-separated segments,
/// none empty, `.` or `..`; no leading `/`, backslash, NUL or other control character.
/// Holds the decoded text (`dir/a b.mp4`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaPath(String);

impl MediaPath {
    /// Validates an already decoded relative path (`dir/a b.mp4`).
    pub fn new(decoded: &str) -> Result<MediaPath, SourceError> {
        let restricted = |why: &str| Err(SourceError::Restricted(why.to_string()));
        if decoded.is_empty() {
            return Err(SourceError::NotFound);
        }
        if decoded.contains('\0') {
            return restricted("NUL in name");
        }
        if decoded.contains('\\') {
            return restricted("backslash in name");
        }
        if decoded.starts_with('/') {
            return restricted("absolute path");
        }
        let segments: Vec<&str> = decoded.split('/').collect();
        if segments.contains(&"..") {
            return restricted("path leaves media_dir");
        }
        if segments.iter().any(|s| s.is_empty() || *s == ".") {
            return restricted("empty or '.' path segment");
        }
        if decoded.chars().any(char::is_control) {
            return Err(SourceError::BadName(
                "control character in name".to_string(),
            ));
        }
        if decoded.len() > MAX_NAME_BYTES || segments.iter().any(|s| s.len() > MAX_SEGMENT_BYTES) {
            return Err(SourceError::BadName("name too long".to_string()));
        }
        Ok(MediaPath(decoded.to_string()))
    }

    /// Percent-decodes, then validates as [`new`](Self::new) does.
    pub fn from_encoded(encoded: &str) -> Result<MediaPath, SourceError> {
        MediaPath::new(&decode(encoded)?)
    }

    /// The decoded path, `/`-separated: `dir/a b.mp4`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decoded path as a relative [`Path`], to join onto `media_dir`.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The path as written in a stream name: `dir/a%20b.mp4`.
    pub fn encoded(&self) -> String {
        encode(&self.0)
    }
}

impl fmt::Display for MediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(name: &str) -> (PlayMode, String) {
        let uri = StreamUri::parse(name).expect(name);
        match uri.location {
            Location::Local(p) => (uri.mode, p.as_str().to_string()),
            other @ Location::S3 { .. } => panic!("{name} parsed as {other:?}"),
        }
    }

    fn s3(name: &str) -> (PlayMode, Option<String>, String, String) {
        let uri = StreamUri::parse(name).expect(name);
        match uri.location {
            Location::S3 {
                endpoint,
                bucket,
                key,
            } => (uri.mode, endpoint, bucket, key),
            other @ Location::Local(_) => panic!("{name} parsed as {other:?}"),
        }
    }

    fn err(name: &str) -> String {
        StreamUri::parse(name).expect_err(name).to_string()
    }

    #[test]
    fn local_names() {
        assert_eq!(
            local("vod://sample.mp4"),
            (PlayMode::Personal, "sample.mp4".into())
        );
        assert_eq!(
            local("vod://dir/sub/a%20b.mp4"),
            (PlayMode::Personal, "dir/sub/a b.mp4".into())
        );
        assert_eq!(
            local("vod-live://sample.mp4"),
            (PlayMode::Live, "sample.mp4".into())
        );
        assert_eq!(local("VOD-LIVE://x.mp4"), (PlayMode::Live, "x.mp4".into()));
        assert_eq!(local("vod://s3x/a.mp4").1, "s3x/a.mp4");
        assert_eq!(local("vod://caf%C3%A9.mp4").1, "café.mp4");
        assert_eq!(local("vod://a%2fb.mp4").1, "a/b.mp4");
        assert_eq!(local("vod://..a/b...mp4").1, "..a/b...mp4");
    }

    #[test]
    fn s3_names() {
        assert_eq!(
            s3("vod://s3/bucket/dir/file.mp4"),
            (
                PlayMode::Personal,
                None,
                "bucket".into(),
                "dir/file.mp4".into()
            )
        );
        assert_eq!(
            s3("vod://s3/https://host/bucket/file.mp4"),
            (
                PlayMode::Personal,
                Some("https://host".into()),
                "bucket".into(),
                "file.mp4".into()
            )
        );
        assert_eq!(
            s3("vod-live://s3/http://minio:9000/b/a%20b.mp4"),
            (
                PlayMode::Live,
                Some("http://minio:9000".into()),
                "b".into(),
                "a b.mp4".into()
            )
        );
        assert_eq!(s3("vod-live://s3/b/k.mp4").0, PlayMode::Live);
    }

    #[test]
    fn bad_s3_names() {
        for name in [
            "vod://s3",
            "vod://s3/",
            "vod://s3/bucket",
            "vod://s3/bucket/",
            "vod://s3//key.mp4",
            "vod://s3/https://host",
            "vod://s3/https:///bucket/key",
            "vod://s3/https://host/bucket",
            "vod://s3/b%2fc/key",
        ] {
            assert!(
                err(name).starts_with("Bad stream name: expected vod://s3/"),
                "{name}"
            );
        }
        assert_eq!(
            err("vod://s3/b/a%0a"),
            "Bad stream name: control character in S3 name"
        );
    }

    #[test]
    fn unknown_scheme_and_empty() {
        for name in ["rtmp://x", "foo", "", "vod:/a.mp4", "http://host/a.mp4"] {
            assert_eq!(err(name), "Failed to get agent storage", "{name:?}");
        }
        assert_eq!(err("vod://"), "File not found");
        assert_eq!(err("vod-live://"), "File not found");
        assert_eq!(err("vod://%00").as_str(), "Restricted access: NUL in name");
    }

    #[test]
    fn names_that_leave_media_dir_are_refused() {
        for name in [
            "vod://../etc/passwd",
            "vod://a/../../b.mp4",
            "vod://a/..",
            "vod://%2e%2e/secret.mp4",
            "vod://%2E%2E%2Fsecret.mp4",
            "vod://..%2fsecret.mp4",
            "vod://a%2f..%2f..%2fb",
        ] {
            assert_eq!(
                err(name),
                "Restricted access: path leaves media_dir",
                "{name}"
            );
        }
        assert_eq!(err("vod:///etc/passwd"), "Restricted access: absolute path");
        assert_eq!(
            err("vod://%2fetc/passwd"),
            "Restricted access: absolute path"
        );
        assert_eq!(
            err("vod://a\\b.mp4"),
            "Restricted access: backslash in name"
        );
        assert_eq!(
            err("vod://..%5cb.mp4"),
            "Restricted access: backslash in name"
        );
        assert_eq!(err("vod://a%00.mp4"), "Restricted access: NUL in name");
        for name in [
            "vod://a//b.mp4",
            "vod://dir/",
            "vod://./a.mp4",
            "vod://a/./b",
        ] {
            assert_eq!(
                err(name),
                "Restricted access: empty or '.' path segment",
                "{name}"
            );
        }
    }

    #[test]
    fn other_bad_names() {
        assert_eq!(
            err("vod://a%ff.mp4"),
            "Bad stream name: not valid UTF-8 after percent-decoding"
        );
        assert_eq!(
            err("vod://a%0d.mp4"),
            "Bad stream name: control character in name"
        );
        let long = format!("vod://{}.mp4", "a".repeat(300));
        assert_eq!(err(&long), "Bad stream name: name too long");
    }

    #[test]
    fn uri_string_round_trips() {
        for (name, canonical) in [
            ("vod://sample.mp4", "vod://sample.mp4"),
            ("VOD://dir/sub/a%20b.mp4", "vod://dir/sub/a%20b.mp4"),
            (
                "vod-live://100%25%20fun%23.mp4",
                "vod-live://100%25%20fun%23.mp4",
            ),
            ("vod://caf%C3%A9.mp4", "vod://caf%C3%A9.mp4"),
            ("vod://café.mp4", "vod://caf%C3%A9.mp4"),
            (
                "vod://s3/bucket/dir/a%20b.mp4",
                "vod://s3/bucket/dir/a%20b.mp4",
            ),
            (
                "vod-live://s3/https://host:9000/bucket/file.mp4",
                "vod-live://s3/https://host:9000/bucket/file.mp4",
            ),
        ] {
            let uri = StreamUri::parse(name).unwrap();
            assert_eq!(uri.uri_string(), canonical);
            assert_eq!(uri.to_string(), canonical);
            assert_eq!(StreamUri::parse(canonical).unwrap(), uri, "{canonical}");
        }
    }

    #[test]
    fn media_path_accessors() {
        let p = MediaPath::new("dir/a b.mp4").unwrap();
        assert_eq!(p.as_path(), Path::new("dir/a b.mp4"));
        assert_eq!(p.encoded(), "dir/a%20b.mp4");
        assert_eq!(p.to_string(), "dir/a b.mp4");
        assert_eq!(MediaPath::new(""), Err(SourceError::NotFound));
        let uri: StreamUri = "vod://dir/a%20b.mp4".parse().unwrap();
        assert_eq!(uri.media_path(), Some(&p));
    }
}
