//! The portal client's configuration: where the portal is, who we are, how to reach it (timeouts,
//! proxy, TLS) and how hard to retry. The engine's TOML configuration embeds [`PortalConfig`];
//! every field but `base_url` and `remote_id` has a default.
//!
//! Secrets: the proxy password is a [`Secret`] (never printed by `Debug`); the remote ID is
//! printed only as [`PortalConfig::remote_id_hint`] (its first 8 characters).

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the portal. `Debug` never shows the proxy password nor the full remote ID.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// The portal's base URL, e.g. `https://portal.example.com`; the API paths
    /// (`/api/connector/v1/…`) are appended to it.
    pub base_url: String,
    /// This connector's remote ID (a UUID), sent in `X-Connector-Remote-Id`.
    pub remote_id: String,
    /// Seconds between polls when the portal does not say (`poll_after_seconds`); jittered.
    #[serde(default = "defaults::poll_interval_seconds")]
    pub poll_interval_seconds: u64,
    /// Seconds to establish a TCP (and proxy, and TLS) connection.
    #[serde(default = "defaults::connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
    /// Seconds without a single byte read before a request fails.
    #[serde(default = "defaults::read_timeout_seconds")]
    pub read_timeout_seconds: u64,
    /// An explicit proxy; without it `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` (and, on
    /// Windows, the system proxy settings) apply.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Trust, pinning and client identity.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Retries of one call inside the client (the engine retries across restarts).
    #[serde(default)]
    pub retry: RetryConfig,
}

impl PortalConfig {
    /// A configuration with every default, for `base_url` and `remote_id`.
    pub fn new(base_url: impl Into<String>, remote_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            remote_id: remote_id.into(),
            poll_interval_seconds: defaults::poll_interval_seconds(),
            connect_timeout_seconds: defaults::connect_timeout_seconds(),
            read_timeout_seconds: defaults::read_timeout_seconds(),
            proxy: None,
            tls: TlsConfig::default(),
            retry: RetryConfig::default(),
        }
    }

    /// The remote ID as it may appear in logs and errors: its first 8 characters and an ellipsis.
    pub fn remote_id_hint(&self) -> String {
        remote_id_hint(&self.remote_id)
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_seconds)
    }
}

impl fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortalConfig")
            .field("base_url", &self.base_url)
            .field("remote_id", &self.remote_id_hint())
            .field("poll_interval_seconds", &self.poll_interval_seconds)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("read_timeout_seconds", &self.read_timeout_seconds)
            .field("proxy", &self.proxy)
            .field("tls", &self.tls)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The first 8 characters of a remote ID and an ellipsis: all that is ever logged of it.
pub fn remote_id_hint(remote_id: &str) -> String {
    let prefix: String = remote_id.chars().take(8).collect();
    format!("{prefix}…")
}

/// An explicit HTTP proxy (HTTPS to the portal is tunnelled through it with `CONNECT`).
/// `Debug` shows neither the password nor credentials written into the URL.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// `http://host:port` (credentials in the URL are moved into `username`/`password`).
    pub url: String,
    /// Basic authentication user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication password: never printed, logged or put into an error.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Hosts reached without the proxy, comma separated, in `NO_PROXY` syntax.
    #[serde(default)]
    pub no_proxy: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `scheme://user:password@host` → `scheme://***@host`.
        let url = match (self.url.split_once("://"), self.url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
            _ => self.url.clone(),
        };
        f.debug_struct("ProxyConfig")
            .field("url", &url)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// TLS settings. The operating system's roots are always trusted; TLS 1.2 is the minimum.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates trusted besides the system's roots.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// SHA-256 pins of the portal certificate's SubjectPublicKeyInfo (the DER `SEQUENCE`, as in
    /// HPKP's `pin-sha256`). Each is either 64 hexadecimal digits or 44 characters of standard
    /// base64 (`openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst
    /// -sha256 -binary | base64`). When any is set, the server certificate must also match one.
    #[serde(default)]
    pub spki_sha256_pins: Vec<String>,
    /// A PEM certificate chain presenting this connector (mutual TLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// The lowest accepted TLS version: `"1.2"` (the default) or `"1.3"`.
    #[serde(default)]
    pub min_version: Option<String>,
}

/// Bounded retries of a single call: capped exponential backoff with full jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts of one call in total (1 = no retry).
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// The first backoff, in milliseconds; doubled on every retry.
    #[serde(default = "defaults::initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The cap of one backoff (and of an honoured `Retry-After`), in milliseconds.
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: defaults::max_attempts(),
            initial_backoff_ms: defaults::initial_backoff_ms(),
            max_backoff_ms: defaults::max_backoff_ms(),
        }
    }
}

/// A string that is never shown: `Debug` and `Display` print `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

mod defaults {
    pub fn poll_interval_seconds() -> u64 {
        10
    }
    pub fn connect_timeout_seconds() -> u64 {
        30
    }
    pub fn read_timeout_seconds() -> u64 {
        60
    }
    pub fn max_attempts() -> u32 {
        4
    }
    pub fn initial_backoff_ms() -> u64 {
        500
    }
    pub fn max_backoff_ms() -> u64 {
        30_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_and_most_of_the_remote_id() {
        let mut config = PortalConfig::new(
            "https://portal.example",
            "0123456789abcdef-0000-0000-000000000000",
        );
        config.proxy = Some(ProxyConfig {
            url: "http://proxy:3128".into(),
            username: Some("alice".into()),
            password: Some(Secret::new("hunter2-very-secret")),
            no_proxy: None,
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let in_url = ProxyConfig {
            url: "http://bob:url-secret@proxy:3128".into(),
            username: None,
            password: None,
            no_proxy: None,
        };
        let shown_url = format!("{in_url:?}");
        assert!(!shown_url.contains("url-secret"), "{shown_url}");
        assert!(shown_url.contains("http://***@proxy:3128"), "{shown_url}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("01234567…"), "{shown}");
    }

    #[test]
    fn deserializes_with_defaults() {
        let config: PortalConfig = serde_json::from_str(
            r#"{"base_url": "https://p", "remote_id": "r", "proxy": {"url": "http://x:1", "password": "pw"}}"#,
        )
        .expect("a valid configuration");
        assert_eq!(config.poll_interval_seconds, 10);
        assert_eq!(config.retry.max_attempts, 4);
        assert_eq!(
            config
                .proxy
                .and_then(|p| p.password)
                .map(|p| p.expose().to_owned()),
            Some("pw".to_owned())
        );
    }
}
