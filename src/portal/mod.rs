//! The portal: protocol v1's wire format, the HTTPS client, resumable transfers and the result
//! outbox. The protocol as implemented is described in `docs/protocol.md`.
//!
//! - `wire`: the serde shapes of protocol v1, converted by hand into domain types elsewhere.
//! - `config`: [`PortalConfig`] (embedded in the engine's TOML), secrets kept out of `Debug`.
//! - `error`: [`PortalError`] (with `is_retryable`) and [`ConfigError`].
//! - `tls`: rustls/ring, system roots + extra CA bundle, SPKI pins, client certificates.
//! - `retry`: capped exponential backoff with jitter, for one call.
//! - `client`: [`PortalClient`]: poll (exact command bytes), ack, progress, results.
//! - `download`: [`Download`]: streamed, hashed on the fly, checkpointed, resumed with `Range`.
//! - `upload`: [`Upload`]: chunked `PUT ?offset=n`, resumed from the portal's committed offset.
//! - `outbox`: the idempotency key of a journaled result.

pub mod client;
pub mod config;
pub mod download;
pub mod error;
pub mod outbox;
pub mod retry;
pub mod tls;
pub mod upload;
pub mod wire;

pub use client::{Poll, PortalClient, ProgressTarget};
pub use config::{PortalConfig, ProxyConfig, RetryConfig, Secret, TlsConfig};
pub use download::{Download, Downloaded};
pub use error::{ConfigError, PortalError};
pub use outbox::idempotency_key;
pub use upload::{Upload, UploadStatus};
