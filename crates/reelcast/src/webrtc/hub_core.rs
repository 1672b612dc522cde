//! The hub's state machine: every viewer and feed, and what to do with each input, with no
//! socket, no clock and no task (the sans-IO core, as in str0m and quinn-proto; the I/O
//! edge is [`super::hub`]).
//!
//! Inputs, each with the time `now` the caller read: commands from streams and signalling
//! ([`Command`]), datagrams with the [`Path`] they came on (UDP, or a packet from an
//! ICE-TCP connection), an ICE-TCP connection's end, and timeouts
//! ([`HubCore::poll_timeout`] says when the next is due). Outputs: datagrams, queued as
//! values in [`Transmits`] for the edge to send ([`HubCore::poll_transmit`]), and
//! [`ViewerEvent`](super::ViewerEvent)s on each viewer's channel. The time of day for RTCP
//! sender reports is derived from `now` and one reading given at construction, so the core
//! never asks the system either.
//!
//! Routing: a datagram is routed without asking every viewer: a STUN request names our ICE
//! ufrag (which identifies the viewer), and once an authenticated check has come from a
//! browser address (or ICE-TCP connection), everything from that path goes to it. A
//! datagram that matches no viewer is dropped. Viewers on ICE-TCP are the same to the core:
//! str0m is told the packet came over TCP to our TCP candidate; the core tells a connection
//! when it has carried an authenticated check (else the edge closes it soon after opening)
//! and closes a viewer's connections when the viewer ends ([`TcpAction`]).
//!
//! Each datagram comes with the local address it reached; the viewer keeps it with the
//! browser's address, so every answer leaves from where the browser wrote to. We announce
//! several candidates (one per address); str0m is told which one a datagram reached: the
//! candidate with that address, or behind NAT (the address is not announced) the first
//! candidate of its family.
//!
//! A *feed* is one stream as the hub sees it: its epoch (time of stream time 0, used for
//! RTCP sender reports so audio and video share one clock), its viewers, and its current
//! GOP (the last keyframe and the pictures since). Frames arrive once per feed, are cut
//! into RTP payloads once ([`packets`]) and are written to each of its viewers. The GOP
//! answers picture-loss requests (re-sent whole, so the pictures after its keyframe have
//! what they reference) and gives a viewer who joins mid-stream a picture at once: the
//! whole GOP is sent on connect, its timestamps packed just before the newest picture, so
//! the browser decodes up to "now" in one go and then follows the shared timeline.
//!
//! A viewer can be moved to another feed (a lower rendition of its stream, or back:
//! [`Command::MoveViewer`]): it is listed on the target at once but gets nothing from it
//! until the target's next video keyframe, and the feed it leaves feeds it until then; at
//! that keyframe it switches (its own tracks, sequence numbers and an RTP time offset go
//! on: [`Viewer::switch_to_pending`]) and is taken off the old feed's list after the
//! fan-out. A viewer on its usual feed pays one comparison per frame for this.
//!
//! Every wake-up costs O(1) in the number of viewers, apart from fanning a frame out (which
//! must visit the feed's viewers): viewers' timeouts wait in a min-heap ([`Wakeups`]), and
//! only viewers driven since the last wake-up are checked for having ended. A fan-out
//! pauses every [`BATCH`] messages until the edge has sent them
//! ([`HubCore::poll_transmit`]), so the queue stays small however many viewers there are.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::debug;

use super::events::ViewerEvents;
use super::ids::{FeedId, TcpId, ViewerId};
use super::packets::{self, RtpFrame, VideoCodec};
use super::publisher_peer::PublisherPeer;
use super::transmits::{TcpAction, Transmits, BATCH};
use super::udp::Path;
use super::viewer::{Viewer, ViewerPlan};
use super::Accepted;
use crate::media::{Ending, Frame, MediaKind, StopReason};

/// The GOP cache stops growing past these (a file with one keyframe in an hour must not
/// grow without bound): late joiners of such a file wait for the next keyframe.
const GOP_CACHE_MAX_FRAMES: usize = 1200;
const GOP_CACHE_MAX_BYTES: usize = 16 << 20;

/// What streams and signalling ask of the hub (through [`super::RtcHub`]).
pub(super) enum Command {
    /// Starts a feed, or moves an open one's epoch.
    OpenFeed { feed: FeedId, epoch: Instant },
    /// Ends a feed; its viewers stay until removed.
    CloseFeed { feed: FeedId },
    /// Adds a viewer of a feed.
    AddViewer {
        id: ViewerId,
        feed: FeedId,
        accepted: Box<Accepted>,
        plan: ViewerPlan,
        events: ViewerEvents,
    },
    /// Closes a viewer from our side.
    RemoveViewer { id: ViewerId, reason: Ending },
    /// Moves a viewer to another feed (a rendition of its stream, or back to the parent)
    /// at that feed's next keyframe; its events go to `events` from then on.
    MoveViewer {
        id: ViewerId,
        feed: FeedId,
        events: ViewerEvents,
        down: bool,
    },
    /// Adds a publisher: its events go to `events`; `rtp_timeout` of silence ends it.
    AddPublisher {
        id: ViewerId,
        accepted: Box<Accepted>,
        events: tokio::sync::mpsc::Sender<crate::media::PublisherEvent>,
        rtp_timeout: std::time::Duration,
    },
    /// A publisher's stream wants a keyframe (sent rate-limited).
    PublisherKeyframe { id: ViewerId },
    /// Closes a publisher from our side.
    RemovePublisher { id: ViewerId, reason: Ending },
    /// One frame, or two back to back, for every viewer of a feed; its video in `video`.
    Frames {
        feed: FeedId,
        first: Frame,
        second: Option<Frame>,
        video: VideoCodec,
    },
}

struct Feed {
    epoch: Instant,
    gop: GopCache,
    viewers: Vec<ViewerId>,
}

/// The video frames from the last keyframe on, as sent.
#[derive(Default)]
struct GopCache {
    frames: Vec<Arc<RtpFrame>>,
    bytes: usize,
    /// Too long to keep: empty until the next keyframe.
    overflowed: bool,
}

impl GopCache {
    fn push(&mut self, frame: &Arc<RtpFrame>) {
        if frame.kind != MediaKind::Video {
            return;
        }
        if frame.keyframe {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.overflowed || self.frames.is_empty() {
            return;
        }
        if self.frames.len() >= GOP_CACHE_MAX_FRAMES || self.bytes >= GOP_CACHE_MAX_BYTES {
            self.frames.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += frame.bytes;
        self.frames.push(frame.clone());
    }
}

/// Every feed and viewer, the routing tables, the wake-ups and the transmit queue: the
/// whole hub but its I/O (see the module docs).
pub(super) struct HubCore {
    /// Our ICE candidates' addresses, as announced: UDP, and TCP (empty without ICE-TCP).
    candidates: Vec<SocketAddr>,
    tcp_candidates: Vec<SocketAddr>,
    feeds: HashMap<FeedId, Feed>,
    /// Boxed: a map of viewers inline would move them all on every rehash and keep up to
    /// twice their size per viewer as spare capacity.
    viewers: HashMap<ViewerId, Box<Viewer>>,
    /// Browsers sending media (one id space with viewers: routes and wake-ups are shared).
    publishers: HashMap<ViewerId, Box<PublisherPeer>>,
    by_ufrag: HashMap<String, ViewerId>,
    /// Proven browser paths: (address, ICE-TCP connection or `None` for UDP).
    by_addr: HashMap<(SocketAddr, Option<TcpId>), ViewerId>,
    wakeups: Wakeups,
    /// What is to be sent; the edge drains it through [`Self::poll_transmit`].
    transmits: Transmits,
    /// A frame's fan-out paused for the queue to be sent.
    fan_out: Option<FanOut>,
    /// One reading of (monotonic time, time of day), to tell the time of day at any `now`.
    clock_anchor: (Instant, SystemTime),
    /// Viewers that moved to another feed, and the feed they left: taken off its list
    /// once no fan-out is under way ([`Self::reap`]).
    moved: Vec<(ViewerId, FeedId)>,
}

/// Where a paused fan-out resumes: the next of the feed's viewers to get the frames.
struct FanOut {
    feed: FeedId,
    frames: Vec<Arc<RtpFrame>>,
    next: usize,
}

impl HubCore {
    /// A hub with no feed or viewer. `candidates` (at least one) and `tcp_candidates` are
    /// the addresses announced in answers; `now` and `wall` one reading of the monotonic
    /// clock and the time of day.
    pub(super) fn new(
        mut candidates: Vec<SocketAddr>,
        tcp_candidates: Vec<SocketAddr>,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        // Never empty from here on: `candidate_for` relies on a first candidate.
        if candidates.is_empty() {
            candidates.push(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        HubCore {
            candidates,
            tcp_candidates,
            feeds: HashMap::new(),
            viewers: HashMap::new(),
            publishers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            wakeups: Wakeups::default(),
            transmits: Transmits::default(),
            fan_out: None,
            clock_anchor: (now, wall),
            moved: Vec::new(),
        }
    }

    /// When [`Self::handle_timeout`] is next due, if any viewer waits for one.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.wakeups.next()
    }

    /// The queued output to send, or `None` when all is sent. The caller sends it and
    /// empties it (the edge's sender does both), then calls again until `None`: a paused
    /// fan-out goes on between calls, and viewers that ended are forgotten at the last.
    pub(super) fn poll_transmit(&mut self, now: Instant) -> Option<&mut Transmits> {
        if self.transmits.is_empty() && self.fan_out.is_some() {
            self.fan_out_more(now, true);
        }
        if self.fan_out.is_none() {
            self.reap();
        }
        if self.transmits.is_empty() {
            None
        } else {
            Some(&mut self.transmits)
        }
    }

    /// Ends the work of the previous input if the caller did not poll it all out, so every
    /// input sees the state the previous one left.
    fn settle(&mut self, now: Instant) {
        if self.fan_out.is_some() {
            self.fan_out_more(now, false);
        }
        self.reap();
    }

    /// Handles a command from a stream or signalling.
    pub(super) fn handle_command(&mut self, now: Instant, command: Command) {
        self.settle(now);
        let out = &mut self.transmits;
        match command {
            Command::OpenFeed { feed, epoch } => {
                let f = self.feeds.entry(feed).or_insert(Feed {
                    epoch,
                    gop: GopCache::default(),
                    viewers: Vec::new(),
                });
                f.epoch = epoch;
            }
            Command::CloseFeed { feed } => {
                // Viewers on their way to it stay where they are.
                for id in self
                    .feeds
                    .remove(&feed)
                    .map(|f| f.viewers)
                    .unwrap_or_default()
                {
                    if let Some(v) = self.viewers.get_mut(&id) {
                        if v.pending.as_ref().is_some_and(|p| p.feed == feed) {
                            v.abandon_move();
                        }
                    }
                }
            }
            Command::AddViewer {
                id,
                feed,
                accepted,
                plan,
                events,
            } => {
                let Accepted {
                    rtc,
                    local_ufrag,
                    ice_password,
                    keys,
                    ..
                } = *accepted;
                let mut viewer = Box::new(Viewer::new(
                    id,
                    feed,
                    rtc,
                    keys,
                    local_ufrag.clone(),
                    ice_password,
                    plan,
                    events,
                    now,
                ));
                viewer.drain(now, out);
                self.wakeups.after_drain(&viewer);
                self.by_ufrag.insert(local_ufrag, id);
                self.viewers.insert(id, viewer);
                if let Some(f) = self.feeds.get_mut(&feed) {
                    f.viewers.push(id);
                }
            }
            Command::RemoveViewer { id, reason } => {
                if let Some(v) = self.viewers.get_mut(&id) {
                    v.close_and_say_goodbye(reason, out);
                    v.drain(now, out);
                    self.wakeups.after_drain(v);
                }
            }
            Command::MoveViewer {
                id,
                feed,
                events,
                down,
            } => self.plan_move(id, feed, events, down),
            Command::AddPublisher {
                id,
                accepted,
                events,
                rtp_timeout,
            } => {
                let Accepted {
                    rtc,
                    local_ufrag,
                    answered_at,
                    ..
                } = *accepted;
                let mut peer = Box::new(PublisherPeer::new(
                    id,
                    rtc,
                    local_ufrag.clone(),
                    events,
                    answered_at,
                    rtp_timeout,
                    now,
                ));
                peer.drain(now, out);
                self.wakeups
                    .after_drive(id, peer.is_finished(), peer.next_timeout);
                self.by_ufrag.insert(local_ufrag, id);
                self.publishers.insert(id, peer);
            }
            Command::PublisherKeyframe { id } => {
                if let Some(p) = self.publishers.get_mut(&id) {
                    p.request_keyframe(now, out);
                    self.wakeups
                        .after_drive(id, p.is_finished(), p.next_timeout);
                }
            }
            Command::RemovePublisher { id, reason } => {
                if let Some(p) = self.publishers.get_mut(&id) {
                    p.close(reason);
                    p.drain(now, out);
                    self.wakeups
                        .after_drive(id, p.is_finished(), p.next_timeout);
                }
            }
            Command::Frames {
                feed,
                first,
                second,
                video,
            } => {
                let Some(f) = self.feeds.get_mut(&feed) else {
                    return;
                };
                let frames = packets::packetize_pair(&first, second.as_ref(), video);
                for frame in &frames {
                    f.gop.push(frame);
                }
                self.fan_out = Some(FanOut {
                    feed,
                    frames,
                    next: 0,
                });
                self.fan_out_more(now, true);
            }
        }
    }

    /// Writes the paused fan-out's frames to its next viewers; with `bounded`, pauses again
    /// once [`BATCH`] messages are queued.
    fn fan_out_more(&mut self, now: Instant, bounded: bool) {
        let Some(fan) = &mut self.fan_out else {
            return;
        };
        let Some(f) = self.feeds.get(&fan.feed) else {
            self.fan_out = None;
            return;
        };
        while let Some(id) = f.viewers.get(fan.next) {
            fan.next += 1;
            if let Some(v) = self.viewers.get_mut(id) {
                let mut frames = &fan.frames[..];
                if v.feed != fan.feed {
                    // On its way here: it switches at this feed's next keyframe (a decoder
                    // can start nowhere else); until then the feed it leaves feeds it.
                    let keyframe = frames
                        .iter()
                        .position(|f| f.kind == MediaKind::Video && f.keyframe);
                    match keyframe {
                        Some(k) if v.pending.as_ref().is_some_and(|p| p.feed == fan.feed) => {
                            if let Some(left) = v.switch_to_pending(frames[k].pts_us, now) {
                                self.moved.push((*id, left));
                            }
                            frames = &frames[k..];
                        }
                        // Not yet, or it has left (its place here goes at the next reap).
                        _ => frames = &[],
                    }
                }
                for frame in frames {
                    v.write(frame, frame.pts_us, true, now, &mut self.transmits);
                }
                if v.wants_keyframe && v.feed == fan.feed {
                    v.answer_picture_loss(&f.gop.frames, now, &mut self.transmits);
                }
            }
            if bounded && self.transmits.len() >= BATCH {
                return;
            }
        }
        self.fan_out = None;
    }

    /// An ICE-TCP connection ended: its path routes nowhere from now on.
    pub(super) fn handle_tcp_closed(&mut self, now: Instant, id: TcpId) {
        self.settle(now);
        self.by_addr.retain(|(_, tcp), _| *tcp != Some(id));
    }

    /// Handles a datagram that came on `from` (a UDP one, or a packet from an ICE-TCP
    /// connection): routed to its viewer, or dropped.
    pub(super) fn handle_datagram(&mut self, now: Instant, data: &[u8], from: Path) {
        self.settle(now);
        let Some(id) = self.route(data, from) else {
            debug!("datagram from {} matches no viewer", from.remote);
            return;
        };
        let candidate = if from.tcp.is_some() {
            candidate_for(&self.tcp_candidates, from.local)
        } else {
            candidate_for(&self.candidates, from.local)
        };
        let out = &mut self.transmits;
        if let Some(peer) = self.publishers.get_mut(&id) {
            peer.on_datagram(data, from, candidate, now, out);
            self.wakeups
                .after_drive(id, peer.is_finished(), peer.next_timeout);
            for path in peer.new_routes.drain(..) {
                self.by_addr.insert(path.route(), id);
                if let Some(conn) = path.tcp {
                    out.tcp_action(TcpAction::Prove(conn));
                }
            }
            return;
        }
        let Some(viewer) = self.viewers.get_mut(&id) else {
            return;
        };
        viewer.on_datagram(data, from, candidate, now, out);
        if viewer.wants_catch_up() {
            if let Some(f) = self.feeds.get(&viewer.feed) {
                viewer.catch_up(&f.gop.frames, now, out);
            }
        }
        self.wakeups.after_drain(viewer);
        for path in viewer.new_routes.drain(..) {
            self.by_addr.insert(path.route(), id);
            if let Some(conn) = path.tcp {
                out.tcp_action(TcpAction::Prove(conn));
            }
        }
    }

    /// Finds the viewer a datagram is for: by our ufrag in a STUN request, else by the path
    /// it came on.
    fn route(&self, data: &[u8], source: Path) -> Option<ViewerId> {
        if let Some(ufrag) = stun_local_ufrag(data) {
            if let Some(id) = self.by_ufrag.get(&ufrag) {
                return Some(*id);
            }
        }
        self.by_addr.get(&source.route()).copied()
    }

    /// Drives every viewer whose wake-up time has come.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.settle(now);
        let (at, wall_at) = self.clock_anchor;
        let wall = if now >= at {
            wall_at + (now - at)
        } else {
            wall_at - (at - now)
        };
        while let Some(id) = self.wakeups.pop_due(now) {
            if let Some(peer) = self.publishers.get_mut(&id) {
                if peer.next_timeout <= now {
                    peer.on_timeout(now, &mut self.transmits);
                }
                self.wakeups
                    .after_drive(id, peer.is_finished(), peer.next_timeout);
                continue;
            }
            let Some(viewer) = self.viewers.get_mut(&id) else {
                continue;
            };
            if viewer.next_timeout <= now && !viewer.closed {
                let epoch = self.feeds.get(&viewer.feed).map(|f| f.epoch);
                viewer.on_timeout(epoch, now, wall, &mut self.transmits);
            }
            self.wakeups.after_drain(viewer);
        }
    }

    /// Forgets viewers that have ended (only those driven since the last call can have: a
    /// viewer changes only when it is given input or woken): their routes, their wake-ups,
    /// their place in their feed; their ICE-TCP connections are closed.
    fn reap(&mut self) {
        for (id, left) in std::mem::take(&mut self.moved) {
            if let Some(f) = self.feeds.get_mut(&left) {
                f.viewers.retain(|x| *x != id);
            }
        }
        let dead = std::mem::take(&mut self.wakeups.finished);
        for id in dead {
            self.wakeups.forget(id);
            if let Some(mut p) = self.publishers.remove(&id) {
                p.close(StopReason::SessionDisconnect.into());
                self.by_ufrag.remove(&p.local_ufrag);
                self.forget_routes(id);
                debug!(publisher = id.0, "publisher removed");
            }
            if let Some(mut v) = self.viewers.remove(&id) {
                v.close(StopReason::SessionDisconnect.into());
                self.by_ufrag.remove(&v.local_ufrag);
                self.forget_routes(id);
                for feed in std::iter::once(v.feed).chain(v.pending.as_ref().map(|p| p.feed)) {
                    if let Some(f) = self.feeds.get_mut(&feed) {
                        f.viewers.retain(|x| *x != id);
                    }
                }
                debug!(viewer = id.0, stream = %v.stream(), "viewer removed");
                drop::<Box<Viewer>>(v);
            }
        }
    }
}

impl HubCore {
    /// Starts moving viewer `id` to `feed` (see [`Command::MoveViewer`]): it is listed on
    /// that feed at once and switches at its next keyframe. A viewer already there, or a
    /// feed that is gone, makes no move (the viewer hears it was abandoned).
    fn plan_move(&mut self, id: ViewerId, feed: FeedId, events: ViewerEvents, down: bool) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        if v.feed == feed || v.closed || !self.feeds.contains_key(&feed) {
            v.abandon_move();
            return;
        }
        if let Some(before) = v.pending.as_ref().map(|p| p.feed) {
            if let Some(other) = self.feeds.get_mut(&before) {
                other.viewers.retain(|x| *x != id);
            }
        }
        // A viewer that left this feed a moment ago may still be listed on it.
        self.moved.retain(|(x, left)| !(*x == id && *left == feed));
        if let Some(f) = self.feeds.get_mut(&feed) {
            if !f.viewers.contains(&id) {
                f.viewers.push(id);
            }
        }
        v.plan_move(feed, events, down);
    }

    /// Removes every path routed to `id`; its ICE-TCP connections end with it.
    fn forget_routes(&mut self, id: ViewerId) {
        let out = &mut self.transmits;
        self.by_addr.retain(|(_, tcp), vid| {
            if *vid != id {
                return true;
            }
            if let Some(conn) = *tcp {
                out.tcp_action(TcpAction::Close(conn));
            }
            false
        });
    }
}

/// When each viewer next wants to be woken (its engine's timers, its sender reports and
/// consent deadline), and which viewers have ended.
///
/// A min-heap of (time, viewer) with at most one live entry per viewer: the earliest time
/// asked for, kept in `armed`. A viewer that later asks for an earlier time gets a new entry
/// and the old one turns stale (skipped when it comes up); one that asks for a later time
/// keeps its earlier entry, is woken then, and is simply re-armed if not yet due (the hub
/// only drives a viewer at a time it asked for).
#[derive(Default)]
struct Wakeups {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    armed: HashMap<ViewerId, Instant>,
    /// Viewers found ended after being driven: to reap.
    finished: Vec<ViewerId>,
}

impl Wakeups {
    /// To call after every [`Viewer::drain`]: arms the viewer's next timeout, or notes that
    /// it has ended.
    fn after_drain(&mut self, viewer: &Viewer) {
        self.after_drive(viewer.id, viewer.is_finished(), viewer.next_timeout);
    }

    /// The same for any peer (viewer or publisher): `finished`, or to wake at `next`.
    fn after_drive(&mut self, id: ViewerId, finished: bool, next: Instant) {
        if finished {
            self.finished.push(id);
        } else {
            self.arm(id, next);
        }
    }

    /// Wakes `id` at `at`, unless it is already to be woken no later.
    fn arm(&mut self, id: ViewerId, at: Instant) {
        if self.armed.get(&id).is_some_and(|armed| *armed <= at) {
            return;
        }
        self.armed.insert(id, at);
        self.heap.push(Reverse((at, id.0)));
    }

    /// The earliest armed time (a stale entry may make it early: a harmless extra wake-up).
    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next viewer whose armed time has come, disarmed.
    fn pop_due(&mut self, now: Instant) -> Option<ViewerId> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            let id = ViewerId(id);
            if self.armed.get(&id) == Some(&at) {
                self.armed.remove(&id);
                return Some(id);
            }
        }
        None
    }

    fn forget(&mut self, id: ViewerId) {
        // Its heap entries become stale and are dropped when they come up.
        self.armed.remove(&id);
    }
}

/// The candidate str0m is to see a datagram as sent to, given the address it reached: the
/// candidate of that address, else (behind NAT, or no address known) the first of its
/// family, else the first.
fn candidate_for(candidates: &[SocketAddr], local: Option<IpAddr>) -> SocketAddr {
    let Some(local) = local else {
        return candidates[0];
    };
    candidates
        .iter()
        .find(|c| c.ip() == local)
        .or_else(|| candidates.iter().find(|c| c.is_ipv4() == local.is_ipv4()))
        .copied()
        .unwrap_or(candidates[0])
}

/// The local (our) ufrag of a STUN binding request: USERNAME is "ours:theirs".
fn stun_local_ufrag(data: &[u8]) -> Option<String> {
    // STUN: first two bits zero and the magic cookie at bytes 4..8.
    if data.len() < 20 || data[0] >= 2 || data[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let msg = str0m::ice::StunMessage::parse(data).ok()?;
    let (local, _) = msg.split_username()?;
    Some(local.to_string())
}

#[cfg(test)]
mod virtual_time;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn non_stun_datagrams_have_no_ufrag() {
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        assert_eq!(stun_local_ufrag(&[]), None);
        let mut fake = [0u8; 20];
        fake[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(stun_local_ufrag(&fake), None);
    }

    #[test]
    fn wakeups_come_in_time_order_once_each_and_skip_superseded_times() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b, c) = (ViewerId(1), ViewerId(2), ViewerId(3));
        let mut w = Wakeups::default();
        w.arm(a, ms(10));
        w.arm(b, ms(5));
        w.arm(c, ms(30));
        // A later time does not replace an earlier one; an earlier one does.
        w.arm(b, ms(8));
        w.arm(a, ms(2));
        assert_eq!(w.next(), Some(ms(2)));
        assert_eq!(w.pop_due(ms(1)), None);
        assert_eq!(w.pop_due(ms(20)), Some(a));
        assert_eq!(w.pop_due(ms(20)), Some(b));
        // a's superseded entry at 10 ms is skipped, c is not due yet.
        assert_eq!(w.pop_due(ms(20)), None);
        w.forget(c);
        assert_eq!(w.pop_due(ms(100)), None);
        assert!(w.heap.is_empty() && w.armed.is_empty());
    }
}
