//! Key encoding of the journal's keyspaces and the fixed-width values of its
//! bookkeeping entries (index, job head, meta head).
//!
//! All keyspaces live in sled's default tree, separated by a one-byte tag so
//! that one `apply_batch` (crash-atomic in sled 0.34.7) covers them all.
//! Integers are big-endian so sled's lexicographic order is numeric order.
//!
//! | keyspace   | key                                   | value                               |
//! |------------|---------------------------------------|-------------------------------------|
//! | meta head  | `"M"`                                 | `u16 meta version ‖ u64 seq ‖ hash` |
//! | records    | `"R" ‖ seq u64`                       | stored record (see `record.rs`)     |
//! | job index  | `"I" ‖ job uuid (16) ‖ job_seq u64`   | `seq u64`                           |
//! | job head   | `"J" ‖ job uuid (16)`                 | `last job_seq u64 ‖ last seq u64`   |

use crate::chain::{HASH_LEN, Hash};
use uuid::Uuid;

/// Key of the single meta-head entry.
pub(crate) const META_KEY: &[u8] = b"M";
/// Tag byte of record keys.
pub(crate) const RECORD_TAG: u8 = b'R';
/// Tag byte of per-job index keys.
pub(crate) const INDEX_TAG: u8 = b'I';
/// Tag byte of per-job head keys.
pub(crate) const JOB_HEAD_TAG: u8 = b'J';

/// Version of the meta-head value layout.
pub(crate) const META_VERSION: u16 = 1;
/// Length of the meta-head value.
pub(crate) const META_LEN: usize = 2 + 8 + HASH_LEN;

/// `"R" ‖ seq`.
pub(crate) fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = RECORD_TAG;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Inverse of [`record_key`].
pub(crate) fn parse_record_key(key: &[u8]) -> Option<u64> {
    match key {
        [RECORD_TAG, rest @ ..] => be_u64(rest),
        _ => None,
    }
}

/// `"I" ‖ job ‖ job_seq`.
pub(crate) fn index_key(job: Uuid, job_seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = INDEX_TAG;
    k[1..17].copy_from_slice(job.as_bytes());
    k[17..].copy_from_slice(&job_seq.to_be_bytes());
    k
}

/// `"I" ‖ job`: the prefix of all index keys of one job.
pub(crate) fn index_prefix(job: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = INDEX_TAG;
    k[1..].copy_from_slice(job.as_bytes());
    k
}

/// Inverse of [`index_key`].
pub(crate) fn parse_index_key(key: &[u8]) -> Option<(Uuid, u64)> {
    match key {
        [INDEX_TAG, rest @ ..] if rest.len() == 24 => {
            let job = Uuid::from_slice(&rest[..16]).ok()?;
            Some((job, be_u64(&rest[16..])?))
        }
        _ => None,
    }
}

/// `"J" ‖ job`.
pub(crate) fn job_head_key(job: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = JOB_HEAD_TAG;
    k[1..].copy_from_slice(job.as_bytes());
    k
}

/// Inverse of [`job_head_key`].
pub(crate) fn parse_job_head_key(key: &[u8]) -> Option<Uuid> {
    match key {
        [JOB_HEAD_TAG, rest @ ..] if rest.len() == 16 => Uuid::from_slice(rest).ok(),
        _ => None,
    }
}

/// Reads exactly eight big-endian bytes.
pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// Value of a job-head entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobHeadValue {
    pub(crate) last_job_seq: u64,
    pub(crate) last_seq: u64,
}

impl JobHeadValue {
    pub(crate) fn encode(self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.last_job_seq.to_be_bytes());
        v[8..].copy_from_slice(&self.last_seq.to_be_bytes());
        v
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<JobHeadValue> {
        if bytes.len() != 16 {
            return None;
        }
        Some(JobHeadValue {
            last_job_seq: be_u64(&bytes[..8])?,
            last_seq: be_u64(&bytes[8..])?,
        })
    }
}

/// Value of the meta head: the last global sequence and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaValue {
    pub(crate) seq: u64,
    pub(crate) hash: Hash,
}

impl MetaValue {
    pub(crate) fn encode(self) -> [u8; META_LEN] {
        let mut v = [0u8; META_LEN];
        v[..2].copy_from_slice(&META_VERSION.to_be_bytes());
        v[2..10].copy_from_slice(&self.seq.to_be_bytes());
        v[10..].copy_from_slice(&self.hash.0);
        v
    }

    /// `Err(detail)` for a wrong length or unknown meta version.
    pub(crate) fn decode(bytes: &[u8]) -> Result<MetaValue, String> {
        if bytes.len() < 2 {
            return Err(format!("meta head has {} bytes", bytes.len()));
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != META_VERSION {
            return Err(format!(
                "meta head has unknown version {version} (supported: {META_VERSION})"
            ));
        }
        if bytes.len() != META_LEN {
            return Err(format!(
                "meta head has {} bytes, expected {META_LEN}",
                bytes.len()
            ));
        }
        let seq = be_u64(&bytes[2..10]).ok_or("meta head seq")?;
        let hash = Hash::from_slice(&bytes[10..]).ok_or("meta head hash")?;
        Ok(MetaValue { seq, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_keys_round_trip_and_sort_numerically(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(parse_record_key(&record_key(a)), Some(a));
            prop_assert_eq!(a.cmp(&b), record_key(a).cmp(&record_key(b)));
        }

        #[test]
        fn index_keys_round_trip_and_group_by_job(
            j in any::<u128>(), a in any::<u64>(), b in any::<u64>()
        ) {
            let job = Uuid::from_u128(j);
            prop_assert_eq!(parse_index_key(&index_key(job, a)), Some((job, a)));
            prop_assert!(index_key(job, a).starts_with(&index_prefix(job)));
            prop_assert_eq!(a.cmp(&b), index_key(job, a).cmp(&index_key(job, b)));
        }

        #[test]
        fn values_round_trip(j in any::<u128>(), a in any::<u64>(), b in any::<u64>(), h in any::<[u8; 32]>()) {
            let job = Uuid::from_u128(j);
            prop_assert_eq!(parse_job_head_key(&job_head_key(job)), Some(job));
            let head = JobHeadValue { last_job_seq: a, last_seq: b };
            prop_assert_eq!(JobHeadValue::decode(&head.encode()), Some(head));
            let meta = MetaValue { seq: a, hash: Hash(h) };
            prop_assert_eq!(MetaValue::decode(&meta.encode()), Ok(meta));
        }
    }

    #[test]
    fn malformed_keys_and_values_are_rejected() {
        assert_eq!(parse_record_key(b"R123"), None);
        assert_eq!(parse_record_key(&index_key(Uuid::nil(), 1)), None);
        assert_eq!(parse_index_key(&record_key(1)), None);
        assert_eq!(parse_job_head_key(b"J"), None);
        assert_eq!(JobHeadValue::decode(&[0u8; 15]), None);
        assert!(MetaValue::decode(&[0u8; META_LEN]).is_err());
        assert!(MetaValue::decode(&[0u8; 1]).is_err());
        let mut v = MetaValue {
            seq: 1,
            hash: Hash([0; 32]),
        }
        .encode()
        .to_vec();
        v.push(0);
        assert!(MetaValue::decode(&v).is_err());
    }

    #[test]
    fn keyspaces_do_not_interleave() {
        // All record keys sort after all index/job keys and before nothing else,
        // so prefix scans never see a foreign entry.
        assert!(record_key(0).as_slice() > job_head_key(Uuid::max()).as_slice());
        assert!(index_key(Uuid::max(), u64::MAX).as_slice() < job_head_key(Uuid::nil()).as_slice());
        assert!(META_KEY > job_head_key(Uuid::max()).as_slice());
        assert!(META_KEY < record_key(0).as_slice());
    }
}
