//! Sinks added to a stream while it runs (a recording started by REST): the stream
//! holds one [`AttachedSinks`] among its sinks from its start, and whoever wants to add
//! one later holds the [`SinkSlot`] made with it.
//!
//! A sink attached late is told the stream's epoch (if the clock runs), then gets the
//! frames since the stream's last keyframe at once (`Sink::preroll`: the GOP in
//! progress, kept here: at most [`MAX_PREROLL_FRAMES`], else none), so a recording
//! starts with a picture without waiting for the next keyframe, which a file cannot make
//! on request; then every frame
//! from then on, and is told the ending: when the stream ends, or when it is detached. Owns only the list; the stream's task takes the lock once per
//! frame batch, the attacher only to add or remove (never while a sink works long: sinks
//! must not block, as every `Sink`).
//!
//! A stream kind that can be recorded (a translation, a published stream) pushes
//! [`SinkSlot::new`]'s `AttachedSinks` into its sinks and lists the slot (the registry's
//! `recordable`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::ending::Ending;
use super::frame::Frame;
use super::sink::Sink;

/// Frames of the GOP in progress kept for a sink attached late (they share their bytes
/// with the stream: a few KB of handles). A longer GOP keeps none until its next keyframe.
pub const MAX_PREROLL_FRAMES: usize = 256;

/// Which attached sink (to detach it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttachId(u64);

#[derive(Default)]
struct Slots {
    epoch: Option<Instant>,
    sinks: Vec<(AttachId, Box<dyn Sink>)>,
    next: u64,
    ended: bool,
    /// The frames since the last keyframe (audio included), when they are few enough.
    preroll: Vec<Frame>,
    /// The GOP in progress outgrew the pre-roll: nothing is kept until the next keyframe.
    preroll_overflow: bool,
}

/// The handle that adds sinks to one running stream. Cheap to clone.
#[derive(Clone, Default)]
pub struct SinkSlot(Arc<Mutex<Slots>>);

/// The stream's side: a [`Sink`] that feeds whatever is attached now.
pub struct AttachedSinks(SinkSlot);

impl SinkSlot {
    /// A slot and the sink its stream holds.
    pub fn new() -> (SinkSlot, AttachedSinks) {
        let slot = SinkSlot::default();
        (slot.clone(), AttachedSinks(slot))
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A sink that panicked leaves a plain list behind: still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `sink` to the stream; `Err` gives it back when the stream has ended.
    pub fn attach(&self, mut sink: Box<dyn Sink>) -> Result<AttachId, Box<dyn Sink>> {
        let mut s = self.lock();
        if s.ended {
            return Err(sink);
        }
        if let Some(epoch) = s.epoch {
            sink.start(epoch);
        }
        sink.preroll(&s.preroll);
        s.next += 1;
        let id = AttachId(s.next);
        s.sinks.push((id, sink));
        Ok(id)
    }

    /// Takes the sink `id` off the stream, telling it `ending`; `false` if it is not there.
    pub fn detach(&self, id: AttachId, ending: &Ending) -> bool {
        let sink = {
            let mut s = self.lock();
            let at = s.sinks.iter().position(|(i, _)| *i == id);
            at.map(|at| s.sinks.remove(at).1)
        };
        sink.map(|mut sink| sink.end(ending)).is_some()
    }

    /// The stream has ended (nothing can be attached any more).
    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }
}

impl Sink for AttachedSinks {
    fn start(&mut self, epoch: Instant) {
        let mut s = self.0.lock();
        s.epoch = Some(epoch);
        for (_, sink) in &mut s.sinks {
            sink.start(epoch);
        }
    }

    fn frames(&mut self, first: Frame, second: Option<Frame>) {
        let mut s = self.0.lock();
        for f in std::iter::once(&first).chain(second.as_ref()) {
            if f.kind == super::MediaKind::Video && f.keyframe {
                s.preroll.clear();
                s.preroll_overflow = false;
            }
            if s.preroll.len() >= MAX_PREROLL_FRAMES {
                s.preroll.clear();
                s.preroll_overflow = true;
            }
            if !s.preroll_overflow {
                s.preroll.push(f.clone());
            }
        }
        for (_, sink) in &mut s.sinks {
            sink.frames(first.clone(), second.clone());
        }
    }

    fn end(&mut self, ending: &Ending) {
        let sinks = {
            let mut s = self.0.lock();
            s.ended = true;
            s.preroll.clear();
            std::mem::take(&mut s.sinks)
        };
        for (_, mut sink) in sinks {
            sink.end(ending);
        }
    }

    fn needs_reencode(&self) -> bool {
        // A recording or a rendition takes the stream's `Video` frames: a stream that
        // re-encodes only on demand must while one is attached.
        !self.0.lock().sinks.is_empty()
    }

    fn last_read(&self) -> Option<Instant> {
        // An attached sink may stand for readers of the stream (a rendition's viewers).
        let s = self.0.lock();
        s.sinks
            .iter()
            .filter_map(|(_, sink)| sink.last_read())
            .max()
    }
}

impl Drop for AttachedSinks {
    fn drop(&mut self) {
        // A stream dropped without `end` (a panic) still lets its attached sinks finish.
        if !self.0.is_ended() {
            self.end(&Ending::Stopped(super::ending::StopReason::Shutdown));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaKind, StopReason};

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    impl Sink for Log {
        fn start(&mut self, _: Instant) {
            self.0.lock().unwrap().push("start".into());
        }
        fn frames(&mut self, f: Frame, _: Option<Frame>) {
            self.0.lock().unwrap().push(format!("{}", f.dts_us));
        }
        fn end(&mut self, e: &Ending) {
            self.0.lock().unwrap().push(format!("end {e}"));
        }
    }

    fn frame(t: i64) -> Frame {
        Frame {
            kind: MediaKind::Video,
            dts_us: t,
            pts_us: t,
            keyframe: true,
            data: Arc::from(&b"x"[..]),
        }
    }

    #[test]
    fn a_sink_attached_late_gets_the_epoch_the_gop_in_progress_then_frames_until_detached() {
        let (slot, mut stream) = SinkSlot::new();
        stream.start(Instant::now());
        stream.frames(frame(1), None);
        let log = Log::default();
        stream.frames(frame(2), None);
        let mut picture = frame(3);
        picture.keyframe = false;
        stream.frames(picture, None);
        let id = slot.attach(Box::new(log.clone())).ok().unwrap();
        stream.frames(frame(4), None);
        assert!(slot.detach(id, &Ending::Stopped(StopReason::ByUser)));
        stream.frames(frame(5), None);
        // The GOP in progress first (keyframe 2, picture 3), then what follows.
        assert_eq!(
            *log.0.lock().unwrap(),
            ["start", "2", "3", "4", "end Stopped by user"]
        );
        assert!(!slot.detach(id, &Ending::Stopped(StopReason::ByUser)));
    }

    #[test]
    fn the_streams_end_reaches_attached_sinks_and_closes_the_slot() {
        let (slot, mut stream) = SinkSlot::new();
        let log = Log::default();
        slot.attach(Box::new(log.clone())).ok().unwrap();
        stream.end(&Ending::Stopped(StopReason::EndOfFile));
        assert_eq!(*log.0.lock().unwrap(), ["end "]);
        assert!(slot.is_ended());
        assert!(slot.attach(Box::new(Log::default())).is_err());
    }
}
