//! The result outbox, client side. The engine composes a result once, journals it with its
//! [`idempotency_key`] (derived from the command id), and hands it here until the portal
//! acknowledges it — across restarts, proxy outages and portal downtime. Every attempt sends the
//! same key and the same bytes, so the portal keeps exactly one effective result.

use super::client::PortalClient;
use super::error::PortalError;
use super::retry::jitter;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The longest wait between two delivery attempts.
pub const MAX_REDELIVERY_DELAY: Duration = Duration::from_secs(300);

/// The `Idempotency-Key` of `command_id`'s result: `result-<command id>` when the id is made of
/// ASCII letters, digits, `-`, `_` and `.` (at most 128 of them), otherwise
/// `result-sha256-<hex of SHA-256(command id)>`. Always a valid header value.
pub fn idempotency_key(command_id: &str) -> String {
    let plain = !command_id.is_empty()
        && command_id.len() <= 128
        && command_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("result-{command_id}")
    } else {
        let digest = Sha256::digest(command_id.as_bytes());
        format!("result-sha256-{}", super::download::hex(&digest))
    }
}

/// A journaled result waiting for the portal's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub command_id: String,
    pub idempotency_key: String,
    /// The result's JSON, byte for byte as journaled.
    pub body: String,
}

impl OutboxEntry {
    /// An entry keyed by [`idempotency_key`].
    pub fn new(command_id: impl Into<String>, body: impl Into<String>) -> Self {
        let command_id = command_id.into();
        Self {
            idempotency_key: idempotency_key(&command_id),
            command_id,
            body: body.into(),
        }
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug)]
pub enum Delivery {
    /// The portal holds the result (first time or a recognised duplicate).
    Acknowledged,
    /// Not delivered; try again after the delay (with the same key and body).
    RetryAfter(Duration, PortalError),
    /// The portal refused it for good (`409`: another body under this key; other `4xx`).
    Refused(PortalError),
}

/// One delivery attempt (`attempt` counts from 1; it sets the backoff of a retry). The client's
/// own bounded retries happen inside; what is left is for the caller's schedule.
pub async fn deliver(client: &PortalClient, entry: &OutboxEntry, attempt: u32) -> Delivery {
    match client
        .send_result(&entry.command_id, &entry.idempotency_key, &entry.body)
        .await
    {
        Ok(()) => Delivery::Acknowledged,
        Err(error) if error.is_retryable() => {
            let delay = redelivery_delay(attempt, error.retry_after());
            tracing::warn!(
                "portal: result of {} not delivered ({error}); again in {} s",
                entry.command_id,
                delay.as_secs()
            );
            Delivery::RetryAfter(delay, error)
        }
        Err(error) => {
            tracing::error!(
                "portal: result of {} refused for good: {error}",
                entry.command_id
            );
            Delivery::Refused(error)
        }
    }
}

/// 5 s, 10 s, 20 s … up to [`MAX_REDELIVERY_DELAY`], jittered; a `Retry-After` is a floor.
pub fn redelivery_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let ceiling = Duration::from_secs(5)
        .saturating_mul(1u32 << exponent)
        .min(MAX_REDELIVERY_DELAY);
    jitter(ceiling / 2, ceiling).max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_derived_from_the_command_id() {
        assert_eq!(
            idempotency_key("8d3f8f7e-2b1c-4c1e-9a57-3e0f5d7b9a10"),
            "result-8d3f8f7e-2b1c-4c1e-9a57-3e0f5d7b9a10"
        );
        let odd = idempotency_key("a b/ü");
        assert!(
            odd.starts_with("result-sha256-") && odd.len() == 14 + 64,
            "{odd}"
        );
        assert_eq!(odd, idempotency_key("a b/ü"));
    }

    #[test]
    fn redelivery_backs_off_to_a_cap() {
        assert!(redelivery_delay(1, None) <= Duration::from_secs(5));
        assert!(redelivery_delay(30, None) <= MAX_REDELIVERY_DELAY);
        assert!(redelivery_delay(1, Some(Duration::from_secs(60))) >= Duration::from_secs(60));
    }
}
