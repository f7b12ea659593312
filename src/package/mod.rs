//! Packages on disk: unpacking a downloaded zip into the share, safely and recognisably.
//!
//! - `entry_name`: which archive entry names may be written at all;
//! - `unpack`: the unpacker (limits, temporary sibling, rename, manifest).

pub mod entry_name;
pub mod unpack;
