//! The journal's error type. Every failure that concerns one record names
//! that record's global sequence number.

use crate::chain::Hash;
use crate::codec::CodecError;

/// Result alias of the crate.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Everything that can go wrong in the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The storage engine (sled) failed.
    #[error("storage engine error: {0}")]
    Storage(#[from] sled::Error),

    /// A filesystem operation of the journal itself failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the journal was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A record could not be decoded (truncated, malformed, wrong sequence).
    #[error("record {seq} is corrupt: {reason}")]
    CorruptRecord {
        /// Global sequence of the record.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// A record was written by a newer (or unknown) envelope format.
    #[error(
        "record {seq} has envelope format version {version}, this build understands version {supported}"
    )]
    UnknownVersion {
        /// Global sequence of the record.
        seq: u64,
        /// The version found.
        version: u16,
        /// The version this build writes and reads.
        supported: u16,
    },

    /// A record's stored hash does not recompute from its predecessor.
    #[error("record {seq} breaks the hash chain: stored {stored}, recomputed {computed}")]
    HashMismatch {
        /// Global sequence of the record.
        seq: u64,
        /// Hash stored with the record.
        stored: Hash,
        /// Hash recomputed from the predecessor and the record's bytes.
        computed: Hash,
    },

    /// The global sequence is not contiguous.
    #[error("sequence gap: expected record {expected}, found {}", found.map_or_else(|| "nothing".to_string(), |f| format!("record {f}")))]
    Gap {
        /// The sequence that should come next.
        expected: u64,
        /// The sequence found instead (`None`: the record is missing).
        found: Option<u64>,
    },

    /// The per-job index, the job heads or the meta head disagree with
    /// the record they describe.
    #[error("record {seq}: index/record disagreement: {detail}")]
    IndexMismatch {
        /// Global sequence of the record concerned.
        seq: u64,
        /// What disagrees.
        detail: String,
    },

    /// A bookkeeping entry (meta head, job head, index) is malformed, or
    /// the meta head disagrees with the records.
    #[error("journal bookkeeping is inconsistent: {detail}")]
    Inconsistent {
        /// What is wrong.
        detail: String,
    },

    /// The payload is larger than [`crate::MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// `commit` was asked for a sequence that was never appended.
    #[error("cannot commit sequence {seq}: the last appended sequence is {appended}")]
    NotAppended {
        /// Sequence asked for.
        seq: u64,
        /// Highest sequence appended so far.
        appended: u64,
    },

    /// A write or flush failed earlier; the journal refuses further writes
    /// and commits because the on-disk state is unknown. Reopen it.
    #[error("journal is poisoned by an earlier failure: {0}")]
    Poisoned(String),

    /// The global sequence space is exhausted.
    #[error("sequence space exhausted")]
    SequenceExhausted,

    /// The journal ends before a record it is known to have held (see
    /// `anchor.rs`): its log was cut short, typically by a damaged byte
    /// that made sled's recovery stop early.
    #[error(
        "the journal ends at record {head}, but it held record {anchored} (head.anchor): records were lost — the log was damaged or altered; restore the journal from a backup"
    )]
    Truncated {
        /// The sequence the anchor names.
        anchored: u64,
        /// The recovered head's sequence.
        head: u64,
    },

    /// The record at the anchor's sequence has another hash than the anchor
    /// remembers: the journal was rewritten from that record on.
    #[error(
        "record {seq} has hash {found}, but head.anchor remembers {anchored}: the journal was rewritten; restore it from a backup"
    )]
    AnchorMismatch {
        /// Global sequence of the record.
        seq: u64,
        /// The hash the journal has now.
        found: Hash,
        /// The hash the anchor remembers.
        anchored: Hash,
    },

    /// The job was pruned ([`crate::Journal::prune_jobs`]) and takes no
    /// more records.
    #[error("job {job} was pruned and takes no more records")]
    JobPruned {
        /// The job.
        job: uuid::Uuid,
    },

    /// The job still has appended records that no commit has written yet,
    /// so it cannot be pruned now.
    #[error("job {job} has records not yet committed; commit before pruning it")]
    JobBusy {
        /// The job.
        job: uuid::Uuid,
    },

    /// Encoding a record failed.
    #[error("encoding failed: {0}")]
    Codec(#[from] CodecError),
}
