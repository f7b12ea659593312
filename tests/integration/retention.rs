//! Retention end to end: the daemon, configured to keep finished jobs for no time, archives a
//! finished push to a signed JSON Lines audit export and prunes it from the journal while it
//! runs; the archive verifies (on its own, with the public key, and against the pruned journal),
//! the journal still verifies with the job's records as stubs, `jobs` lists the job as archived,
//! `replay` names the archive, and the portal delivering the same command again (a portal
//! restored from an old backup) gets an acknowledgement and no second job, application or result.

#![cfg(unix)]

use crate::support::case::{Case, app, package};
use crate::support::connector;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);

fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    found.sort();
    found
}

fn run_ok(args: &[&str]) -> String {
    let out = connector(args);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_archived_pruned_and_its_command_never_runs_again() {
    let mut case = Case::new().await;
    let keys = case.dir.path().join("keys");
    run_ok(&["audit", "keygen", "--out", &keys.display().to_string()]);
    let private_key = keys.join("audit-signing.pem");
    let public_key = keys.join("audit-signing.pub.pem");
    case.setup.extra_toml = format!(
        "\n[retention]\nkeep_finished = \"0s\"\nsweep_every = \"1s\"\n\n[audit]\nsigning_key = '{}'\n",
        private_key.display()
    );
    let archive_dir = case.dir.path().join("archive");
    let id = case
        .push(
            &app("Contoso_Archived"),
            "Applications/Archive",
            package("Archived", 40_000),
        )
        .await;

    // Run until the job's result is delivered and a sweep has archived it.
    case.run_stopped_when(async {
        case.wait_for_result(&id, || true).await;
        let until = Instant::now() + DEADLINE;
        while archives(&archive_dir).is_empty() {
            assert!(Instant::now() < until, "no archive within {DEADLINE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let summary = case.verify().await;
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert!(summary.pruned_records >= 10, "{summary:?}");

    // The archive: every record of the job, verifiable alone, signed, and held by the journal.
    let archive = archives(&archive_dir).remove(0);
    let archive_arg = archive.display().to_string();
    let journal_arg = case.setup.journal().display().to_string();
    let verified = run_ok(&[
        "verify",
        &archive_arg,
        "--public-key",
        &public_key.display().to_string(),
    ]);
    assert!(verified.contains("records valid"), "{verified}");
    let pinned = run_ok(&["verify", &archive_arg, "--journal", &journal_arg]);
    assert!(pinned.contains("records valid"), "{pinned}");
    let text = std::fs::read_to_string(&archive).expect("the archive reads");
    assert!(
        text.contains("Add-CMScriptDeploymentType"),
        "the scripts are archived"
    );
    assert!(text.contains(&id), "the command is archived");
    let journal = run_ok(&["verify", "--journal", &journal_arg]);
    assert!(journal.contains("records valid"), "{journal}");

    // The operator's view: archived, pointing at the file.
    let jobs = run_ok(&["jobs", "--journal", &journal_arg]);
    assert!(jobs.contains("archived"), "{jobs}");
    let name = archive
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    assert!(jobs.contains(&name), "{jobs}");
    let replay = connector(&["replay", &id, "--journal", &journal_arg]);
    assert!(!replay.status.success());
    let said = String::from_utf8_lossy(&replay.stderr);
    assert!(said.contains(&name) && said.contains("pruned"), "{said}");

    // The portal delivers the command again: acknowledged, not run.
    let before = case.portal.command(&id).await;
    case.portal.redeliver(&id).await;
    case.run_stopped_when(async {
        let until = Instant::now() + DEADLINE;
        loop {
            let view = case.portal.command(&id).await;
            if view["acked"] == true && view["delivered"].as_u64() > before["delivered"].as_u64() {
                break;
            }
            assert!(Instant::now() < until, "not acknowledged again: {view}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let after = case.portal.command(&id).await;
    assert_eq!(after["results"], before["results"], "no second result");
    let summary = case.verify().await;
    assert_eq!(
        summary.jobs, 1,
        "still one job for the command: {summary:?}"
    );
}
