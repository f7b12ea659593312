//! `journal`: an append-only, hash-chained, group-committed event journal
//! on sled 0.34.7. It stores opaque, versioned payloads grouped by job id and
//! knows nothing about what they mean.
//!
//! This file owns the crate documentation, the module layout and the public
//! re-exports.
//!
//! # Guarantees
//!
//! * **Cheap appends, atomic commits.** [`Journal::append`] assigns the
//!   record's sequence, job sequence and chain hash and queues it in memory
//!   without writing anything (once 256 records or 1 MiB are queued, the
//!   append commits them itself). A commit writes **every** queued record,
//!   each with its per-job index entry, plus the final job heads and meta
//!   head, in one sled batch. After a crash either all of a batch exists or
//!   none does.
//! * **Explicit durability.** A record counts as written only once
//!   [`Journal::commit`] (or [`Journal::append_durable`]) for its sequence
//!   has returned. Committed records survive `kill -9` and power loss
//!   (sled flush + `fdatasync` of the log file). Uncommitted ones may be
//!   lost, always as a suffix: the sequence never has holes.
//!   [`Journal::close`] and `Drop` commit whatever was appended.
//! * **Visibility.** Readers ([`Journal::iter_from`], [`Journal::iter_job`],
//!   [`Journal::jobs`], [`Journal::verify`]) see a record once a commit has
//!   written it to sled: at the latest when the `commit` covering it
//!   returns, possibly a little earlier (while that commit flushes), never
//!   while it is merely appended. [`Journal::head`] and the returned
//!   [`Appended`] reflect it at once.
//! * **Group commit.** One committing thread (the leader) writes everything
//!   queued by all threads, then does one sled flush and one `fdatasync`;
//!   concurrent committers wait for it, and records appended meanwhile go
//!   into the next leader's batch ([`Stats::flushes`] counts flushes).
//! * **Order and integrity.** Global sequences are 1, 2, 3, … with no gap;
//!   per-job sequences likewise. Every record carries
//!   `SHA-256(previous hash ‖ encoded body)`, checked on every read, on
//!   [`Journal::open`] (chain tail) and by [`Journal::verify`] (whole chain).
//!   Corruption is a typed [`JournalError`] naming the record, never a panic.
//! * **Versioned envelope.** Records carry [`FORMAT_VERSION`]; a record from
//!   an unknown version is refused with [`JournalError::UnknownVersion`].
//!   The payload's own schema version (`payload_format`) is the caller's.
//! * **No clock.** Timestamps are supplied by the caller ([`Timestamp`]).
//! * **Small memory.** The sled page cache is capped (16 MiB by default,
//!   [`Options::cache_capacity`]); the append queue is bounded (above).
//!
//! The on-disk format is specified in `docs/journal-format.md`.
//!
//! # Lifecycle
//!
//! ```
//! use journal::{decode_payload, encode_payload, Journal, Options, Timestamp};
//! use uuid::Uuid;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let job = Uuid::from_u128(42);
//!
//! // Open (creates or recovers).
//! let journal = Journal::open(dir.path(), Options::new())?;
//!
//! // Append, then commit: durable once commit returns.
//! let payload = encode_payload(&("received", 7u32))?;
//! let a = journal.append(job, Timestamp(1_700_000_000_000), 1, &payload)?;
//! journal.commit(a.seq)?;
//! assert_eq!((a.seq, a.job_seq), (1, 1));
//!
//! // Or both at once.
//! let b = journal.append_durable(job, Timestamp(1_700_000_000_500), 1, &encode_payload(&("done", 0u32))?)?;
//! assert_eq!((b.seq, b.job_seq), (2, 2));
//! assert_eq!(journal.durable_seq(), 2);
//! journal.close()?;
//!
//! // Reopen: the chain tail is checked, sequences continue.
//! let journal = Journal::open(dir.path(), Options::new())?;
//! assert_eq!(journal.head().seq, 2);
//! for record in journal.iter_job(job) {
//!     let record = record?;
//!     let (what, n): (String, u32) = decode_payload(record.payload())?;
//!     println!("{} #{}: {what} {n}", record.job(), record.job_seq());
//! }
//! let jobs = journal.jobs()?;
//! assert_eq!(jobs.len(), 1);
//! assert_eq!(jobs[0].last_job_seq, 2);
//! let report = journal.verify()?;
//! assert_eq!(report.records, 2);
//! assert_eq!(report.head_hash, b.hash);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod anchor;
mod append;
mod chain;
mod codec;
mod commit;
mod error;
mod fragment;
mod journal;
mod keys;
mod prune;
mod record;
mod snapshot;

pub use chain::{GENESIS, HASH_LEN, Hash, chain_of, link};
pub use codec::{BODY_FIXED_LEN, CodecError, PAYLOAD_DECODE_LIMIT, decode_payload, encode_payload};
pub use error::{JournalError, Result};
pub use journal::{
    ChainIter, DEFAULT_CACHE_CAPACITY, DEFAULT_LOCK_WAIT, Head, JobIter, JobSummary, Journal,
    Options, RecordIter, SEGMENT_SIZE, Stats, VerifyReport,
};
pub use prune::{ChainEntry, PruneReport, PrunedJob, PrunedLink};
pub use record::{
    Appended, ENVELOPE_OVERHEAD, FORMAT_VERSION, MAX_PAYLOAD_LEN, Record, Timestamp, VERSION_LEN,
};
pub use snapshot::copy_for_reading;

/// Compile-time proof that the journal can be shared across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Journal>();
};
