//! What flows through a stream and where it goes: the [`Frame`] every stage passes
//! along, the [`Sink`]s a stream feeds, and the typed [`Ending`] of a stream or a viewer
//! and the [`StreamError`] a failed one carries.
//! Nothing here does I/O or knows about viewers.

pub mod ending;
pub mod frame;
pub mod sink;
pub mod stream_error;
pub use ending::{Ending, FailReason, StopReason};
pub use frame::{Frame, MediaKind};
pub use sink::{Sink, Sinks};
pub use stream_error::StreamError;
