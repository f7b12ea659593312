//! Fault injection end to end: the real daemon (in process) against the portal simulator and the
//! site simulator (its PowerShell host a child process, as production's `powershell.exe`), one
//! fault plan per test. Every case ends in the right result without loss: exactly one effective
//! result per command (one idempotency key), one job per command in a journal that verifies with
//! every job finished, a site whose effect log accounts for its state with no object created
//! twice, and share folders holding exactly their packages.
//!
//! Portal faults: 5xx bursts, a connection reset mid-download, a truncated download, a download
//! with the wrong SHA-256, duplicate deliveries, a lost answer to the result, 401 (an unknown
//! remote ID, then the right one; a refused result), resets mid-upload and a lost answer to the
//! upload's completion. PowerShell faults: a cmdlet failing once (retried, then ok) or every time
//! (`failed`, naming the step and the error), garbage output, a host exiting non-zero after its
//! effect, a hang (the step timeout kills the host), a crash after the effect.

#![cfg(unix)]

use crate::support::case::{Case, DEADLINE, app, assert_ok, package};
use crate::support::e2e;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ portal faults --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_5xx_bursts_are_retried_into_one_ok_result() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Burst"),
            "Applications/Faults",
            package("Burst", 300_000),
        )
        .await;
    let result_path = format!("/api/connector/v1/commands/{id}/result");
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "status", "status": 503, "retry_after": 1, "path": "/api/connector/v1/commands", "method": "GET", "times": 3},
            {"kind": "status", "status": 502, "path": format!("/api/connector/v1/commands/{id}/ack"), "times": 2},
            {"kind": "status", "status": 500, "path": "/api/connector/v1/packages/", "times": 2},
            {"kind": "status", "status": 503, "path": result_path, "times": 3},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    let posts = case.requests_to(&result_path).await;
    assert!(
        posts.len() >= 4,
        "three refusals, then the result: {posts:?}"
    );
    assert!(case.portal.command(&id).await["acked"] == true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_reset_mid_body_resumes_where_it_broke() {
    let mut case = Case::new().await;
    case.push(
        &app("Contoso_Reset"),
        "Applications/Faults",
        package("Reset", 3 << 20),
    )
    .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "reset", "after_bytes": 1_000_000, "path": "/api/connector/v1/packages/", "times": 2},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    let gets = case.requests_to("/api/connector/v1/packages/").await;
    assert!(
        gets.iter()
            .any(|r| r["range"].as_str().is_some_and(|v| v != "bytes=0-")),
        "a later request resumes with a Range: {gets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_download_is_completed_and_verified() {
    let mut case = Case::new().await;
    case.push(
        &app("Contoso_Truncated"),
        "Applications/Faults",
        package("Truncated", 2 << 20),
    )
    .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "truncate", "after_bytes": 700_000, "path": "/api/connector/v1/packages/", "times": 1},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    assert!(case.requests_to("/api/connector/v1/packages/").await.len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_with_the_wrong_sha256_starts_over_and_succeeds() {
    let mut case = Case::new().await;
    case.push(
        &app("Contoso_Flipped"),
        "Applications/Faults",
        package("Flipped", 500_000),
    )
    .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "wrong_sha256", "path": "/api/connector/v1/packages/", "times": 1},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert!(
        journal
            .failures
            .iter()
            .any(|f| f.starts_with("download") && f.to_lowercase().contains("sha")),
        "the first attempt failed on its SHA-256: {:?}",
        journal.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_run_each_command_once() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Twice"),
            "Applications/Faults",
            package("Twice", 100_000),
        )
        .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "duplicate_delivery", "path": "/api/connector/v1/commands", "method": "GET", "times": 4},
            // The acknowledgement is taken but its answer lost: the command is delivered again.
            {"kind": "drop_response", "path": format!("/api/connector/v1/commands/{id}/ack"), "times": 1},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    // `verify` checks one job per command in the journal.
    case.verify().await;
    assert!(
        case.portal.command(&id).await["delivered"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_answer_is_lost_is_resent_under_the_same_key() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Lost"),
            "Applications/Faults",
            package("Lost", 100_000),
        )
        .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "drop_response", "path": format!("/api/connector/v1/commands/{id}/result"), "times": 2},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    let view = case.portal.command(&id).await;
    assert!(
        view["results"][0]["deliveries"].as_u64().unwrap_or(0) >= 2,
        "delivered again, deduplicated by its key: {view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_until_the_remote_id_is_fixed_then_one_result() {
    let mut case = Case::with_remote_ids(vec![e2e::REMOTE_ID.to_string()]).await;
    let id = case
        .push(
            &app("Contoso_Auth"),
            "Applications/Faults",
            package("Auth", 100_000),
        )
        .await;
    // A wrong remote ID: every poll is refused; nothing is received.
    case.setup.remote_id = "00000000-0000-4000-8000-000000000000".into();
    case.run_stopped_when(async {
        let polls = case
            .portal
            .wait_for_requests(1, "GET", "/api/connector/v1/commands")
            .await;
        // The answer's status is logged once sent.
        let until = Instant::now() + DEADLINE;
        loop {
            let log = case.requests_to("/api/connector/v1/commands").await;
            if log.iter().any(|r| r["status"] == 401) {
                break;
            }
            assert!(Instant::now() < until, "no 401 logged: {polls:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(case.portal.command(&id).await["delivered"], 0);
    // Fixed; the first result delivery is refused with 401 too, and is sent again.
    case.setup.remote_id = e2e::REMOTE_ID.into();
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "status", "status": 401, "path": format!("/api/connector/v1/commands/{id}/result"), "times": 1},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert_eq!(journal.runs, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resets_and_a_lost_completion_end_in_complete_sources() {
    let mut case = Case::new().await;
    let name = app("Contoso_Upload");
    let zip = package("Upload", 1 << 20);
    case.push(&name, "Applications/Faults", zip.clone()).await;
    let first = case.commands.clone();
    let pushed = case.run_until(&first).await;
    assert_ok(&pushed[0]);
    let import = case.import(std::slice::from_ref(&name)).await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "reset", "after_bytes": 300_000, "path": "/api/connector/v1/uploads/", "method": "PUT", "times": 2},
            {"kind": "drop_response", "path": "/api/connector/v1/uploads/", "method": "POST", "times": 1},
        ]}))
        .await;
    let results = case.run_until(std::slice::from_ref(&import)).await;
    assert_ok(&results[0]);
    case.verify().await;
    let apps = results[0]["import"]["applications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(apps.len(), 1, "{}", results[0]);
    let upload = apps[0]["upload_id"].as_str().expect("an upload id");
    let info = case.portal.upload_info(upload).await;
    assert_eq!(info["complete"], true, "{info}");
    let hex: String = upload.bytes().map(|b| format!("{b:02x}")).collect();
    let bytes = std::fs::read(case.dir.path().join("portal/uploads").join(hex))
        .expect("the upload's bytes");
    assert_eq!(info["sha256"], json!(e2e::sha256_hex(&bytes)));
    assert_eq!(
        e2e::zip_digest(&bytes),
        e2e::zip_digest(&zip),
        "the sources are the package's files"
    );
    let puts = case.requests_to("/api/connector/v1/uploads/").await;
    assert!(
        puts.iter().filter(|r| r["method"] == "PUT").count() >= 3,
        "{puts:?}"
    );
}

// ------------------------------------------------------------------ PowerShell faults --

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmdlet_failing_once_is_retried_then_ok() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "New-CMApplication", "calls": [1], "fault": {"kind": "fail", "message": "Access is denied."}},
    ]))
    .await;
    case.push(
        &app("Contoso_Denied"),
        "Applications/Faults",
        package("Denied", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert_eq!(journal.failures.len(), 1, "{:?}", journal.failures);
    assert!(
        journal.failures[0].starts_with("ensure-application")
            && journal.failures[0].contains("Access is denied.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_reported_failed_naming_the_step_and_the_error() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "Add-CMScriptDeploymentType", "calls": [1, 2, 3, 4], "fault": {"kind": "fail", "message": "The content location is not accessible."}},
    ]))
    .await;
    let name = app("Contoso_Refused");
    case.push(&name, "Applications/Faults", package("Refused", 50_000))
        .await;
    let results = case.run().await;
    let result = &results[0];
    assert_eq!(result["status"], "failed", "{result}");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ensure-deployment-type")
            && error.contains("The content location is not accessible."),
        "the error names the step and PowerShell's message: {error}"
    );
    let journal = case.verify().await;
    assert_eq!(
        journal.failures.len(),
        3,
        "max_attempts = 3: {:?}",
        journal.failures
    );
    // Nothing after the failed step ran: the application exists without a deployment type,
    // distribution or deployment.
    let dump = e2e::site_dump(&case.setup.site);
    let state = &dump["state"];
    assert_eq!(state["applications"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        state["applications"][0]["deployment_types"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(state["distributions"].as_array().map(Vec::len), Some(0));
    assert_eq!(state["deployments"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_is_retried_then_ok() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "Get-CMDeploymentType", "calls": [1], "fault": {"kind": "garbage"}},
    ]))
    .await;
    case.setup.mode = "per-step".into();
    case.push(
        &app("Contoso_Garbled"),
        "Applications/Faults",
        package("Garbled", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert!(
        journal
            .failures
            .iter()
            .any(|f| f.starts_with("ensure-deployment-type") && f.contains("unusable output")),
        "{:?}",
        journal.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_exiting_non_zero_after_its_effect_is_retried_without_a_second_deployment() {
    // Per step, the dead process is the attempt: it is journaled as failed and retried.
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "New-CMApplicationDeployment", "calls": [1], "after_effect": true, "fault": {"kind": "exit", "code": 5}},
    ]))
    .await;
    case.setup.mode = "per-step".into();
    case.push(
        &app("Contoso_Exit"),
        "Applications/Faults",
        package("Exit", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert!(
        journal
            .failures
            .iter()
            .any(|f| f.starts_with("ensure-deployment") && f.contains("exited without a result")),
        "{:?}",
        journal.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_host_dying_after_its_effect_is_replaced_and_the_step_rerun_transparently() {
    // In a session, the runner replaces the dead host and runs the step again at once: the
    // guard finds the deployment, nothing is created twice, and no attempt is spent.
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "New-CMApplicationDeployment", "calls": [1], "after_effect": true, "fault": {"kind": "exit", "code": 5}},
    ]))
    .await;
    assert_eq!(case.setup.mode, "session");
    case.push(
        &app("Contoso_SessionExit"),
        "Applications/Faults",
        package("SessionExit", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert!(
        !journal
            .failures
            .iter()
            .any(|f| f.starts_with("ensure-deployment")),
        "{:?}",
        journal.failures
    );
    let dump = crate::support::e2e::site_dump(&case.setup.site);
    let calls = &dump["state"]["calls"];
    // The step ran twice (the host died after creating the deployment), created it once.
    assert_eq!(
        calls["New-CMApplicationDeployment"].as_u64(),
        Some(1),
        "{calls}"
    );
    assert_eq!(
        calls["Get-CMApplicationDeployment"].as_u64(),
        Some(2),
        "{calls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_host_is_killed_by_the_step_timeout_then_ok() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "Get-CMFolder", "calls": [1], "fault": {"kind": "hang"}},
    ]))
    .await;
    case.setup.step_timeout_seconds = 2;
    case.push(
        &app("Contoso_Hang"),
        "Applications/Faults/Deep",
        package("Hang", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert!(
        journal
            .failures
            .iter()
            .any(|f| f.starts_with("ensure-folder") && f.contains("did not finish within 2 s")),
        "{:?}",
        journal.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_crashing_after_its_effect_creates_nothing_twice() {
    let mut case = Case::with_site_faults(json!([
        {"cmdlet": "New-CMApplication", "calls": [1], "fault": {"kind": "crash"}},
        {"cmdlet": "Move-CMObject", "calls": [1], "fault": {"kind": "crash"}},
    ]))
    .await;
    case.setup.mode = "per-step".into();
    case.push(
        &app("Contoso_Crash"),
        "Applications/Faults",
        package("Crash", 50_000),
    )
    .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let journal = case.verify().await;
    assert_eq!(journal.failures.len(), 2, "{:?}", journal.failures);
    let dump = e2e::site_dump(&case.setup.site);
    let created = dump["state"]["effects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["cmdlet"] == "New-CMApplication")
        .count();
    assert_eq!(
        created, 1,
        "the retry found the application the crashed host created"
    );
}

// ------------------------------------------------------------------ scale --

/// An import of every application of a site of 40, each with a 2 KB description (so the plan of
/// its metadata phase, the SDMPackageXML outputs and the result are each far above 32 KiB, the
/// journal's largest unfragmented record): one ok result listing all 40 with their metadata and
/// uploaded sources, and a journal that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_forty_applications_journals_large_plans_and_outputs() {
    const APPS: usize = 40;
    let mut case = Case::new().await;
    let description = "Packaged for the whole estate. ".repeat(80);
    let applications: Vec<Value> = (0..APPS)
        .map(|i| {
            json!({
                "name": format!("Contoso Tool {i:02}"),
                "publisher": "Contoso",
                "version": format!("1.{i}"),
                "description": &description[..2000],
                "folder": format!("Applications/Scale/{}", i % 4),
                "deployment_types": [{
                    "name": format!("Contoso Tool {i:02}_DT"),
                    "content_location": format!("{}\\apps\\tool{i:02}", e2e::SHARE_ROOT),
                    "files": {"setup.msi": format!("MSI {i} ").repeat(500), "Files/readme.txt": "hello"},
                    "install_command": "msiexec /i setup.msi /qn",
                }],
            })
        })
        .collect();
    let seed_file = case.dir.path().join("seed.json");
    std::fs::write(
        &seed_file,
        json!({"applications": applications}).to_string(),
    )
    .expect("the seed file");
    let site = case.setup.site.display().to_string();
    let seeded = crate::support::connector(&[
        "sim",
        "site",
        "--site",
        &site,
        "seed",
        seed_file.to_str().expect("utf-8"),
    ]);
    assert!(
        seeded.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    case.import(&[]).await;
    let results = case.run().await;
    assert_ok(&results[0]);
    let apps = results[0]["import"]["applications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(apps.len(), APPS, "{}", results[0]);
    for app in &apps {
        assert!(app["error"].is_null(), "{app}");
        assert!(app["metadata"]["version"].is_string(), "{app}");
        assert!(app["upload_id"].is_string(), "{app}");
    }
    case.verify().await;
}

/// A command larger than the connector accepts is journaled (its first MiB) and rejected with
/// its real size: one `rejected` result, nothing run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_command_is_rejected_naming_its_size() {
    let mut case = Case::new().await;
    let mut command = e2e::import_command("import-huge", &[], true);
    command["padding"] = json!("x".repeat(1_500_000));
    case.portal.add_command(&command.to_string()).await;
    case.commands.push("import-huge".into());
    let results = case.run().await;
    assert_eq!(results[0]["status"], "rejected", "{}", results[0]);
    let error = results[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("is 1500") && error.contains("at most 1048576"),
        "{error}"
    );
    case.verify().await;
}
