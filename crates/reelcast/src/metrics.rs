//! Prometheus metrics at `GET /metrics` on the HTTP port (text format 0.0.4), behind the
//! REST Basic auth when `disable_rest_auth=false`. Names and meanings: docs/OPERATIONS.md;
//! the Grafana dashboard `packaging/grafana/reelcast.json` uses exactly these names.
//!
//! Two kinds of numbers:
//! - **counters** bumped where things happen: on the hot path (the hub's sends and
//!   receives, NACKs, RTX, PLIs) each is one relaxed atomic add per batch or per RTCP
//!   packet, never a lock, never per viewer-and-packet work beyond that add;
//! - **gauges** read when scraped: streams and viewers from the registry (no label per
//!   stream or viewer: per-stream detail is REST's `/stream/find_all`), the process's CPU,
//!   memory, open files and threads from `/proc/self`.
//!
//! Published streams, HLS and recordings do not exist yet: their `kind`/`protocol`
//! label values (`published`, `hls`) are reserved and the gauges will count them when
//! they do.
//!
//! Owns: the metric set and its text form. Must not: hold anything a scrape could grow
//! (label values are fixed words, never names from clients).

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

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
    /// Plays refused, by fixed reason.
    pub play_failures: Family<Labels, Counter>,
    streams: Family<Labels, Gauge>,
    viewers: Family<Labels, Gauge>,
    cpu_seconds: Gauge<f64, AtomicU64>,
    resident_bytes: Gauge,
    open_fds: Gauge,
    threads: Gauge,
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
            play_failures: Family::default(),
            streams: Family::default(),
            viewers: Family::default(),
            cpu_seconds: Gauge::default(),
            resident_bytes: Gauge::default(),
            open_fds: Gauge::default(),
            threads: Gauge::default(),
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
            "Plays answered, by signalling protocol (wcs, whep)",
            m.plays_started.clone(),
        );
        r.register(
            "play_failures",
            "Plays refused or failed before their answer, by reason (fixed words)",
            m.play_failures.clone(),
        );
        r.register(
            "streams",
            "Streams running now, by kind (personal, translation) and state",
            m.streams.clone(),
        );
        r.register(
            "viewers",
            "Viewers now, by protocol (wcs, whep)",
            m.viewers.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "CPU time the process used, user and system",
            m.cpu_seconds.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            m.resident_bytes.clone(),
        );
        r.register(
            "process_open_fds",
            "File descriptors the process holds open (sockets included)",
            m.open_fds.clone(),
        );
        r.register(
            "process_threads",
            "Threads of the process",
            m.threads.clone(),
        );
        // Every label value exists from the start, so a rate over it is 0, not absent.
        for protocol in ["wcs", "whep"] {
            let _ = m.plays_started.get_or_create(&vec![("protocol", protocol)]);
        }
        for reason in FAILURE_REASONS {
            let _ = m.play_failures.get_or_create(&vec![("reason", reason)]);
        }
        Metrics { registry: r, ..m }
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
        for kind in ["personal", "translation"] {
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
        for (protocol, n) in [("wcs", now.wcs_viewers), ("whep", now.whep_viewers)] {
            self.viewers
                .get_or_create(&vec![("protocol", protocol)])
                .set(n as i64);
        }
        let proc = process::read();
        self.cpu_seconds.set(proc.cpu_seconds);
        self.resident_bytes.set(proc.resident_bytes as i64);
        self.open_fds.set(proc.open_fds as i64);
        self.threads.set(proc.threads as i64);
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

/// The process's own numbers, from `/proc/self` (Linux).
mod process {
    /// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on Linux).
    const TICKS: f64 = 100.0;

    #[derive(Default)]
    pub(super) struct Process {
        pub cpu_seconds: f64,
        pub resident_bytes: u64,
        pub open_fds: u64,
        pub threads: u64,
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
