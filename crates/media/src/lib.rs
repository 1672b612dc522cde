//! Codec work (placeholder, being written).
