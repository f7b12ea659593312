//! The per-kind machines: which stage follows which, for each kind of job.
//!
//! A job's life is a sequence of **stages**; what moves it from one to the next is a **signal**
//! derived from the journaled events (most events only update the bookkeeping of the current
//! stage: a step's attempts, a transfer's offset, the report's attempts). Each job kind has its
//! own transition table, in its own file with the table at the top and a `match` that mirrors
//! it row by row: [`push`] and [`import`]. A command whose kind could not be read
//! ([`JobKind::Unrecognized`]) has the smallest table of all, [`unrecognized_transition`].
//!
//! The rows shared by every kind (result, report, finish) live in [`settle_transition`].

pub(crate) mod import;
pub(crate) mod push;

use crate::action::Conclusion;
use crate::error::ReplayError;
use crate::event::{JobKind, ResultStatus};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// The command is journaled; it must be validated and planned (or rejected).
    Received,
    /// Phase `phase` needs planning from the outputs of the earlier phases.
    AwaitingPlan { phase: u16 },
    /// The steps of phase `phase` are being performed, one after another.
    Running { phase: u16 },
    /// The job is over; its result must be composed.
    Concluding(Conclusion),
    /// The result is journaled and must be delivered.
    Reporting { status: ResultStatus },
    /// Delivery is settled (acknowledged, or refused for good); the job must be closed.
    Closing {
        status: ResultStatus,
        delivered: bool,
    },
    /// Nothing left to do.
    Finished {
        status: ResultStatus,
        delivered: bool,
    },
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Received => write!(f, "Received"),
            Stage::AwaitingPlan { phase } => write!(f, "AwaitingPlan(phase {phase})"),
            Stage::Running { phase } => write!(f, "Running(phase {phase})"),
            Stage::Concluding(c) => write!(f, "Concluding({})", c.status().as_str()),
            Stage::Reporting { status } => write!(f, "Reporting({})", status.as_str()),
            Stage::Closing { status, .. } => write!(f, "Closing({})", status.as_str()),
            Stage::Finished { status, .. } => write!(f, "Finished({})", status.as_str()),
        }
    }
}

/// Job-level happenings that move a job between stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `CommandRejected`.
    Rejected { reason: String },
    /// `Planned { phase }`.
    Planned { phase: u16 },
    /// The last unsettled step of `phase` settled (or the phase was planned empty).
    PhaseDone { phase: u16 },
    /// A required step failed for good.
    StepGaveUp(Conclusion),
    /// `ResultReady`; `reportable` is false when the command had no id to report against.
    ResultReady {
        status: ResultStatus,
        reportable: bool,
    },
    /// `ReportAcknowledged`, or a `ReportFailed` that may not be retried.
    ReportSettled { delivered: bool },
    /// `JobFinished`.
    Finished {
        status: ResultStatus,
        delivered: bool,
    },
}

impl Signal {
    pub(crate) fn event_name(&self) -> &'static str {
        match self {
            Signal::Rejected { .. } => "CommandRejected",
            Signal::Planned { .. } => "Planned",
            Signal::PhaseDone { .. } => "StepSucceeded/StepFailed",
            Signal::StepGaveUp(_) => "StepFailed",
            Signal::ResultReady { .. } => "ResultReady",
            Signal::ReportSettled { .. } => "ReportAcknowledged/ReportFailed",
            Signal::Finished { .. } => "JobFinished",
        }
    }
}

/// The next stage of a job of `kind` in `stage` on `signal`.
pub(crate) fn transition(
    kind: JobKind,
    stage: &Stage,
    signal: Signal,
) -> Result<Stage, ReplayError> {
    match kind {
        JobKind::Push => push::transition(stage, signal),
        JobKind::Import => import::transition(stage, signal),
        JobKind::Unrecognized => unrecognized_transition(stage, signal),
    }
}

/// The number of phases a job of `kind` has.
pub(crate) fn phase_count(kind: JobKind) -> u16 {
    match kind {
        JobKind::Push => push::PHASES,
        JobKind::Import => import::PHASES,
        JobKind::Unrecognized => 0,
    }
}

/// A command whose kind could not be read.
///
/// | stage      | signal     | next stage                     |
/// |------------|------------|--------------------------------|
/// | Received   | Rejected   | Concluding(Rejected)           |
/// | (settling) | …          | as in [`settle_transition`]    |
pub(crate) fn unrecognized_transition(stage: &Stage, signal: Signal) -> Result<Stage, ReplayError> {
    match (stage, signal) {
        (Stage::Received, Signal::Rejected { reason }) => {
            Ok(Stage::Concluding(Conclusion::Rejected { reason }))
        }
        (stage, signal) => settle_transition(stage, signal),
    }
}

/// The rows every kind shares once a job has concluded.
///
/// | stage            | signal                        | next stage                    |
/// |------------------|-------------------------------|-------------------------------|
/// | Concluding(c)    | ResultReady(c.status, report) | Reporting(c.status)           |
/// | Concluding(c)    | ResultReady(c.status, no id)  | Closing(c.status, undelivered)|
/// | Concluding(c)    | ResultReady(other status)     | **divergence**                |
/// | Reporting(s)     | ReportSettled(delivered)      | Closing(s, delivered)         |
/// | Closing(s, d)    | Finished(s, d)                | Finished(s, d)                |
/// | Closing(s, d)    | Finished(other)               | **divergence**                |
/// | anything else    |                               | **invalid transition**        |
pub(crate) fn settle_transition(stage: &Stage, signal: Signal) -> Result<Stage, ReplayError> {
    match (stage, signal) {
        (Stage::Concluding(c), Signal::ResultReady { status, reportable }) => {
            if c.status() != status {
                return Err(ReplayError::divergence(
                    "ResultReady",
                    format!(
                        "the result says {} but the job concluded {}",
                        status.as_str(),
                        c.status().as_str()
                    ),
                ));
            }
            if reportable {
                Ok(Stage::Reporting { status })
            } else {
                Ok(Stage::Closing {
                    status,
                    delivered: false,
                })
            }
        }
        (Stage::Reporting { status }, Signal::ReportSettled { delivered }) => Ok(Stage::Closing {
            status: *status,
            delivered,
        }),
        (
            Stage::Closing { status, delivered },
            Signal::Finished {
                status: s,
                delivered: d,
            },
        ) => {
            if (*status, *delivered) != (s, d) {
                return Err(ReplayError::divergence(
                    "JobFinished",
                    format!(
                        "finished as {} (delivered: {d}) but the job settled as {} (delivered: {delivered})",
                        s.as_str(),
                        status.as_str()
                    ),
                ));
            }
            Ok(Stage::Finished {
                status: s,
                delivered: d,
            })
        }
        (stage, signal) => Err(ReplayError::InvalidTransition {
            stage: stage.to_string(),
            event: signal.event_name(),
        }),
    }
}

/// `Planned { phase }` when the stage expects another phase is a divergence, not an invalid
/// transition: planning is allowed here, just not this phase.
pub(crate) fn wrong_phase(expected: u16, got: u16) -> ReplayError {
    ReplayError::divergence(
        "Planned",
        format!("planned phase {got} but the job is waiting for phase {expected}"),
    )
}
