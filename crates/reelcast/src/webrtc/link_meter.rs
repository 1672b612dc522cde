//! What one viewer's link carries, judged from the browser's receiver reports, and when to
//! say that it carries less than the stream sends.
//!
//! The browser reports, for each stream it receives, the highest sequence number it has
//! seen and how many packets it has lost in all (RTCP receiver reports, RFC 3550 §6.4.2;
//! browsers send one about every second, and one with each NACK). Over a window of at
//! least [`WINDOW`] (or [`QUICK_WINDOW`] when it holds [`QUICK_PACKETS`]) the meter
//! compares them with the payload bytes sent in the same time: what got through is what was
//! sent less the share that was lost, and when a tenth or more is lost the link is full and
//! that is what it carries. A link that loses nothing carries at least what is sent.
//!
//! What got through is counted on the media streams only: packets re-sent on NACK (RTX)
//! take their share of the link too, but the browser does not count a packet repaired that
//! way as received on the media stream, and counting the re-sent bytes at the media's loss
//! overshoots (NACK answers leave in bursts, which a full link drops more of). The figure is
//! therefore low on a link busy with repairs: on a 300 kbit/s link with an 800 kbit/s
//! stream Chromium gave ~120 kbit/s (the re-sent bytes at the media's loss gave 430–610, and
//! were told seconds later). Low is the safe side for choosing a lower rendition. What is sent includes catch-ups and re-sent pictures; the stream's
//! own bit rate is counted apart ([`Sent::fresh_octets`]): a window is *short* when
//! it is lossy and the stream's rate is above what the link carried. A single short window
//! (a join's burst, a moment of cross traffic) says nothing: the link is short only after
//! [`SUSTAIN`] of short windows, and it has *recovered* only once a window loses under
//! [`RECOVERED_LOSS`] (in between the verdict stands). A shortfall is told once, then again only after a recovery and no
//! sooner than [`REPEAT`] after the last.
//!
//! Loss, not the browser's delay-based estimate (REMB): a browser's estimate starts low and
//! climbs for seconds, so a viewer on a good link would be told its link is short; and
//! packets we send carry no send-time extension for it to work from. Loss is what a full
//! link does to a stream that cannot slow down, and it costs nothing per packet here: the
//! bytes are the tracks' sender-report counters, the rest is arithmetic once a report.
//!
//! Owns: one viewer's window, estimate and verdict. Must not: read a clock, send anything,
//! or know who is told (the viewer does that with what [`LinkMeter::on_report`] returns).

use std::time::{Duration, Instant};

/// Reports closer together than this are folded into one window: the loss count of a
/// report sent with a NACK (browsers add one to each) covers too few packets to judge.
pub(super) const WINDOW: Duration = Duration::from_secs(1);
/// A window may end this soon when it already holds [`QUICK_PACKETS`]: a link that starts
/// losing makes the browser report with each NACK, and half-second windows of a full-rate
/// stream let a drop be judged half a second sooner ([`super::move_policy`]); a slow
/// stream's windows stay a second long (too few packets to judge sooner).
pub(super) const QUICK_WINDOW: Duration = Duration::from_millis(500);
/// Packets a window must hold to end before [`WINDOW`].
pub(super) const QUICK_PACKETS: u32 = 60;
/// Shortfall must last this long (a window's start to a later window's end) to be told.
pub(super) const SUSTAIN: Duration = Duration::from_secs(2);
/// A window that lost at least this share of its packets says the link is full.
pub(super) const SHORT_LOSS: f64 = 0.10;
/// A window that lost less than this share says the link has recovered.
pub(super) const RECOVERED_LOSS: f64 = 0.02;
/// A window that lost this share or more is heavy: the link carries well under the stream.
pub(super) const HEAVY_LOSS: f64 = 0.3;
/// Heavy windows (two at least) spanning this long are a shortfall too, told sooner than
/// [`SUSTAIN`]: the same rule moves the viewer down ([`super::move_policy`]), so the
/// event and the move come at one report, the event with the stream's own figures.
pub(super) const HEAVY_SUSTAIN: Duration = Duration::from_secs(1);
/// A viewer is told no more often than this.
pub(super) const REPEAT: Duration = Duration::from_secs(10);

/// More packets than this between two reports is a reset or a forged report, not a window.
const MAX_WINDOW_PACKETS: u32 = 1 << 20;

/// A sustained shortfall: the stream's bit rate and what the link carries, in bits per
/// second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shortfall {
    pub stream_bps: u64,
    pub carries_bps: u64,
}

/// The payload octets sent to the viewer so far (wrapping counters).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    /// On the media streams: the feed's frames, catch-ups and re-sent pictures.
    pub octets: u32,
    /// The feed's own frames only: the stream's bit rate.
    pub fresh_octets: u32,
    /// Re-sent on NACK, on the retransmission stream.
    pub resent_octets: u32,
}

/// A stream's counters in a receiver report.
#[derive(Debug, Clone, Copy)]
struct Counters {
    /// Extended highest sequence number received.
    max_seq: u32,
    /// Cumulative packets lost.
    lost: i32,
}

impl Counters {
    fn new(max_seq: u32, lost_24: u32) -> Self {
        Counters {
            max_seq,
            lost: sign_extend_24(lost_24),
        }
    }

    /// The share of packets lost since `start`; none without packets (a paused feed) or
    /// when the sequence number went back (a reset or forged report).
    fn loss_since(self, start: Counters) -> Option<f64> {
        let expected = self.max_seq.wrapping_sub(start.max_seq);
        if expected == 0 || expected > MAX_WINDOW_PACKETS {
            return None;
        }
        let lost = i64::from(self.lost) - i64::from(start.lost);
        Some(lost.clamp(0, i64::from(expected)) as f64 / f64::from(expected))
    }
}

/// The link as the last window saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct LinkEstimate {
    /// Payload bits per second sent in the window, repairs (RTX too) included.
    pub sending_bps: u64,
    /// The stream's own payload bits per second in the window.
    pub stream_bps: u64,
    /// What got through of the media, in bits per second: what the link carries of it when
    /// it is full (`lossy`), else a lower bound.
    pub carries_bps: u64,
    /// The share of the window's media packets lost (0 to 1).
    pub loss: f64,
    /// The window lost [`SHORT_LOSS`] or more: `carries_bps` is the link's capacity.
    pub lossy: bool,
}

/// One point of a receiver report and our counters, where a window starts.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    media: Counters,
    /// Payload octets sent.
    sent: Sent,
}

/// One viewer's link meter (see the module docs). A few dozen bytes; work once a report.
#[derive(Debug, Default)]
pub(super) struct LinkMeter {
    start: Option<Mark>,
    estimate: Option<LinkEstimate>,
    /// Start of the first window of the current run of lossy windows.
    short_since: Option<Instant>,
    /// The current run of heavy windows: the first one's start, and how many.
    heavy: Option<(Instant, u32)>,
    /// A shortfall was told and the link has not recovered since.
    told: bool,
    last_told: Option<Instant>,
    /// The window just measured (its start and estimate), until the viewer takes it.
    window: Option<(Instant, LinkEstimate)>,
}

impl LinkMeter {
    /// A receiver report for the stream the meter follows at `now`: its extended highest
    /// sequence number and cumulative loss (24-bit two's complement, as on the wire), with
    /// what was `sent` so far. Returns a shortfall when one is to be told now.
    pub(super) fn on_report(
        &mut self,
        now: Instant,
        max_seq: u32,
        lost_24: u32,
        sent: Sent,
    ) -> Option<Shortfall> {
        let mark = Mark {
            at: now,
            media: Counters::new(max_seq, lost_24),
            sent,
        };
        let Some(start) = self.start else {
            self.start = Some(mark);
            return None;
        };
        let span = now.saturating_duration_since(start.at);
        let packets = mark.media.max_seq.wrapping_sub(start.media.max_seq);
        let quick = span >= QUICK_WINDOW && (QUICK_PACKETS..=MAX_WINDOW_PACKETS).contains(&packets);
        if span < WINDOW && !quick {
            return None;
        }
        self.start = Some(mark);
        // No packets, or a counter reset: no evidence either way.
        let loss = mark.media.loss_since(start.media)?;
        let bps = |now: u32, then: u32| {
            let bits = u64::from(now.wrapping_sub(then)) * 8;
            bits as f64 / span.as_secs_f64()
        };
        let media = bps(sent.octets, start.sent.octets);
        let resent = bps(sent.resent_octets, start.sent.resent_octets);
        let estimate = LinkEstimate {
            sending_bps: (media + resent) as u64,
            stream_bps: bps(sent.fresh_octets, start.sent.fresh_octets) as u64,
            carries_bps: (media * (1.0 - loss)) as u64,
            loss,
            lossy: loss >= SHORT_LOSS,
        };
        self.estimate = Some(estimate);
        self.window = Some((start.at, estimate));
        self.judge(start.at, now, estimate)
    }

    /// Moves the verdict on with a window from `from` to `now`.
    fn judge(&mut self, from: Instant, now: Instant, e: LinkEstimate) -> Option<Shortfall> {
        if !e.lossy || e.stream_bps <= e.carries_bps {
            self.short_since = None;
            self.heavy = None;
            if e.loss < RECOVERED_LOSS {
                self.told = false;
            }
            return None;
        }
        let since = *self.short_since.get_or_insert(from);
        self.heavy = heavy_run(self.heavy, from, e.loss);
        let sustained = now.saturating_duration_since(since) >= SUSTAIN
            || heavy_for(self.heavy, now, HEAVY_SUSTAIN);
        let spaced = self
            .last_told
            .is_none_or(|t| now.saturating_duration_since(t) >= REPEAT);
        if !sustained || self.told || !spaced {
            return None;
        }
        self.told = true;
        self.last_told = Some(now);
        Some(Shortfall {
            stream_bps: e.stream_bps,
            carries_bps: e.carries_bps,
        })
    }

    /// The last window's estimate, if a window has been measured: what a rendition switch
    /// reads (when `lossy`, `carries_bps` is what the link carries; else it carries at least
    /// that).
    pub(super) fn estimate(&self) -> Option<LinkEstimate> {
        self.estimate
    }

    /// The window measured since the last call, with when it started: what the viewer's
    /// rendition moves judge ([`super::move_policy`]).
    pub(super) fn take_window(&mut self) -> Option<(Instant, LinkEstimate)> {
        self.window.take()
    }

    /// True while a told shortfall has not recovered: for a rendition switch to read.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn is_short(&self) -> bool {
        self.told
    }
}

/// The run of heavy windows after a short window from `from` that lost `loss`: one more,
/// or none when it was not heavy.
pub(super) fn heavy_run(
    run: Option<(Instant, u32)>,
    from: Instant,
    loss: f64,
) -> Option<(Instant, u32)> {
    if loss < HEAVY_LOSS {
        return None;
    }
    let (first, n) = run.unwrap_or((from, 0));
    Some((first, n + 1))
}

/// True when a run of heavy windows holds two at least and spans `long` by `now`.
pub(super) fn heavy_for(run: Option<(Instant, u32)>, now: Instant, long: Duration) -> bool {
    run.is_some_and(|(first, n)| n >= 2 && now.saturating_duration_since(first) >= long)
}

/// RFC 3550's cumulative loss is a signed 24-bit number (duplicates can make it negative).
fn sign_extend_24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's reports on virtual time: 100 packets of 1000 bytes a second of the
    /// stream sent, `repairs` times as many again re-sent, a share `loss` of them lost, a
    /// report every `every`.
    struct Reports {
        t0: Instant,
        now: Instant,
        sent: u64,
        fresh: u64,
        repairs: u64,
        lost: f64,
        meter: LinkMeter,
        told: Vec<(Duration, Shortfall)>,
    }

    const PACKETS_PER_S: u64 = 100; // 800 kbit/s of 1000-byte packets

    impl Reports {
        fn new() -> Self {
            let t0 = Instant::now();
            Reports {
                t0,
                now: t0,
                sent: 0,
                fresh: 0,
                repairs: 0,
                lost: 0.0,
                meter: LinkMeter::default(),
                told: Vec::new(),
            }
        }

        /// `d` passes with `loss` of the packets lost and a report every `every`.
        fn run(&mut self, d: Duration, loss: f64, every: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += every;
                let packets = PACKETS_PER_S * every.as_millis() as u64 / 1000;
                self.fresh += packets;
                self.sent += packets * (1 + self.repairs);
                self.lost += (packets * (1 + self.repairs)) as f64 * loss;
                let max_seq = 60_000u32.wrapping_add(self.sent as u32); // wraps early
                let sent = Sent {
                    octets: (self.sent * 1000) as u32,
                    fresh_octets: (self.fresh * 1000) as u32,
                    resent_octets: 0,
                };
                let lost = (self.lost as u32) & 0xFF_FFFF;
                if let Some(s) = self.meter.on_report(self.now, max_seq, lost, sent) {
                    self.told.push((self.now - self.t0, s));
                }
            }
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_link_that_loses_nothing_is_never_short_and_carries_at_least_what_is_sent() {
        let mut r = Reports::new();
        r.run(30 * S, 0.0, S);
        assert!(r.told.is_empty());
        let e = r.meter.estimate().expect("measured");
        assert!(!e.lossy);
        assert_eq!(e.sending_bps, 800_000);
        assert_eq!(e.carries_bps, 800_000);
    }

    #[test]
    fn a_full_link_is_told_once_after_two_seconds_with_what_it_carries() {
        let mut r = Reports::new();
        r.run(3 * S, 0.0, S);
        // From 3 s the link carries 300 of 800 kbit/s: 62.5 % lost.
        r.run(20 * S, 0.625, S);
        assert_eq!(r.told.len(), 1, "told once while it lasts: {:?}", r.told);
        let (at, s) = r.told[0];
        // The first lossy window is 3–4 s; two seconds of them end at 5 s.
        assert_eq!(at, 5 * S);
        assert_eq!(s.stream_bps, 800_000);
        assert!((290_000..=310_000).contains(&s.carries_bps), "{s:?}");
        assert!(r.meter.is_short());
    }

    #[test]
    fn heavy_loss_is_told_after_a_second_of_half_second_windows_lighter_after_two() {
        // Reports every 100 ms at 100 packets a second: windows of 0.6 s, from the first
        // report at 0.1 s (3.1–3.7 s is the first all lossy).
        let every = Duration::from_millis(100);
        let mut r = Reports::new();
        r.run(3 * S, 0.0, every);
        r.run(4 * S, 0.8, every);
        assert_eq!(r.told.len(), 1, "{:?}", r.told);
        // Two heavy windows, 3.1–3.7 and 3.7–4.3 s.
        assert_eq!(r.told[0].0, Duration::from_millis(4300));
        let mut r = Reports::new();
        r.run(3 * S, 0.0, every);
        r.run(4 * S, 0.2, every);
        assert_eq!(r.told.len(), 1, "{:?}", r.told);
        // Lighter: two seconds of short windows from 3.1 s, at the first window end after.
        assert_eq!(r.told[0].0, Duration::from_millis(5500));
    }

    #[test]
    fn one_bad_window_or_alternating_ones_are_not_a_shortfall() {
        let mut r = Reports::new();
        r.run(2 * S, 0.0, S);
        r.run(S, 0.5, S);
        r.run(3 * S, 0.0, S);
        for _ in 0..10 {
            r.run(S, 0.5, S);
            r.run(S, 0.0, S);
        }
        assert!(r.told.is_empty(), "{:?}", r.told);
        // A loss between the thresholds breaks a run of lossy windows too.
        for _ in 0..10 {
            r.run(S, 0.3, S);
            r.run(S, 0.05, S);
        }
        assert!(r.told.is_empty(), "{:?}", r.told);
    }

    #[test]
    fn told_again_only_after_a_recovery_and_never_within_the_repeat_time() {
        let mut r = Reports::new();
        r.run(4 * S, 0.6, S);
        assert_eq!(r.told.len(), 1);
        // Loss between the two shares is no recovery: silent however long it lasts.
        r.run(S, 0.05, S);
        r.run(15 * S, 0.6, S);
        assert_eq!(r.told.len(), 1, "no recovery in between: {:?}", r.told);
        // A recovery, then short again: told again (the last was long ago).
        r.run(S, 0.0, S);
        assert!(!r.meter.is_short());
        r.run(3 * S, 0.6, S);
        assert_eq!(r.told.len(), 2, "{:?}", r.told);
        // Recovered and short again at once: not within the repeat time of the last...
        r.run(S, 0.0, S);
        r.run(5 * S, 0.6, S);
        assert_eq!(r.told.len(), 2, "too soon: {:?}", r.told);
        // ...but once it has passed.
        r.run(6 * S, 0.6, S);
        assert_eq!(r.told.len(), 3, "{:?}", r.told);
        let gap = r.told[2].0.saturating_sub(r.told[1].0);
        assert!(gap >= REPEAT && gap < REPEAT + 2 * S, "{gap:?}");
    }

    #[test]
    fn repairs_count_in_what_the_link_carries_but_not_in_the_streams_rate() {
        // Repairs double what is sent (1.6 Mbit/s), 60 % is lost: the link carries 640 of
        // the stream's 800 kbit/s.
        let mut r = Reports::new();
        r.repairs = 1;
        r.run(5 * S, 0.6, S);
        assert_eq!(r.told.len(), 1, "{:?}", r.told);
        let s = r.told[0].1;
        assert_eq!(s.stream_bps, 800_000);
        assert!((630_000..=650_000).contains(&s.carries_bps), "{s:?}");
        // Repairs triple it and half is lost: 1.2 Mbit/s got through, the stream fits.
        let mut r = Reports::new();
        r.repairs = 2;
        r.run(10 * S, 0.5, S);
        assert!(r.told.is_empty(), "{:?}", r.told);
        let e = r.meter.estimate().unwrap();
        assert!(e.lossy && e.carries_bps > e.stream_bps, "{e:?}");
    }

    #[test]
    fn packets_resent_on_nack_count_in_what_is_sent_not_in_what_got_through() {
        let t0 = Instant::now();
        let mut m = LinkMeter::default();
        let sent = |media: u32, resent: u32| Sent {
            octets: media,
            fresh_octets: media,
            resent_octets: resent,
        };
        // A second of 100 kB of media, half lost, and 50 kB re-sent.
        m.on_report(t0, 1000, 0, sent(0, 0));
        m.on_report(t0 + S, 1100, 50, sent(100_000, 50_000));
        let e = m.estimate().unwrap();
        assert_eq!(e.sending_bps, 1_200_000);
        assert_eq!(e.stream_bps, 800_000);
        assert_eq!(e.carries_bps, 400_000);
    }

    #[test]
    fn frequent_reports_are_folded_into_one_second_windows() {
        // A report every 100 ms (browsers add one to each NACK): the same verdict, at the
        // same time, as reports once a second.
        let mut r = Reports::new();
        r.run(3 * S, 0.0, Duration::from_millis(100));
        r.run(10 * S, 0.625, Duration::from_millis(100));
        assert_eq!(r.told.len(), 1);
        assert!(
            r.told[0].0 <= 5 * S + Duration::from_millis(100),
            "{:?}",
            r.told
        );
        // 4 % lost is no recovery; in 100 ms windows of 10 packets it would read as
        // alternating 0 % (recovered) and 10 % (short), and the next shortfall be told.
        r.run(15 * S, 0.04, Duration::from_millis(100));
        r.run(5 * S, 0.625, Duration::from_millis(100));
        assert_eq!(r.told.len(), 1, "{:?}", r.told);
    }

    #[test]
    fn a_full_rate_streams_windows_end_at_half_a_second_a_slow_streams_at_one() {
        // Reports every 100 ms (a losing link: one with each NACK).
        let windows = |packets_per_report: u32| {
            let t0 = Instant::now();
            let mut m = LinkMeter::default();
            let mut ends = Vec::new();
            for i in 0..=20u32 {
                let octets = i * packets_per_report * 1000;
                let sent = Sent {
                    octets,
                    fresh_octets: octets,
                    resent_octets: 0,
                };
                let at = t0 + Duration::from_millis(100) * i;
                m.on_report(at, i * packets_per_report, 0, sent);
                if m.take_window().is_some() {
                    ends.push((at - t0).as_millis());
                }
            }
            ends
        };
        // 200 packets a second: 100 in half a second, enough to judge.
        assert_eq!(windows(20), vec![500, 1000, 1500, 2000]);
        // 50 a second: too few in half a second; a second each.
        assert_eq!(windows(5), vec![1000, 2000]);
    }

    #[test]
    fn negative_cumulative_loss_and_resets_are_no_evidence() {
        assert_eq!(sign_extend_24(0xFF_FFFF), -1);
        assert_eq!(sign_extend_24(5), 5);
        let t0 = Instant::now();
        let mut m = LinkMeter::default();
        let sent = |octets| Sent {
            octets,
            fresh_octets: octets,
            resent_octets: 0,
        };
        assert_eq!(m.on_report(t0, 100, 0, sent(0)), None);
        // Duplicates: cumulative loss below the window's start is no loss.
        assert_eq!(m.on_report(t0 + S, 200, 0xFF_FFF0, sent(100_000)), None);
        assert_eq!(m.estimate().map(|e| e.loss), Some(0.0));
        // The sequence number went back (a forged or reset report): nothing is judged.
        let before = m.estimate();
        assert_eq!(m.on_report(t0 + 2 * S, 150, 50, sent(200_000)), None);
        assert_eq!(m.estimate(), before);
    }
}
