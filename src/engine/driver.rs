//! Driving one job: ask the machine, journal the intent, act, journal the outcome, ask again.
//!
//! This is the one place where `replay`'s actions meet I/O. Every action follows the same
//! order — the intent (`StepStarted`, `ReportSent`, …) is committed before anything happens
//! outside, and the outcome is committed before the next question — so a crash at any instant
//! leaves a journal the machine can resume from. Blocking journal commits run off the async
//! executor. A job's PowerShell session lives as long as its driver.

use super::interpret::script_outcome;
use super::planner::{PhasePlan, PlanContext, plan};
use super::result::compose;
use super::store::{Store, StoreError};
use crate::config::Config;
use crate::package::pack::{PackOptions, pack};
use crate::package::unpack::{Unpacked, unpack};
use crate::portal::client::{PortalClient, ProgressTarget};
use crate::portal::download::Download;
use crate::portal::error::PortalError;
use crate::portal::outbox::idempotency_key;
use crate::portal::upload::Upload;
use crate::powershell::runner::Runner;
use crate::powershell::script::Script;
use replay::{Action, ArchiveInfo, Event, Job, JobId, StepIndex, StepKind, Timestamp};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// What drivers share.
#[derive(Debug)]
pub struct Services {
    pub store: Store,
    pub portal: PortalClient,
    pub config: Config,
    pub plan: PlanContext,
}

/// Why a driver stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the job vanished from the store")]
    Missing,
}

/// Now, as the journal records it.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// How long to leave the portal alone after a failed acknowledgement.
const ACK_RETRY: Duration = Duration::from_secs(30);

struct Driver {
    services: Arc<Services>,
    id: JobId,
    runner: Option<Runner>,
    ack_not_before: Instant,
    /// The daemon's job slots (`[engine] concurrency`).
    slots: Arc<Semaphore>,
    /// The slot this job holds while it acts; given back while it only waits.
    slot: Option<OwnedSemaphorePermit>,
    /// The daemon's stop signal, for racing short portal exchanges (acks, result deliveries).
    stopping: watch::Receiver<bool>,
}

/// Drives job `id` until it is finished or `stop` turns true (checked between actions; a running
/// step is let finish or time out). The job acts only while it holds one of `slots`; it gives
/// its slot back while it merely waits (a backoff, a distribution poll interval, a result's
/// redelivery delay) and takes one again when the wait is over, so waiting jobs never keep
/// runnable ones out.
pub async fn drive(
    services: Arc<Services>,
    id: JobId,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DriveError> {
    let mut driver = Driver {
        services,
        id,
        runner: None,
        ack_not_before: Instant::now(),
        slots,
        slot: None,
        stopping: stop.clone(),
    };
    let outcome = driver.run(&mut stop).await;
    if let Some(mut runner) = driver.runner.take() {
        runner.shutdown().await;
    }
    outcome
}

impl Driver {
    async fn record(&self, event: Event) -> Result<(), DriveError> {
        let (store, id) = (self.services.store.clone(), self.id);
        let name = event.name();
        tokio::task::spawn_blocking(move || store.record(id, now(), event))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Encode(format!(
                    "the journal task for {name} failed: {e}"
                )))
            })?;
        tracing::debug!(job = %self.id, event = %name, "journaled");
        Ok(())
    }

    /// Journals attempt `attempt` of `step` as failed.
    async fn fail(
        &self,
        step: StepIndex,
        attempt: u32,
        retryable: bool,
        error: String,
    ) -> Result<(), DriveError> {
        self.record(Event::StepFailed {
            step,
            attempt,
            retryable,
            error,
        })
        .await
    }

    /// Records from inside a transfer's progress callback (a synchronous context on the runtime).
    fn record_now(&self, event: Event) {
        let (store, id) = (self.services.store.clone(), self.id);
        let name = event.name();
        match tokio::task::block_in_place(|| store.record(id, now(), event)) {
            Ok(()) => tracing::debug!(job = %id, event = %name, "journaled"),
            Err(e) => tracing::warn!(job = %id, "journaling transfer progress failed: {e}"),
        }
    }

    fn job(&self) -> Result<Job, DriveError> {
        self.services.store.job(self.id).ok_or(DriveError::Missing)
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), DriveError> {
        loop {
            let job = self.job()?;
            let actions = job.next_actions(now());
            if actions.is_empty() {
                return Ok(());
            }
            // Stopping: nothing new is started, but a job whose result is settled is closed
            // (composing and finishing only journal), so a clean stop leaves no loose ends.
            let actions = if *stop.borrow() {
                let closing: Vec<Action> = actions
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Ack))
                    .collect();
                let only_closing = closing
                    .iter()
                    .all(|a| matches!(a, Action::ComposeResult { .. } | Action::Finish { .. }));
                if closing.is_empty() || !only_closing {
                    return Ok(());
                }
                closing
            } else {
                actions
            };
            let only_waits = actions
                .iter()
                .all(|a| matches!(a, Action::WaitUntil { .. }));
            if only_waits {
                self.slot = None;
            } else if self.slot.is_none() {
                if *stop.borrow() {
                    // Closing only journals; the other drivers are giving their slots back.
                    self.slot = Arc::clone(&self.slots).acquire_owned().await.ok();
                } else {
                    tokio::select! {
                        slot = Arc::clone(&self.slots).acquire_owned() => self.slot = slot.ok(),
                        // Stopping while queued for a slot: ask the machine again.
                        changed = stop.changed() => if changed.is_err() { return Ok(()); },
                    }
                }
                // Time passed while queued: ask again with the slot held.
                continue;
            }
            for action in actions {
                match action {
                    Action::Ack => self.ack(&job).await?,
                    Action::WaitUntil { until } => {
                        // Nothing to do until then: the slot goes to another job meanwhile.
                        self.slot = None;
                        let wait = Duration::from_millis(until.millis_since(now()).max(10));
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => return Ok(()),
                        }
                    }
                    other => self.perform(&job, other).await?,
                }
            }
        }
    }

    /// Resolves once the daemon is stopping (never, if its signal is gone without a stop).
    async fn stopped(&self) {
        let mut stop = self.stopping.clone();
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn ack(&mut self, job: &Job) -> Result<(), DriveError> {
        let Some(command_id) = job.command_id() else {
            return Ok(());
        };
        if Instant::now() < self.ack_not_before {
            return Ok(());
        }
        let acked = tokio::select! {
            acked = self.services.portal.ack(command_id) => acked,
            // Stopping: the acknowledgement is asked for again after the restart.
            () = self.stopped() => return Ok(()),
        };
        match acked {
            Ok(()) => self.record(Event::Acked).await,
            Err(e) => {
                tracing::warn!(job = %self.id, "acknowledging command {command_id} failed: {e}");
                self.ack_not_before = Instant::now() + ACK_RETRY;
                Ok(())
            }
        }
    }

    fn step(job: &Job, step: StepIndex) -> Result<(String, StepKind), DriveError> {
        let state = job.step(step).ok_or(DriveError::Missing)?;
        Ok((state.step.name.clone(), state.step.kind.clone()))
    }

    /// Where a transfer's best-effort progress posts go: the job's command, under the step's name.
    fn progress_target(job: &Job, step: String) -> Option<ProgressTarget> {
        job.command_id().map(|command_id| ProgressTarget {
            command_id: command_id.to_string(),
            step,
        })
    }

    fn spool(&self) -> PathBuf {
        super::spool::job_dir(&self.services.config.spool_dir, self.id)
    }

    /// A job at its hard event limit gives up the step it would run: `StepFailed` (after the
    /// intent, if the attempt was not started yet), not retryable, so the job fails naming the
    /// limit and its result is still composed and reported.
    async fn give_up_at_event_limit(
        &mut self,
        job: &Job,
        action: &Action,
    ) -> Result<bool, DriveError> {
        let limits = self.services.store.limits();
        let events = job.event_count() as u64;
        let (step, attempt) = match action {
            Action::Download { step, attempt, .. }
            | Action::Unpack { step, attempt }
            | Action::RunScript { step, attempt }
            | Action::Upload { step, attempt, .. } => (*step, *attempt),
            _ => return Ok(false),
        };
        if events < limits.max {
            return Ok(false);
        }
        let error = format!(
            "the job has journaled {events} events, the hard limit is {} ([retention] max_events_per_job); giving up so a runaway job cannot fill the disk",
            limits.max
        );
        tracing::error!(job = %self.id, step, "{error}");
        let running = matches!(
            job.step(step).map(|s| &s.status),
            Some(replay::StepStatus::Running { attempt: a }) if *a == attempt
        );
        if !running {
            self.record(Event::StepStarted { step, attempt }).await?;
        }
        self.fail(step, attempt, false, error).await?;
        Ok(true)
    }

    async fn perform(&mut self, job: &Job, action: Action) -> Result<(), DriveError> {
        if self.give_up_at_event_limit(job, &action).await? {
            return Ok(());
        }
        match action {
            Action::Plan { phase } => {
                let event = match plan(job, phase, &self.services.plan) {
                    PhasePlan::Steps(steps) => Event::Planned {
                        phase,
                        steps,
                        policy: self.services.plan.policy,
                    },
                    PhasePlan::Rejected(reason) if phase == 0 => Event::CommandRejected { reason },
                    // The same bytes validated in phase 0; only a changed configuration gets here.
                    PhasePlan::Rejected(reason) => {
                        tracing::warn!(job = %self.id, "phase {phase} cannot be planned: {reason}");
                        Event::Planned {
                            phase,
                            steps: Vec::new(),
                            policy: self.services.plan.policy,
                        }
                    }
                };
                self.record(event).await
            }
            Action::Download {
                step,
                attempt,
                from_offset,
            } => self.download(job, step, attempt, from_offset).await,
            Action::Unpack { step, attempt } => self.unpack(job, step, attempt).await,
            Action::RunScript { step, attempt } => self.run_script(job, step, attempt).await,
            Action::Upload {
                step,
                attempt,
                archive,
                upload_id,
                ..
            } => self.upload(job, step, attempt, archive, upload_id).await,
            Action::Abandon {
                step,
                attempt,
                reason,
            } => self.fail(step, attempt, false, reason).await,
            Action::ComposeResult { conclusion } => {
                let body = compose(job, &conclusion);
                let key = idempotency_key(job.command_id().unwrap_or(&self.id.to_string()));
                let retry = self.services.config.report_backoff;
                self.record(Event::ResultReady {
                    status: conclusion.status(),
                    idempotency_key: key,
                    body,
                    retry,
                })
                .await
            }
            Action::Report { attempt } => self.report(job, attempt).await,
            Action::Finish { status, delivered } => {
                self.record(Event::JobFinished { status, delivered })
                    .await?;
                let spool = self.spool();
                let _ = tokio::fs::remove_dir_all(&spool).await;
                Ok(())
            }
            Action::Ack | Action::WaitUntil { .. } => Ok(()),
        }
    }

    async fn download(
        &mut self,
        job: &Job,
        step: StepIndex,
        attempt: u32,
        from_offset: u64,
    ) -> Result<(), DriveError> {
        let (name, kind) = Self::step(job, step)?;
        let StepKind::Download {
            url,
            size,
            sha256,
            dest,
        } = kind
        else {
            return Err(DriveError::Missing);
        };
        self.record(Event::StepStarted { step, attempt }).await?;
        let dest = PathBuf::from(dest);
        if let Some(dir) = dest.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let mut request = Download::new(url, &dest, size, sha256).resume_from(from_offset);
        request.progress = Self::progress_target(job, name);
        let result = self
            .services
            .portal
            .download(&request, |offset| {
                self.record_now(Event::TransferProgress { step, offset })
            })
            .await;
        let event = match result {
            Ok(done) => Event::StepSucceeded {
                step,
                attempt,
                output: json!({"size": done.size, "sha256": done.sha256, "resumed_from": done.resumed_from}).to_string(),
            },
            Err(e) => {
                if matches!(e, PortalError::SizeMismatch { .. } | PortalError::Sha256Mismatch { .. }) {
                    // The bytes on disk are wrong: the next attempt starts over.
                    self.record(Event::TransferProgress { step, offset: 0 }).await?;
                }
                let retryable = e.is_retryable() || matches!(e, PortalError::SizeMismatch { .. } | PortalError::Sha256Mismatch { .. });
                Event::StepFailed { step, attempt, retryable, error: e.to_string() }
            }
        };
        self.record(event).await
    }

    async fn unpack(&mut self, job: &Job, step: StepIndex, attempt: u32) -> Result<(), DriveError> {
        let (_, kind) = Self::step(job, step)?;
        let StepKind::Unpack { archive, dest } = kind else {
            return Err(DriveError::Missing);
        };
        let sha256 = job
            .steps()
            .iter()
            .find_map(|s| match &s.step.kind {
                StepKind::Download {
                    dest: d, sha256, ..
                } if *d == archive => Some(sha256.clone()),
                _ => None,
            })
            .unwrap_or_default();
        self.record(Event::StepStarted { step, attempt }).await?;
        let limits = self.services.config.unpack;
        let result = tokio::task::spawn_blocking(move || {
            unpack(
                &PathBuf::from(&archive),
                &sha256,
                &PathBuf::from(&dest),
                &limits,
            )
        })
        .await;
        let event = match result {
            Ok(Ok(Unpacked::Written(m))) => Event::StepSucceeded {
                step,
                attempt,
                output: json!({"unpacked": true, "files": m.files.len()}).to_string(),
            },
            Ok(Ok(Unpacked::AlreadyInPlace(m))) => Event::StepSucceeded {
                step,
                attempt,
                output:
                    json!({"unpacked": false, "already_in_place": true, "files": m.files.len()})
                        .to_string(),
            },
            Ok(Err(e)) => {
                let retryable = matches!(e, crate::package::unpack::UnpackError::Io { .. });
                Event::StepFailed {
                    step,
                    attempt,
                    retryable,
                    error: e.to_string(),
                }
            }
            Err(e) => Event::StepFailed {
                step,
                attempt,
                retryable: true,
                error: format!("the unpack task failed: {e}"),
            },
        };
        self.record(event).await
    }

    async fn run_script(
        &mut self,
        job: &Job,
        step: StepIndex,
        attempt: u32,
    ) -> Result<(), DriveError> {
        let (name, kind) = Self::step(job, step)?;
        let StepKind::Script { script, poll } = kind else {
            return Err(DriveError::Missing);
        };
        self.record(Event::StepStarted { step, attempt }).await?;
        if self.runner.is_none() {
            match Runner::new(self.services.config.powershell.clone()) {
                Ok(runner) => self.runner = Some(runner),
                Err(e) => {
                    return self
                        .fail(step, attempt, e.is_retryable(), e.to_string())
                        .await;
                }
            }
        }
        let script = Script {
            step: name,
            inputs: Vec::new(),
            text: script,
        };
        let run = match self.runner.as_mut() {
            Some(runner) => runner.run(&script).await,
            None => return Err(DriveError::Missing),
        };
        self.record(script_outcome(step, attempt, poll.is_some(), run))
            .await
    }

    async fn upload(
        &mut self,
        job: &Job,
        step: StepIndex,
        attempt: u32,
        archive: Option<ArchiveInfo>,
        upload_id: Option<String>,
    ) -> Result<(), DriveError> {
        let (name, kind) = Self::step(job, step)?;
        let StepKind::Upload {
            application,
            source,
        } = kind
        else {
            return Err(DriveError::Missing);
        };
        let Some(command_id) = job.command_id().map(str::to_string) else {
            return Err(DriveError::Missing);
        };
        self.record(Event::StepStarted { step, attempt }).await?;
        let file = self.spool().join(format!("upload-{step}.zip"));
        let on_disk = tokio::fs::metadata(&file).await.ok().map(|m| m.len());
        let (archive, upload_id) = match archive {
            Some(info) if on_disk == Some(info.size) => (info, upload_id),
            // The spool is re-creatable: an archive gone from it (a cleaned spool, a new disk) is
            // packed again from the source folder and journaled, and the upload opened again.
            // The archive is deterministic for unchanged sources, so the same bytes resume where
            // the portal stopped; changed sources can only start over on an upload the portal
            // holds nothing of yet.
            Some(lost) => {
                tracing::warn!(job = %self.id, step, file = %file.display(), "the packed archive is gone from the spool; packing it again");
                let Some(packed) = self.pack_archive(step, attempt, &source, &file).await? else {
                    return Ok(());
                };
                if packed != lost
                    && let Some(id) = &upload_id
                {
                    match self.services.portal.upload_status(id).await {
                        Ok(status) if status.committed == 0 && !status.complete => {}
                        Ok(status) => {
                            let error = format!(
                                "the packed archive was gone from the spool and packing the source folder again gave other bytes ({} bytes, SHA-256 {}; the upload began with {} bytes, SHA-256 {}), but the portal already holds {} bytes of upload {id}: the source folder changed; send the import again",
                                packed.size,
                                packed.sha256,
                                lost.size,
                                lost.sha256,
                                status.committed
                            );
                            return self.fail(step, attempt, false, error).await;
                        }
                        Err(e) => {
                            return self
                                .fail(step, attempt, e.is_retryable(), e.to_string())
                                .await;
                        }
                    }
                }
                // A new upload: opened (and journaled) again below, resumed from what the
                // portal committed.
                (packed, None)
            }
            None => {
                let Some(packed) = self.pack_archive(step, attempt, &source, &file).await? else {
                    return Ok(());
                };
                (packed, upload_id)
            }
        };
        let upload_id = match upload_id {
            Some(id) => id,
            None => match self
                .services
                .portal
                .open_upload(&command_id, &application)
                .await
            {
                Ok(id) => {
                    self.record(Event::UploadOpened {
                        step,
                        upload_id: id.clone(),
                    })
                    .await?;
                    id
                }
                Err(e) => {
                    return self
                        .fail(step, attempt, e.is_retryable(), e.to_string())
                        .await;
                }
            },
        };
        let mut request = Upload::new(&upload_id, &file, archive.size, &archive.sha256);
        request.progress = Self::progress_target(job, name);
        let result = self
            .services
            .portal
            .upload(&request, |offset| {
                self.record_now(Event::TransferProgress { step, offset })
            })
            .await;
        let event = match result {
            Ok(_) => Event::StepSucceeded {
                step,
                attempt,
                output:
                    json!({"upload_id": upload_id, "size": archive.size, "sha256": archive.sha256})
                        .to_string(),
            },
            Err(e) => Event::StepFailed {
                step,
                attempt,
                retryable: e.is_retryable(),
                error: e.to_string(),
            },
        };
        self.record(event).await
    }

    /// Packs `source` into `file` and journals `ArchiveBuilt`; `None` once a failure to pack is
    /// journaled as the attempt's outcome.
    async fn pack_archive(
        &mut self,
        step: StepIndex,
        attempt: u32,
        source: &str,
        file: &std::path::Path,
    ) -> Result<Option<ArchiveInfo>, DriveError> {
        let _ = tokio::fs::create_dir_all(self.spool()).await;
        let (src, dst) = (PathBuf::from(source), file.to_path_buf());
        let failed =
            match tokio::task::spawn_blocking(move || pack(&src, &dst, &PackOptions::default()))
                .await
            {
                Ok(Ok(packed)) => {
                    self.record(Event::ArchiveBuilt {
                        step,
                        size: packed.size,
                        sha256: packed.sha256.clone(),
                    })
                    .await?;
                    return Ok(Some(ArchiveInfo {
                        size: packed.size,
                        sha256: packed.sha256,
                    }));
                }
                Ok(Err(e)) => Event::StepFailed {
                    step,
                    attempt,
                    retryable: matches!(e, crate::package::pack::PackError::Io { .. }),
                    error: e.to_string(),
                },
                Err(e) => Event::StepFailed {
                    step,
                    attempt,
                    retryable: true,
                    error: format!("the pack task failed: {e}"),
                },
            };
        self.record(failed).await?;
        Ok(None)
    }

    async fn report(&mut self, job: &Job, attempt: u32) -> Result<(), DriveError> {
        let (Some(result), Some(command_id)) =
            (job.result().cloned(), job.command_id().map(str::to_string))
        else {
            return Err(DriveError::Missing);
        };
        self.record(Event::ReportSent { attempt }).await?;
        let sent = tokio::select! {
            sent = self.services.portal.send_result(&command_id, &result.idempotency_key, &result.body) => sent,
            // Stopping: the delivery stays journaled as sent without an outcome, so the next
            // run sends it again at once (same key, same bytes).
            () = self.stopped() => return Ok(()),
        };
        let event = match sent {
            Ok(()) => Event::ReportAcknowledged,
            // A result is re-sent until the portal takes it: only a conflict (another body under
            // this key, which this connector never sends) is final.
            Err(e @ PortalError::Conflict { .. }) => {
                tracing::error!(job = %self.id, "the portal refused the result of {command_id} for good: {e}");
                Event::ReportFailed {
                    attempt,
                    retryable: false,
                    error: e.to_string(),
                }
            }
            // Everything else (transport errors, 5xx, 429, 401, other 4xx) is sent again: the
            // jitter is drawn here and journaled, Retry-After is journaled, `replay` sets the time.
            Err(e) => {
                let failures = job.report().failures.saturating_add(1);
                let backoff = result.retry.delay_ms(failures);
                let jitter_ms = fastrand::u64(0..=backoff / 2);
                let retry_after_ms = e
                    .retry_after()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let wait = result
                    .retry
                    .retry_delay_ms(failures, jitter_ms, retry_after_ms);
                tracing::warn!(job = %self.id, "result of {command_id} not delivered ({e}); again in {} s", wait / 1000);
                Event::ReportDeferred {
                    attempt,
                    error: e.to_string(),
                    retry_after_ms,
                    jitter_ms,
                }
            }
        };
        self.record(event).await
    }
}
