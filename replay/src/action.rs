//! What the engine should do next, as decided by a machine.
//!
//! Actions name work; they never perform it. Each one tells the engine which event to journal
//! before acting (the intent) and which events may follow (the outcome).

use crate::event::ResultStatus;
use crate::ids::Timestamp;
use crate::plan::StepIndex;
use serde::{Deserialize, Serialize};

/// One thing to do now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Acknowledge the command to the portal, then journal `Acked`. Runs beside the main lane.
    Ack,
    /// Validate the command (phase 0) or read earlier outputs (later phases) and journal either
    /// `Planned { phase, .. }` or, in phase 0 only, `CommandRejected`.
    Plan { phase: u16 },
    /// Download step `step`, continuing at `from_offset` (re-hash the bytes before it).
    Download {
        step: StepIndex,
        attempt: u32,
        from_offset: u64,
    },
    /// Unpack step `step`; the engine recognises content already in place.
    Unpack { step: StepIndex, attempt: u32 },
    /// Run the script of step `step` (every script checks before it acts).
    RunScript { step: StepIndex, attempt: u32 },
    /// Upload step `step`: build the archive unless `archive` is known, open the upload unless
    /// `upload_id` is known, then send from `from_offset`.
    Upload {
        step: StepIndex,
        attempt: u32,
        from_offset: u64,
        archive: Option<ArchiveInfo>,
        upload_id: Option<String>,
    },
    /// Give up on step `step`, whose attempt `attempt` was interrupted too often: journal
    /// `StepFailed { retryable: false, error: reason }` for it.
    Abandon {
        step: StepIndex,
        attempt: u32,
        reason: String,
    },
    /// Nothing can happen before `until` (a retry or poll is scheduled); ask again then.
    WaitUntil { until: Timestamp },
    /// Compose the job's final result and journal `ResultReady` with this status.
    ComposeResult { conclusion: Conclusion },
    /// Send the journaled result (same idempotency key every time), after journaling
    /// `ReportSent { attempt }`.
    Report { attempt: u32 },
    /// Journal `JobFinished`.
    Finish {
        status: ResultStatus,
        delivered: bool,
    },
}

/// A built archive, as journaled by `ArchiveBuilt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    pub size: u64,
    pub sha256: String,
}

/// Why a job is over, before its result is composed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Conclusion {
    /// Every required step succeeded.
    Succeeded,
    /// A required step failed for good.
    Failed {
        step: StepIndex,
        step_name: String,
        attempts: u32,
        error: String,
    },
    /// The command was invalid.
    Rejected { reason: String },
}

impl Conclusion {
    /// The status the result will carry.
    pub fn status(&self) -> ResultStatus {
        match self {
            Conclusion::Succeeded => ResultStatus::Ok,
            Conclusion::Failed { .. } => ResultStatus::Failed,
            Conclusion::Rejected { .. } => ResultStatus::Rejected,
        }
    }

    /// The error text for the result, if any.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Conclusion::Succeeded => None,
            Conclusion::Failed {
                step_name,
                attempts,
                error,
                ..
            } => Some(format!(
                "step '{step_name}' failed after {attempts} attempt(s): {error}"
            )),
            Conclusion::Rejected { reason } => Some(reason.clone()),
        }
    }
}
