//! The idle connector: `sccm-connector run` (this build's binary) against the portal simulator
//! with no commands, polling as the protocol says (every 10 s), sampled for 60 s
//! (`IDLE_BENCH_SECONDS` to change): its resident memory (`VmRSS`, every second; the largest
//! sample counts) and its CPU time (`utime + stime` over the window). A `sleep` process sampled
//! the same way in the same run is the reference: the floor of what these counters show for a
//! process doing nothing.
//!
//! Targets (absolute): ≤ 15 MB resident, ≤ 0.1 % of one core. Ends with
//! `RATIO idle_rss_mb <v>` and `RATIO idle_cpu_percent <v>`, after the `REFERENCE` lines.

use sccm_connector::sim::portal::{SimConfig, serve};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSS_TARGET_MB: f64 = 15.0;
const CPU_TARGET_PERCENT: f64 = 0.1;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sccm-connector"))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `utime + stime` of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the command: state(0) ppid(1) … utime(11) stime(12).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What one process showed over the window.
#[derive(Debug)]
struct Sample {
    rss_max_kb: u64,
    rss_last_kb: u64,
    hwm_kb: u64,
    cpu_ticks: u64,
    wall: Duration,
}

impl Sample {
    fn rss_mb(&self) -> f64 {
        self.rss_max_kb as f64 / 1024.0
    }

    fn cpu_percent(&self, tck: f64) -> f64 {
        self.cpu_ticks as f64 / tck / self.wall.as_secs_f64() * 100.0
    }
}

/// Samples `pids` together for `window`: CPU time at both ends, RSS every second.
fn sample(pids: &[u32], window: Duration) -> Vec<Sample> {
    let start_cpu: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).collect();
    let started = Instant::now();
    let mut rss_max = vec![0u64; pids.len()];
    let mut rss_last = vec![0u64; pids.len()];
    loop {
        for (i, pid) in pids.iter().enumerate() {
            let rss = status_kb(*pid, "VmRSS").unwrap_or(0);
            rss_max[i] = rss_max[i].max(rss);
            rss_last[i] = rss;
        }
        let elapsed = started.elapsed();
        if elapsed >= window {
            break;
        }
        std::thread::sleep((window - elapsed).min(Duration::from_secs(1)));
    }
    let wall = started.elapsed();
    pids.iter()
        .enumerate()
        .map(|(i, pid)| Sample {
            rss_max_kb: rss_max[i],
            rss_last_kb: rss_last[i],
            hwm_kb: status_kb(*pid, "VmHWM").unwrap_or(0),
            cpu_ticks: cpu_ticks(*pid).unwrap_or(0).saturating_sub(start_cpu[i]),
            wall,
        })
        .collect()
}

fn write_config(dir: &Path, portal: &str) -> PathBuf {
    let quote = |p: &Path| format!("'{}'", p.display());
    let text = format!(
        "[portal]\nbase_url = '{portal}'\nremote_id = '0f6b2c1d-8e3a-4b5c-9d7e-1a2b3c4d5e6f'\n\n\
         [powershell]\nprogram = {exe}\nargs = ['sim', 'powershell', '--site', {site}, '--']\n\n\
         [storage]\njournal = {journal}\nspool = {spool}\n\n\
         [shares]\nallowed_roots = ['\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming']\n",
        exe = quote(&exe()),
        site = quote(&dir.join("site")),
        journal = quote(&dir.join("journal")),
        spool = quote(&dir.join("spool")),
    );
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).expect("connector.toml");
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) only checks that
    // this builds and starts.
    if !std::env::args().any(|a| a == "--bench") {
        println!("idle: run with `cargo bench -p sccm-connector --bench idle`");
        return;
    }
    let seconds = std::env::var("IDLE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60)
        .max(1);
    let window = Duration::from_secs(seconds);
    let dir = tempfile::Builder::new()
        .prefix("sccm-connector-idle-")
        .tempdir()
        .expect("a temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The protocol's cadence: the simulator answers every poll with poll_after_seconds = 10.
    let portal = runtime
        .block_on(serve(SimConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            dir.path().join("portal"),
        )))
        .expect("the portal simulator starts");
    let url = portal.url();
    let config = write_config(dir.path(), &url);
    let connector = Killed(
        Command::new(exe())
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sccm-connector run starts"),
    );
    let reference = Killed(
        Command::new("sleep")
            .arg((seconds + 30).to_string())
            .spawn()
            .expect("sleep starts"),
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let polls = |min: usize, timeout_ms: u64| {
        let url = format!(
            "{url}/sim/requests?min={min}&method=GET&path=/api/connector/v1/commands&timeout_ms={timeout_ms}"
        );
        runtime.block_on(async {
            let answer = http.get(url).send().await.ok()?.bytes().await.ok()?;
            let value: serde_json::Value = serde_json::from_slice(&answer).ok()?;
            value["requests"].as_array().map(Vec::len)
        })
    };
    // Idle means started: the journal folded and the first poll answered.
    let first = polls(1, 60_000).unwrap_or(0);
    assert!(first >= 1, "the connector never polled");
    let samples = sample(&[connector.0.id(), reference.0.id()], window);
    let polled = polls(0, 0).unwrap_or(0).saturating_sub(first);
    let tck = ticks_per_second();
    let (idle, floor) = (&samples[0], &samples[1]);
    println!(
        "idle: sccm-connector run, {:.1} s, {polled} polls: RSS {:.1} MB (last {:.1} MB, peak since start VmHWM {:.1} MB), CPU {:.3} % ({} ticks of 1/{tck} s)",
        idle.wall.as_secs_f64(),
        idle.rss_mb(),
        idle.rss_last_kb as f64 / 1024.0,
        idle.hwm_kb as f64 / 1024.0,
        idle.cpu_percent(tck),
        idle.cpu_ticks,
    );
    println!(
        "idle: reference `sleep`: RSS {:.1} MB, CPU {:.3} %",
        floor.rss_mb(),
        floor.cpu_percent(tck)
    );
    println!(
        "idle: targets ≤ {RSS_TARGET_MB} MB: {}; ≤ {CPU_TARGET_PERCENT} %: {}",
        if idle.rss_mb() <= RSS_TARGET_MB {
            "met"
        } else {
            "NOT met"
        },
        if idle.cpu_percent(tck) <= CPU_TARGET_PERCENT {
            "met"
        } else {
            "NOT met"
        },
    );
    println!("REFERENCE idle_sleep_rss_mb {:.2}", floor.rss_mb());
    println!(
        "REFERENCE idle_sleep_cpu_percent {:.3}",
        floor.cpu_percent(tck)
    );
    println!("RATIO idle_rss_mb {:.2}", idle.rss_mb());
    println!("RATIO idle_cpu_percent {:.3}", idle.cpu_percent(tck));
    drop(connector);
    runtime.block_on(portal.shutdown());
}
