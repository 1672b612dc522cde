//! What flows through a stream and where it goes: the [`Frame`] every stage passes
//! along, the [`Sink`]s a stream feeds, and the typed [`Ending`] of a stream or a viewer.
//! Nothing here does I/O or knows about viewers.

pub mod ending;
pub mod frame;
pub mod sink;
pub use ending::{Ending, FailReason, StopReason};
pub use frame::{Frame, MediaKind};
pub use sink::{Sink, Sinks};
