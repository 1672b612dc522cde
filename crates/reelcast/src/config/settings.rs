//! The [`Settings`] every other module reads, and their built-in defaults.
//!
//! Owns: the struct (its field names and types are what the rest of the server uses),
//! [`Settings::default`] (the one place a default is written), and lookups derived
//! from fields ([`Settings::udp_port`], [`Settings::s3_credentials_for`]). Sits below
//! `keys`: reading and writing a key by name (`set`, `get`, `Debug`) is `access`'s.
//! Must not: read files or the environment (that is `load`), or parse a value itself
//! (that is the key's form, `values` and `s3`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::allowed_endpoint::AllowedEndpoint;
use super::record::{RecordAudioCodec, RecordPolicy};
use super::s3::{S3Addressing, S3Credentials};
use super::values::{AllowedOrigins, LogFormat, RestUser};

/// The server's settings. Build with [`Settings::default`] and adjust fields (tests),
/// or [`load`](super::load()) them from the user's sources (the binary).
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `media_dir`: the folder `vod://NAME` and `vod-live://NAME` are read from.
    pub media_dir: PathBuf,
    /// `record_dir`: the folder recordings are written to; `vod://NAME` is looked for
    /// here when `media_dir` has no such file.
    pub record_dir: PathBuf,
    /// `record_streams`: every published stream is recorded.
    pub record_streams: bool,
    /// `record_audio_codec`: AAC (re-encoded) or Opus (as it came) in recordings.
    pub record_audio_codec: RecordAudioCodec,
    /// `stream_record_policy`: name recordings by template or by stream name.
    pub stream_record_policy: RecordPolicy,
    /// `stream_record_policy_template`: the file name template (`.mp4` is added).
    pub stream_record_policy_template: String,
    /// `on_record_hook_script`: run after a recording is finalized.
    pub on_record_hook_script: Option<PathBuf>,
    /// `http.port`: REST API (`/rest-api/...`).
    pub http_port: u16,
    /// `ws.port`: WebSocket signalling, where the WCS browser SDK connects.
    pub ws_port: u16,
    /// `media_port`: the one UDP port every WebRTC viewer shares. `None`: the first port
    /// of `media_port_from`–`media_port_to` (see [`Settings::udp_port`]).
    pub media_port: Option<u16>,
    /// `media_port_from`: first port of WCS's media port range, which a WCS firewall
    /// opens; reelcast takes this one port of it when `media_port` is not set.
    pub media_port_from: u16,
    /// `media_port_to`: last port of that range (checked, not used: one port is enough).
    pub media_port_to: u16,
    /// `ice_tcp_transport`: the media port's number is also listened on over TCP, and
    /// answers carry passive TCP candidates (RFC 6544) for viewers whose network blocks UDP.
    pub ice_tcp_transport: bool,
    /// `ip`: the addresses announced in ICE candidates (e.g. the public one behind NAT,
    /// a private one, an IPv6 one), each a candidate. Empty: see `webrtc::announce`.
    pub ip: Vec<IpAddr>,
    /// `ip_local`: the address the server binds to.
    pub ip_local: IpAddr,
    /// `vod_stream_timeout`: how long a VOD stream stays up after its last viewer left.
    pub vod_stream_timeout: Duration,
    /// `vod_live_loop`: a live translation restarts at the end of its file.
    pub vod_live_loop: bool,
    /// `publisher_rtp_timeout`: how long a WebRTC publisher may send no media (or take to
    /// connect) before it fails (`Failed by RTP activity`).
    pub publisher_rtp_timeout: Duration,
    /// `publisher_start_bitrate`: kbit/s a publishing Chromium starts its bandwidth
    /// estimate at (`x-google-start-bitrate` in our answer; at least 1; Chromium's own is 300).
    pub publisher_start_bitrate: u32,
    /// `hls.port`: the HLS port (WCS: 8082); `None`: no HLS (and translations read no AAC
    /// for it).
    pub hls_port: Option<u16>,
    /// `hls_auto_start`: a playlist request for a translation that is not running starts it.
    pub hls_auto_start: bool,
    /// `hls_auth_enabled`: HLS requests carry `?token=`, checked by the `/playHLS` hook.
    pub hls_auth_enabled: bool,
    /// `hls_auth_token_cache`: seconds a `/playHLS` verdict is kept per token and stream.
    pub hls_auth_token_cache: u64,
    /// `hls_list_size`: complete segments a playlist lists and the server keeps.
    pub hls_list_size: usize,
    /// `hls_target_duration`: a segment lasts at least this (cut at the next keyframe).
    pub hls_target_duration: Duration,
    /// `ll_hls_part_target`: a partial segment lasts at most this.
    pub ll_hls_part_target: Duration,
    /// `hls_muxer_idle_timeout`: a published stream's HLS muxer (attached on the first
    /// request, its audio re-encoded) closes after this long without a request.
    pub hls_muxer_idle_timeout: Duration,
    /// `hls_abr_auto_start` (WCS's key): a request for `NAME-HLS-ABR-STREAM` starts the
    /// ladder of NAME's renditions; false: the ABR form is not served.
    pub hls_abr_auto_start: bool,
    /// `hls_abr_ladder`: the renditions an ABR playlist offers below its source.
    pub hls_abr_ladder: Vec<super::ladder::Rung>,
    /// `hls_max_window_mb`: what one stream's segments may hold in memory, MiB.
    pub hls_max_window_mb: u64,
    /// `hls_player_url`: the hls.js script the demo page's HLS player loads.
    pub hls_player_url: String,
    /// `disable_rest_auth`: `false` turns on HTTP Basic auth for REST.
    pub disable_rest_auth: bool,
    /// `rest_auth_users`: who may call REST when auth is on, as `user:password` pairs
    /// (the text form is `admin:secret,ops:pw2`). A secret: never logged.
    pub rest_auth_users: Vec<RestUser>,
    /// `https.port`: the HTTP app (page, WHEP, REST) over TLS; bound only with a certificate.
    pub https_port: u16,
    /// `wss.port`: WCS WebSocket signalling over TLS; bound only with a certificate.
    pub wss_port: u16,
    /// `hls.https.port`: HLS (as on `hls.port`) over TLS with `https.cert` (WCS: 8445);
    /// `None`: no HLS over TLS.
    pub hls_https_port: Option<u16>,
    /// `https.cert`: PEM certificate chain (server certificate first) for HTTPS and WSS.
    pub https_cert: Option<PathBuf>,
    /// `https.key`: the PEM private key of `https.cert`.
    pub https_key: Option<PathBuf>,
    /// `keep_alive.server_interval`: how often the server pings each WebSocket session.
    pub keep_alive_server_interval: Duration,
    /// `keep_alive.probes`: server pings in a row a WebSocket session may leave
    /// unanswered; at the next ping time it is closed and its streams end.
    pub keep_alive_probes: u32,
    /// `ws.max_message_size`: largest signalling message accepted, in bytes.
    pub signalling_max_message_bytes: usize,
    /// `ws.max_sessions`: WebSocket sessions open at once, in total (WS and WSS).
    pub ws_max_sessions: usize,
    /// `ws.max_sessions_per_client`: WebSocket sessions open at once from one address.
    pub ws_max_sessions_per_client: usize,
    /// `ws.max_streams_per_session`: streams one WebSocket session may play at once.
    pub ws_max_streams_per_session: usize,
    /// `max_publishers`: streams that may be published at once (WCS SDK and WHIP).
    pub max_publishers: usize,
    /// `http.header_read_timeout`: a request's head must arrive within this, and a
    /// kept-alive connection is closed after this long without a next request.
    pub http_header_read_timeout: Duration,
    /// `http.idle_timeout`: longest wait for the next piece of a request body, or for a
    /// client to take the next bytes of an answer.
    pub http_idle_timeout: Duration,
    /// `http.max_connections`: open TCP connections per port (each of http, ws, https, wss).
    pub http_max_connections: usize,
    /// `http.max_connections_per_client`: open TCP connections per port from one address.
    pub http_max_connections_per_client: usize,
    /// `rest_allowed_origins`: web origins whose pages may call REST from a browser
    /// (CORS). Empty: none (no CORS headers); `*`: any.
    pub rest_allowed_origins: AllowedOrigins,
    /// `whep_allowed_origins`: web origins whose pages may use WHEP from a browser.
    pub whep_allowed_origins: AllowedOrigins,
    /// `rest_hook_url`: the application's backend, asked `/connect` and `/playStream`
    /// before a session or play goes on ([`crate::hooks`]). `None`: no hooks.
    pub rest_hook_url: Option<String>,
    /// `disable_rest_requests`: `true` calls no hooks even with `rest_hook_url` set.
    pub disable_rest_requests: bool,
    /// `rest_request_timeout`: how long a hook's answer is awaited (WCS: seconds).
    pub rest_request_timeout: Duration,
    /// `aws_s3_credentials`: `region;access_key_id;secret`, for every S3 endpoint that
    /// has no credentials of its own. A secret: never logged.
    pub aws_s3_credentials: Option<S3Credentials>,
    /// `aws_s3_credentials.HOST[:PORT]`: credentials for one endpoint, keyed by the
    /// lower-cased host as written (`nyc3.digitaloceanspaces.com`, `127.0.0.1:9000`).
    pub aws_s3_host_credentials: BTreeMap<String, S3Credentials>,
    /// `aws_s3_endpoint`: where `vod://s3/BUCKET/KEY` (no URL in the name) is fetched
    /// from, `http[s]://host[:port]`. `None`: AWS, `https://s3.REGION.amazonaws.com`.
    pub aws_s3_endpoint: Option<String>,
    /// `aws_s3_addressing`: path-style or virtual-host-style requests.
    pub aws_s3_addressing: S3Addressing,
    /// `aws_s3_ca_file`: PEM CA certificates trusted for S3 endpoints over HTTPS, next
    /// to the system's (a store with a private or self-signed CA).
    pub aws_s3_ca_file: Option<PathBuf>,
    /// `aws_s3_allowed_endpoints`: the stores that names with a full URL
    /// (`vod://s3/https://host/...`) may reach, besides `aws_s3_endpoint` and the hosts
    /// with their own credentials (see `source::s3::allowed`).
    pub aws_s3_allowed_endpoints: Vec<AllowedEndpoint>,
    /// `aws_s3_allow_private_addresses`: S3 requests may connect to loopback, private,
    /// link-local and other non-public addresses.
    pub aws_s3_allow_private_addresses: bool,
    /// `vod_mp4_container_new`: play an S3 file while it is still downloading.
    pub vod_mp4_container_new: bool,
    /// `vod_mp4_container_new_buffer_ms`: read-ahead for that, in ms of media.
    pub vod_mp4_container_new_buffer_ms: u64,
    /// `vod_index_memory_mb`: memory all streams together may hold for the in-memory
    /// sample indexes of fragmented files (`stream::budget`), in MiB.
    pub vod_index_memory_mb: u64,
    /// `transcoding_disabled` (WCS's): a file that browsers cannot take as it is (video
    /// other than H.264 without B-frames) fails with `Transcoding required, but disabled`
    /// instead of being transcoded.
    pub transcoding_disabled: bool,
    /// `h264_b_frames_force_transcoding` (WCS's): HLS of a translation of an H.264 file
    /// with B-frames carries the re-encode WebRTC viewers get (re-encoded whoever watches)
    /// instead of the file's own pictures. `false`: HLS gets the file's H.264 as it is and
    /// the re-encode runs only while WebRTC viewers (or a recording, a rendition) need it.
    pub h264_b_frames_force_transcoding: bool,
    /// `video_transcoders_max` (reelcast's own): how many video transcodes may run at
    /// once (each takes about one core); a play that would start one more fails with
    /// `No available transcoders` (WCS's words). `None`: no limit.
    pub video_transcoders_max: Option<usize>,
    /// `rendition_moves` (reelcast's own): a viewer of a translation or published stream
    /// whose link stays too narrow is moved to a lower rendition of it (started if none
    /// runs, within `video_transcoders_max`), and back up when its link recovers.
    pub rendition_moves: bool,
    /// `transcode_cache_dir` (reelcast's own): where a personal VOD's transcoded video
    /// is kept for the next plays of the same file (`stream::transcode_cache`); a
    /// relative path is inside `record_dir`; empty: no cache.
    pub transcode_cache_dir: PathBuf,
    /// `transcode_cache_max_size` (reelcast's own): bytes the cache may hold; the least
    /// recently used entries go first. 0: no cache.
    pub transcode_cache_max_size: u64,
    /// `shutdown_grace_period` (reelcast's own; WCS has none): after SIGTERM, how long
    /// viewers' streams and sessions are given to end before the process exits anyway.
    pub shutdown_grace_period: Duration,
    /// `log_format` (reelcast's own): `text` or `json` lines ([`crate::logging`]).
    pub log_format: LogFormat,
    /// `metrics_port` (reelcast's own): a TCP port that serves `/metrics` alone (and
    /// the HTTP port then does not). `None`: `/metrics` is on `http.port`.
    pub metrics_port: Option<u16>,
    /// `metrics_token` (reelcast's own): when set, `/metrics` needs
    /// `Authorization: Bearer TOKEN` with it, instead of the REST auth.
    pub metrics_token: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            media_dir: PathBuf::from("./media"),
            record_dir: PathBuf::from("./records"),
            record_streams: false,
            record_audio_codec: RecordAudioCodec::Aac,
            stream_record_policy: RecordPolicy::Template,
            stream_record_policy_template: "stream-{mediaSessionId}-{login}".to_string(),
            on_record_hook_script: None,
            http_port: 8081,
            ws_port: 8080,
            media_port: None,
            media_port_from: 31001,
            media_port_to: 32000,
            ice_tcp_transport: true,
            ip: Vec::new(),
            ip_local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            vod_stream_timeout: Duration::from_millis(30_000),
            vod_live_loop: false,
            publisher_rtp_timeout: Duration::from_millis(10_000),
            publisher_start_bitrate: 1500,
            hls_port: None,
            hls_auto_start: true,
            hls_auth_enabled: false,
            hls_auth_token_cache: 10,
            hls_list_size: 8,
            hls_target_duration: Duration::from_millis(2000),
            ll_hls_part_target: Duration::from_millis(500),
            hls_muxer_idle_timeout: Duration::from_millis(60_000),
            hls_abr_auto_start: true,
            hls_abr_ladder: super::ladder::default_ladder(),
            hls_max_window_mb: 64,
            hls_player_url: DEFAULT_HLS_PLAYER_URL.into(),
            disable_rest_auth: true,
            rest_auth_users: Vec::new(),
            https_port: 8444,
            wss_port: 8443,
            hls_https_port: None,
            https_cert: None,
            https_key: None,
            keep_alive_server_interval: Duration::from_millis(5_000),
            keep_alive_probes: 5,
            signalling_max_message_bytes: 1024 * 1024,
            ws_max_sessions: 10_000,
            ws_max_sessions_per_client: 100,
            ws_max_streams_per_session: 16,
            max_publishers: 100,
            http_header_read_timeout: Duration::from_millis(10_000),
            http_idle_timeout: Duration::from_millis(30_000),
            http_max_connections: 10_000,
            http_max_connections_per_client: 256,
            rest_allowed_origins: AllowedOrigins::None,
            whep_allowed_origins: AllowedOrigins::Any,
            rest_hook_url: None,
            disable_rest_requests: false,
            rest_request_timeout: Duration::from_secs(15),
            aws_s3_credentials: None,
            aws_s3_host_credentials: BTreeMap::new(),
            aws_s3_endpoint: None,
            aws_s3_addressing: S3Addressing::Auto,
            aws_s3_ca_file: None,
            aws_s3_allowed_endpoints: Vec::new(),
            aws_s3_allow_private_addresses: false,
            vod_mp4_container_new: false,
            vod_mp4_container_new_buffer_ms: 10_000,
            vod_index_memory_mb: 256,
            transcoding_disabled: false,
            h264_b_frames_force_transcoding: false,
            video_transcoders_max: None,
            rendition_moves: true,
            transcode_cache_dir: PathBuf::from(".transcode-cache"),
            transcode_cache_max_size: 10 << 30,
            shutdown_grace_period: Duration::from_millis(10_000),
            log_format: LogFormat::Text,
            metrics_port: None,
            metrics_token: None,
        }
    }
}

/// hls.js from a public CDN, at the version the tests play with (pinned: the page runs it
/// on the server's own origin, so a moving version would run code nobody here has read).
pub const DEFAULT_HLS_PLAYER_URL: &str =
    "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";

impl Settings {
    /// Whether translations are served over HLS: `hls.port` or `hls.https.port` is set.
    pub fn hls_enabled(&self) -> bool {
        self.hls_port.is_some() || self.hls_https_port.is_some()
    }

    /// The WebRTC UDP port: `media_port`, else `media_port_from` (WCS's range, which a
    /// WCS firewall already opens).
    pub fn udp_port(&self) -> u16 {
        self.media_port.unwrap_or(self.media_port_from)
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
    use crate::config::{ConfigError, Origin};

    #[test]
    fn defaults_match_wcs() {
        let s = Settings::default();
        assert_eq!(s.media_dir, PathBuf::from("./media"));
        assert_eq!((s.http_port, s.ws_port), (8081, 8080));
        // WCS's media port range; reelcast takes its first port.
        assert_eq!(
            (s.media_port, s.media_port_from, s.media_port_to),
            (None, 31001, 32000)
        );
        assert_eq!(s.udp_port(), 31001);
        assert!(s.ip.is_empty());
        assert_eq!(s.ip_local, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(s.vod_stream_timeout, Duration::from_secs(30));
        assert!(!s.vod_live_loop);
        assert!(s.disable_rest_auth);
        assert_eq!(s.keep_alive_server_interval, Duration::from_secs(5));
        assert_eq!(s.signalling_max_message_bytes, 1 << 20);
        assert_eq!(s.keep_alive_probes, 5);
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::None);
    }

    #[test]
    fn rest_hook_settings_parse_and_refuse_nonsense() {
        let mut s = Settings::default();
        assert_eq!(s.rest_hook_url, None);
        assert_eq!(s.rest_request_timeout, Duration::from_secs(15));
        let o = Origin::Flag {
            flag: "--set".into(),
        };
        s.set("rest_hook_url", "http://backend:8080/rest/my_api/", &o)
            .unwrap();
        assert_eq!(
            s.rest_hook_url.as_deref(),
            Some("http://backend:8080/rest/my_api")
        );
        assert_eq!(
            s.get("rest_hook_url").unwrap(),
            "http://backend:8080/rest/my_api"
        );
        for bad in ["backend:8080", "ftp://backend/x", "http://", "/rest"] {
            assert!(s.set("rest_hook_url", bad, &o).is_err(), "{bad}");
        }
        s.set("rest_request_timeout", "3", &o).unwrap();
        assert_eq!(s.rest_request_timeout, Duration::from_secs(3));
        s.set("rest_request_timeout", "0", &o).unwrap();
        assert_eq!(s.rest_request_timeout, Duration::from_secs(60));
        assert!(s.set("rest_request_timeout", "61", &o).is_err());
        s.set("disable_rest_requests", "true", &o).unwrap();
        assert!(s.disable_rest_requests);
        s.set("rest_hook_url", "", &o).unwrap();
        assert_eq!(s.rest_hook_url, None);
    }

    #[test]
    fn allowed_origins_parse() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("rest_allowed_origins", "*", &o).unwrap();
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::Any);
        s.set(
            "rest_allowed_origins",
            " https://App.example.com/ , http://localhost:3000",
            &o,
        )
        .unwrap();
        assert_eq!(
            s.rest_allowed_origins,
            AllowedOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ])
        );
        s.set("rest_allowed_origins", "", &o).unwrap();
        assert_eq!(s.rest_allowed_origins, AllowedOrigins::None);
        for bad in ["example.com", "ftp://x", "https://", "https://a b"] {
            assert!(s.set("rest_allowed_origins", bad, &o).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_value_check() {
        let mut s = Settings::default();
        let o = Origin::Default;
        let bad = |s: &mut Settings, k: &str, v: &str| {
            assert!(
                matches!(s.set(k, v, &o), Err(ConfigError::InvalidValue { .. })),
                "{k}={v} should be refused"
            );
        };
        for key in ["http.port", "ws.port", "media_port"] {
            bad(&mut s, key, "0");
            bad(&mut s, key, "65536");
            bad(&mut s, key, "-1");
            bad(&mut s, key, "80a");
        }
        bad(&mut s, "ip", "localhost");
        bad(&mut s, "ip_local", "300.1.1.1");
        bad(&mut s, "vod_stream_timeout", "30s");
        bad(&mut s, "vod_stream_timeout", "-5");
        bad(&mut s, "keep_alive.server_interval", "0");
        bad(&mut s, "keep_alive.probes", "0");
        bad(&mut s, "ws.max_sessions", "0");
        bad(&mut s, "ws.max_sessions_per_client", "-1");
        bad(&mut s, "ws.max_streams_per_session", "0");
        bad(&mut s, "http.header_read_timeout", "0");
        bad(&mut s, "http.idle_timeout", "10s");
        bad(&mut s, "http.max_connections", "many");
        bad(&mut s, "http.max_connections_per_client", "0");
        bad(&mut s, "disable_rest_auth", "1");
        bad(&mut s, "vod_mp4_container_new", "on");
        bad(&mut s, "ws.max_message_size", "100");
        bad(&mut s, "ws.max_message_size", "1MB");
        bad(&mut s, "vod_mp4_container_new_buffer_ms", "x");
        bad(&mut s, "aws_s3_credentials", "us-east-1;key");
        assert_eq!(s, Settings::default(), "refused values change nothing");

        s.set("ip", "::1", &o).unwrap();
        s.set("vod_stream_timeout", "0", &o).unwrap();
        s.set("vod_live_loop", " TRUE ", &o).unwrap();
        s.set("aws_s3_credentials", "ams3;key;secret", &o).unwrap();
        assert_eq!(s.ip, vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(s.vod_stream_timeout, Duration::ZERO);
        assert!(s.vod_live_loop);
        assert_eq!(
            s.aws_s3_credentials.as_ref().map(S3Credentials::to_text),
            Some("ams3;key;secret".to_string())
        );
    }

    #[test]
    fn byte_sizes_take_binary_units_and_read_back_in_the_largest_exact_one() {
        let mut s = Settings::default();
        let o = Origin::Default;
        assert_eq!(s.get("transcode_cache_max_size").unwrap(), "10G");
        for (text, bytes, back) in [
            ("1000", 1000, "1000"),
            ("0", 0, "0"),
            ("512K", 512 << 10, "512K"),
            ("3 MiB", 3 << 20, "3M"),
            ("2gb", 2 << 30, "2G"),
            ("1536M", 1536 << 20, "1536M"),
            ("1T", 1 << 40, "1T"),
            ("7b", 7, "7"),
        ] {
            s.set("transcode_cache_max_size", text, &o).unwrap();
            assert_eq!(s.transcode_cache_max_size, bytes, "{text}");
            assert_eq!(s.get("transcode_cache_max_size").unwrap(), back, "{text}");
        }
        for wrong in ["G", "1.5G", "-1", "10X", "99999999999T"] {
            assert!(
                s.set("transcode_cache_max_size", wrong, &o).is_err(),
                "{wrong}"
            );
        }
    }

    #[test]
    fn empty_value_means_default() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("http.port", "9000", &o).unwrap();
        s.set("ip", "10.0.0.1", &o).unwrap();
        s.set("http.port", "", &o).unwrap();
        s.set("ip", "  ", &o).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn ip_lists_several_addresses_of_both_families() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("ip", "203.0.113.7, 10.0.0.5,2001:db8::7", &o)
            .unwrap();
        let want: Vec<IpAddr> = ["203.0.113.7", "10.0.0.5", "2001:db8::7"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(s.ip, want);
        assert_eq!(s.get("ip").unwrap(), "203.0.113.7,10.0.0.5,2001:db8::7");
        for wrong in ["10.0.0.5,10.0.0.5", "10.0.0.5,x", "0.0.0.0"] {
            let err = s.set("ip", wrong, &o).unwrap_err().to_string();
            assert!(err.contains("several separated by commas"), "{err}");
        }
    }

    #[test]
    fn media_port_defaults_to_the_start_of_wcs_range_and_wins_when_set() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("media_port_from", "40000", &o).unwrap();
        s.set("media_port_to", "40100", &o).unwrap();
        assert_eq!(s.udp_port(), 40000);
        s.set("media_port", "31000", &o).unwrap();
        assert_eq!(s.udp_port(), 31000);
        s.set("media_port", "", &o).unwrap();
        assert_eq!(s.udp_port(), 40000);
    }

    #[test]
    fn rest_auth_users_parse_and_stay_hidden() {
        let mut s = Settings::default();
        let o = Origin::Default;
        s.set("rest_auth_users", " admin:secret , ops:p:w2 ", &o)
            .unwrap();
        let pairs: Vec<(&str, &str)> = s
            .rest_auth_users
            .iter()
            .map(|u| (u.name.as_str(), u.password.as_str()))
            .collect();
        assert_eq!(pairs, [("admin", "secret"), ("ops", "p:w2")]);
        assert_eq!(
            s.get("rest_auth_users").as_deref(),
            Some("admin:secret,ops:p:w2")
        );
        assert!(!format!("{s:?}").contains("secret"));
        for wrong in ["admin", "admin:", ":pw", "a:1,,b:2", "a:1,a:2", "a:1,b"] {
            let err = s.set("rest_auth_users", wrong, &o).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("expected user:password pairs"),
                "{wrong}: {text}"
            );
            assert!(text.contains("<hidden>"), "the value is a secret: {text}");
        }
        s.set("rest_auth_users", "", &o).unwrap();
        assert!(s.rest_auth_users.is_empty());
    }
}
