//! [`PortalClient`]: protocol v1 over HTTPS (reqwest on rustls/ring). Poll, ack, progress and
//! results live here; transfers in `download.rs` and `upload.rs`.
//!
//! Every request carries `X-Connector-Remote-Id` (marked sensitive, so never logged by the HTTP
//! stack) and `User-Agent: sccm-connector/<version>`. Redirects are never followed (they would
//! carry the remote ID elsewhere). Logs name the remote ID by its first 8 characters only.

use super::config::{PortalConfig, remote_id_hint};
use super::error::{ConfigError, PortalError};
use super::retry::{Backoff, jitter, retrying};
use super::tls;
use super::wire::{PollResponseDto, ProgressDto};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;

/// The API's root, relative to the configured base URL.
pub const API_ROOT: &str = "api/connector/v1";
/// The remote ID header.
pub const REMOTE_ID_HEADER: &str = "x-connector-remote-id";
/// The largest poll answer accepted.
pub const MAX_POLL_BYTES: usize = 32 * 1024 * 1024;
/// The bounds of a poll delay, whatever the portal says.
pub const POLL_DELAY_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
/// How slowly to poll while the portal refuses our remote ID.
pub const UNAUTHORIZED_POLL_DELAY: Duration = Duration::from_secs(300);

/// The portal client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct PortalClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    /// The base URL, ending with `/`.
    pub(super) base: Url,
    pub(super) remote_id_hint: String,
    pub(super) poll_interval: Duration,
    pub(super) backoff: Backoff,
}

impl std::fmt::Debug for PortalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalClient")
            .field("base", &self.inner.base.as_str())
            .field("remote_id", &self.inner.remote_id_hint)
            .finish_non_exhaustive()
    }
}

/// One poll's answer: each command as the exact bytes the portal sent, and when to poll next.
#[derive(Debug)]
pub struct Poll {
    /// The commands, unparsed: `command.get()` is the exact JSON text of each.
    pub commands: Vec<Box<RawValue>>,
    /// The portal's `poll_after_seconds`, if it said.
    pub poll_after: Option<Duration>,
}

/// Where best-effort progress posts go during a transfer.
#[derive(Debug, Clone)]
pub struct ProgressTarget {
    pub command_id: String,
    pub step: String,
}

impl PortalClient {
    /// A client for `config`. Fails on an invalid URL, remote ID, proxy or TLS setting (a CA
    /// bundle, pin or client certificate that cannot be read).
    pub fn new(config: &PortalConfig) -> Result<Self, ConfigError> {
        let mut base = Url::parse(&config.base_url).map_err(|e| ConfigError::BaseUrl {
            url: config.base_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(base.scheme(), "https" | "http") || base.host_str().is_none() {
            return Err(ConfigError::BaseUrl {
                url: config.base_url.clone(),
                reason: "must be an http(s) URL with a host".into(),
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError::BaseUrl {
                url: base.host_str().unwrap_or_default().to_owned(),
                reason: "must not carry credentials".into(),
            });
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);

        let remote_id = config.remote_id.trim();
        if remote_id.is_empty() {
            return Err(ConfigError::RemoteId("it is empty".into()));
        }
        let mut remote_id_value = HeaderValue::from_str(remote_id).map_err(|_| {
            ConfigError::RemoteId("it holds characters not allowed in an HTTP header".into())
        })?;
        remote_id_value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(REMOTE_ID_HEADER, remote_id_value);

        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(&config.tls)?)
            .user_agent(concat!("sccm-connector/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(config.connect_timeout_seconds.max(1)))
            .read_timeout(Duration::from_secs(config.read_timeout_seconds.max(1)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .http1_only();
        if let Some(proxy) = &config.proxy {
            builder = builder.proxy(proxy_of(proxy)?);
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::Client(error_chain(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                remote_id_hint: remote_id_hint(remote_id),
                poll_interval: config.poll_interval(),
                backoff: Backoff::new(&config.retry),
            }),
        })
    }

    /// The API URL made of `segments` (each percent-encoded as one path segment).
    pub fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(API_ROOT.split('/'));
            path.extend(segments);
        }
        url
    }

    /// Resolves a package URL from a command: a path is taken relative to the base URL (a
    /// leading `/` included, as the contract's endpoints are relative to it); an absolute URL
    /// must have the base URL's scheme, host and port (so the remote ID never goes elsewhere).
    pub fn resolve(&self, url: &str) -> Result<Url, PortalError> {
        let base = &self.inner.base;
        match Url::parse(url) {
            Ok(absolute) => {
                if absolute.origin() == base.origin() {
                    Ok(absolute)
                } else {
                    Err(PortalError::Protocol(format!(
                        "package URL {url:?} is not on the portal ({})",
                        base.origin().ascii_serialization()
                    )))
                }
            }
            Err(_) => base
                .join(url.trim_start_matches('/'))
                .map_err(|e| PortalError::Protocol(format!("package URL {url:?}: {e}"))),
        }
    }

    /// The retry schedule of one call.
    pub fn backoff(&self) -> &Backoff {
        &self.inner.backoff
    }

    /// The remote ID as it may be logged.
    pub fn remote_id_hint(&self) -> &str {
        &self.inner.remote_id_hint
    }

    /// `GET /commands`: one attempt (the next poll is the retry). Commands come back as exact
    /// bytes, in the portal's order, duplicates included; an invalid command is never dropped.
    pub async fn poll(&self) -> Result<Poll, PortalError> {
        let url = self.api_url(&["commands"]);
        let response = self.send(self.request(Method::GET, url)).await?;
        let body = read_capped(response, MAX_POLL_BYTES).await?;
        let dto: PollResponseDto = serde_json::from_slice(&body).map_err(|e| {
            PortalError::Protocol(format!(
                "the poll answer is not {{\"commands\": [...]}}: {e}"
            ))
        })?;
        let poll_after = dto
            .poll_after_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(POLL_DELAY_BOUNDS.1.as_secs_f64())));
        tracing::debug!(
            "portal: poll as {} returned {} command(s)",
            self.inner.remote_id_hint,
            dto.commands.len()
        );
        Ok(Poll {
            commands: dto.commands,
            poll_after,
        })
    }

    /// How long to wait before the next poll after `last`: the portal's `poll_after_seconds`
    /// or the configured interval, plus up to 10 % jitter, within [`POLL_DELAY_BOUNDS`]; a
    /// refused remote ID polls slowly ([`UNAUTHORIZED_POLL_DELAY`]); a `Retry-After` is a floor.
    pub fn next_poll_delay(&self, last: &Result<Poll, PortalError>) -> Duration {
        let base = match last {
            Ok(poll) => poll.poll_after.unwrap_or(self.inner.poll_interval),
            Err(PortalError::Unauthorized { .. }) => {
                UNAUTHORIZED_POLL_DELAY.max(self.inner.poll_interval)
            }
            Err(error) => error
                .retry_after()
                .unwrap_or_default()
                .max(self.inner.poll_interval),
        };
        let base = base.clamp(POLL_DELAY_BOUNDS.0, POLL_DELAY_BOUNDS.1);
        jitter(base, base + base / 10)
    }

    /// `POST /commands/{id}/ack`: the command is durably journaled. Retried while transient.
    pub async fn ack(&self, command_id: &str) -> Result<(), PortalError> {
        let url = self.api_url(&["commands", command_id, "ack"]);
        retrying(&self.inner.backoff, "ack", || async {
            self.send(self.request(Method::POST, url.clone())).await?;
            Ok(())
        })
        .await
    }

    /// `POST /commands/{id}/progress`: best effort, one attempt; the caller may ignore errors.
    pub async fn progress(
        &self,
        command_id: &str,
        progress: &ProgressDto,
    ) -> Result<(), PortalError> {
        let url = self.api_url(&["commands", command_id, "progress"]);
        self.send(json(self.request(Method::POST, url), progress)?)
            .await?;
        Ok(())
    }

    /// Posts progress in the background, ignoring failures (logged at debug level).
    pub fn progress_in_background(
        &self,
        target: &ProgressTarget,
        state: &str,
        done: u64,
        total: u64,
    ) {
        let client = self.clone();
        let command_id = target.command_id.clone();
        let dto = ProgressDto {
            step: target.step.clone(),
            state: state.to_owned(),
            bytes_done: done,
            bytes_total: total,
        };
        tokio::spawn(async move {
            if let Err(error) = client.progress(&command_id, &dto).await {
                tracing::debug!("portal: progress post failed (ignored): {error}");
            }
        });
    }

    /// `POST /commands/{id}/result` with `Idempotency-Key`. `body_json` is sent byte for byte
    /// (the same key must always carry the same body). `200` — first time or a recognised
    /// duplicate — is `Ok`; `409` is [`PortalError::Conflict`] (permanent). Retried while
    /// transient, within the client's bounded schedule.
    pub async fn send_result(
        &self,
        command_id: &str,
        idempotency_key: &str,
        body_json: &str,
    ) -> Result<(), PortalError> {
        let url = self.api_url(&["commands", command_id, "result"]);
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            PortalError::Client(format!(
                "idempotency key {idempotency_key:?} is not a valid header value"
            ))
        })?;
        let body = bytes::Bytes::copy_from_slice(body_json.as_bytes());
        retrying(&self.inner.backoff, "result", || async {
            let request = self
                .request(Method::POST, url.clone())
                .header("idempotency-key", key.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            self.send(request).await?;
            Ok(())
        })
        .await
    }

    pub(super) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.inner.http.request(method, url)
    }

    /// Sends `request`; a non-2xx answer becomes its typed error.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, PortalError> {
        let response = request.send().await.map_err(|e| transport_error(&e))?;
        self.check(response).await
    }

    /// A 2xx response as is; anything else as its typed error.
    pub(super) async fn check(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, PortalError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(self.status_error(response).await)
    }

    /// The typed error of a non-2xx response (its body read, up to a few KiB, as an excerpt).
    pub(super) async fn status_error(&self, response: reqwest::Response) -> PortalError {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = excerpt(response).await;
        match status {
            StatusCode::UNAUTHORIZED => {
                tracing::error!(
                    "portal: remote ID {} not accepted (401); check the connector's remote ID",
                    self.inner.remote_id_hint
                );
                PortalError::Unauthorized {
                    remote_id_hint: self.inner.remote_id_hint.clone(),
                }
            }
            StatusCode::PROXY_AUTHENTICATION_REQUIRED => PortalError::ProxyAuth,
            StatusCode::TOO_MANY_REQUESTS => PortalError::RateLimited { retry_after },
            StatusCode::CONFLICT => PortalError::Conflict { body },
            StatusCode::UNPROCESSABLE_ENTITY => PortalError::UploadMismatch { body },
            s if s.is_server_error() => PortalError::Server {
                status: s.as_u16(),
                body,
                retry_after,
            },
            s => PortalError::Rejected {
                status: s.as_u16(),
                body,
            },
        }
    }
}

fn proxy_of(config: &super::config::ProxyConfig) -> Result<reqwest::Proxy, ConfigError> {
    let mut url = Url::parse(&config.url)
        .map_err(|e| ConfigError::ProxyUrl(format!("{}: {e}", redact_url(&config.url))))?;
    // Credentials written into the URL move to basic authentication (and out of the URL).
    let url_user = (!url.username().is_empty()).then(|| url.username().to_owned());
    let url_password = url.password().map(str::to_owned);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut proxy = reqwest::Proxy::all(url.as_str())
        .map_err(|e| ConfigError::ProxyUrl(format!("{url}: {e}")))?;
    let user = config.username.clone().or(url_user);
    let password = config
        .password
        .as_ref()
        .map(|p| p.expose().to_owned())
        .or(url_password);
    if let Some(user) = user {
        proxy = proxy.basic_auth(&user, password.as_deref().unwrap_or_default());
    }
    if let Some(no_proxy) = &config.no_proxy {
        proxy = proxy.no_proxy(reqwest::NoProxy::from_string(no_proxy));
    }
    Ok(proxy)
}

/// A URL with any password replaced, for messages.
fn redact_url(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => url.to_owned(),
    }
}

/// The typed error of a request that got no HTTP answer.
pub(super) fn transport_error(error: &reqwest::Error) -> PortalError {
    let detail = error_chain(error);
    if detail.contains("proxy authorization required") {
        return PortalError::ProxyAuth;
    }
    if let Some(refusal) = tls::classify(error) {
        return match refusal {
            tls::Refusal::Pin(actual_base64) => PortalError::PinMismatch { actual_base64 },
            tls::Refusal::Certificate(detail) => PortalError::Tls { detail },
        };
    }
    if detail.contains("tunnel error") {
        return PortalError::Proxy { detail };
    }
    if error.is_timeout() {
        PortalError::Timeout { detail }
    } else if error.is_connect() {
        PortalError::Connect { detail }
    } else if error.is_body() || error.is_decode() || error.is_request() {
        PortalError::Interrupted { detail }
    } else {
        PortalError::Client(detail)
    }
}

/// An error and its sources, joined with `: `.
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the portal and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The first few KiB of an error body, printable.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < 4096 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Reads a body up to `cap` bytes; more is a protocol error.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, PortalError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(PortalError::Protocol(format!(
                "the answer is larger than {cap} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request with a JSON body.
pub(super) fn json<T: serde::Serialize>(
    request: reqwest::RequestBuilder,
    body: &T,
) -> Result<reqwest::RequestBuilder, PortalError> {
    let bytes = serde_json::to_vec(body).map_err(|e| PortalError::Client(e.to_string()))?;
    Ok(request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes))
}

/// Reads a small JSON answer.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, PortalError> {
    let body = read_capped(response, 1024 * 1024).await?;
    serde_json::from_slice(&body)
        .map_err(|e| PortalError::Protocol(format!("the {what} answer is not as expected: {e}")))
}
