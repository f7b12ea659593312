//! `sccm-connector jobs` and `replay` on real journals: a push through both simulators (one with
//! a step that fails every time, one read while the connector still runs and holds the journal),
//! then the real binary with `--journal` and `--config`. The output names the steps, their exact
//! script text and the diagnosis; the journal is left byte for byte as it was; an unknown job or
//! state exits with 2.

#![cfg(unix)]

use crate::support::case::{Case, app, package};
use crate::support::{connector, fingerprint};
use sccm_connector::inspect::{self, JournalSource};
use serde_json::{Value, json};
use std::process::Output;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        text(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
}

fn json_of(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("the output is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_is_listed_and_replayed_with_its_scripts_and_diagnosis() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "Add-CMScriptDeploymentType", "calls": [1, 2, 3, 4], "fault": {"kind": "fail", "message": "The content location is not accessible."}},
    ]))
    .await;
    let id = case
        .push(
            &app("Contoso_Diagnosed"),
            "Applications/Diagnosis",
            package("Diagnosed", 50_000),
        )
        .await;
    let results = case.run().await;
    assert_eq!(results[0]["status"], "failed", "{}", results[0]);
    let journal = case.setup.journal();
    let journal_arg = journal.display().to_string();
    let config = case.setup.write_config().display().to_string();
    let before = fingerprint(&journal);

    // jobs: the table, by --journal and by --config alike (ages aside: the clock moves on).
    let table = ok(connector(&["jobs", "--journal", &journal_arg]));
    let without_age = |mut rows: Value| {
        for row in rows.as_array_mut().into_iter().flatten() {
            row["age_ms"] = Value::Null;
        }
        rows
    };
    assert_eq!(
        without_age(json_of(connector(&[
            "jobs",
            "--journal",
            &journal_arg,
            "--json"
        ]))),
        without_age(json_of(connector(&["jobs", "--config", &config, "--json"]))),
        "--journal and --config read the same journal"
    );
    assert!(ok(connector(&["jobs", "--config", &config])).starts_with("JOB "));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("JOB "), "{table}");
    assert_eq!(lines.len(), 2, "{table}");
    for needed in [
        "push",
        "Diagnosed 3.46.3",
        "failed",
        "3 ensure-deployment-type (failed)",
    ] {
        assert!(lines[1].contains(needed), "{needed:?} missing: {table}");
    }
    // --json: full ids and RFC 3339 times; --state filters; an unknown state exits 2.
    let rows = json_of(connector(&["jobs", "--journal", &journal_arg, "--json"]));
    let job_id = rows[0]["id"].as_str().expect("a full id").to_string();
    assert_eq!(job_id.len(), 36);
    assert_eq!(rows[0]["command_id"], json!(id));
    assert_eq!(rows[0]["state"], "failed");
    assert!(
        rows[0]["received_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{rows}"
    );
    let failed = json_of(connector(&[
        "jobs",
        "--journal",
        &journal_arg,
        "--json",
        "--state",
        "failed",
    ]));
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    let running = json_of(connector(&[
        "jobs",
        "--journal",
        &journal_arg,
        "--json",
        "--state",
        "running",
    ]));
    assert_eq!(running.as_array().map(Vec::len), Some(0));
    let bogus = connector(&["jobs", "--journal", &journal_arg, "--state", "done"]);
    assert_eq!(bogus.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bogus.stderr);
    assert!(stderr.contains("succeeded, failed"), "{stderr}");

    // replay, by command id, by a prefix of the job id, by --config: the same screen.
    let screen = ok(connector(&["replay", &id, "--journal", &journal_arg]));
    let prefix = &job_id[..8];
    assert_eq!(
        ok(connector(&["replay", prefix, "--config", &config]))
            .lines()
            .filter(|l| !l.contains(" ago)"))
            .collect::<Vec<_>>(),
        screen
            .lines()
            .filter(|l| !l.contains(" ago)"))
            .collect::<Vec<_>>(),
    );
    for needed in [
        "COMMAND",
        "Demo devices",
        "Demo Distribution Group",
        "purpose            available",
        "TIMELINE",
        "StepFailed",
        "[0] download  (download, phase 0, required)  succeeded",
        "[3] ensure-deployment-type  (script, phase 0, required)  failed",
        "attempt 3: started",
        "TRANSFERS",
        "PORTAL",
        "delivery 1",
        "acknowledged",
        "DIAGNOSIS",
        "failing step: [3] ensure-deployment-type after 3 attempt(s)",
        "The content location is not accessible.",
        "a resume would do nothing for this job",
    ] {
        assert!(screen.contains(needed), "{needed:?} missing:\n{screen}");
    }
    // Every script's exact text, as journaled (read independently, from a copy).
    let inspection = inspect::open(&JournalSource::Dir(journal.clone())).expect("a copy opens");
    let job = inspection
        .store
        .job(replay::JobId(job_id.parse().expect("a uuid")))
        .expect("the job");
    let mut scripts = 0;
    for step in job.steps() {
        if let replay::StepKind::Script { script, .. } = &step.step.kind {
            assert!(
                screen.contains(script.as_str()),
                "the script of {} is not shown verbatim",
                step.step.name
            );
            scripts += 1;
        }
    }
    assert!(scripts >= 6, "{scripts} scripts");
    drop(inspection);
    // --json: the same as a document.
    let doc = json_of(connector(&[
        "replay",
        prefix,
        "--journal",
        &journal_arg,
        "--json",
    ]));
    assert_eq!(doc["job"], json!(job_id));
    assert_eq!(
        doc["diagnosis"]["failed_step"]["name"],
        "ensure-deployment-type"
    );
    assert_eq!(
        doc["steps"][3]["attempts"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(doc["command"]["package"], "Diagnosed 3.46.3");

    // Unknown jobs exit 2 with a message saying what to give.
    for unknown in ["ffffffff", "push-404", "ab"] {
        let out = connector(&["replay", unknown, "--journal", &journal_arg]);
        assert_eq!(out.status.code(), Some(2), "{unknown}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no job matches"), "{stderr}");
    }

    // Nothing of the journal changed: names, sizes, modification times, bytes.
    assert!(before == fingerprint(&journal), "the journal was modified");
    case.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_the_journal_of_a_running_connector() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Live"),
            "Applications/Diagnosis",
            package("Live", 50_000),
        )
        .await;
    let journal_arg = case.setup.journal().display().to_string();
    let (screen, rows) = {
        let case = &case;
        let id = id.clone();
        let mut seen = None;
        case.run_stopped_when(async {
            let result = case.wait_for_result(&id, || true).await;
            assert_eq!(result["status"], "ok", "{result}");
            // The daemon still runs and holds the journal (sled's lock) while we read it.
            let journal = journal_arg.clone();
            seen = Some(
                tokio::task::spawn_blocking(move || {
                    (
                        ok(connector(&["replay", &id, "--journal", &journal])),
                        json_of(connector(&["jobs", "--journal", &journal, "--json"])),
                    )
                })
                .await
                .expect("the reads"),
            );
        })
        .await;
        seen.expect("read while running")
    };
    for needed in [
        "ensure-application",
        "ensure-folder",
        "----- script (exact text,",
        "DIAGNOSIS",
    ] {
        assert!(screen.contains(needed), "{needed:?} missing:\n{screen}");
    }
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["command_id"], json!(id));
    case.verify().await;
}
