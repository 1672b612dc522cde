//! The frame: the unit every stage passes along, from a source through a stream to its
//! sinks, with its media kind. Plain data: codec work lives in the `codec` crate, I/O and
//! viewers elsewhere.

pub mod frame;
pub use frame::{Frame, MediaKind};
