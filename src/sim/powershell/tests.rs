//! Unit tests of the host: the generated scripts against a fresh site (per step and in one
//! session), parameter validation, the realistic refusals, in-process faults, encodings and
//! the command line. Faults that end the process (crash, exit, hang) are tested through the
//! binary in `tests/integration/sim_site.rs`.

use super::interp::{ConsoleEncoding, Host, Mode};
use super::*;
use crate::command::{Command, Limits, Push};
use crate::powershell::push::{self, SiteAccess};
use crate::powershell::quote::single_quoted;
use crate::powershell::script::Script;
use crate::sim::site::config::{InitOptions, SiteConfig};
use crate::sim::site::faults::FaultPlan;
use std::cell::RefCell;
use std::rc::Rc as StdRc;

const SHARE: &str = "\\\\WIN-2HDJCBHRRVB\\Sources$";
const APP: &str = "TimKosse_FileZilla_3.46.3_English(United States)";

#[derive(Clone, Default)]
struct Buf(StdRc<RefCell<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.borrow_mut())).into_owned()
    }
}

struct World {
    dir: tempfile::TempDir,
    site: Site,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let content = share.join("incoming").join(APP);
    std::fs::create_dir_all(&content).expect("mkdir");
    std::fs::write(content.join("Deploy-Application.exe"), b"MZ").expect("write");
    let config = SiteConfig::from_options(
        dir.path(),
        &InitOptions {
            shares: vec![(SHARE.into(), share)],
            ..InitOptions::default()
        },
    )
    .expect("config");
    let site = Site::init(&dir.path().join("site"), config, false).expect("site");
    World { dir, site }
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        let parsed = crate::powershell::output::parse(self.out.as_bytes(), self.code)
            .unwrap_or_else(|e| panic!("{e}: out={:?} err={:?}", self.out, self.err));
        serde_json::Value::Object(parsed.object)
    }
}

impl World {
    fn host(&self, mode: Mode, faults: FaultPlan) -> (Host, Buf, Buf) {
        let (out, err) = (Buf::default(), Buf::default());
        let host = Host::new(
            self.site.clone(),
            faults,
            Duration::ZERO,
            mode,
            Box::new(out.clone()),
            Box::new(err.clone()),
        );
        (host, out, err)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write script");
        path
    }

    /// Runs one script text in a fresh per-step host.
    fn run_text(&self, text: &str) -> Run {
        self.run_text_with(text, FaultPlan::default())
    }

    fn run_text_with(&self, text: &str, faults: FaultPlan) -> Run {
        let path = self.write("step.ps1", format!("\u{FEFF}{text}").as_bytes());
        let (mut host, out, err) = self.host(Mode::PerStep, faults);
        let code = run_file(&mut host, &path);
        Run {
            code,
            out: out.take(),
            err: err.take(),
        }
    }

    fn run_script(&self, script: &Script) -> Run {
        let path = self.write(&format!("{}.ps1", script.step), script.bytes());
        let (mut host, out, err) = self.host(Mode::PerStep, FaultPlan::default());
        let code = run_file(&mut host, &path);
        Run {
            code,
            out: out.take(),
            err: err.take(),
        }
    }
}

fn push_command(edit: impl FnOnce(&mut serde_json::Value)) -> Push {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/commands/push-filezilla.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    edit(&mut json);
    let raw = serde_json::to_vec(&json).expect("bytes");
    match crate::command::parse(&raw, &Limits::default()) {
        Ok(Command::Push(p)) => *p,
        other => panic!("not a push: {other:?}"),
    }
}

fn push_scripts(push: &Push) -> Vec<Script> {
    push::scripts(push, &SiteAccess::default()).expect("scripts render")
}

/// A script with the generator's preamble and connection, then `body`.
fn connected(body: &str) -> String {
    format!(
        "$ErrorActionPreference = 'Stop'\n$CMPSSuppressFastNotUsedCheck = $true\n$SiteCode = 'DEM'\n$ConsolePath = '{}'\ntry {{\n$ProviderMachine = $env:COMPUTERNAME\nImport-Module -Name (Join-Path -Path $ConsolePath -ChildPath 'ConfigurationManager.psd1')\nNew-PSDrive -Name $SiteCode -PSProvider 'CMSite' -Root $ProviderMachine -Scope 'Global' | Out-Null\nSet-Location -Path ($SiteCode + ':')\n{body}\n}} catch {{\n$failure = @{{ ok = $false; error = $_.Exception.Message; line = $_.InvocationInfo.ScriptLineNumber }}\nWrite-Output (ConvertTo-Json -InputObject $failure -Depth 10 -Compress)\nexit 1\n}}\n",
        crate::sim::site::config::DEFAULT_CONSOLE_PATH
    )
}

#[test]
fn the_filezilla_push_runs_per_step_and_twice_changes_nothing() {
    let w = world();
    let push = push_command(|_| {});
    let scripts = push_scripts(&push);
    for round in 0..2 {
        for script in &scripts {
            let run = w.run_script(script);
            let json = run.json();
            assert_eq!(
                json["ok"], true,
                "round {round} {}: {json} {}",
                script.step, run.err
            );
            assert_eq!(run.code, 0);
            if round == 1 {
                for flag in ["created", "started", "moved"] {
                    assert_ne!(
                        json.get(flag),
                        Some(&serde_json::Value::Bool(true)),
                        "{}",
                        script.step
                    );
                }
            }
        }
    }
    let state = w.site.read().expect("state");
    assert_eq!(state.applications.len(), 1);
    assert_eq!(state.applications[0].deployment_types.len(), 1);
    assert_eq!(state.deployments.len(), 1);
    assert_eq!(state.folders.len(), 1);
    assert_eq!(state.memberships.len(), 1);
    assert_eq!(state.effects.len(), 6, "one effect per mutating cmdlet");
    assert_eq!(state.audit(), Ok(()));
}

#[test]
fn the_push_and_import_run_in_one_session() {
    let w = world();
    let push = push_command(|_| {});
    let mut scripts = push_scripts(&push);
    for _ in 0..3 {
        scripts.push(push::wait_distribution(&push, &SiteAccess::default()).expect("wait"));
    }
    let mut requests = String::new();
    for (i, script) in scripts.iter().enumerate() {
        let path = w.write(&format!("{i:02}.ps1"), script.bytes());
        requests.push_str(&format!("RUN {}\n", path.display()));
    }
    requests.push_str("ignored line\n");
    let (mut host, out, err) = w.host(Mode::Session, FaultPlan::default());
    host.encoding = ConsoleEncoding::Utf8 { bom: false };
    serve_session(&mut host, "tok", &mut requests.as_bytes());
    let out = out.take();
    let replies: Vec<&str> = out.split("<<<sccm-connector:tok:exit=").collect();
    assert_eq!(replies.len(), scripts.len() + 1, "{out} {}", err.take());
    for reply in &replies[1..] {
        assert!(reply.starts_with("0>>>"), "{reply}");
    }
    assert!(
        replies[replies.len() - 2].contains("\"done\":true"),
        "{out}"
    );
    assert!(
        host.module_loaded,
        "the module stays imported for the session"
    );
    assert_eq!(w.site.read().expect("state").audit(), Ok(()));
}

#[test]
fn import_reads_metadata_that_parses_back() {
    let w = world();
    let push = push_command(|_| {});
    for script in push_scripts(&push) {
        assert_eq!(w.run_script(&script).code, 0);
    }
    let ci_id = w.site.read().expect("state").applications[0].ci_id;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/commands/import-filezilla.json");
    let raw = std::fs::read(path).expect("fixture");
    let Ok(Command::Import(import)) = crate::command::parse(&raw, &Limits::default()) else {
        panic!("import fixture")
    };
    let access = SiteAccess::default();
    let folders = w
        .run_script(&crate::powershell::import::list_folders(&import, &access).expect("script"))
        .json();
    assert_eq!(folders["folders"][0]["Name"], "Test 1");
    let apps = w
        .run_script(
            &crate::powershell::import::list_applications(&import, &access).expect("script"),
        )
        .json();
    assert_eq!(apps["applications"][0]["LocalizedDisplayName"], APP);
    assert_eq!(
        apps["memberships"][0]["ContainerNodeID"],
        folders["folders"][0]["ContainerNodeID"]
    );
    let meta = w
        .run_script(
            &crate::powershell::import::read_metadata(&import, &access, APP, ci_id)
                .expect("script"),
        )
        .json();
    let xml = meta["sdm_package_xml"].as_str().expect("xml");
    let parsed = crate::sdm::parse(xml).expect("parses");
    assert_eq!(parsed.package_name, APP);
    assert_eq!(parsed.name.as_deref(), Some("FileZilla"));
    assert_eq!(parsed.language.as_deref(), Some("English(United States)"));
}

#[test]
fn required_deployments_with_deadlines_and_nested_folders() {
    let w = world();
    let push = push_command(|j| {
        j["deployment"]["purpose"] = "required".into();
        j["deployment"]["time_base"] = "utc".into();
        j["application"]["folder"] = "Applications/A/B/C".into();
        j["application"]["description"] = "admin note".into();
        j["deployment_type"]["admin_comment"] = "dt note".into();
        j["deployment_type"]["run_as_32bit"] = true.into();
        j["deployment_type"]["persist_in_cache"] = false.into();
    });
    for script in push_scripts(&push) {
        let run = w.run_script(&script);
        assert_eq!(
            run.json()["ok"],
            true,
            "{}: {} {}",
            script.step,
            run.out,
            run.err
        );
    }
    let state = w.site.read().expect("state");
    let d = &state.deployments[0];
    assert_eq!(d.deploy_purpose, "Required");
    assert_eq!(
        d.enforcement_deadline.as_deref(),
        Some("2020-02-02T18:00:00")
    );
    assert!(d.use_gmt_times);
    assert_eq!(state.folders.len(), 3);
    let folder = state.folder_of(&state.applications[0].model_name);
    assert_eq!(state.object_path(folder), "/A/B/C");
    let dt = &state.applications[0].deployment_types[0];
    assert!(dt.run_as_32bit && !dt.cache_content);
    assert_eq!(dt.comment.as_deref(), Some("dt note"));
}

#[test]
fn an_unknown_parameter_fails_like_powershell() {
    let w = world();
    let run = w.run_text(&connected(
        "$app = New-CMApplication -Name 'X' -Language 'en-US'\nWrite-Output 'unreachable'",
    ));
    assert_eq!(run.code, 1);
    assert_eq!(
        run.json()["error"],
        "A parameter cannot be found that matches parameter name 'Language'."
    );
    assert!(
        run.err
            .contains("New-CMApplication : A parameter cannot be found"),
        "{}",
        run.err
    );
    assert!(run.err.contains("NamedParameterNotFound"), "{}", run.err);
    assert!(w.site.read().expect("state").applications.is_empty());
}

#[test]
fn parameter_validation_on_cmdlets() {
    let w = world();
    for (body, expected) in [
        (
            "New-CMApplicationDeployment -Name 'X' -CollectionName 'Demo devices' -DeployPurpose 'Mandatory'",
            "Unable to match the identifier name Mandatory",
        ),
        (
            "New-CMApplication -Name 'X' -AutoInstall 'yes'",
            "Boolean parameters accept only Boolean values and numbers",
        ),
        (
            "Get-CMApplication -Name 'X' -Id 5",
            "Parameter set cannot be resolved",
        ),
        (
            "New-CMApplicationDeployment -Name 'X' -Deploy 'Install' -CollectionName 'c'",
            "is ambiguous. Possible matches include: -DeployAction -DeployPurpose",
        ),
        (
            "Add-CMScriptDeploymentType -ApplicationName 'X' -DeploymentTypeName 'D' -InstallCommand 'i' -ScriptLanguage 'PowerShell' -ScriptText 's' -MaximumRuntimeMins 5",
            "The 5 argument is less than the minimum allowed range of 15",
        ),
        (
            "Get-CMDistributionStatus -Id ''",
            "The argument is null or empty",
        ),
        (
            "New-CMApplication -Name ''",
            "because it is an empty string",
        ),
        (
            "New-CMFolder -Name 'x'",
            "missing mandatory parameters: ParentFolderPath",
        ),
        (
            "Get-CMApplication -Name 'X' -Fast:$true 'extra'",
            "A positional parameter cannot be found that accepts argument 'extra'",
        ),
        (
            "Move-CMObject -FolderPath 'DEM:\\Application' -InputObject 'not an object'",
            "Cannot convert the \"not an object\" value of type \"System.String\"",
        ),
    ] {
        let run = w.run_text(&connected(body));
        let json = run.json();
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains(expected)),
            "{body}: {json}"
        );
    }
    // Aliases and prefixes from the reference are accepted.
    let run = w.run_text(&connected(
        "$a = New-CMApplication -LocalizedDisplayName 'Alias' -Manufacturer 'P' -SoftwareVer '1' -ea 'Stop'\n$r = @{ ok = $true; id = $a.CI_ID }\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\nexit 0",
    ));
    assert_eq!(run.json()["id"], 16_777_217, "{}", run.err);
}

#[test]
fn cmdlets_refuse_to_run_off_the_site_drive() {
    let w = world();
    let text = connected("$app = Get-CMApplication -Name 'X' -Fast")
        .replace("Set-Location -Path ($SiteCode + ':')\n", "");
    let run = w.run_text(&text);
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["error"], cm::NOT_ON_SITE_DRIVE);
    // Without the module, the cmdlets do not exist at all.
    let run = w.run_text(
        "$ErrorActionPreference = 'Stop'\ntry { Get-CMApplication -Name 'X' } catch { Write-Output (ConvertTo-Json -InputObject @{ ok = $false; error = $_.Exception.Message } -Compress); exit 1 }\n",
    );
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("The term 'Get-CMApplication' is not recognized"))
    );
    assert!(run.err.contains("CommandNotFoundException"), "{}", run.err);
}

#[test]
fn the_module_and_the_drive_are_checked_like_the_real_ones() {
    let w = world();
    let wrong_module = connected("").replace(
        "Join-Path -Path $ConsolePath",
        "Join-Path -Path 'C:\\Elsewhere'",
    );
    let run = w.run_text(&wrong_module);
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("was not loaded because no valid module file was found"))
    );
    let wrong_root = connected("").replace("-Root $ProviderMachine", "-Root 'OTHER01'");
    let run = w.run_text(&wrong_root);
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be reached")),
        "{}",
        run.out
    );
    let no_provider = "$ErrorActionPreference = 'Stop'\ntry { New-PSDrive -Name 'DEM' -PSProvider 'CMSite' -Root 'CM01' } catch { Write-Output (ConvertTo-Json -InputObject @{ ok = $false; error = $_.Exception.Message } -Compress); exit 1 }\n";
    assert_eq!(
        w.run_text(no_provider).json()["error"],
        "Cannot find a provider with the name 'CMSite'."
    );
    // Get-PSDrive -ErrorAction SilentlyContinue returns nothing for a missing drive.
    let run = w.run_text("$ErrorActionPreference = 'Stop'\n$d = Get-PSDrive -Name 'DEM' -ErrorAction 'SilentlyContinue'\n$r = @{ ok = $true; none = ($null -eq $d) }\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\n");
    assert_eq!(run.json()["none"], true);
}

#[test]
fn names_are_wildcards_unless_disabled_and_lazy_properties_need_no_fast() {
    let w = world();
    let body = "$null = New-CMApplication -Name 'App[1]'\n$null = New-CMApplication -Name 'App1'\n$lit = @(Get-CMApplication -Name 'App[1]' -Fast -DisableWildcardHandling)\n$wild = @(Get-CMApplication -Name 'App[1]' -Fast)\n$star = @(Get-CMApplication -Name 'app*' -Fast)\n$fast = Get-CMApplication -Name 'App1' -Fast\n$slow = Get-CMApplication -Name 'App1'\n$r = @{ ok = $true; lit = $lit.LocalizedDisplayName; wild = $wild.LocalizedDisplayName; star = $star.Count; fastxml = ($null -eq $fast.SDMPackageXML); slowxml = ($null -ne $slow.SDMPackageXML); pkg = $slow.PackageID }\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\nexit 0";
    let run = w.run_text(&connected(body));
    let json = run.json();
    assert_eq!(json["lit"], "App[1]", "{json}");
    assert_eq!(json["wild"], "App1");
    assert_eq!(json["star"], 2);
    assert_eq!(json["fastxml"], true, "SDMPackageXML is empty under -Fast");
    assert_eq!(json["slowxml"], true);
    assert_eq!(json["pkg"], "", "no content, no package yet");
    let run = w.run_text(&connected("$a = @(Get-CMApplication -Name 'App[1' -Fast)"));
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("wildcard character pattern is not valid"))
    );
}

#[test]
fn realistic_refusals_reach_the_catch_block() {
    let w = world();
    let push = push_command(|j| {
        j["deployment_type"]["content_location"] = format!("{SHARE}\\incoming\\Missing").into();
        j["site"]["share_path"] = format!("{SHARE}\\incoming").into();
    });
    let scripts = push_scripts(&push);
    assert_eq!(w.run_script(&scripts[0]).code, 0);
    let run = w.run_script(&scripts[1]);
    assert!(
        run.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist or the site server cannot access it"))
    );
    let run = w.run_text(&connected(&format!(
        "$null = New-CMApplication -Name '{APP}'\n"
    )));
    assert_eq!(run.json()["error"], crate::sim::site::ops::NAME_EXISTS);
    // The failure object carries the line of the failing command.
    assert_eq!(run.json()["line"], 10);
}

#[test]
fn hostile_values_round_trip_into_the_state() {
    let w = world();
    let hostile = [
        "it's ‘quoted’ ‚low‛ “double” \"ascii\"",
        "$(calc) `n $env:PATH @{}",
        "line1\nline2\r\nline3\ttab",
        "semi; colon | pipe & amp # hash <# block #>",
        "Ünïcödé 😀 \u{202E}rtl",
    ];
    for (i, value) in hostile.iter().enumerate() {
        let literal = single_quoted(value).expect("no NUL");
        let body = format!(
            "$Name = {literal}\n$app = New-CMApplication -Name $Name -Publisher $Name -LocalizedName $Name\n$r = @{{ ok = $true; name = $app.LocalizedDisplayName }}\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\nexit 0"
        );
        let mut text = connected(&body);
        text = text.replacen(
            "$ErrorActionPreference = 'Stop'\n",
            "$ErrorActionPreference = 'Stop'\n[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false\n",
            1,
        );
        let run = w.run_text(&text);
        assert_eq!(run.json()["name"], *value, "{}", run.err);
        let state = w.site.read().expect("state");
        let app = &state.applications[i];
        assert_eq!(app.name, *value);
        assert_eq!(app.publisher.as_deref(), Some(*value));
    }
}

#[test]
fn output_without_utf8_encoding_is_the_oem_code_page() {
    let w = world();
    let run = w.run_text("Write-Output 'Zürich ✓'\n");
    assert_eq!(run.out, "Z?rich ?\r\n");
    let run = w.run_text(
        "[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false\nWrite-Output 'Zürich ✓'\n",
    );
    assert_eq!(run.out, "Zürich ✓\r\n");
}

#[test]
fn scripts_outside_the_subset_or_without_bom_fail_loudly() {
    let w = world();
    let run = w.run_text("foreach ($x in @(1)) { $x }\n");
    assert_eq!(run.code, 1);
    assert!(run.out.is_empty());
    assert!(run.err.contains("UnsupportedConstruct"), "{}", run.err);
    let path = w.write("nobom.ps1", b"Write-Output 'x'\n");
    let (mut host, _, err) = w.host(Mode::PerStep, FaultPlan::default());
    assert_eq!(run_file(&mut host, &path), 1);
    assert!(err.take().contains("byte order mark"));
    let run = w.run_text("$x = [int]::MaxValue\n");
    assert_eq!(
        run.code, 1,
        "an unmodelled .NET member is a simulator error"
    );
    assert!(
        run.err.contains("sccm-connector sim powershell"),
        "{}",
        run.err
    );
    let run = w.run_text("Invoke-Expression 'calc'\n");
    assert!(run.err.contains("is not recognized"), "{}", run.err);
}

#[test]
fn in_process_faults_fail_slow_and_garbage() {
    let w = world();
    let body = "$app = New-CMApplication -Name 'F'\n$r = @{ ok = $true; id = $app.CI_ID }\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\nexit 0";
    let plan = |rule: &str| FaultPlan {
        seed: 0,
        rules: vec![FaultPlan::parse_rule(rule).expect("rule")],
    };
    let run = w.run_text_with(
        &connected(body),
        plan("New-CMApplication@1=fail:Access is denied."),
    );
    assert_eq!(run.json()["error"], "Access is denied.");
    assert!(
        w.site.read().expect("state").applications.is_empty(),
        "failed before the effect"
    );
    let run = w.run_text_with(
        &connected(body),
        plan("New-CMApplication@2+after=fail:Timeout"),
    );
    assert_eq!(run.json()["error"], "Timeout");
    assert_eq!(
        w.site.read().expect("state").applications.len(),
        1,
        "failed after the effect"
    );
    let run = w.run_text_with(
        &connected(&body.replace("'F'", "'G'")),
        plan("New-CMApplication@3=garbage"),
    );
    assert_eq!(run.code, 0);
    assert!(
        crate::powershell::output::parse(run.out.as_bytes(), 0).is_err(),
        "{}",
        run.out
    );
    assert!(run.out.contains("CLIXML"));
    let started = std::time::Instant::now();
    let run = w.run_text_with(
        &connected(&body.replace("'F'", "'H'")),
        plan("New-CMApplication@4=slow:150"),
    );
    assert_eq!(run.json()["ok"], true);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let state = w.site.read().expect("state");
    assert_eq!(state.calls.get("New-CMApplication"), Some(&4));
    assert_eq!(
        state.applications.len(),
        2,
        "the slow call did its work once"
    );
    assert_eq!(state.audit(), Ok(()));
}

#[test]
fn powershell_exe_arguments() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let parsed = parse_powershell_args(&args(&[
        "-nologo",
        "/NoProfile",
        "-noni",
        "-ep",
        "bypass",
        "-File",
        "x.ps1",
        "tok",
    ]))
    .expect("parses");
    assert_eq!(parsed.file, PathBuf::from("x.ps1"));
    assert_eq!(parsed.script_args, vec!["tok".to_string()]);
    assert_eq!(parsed.execution_policy.as_deref(), Some("Bypass"));
    assert!(parsed.non_interactive);
    for bad in [
        &["-Command", "x"][..],
        &["-File"][..],
        &["-No", "-File", "x.ps1"][..],
        &["-ExecutionPolicy", "Lax", "-File", "x.ps1"][..],
        &["x.ps1"][..],
        &["-NoLogo"][..],
    ] {
        assert!(parse_powershell_args(&args(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn scripts_set_an_exit_code_as_files_and_keep_a_pasted_console_open() {
    let w = world();
    let push = push_command(|_| {});
    let access = SiteAccess::default();
    // Before the application exists, ensure-distribution fails; ensure-application succeeds.
    let failing = push::ensure_distribution(&push, &access).expect("renders");
    let succeeding = push::ensure_application(&push, &access).expect("renders");

    // As a file (-File): exit codes 1 and 0.
    let run = w.run_script(&failing);
    assert_eq!(run.code, 1, "{} {}", run.out, run.err);
    assert_eq!(run.json()["ok"], false);

    // In the session host (`& <file>`): the same codes reach the end marker.
    let mut requests = String::new();
    for (name, script) in [("a", &failing), ("b", &succeeding)] {
        let path = w.write(&format!("{name}.ps1"), script.bytes());
        requests.push_str(&format!("RUN {}\n", path.display()));
    }
    let (mut host, out, err) = w.host(Mode::Session, FaultPlan::default());
    host.encoding = ConsoleEncoding::Utf8 { bom: false };
    serve_session(&mut host, "tok", &mut requests.as_bytes());
    let out = out.take();
    let codes: Vec<&str> = out
        .split("<<<sccm-connector:tok:exit=")
        .skip(1)
        .map(|r| &r[..1])
        .collect();
    assert_eq!(codes, ["1", "0"], "{out} {}", err.take());

    // Pasted at a prompt ($PSCommandPath empty): one JSON line each, and the console stays open.
    let (mut host, out, err) = w.host(Mode::PerStep, FaultPlan::default());
    for (script, ok) in [(&failing, false), (&succeeding, true), (&failing, false)] {
        let file = load_script(&w.write("pasted.ps1", script.bytes())).expect("loads");
        let outcome = interp::run_pasted(&mut host, Rc::new(file));
        assert_eq!(outcome, interp::PastedOutcome::Ended, "{}", err.take());
        let printed = out.take();
        let json: serde_json::Value = serde_json::from_str(printed.trim()).expect("one JSON line");
        assert_eq!(json["ok"], ok, "{printed}");
    }
    // The simulator is faithful about the difference: a bare `exit` closes a pasted console.
    let bare = load_script(&w.write("bare.ps1", "\u{FEFF}exit 3\n".as_bytes())).expect("loads");
    assert_eq!(
        interp::run_pasted(&mut host, Rc::new(bare)),
        interp::PastedOutcome::ClosedConsole(3)
    );
}

#[test]
fn a_hidden_application_with_the_same_name_is_found_by_the_guards() {
    let w = world();
    let seed = crate::sim::site::seed::Seed {
        applications: vec![crate::sim::site::seed::SeedApplication {
            name: APP.into(),
            hidden: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    crate::sim::site::seed::apply(&w.site, &seed, "test").expect("seeded");
    let hidden = w.site.read().expect("state").applications[0].ci_id;

    // The simulator hides it from a plain lookup, as ConfigMgr does since 1802.
    let plain = w.run_text(&format!(
        "$ConsolePath = '{}'\n$SiteCode = 'DEM'\n$ProviderMachine = $env:COMPUTERNAME\nImport-Module -Name (Join-Path -Path $ConsolePath -ChildPath 'ConfigurationManager.psd1')\nNew-PSDrive -Name $SiteCode -PSProvider 'CMSite' -Root $ProviderMachine -Scope 'Global' | Out-Null\nSet-Location -Path ($SiteCode + ':')\n$a = Get-CMApplication -Name {} -Fast -DisableWildcardHandling\n$b = Get-CMApplication -Name {} -Fast -DisableWildcardHandling -ShowHidden\n$r = @{{ ok = $true; plain = ($null -eq $a); shown = $b.CI_ID }}\nWrite-Output (ConvertTo-Json -InputObject $r -Compress)\nexit 0",
        w.site.config().console_path,
        single_quoted(APP).expect("quoted"),
        single_quoted(APP).expect("quoted"),
    ));
    assert_eq!(plain.json()["plain"], true, "{}", plain.err);
    assert_eq!(plain.json()["shown"], hidden);

    // The push's guards see it: nothing is created a second time, every step succeeds.
    let push = push_command(|_| {});
    let scripts = push_scripts(&push);
    for script in &scripts {
        assert!(
            script.text.contains("-ShowHidden") || !script.text.contains("Get-CMApplication "),
            "{} looks up applications without -ShowHidden",
            script.step
        );
        let run = w.run_script(script);
        assert_eq!(run.code, 0, "{}: {} {}", script.step, run.out, run.err);
        if script.step == "ensure-application" {
            assert_eq!(run.json()["created"], false);
            assert_eq!(run.json()["ci_id"], hidden);
        }
    }
    let state = w.site.read().expect("state");
    assert_eq!(state.applications.len(), 1, "no second application");
    assert_eq!(state.audit(), Ok(()));
}

#[test]
fn an_existing_site_drive_names_the_provider_for_cim_queries() {
    // The console machine is not the SMS Provider, and importing the module creates the site
    // drive itself (as the real module does): the provider is only known from the drive's Root.
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let content = share.join("incoming").join(APP);
    std::fs::create_dir_all(&content).expect("mkdir");
    std::fs::write(content.join("Deploy-Application.exe"), b"MZ").expect("write");
    let config = SiteConfig::from_options(
        dir.path(),
        &InitOptions {
            shares: vec![(SHARE.into(), share)],
            provider_machine: Some("CM01.contoso.com".into()),
            computer_name: Some("CONSOLE01".into()),
            module_creates_drive: true,
            ..InitOptions::default()
        },
    )
    .expect("config");
    let site = Site::init(&dir.path().join("site"), config, false).expect("site");
    let w = World { dir, site };
    let push = push_command(|_| {});
    for script in push_scripts(&push) {
        assert!(script.text.contains("$ProviderMachine = $siteDrive.Root"));
        let run = w.run_script(&script);
        assert_eq!(run.code, 0, "{}: {} {}", script.step, run.out, run.err);
    }
    let state = w.site.read().expect("state");
    assert_eq!(state.memberships.len(), 1, "moved into its folder");
    assert_eq!(state.audit(), Ok(()));
}

#[test]
fn a_failed_distribution_ends_the_wait_with_a_clear_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    let content = share.join("incoming").join(APP);
    std::fs::create_dir_all(&content).expect("mkdir");
    std::fs::write(content.join("Deploy-Application.exe"), b"MZ").expect("write");
    let mut config = SiteConfig::from_options(
        dir.path(),
        &InitOptions {
            shares: vec![(SHARE.into(), share)],
            dp_groups: vec![("Demo Distribution Group".into(), 3)],
            distribution_polls: Some(3),
            ..InitOptions::default()
        },
    )
    .expect("config");
    config.distribution_point_groups[0].failing_dps = 1;
    let site = Site::init(&dir.path().join("site"), config, false).expect("site");
    let w = World { dir, site };
    let push = push_command(|_| {});
    let access = SiteAccess::default();
    for script in [
        push::ensure_application(&push, &access),
        push::ensure_deployment_type(&push, &access),
        push::ensure_distribution(&push, &access),
    ] {
        let run = w.run_script(&script.expect("renders"));
        assert_eq!(run.code, 0, "{} {}", run.out, run.err);
    }
    let wait = push::wait_distribution(&push, &access).expect("renders");
    // While DPs are in progress the step polls on, errors or not.
    for _ in 0..2 {
        let run = w.run_script(&wait);
        assert_eq!(run.code, 0, "{} {}", run.out, run.err);
        assert_eq!(run.json()["done"], false);
        assert_eq!(run.json()["errors"], 0);
    }
    // Then 2 DPs succeeded, 1 failed, none in progress: a failure that says so, not another poll.
    for _ in 0..2 {
        let run = w.run_script(&wait);
        assert_eq!(run.code, 1, "{} {}", run.out, run.err);
        assert_eq!(run.json()["ok"], false);
        assert_eq!(
            run.json()["error"],
            "Content distribution failed: 1 of 3 distribution points report errors and none is still in progress."
        );
    }
}
