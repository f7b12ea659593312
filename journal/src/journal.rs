//! The [`Journal`] type: opening and recovering a sled database, appending
//! records (queued in memory by `append.rs`), committing them as one atomic
//! sled batch per flush (through `commit.rs`), reading them back, and
//! verifying the whole chain.

use crate::anchor;
use crate::append::Queue;
use crate::chain::{GENESIS, HASH_LEN, Hash};
use crate::commit::GroupCommit;
use crate::error::{JournalError, Result};
use crate::fragment;
use crate::keys::{
    self, JobHeadValue, META_KEY, MetaValue, RECORD_TAG, index_key, index_prefix, job_head_key,
    record_key,
};
use crate::prune::{self, ChainEntry, PruneReport, PrunedJob, PrunedLink};
use crate::record::{Appended, MAX_PAYLOAD_LEN, Record, Timestamp};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// sled segment size used by the journal. Fixed: sled refuses to reopen a
/// database with a different segment size. It also fixes the blob threshold
/// (a quarter of a segment), see [`MAX_PAYLOAD_LEN`].
pub const SEGMENT_SIZE: usize = 4 * 1024 * 1024;

/// Default sled page-cache budget (16 MiB).
pub const DEFAULT_CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// Default of [`Options::lock_wait`].
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

/// How to open a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    cache_capacity: u64,
    flush_every_ms: Option<u64>,
    high_throughput: bool,
    lock_wait: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            flush_every_ms: None,
            high_throughput: false,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

impl Options {
    /// The defaults: 16 MiB cache, no background flushing, sled's
    /// low-space mode.
    #[must_use]
    pub fn new() -> Options {
        Options::default()
    }

    /// sled page-cache budget in bytes. sled's own default (1 GiB) makes a
    /// large journal's process grow to hundreds of MB.
    #[must_use]
    pub fn cache_capacity(mut self, bytes: u64) -> Options {
        self.cache_capacity = bytes;
        self
    }

    /// sled's background flush interval. `None` (the default) because
    /// durability is explicit: only [`Journal::commit`] promises anything,
    /// and a background flusher would just compete with it for the disk.
    #[must_use]
    pub fn flush_every_ms(mut self, every: Option<u64>) -> Options {
        self.flush_every_ms = every;
        self
    }

    /// How long [`Journal::open`] keeps retrying while another handle holds
    /// the directory's lock (default 2 s). sled releases the lock from a
    /// background thread shortly after the previous handle is dropped.
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Options {
        self.lock_wait = wait;
        self
    }

    /// sled's `Mode::HighThroughput` instead of `Mode::LowSpace`
    /// (less segment cleaning, more space).
    #[must_use]
    pub fn high_throughput(mut self, yes: bool) -> Options {
        self.high_throughput = yes;
        self
    }
}

/// The last record of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its global sequence (0 for an empty journal).
    pub seq: u64,
    /// Its hash ([`GENESIS`] for an empty journal).
    pub hash: Hash,
}

/// One job as listed by [`Journal::jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSummary {
    /// The job id.
    pub job: Uuid,
    /// Its last job sequence, which is also its number of records.
    pub last_job_seq: u64,
    /// Global sequence of its last record.
    pub last_seq: u64,
}

/// Result of a successful [`Journal::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records walked (equals `head_seq`), pruned ones included.
    pub records: u64,
    /// Of those, records whose job was pruned (only their stub is left).
    pub pruned: u64,
    /// Distinct jobs.
    pub jobs: u64,
    /// Sequence of the last record.
    pub head_seq: u64,
    /// Hash of the last record.
    pub head_hash: Hash,
}

/// Cheap counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Records appended by this handle.
    pub appends: u64,
    /// sled batches those records were written in: one per commit flush
    /// that had anything queued (see [`Journal::commit`]).
    pub append_batches: u64,
    /// Durability flushes (sled flush + fdatasync) performed by this handle.
    pub flushes: u64,
    /// Highest sequence appended (maybe only queued, maybe not durable).
    pub appended_seq: u64,
    /// Highest sequence known durable.
    pub durable_seq: u64,
}

/// An append-only, hash-chained, group-committed journal of opaque payloads
/// grouped by job. `Send + Sync`: share it with `Arc<Journal>`.
pub struct Journal {
    db: sled::Db,
    dir: PathBuf,
    /// `<dir>/db`, fdatasync'ed after every sled flush (Linux only, where
    /// sled ends its flush with `sync_file_range`).
    log_file: Option<File>,
    /// Appended records not yet written to sled, and the chain head
    /// including them. Serializes appends.
    queue: Queue,
    /// Head of what is written to sled (what readers see). Held by the
    /// commit leader while it applies a batch, and by `verify`.
    applied: Mutex<Head>,
    /// Copy of `applied` readable while a long `verify` holds it.
    published: Mutex<Head>,
    commit: GroupCommit,
    appends: AtomicU64,
    batches: AtomicU64,
    /// Smoothed duration of a commit's write (apply + flush + fdatasync),
    /// in nanoseconds; bounds how long a leader gathers writers.
    write_nanos: AtomicU64,
    /// When the head anchor was last written (see `anchor.rs`).
    anchored_at: Mutex<Option<Instant>>,
}

/// A commit leader waits at most this fraction of a typical write for the
/// writers of the previous batch to append again (see `append.rs`).
const GATHER_FRACTION: u64 = 4;

/// Upper bound of that wait.
const GATHER_MAX: Duration = Duration::from_millis(1);

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not sled's Debug: it walks the whole tree.
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("head", &self.head())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are plain data updated in one assignment, so a
    // panic elsewhere cannot leave them half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> JournalError {
    move |source| JournalError::Io { context, source }
}

/// Opens sled, retrying for up to `wait` while its file lock is held.
///
/// sled 0.34.7 writes its log from a background thread pool whose tasks
/// hold the log file (and its exclusive lock) until they finish, which can
/// be shortly after the `Db` that issued them is dropped. Reopening right
/// after closing, or a new process starting right after the previous one
/// closed, would otherwise fail spuriously.
fn open_sled(config: &sled::Config, wait: Duration) -> Result<sled::Db> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// fsyncs a directory so that entries created in it survive power loss.
/// Directories cannot be opened as files on Windows, where NTFS journals
/// its metadata; there this is a no-op.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsyncing the journal directory"))?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

fn inconsistent(detail: impl Into<String>) -> JournalError {
    JournalError::Inconsistent {
        detail: detail.into(),
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in directory `path` and
    /// recovers it: sled replays its log, then the journal reads its meta
    /// head and checks the chain tail (the last record exists, is the one the
    /// meta head names, recomputes from its predecessor, and its job index
    /// and job head agree). Everything recovered is made durable before
    /// `open` returns, so `durable_seq() == head().seq` afterwards.
    ///
    /// # Errors
    /// Storage/I/O errors, or a typed corruption error if the tail check
    /// fails (e.g. [`JournalError::HashMismatch`],
    /// [`JournalError::UnknownVersion`] naming the last record).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Journal> {
        let dir = path.as_ref().to_path_buf();
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(io("creating the journal directory"))?;
        let mode = if options.high_throughput {
            sled::Mode::HighThroughput
        } else {
            sled::Mode::LowSpace
        };
        let config = sled::Config::new()
            .path(&dir)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(options.flush_every_ms)
            .segment_size(SEGMENT_SIZE)
            .use_compression(false)
            .mode(mode);
        let db = open_sled(&config, options.lock_wait)?;

        let log_file = if cfg!(target_os = "linux") {
            Some(File::open(dir.join("db")).map_err(io("opening <dir>/db for fdatasync"))?)
        } else {
            None
        };

        let head = check_tail(&db)?;
        check_anchor(&db, &dir, head)?;
        let journal = Journal {
            db,
            log_file,
            queue: Queue::new(head),
            applied: Mutex::new(head),
            published: Mutex::new(head),
            commit: GroupCommit::new(head.seq),
            appends: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            write_nanos: AtomicU64::new(0),
            anchored_at: Mutex::new(None),
            dir,
        };
        // Make the recovered state (and sled's own files: `conf`, the log,
        // the snapshot it just renamed into place, `blobs/`) durable.
        journal.flush_and_sync()?;
        // Write access: Windows' FlushFileBuffers requires it.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(journal.dir.join("conf"))
            .and_then(|f| f.sync_all())
            .map_err(io("fsyncing <dir>/conf"))?;
        sync_dir(&journal.dir.join("blobs"))?;
        sync_dir(&journal.dir)?;
        if created && let Some(parent) = journal.dir.parent().filter(|p| !p.as_os_str().is_empty())
        {
            // The new directory's own entry.
            sync_dir(parent)?;
        }
        journal.anchor(head, true);
        Ok(journal)
    }

    /// The directory the journal lives in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one record to `job` and returns its sequence numbers and
    /// hash at once. The record is chained and queued in memory; it is
    /// **not durable, and not visible to readers** ([`Journal::iter_from`],
    /// [`Journal::iter_job`], [`Journal::jobs`], [`Journal::verify`]) until
    /// a commit writes it: the next [`Journal::commit`] by any thread writes
    /// everything queued, whatever sequence it was asked for.
    ///
    /// Appends are serialized (the chain needs an order) but write nothing
    /// (only the head of a job not seen recently is read from sled).
    /// Exception: an append that brings the queue to 256 records (or
    /// 1 MiB of stored bytes) commits it before returning, which bounds
    /// memory and batch size during long runs without commits.
    ///
    /// # Errors
    /// [`JournalError::PayloadTooLarge`] above [`MAX_PAYLOAD_LEN`],
    /// [`JournalError::Poisoned`] after an earlier write/flush failure,
    /// storage errors reading the job's head; when the queue is full, as
    /// [`Journal::commit`].
    pub fn append(
        &self,
        job: Uuid,
        timestamp: Timestamp,
        payload_format: u16,
        payload: &[u8],
    ) -> Result<Appended> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(JournalError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let (appended, full) = {
            let mut w = self.queue.lock();
            self.commit.check_poison()?;
            let a = self
                .queue
                .push(&mut w, &self.db, job, timestamp, payload_format, payload)?;
            self.commit.note_appended(a.seq);
            (a, Queue::is_full(&w))
        };
        self.appends.fetch_add(1, Ordering::Relaxed);
        if full {
            self.commit(appended.seq)?;
        }
        Ok(appended)
    }

    /// Returns once every record up to and including `seq` is durable
    /// (survives a process crash and a power loss).
    ///
    /// Group commit: if no other commit is running, this thread becomes the
    /// leader: it takes **every** record queued so far (by any thread),
    /// writes them as one atomic sled batch, which makes them visible to
    /// readers, then does one sled flush and one `fdatasync`, marks all of
    /// them durable and wakes the threads waiting for them. Otherwise it
    /// waits for the running commit and re-checks; records appended while a
    /// flush runs are written by the next leader.
    ///
    /// # Errors
    /// [`JournalError::NotAppended`] if `seq` was never appended, write or
    /// flush errors (which poison the journal), [`JournalError::Poisoned`].
    pub fn commit(&self, seq: u64) -> Result<()> {
        self.commit.commit(seq, || self.write_queued())
    }

    /// The commit leader's step: gather, drain, apply one batch, flush,
    /// `fdatasync`. Returns the last sequence now durable.
    fn write_queued(&self) -> Result<u64> {
        let typical = self.write_nanos.load(Ordering::Relaxed) / GATHER_FRACTION;
        let gather = Duration::from_nanos(typical).min(GATHER_MAX);
        let drained = self.queue.drain(gather);
        let started = Instant::now();
        let covered = match drained.into_batch() {
            None => lock(&self.applied).seq,
            Some(group) => {
                let mut applied = lock(&self.applied);
                if let Err(e) = self.db.apply_batch(group.batch) {
                    self.commit.poison(format!(
                        "writing records {}..={} failed: {e}",
                        group.first, group.head.seq
                    ));
                    return Err(e.into());
                }
                *applied = group.head;
                *lock(&self.published) = group.head;
                drop(applied);
                self.batches.fetch_add(1, Ordering::Relaxed);
                group.head.seq
            }
        };
        self.flush_and_sync()?;
        let durable = *lock(&self.published);
        self.anchor(durable, false);
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let old = self.write_nanos.load(Ordering::Relaxed);
        let smoothed = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.write_nanos.store(smoothed, Ordering::Relaxed);
        Ok(covered)
    }

    /// Alias of [`Journal::commit`].
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub fn sync_through(&self, seq: u64) -> Result<()> {
        self.commit(seq)
    }

    /// Commits everything appended so far.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub fn commit_all(&self) -> Result<()> {
        self.commit(self.commit.appended())
    }

    /// [`Journal::append`] followed by [`Journal::commit`] of the new record.
    ///
    /// # Errors
    /// As `append` and `commit`.
    pub fn append_durable(
        &self,
        job: Uuid,
        timestamp: Timestamp,
        payload_format: u16,
        payload: &[u8],
    ) -> Result<Appended> {
        let appended = self.append(job, timestamp, payload_format, payload)?;
        self.commit(appended.seq)?;
        Ok(appended)
    }

    /// The last appended record (maybe not yet committed, so maybe not
    /// yet visible to readers).
    #[must_use]
    pub fn head(&self) -> Head {
        self.queue.head()
    }

    /// Highest sequence known durable.
    #[must_use]
    pub fn durable_seq(&self) -> u64 {
        self.commit.durable()
    }

    /// Counters of this handle.
    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            appends: self.appends.load(Ordering::Relaxed),
            append_batches: self.batches.load(Ordering::Relaxed),
            flushes: self.commit.flushes(),
            appended_seq: self.commit.appended(),
            durable_seq: self.commit.durable(),
        }
    }

    /// Bytes sled reports for the database on disk.
    ///
    /// # Errors
    /// Storage errors.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Records from global sequence `from` (use 1 for everything) up to the
    /// last record written to sled at the time of the call, in order. Each
    /// record's hash is checked against its predecessor's and the sequence
    /// must be contiguous, so the iterator yields a typed error naming the
    /// first bad record. Records appended but not yet written by a commit
    /// are not included (see [`Journal::append`]).
    /// Records of pruned jobs are skipped (see [`Journal::iter_chain_from`]).
    #[must_use]
    pub fn iter_from(&self, from: u64) -> RecordIter {
        RecordIter {
            chain: self.iter_chain_from(from),
        }
    }

    /// Like [`Journal::iter_from`], but yields every position of the chain:
    /// records, and the stubs ([`PrunedLink`]) of records whose job was
    /// pruned, which keep their hash so the chain still links.
    #[must_use]
    pub fn iter_chain_from(&self, from: u64) -> ChainIter {
        let from = from.max(1);
        let end = lock(&self.published).seq;
        let inner = if from <= end {
            Some(
                self.db
                    .range(record_key(from).to_vec()..=record_key(end).to_vec()),
            )
        } else {
            None
        };
        ChainIter {
            db: self.db.clone(),
            inner,
            next: from,
            end,
            prev: None,
            failed: false,
        }
    }

    /// The records of one job in job-sequence order, each checked against
    /// its chain predecessor and against the job index, up to the job's
    /// last record written to sled (committed, or being committed).
    #[must_use]
    pub fn iter_job(&self, job: Uuid) -> JobIter {
        JobIter {
            db: self.db.clone(),
            job,
            inner: None,
            next_job_seq: 1,
            last_job_seq: 0,
            failed: false,
        }
    }

    /// All jobs with their last job sequence (= record count) and the
    /// global sequence of their last record, ordered by job id, as written
    /// to sled (records only queued by [`Journal::append`] are not counted).
    ///
    /// # Errors
    /// Storage errors, [`JournalError::Inconsistent`] for a malformed entry.
    pub fn jobs(&self) -> Result<Vec<JobSummary>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::JOB_HEAD_TAG]) {
            let (k, v) = item?;
            let job = keys::parse_job_head_key(&k)
                .ok_or_else(|| inconsistent(format!("malformed job head key {k:?}")))?;
            let head = JobHeadValue::decode(&v)
                .ok_or_else(|| inconsistent(format!("malformed job head of {job}")))?;
            out.push(JobSummary {
                job,
                last_job_seq: head.last_job_seq,
                last_seq: head.last_seq,
            });
        }
        Ok(out)
    }

    /// Walks the whole chain from genesis: contiguous sequences, every hash
    /// recomputed, every record's job sequence contiguous within its job and
    /// matching the job index, job heads and meta head matching the records,
    /// no stray index entries. It covers what is written to sled; commits
    /// wait while it runs (appends do not, they only queue).
    ///
    /// # Errors
    /// The first problem found, as a typed error naming the record
    /// ([`JournalError::HashMismatch`], [`JournalError::Gap`],
    /// [`JournalError::IndexMismatch`], …).
    pub fn verify(&self) -> Result<VerifyReport> {
        let head = lock(&self.applied);
        // Job → (last job sequence, last sequence, pruned?).
        let mut jobs: HashMap<Uuid, (JobHeadValue, bool)> = HashMap::new();
        let mut last = Head {
            seq: 0,
            hash: GENESIS,
        };
        let mut fragments = 0usize;
        let mut pruned_records = 0u64;
        for item in self.iter_chain_from(1) {
            let entry = item?;
            let seq = entry.seq();
            let is_pruned = matches!(entry, ChainEntry::Pruned(_));
            let (state, pruned) = jobs.entry(entry.job()).or_insert((
                JobHeadValue {
                    last_job_seq: 0,
                    last_seq: 0,
                },
                is_pruned,
            ));
            if *pruned != is_pruned {
                return Err(JournalError::IndexMismatch {
                    seq,
                    detail: format!("job {} is only partly pruned", entry.job()),
                });
            }
            if entry.job_seq() != state.last_job_seq + 1 {
                return Err(JournalError::IndexMismatch {
                    seq,
                    detail: format!(
                        "job {} sequence {} follows {}",
                        entry.job(),
                        entry.job_seq(),
                        state.last_job_seq
                    ),
                });
            }
            *state = JobHeadValue {
                last_job_seq: entry.job_seq(),
                last_seq: seq,
            };
            match &entry {
                ChainEntry::Pruned(_) => pruned_records += 1,
                ChainEntry::Record(r) => {
                    fragments += fragment::continuation_count(r.stored_value().len());
                    match self.db.get(index_key(r.job(), r.job_seq()))? {
                        Some(v) if keys::be_u64(&v) == Some(seq) => {}
                        other => {
                            return Err(JournalError::IndexMismatch {
                                seq,
                                detail: format!(
                                    "index entry for job {} sequence {} is {:?}",
                                    r.job(),
                                    r.job_seq(),
                                    other.as_deref().map(keys::be_u64)
                                ),
                            });
                        }
                    }
                }
            }
            last = Head {
                seq,
                hash: entry.hash(),
            };
        }
        if last != *head {
            return Err(inconsistent(format!(
                "walked to record {} ({}), but the head is record {} ({})",
                last.seq, last.hash, head.seq, head.hash
            )));
        }
        let meta = read_meta(&self.db)?;
        let meta_head = meta.map_or(
            Head {
                seq: 0,
                hash: GENESIS,
            },
            |m| Head {
                seq: m.seq,
                hash: m.hash,
            },
        );
        if meta_head != last {
            return Err(inconsistent(format!(
                "meta head names record {} ({}), the chain ends at {} ({})",
                meta_head.seq, meta_head.hash, last.seq, last.hash
            )));
        }
        let live_jobs = jobs.values().filter(|(_, pruned)| !pruned).count();
        let listed = self.jobs()?;
        if listed.len() != live_jobs {
            return Err(inconsistent(format!(
                "{} job heads for {live_jobs} jobs with records",
                listed.len(),
            )));
        }
        for j in &listed {
            let walked = jobs.get(&j.job);
            if walked
                != Some(&(
                    JobHeadValue {
                        last_job_seq: j.last_job_seq,
                        last_seq: j.last_seq,
                    },
                    false,
                ))
            {
                return Err(JournalError::IndexMismatch {
                    seq: j.last_seq,
                    detail: format!(
                        "job head of {} says job sequence {} at record {}, records say {:?}",
                        j.job, j.last_job_seq, j.last_seq, walked
                    ),
                });
            }
        }
        let pruned_jobs = self.pruned_jobs()?;
        if pruned_jobs.len() != jobs.len() - live_jobs {
            return Err(inconsistent(format!(
                "{} pruned-job entries for {} jobs with pruned records",
                pruned_jobs.len(),
                jobs.len() - live_jobs
            )));
        }
        for p in &pruned_jobs {
            let walked = jobs.get(&p.job);
            if walked
                != Some(&(
                    JobHeadValue {
                        last_job_seq: p.last_job_seq,
                        last_seq: p.last_seq,
                    },
                    true,
                ))
            {
                return Err(JournalError::IndexMismatch {
                    seq: p.last_seq,
                    detail: format!(
                        "pruned-job entry of {} says job sequence {} at record {}, stubs say {:?}",
                        p.job, p.last_job_seq, p.last_seq, walked
                    ),
                });
            }
        }
        let mut index_entries = 0u64;
        for item in self.db.scan_prefix([keys::INDEX_TAG]) {
            let _ = item?;
            index_entries += 1;
        }
        if index_entries != last.seq - pruned_records {
            return Err(inconsistent(format!(
                "{index_entries} job index entries for {} records with content",
                last.seq - pruned_records
            )));
        }
        let stored_fragments = self.db.scan_prefix([fragment::FRAGMENT_TAG]).count();
        if stored_fragments != fragments {
            return Err(inconsistent(format!(
                "{stored_fragments} record fragments stored, the records need {fragments}"
            )));
        }
        Ok(VerifyReport {
            records: last.seq,
            pruned: pruned_records,
            jobs: u64::try_from(jobs.len()).unwrap_or(u64::MAX),
            head_seq: last.seq,
            head_hash: last.hash,
        })
    }

    /// Jobs pruned by [`Journal::prune_jobs`], ordered by job id.
    ///
    /// # Errors
    /// Storage errors, [`JournalError::Inconsistent`] for a malformed entry.
    pub fn pruned_jobs(&self) -> Result<Vec<PrunedJob>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([prune::PRUNED_TAG]) {
            let (k, v) = item?;
            let job = prune::parse_pruned_key(&k)
                .ok_or_else(|| inconsistent(format!("malformed pruned-job key {k:?}")))?;
            out.push(
                PrunedJob::decode_value(job, &v)
                    .ok_or_else(|| inconsistent(format!("malformed pruned-job entry of {job}")))?,
            );
        }
        Ok(out)
    }

    /// Prunes whole jobs: every record of each job is replaced by a stub
    /// that keeps its place and hash in the chain (see `prune.rs`), its
    /// fragments and index entries are removed, and the job takes no more
    /// records. One atomic sled batch per job, made durable (flush +
    /// `fdatasync`) before returning. Jobs already pruned, or unknown, are
    /// skipped. The caller keeps the content elsewhere first if it must
    /// survive (the connector exports it to an archive).
    ///
    /// Appends wait while it runs. Disk space is given back as sled
    /// rewrites its segments, not at once.
    ///
    /// # Errors
    /// [`JournalError::JobBusy`] if a job has records appended but not yet
    /// committed, storage errors, corruption errors naming the record.
    pub fn prune_jobs(&self, jobs: &[Uuid]) -> Result<PruneReport> {
        let mut writer = self.queue.lock();
        self.commit.check_poison()?;
        if let Some(job) = jobs.iter().find(|j| Queue::has_pending(&writer, **j)) {
            return Err(JournalError::JobBusy { job: *job });
        }
        let _applied = lock(&self.applied);
        let mut report = PruneReport::default();
        for &job in jobs {
            let Some(head) = self.db.get(job_head_key(job))? else {
                continue;
            };
            let head = JobHeadValue::decode(&head)
                .ok_or_else(|| inconsistent(format!("malformed job head of {job}")))?;
            let mut batch = sled::Batch::default();
            let mut records = 0u64;
            for item in self.db.scan_prefix(index_prefix(job)) {
                let (k, v) = item?;
                let seq = keys::be_u64(&v).ok_or_else(|| {
                    inconsistent(format!("malformed index entry {k:?} of job {job}"))
                })?;
                let value = self.db.get(record_key(seq))?.ok_or(JournalError::Gap {
                    expected: seq,
                    found: None,
                })?;
                let value_len = value.len();
                let record =
                    Record::decode(seq, fragment::assemble(&self.db, seq, value.to_vec())?)?;
                let continuations = fragment::continuation_count(record.stored_value().len());
                for i in 1..=continuations {
                    let index = u32::try_from(i).map_err(|_| JournalError::CorruptRecord {
                        seq,
                        reason: "too many fragments".into(),
                    })?;
                    batch.remove(fragment::fragment_key(seq, index).to_vec());
                }
                let link = PrunedLink {
                    seq,
                    job,
                    job_seq: record.job_seq(),
                    timestamp: record.timestamp(),
                    hash: record.hash(),
                };
                batch.insert(record_key(seq).to_vec(), link.encode().to_vec());
                batch.remove(k);
                records += 1;
                report.bytes_removed +=
                    u64::try_from(record.stored_value().len().max(value_len)).unwrap_or(u64::MAX);
            }
            if records != head.last_job_seq {
                return Err(JournalError::IndexMismatch {
                    seq: head.last_seq,
                    detail: format!(
                        "job {job} has {records} index entries, its head says {}",
                        head.last_job_seq
                    ),
                });
            }
            batch.remove(job_head_key(job).to_vec());
            let pruned = PrunedJob {
                job,
                last_job_seq: head.last_job_seq,
                last_seq: head.last_seq,
            };
            batch.insert(
                prune::pruned_key(job).to_vec(),
                pruned.encode_value(records).to_vec(),
            );
            if let Err(e) = self.db.apply_batch(batch) {
                self.commit.poison(format!("pruning job {job} failed: {e}"));
                return Err(e.into());
            }
            Queue::forget_job(&mut writer, job);
            report.jobs += 1;
            report.records += records;
        }
        if report.jobs > 0 {
            self.flush_and_sync()?;
        }
        Ok(report)
    }

    /// Commits everything appended and closes the journal.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub fn close(self) -> Result<()> {
        self.commit_all()?;
        let head = *lock(&self.published);
        self.anchor(head, true);
        Ok(())
        // Drop finds nothing left to flush.
    }

    /// Records `head` (durable) in the head anchor, at most once per
    /// `ANCHOR_EVERY` unless `now`. Best effort: a failed write only
    /// weakens the truncation check, so it is not an error.
    fn anchor(&self, head: Head, now: bool) {
        if head.seq == 0 {
            return;
        }
        let mut at = lock(&self.anchored_at);
        if !now && at.is_some_and(|t| t.elapsed() < anchor::ANCHOR_EVERY) {
            return;
        }
        if anchor::write(&self.dir, head).is_ok() {
            *at = Some(Instant::now());
        }
    }

    /// sled flush (write + `sync_file_range` on Linux, `fsync` elsewhere),
    /// then `fdatasync` of the log file on Linux so the data also leaves the
    /// drive's volatile cache and the file size is persisted.
    fn flush_and_sync(&self) -> Result<()> {
        self.db.flush()?;
        if let Some(f) = &self.log_file {
            f.sync_data().map_err(io("fdatasync of <dir>/db"))?;
        }
        Ok(())
    }

    /// Test hook: raw access to sled, for tampering tests.
    #[cfg(test)]
    pub(crate) fn raw_db(&self) -> &sled::Db {
        &self.db
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.commit.check_poison().is_ok() && self.commit.appended() > self.commit.durable() {
            // Best effort: nothing uncommitted was promised to anyone.
            let _ = self.commit_all();
        }
    }
}

fn read_meta(db: &sled::Db) -> Result<Option<MetaValue>> {
    match db.get(META_KEY)? {
        None => Ok(None),
        Some(v) => MetaValue::decode(&v).map(Some).map_err(inconsistent),
    }
}

/// The chain hash preceding record `seq`: [`GENESIS`] for record 1,
/// otherwise the hash stored at the end of record `seq - 1` (not decoded).
fn prev_hash(db: &sled::Db, seq: u64) -> Result<Hash> {
    match seq {
        0 => Err(JournalError::CorruptRecord {
            seq,
            reason: "sequence 0 is never assigned".to_string(),
        }),
        1 => Ok(GENESIS),
        _ => stored_hash(db, seq - 1),
    }
}

/// Hash stored at the end of record `seq`'s value, without decoding it.
fn stored_hash(db: &sled::Db, seq: u64) -> Result<Hash> {
    let v = db.get(record_key(seq))?.ok_or(JournalError::Gap {
        expected: seq,
        found: None,
    })?;
    v.len()
        .checked_sub(HASH_LEN)
        .and_then(|at| Hash::from_slice(&v[at..]))
        .ok_or_else(|| JournalError::CorruptRecord {
            seq,
            reason: format!("stored value has only {} bytes", v.len()),
        })
}

/// The recovered head must not be behind the head anchor, and the record
/// the anchor names must still have its hash (see `anchor.rs`).
fn check_anchor(db: &sled::Db, dir: &Path, head: Head) -> Result<()> {
    let Some(anchored) = anchor::read(dir) else {
        return Ok(());
    };
    if anchored.seq > head.seq {
        return Err(JournalError::Truncated {
            anchored: anchored.seq,
            head: head.seq,
        });
    }
    if anchored.seq == 0 {
        return Ok(());
    }
    let found = stored_hash(db, anchored.seq)?;
    if found != anchored.hash {
        return Err(JournalError::AnchorMismatch {
            seq: anchored.seq,
            found,
            anchored: anchored.hash,
        });
    }
    Ok(())
}

/// Recovery check of the chain tail; returns the head.
fn check_tail(db: &sled::Db) -> Result<Head> {
    let meta = read_meta(db)?;
    let last = db.scan_prefix([RECORD_TAG]).next_back().transpose()?;
    let (meta, (key, value)) = match (meta, last) {
        (None, None) => {
            return Ok(Head {
                seq: 0,
                hash: GENESIS,
            });
        }
        (None, Some(_)) => return Err(inconsistent("records exist but the meta head is missing")),
        (Some(m), None) => {
            return Err(JournalError::Gap {
                expected: m.seq,
                found: None,
            });
        }
        (Some(m), Some(kv)) => (m, kv),
    };
    let seq = keys::parse_record_key(&key)
        .ok_or_else(|| inconsistent(format!("malformed record key {key:?}")))?;
    if seq == meta.seq && prune::is_stub(&value) {
        // The last record's job was pruned: its stub carries the hash.
        let link = PrunedLink::decode(seq, &value)?;
        if link.hash != meta.hash {
            return Err(JournalError::IndexMismatch {
                seq,
                detail: format!(
                    "meta head hash {} differs from the pruned record's {}",
                    meta.hash, link.hash
                ),
            });
        }
        let pruned = db
            .get(prune::pruned_key(link.job))?
            .as_deref()
            .and_then(|v| PrunedJob::decode_value(link.job, v));
        if pruned.map(|p| (p.last_job_seq, p.last_seq)) != Some((link.job_seq, seq)) {
            return Err(JournalError::IndexMismatch {
                seq,
                detail: format!("pruned-job entry of {} is {pruned:?}", link.job),
            });
        }
        return Ok(Head {
            seq,
            hash: link.hash,
        });
    }
    if seq != meta.seq {
        return Err(if seq < meta.seq {
            JournalError::Gap {
                expected: meta.seq,
                found: None,
            }
        } else {
            inconsistent(format!(
                "record {seq} exists beyond the meta head (record {})",
                meta.seq
            ))
        });
    }
    let prev = prev_hash(db, seq)?;
    let stored = fragment::assemble(db, seq, value.to_vec())?;
    let record = Record::decode_linked(seq, stored, &prev)?;
    if record.hash() != meta.hash {
        return Err(JournalError::IndexMismatch {
            seq,
            detail: format!(
                "meta head hash {} differs from the record's {}",
                meta.hash,
                record.hash()
            ),
        });
    }
    let job_head = db
        .get(job_head_key(record.job()))?
        .as_deref()
        .and_then(JobHeadValue::decode);
    let expected_head = JobHeadValue {
        last_job_seq: record.job_seq(),
        last_seq: seq,
    };
    if job_head != Some(expected_head) {
        return Err(JournalError::IndexMismatch {
            seq,
            detail: format!("job head of {} is {job_head:?}", record.job()),
        });
    }
    let index = db
        .get(index_key(record.job(), record.job_seq()))?
        .as_deref()
        .and_then(keys::be_u64);
    if index != Some(seq) {
        return Err(JournalError::IndexMismatch {
            seq,
            detail: format!("job index entry is {index:?}"),
        });
    }
    Ok(Head {
        seq,
        hash: record.hash(),
    })
}

/// Iterator of [`Journal::iter_chain_from`]: every position of the chain,
/// records and the stubs of pruned records.
pub struct ChainIter {
    db: sled::Db,
    inner: Option<sled::Iter>,
    next: u64,
    end: u64,
    prev: Option<Hash>,
    failed: bool,
}

impl fmt::Debug for ChainIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainIter")
            .field("next", &self.next)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl ChainIter {
    fn step(&mut self) -> Option<Result<ChainEntry>> {
        let prev = match self.prev {
            Some(p) => p,
            None => match prev_hash(&self.db, self.next) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            },
        };
        let item = self.inner.as_mut()?.next();
        let (k, v) = match item {
            None if self.next <= self.end => {
                return Some(Err(JournalError::Gap {
                    expected: self.next,
                    found: None,
                }));
            }
            None => return None,
            Some(Err(e)) => return Some(Err(e.into())),
            Some(Ok(kv)) => kv,
        };
        let seq = match keys::parse_record_key(&k) {
            Some(s) => s,
            None => return Some(Err(inconsistent(format!("malformed record key {k:?}")))),
        };
        if seq != self.next {
            return Some(Err(JournalError::Gap {
                expected: self.next,
                found: Some(seq),
            }));
        }
        let entry = if prune::is_stub(&v) {
            // The content is gone; the stub's hash is what the next record
            // must link to.
            PrunedLink::decode(seq, &v).map(ChainEntry::Pruned)
        } else {
            fragment::assemble(&self.db, seq, v.to_vec())
                .and_then(|stored| Record::decode_linked(seq, stored, &prev))
                .map(ChainEntry::Record)
        };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        self.prev = Some(entry.hash());
        self.next = seq + 1;
        Some(Ok(entry))
    }
}

impl Iterator for ChainIter {
    type Item = Result<ChainEntry>;

    fn next(&mut self) -> Option<Result<ChainEntry>> {
        if self.failed || self.next > self.end {
            return None;
        }
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

/// Iterator of [`Journal::iter_from`]: the records that have content, in
/// order, each checked against its chain predecessor (a pruned record's
/// stub included).
#[derive(Debug)]
pub struct RecordIter {
    chain: ChainIter,
}

impl Iterator for RecordIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            match self.chain.next()? {
                Ok(ChainEntry::Record(r)) => return Some(Ok(r)),
                Ok(ChainEntry::Pruned(_)) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Iterator of [`Journal::iter_job`].
pub struct JobIter {
    db: sled::Db,
    job: Uuid,
    inner: Option<sled::Iter>,
    next_job_seq: u64,
    last_job_seq: u64,
    failed: bool,
}

impl fmt::Debug for JobIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobIter")
            .field("job", &self.job)
            .field("next_job_seq", &self.next_job_seq)
            .finish_non_exhaustive()
    }
}

impl JobIter {
    fn step(&mut self) -> Option<Result<Record>> {
        if self.inner.is_none() {
            // Bound the walk by the job head as it is now.
            match self.db.get(job_head_key(self.job)) {
                Err(e) => return Some(Err(e.into())),
                Ok(None) => return None,
                Ok(Some(v)) => match JobHeadValue::decode(&v) {
                    Some(h) => self.last_job_seq = h.last_job_seq,
                    None => {
                        return Some(Err(inconsistent(format!(
                            "malformed job head of {}",
                            self.job
                        ))));
                    }
                },
            }
            self.inner = Some(self.db.scan_prefix(index_prefix(self.job)));
        }
        if self.next_job_seq > self.last_job_seq {
            return None;
        }
        let (k, v) = match self.inner.as_mut()?.next() {
            None => {
                return Some(Err(inconsistent(format!(
                    "job {} index ends before job sequence {} (job head says {})",
                    self.job, self.next_job_seq, self.last_job_seq
                ))));
            }
            Some(Err(e)) => return Some(Err(e.into())),
            Some(Ok(kv)) => kv,
        };
        let (job, job_seq) = match keys::parse_index_key(&k) {
            Some(x) => x,
            None => return Some(Err(inconsistent(format!("malformed index key {k:?}")))),
        };
        let Some(seq) = keys::be_u64(&v) else {
            return Some(Err(inconsistent(format!(
                "malformed index entry for job {job} sequence {job_seq}"
            ))));
        };
        if job != self.job || job_seq != self.next_job_seq {
            return Some(Err(JournalError::IndexMismatch {
                seq,
                detail: format!(
                    "expected job {} sequence {}, index has job {job} sequence {job_seq}",
                    self.job, self.next_job_seq
                ),
            }));
        }
        let stored = match self.db.get(record_key(seq)) {
            Err(e) => return Some(Err(e.into())),
            Ok(None) => {
                return Some(Err(JournalError::IndexMismatch {
                    seq,
                    detail: format!("index of job {job} sequence {job_seq} names a missing record"),
                }));
            }
            Ok(Some(v)) => v.to_vec(),
        };
        let record = match fragment::assemble(&self.db, seq, stored)
            .and_then(|stored| Ok((stored, prev_hash(&self.db, seq)?)))
            .and_then(|(stored, prev)| Record::decode_linked(seq, stored, &prev))
        {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        if record.job() != job || record.job_seq() != job_seq {
            return Some(Err(JournalError::IndexMismatch {
                seq,
                detail: format!(
                    "index says job {job} sequence {job_seq}, record says job {} sequence {}",
                    record.job(),
                    record.job_seq()
                ),
            }));
        }
        self.next_job_seq += 1;
        Some(Ok(record))
    }
}

impl Iterator for JobIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.failed {
            return None;
        }
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

#[cfg(test)]
mod tests;
