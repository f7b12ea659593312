//! The kill loop (harness = false): the real `sccm-connector run` binary against both
//! simulators, killed with SIGKILL at seeded-random moments and restarted, until every command is
//! done; then one last run stopped with SIGTERM, and the end state checked.
//!
//! - The portal simulator runs in this process (`poll_after_seconds = 1`) with a fault plan per
//!   round (5xx on polls and results, duplicate deliveries, a download paused mid-body so a
//!   checkpoint is journaled, resets and truncations mid-download, a reset mid-upload, a result
//!   whose answer is dropped). The site simulator is a directory; its fault plan crashes, exits or
//!   garbles PowerShell hosts after their effect (by probability, seeded), and hangs some calls:
//!   the loop notices a hanging call through the site's call counters and kills the PowerShell
//!   host mid-step itself.
//! - Rounds of commands: three pushes (a several-MB stored package so transfers are interrupted,
//!   the demo's FileZilla package, a small one; nested, shared and root folders) and two imports
//!   (the previous round's applications — complete, so each must be read and its sources
//!   uploaded with exactly the package's files — and every application without sources). Rounds
//!   go on until the kill target is reached; from the fifth on they push the first four rounds'
//!   applications again under new command ids (a push of what exists finds it in place), so the
//!   site stays small in soak runs. The connector's run mode (session or per step) is drawn per
//!   run; kills never count as failures (`max_interrupted = 1000`), host deaths do
//!   (`max_attempts = 12`).
//! - Crash points are events, never times: the child logs one line per journaled event
//!   (`RUST_LOG=…driver=debug`); the loop kills the connector — with its process tree, as a
//!   service stop or a power cut does — right after the k-th such line, or after the first line
//!   of a drawn event kind (`TransferProgress`, `ReportSent`, …), or once the round is done.
//! - Afterwards: every command has exactly one effective result (one idempotency key) and every
//!   push is `ok`; `sim site check` passes; the site holds exactly one application, deployment
//!   type, distribution and deployment per push, in its folder, every folder once, and its
//!   effect log shows no object created (or moved) twice; each share folder holds exactly its
//!   package (names and SHA-256); the journal verifies, every job is finished, one job per
//!   command.
//!
//! Environment: `KILL_LOOP_KILLS` (default 100), `KILL_LOOP_SEED` (default: from the clock;
//! always printed), `KILL_LOOP_MAX_SECONDS` (default 900: the whole loop's deadline),
//! `KILL_LOOP_KEEP` (keep the directory — journal, site, share, portal, `logs/run-N.log` of every
//! connector run — after a pass; it is always kept after a failure).
//! The last line is the totals: kills, commands, results, duplicates = 0, the seed.

#[path = "integration/support.rs"]
mod support;

#[path = "integration/portal_support.rs"]
mod portal_support;

use portal_support::Portal;
use sccm_connector::sim::portal::SimConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::e2e::{self, ExpectedPush, Setup};

const KILLS_ENV: &str = "KILL_LOOP_KILLS";
const SEED_ENV: &str = "KILL_LOOP_SEED";
const MAX_SECONDS_ENV: &str = "KILL_LOOP_MAX_SECONDS";
const KEEP_ENV: &str = "KILL_LOOP_KEEP";
const BIN: &str = env!("CARGO_BIN_EXE_sccm-connector");
/// The child's log filter: the driver's one line per journaled event, and the daemon's info.
const RUST_LOG: &str =
    "info,sccm_connector::engine::driver=debug,sccm_connector::engine::retention=debug";

/// Rounds with new application names; later rounds push these again. Keeps the site at 12
/// applications, so that imports (which read every application) keep rounds short; large imports
/// have their own test (`faults::an_import_of_forty_applications_journals_large_plans_and_outputs`).
const NAME_ROUNDS: u64 = 4;
/// How long one connector run may go without reaching its crash point or finishing the round.
const CYCLE_DEADLINE: Duration = Duration::from_secs(120);
/// A crash point waiting for an event kind gives up after this many journaled lines.
const EVENT_PATIENCE: u32 = 60;

/// The event kinds a crash point may wait for.
const EVENTS: [&str; 14] = [
    "Planned",
    "Acked",
    "StepStarted",
    "StepSucceeded",
    "StepIncomplete",
    "StepFailed",
    "TransferProgress",
    "ArchiveBuilt",
    "UploadOpened",
    "ResultReady",
    "ReportSent",
    "JobFinished",
    // Retention: the archive file is in place (not yet journaled); `JobsArchived` is journaled
    // (not yet pruned).
    "ArchiveWritten",
    "JobsArchived",
];

/// SplitMix64: small, seedable, enough to draw crash points.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

// ------------------------------------------------------------------ processes --

/// `(pid, ppid, state)` of every process, from `/proc/*/stat`.
fn processes() -> Vec<(u32, u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// Every descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let all = processes();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, ppid, _) in &all {
            if *ppid == parent && !found.contains(child) {
                found.push(*child);
                frontier.push(*child);
            }
        }
    }
    found
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Sends `signal` (`KILL`, `STOP`, `TERM`) to `pids`.
fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits until none of `pids` is alive (gone or a zombie).
fn wait_gone(pids: &[u32], deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    loop {
        let alive: Vec<u32> = processes()
            .into_iter()
            .filter(|(p, _, state)| pids.contains(p) && *state != 'Z')
            .map(|(p, _, _)| p)
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("processes {alive:?} outlived SIGKILL"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Strips ANSI escape sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let value = line[at..].split_whitespace().next()?;
    Some(value.trim_matches('"'))
}

/// The event of a driver's `journaled` line.
fn journaled(line: &str) -> Option<String> {
    if !line.contains("journaled") && !line.contains("retention step") {
        return None;
    }
    field(line, "event").map(str::to_string)
}

/// A running `sccm-connector run`: its stderr lines arrive on `lines` (and are kept in `log`).
struct Connector {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// Where the run's log is written when it is dropped.
    log_file: PathBuf,
}

impl Connector {
    fn start(config: &Path, log_file: PathBuf) -> Connector {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", RUST_LOG)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sccm-connector run starts");
        let stderr = child.stderr.take().expect("a piped stderr");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = plain(&line);
                keep.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining so the child never blocks.
                }
            }
        });
        Connector {
            child,
            lines,
            log,
            log_file,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL for the connector and its process tree (frozen first, so that it spawns nothing
    /// while its tree is collected). Returns how many descendants died with it.
    fn kill_tree(&mut self) -> Result<usize, String> {
        let pid = self.pid();
        signal("STOP", &[pid]);
        let tree = descendants(pid);
        let mut all = vec![pid];
        all.extend(&tree);
        signal("KILL", &all);
        let _ = self.child.wait();
        wait_gone(&tree, Duration::from_secs(10))?;
        Ok(tree.len())
    }

    /// SIGKILL for the connector's PowerShell hosts (the connector goes on). Returns how many.
    fn kill_hosts(&self) -> usize {
        let hosts: Vec<u32> = descendants(self.pid())
            .into_iter()
            .filter(|p| cmdline(*p).contains(" powershell "))
            .collect();
        signal("KILL", &hosts);
        hosts.len()
    }

    /// SIGTERM, then the exit status within `deadline`.
    fn terminate(&mut self, deadline: Duration) -> Result<std::process::ExitStatus, String> {
        signal("TERM", &[self.pid()]);
        let until = Instant::now() + deadline;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.kill_tree();
                    return Err(format!("the connector ignored SIGTERM for {deadline:?}"));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Writes everything the run logged to `path`.
    fn save_log(&self, path: &Path) {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let _ = std::fs::write(path, log.join("\n"));
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let start = log.len().saturating_sub(n);
        log[start..].join("\n")
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.kill_tree();
        }
        self.save_log(&self.log_file);
    }
}

// ------------------------------------------------------------------ scenario --

/// A command the loop enqueued.
#[derive(Debug, Clone)]
enum Planned {
    Push(ExpectedPush),
    Import {
        id: String,
        applications: Vec<String>,
        upload_sources: bool,
    },
}

impl Planned {
    fn id(&self) -> &str {
        match self {
            Planned::Push(p) => &p.command_id,
            Planned::Import { id, .. } => id,
        }
    }
}

/// A site call that hangs (the fault plan's `hang`), until the loop kills its host.
#[derive(Debug)]
struct Hang {
    cmdlet: &'static str,
    call: u64,
    handled: bool,
}

/// Where a run is killed.
#[derive(Debug, Clone, Copy)]
enum CrashPoint {
    /// After the k-th journaled event.
    Lines(u32),
    /// After the first journaled event of this kind (or `EVENT_PATIENCE` lines).
    Event(&'static str),
}

#[derive(Debug, Default)]
struct Totals {
    kills: u64,
    kills_at_event: BTreeMap<String, u64>,
    idle_kills: u64,
    tree_processes_killed: u64,
    host_kills: u64,
    per_step_runs: u64,
    session_runs: u64,
    rounds: u64,
}

struct World {
    rt: tokio::runtime::Runtime,
    portal: Portal,
    setup: Setup,
    rng: Rng,
    packages: Vec<(Vec<u8>, Value)>,
    commands: Vec<Planned>,
    hangs: Vec<Hang>,
    totals: Totals,
    /// The application names of the last round enqueued.
    previous_round: Vec<String>,
    /// Connector runs started.
    runs: u64,
}

/// The site's fault plan: host deaths after the effect (crash, exit, garbage), drawn by the
/// plan's seed, and hangs at fixed call numbers.
fn site_plan(seed: u64) -> (Value, Vec<Hang>) {
    let hangs = vec![
        Hang {
            cmdlet: "Get-CMApplication",
            call: 4,
            handled: false,
        },
        Hang {
            cmdlet: "Get-CMDeploymentType",
            call: 6,
            handled: false,
        },
        Hang {
            cmdlet: "Get-CimInstance",
            call: 9,
            handled: false,
        },
        Hang {
            cmdlet: "Get-CMFolder",
            call: 12,
            handled: false,
        },
        Hang {
            cmdlet: "Get-CMApplication",
            call: 40,
            handled: false,
        },
        Hang {
            cmdlet: "Get-CimInstance",
            call: 60,
            handled: false,
        },
    ];
    let mut rules: Vec<Value> = hangs
        .iter()
        .map(|h| json!({"cmdlet": h.cmdlet, "calls": [h.call], "fault": {"kind": "hang"}}))
        .collect();
    rules.extend([
        json!({"cmdlet": "New-CMApplication", "probability": 0.2, "fault": {"kind": "crash"}}),
        json!({"cmdlet": "Add-CMScriptDeploymentType", "probability": 0.2, "after_effect": true, "fault": {"kind": "exit", "code": 3}}),
        json!({"cmdlet": "Start-CMContentDistribution", "probability": 0.2, "fault": {"kind": "crash"}}),
        json!({"cmdlet": "New-CMApplicationDeployment", "probability": 0.2, "after_effect": true, "fault": {"kind": "garbage"}}),
        json!({"cmdlet": "New-CMFolder", "probability": 0.15, "fault": {"kind": "crash"}}),
        json!({"cmdlet": "Move-CMObject", "probability": 0.2, "fault": {"kind": "crash"}}),
        json!({"cmdlet": "Get-CMDistributionStatus", "probability": 0.1, "fault": {"kind": "exit", "code": 1}}),
    ]);
    (json!({"seed": seed, "rules": rules}), hangs)
}

/// The portal's fault plan for a round whose commands are `round`.
fn portal_plan(round: &[Planned]) -> Value {
    let result = |id: &str| format!("/api/connector/v1/commands/{id}/result");
    json!({"faults": [
        {"kind": "status", "status": 503, "path": "/api/connector/v1/commands", "method": "GET", "skip": 1, "times": 2},
        {"kind": "duplicate_delivery", "path": "/api/connector/v1/commands", "method": "GET", "times": 2},
        // Paused mid-body for longer than the checkpoint interval: a checkpoint is journaled.
        {"kind": "delay", "ms": 2300, "after_bytes": 1_048_576, "path": "/api/connector/v1/packages/", "times": 2},
        {"kind": "reset", "after_bytes": 2_500_000, "path": "/api/connector/v1/packages/", "times": 1},
        {"kind": "truncate", "after_bytes": 700_000, "path": "/api/connector/v1/packages/", "times": 1},
        {"kind": "reset", "after_bytes": 300_000, "path": "/api/connector/v1/uploads/", "method": "PUT", "times": 1},
        {"kind": "drop_response", "path": result(round[0].id()), "method": "POST", "times": 1},
        {"kind": "status", "status": 503, "path": result(round[3].id()), "method": "POST", "times": 2},
    ]})
}

impl World {
    fn new(dir: &Path, seed: u64) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut sim = SimConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            dir.join("portal"),
        );
        sim.poll_after_seconds = 1;
        let portal = rt.block_on(Portal::start_with(sim, support::temp_dir()));
        let mut setup = Setup::new(dir, &portal.url());
        // Kills never count as failures; host deaths from the fault plan and the loop do.
        setup.max_attempts = 12;
        setup.max_interrupted = 1000;
        setup.step_timeout_seconds = 120;
        // Retention runs during the loop: finished jobs are archived and pruned two seconds after
        // they finish, so kills also land inside sweeps (archive written, event journaled, prune).
        setup.extra_toml =
            "\n[retention]\nkeep_finished = \"2s\"\nsweep_every = \"1s\"\n".to_string();
        e2e::init_site(&setup.site, &setup.share, &["--distribution-polls", "2"]);
        let (plan, hangs) = site_plan(seed);
        e2e::set_site_faults(&setup.site, &plan);
        let packages = [
            e2e::psadt_package("Contoso_BigSuite", 6 << 20, seed, true),
            sccm_connector::demo::filezilla_package().expect("the demo package"),
            e2e::psadt_package("Fabrikam_Tiny", 24_000, seed ^ 1, false),
        ]
        .into_iter()
        .map(|zip| {
            let p = rt.block_on(portal.add_package(zip.clone()));
            let announced = json!({"package_id": p.package_id, "url": p.url, "sha256": p.sha256, "size": p.size});
            (zip, announced)
        })
        .collect();
        World {
            rt,
            portal,
            setup,
            rng: Rng(seed),
            packages,
            commands: Vec::new(),
            hangs,
            totals: Totals::default(),
            previous_round: Vec::new(),
            runs: 0,
        }
    }

    /// Enqueues round `r`: three pushes, then two imports.
    fn enqueue_round(&mut self, r: u64) -> Vec<Planned> {
        // Rounds after the first `NAME_ROUNDS` push the same applications again (under new
        // command ids): a push of what exists finds everything in place. So the site stays small
        // however long a soak run goes (see `NAME_ROUNDS`).
        let n = (r - 1) % NAME_ROUNDS + 1;
        let folders = [
            format!("Applications/Kill Loop/Round {n}/Big"),
            "Applications/Test 1".to_string(),
            if n.is_multiple_of(2) {
                String::new()
            } else {
                format!("Applications/Kill Loop/Round {n}")
            },
        ];
        let products = ["Contoso_BigSuite", "TimKosse_FileZilla", "Fabrikam_Tiny"];
        let mut round = Vec::new();
        for (i, (product, folder)) in products.iter().zip(folders).enumerate() {
            let name = format!("{product}_{n}.{i}_English(United States)");
            let zip = &self.packages[i].0;
            round.push(Planned::Push(ExpectedPush {
                command_id: format!("kl-r{r}-push-{i}"),
                name,
                folder,
                zip: zip.clone(),
            }));
        }
        let names: Vec<String> = round
            .iter()
            .filter_map(|c| match c {
                Planned::Push(p) => Some(p.name.clone()),
                Planned::Import { .. } => None,
            })
            .collect();
        // The previous round's applications are complete: their import must find, read and
        // upload every one. The first round's import races its pushes instead.
        let (id, applications) = if self.previous_round.is_empty() {
            (format!("kl-r{r}-import-racing"), names.clone())
        } else {
            (
                format!("kl-r{r}-import-previous"),
                self.previous_round.clone(),
            )
        };
        round.push(Planned::Import {
            id,
            applications,
            upload_sources: true,
        });
        self.previous_round = names;
        // Every application, without sources (at most 3 × NAME_ROUNDS of them).
        let (id, applications) = (format!("kl-r{r}-import-all"), Vec::new());
        round.push(Planned::Import {
            id,
            applications,
            upload_sources: false,
        });
        self.rt
            .block_on(self.portal.set_faults(portal_plan(&round)));
        for command in &round {
            let body = match command {
                Planned::Push(p) => {
                    let i = products
                        .iter()
                        .position(|x| p.name.starts_with(x))
                        .unwrap_or(0);
                    e2e::push_command(&p.command_id, &p.name, &p.folder, &self.packages[i].1)
                }
                Planned::Import {
                    id,
                    applications,
                    upload_sources,
                } => e2e::import_command(id, applications, *upload_sources),
            };
            self.rt.block_on(self.portal.add_command(&body.to_string()));
        }
        self.commands.extend(round.iter().cloned());
        round
    }

    /// `DIR/logs/run-N.log` for the next connector run.
    fn next_log(&mut self) -> PathBuf {
        self.runs += 1;
        let logs = self.setup.dir.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        logs.join(format!("run-{:04}.log", self.runs))
    }

    fn round_done(&self, round: &[Planned]) -> bool {
        round
            .iter()
            .all(|c| !self.rt.block_on(self.portal.command(c.id()))["effective_result"].is_null())
    }

    /// Kills the hosts of `connector` if a hanging call has started.
    fn watch_hangs(&mut self, connector: &Connector) {
        if self.hangs.iter().all(|h| h.handled) {
            return;
        }
        let Ok(state) =
            sccm_connector::sim::site::Site::open(&self.setup.site).and_then(|s| s.read())
        else {
            return;
        };
        let mut hit = false;
        for hang in self.hangs.iter_mut().filter(|h| !h.handled) {
            if state.calls.get(hang.cmdlet).copied().unwrap_or(0) >= hang.call {
                hang.handled = true;
                hit = true;
            }
        }
        if hit && connector.kill_hosts() > 0 {
            self.totals.host_kills += 1;
        }
    }

    fn draw_crash_point(&mut self) -> CrashPoint {
        if self.rng.chance(60) {
            CrashPoint::Lines(self.rng.range(1, 10) as u32)
        } else {
            let i = self.rng.range(0, EVENTS.len() as u64 - 1) as usize;
            CrashPoint::Event(EVENTS[i])
        }
    }

    /// One run of the connector, killed at a drawn crash point (or once `round` is done).
    fn cycle(&mut self, round: &[Planned]) -> Result<(), String> {
        let per_step = self.rng.chance(30);
        self.setup.mode = if per_step { "per-step" } else { "session" }.into();
        if per_step {
            self.totals.per_step_runs += 1;
        } else {
            self.totals.session_runs += 1;
        }
        let config = self.setup.write_config();
        let point = self.draw_crash_point();
        let mut connector = Connector::start(&config, self.next_log());
        let started = Instant::now();
        let mut lines = 0u32;
        let mut last_check = Instant::now();
        loop {
            match connector.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(event) = journaled(&line) {
                        lines += 1;
                        let hit = match point {
                            CrashPoint::Lines(k) => lines >= k,
                            CrashPoint::Event(kind) => event == kind || lines >= EVENT_PATIENCE,
                        };
                        if hit {
                            let killed = connector.kill_tree()?;
                            self.totals.kills += 1;
                            self.totals.tree_processes_killed += killed as u64;
                            *self.totals.kills_at_event.entry(event).or_default() += 1;
                            return Ok(());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = connector.child.wait().map_err(|e| e.to_string())?;
                    return Err(format!(
                        "the connector exited on its own ({status}):\n{}",
                        connector.log_tail(60)
                    ));
                }
            }
            if last_check.elapsed() >= Duration::from_millis(100) {
                last_check = Instant::now();
                self.watch_hangs(&connector);
                if self.round_done(round) {
                    let killed = connector.kill_tree()?;
                    self.totals.kills += 1;
                    self.totals.idle_kills += 1;
                    self.totals.tree_processes_killed += killed as u64;
                    return Ok(());
                }
            }
            if started.elapsed() > CYCLE_DEADLINE {
                return Err(format!(
                    "no progress for {CYCLE_DEADLINE:?} (crash point {point:?}, {lines} events):\n{}",
                    connector.log_tail(80)
                ));
            }
        }
    }

    /// The last run: until every job is finished, then SIGTERM (a clean stop).
    fn graceful_run(&mut self) -> Result<(), String> {
        self.setup.mode = "session".into();
        let config = self.setup.write_config();
        let polls = |world: &World| {
            world
                .rt
                .block_on(world.portal.requests())
                .iter()
                .filter(|r| r["method"] == "GET" && r["path"] == "/api/connector/v1/commands")
                .count()
        };
        let polls_before = polls(self);
        let mut connector = Connector::start(&config, self.next_log());
        let until = Instant::now() + CYCLE_DEADLINE;
        let mut unfinished: Option<usize> = None;
        let mut finished = 0usize;
        loop {
            match connector.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if line.contains("connector started") {
                        unfinished = field(&line, "unfinished").and_then(|n| n.parse().ok());
                    }
                    if journaled(&line).as_deref() == Some("JobFinished") {
                        finished += 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the last run exited on its own:\n{}",
                        connector.log_tail(60)
                    ));
                }
            }
            self.watch_hangs(&connector);
            if unfinished.is_some_and(|n| finished >= n) {
                break;
            }
            if Instant::now() > until {
                return Err(format!(
                    "the last run did not finish {unfinished:?} jobs ({finished} finished):\n{}",
                    connector.log_tail(80)
                ));
            }
        }
        // SIGTERM is a clean stop at any moment (`run` installs its handler before it opens the
        // journal); two more polls first show the poll loop going on with every job finished, so
        // the stop lands in the idle daemon, where a service stop usually does.
        self.rt.block_on(self.portal.wait_for_requests(
            polls_before + 2,
            "GET",
            "/api/connector/v1/commands",
        ));
        let status = connector.terminate(Duration::from_secs(60))?;
        let log = connector.log_tail(5);
        if !status.success() || !log.contains("connector stopped") {
            return Err(format!(
                "the last run did not stop cleanly ({status}):\n{log}"
            ));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ checks --

/// What the checks found.
struct Verified {
    results: usize,
    duplicates: usize,
    /// The lines printed before the totals.
    text: String,
}

/// Everything that must hold once the connector stopped.
fn verify(world: &World) -> Result<Verified, String> {
    let setup = &world.setup;
    let mut results = 0;
    let mut unacked = Vec::new();
    let mut redelivered = 0;
    let mut effective = BTreeMap::new();
    for command in &world.commands {
        let view = world.rt.block_on(world.portal.command(command.id()));
        let result = e2e::one_result(&view)?;
        results += 1;
        if view["acked"] != true {
            unacked.push(command.id().to_string());
        }
        if view["results"][0]["deliveries"].as_u64().unwrap_or(0) > 1 {
            redelivered += 1;
        }
        if result["status"] != "ok" {
            return Err(format!("{} did not succeed: {result}", command.id()));
        }
        effective.insert(command.id().to_string(), result);
    }
    let dump = e2e::site_dump(&setup.site);
    e2e::site_check(&setup.site)?;
    let (duplicates, effects) = e2e::duplicate_effects(&dump);
    if !duplicates.is_empty() {
        return Err(format!(
            "the effect log shows duplicate mutations: {duplicates:?}"
        ));
    }
    let pushes: Vec<&ExpectedPush> = world
        .commands
        .iter()
        .filter_map(|c| match c {
            Planned::Push(p) => Some(p),
            Planned::Import { .. } => None,
        })
        .collect();
    for push in &pushes {
        e2e::check_push(&dump, push, &effective[&push.command_id])?;
        e2e::check_share(&setup.share, push)?;
    }
    let distinct: BTreeSet<&str> = pushes.iter().map(|p| p.name.as_str()).collect();
    let apps = dump["state"]["applications"].as_array().map_or(0, Vec::len);
    if apps != distinct.len() {
        return Err(format!(
            "the site holds {apps} applications for {} pushed names",
            distinct.len()
        ));
    }
    // Every folder once: exactly the levels the pushes name.
    let expected_folders: BTreeSet<String> = pushes
        .iter()
        .flat_map(|p| {
            let levels: Vec<&str> = p
                .folder
                .split('/')
                .skip(1)
                .filter(|s| !s.is_empty())
                .collect();
            (1..=levels.len()).map(move |n| levels[..n].join("/"))
        })
        .collect();
    let folders = dump["state"]["folders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut actual_folders = BTreeSet::new();
    for f in &folders {
        let mut path = vec![f["name"].as_str().unwrap_or("?").to_string()];
        let mut parent = f["parent_container_node_id"].as_u64().unwrap_or(0);
        while parent != 0 && path.len() < 64 {
            let Some(p) = folders
                .iter()
                .find(|x| x["container_node_id"].as_u64() == Some(parent))
            else {
                break;
            };
            path.push(p["name"].as_str().unwrap_or("?").to_string());
            parent = p["parent_container_node_id"].as_u64().unwrap_or(0);
        }
        path.reverse();
        if !actual_folders.insert(path.join("/")) {
            return Err(format!("folder {} exists twice", path.join("/")));
        }
    }
    if actual_folders != expected_folders {
        return Err(format!(
            "the site's folders {actual_folders:?} are not the pushes' {expected_folders:?}"
        ));
    }
    let names: Vec<String> = pushes.iter().map(|p| p.name.clone()).collect();
    let leftovers = e2e::share_leftovers(&setup.share, &names);
    if !leftovers.is_empty() {
        return Err(format!("the share holds leftovers: {leftovers:?}"));
    }
    // Imports: what they list exists exactly once; uploaded sources are complete.
    let mut uploads = 0;
    for command in &world.commands {
        let Planned::Import {
            id,
            applications,
            upload_sources,
        } = command
        else {
            continue;
        };
        let listed = effective[id]["import"]["applications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for app in &listed {
            let name = app["name"].as_str().unwrap_or("");
            if !seen.insert(name.to_string()) {
                return Err(format!("import {id} lists {name:?} twice"));
            }
            if !names.iter().any(|n| n == name) {
                return Err(format!(
                    "import {id} lists {name:?}, which was never pushed"
                ));
            }
            if !applications.is_empty() && !applications.iter().any(|a| a == name) {
                return Err(format!(
                    "import {id} lists {name:?}, which it did not ask for"
                ));
            }
            let complete_app = id.ends_with("-import-previous");
            if complete_app
                && (!app["error"].is_null()
                    || app["metadata"]["package_name"] != json!(name)
                    || app["upload_id"].is_null())
            {
                return Err(format!(
                    "import {id}: {name:?} was not read and uploaded: {app}"
                ));
            }
            match app["upload_id"].as_str() {
                Some(_) if !upload_sources => {
                    return Err(format!(
                        "import {id} uploaded {name:?} without upload_sources"
                    ));
                }
                Some(upload) if app["error"].is_null() => {
                    let push = pushes
                        .iter()
                        .find(|p| p.name == name)
                        .ok_or_else(|| format!("no push named {name:?}"))?;
                    check_upload(world, upload, push)?;
                    uploads += 1;
                }
                _ => {}
            }
        }
        if id.ends_with("-import-previous") && seen.len() != applications.len() {
            return Err(format!(
                "import {id} found {seen:?} of the complete applications {applications:?}"
            ));
        }
    }
    let ids: Vec<String> = world.commands.iter().map(|c| c.id().to_string()).collect();
    let journal = e2e::check_journal(&setup.journal(), &ids)?;
    let requests = world.rt.block_on(world.portal.requests());
    let resumed = requests
        .iter()
        .filter(|r| {
            r["path"].as_str().is_some_and(|p| p.contains("/packages/"))
                && r["range"]
                    .as_str()
                    .is_some_and(|v| !v.starts_with("bytes=0-"))
        })
        .count();
    let spool_left: Vec<String> = std::fs::read_dir(setup.spool())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "scripts")
        .collect();
    let archive_dir = setup.dir.join("archive");
    let mut archive_files = 0usize;
    for entry in std::fs::read_dir(&archive_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") {
            return Err(format!("the archive folder holds a leftover {name}"));
        }
        let out = std::process::Command::new(BIN)
            .arg("verify")
            .arg(&path)
            .arg("--journal")
            .arg(setup.journal())
            .output()
            .map_err(|e| format!("verify {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the archive {name} does not verify against the journal: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        archive_files += 1;
    }
    // Retention prunes finished jobs two seconds after they finish, so most attempts are in the
    // archives (verified above), not in the journal's fold: count both.
    let archived = e2e::archived_attempts(&archive_dir, &journal.archived_in)?;
    let failures: Vec<&String> = journal.failures.iter().chain(&archived.failures).collect();
    let interrupted = journal.interrupted + archived.interrupted;
    let host_deaths = failures
        .iter()
        .filter(|f| f.contains("exited without a result") || f.contains("unusable output"))
        .count();
    // In a session a host that dies mid-step is replaced and the step re-run at once (no failed
    // attempt unless it dies again); the runner logs each such replacement.
    let replaced = replaced_hosts(&world.setup.dir.join("logs"));
    // The site's fault plan crashes hosts and the loop kills hung ones: a plan that silently
    // stopped working (or attempts no longer counted) must fail the test, not print zeros.
    if world.totals.host_kills == 0 {
        return Err(
            "the loop never killed a PowerShell host mid-step: the site's hang faults did not fire"
                .into(),
        );
    }
    if host_deaths + replaced == 0 {
        return Err(format!(
            "no failed attempt or host replacement shows a PowerShell host that died mid-step ({} failed attempts, {} of archived jobs), although the loop killed hosts {} times and the site's fault plan crashes them",
            failures.len(),
            archived.failures.len(),
            world.totals.host_kills
        ));
    }
    let mut extra = format!(
        "kill loop: {results} results for {} commands ({} pushes ok; {redelivered} results delivered again and deduplicated), {effects} site effects, {uploads} uploads complete with the package's files, {resumed} downloads resumed mid-file\n\
         kill loop: journal {} records, {} jobs, {} connector runs, {interrupted} interrupted attempts, {} failed attempts ({host_deaths} PowerShell hosts died mid-step; {replaced} more replaced within their step); of these, {} interrupted and {} failed in archived jobs\n\
         kill loop: retention archived {} jobs in {archive_files} archive files (each verified against the journal), {} records pruned",
        world.commands.len(),
        pushes.len(),
        journal.records,
        journal.jobs,
        journal.runs,
        failures.len(),
        archived.interrupted,
        archived.failures.len(),
        journal.archived,
        journal.pruned_records,
    );
    if !unacked.is_empty() {
        extra.push_str(&format!(
            "\nkill loop: NOTE commands never acknowledged: {unacked:?}"
        ));
    }
    // The daemon sweeps what killed runs left (finished jobs' folders, killed runners' script
    // folders) when it starts; the final run is stopped cleanly, so nothing may remain.
    if !spool_left.is_empty() {
        return Err(format!(
            "spool folders left behind after the final clean run: {spool_left:?}"
        ));
    }
    let scripts_left = std::fs::read_dir(setup.spool().join("scripts")).map_or(0, |d| d.count());
    if scripts_left > 0 {
        return Err(format!(
            "{scripts_left} private script folders left behind after the final clean run"
        ));
    }
    Ok(Verified {
        results,
        duplicates: duplicates.len(),
        text: extra,
    })
}

/// An uploaded source folder is complete at the portal, and its archive holds exactly the
/// pushed package's files.
fn check_upload(world: &World, upload: &str, push: &ExpectedPush) -> Result<(), String> {
    let info = world.rt.block_on(world.portal.upload_info(upload));
    if info["complete"] != true {
        return Err(format!(
            "the upload of {:?} is not complete: {info}",
            push.name
        ));
    }
    // The simulator keeps upload bytes in DATA/uploads/<hex of the id> (docs/protocol.md).
    let hex: String = upload.bytes().map(|b| format!("{b:02x}")).collect();
    let path = world.setup.dir.join("portal").join("uploads").join(hex);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if info["sha256"] != json!(e2e::sha256_hex(&bytes)) {
        return Err(format!(
            "the upload of {:?}: {info} is not its bytes",
            push.name
        ));
    }
    if e2e::zip_digest(&bytes) != e2e::zip_digest(&push.zip) {
        return Err(format!(
            "the uploaded sources of {:?} are not the package's files",
            push.name
        ));
    }
    Ok(())
}

fn run(dir: &Path, seed: u64, target: u64, max: Duration) -> Result<(), String> {
    let begun = Instant::now();
    let mut world = World::new(dir, seed);
    let mut round_no = 0;
    loop {
        round_no += 1;
        world.totals.rounds = round_no;
        let round = world.enqueue_round(round_no);
        while !world.round_done(&round) {
            world.cycle(&round)?;
            if begun.elapsed() > max {
                return Err(format!(
                    "the loop outlived its deadline of {max:?} in round {round_no} after {} kills",
                    world.totals.kills
                ));
            }
        }
        if world.totals.kills >= target {
            break;
        }
    }
    world.graceful_run()?;
    let verified = verify(&world)?;
    let t = &world.totals;
    println!(
        "kill loop: {} rounds, {} connector runs killed ({} once their round was done; {} processes of their trees with them), {} session / {} per-step runs, {} PowerShell hosts killed mid-step by the loop",
        t.rounds,
        t.kills,
        t.idle_kills,
        t.tree_processes_killed,
        t.session_runs,
        t.per_step_runs,
        t.host_kills
    );
    println!("kill loop: kills after event: {:?}", t.kills_at_event);
    println!("{}", verified.text);
    println!(
        "kill loop: TOTAL kills {} commands {} results {} duplicates = {} seed {seed} ({:.1} s)",
        t.kills,
        world.commands.len(),
        verified.results,
        verified.duplicates,
        begun.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        println!("kill_loop: test");
        return ExitCode::SUCCESS;
    }
    if !Path::new("/proc/self/stat").exists() {
        println!("kill loop: skipped (it reads /proc and sends signals: Linux only)");
        return ExitCode::SUCCESS;
    }
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let target = env_u64(KILLS_ENV).unwrap_or(100).max(1);
    let max = Duration::from_secs(env_u64(MAX_SECONDS_ENV).unwrap_or(900));
    println!("kill loop: seed {seed} ({SEED_ENV}={seed} replays the draws), target {target} kills");
    let dir = support::temp_dir();
    match run(dir.path(), seed, target, max) {
        Ok(()) => {
            if std::env::var_os(KEEP_ENV).is_some() {
                println!("kill loop: everything is kept in {}", dir.keep().display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let kept = dir.keep();
            eprintln!("kill loop FAILED (seed {seed}): {e}");
            eprintln!("kill loop: everything is kept in {}", kept.display());
            ExitCode::FAILURE
        }
    }
}

/// How many times the connectors' runners replaced a session host that died mid-step (one
/// warning each in the runs' logs).
fn replaced_hosts(logs: &Path) -> usize {
    std::fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|log| {
            log.lines()
                .filter(|l| l.contains("replacing the host and re-running the step once"))
                .count()
        })
        .sum()
}
