//! Moving a viewer between renditions of the stream it joined, for its link (beyond WCS):
//! down to a lower rendition when its link stays too narrow, back up when it recovers.
//!
//! The hub decides *when* (each viewer's move policy, from its receiver reports) and tells
//! it here as [`MoveNote`]s; this decides *where* and does the moving on both sides. Down:
//! the ladder below the joined stream ([`step_for`]: each step half the pixels and bit
//! rate of the stream, the first whose rate fits the link with margin), its rendition found
//! or started through the registry (shared, within `video_transcoders_max`; refused when
//! transcoding is disabled or no transcoder is free: then nothing moves) and asked for a
//! keyframe; up: the joined stream (a publisher is asked for a keyframe; a file's comes in
//! its time). The hub switches the viewer's media at the target's keyframe
//! ([`RtcFeeds::move_viewer`]); once it says so, the viewer is handed over from the stream
//! it was on to the target (counts, its statuses, its end), and its play's listing shows
//! the new size.
//!
//! Owns: one moving viewer's place (which stream holds it, at which step) and the ladder.
//! Must not: judge links (the hub's policy does) or touch media.

use std::sync::{Arc, Mutex, OnceLock};

use tracing::{info, Instrument, Span};

use crate::media::{LinkMoves, LinkShort, MoveNote, StopReason, StreamId, ViewerId};
use crate::stream::constraints::{VideoConstraints, BITRATE_RANGE_KBPS};
use crate::stream::door::ViewerDoor;
use crate::stream::live::TranslationHandle;
use crate::stream::published::PublishedHandle;
use crate::stream::registry::{PlayKey, Registry, RenditionParent};
use crate::stream::rendition::RenditionHandle;
use crate::stream::MediaInfo;
use crate::webrtc::RtcFeeds;

/// The lowest step of the ladder (a sixteenth of the stream's pixels and bit rate).
const MAX_STEP: u32 = 4;
/// A step fits a link when its bit rate is at most this share of what the link carried:
/// room for the audio (its rate is counted in the stream's but not halved), the encoder's
/// overshoot and the repairs of a link that was just full.
const MARGIN: f64 = 0.6;

/// A stream that holds a moving viewer: the one it joined, or a rendition of it.
#[derive(Clone)]
pub(super) enum Holder {
    Translation(TranslationHandle),
    Published(PublishedHandle),
    Rendition(RenditionHandle),
}

impl Holder {
    fn stream(&self) -> StreamId {
        match self {
            Holder::Translation(t) => t.stream,
            Holder::Published(p) => p.stream,
            Holder::Rendition(r) => r.stream,
        }
    }

    fn info(&self) -> &MediaInfo {
        match self {
            Holder::Translation(t) => &t.info,
            Holder::Published(p) => &p.info,
            Holder::Rendition(r) => &r.info,
        }
    }

    /// How viewers come in and go.
    fn door(&self) -> &ViewerDoor {
        match self {
            Holder::Translation(t) => &t.door,
            Holder::Published(p) => &p.door,
            Holder::Rendition(r) => &r.door,
        }
    }

    /// Asks for a keyframe where one can be made on demand.
    fn ask_keyframe(&self) {
        match self {
            // A file's keyframes come where they are.
            Holder::Translation(_) => {}
            Holder::Published(p) => p.request_keyframe(),
            Holder::Rendition(r) => r.request_keyframe(),
        }
    }
}

/// Where a moving viewer is: shared with its play's stopper, which stops it there.
pub(super) type Place = Arc<Mutex<Holder>>;

/// Stops the viewer wherever it is now.
pub(super) fn leave_place(place: &Place, viewer: ViewerId, reason: StopReason) {
    let holder = place
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    holder.door().leave(viewer, reason);
}

/// One moving viewer (see the module docs).
struct Mover {
    registry: Arc<Registry>,
    feeds: RtcFeeds,
    /// The stream it joined.
    parent: Holder,
    /// The id the parent's slot for renditions is listed by.
    slot_id: String,
    key: PlayKey,
    place: Place,
    /// Its step now (0: the parent).
    step: u32,
    /// The move asked of the hub and not done yet: its target and step.
    pending: Option<(Holder, u32)>,
    /// The parent's bit rate to the viewer, as measured on the first move down.
    parent_bps: Option<u64>,
    span: Span,
}

/// What a moving viewer's notes need: the viewer (known once added to the hub) and its
/// mover, which handles one note at a time.
struct Moving {
    viewer: OnceLock<ViewerId>,
    mover: tokio::sync::Mutex<Mover>,
}

/// What [`start`] makes: the plan's notes, the play's place, and how to name the viewer
/// once it has an id.
pub(super) struct MoveSetup {
    pub notes: LinkMoves,
    pub place: Place,
    moving: Arc<Moving>,
}

impl MoveSetup {
    /// The viewer is added to the hub as `id` (before any note can come).
    pub(super) fn set_viewer(&self, id: ViewerId, span: &Span) {
        let _ = self.moving.viewer.set(id);
        if let Ok(mut m) = self.moving.mover.try_lock() {
            m.span = span.clone();
        }
    }
}

/// Makes a viewer of `parent` (a translation or a published stream) movable: the notes go
/// to a mover that acts on them one at a time.
pub(super) fn start(
    registry: Arc<Registry>,
    feeds: RtcFeeds,
    parent: Holder,
    slot_id: String,
    key: PlayKey,
) -> MoveSetup {
    let place = Arc::new(Mutex::new(parent.clone()));
    let moving = Arc::new(Moving {
        viewer: OnceLock::new(),
        mover: tokio::sync::Mutex::new(Mover {
            registry,
            feeds,
            parent,
            slot_id,
            key,
            place: place.clone(),
            step: 0,
            pending: None,
            parent_bps: None,
            span: Span::none(),
        }),
    });
    let for_notes = moving.clone();
    let notes = LinkMoves::new(move |note| {
        let moving = for_notes.clone();
        // Called from the hub's loop: the work (a rendition to start, a hand-over to
        // wait for) runs beside it.
        tokio::spawn(async move {
            let Some(&viewer) = moving.viewer.get() else {
                return;
            };
            let mut mover = moving.mover.lock().await;
            let span = mover.span.clone();
            mover.on_note(viewer, note).instrument(span).await;
        });
    });
    MoveSetup {
        notes,
        place,
        moving,
    }
}

impl Mover {
    async fn on_note(&mut self, viewer: ViewerId, note: MoveNote) {
        match note {
            MoveNote::Down(short) => self.down(viewer, short),
            MoveNote::Up => self.up(viewer),
            MoveNote::Switched => self.switched(viewer).await,
            MoveNote::Abandoned => self.pending = None,
        }
    }

    fn down(&mut self, viewer: ViewerId, short: LinkShort) {
        if self.pending.is_some() {
            return;
        }
        let parent_bps = *self.parent_bps.get_or_insert(short.sending_bps);
        let info = self.parent.info();
        let Some((step, constraints)) = step_for(
            info.width,
            info.height,
            parent_bps,
            short.carries_bps,
            self.step,
        ) else {
            info!("link too narrow, but no lower rendition to move to");
            return;
        };
        let parent = RenditionParent {
            slot_id: &self.slot_id,
            stream: self.parent.stream(),
            info,
            published: matches!(self.parent, Holder::Published(_)),
        };
        let rendition = match self.registry.find_or_start_rendition(parent, constraints) {
            Ok(r) => r,
            Err(e) => {
                info!("link too narrow, but no lower rendition: {e}");
                return;
            }
        };
        info!(
            step,
            width = rendition.info.width,
            height = rendition.info.height,
            kbps = constraints.bitrate_kbps.unwrap_or(0),
            "moving down to a lower rendition at its next keyframe"
        );
        let target = Holder::Rendition(rendition);
        target.ask_keyframe();
        self.feeds
            .move_viewer(viewer, target.stream(), target.door().viewer_events(), true);
        self.pending = Some((target, step));
    }

    fn up(&mut self, viewer: ViewerId) {
        if self.pending.is_some() || self.step == 0 {
            return;
        }
        info!("moving back up to the stream at its next keyframe");
        let target = self.parent.clone();
        target.ask_keyframe();
        self.feeds.move_viewer(
            viewer,
            target.stream(),
            target.door().viewer_events(),
            false,
        );
        self.pending = Some((target, 0));
    }

    /// The hub switched the viewer's media: the stream it left hands it to the target.
    async fn switched(&mut self, viewer: ViewerId) {
        let Some((target, step)) = self.pending.take() else {
            return;
        };
        let from = self
            .place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // Nothing comes when the viewer has left meanwhile.
        let Ok((held, ticket)) = from.door().hand_over(viewer).await else {
            return;
        };
        // A target that has just ended lets the viewer go and ends its play.
        target.door().join(held, ticket);
        self.registry.play_moved(self.key, target.info().clone());
        *self
            .place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = target.clone();
        info!(
            step,
            width = target.info().width,
            height = target.info().height,
            "moved to {}",
            if step == 0 {
                "the stream itself"
            } else {
                "a lower rendition"
            }
        );
        self.step = step;
    }
}

/// The ladder below a stream of `width`×`height` sent at `stream_bps`: step k has 1/2^k
/// of its pixels and bit rate. The first step below `below` whose bit rate is within
/// [`MARGIN`] of what the link `carries_bps`, else the lowest step ([`MAX_STEP`]) if the
/// viewer is above it; with the rendition's constraints. `None`: nothing lower.
pub(super) fn step_for(
    width: u32,
    height: u32,
    stream_bps: u64,
    carries_bps: u64,
    below: u32,
) -> Option<(u32, VideoConstraints)> {
    if below >= MAX_STEP || width == 0 || height == 0 {
        return None;
    }
    let fits = |k: u32| (stream_bps >> k) as f64 <= carries_bps as f64 * MARGIN;
    let step = (below + 1..=MAX_STEP)
        .find(|&k| fits(k))
        .unwrap_or(MAX_STEP);
    let scale = 0.5f64.powf(f64::from(step) / 2.0);
    let h = ((f64::from(height) * scale / 2.0).round() as u32 * 2).max(16);
    let kbps = ((stream_bps >> step) / 1000).clamp(
        u64::from(*BITRATE_RANGE_KBPS.start()),
        u64::from(*BITRATE_RANGE_KBPS.end()),
    ) as u32;
    let asked = VideoConstraints {
        height: Some(h),
        bitrate_kbps: Some(kbps),
        ..VideoConstraints::default()
    };
    Some((step, asked.resolved_for(width, height)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_that_fits_the_link_with_margin_and_never_above_the_viewer() {
        // 720p at 1.6 Mbit/s on a link that carried 1.1 Mbit/s: 400 kbit/s (step 2) fits
        // within 60 % of it, 800 (step 1) does not.
        let (step, c) = step_for(1280, 720, 1_600_000, 1_100_000, 0).unwrap();
        assert_eq!(step, 2);
        assert_eq!((c.width, c.height), (Some(640), Some(360)));
        assert_eq!(c.bitrate_kbps, Some(400));
        // Half the pixels a step: 1280x720 → about 905x509, in even numbers.
        let (step, c) = step_for(1280, 720, 1_600_000, 1_500_000, 0).unwrap();
        assert_eq!(step, 1);
        assert_eq!((c.width, c.height), (Some(906), Some(510)));
        // Nothing fits: the lowest step.
        let (step, c) = step_for(1280, 720, 1_600_000, 50_000, 0).unwrap();
        assert_eq!((step, c.bitrate_kbps), (MAX_STEP, Some(100)));
        assert_eq!((c.width, c.height), (Some(320), Some(180)));
        // Already on step 2: only lower ones, and none below the lowest.
        assert_eq!(step_for(1280, 720, 1_600_000, 1_500_000, 2).unwrap().0, 3);
        assert!(step_for(1280, 720, 1_600_000, 50_000, MAX_STEP).is_none());
        assert!(step_for(0, 0, 1_600_000, 50_000, 0).is_none());
    }
}
