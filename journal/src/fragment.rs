//! Fragmentation of large records across several sled values.
//!
//! sled 0.34.7 moves any page larger than a quarter of a segment into a
//! `blobs/` file that it never fsyncs (see `docs/journal-format.md` §7), so
//! no sled value may be large. A record whose stored value (version ‖ body ‖
//! hash) is longer than [`INLINE_LIMIT`] is therefore stored as:
//!
//! ```text
//! "R" ‖ seq            → body[0 .. FRAGMENT_LEN] ‖ hash       (the head)
//! "F" ‖ seq ‖ i (u32)  → body[i·FRAGMENT_LEN .. (i+1)·FRAGMENT_LEN]   for i = 1, 2, …
//! ```
//!
//! all in the same sled batch as the rest of the record, so a crash keeps
//! all of it or none. The stored bytes, and so the hash chain, are exactly
//! those of an unfragmented record: fragmentation is a storage detail that
//! readers undo ([`assemble`]) before decoding. A reader recognises a head by
//! its length: the body declares its payload length at a fixed offset, and a
//! value shorter than the declared record is a head. Keeping the hash at the
//! end of the head lets chain walks read a predecessor's hash without its
//! fragments.

use crate::chain::HASH_LEN;
use crate::codec::BODY_FIXED_LEN;
use crate::error::{JournalError, Result};
use crate::record::{ENVELOPE_OVERHEAD, FORMAT_VERSION, MAX_PAYLOAD_LEN, VERSION_LEN};

/// Body bytes per fragment (and in a head).
pub(crate) const FRAGMENT_LEN: usize = 32 * 1024;

/// Longest stored value kept in one sled value: a 32 KiB payload with its
/// envelope (the journal's original limit, so small records are unchanged).
pub(crate) const INLINE_LIMIT: usize = 32 * 1024 + ENVELOPE_OVERHEAD;

/// Tag byte of fragment keys.
pub(crate) const FRAGMENT_TAG: u8 = b'F';

/// Offset of the body's payload-length field in a stored value.
const PAYLOAD_LEN_AT: usize = VERSION_LEN + BODY_FIXED_LEN - 8;

/// `"F" ‖ seq ‖ index`.
pub(crate) fn fragment_key(seq: u64, index: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = FRAGMENT_TAG;
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Splits a stored value into the value kept under its record key and its
/// continuation fragments (empty for values up to [`INLINE_LIMIT`]).
pub(crate) fn split(stored: Vec<u8>) -> (Vec<u8>, Vec<Vec<u8>>) {
    if stored.len() <= INLINE_LIMIT {
        return (stored, Vec::new());
    }
    let body_len = stored.len() - HASH_LEN;
    let (body, hash) = stored.split_at(body_len);
    let mut head = Vec::with_capacity(FRAGMENT_LEN + HASH_LEN);
    head.extend_from_slice(&body[..FRAGMENT_LEN]);
    head.extend_from_slice(hash);
    let rest = body[FRAGMENT_LEN..]
        .chunks(FRAGMENT_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    (head, rest)
}

/// How many continuation fragments a record of `stored_len` bytes has.
pub(crate) fn continuation_count(stored_len: usize) -> usize {
    if stored_len <= INLINE_LIMIT {
        0
    } else {
        (stored_len - HASH_LEN - FRAGMENT_LEN).div_ceil(FRAGMENT_LEN)
    }
}

/// The stored length a value under a record key declares, if it is long
/// enough to declare one and of the current format (values of other
/// versions are returned unassembled so decoding reports the version).
fn declared_len(value: &[u8]) -> Option<usize> {
    let version = u16::from_be_bytes([*value.first()?, *value.get(1)?]);
    if version != FORMAT_VERSION {
        return None;
    }
    let field: [u8; 8] = value
        .get(PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8)?
        .try_into()
        .ok()?;
    let payload = usize::try_from(u64::from_be_bytes(field)).ok()?;
    payload.checked_add(ENVELOPE_OVERHEAD)
}

/// The complete stored value of record `seq` whose record-key value is
/// `value`: `value` itself for an inline record, head and fragments joined
/// for a fragmented one. Anything inconsistent is left for the decoder or
/// reported as a corrupt record naming `seq`.
pub(crate) fn assemble(db: &sled::Db, seq: u64, value: Vec<u8>) -> Result<Vec<u8>> {
    let Some(declared) = declared_len(&value) else {
        return Ok(value);
    };
    if declared <= INLINE_LIMIT || value.len() != FRAGMENT_LEN + HASH_LEN {
        // Inline, or malformed: the decoder names what is wrong.
        return Ok(value);
    }
    let corrupt = |reason: String| JournalError::CorruptRecord { seq, reason };
    if declared > MAX_PAYLOAD_LEN + ENVELOPE_OVERHEAD {
        return Err(corrupt(format!(
            "declares {declared} stored bytes, more than the largest record"
        )));
    }
    let count = continuation_count(declared);
    let mut stored = Vec::with_capacity(declared);
    stored.extend_from_slice(&value[..FRAGMENT_LEN]);
    for i in 1..=count {
        let index = u32::try_from(i).map_err(|_| corrupt(format!("fragment {i} out of range")))?;
        let fragment = db.get(fragment_key(seq, index))?.ok_or_else(|| {
            corrupt(format!(
                "fragment {i} of {count} is missing ({declared} stored bytes declared)"
            ))
        })?;
        let expected = (declared - HASH_LEN - stored.len()).min(FRAGMENT_LEN);
        if fragment.len() != expected {
            return Err(corrupt(format!(
                "fragment {i} of {count} has {} bytes, expected {expected}",
                fragment.len()
            )));
        }
        stored.extend_from_slice(&fragment);
    }
    stored.extend_from_slice(&value[FRAGMENT_LEN..]);
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_stay_inline() {
        let (head, rest) = split(vec![7u8; INLINE_LIMIT]);
        assert_eq!(head.len(), INLINE_LIMIT);
        assert!(rest.is_empty());
        assert_eq!(continuation_count(INLINE_LIMIT), 0);
    }

    #[test]
    fn fragment_keys_sort_by_record_then_index() {
        assert!(fragment_key(1, u32::MAX) < fragment_key(2, 1));
        assert!(fragment_key(5, 1) < fragment_key(5, 2));
    }

    proptest! {
        #[test]
        fn split_keeps_every_byte_and_the_hash_at_the_head(extra in 1usize..200_000) {
            let len = INLINE_LIMIT + extra;
            let stored: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (head, rest) = split(stored.clone());
            prop_assert_eq!(head.len(), FRAGMENT_LEN + HASH_LEN);
            prop_assert_eq!(&head[FRAGMENT_LEN..], &stored[len - HASH_LEN..]);
            prop_assert_eq!(rest.len(), continuation_count(len));
            prop_assert!(rest.iter().all(|f| !f.is_empty() && f.len() <= FRAGMENT_LEN));
            let mut joined = head[..FRAGMENT_LEN].to_vec();
            for f in &rest {
                joined.extend_from_slice(f);
            }
            joined.extend_from_slice(&head[FRAGMENT_LEN..]);
            prop_assert_eq!(joined, stored);
        }
    }
}
