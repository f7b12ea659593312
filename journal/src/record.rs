//! The record envelope: [`Record`], [`Timestamp`], [`Appended`], the format
//! version, and the framing of a stored value.
//!
//! Stored value layout (one sled value per record):
//!
//! ```text
//! [format version: u16 BE][body: codec.rs, BODY_FIXED_LEN + payload bytes][hash: 32 bytes]
//!  \________________ encoded body (what the chain hashes) ________________/
//! ```
//!
//! `hash = SHA-256(previous record's hash || encoded body)`; see `chain.rs`.

use crate::chain::{self, HASH_LEN, Hash};
use crate::codec::{self, BODY_FIXED_LEN, Body, CodecError};
use crate::error::JournalError;
use std::fmt;
use uuid::Uuid;

/// The envelope format version written by this build. Records with a higher
/// version are refused with [`JournalError::UnknownVersion`].
pub const FORMAT_VERSION: u16 = 1;

/// Length of the format-version prefix.
pub const VERSION_LEN: usize = 2;

/// Largest payload [`crate::Journal::append`] accepts, in bytes (16 MiB).
///
/// sled 0.34.7 moves any log message larger than a quarter of a segment into
/// a separate `blobs/` file that it never fsyncs, and silently skips a
/// missing blob during recovery. The journal therefore keeps every sled value
/// small: a record longer than 32 KiB is stored as a head and 32 KiB
/// fragments written in the same batch (see `fragment.rs`), invisible to
/// readers. The limit only bounds what one record may cost in memory and in
/// one batch.
pub const MAX_PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// Bytes a record occupies in its stored value besides its payload.
pub const ENVELOPE_OVERHEAD: usize = VERSION_LEN + BODY_FIXED_LEN + HASH_LEN;

/// A caller-supplied point in time: Unix epoch milliseconds. The journal
/// never reads a clock; it stores what it is given.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from Unix epoch milliseconds.
    #[must_use]
    pub const fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Unix epoch milliseconds.
    #[must_use]
    pub const fn unix_millis(self) -> i64 {
        self.0
    }
}

/// What [`crate::Journal::append`] assigned to a new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global sequence number (1, 2, 3, … across the whole journal).
    pub seq: u64,
    /// Sequence number within the record's job (1, 2, 3, … per job).
    pub job_seq: u64,
    /// The record's chain hash.
    pub hash: Hash,
}

/// One journaled record, as read back from disk.
///
/// Holds the exact stored bytes so that an auditor can recompute the chain
/// from [`Record::encoded_body`] and the predecessor's [`Record::hash`]
/// without knowing the body codec.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    seq: u64,
    job: Uuid,
    job_seq: u64,
    timestamp: Timestamp,
    payload_format: u16,
    stored: Vec<u8>,
    payload_start: usize,
}

impl Record {
    /// Global sequence number.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The job this record belongs to.
    #[must_use]
    pub fn job(&self) -> Uuid {
        self.job
    }

    /// Sequence number within the job.
    #[must_use]
    pub fn job_seq(&self) -> u64 {
        self.job_seq
    }

    /// The caller-supplied timestamp.
    #[must_use]
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The caller's schema version of the payload (opaque to the journal).
    #[must_use]
    pub fn payload_format(&self) -> u16 {
        self.payload_format
    }

    /// The payload bytes.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        let end = self.stored.len() - HASH_LEN;
        &self.stored[self.payload_start..end]
    }

    /// The payload bytes, owned.
    #[must_use]
    pub fn into_payload(self) -> Vec<u8> {
        self.payload().to_vec()
    }

    /// The envelope format version of this record.
    #[must_use]
    pub fn format_version(&self) -> u16 {
        u16::from_be_bytes([self.stored[0], self.stored[1]])
    }

    /// The bytes the chain hashes after the predecessor's hash: the format
    /// version prefix followed by the encoded body.
    #[must_use]
    pub fn encoded_body(&self) -> &[u8] {
        &self.stored[..self.stored.len() - HASH_LEN]
    }

    /// The record's chain hash as stored.
    #[must_use]
    pub fn hash(&self) -> Hash {
        let mut h = [0u8; HASH_LEN];
        h.copy_from_slice(&self.stored[self.stored.len() - HASH_LEN..]);
        Hash(h)
    }

    /// The complete stored value: `encoded_body() ‖ hash()`.
    #[must_use]
    pub fn stored_value(&self) -> &[u8] {
        &self.stored
    }

    /// Recomputes this record's hash from its predecessor's hash.
    #[must_use]
    pub fn compute_hash(&self, prev: &Hash) -> Hash {
        chain::link(prev, self.encoded_body())
    }

    /// Decodes a stored value found under global sequence `seq`, without
    /// checking the chain link. Every failure names `seq`.
    ///
    /// # Errors
    /// [`JournalError::UnknownVersion`] for a version this build does not
    /// know, [`JournalError::CorruptRecord`] for anything malformed,
    /// including a body whose sequence number differs from `seq`.
    pub fn decode(seq: u64, stored: Vec<u8>) -> Result<Record, JournalError> {
        let corrupt = |reason: String| JournalError::CorruptRecord { seq, reason };
        if stored.len() < VERSION_LEN + HASH_LEN {
            return Err(corrupt(format!(
                "stored value has {} bytes, shorter than the {} byte frame",
                stored.len(),
                VERSION_LEN + HASH_LEN
            )));
        }
        let version = u16::from_be_bytes([stored[0], stored[1]]);
        if version != FORMAT_VERSION {
            return Err(JournalError::UnknownVersion {
                seq,
                version,
                supported: FORMAT_VERSION,
            });
        }
        let body_bytes = &stored[VERSION_LEN..stored.len() - HASH_LEN];
        let body = codec::decode_body(body_bytes).map_err(|e| corrupt(e.to_string()))?;
        if body.seq != seq {
            return Err(corrupt(format!(
                "body says sequence {} but it is stored under {seq}",
                body.seq
            )));
        }
        if body.job_seq == 0 {
            return Err(corrupt("job sequence 0 is never assigned".to_string()));
        }
        // The payload is the last field of the body, stored verbatim.
        let payload_start = VERSION_LEN + body_bytes.len() - body.payload.len();
        if !body_bytes.ends_with(body.payload) {
            return Err(corrupt("payload is not the tail of the body".to_string()));
        }
        let (job, job_seq, timestamp, payload_format) = (
            Uuid::from_bytes(body.job),
            body.job_seq,
            Timestamp(body.timestamp),
            body.payload_format,
        );
        Ok(Record {
            seq,
            job,
            job_seq,
            timestamp,
            payload_format,
            stored,
            payload_start,
        })
    }

    /// [`Record::decode`] plus the chain check against the predecessor's
    /// hash (`chain::GENESIS` for sequence 1).
    ///
    /// # Errors
    /// As [`Record::decode`], and [`JournalError::HashMismatch`] if the
    /// stored hash is not `SHA-256(prev || encoded_body)`.
    pub fn decode_linked(seq: u64, stored: Vec<u8>, prev: &Hash) -> Result<Record, JournalError> {
        let record = Record::decode(seq, stored)?;
        let computed = record.compute_hash(prev);
        let stored_hash = record.hash();
        if computed != stored_hash {
            return Err(JournalError::HashMismatch {
                seq,
                stored: stored_hash,
                computed,
            });
        }
        Ok(record)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("seq", &self.seq)
            .field("job", &self.job)
            .field("job_seq", &self.job_seq)
            .field("timestamp", &self.timestamp)
            .field("payload_format", &self.payload_format)
            .field("payload_len", &self.payload().len())
            .field("hash", &self.hash())
            .finish()
    }
}

/// The fields of a record about to be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRecord<'a> {
    pub(crate) seq: u64,
    pub(crate) job: Uuid,
    pub(crate) job_seq: u64,
    pub(crate) timestamp: Timestamp,
    pub(crate) payload_format: u16,
    pub(crate) payload: &'a [u8],
}

impl NewRecord<'_> {
    /// Builds the stored value and returns it with its chain hash.
    pub(crate) fn encode(&self, prev: &Hash) -> Result<(Vec<u8>, Hash), CodecError> {
        let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + self.payload.len());
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        codec::encode_body_into(
            &Body {
                seq: self.seq,
                job: *self.job.as_bytes(),
                job_seq: self.job_seq,
                timestamp: self.timestamp.0,
                payload_format: self.payload_format,
                payload: self.payload,
            },
            &mut out,
        )?;
        let hash = chain::link(prev, &out);
        out.extend_from_slice(&hash.0);
        Ok((out, hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::GENESIS;
    use proptest::prelude::*;

    fn new_record(payload: &[u8]) -> NewRecord<'_> {
        NewRecord {
            seq: 1,
            job: Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff),
            job_seq: 1,
            timestamp: Timestamp(1_700_000_000_000),
            payload_format: 1,
            payload,
        }
    }

    /// The worked example of docs/journal-format.md.
    #[test]
    fn documented_example_bytes_and_hash() -> Result<(), Box<dyn std::error::Error>> {
        let (stored, hash) = new_record(b"hello").encode(&GENESIS)?;
        let body_hex: String = stored[..stored.len() - 32]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            body_hex,
            concat!(
                "0001",                             // format version
                "0000000000000001",                 // seq
                "00112233445566778899aabbccddeeff", // job
                "0000000000000001",                 // job_seq
                "0000018bcfe56800",                 // timestamp
                "0001",                             // payload_format
                "0000000000000005",                 // payload length
                "68656c6c6f",                       // payload
            )
        );
        assert_eq!(
            hash.to_hex(),
            "63c930395c826f540f646925df9b8c77f414a20ffc2a920ddd7365bf4789c08c"
        );
        Ok(())
    }

    #[test]
    fn future_version_names_the_record() -> Result<(), Box<dyn std::error::Error>> {
        let (mut stored, _) = new_record(b"x").encode(&GENESIS)?;
        stored[1] = 2;
        match Record::decode(1, stored) {
            Err(JournalError::UnknownVersion {
                seq: 1, version: 2, ..
            }) => Ok(()),
            other => Err(format!("unexpected {other:?}").into()),
        }
    }

    #[test]
    fn seq_mismatch_is_corrupt() -> Result<(), Box<dyn std::error::Error>> {
        let (stored, _) = new_record(b"x").encode(&GENESIS)?;
        assert!(matches!(
            Record::decode(2, stored),
            Err(JournalError::CorruptRecord { seq: 2, .. })
        ));
        Ok(())
    }

    fn arb_new() -> impl Strategy<Value = (u64, u128, u64, i64, u16, Vec<u8>, [u8; 32])> {
        (
            1u64..u64::MAX,
            any::<u128>(),
            1u64..u64::MAX,
            any::<i64>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<[u8; 32]>(),
        )
    }

    proptest! {
        #[test]
        fn envelope_round_trips((seq, job, job_seq, ts, fmt, payload, prev) in arb_new()) {
            let n = NewRecord { seq, job: Uuid::from_u128(job), job_seq, timestamp: Timestamp(ts), payload_format: fmt, payload: &payload };
            let (stored, hash) = n.encode(&Hash(prev)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(stored.len(), ENVELOPE_OVERHEAD + payload.len());
            let r = Record::decode_linked(seq, stored.clone(), &Hash(prev)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.seq(), seq);
            prop_assert_eq!(r.job(), Uuid::from_u128(job));
            prop_assert_eq!(r.job_seq(), job_seq);
            prop_assert_eq!(r.timestamp(), Timestamp(ts));
            prop_assert_eq!(r.payload_format(), fmt);
            prop_assert_eq!(r.payload(), payload.as_slice());
            prop_assert_eq!(r.hash(), hash);
            prop_assert_eq!(r.format_version(), FORMAT_VERSION);
            prop_assert_eq!(r.stored_value(), stored.as_slice());
            prop_assert_eq!(chain::link(&Hash(prev), r.encoded_body()), hash);
        }

        #[test]
        fn any_flipped_byte_is_a_typed_error(
            (seq, job, job_seq, ts, fmt, payload, prev) in arb_new(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let n = NewRecord { seq, job: Uuid::from_u128(job), job_seq, timestamp: Timestamp(ts), payload_format: fmt, payload: &payload };
            let (mut stored, _) = n.encode(&Hash(prev)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let i = at.index(stored.len());
            stored[i] ^= flip;
            match Record::decode_linked(seq, stored, &Hash(prev)) {
                Err(JournalError::HashMismatch { seq: s, .. })
                | Err(JournalError::CorruptRecord { seq: s, .. })
                | Err(JournalError::UnknownVersion { seq: s, .. }) => prop_assert_eq!(s, seq),
                other => prop_assert!(false, "flip at {} not detected: {:?}", i, other),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), seq in any::<u64>()) {
            let _ = Record::decode_linked(seq, bytes, &GENESIS);
        }

        #[test]
        fn truncation_is_a_typed_error((seq, job, job_seq, ts, fmt, payload, prev) in arb_new(), cut in any::<prop::sample::Index>()) {
            let n = NewRecord { seq, job: Uuid::from_u128(job), job_seq, timestamp: Timestamp(ts), payload_format: fmt, payload: &payload };
            let (stored, _) = n.encode(&Hash(prev)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let keep = cut.index(stored.len());
            prop_assert!(Record::decode_linked(seq, stored[..keep].to_vec(), &Hash(prev)).is_err());
        }
    }
}
