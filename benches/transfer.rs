//! Transfer throughput: a 1 GiB package downloaded and uploaded over loopback against the portal
//! simulator (`sccm-connector sim portal`, a separate process), by the connector's client (SHA-256
//! inline, durable checkpoints, chunked resumable upload) and by `curl` (installed with apt-get
//! if missing) against the same simulator in the same run. Ends with
//! `RATIO download_vs_curl <v>` and `RATIO upload_vs_curl <v>` (connector / curl throughput).
//!
//! `cargo bench -p sccm-connector --bench transfer`; `TRANSFER_BENCH_BYTES` overrides the size,
//! `TRANSFER_BENCH_ROUNDS` the rounds (best of each is kept). The data lives under
//! `CARGO_TARGET_TMPDIR` (the target directory, on disk rather than tmpfs).
//!
//! The connector's download is durable (checkpoints and the end are `fsync`ed) while curl's is
//! not: on a disk slower than loopback that alone bounds the download ratio, so an `INFO` line
//! also compares with curl followed by an `fsync` of its file. Uploads are synced by the
//! simulator for both.

use sccm_connector::portal::{Download, PortalClient, PortalConfig, Upload};
use sha2::Digest as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REMOTE_ID: &str = "b3c1a7d2-0f4e-4c59-8a6b-1d2e3f405162";

struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let size: u64 = env_number("TRANSFER_BENCH_BYTES", 1 << 30);
    let rounds = env_number("TRANSFER_BENCH_ROUNDS", 2).max(1);
    ensure_curl();
    let dir = tempfile::Builder::new()
        .prefix("transfer-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a bench directory on disk");
    let package = dir.path().join("package.zip");
    let sha256 = write_package(&package, size);
    println!("package: {size} bytes, sha256 {sha256}");

    let (simulator, url) = start_simulator(&dir.path().join("portal"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = PortalClient::new(&PortalConfig::new(&url, REMOTE_ID)).expect("a client");
    let package_url = publish(&url, &package);

    let mut download = (Duration::MAX, Duration::MAX);
    let mut upload = (Duration::MAX, Duration::MAX);
    let mut durable_curl = Duration::MAX;
    for round in 1..=rounds {
        let dest = dir.path().join("download-connector.zip");
        let _ = std::fs::remove_file(&dest);
        let started = Instant::now();
        let job = Download::new(&package_url, &dest, size, &sha256);
        runtime
            .block_on(client.download(&job, |_| {}))
            .expect("the connector downloads");
        download.0 = download
            .0
            .min(report("download connector", round, size, started));
        std::fs::remove_file(&dest).expect("cleanup");

        let dest = dir.path().join("download-curl.zip");
        let started = Instant::now();
        curl(&["-o", path_str(&dest), &format!("{url}{package_url}")]);
        download.1 = download
            .1
            .min(report("download curl     ", round, size, started));
        assert_eq!(std::fs::metadata(&dest).expect("curl's file").len(), size);
        // For comparison only: what curl's download costs once it is as durable as ours.
        std::fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .expect("curl's file is synced");
        durable_curl = durable_curl.min(started.elapsed());
        std::fs::remove_file(&dest).expect("cleanup");

        let started = Instant::now();
        runtime.block_on(async {
            let id = client
                .open_upload(&format!("bench-{round}"), "connector")
                .await
                .expect("an upload");
            let job = Upload::new(&id, &package, size, &sha256);
            client
                .upload(&job, |_| {})
                .await
                .expect("the connector uploads");
        });
        upload.0 = upload
            .0
            .min(report("upload connector  ", round, size, started));

        let id = runtime.block_on(async {
            client
                .open_upload(&format!("bench-{round}"), "curl")
                .await
                .expect("an upload")
        });
        let started = Instant::now();
        curl(&[
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-T",
            path_str(&package),
            &format!("{url}/api/connector/v1/uploads/{id}?offset=0"),
        ]);
        curl(&[
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &format!("{{\"size\": {size}, \"sha256\": \"{sha256}\"}}"),
            &format!("{url}/api/connector/v1/uploads/{id}/complete"),
        ]);
        upload.1 = upload
            .1
            .min(report("upload curl       ", round, size, started));
    }
    drop(simulator);
    println!(
        "best download: connector {}, curl {}",
        rate(size, download.0),
        rate(size, download.1)
    );
    println!(
        "best upload: connector {}, curl {}",
        rate(size, upload.0),
        rate(size, upload.1)
    );
    println!(
        "INFO curl download followed by fsync: {} (ratio connector/that {:.3})",
        rate(size, durable_curl),
        durable_curl.as_secs_f64() / download.0.as_secs_f64()
    );
    println!(
        "RATIO download_vs_curl {:.3}",
        download.1.as_secs_f64() / download.0.as_secs_f64()
    );
    println!(
        "RATIO upload_vs_curl {:.3}",
        upload.1.as_secs_f64() / upload.0.as_secs_f64()
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn report(what: &str, round: u64, size: u64, started: Instant) -> Duration {
    let elapsed = started.elapsed();
    println!(
        "round {round}: {what} {:>8.3} s  {}",
        elapsed.as_secs_f64(),
        rate(size, elapsed)
    );
    elapsed
}

fn rate(size: u64, elapsed: Duration) -> String {
    format!("{:.0} MB/s", size as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Writes `size` pseudo-random bytes durably; returns their SHA-256.
fn write_package(path: &Path, size: u64) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("the package"));
    let mut rng = fastrand::Rng::with_seed(42);
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(block.len() as u64)).expect("a block");
        rng.fill(&mut block[..n]);
        hasher.update(&block[..n]);
        file.write_all(&block[..n]).expect("the package is written");
        left -= n as u64;
    }
    let file = file.into_inner().expect("flushed");
    file.sync_all().expect("synced");
    sccm_connector::portal::download::hex(&hasher.finalize())
}

fn start_simulator(data: &Path) -> (Simulator, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(["sim", "portal", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the simulator runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its address");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on URL")
        .to_owned();
    (Simulator(child), url)
}

/// `POST /sim/packages` with the file streamed; returns the package's URL path.
fn publish(url: &str, package: &Path) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "-X", "POST", "-T"])
        .arg(package)
        .arg(format!("{url}/sim/packages"))
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "publishing failed: {output:?}");
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the package's JSON");
    answer["url"].as_str().expect("a URL").to_owned()
}

fn curl(args: &[&str]) {
    let status = Command::new("curl")
        .args(["-sS", "--fail", "-H"])
        .arg(format!("X-Connector-Remote-Id: {REMOTE_ID}"))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("curl runs");
    assert!(status.success(), "curl {args:?} failed");
}

fn ensure_curl() {
    let present = Command::new("sh")
        .args(["-c", "command -v curl"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let status = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl",
            ])
            .status()
            .expect("apt-get runs");
        assert!(status.success(), "apt-get install curl failed");
    }
}
