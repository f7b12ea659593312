//! The bookkeeping of one step: its attempts, outcomes, offsets and retry schedule.
//!
//! Shared by every kind of job. Recovery rules live here:
//! - an attempt journaled as started without an outcome was **interrupted** (the connector died);
//!   it is re-run as a new attempt, because every step checks before it acts;
//! - interrupted attempts are counted apart from failures (`RetryPolicy::max_interrupted`);
//! - a retryable failure waits `backoff(failures)` and retries until `max_attempts` failures;
//! - a polling step that is not done yet waits its interval and polls again until its timeout,
//!   measured from the step's first start, passes.

use crate::action::ArchiveInfo;
use crate::error::ReplayError;
use crate::ids::Timestamp;
use crate::plan::{RetryPolicy, Step, StepKind};
use serde::{Deserialize, Serialize};

/// One try at a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    pub started_at: Timestamp,
    /// When the outcome was journaled; `None` while running or when interrupted.
    pub ended_at: Option<Timestamp>,
    /// `None` while running (or until a later attempt shows it was interrupted).
    pub outcome: Option<AttemptOutcome>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Succeeded {
        output: String,
    },
    /// A polling step whose condition did not hold yet.
    Incomplete {
        output: String,
    },
    Failed {
        retryable: bool,
        error: String,
    },
    /// Started, never finished: a later attempt started without an outcome for this one.
    Interrupted,
}

/// Where a step stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    /// Never started.
    Pending,
    /// Attempt `attempt` was started and has no outcome yet.
    Running {
        attempt: u32,
    },
    /// The last attempt failed (or polled incomplete); the next may start at `after`.
    Waiting {
        after: Timestamp,
    },
    Succeeded,
    /// Failed for good.
    Failed {
        error: String,
    },
}

/// A step of the plan with everything that happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    pub step: Step,
    /// The phase that planned it.
    pub phase: u16,
    pub attempts: Vec<Attempt>,
    pub status: StepStatus,
    /// Durable byte offset of a transfer step.
    pub offset: u64,
    /// The archive of an upload step, once built.
    pub archive: Option<ArchiveInfo>,
    /// The portal's upload id of an upload step, once opened.
    pub upload_id: Option<String>,
}

/// What an outcome event did to a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// The step still has work to do (running, or waiting to retry / poll).
    Open,
    Succeeded,
    /// Failed for good, after `attempts` attempts, with `error`.
    Failed {
        attempts: u32,
        error: String,
    },
}

impl StepState {
    pub(crate) fn new(step: Step, phase: u16) -> StepState {
        StepState {
            step,
            phase,
            attempts: Vec::new(),
            status: StepStatus::Pending,
            offset: 0,
            archive: None,
            upload_id: None,
        }
    }

    /// Succeeded or failed for good.
    pub fn is_settled(&self) -> bool {
        matches!(
            self.status,
            StepStatus::Succeeded | StepStatus::Failed { .. }
        )
    }

    /// The number the next attempt will carry.
    pub fn next_attempt(&self) -> u32 {
        u32::try_from(self.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// Attempts that ended in a failure.
    pub fn failures(&self) -> u32 {
        self.count(|o| matches!(o, AttemptOutcome::Failed { .. }))
    }

    /// Attempts that were interrupted.
    pub fn interruptions(&self) -> u32 {
        self.count(|o| matches!(o, AttemptOutcome::Interrupted))
    }

    fn count(&self, pred: impl Fn(&AttemptOutcome) -> bool) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| a.outcome.as_ref().is_some_and(&pred))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The output of the successful attempt.
    pub fn output(&self) -> Option<&str> {
        self.attempts.iter().rev().find_map(|a| match &a.outcome {
            Some(AttemptOutcome::Succeeded { output }) => Some(output.as_str()),
            _ => None,
        })
    }

    /// The error of the last failed attempt.
    pub fn last_error(&self) -> Option<&str> {
        self.attempts.iter().rev().find_map(|a| match &a.outcome {
            Some(AttemptOutcome::Failed { error, .. }) => Some(error.as_str()),
            _ => None,
        })
    }

    /// `StepStarted { attempt }`.
    pub(crate) fn start(&mut self, attempt: u32, at: Timestamp) -> Result<(), ReplayError> {
        if attempt != self.next_attempt() {
            return Err(ReplayError::divergence(
                "StepStarted",
                format!(
                    "step '{}' started attempt {attempt}, but the next attempt is {}",
                    self.step.name,
                    self.next_attempt()
                ),
            ));
        }
        match self.status {
            StepStatus::Pending | StepStatus::Waiting { .. } => {}
            StepStatus::Running { attempt: previous } => {
                // Started again without an outcome: the previous attempt was interrupted.
                if let Some(prev) = self.attempts.iter_mut().find(|a| a.number == previous) {
                    prev.outcome = Some(AttemptOutcome::Interrupted);
                }
            }
            StepStatus::Succeeded | StepStatus::Failed { .. } => {
                return Err(ReplayError::divergence(
                    "StepStarted",
                    format!("step '{}' started again after it settled", self.step.name),
                ));
            }
        }
        self.attempts.push(Attempt {
            number: attempt,
            started_at: at,
            ended_at: None,
            outcome: None,
        });
        self.status = StepStatus::Running { attempt };
        Ok(())
    }

    /// Checks that `attempt` is the one running, for an event that reports on it.
    pub(crate) fn expect_running(
        &self,
        event: &'static str,
        attempt: u32,
    ) -> Result<(), ReplayError> {
        match self.status {
            StepStatus::Running { attempt: running } if running == attempt => Ok(()),
            StepStatus::Running { attempt: running } => Err(ReplayError::divergence(
                event,
                format!(
                    "step '{}' reports attempt {attempt} but attempt {running} is running",
                    self.step.name
                ),
            )),
            _ => Err(ReplayError::divergence(
                event,
                format!(
                    "step '{}' reports attempt {attempt} but is not running",
                    self.step.name
                ),
            )),
        }
    }

    /// Checks that this is a running transfer of the right kind, for offset and upload events.
    pub(crate) fn expect_transfer(
        &self,
        event: &'static str,
        upload_only: bool,
    ) -> Result<(), ReplayError> {
        let kind_ok = if upload_only {
            matches!(self.step.kind, StepKind::Upload { .. })
        } else {
            self.step.kind.is_transfer()
        };
        if !kind_ok {
            return Err(ReplayError::divergence(
                event,
                format!(
                    "step '{}' is a {} step",
                    self.step.name,
                    self.step.kind.label()
                ),
            ));
        }
        if !matches!(self.status, StepStatus::Running { .. }) {
            return Err(ReplayError::divergence(
                event,
                format!("step '{}' is not running", self.step.name),
            ));
        }
        Ok(())
    }

    fn end(&mut self, attempt: u32, at: Timestamp, outcome: AttemptOutcome) {
        if let Some(a) = self.attempts.iter_mut().find(|a| a.number == attempt) {
            a.ended_at = Some(at);
            a.outcome = Some(outcome);
        }
    }

    /// `StepSucceeded`.
    pub(crate) fn succeed(
        &mut self,
        attempt: u32,
        at: Timestamp,
        output: String,
    ) -> Result<Settlement, ReplayError> {
        self.expect_running("StepSucceeded", attempt)?;
        self.end(attempt, at, AttemptOutcome::Succeeded { output });
        self.status = StepStatus::Succeeded;
        Ok(Settlement::Succeeded)
    }

    /// `StepFailed`.
    pub(crate) fn fail(
        &mut self,
        attempt: u32,
        at: Timestamp,
        retryable: bool,
        error: String,
        policy: &RetryPolicy,
    ) -> Result<Settlement, ReplayError> {
        self.expect_running("StepFailed", attempt)?;
        self.end(
            attempt,
            at,
            AttemptOutcome::Failed {
                retryable,
                error: error.clone(),
            },
        );
        let failures = self.failures();
        if retryable && failures < policy.max_attempts {
            self.status = StepStatus::Waiting {
                after: at.plus_millis(policy.backoff.delay_ms(failures)),
            };
            Ok(Settlement::Open)
        } else {
            self.status = StepStatus::Failed {
                error: error.clone(),
            };
            Ok(Settlement::Failed {
                attempts: attempt,
                error,
            })
        }
    }

    /// `StepIncomplete`: only polling steps may report it.
    pub(crate) fn incomplete(
        &mut self,
        attempt: u32,
        at: Timestamp,
        output: String,
    ) -> Result<Settlement, ReplayError> {
        self.expect_running("StepIncomplete", attempt)?;
        let poll = match &self.step.kind {
            StepKind::Script {
                poll: Some(poll), ..
            } => *poll,
            _ => {
                return Err(ReplayError::divergence(
                    "StepIncomplete",
                    format!("step '{}' is not a polling step", self.step.name),
                ));
            }
        };
        let first_start = self.attempts.first().map_or(at, |a| a.started_at);
        let waited = at.millis_since(first_start);
        self.end(
            attempt,
            at,
            AttemptOutcome::Incomplete {
                output: output.clone(),
            },
        );
        if waited >= poll.timeout_ms {
            let error = format!(
                "still not done after {} s (timeout {} s); last status: {output}",
                waited / 1000,
                poll.timeout_ms / 1000
            );
            self.status = StepStatus::Failed {
                error: error.clone(),
            };
            Ok(Settlement::Failed {
                attempts: attempt,
                error,
            })
        } else {
            self.status = StepStatus::Waiting {
                after: at.plus_millis(poll.interval_ms),
            };
            Ok(Settlement::Open)
        }
    }
}
