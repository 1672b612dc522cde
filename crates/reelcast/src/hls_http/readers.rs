//! HLS readers as viewers. HLS has no session, so a *reader* is one client address
//! (an IPv6 client's /64) with one `User-Agent`, reading one stream (a translation or a
//! published stream: [`Read`]): it begins with its first playlist request and ends once
//! it has made no request for [`Readers::timeout`] (three target durations). Each
//! reader is a play in the registry (`protocol` `hls`, listed by REST
//! `/stream/find_all`, counted by `/metrics`) and a [`Viewer`] of its stream, whose
//! [`Carrier`] is this module: when the stream lets it go (`/stream/terminate`, its
//! end) the entry goes too.
//!
//! Owns: the request → reader bookkeeping and its bounds. Must not: serve or keep
//! media (that is `hls_http` and `crate::hls`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::media::{Carrier, Ending, StopReason, Viewer, ViewerEvent, ViewerId, ViewerProtocol};
use crate::stream::door::ViewerDoor;
use crate::stream::live::TranslationHandle;
use crate::stream::published::PublishedHandle;
use crate::stream::registry::{PlayKind, PlayRecord};
use crate::stream::{MediaInfo, PlayKey, Registry, Stopper};

/// The running stream an HLS reader reads.
#[derive(Clone)]
pub enum Read {
    /// A live translation.
    Translation(TranslationHandle),
    /// A published stream, and the id of its HLS window.
    Published(PublishedHandle, String),
}

impl Read {
    /// Which stream (a reader's key): one run of it.
    pub(super) fn id(&self) -> &str {
        match self {
            Read::Translation(t) => &t.id,
            Read::Published(_, window) => window,
        }
    }

    /// Its name, for logs.
    fn name(&self) -> &str {
        match self {
            Read::Translation(t) => &t.name,
            Read::Published(p, _) => &p.name,
        }
    }

    /// How its readers are listed: the canonical name and the kind of play.
    fn listing(&self) -> (String, PlayKind) {
        match self {
            Read::Translation(t) => (
                t.uri.clone(),
                PlayKind::Live {
                    translation: t.name.clone(),
                },
            ),
            Read::Published(p, _) => (
                p.name.clone(),
                PlayKind::Published {
                    stream: p.name.clone(),
                },
            ),
        }
    }

    fn info(&self) -> &MediaInfo {
        match self {
            Read::Translation(t) => &t.info,
            Read::Published(p, _) => &p.info,
        }
    }

    fn door(&self) -> &ViewerDoor {
        match self {
            Read::Translation(t) => &t.door,
            Read::Published(p, _) => &p.door,
        }
    }
}

/// Readers one address (an IPv6 /64) may have at once; further ones are served but not
/// listed, so a client cannot make unbounded entries by varying its `User-Agent`.
pub const MAX_READERS_PER_ADDRESS: usize = 16;
/// Readers the server keeps at once, all addresses together.
pub const MAX_READERS: usize = 4096;
/// The `User-Agent` kept of a reader (its key), at most.
const MAX_AGENT_LEN: usize = 256;

/// One reader: who it is (the stream it reads and its `User-Agent`; its address is where
/// it is listed) and how it stands.
struct Reader {
    stream: String,
    agent: String,
    viewer: ViewerId,
    last_seen: Instant,
    /// Requests of this reader under way (a blocking reload may wait long): it is not
    /// quiet while one lasts.
    in_flight: usize,
}

/// The readers, listed by address: at most [`MAX_READERS_PER_ADDRESS`] each, so a
/// request finds its reader by scanning a short list, with nothing allocated.
#[derive(Default)]
struct State {
    by_address: HashMap<IpAddr, Vec<Reader>>,
    /// The address each reader is listed under.
    by_viewer: HashMap<ViewerId, IpAddr>,
}

impl State {
    /// The reader of `stream` at `address` with `agent`.
    fn find(&mut self, address: IpAddr, stream: &str, agent: &str) -> Option<&mut Reader> {
        self.by_address
            .get_mut(&address)?
            .iter_mut()
            .find(|r| r.stream == stream && r.agent == agent)
    }

    /// Reader `viewer`, listed under `address`.
    fn reader(&mut self, address: IpAddr, viewer: ViewerId) -> Option<&mut Reader> {
        self.by_address
            .get_mut(&address)?
            .iter_mut()
            .find(|r| r.viewer == viewer)
    }

    fn remove(&mut self, viewer: ViewerId) -> bool {
        let Some(address) = self.by_viewer.remove(&viewer) else {
            return false;
        };
        if let Some(list) = self.by_address.get_mut(&address) {
            list.retain(|r| r.viewer != viewer);
            if list.is_empty() {
                self.by_address.remove(&address);
            }
        }
        true
    }
}

/// Every HLS reader of the server.
pub struct Readers {
    state: Mutex<State>,
    timeout: Duration,
}

/// One request of a reader: while it lasts the reader is not quiet; its end is the
/// reader's last sight.
pub struct Visit {
    readers: Arc<Readers>,
    /// The reader's address and viewer id, when it is listed.
    reader: Option<(IpAddr, ViewerId)>,
}

impl Drop for Visit {
    fn drop(&mut self) {
        if let Some((address, viewer)) = self.reader {
            if let Some(r) = self.readers.state().reader(address, viewer) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.last_seen = Instant::now();
            }
        }
    }
}

/// What a request says of its reader.
pub struct Request<'a> {
    /// The client's address.
    pub peer: IpAddr,
    /// Its `User-Agent`, if any.
    pub agent: Option<&'a str>,
    /// The name it asked for (`localStreamName` or `vod-live://…`).
    pub name: &'a str,
    /// A playlist request: it may begin a reader.
    pub may_begin: bool,
}

impl Readers {
    /// No readers; each ends after `timeout` without a request.
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Readers {
            state: Mutex::default(),
            timeout,
        })
    }

    /// How long a reader may make no request before it ends.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a request for `stream`: the reader it belongs to is seen now (and is
    /// begun by a playlist request, as a play and a viewer, within the caps).
    pub fn visit(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        stream: &Read,
        request: &Request<'_>,
    ) -> Visit {
        let address = address_of(request.peer);
        let agent = agent_of(request.agent);
        let viewer = {
            let mut state = self.state();
            if let Some(r) = state.find(address, stream.id(), agent) {
                r.in_flight += 1;
                r.last_seen = Instant::now();
                let viewer = r.viewer;
                return self.seen(Some((address, viewer)));
            }
            let per_address = state.by_address.get(&address).map_or(0, Vec::len);
            if !request.may_begin
                || per_address >= MAX_READERS_PER_ADDRESS
                || state.by_viewer.len() >= MAX_READERS
            {
                return self.seen(None);
            }
            let viewer = ViewerId::next();
            state.by_address.entry(address).or_default().push(Reader {
                stream: stream.id().to_string(),
                agent: agent.to_string(),
                viewer,
                last_seen: Instant::now(),
                in_flight: 1,
            });
            state.by_viewer.insert(viewer, address);
            viewer
        };
        // Outside the lock: a stream that has just ended lets the viewer go at once.
        if !self.join(registry, stream, request.name, viewer) {
            return self.seen(None);
        }
        tokio::spawn(Arc::clone(self).end_when_quiet(address, viewer, stream.clone()));
        self.seen(Some((address, viewer)))
    }

    fn seen(self: &Arc<Self>, reader: Option<(IpAddr, ViewerId)>) -> Visit {
        Visit {
            readers: Arc::clone(self),
            reader,
        }
    }

    /// Lists the reader as a play and joins it to the stream as a viewer.
    fn join(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        stream: &Read,
        name: &str,
        viewer: ViewerId,
    ) -> bool {
        let handle = stream.clone();
        let (uri, kind) = stream.listing();
        let record = PlayRecord {
            key: PlayKey::next(),
            media_session_id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            uri,
            kind,
            info: stream.info().clone(),
            created: SystemTime::now(),
            protocol: ViewerProtocol::Hls,
            stopper: Stopper::new(move |reason| handle.door().leave(viewer, reason)),
        };
        let ticket = registry.add_play(record, None);
        let carrier: Arc<dyn Carrier> = self.clone();
        if !stream
            .door()
            .join(Viewer::new(viewer, ViewerProtocol::Hls, carrier), ticket)
        {
            return false;
        }
        // Its media is already on the way: a reader is playing once it is in.
        let _ = stream
            .door()
            .viewer_events()
            .send((viewer, ViewerEvent::Connected));
        crate::metrics::METRICS.count_play(ViewerProtocol::Hls.as_str(), Ok(()));
        tracing::info!(stream = %stream.name(), viewer = viewer.0, "an HLS reader joined");
        true
    }

    /// Waits until the reader has made no request for the timeout, then ends it.
    async fn end_when_quiet(self: Arc<Self>, address: IpAddr, viewer: ViewerId, stream: Read) {
        loop {
            let due = {
                let mut state = self.state();
                match state.reader(address, viewer) {
                    Some(r) if r.in_flight > 0 => Instant::now() + self.timeout,
                    Some(r) => r.last_seen + self.timeout,
                    // Let go already (by its stream).
                    _ => return,
                }
            };
            if due <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        // Off the list first: the stream may have ended and hear nothing.
        if self.state().remove(viewer) {
            stream.door().leave(viewer, StopReason::SessionDisconnect);
        }
    }

    /// Readers now (for tests and logs).
    pub fn len(&self) -> usize {
        self.state().by_viewer.len()
    }

    /// No reader now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Carrier for Readers {
    fn let_go(&self, viewer: ViewerId, _ending: Ending) {
        self.state().remove(viewer);
    }
}

/// The address a reader is counted under: an IPv4 address, or an IPv6 client's /64.
fn address_of(peer: IpAddr) -> IpAddr {
    crate::gate::client_key(peer)
}

/// The part of a `User-Agent` kept as a reader's key.
fn agent_of(agent: Option<&str>) -> &str {
    let agent = agent.unwrap_or("");
    let mut end = agent.len().min(MAX_AGENT_LEN);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    &agent[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_as_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_of(a), address_of(b));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(address_of(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(agent_of(Some(&"é".repeat(200))).len(), 256);
    }
}
