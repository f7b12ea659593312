//! A job laid out for a reader: the data behind `sccm-connector jobs` and `sccm-connector replay`.
//!
//! [`overview`] turns a folded [`Job`], the entries it was folded from and a `now` (data, never a
//! clock) into an [`Overview`]: the job's state in one word ([`JobState`]), every step with its
//! exact script text and attempts, the transfers with their offsets, the acknowledgement and the
//! result's deliveries, the timeline ([`timeline`]) and the verdict ([`diagnose`]). Pure, like the
//! rest of this crate; the connector renders it as text or JSON. Times serialize as RFC 3339 (UTC).

use crate::action::Action;
use crate::diagnose::{diagnose, timeline};
use crate::event::{Entry, Event, JobKind};
use crate::ids::{JobId, Timestamp, serialize_rfc3339, serialize_rfc3339_opt};
use crate::job::Job;
use crate::machine::Stage;
use crate::plan::{PollPolicy, StepIndex, StepKind};
use crate::steps::{AttemptOutcome, StepState, StepStatus};
use serde::Serialize;

/// A job's state in one word, as `jobs` lists and filters it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// The command is journaled, not yet planned.
    Received,
    /// A later phase awaits planning (import).
    Planning,
    /// A step is due or under way.
    Running,
    /// A retry, a poll or a result delivery is scheduled for later.
    Waiting,
    /// Over; the result is not composed yet.
    Concluding,
    /// The result is being delivered to the portal.
    Reporting,
    /// Delivery is settled; the job is being closed.
    Closing,
    Succeeded,
    Failed,
    Rejected,
    /// Its journal records do not fold or cannot be read: quarantined, nothing runs.
    Broken,
    /// Retention exported it to an archive file and pruned its records from the journal.
    Archived,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 12] = [
        JobState::Received,
        JobState::Planning,
        JobState::Running,
        JobState::Waiting,
        JobState::Concluding,
        JobState::Reporting,
        JobState::Closing,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Rejected,
        JobState::Broken,
        JobState::Archived,
    ];

    /// The state of a job that folded, as of `now`.
    pub fn of(job: &Job, now: Timestamp) -> JobState {
        let waits = || {
            job.next_actions(now)
                .iter()
                .any(|a| matches!(a, Action::WaitUntil { .. }))
        };
        match job.stage() {
            Stage::Received => JobState::Received,
            Stage::AwaitingPlan { .. } => JobState::Planning,
            Stage::Running { .. } if waits() => JobState::Waiting,
            Stage::Running { .. } => JobState::Running,
            Stage::Concluding(_) => JobState::Concluding,
            Stage::Reporting { .. } if waits() => JobState::Waiting,
            Stage::Reporting { .. } => JobState::Reporting,
            Stage::Closing { .. } => JobState::Closing,
            Stage::Finished { status, .. } => match status {
                crate::ResultStatus::Ok => JobState::Succeeded,
                crate::ResultStatus::Failed => JobState::Failed,
                crate::ResultStatus::Rejected => JobState::Rejected,
            },
        }
    }

    /// The word `jobs` prints and `--state` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Received => "received",
            JobState::Planning => "planning",
            JobState::Running => "running",
            JobState::Waiting => "waiting",
            JobState::Concluding => "concluding",
            JobState::Reporting => "reporting",
            JobState::Closing => "closing",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Rejected => "rejected",
            JobState::Broken => "broken",
            JobState::Archived => "archived",
        }
    }

    /// The state named `word` (case-insensitive), if there is one.
    pub fn parse(word: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word.trim()))
    }
}

/// The lowercase word for a job kind.
pub fn kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Push => "push",
        JobKind::Import => "import",
        JobKind::Unrecognized => "unrecognized",
    }
}

/// The word for where a step stands.
pub fn step_status_label(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Running { .. } => "running",
        StepStatus::Waiting { .. } => "waiting",
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed { .. } => "failed",
    }
}

/// The step a job worked on last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastStep {
    pub index: StepIndex,
    pub name: String,
    /// `pending`, `running`, `waiting`, `succeeded` or `failed`.
    pub status: &'static str,
}

/// The last step that was started (or, before any start, none).
pub fn last_step(job: &Job) -> Option<LastStep> {
    job.steps()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.attempts.last().map(|a| (i, s, a.started_at)))
        .max_by_key(|(i, _, at)| (*at, *i))
        .and_then(|(i, s, _)| {
            Some(LastStep {
                index: StepIndex::try_from(i).ok()?,
                name: s.step.name.clone(),
                status: step_status_label(&s.status),
            })
        })
}

/// Everything about one job, ready to render.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub job: JobId,
    pub command_id: Option<String>,
    /// `push`, `import` or `unrecognized`.
    pub kind: &'static str,
    pub state: JobState,
    /// The machine's stage, e.g. `Running(phase 0)`.
    pub stage: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub received_at: Timestamp,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_event_at: Timestamp,
    /// From the command's arrival to `now`.
    pub age_ms: u64,
    pub events: usize,
    /// Phases planned out of the job kind's phases.
    pub phases_planned: u16,
    pub phases_total: u16,
    pub last_step: Option<LastStep>,
    pub steps: Vec<StepOverview>,
    pub transfers: Vec<TransferRow>,
    pub portal: PortalExchange,
    pub timeline: Vec<TimelineEntry>,
    /// Why the job is quarantined, when it is (its later events were not folded).
    pub broken: Option<String>,
    pub diagnosis: DiagnosisOverview,
}

/// A step of the plan with what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepOverview {
    pub index: StepIndex,
    pub phase: u16,
    pub name: String,
    /// `download`, `unpack`, `script` or `upload`.
    pub kind: &'static str,
    pub required: bool,
    pub status: &'static str,
    /// When a waiting step may run again.
    #[serde(serialize_with = "serialize_rfc3339_opt")]
    pub waiting_until: Option<Timestamp>,
    /// The exact PowerShell text, as journaled in the plan.
    pub script: Option<String>,
    /// A polling step: the pause between polls and the timeout.
    pub poll: Option<PollPolicy>,
    /// What a non-script step works on (url, size, sha256, dest; archive; application, source).
    pub target: Vec<Target>,
    /// A transfer's durable byte offset.
    pub offset: Option<u64>,
    pub upload_id: Option<String>,
    pub attempts: Vec<AttemptOverview>,
}

/// One thing a step works on, e.g. `url` → `/api/connector/v1/packages/pkg-1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub value: String,
}

/// One attempt at a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptOverview {
    pub number: u32,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub started_at: Timestamp,
    #[serde(serialize_with = "serialize_rfc3339_opt")]
    pub ended_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    /// `succeeded`, `incomplete`, `failed`, `interrupted`, or `running` (no outcome journaled).
    pub outcome: &'static str,
    pub retryable: Option<bool>,
    /// The journal keeps no exit code: a script that succeeded exited 0 (the runner refuses any
    /// other), a crash names its code in its error text; otherwise unknown.
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub error: Option<String>,
}

/// A transfer event: an offset made durable, an archive built, an upload opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferRow {
    #[serde(serialize_with = "serialize_rfc3339")]
    pub at: Timestamp,
    pub step: StepIndex,
    pub step_name: String,
    /// `progress`, `archive` or `opened`.
    pub what: &'static str,
    pub offset: Option<u64>,
    /// The download's expected size, or the built archive's size.
    pub total: Option<u64>,
    pub note: Option<String>,
}

/// What went between the connector and the portal about this job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PortalExchange {
    #[serde(serialize_with = "serialize_rfc3339_opt")]
    pub acknowledged_at: Option<Timestamp>,
    pub result: Option<ResultOverview>,
    pub deliveries: Vec<Delivery>,
    #[serde(serialize_with = "serialize_rfc3339_opt")]
    pub finished_at: Option<Timestamp>,
    /// Whether the portal took the result (known once the job is finished).
    pub delivered: Option<bool>,
}

impl PortalExchange {
    /// Delivery `attempt` failed at `at`.
    fn delivery_failed(&mut self, attempt: u32, at: Timestamp, retryable: bool, error: &str) {
        if let Some(d) = self
            .deliveries
            .iter_mut()
            .rev()
            .find(|d| d.attempt == attempt)
        {
            d.outcome = "failed";
            d.answered_at = Some(at);
            d.retryable = Some(retryable);
            d.error = Some(error.to_string());
        }
    }
}

/// The journaled result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResultOverview {
    pub status: &'static str,
    pub idempotency_key: String,
    /// The result document exactly as sent.
    pub body: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub ready_at: Timestamp,
}

/// One delivery attempt of the result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub attempt: u32,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub sent_at: Timestamp,
    /// `acknowledged`, `failed`, or `no answer` (nothing journaled after the send).
    pub outcome: &'static str,
    #[serde(serialize_with = "serialize_rfc3339_opt")]
    pub answered_at: Option<Timestamp>,
    pub retryable: Option<bool>,
    pub error: Option<String>,
}

/// One row of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    #[serde(serialize_with = "serialize_rfc3339")]
    pub at: Timestamp,
    pub since_start_ms: u64,
    pub gap_ms: u64,
    pub event: &'static str,
    pub summary: String,
}

/// The verdict: [`diagnose`]'s, plus the failing step as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiagnosisOverview {
    pub headline: String,
    pub details: Vec<String>,
    /// What a resume would do now, one line per action.
    pub next: Vec<String>,
    pub failed_step: Option<FailedStep>,
}

/// The step that failed for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    pub index: StepIndex,
    pub name: String,
    pub attempts: usize,
    pub error: String,
}

/// Lays out `job` (folded from `entries`) as of `now`.
pub fn overview(job: &Job, entries: &[Entry], now: Timestamp) -> Overview {
    let verdict = diagnose(job, now);
    let failed_step = job
        .steps()
        .iter()
        .enumerate()
        .find_map(|(i, s)| match &s.status {
            StepStatus::Failed { error } => Some(FailedStep {
                index: StepIndex::try_from(i).unwrap_or(StepIndex::MAX),
                name: s.step.name.clone(),
                attempts: s.attempts.len(),
                error: error.clone(),
            }),
            _ => None,
        });
    Overview {
        job: job.id(),
        command_id: job.command_id().map(str::to_string),
        kind: kind_label(job.kind()),
        state: JobState::of(job, now),
        stage: job.stage().to_string(),
        received_at: job.received_at(),
        last_event_at: job.last_event_at(),
        age_ms: now.millis_since(job.received_at()),
        events: job.event_count(),
        phases_planned: job.phases_planned(),
        phases_total: job.total_phases(),
        last_step: last_step(job),
        steps: job
            .steps()
            .iter()
            .enumerate()
            .map(|(i, s)| step_overview(i, s))
            .collect(),
        transfers: transfers(job, entries),
        portal: portal_exchange(entries),
        timeline: timeline(entries)
            .into_iter()
            .map(|row| TimelineEntry {
                at: row.at,
                since_start_ms: row.since_start_ms,
                gap_ms: row.gap_ms,
                event: row.event,
                summary: row.summary,
            })
            .collect(),
        broken: None,
        diagnosis: DiagnosisOverview {
            headline: verdict.headline,
            details: verdict.details,
            next: verdict.next.iter().map(|a| action_line(job, a)).collect(),
            failed_step,
        },
    }
}

impl Overview {
    /// Marks the job as quarantined: it asks for nothing, whatever its partial fold says.
    pub fn broken(mut self, reason: &str) -> Overview {
        self.state = JobState::Broken;
        self.broken = Some(reason.to_string());
        self.diagnosis.headline = format!(
            "broken: the journal's events for this job do not fold ({reason}); the connector leaves it alone"
        );
        self.diagnosis.next.clear();
        self
    }
}

fn step_overview(index: usize, state: &StepState) -> StepOverview {
    let (script, poll) = match &state.step.kind {
        StepKind::Script { script, poll } => (Some(script.clone()), *poll),
        _ => (None, None),
    };
    let target = match &state.step.kind {
        StepKind::Download {
            url,
            size,
            sha256,
            dest,
        } => vec![
            ("url", url.clone()),
            ("size", size.to_string()),
            ("sha256", sha256.clone()),
            ("dest", dest.clone()),
        ],
        StepKind::Unpack { archive, dest } => {
            vec![("archive", archive.clone()), ("dest", dest.clone())]
        }
        StepKind::Upload {
            application,
            source,
        } => vec![
            ("application", application.clone()),
            ("source", source.clone()),
        ],
        StepKind::Script { .. } => Vec::new(),
    }
    .into_iter()
    .map(|(name, value)| Target { name, value })
    .collect();
    let is_script = matches!(state.step.kind, StepKind::Script { .. });
    StepOverview {
        index: StepIndex::try_from(index).unwrap_or(StepIndex::MAX),
        phase: state.phase,
        name: state.step.name.clone(),
        kind: state.step.kind.label(),
        required: state.step.required,
        status: step_status_label(&state.status),
        waiting_until: match state.status {
            StepStatus::Waiting { after } => Some(after),
            _ => None,
        },
        script,
        poll,
        target,
        offset: state.step.kind.is_transfer().then_some(state.offset),
        upload_id: state.upload_id.clone(),
        attempts: state
            .attempts
            .iter()
            .map(|a| {
                let (outcome, retryable, output, error) = match &a.outcome {
                    Some(AttemptOutcome::Succeeded { output }) => {
                        ("succeeded", None, Some(output.clone()), None)
                    }
                    Some(AttemptOutcome::Incomplete { output }) => {
                        ("incomplete", None, Some(output.clone()), None)
                    }
                    Some(AttemptOutcome::Failed { retryable, error }) => {
                        ("failed", Some(*retryable), None, Some(error.clone()))
                    }
                    Some(AttemptOutcome::Interrupted) => ("interrupted", None, None, None),
                    None => ("running", None, None, None),
                };
                let exit_code = match (&a.outcome, is_script) {
                    (
                        Some(AttemptOutcome::Succeeded { .. } | AttemptOutcome::Incomplete { .. }),
                        true,
                    ) => Some(0),
                    (Some(AttemptOutcome::Failed { error, .. }), true) => exit_code_in(error),
                    _ => None,
                };
                AttemptOverview {
                    number: a.number,
                    started_at: a.started_at,
                    ended_at: a.ended_at,
                    duration_ms: a.ended_at.map(|end| end.millis_since(a.started_at)),
                    outcome,
                    retryable,
                    exit_code,
                    output,
                    error,
                }
            })
            .collect(),
    }
}

/// The code in an error text that names one (`… (exit code 5) …`).
fn exit_code_in(error: &str) -> Option<i32> {
    let rest = &error[error.find("exit code ")? + "exit code ".len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

fn transfers(job: &Job, entries: &[Entry]) -> Vec<TransferRow> {
    let name = |step: StepIndex| {
        job.step(step)
            .map_or_else(|| format!("step {step}"), |s| s.step.name.clone())
    };
    let expected_size = |step: StepIndex| match job.step(step).map(|s| &s.step.kind) {
        Some(StepKind::Download { size, .. }) => Some(*size),
        _ => None,
    };
    let mut archive_sizes: Vec<(StepIndex, u64)> = Vec::new();
    entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::TransferProgress { step, offset } => Some(TransferRow {
                at: entry.at,
                step: *step,
                step_name: name(*step),
                what: "progress",
                offset: Some(*offset),
                total: expected_size(*step).or_else(|| {
                    archive_sizes
                        .iter()
                        .rev()
                        .find(|(s, _)| s == step)
                        .map(|(_, size)| *size)
                }),
                note: None,
            }),
            Event::ArchiveBuilt { step, size, sha256 } => {
                archive_sizes.push((*step, *size));
                Some(TransferRow {
                    at: entry.at,
                    step: *step,
                    step_name: name(*step),
                    what: "archive",
                    offset: None,
                    total: Some(*size),
                    note: Some(format!("sha256 {sha256}")),
                })
            }
            Event::UploadOpened { step, upload_id } => Some(TransferRow {
                at: entry.at,
                step: *step,
                step_name: name(*step),
                what: "opened",
                offset: None,
                total: None,
                note: Some(format!("upload id {upload_id}")),
            }),
            _ => None,
        })
        .collect()
}

fn portal_exchange(entries: &[Entry]) -> PortalExchange {
    let mut exchange = PortalExchange::default();
    for entry in entries {
        match &entry.event {
            Event::Acked => exchange.acknowledged_at = Some(entry.at),
            Event::ResultReady {
                status,
                idempotency_key,
                body,
                ..
            } => {
                exchange.result = Some(ResultOverview {
                    status: status.as_str(),
                    idempotency_key: idempotency_key.clone(),
                    body: body.clone(),
                    ready_at: entry.at,
                });
            }
            Event::ReportSent { attempt } => exchange.deliveries.push(Delivery {
                attempt: *attempt,
                sent_at: entry.at,
                outcome: "no answer",
                answered_at: None,
                retryable: None,
                error: None,
            }),
            Event::ReportFailed {
                attempt,
                retryable,
                error,
            } => exchange.delivery_failed(*attempt, entry.at, *retryable, error),
            Event::ReportDeferred { attempt, error, .. } => {
                exchange.delivery_failed(*attempt, entry.at, true, error);
            }
            Event::ReportAcknowledged => {
                if let Some(d) = exchange.deliveries.last_mut() {
                    d.outcome = "acknowledged";
                    d.answered_at = Some(entry.at);
                }
            }
            Event::JobFinished { delivered, .. } => {
                exchange.finished_at = Some(entry.at);
                exchange.delivered = Some(*delivered);
            }
            _ => {}
        }
    }
    exchange
}

/// One line for an action a resume would take.
fn action_line(job: &Job, action: &Action) -> String {
    let name = |step: &StepIndex| {
        job.step(*step).map_or_else(
            || format!("step {step}"),
            |s| format!("step {step} '{}'", s.step.name),
        )
    };
    match action {
        Action::Ack => "acknowledge the command to the portal".into(),
        Action::Plan { phase } => format!("plan phase {phase}"),
        Action::Download {
            step,
            attempt,
            from_offset,
        } => format!(
            "download: {} attempt {attempt}, from byte {from_offset}",
            name(step)
        ),
        Action::Unpack { step, attempt } => format!("unpack: {} attempt {attempt}", name(step)),
        Action::RunScript { step, attempt } => {
            format!("run the script of {} as attempt {attempt}", name(step))
        }
        Action::Upload {
            step,
            attempt,
            from_offset,
            archive,
            upload_id,
        } => format!(
            "upload: {} attempt {attempt}, from byte {from_offset}{}{}",
            name(step),
            if archive.is_some() {
                ", reusing the built archive"
            } else {
                ""
            },
            upload_id
                .as_ref()
                .map(|id| format!(", upload id {id}"))
                .unwrap_or_default()
        ),
        Action::Abandon {
            step,
            attempt,
            reason,
        } => format!("give up on {} (attempt {attempt}): {reason}", name(step)),
        Action::WaitUntil { until } => format!("wait until {until}"),
        Action::ComposeResult { conclusion } => {
            format!("compose the {} result", conclusion.status().as_str())
        }
        Action::Report { attempt } => {
            format!("send the result (delivery attempt {attempt}, same idempotency key)")
        }
        Action::Finish { status, .. } => format!("close the job as {}", status.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::canned;

    fn of(history: &crate::testkit::History) -> Overview {
        let job = history.fold().expect("a canned history folds");
        overview(&job, &history.entries, history.now.plus_millis(60_000))
    }

    #[test]
    fn a_failed_step_is_named_with_its_error() {
        let o = of(&canned::push_step_fails());
        let failed = o.diagnosis.failed_step.as_ref().expect("a failed step");
        assert_eq!(
            (failed.index, failed.name.as_str()),
            (3, "ensure-deployment-type")
        );
        assert_eq!(failed.attempts, 3);
        assert!(failed.error.contains("does not exist or is empty"));
        assert!(
            o.diagnosis.headline.contains("ensure-deployment-type")
                && o.diagnosis.headline.contains("does not exist or is empty"),
            "{}",
            o.diagnosis.headline
        );
        assert_eq!(o.state, JobState::Concluding);
        let step = &o.steps[3];
        assert_eq!(step.status, "failed");
        assert_eq!(step.script.as_deref(), Some("# ensure-deployment-type\n"));
        assert_eq!(step.attempts.len(), 3);
        assert_eq!(step.attempts[0].duration_ms, Some(2_000));
        assert_eq!(step.attempts[0].retryable, Some(true));
        assert_eq!(
            o.last_step.as_ref().map(|s| (s.name.as_str(), s.status)),
            Some(("ensure-deployment-type", "failed"))
        );
    }

    #[test]
    fn a_killed_step_is_re_run_as_attempt_two() {
        let o = of(&canned::push_killed_in_step());
        assert_eq!(o.state, JobState::Running);
        assert!(
            o.diagnosis
                .headline
                .contains("step 2 'ensure-application' attempt 2"),
            "{}",
            o.diagnosis.headline
        );
        assert_eq!(
            o.diagnosis.next,
            ["run the script of step 2 'ensure-application' as attempt 2"]
        );
        let attempt = &o.steps[2].attempts[0];
        assert_eq!((attempt.outcome, attempt.ended_at), ("running", None));
    }

    #[test]
    fn a_happy_push_lists_every_step_delivery_and_acknowledgement() {
        let history = canned::push_happy();
        let o = of(&history);
        assert_eq!(o.state, JobState::Succeeded);
        assert_eq!(o.kind, "push");
        assert_eq!(o.steps.len(), 8);
        assert!(o.steps.iter().all(|s| s.status == "succeeded"));
        assert_eq!(
            o.steps[0].target[0],
            Target {
                name: "url",
                value: "/api/connector/v1/packages/pkg-5c2a".into()
            }
        );
        assert_eq!(o.steps[0].offset, Some(0));
        assert_eq!(o.steps[2].attempts[0].exit_code, Some(0));
        assert_eq!(o.timeline.len(), history.entries.len());
        assert!(o.portal.acknowledged_at.is_some());
        assert_eq!(o.portal.deliveries.len(), 1);
        assert_eq!(o.portal.deliveries[0].outcome, "acknowledged");
        assert_eq!(o.portal.delivered, Some(true));
        assert_eq!(
            o.age_ms,
            history.now.plus_millis(60_000).millis_since(o.received_at)
        );
        assert!(o.diagnosis.next.is_empty());
    }

    #[test]
    fn waiting_jobs_and_failed_deliveries_read_as_such() {
        let history = canned::push_waiting_for_distribution();
        let job = history.fold().expect("folds");
        assert_eq!(JobState::of(&job, history.now), JobState::Waiting);
        assert_eq!(
            JobState::of(&job, history.now.plus_millis(60_000)),
            JobState::Running
        );
        let o = of(&canned::push_report_pending());
        assert_eq!(o.portal.deliveries.len(), 2);
        assert_eq!(o.portal.deliveries[0].outcome, "failed");
        assert_eq!(
            o.portal.deliveries[0].error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(o.portal.deliveries[1].outcome, "no answer");
        assert_eq!(o.state, JobState::Reporting);
    }

    #[test]
    fn uploads_show_their_archive_and_offsets() {
        let o = of(&canned::import_two_apps());
        assert_eq!(o.kind, "import");
        assert_eq!((o.phases_planned, o.phases_total), (3, 3));
        let what: Vec<&str> = o.transfers.iter().map(|t| t.what).collect();
        assert_eq!(what, ["archive", "opened", "progress"]);
        assert_eq!(o.transfers[2].offset, Some(1_000));
        assert_eq!(o.transfers[2].total, Some(1_000));
        assert_eq!(o.transfers[2].step_name, "upload 7-Zip");
        assert_eq!(o.steps[4].upload_id.as_deref(), Some("up-1"));
    }

    #[test]
    fn states_parse_from_their_words_only() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("FAILED"), Some(JobState::Failed));
        assert_eq!(JobState::parse("done"), None);
        let o = of(&canned::push_rejected());
        assert_eq!(o.state, JobState::Rejected);
        let broken = o.broken("job x, event #3 (Acked): invalid transition");
        assert_eq!(broken.state, JobState::Broken);
        assert!(broken.diagnosis.headline.contains("event #3"));
    }

    #[test]
    fn exit_codes_are_read_only_where_an_error_names_one() {
        assert_eq!(
            exit_code_in("PowerShell exited without a result (exit code 5); stderr: x"),
            Some(5)
        );
        assert_eq!(exit_code_in("Access is denied."), None);
        assert_eq!(exit_code_in("exit code "), None);
    }
}
