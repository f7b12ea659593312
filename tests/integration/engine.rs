//! The engine end to end (the daemon in process against both simulators): what a job does beyond
//! the happy path — progress posts during long transfers, results kept through portal downtime,
//! job slots released while jobs wait, prompt shutdown against a portal that never answers,
//! broken applications in an import, an upload whose spool archive vanished.

#![cfg(unix)]

use crate::portal_support::refuse_until_request;
use crate::support::case::{Case, DEADLINE, app, assert_ok, package};
use serde_json::json;
use std::time::Duration;

/// A download that stalls longer than the progress interval (10 s) mid-body posts its progress
/// to the portal, under the command and the step's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_download_posts_progress_to_the_portal() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Progress"),
            "Applications/Engine",
            package("Progress", 2 << 20),
        )
        .await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "delay", "ms": 10_500, "after_bytes": 1 << 20, "path": "/api/connector/v1/packages/"},
        ]}))
        .await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    let view = case.portal.command(&id).await;
    let progress = view["progress"].as_array().cloned().unwrap_or_default();
    assert!(!progress.is_empty(), "no progress was posted: {view}");
    let post = &progress[0];
    assert_eq!(post["state"], "downloading", "{post}");
    assert!(post["bytes_done"].as_u64().unwrap_or(0) > 0, "{post}");
    assert!(
        post["bytes_total"].as_u64().unwrap_or(0) >= post["bytes_done"].as_u64().unwrap_or(0),
        "{post}"
    );
    assert!(
        post["step"].as_str().is_some_and(|s| !s.is_empty()),
        "{post}"
    );
}

/// A result refused with `503 Retry-After: 1`, then the portal down (connections closed without
/// an answer, then refused) while the result waits, then the portal back: the result is sent
/// again until acknowledged and the command ends with exactly one effective result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_pending_while_the_portal_is_down_is_delivered_once_it_is_back() {
    let mut case = Case::new().await;
    let id = case
        .push(
            &app("Contoso_Down"),
            "Applications/Engine",
            package("Down", 100_000),
        )
        .await;
    let result_path = format!("/api/connector/v1/commands/{id}/result");
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "status", "status": 503, "retry_after": 1, "path": result_path, "times": 1},
        ]}))
        .await;
    let daemon = case.start_daemon();
    case.portal.wait_for_requests(1, "POST", &result_path).await;
    assert!(case.portal.command(&id).await["effective_result"].is_null());

    // The portal goes down with the result pending; the connector tries again meanwhile.
    let addr = case.portal.addr();
    case.portal.stop().await;
    let tried = refuse_until_request(addr, &format!("POST {result_path}"), DEADLINE).await;
    assert!(
        tried,
        "the result was not sent again while the portal was down"
    );
    assert!(daemon.is_running());

    case.portal.restart().await;
    let result = case.wait_for_result(&id, || daemon.is_running()).await;
    assert_ok(&result);
    // The job closes after the acknowledgement: its spool folder goes.
    case.wait_jobs_finished().await;
    daemon.stop().await;
    case.verify().await;
    let view = case.portal.command(&id).await;
    let results = view["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 1, "exactly one effective result: {view}");
}

/// With two job slots, two pushes that wait (a distribution that takes many polls, one second
/// apart) do not keep a third job out: once both are polling, an import arrives, runs and
/// reports while both still wait. (Holding the slots while waiting, the import would wait for a
/// push to finish: 1000 polls.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_job_runs_while_two_jobs_wait() {
    let mut case = Case::new().await;
    assert_eq!(case.setup.concurrency, 2);
    crate::support::e2e::init_site(
        &case.setup.site,
        &case.setup.share,
        &["--distribution-polls", "1000"],
    );
    let slow: Vec<String> = vec![
        case.push(
            &app("Contoso_WaitA"),
            "Applications/Engine",
            package("WaitA", 50_000),
        )
        .await,
        case.push(
            &app("Contoso_WaitB"),
            "Applications/Engine",
            package("WaitB", 50_000),
        )
        .await,
    ];
    let daemon = case.start_daemon();
    // Both pushes started their distribution and are polling it.
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let dump = crate::support::e2e::site_dump(&case.setup.site);
        let calls = &dump["state"]["calls"];
        let started = calls["Start-CMContentDistribution"].as_u64().unwrap_or(0);
        let polled = calls["Get-CMDistributionStatus"].as_u64().unwrap_or(0);
        if started >= 2 && polled >= 4 {
            break;
        }
        assert!(daemon.is_running(), "the daemon stopped");
        assert!(
            std::time::Instant::now() < until,
            "the pushes never polled: {calls}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = case.import(&[]).await;
    let result = case.wait_for_result(&third, || daemon.is_running()).await;
    assert_ok(&result);
    for id in &slow {
        let view = case.portal.command(id).await;
        assert!(
            view["effective_result"].is_null(),
            "{id} should still be waiting for its distribution: {view}"
        );
    }
    daemon.stop().await;
}

/// A portal that accepts the connection and never answers (its poll hangs in the read timeout,
/// then in the client's retries): SIGTERM still stops `run` at once, cleanly (exit 0, the stop
/// journaled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_run_promptly_while_the_portal_never_answers() {
    let dir = crate::support::temp_dir();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!("http://{}", silent.local_addr().expect("its address"));
    let setup = crate::support::e2e::Setup::new(dir.path(), &url);
    let config = setup.write_config();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(["run", "--config", &config.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run starts");
    // The poll is in flight once the listener took its connection; it is never answered.
    let (connection, _) = tokio::time::timeout(DEADLINE, silent.accept())
        .await
        .expect("the connector polls")
        .expect("a connection");
    crate::support::sigterm(&child).await;
    let asked = std::time::Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("run did not stop within 10 s of SIGTERM"))
        .expect("run exits");
    assert!(asked.elapsed() < Duration::from_secs(10));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {log}", output.status);
    assert!(log.contains("connector stopped"), "{log}");
    drop(connection);
}

/// An import of a seeded application without any deployment type (its SDMPackageXML names no
/// content location, so there is nothing to upload) reports it with an error, not silently
/// without sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_application_without_content_is_reported_with_an_error() {
    let mut case = Case::new().await;
    let seed = case.dir.path().join("seed.json");
    std::fs::write(
        &seed,
        json!({"applications": [{"name": "Contoso_NoContent", "version": "1.0"}]}).to_string(),
    )
    .expect("the seed is written");
    let out = crate::support::connector(&[
        "sim",
        "site",
        "--site",
        &case.setup.site.display().to_string(),
        "seed",
        &seed.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    case.import(&["Contoso_NoContent".to_string()]).await;
    let results = case.run().await;
    assert_ok(&results[0]);
    case.verify().await;
    let app = &results[0]["import"]["applications"][0];
    assert_eq!(app["name"], "Contoso_NoContent", "{}", results[0]);
    assert!(app["upload_id"].is_null(), "{app}");
    assert!(
        app["error"]
            .as_str()
            .is_some_and(|e| e.contains("no deployment type with a content location")),
        "{app}"
    );
}

/// Every `upload-*.zip` under `dir`, recursively.
fn upload_archives(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(upload_archives(&path));
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("upload-") && n.ends_with(".zip"))
        {
            found.push(path);
        }
    }
    found
}

/// An import's upload is interrupted (part of the archive committed, then the connection keeps
/// breaking) and the connector stopped; the spool's archive is deleted between the runs. The
/// next run packs the source again (the same bytes), opens the upload again and finishes it
/// from where the portal stopped: the sources arrive complete, no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_spool_archive_vanished_is_packed_again_and_finished() {
    let mut case = Case::new().await;
    let name = app("Contoso_Respool");
    let zip = package("Respool", 2 << 20);
    case.push(&name, "Applications/Engine", zip).await;
    let first = case.commands.clone();
    let pushed = case.run_until(&first).await;
    assert_ok(&pushed[0]);
    let import = case.import(std::slice::from_ref(&name)).await;
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "reset", "after_bytes": 300_000, "path": "/api/connector/v1/uploads/", "method": "PUT", "times": 1},
            {"kind": "reset", "after_bytes": 0, "path": "/api/connector/v1/uploads/", "method": "PUT", "times": 1000},
        ]}))
        .await;
    case.run_stopped_when(async {
        case.portal
            .wait_for_requests(5, "PUT", "/api/connector/v1/uploads/")
            .await;
    })
    .await;
    assert!(case.portal.command(&import).await["effective_result"].is_null());
    let archives = upload_archives(&case.setup.spool());
    assert_eq!(archives.len(), 1, "{archives:?}");
    std::fs::remove_file(&archives[0]).expect("the archive is deleted");

    case.portal.set_faults(json!({"faults": []})).await;
    let results = case.run().await;
    assert_ok(&results[1]);
    case.verify().await;
    let app = &results[1]["import"]["applications"][0];
    assert!(app["error"].is_null(), "{app}");
    let upload_id = app["upload_id"].as_str().expect("an upload id");
    let upload = case.portal.upload_info(upload_id).await;
    assert_eq!(upload["complete"], true, "{upload}");
}
