//! What happens to a viewer, as the hub and the viewer tell whoever added it. The events
//! are the streams' own, protocol-neutral ones ([`crate::media::viewer`]): the hub and
//! its viewers send them here, streams hear them without knowing WebRTC.

pub(super) use crate::media::{ViewerEvent, ViewerEvents};
