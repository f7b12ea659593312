//! The portal: its wire format (and, later, the HTTPS client, transfers and the outbox).
//!
//! - `wire`: the serde shapes of protocol v1, converted by hand into domain types elsewhere.

pub mod wire;
