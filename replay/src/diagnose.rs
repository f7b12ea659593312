//! Reading a job back: its timeline, and why it failed or what a resume would do next.
//!
//! Pure functions over events and folded state, for `sccm-connector replay` and for tests. The
//! engine's text and JSON renderings are built on these.

use crate::action::{Action, Conclusion};
use crate::event::{Entry, Event};
use crate::ids::Timestamp;
use crate::job::Job;
use crate::machine::Stage;
use crate::steps::{AttemptOutcome, StepStatus};

/// One line of a job's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineRow {
    pub at: Timestamp,
    /// Milliseconds since the job's first event.
    pub since_start_ms: u64,
    /// Milliseconds since the previous event of the job.
    pub gap_ms: u64,
    pub event: &'static str,
    /// A one-line human description (step names resolved, long texts shortened).
    pub summary: String,
}

/// The timeline of one job's events, with step names resolved from its own plan.
pub fn timeline(entries: &[Entry]) -> Vec<TimelineRow> {
    let mut names: Vec<String> = Vec::new();
    let start = entries.first().map_or(Timestamp(0), |e| e.at);
    let mut previous = start;
    entries
        .iter()
        .map(|entry| {
            if let Event::Planned { steps, .. } = &entry.event {
                names.extend(steps.iter().map(|s| s.name.clone()));
            }
            let row = TimelineRow {
                at: entry.at,
                since_start_ms: entry.at.millis_since(start),
                gap_ms: entry.at.millis_since(previous),
                event: entry.event.name(),
                summary: summarize(&entry.event, &names),
            };
            previous = entry.at;
            row
        })
        .collect()
}

fn step_name(names: &[String], step: u32) -> String {
    match names.get(step as usize) {
        Some(name) => format!("step {step} '{name}'"),
        None => format!("step {step}"),
    }
}

/// Shortens `text` to one line of at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn summarize(event: &Event, names: &[String]) -> String {
    match event {
        Event::ConnectorStarted { version } => format!("connector {version} started"),
        Event::ConnectorStopped => "connector stopped".into(),
        Event::JobsArchived { archive, jobs } => {
            format!(
                "{} finished job(s) archived to {archive} and pruned",
                jobs.len()
            )
        }
        Event::CommandReceived {
            command_id,
            kind,
            raw,
        } => format!(
            "{kind:?} command {} received ({} bytes)",
            command_id.as_deref().unwrap_or("(no id)"),
            raw.len()
        ),
        Event::CommandRejected { reason } => format!("rejected: {}", one_line(reason, 120)),
        Event::Acked => "portal acknowledged the command".into(),
        Event::Planned { phase, steps, .. } => {
            let list: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            format!(
                "phase {phase} planned: {} step(s): {}",
                steps.len(),
                one_line(&list.join(", "), 160)
            )
        }
        Event::StepStarted { step, attempt } => {
            format!("{} attempt {attempt} started", step_name(names, *step))
        }
        Event::TransferProgress { step, offset } => {
            format!("{} at byte {offset}", step_name(names, *step))
        }
        Event::ArchiveBuilt { step, size, sha256 } => {
            format!(
                "{} archive built: {size} bytes, sha256 {}",
                step_name(names, *step),
                one_line(sha256, 16)
            )
        }
        Event::UploadOpened { step, upload_id } => {
            format!("{} upload {upload_id} opened", step_name(names, *step))
        }
        Event::StepIncomplete {
            step,
            attempt,
            output,
        } => {
            format!(
                "{} attempt {attempt} not done yet: {}",
                step_name(names, *step),
                one_line(output, 100)
            )
        }
        Event::StepSucceeded {
            step,
            attempt,
            output,
        } => {
            format!(
                "{} attempt {attempt} succeeded: {}",
                step_name(names, *step),
                one_line(output, 100)
            )
        }
        Event::StepFailed {
            step,
            attempt,
            retryable,
            error,
        } => format!(
            "{} attempt {attempt} failed ({}): {}",
            step_name(names, *step),
            if *retryable { "retryable" } else { "permanent" },
            one_line(error, 120)
        ),
        Event::ResultReady {
            status,
            idempotency_key,
            ..
        } => {
            format!(
                "result ready: {} (idempotency key {idempotency_key})",
                status.as_str()
            )
        }
        Event::ReportSent { attempt } => format!("result delivery attempt {attempt} sent"),
        Event::ReportFailed {
            attempt,
            retryable,
            error,
        } => format!(
            "result delivery attempt {attempt} failed ({}): {}",
            if *retryable { "will retry" } else { "refused" },
            one_line(error, 120)
        ),
        Event::ReportDeferred {
            attempt,
            error,
            retry_after_ms,
            ..
        } => format!(
            "result delivery attempt {attempt} failed (will retry{}): {}",
            retry_after_ms.map_or(String::new(), |ms| format!(", not before {ms} ms")),
            one_line(error, 120)
        ),
        Event::ReportAcknowledged => "portal acknowledged the result".into(),
        Event::JobFinished { status, delivered } => {
            format!(
                "job finished: {}{}",
                status.as_str(),
                if *delivered {
                    ""
                } else {
                    " (result not delivered)"
                }
            )
        }
    }
}

/// The verdict on a job: what happened, and what a resume would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// One sentence.
    pub headline: String,
    /// Supporting facts, one per line.
    pub details: Vec<String>,
    /// What the engine would do if the connector resumed at `now`.
    pub next: Vec<Action>,
}

/// Diagnoses a folded job as of `now`.
pub fn diagnose(job: &Job, now: Timestamp) -> Diagnosis {
    let next = job.next_actions(now);
    let mut details = Vec::new();
    let failed_step = job
        .steps()
        .iter()
        .enumerate()
        .find(|(_, s)| matches!(s.status, StepStatus::Failed { .. }));
    if let Some((index, step)) = failed_step {
        details.push(format!(
            "step {index} '{}' ({}) failed after {} attempt(s)",
            step.step.name,
            step.step.kind.label(),
            step.attempts.len()
        ));
        for attempt in &step.attempts {
            let outcome = match &attempt.outcome {
                Some(AttemptOutcome::Failed { retryable, error }) => {
                    format!(
                        "failed ({}): {}",
                        if *retryable { "retryable" } else { "permanent" },
                        one_line(error, 200)
                    )
                }
                Some(AttemptOutcome::Interrupted) => {
                    "interrupted (the connector stopped while it ran)".into()
                }
                Some(AttemptOutcome::Incomplete { output }) => {
                    format!("not done yet: {}", one_line(output, 200))
                }
                Some(AttemptOutcome::Succeeded { .. }) => "succeeded".into(),
                None => "no outcome".into(),
            };
            details.push(format!(
                "  attempt {} at {}: {outcome}",
                attempt.number, attempt.started_at
            ));
        }
    }
    if let Some(error) = &job.report().last_error {
        details.push(format!(
            "result delivery: {} attempt(s), last error: {}",
            job.report().attempts,
            one_line(error, 200)
        ));
    }
    let headline = match job.stage() {
        Stage::Finished { status, delivered } => {
            let mut line = format!("finished {}", status.as_str());
            if !delivered {
                line.push_str(", but the result was not delivered to the portal");
            }
            if let Some(reason) = rejected_reason(job) {
                line.push_str(&format!(": the command was rejected: {reason}"));
            } else if let Some((index, step)) = failed_step.filter(|(_, s)| s.step.required) {
                line.push_str(&format!(
                    ": step {index} '{}' failed: {}",
                    step.step.name,
                    one_line(step.last_error().unwrap_or("(no error text)"), 200)
                ));
            }
            line
        }
        Stage::Concluding(Conclusion::Failed {
            step,
            step_name,
            attempts,
            error,
        }) => format!(
            "failed at step {step} '{step_name}' after {attempts} attempt(s): {}; the result is not composed yet",
            one_line(error, 200)
        ),
        stage => format!("in progress ({stage}); {}", describe_next(job, &next)),
    };
    Diagnosis {
        headline,
        details,
        next,
    }
}

fn rejected_reason(job: &Job) -> Option<String> {
    match job.conclusion() {
        Some(Conclusion::Rejected { reason }) => Some(one_line(reason, 200)),
        _ => None,
    }
}

fn describe_next(job: &Job, next: &[Action]) -> String {
    let main = next.iter().find(|a| !matches!(a, Action::Ack));
    let name = |step: &u32| {
        job.step(*step).map_or_else(
            || format!("step {step}"),
            |s| format!("step {step} '{}'", s.step.name),
        )
    };
    let text = match main {
        None => "nothing to do".to_string(),
        Some(Action::Plan { phase }) => format!("a resume would plan phase {phase}"),
        Some(Action::Download {
            step,
            attempt,
            from_offset,
        }) => {
            format!(
                "a resume would download ({}, attempt {attempt}) from byte {from_offset}",
                name(step)
            )
        }
        Some(Action::Unpack { step, attempt }) => {
            format!("a resume would unpack ({}, attempt {attempt})", name(step))
        }
        Some(Action::RunScript { step, attempt }) => {
            let interrupted = job
                .step(*step)
                .is_some_and(|s| matches!(s.status, StepStatus::Running { .. }));
            format!(
                "a resume would run {} attempt {attempt}{}",
                name(step),
                if interrupted {
                    " (the previous attempt was interrupted; the script checks before it acts)"
                } else {
                    ""
                }
            )
        }
        Some(Action::Upload {
            step,
            attempt,
            from_offset,
            ..
        }) => {
            format!(
                "a resume would upload ({}, attempt {attempt}) from byte {from_offset}",
                name(step)
            )
        }
        Some(Action::Abandon { reason, .. }) => format!("a resume would give up: {reason}"),
        Some(Action::WaitUntil { until }) => format!("waiting until {until} for a retry or poll"),
        Some(Action::ComposeResult { conclusion }) => {
            format!(
                "a resume would compose the {} result",
                conclusion.status().as_str()
            )
        }
        Some(Action::Report { attempt }) => {
            format!(
                "a resume would send the result (delivery attempt {attempt}, same idempotency key)"
            )
        }
        Some(Action::Finish { .. }) => "a resume would close the job".to_string(),
        Some(Action::Ack) => "a resume would acknowledge the command".to_string(),
    };
    if next.iter().any(|a| matches!(a, Action::Ack)) {
        format!("{text}; the command is not acknowledged yet")
    } else {
        text
    }
}
