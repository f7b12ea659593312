//! Resumable transfers against the simulator: downloads checkpointed, resumed with `Range`
//! after truncated and reset bodies and from a journaled offset, verified by size and SHA-256;
//! uploads chunked, resumed from the portal's committed offset, completed (and refused on a
//! mismatch).

use super::portal_support::{Portal, client_config, package_bytes, sha256_hex};
use sccm_connector::portal::{Download, PortalClient, PortalError, Upload};
use serde_json::json;
use std::sync::{Arc, Mutex};

const MIB: usize = 1024 * 1024;

fn client(portal: &Portal) -> PortalClient {
    PortalClient::new(&client_config(&portal.url())).expect("a client")
}

/// The `Range` headers of the package GETs the simulator saw.
async fn ranges(portal: &Portal, package_id: &str) -> Vec<Option<String>> {
    let path = format!("/api/connector/v1/packages/{package_id}");
    portal
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path.as_str())
        .map(|r| r["range"].as_str().map(str::to_owned))
        .collect()
}

/// Collects the durable offsets reported by a download.
fn recorder() -> (Arc<Mutex<Vec<u64>>>, impl FnMut(u64) + Send) {
    let offsets = Arc::new(Mutex::new(Vec::new()));
    let sink = offsets.clone();
    (offsets, move |n| sink.lock().expect("offsets").push(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_streams_checkpoints_and_verifies() {
    let portal = Portal::start().await;
    let bytes = package_bytes(3 * MIB + 123, 1);
    let package = portal.add_package(bytes.clone()).await;
    assert_eq!(package.sha256, sha256_hex(&bytes));
    let dest = portal.dir.path().join("download.zip");
    let mut job = Download::new(&package.url, &dest, package.size, &package.sha256);
    job.checkpoint_bytes = 512 * 1024;
    let (offsets, on_durable) = recorder();
    let done = client(&portal)
        .download(&job, on_durable)
        .await
        .expect("downloaded");
    assert_eq!(done.sha256, package.sha256);
    assert_eq!((done.resumed_from, done.requests), (0, 1));
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    let offsets = offsets.lock().expect("offsets").clone();
    assert!(offsets.len() >= 3, "{offsets:?}");
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "increasing: {offsets:?}"
    );
    assert!(
        offsets[..offsets.len() - 1]
            .windows(2)
            .all(|w| w[1] - w[0] >= 512 * 1024),
        "one checkpoint per 512 KiB at most: {offsets:?}"
    );
    assert_eq!(offsets.last(), Some(&package.size));
    assert_eq!(ranges(&portal, &package.package_id).await, vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_with_range_after_a_truncated_and_a_reset_body() {
    let portal = Portal::start().await;
    let bytes = package_bytes(4 * MIB, 2);
    let package = portal.add_package(bytes.clone()).await;
    portal
        .set_faults(json!({"faults": [
            {"kind": "truncate", "after_bytes": MIB, "path": "/api/connector/v1/packages/"},
            {"kind": "reset", "after_bytes": MIB + 4321, "path": "/api/connector/v1/packages/"},
        ]}))
        .await;
    let dest = portal.dir.path().join("download.zip");
    let job = Download::new(&package.url, &dest, package.size, &package.sha256);
    let done = client(&portal)
        .download(&job, |_| {})
        .await
        .expect("downloaded despite the faults");
    assert_eq!(done.requests, 3);
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    // Each resumption starts where the broken body stopped reaching us (at most the fault's
    // byte count after the previous start), never from 0.
    let ranges = ranges(&portal, &package.package_id).await;
    let starts: Vec<u64> = ranges
        .iter()
        .skip(1)
        .map(|r| {
            r.as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a resumption asks for a range: {ranges:?}"))
        })
        .collect();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(starts[0] > 0 && starts[0] <= MIB as u64, "{ranges:?}");
    assert!(
        starts[1] > starts[0] && starts[1] <= starts[0] + (MIB + 4321) as u64,
        "{ranges:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_from_a_journaled_offset_and_drops_bytes_beyond_it() {
    let portal = Portal::start().await;
    let bytes = package_bytes(2 * MIB, 3);
    let package = portal.add_package(bytes.clone()).await;
    let dest = portal.dir.path().join("download.zip");
    let journaled = 777_777usize;
    // What a crash leaves: the journaled prefix, then unsynced bytes (here, garbage).
    let mut on_disk = bytes[..journaled].to_vec();
    on_disk.extend_from_slice(&[0xAA; 5000]);
    std::fs::write(&dest, &on_disk).expect("a partial file");

    let job = Download::new(&package.url, &dest, package.size, &package.sha256)
        .resume_from(journaled as u64);
    let (offsets, on_durable) = recorder();
    let done = client(&portal)
        .download(&job, on_durable)
        .await
        .expect("resumed");
    assert_eq!(done.resumed_from, journaled as u64);
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    assert_eq!(
        ranges(&portal, &package.package_id).await,
        vec![Some(format!("bytes={journaled}-"))]
    );
    assert!(
        offsets
            .lock()
            .expect("offsets")
            .iter()
            .all(|&n| n > journaled as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_starts_over_when_the_server_ignores_the_range() {
    let portal = Portal::start().await;
    let bytes = package_bytes(2 * MIB, 8);
    let package = portal.add_package(bytes.clone()).await;
    let dest = portal.dir.path().join("download.zip");
    std::fs::write(&dest, &bytes[..300_000]).expect("a partial file");
    portal
        .set_faults(
            json!({"faults": [{"kind": "ignore_range", "path": "/api/connector/v1/packages/"}]}),
        )
        .await;
    let job =
        Download::new(&package.url, &dest, package.size, &package.sha256).resume_from(300_000);
    let (offsets, on_durable) = recorder();
    let done = client(&portal)
        .download(&job, on_durable)
        .await
        .expect("downloaded from 0");
    assert_eq!(done.resumed_from, 0);
    let offsets = offsets.lock().expect("offsets").clone();
    assert_eq!(
        offsets.first(),
        Some(&0),
        "0 is journaled before the file is truncated"
    );
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "no stale offset after the restart: {offsets:?}"
    );
    assert_eq!(offsets.last(), Some(&package.size));
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    assert_eq!(
        ranges(&portal, &package.package_id).await,
        vec![Some("bytes=300000-".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_starts_over_when_the_file_is_shorter_than_the_journal_says() {
    let portal = Portal::start().await;
    let bytes = package_bytes(MIB, 4);
    let package = portal.add_package(bytes.clone()).await;
    let dest = portal.dir.path().join("download.zip");
    std::fs::write(&dest, &bytes[..1000]).expect("a short file");
    let job = Download::new(&package.url, &dest, package.size, &package.sha256).resume_from(50_000);
    let (offsets, on_durable) = recorder();
    let done = client(&portal)
        .download(&job, on_durable)
        .await
        .expect("downloaded from 0");
    assert_eq!(done.resumed_from, 0);
    assert_eq!(
        offsets.lock().expect("offsets").first(),
        Some(&0),
        "0 is journaled first"
    );
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_with_the_wrong_sha256_or_size_fails_clearly() {
    let portal = Portal::start().await;
    let bytes = package_bytes(MIB, 5);
    let package = portal.add_package(bytes).await;
    let client = client(&portal);
    let dest = portal.dir.path().join("download.zip");

    portal
        .set_faults(
            json!({"faults": [{"kind": "wrong_sha256", "path": "/api/connector/v1/packages/"}]}),
        )
        .await;
    let job = Download::new(&package.url, &dest, package.size, &package.sha256);
    let error = client.download(&job, |_| {}).await.expect_err("corrupt");
    assert!(
        matches!(error, PortalError::Sha256Mismatch { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(error.to_string().contains(&package.sha256), "{error}");

    let job = Download::new(&package.url, &dest, package.size + 10, &package.sha256);
    let error = client.download(&job, |_| {}).await.expect_err("short");
    assert!(
        matches!(error, PortalError::SizeMismatch { .. }),
        "{error:?}"
    );

    let job = Download::new(
        "/api/connector/v1/packages/missing",
        &dest,
        1,
        &package.sha256,
    );
    let error = client.download(&job, |_| {}).await.expect_err("missing");
    assert!(
        matches!(error, PortalError::Rejected { status: 404, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_chunked_resumed_after_a_reset_and_completed() {
    let portal = Portal::start().await;
    let client = client(&portal);
    let bytes = package_bytes(3 * MIB + 5, 6);
    let file = portal.dir.path().join("sources.zip");
    std::fs::write(&file, &bytes).expect("the zip");

    let id = client
        .open_upload("cmd-1", "FileZilla")
        .await
        .expect("an upload");
    assert_eq!(
        client
            .open_upload("cmd-1", "FileZilla")
            .await
            .expect("again"),
        id,
        "the same pair, the same id"
    );
    assert_ne!(
        client.open_upload("cmd-1", "Other").await.expect("another"),
        id
    );

    portal
        .set_faults(json!({"faults": [
            {"kind": "reset", "after_bytes": 300_000, "skip": 1, "method": "PUT", "path": "/api/connector/v1/uploads/"},
        ]}))
        .await;
    let mut job = Upload::new(&id, &file, bytes.len() as u64, sha256_hex(&bytes));
    job.chunk_size = MIB as u64;
    let committed = Arc::new(Mutex::new(Vec::new()));
    let sink = committed.clone();
    let status = client
        .upload(&job, move |n| sink.lock().expect("offsets").push(n))
        .await
        .expect("uploaded");
    assert!(status.complete);
    let committed = committed.lock().expect("offsets").clone();
    let reset_at = (MIB + 300_000) as u64;
    assert!(committed.contains(&reset_at), "{committed:?}");
    assert_eq!(committed.last(), Some(&(bytes.len() as u64)));

    let info = portal.upload_info(&id).await;
    assert_eq!(info["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(info["complete"], true);
    let puts: Vec<String> = portal
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "PUT")
        .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    let offsets: Vec<&str> = puts
        .iter()
        .filter_map(|p| p.split("offset=").nth(1))
        .collect();
    let expected = [
        "0".to_owned(),
        MIB.to_string(),
        // Retried at the same offset: the 409 names the committed one.
        MIB.to_string(),
        reset_at.to_string(),
        (reset_at + MIB as u64).to_string(),
    ];
    assert_eq!(offsets, expected, "continued from the committed offset");

    // Uploading again is harmless: the portal says it is complete.
    client.upload(&job, |_| {}).await.expect("already complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_completed_with_the_wrong_sha256_is_refused() {
    let portal = Portal::start().await;
    let client = client(&portal);
    let bytes = package_bytes(100_000, 7);
    let file = portal.dir.path().join("sources.zip");
    std::fs::write(&file, &bytes).expect("the zip");
    let id = client.open_upload("cmd-2", "App").await.expect("an upload");
    let job = Upload::new(&id, &file, bytes.len() as u64, "00".repeat(32));
    let error = client.upload(&job, |_| {}).await.expect_err("refused");
    assert!(
        matches!(error, PortalError::UploadMismatch { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(portal.upload_info(&id).await["complete"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_a_read_timeout_and_the_download_resumes_from_its_checkpoint() {
    let portal = Portal::start().await;
    let bytes = package_bytes(3 * MIB, 31);
    let package = portal.add_package(bytes.clone()).await;
    // The body stalls for 20 s after 1 MiB: far longer than the 1 s read timeout.
    portal
        .set_faults(json!({"faults": [
            {"kind": "delay", "ms": 20_000, "after_bytes": MIB, "path": "/api/connector/v1/packages/"},
        ]}))
        .await;
    let mut config = client_config(&portal.url());
    config.read_timeout_seconds = 1;
    config.retry.max_attempts = 1;
    let impatient = PortalClient::new(&config).expect("a client");
    let dest = portal.dir.path().join("download.zip");
    let mut job = Download::new(&package.url, &dest, package.size, &package.sha256);
    job.checkpoint_bytes = 256 * 1024;
    let (offsets, on_durable) = recorder();
    let started = std::time::Instant::now();
    let error = impatient
        .download(&job, on_durable)
        .await
        .expect_err("the stalled body times out");
    let waited = started.elapsed();
    assert!(
        matches!(error, PortalError::Timeout { .. }),
        "a typed timeout: {error:?}"
    );
    assert!(error.is_retryable());
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(10),
        "the read timeout (1 s) ended it, not the stall (20 s): {waited:?}"
    );
    // Everything received before the stall was made durable and reported.
    let journaled = *offsets
        .lock()
        .expect("offsets")
        .last()
        .expect("a checkpoint");
    assert_eq!(journaled, MIB as u64);
    assert!(std::fs::metadata(&dest).expect("the partial file").len() >= journaled);

    portal.set_faults(json!({"faults": []})).await;
    let resumed =
        Download::new(&package.url, &dest, package.size, &package.sha256).resume_from(journaled);
    let done = client(&portal)
        .download(&resumed, |_| {})
        .await
        .expect("resumed");
    assert_eq!((done.resumed_from, done.requests), (journaled, 1));
    assert_eq!(std::fs::read(&dest).expect("the file"), bytes);
    assert_eq!(
        ranges(&portal, &package.package_id).await,
        vec![None, Some(format!("bytes={journaled}-"))]
    );
}
