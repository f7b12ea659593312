//! Surviving crashes on both sides. The client's: a download and an upload run in a child
//! process (`sccm-connector sim portal client MODE`, see `src/sim/portal/drive.rs`), SIGKILLed
//! mid-transfer, then resumed from what it reported (as the engine would from its journal).
//! The portal's: a
//! result sent while the simulator is down fails retryably and is delivered once it is back on
//! the same data directory — exactly one effective result; the `sim portal` command keeps its
//! state across a kill.

use super::portal_support::{
    Portal, Reports, child, client_config, kill_after, package_bytes, sha256_hex,
};
use sccm_connector::portal::outbox::idempotency_key;
use sccm_connector::portal::{Download, PortalClient, PortalError, Upload};
use serde_json::json;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_mid_transfer_resumes_from_its_journaled_offset() {
    let portal = Portal::start().await;
    let bytes = package_bytes(3 * MIB as usize, 21);
    let package = portal.add_package(bytes.clone()).await;
    // The first body pauses for a minute after 2 MiB: the child is killed while it waits.
    portal
        .set_faults(json!({"faults": [
            {"kind": "delay", "ms": 60_000, "after_bytes": 2 * MIB, "path": "/api/connector/v1/packages/"},
        ]}))
        .await;
    let dest = portal.dir.path().join("package.zip");
    let spawned = child(
        "download",
        &[
            ("PORTAL_URL", portal.url()),
            ("PKG_URL", package.url.clone()),
            ("PKG_SIZE", package.size.to_string()),
            ("PKG_SHA256", package.sha256.clone()),
            ("DEST", dest.display().to_string()),
            ("FROM", "0".into()),
            ("CHECKPOINT_BYTES", (256 * KIB).to_string()),
        ],
    )
    .spawn()
    .expect("the child runs");
    let journaled = tokio::task::spawn_blocking(move || kill_after(spawned, "durable", MIB))
        .await
        .expect("the child's reader");
    assert!(
        journaled < package.size,
        "killed mid-transfer at {journaled}"
    );
    let on_disk = std::fs::metadata(&dest).expect("the partial file").len();
    assert!(
        on_disk >= journaled,
        "a journaled offset ({journaled}) never exceeds the bytes on disk ({on_disk})"
    );

    let client = PortalClient::new(&client_config(&portal.url())).expect("a client");
    let job =
        Download::new(&package.url, &dest, package.size, &package.sha256).resume_from(journaled);
    let done = client.download(&job, |_| {}).await.expect("resumed");
    assert_eq!(done.resumed_from, journaled);
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    let ranges: Vec<Option<String>> = portal
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "GET")
        .map(|r| r["range"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ranges,
        vec![None, Some(format!("bytes={journaled}-"))],
        "the second process asked only for the rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_mid_transfer_continues_from_the_portals_committed_offset() {
    let portal = Portal::start().await;
    let client = PortalClient::new(&client_config(&portal.url())).expect("a client");
    let bytes = package_bytes((2 * MIB + 12_345) as usize, 22);
    let file = portal.dir.path().join("sources.zip");
    std::fs::write(&file, &bytes).expect("the zip");
    let id = client
        .open_upload("cmd-crash", "FileZilla")
        .await
        .expect("an upload");
    // The third chunk's request waits a minute before it is handled: the child dies waiting.
    portal
        .set_faults(json!({"faults": [
            {"kind": "delay", "ms": 60_000, "skip": 2, "method": "PUT", "path": "/api/connector/v1/uploads/"},
        ]}))
        .await;
    let chunk = 512 * KIB;
    let spawned = child(
        "upload",
        &[
            ("PORTAL_URL", portal.url()),
            ("UPLOAD_ID", id.clone()),
            ("FILE", file.display().to_string()),
            ("SIZE", bytes.len().to_string()),
            ("SHA256", sha256_hex(&bytes)),
            ("CHUNK", chunk.to_string()),
        ],
    )
    .spawn()
    .expect("the child runs");
    let reports = tokio::task::spawn_blocking(move || {
        let mut reports = Reports::new(spawned, "committed");
        reports.wait_for(2 * chunk);
        reports
    })
    .await
    .expect("the child's reader");
    // Kill it only once its third request is stuck in the simulator.
    portal
        .wait_for_requests(3, "PUT", "/api/connector/v1/uploads/")
        .await;
    let journaled = tokio::task::spawn_blocking(move || reports.kill())
        .await
        .expect("the child's reader");
    assert_eq!(journaled, 2 * chunk);

    // After the restart: the same upload id, and the portal's committed offset.
    let again = client
        .open_upload("cmd-crash", "FileZilla")
        .await
        .expect("the same upload");
    assert_eq!(again, id);
    let status = client.upload_status(&id).await.expect("a status");
    assert_eq!(status.committed, 2 * chunk);
    let mut job = Upload::new(&id, &file, bytes.len() as u64, sha256_hex(&bytes));
    job.chunk_size = chunk;
    client.upload(&job, |_| {}).await.expect("continued");

    let info = portal.upload_info(&id).await;
    assert_eq!(info["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(info["complete"], true);
    let offsets: Vec<String> = portal
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "PUT")
        .filter_map(|r| {
            r["path"]
                .as_str()?
                .split("offset=")
                .nth(1)
                .map(str::to_owned)
        })
        .collect();
    let sent_twice = offsets.iter().filter(|o| *o == "0").count();
    assert_eq!(
        sent_twice, 1,
        "nothing before the committed offset was sent again: {offsets:?}"
    );
    assert_eq!(
        offsets,
        ["0", "524288", "1048576", "1048576", "1572864", "2097152"].map(str::to_owned),
        "the child's three requests (the last one stuck), then the rest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_sent_during_portal_downtime_is_delivered_once_it_is_back() {
    let mut portal = Portal::start().await;
    let id = portal
        .add_command(r#"{"id": "down-1", "kind": "push"}"#)
        .await;
    let client = PortalClient::new(&client_config(&portal.url())).expect("a client");
    client.ack(&id).await.expect("acked");
    let (key, body) = (
        idempotency_key(&id),
        r#"{"command_id": "down-1", "status": "ok"}"#,
    );

    portal.stop().await;
    let error = client
        .send_result(&id, &key, body)
        .await
        .expect_err("the portal is down");
    assert!(matches!(error, PortalError::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());

    // The engine sends the same key and bytes again until acknowledged (its schedule is
    // `replay`'s, tested there and end to end in `engine.rs`).
    portal.restart().await;
    client
        .send_result(&id, &key, body)
        .await
        .expect("acknowledged once the portal is back");
    client
        .send_result(&id, &key, body)
        .await
        .expect("a repeat is acknowledged too");

    let seen = portal.command(&id).await;
    assert_eq!(seen["acked"], true, "the state survived the restart");
    let results = seen["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "exactly one effective result: {seen}");
    assert_eq!(seen["result_posts"], 2);
    assert_eq!(seen["effective_result"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_portal_command_prints_its_address_and_keeps_its_state() {
    let dir = super::support::temp_dir();
    let data = dir.path().join("portal");
    let start = |data: &std::path::Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
            .args([
                "sim",
                "portal",
                "--listen",
                "127.0.0.1:0",
                "--poll-after",
                "3",
                "--data",
            ])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        (KillOnDrop(child), url)
    };
    let (mut first, url) = start(&data);
    let client = PortalClient::new(&client_config(&url)).expect("a client");
    let raw = r#"{"id":"cli-1","kind":"push"}"#;
    let http = reqwest_for_admin();
    let response = http
        .post(format!("{url}/sim/commands"))
        .body(raw)
        .send()
        .await
        .expect("the admin API");
    assert_eq!(response.status().as_u16(), 201);
    let poll = client.poll().await.expect("a poll");
    assert_eq!(poll.commands[0].get(), raw);
    assert_eq!(poll.poll_after, Some(std::time::Duration::from_secs(3)));
    first.kill();

    let (mut second, url) = start(&data);
    let client = PortalClient::new(&client_config(&url)).expect("a client");
    let poll = client.poll().await.expect("a poll after the restart");
    assert_eq!(poll.commands[0].get(), raw, "the command survived");
    let seen: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!("{url}/sim/commands/cli-1"))
            .send()
            .await
            .expect("the admin API")
            .bytes()
            .await
            .expect("a body"),
    )
    .expect("JSON");
    assert_eq!(seen["delivered"], 2);
    second.kill();
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain-HTTP reqwest client for the admin API.
fn reqwest_for_admin() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("a client")
}
