//! The site simulator through the production code path: the real runner starts
//! `sccm-connector sim powershell` exactly as it would start `powershell.exe` (per step and as a
//! session host), hands it the generated scripts and parses its JSON results; `sim site dump`
//! shows what the site holds. Also: durability under SIGKILL, concurrent hosts, the faults that
//! end the process, PowerShell's error texts, hostile values, and seeded estates.

#![cfg(unix)]

use crate::support::{connector, fixture, temp_dir};
use sccm_connector::command::{Command, Import, Limits, Push, parse};
use sccm_connector::powershell::import;
use sccm_connector::powershell::push::{self, SiteAccess};
use sccm_connector::powershell::runner::{PowerShellConfig, RunError, RunMode, Runner, StepRun};
use sccm_connector::powershell::script::Script;
use sccm_connector::sim::site::{Site, State};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

const SHARE: &str = "\\\\WIN-2HDJCBHRRVB\\Sources$";
const BIN: &str = env!("CARGO_BIN_EXE_sccm-connector");
const PS_ARGS: [&str; 6] = [
    "--",
    "-NoLogo",
    "-NoProfile",
    "-NonInteractive",
    "-ExecutionPolicy",
    "Bypass",
];

/// A fresh simulated site whose share holds the FileZilla content folder.
struct Sim {
    _dir: tempfile::TempDir,
    site: PathBuf,
}

impl Sim {
    fn new() -> Sim {
        let dir = temp_dir();
        let share = dir.path().join("share");
        let content = share
            .join("incoming")
            .join("TimKosse_FileZilla_3.46.3_English(United States)");
        std::fs::create_dir_all(&content).expect("content folder");
        std::fs::write(content.join("Deploy-Application.exe"), b"MZ-filezilla").expect("file");
        std::fs::write(content.join("Deploy-Application.ps1"), b"# PSADT").expect("file");
        let site = dir.path().join("site");
        let out = connector(&[
            "sim",
            "site",
            "--site",
            site.to_str().expect("utf-8 path"),
            "init",
            "--share",
            &format!("{SHARE}={}", share.display()),
        ]);
        assert!(out.status.success(), "init: {out:?}");
        Sim { _dir: dir, site }
    }

    fn site_arg(&self) -> String {
        self.site.display().to_string()
    }

    fn runner(&self, mode: RunMode, extra: &[&str], timeout: Duration) -> Runner {
        let mut args = vec![
            "sim".to_string(),
            "powershell".into(),
            "--site".into(),
            self.site_arg(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(PS_ARGS.iter().map(|s| s.to_string()));
        Runner::new(PowerShellConfig {
            program: BIN.into(),
            args,
            mode,
            step_timeout: timeout,
            scratch_dir: None,
        })
        .expect("a runner")
    }

    fn dump(&self) -> Value {
        let out = connector(&["sim", "site", "--site", &self.site_arg(), "dump"]);
        assert!(out.status.success(), "dump: {out:?}");
        serde_json::from_slice(&out.stdout).expect("dump is JSON")
    }

    fn state(&self) -> State {
        Site::open(&self.site)
            .and_then(|s| s.read())
            .expect("the state file parses")
    }

    fn check(&self) {
        let out = connector(&["sim", "site", "--site", &self.site_arg(), "check"]);
        assert!(
            out.status.success(),
            "check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn fixture_push(edit: impl FnOnce(&mut Value)) -> Push {
    let mut json: Value = serde_json::from_slice(
        &std::fs::read(fixture("commands/push-filezilla.json")).expect("fixture"),
    )
    .expect("json");
    edit(&mut json);
    match parse(
        &serde_json::to_vec(&json).expect("bytes"),
        &Limits::default(),
    ) {
        Ok(Command::Push(p)) => *p,
        other => panic!("not a push: {other:?}"),
    }
}

fn fixture_import() -> Import {
    let raw = std::fs::read(fixture("commands/import-filezilla.json")).expect("fixture");
    match parse(&raw, &Limits::default()) {
        Ok(Command::Import(i)) => i,
        other => panic!("not an import: {other:?}"),
    }
}

async fn ok(runner: &mut Runner, script: &Script) -> serde_json::Map<String, Value> {
    let run = runner
        .run(script)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", script.step));
    assert!(
        run.result.ok(),
        "{}: {} (stderr: {})",
        script.step,
        run.result.json(),
        run.stderr
    );
    run.result.object
}

/// Runs a push's scripts, polling `wait-distribution` until it reports done.
async fn run_push(runner: &mut Runner, push: &Push) -> Vec<serde_json::Map<String, Value>> {
    let mut results = Vec::new();
    for script in push::scripts(push, &SiteAccess::default()).expect("scripts") {
        let mut result = ok(runner, &script).await;
        if script.step == "wait-distribution" {
            let mut polls = 1;
            while result["done"] != Value::Bool(true) {
                assert!(polls < 10, "distribution never completes: {result:?}");
                result = ok(runner, &script).await;
                polls += 1;
            }
        }
        results.push(result);
    }
    results
}

fn push_and_import(mode: RunMode) {
    let sim = Sim::new();
    let push = fixture_push(|_| {});
    let rt = rt();
    let mut runner = sim.runner(mode, &[], Duration::from_secs(60));
    rt.block_on(async {
        let first = run_push(&mut runner, &push).await;
        assert_eq!(first[0]["created"], true);
        assert_eq!(first[2]["started"], true);
        assert_eq!(first[5]["moved"], true);
        let effects = sim.state().effects.len();
        assert_eq!(effects, 6, "one effect per mutating cmdlet");

        // The state the site shows.
        let dump = sim.dump();
        let state = &dump["state"];
        let apps = state["applications"].as_array().expect("applications");
        assert_eq!(apps.len(), 1);
        let app = &apps[0];
        assert_eq!(app["name"], push.application.name);
        assert_eq!(app["deployment_types"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            app["deployment_types"][0]["name"],
            push.deployment_type.name
        );
        let distributions = state["distributions"].as_array().expect("distributions");
        assert_eq!(distributions.len(), 1);
        assert_eq!(
            distributions[0]["polls"], dump["config"]["distribution_polls"],
            "the distribution completed"
        );
        assert_eq!(distributions[0]["group_name"], "Demo Distribution Group");
        assert_eq!(state["deployments"].as_array().map(Vec::len), Some(1));
        assert_eq!(state["deployments"][0]["collection_name"], "Demo devices");
        let folders = state["folders"].as_array().expect("folders");
        assert_eq!(folders.len(), 1);
        assert_eq!(folders[0]["name"], "Test 1");
        assert_eq!(folders[0]["parent_container_node_id"], 0);
        let memberships = state["memberships"].as_array().expect("memberships");
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0]["instance_key"], app["model_name"]);
        assert_eq!(
            memberships[0]["container_node_id"],
            folders[0]["container_node_id"]
        );

        // Every push script again: nothing changes, nothing is logged twice.
        let second = run_push(&mut runner, &push).await;
        for (result, flag) in second.iter().zip(["created", "created", "started"]) {
            assert_eq!(result[flag], false);
        }
        assert_eq!(second[4]["created"], false);
        assert_eq!(second[5]["moved"], false);
        let after = sim.state();
        assert_eq!(after.effects.len(), effects, "no duplicate mutation");
        assert_eq!(after.applications.len(), 1);
        sim.check();

        // The import lists the folder and the app and reads metadata that parses back.
        let import = fixture_import();
        let access = SiteAccess::default();
        let folders = ok(
            &mut runner,
            &import::list_folders(&import, &access).expect("s"),
        )
        .await;
        assert_eq!(folders["folders"][0]["Name"], "Test 1");
        let listed = ok(
            &mut runner,
            &import::list_applications(&import, &access).expect("s"),
        )
        .await;
        let ci_id = listed["applications"][0]["CI_ID"].as_u64().expect("CI_ID") as u32;
        assert_eq!(ci_id, 16_777_217);
        assert_eq!(
            listed["memberships"][0]["ContainerNodeID"],
            folders["folders"][0]["ContainerNodeID"]
        );
        let name = &push.application.name;
        let meta = ok(
            &mut runner,
            &import::read_metadata(&import, &access, name, ci_id).expect("s"),
        )
        .await;
        let xml = meta["sdm_package_xml"].as_str().expect("SDMPackageXML");
        let parsed = sccm_connector::sdm::parse(xml).expect("the digest parses");
        assert_eq!(&parsed.package_name, name);
        assert_eq!(parsed.name.as_deref(), Some("FileZilla"));
        assert_eq!(parsed.vendor.as_deref(), Some("Tim Kosse"));
        assert_eq!(parsed.version.as_deref(), Some("3.46.3"));
        assert_eq!(parsed.language.as_deref(), Some("English(United States)"));
        assert!(parsed.resource_id.is_some_and(|r| r.starts_with("Res_")));
        let dt = &parsed.deployment_types[0];
        assert_eq!(dt.name.as_deref(), Some(push.deployment_type.name.as_str()));
        assert_eq!(
            dt.content_location.as_deref(),
            Some(format!("{}\\", push.deployment_type.content_location).as_str())
        );
        assert_eq!(
            dt.install_command.as_deref(),
            Some(push.deployment_type.install_command.as_str())
        );
        assert_eq!(
            dt.uninstall_command.as_deref(),
            push.deployment_type.uninstall_command.as_deref()
        );
        assert_eq!(
            dt.detection_script.as_deref(),
            Some(push.deployment_type.detection_script.as_str())
        );
        runner.shutdown().await;
    });
    if mode == RunMode::Session {
        assert_eq!(
            runner.hosts_started(),
            1,
            "one session host for the whole job"
        );
    }
}

#[test]
fn the_filezilla_push_and_import_run_per_step() {
    push_and_import(RunMode::PerStep);
}

#[test]
fn the_filezilla_push_and_import_run_in_a_session() {
    push_and_import(RunMode::Session);
}

/// A generated script with `from` replaced by `to` in its text (still passing the checker).
fn edited(script: &Script, from: &str, to: &str) -> Script {
    assert!(script.text.contains(from), "{from} not in {}", script.step);
    Script {
        step: script.step.clone(),
        inputs: script.inputs.clone(),
        text: script.text.replacen(from, to, 1),
    }
}

fn run_one(sim: &Sim, script: &Script, extra: &[&str]) -> Result<StepRun, RunError> {
    let rt = rt();
    rt.block_on(async {
        let mut runner = sim.runner(RunMode::PerStep, extra, Duration::from_secs(60));
        runner.run(script).await
    })
}

#[test]
fn an_unknown_parameter_fails_with_powershells_text() {
    let sim = Sim::new();
    let push = fixture_push(|_| {});
    let script = edited(
        &push::ensure_application(&push, &SiteAccess::default()).expect("script"),
        "-DefaultLanguageId 1033",
        "-Language $SoftwareVersion",
    );
    let run = run_one(&sim, &script, &[]).expect("a result");
    assert!(!run.result.ok());
    assert_eq!(run.exit_code, 1);
    assert_eq!(
        run.result.object["error"],
        "A parameter cannot be found that matches parameter name 'Language'."
    );
    assert!(
        run.stderr.contains("NamedParameterNotFound"),
        "{}",
        run.stderr
    );
    assert!(sim.state().applications.is_empty());
}

#[test]
fn a_missing_set_location_fails_as_in_configmgr() {
    let sim = Sim::new();
    let push = fixture_push(|_| {});
    let script = edited(
        &push::ensure_application(&push, &SiteAccess::default()).expect("script"),
        "    Set-Location -Path ($SiteCode + ':')\n",
        "",
    );
    let run = run_one(&sim, &script, &[]).expect("a result");
    assert_eq!(
        run.result.object["error"],
        "This command cannot be run from the current drive. To run this command you must first connect to a Configuration Manager drive."
    );
}

#[test]
fn hostile_values_round_trip_into_the_site_state() {
    let sim = Sim::new();
    let name = "Evil ‘App’ 'x' \"y\" “z” $(calc) `n ; | & # <# @{}";
    let push = fixture_push(|j| {
        j["application"]["package_name"] = name.into();
        j["application"]["name"] = "Fi’le‘Zil''la $env:X".into();
        j["application"]["vendor"] = "Tim ‚Kosse‛ \"$()\"".into();
        j["application"]["version"] = "3.46.3'$(x)".into();
        j["application"]["description"] = "line one\nline ‘two’\r\n$(Remove-Item C:\\)".into();
        j["application"]["folder"] = "Applications/Te'st ‘1’/$(sub) \"x\"".into();
        j["deployment_type"]["name"] = format!("{name}_DT").into();
        j["deployment_type"]["install_command"] = "Deploy.exe -Arg 'a''b' \"c\" $(d)".into();
        j["deployment_type"]["detection"]["script"] =
            "$x = 'it''s'\n‘’ \"$(Get-Date)\"\r\nexit 0".into();
        j["deployment_type"]["admin_comment"] = "‛comment‚ ''".into();
        j["deployment"]["collection"] = "Demo devices".into();
    });
    let rt = rt();
    rt.block_on(async {
        let mut runner = sim.runner(RunMode::Session, &[], Duration::from_secs(60));
        run_push(&mut runner, &push).await;
        runner.shutdown().await;
    });
    let state = sim.state();
    let app = &state.applications[0];
    assert_eq!(app.name, push.application.name);
    assert_eq!(
        app.localized_name.as_deref(),
        Some(push.application.localized_name.as_str())
    );
    assert_eq!(
        app.publisher.as_deref(),
        Some(push.application.publisher.as_str())
    );
    assert_eq!(
        app.software_version.as_deref(),
        Some(push.application.version.as_str())
    );
    assert_eq!(app.description, push.application.description);
    let dt = &app.deployment_types[0];
    assert_eq!(dt.name, push.deployment_type.name);
    assert_eq!(dt.install_command, push.deployment_type.install_command);
    assert_eq!(dt.detection_script, push.deployment_type.detection_script);
    assert_eq!(dt.comment, push.deployment_type.comment);
    let names: Vec<&str> = state.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["Te'st ‘1’", "$(sub) \"x\""]);
    assert_eq!(state.audit(), Ok(()));
}

#[test]
fn faults_that_end_the_host_reach_the_runner_as_retryable_errors() {
    let sim = Sim::new();
    let push = fixture_push(|_| {});
    let access = SiteAccess::default();
    let create = push::ensure_application(&push, &access).expect("script");
    // Crash after the effect: the runner sees a dead host, the application exists.
    let error =
        run_one(&sim, &create, &["--fault", "New-CMApplication@1=crash"]).expect_err("crash");
    assert!(matches!(error, RunError::Crashed { .. }), "{error}");
    assert!(error.is_retryable());
    assert_eq!(
        sim.state().applications.len(),
        1,
        "the effect was committed"
    );
    // The retry finds it (check first) and creates nothing.
    let run = run_one(&sim, &create, &[]).expect("retry");
    assert_eq!(run.result.object["created"], false);
    // Calls are counted per cmdlet across processes: Get-CMApplication has run twice.
    assert_eq!(sim.state().calls.get("Get-CMApplication"), Some(&2));
    // Exit non-zero at once.
    let error =
        run_one(&sim, &create, &["--fault", "Get-CMApplication@3=exit:7"]).expect_err("exit");
    assert!(
        matches!(&error, RunError::Crashed { how, .. } if how.contains("exit code 7")),
        "{error}"
    );
    // Garbage instead of the result.
    let error =
        run_one(&sim, &create, &["--fault", "Get-CMApplication@4=garbage"]).expect_err("garbage");
    assert!(matches!(error, RunError::Garbage { .. }), "{error}");
    // A hang is killed at the step timeout.
    let rt = rt();
    let error = rt.block_on(async {
        let mut runner = sim.runner(
            RunMode::PerStep,
            &["--fault", "Get-CMApplication@5=hang"],
            Duration::from_millis(1500),
        );
        runner.run(&create).await
    });
    assert!(matches!(error, Err(RunError::Timeout { .. })), "{error:?}");
    // A fault plan installed in the site applies to every host; call numbers are shared.
    let plan = sim._dir.path().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"seed": 1, "rules": [{"cmdlet": "Get-CMApplication", "calls": [6], "fault": {"kind": "fail", "message": "The SMS Provider reported an error."}}]}"#,
    )
    .expect("plan");
    let out = connector(&[
        "sim",
        "site",
        "--site",
        &sim.site_arg(),
        "faults",
        "set",
        plan.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let run = run_one(&sim, &create, &[]).expect("a result");
    assert_eq!(
        run.result.object["error"],
        "The SMS Provider reported an error."
    );
    let run = run_one(&sim, &create, &[]).expect("a result");
    assert!(run.result.ok(), "call 7 is not hit");
    // In a session, a host that crashes mid-step (after its effect) is replaced and the step
    // re-run once, transparently: the guard finds what the crashed host created.
    let deploy = push::ensure_deployment(&push, &access).expect("script");
    rt.block_on(async {
        let mut runner = sim.runner(
            RunMode::Session,
            &["--fault", "New-CMApplicationDeployment@1=crash"],
            Duration::from_secs(60),
        );
        let run = runner
            .run(&deploy)
            .await
            .expect("re-run in the replaced host");
        assert_eq!(
            run.result.object["created"], false,
            "the deployment survived the crash"
        );
        assert_eq!(runner.hosts_started(), 2);
        runner.shutdown().await;
    });
    assert_eq!(sim.state().deployments.len(), 1);
    sim.check();
}

#[test]
fn import_delay_is_paid_once_per_host() {
    let sim = Sim::new();
    let push = fixture_push(|_| {});
    let access = SiteAccess::default();
    let script = push::ensure_application(&push, &access).expect("script");
    let rt = rt();
    rt.block_on(async {
        let mut runner = sim.runner(
            RunMode::Session,
            &["--import-delay-ms", "400"],
            Duration::from_secs(60),
        );
        let first = runner.run(&script).await.expect("first");
        let second = runner.run(&script).await.expect("second");
        assert!(
            first.duration >= Duration::from_millis(400),
            "{:?}",
            first.duration
        );
        assert!(
            second.duration < Duration::from_millis(400),
            "{:?}",
            second.duration
        );
        runner.shutdown().await;
    });
}

/// xorshift64*: test randomness without a dependency (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A script that creates `count` folders named `<prefix>-<n>`, printing a line after each.
fn folder_script(dir: &Path, prefix: &str, count: usize) -> PathBuf {
    let mut text = String::from(
        "\u{FEFF}$ErrorActionPreference = 'Stop'\n[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false\nImport-Module -Name 'ConfigurationManager'\nNew-PSDrive -Name 'DEM' -PSProvider 'CMSite' -Root $env:COMPUTERNAME | Out-Null\nSet-Location -Path 'DEM:'\n",
    );
    for n in 0..count {
        text.push_str(&format!(
            "New-CMFolder -ParentFolderPath 'Application' -Name '{prefix}-{n}' | Out-Null\nWrite-Output 'created {n}'\n"
        ));
    }
    let path = dir.join(format!("{prefix}.ps1"));
    std::fs::write(&path, text).expect("script");
    path
}

fn spawn_host(sim: &Sim, script: &Path) -> std::process::Child {
    let mut args = vec![
        "sim".to_string(),
        "powershell".into(),
        "--site".into(),
        sim.site_arg(),
    ];
    args.extend(PS_ARGS.iter().map(|s| s.to_string()));
    args.push("-File".into());
    args.push(script.display().to_string());
    Process::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the host starts")
}

fn assert_consistent(state: &State, context: &str) {
    assert_eq!(state.audit(), Ok(()), "{context}");
    let logged = state
        .effects
        .iter()
        .filter(|e| e.cmdlet == "New-CMFolder")
        .count();
    assert_eq!(logged, state.folders.len(), "{context}");
}

#[test]
fn the_state_survives_sigkill_at_random_moments() {
    let sim = Sim::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let dir = sim._dir.path().to_path_buf();
    let mut total_seen = 0;
    for round in 0..40 {
        let script = folder_script(&dir, &format!("r{round}"), 6);
        let mut child = spawn_host(&sim, &script);
        let lines = (rng.next() % 6) as usize;
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        for _ in 0..lines {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
        // Vary the moment within the next mutation (a busy spin, not a sleep).
        let spin = std::time::Instant::now();
        let spin_for = Duration::from_micros(rng.next() % 3000);
        while spin.elapsed() < spin_for {
            std::hint::spin_loop();
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let state = sim.state();
        assert_consistent(&state, &format!("seed {seed} round {round}"));
        assert!(
            state.folders.len() >= total_seen + lines.min(6),
            "seed {seed} round {round}"
        );
        total_seen = state.folders.len();
    }
    sim.check();
}

#[test]
fn concurrent_hosts_serialise_their_updates() {
    let sim = Sim::new();
    let dir = sim._dir.path().to_path_buf();
    let children: Vec<_> = (0..4)
        .map(|i| spawn_host(&sim, &folder_script(&dir, &format!("c{i}"), 8)))
        .collect();
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success());
    }
    let state = sim.state();
    assert_eq!(state.folders.len(), 32);
    assert_consistent(&state, "concurrent");
    let mut ids: Vec<u32> = state.folders.iter().map(|f| f.container_node_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 32, "ids are unique");
}

#[test]
fn a_seeded_estate_is_imported_with_its_duplicates_and_folders() {
    let sim = Sim::new();
    let seed = sim._dir.path().join("seed.json");
    let mut file = std::fs::File::create(&seed).expect("seed");
    write!(
        file,
        r#"{{
          "folders": ["Applications/Archive"],
          "applications": [
            {{"name": "7-Zip 19.00", "publisher": "Igor Pavlov", "version": "19.00",
              "language": "German(Germany)", "folder": "Applications/Tools/Zip",
              "deployment_types": [{{"name": "7-Zip 19.00_DT",
                 "content_location": "{share}\\apps\\7zip",
                 "files": {{"7z1900-x64.msi": "MSI", "Files/readme.txt": "hello"}},
                 "install_command": "msiexec /i 7z1900-x64.msi /qn",
                 "detection_script": "Test-Path 'C:\\Program Files\\7-Zip'"}}],
              "distribute_to": ["Demo Distribution Group"],
              "deploy_to": [{{"collection": "Demo devices", "purpose": "Required"}}]}},
            {{"name": "7-Zip 19.00", "publisher": "Igor Pavlov", "version": "19.00 (old)"}}
          ]
        }}"#,
        share = SHARE.replace('\\', "\\\\")
    )
    .expect("write seed");
    drop(file);
    let out = connector(&[
        "sim",
        "site",
        "--site",
        &sim.site_arg(),
        "seed",
        seed.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let import = fixture_import();
    let access = SiteAccess::default();
    let rt = rt();
    rt.block_on(async {
        let mut runner = sim.runner(RunMode::Session, &[], Duration::from_secs(60));
        let listed = ok(
            &mut runner,
            &import::list_applications(&import, &access).expect("s"),
        )
        .await;
        let apps = listed["applications"].as_array().expect("apps");
        assert_eq!(apps.len(), 2);
        assert_eq!(
            apps[0]["LocalizedDisplayName"],
            apps[1]["LocalizedDisplayName"]
        );
        assert_eq!(listed["memberships"].as_array().map(Vec::len), Some(1));
        let folders = ok(
            &mut runner,
            &import::list_folders(&import, &access).expect("s"),
        )
        .await;
        assert_eq!(folders["folders"].as_array().map(Vec::len), Some(3));
        let ci_id = apps[0]["CI_ID"].as_u64().expect("id") as u32;
        let meta = ok(
            &mut runner,
            &import::read_metadata(&import, &access, "7-Zip 19.00", ci_id).expect("s"),
        )
        .await;
        let parsed = sccm_connector::sdm::parse(meta["sdm_package_xml"].as_str().expect("xml"))
            .expect("parses");
        assert_eq!(parsed.language.as_deref(), Some("German(Germany)"));
        assert_eq!(
            parsed.content_location(),
            Some(format!("{SHARE}\\apps\\7zip\\").as_str())
        );
        runner.shutdown().await;
    });
    sim.check();
}
