//! The portal client's typed errors. Each says whether retrying can help ([`PortalError::is_retryable`]):
//! connection failures, timeouts, interrupted bodies, `5xx` and `429` are transient; every other
//! `4xx`, certificate problems, verification failures and local I/O errors are not.
//!
//! No error ever carries the proxy password or the full remote ID.

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// The configuration cannot make a client.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("portal base URL {url:?} is invalid: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("remote ID is invalid: {0}")]
    RemoteId(String),
    #[error("proxy URL is invalid: {0}")]
    ProxyUrl(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HTTP client cannot be built: {0}")]
    Client(String),
}

/// A portal call failed.
#[derive(Debug, Error)]
pub enum PortalError {
    /// No connection (refused, DNS, proxy unreachable): the portal or the path to it is down.
    #[error("cannot connect to the portal: {detail}")]
    Connect { detail: String },
    /// Connecting or reading took longer than the configured timeout.
    #[error("the portal did not answer in time: {detail}")]
    Timeout { detail: String },
    /// The connection broke while a body was travelling (reset, truncated).
    #[error("the transfer was interrupted: {detail}")]
    Interrupted { detail: String },
    /// The server's certificate was refused (unknown issuer, expired, wrong name, …).
    #[error("the portal's TLS certificate was refused: {detail}")]
    Tls { detail: String },
    /// The certificate is valid but its public key matches none of the configured pins.
    #[error(
        "the portal's certificate public key does not match the configured pin \
         (its SPKI SHA-256 is {actual_base64})"
    )]
    PinMismatch { actual_base64: String },
    /// The proxy refused our credentials (407).
    #[error("the proxy refused the configured credentials (407 Proxy Authentication Required)")]
    ProxyAuth,
    /// The proxy would not open a tunnel to the portal. It may be unable to reach the portal
    /// (transient), or refuse our credentials: some proxies (tinyproxy) answer `401` rather
    /// than `407`, which cannot be told apart from here.
    #[error(
        "the proxy did not open a tunnel to the portal ({detail}); check the proxy credentials \
         and that the proxy can reach the portal"
    )]
    Proxy { detail: String },
    /// 401: the portal does not know this connector.
    #[error(
        "remote ID not accepted: the portal answered 401 to remote ID {remote_id_hint}; \
         check the remote ID configured for this connector in the portal"
    )]
    Unauthorized { remote_id_hint: String },
    /// 429: slow down.
    #[error("the portal is rate limiting (429){}", retry_after_text(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx.
    #[error("the portal failed ({status}){}: {body}", retry_after_text(*.retry_after))]
    Server {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// 409 on a result: the same Idempotency-Key was sent before with a different body.
    #[error("the portal refused the request as a conflict (409): {body}")]
    Conflict { body: String },
    /// Any other 4xx: the request itself is wrong; repeating it cannot help.
    #[error("the portal refused the request ({status}): {body}")]
    Rejected { status: u16, body: String },
    /// The portal answered something that is not protocol v1.
    #[error("unexpected answer from the portal: {0}")]
    Protocol(String),
    /// A downloaded file does not have the announced size.
    #[error("downloaded {actual} bytes but the command announced {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    /// A downloaded file does not have the announced SHA-256.
    #[error("downloaded file's SHA-256 is {actual} but the command announced {expected}")]
    Sha256Mismatch { expected: String, actual: String },
    /// The portal refused an upload's completion (422): size or SHA-256 differ from what it got.
    #[error("the portal refused the upload's completion (422): {body}")]
    UploadMismatch { body: String },
    /// The file to upload changed under us (its size or SHA-256 is not the announced one).
    #[error("the file to upload does not match its announced {what}")]
    SourceChanged { what: &'static str },
    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Any other client-side failure (building a request, an internal task failing).
    #[error("portal client: {0}")]
    Client(String),
}

impl PortalError {
    /// Whether repeating the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Proxy { .. }
                | Self::Timeout { .. }
                | Self::Interrupted { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
        )
    }

    /// The delay the portal asked for (`Retry-After` on 429 or 5xx), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the portal answered, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::RateLimited { .. } => Some(429),
            Self::ProxyAuth => Some(407),
            Self::Conflict { .. } => Some(409),
            Self::UploadMismatch { .. } => Some(422),
            Self::Server { status, .. } | Self::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(delay) => format!(", retry after {} s", delay.as_secs()),
        None => String::new(),
    }
}
