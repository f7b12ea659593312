//! One job's state, folded from its events, and the actions it asks for next.
//!
//! [`Job::apply`] is the fold: it checks each event against the job's stage and bookkeeping,
//! updates them, and lets the job kind's transition table move the stage. [`Job::next_actions`]
//! reads the state (and a `now` given as data) and names what the engine should do. Neither does
//! I/O, reads a clock or makes an id, so a job folded from the same events is always the same job
//! and always asks for the same actions.
//!
//! `next_actions` assumes nothing is in flight for the job, which is true right after a restart
//! and is how the engine drives a job: ask, perform, journal the outcome, ask again.

use crate::action::{Action, ArchiveInfo, Conclusion};
use crate::error::ReplayError;
use crate::event::{Entry, Event, JobKind, ResultStatus};
use crate::ids::{JobId, Timestamp};
use crate::machine::{self, Signal, Stage};
use crate::plan::{Backoff, RetryPolicy, StepIndex, StepKind};
use crate::steps::{Settlement, StepState, StepStatus};
use serde::{Deserialize, Serialize};

/// The journaled result of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub status: ResultStatus,
    pub idempotency_key: String,
    /// The result document exactly as it is sent (JSON).
    pub body: String,
    pub retry: Backoff,
    pub ready_at: Timestamp,
}

/// The delivery of the result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLane {
    /// Delivery attempts journaled as sent.
    pub attempts: u32,
    /// The last attempt was sent and has no outcome yet.
    pub in_flight: bool,
    /// Failures since the last success (there is none before acknowledgement).
    pub failures: u32,
    /// Earliest time for the next attempt after a failure.
    pub retry_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
}

/// Everything known about one job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    id: JobId,
    kind: JobKind,
    command_id: Option<String>,
    raw_command: Vec<u8>,
    received_at: Timestamp,
    last_event_at: Timestamp,
    events: usize,
    acked: bool,
    stage: Stage,
    policy: RetryPolicy,
    phases_planned: u16,
    steps: Vec<StepState>,
    conclusion: Option<Conclusion>,
    result: Option<JobResult>,
    report: ReportLane,
}

impl Job {
    /// Starts a job from its first event, which must be `CommandReceived`.
    pub fn start(id: JobId, entry: &Entry) -> Result<Job, ReplayError> {
        match &entry.event {
            Event::CommandReceived {
                command_id,
                kind,
                raw,
            } => Ok(Job {
                id,
                kind: *kind,
                command_id: command_id.clone(),
                raw_command: raw.clone(),
                received_at: entry.at,
                last_event_at: entry.at,
                events: 1,
                acked: false,
                stage: Stage::Received,
                policy: RetryPolicy::default(),
                phases_planned: 0,
                steps: Vec::new(),
                conclusion: None,
                result: None,
                report: ReportLane::default(),
            }),
            other => Err(ReplayError::InvalidTransition {
                stage: "(no command yet)".to_string(),
                event: other.name(),
            }),
        }
    }

    /// Folds a whole history, first event included.
    pub fn fold<'a>(
        id: JobId,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Job, crate::FoldError> {
        let mut entries = entries.into_iter();
        let locate = |position: usize, entry: &Entry, source: ReplayError| crate::FoldError {
            job: id,
            position,
            event: entry.event.name(),
            source,
        };
        let first = entries.next().ok_or(crate::FoldError {
            job: id,
            position: 0,
            event: "(none)",
            source: ReplayError::InvalidTransition {
                stage: "(no command yet)".into(),
                event: "(none)",
            },
        })?;
        let mut job = Job::start(id, first).map_err(|e| locate(1, first, e))?;
        for (i, entry) in entries.enumerate() {
            job.apply(entry).map_err(|e| locate(i + 2, entry, e))?;
        }
        Ok(job)
    }

    /// Applies one event. On error the job is unchanged.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        let mut next = self.clone();
        next.apply_in_place(entry)?;
        *self = next;
        Ok(())
    }

    fn apply_in_place(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        let at = entry.at;
        if let Stage::Finished { .. } = self.stage {
            return Err(self.invalid(&entry.event));
        }
        match &entry.event {
            Event::CommandRejected { reason } => {
                self.signal(Signal::Rejected {
                    reason: reason.clone(),
                })?;
            }
            Event::Acked => self.acked = true,
            Event::Planned {
                phase,
                steps,
                policy,
            } => {
                self.signal(Signal::Planned { phase: *phase })?;
                self.policy = *policy;
                self.phases_planned = phase.saturating_add(1);
                self.steps
                    .extend(steps.iter().cloned().map(|s| StepState::new(s, *phase)));
                self.after_step_settled(*phase)?;
            }
            Event::StepStarted { step, attempt } => {
                let index = self.expect_current_step(&entry.event, *step)?;
                self.steps[index].start(*attempt, at)?;
            }
            Event::TransferProgress { step, offset } => {
                let state = self.step_mut(&entry.event, *step)?;
                state.expect_transfer("TransferProgress", false)?;
                state.offset = *offset;
            }
            Event::ArchiveBuilt { step, size, sha256 } => {
                let state = self.step_mut(&entry.event, *step)?;
                state.expect_transfer("ArchiveBuilt", true)?;
                state.archive = Some(ArchiveInfo {
                    size: *size,
                    sha256: sha256.clone(),
                });
            }
            Event::UploadOpened { step, upload_id } => {
                let state = self.step_mut(&entry.event, *step)?;
                state.expect_transfer("UploadOpened", true)?;
                state.upload_id = Some(upload_id.clone());
            }
            Event::StepSucceeded {
                step,
                attempt,
                output,
            } => {
                let settled =
                    self.step_mut(&entry.event, *step)?
                        .succeed(*attempt, at, output.clone())?;
                self.on_settlement(*step, settled)?;
            }
            Event::StepIncomplete {
                step,
                attempt,
                output,
            } => {
                let settled =
                    self.step_mut(&entry.event, *step)?
                        .incomplete(*attempt, at, output.clone())?;
                self.on_settlement(*step, settled)?;
            }
            Event::StepFailed {
                step,
                attempt,
                retryable,
                error,
            } => {
                let policy = self.policy;
                let settled = self.step_mut(&entry.event, *step)?.fail(
                    *attempt,
                    at,
                    *retryable,
                    error.clone(),
                    &policy,
                )?;
                self.on_settlement(*step, settled)?;
            }
            Event::ResultReady {
                status,
                idempotency_key,
                body,
                retry,
            } => {
                let reportable = self.command_id.is_some();
                self.signal(Signal::ResultReady {
                    status: *status,
                    reportable,
                })?;
                self.result = Some(JobResult {
                    status: *status,
                    idempotency_key: idempotency_key.clone(),
                    body: body.clone(),
                    retry: *retry,
                    ready_at: at,
                });
            }
            Event::ReportSent { attempt } => {
                self.expect_reporting(&entry.event)?;
                let expected = self.report.attempts.saturating_add(1);
                if *attempt != expected {
                    return Err(ReplayError::divergence(
                        "ReportSent",
                        format!(
                            "delivery attempt {attempt} sent, but the next attempt is {expected}"
                        ),
                    ));
                }
                self.report.attempts = *attempt;
                self.report.in_flight = true;
            }
            Event::ReportFailed {
                attempt,
                retryable,
                error,
            } => {
                // An older journal's retryable failure: the plain backoff.
                let retry = retryable.then_some((0, None));
                self.report_failed(&entry.event, at, *attempt, error, retry)?;
            }
            Event::ReportDeferred {
                attempt,
                error,
                retry_after_ms,
                jitter_ms,
            } => {
                let retry = Some((*jitter_ms, *retry_after_ms));
                self.report_failed(&entry.event, at, *attempt, error, retry)?;
            }
            Event::ReportAcknowledged => {
                let attempt = self.report.attempts;
                self.expect_report_in_flight(&entry.event, attempt)?;
                self.report.in_flight = false;
                self.report.acknowledged_at = Some(at);
                self.signal(Signal::ReportSettled { delivered: true })?;
            }
            Event::JobFinished { status, delivered } => {
                self.signal(Signal::Finished {
                    status: *status,
                    delivered: *delivered,
                })?;
            }
            Event::CommandReceived { .. }
            | Event::ConnectorStarted { .. }
            | Event::ConnectorStopped
            | Event::JobsArchived { .. } => {
                return Err(self.invalid(&entry.event));
            }
        }
        self.events += 1;
        self.last_event_at = at;
        Ok(())
    }

    /// A delivery attempt failed: sent again after the result's backoff (less `jitter_ms`, never
    /// sooner than `retry_after_ms`) when `retry` is given, settled as undelivered otherwise.
    fn report_failed(
        &mut self,
        event: &Event,
        at: Timestamp,
        attempt: u32,
        error: &str,
        retry: Option<(u64, Option<u64>)>,
    ) -> Result<(), ReplayError> {
        self.expect_report_in_flight(event, attempt)?;
        self.report.in_flight = false;
        self.report.failures = self.report.failures.saturating_add(1);
        self.report.last_error = Some(error.to_string());
        match retry {
            Some((jitter_ms, retry_after_ms)) => {
                let backoff = self.result.as_ref().map_or(
                    Backoff {
                        initial_ms: 0,
                        max_ms: 0,
                    },
                    |r| r.retry,
                );
                let delay = backoff.retry_delay_ms(self.report.failures, jitter_ms, retry_after_ms);
                self.report.retry_at = Some(at.plus_millis(delay));
                Ok(())
            }
            None => self.signal(Signal::ReportSettled { delivered: false }),
        }
    }

    fn invalid(&self, event: &Event) -> ReplayError {
        ReplayError::InvalidTransition {
            stage: self.stage.to_string(),
            event: event.name(),
        }
    }

    fn signal(&mut self, signal: Signal) -> Result<(), ReplayError> {
        self.stage = machine::transition(self.kind, &self.stage, signal)?;
        if let Stage::Concluding(conclusion) = &self.stage {
            self.conclusion = Some(conclusion.clone());
        }
        Ok(())
    }

    fn running_phase(&self) -> Option<u16> {
        match self.stage {
            Stage::Running { phase } => Some(phase),
            _ => None,
        }
    }

    /// The step the job is working on: the first unsettled step of the running phase.
    pub fn current_step(&self) -> Option<StepIndex> {
        let phase = self.running_phase()?;
        let index = self
            .steps
            .iter()
            .position(|s| s.phase == phase && !s.is_settled())?;
        StepIndex::try_from(index).ok()
    }

    fn expect_current_step(&self, event: &Event, step: StepIndex) -> Result<usize, ReplayError> {
        if self.running_phase().is_none() {
            return Err(self.invalid(event));
        }
        match self.current_step() {
            Some(current) if current == step => Ok(current as usize),
            Some(current) => Err(ReplayError::divergence(
                event.name(),
                format!("step {step} was started but step {current} is the next unfinished step"),
            )),
            None => Err(ReplayError::divergence(
                event.name(),
                format!("step {step} does not exist"),
            )),
        }
    }

    fn step_mut(&mut self, event: &Event, step: StepIndex) -> Result<&mut StepState, ReplayError> {
        if self.running_phase().is_none() {
            return Err(self.invalid(event));
        }
        let count = self.steps.len();
        self.steps.get_mut(step as usize).ok_or_else(|| {
            ReplayError::divergence(
                event.name(),
                format!("step {step} does not exist (the plan has {count})"),
            )
        })
    }

    fn on_settlement(
        &mut self,
        step: StepIndex,
        settlement: Settlement,
    ) -> Result<(), ReplayError> {
        let state = &self.steps[step as usize];
        let phase = state.phase;
        match settlement {
            Settlement::Open => Ok(()),
            Settlement::Succeeded => self.after_step_settled(phase),
            Settlement::Failed { attempts, error } if state.step.required => {
                let step_name = state.step.name.clone();
                self.signal(Signal::StepGaveUp(Conclusion::Failed {
                    step,
                    step_name,
                    attempts,
                    error,
                }))
            }
            Settlement::Failed { .. } => self.after_step_settled(phase),
        }
    }

    /// Moves on when every step of `phase` has settled.
    fn after_step_settled(&mut self, phase: u16) -> Result<(), ReplayError> {
        let done = self
            .steps
            .iter()
            .filter(|s| s.phase == phase)
            .all(StepState::is_settled);
        if done {
            self.signal(Signal::PhaseDone { phase })
        } else {
            Ok(())
        }
    }

    fn expect_reporting(&self, event: &Event) -> Result<(), ReplayError> {
        match self.stage {
            Stage::Reporting { .. } => Ok(()),
            _ => Err(self.invalid(event)),
        }
    }

    fn expect_report_in_flight(&self, event: &Event, attempt: u32) -> Result<(), ReplayError> {
        self.expect_reporting(event)?;
        if !self.report.in_flight || attempt != self.report.attempts {
            return Err(ReplayError::divergence(
                event.name(),
                format!(
                    "outcome of delivery attempt {attempt}, but {}",
                    if self.report.in_flight {
                        format!("attempt {} is the one in flight", self.report.attempts)
                    } else {
                        "no attempt is in flight".to_string()
                    }
                ),
            ));
        }
        Ok(())
    }

    /// What the engine should do now, given that nothing is in flight for this job.
    ///
    /// `Ack` comes first when the command still needs acknowledging; it runs beside whatever
    /// follows. An empty list means the job is finished.
    pub fn next_actions(&self, now: Timestamp) -> Vec<Action> {
        let mut actions = Vec::with_capacity(2);
        let wants_ack = matches!(
            self.stage,
            Stage::Received
                | Stage::AwaitingPlan { .. }
                | Stage::Running { .. }
                | Stage::Concluding(_)
                | Stage::Reporting { .. }
        );
        if wants_ack && !self.acked && self.command_id.is_some() {
            actions.push(Action::Ack);
        }
        let main = match &self.stage {
            Stage::Received => Some(Action::Plan { phase: 0 }),
            Stage::AwaitingPlan { phase } => Some(Action::Plan { phase: *phase }),
            Stage::Running { .. } => self.step_action(now),
            Stage::Concluding(conclusion) => Some(Action::ComposeResult {
                conclusion: conclusion.clone(),
            }),
            Stage::Reporting { .. } => Some(self.report_action(now)),
            Stage::Closing { status, delivered } => Some(Action::Finish {
                status: *status,
                delivered: *delivered,
            }),
            Stage::Finished { .. } => None,
        };
        actions.extend(main);
        actions
    }

    fn step_action(&self, now: Timestamp) -> Option<Action> {
        let step = self.current_step()?;
        let state = &self.steps[step as usize];
        let attempt = match &state.status {
            StepStatus::Pending => 1,
            StepStatus::Running { attempt } => {
                // Interrupted: this attempt is about to be counted as such.
                if state.interruptions().saturating_add(1) > self.policy.max_interrupted {
                    return Some(Action::Abandon {
                        step,
                        attempt: *attempt,
                        reason: format!(
                            "step '{}' was interrupted {} times (the connector stopped while it ran); giving up",
                            state.step.name,
                            state.interruptions().saturating_add(1)
                        ),
                    });
                }
                state.next_attempt()
            }
            StepStatus::Waiting { after } if now < *after => {
                return Some(Action::WaitUntil { until: *after });
            }
            StepStatus::Waiting { .. } => state.next_attempt(),
            StepStatus::Succeeded | StepStatus::Failed { .. } => return None,
        };
        Some(match &state.step.kind {
            StepKind::Download { .. } => Action::Download {
                step,
                attempt,
                from_offset: state.offset,
            },
            StepKind::Unpack { .. } => Action::Unpack { step, attempt },
            StepKind::Script { .. } => Action::RunScript { step, attempt },
            StepKind::Upload { .. } => Action::Upload {
                step,
                attempt,
                from_offset: state.offset,
                archive: state.archive.clone(),
                upload_id: state.upload_id.clone(),
            },
        })
    }

    fn report_action(&self, now: Timestamp) -> Action {
        let next = Action::Report {
            attempt: self.report.attempts.saturating_add(1),
        };
        match self.report.retry_at {
            Some(at) if !self.report.in_flight && now < at => Action::WaitUntil { until: at },
            _ => next,
        }
    }

    pub fn id(&self) -> JobId {
        self.id
    }
    pub fn kind(&self) -> JobKind {
        self.kind
    }
    /// The portal's id of the command, if it could be read.
    pub fn command_id(&self) -> Option<&str> {
        self.command_id.as_deref()
    }
    /// The command exactly as received.
    pub fn raw_command(&self) -> &[u8] {
        &self.raw_command
    }
    pub fn received_at(&self) -> Timestamp {
        self.received_at
    }
    pub fn last_event_at(&self) -> Timestamp {
        self.last_event_at
    }
    /// Events folded, the first included.
    pub fn event_count(&self) -> usize {
        self.events
    }
    pub fn is_acked(&self) -> bool {
        self.acked
    }
    pub fn stage(&self) -> &Stage {
        &self.stage
    }
    pub fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Finished { .. })
    }
    /// The retry policy of the latest plan.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
    /// Phases a job of this kind goes through (push 1, import 3).
    pub fn total_phases(&self) -> u16 {
        machine::phase_count(self.kind)
    }
    /// Phases planned so far.
    pub fn phases_planned(&self) -> u16 {
        self.phases_planned
    }
    /// Every step planned so far, in plan order.
    pub fn steps(&self) -> &[StepState] {
        &self.steps
    }
    pub fn step(&self, index: StepIndex) -> Option<&StepState> {
        self.steps.get(index as usize)
    }
    /// Why the job is over, once it is.
    pub fn conclusion(&self) -> Option<&Conclusion> {
        self.conclusion.as_ref()
    }
    /// The journaled result, once composed.
    pub fn result(&self) -> Option<&JobResult> {
        self.result.as_ref()
    }
    pub fn report(&self) -> &ReportLane {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{History, push_plan};
    use crate::{Action, Event, JobKind, ResultStatus};

    /// A pending report deferred at `at` with this jitter and Retry-After: when is it re-sent?
    fn deferred(jitter_ms: u64, retry_after_ms: Option<u64>) -> (i64, Vec<Action>) {
        let mut history = History::received(1, JobKind::Push, "cmd-deferred");
        history
            .acked()
            .planned(0, push_plan())
            .run_ok(0..8)
            .result(ResultStatus::Ok)
            .event(Event::ReportSent { attempt: 1 })
            .event(Event::ReportDeferred {
                attempt: 1,
                error: "503 Service Unavailable".into(),
                retry_after_ms,
                jitter_ms,
            });
        let history = history.build();
        let at = history.entries.last().map_or(0, |e| e.at.0);
        let job = history.fold().expect("folds");
        (at, job.next_actions(crate::Timestamp(at)))
    }

    fn wait_ms(at: i64, actions: &[Action]) -> i64 {
        match actions {
            [Action::WaitUntil { until }] => until.0 - at,
            other => panic!("expected one wait, got {other:?}"),
        }
    }

    #[test]
    fn a_deferred_report_waits_its_jittered_backoff_and_never_less_than_retry_after() {
        let backoff = crate::testkit::TEST_REPORT_BACKOFF.delay_ms(1) as i64;
        let (at, actions) = deferred(0, None);
        assert_eq!(wait_ms(at, &actions), backoff);
        let (at, actions) = deferred(10, None);
        assert_eq!(wait_ms(at, &actions), backoff - 10);
        let floor = backoff * 20;
        let (at, actions) = deferred(10, Some(floor as u64));
        assert_eq!(wait_ms(at, &actions), floor, "Retry-After is a floor");
    }
}
