//! `sccm-connector jobs`: one line per job of a journal — id, kind, package, state, age and last
//! step — as an aligned table or a JSON array; quarantined and unreadable jobs included, with why.

use super::{CommandSummary, OpsError, format_age, known_jobs, short_id};
use crate::inspect::{self, JournalSource};
use ::replay::{JobId, JobState, LastStep, Timestamp};
use serde::Serialize;

/// One job, as `jobs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub id: JobId,
    pub command_id: Option<String>,
    /// `push`, `import`, `unrecognized`, or `unknown` for a job whose first record is unreadable.
    pub kind: &'static str,
    /// Name and version for a push; what was asked for an import.
    pub package: String,
    pub state: JobState,
    #[serde(serialize_with = "::replay::serialize_rfc3339_opt")]
    pub received_at: Option<Timestamp>,
    pub age_ms: Option<u64>,
    pub last_step: Option<LastStep>,
    /// Why a broken job is quarantined.
    pub reason: Option<String>,
}

/// The state named by `--state`, or an error listing the valid ones.
pub fn parse_state(word: &str) -> Result<JobState, OpsError> {
    JobState::parse(word).ok_or_else(|| OpsError::UnknownState {
        given: word.to_string(),
        valid: JobState::ALL.iter().map(|s| s.as_str()).collect(),
    })
}

/// Every job of the inspected journal as of `now`, oldest first.
pub fn rows(inspection: &inspect::Inspection, now: Timestamp) -> Vec<JobRow> {
    let (fleet, known) = known_jobs(inspection);
    let mut rows: Vec<JobRow> = known
        .into_iter()
        .map(|known| match fleet.job(known.id) {
            None if known.archived.is_some() => {
                let archived = fleet
                    .archived()
                    .find(|(_, a)| a.job == known.id)
                    .map(|(_, a)| a.clone());
                JobRow {
                    id: known.id,
                    command_id: known.command_id,
                    kind: archived
                        .as_ref()
                        .map_or("unknown", |a| ::replay::kind_label(a.kind)),
                    package: format!("(archived to {})", known.archived.as_deref().unwrap_or("?")),
                    state: JobState::Archived,
                    received_at: archived.as_ref().map(|a| a.received_at),
                    age_ms: archived.as_ref().map(|a| now.millis_since(a.received_at)),
                    last_step: None,
                    reason: None,
                }
            }
            Some(job) => JobRow {
                id: known.id,
                command_id: known.command_id,
                kind: ::replay::kind_label(job.kind()),
                package: CommandSummary::of(job.raw_command()).package,
                state: if known.broken.is_some() {
                    JobState::Broken
                } else {
                    JobState::of(job, now)
                },
                received_at: Some(job.received_at()),
                age_ms: Some(now.millis_since(job.received_at())),
                last_step: ::replay::last_step(job),
                reason: known.broken,
            },
            None => JobRow {
                id: known.id,
                command_id: known.command_id,
                kind: "unknown",
                package: "(unreadable command)".into(),
                state: JobState::Broken,
                received_at: None,
                age_ms: None,
                last_step: None,
                reason: known.broken,
            },
        })
        .collect();
    rows.sort_by_key(|r| (r.received_at, r.id));
    rows
}

/// Keeps the rows in `state`.
pub fn filter(rows: Vec<JobRow>, state: Option<JobState>) -> Vec<JobRow> {
    match state {
        Some(state) => rows.into_iter().filter(|r| r.state == state).collect(),
        None => rows,
    }
}

/// The aligned table (header included); broken jobs get their reason on the next line.
pub fn table(rows: &[JobRow]) -> String {
    let header = ["JOB", "KIND", "PACKAGE", "STATE", "AGE", "LAST STEP"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                short_id(r.id),
                r.kind.to_string(),
                r.package.clone(),
                r.state.as_str().to_string(),
                r.age_ms.map_or_else(|| "?".into(), format_age),
                r.last_step.as_ref().map_or_else(
                    || "-".to_string(),
                    |s| format!("{} {} ({})", s.index, s.name, s.status),
                ),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(str::to_string));
    for (row, cells) in rows.iter().zip(&cells) {
        out.push_str(&line(cells));
        if let Some(reason) = &row.reason {
            out.push_str(&format!("  └ broken: {reason}\n"));
        }
    }
    if rows.is_empty() {
        out.push_str("(no jobs)\n");
    }
    out
}

/// `sccm-connector jobs`: the table or JSON for the journal `source` names.
pub fn run(source: &JournalSource, state: Option<&str>, json: bool) -> Result<String, OpsError> {
    let state = state.map(parse_state).transpose()?;
    let inspection = inspect::open(source)?;
    let rows = filter(rows(&inspection, super::now()), state);
    if json {
        Ok(serde_json::to_string_pretty(&rows)? + "\n")
    } else {
        Ok(table(&rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::replay::testkit::canned;

    fn row(history: &::replay::testkit::History, now: Timestamp) -> JobRow {
        let job = history.fold().expect("folds");
        JobRow {
            id: job.id(),
            command_id: job.command_id().map(str::to_string),
            kind: ::replay::kind_label(job.kind()),
            package: CommandSummary::of(job.raw_command()).package,
            state: JobState::of(&job, now),
            received_at: Some(job.received_at()),
            age_ms: Some(now.millis_since(job.received_at())),
            last_step: ::replay::last_step(&job),
            reason: None,
        }
    }

    #[test]
    fn the_state_filter_keeps_only_that_state_and_names_valid_ones() {
        let now = canned::push_happy().now.plus_millis(3 * 60_000);
        let rows = vec![
            row(&canned::push_happy(), now),
            row(&canned::push_killed_in_step(), now),
            row(&canned::push_step_fails(), now),
        ];
        let running = filter(rows.clone(), Some(parse_state("running").expect("valid")));
        assert_eq!(running.len(), 1);
        assert_eq!(
            running[0].last_step.as_ref().map(|s| s.name.as_str()),
            Some("ensure-application")
        );
        assert_eq!(filter(rows.clone(), None).len(), 3);
        assert!(filter(rows, Some(JobState::Broken)).is_empty());
        let err = parse_state("done").expect_err("unknown");
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("\"done\"") && text.contains("running, waiting"),
            "{text}"
        );
    }

    #[test]
    fn the_table_is_aligned_and_shows_broken_reasons() {
        let now = canned::push_happy().now.plus_millis(3 * 60_000);
        let mut broken = row(&canned::push_killed_in_step(), now);
        broken.state = JobState::Broken;
        broken.reason = Some("job x, event #9 (StepStarted): divergence".into());
        let text = table(&[row(&canned::push_happy(), now), broken]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("JOB       KIND  PACKAGE"), "{text}");
        let state_col = lines[0].find("STATE").expect("a STATE column");
        assert_eq!(
            lines[1].get(state_col..state_col + 9),
            Some("succeeded"),
            "{text}"
        );
        assert_eq!(
            lines[2].get(state_col..state_col + 6),
            Some("broken"),
            "{text}"
        );
        assert!(lines[1].contains(" 3m "), "{text}");
        assert!(lines[1].ends_with("7 ensure-folder (succeeded)"), "{text}");
        assert!(lines[3].contains("broken: job x, event #9"), "{text}");
        assert_eq!(
            table(&[]),
            "JOB  KIND  PACKAGE  STATE  AGE  LAST STEP\n(no jobs)\n"
        );
    }
}
