//! The runner against real, misbehaving child processes. Each "PowerShell" here is `/bin/sh`
//! started exactly as `powershell.exe` would be (`<args…> -File <script.ps1>`, or for a session
//! `<args…> -File <host.ps1> <token>`), playing one misbehaviour.

#![cfg(unix)]

use crate::support::{fixture, temp_dir};
use sccm_connector::command::{Command, Limits, parse};
use sccm_connector::powershell::push::{self, SiteAccess};
use sccm_connector::powershell::runner::{PowerShellConfig, RunError, RunMode, Runner};
use sccm_connector::powershell::script::Script;
use std::time::Duration;

/// A real generated script (it must pass the safety check before anything runs).
fn step_script() -> Script {
    let raw = std::fs::read(fixture("commands/push-filezilla.json")).expect("fixture");
    let Ok(Command::Push(p)) = parse(&raw, &Limits::default()) else {
        panic!("the fixture parses")
    };
    push::ensure_application(&p, &SiteAccess::default()).expect("renders")
}

/// A runner whose "PowerShell" is `sh -c <body>`; in the body `$2` is the script (or host)
/// path and, in session mode, `$3` the session token.
fn runner(body: &str, mode: RunMode, timeout_ms: u64) -> Runner {
    Runner::new(PowerShellConfig {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), body.into(), "sh".into()],
        mode,
        step_timeout: Duration::from_millis(timeout_ms),
        scratch_dir: None,
    })
    .expect("a runner")
}

fn run(body: &str) -> Result<sccm_connector::powershell::runner::StepRun, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        runner(body, RunMode::PerStep, 10_000)
            .run(&step_script())
            .await
    })
}

#[test]
fn a_good_result_is_returned_with_its_noise() {
    let run = run(r#"test -f "$2" && head -c 3 "$2" | od -An -tx1 | grep -q 'ef bb bf' && echo 'WARNING: x' && echo '{"ok":true,"ci_id":7}'"#)
        .expect("a result");
    assert!(run.result.ok());
    assert_eq!(run.result.object["ci_id"], 7);
    assert_eq!(run.result.noise, vec!["WARNING: x".to_string()]);
}

#[test]
fn a_script_reported_failure_is_a_result_not_an_error() {
    let run = run(r#"echo '{"ok":false,"error":"Access denied"}'; exit 1"#).expect("a result");
    assert!(!run.result.ok());
    assert_eq!(run.result.object["error"], "Access denied");
}

#[test]
fn garbage_truncated_or_doubled_output_is_a_retryable_error() {
    for body in [
        "echo hello",
        r#"printf '{"ok":tr'"#,
        r#"echo '{"ok":true}'; echo '{"ok":true}'"#,
        r#"echo '{"ok":true}'; exit 1"#,
    ] {
        let error = run(body).expect_err(body);
        assert!(matches!(error, RunError::Garbage { .. }), "{body}: {error}");
        assert!(error.is_retryable());
    }
}

#[test]
fn a_crash_or_an_odd_exit_code_is_a_retryable_error() {
    let error = run("echo partial >&2; exit 3").expect_err("exit 3");
    assert!(
        matches!(&error, RunError::Crashed { how, stderr } if how == "exit code 3" && stderr.contains("partial")),
        "{error}"
    );
    let error = run("kill -9 $$").expect_err("killed");
    assert!(
        matches!(&error, RunError::Crashed { how, .. } if how.contains("signal")),
        "{error}"
    );
    assert!(error.is_retryable());
}

#[test]
fn a_missing_program_is_permanent() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = Runner::new(PowerShellConfig {
        program: "/nonexistent/powershell.exe".into(),
        ..PowerShellConfig::default()
    })
    .expect("a runner");
    let error = rt
        .block_on(runner.run(&step_script()))
        .expect_err("cannot start");
    assert!(
        matches!(error, RunError::Spawn { .. }) && !error.is_retryable(),
        "{error}"
    );
}

#[test]
fn an_unsafe_script_is_never_run() {
    let mut script = step_script();
    script.text = script
        .text
        .replace("$Owner = 'John Doe'", "$Owner = 'John’; calc; ‘Doe'");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = runner("echo '{\"ok\":true}'", RunMode::PerStep, 10_000);
    let error = rt.block_on(runner.run(&script)).expect_err("unsafe");
    assert!(
        matches!(error, RunError::Unsafe(_)) && !error.is_retryable(),
        "{error}"
    );
    assert_eq!(runner.hosts_started(), 0, "nothing was spawned");
}

#[test]
fn a_chatty_child_cannot_deadlock_the_runner() {
    // 4 MiB on each pipe, far beyond any pipe buffer, before the result.
    let body = r#"head -c 4194304 /dev/zero | tr '\0' x >&2; head -c 4194304 /dev/zero | tr '\0' '\n'; echo '{"ok":true}'"#;
    let run = run(body).expect("a result");
    assert!(run.result.ok());
    assert!(run.stderr.len() >= 4 << 20);
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped by init).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_hung_step_is_killed_with_its_process_tree() {
    let dir = temp_dir();
    let pid_file = dir.path().join("grandchild.pid");
    let body = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let error = run_with_timeout(&body, 500).expect_err("timeout");
    assert!(
        matches!(error, RunError::Timeout { .. }) && error.is_retryable(),
        "{error}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the grandchild started");
    let pid = pid.trim();
    // The kill is synchronous for the group; give init a bounded moment to reap the orphan.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !gone(pid) && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(gone(pid), "the grandchild {pid} survived the timeout");
}

fn run_with_timeout(
    body: &str,
    timeout_ms: u64,
) -> Result<sccm_connector::powershell::runner::StepRun, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        runner(body, RunMode::PerStep, timeout_ms)
            .run(&step_script())
            .await
    })
}

/// A session host in sh: answers each `RUN` line with `reply` and the end marker, then behaves
/// as `after` says (`:` to keep going, `exit` to die after replying).
fn host(reply: &str, after: &str) -> String {
    format!(
        r#"while IFS= read -r line; do case "$line" in "RUN "*) ;; *) continue;; esac; test -f "${{line#RUN }}" || exit 9; {reply}; echo "<<<sccm-connector:$3:exit=0>>>"; {after}; done"#
    )
}

#[test]
fn a_session_runs_every_step_in_one_host() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut runner = runner(
            &host(r#"echo '{"ok":true}'"#, ":"),
            RunMode::Session,
            10_000,
        );
        for _ in 0..5 {
            assert!(
                runner
                    .run(&step_script())
                    .await
                    .expect("a result")
                    .result
                    .ok()
            );
        }
        assert_eq!(runner.hosts_started(), 1);
        runner.shutdown().await;
    });
}

#[test]
fn a_host_that_died_between_steps_is_replaced_transparently() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut runner = runner(
            &host(r#"echo '{"ok":true}'"#, "exit 0"),
            RunMode::Session,
            10_000,
        );
        for _ in 0..3 {
            assert!(
                runner
                    .run(&step_script())
                    .await
                    .expect("every step succeeds")
                    .result
                    .ok()
            );
        }
        assert_eq!(runner.hosts_started(), 3);
    });
}

#[test]
fn a_host_dying_mid_step_is_replaced_and_the_step_rerun_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Dies without the end marker on its first request, ever; every later host answers.
        let dir = temp_dir();
        let flag = dir.path().join("died-once");
        let runs = dir.path().join("runs");
        let body = format!(
            r#"while IFS= read -r line; do echo "${{line#RUN }}" >> {r}; if [ ! -e {f} ]; then touch {f}; echo '{{"ok":tr'; exit 0; fi; echo '{{"ok":true}}'; echo "<<<sccm-connector:$3:exit=0>>>"; done"#,
            f = flag.display(),
            r = runs.display()
        );
        let mut first = runner(&body, RunMode::Session, 10_000);
        let run = first.run(&step_script()).await.expect("replaced and re-run transparently");
        assert!(run.result.ok());
        assert_eq!(first.hosts_started(), 2, "the dead host was replaced once");
        let ran = std::fs::read_to_string(&runs).expect("requests");
        let ran: Vec<&str> = ran.lines().collect();
        assert_eq!(ran.len(), 2, "the same step, sent to both hosts: {ran:?}");
        assert_eq!(ran[0], ran[1]);
        // The replacement keeps serving.
        assert!(first.run(&step_script()).await.expect("next step").result.ok());
        assert_eq!(first.hosts_started(), 2);

        // A host that dies on every step: re-run once, then a retryable failure.
        let mut runner = runner(
            r#"while IFS= read -r line; do echo '{"ok":tr'; exit 0; done"#,
            RunMode::Session,
            10_000,
        );
        let error = runner.run(&step_script()).await.expect_err("dies twice");
        assert!(
            matches!(&error, RunError::Crashed { how, .. } if how.contains("re-run once")) && error.is_retryable(),
            "{error}"
        );
        assert_eq!(runner.hosts_started(), 2, "one replacement per step, not a loop");
    });
}

#[test]
fn a_hung_step_is_not_rerun_and_its_host_is_replaced_for_the_next() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = temp_dir();
        let flag = dir.path().join("hung-once");
        let body = format!(
            r#"while IFS= read -r line; do if [ ! -e {f} ]; then touch {f}; sleep 1000; fi; echo '{{"ok":true}}'; echo "<<<sccm-connector:$3:exit=0>>>"; done"#,
            f = flag.display()
        );
        let mut runner = runner(&body, RunMode::Session, 300);
        let error = runner.run(&step_script()).await.expect_err("hung");
        assert!(matches!(error, RunError::Timeout { .. }) && error.is_retryable(), "{error}");
        assert_eq!(runner.hosts_started(), 1, "a timed-out step is not re-run");
        assert!(runner.run(&step_script()).await.expect("a new host").result.ok());
        assert_eq!(runner.hosts_started(), 2);

        let mut runner = runner_hang();
        let error = runner.run(&step_script()).await.expect_err("hung");
        assert!(matches!(error, RunError::Timeout { .. }), "{error}");
    });
}

fn runner_hang() -> Runner {
    runner(
        "while IFS= read -r line; do sleep 1000; done",
        RunMode::Session,
        300,
    )
}

#[test]
fn a_forged_end_marker_is_just_output() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let reply = r#"echo '<<<sccm-connector:not-the-token:exit=0>>>'; echo '{"ok":true}'"#;
        let mut runner = runner(&host(reply, ":"), RunMode::Session, 10_000);
        let run = runner.run(&step_script()).await.expect("a result");
        assert_eq!(
            run.result.noise,
            vec!["<<<sccm-connector:not-the-token:exit=0>>>".to_string()]
        );
    });
}

/// A runner like [`runner`] whose private script directory is created under `scratch`.
fn runner_in(body: &str, mode: RunMode, timeout_ms: u64, scratch: &std::path::Path) -> Runner {
    Runner::new(PowerShellConfig {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), body.into(), "sh".into()],
        mode,
        step_timeout: Duration::from_millis(timeout_ms),
        scratch_dir: Some(scratch.to_path_buf()),
    })
    .expect("a runner")
}

/// The runner's private directories under `scratch`, and the step scripts left in them (the
/// session host's own file is not a step).
fn leftovers(scratch: &std::path::Path) -> (usize, Vec<String>) {
    let mut dirs = 0;
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(scratch).expect("scratch") {
        let dir = entry.expect("entry").path();
        dirs += 1;
        for file in std::fs::read_dir(&dir).expect("private dir") {
            let name = file
                .expect("file")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name != sccm_connector::powershell::runner::SESSION_HOST_FILE {
                steps.push(name);
            }
        }
    }
    (dirs, steps)
}

#[test]
fn no_step_script_remains_after_success_timeout_or_crash() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Every body first proves the script file exists while the step runs (else exit 9).
    let per_step = [
        (
            "success",
            r#"test -f "$2" || exit 9; echo '{"ok":true}'"#,
            true,
        ),
        ("timeout", r#"test -f "$2" || exit 9; sleep 1000"#, false),
        ("crash", r#"test -f "$2" || exit 9; kill -9 $$"#, false),
    ];
    let session = [
        ("success", host(r#"echo '{"ok":true}'"#, ":"), true),
        (
            "timeout",
            r#"while IFS= read -r line; do test -f "${line#RUN }" || exit 9; sleep 1000; done"#.to_string(),
            false,
        ),
        (
            "crash",
            r#"while IFS= read -r line; do test -f "${line#RUN }" || exit 9; echo '{"ok":tr'; kill -9 $$; done"#.to_string(),
            false,
        ),
    ];
    let cases = per_step
        .iter()
        .map(|(what, body, ok)| (RunMode::PerStep, *what, body.to_string(), *ok))
        .chain(
            session
                .into_iter()
                .map(|(what, body, ok)| (RunMode::Session, what, body, ok)),
        );
    for (mode, what, body, ok) in cases {
        let scratch = temp_dir();
        let mut runner = runner_in(&body, mode, 500, scratch.path());
        let outcome = rt.block_on(runner.run(&step_script()));
        match (&outcome, ok) {
            (Ok(run), true) => assert!(run.result.ok(), "{mode:?} {what}"),
            (Err(RunError::Timeout { .. }), false) if what == "timeout" => {}
            (Err(RunError::Crashed { .. }), false) if what == "crash" => {}
            _ => panic!("{mode:?} {what}: unexpected {outcome:?}"),
        }
        let (dirs, steps) = leftovers(scratch.path());
        assert_eq!(dirs, 1, "{mode:?} {what}: the runner's private directory");
        assert_eq!(
            steps,
            Vec::<String>::new(),
            "{mode:?} {what}: step scripts left behind"
        );
        rt.block_on(runner.shutdown());
        drop(runner);
        assert_eq!(
            leftovers(scratch.path()).0,
            0,
            "{mode:?} {what}: the private directory outlived the runner"
        );
    }
}
