//! Journal benchmark (harness = false), run by `cargo bench -p journal`.
//!
//! Measures, in one run and one directory under the target dir (not /tmp,
//! which may be tmpfs where fdatasync is free):
//! 1. durable append throughput, 1 writer and 8 concurrent writers, against
//!    a plain file with `write` + `fdatasync` per record ("raw single") and a
//!    plain file with 8 `write`s per `fdatasync` ("raw group8");
//! 2. append+commit latency p50/p99 against raw single;
//! 3. recovery of a 1,000,000-event journal (open + iterate + decode + fold)
//!    in a child process (time and peak RSS from `/proc/self/status` VmHWM),
//!    at 100k and 1M events, against reading and folding a plain file of
//!    the same encoded records.
//!
//! Human-readable lines first, then `RATIO <name> <value>` lines.

use journal::{Journal, Options, Record, Timestamp, decode_payload, encode_payload};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CHILD_FLAG: &str = "--journal-bench-child";

/// Journal options of the run. `JOURNAL_BENCH_HIGH_THROUGHPUT=1` selects
/// sled's high-throughput mode, `JOURNAL_BENCH_CACHE_MB` the cache size
/// (both inherited by the child processes).
fn options() -> Options {
    let mut o = Options::new();
    if std::env::var("JOURNAL_BENCH_HIGH_THROUGHPUT").is_ok_and(|v| v == "1") {
        o = o.high_throughput(true);
    }
    if let Some(mb) = std::env::var("JOURNAL_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        o = o.cache_capacity(mb * 1024 * 1024);
    }
    o
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const DURABLE_1W: usize = 1500;
const DURABLE_8W_PER_THREAD: usize = 400;
const WRITERS: usize = 8;
const ROUNDS: usize = 10;
/// 16 jobs are active at a time, each receives 100 events.
const ACTIVE_JOBS: u64 = 16;
const EVENTS_PER_JOB: u64 = 100;

/// A ~100-byte event payload (encoded with the project's payload codec).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct BenchEvent {
    kind: u8,
    step: u32,
    text: String,
}

fn event(i: u64) -> Vec<u8> {
    let e = BenchEvent {
        kind: (i % 7) as u8,
        step: (i % 1000) as u32,
        text: format!("{i:012} step output line, the quick brown fox jumps over the lazy dog.."),
    };
    encode_payload(&e).expect("encode bench payload")
}

fn job_of(i: u64) -> Uuid {
    let block = i / (ACTIVE_JOBS * EVENTS_PER_JOB);
    Uuid::from_u128(u128::from(block * ACTIVE_JOBS + i % ACTIVE_JOBS) + 1)
}

fn ts(i: u64) -> Timestamp {
    Timestamp(1_700_000_000_000 + i as i64)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&p),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best = (0usize, String::from("unknown"));
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 2 && path.starts_with(f[1]) && f[1].len() >= best.0 {
            best = (f[1].len(), format!("{} on {}", f[2], f[1]));
        }
    }
    best.1
}

// ------------------------------------------------------------ raw files --

/// Records, elapsed time and per-record latencies of one kind of run.
#[derive(Debug, Default)]
struct Tally {
    records: usize,
    secs: f64,
    lat: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, (records, secs, lat): (usize, f64, Vec<Duration>)) {
        self.records += records;
        self.secs += secs;
        self.lat.extend(lat);
    }

    fn rate(&self) -> f64 {
        self.records as f64 / self.secs.max(1e-9)
    }
}

fn raw_single(path: &Path, records: &[Vec<u8>]) -> (usize, f64, Vec<Duration>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("raw file");
    let mut lat = Vec::with_capacity(records.len());
    let start = Instant::now();
    for r in records {
        let t = Instant::now();
        f.write_all(r).expect("raw write");
        f.sync_data().expect("raw fdatasync");
        lat.push(t.elapsed());
    }
    (records.len(), start.elapsed().as_secs_f64(), lat)
}

fn raw_group8(path: &Path, records: &[Vec<u8>]) -> (usize, f64, Vec<Duration>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("raw file");
    let start = Instant::now();
    for group in records.chunks(WRITERS) {
        for r in group {
            f.write_all(r).expect("raw write");
        }
        f.sync_data().expect("raw fdatasync");
    }
    (records.len(), start.elapsed().as_secs_f64(), Vec::new())
}

// -------------------------------------------------------------- journal --

fn journal_1w(j: &Journal, n: usize, base: u64) -> (usize, f64, Vec<Duration>) {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n as u64 {
        let k = base + i;
        let p = event(k);
        let t = Instant::now();
        let a = j.append(job_of(k), ts(k), 1, &p).expect("append");
        j.commit(a.seq).expect("commit");
        lat.push(t.elapsed());
    }
    (n, start.elapsed().as_secs_f64(), lat)
}

fn journal_8w(j: &Arc<Journal>, per_thread: usize, base: u64) -> (usize, f64, Vec<Duration>) {
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let handles: Vec<_> = (0..WRITERS as u64)
        .map(|t| {
            let (j, barrier) = (Arc::clone(j), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let payloads: Vec<Vec<u8>> = (0..per_thread as u64)
                    .map(|i| event(base + t * 1_000_000 + i))
                    .collect();
                let job = Uuid::from_u128(u128::from(0xBEEF_0000 + t));
                barrier.wait();
                for (i, p) in payloads.iter().enumerate() {
                    let a = j.append(job, ts(i as u64), 1, p).expect("append");
                    j.commit(a.seq).expect("commit");
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("writer thread");
    }
    (
        WRITERS * per_thread,
        start.elapsed().as_secs_f64(),
        Vec::new(),
    )
}

/// Appends events `from..to` without per-record commit, one commit at the
/// end (the journal commits its queue itself every 256 records).
fn build(j: &Journal, from: u64, to: u64) {
    for i in from..to {
        j.append(job_of(i), ts(i), 1, &event(i)).expect("append");
    }
    j.commit_all().expect("commit");
}

// ------------------------------------------------------------- children --

#[derive(Debug, Default, Clone, Copy)]
struct ChildReport {
    open_secs: f64,
    total_secs: f64,
    rss_kib: u64,
    rss_open_kib: u64,
    records: u64,
    jobs: u64,
}

fn fold_event(per_job: &mut HashMap<Uuid, u64>, steps: &mut u64, r: &Record) {
    let e: BenchEvent = decode_payload(r.payload()).expect("decode payload");
    *per_job.entry(r.job()).or_insert(0) += 1;
    *steps += u64::from(e.step) + u64::from(e.kind) + e.text.len() as u64;
}

fn child_journal(dir: &Path) -> ChildReport {
    let t = Instant::now();
    let j = Journal::open(dir, options()).expect("open");
    let open_secs = t.elapsed().as_secs_f64();
    let rss_open_kib = peak_rss_kib();
    let mut per_job = HashMap::new();
    let mut steps = 0u64;
    let mut records = 0u64;
    for r in j.iter_from(1) {
        let r = r.expect("read record");
        fold_event(&mut per_job, &mut steps, &r);
        records += 1;
    }
    std::hint::black_box(steps);
    if std::env::var("JOURNAL_BENCH_DEBUG_RSS").is_ok() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for l in status
            .lines()
            .filter(|l| l.starts_with("Vm") || l.starts_with("Rss"))
        {
            eprintln!("child: {l}");
        }
    }
    ChildReport {
        open_secs,
        total_secs: t.elapsed().as_secs_f64(),
        rss_kib: peak_rss_kib(),
        rss_open_kib,
        records,
        jobs: per_job.len() as u64,
    }
}

/// Raw file format: `[u32 LE length][stored record value]` repeated.
fn child_raw(path: &Path) -> ChildReport {
    let t = Instant::now();
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).expect("raw file"));
    let mut per_job = HashMap::new();
    let mut steps = 0u64;
    let mut records = 0u64;
    let mut len = [0u8; 4];
    while r.read_exact(&mut len).is_ok() {
        let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut v).expect("raw record");
        records += 1;
        let rec = Record::decode(records, v).expect("decode record");
        fold_event(&mut per_job, &mut steps, &rec);
    }
    std::hint::black_box(steps);
    ChildReport {
        open_secs: 0.0,
        total_secs: t.elapsed().as_secs_f64(),
        rss_kib: peak_rss_kib(),
        rss_open_kib: 0,
        records,
        jobs: per_job.len() as u64,
    }
}

fn run_child(mode: &str, path: &Path) -> ChildReport {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .arg(CHILD_FLAG)
        .arg(mode)
        .arg(path)
        .output()
        .expect("run child");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("CHILD "))
        .expect("child report");
    let f: Vec<&str> = line.split_whitespace().collect();
    ChildReport {
        open_secs: f[1].parse().expect("open"),
        total_secs: f[2].parse().expect("total"),
        rss_kib: f[3].parse().expect("rss"),
        records: f[4].parse().expect("records"),
        jobs: f[5].parse().expect("jobs"),
        rss_open_kib: f[6].parse().expect("rss after open"),
    }
}

fn child_main(mode: &str, path: &Path) {
    let r = match mode {
        "journal" => child_journal(path),
        "raw" => child_raw(path),
        other => panic!("unknown child mode {other}"),
    };
    println!(
        "CHILD {} {} {} {} {} {}",
        r.open_secs, r.total_secs, r.rss_kib, r.records, r.jobs, r.rss_open_kib
    );
}

fn write_raw_copy(j: &Journal, path: &Path) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("raw copy"));
    for r in j.iter_from(1) {
        let r = r.expect("read");
        let v = r.stored_value();
        w.write_all(&(v.len() as u32).to_le_bytes()).expect("write");
        w.write_all(v).expect("write");
    }
    let f = w.into_inner().expect("flush raw copy");
    f.sync_all().expect("sync raw copy");
}

// ----------------------------------------------------------------- main --

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == CHILD_FLAG) {
        child_main(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let overall = Instant::now();
    let root = tempfile::Builder::new()
        .prefix("journal-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("bench dir");
    let dir: PathBuf = root.path().to_path_buf();
    println!("bench dir: {} ({})", dir.display(), filesystem_of(&dir));

    // Stored-value-sized raw records (same bytes the journal stores).
    let sample_len = {
        let probe = tempfile::tempdir_in(&dir).expect("probe dir");
        let j = Journal::open(probe.path(), options()).expect("open probe");
        j.append_durable(job_of(0), ts(0), 1, &event(0))
            .expect("append");
        j.iter_from(1)
            .next()
            .expect("one record")
            .expect("read")
            .stored_value()
            .len()
    };
    let raw_records: Vec<Vec<u8>> = (0..(DURABLE_8W_PER_THREAD * WRITERS).max(DURABLE_1W))
        .map(|i| {
            let mut v = event(i as u64);
            v.resize(sample_len, 0xAB);
            v
        })
        .collect();
    println!(
        "payload ~{} bytes, stored record {} bytes",
        event(0).len(),
        sample_len
    );

    // 1 + 2: durable appends, interleaved in rounds (raw, journal, raw,
    // journal, ...) so that drifting disk conditions hit both alike.
    let skip_durable = std::env::var("JOURNAL_BENCH_SKIP_DURABLE").is_ok();
    let raw_single_path = dir.join("raw-single.log");
    let raw_group_path = dir.join("raw-group8.log");
    let jdir = dir.join("durable");
    let j = Arc::new(Journal::open(&jdir, options()).expect("open"));
    // Warm-up: sled allocates its first segment, the raw files exist.
    build(&j, 0, 100);
    raw_single(&raw_single_path, &raw_records[..8]);
    raw_group8(&raw_group_path, &raw_records[..8]);
    let (mut raw1, mut j1, mut raw8, mut j8) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    let mut j8_flushes = 0;
    let mut j8_batches = 0;
    let rounds = if skip_durable { 0 } else { ROUNDS };
    let (mut ratios_1w, mut ratios_8w) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let base = (round * 100_000) as u64;
        let r1 = raw_single(&raw_single_path, &raw_records[..DURABLE_1W / ROUNDS]);
        let q1 = journal_1w(&j, DURABLE_1W / ROUNDS, 1_000 + base);
        ratios_1w.push((r1.1 / r1.0 as f64) / (q1.1 / q1.0 as f64));
        raw1.add(r1);
        j1.add(q1);
        let n8 = DURABLE_8W_PER_THREAD / ROUNDS;
        let r8 = raw_group8(&raw_group_path, &raw_records[..n8 * WRITERS]);
        let before = j.stats();
        let q8 = journal_8w(&j, n8, 10_000_000 + base);
        ratios_8w.push((r8.1 / r8.0 as f64) / (q8.1 / q8.0 as f64));
        raw8.add(r8);
        j8.add(q8);
        let after = j.stats();
        j8_flushes += after.flushes - before.flushes;
        j8_batches += after.append_batches - before.append_batches;
    }
    drop(j);
    for (name, t) in [
        ("raw single   (write+fdatasync per record)", &mut raw1),
        ("journal 1w   (append+commit per record)  ", &mut j1),
    ] {
        t.lat.sort();
        println!(
            "{name}: {:>9.0} records/s  p50 {:>7.1} us  p99 {:>7.1} us",
            t.rate(),
            us(pct(&t.lat, 0.5)),
            us(pct(&t.lat, 0.99))
        );
    }
    println!(
        "raw group8   (8 writes, 1 fdatasync)       : {:>9.0} records/s",
        raw8.rate()
    );
    println!(
        "per-round throughput ratios (journal/raw): 1w {:?}, 8w {:?}",
        ratios_1w
            .iter()
            .map(|r| (r * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        ratios_8w
            .iter()
            .map(|r| (r * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    println!(
        "journal 8w   (8 threads, append+commit)   : {:>9.0} records/s  ({} appends in {j8_batches} sled batches, {j8_flushes} flushes, {:.1} records/flush)",
        j8.rate(),
        j8.records,
        j8.records as f64 / j8_flushes.max(1) as f64
    );

    // 3: recovery. `JOURNAL_BENCH_EVENTS` overrides the 1M size (the small
    // one is a tenth of it).
    let recovery_large = env_u64("JOURNAL_BENCH_EVENTS", 1_000_000);
    let recovery_small = recovery_large / 10;
    let rdir = dir.join("recovery");
    let t = Instant::now();
    let j = Journal::open(&rdir, options()).expect("open");
    build(&j, 0, recovery_small);
    j.close().expect("close");
    let build_small = t.elapsed().as_secs_f64();
    let small_size = dir_size(&rdir);
    let small = run_child("journal", &rdir);
    let small_again = run_child("journal", &rdir);
    let t = Instant::now();
    let j = Journal::open(&rdir, options()).expect("reopen");
    build(&j, recovery_small, recovery_large);
    let raw_copy = dir.join("raw-records.bin");
    write_raw_copy(&j, &raw_copy);
    j.close().expect("close");
    let build_large = t.elapsed().as_secs_f64();
    let large_size = dir_size(&rdir);
    let large = run_child("journal", &rdir);
    let large_again = run_child("journal", &rdir);
    let raw = run_child("raw", &raw_copy);
    let raw_size = std::fs::metadata(&raw_copy).map(|m| m.len()).unwrap_or(0);
    assert_eq!(small.records, recovery_small);
    assert_eq!(large.records, recovery_large);
    assert_eq!(raw.records, recovery_large);
    assert_eq!(large.jobs, raw.jobs);
    println!(
        "build: 100k events in {build_small:.1} s, +900k events in {build_large:.1} s (append without commit; the full queue commits itself every 256 records)"
    );
    for (name, r, size) in [
        ("journal 100k, 1st open", small, small_size),
        ("journal 100k, 2nd open", small_again, small_size),
        ("journal 1M,   1st open", large, large_size),
        ("journal 1M,   2nd open", large_again, large_size),
        ("raw file 1M  (read+fold)", raw, raw_size),
    ] {
        println!(
            "recovery {name}: open {:.2} s, open+iterate+fold {:.2} s, {} records, {} jobs, peak RSS {:.1} MiB (after open {:.1} MiB), on disk {:.1} MiB",
            r.open_secs,
            r.total_secs,
            r.records,
            r.jobs,
            r.rss_kib as f64 / 1024.0,
            r.rss_open_kib as f64 / 1024.0,
            size as f64 / (1024.0 * 1024.0)
        );
    }
    let worst_1m = large.total_secs.max(large_again.total_secs);
    println!("bench total {:.0} s", overall.elapsed().as_secs_f64());

    if !skip_durable {
        // Throughput ratios: median over the interleaved rounds, robust
        // against a burst of foreign disk traffic hitting one side.
        println!(
            "RATIO append_1w_vs_raw_single {:.3}",
            median(&mut ratios_1w)
        );
        println!(
            "RATIO append_8w_vs_raw_group8 {:.3}",
            median(&mut ratios_8w)
        );
        println!(
            "RATIO p50_latency_vs_raw {:.3}",
            pct(&j1.lat, 0.5).as_secs_f64() / pct(&raw1.lat, 0.5).as_secs_f64()
        );
        println!(
            "RATIO p99_latency_vs_raw {:.3}",
            pct(&j1.lat, 0.99).as_secs_f64() / pct(&raw1.lat, 0.99).as_secs_f64()
        );
    }
    println!("RATIO recovery_1m_seconds {worst_1m:.3}");
    println!(
        "RATIO recovery_1m_vs_raw_read {:.3}",
        worst_1m / raw.total_secs
    );
    println!(
        "RATIO recovery_peak_rss_1m_vs_100k {:.3}",
        large.rss_kib as f64 / small.rss_kib.max(1) as f64
    );
    println!(
        "RATIO disk_bytes_per_record_1m {:.1}",
        large_size as f64 / recovery_large as f64
    );
}
