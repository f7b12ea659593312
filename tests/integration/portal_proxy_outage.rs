//! The connector daemon (`sccm-connector run`, a child process) reaching the portal only through
//! a real tinyproxy with basic authentication: the proxy is killed while a package download is
//! under way and started again; the push still ends with exactly one effective result. Then the
//! proxy password appears nowhere: not in the daemon's log output (debug level), not in the
//! journal's files, not in its export.

use super::portal_support::Tinyproxy;
use super::support::case::{self, Case};
use super::support::{audit, e2e};
use base64::Engine as _;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const USER: &str = "svc-connector";
const PASSWORD: &str = "Outage-pr0xy-S3cret-42";

/// Every file under `dir`, read whole.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(contents(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Waits (bounded) until the daemon's log file holds `needle`.
async fn wait_for_log(log: &Path, needle: &str, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if std::fs::read(log).is_ok_and(|bytes| holds(&bytes, needle)) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_outage_mid_download_ends_in_one_result_and_the_password_stays_secret() {
    let mut proxy = Tinyproxy::start(USER, PASSWORD);
    let mut case = Case::new().await;
    // The outage must not use up the job's attempts.
    case.setup.max_attempts = 20;
    case.setup.extra_toml = format!(
        "\n[portal.proxy]\nurl = '{}'\nusername = '{USER}'\npassword = '{PASSWORD}'\n",
        proxy.url()
    );
    let id = case
        .push(
            "ProxyOutage",
            "Applications/Proxy",
            case::package("ProxyOutage", 3 << 20),
        )
        .await;
    // The package body pauses for a minute after 1 MiB: the proxy dies while it is under way.
    case.portal
        .set_faults(json!({"faults": [
            {"kind": "delay", "ms": 60_000, "after_bytes": 1 << 20, "path": "/api/connector/v1/packages/"},
        ]}))
        .await;
    let config = case.setup.write_config();
    let log_path = case.setup.dir.join("daemon.log");
    let log = std::fs::File::create(&log_path).expect("the daemon's log");
    let daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(["run", "--config", &config.display().to_string()])
        .env("RUST_LOG", "debug")
        .env_remove("SCCM_CONNECTOR_PROXY_PASSWORD")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log, again"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon runs");

    // The download goes through the proxy …
    let forwarded = format!("GET {}/api/connector/v1/packages/", case.portal.url());
    assert!(
        tokio::task::block_in_place(|| proxy.wait_for_log(&forwarded, Duration::from_secs(60))),
        "the download went through tinyproxy"
    );
    case.portal
        .wait_for_requests(1, "GET", "/api/connector/v1/packages/")
        .await;
    // … and the proxy dies under it; the connector notices, then it comes back.
    tokio::task::block_in_place(|| proxy.stop());
    assert!(
        wait_for_log(&log_path, "download interrupted", Duration::from_secs(60)).await,
        "the daemon saw the download break off"
    );
    tokio::task::block_in_place(|| proxy.restart());

    let running = std::sync::Mutex::new(daemon);
    let result = case
        .wait_for_result(&id, || {
            running
                .lock()
                .map(|mut d| d.try_wait().is_ok_and(|s| s.is_none()))
                .unwrap_or(false)
        })
        .await;
    let mut daemon = running.into_inner().expect("the daemon");
    assert_eq!(result["status"], "ok", "{result}");
    let view = case.portal.command(&id).await;
    e2e::one_result(&view).unwrap_or_else(|e| panic!("{e}"));
    // The body was asked for again once the proxy was back: by the same request's resumption or
    // the job's next attempt, through the restarted proxy.
    let gets = case.requests_to("/api/connector/v1/packages/").await;
    assert!(gets.len() >= 2, "{gets:?}");
    assert!(
        tokio::task::block_in_place(|| proxy.wait_for_log(&forwarded, Duration::from_secs(10))),
        "the restarted proxy carried the rest"
    );

    // A clean stop.
    crate::support::sigterm(&daemon).await;
    let status = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .expect("the daemon stops in time")
        .expect("the daemon exits");
    assert!(status.success(), "{status:?}");

    // The password, in clear or as the basic-authentication token, is nowhere.
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let secrets = [PASSWORD, token.as_str()];
    let log = std::fs::read(&log_path).expect("the daemon's log");
    assert!(
        holds(&log, "download interrupted") && holds(&log, &id),
        "the log covers the outage and the job"
    );
    for secret in secrets {
        assert!(!holds(&log, secret), "the daemon's log shows the password");
    }
    let journal = contents(&case.setup.journal());
    assert!(!journal.is_empty());
    assert!(
        journal.iter().any(|(_, bytes)| holds(bytes, &id)),
        "the journal's files are searchable as they are"
    );
    for (file, bytes) in &journal {
        for secret in secrets {
            assert!(!holds(bytes, secret), "{file} holds the password");
        }
    }
    let export = case.setup.dir.join("export.jsonl");
    let (code, stdout, stderr) = audit::run(&[
        "export",
        "--config",
        audit::arg(&config),
        "--format",
        "jsonl",
        "-o",
        audit::arg(&export),
    ]);
    assert_eq!(code, 0, "export: {stdout}{stderr}");
    let exported = std::fs::read(&export).expect("the export");
    assert!(holds(&exported, &id), "the export holds the job");
    for secret in secrets {
        assert!(!holds(&exported, secret), "the export shows the password");
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}
