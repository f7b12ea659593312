//! Pruning: removing the content of finished jobs while keeping the chain.
//!
//! The hash chain runs through every record of every job in global order, so
//! a job's records cannot simply be deleted: the next record's hash covers
//! them. [`crate::Journal::prune_jobs`] therefore replaces each record of a
//! pruned job with a **link stub** that keeps what the chain needs and
//! nothing else:
//!
//! ```text
//! "R" ‖ seq → STUB_MARKER (u16 0xFFFF) ‖ job (16) ‖ job_seq (u64) ‖ timestamp (i64) ‖ hash (32)
//! "P" ‖ job → last job_seq (u64) ‖ last seq (u64) ‖ records pruned (u64)
//! ```
//!
//! (integers big-endian), removes the record's fragments and job-index
//! entry, and replaces the job head (`"J"`) with the pruned-job entry
//! (`"P"`), all in one sled batch per job. The stub's hash is the original
//! record's, so the chain still links: the record after a stub must hash
//! from it, and a changed stub hash breaks that record. What the journal
//! can no longer check is the pruned content itself; whoever prunes keeps
//! it elsewhere (the connector exports it to an archive first) and that copy
//! verifies against the stubs' hashes.
//!
//! A pruned job takes no more records ([`crate::JournalError::JobPruned`]),
//! so its job sequence can never restart at 1.

use crate::chain::{HASH_LEN, Hash};
use crate::error::{JournalError, Result};
use crate::keys::be_u64;
use crate::record::Timestamp;
use uuid::Uuid;

/// First two bytes of a stub (never a valid envelope format version).
pub(crate) const STUB_MARKER: u16 = 0xFFFF;

/// Length of a stub value.
pub(crate) const STUB_LEN: usize = 2 + 16 + 8 + 8 + HASH_LEN;

/// Tag byte of pruned-job keys.
pub(crate) const PRUNED_TAG: u8 = b'P';

/// A record whose content was pruned: its place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedLink {
    /// Global sequence.
    pub seq: u64,
    /// The job it belonged to.
    pub job: Uuid,
    /// Its sequence within the job.
    pub job_seq: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// The original record's chain hash.
    pub hash: Hash,
}

/// One position of the chain: a record, or the stub of a pruned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEntry {
    /// A record with its content.
    Record(crate::Record),
    /// A pruned record.
    Pruned(PrunedLink),
}

impl ChainEntry {
    /// Global sequence.
    #[must_use]
    pub fn seq(&self) -> u64 {
        match self {
            ChainEntry::Record(r) => r.seq(),
            ChainEntry::Pruned(p) => p.seq,
        }
    }

    /// Chain hash.
    #[must_use]
    pub fn hash(&self) -> Hash {
        match self {
            ChainEntry::Record(r) => r.hash(),
            ChainEntry::Pruned(p) => p.hash,
        }
    }

    /// Job id.
    #[must_use]
    pub fn job(&self) -> Uuid {
        match self {
            ChainEntry::Record(r) => r.job(),
            ChainEntry::Pruned(p) => p.job,
        }
    }

    /// Sequence within the job.
    #[must_use]
    pub fn job_seq(&self) -> u64 {
        match self {
            ChainEntry::Record(r) => r.job_seq(),
            ChainEntry::Pruned(p) => p.job_seq,
        }
    }
}

/// A pruned job as listed by [`crate::Journal::pruned_jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedJob {
    /// The job id.
    pub job: Uuid,
    /// Its last job sequence (= records it had).
    pub last_job_seq: u64,
    /// Global sequence of its last record.
    pub last_seq: u64,
}

/// What [`crate::Journal::prune_jobs`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// Jobs pruned by this call (jobs already pruned are not counted).
    pub jobs: u64,
    /// Records replaced by stubs.
    pub records: u64,
    /// Stored bytes those records occupied (values and fragments).
    pub bytes_removed: u64,
}

/// Whether a stored value is a stub.
pub(crate) fn is_stub(value: &[u8]) -> bool {
    value.len() >= 2 && u16::from_be_bytes([value[0], value[1]]) == STUB_MARKER
}

impl PrunedLink {
    pub(crate) fn encode(&self) -> [u8; STUB_LEN] {
        let mut v = [0u8; STUB_LEN];
        v[..2].copy_from_slice(&STUB_MARKER.to_be_bytes());
        v[2..18].copy_from_slice(self.job.as_bytes());
        v[18..26].copy_from_slice(&self.job_seq.to_be_bytes());
        v[26..34].copy_from_slice(&self.timestamp.0.to_be_bytes());
        v[34..].copy_from_slice(self.hash.as_bytes());
        v
    }

    /// Decodes the stub stored under `seq`.
    pub(crate) fn decode(seq: u64, value: &[u8]) -> Result<PrunedLink> {
        let corrupt = |reason: String| JournalError::CorruptRecord { seq, reason };
        if value.len() != STUB_LEN || !is_stub(value) {
            return Err(corrupt(format!(
                "pruned-record stub has {} bytes, expected {STUB_LEN}",
                value.len()
            )));
        }
        let job = Uuid::from_slice(&value[2..18]).map_err(|e| corrupt(e.to_string()))?;
        let job_seq = be_u64(&value[18..26]).unwrap_or(0);
        if job_seq == 0 {
            return Err(corrupt("pruned-record stub has job sequence 0".into()));
        }
        let timestamp = Timestamp(i64::from_be_bytes(
            <[u8; 8]>::try_from(&value[26..34]).map_err(|e| corrupt(e.to_string()))?,
        ));
        let hash = Hash::from_slice(&value[34..])
            .ok_or_else(|| corrupt("pruned-record stub hash is not 32 bytes".into()))?;
        Ok(PrunedLink {
            seq,
            job,
            job_seq,
            timestamp,
            hash,
        })
    }
}

/// `"P" ‖ job`.
pub(crate) fn pruned_key(job: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = PRUNED_TAG;
    k[1..].copy_from_slice(job.as_bytes());
    k
}

/// Inverse of [`pruned_key`].
pub(crate) fn parse_pruned_key(key: &[u8]) -> Option<Uuid> {
    match key {
        [PRUNED_TAG, rest @ ..] if rest.len() == 16 => Uuid::from_slice(rest).ok(),
        _ => None,
    }
}

impl PrunedJob {
    pub(crate) fn encode_value(&self, records: u64) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&self.last_job_seq.to_be_bytes());
        v[8..16].copy_from_slice(&self.last_seq.to_be_bytes());
        v[16..].copy_from_slice(&records.to_be_bytes());
        v
    }

    pub(crate) fn decode_value(job: Uuid, value: &[u8]) -> Option<PrunedJob> {
        if value.len() != 24 {
            return None;
        }
        Some(PrunedJob {
            job,
            last_job_seq: be_u64(&value[..8])?,
            last_seq: be_u64(&value[8..16])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stubs_round_trip(seq in 1u64.., job in any::<u128>(), job_seq in 1u64.., ts in any::<i64>(), hash in any::<[u8; 32]>()) {
            let link = PrunedLink { seq, job: Uuid::from_u128(job), job_seq, timestamp: Timestamp(ts), hash: Hash(hash) };
            let bytes = link.encode();
            prop_assert!(is_stub(&bytes));
            prop_assert_eq!(PrunedLink::decode(seq, &bytes)?, link);
        }

        #[test]
        fn a_short_stub_is_a_typed_error(len in 0usize..STUB_LEN) {
            let mut v = vec![0xFF; len.max(2)];
            v.truncate(len.max(2));
            let refused = matches!(PrunedLink::decode(9, &v), Err(JournalError::CorruptRecord { seq: 9, .. }));
            prop_assert!(refused);
        }
    }

    #[test]
    fn a_record_is_never_a_stub() {
        // Records start with the envelope version, 1 today.
        assert!(!is_stub(&[0, 1, 0xFF, 0xFF]));
        assert!(is_stub(&[0xFF, 0xFF]));
    }
}
