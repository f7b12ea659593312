//! The steps of a push, run by the real runner against the site simulator started exactly as
//! `powershell.exe` would be, whose module import takes 2 s as on a real console machine:
//! per-step processes (one import per step) beside session mode (one import per job), in the same
//! run, on a fresh site each.
//!
//! Ends with `RATIO push_session_vs_per_step <v>` (per-step time / session time; target ≥ 4).

use sccm_connector::command::{Command, Limits, parse};
use sccm_connector::powershell::push::{self, SiteAccess};
use sccm_connector::powershell::runner::{PowerShellConfig, RunMode, Runner};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

const PUSH: &[u8] = include_bytes!("../tests/fixtures/commands/push-filezilla.json");
const IMPORT_DELAY_MS: &str = "2000";

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sccm-connector"))
}

/// A fresh site whose share holds the package content the deployment type points at.
fn fresh_site(root: &Path, console_path: &str) -> PathBuf {
    let _ = std::fs::remove_dir_all(root);
    let share = root.join("share");
    let content = share.join("incoming/TimKosse_FileZilla_3.46.3_English(United States)");
    std::fs::create_dir_all(&content).expect("share");
    std::fs::write(content.join("Deploy-Application.exe"), b"MZ").expect("content");
    let site = root.join("site");
    let status = Process::new(exe())
        .args(["sim", "site", "--site"])
        .arg(&site)
        .args(["init", "--force", "--console-path", console_path, "--share"])
        .arg(format!("\\\\WIN-2HDJCBHRRVB\\Sources$={}", share.display()))
        .status()
        .expect("sim site init runs");
    assert!(status.success(), "sim site init failed");
    site
}

fn run_push(
    site: &Path,
    mode: RunMode,
    scripts: &[sccm_connector::powershell::script::Script],
) -> (Duration, u64) {
    let config = PowerShellConfig {
        program: exe(),
        args: [
            "sim",
            "powershell",
            "--site",
            &site.display().to_string(),
            "--import-delay-ms",
            IMPORT_DELAY_MS,
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
            ]
            .map(String::from),
        )
        .collect(),
        mode,
        step_timeout: Duration::from_secs(120),
        scratch_dir: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut runner = Runner::new(config).expect("runner");
        let start = Instant::now();
        for script in scripts {
            let run = runner.run(script).await.expect("the step runs");
            assert!(run.result.ok(), "{}: {}", script.step, run.result.json());
        }
        let elapsed = start.elapsed();
        runner.shutdown().await;
        (elapsed, runner.hosts_started())
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Ok(Command::Push(push)) = parse(PUSH, &Limits::default()) else {
        panic!("the fixture parses")
    };
    let scripts = push::scripts(&push, &SiteAccess::default()).expect("renders");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/powershell");
    let site = fresh_site(&root.join("per-step"), &push.site.console_path);
    let (per_step, per_step_hosts) = run_push(&site, RunMode::PerStep, &scripts);
    let site = fresh_site(&root.join("session"), &push.site.console_path);
    let (session, session_hosts) = run_push(&site, RunMode::Session, &scripts);
    println!(
        "push of {} steps, module import {IMPORT_DELAY_MS} ms",
        scripts.len()
    );
    println!(
        "per-step processes: {:6.2} s ({per_step_hosts} hosts)",
        per_step.as_secs_f64()
    );
    println!(
        "session mode:       {:6.2} s ({session_hosts} host)",
        session.as_secs_f64()
    );
    println!(
        "RATIO push_session_vs_per_step {:.2}",
        per_step.as_secs_f64() / session.as_secs_f64()
    );
}
