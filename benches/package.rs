//! Packing and unpacking a 1 GB mixed source folder, beside Info-ZIP's `zip -r -6` and `unzip`
//! on the same data in the same run.
//!
//! The folder mixes what PSADT packages hold: compressible text (scripts, logs, XML), installers
//! that are already compressed (`.msi`, `.cab`: stored by the connector, tried and stored by
//! `zip`), and half-compressible binaries. It is generated once, deterministically, under
//! `target/bench-data/` (real disk, not tmpfs). The connector's peak memory while packing is
//! measured in a child process (VmHWM).
//!
//! The source is read once before timing so both tools start from a warm page cache, and the
//! tools take turns going first over `PACKAGE_BENCH_ROUNDS` rounds (default 2); each figure is the
//! best of its rounds.
//!
//! Ends with `RATIO zip_vs_cli`, `RATIO unzip_vs_cli` (CLI time / connector time: higher is
//! better), `RATIO zip_size_vs_cli` (archive size / CLI archive size) and
//! `RATIO zip_peak_rss_mb` (the connector's peak resident memory while packing, MB).

use sccm_connector::package::pack::{PackOptions, pack};
use sccm_connector::package::unpack::{UnpackLimits, sha256_file, unpack};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const TOTAL: u64 = 1 << 30;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_random(path: &Path, size: u64, rng: &mut Rng, compressible: u8) {
    const WORDS: &[&str] = &[
        "Install",
        "-DeploymentType",
        "Write-Log",
        "Execute-Process",
        "$envProgramFiles",
        "MSI",
        "<Setting",
        "Value=",
        "\"True\"/>",
        "ERROR",
        "INFO",
        "[2020-01-31",
        "09:12:00]",
        "FileZilla",
        "AppDeployToolkit",
        "exit",
        "code",
        "0",
    ];
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let r = rng.next();
        match compressible {
            // Text: words and line breaks.
            2 => {
                out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
                out.push(if r.is_multiple_of(11) { b'\n' } else { b' ' });
            }
            // Half-compressible binary: random bytes with runs.
            1 => {
                let run = (r >> 8) % 24;
                let byte = (r >> 16) as u8;
                if r.is_multiple_of(3) {
                    out.extend(std::iter::repeat_n(byte, run as usize));
                } else {
                    out.extend_from_slice(&r.to_le_bytes());
                }
            }
            _ => out.extend_from_slice(&r.to_le_bytes()),
        }
    }
    out.truncate(size as usize);
    fs::write(path, out).expect("write bench data");
}

/// A ~1 GB folder: 35 % text, 40 % installers, 25 % binaries, in nested folders.
fn data_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/package-1g");
    let source = root.join("source");
    if root.join("ready").exists() {
        return source;
    }
    let _ = fs::remove_dir_all(&root);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut written = 0u64;
    let mut i = 0;
    while written < TOTAL {
        let kind = i % 20;
        let (dir, name, size, compressible) = match kind {
            0 => ("Files", format!("setup-{i}.msi"), 90 << 20, 0),
            1 => ("Files", format!("data-{i}.cab"), 40 << 20, 0),
            2..=5 => ("bin", format!("lib{i}.dll"), 12 << 20, 1),
            _ => ("AppDeployToolkit/logs", format!("log-{i}.txt"), 3 << 20, 2),
        };
        let dir = source.join(dir).join(format!("part{}", i % 4));
        fs::create_dir_all(&dir).expect("mkdir");
        write_random(&dir.join(name), size, &mut rng, compressible);
        written += size;
        i += 1;
    }
    fs::write(root.join("ready"), b"").expect("marker");
    source
}

fn seconds<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed().as_secs_f64(), out)
}

fn peak_rss_kb() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Reads every file once so that neither tool pays for a cold page cache.
fn warm(dir: &Path) {
    for entry in fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            warm(&path);
        } else {
            let mut file = fs::File::open(&path).expect("open");
            std::io::copy(&mut file, &mut std::io::sink()).expect("read");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child-pack" {
        pack(
            Path::new(&args[2]),
            Path::new(&args[3]),
            &PackOptions::default(),
        )
        .expect("pack");
        println!("{}", peak_rss_kb());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let source = data_dir();
    let work = source.parent().expect("parent").join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).expect("mkdir");
    let input_bytes: u64 = walk_size(&source);
    println!(
        "package bench: {:.2} GB source folder at {}",
        input_bytes as f64 / 1e9,
        source.display()
    );

    warm(&source);
    let rounds: usize = std::env::var("PACKAGE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let exe = std::env::current_exe().expect("current exe");
    let cli_zip = work.join("cli.zip");
    let ours = work.join("ours.zip");
    let (mut cli_zip_s, mut zip_s, mut cli_unzip_s, mut unzip_s) =
        (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut peak_kb = 0u64;
    for round in 0..rounds {
        let cli_first = round % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == cli_first {
                // Info-ZIP, same data, same disk.
                let _ = fs::remove_file(&cli_zip);
                let (s, status) = seconds(|| {
                    Command::new("zip")
                        .args(["-r", "-6", "-q"])
                        .arg(&cli_zip)
                        .arg(".")
                        .current_dir(&source)
                        .status()
                });
                assert!(
                    status
                        .expect("zip runs (apt-get install zip unzip)")
                        .success()
                );
                cli_zip_s = cli_zip_s.min(s);
            } else {
                // The connector, packing in a child process to measure its peak memory.
                let _ = fs::remove_file(&ours);
                let (s, output) = seconds(|| {
                    Command::new(&exe)
                        .arg("--child-pack")
                        .arg(&source)
                        .arg(&ours)
                        .output()
                        .expect("child runs")
                });
                assert!(
                    output.status.success(),
                    "child pack failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let kb: u64 = String::from_utf8_lossy(&output.stdout)
                    .trim()
                    .parse()
                    .expect("the child prints its VmHWM");
                peak_kb = peak_kb.max(kb);
                zip_s = zip_s.min(s);
            }
        }
        let sha = sha256_file(&ours).expect("hash");
        for turn in 0..2 {
            if (turn == 0) == cli_first {
                let cli_out = work.join("cli-out");
                let _ = fs::remove_dir_all(&cli_out);
                fs::create_dir_all(&cli_out).expect("mkdir");
                let (s, status) = seconds(|| {
                    Command::new("unzip")
                        .args(["-q", "-o"])
                        .arg(&cli_zip)
                        .arg("-d")
                        .arg(&cli_out)
                        .status()
                });
                assert!(status.expect("unzip runs").success());
                cli_unzip_s = cli_unzip_s.min(s);
            } else {
                let target = work.join("share").join("App");
                let _ = fs::remove_dir_all(work.join("share"));
                let (s, unpacked) = seconds(|| {
                    unpack(&ours, &sha, &target, &UnpackLimits::default()).expect("unpack")
                });
                drop(unpacked);
                unzip_s = unzip_s.min(s);
            }
        }
    }

    let cli_size = fs::metadata(&cli_zip).expect("cli zip").len();
    let our_size = fs::metadata(&ours).expect("our zip").len();
    println!(
        "zip -r -6     {cli_zip_s:7.2} s   {:7.1} MB/s   archive {:.1} MB",
        mbps(input_bytes, cli_zip_s),
        cli_size as f64 / 1e6
    );
    println!(
        "connector pack {zip_s:6.2} s   {:7.1} MB/s   archive {:.1} MB   peak RSS {:.1} MB",
        mbps(input_bytes, zip_s),
        our_size as f64 / 1e6,
        peak_kb as f64 / 1024.0
    );
    println!(
        "unzip         {cli_unzip_s:7.2} s   {:7.1} MB/s",
        mbps(input_bytes, cli_unzip_s)
    );
    println!(
        "connector unpack {unzip_s:4.2} s   {:7.1} MB/s (with SHA-256 manifest and fsync)",
        mbps(input_bytes, unzip_s)
    );
    println!("({rounds} rounds, each tool's best; the tools take turns going first)");
    println!("RATIO zip_vs_cli {:.2}", cli_zip_s / zip_s);
    println!("RATIO unzip_vs_cli {:.2}", cli_unzip_s / unzip_s);
    println!(
        "RATIO zip_size_vs_cli {:.4}",
        our_size as f64 / cli_size as f64
    );
    println!("RATIO zip_peak_rss_mb {:.1}", peak_kb as f64 / 1024.0);
    let _ = fs::remove_dir_all(&work);
}

fn mbps(bytes: u64, s: f64) -> f64 {
    bytes as f64 / 1e6 / s
}

fn walk_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
