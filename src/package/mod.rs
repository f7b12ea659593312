//! Packages on disk: unpacking a downloaded zip into the share, safely and recognisably, and
//! packing an application's sources for upload.
//!
//! - `entry_name`: which archive entry names may be written at all;
//! - `unpack`: the unpacker (limits, temporary sibling, rename, manifest).
//! - `zip_stream`: a front-to-back zip container writer (data descriptors, ZIP64).
//! - `pack`: a source folder → a zip, deflated in parallel chunks with bounded memory.

pub mod entry_name;
pub mod pack;
pub mod unpack;
pub mod zip_stream;
