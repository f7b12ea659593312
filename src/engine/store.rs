//! The job store: the journal and the folded state of every job, kept in step.
//!
//! The one rule: **an event is checked, then journaled and committed, then applied.** Checked —
//! applied to a copy of its job first, so the journal never holds an event its machine would
//! refuse; committed — `append` returns only once the record is durable (group commit shares the
//! flush with concurrent jobs); applied — only then does the in-memory state move, so nothing is
//! ever done on the strength of an event that could still be lost.
//!
//! Events are stored as journal payloads with [`PAYLOAD_FORMAT`]; the journal's own envelope
//! carries the job id and the timestamp. Opening the store folds the whole journal; a record that
//! cannot be decoded breaks only its own job, which is then left alone (see `broken`).

use journal::{
    Journal, JournalError, Options, Timestamp as JournalTime, decode_payload, encode_payload,
};
use replay::{Entry, Event, Fleet, FoldError, Job, JobId, Timestamp};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// The schema version of the event payloads this connector writes.
pub const PAYLOAD_FORMAT: u16 = 1;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("cannot encode the event: {0}")]
    Encode(String),
    #[error("the job state machine refuses the event: {0}")]
    Refused(#[from] FoldError),
    #[error("job {0} is broken and takes no more events")]
    Broken(JobId),
    #[error(
        "job {job} has {events} events, the hard limit ([retention] max_events_per_job) is {limit}: only events that close the job are taken now"
    )]
    EventLimit { job: JobId, events: u64, limit: u64 },
}

/// Soft and hard limits on the number of events of one job: a runaway job (a step polled for
/// weeks, a transfer reporting progress forever) must not fill the disk.
///
/// At `warn` events the store logs a warning once; at `max` it refuses every event except those
/// that end the job ([`EventLimits::closes_the_job`]), and the driver gives up the running step
/// so the job fails with a clear error and its result is still reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    pub warn: u64,
    pub max: u64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            warn: 20_000,
            max: 200_000,
        }
    }
}

impl EventLimits {
    /// Events still taken from a job at its hard limit: giving up the step, and the result.
    pub fn closes_the_job(event: &Event) -> bool {
        matches!(
            event,
            Event::StepStarted { .. }
                | Event::StepFailed { .. }
                | Event::CommandRejected { .. }
                | Event::Acked
                | Event::ResultReady { .. }
                | Event::ReportSent { .. }
                | Event::ReportFailed { .. }
                | Event::ReportDeferred { .. }
                | Event::ReportAcknowledged
                | Event::JobFinished { .. }
        )
    }
}

/// The journal and every job's state.
#[derive(Debug, Clone)]
pub struct Store {
    journal: Arc<Journal>,
    state: Arc<Mutex<State>>,
    limits: EventLimits,
}

#[derive(Debug, Default)]
struct State {
    fleet: Fleet,
    /// Jobs whose journal records could not be decoded: job → why.
    broken: BTreeMap<JobId, String>,
}

impl Store {
    /// Opens (or creates) the journal at `dir` and folds it.
    pub fn open(dir: &Path, options: Options) -> Result<Store, StoreError> {
        let journal = Journal::open(dir, options)?;
        let mut state = State::default();
        for record in journal.iter_from(1) {
            let record = record?;
            let job = JobId(record.job());
            if state.broken.contains_key(&job) {
                continue;
            }
            match decode(&record) {
                Ok(entry) => {
                    // A job that does not fold is quarantined inside the fleet; keep going.
                    let _ = state.fleet.apply(job, &entry);
                }
                Err(why) => {
                    state.broken.insert(job, why);
                }
            }
        }
        Ok(Store {
            journal: Arc::new(journal),
            state: Arc::new(Mutex::new(state)),
            limits: EventLimits::default(),
        })
    }

    /// The same store with other per-job event limits.
    #[must_use]
    pub fn with_limits(mut self, limits: EventLimits) -> Store {
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> EventLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated (see `record`), so
        // a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks, journals durably, then applies `event` for `job` at `at`. Blocking (it waits for
    /// the commit): call it off the async executor.
    pub fn record(&self, job: JobId, at: Timestamp, event: Event) -> Result<(), StoreError> {
        let entry = Entry::new(at, event);
        {
            let state = self.lock();
            if state.broken.contains_key(&job) {
                return Err(StoreError::Broken(job));
            }
            check(&state.fleet, job, &entry)?;
            let events = state.fleet.job(job).map_or(0, |j| j.event_count() as u64);
            if job != JobId::CONNECTOR
                && events >= self.limits.max
                && !EventLimits::closes_the_job(&entry.event)
            {
                return Err(StoreError::EventLimit {
                    job,
                    events,
                    limit: self.limits.max,
                });
            }
        }
        let payload =
            encode_payload(&entry.event).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.journal
            .append_durable(job.0, JournalTime(at.0), PAYLOAD_FORMAT, &payload)?;
        // Appends of one job are made by one task at a time, so the check above still holds.
        let mut state = self.lock();
        state.fleet.apply(job, &entry)?;
        let events = state.fleet.job(job).map_or(0, |j| j.event_count() as u64);
        if job != JobId::CONNECTOR && events == self.limits.warn {
            tracing::warn!(
                job = %job,
                events,
                hard_limit = self.limits.max,
                "job has reached the soft limit of {} events ([retention] warn_events_per_job); at {} only events that close it are taken",
                self.limits.warn,
                self.limits.max
            );
        }
        Ok(())
    }

    /// A snapshot of one job.
    pub fn job(&self, id: JobId) -> Option<Job> {
        self.lock().fleet.job(id).cloned()
    }

    /// The job holding portal command `command_id`, if any.
    pub fn job_for_command(&self, command_id: &str) -> Option<JobId> {
        self.lock().fleet.job_for_command(command_id).map(Job::id)
    }

    /// The archived job (retention) that held portal command `command_id`, if any.
    pub fn archived_for_command(&self, command_id: &str) -> Option<JobId> {
        self.lock()
            .fleet
            .archived_for_command(command_id)
            .map(|a| a.job)
    }

    /// Ids of every job with work left.
    pub fn unfinished(&self) -> Vec<JobId> {
        self.lock().fleet.unfinished().map(Job::id).collect()
    }

    /// A snapshot of the whole fleet (for reports and metrics).
    pub fn fleet(&self) -> Fleet {
        self.lock().fleet.clone()
    }

    /// Jobs that could not be decoded, with why.
    pub fn broken(&self) -> Vec<(JobId, String)> {
        self.lock()
            .broken
            .iter()
            .map(|(j, e)| (*j, e.clone()))
            .collect()
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The journaled entries of `job`, in order, up to its first record that cannot be decoded
    /// (the reason is in [`Store::broken`]). Empty for a job the journal does not hold.
    pub fn entries(&self, job: JobId) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        for record in self.journal.iter_job(job.0) {
            match decode(&record?) {
                Ok(entry) => entries.push(entry),
                Err(_) => break,
            }
        }
        Ok(entries)
    }
}

/// A record's entry, or why it cannot be read (another payload format, undecodable bytes).
fn decode(record: &journal::Record) -> Result<Entry, String> {
    if record.payload_format() != PAYLOAD_FORMAT {
        return Err(format!(
            "record {} has payload format {}, this connector reads {PAYLOAD_FORMAT}",
            record.seq(),
            record.payload_format()
        ));
    }
    decode_payload::<Event>(record.payload())
        .map(|event| Entry::new(Timestamp(record.timestamp().0), event))
        .map_err(|e| format!("record {} cannot be decoded: {e}", record.seq()))
}

/// Whether `entry` applies to `job` as the fleet stands.
fn check(fleet: &Fleet, job: JobId, entry: &Entry) -> Result<(), FoldError> {
    let mut probe = Fleet::new();
    match fleet.job(job) {
        None if job == JobId::CONNECTOR => Ok(()),
        None => probe.apply(job, entry),
        Some(existing) => {
            let mut copy = existing.clone();
            copy.apply(entry).map_err(|source| FoldError {
                job,
                position: existing.event_count() + 1,
                event: entry.event.name(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::testkit::canned;

    fn open(dir: &Path) -> Store {
        Store::open(dir, Options::new()).expect("opens")
    }

    #[test]
    fn events_survive_a_reopen_and_fold_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = canned::push_killed_in_step();
        let store = open(dir.path());
        for entry in &history.entries {
            store
                .record(history.job, entry.at, entry.event.clone())
                .expect("records");
        }
        store
            .record(JobId::CONNECTOR, history.now, Event::ConnectorStopped)
            .expect("connector event");
        let before = store.job(history.job).expect("job");
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.job(history.job), Some(before.clone()));
        assert_eq!(before, history.fold().expect("folds"));
        assert_eq!(store.unfinished(), vec![history.job]);
        assert_eq!(store.job_for_command("cmd-push-killed"), Some(history.job));
        assert_eq!(
            store.entries(history.job).expect("entries"),
            history.entries
        );
        assert!(
            store
                .entries(JobId(uuid::Uuid::from_u128(99)))
                .expect("none")
                .is_empty()
        );
        assert_eq!(
            store.journal().verify().expect("verifies").records,
            history.entries.len() as u64 + 1
        );
    }

    #[test]
    fn a_refused_event_is_never_journaled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = canned::push_killed_in_step();
        let store = open(dir.path());
        for entry in &history.entries {
            store
                .record(history.job, entry.at, entry.event.clone())
                .expect("records");
        }
        let head = store.journal().head().seq;
        let wrong = Event::StepStarted {
            step: 6,
            attempt: 1,
        };
        assert!(matches!(
            store.record(history.job, history.now, wrong),
            Err(StoreError::Refused(_))
        ));
        assert_eq!(store.journal().head().seq, head);
        // An event for a job that was never received is refused too.
        let stray = JobId(uuid::Uuid::from_u128(77));
        assert!(store.record(stray, history.now, Event::Acked).is_err());
    }

    #[test]
    fn at_the_hard_limit_only_closing_events_are_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = canned::push_waiting_for_distribution();
        let store = open(dir.path()).with_limits(EventLimits { warn: 3, max: 5 });
        let mut refused = None;
        for entry in &history.entries {
            match store.record(history.job, entry.at, entry.event.clone()) {
                Ok(()) => {}
                Err(e) => {
                    refused = Some((entry.event.clone(), e));
                    break;
                }
            }
        }
        let (event, error) = refused.expect("the history is longer than the limit");
        assert!(!EventLimits::closes_the_job(&event), "{event:?}");
        assert!(
            matches!(error, StoreError::EventLimit { events, limit: 5, .. } if events >= 5),
            "{error}"
        );
        assert!(error.to_string().contains("max_events_per_job"));
        // The journal holds exactly what was taken: the limit, plus a closing event.
        let taken = store.job(history.job).expect("job").event_count() as u64;
        assert!((5..=6).contains(&taken), "{taken}");
        assert_eq!(store.journal().head().seq, taken);
    }

    #[test]
    fn an_undecodable_record_breaks_only_its_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = canned::push_killed_in_step();
        {
            let store = open(dir.path());
            for entry in &good.entries {
                store
                    .record(good.job, entry.at, entry.event.clone())
                    .expect("records");
            }
            // A record written by a future connector with another payload format.
            store
                .journal()
                .append_durable(uuid::Uuid::from_u128(5), JournalTime(0), 9, b"future")
                .expect("appends");
        }
        let store = open(dir.path());
        assert_eq!(store.unfinished(), vec![good.job]);
        let broken = store.broken();
        assert_eq!(broken.len(), 1);
        assert!(broken[0].1.contains("payload format 9"), "{}", broken[0].1);
        assert!(matches!(
            store.record(broken[0].0, good.now, Event::Acked),
            Err(StoreError::Broken(_))
        ));
    }
}

#[cfg(test)]
mod compatibility {
    use journal::{decode_payload, encode_payload};
    use replay::{Event, ResultStatus};

    /// Events are encoded by variant index: payloads written before `ReportDeferred` was
    /// appended (bytes as the earlier build wrote them) decode to the same events, and those
    /// events still encode to the same bytes.
    #[test]
    fn payloads_of_earlier_builds_still_decode() {
        let old: [(&[u8], Event); 3] = [
            (
                &[15, 2, 1, 1, b'x'],
                Event::ReportFailed {
                    attempt: 2,
                    retryable: true,
                    error: "x".into(),
                },
            ),
            (&[16], Event::ReportAcknowledged),
            (
                &[17, 0, 1],
                Event::JobFinished {
                    status: ResultStatus::Ok,
                    delivered: true,
                },
            ),
        ];
        for (bytes, event) in old {
            assert_eq!(decode_payload::<Event>(bytes).expect("decodes"), event);
            assert_eq!(encode_payload(&event).expect("encodes"), bytes);
        }
        let deferred = Event::ReportDeferred {
            attempt: 1,
            error: String::new(),
            retry_after_ms: Some(5),
            jitter_ms: 3,
        };
        let bytes = encode_payload(&deferred).expect("encodes");
        assert_eq!(bytes[0], 19, "appended after JobsArchived");
        assert_eq!(decode_payload::<Event>(&bytes).expect("decodes"), deferred);
    }
}
