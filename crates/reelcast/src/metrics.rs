//! Prometheus metrics at `GET /metrics` (text format 0.0.4), served by `admin` on the
//! HTTP port or `metrics_port`, behind `metrics_token` or the REST Basic auth. Names and
//! meanings: docs/OPERATIONS.md;
//! the Grafana dashboard `packaging/grafana/reelcast.json` uses exactly these names.
//!
//! Two kinds of numbers:
//! - **counters** bumped where things happen: on the hot path (the hub's sends and
//!   receives, NACKs, RTX, PLIs) each is one relaxed atomic add per batch or per RTCP
//!   packet, never a lock, never per viewer-and-packet work beyond that add;
//! - **histograms** observed once per event: a viewer's time to first frame (one
//!   observation per play, [`PlayRequest::first_frame_sent`]), an S3 request's latency;
//! - **gauges** read when scraped: streams and viewers from the registry (no label per
//!   stream or viewer: per-stream detail is REST's `/stream/find_all`), and the
//!   process's CPU (a counter), memory, open files and threads from `/proc/self`;
//!   transcoders busy, held by the streams that transcode ([`TranscoderBusy`]; video
//!   ones: [`VideoTranscoderBusy`]).
//!
//! HLS readers are viewers (`protocol="hls"`) and translations with an HLS window are
//! also counted as `kind="hls"`. Browsers' published streams (WCS SDK, WHIP) are
//! `kind="published"`; their viewers are counted by protocol as every viewer is.
//!
//! Owns: the metric set and its text form. Must not: hold anything a scrape could grow
//! (label values are fixed words, never names from clients).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Upper bounds of the time-to-first-frame buckets, in seconds: the ICE and DTLS
/// handshake and the first keyframe (or the cached GOP) take 0.1-2 s on a good network.
const FIRST_FRAME_BUCKETS: [f64; 11] = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
/// Upper bounds of the S3 request latency buckets, in seconds (a request's answer head;
/// a silent store is given up on after 5 s, a connection after 3 s).
const S3_LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every value of the `outcome` label of `reelcast_s3_requests_total`.
pub const S3_OUTCOMES: [&str; 5] = ["ok", "not_found", "denied", "transient", "failed"];

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// RTP/RTCP/STUN/DTLS bytes the media port sent.
    pub udp_sent_bytes: Counter,
    /// Datagrams the media port sent.
    pub udp_sent_packets: Counter,
    /// Bytes the media port received.
    pub udp_received_bytes: Counter,
    /// Datagrams the media port received.
    pub udp_received_packets: Counter,
    /// Datagrams refused by a full socket send buffer (dropped as a network would).
    pub udp_send_dropped: Counter,
    /// Lost packets viewers asked for (NACK).
    pub nack_requested: Counter,
    /// Lost packets re-sent (RTX or as they were).
    pub rtx_sent: Counter,
    /// Picture-loss requests (PLI/FIR) from viewers.
    pub keyframe_requests: Counter,
    /// Plays started, by protocol.
    pub plays_started: Family<Labels, Counter>,
    /// Viewers told their link carries less than their stream sends, by protocol.
    bandwidth_short: Family<Labels, Counter>,
    /// Viewers moved to a lower rendition of their stream or back up, by direction.
    rendition_moves: Family<Labels, Counter>,
    /// Plays refused, by fixed reason.
    pub play_failures: Family<Labels, Counter>,
    /// Object bytes S3 answers carried (bodies of ranged GETs, not error documents).
    pub s3_fetched_bytes: Counter,
    /// S3 requests, by outcome (one of [`S3_OUTCOMES`]).
    s3_requests: Family<Labels, Counter>,
    /// S3 requests made again after a transient failure (or a body cut short).
    pub s3_retries: Counter,
    s3_request_seconds: Histogram,
    time_to_first_frame: Histograms,
    transcoders_busy: Gauge,
    video_transcoders_busy: Gauge,
    hls_abr_rungs: Gauge,
    /// Personal VODs of a file needing video transcoding played from the transcode cache.
    pub transcode_cache_hits: Counter,
    /// Such plays with no usable cache entry (transcoded as they play).
    pub transcode_cache_misses: Counter,
    /// Cache entries removed to stay under `transcode_cache_max_size`.
    pub transcode_cache_evictions: Counter,
    /// Bytes the finished cache entries take now.
    pub transcode_cache_bytes: Gauge,
    streams: Family<Labels, Gauge>,
    viewers: Family<Labels, Gauge>,
    recordings: Family<Labels, Gauge>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("reelcast");
        let m = Metrics {
            udp_sent_bytes: Counter::default(),
            udp_sent_packets: Counter::default(),
            udp_received_bytes: Counter::default(),
            udp_received_packets: Counter::default(),
            udp_send_dropped: Counter::default(),
            nack_requested: Counter::default(),
            rtx_sent: Counter::default(),
            keyframe_requests: Counter::default(),
            plays_started: Family::default(),
            bandwidth_short: Family::default(),
            rendition_moves: Family::default(),
            play_failures: Family::default(),
            s3_fetched_bytes: Counter::default(),
            s3_requests: Family::default(),
            s3_retries: Counter::default(),
            s3_request_seconds: Histogram::new(S3_LATENCY_BUCKETS),
            time_to_first_frame: Family::new_with_constructor(|| {
                Histogram::new(FIRST_FRAME_BUCKETS)
            }),
            transcoders_busy: Gauge::default(),
            video_transcoders_busy: Gauge::default(),
            hls_abr_rungs: Gauge::default(),
            transcode_cache_hits: Counter::default(),
            transcode_cache_misses: Counter::default(),
            transcode_cache_evictions: Counter::default(),
            transcode_cache_bytes: Gauge::default(),
            streams: Family::default(),
            viewers: Family::default(),
            recordings: Family::default(),
            registry: Registry::default(),
        };
        let info: Family<Labels, Gauge> = Family::default();
        info.get_or_create(&vec![
            ("version", crate::VERSION),
            ("commit", crate::COMMIT),
        ])
        .set(1);
        r.register("build_info", "The version and commit of this build", info);
        r.register(
            "udp_sent_bytes",
            "Bytes sent on the WebRTC UDP port",
            m.udp_sent_bytes.clone(),
        );
        r.register(
            "udp_sent_packets",
            "Datagrams sent on the WebRTC UDP port",
            m.udp_sent_packets.clone(),
        );
        r.register(
            "udp_received_bytes",
            "Bytes received on the WebRTC UDP port",
            m.udp_received_bytes.clone(),
        );
        r.register(
            "udp_received_packets",
            "Datagrams received on the WebRTC UDP port",
            m.udp_received_packets.clone(),
        );
        r.register(
            "udp_send_dropped_packets",
            "Datagrams dropped because the socket's send buffer was full",
            m.udp_send_dropped.clone(),
        );
        r.register(
            "nack_requested_packets",
            "Lost video packets viewers asked for again (NACK)",
            m.nack_requested.clone(),
        );
        r.register(
            "rtx_sent_packets",
            "Video packets sent again in answer to NACKs",
            m.rtx_sent.clone(),
        );
        r.register(
            "keyframe_requests",
            "Picture-loss requests (PLI/FIR) from viewers",
            m.keyframe_requests.clone(),
        );
        r.register(
            "plays_started",
            "Plays answered, by signalling protocol (wcs, whep; hls: readers begun)",
            m.plays_started.clone(),
        );
        r.register(
            "viewer_bandwidth_short",
            "Sustained shortfalls of viewers' links (the stream's bit rate above what the link \
             carries, from receiver reports), by protocol (wcs: the SDK is told, whep: logged)",
            m.bandwidth_short.clone(),
        );
        r.register(
            "viewer_rendition_moves",
            "Viewers moved for their link, by direction (down: to a lower rendition of their \
             stream, up: back to the stream they joined)",
            m.rendition_moves.clone(),
        );
        r.register(
            "play_failures",
            "Plays refused or failed before their answer, by reason (fixed words)",
            m.play_failures.clone(),
        );
        r.register(
            "streams",
            "Streams running now, by kind (personal, translation, hls: translations with HLS) and state",
            m.streams.clone(),
        );
        r.register(
            "viewers",
            "Viewers now, by protocol (wcs, whep, hls)",
            m.viewers.clone(),
        );
        r.register(
            "recordings",
            "Recordings of running streams now, by state (recording, finalizing, failed)",
            m.recordings.clone(),
        );
        r.register(
            "time_to_first_frame_seconds",
            "From a play request (WCS playStream, WHEP POST) to the first video frame sent \
             to that viewer, by protocol (wcs, whep)",
            m.time_to_first_frame.clone(),
        );
        r.register(
            "transcoders_busy",
            "Audio transcoders (AAC to Opus) running now: one per stream with AAC audio",
            m.transcoders_busy.clone(),
        );
        r.register(
            "video_transcoders_busy",
            "Video transcoders (decode, then H.264 encode) running now: one per stream whose \
             file browsers cannot take as it is (a translation's is shared by its viewers)",
            m.video_transcoders_busy.clone(),
        );
        r.register(
            "hls_abr_rungs",
            "HLS ABR ladder rungs running now: one video encoder each, shared by every reader \
             of the ladders that offer it (also counted in video_transcoders_busy)",
            m.hls_abr_rungs.clone(),
        );
        r.register(
            "transcode_cache_hits",
            "Personal VODs of a file that needs video transcoding played from the transcode cache",
            m.transcode_cache_hits.clone(),
        );
        r.register(
            "transcode_cache_misses",
            "Personal VODs of a file that needs video transcoding with no finished cache entry",
            m.transcode_cache_misses.clone(),
        );
        r.register(
            "transcode_cache_evictions",
            "Transcode cache entries removed, least recently used first, to stay under its size limit",
            m.transcode_cache_evictions.clone(),
        );
        r.register(
            "transcode_cache_bytes",
            "Bytes the finished transcode cache entries take",
            m.transcode_cache_bytes.clone(),
        );
        r.register(
            "s3_fetched_bytes",
            "Object bytes received from S3 stores",
            m.s3_fetched_bytes.clone(),
        );
        r.register(
            "s3_requests",
            "S3 requests by outcome (ok, not_found, denied, transient, failed)",
            m.s3_requests.clone(),
        );
        r.register(
            "s3_retries",
            "S3 requests made again after a transient failure or a body cut short",
            m.s3_retries.clone(),
        );
        r.register(
            "s3_request_duration_seconds",
            "From sending an S3 request to its answer's head (or its failure)",
            m.s3_request_seconds.clone(),
        );
        r.register_collector(Box::new(process::Collector));
        // Every label value exists from the start, so a rate over it is 0, not absent.
        let _ = m.plays_started.get_or_create(&vec![("protocol", "hls")]);
        for protocol in ["wcs", "whep"] {
            let _ = m.plays_started.get_or_create(&vec![("protocol", protocol)]);
            let _ = m
                .bandwidth_short
                .get_or_create(&vec![("protocol", protocol)]);
            let _ = m
                .time_to_first_frame
                .get_or_create(&vec![("protocol", protocol)]);
        }
        for direction in ["down", "up"] {
            let _ = m
                .rendition_moves
                .get_or_create(&vec![("direction", direction)]);
        }
        for outcome in S3_OUTCOMES {
            let _ = m.s3_requests.get_or_create(&vec![("outcome", outcome)]);
        }
        for reason in FAILURE_REASONS {
            let _ = m.play_failures.get_or_create(&vec![("reason", reason)]);
        }
        Metrics { registry: r, ..m }
    }

    /// Counts a viewer moved for its link: `down` to a lower rendition, `up` back.
    pub fn count_rendition_move(&self, direction: &'static str) {
        self.rendition_moves
            .get_or_create(&vec![("direction", direction)])
            .inc();
    }

    /// Counts a viewer told its link is too narrow, by protocol.
    pub fn count_bandwidth_short(&self, protocol: &'static str) {
        self.bandwidth_short
            .get_or_create(&vec![("protocol", protocol)])
            .inc();
    }

    /// Counts a play's outcome at its start (`playback::start`): started, or refused
    /// for a fixed `reason` (one of the `reason` label's words).
    pub fn count_play(&self, protocol: &'static str, result: Result<(), &'static str>) {
        match result {
            Ok(()) => self
                .plays_started
                .get_or_create(&vec![("protocol", protocol)])
                .inc(),
            Err(reason) => self
                .play_failures
                .get_or_create(&vec![("reason", reason)])
                .inc(),
        };
    }

    /// Counts one S3 request that took `took`, with its `outcome` (one of
    /// [`S3_OUTCOMES`]).
    pub fn count_s3_request(&self, outcome: &'static str, took: Duration) {
        self.s3_requests
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
        self.s3_request_seconds.observe(took.as_secs_f64());
    }

    /// The text form, with the gauges set from `now` and the process's own numbers.
    pub fn render(&self, now: &Gauges) -> String {
        self.set_gauges(now);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        classic_text(&text)
    }

    fn set_gauges(&self, now: &Gauges) {
        let state = if now.draining { "stopping" } else { "playing" };
        // Reset first: a state that has no stream now must read 0, not its last value.
        for kind in ["personal", "translation", "hls", "published"] {
            for st in ["playing", "stopping"] {
                self.streams
                    .get_or_create(&vec![("kind", kind), ("state", st)])
                    .set(0);
            }
        }
        self.streams
            .get_or_create(&vec![("kind", "personal"), ("state", state)])
            .set(now.personal as i64);
        self.streams
            .get_or_create(&vec![("kind", "translation"), ("state", state)])
            .set(now.translations as i64);
        self.streams
            .get_or_create(&vec![("kind", "hls"), ("state", state)])
            .set(now.hls_streams as i64);
        self.streams
            .get_or_create(&vec![("kind", "published"), ("state", state)])
            .set(now.published as i64);
        for (protocol, n) in [
            ("wcs", now.wcs_viewers),
            ("whep", now.whep_viewers),
            ("hls", now.hls_viewers),
        ] {
            self.viewers
                .get_or_create(&vec![("protocol", protocol)])
                .set(n as i64);
        }
        for (state, n) in [
            ("recording", now.recordings.recording),
            ("finalizing", now.recordings.finalizing),
            ("failed", now.recordings.failed),
        ] {
            self.recordings
                .get_or_create(&vec![("state", state)])
                .set(n as i64);
        }
    }
}

/// When a viewer asked to play and by which protocol: where its time to first frame
/// starts. Handed to the viewer with its plan; the viewer says when its first video
/// frame went out.
#[derive(Debug, Clone, Copy)]
pub struct PlayRequest {
    /// When the request arrived (WCS `playStream` read, WHEP POST received).
    pub at: Instant,
    /// `"wcs"` or `"whep"` (a fixed word: it is a label value).
    pub protocol: &'static str,
}

impl PlayRequest {
    /// The viewer's first video frame was sent at `now`: observes its time to first
    /// frame. Called once per viewer.
    pub fn first_frame_sent(&self, now: Instant) {
        METRICS
            .time_to_first_frame
            .get_or_create(&vec![("protocol", self.protocol)])
            .observe(now.saturating_duration_since(self.at).as_secs_f64());
    }
}

/// One audio transcoder at work, counted in `reelcast_transcoders_busy` while this
/// lives (held by the stream reader that owns the transcoder).
#[derive(Debug)]
pub struct TranscoderBusy(());

impl TranscoderBusy {
    /// Counts one more transcoder until the value is dropped.
    pub fn start() -> Self {
        METRICS.transcoders_busy.inc();
        TranscoderBusy(())
    }
}

impl Drop for TranscoderBusy {
    fn drop(&mut self) {
        METRICS.transcoders_busy.dec();
    }
}

/// One rung of an HLS ABR ladder at work, counted in `reelcast_hls_abr_rungs` while this
/// lives (held by the rung's encoder thread).
#[derive(Debug)]
pub struct HlsAbrRung(());

impl HlsAbrRung {
    /// Counts one more rung.
    pub fn start() -> Self {
        METRICS.hls_abr_rungs.inc();
        HlsAbrRung(())
    }
}

impl Drop for HlsAbrRung {
    fn drop(&mut self) {
        METRICS.hls_abr_rungs.dec();
    }
}

/// One video transcoder at work, counted in `reelcast_video_transcoders_busy` while this
/// lives (held by the stream's transcode thread); the gauge is also the count that the
/// server's limit on concurrent encoders is checked against.
#[derive(Debug)]
pub struct VideoTranscoderBusy(());

impl VideoTranscoderBusy {
    /// Counts one more video transcoder, unless `limit` (0: none) are already at work.
    pub fn try_start(limit: usize) -> Option<Self> {
        let before = METRICS.video_transcoders_busy.inc();
        if limit > 0 && before >= i64::try_from(limit).unwrap_or(i64::MAX) {
            METRICS.video_transcoders_busy.dec();
            return None;
        }
        Some(VideoTranscoderBusy(()))
    }
}

impl Drop for VideoTranscoderBusy {
    fn drop(&mut self) {
        METRICS.video_transcoders_busy.dec();
    }
}

/// What the gauges read at a scrape, counted by whoever holds the streams (`admin`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Personal VODs playing.
    pub personal: usize,
    /// Live translations running.
    pub translations: usize,
    /// The server is shutting down.
    pub draining: bool,
    /// Viewers by protocol.
    pub wcs_viewers: usize,
    /// Viewers by protocol.
    pub whep_viewers: usize,
    /// HLS readers (`hls_http::readers`).
    pub hls_viewers: usize,
    /// Translations with an HLS window.
    pub hls_streams: usize,
    /// Browsers' published streams running.
    pub published: usize,
    /// Recordings of running streams, by state.
    pub recordings: RecordingCounts,
}

/// Recordings by state (a finished one is not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordingCounts {
    /// Being written.
    pub recording: usize,
    /// Stopped, being made into the final file.
    pub finalizing: usize,
    /// Stopped by an error (a full disk); the stream went on.
    pub failed: usize,
}

/// prometheus-client writes OpenMetrics, whose counter families are named without
/// `_total` and which ends with `# EOF`; the classic text format (0.0.4, what
/// `promtool check metrics` and every Prometheus read) names the family as its samples.
fn classic_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every value of the `reason` label of `reelcast_play_failures_total`.
pub const FAILURE_REASONS: [&str; 10] = [
    "file_not_found",
    "wrong_format",
    "read_failed",
    "streaming",
    "unknown_storage",
    "stream_not_found",
    "restricted",
    "internal",
    "shutting_down",
    "other",
];

/// The process's own numbers, from `/proc/self` (Linux), read at each scrape.
mod process {
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on Linux).
    const TICKS: f64 = 100.0;

    #[derive(Default)]
    pub(super) struct Process {
        pub cpu_seconds: f64,
        pub resident_bytes: u64,
        pub open_fds: u64,
        pub threads: u64,
    }

    /// Writes the process's numbers into a scrape: CPU time as a counter (it only
    /// grows; `rate()` of it is cores busy), the rest as gauges.
    #[derive(Debug)]
    pub(super) struct Collector;

    impl prometheus_client::collector::Collector for Collector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let p = read();
            let cpu = ConstCounter::new(p.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "CPU time the process used, user and system",
                None,
                cpu.metric_type(),
            )?)?;
            for (name, help, value) in [
                (
                    "process_resident_memory_bytes",
                    "Resident memory of the process",
                    p.resident_bytes,
                ),
                (
                    "process_open_fds",
                    "File descriptors the process holds open (sockets included)",
                    p.open_fds,
                ),
                ("process_threads", "Threads of the process", p.threads),
            ] {
                let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
            Ok(())
        }
    }

    pub(super) fn read() -> Process {
        let mut p = Process::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which may hold spaces), from field 3 on.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
                // utime and stime are fields 14 and 15: indexes 11 and 12 here.
                p.cpu_seconds = (tick(11).unwrap_or(0.0) + tick(12).unwrap_or(0.0)) / TICKS;
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                let value = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                };
                if line.starts_with("VmRSS:") {
                    p.resident_bytes = value(line).unwrap_or(0) * 1024;
                } else if line.starts_with("Threads:") {
                    p.threads = value(line).unwrap_or(0);
                }
            }
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        p
    }
}
