//! What flows through a stream and where it goes: the [`Frame`] every stage passes
//! along, the [`Sink`]s a stream feeds (made per stream by a [`SinkFactory`]), the typed
//! [`Ending`] of a stream or a viewer and the [`StreamError`] a failed one carries, the
//! ids of streams and viewers, a stream's [`Viewer`]s as any protocol brings them, and a
//! live source's [`Publisher`], and the [`SinkSlot`] that adds sinks to a running stream.
//! Nothing here does I/O or knows a protocol's workings.

pub mod attach;
pub mod ending;
pub mod frame;
pub mod ids;
pub mod publisher;
pub mod sink;
pub mod stream_error;
pub mod viewer;
pub use attach::{AttachId, AttachedSinks, SinkSlot};
pub use ending::{Ending, FailReason, StopReason};
pub use frame::{Frame, MediaKind};
pub use ids::{StreamId, ViewerId};
pub use publisher::{Publisher, PublisherControl, PublisherEvent};
pub use sink::{Sink, SinkFactory, Sinks};
pub use stream_error::StreamError;
pub use viewer::{
    Carrier, LinkMoves, LinkNotices, LinkShort, MoveNote, Viewer, ViewerEvent, ViewerEvents,
    ViewerEventsRx, ViewerProtocol,
};
