//! Retention: finished jobs older than the configured age are exported to an archive file, then
//! pruned from the journal.
//!
//! One sweep, in an order that a crash at any point cannot turn into loss or duplication:
//!
//! 1. **Finish an interrupted sweep**: jobs already journaled as archived whose records are
//!    still in the journal are pruned now (their archive was written before the event).
//! 2. **Select** finished jobs whose last event is older than `keep_finished` (at most
//!    [`MAX_JOBS_PER_SWEEP`]; the rest wait for the next sweep).
//! 3. **Archive**: the jobs' records, with their chain hashes, are written to
//!    `<archive_dir>/jobs-<time>.jsonl` through a temporary file, fsync'ed, renamed into place.
//!    A crash here leaves at most a `.tmp` file, removed by the next sweep.
//! 4. **Journal** `JobsArchived` under the connector's id: from now on the jobs are no longer in
//!    the fleet, and their command ids stay known so a re-delivered command runs only once.
//! 5. **Prune**: [`journal::Journal::prune_jobs`] replaces their records by hash-keeping stubs.
//!
//! Selection is a pure function of the fleet and `now` ([`due`]); writing the archive is the
//! caller's (the audit export), so this module knows nothing of the archive's format.

use super::store::{Store, StoreError};
use replay::{ArchivedJob, Event, Fleet, JobId, Stage, Timestamp};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Jobs archived by one sweep at most (bounds the archive file and the prune's batches).
pub const MAX_JOBS_PER_SWEEP: usize = 500;

/// Suffix of an archive being written.
const TMP_SUFFIX: &str = ".tmp";

/// How long finished jobs stay in the journal, and where they go then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs whose last event is older than this are archived; `None` keeps them.
    pub keep_finished_ms: Option<u64>,
    pub archive_dir: PathBuf,
    /// How often the daemon sweeps.
    pub sweep_every_ms: u64,
}

#[derive(Debug, Error)]
pub enum RetentionError {
    #[error("cannot write the archive {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot export jobs to the archive {path}: {reason}")]
    Export { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("pruning archived jobs from the journal failed: {0}")]
    Prune(#[from] journal::JournalError),
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs archived by this sweep.
    pub archived: Vec<ArchivedJob>,
    /// The archive file written, if any.
    pub archive: Option<PathBuf>,
    /// Journal records replaced by stubs (this sweep's jobs and an interrupted sweep's).
    pub pruned_records: u64,
}

/// The finished jobs due for archiving at `now`, oldest first, at most [`MAX_JOBS_PER_SWEEP`].
pub fn due(fleet: &Fleet, now: Timestamp, keep_finished_ms: u64) -> Vec<ArchivedJob> {
    let mut due: Vec<ArchivedJob> = fleet
        .jobs()
        .filter(|job| job.is_finished())
        .filter(|job| now.millis_since(job.last_event_at()) >= keep_finished_ms)
        .filter_map(|job| {
            let Stage::Finished { status, .. } = job.stage() else {
                return None;
            };
            Some(ArchivedJob {
                job: job.id(),
                command_id: job.command_id().map(str::to_string),
                kind: job.kind(),
                status: *status,
                received_at: job.received_at(),
                finished_at: job.last_event_at(),
                events: job.event_count() as u64,
            })
        })
        .collect();
    due.sort_by_key(|a| (a.finished_at, a.job));
    due.truncate(MAX_JOBS_PER_SWEEP);
    due
}

/// The archive file name for a sweep at `now`: `jobs-YYYYMMDDTHHMMSSmmmZ.jsonl` (sortable).
pub fn archive_name(now: Timestamp) -> String {
    let iso = now.to_string(); // 2020-01-31T09:12:00.123Z
    let compact: String = iso.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("jobs-{compact}.jsonl")
}

/// Runs one sweep at `now`. `export` writes the records of the given jobs to the file it is
/// given (a temporary path, renamed into place afterwards). Blocking.
pub fn sweep(
    store: &Store,
    now: Timestamp,
    policy: &Retention,
    export: impl FnOnce(&Path, &[JobId]) -> Result<(), String>,
) -> Result<SweepReport, RetentionError> {
    let mut report = SweepReport::default();
    remove_leftover_tmp_files(&policy.archive_dir);

    // 1. An interrupted sweep: archived (journaled) but not yet pruned.
    let fleet = store.fleet();
    let live: std::collections::BTreeSet<uuid::Uuid> =
        store.journal().jobs()?.into_iter().map(|j| j.job).collect();
    let unpruned: Vec<uuid::Uuid> = fleet
        .archived()
        .map(|(_, a)| a.job.0)
        .filter(|id| live.contains(id))
        .collect();
    if !unpruned.is_empty() {
        report.pruned_records += store.journal().prune_jobs(&unpruned)?.records;
    }

    // 2. Select.
    let Some(keep) = policy.keep_finished_ms else {
        return Ok(report);
    };
    let jobs = due(&fleet, now, keep);
    if jobs.is_empty() {
        return Ok(report);
    }

    // 3. Archive.
    let name = archive_name(now);
    let path = policy.archive_dir.join(&name);
    let shown = path.display().to_string();
    let write_error = |source| RetentionError::Write {
        path: shown.clone(),
        source,
    };
    std::fs::create_dir_all(&policy.archive_dir).map_err(write_error)?;
    let tmp = policy.archive_dir.join(format!("{name}{TMP_SUFFIX}"));
    let ids: Vec<JobId> = jobs.iter().map(|a| a.job).collect();
    export(&tmp, &ids).map_err(|reason| RetentionError::Export {
        path: shown.clone(),
        reason,
    })?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(write_error)?;
    std::fs::rename(&tmp, &path).map_err(write_error)?;
    sync_dir(&policy.archive_dir).map_err(write_error)?;
    tracing::debug!(event = "ArchiveWritten", archive = %path.display(), "retention step");

    // 4. Journal the archiving, 5. prune.
    store.record(
        JobId::CONNECTOR,
        now,
        Event::JobsArchived {
            archive: name,
            jobs: jobs.clone(),
        },
    )?;
    tracing::debug!(event = "JobsArchived", jobs = jobs.len(), "journaled");
    let ids: Vec<uuid::Uuid> = ids.iter().map(|j| j.0).collect();
    report.pruned_records += store.journal().prune_jobs(&ids)?.records;
    report.archived = jobs;
    report.archive = Some(path);
    Ok(report)
}

fn remove_leftover_tmp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("jobs-") && name.ends_with(TMP_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use journal::Options;
    use replay::testkit::canned;

    const DAY: u64 = 86_400_000;

    fn store_with(dir: &Path, histories: &[replay::testkit::History]) -> Store {
        let store = Store::open(dir, Options::new()).expect("opens");
        for history in histories {
            for entry in &history.entries {
                store
                    .record(history.job, entry.at, entry.event.clone())
                    .expect("records");
            }
        }
        store
    }

    fn policy(dir: &Path) -> Retention {
        Retention {
            keep_finished_ms: Some(30 * DAY),
            archive_dir: dir.join("archive"),
            sweep_every_ms: 3_600_000,
        }
    }

    /// A stand-in for the audit export: one line per record of each job.
    fn export_lines(store: &Store) -> impl FnOnce(&Path, &[JobId]) -> Result<(), String> + '_ {
        move |path, jobs| {
            let mut text = String::new();
            for job in jobs {
                for record in store.journal().iter_job(job.0) {
                    let record = record.map_err(|e| e.to_string())?;
                    text.push_str(&format!("{} {} {}\n", record.seq(), job, record.hash()));
                }
            }
            std::fs::write(path, text).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn only_finished_jobs_older_than_the_age_are_due() {
        let happy = canned::push_happy();
        let killed = canned::push_killed_in_step();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), &[happy.clone(), killed]);
        let finished_at = store.job(happy.job).expect("job").last_event_at();
        let fleet = store.fleet();
        assert!(due(&fleet, finished_at.plus_millis(29 * DAY), 30 * DAY).is_empty());
        let due = due(&fleet, finished_at.plus_millis(30 * DAY), 30 * DAY);
        assert_eq!(due.len(), 1, "the unfinished job is never due");
        assert_eq!(due[0].job, happy.job);
        assert_eq!(due[0].command_id.as_deref(), Some("cmd-push-happy"));
    }

    #[test]
    fn a_sweep_archives_journals_and_prunes_then_the_command_stays_known() {
        let happy = canned::push_happy();
        let killed = canned::push_killed_in_step();
        let dir = tempfile::tempdir().expect("tempdir");
        let journal_dir = dir.path().join("journal");
        let store = store_with(&journal_dir, &[happy.clone(), killed.clone()]);
        let head_before = store.journal().verify().expect("verifies");
        let now = store
            .job(happy.job)
            .expect("job")
            .last_event_at()
            .plus_millis(31 * DAY);
        let report = sweep(&store, now, &policy(dir.path()), export_lines(&store)).expect("sweeps");
        assert_eq!(report.archived.len(), 1);
        assert_eq!(report.pruned_records, happy.entries.len() as u64);
        let archive = report.archive.expect("an archive");
        let lines = std::fs::read_to_string(&archive).expect("archive written");
        assert_eq!(lines.lines().count(), happy.entries.len());
        assert!(store.job(happy.job).is_none());
        assert!(store.job_for_command("cmd-push-happy").is_none());
        let verified = store.journal().verify().expect("still verifies");
        assert_eq!(verified.records, head_before.records + 1);
        assert_eq!(verified.pruned, happy.entries.len() as u64);
        // Nothing left in the archive folder but the archive.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("archive"))
            .expect("archive dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![archive_name(now)]);
        drop(store);

        // Reopened: the same fleet, the archived command still known.
        let store = Store::open(&journal_dir, Options::new()).expect("reopens");
        assert!(store.job(happy.job).is_none());
        assert_eq!(
            store
                .fleet()
                .archived_for_command("cmd-push-happy")
                .map(|a| a.job),
            Some(happy.job)
        );
        assert_eq!(store.unfinished(), vec![killed.job]);
        // A second sweep has nothing to do.
        let again = sweep(&store, now, &policy(dir.path()), |_, _| {
            Err("nothing should be exported".into())
        })
        .expect("sweeps");
        assert_eq!(again, SweepReport::default());
    }

    #[test]
    fn a_sweep_interrupted_after_journaling_is_finished_by_the_next() {
        let happy = canned::push_happy();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(&dir.path().join("journal"), std::slice::from_ref(&happy));
        let job = store.job(happy.job).expect("job");
        let now = job.last_event_at().plus_millis(31 * DAY);
        // As if the process died right after step 4.
        let archived = due(&store.fleet(), now, 30 * DAY);
        store
            .record(
                JobId::CONNECTOR,
                now,
                Event::JobsArchived {
                    archive: archive_name(now),
                    jobs: archived,
                },
            )
            .expect("records");
        std::fs::create_dir_all(dir.path().join("archive")).expect("dir");
        std::fs::write(dir.path().join("archive/jobs-x.jsonl.tmp"), b"torn").expect("tmp");
        assert_eq!(store.journal().jobs().expect("jobs").len(), 2);
        let report = sweep(&store, now, &policy(dir.path()), |_, _| {
            Err("nothing is due".into())
        })
        .expect("sweeps");
        assert_eq!(report.pruned_records, happy.entries.len() as u64);
        assert!(report.archive.is_none());
        assert!(!dir.path().join("archive/jobs-x.jsonl.tmp").exists());
        assert_eq!(
            store.journal().verify().expect("verifies").pruned,
            happy.entries.len() as u64
        );
    }

    #[test]
    fn a_failed_export_journals_and_prunes_nothing() {
        let happy = canned::push_happy();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(&dir.path().join("journal"), std::slice::from_ref(&happy));
        let now = Timestamp(i64::MAX / 2);
        let head = store.journal().head();
        let error = sweep(&store, now, &policy(dir.path()), |_, _| {
            Err("disk full".into())
        })
        .expect_err("the export failed");
        assert!(error.to_string().contains("disk full"), "{error}");
        assert_eq!(store.journal().head(), head);
        assert!(store.job(happy.job).is_some());
    }
}
