//! Crash test of the journal (harness = false): this executable re-executes
//! itself in CHILD mode, lets the child append and commit records from
//! several threads, kills it with SIGKILL after a random number of reported
//! commits, reopens the journal and checks that every commit survived, that
//! sequences are contiguous and that the chain verifies.
//!
//! Environment:
//! * `JOURNAL_CRASH_KILLS` — number of kills (default 60);
//! * `JOURNAL_CRASH_SEED`  — PRNG seed (default: from the clock; always printed).
//!
//! The last output line is `<passed> passed, <failed> failed`.

use journal::{Journal, Options, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const CHILD_DIR_ENV: &str = "JOURNAL_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "JOURNAL_CRASH_CHILD_SEED";
const KILLS_ENV: &str = "JOURNAL_CRASH_KILLS";
const SEED_ENV: &str = "JOURNAL_CRASH_SEED";

const WRITER_THREADS: u64 = 4;
const JOBS_PER_THREAD: u64 = 3;
const PAYLOAD_FORMAT: u16 = 7;
/// A fresh journal directory every this many kills; in between, each child
/// continues the journal its killed predecessor left behind.
const KILLS_PER_DIR: u64 = 10;

/// splitmix64: tiny, seedable, good enough to pick kill points and bytes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

fn job_id(index: u64) -> Uuid {
    Uuid::from_u128(0x6a6f_6272_0000_0000_0000_0000_0000_0000 | u128::from(index))
}

fn all_jobs() -> Vec<Uuid> {
    (0..WRITER_THREADS * JOBS_PER_THREAD).map(job_id).collect()
}

/// The deterministic payload of `(job, job_seq)`: 8 to 263 pseudo-random bytes, except every 16th
/// record, which is 32 KiB to 160 KiB so that fragmented records (several sled values in one batch)
/// are killed mid-write too.
fn payload_for(job: Uuid, job_seq: u64) -> Vec<u8> {
    let folded = job.as_u128();
    let mut rng =
        Rng((folded as u64) ^ ((folded >> 64) as u64) ^ job_seq.wrapping_mul(0x1000_0001));
    let len = if job_seq.is_multiple_of(16) {
        32 * 1024 + rng.next_u64() % (128 * 1024)
    } else {
        8 + rng.next_u64() % 256
    };
    (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect()
}

fn timestamp_for(job_seq: u64) -> Timestamp {
    Timestamp(1_700_000_000_000 + i64::try_from(job_seq).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------- child --

fn child(dir: &str, seed: u64) -> ExitCode {
    let journal = Arc::new(Journal::open(dir, Options::new()).expect("child: open journal"));
    let mut next_job_seq: HashMap<Uuid, u64> = all_jobs().into_iter().map(|j| (j, 1)).collect();
    for summary in journal.jobs().expect("child: list jobs") {
        next_job_seq.insert(summary.job, summary.last_job_seq + 1);
    }
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|t| {
            let journal = Arc::clone(&journal);
            let mine: Vec<(Uuid, u64)> = (0..JOBS_PER_THREAD)
                .map(|k| {
                    let job = job_id(t * JOBS_PER_THREAD + k);
                    (job, next_job_seq[&job])
                })
                .collect();
            std::thread::spawn(move || writer(&journal, mine, seed ^ t))
        })
        .collect();
    for t in threads {
        // Writers run until the parent kills the process.
        t.join().expect("child: writer panicked");
    }
    ExitCode::SUCCESS
}

fn writer(journal: &Journal, mut mine: Vec<(Uuid, u64)>, seed: u64) {
    let mut rng = Rng(seed);
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let size = rng.range(1, 3);
        for _ in 0..size {
            let pick = usize::try_from(rng.next_u64() % JOBS_PER_THREAD).expect("small");
            let (job, job_seq) = mine[pick];
            let payload = payload_for(job, job_seq);
            let appended = if size == 1 && rng.next_u64().is_multiple_of(2) {
                journal.append_durable(job, timestamp_for(job_seq), PAYLOAD_FORMAT, &payload)
            } else {
                journal.append(job, timestamp_for(job_seq), PAYLOAD_FORMAT, &payload)
            }
            .expect("child: append");
            assert_eq!(appended.job_seq, job_seq, "child: job sequence of {job}");
            mine[pick].1 += 1;
            batch.push(appended.seq);
        }
        let last = *batch.last().expect("non-empty batch");
        journal.commit(last).expect("child: commit");
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for seq in &batch {
            if writeln!(out, "committed {seq}").is_err() {
                std::process::exit(0);
            }
        }
        if out.flush().is_err() {
            std::process::exit(0);
        }
    }
}

// --------------------------------------------------------------- parent --

#[derive(Debug, Default)]
struct Recovered {
    head: u64,
    jobs: usize,
}

/// Reopens the journal and checks everything the parent knows.
fn check(dir: &Path, committed: &BTreeSet<u64>) -> Result<Recovered, String> {
    let journal = Journal::open(dir, Options::new()).map_err(|e| format!("reopen: {e}"))?;
    let report = journal.verify().map_err(|e| format!("verify: {e}"))?;
    let head = journal.head().seq;
    if report.head_seq != head {
        return Err(format!(
            "verify says head {}, journal says {head}",
            report.head_seq
        ));
    }
    let known: BTreeSet<Uuid> = all_jobs().into_iter().collect();
    let mut per_job: HashMap<Uuid, u64> = HashMap::new();
    let mut expected = 1u64;
    for item in journal.iter_from(1) {
        let r = item.map_err(|e| format!("iterate: {e}"))?;
        if r.seq() != expected {
            return Err(format!("expected record {expected}, got {}", r.seq()));
        }
        if !known.contains(&r.job()) {
            return Err(format!("record {} has unknown job {}", r.seq(), r.job()));
        }
        let job_seq = per_job.entry(r.job()).or_insert(0);
        *job_seq += 1;
        if r.job_seq() != *job_seq {
            return Err(format!(
                "record {}: job sequence {} where {} was expected",
                r.seq(),
                r.job_seq(),
                job_seq
            ));
        }
        if r.payload() != payload_for(r.job(), r.job_seq()).as_slice()
            || r.timestamp() != timestamp_for(r.job_seq())
            || r.payload_format() != PAYLOAD_FORMAT
        {
            return Err(format!("record {}: wrong content", r.seq()));
        }
        expected += 1;
    }
    let blobs = std::fs::read_dir(dir.join("blobs")).map_or(0, Iterator::count);
    if blobs != 0 {
        return Err(format!(
            "sled wrote {blobs} blob file(s), which it never fsyncs"
        ));
    }
    if expected != head + 1 {
        return Err(format!(
            "iteration ended at {}, head is {head}",
            expected - 1
        ));
    }
    if let Some(&max) = committed.last()
        && max > head
    {
        return Err(format!(
            "committed record {max} lost: journal ends at {head}"
        ));
    }
    let jobs = journal.jobs().map_err(|e| format!("jobs: {e}"))?;
    for summary in &jobs {
        if per_job.get(&summary.job) != Some(&summary.last_job_seq) {
            return Err(format!("job head of {} disagrees", summary.job));
        }
        let n = journal
            .iter_job(summary.job)
            .map(|r| r.map(|_| ()))
            .collect::<Result<Vec<()>, _>>()
            .map_err(|e| format!("iter_job {}: {e}", summary.job))?
            .len();
        if u64::try_from(n).ok() != Some(summary.last_job_seq) {
            return Err(format!("job {} iterates {n} records", summary.job));
        }
    }
    if jobs.len() != per_job.len() {
        return Err(format!(
            "{} job heads for {} jobs",
            jobs.len(),
            per_job.len()
        ));
    }
    journal.close().map_err(|e| format!("close: {e}"))?;
    Ok(Recovered {
        head,
        jobs: jobs.len(),
    })
}

/// Runs one child, kills it after `kill_after` reported commits and returns
/// the commits it reported.
fn run_child(dir: &Path, seed: u64, kill_after: u64) -> Result<Vec<u64>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut committed = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    let mut early_exit = None;
    while (committed.len() as u64) < kill_after {
        match lines.next() {
            Some(Ok(line)) => {
                let seq = line
                    .strip_prefix("committed ")
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| format!("unexpected child output {line:?}"))?;
                committed.push(seq);
            }
            Some(Err(e)) => return Err(format!("reading child output: {e}")),
            None => {
                early_exit = Some(committed.len());
                break;
            }
        }
    }
    child.kill().map_err(|e| format!("kill: {e}"))?;
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if let Some(n) = early_exit {
        return Err(format!(
            "child exited on its own after {n} commits: {status}"
        ));
    }
    Ok(committed)
}

/// Kill points: often right away (during open/recovery or the first
/// commits), sometimes after hundreds of commits.
fn pick_kill_point(rng: &mut Rng) -> u64 {
    match rng.next_u64() % 100 {
        0..=14 => 0,
        15..=44 => rng.range(1, 8),
        45..=79 => rng.range(9, 150),
        _ => rng.range(151, 1200),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn parent() -> ExitCode {
    let started = Instant::now();
    let kills = env_u64(KILLS_ENV).unwrap_or(60);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64)
    });
    println!("journal crash test: {kills} kills, seed {seed} (set {SEED_ENV}={seed} to reproduce)");
    let mut rng = Rng(seed);
    let root = tempfile::Builder::new()
        .prefix("journal-crash-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create the test directory under the target dir");

    let (mut passed, mut failed) = (0u64, 0u64);
    let mut total_commits = 0u64;
    let mut committed = BTreeSet::new();
    let mut dir = root.path().to_path_buf();
    for round in 0..kills {
        if round % KILLS_PER_DIR == 0 {
            dir = root
                .path()
                .join(format!("journal-{}", round / KILLS_PER_DIR));
            committed.clear();
        }
        let kill_after = pick_kill_point(&mut rng);
        let child_seed = rng.next_u64();
        let outcome = run_child(&dir, child_seed, kill_after).and_then(|reported| {
            total_commits += reported.len() as u64;
            committed.extend(reported.iter().copied());
            check(&dir, &committed).map(|rec| (reported.len(), rec))
        });
        match outcome {
            Ok((n, rec)) => {
                passed += 1;
                println!(
                    "kill {:>3}/{kills}: after {n:>4} commits; recovered {} records in {} jobs, all {} commits present, chain verified",
                    round + 1,
                    rec.head,
                    rec.jobs,
                    committed.len()
                );
            }
            Err(e) => {
                failed += 1;
                println!(
                    "kill {:>3}/{kills}: FAILED (kill after {kill_after}, child seed {child_seed}): {e}",
                    round + 1
                );
            }
        }
    }
    println!(
        "total: {kills} kills, {total_commits} commits reported and checked, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    match std::env::var(CHILD_DIR_ENV) {
        Ok(dir) => {
            let seed = env_u64(CHILD_SEED_ENV).unwrap_or(1);
            child(&dir, seed)
        }
        Err(_) => parent(),
    }
}
