//! What can go wrong while folding a journal into job state.
//!
//! Two different things, kept apart on purpose:
//! - an **invalid transition**: the event is not one the job's stage accepts at all (a result
//!   before the job concluded, anything after `JobFinished`). The journal was written by code that
//!   broke the protocol: a bug.
//! - a **divergence**: the event is of an acceptable kind, but it disagrees with what the machine
//!   decided (it starts step 4 while step 3 is unfinished, reports attempt 2 of an attempt-3 step,
//!   a result with another status than the conclusion). The journal and this machine disagree,
//!   typically because a different version of the machine wrote it. Resuming such a job would act
//!   on guesses, so it is stopped and shown to an admin instead.

use crate::ids::JobId;
use thiserror::Error;

/// Why an event cannot be applied to a job.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplayError {
    #[error("invalid transition: {event} is not accepted in stage {stage}")]
    InvalidTransition { stage: String, event: &'static str },
    #[error("divergence at {event}: {detail}")]
    Divergence { event: &'static str, detail: String },
}

impl ReplayError {
    pub(crate) fn divergence(event: &'static str, detail: impl Into<String>) -> ReplayError {
        ReplayError::Divergence {
            event,
            detail: detail.into(),
        }
    }

    /// Whether this is a divergence (as opposed to an invalid transition).
    pub fn is_divergence(&self) -> bool {
        matches!(self, ReplayError::Divergence { .. })
    }
}

/// A [`ReplayError`] located in a journal: which job, which of its events.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("job {job}, event #{position} ({event}): {source}")]
pub struct FoldError {
    pub job: JobId,
    /// 1-based position of the offending event in the job's history.
    pub position: usize,
    pub event: &'static str,
    pub source: ReplayError,
}
