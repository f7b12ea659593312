//! `sccm-connector run`: the long-running connector.
//!
//! On start: open the journal and fold it, journal `ConnectorStarted`, resume every unfinished job
//! (re-sending unacknowledged results included), then poll the portal. Each new command is
//! journaled (`CommandReceived`, its exact bytes) before anything else happens to it; a command
//! already in the journal — delivered again — is only acknowledged again, never run twice. At
//! most `engine.concurrency` jobs run at once.
//!
//! Shutdown (the future passed in resolves: Ctrl-C, SIGTERM, a service stop): stop polling, let
//! running steps finish or time out, journal `ConnectorStopped`, and return; everything left is
//! resumed by the next start.

use crate::command::{MAX_COMMAND_BYTES, peek};
use crate::config::Config;
use crate::engine::driver::{DriveError, Services, drive, now};
use crate::engine::planner::PlanContext;
use crate::engine::spool;
use crate::engine::store::{Store, StoreError};
use crate::portal::client::PortalClient;
use replay::{Event, JobId};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the journal cannot be used: {0}")]
    Store(#[from] StoreError),
    #[error("the portal client cannot be set up: {0}")]
    Portal(String),
    #[error("the metrics endpoint cannot start: {0}")]
    Metrics(String),
    #[error("a job failed in a way that needs an operator: {0}")]
    Job(#[from] DriveError),
}

/// Runs the connector until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    run_observed(config, shutdown, crate::metrics::Metrics::new()).await
}

/// [`run`], feeding `metrics` (and serving them when `[metrics]` is configured).
pub async fn run_observed(
    config: Config,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(), DaemonError> {
    let options = journal::Options::new().cache_capacity(config.journal_cache_bytes);
    let dir = config.journal_dir.clone();
    let limits = config.event_limits;
    let store = tokio::task::spawn_blocking(move || {
        Store::open(&dir, options).map(|s| s.with_limits(limits))
    })
    .await
    .map_err(|e| DaemonError::Portal(format!("the journal task failed: {e}")))??;
    let broken = store.broken();
    for (job, why) in &broken {
        tracing::error!(%job, "job left alone: {why}");
    }
    let swept = spool::sweep(
        &config.spool_dir,
        config.powershell.scratch_dir.as_deref(),
        |job| {
            broken.iter().any(|(b, _)| *b == job)
                || store.job(job).is_some_and(|j| !j.is_finished())
        },
    );
    if !swept.job_dirs.is_empty() || !swept.script_dirs.is_empty() {
        tracing::info!(
            job_folders = swept.job_dirs.len(),
            script_folders = swept.script_dirs.len(),
            "removed what finished jobs and interrupted steps left in the spool"
        );
    }
    for (path, why) in &swept.failures {
        tracing::warn!(path = %path.display(), "cannot remove a spool leftover: {why}");
    }
    let portal =
        PortalClient::new(&config.portal).map_err(|e| DaemonError::Portal(e.to_string()))?;
    let plan = PlanContext {
        access: config.access.clone(),
        shares: config.shares.clone(),
        spool_dir: config.spool_dir.clone(),
        limits: config.limits,
        policy: config.policy,
        distribution: config.distribution,
    };
    let concurrency = config.concurrency;
    let endpoint = match config.metrics {
        Some(address) => Some(
            crate::metrics::serve(address, store.clone(), Arc::clone(&metrics))
                .await
                .map_err(|e| DaemonError::Metrics(e.to_string()))?,
        ),
        None => None,
    };
    let services = Arc::new(Services {
        store: store.clone(),
        portal,
        config,
        plan,
    });
    record(
        &store,
        JobId::CONNECTOR,
        Event::ConnectorStarted {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    )
    .await?;
    tracing::info!(
        portal = %services.config.portal.base_url,
        remote_id = %services.portal.remote_id_hint(),
        unfinished = store.unfinished().len(),
        "connector started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(concurrency));
    let running: Arc<Mutex<BTreeSet<JobId>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<Result<(), DriveError>>, id: JobId| {
        {
            let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(id) {
                return;
            }
        }
        let (services, slots, running, stop) = (
            Arc::clone(&services),
            Arc::clone(&slots),
            Arc::clone(&running),
            stop_rx.clone(),
        );
        tasks.spawn(async move {
            // The driver holds a slot only while its job acts (not while it waits).
            let outcome = drive(services, id, slots, stop).await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Err(e) = &outcome {
                tracing::error!(job = %id, "job driver stopped: {e}");
            }
            outcome
        });
    };
    for id in store.unfinished() {
        spawn(&mut tasks, id);
    }
    let retention = tokio::spawn(retention_loop(
        store.clone(),
        services.config.retention.clone(),
        services.config.audit.signing_key.clone(),
        services.config.journal_dir.display().to_string(),
        stop_rx.clone(),
    ));

    tokio::pin!(shutdown);
    let mut fatal = None;
    'polling: loop {
        // Every wait on the portal races the stop signal: a portal that accepts and never
        // answers must not hold a stop for its read timeouts and retries.
        let poll = tokio::select! {
            _ = &mut shutdown => break 'polling,
            poll = services.portal.poll() => poll,
        };
        metrics.poll_done(poll.is_ok(), now());
        match &poll {
            Ok(answer) => {
                for raw in &answer.commands {
                    let bytes = raw.get().as_bytes().to_vec();
                    // Journaling is not raced: a command is journaled whole or not at all.
                    match receive(&services, bytes).await {
                        Ok(Received::New(id)) => spawn(&mut tasks, id),
                        Ok(Received::Held) => {}
                        Ok(Received::AckAgain(command_id)) => {
                            tokio::select! {
                                _ = &mut shutdown => break 'polling,
                                acked = services.portal.ack(&command_id) => {
                                    if let Err(e) = acked {
                                        tracing::warn!("re-acknowledging command {command_id} failed: {e}");
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("polling the portal failed: {e}"),
        }
        if fatal.is_some() {
            break;
        }
        // Restart drivers of jobs that still have work (a driver stops after an error).
        for id in store.unfinished() {
            spawn(&mut tasks, id);
        }
        while let Some(done) = tasks.try_join_next() {
            // A journal failure is fatal (the journal poisons itself), except one record too
            // large: that job's driver stopped; its interrupted step is retried and abandoned
            // within the plan's budget while every other job goes on.
            match done {
                Ok(Err(DriveError::Store(StoreError::Journal(
                    journal::JournalError::PayloadTooLarge { .. },
                )))) => {}
                Ok(Err(DriveError::Store(StoreError::Journal(e)))) => {
                    fatal = Some(DaemonError::Store(StoreError::Journal(e)));
                }
                _ => {}
            }
        }
        if fatal.is_some() {
            break;
        }
        let delay = services.portal.next_poll_delay(&poll);
        metrics.next_poll(now(), delay);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!("stopping: letting running steps finish");
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // A sweep in progress finishes (its steps are ordered for crashes, not for cancellation).
    let _ = retention.await;
    record(&store, JobId::CONNECTOR, Event::ConnectorStopped).await?;
    let journal_dir = services.config.journal_dir.display().to_string();
    drop(services);
    tracing::info!(journal = %journal_dir, "connector stopped");
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Sweeps at start-up and then every `sweep_every` until `stop` turns true: finished jobs past
/// `keep_finished` are archived (JSON Lines audit export, signed with the `[audit]` key when one
/// is configured) and pruned. A failed sweep is logged and retried at the next interval; nothing
/// is pruned unless its archive was written.
async fn retention_loop(
    store: Store,
    policy: crate::engine::retention::Retention,
    signing_key: Option<std::path::PathBuf>,
    journal_shown: String,
    mut stop: watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_millis(policy.sweep_every_ms);
    loop {
        if *stop.borrow() {
            return;
        }
        let (store, policy, key, source) = (
            store.clone(),
            policy.clone(),
            signing_key.clone(),
            journal_shown.clone(),
        );
        let swept = tokio::task::spawn_blocking(move || {
            let signer = match &key {
                Some(path) => Some(
                    crate::audit::sign::read_signing_key(path)
                        .map_err(|e| format!("the [audit] signing key cannot be read: {e}"))?,
                ),
                None => None,
            };
            let now = now();
            let meta = crate::audit::export::ExportMeta {
                source,
                exported_at_ms: Some(now.0),
            };
            let journal = store.journal();
            crate::engine::retention::sweep(&store, now, &policy, |path, jobs| {
                let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.0).collect();
                crate::audit::export::archive_jobs(journal, &ids, path, &meta, signer.as_ref())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())
        })
        .await;
        match swept {
            Ok(Ok(report)) => {
                if let Some(archive) = &report.archive {
                    tracing::info!(
                        archive = %archive.display(),
                        jobs = report.archived.len(),
                        pruned_records = report.pruned_records,
                        "finished jobs archived and pruned from the journal"
                    );
                } else if report.pruned_records > 0 {
                    tracing::info!(
                        pruned_records = report.pruned_records,
                        "an interrupted retention sweep was finished"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!("retention sweep failed (retried later): {e}"),
            Err(e) => tracing::warn!("retention sweep task failed (retried later): {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn record(store: &Store, job: JobId, event: Event) -> Result<(), StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.record(job, now(), event))
        .await
        .unwrap_or_else(|e| Err(StoreError::Encode(format!("the journal task failed: {e}"))))
}

/// What became of a delivered command.
enum Received {
    /// Journaled as a new job.
    New(JobId),
    /// Already held, not acknowledged yet (its driver acknowledges it).
    Held,
    /// Already held (or archived) and acknowledged: the portal did not see the acknowledgement,
    /// so the caller acknowledges it again (raced against the stop signal).
    AckAgain(String),
}

/// Journals a delivered command; returns the new job, or what to do about a command already
/// held (the portal re-delivers until it sees the acknowledgement).
async fn receive(services: &Services, raw: Vec<u8>) -> Result<Received, DaemonError> {
    let peeked = peek(&raw);
    let existing = peeked
        .command_id
        .as_deref()
        .and_then(|c| services.store.job_for_command(c).map(|job| (c, job)));
    if let Some((command_id, job)) = existing {
        let acked = services.store.job(job).is_some_and(|j| j.is_acked());
        return Ok(if acked {
            Received::AckAgain(command_id.to_string())
        } else {
            Received::Held
        });
    }
    // A command whose job retention archived long ago: it ran, it was acknowledged.
    let archived = peeked
        .command_id
        .as_deref()
        .and_then(|c| services.store.archived_for_command(c).map(|job| (c, job)));
    if let Some((command_id, job)) = archived {
        tracing::warn!(%job, "command {command_id} delivered again after its job was archived; acknowledging it, not running it");
        return Ok(Received::AckAgain(command_id.to_string()));
    }
    let id = JobId(uuid::Uuid::new_v4());
    tracing::info!(job = %id, command = peeked.command_id.as_deref().unwrap_or("(no id)"), kind = ?peeked.kind, "command received");
    // An oversized command is journaled as its first MAX_COMMAND_BYTES and rejected at once,
    // naming its real size (the planner would reject it too, but could only see the prefix).
    let oversized = (raw.len() > MAX_COMMAND_BYTES).then(|| {
        format!(
            "(command): is {} bytes; a command may have at most {MAX_COMMAND_BYTES} (only its first {MAX_COMMAND_BYTES} bytes are journaled)",
            raw.len()
        )
    });
    let mut raw = raw;
    raw.truncate(MAX_COMMAND_BYTES);
    record(
        &services.store,
        id,
        Event::CommandReceived {
            command_id: peeked.command_id,
            kind: peeked.kind,
            raw,
        },
    )
    .await?;
    if let Some(reason) = oversized {
        tracing::warn!(job = %id, "{reason}");
        record(&services.store, id, Event::CommandRejected { reason }).await?;
    }
    Ok(Received::New(id))
}
