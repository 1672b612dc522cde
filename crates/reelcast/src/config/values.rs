//! Value forms: how one setting's text becomes a typed value and back.
//!
//! Owns: the [`Form`] trait, the forms shared by many keys (ports, times, counts,
//! switches, addresses, paths, [`Opt`]ional values) and the small value types of the
//! non-S3 keys ([`RestUser`], [`AllowedOrigins`]). A form refuses a wrong value with
//! the words the user reads after "expected" (no value echoed: the caller decides
//! whether the value may be shown). Must not: know key names or where a value came
//! from (that is `keys` and `load`). S3's forms are in `super::s3`.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How a setting's text is read and written back. `parse` gets the value trimmed; it
/// gets `""` only for a key whose default is empty (an optional key, or an empty list).
/// `show(parse(t))` must parse back to the same value (test `every_key_round_trips`).
pub trait Form {
    /// The type of the `Settings` field.
    type Value;
    /// The typed value, or what was expected ("expected a port number 1-65535").
    fn parse(text: &str) -> Result<Self::Value, &'static str>;
    /// The text form `parse` reads.
    fn show(value: &Self::Value) -> String;
}

/// An optional value: `""` is `None`, anything else is `F`'s.
pub struct Opt<F>(PhantomData<F>);

impl<F: Form> Form for Opt<F> {
    type Value = Option<F::Value>;
    fn parse(text: &str) -> Result<Self::Value, &'static str> {
        if text.is_empty() {
            Ok(None)
        } else {
            F::parse(text).map(Some)
        }
    }
    fn show(value: &Self::Value) -> String {
        value.as_ref().map(F::show).unwrap_or_default()
    }
}

/// A TCP or UDP port, 1-65535.
pub struct Port;

impl Form for Port {
    type Value = u16;
    fn parse(text: &str) -> Result<u16, &'static str> {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("expected a port number 1-65535")
    }
    fn show(value: &u16) -> String {
        value.to_string()
    }
}

/// A file or folder, as written.
pub struct Path;

impl Form for Path {
    type Value = PathBuf;
    fn parse(text: &str) -> Result<PathBuf, &'static str> {
        Ok(PathBuf::from(text))
    }
    fn show(value: &PathBuf) -> String {
        value.display().to_string()
    }
}

const IP: &str = "expected an IP address such as 203.0.113.7, or several separated by commas (203.0.113.7,10.0.0.5,2001:db8::7)";

/// One IP address literal (no host names).
pub struct Ip;

impl Form for Ip {
    type Value = IpAddr;
    fn parse(text: &str) -> Result<IpAddr, &'static str> {
        text.parse().map_err(|_| IP)
    }
    fn show(value: &IpAddr) -> String {
        value.to_string()
    }
}

/// IP addresses separated by commas, none unspecified, no repeats; empty for none.
pub struct IpList;

impl Form for IpList {
    type Value = Vec<IpAddr>;
    fn parse(text: &str) -> Result<Vec<IpAddr>, &'static str> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip: IpAddr = part.parse().map_err(|_| IP)?;
            if ip.is_unspecified() || ips.contains(&ip) {
                return Err(IP);
            }
            ips.push(ip);
        }
        Ok(ips)
    }
    fn show(value: &Vec<IpAddr>) -> String {
        join(value.iter().map(IpAddr::to_string))
    }
}

/// A time in whole milliseconds, 0 allowed.
pub struct Millis;

impl Form for Millis {
    type Value = Duration;
    fn parse(text: &str) -> Result<Duration, &'static str> {
        text.parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| "expected a number of milliseconds")
    }
    fn show(value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

/// A time in whole milliseconds, above 0 (an interval or time-out of 0 makes no sense).
pub struct PositiveMillis;

impl Form for PositiveMillis {
    type Value = Duration;
    fn parse(text: &str) -> Result<Duration, &'static str> {
        text.parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Duration::from_millis)
            .ok_or("expected a number of milliseconds greater than 0")
    }
    fn show(value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

/// A number of milliseconds kept as a plain number (0 allowed).
pub struct MillisNumber;

impl Form for MillisNumber {
    type Value = u64;
    fn parse(text: &str) -> Result<u64, &'static str> {
        text.parse()
            .map_err(|_| "expected a number of milliseconds")
    }
    fn show(value: &u64) -> String {
        value.to_string()
    }
}

/// A size in MiB (0 allowed).
pub struct Mib;

impl Form for Mib {
    type Value = u64;
    fn parse(text: &str) -> Result<u64, &'static str> {
        text.parse().map_err(|_| "expected a number of MiB")
    }
    fn show(value: &u64) -> String {
        value.to_string()
    }
}

/// A size in bytes: a whole number, optionally with a binary unit (`K`, `M`, `G`, `T`,
/// also written `KB`/`KiB` and so on, any case; 1K = 1024). Shown back in the largest
/// unit that divides it (`10G`). 0 allowed.
pub struct ByteSize;

impl Form for ByteSize {
    type Value = u64;
    fn parse(text: &str) -> Result<u64, &'static str> {
        const EXPECTED: &str = "expected a number of bytes, optionally with K, M, G or T";
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let number: u64 = number.parse().map_err(|_| EXPECTED)?;
        let unit = unit.trim().to_ascii_lowercase();
        let unit = unit
            .strip_suffix("ib")
            .or_else(|| unit.strip_suffix('b'))
            .unwrap_or(&unit);
        let shift = match unit {
            "" => 0,
            "k" => 10,
            "m" => 20,
            "g" => 30,
            "t" => 40,
            _ => return Err(EXPECTED),
        };
        number.checked_mul(1 << shift).ok_or(EXPECTED)
    }
    fn show(value: &u64) -> String {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if *value != 0 && value.is_multiple_of(1u64 << shift) {
                return format!("{}{unit}", value >> shift);
            }
        }
        value.to_string()
    }
}

/// A count of at least 1 (a limit of 0 would refuse everything), of type `T`.
pub struct Count<T>(PhantomData<T>);

impl<T: FromStr + PartialOrd + From<u8> + ToString> Form for Count<T> {
    type Value = T;
    fn parse(text: &str) -> Result<T, &'static str> {
        text.parse::<T>()
            .ok()
            .filter(|n| *n >= T::from(1))
            .ok_or("expected a whole number greater than 0")
    }
    fn show(value: &T) -> String {
        value.to_string()
    }
}

/// `true`/`false` in any case. Java's `Boolean.parseBoolean` takes every other word as
/// false; a typo turning a feature silently off is worse than a clear error.
pub struct Bool;

impl Form for Bool {
    type Value = bool;
    fn parse(text: &str) -> Result<bool, &'static str> {
        if text.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if text.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err("expected true or false")
        }
    }
    fn show(value: &bool) -> String {
        value.to_string()
    }
}

/// Smallest accepted `ws.max_message_size`: a browser's SDP offer alone is a few KiB.
const MIN_MESSAGE_BYTES: usize = 4096;

/// `ws.max_message_size`: bytes, at least `MIN_MESSAGE_BYTES`.
pub struct MessageBytes;

impl Form for MessageBytes {
    type Value = usize;
    fn parse(text: &str) -> Result<usize, &'static str> {
        text.parse::<usize>()
            .ok()
            .filter(|n| *n >= MIN_MESSAGE_BYTES)
            .ok_or("expected a number of bytes, at least 4096")
    }
    fn show(value: &usize) -> String {
        value.to_string()
    }
}

/// `rest_hook_url`: an absolute http(s) URL with a host, kept as written (less a
/// trailing `/`).
pub struct HookUrl;

impl Form for HookUrl {
    type Value = String;
    fn parse(text: &str) -> Result<String, &'static str> {
        const EXPECTED: &str =
            "expected an http:// or https:// URL, e.g. http://backend:8080/rest/my_api";
        let url = url::Url::parse(text).map_err(|_| EXPECTED)?;
        let web = matches!(url.scheme(), "http" | "https") && url.host_str().is_some();
        web.then(|| text.trim_end_matches('/').to_string())
            .ok_or(EXPECTED)
    }
    fn show(value: &String) -> String {
        value.clone()
    }
}

/// `hls_player_url`: where the demo page loads its HLS player script from: an absolute
/// http(s) URL with a host, or a path on the server's own origin (`/...`), kept as written.
pub struct ScriptUrl;

impl Form for ScriptUrl {
    type Value = String;
    fn parse(text: &str) -> Result<String, &'static str> {
        const EXPECTED: &str = "expected an http:// or https:// URL, or a path starting with /";
        let path = text.starts_with('/') && !text.starts_with("//");
        let web = url::Url::parse(text)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
        // The page writes it into a script element's src: no quotes or spaces to escape.
        let plain =
            !text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<');
        ((path || web) && plain)
            .then(|| text.to_string())
            .ok_or(EXPECTED)
    }
    fn show(value: &String) -> String {
        value.clone()
    }
}

/// `rest_request_timeout` in seconds. WCS reads 0 as "no limit"; a hook nobody answers
/// must not hold a client forever, so 0 is the longest allowed wait, 60 s.
pub struct HookSeconds;

impl Form for HookSeconds {
    type Value = Duration;
    fn parse(text: &str) -> Result<Duration, &'static str> {
        match text.parse::<u64>() {
            Ok(0) => Ok(Duration::from_secs(60)),
            Ok(n @ 1..=60) => Ok(Duration::from_secs(n)),
            _ => Err("expected a number of seconds, 0 (at most 60) to 60"),
        }
    }
    fn show(value: &Duration) -> String {
        value.as_secs().to_string()
    }
}

/// One REST user (`rest_auth_users`). Debug hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RestUser {
    /// The user name.
    pub name: String,
    /// The password (never shown).
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

/// `rest_auth_users`: [`parse_rest_users`], or nobody when empty.
pub struct RestUsers;

impl Form for RestUsers {
    type Value = Vec<RestUser>;
    fn parse(text: &str) -> Result<Vec<RestUser>, &'static str> {
        if text.is_empty() {
            Ok(Vec::new())
        } else {
            parse_rest_users(text)
        }
    }
    fn show(value: &Vec<RestUser>) -> String {
        join(value.iter().map(|u| format!("{}:{}", u.name, u.password)))
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
            if !matches!(scheme, "http" | "https") || !is_host_text(host) {
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

/// `rest_allowed_origins`, `whep_allowed_origins`.
pub struct Origins;

impl Form for Origins {
    type Value = AllowedOrigins;
    fn parse(text: &str) -> Result<AllowedOrigins, &'static str> {
        AllowedOrigins::parse(text)
    }
    fn show(value: &AllowedOrigins) -> String {
        value.to_text()
    }
}

/// A non-empty host part: host-name and address characters, with an optional port
/// (`example.com`, `127.0.0.1:9000`, `[::1]:9000`).
pub(super) fn is_host_text(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

/// Items joined with `,`, the list form every list key reads.
pub(super) fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// The form of log lines (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Plain text, for people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `text` or `json`, any case.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// The setting's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl Form for LogFormat {
    type Value = LogFormat;
    fn parse(text: &str) -> Result<LogFormat, &'static str> {
        LogFormat::parse(text).ok_or("expected text or json")
    }
    fn show(value: &LogFormat) -> String {
        value.as_str().to_string()
    }
}

/// A bearer token an operator chose (`metrics_token`): 16 to 256 visible ASCII
/// characters, no spaces, so it fits an `Authorization: Bearer` header as written and
/// is not trivially guessed.
pub struct Token;

impl Form for Token {
    type Value = String;
    fn parse(text: &str) -> Result<String, &'static str> {
        let fits = (16..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        if fits {
            Ok(text.to_string())
        } else {
            Err("expected a token of 16 to 256 visible ASCII characters (no spaces)")
        }
    }
    fn show(value: &String) -> String {
        value.clone()
    }
}
