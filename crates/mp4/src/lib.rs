//! Sans-IO MP4 demuxing (placeholder, being written).
