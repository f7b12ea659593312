//! The result outbox's key. The engine composes a result once, journals it with its
//! [`idempotency_key`] (derived from the command id) and sends it with
//! `PortalClient::send_result` until the portal acknowledges it — across restarts, proxy outages
//! and portal downtime. Every attempt sends the same key and the same bytes, so the portal keeps
//! exactly one effective result. When to send again is `replay`'s decision (the result's backoff,
//! the engine's journaled jitter, the portal's journaled `Retry-After`): see `engine::driver`.

use sha2::{Digest, Sha256};

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
}
