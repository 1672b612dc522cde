//! The running HLS ABR ladders: for one ABR name (`NAME-HLS-ABR-STREAM`), the stream it
//! is made of (its own HLS window is the top variant, untouched) and the renditions below
//! it (`hls_abr_ladder`, the heights under the source's), each a registry rendition whose
//! child stream has an HLS muxer ([`Registry::find_or_start_hls_rendition`]): encoded
//! once, whoever reads it. A ladder holds each rung as one viewer of it (not listed as a
//! play: the people reading are [`super::readers`]' HLS readers of the parent stream),
//! and lets them go when no request has come under its name for the readers' timeout, so
//! the encoders stop as a plain stream's HLS idles out.
//!
//! Owns: starting a ladder (rungs that cannot start, for want of a transcoder or with
//! `transcoding_disabled`, are left out and logged), finding its windows by variant and
//! by run tag, and its end. Must not: serve HTTP (that is `super::abr`) or encode (the
//! registry's renditions do).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::readers::Read;
use crate::config::Settings;
use crate::hls::Window;
use crate::media::{Carrier, Ending, StopReason, Viewer, ViewerId, ViewerProtocol};
use crate::stream::constraints::VideoConstraints;
use crate::stream::registry::RenditionParent;
use crate::stream::rendition::RenditionHandle;
use crate::stream::{MediaInfo, PlayKey, PlayTicket, Registry};

/// Ladders the server runs at once, at most (each costs its rungs' encoders, which
/// `video_transcoders_max` bounds too; this bounds the map).
const MAX_LADDERS: usize = 256;

/// One rendition of a ladder.
pub struct Rung {
    /// Its media playlist's name (`480p`).
    pub label: String,
    /// The rendition.
    pub handle: RenditionHandle,
    /// Its HLS window.
    pub window: Arc<Window>,
    /// The ladder's viewer of it.
    viewer: ViewerId,
    /// The rendition let the ladder's viewer go (it ended).
    gone: Arc<AtomicBool>,
}

impl Rung {
    /// Still running.
    pub fn is_running(&self) -> bool {
        !self.gone.load(Ordering::Relaxed) && !self.window.is_ended()
    }
}

/// Requests under the ladder's name: while one lasts, and for the timeout after the
/// last, the ladder runs.
#[derive(Default)]
struct Activity {
    last_seen: Option<Instant>,
    in_flight: usize,
}

/// One ABR name's ladder.
pub struct Ladder {
    /// The stream it is made of.
    pub parent: Read,
    /// Its size.
    pub parent_info: MediaInfo,
    /// The stream's own HLS window: the top variant.
    pub source: Arc<Window>,
    /// The renditions, highest first.
    pub rungs: Vec<Rung>,
    activity: Mutex<Activity>,
    ended: AtomicBool,
}

/// One request under a ladder's name.
pub struct LadderVisit(Arc<Ladder>);

impl Drop for LadderVisit {
    fn drop(&mut self) {
        let mut a = self.0.activity();
        a.in_flight = a.in_flight.saturating_sub(1);
        a.last_seen = Some(Instant::now());
    }
}

impl Ladder {
    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request under the ladder's name, until the guard is dropped.
    pub fn visit(self: &Arc<Self>) -> LadderVisit {
        let mut a = self.activity();
        a.in_flight += 1;
        a.last_seen = Some(Instant::now());
        LadderVisit(Arc::clone(self))
    }

    /// The window of media playlist `stem` (`source`, `480p`).
    pub fn variant(&self, stem: &str) -> Option<Arc<Window>> {
        if stem == SOURCE {
            return Some(self.source.clone());
        }
        self.rungs
            .iter()
            .find(|r| r.label == stem)
            .map(|r| r.window.clone())
    }

    /// The window whose run is tagged `tag` (the segment and part URLs name it).
    pub fn by_tag(&self, tag: &str) -> Option<Arc<Window>> {
        std::iter::once(&self.source)
            .chain(self.rungs.iter().map(|r| &r.window))
            .find(|w| w.tag() == tag)
            .cloned()
    }

    /// Lets the rungs go: their encoders stop (unless another ladder holds them).
    fn end(&self) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        for rung in &self.rungs {
            rung.handle.door.leave(rung.viewer, StopReason::NoViewers);
        }
    }

    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// The source's media playlist's name in an ABR stream's folder.
pub const SOURCE: &str = "source";

/// Every running ladder, by ABR name.
pub struct Ladders {
    map: Mutex<HashMap<String, Arc<Ladder>>>,
    timeout: Duration,
}

impl Ladders {
    /// No ladders; each ends after `timeout` without a request.
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Ladders {
            map: Mutex::default(),
            timeout,
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Ladder>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running ladder of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Ladder>> {
        self.map().get(name).filter(|l| !l.is_ended()).cloned()
    }

    /// The ladder of `name` made of the running stream `parent` (whose HLS window is
    /// `source`), started if none runs for this run of it. `None`: too many ladders.
    pub fn find_or_start(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        settings: &Settings,
        name: &str,
        parent: Read,
        source: Arc<Window>,
    ) -> Option<Arc<Ladder>> {
        // Under the lock: two first requests at once start one ladder.
        let mut map = self.map();
        if let Some(ladder) = map.get(name) {
            if !ladder.is_ended() && ladder.parent.id() == parent.id() {
                return Some(ladder.clone());
            }
            // Another run of the stream: its ladder goes.
            ladder.end();
            map.remove(name);
        }
        if map.len() >= MAX_LADDERS {
            return None;
        }
        let info = parent_info(&parent).clone();
        let rungs = start_rungs(registry, settings, name, &parent, &info);
        let ladder = Arc::new(Ladder {
            parent,
            parent_info: info,
            source,
            rungs,
            activity: Mutex::default(),
            ended: AtomicBool::new(false),
        });
        map.insert(name.to_string(), ladder.clone());
        tokio::spawn(Arc::clone(self).end_when_quiet(name.to_string(), ladder.clone()));
        Some(ladder)
    }

    /// Waits until no request has come under the ladder's name for the timeout, then
    /// ends it.
    async fn end_when_quiet(self: Arc<Self>, name: String, ladder: Arc<Ladder>) {
        // The request that starts it counts from now.
        ladder.activity().last_seen = Some(Instant::now());
        loop {
            if ladder.is_ended() {
                return;
            }
            let due = {
                let a = ladder.activity();
                match a.last_seen {
                    _ if a.in_flight > 0 => Instant::now() + self.timeout,
                    Some(seen) => seen + self.timeout,
                    None => Instant::now(),
                }
            };
            if due <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        {
            let mut map = self.map();
            if map.get(&name).is_some_and(|l| Arc::ptr_eq(l, &ladder)) {
                map.remove(&name);
            }
        }
        ladder.end();
        tracing::info!(stream = %name, "HLS ABR ladder stopped: no reader for a while");
    }

    /// Ladders running now.
    pub fn len(&self) -> usize {
        self.map().values().filter(|l| !l.is_ended()).count()
    }

    /// None running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parent_info(parent: &Read) -> &MediaInfo {
    match parent {
        Read::Translation(t) => &t.info,
        Read::Published(p, _) => &p.info,
    }
}

/// The ladder's steps for a source of `info`: the configured heights below the source's.
fn steps(settings: &Settings, info: &MediaInfo) -> Vec<VideoConstraints> {
    if !info.has_video || info.width == 0 || info.height == 0 {
        return Vec::new();
    }
    let mut steps: Vec<VideoConstraints> = Vec::new();
    for rung in settings
        .hls_abr_ladder
        .iter()
        .filter(|r| r.height < info.height)
    {
        let c = VideoConstraints {
            height: Some(rung.height),
            bitrate_kbps: Some(rung.kbps),
            ..VideoConstraints::default()
        }
        .resolved_for(info.width, info.height);
        // Two heights that come to one picture size (odd sizes rounded): one rung.
        if !steps.iter().any(|s| s.height == c.height) {
            steps.push(c);
        }
    }
    steps
}

/// Starts (or joins) each rung; those that cannot start are logged and left out.
fn start_rungs(
    registry: &Arc<Registry>,
    settings: &Settings,
    name: &str,
    parent: &Read,
    info: &MediaInfo,
) -> Vec<Rung> {
    let mut rungs = Vec::new();
    for constraints in steps(settings, info) {
        let rendition_parent = match parent {
            Read::Translation(t) => RenditionParent {
                slot_id: &t.id,
                stream: t.stream,
                info: &t.info,
                published: false,
            },
            Read::Published(p, _) => RenditionParent {
                slot_id: &p.media_session_id,
                stream: p.stream,
                info: &p.info,
                published: true,
            },
        };
        let height = constraints.height.unwrap_or(0);
        let handle = match registry.find_or_start_hls_rendition(rendition_parent, constraints) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(stream = %name, height, "HLS ABR rung left out: {e}");
                continue;
            }
        };
        let Some(window) = handle
            .hls_window
            .as_deref()
            .and_then(|id| registry.hls.get(id))
        else {
            tracing::warn!(stream = %name, height, "HLS ABR rung left out: it has no HLS");
            continue;
        };
        let gone = Arc::new(AtomicBool::new(false));
        let carrier: Arc<dyn Carrier> = Arc::new(RungCarrier(gone.clone()));
        let viewer = ViewerId::next();
        // Not listed: the ladder's hold on the rung is no one's play.
        let ticket = PlayTicket::new(PlayKey::next(), None, Box::new(|| {}));
        if !handle
            .door
            .join(Viewer::new(viewer, ViewerProtocol::Hls, carrier), ticket)
        {
            continue;
        }
        rungs.push(Rung {
            label: format!("{height}p"),
            handle,
            window,
            viewer,
            gone,
        });
    }
    tracing::info!(
        stream = %name,
        rungs = %rungs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(","),
        "HLS ABR ladder started"
    );
    rungs
}

/// The ladder's viewer of a rung, as the rendition sees it: let go when it ends.
struct RungCarrier(Arc<AtomicBool>);

impl Carrier for RungCarrier {
    fn let_go(&self, _viewer: ViewerId, _ending: Ending) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ladder::default_ladder;

    #[test]
    fn the_steps_are_the_heights_below_the_sources() {
        let settings = Settings {
            hls_abr_ladder: default_ladder(),
            ..Settings::default()
        };
        let info = |width, height| MediaInfo {
            has_video: true,
            width,
            height,
            ..MediaInfo::default()
        };
        let sizes = |i: MediaInfo| {
            steps(&settings, &i)
                .iter()
                .map(|c| (c.width.unwrap(), c.height.unwrap(), c.bitrate_kbps.unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sizes(info(1280, 720)),
            vec![(852, 480, 1200), (640, 360, 800), (426, 240, 400)]
        );
        assert_eq!(sizes(info(1920, 1080)).len(), 4);
        assert!(sizes(info(320, 240)).is_empty());
        assert!(sizes(info(0, 0)).is_empty());
    }
}
