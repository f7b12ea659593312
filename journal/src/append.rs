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
//! record in the previous batch has appended again — if that batch came from
//! at least two threads. A lone writer never waits, nor do writers that take
//! turns one at a time.

use crate::chain::Hash;
use crate::error::{JournalError, Result};
use crate::fragment;
use crate::journal::Head;
use crate::keys::{JobHeadValue, META_KEY, MetaValue, index_key, job_head_key, record_key};
use crate::record::{Appended, NewRecord, Timestamp};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Queue length at which an append commits the queue before returning
/// (bounds memory and the size of one sled batch). Measured: sled 0.34.7
/// writes ~1.7x more log per record in batches of 1024 records than in
/// batches of 32–256, see `docs/journal-format.md` §6.
pub(crate) const QUEUE_LIMIT_RECORDS: usize = 256;

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
                None if db.contains_key(crate::prune::pruned_key(job))? => {
                    return Err(JournalError::JobPruned { job });
                }
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

    /// Whether a queued (not yet applied) record belongs to `job`.
    pub(crate) fn has_pending(w: &Writer, job: Uuid) -> bool {
        w.queue.iter().any(|p| p.job == job)
    }

    /// Forgets the cached head of a job (it was pruned: the next append
    /// to it reads sled and is refused).
    pub(crate) fn forget_job(w: &mut Writer, job: Uuid) {
        w.jobs.remove(&job);
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
        // A batch of one thread is no evidence of concurrent writers: then
        // the next leader does not wait (a writer that went idle would only
        // delay it).
        w.expected = if expected.len() > 1 {
            expected
        } else {
            Vec::new()
        };
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
            let (value, continuations) = fragment::split(r.stored);
            batch.insert(&record_key(r.seq)[..], value);
            for (i, part) in (1u32..).zip(continuations) {
                batch.insert(&fragment::fragment_key(r.seq, i)[..], part);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::GENESIS;
    use std::sync::Arc;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn queue() -> (Arc<Queue>, sled::Db) {
        let head = Head {
            seq: 0,
            hash: GENESIS,
        };
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .unwrap_or_else(|e| panic!("sled: {e}"));
        (Arc::new(Queue::new(head)), db)
    }

    fn push(q: &Queue, db: &sled::Db, job: u128) -> Result<Appended> {
        let mut w = q.lock();
        q.push(&mut w, db, Uuid::from_u128(job), Timestamp(0), 0, b"x")
    }

    #[test]
    fn sequences_chain_and_job_sequences_are_assigned_in_memory() -> TestResult {
        let (q, db) = queue();
        let a = push(&q, &db, 1)?;
        let b = push(&q, &db, 2)?;
        let c = push(&q, &db, 1)?;
        assert_eq!((a.seq, a.job_seq), (1, 1));
        assert_eq!((b.seq, b.job_seq), (2, 1));
        assert_eq!((c.seq, c.job_seq), (3, 2));
        assert_eq!(
            q.head(),
            Head {
                seq: 3,
                hash: c.hash
            }
        );
        let group = q.drain(Duration::ZERO).into_batch().ok_or("empty")?;
        assert_eq!((group.first, group.head.seq), (1, 3));
        assert!(q.drain(Duration::ZERO).into_batch().is_none());
        Ok(())
    }

    #[test]
    fn a_lone_writer_never_waits() -> TestResult {
        let (q, db) = queue();
        push(&q, &db, 1)?;
        drop(q.drain(Duration::ZERO));
        push(&q, &db, 1)?;
        let t = Instant::now();
        drop(q.drain(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn the_leader_gathers_the_previous_batch_writers() -> TestResult {
        let (q, db) = queue();
        push(&q, &db, 1)?;
        let (q2, db2) = (Arc::clone(&q), db.clone());
        std::thread::spawn(move || push(&q2, &db2, 2))
            .join()
            .map_err(|_| "pusher panicked")??;
        // Batch of two threads: the next leader waits for the other one.
        drop(q.drain(Duration::ZERO));
        push(&q, &db, 1)?;
        let (q2, db2) = (Arc::clone(&q), db.clone());
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            push(&q2, &db2, 2)
        });
        let group = q
            .drain(Duration::from_secs(10))
            .into_batch()
            .ok_or("empty")?;
        late.join().map_err(|_| "pusher panicked")??;
        assert_eq!((group.first, group.head.seq), (3, 4), "both gathered");
        // The other thread does not come back: the wait is bounded.
        push(&q, &db, 1)?;
        let t = Instant::now();
        let group = q
            .drain(Duration::from_millis(30))
            .into_batch()
            .ok_or("empty")?;
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!((group.first, group.head.seq), (5, 5));
        Ok(())
    }

    #[test]
    fn applied_job_heads_are_pruned_beyond_the_cache_limit() -> TestResult {
        let (q, db) = queue();
        let jobs = u128::try_from(JOB_CACHE_LIMIT)? + 10;
        for job in 0..jobs {
            push(&q, &db, job)?;
        }
        let group = q.drain(Duration::ZERO).into_batch().ok_or("empty")?;
        db.apply_batch(group.batch)?;
        // The next drain prunes the applied heads; sled has them.
        push(&q, &db, 0)?;
        drop(q.drain(Duration::ZERO));
        assert_eq!(q.lock().jobs.len(), 1);
        assert_eq!(push(&q, &db, 5)?.job_seq, 2);
        assert_eq!(push(&q, &db, 0)?.job_seq, 3);
        Ok(())
    }
}
