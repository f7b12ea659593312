//! The append queue: `append` encodes and chains a record in memory; the
//! commit leader drains the queue and writes it to sled in one batch.
//!
//! `append` runs under the queue's lock: it assigns the global sequence, the
//! job sequence (from this module's job-head cache, falling back to sled's
//! job head) and the chained hash, encodes the stored value and pushes it.
//! No sled write happens there, so an append costs microseconds and never
//! waits for I/O (except when the queue is full, see `Queue::is_full`).
//!
//! The commit leader ([`crate::commit`]) calls [`Queue::drain`], turns the
//! drained records into one [`sled::Batch`] ([`Drained::into_batch`]: every
//! record, its job index entry, each job's final head and the final meta
//! head) and applies it before flushing. Batches are applied in drain order
//! because only one leader runs at a time.
//!
//! **Gathering.** Writers that loop `append` + `commit` come back a few
//! microseconds after the flush that covered them returns, by which time the
//! next leader may already have drained a partial queue. So the leader first
//! waits (bounded by the caller's `gather`, and only on a condition variable,
//! leaving the CPU to the writers) until every *other* thread that had a
//! record in the previous batch has appended again. A lone writer never
//! waits: the only thread of its previous batch is itself.

use crate::chain::Hash;
use crate::error::{JournalError, Result};
use crate::journal::Head;
use crate::keys::{JobHeadValue, META_KEY, MetaValue, index_key, job_head_key, record_key};
use crate::record::{Appended, NewRecord, Timestamp};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Queue length at which an append commits the queue before returning
/// (bounds memory and the size of one sled batch).
pub(crate) const QUEUE_LIMIT_RECORDS: usize = 1024;

/// Queued stored bytes at which an append commits the queue before
/// returning.
pub(crate) const QUEUE_LIMIT_BYTES: usize = 1024 * 1024;

/// Job heads cached beyond which applied ones are dropped at the next drain.
const JOB_CACHE_LIMIT: usize = 4096;

/// One appended, not yet applied record.
#[derive(Debug)]
pub(crate) struct Pending {
    seq: u64,
    job: Uuid,
    job_seq: u64,
    hash: Hash,
    stored: Vec<u8>,
    thread: ThreadId,
}

/// State guarded by the queue's lock.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Head of the chain including queued records.
    head: Head,
    queue: Vec<Pending>,
    queued_bytes: usize,
    /// Job heads assigned by this handle that sled may not have yet, plus
    /// recently applied ones (bounded by `JOB_CACHE_LIMIT`).
    jobs: HashMap<Uuid, JobHeadValue>,
    /// Threads of the last drained batch that have not appended since.
    expected: Vec<ThreadId>,
    leader_waiting: bool,
}

/// The append queue.
#[derive(Debug)]
pub(crate) struct Queue {
    writer: Mutex<Writer>,
    arrivals: Condvar,
}

fn malformed_job_head(job: Uuid) -> JournalError {
    JournalError::Inconsistent {
        detail: format!("job head of {job} is malformed"),
    }
}

impl Queue {
    /// An empty queue on top of the recovered `head`.
    pub(crate) fn new(head: Head) -> Queue {
        Queue {
            writer: Mutex::new(Writer {
                head,
                queue: Vec::new(),
                queued_bytes: 0,
                jobs: HashMap::new(),
                expected: Vec::new(),
                leader_waiting: false,
            }),
            arrivals: Condvar::new(),
        }
    }

    /// Locks the queue. Its state is only changed by complete assignments
    /// after every fallible step, so a panic elsewhere leaves it consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Head of the chain including queued records.
    pub(crate) fn head(&self) -> Head {
        self.lock().head
    }

    /// Assigns sequence, job sequence and hash to a new record and queues
    /// it. A record that cannot be encoded consumes no sequence number.
    pub(crate) fn push(
        &self,
        w: &mut Writer,
        db: &sled::Db,
        job: Uuid,
        timestamp: Timestamp,
        payload_format: u16,
        payload: &[u8],
    ) -> Result<Appended> {
        let seq = w
            .head
            .seq
            .checked_add(1)
            .ok_or(JournalError::SequenceExhausted)?;
        let last_job_seq = match w.jobs.get(&job) {
            Some(h) => h.last_job_seq,
            // Not cached: every record of this job is applied (see `drain`).
            None => match db.get(job_head_key(job))? {
                None => 0,
                Some(v) => {
                    JobHeadValue::decode(&v)
                        .ok_or_else(|| malformed_job_head(job))?
                        .last_job_seq
                }
            },
        };
        let job_seq = last_job_seq
            .checked_add(1)
            .ok_or(JournalError::SequenceExhausted)?;
        let (stored, hash) = NewRecord {
            seq,
            job,
            job_seq,
            timestamp,
            payload_format,
            payload,
        }
        .encode(&w.head.hash)?;
        let me = thread::current().id();
        w.queued_bytes += stored.len();
        w.queue.push(Pending {
            seq,
            job,
            job_seq,
            hash,
            stored,
            thread: me,
        });
        w.jobs.insert(
            job,
            JobHeadValue {
                last_job_seq: job_seq,
                last_seq: seq,
            },
        );
        w.head = Head { seq, hash };
        if !w.expected.is_empty() {
            w.expected.retain(|t| *t != me);
            if w.expected.is_empty() && w.leader_waiting {
                self.arrivals.notify_all();
            }
        }
        Ok(Appended { seq, job_seq, hash })
    }

    /// Whether the queue has reached its limit (the appender then commits).
    pub(crate) fn is_full(w: &Writer) -> bool {
        w.queue.len() >= QUEUE_LIMIT_RECORDS || w.queued_bytes >= QUEUE_LIMIT_BYTES
    }

    /// Takes everything queued, after waiting up to `gather` for the other
    /// writers of the previous batch to append again. Only the commit
    /// leader calls this.
    pub(crate) fn drain(&self, gather: Duration) -> Drained {
        let mut w = self.lock();
        let me = thread::current().id();
        w.expected.retain(|t| *t != me);
        if !w.expected.is_empty() && !gather.is_zero() {
            let deadline = Instant::now() + gather;
            w.leader_waiting = true;
            while !w.expected.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                w = self
                    .arrivals
                    .wait_timeout(w, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            w.leader_waiting = false;
        }
        let records = std::mem::take(&mut w.queue);
        w.queued_bytes = 0;
        let mut expected: Vec<ThreadId> = Vec::new();
        for r in &records {
            if !expected.contains(&r.thread) {
                expected.push(r.thread);
            }
        }
        w.expected = expected;
        if w.jobs.len() > JOB_CACHE_LIMIT {
            // Everything before this batch has been applied by an earlier
            // leader; sled's job heads are current for those jobs.
            let applied = records.first().map_or(w.head.seq, |r| r.seq - 1);
            w.jobs.retain(|_, h| h.last_seq > applied);
        }
        Drained { records }
    }
}

/// Records taken from the queue by the commit leader.
#[derive(Debug)]
pub(crate) struct Drained {
    records: Vec<Pending>,
}

/// A batch ready to apply.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) batch: sled::Batch,
    /// Head after the batch.
    pub(crate) head: Head,
    /// First record of the batch.
    pub(crate) first: u64,
}

impl Drained {
    /// The sled batch of the drained records: each record and its job index
    /// entry, each job's final head, the final meta head. `None` if nothing
    /// was queued.
    pub(crate) fn into_batch(self) -> Option<Group> {
        let first = self.records.first()?.seq;
        let mut batch = sled::Batch::default();
        let mut jobs: HashMap<Uuid, JobHeadValue> = HashMap::new();
        let mut head = None;
        for r in self.records {
            batch.insert(&record_key(r.seq)[..], r.stored);
            batch.insert(&index_key(r.job, r.job_seq)[..], &r.seq.to_be_bytes()[..]);
            jobs.insert(
                r.job,
                JobHeadValue {
                    last_job_seq: r.job_seq,
                    last_seq: r.seq,
                },
            );
            head = Some(Head {
                seq: r.seq,
                hash: r.hash,
            });
        }
        let head = head?;
        for (job, value) in &jobs {
            batch.insert(&job_head_key(*job)[..], &value.encode()[..]);
        }
        batch.insert(
            META_KEY,
            &MetaValue {
                seq: head.seq,
                hash: head.hash,
            }
            .encode()[..],
        );
        Some(Group { batch, head, first })
    }
}
