//! The engine end to end (the daemon in process against both simulators): what a job does beyond
//! the happy path — progress posts during long transfers, results kept through portal downtime,
//! job slots released while jobs wait, prompt shutdown against a portal that never answers,
//! broken applications in an import, an upload whose spool archive vanished.

#![cfg(unix)]

use crate::support::case::{Case, app, package};
use serde_json::{Value, json};

fn assert_ok(result: &Value) {
    assert_eq!(result["status"], "ok", "{result}");
}

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
    assert!(post["step"].as_str().is_some_and(|s| !s.is_empty()), "{post}");
}
