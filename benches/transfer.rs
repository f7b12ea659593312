//! Transfer throughput: a 1 GiB package downloaded and uploaded over loopback against the portal
//! simulator (`sccm-connector sim portal`, a separate process), by the connector's client (SHA-256
//! inline, durable checkpoints, chunked resumable upload) and by `curl` (installed with apt-get
//! if missing) against the same simulator in the same run. Ends with
//! `RATIO download_vs_curl <v>` and `RATIO upload_vs_curl <v>` (connector / curl throughput),
//! and `RATIO download_peak_rss_mb <v>` / `RATIO upload_peak_rss_mb <v>`: the connector's peak
//! resident memory (`VmHWM`) while transferring, measured by running each connector transfer in
//! a child process (this bench re-executed with `--child-download` / `--child-upload`), which
//! times its transfer itself and prints `elapsed_ns <n>` and `vmhwm_kb <n>`. Memory must stay
//! bounded whatever the size; the bench fails if `VmHWM` cannot be read.
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
    let args: Vec<String> = std::env::args().collect();
    if let Some(mode) = args.get(1).filter(|a| a.starts_with("--child-")) {
        child(mode, &args[2..]);
        return;
    }
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
    let mut peak_kb = (0u64, 0u64);
    for round in 1..=rounds {
        let dest = dir.path().join("download-connector.zip");
        let _ = std::fs::remove_file(&dest);
        let (elapsed, hwm) = run_child(&[
            "--child-download",
            &url,
            &package_url,
            path_str(&dest),
            &size.to_string(),
            &sha256,
        ]);
        peak_kb.0 = peak_kb.0.max(hwm);
        download.0 = download
            .0
            .min(report("download connector", round, size, elapsed));
        assert_eq!(
            std::fs::metadata(&dest).expect("the download").len(),
            size,
            "the connector's file"
        );
        std::fs::remove_file(&dest).expect("cleanup");

        let dest = dir.path().join("download-curl.zip");
        let started = Instant::now();
        curl(&["-o", path_str(&dest), &format!("{url}{package_url}")]);
        download.1 = download
            .1
            .min(report("download curl     ", round, size, started.elapsed()));
        assert_eq!(std::fs::metadata(&dest).expect("curl's file").len(), size);
        // For comparison only: what curl's download costs once it is as durable as ours.
        std::fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .expect("curl's file is synced");
        durable_curl = durable_curl.min(started.elapsed());
        std::fs::remove_file(&dest).expect("cleanup");

        let id = runtime.block_on(async {
            client
                .open_upload(&format!("bench-{round}"), "connector")
                .await
                .expect("an upload")
        });
        let (elapsed, hwm) = run_child(&[
            "--child-upload",
            &url,
            &id,
            path_str(&package),
            &size.to_string(),
            &sha256,
        ]);
        peak_kb.1 = peak_kb.1.max(hwm);
        upload.0 = upload
            .0
            .min(report("upload connector  ", round, size, elapsed));

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
            .min(report("upload curl       ", round, size, started.elapsed()));
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
    println!(
        "RATIO download_peak_rss_mb {:.1}",
        peak_kb.0 as f64 / 1024.0
    );
    println!("RATIO upload_peak_rss_mb {:.1}", peak_kb.1 as f64 / 1024.0);
}

/// The connector's side of a transfer, in this process: times the transfer, then prints
/// `elapsed_ns <n>` and `vmhwm_kb <n>` (the process's peak resident memory).
fn child(mode: &str, args: &[String]) {
    let [url, what, path, size, sha256] = args else {
        panic!("{mode} URL WHAT PATH SIZE SHA256, got {args:?}");
    };
    let size: u64 = size.parse().expect("a size");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = PortalClient::new(&PortalConfig::new(url, REMOTE_ID)).expect("a client");
    let started = Instant::now();
    match mode {
        "--child-download" => {
            let job = Download::new(what, path, size, sha256);
            runtime
                .block_on(client.download(&job, |_| {}))
                .expect("the connector downloads");
        }
        "--child-upload" => {
            let job = Upload::new(what, path, size, sha256);
            runtime
                .block_on(client.upload(&job, |_| {}))
                .expect("the connector uploads");
        }
        other => panic!("unknown child mode {other}"),
    }
    let elapsed = started.elapsed();
    let hwm = vmhwm_kb().unwrap_or_else(|e| panic!("cannot read the peak memory: {e}"));
    println!("elapsed_ns {}", elapsed.as_nanos());
    println!("vmhwm_kb {hwm}");
}

/// `VmHWM` of this process, in kB, from `/proc/self/status`.
fn vmhwm_kb() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_owned())?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|e| format!("VmHWM is not a number: {e}"))
}

/// Runs this bench as a child transfer; its elapsed time and peak memory (kB, never 0).
fn run_child(args: &[&str]) -> (Duration, u64) {
    let output = Command::new(std::env::current_exe().expect("the bench executable"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child {args:?} failed ({}): {stdout}",
        output.status
    );
    let field = |name: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("the child printed no {name}: {stdout}"))
    };
    let hwm = field("vmhwm_kb ");
    assert!(hwm > 0, "VmHWM of the child is 0: {stdout}");
    (Duration::from_nanos(field("elapsed_ns ")), hwm)
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

fn report(what: &str, round: u64, size: u64, elapsed: Duration) -> Duration {
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
