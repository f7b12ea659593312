//! The event vocabulary: everything that can happen in a job's life, as it is journaled.
//!
//! Events are facts, written before the next thing happens. Intent comes before effect: a step is
//! journaled as `StepStarted` before its process is spawned, a report as `ReportSent` before the
//! request leaves. On replay an intent without an outcome therefore means "interrupted", never
//! "did not happen".

use crate::ids::{JobId, Timestamp};
use crate::plan::{Backoff, RetryPolicy, Step, StepIndex};
use serde::{Deserialize, Serialize};

/// An event with the time the engine observed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    pub event: Event,
}

impl Entry {
    pub fn new(at: Timestamp, event: Event) -> Entry {
        Entry { at, event }
    }
}

/// What kind of command started a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Create and deploy an application from a package.
    Push,
    /// Read applications and their sources out of the site.
    Import,
    /// A command whose kind could not be read; it can only be rejected.
    Unrecognized,
}

/// How a job ended, as reported to the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultStatus {
    Ok,
    Failed,
    Rejected,
}

impl ResultStatus {
    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Ok => "ok",
            ResultStatus::Failed => "failed",
            ResultStatus::Rejected => "rejected",
        }
    }
}

/// Everything that can happen to a job (and to the connector itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The connector process started (journaled under `JobId::CONNECTOR`).
    ConnectorStarted { version: String },
    /// The connector shut down cleanly (journaled under `JobId::CONNECTOR`).
    ConnectorStopped,

    /// A command arrived. `raw` is the exact bytes received, kept for audit; `command_id` is
    /// `None` only when the bytes did not even carry a readable id.
    CommandReceived {
        command_id: Option<String>,
        kind: JobKind,
        raw: Vec<u8>,
    },
    /// The command is invalid; `reason` names the field and why.
    CommandRejected { reason: String },
    /// The portal confirmed our acknowledgement of the command.
    Acked,
    /// The steps of one phase, decided once. Step indices continue across phases.
    Planned {
        phase: u16,
        steps: Vec<Step>,
        policy: RetryPolicy,
    },

    /// Intent: attempt `attempt` of `step` is about to be performed.
    StepStarted { step: StepIndex, attempt: u32 },
    /// A transfer step's durable byte offset (bytes on disk, or committed by the portal).
    TransferProgress { step: StepIndex, offset: u64 },
    /// An upload step's archive was built: its size and SHA-256.
    ArchiveBuilt {
        step: StepIndex,
        size: u64,
        sha256: String,
    },
    /// An upload step obtained its upload id from the portal.
    UploadOpened { step: StepIndex, upload_id: String },
    /// A polling step ran but its condition does not hold yet; `output` is what it reported.
    StepIncomplete {
        step: StepIndex,
        attempt: u32,
        output: String,
    },
    /// The attempt succeeded; `output` is the step's result (JSON text for scripts).
    StepSucceeded {
        step: StepIndex,
        attempt: u32,
        output: String,
    },
    /// The attempt failed. A retryable failure may be retried under the plan's policy.
    StepFailed {
        step: StepIndex,
        attempt: u32,
        retryable: bool,
        error: String,
    },

    /// The job's one final result, composed and journaled before any attempt to send it.
    ResultReady {
        status: ResultStatus,
        idempotency_key: String,
        body: String,
        retry: Backoff,
    },
    /// Intent: attempt `attempt` to deliver the result is about to be sent.
    ReportSent { attempt: u32 },
    /// Delivery attempt `attempt` failed. `retryable: false` closes the job as undelivered (a
    /// `409`: another body under the key). Retryable failures are journaled as
    /// [`Event::ReportDeferred`] since it exists; `ReportFailed{retryable: true}` of older
    /// journals still folds (backoff only, no jitter, no `Retry-After`).
    ReportFailed {
        attempt: u32,
        retryable: bool,
        error: String,
    },
    /// The portal acknowledged the result.
    ReportAcknowledged,
    /// The job is over. `delivered` is false when the portal refused the result for good.
    JobFinished {
        status: ResultStatus,
        delivered: bool,
    },

    /// Retention: these finished jobs were exported to `archive` and their records are being
    /// pruned from the journal (journaled under `JobId::CONNECTOR`, before the prune). From here
    /// on they are no longer jobs of the fleet, but their command ids stay known, so a command
    /// delivered again still runs only once.
    JobsArchived {
        archive: String,
        jobs: Vec<ArchivedJob>,
    },

    /// Delivery attempt `attempt` failed transiently; the result is sent again (same key, same
    /// bytes) after [`Backoff::retry_delay_ms`]: the result's backoff for this failure, less
    /// `jitter_ms` (drawn by the engine; at most half the backoff counts), never sooner than
    /// the portal's `Retry-After` (`retry_after_ms`).
    ///
    /// Appended last: events are encoded by variant index, so adding a variant at the end keeps
    /// every older journal decodable.
    ReportDeferred {
        attempt: u32,
        error: String,
        retry_after_ms: Option<u64>,
        jitter_ms: u64,
    },
}

/// What the journal keeps of a job after retention archived and pruned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedJob {
    pub job: JobId,
    pub command_id: Option<String>,
    pub kind: JobKind,
    pub status: ResultStatus,
    pub received_at: Timestamp,
    pub finished_at: Timestamp,
    /// How many events the job had.
    pub events: u64,
}

impl Event {
    /// The event's name, for errors and timelines.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ConnectorStarted { .. } => "ConnectorStarted",
            Event::ConnectorStopped => "ConnectorStopped",
            Event::CommandReceived { .. } => "CommandReceived",
            Event::CommandRejected { .. } => "CommandRejected",
            Event::Acked => "Acked",
            Event::Planned { .. } => "Planned",
            Event::StepStarted { .. } => "StepStarted",
            Event::TransferProgress { .. } => "TransferProgress",
            Event::ArchiveBuilt { .. } => "ArchiveBuilt",
            Event::UploadOpened { .. } => "UploadOpened",
            Event::StepIncomplete { .. } => "StepIncomplete",
            Event::StepSucceeded { .. } => "StepSucceeded",
            Event::StepFailed { .. } => "StepFailed",
            Event::ResultReady { .. } => "ResultReady",
            Event::ReportSent { .. } => "ReportSent",
            Event::ReportFailed { .. } => "ReportFailed",
            Event::ReportDeferred { .. } => "ReportDeferred",
            Event::ReportAcknowledged => "ReportAcknowledged",
            Event::JobFinished { .. } => "JobFinished",
            Event::JobsArchived { .. } => "JobsArchived",
        }
    }
}
