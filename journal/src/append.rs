//! Group append: concurrent `append` calls are combined into one sled batch.
//!
//! sled 0.34.7's `apply_batch` rolls its I/O buffer twice (before and after
//! reserving the batch manifest), so every batch costs background log
//! writes. When several threads append at once, the thread that obtains the
//! writer lock drains the queue of pending requests and writes all of them —
//! each with its own sequence number, job index entry and chained hash — in
//! one atomic batch, together with the final job heads and meta head. The
//! others find their result already filled in when they get the lock.
//!
//! This module builds the batch; `journal.rs` owns the locks and applies it.

use crate::chain::Hash;
use crate::error::{JournalError, Result};
use crate::journal::Head;
use crate::keys::{JobHeadValue, META_KEY, MetaValue, index_key, job_head_key, record_key};
use crate::record::{Appended, NewRecord, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One pending `append` call.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) job: Uuid,
    pub(crate) timestamp: Timestamp,
    pub(crate) payload_format: u16,
    pub(crate) payload: Vec<u8>,
    result: Mutex<Option<Result<Appended>>>,
}

impl Request {
    pub(crate) fn new(
        job: Uuid,
        timestamp: Timestamp,
        payload_format: u16,
        payload: Vec<u8>,
    ) -> Arc<Request> {
        Arc::new(Request {
            job,
            timestamp,
            payload_format,
            payload,
            result: Mutex::new(None),
        })
    }

    pub(crate) fn set(&self, result: Result<Appended>) {
        *lock(&self.result) = Some(result);
    }

    pub(crate) fn take(&self) -> Option<Result<Appended>> {
        lock(&self.result).take()
    }
}

/// Requests waiting for a writer.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pending: Mutex<Vec<Arc<Request>>>,
}

impl Queue {
    pub(crate) fn push(&self, request: Arc<Request>) {
        lock(&self.pending).push(request);
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Request>> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// A batch ready to apply.
pub(crate) struct Group {
    pub(crate) batch: sled::Batch,
    /// Requests that got a record, with what they got.
    pub(crate) accepted: Vec<(Arc<Request>, Appended)>,
    /// The head after the batch.
    pub(crate) head: Head,
}

fn malformed_job_head(job: Uuid) -> JournalError {
    JournalError::Inconsistent {
        detail: format!("job head of {job} is malformed"),
    }
}

/// Assigns sequences and hashes to `requests` on top of `head` and builds
/// their batch. A request that cannot be encoded gets its error right away
/// and consumes no sequence number.
pub(crate) fn build(db: &sled::Db, head: Head, requests: Vec<Arc<Request>>) -> Group {
    let mut batch = sled::Batch::default();
    let mut accepted = Vec::with_capacity(requests.len());
    let mut jobs: HashMap<Uuid, JobHeadValue> = HashMap::new();
    let (mut seq, mut hash): (u64, Hash) = (head.seq, head.hash);
    for request in requests {
        let prepared = (|| -> Result<(Vec<u8>, Hash, u64, u64)> {
            let next = seq.checked_add(1).ok_or(JournalError::SequenceExhausted)?;
            let last_job_seq = match jobs.get(&request.job) {
                Some(h) => h.last_job_seq,
                None => match db.get(job_head_key(request.job))? {
                    None => 0,
                    Some(v) => {
                        JobHeadValue::decode(&v)
                            .ok_or_else(|| malformed_job_head(request.job))?
                            .last_job_seq
                    }
                },
            };
            let job_seq = last_job_seq
                .checked_add(1)
                .ok_or(JournalError::SequenceExhausted)?;
            let (stored, new_hash) = NewRecord {
                seq: next,
                job: request.job,
                job_seq,
                timestamp: request.timestamp,
                payload_format: request.payload_format,
                payload: &request.payload,
            }
            .encode(&hash)?;
            Ok((stored, new_hash, next, job_seq))
        })();
        match prepared {
            Err(e) => request.set(Err(e)),
            Ok((stored, new_hash, next, job_seq)) => {
                batch.insert(&record_key(next)[..], stored);
                batch.insert(
                    &index_key(request.job, job_seq)[..],
                    &next.to_be_bytes()[..],
                );
                jobs.insert(
                    request.job,
                    JobHeadValue {
                        last_job_seq: job_seq,
                        last_seq: next,
                    },
                );
                seq = next;
                hash = new_hash;
                accepted.push((
                    request,
                    Appended {
                        seq: next,
                        job_seq,
                        hash: new_hash,
                    },
                ));
            }
        }
    }
    for (job, value) in &jobs {
        batch.insert(&job_head_key(*job)[..], &value.encode()[..]);
    }
    if !accepted.is_empty() {
        batch.insert(META_KEY, &MetaValue { seq, hash }.encode()[..]);
    }
    Group {
        batch,
        accepted,
        head: Head { seq, hash },
    }
}
