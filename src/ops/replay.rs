//! `sccm-connector replay JOB`: one job on one screen — the command and its targets, the timeline,
//! every step with its exact script text and attempts, the transfers, the exchange with the
//! portal, and the diagnosis — as text, or the same as one JSON document.

use super::{CommandSummary, OpsError, format_age, format_duration, known_jobs, resolve};
use crate::inspect::{self, JournalSource};
use ::replay::{Overview, Timestamp, overview};
use serde::Serialize;
use std::fmt::Write as _;

/// Everything `replay` shows about one job.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The journal directory the copy was taken from.
    pub journal: String,
    #[serde(serialize_with = "::replay::serialize_rfc3339")]
    pub now: Timestamp,
    pub command: CommandSummary,
    #[serde(flatten)]
    pub overview: Overview,
}

/// Builds the replay of the job `query` names in the journal `source` names, as of `now`.
pub fn build(source: &JournalSource, query: &str, now: Timestamp) -> Result<Replay, OpsError> {
    let inspection = inspect::open(source)?;
    let (fleet, known) = known_jobs(&inspection);
    let id = resolve(&known, query)?;
    if let Some(archive) = known
        .iter()
        .find(|k| k.id == id)
        .and_then(|k| k.archived.clone())
    {
        return Err(OpsError::Archived {
            job: id.to_string(),
            archive,
        });
    }
    let entries = inspection.store.entries(id)?;
    let broken = known
        .iter()
        .find(|k| k.id == id)
        .and_then(|k| k.broken.clone());
    // A job whose very first record is unreadable has no fold to show, only its reason.
    let Some(job) = fleet.job(id) else {
        return Err(OpsError::Unreadable {
            job: id.to_string(),
            reason: broken.unwrap_or_else(|| "it has no readable record".into()),
        });
    };
    let mut overview = overview(job, &entries, now);
    if let Some(reason) = &broken {
        overview = overview.broken(reason);
    }
    Ok(Replay {
        journal: inspection.source_dir.display().to_string(),
        now,
        command: CommandSummary::of(job.raw_command()),
        overview,
    })
}

/// `sccm-connector replay`: the text or JSON for the job `query` names.
pub fn run(source: &JournalSource, query: &str, json: bool) -> Result<String, OpsError> {
    let replay = build(source, query, super::now())?;
    if json {
        Ok(serde_json::to_string_pretty(&replay)? + "\n")
    } else {
        Ok(render(&replay))
    }
}

/// Indents every line of `text` by `pad`.
fn indented(out: &mut String, pad: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{pad}{line}");
    }
    if text.is_empty() {
        let _ = writeln!(out, "{pad}(empty)");
    }
}

fn time_and_age(at: Timestamp, now: Timestamp) -> String {
    format!("{at} ({} ago)", format_age(now.millis_since(at)))
}

/// The text rendering, section by section.
pub fn render(r: &Replay) -> String {
    let o = &r.overview;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Job {}  {}  command {}",
        o.job,
        o.kind,
        o.command_id.as_deref().unwrap_or("(no id)")
    );
    let _ = writeln!(out, "  state       {} ({})", o.state.as_str(), o.stage);
    let _ = writeln!(out, "  received    {}", time_and_age(o.received_at, r.now));
    let _ = writeln!(
        out,
        "  last event  {} — {} events, {}/{} phase(s) planned",
        time_and_age(o.last_event_at, r.now),
        o.events,
        o.phases_planned,
        o.phases_total
    );
    let _ = writeln!(out, "  verdict     {}", o.diagnosis.headline);
    let _ = writeln!(out, "  journal     {} (read from a copy)", r.journal);

    let _ = writeln!(out, "\nCOMMAND ({} bytes as received)", r.command.raw_bytes);
    let width = r
        .command
        .fields
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0);
    if r.command.fields.is_empty() {
        let _ = writeln!(
            out,
            "  (not a readable push or import; `--json` shows what could be read)"
        );
    }
    for field in &r.command.fields {
        let _ = writeln!(out, "  {:width$}  {}", field.name, field.value);
    }

    let _ = writeln!(out, "\nTIMELINE (time, since the first event, gap, event)");
    for row in &o.timeline {
        let _ = writeln!(
            out,
            "  {}  {:>8}  {:>8}  {:18}  {}",
            row.at,
            format!("+{}", format_duration(row.since_start_ms)),
            format!("+{}", format_duration(row.gap_ms)),
            row.event,
            row.summary
        );
    }

    let _ = writeln!(out, "\nSTEPS");
    if o.steps.is_empty() {
        let _ = writeln!(out, "  (none planned)");
    }
    for step in &o.steps {
        let _ = writeln!(
            out,
            "  [{}] {}  ({}, phase {}, {})  {}{}",
            step.index,
            step.name,
            step.kind,
            step.phase,
            if step.required {
                "required"
            } else {
                "optional"
            },
            step.status,
            step.waiting_until
                .map(|t| format!(" until {t}"))
                .unwrap_or_default()
        );
        for target in &step.target {
            let _ = writeln!(out, "      {:11} {}", target.name, target.value);
        }
        if let Some(offset) = step.offset {
            let _ = writeln!(out, "      {:11} {offset}", "offset");
        }
        if let Some(id) = &step.upload_id {
            let _ = writeln!(out, "      {:11} {id}", "upload id");
        }
        if let Some(poll) = step.poll {
            let _ = writeln!(
                out,
                "      polls every {}, gives up after {}",
                format_duration(poll.interval_ms),
                format_duration(poll.timeout_ms)
            );
        }
        if let Some(script) = &step.script {
            let _ = writeln!(
                out,
                "      ----- script (exact text, {} bytes) -----",
                script.len()
            );
            out.push_str(script);
            if !script.ends_with('\n') {
                out.push('\n');
            }
            let _ = writeln!(out, "      ----- end of script -----");
        }
        for a in &step.attempts {
            let _ = writeln!(
                out,
                "      attempt {}: started {}, {}{}, {}{}",
                a.number,
                a.started_at,
                a.ended_at
                    .map_or_else(|| "no end journaled".to_string(), |t| format!("ended {t}")),
                a.duration_ms
                    .map(|d| format!(" ({})", format_duration(d)))
                    .unwrap_or_default(),
                a.outcome,
                match (a.retryable, a.exit_code) {
                    (Some(true), _) => ", retryable".to_string(),
                    (Some(false), _) => ", permanent".to_string(),
                    _ => String::new(),
                } + &a
                    .exit_code
                    .map_or_else(String::new, |c| format!(", exit code {c}"))
            );
            if let Some(output) = &a.output {
                let _ = writeln!(out, "        output:");
                indented(&mut out, "          ", output);
            }
            if let Some(error) = &a.error {
                let _ = writeln!(out, "        error:");
                indented(&mut out, "          ", error);
            }
        }
    }

    let _ = writeln!(out, "\nTRANSFERS");
    if o.transfers.is_empty() {
        let _ = writeln!(out, "  (none journaled)");
    }
    for t in &o.transfers {
        let progress = match (t.offset, t.total) {
            (Some(offset), Some(total)) if total > 0 => {
                format!(
                    "byte {offset} of {total} ({}%)",
                    offset.saturating_mul(100) / total
                )
            }
            (Some(offset), _) => format!("byte {offset}"),
            (None, Some(total)) => format!("{total} bytes"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}  [{}] {}  {}  {}{}",
            t.at,
            t.step,
            t.step_name,
            t.what,
            progress,
            t.note
                .as_ref()
                .map(|n| format!("  {n}"))
                .unwrap_or_default()
        );
    }

    let _ = writeln!(out, "\nPORTAL");
    let p = &o.portal;
    let _ = writeln!(
        out,
        "  command acknowledged  {}",
        p.acknowledged_at
            .map_or_else(|| "not yet".to_string(), |t| t.to_string())
    );
    match &p.result {
        Some(result) => {
            let _ = writeln!(
                out,
                "  result                {} at {}, idempotency key {}",
                result.status, result.ready_at, result.idempotency_key
            );
            indented(&mut out, "    ", &result.body);
        }
        None => {
            let _ = writeln!(out, "  result                not composed yet");
        }
    }
    for d in &p.deliveries {
        let _ = writeln!(
            out,
            "  delivery {}            sent {}, {}{}{}",
            d.attempt,
            d.sent_at,
            d.outcome,
            d.answered_at
                .map(|t| format!(" at {t}"))
                .unwrap_or_default(),
            d.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    if let (Some(at), Some(delivered)) = (p.finished_at, p.delivered) {
        let _ = writeln!(
            out,
            "  finished              {at}{}",
            if delivered {
                ", result delivered"
            } else {
                ", result NOT delivered"
            }
        );
    }

    let _ = writeln!(out, "\nDIAGNOSIS");
    let _ = writeln!(out, "  {}", o.diagnosis.headline);
    if let Some(reason) = &o.broken {
        let _ = writeln!(out, "  broken: {reason}");
    }
    if let Some(f) = &o.diagnosis.failed_step {
        let _ = writeln!(
            out,
            "  failing step: [{}] {} after {} attempt(s); its error:",
            f.index, f.name, f.attempts
        );
        indented(&mut out, "    ", &f.error);
    }
    for detail in &o.diagnosis.details {
        let _ = writeln!(out, "  {detail}");
    }
    if o.diagnosis.next.is_empty() {
        let _ = writeln!(out, "  a resume would do nothing for this job");
    } else {
        let _ = writeln!(out, "  a resume would:");
        for action in &o.diagnosis.next {
            let _ = writeln!(out, "    - {action}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::replay::testkit::{History, canned};

    fn replay_of(history: &History) -> Replay {
        let job = history.fold().expect("folds");
        let now = history.now.plus_millis(90_000);
        Replay {
            journal: "/var/lib/sccm-connector/journal".into(),
            now,
            command: CommandSummary::of(job.raw_command()),
            overview: overview(&job, &history.entries, now),
        }
    }

    #[test]
    fn a_failed_push_reads_with_its_scripts_attempts_and_diagnosis() {
        let text = render(&replay_of(&canned::push_step_fails()));
        for needed in [
            "state       concluding",
            "----- script (exact text, 25 bytes) -----\n# ensure-deployment-type\n      ----- end of script -----",
            "attempt 3: started",
            "(2.0s), failed, retryable",
            "The content location '\\\\srv\\src$\\x' does not exist or is empty.",
            "failing step: [3] ensure-deployment-type after 3 attempt(s)",
            "compose the failed result",
            "url         /api/connector/v1/packages/pkg-5c2a",
        ] {
            assert!(text.contains(needed), "missing {needed:?} in:\n{text}");
        }
    }

    #[test]
    fn a_killed_push_says_what_a_resume_runs() {
        let text = render(&replay_of(&canned::push_killed_in_step()));
        assert!(
            text.contains("- run the script of step 2 'ensure-application' as attempt 2"),
            "{text}"
        );
        assert!(text.contains("no end journaled"), "{text}");
        assert!(
            text.contains("result                not composed yet"),
            "{text}"
        );
    }

    #[test]
    fn the_json_document_has_full_ids_and_rfc3339_times() {
        let history = canned::import_two_apps();
        let value = serde_json::to_value(replay_of(&history)).expect("json");
        assert_eq!(value["job"], history.job.to_string());
        assert_eq!(value["state"], "succeeded");
        assert_eq!(value["received_at"], "2020-01-31T09:12:00.000Z");
        assert_eq!(value["steps"][4]["attempts"][0]["outcome"], "succeeded");
        assert_eq!(value["transfers"][2]["offset"], 1000);
        assert_eq!(value["portal"]["deliveries"][0]["outcome"], "acknowledged");
        assert!(
            value["diagnosis"]["headline"]
                .as_str()
                .is_some_and(|h| h.starts_with("finished ok"))
        );
    }
}
