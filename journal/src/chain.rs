//! The hash chain: the [`Hash`] type, the genesis value and the one function
//! that links a record to its predecessor.
//!
//! `hash(record n) = SHA-256(hash(record n-1) || encoded_body(record n))`,
//! where `encoded_body` is the stored value without its trailing 32-byte hash
//! (format-version prefix + body) and the predecessor of record 1 is
//! [`GENESIS`] (32 zero bytes). Nothing here knows about sled or the body
//! codec, so an auditor's tool can reuse the definition verbatim.

use sha2::{Digest, Sha256};
use std::fmt;

/// Length in bytes of a chain hash (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Hash(pub [u8; HASH_LEN]);

/// The "previous hash" of the first record: 32 zero bytes.
pub const GENESIS: Hash = Hash([0u8; HASH_LEN]);

impl Hash {
    /// The raw 32 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lower-case hexadecimal rendering (64 characters).
    #[must_use]
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(HASH_LEN * 2);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Builds a hash from a slice that must be exactly 32 bytes long.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Hash)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Computes a record's chain hash from its predecessor's hash and its
/// encoded body (the stored value minus the trailing hash).
#[must_use]
pub fn link(prev: &Hash, encoded_body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update(encoded_body);
    Hash(h.finalize().into())
}

/// Folds [`link`] over a sequence of encoded bodies starting from [`GENESIS`]
/// and returns the hash of the last one (or `GENESIS` for an empty sequence).
pub fn chain_of<'a, I>(encoded_bodies: I) -> Hash
where
    I: IntoIterator<Item = &'a [u8]>,
{
    encoded_bodies
        .into_iter()
        .fold(GENESIS, |prev, body| link(&prev, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer_sha256_of_genesis_and_abc() {
        // python3 -c "import hashlib; print(hashlib.sha256(bytes(32) + b'abc').hexdigest())"
        let h = link(&GENESIS, b"abc");
        assert_eq!(
            h.to_hex(),
            "365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370"
        );
    }

    #[test]
    fn empty_chain_is_genesis() {
        assert_eq!(chain_of(std::iter::empty()), GENESIS);
        assert_eq!(GENESIS.to_hex(), "0".repeat(64));
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(Hash::from_slice(&[1u8; 32]), Some(Hash([1u8; 32])));
        assert_eq!(Hash::from_slice(&[1u8; 31]), None);
        assert_eq!(Hash::from_slice(&[1u8; 33]), None);
    }

    proptest! {
        #[test]
        fn chain_detects_any_changed_body(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..12),
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let head = chain_of(bodies.iter().map(Vec::as_slice));
            let mut tampered = bodies.clone();
            let i = pick.index(tampered.len());
            if tampered[i].is_empty() {
                tampered[i].push(flip);
            } else {
                let j = byte.index(tampered[i].len());
                tampered[i][j] ^= flip;
            }
            let other = chain_of(tampered.iter().map(Vec::as_slice));
            prop_assert_ne!(head, other);
        }

        #[test]
        fn chain_detects_reorder_and_drop(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..16), 2..8),
        ) {
            let head = chain_of(bodies.iter().map(Vec::as_slice));
            let mut dropped = bodies.clone();
            dropped.remove(0);
            prop_assert_ne!(head, chain_of(dropped.iter().map(Vec::as_slice)));
            let mut swapped = bodies.clone();
            swapped.swap(0, 1);
            if swapped != bodies {
                prop_assert_ne!(head, chain_of(swapped.iter().map(Vec::as_slice)));
            }
        }

        #[test]
        fn link_is_deterministic_and_depends_on_prev(
            prev in any::<[u8; 32]>(),
            body in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let a = link(&Hash(prev), &body);
            prop_assert_eq!(a, link(&Hash(prev), &body));
            let mut other = prev;
            other[0] ^= 1;
            prop_assert_ne!(a, link(&Hash(other), &body));
        }
    }
}
