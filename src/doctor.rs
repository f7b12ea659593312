//! `sccm-connector doctor --config FILE`: a checklist of everything the connector needs, each
//! check run with the real pieces (the configuration loader, the journal, the portal client
//! through the configured proxy and TLS, the PowerShell runner with the production connection
//! code), each answer with a fix hint. Nothing is changed: the journal check creates and removes
//! one empty probe file in the journal directory, then opens a private copy of the journal
//! (`crate::inspect`, as `jobs` and `replay` do: opening the journal itself would take its lock
//! and rewrite its `head.anchor`), so it also works while the connector runs; a poll does not
//! consume commands (the portal delivers them again until the connector acknowledges them); the
//! share and archive checks create and remove one empty probe file each.
//!
//! Exit code: 0 when no check failed (warnings allowed), 1 otherwise.

use crate::config::Config;
use crate::portal::client::PortalClient;
use crate::portal::error::PortalError;
use crate::powershell::push::{SiteAccess, connect};
use crate::powershell::runner::{RunError, Runner, StepRun};
use crate::powershell::script::{Script, ScriptBuilder};
use std::fmt;
use std::path::{Path, PathBuf};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Warn,
    Fail,
    /// Not run because an earlier check failed.
    Skipped,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Pass => "✔",
            Mark::Warn => "!",
            Mark::Fail => "✖",
            Mark::Skipped => "-",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub mark: Mark,
    pub detail: String,
    /// How to fix it (failures and warnings).
    pub hint: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            mark: Mark::Pass,
            detail: detail.into(),
            hint: None,
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name,
            mark: Mark::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name,
            mark: Mark::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
    fn skipped(name: &'static str, because: &str) -> Check {
        Check {
            name,
            mark: Mark::Skipped,
            detail: format!("not checked: {because}"),
            hint: None,
        }
    }
}

/// The check names, in order.
pub mod names {
    pub const CONFIG: &str = "configuration valid";
    pub const JOURNAL: &str = "journal writable";
    pub const PORTAL: &str = "portal reachable";
    pub const TLS: &str = "TLS valid";
    pub const REMOTE_ID: &str = "remote ID accepted";
    pub const POWERSHELL: &str = "PowerShell starts";
    pub const MODULE: &str = "ConfigurationManager module found";
    pub const SITE: &str = "site drive reachable";
    pub const SHARES: &str = "share writable";
    pub const ARCHIVE: &str = "archive writable";
}

/// The whole checklist.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.mark != Mark::Fail)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{} {}: {}", c.mark.symbol(), c.name, c.detail)?;
            if let Some(hint) = &c.hint {
                writeln!(f, "    fix: {hint}")?;
            }
        }
        let failed = self.checks.iter().filter(|c| c.mark == Mark::Fail).count();
        let warned = self.checks.iter().filter(|c| c.mark == Mark::Warn).count();
        if failed == 0 {
            writeln!(f, "all checks passed ({warned} warning(s))")
        } else {
            writeln!(f, "{failed} check(s) failed, {warned} warning(s)")
        }
    }
}

/// Where the site is, beyond the configuration (`doctor --site-code`, `--console-path`).
#[derive(Debug, Clone, Default)]
pub struct SiteOptions {
    /// The site code; default: the site drive the module created.
    pub site_code: Option<String>,
    /// The console's `bin` folder; default: the parent of `$env:SMS_ADMIN_UI_PATH`.
    pub console_path: Option<String>,
}

/// Runs every check against the configuration at `path`.
pub async fn run(path: &Path, site: &SiteOptions) -> Report {
    let mut report = Report::default();
    let config = match Config::load(path) {
        Ok(config) => {
            report.checks.push(Check::pass(
                names::CONFIG,
                format!("{} loaded", path.display()),
            ));
            config
        }
        Err(e) => {
            report.checks.push(Check::fail(
                names::CONFIG,
                e.to_string(),
                "correct the file or field named above (every key is described in docs/operations.md, \"Configure\")",
            ));
            for name in [
                names::JOURNAL,
                names::PORTAL,
                names::TLS,
                names::REMOTE_ID,
                names::POWERSHELL,
                names::MODULE,
                names::SITE,
                names::SHARES,
                names::ARCHIVE,
            ] {
                report
                    .checks
                    .push(Check::skipped(name, "the configuration is invalid"));
            }
            return report;
        }
    };
    let dir = config.journal_dir.clone();
    report.checks.push(
        tokio::task::spawn_blocking(move || journal_check(&dir))
            .await
            .unwrap_or_else(|e| {
                Check::fail(
                    names::JOURNAL,
                    format!("the check failed: {e}"),
                    "report this",
                )
            }),
    );
    report.checks.extend(portal_checks(&config).await);
    report.checks.extend(powershell_checks(&config, site).await);
    report.checks.push(share_check(&config));
    report.checks.push(archive_check(&config));
    report
}

/// Retention's archive folder takes files (or can be created), and the `[audit]` signing key, if
/// any, reads.
fn archive_check(config: &Config) -> Check {
    let name = names::ARCHIVE;
    let key = match &config.audit.signing_key {
        None => "archives unsigned (no [audit] signing_key)".to_string(),
        Some(path) => match crate::audit::sign::read_signing_key(path) {
            Ok(_) => format!("archives signed with {}", path.display()),
            Err(e) => {
                return Check::fail(
                    name,
                    format!("the [audit] signing key cannot be used: {e}"),
                    "point [audit] signing_key at a PKCS#8 PEM Ed25519 key the connector's account can read (`sccm-connector audit keygen --out DIR` makes one)",
                );
            }
        },
    };
    if config.retention.keep_finished_ms.is_none() {
        return Check::pass(
            name,
            format!("retention is off (keep_finished = \"off\"); {key}"),
        );
    }
    let dir = &config.retention.archive_dir;
    // The sweep creates a missing folder; then its nearest existing ancestor must take it.
    let existing = dir.ancestors().find(|p| p.exists());
    let probed = match existing {
        Some(p) if !p.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is a file, not a folder", p.display()),
        )),
        Some(p) => probe_write(p).map(|()| p.to_path_buf()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no part of the path exists",
        )),
    };
    match probed {
        Ok(p) if p == *dir => Check::pass(
            name,
            format!("created and removed a file in {}; {key}", dir.display()),
        ),
        Ok(p) => Check::pass(
            name,
            format!(
                "{} will be created in {} (writable); {key}",
                dir.display(),
                p.display()
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("cannot write archives to {}: {e}", dir.display()),
            "give the connector's account Modify rights on retention.archive (or its parent), or set retention.archive elsewhere",
        ),
    }
}

/// A probe file is created and removed in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".sccm-connector-doctor-{}", uuid::Uuid::new_v4()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn journal_check(dir: &Path) -> Check {
    let name = names::JOURNAL;
    if !dir.exists() {
        let parent = dir.parent().unwrap_or(Path::new("."));
        return match probe_write(parent) {
            Ok(()) => Check::pass(
                name,
                format!(
                    "{} does not exist yet; it is created at the first start ({} is writable)",
                    dir.display(),
                    parent.display()
                ),
            ),
            Err(e) => Check::fail(
                name,
                format!(
                    "{} does not exist and {} is not writable: {e}",
                    dir.display(),
                    parent.display()
                ),
                format!(
                    "create {} and give the connector's account Modify rights on it",
                    dir.display()
                ),
            ),
        };
    }
    if let Err(e) = probe_write(dir) {
        return Check::fail(
            name,
            format!("cannot write in {}: {e}", dir.display()),
            format!(
                "give the connector's account (the service account) Modify rights on {}",
                dir.display()
            ),
        );
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()) {
        return Check::pass(
            name,
            format!(
                "{} is empty and writable; the journal is created at the first start",
                dir.display()
            ),
        );
    }
    // A private copy: the live journal is neither locked nor rewritten (not even its
    // head.anchor), and a running connector is no obstacle.
    match crate::inspect::open(&crate::inspect::JournalSource::Dir(dir.to_path_buf())) {
        Ok(inspection) => {
            let fleet = inspection.store.fleet();
            Check::pass(
                name,
                format!(
                    "{}: {} job(s), {} unfinished, hash chain verified (on a copy)",
                    dir.display(),
                    fleet.jobs().count(),
                    fleet.unfinished().count()
                ),
            )
        }
        Err(e) => Check::fail(
            name,
            e.to_string(),
            "the journal cannot be opened: restore the last backup of the journal directory \
             (docs/operations.md, \"Back up and move a journal\") with the connector stopped",
        ),
    }
}

async fn portal_checks(config: &Config) -> Vec<Check> {
    let https = config.portal.base_url.starts_with("https://");
    let client = match PortalClient::new(&config.portal) {
        Ok(client) => client,
        Err(e) => {
            return vec![
                Check::fail(
                    names::PORTAL,
                    format!("the portal client cannot be set up: {e}"),
                    "fix [portal] (base_url, proxy, tls files) as the message says",
                ),
                Check::skipped(names::TLS, "no portal client"),
                Check::skipped(names::REMOTE_ID, "no portal client"),
            ];
        }
    };
    let via = match &config.portal.proxy {
        Some(p) => format!(" through proxy {}", p.url),
        None => String::new(),
    };
    let url = &config.portal.base_url;
    let tls_ok = || {
        if https {
            Check::pass(names::TLS, "the portal's certificate was accepted")
        } else {
            Check::warn(
                names::TLS,
                format!("{url} is plain HTTP (allowed to a loopback address only)"),
                "use the portal's https:// URL in production",
            )
        }
    };
    match client.poll().await {
        Ok(poll) => vec![
            Check::pass(names::PORTAL, format!("{url} answered{via}")),
            tls_ok(),
            Check::pass(
                names::REMOTE_ID,
                format!(
                    "remote ID {} accepted; {} command(s) waiting (not consumed: the portal \
                     delivers them again until the connector acknowledges them)",
                    client.remote_id_hint(),
                    poll.commands.len()
                ),
            ),
        ],
        Err(e @ PortalError::Unauthorized { .. }) => vec![
            Check::pass(names::PORTAL, format!("{url} answered{via}")),
            tls_ok(),
            Check::fail(
                names::REMOTE_ID,
                e.to_string(),
                "copy this connector's remote ID from the portal into portal.remote_id \
                 (or the SCCM_CONNECTOR_REMOTE_ID environment variable)",
            ),
        ],
        Err(e @ (PortalError::Tls { .. } | PortalError::PinMismatch { .. })) => vec![
            Check::pass(names::PORTAL, format!("{url} accepted a connection{via}")),
            Check::fail(
                names::TLS,
                e.to_string(),
                "trust the portal's CA: install it in the machine's certificate store or set \
                 portal.tls.ca_bundle; if pins are configured, update portal.tls.spki_sha256_pins",
            ),
            Check::skipped(names::REMOTE_ID, "no TLS session"),
        ],
        Err(e @ (PortalError::ProxyAuth | PortalError::Proxy { .. })) => vec![
            Check::fail(
                names::PORTAL,
                e.to_string(),
                "check portal.proxy (url, username; the password in SCCM_CONNECTOR_PROXY_PASSWORD) \
                 and that the proxy allows CONNECT to the portal",
            ),
            Check::skipped(names::TLS, "the portal is not reachable"),
            Check::skipped(names::REMOTE_ID, "the portal is not reachable"),
        ],
        Err(e @ (PortalError::Connect { .. } | PortalError::Timeout { .. })) => vec![
            Check::fail(
                names::PORTAL,
                format!("{url}{via}: {e}"),
                if config.portal.proxy.is_some() {
                    "check portal.base_url, and that the proxy can reach the portal"
                } else {
                    "check portal.base_url, DNS and the firewall; if the portal is only \
                     reachable through a proxy, configure [portal.proxy]"
                },
            ),
            Check::skipped(names::TLS, "the portal is not reachable"),
            Check::skipped(names::REMOTE_ID, "the portal is not reachable"),
        ],
        Err(e) => vec![
            Check::fail(
                names::PORTAL,
                format!("{url} answered, but not as the portal's API: {e}"),
                "check that portal.base_url is the portal's connector API root \
                 (…/api/connector/v1/)",
            ),
            Check::skipped(names::TLS, "the portal's answer was unusable"),
            Check::skipped(names::REMOTE_ID, "the portal's answer was unusable"),
        ],
    }
}

/// The doctor's scripts: built like every production step, checked by the same checker.
fn powershell_probe() -> Script {
    let mut b = ScriptBuilder::new("doctor-powershell");
    b.line("$result = @{ ok = $true }");
    b.finish()
}

fn module_probe(console_path: Option<&str>) -> Result<Script, String> {
    let mut b = ScriptBuilder::new("doctor-module");
    match console_path {
        Some(path) => {
            b.input("ConsolePath", path).map_err(|e| e.to_string())?;
        }
        None => {
            b.input("Parent", "..").map_err(|e| e.to_string())?;
        }
    }
    b.input("Property", "Name").map_err(|e| e.to_string())?;
    if console_path.is_none() {
        b.comment("The console's bin folder: the parent of SMS_ADMIN_UI_PATH (bin\\i386).");
        b.line("$ConsolePath = Join-Path -Path $env:SMS_ADMIN_UI_PATH -ChildPath $Parent");
    }
    b.open("if (-not (Get-Module -Name 'ConfigurationManager'))")
        .line("Import-Module -Name (Join-Path -Path $ConsolePath -ChildPath 'ConfigurationManager.psd1')")
        .close()
        .line("$drives = @(Get-PSDrive -PSProvider 'CMSite' -ErrorAction 'SilentlyContinue' | Select-Object -ExpandProperty $Property)")
        .line("$result = @{ ok = $true; console = $ConsolePath; drives = $drives }");
    Ok(b.finish())
}

fn site_probe(site_code: &str, console_path: &str, access: &SiteAccess) -> Result<Script, String> {
    let mut b = ScriptBuilder::new("doctor-site");
    b.input("Probe", "sccm-connector doctor probe")
        .map_err(|e| e.to_string())?;
    connect(&mut b, site_code, console_path, access).map_err(|e| e.to_string())?;
    b.line("$found = @(Get-CMApplication -Name $Probe -Fast)")
        .line("$result = @{ ok = $true; site = $SiteCode; probe = $found.Count }");
    Ok(b.finish())
}

fn failure_text(run: &StepRun) -> String {
    run.result
        .object
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("the script reported failure without an error")
        .to_string()
}

async fn powershell_checks(config: &Config, site: &SiteOptions) -> Vec<Check> {
    let mut ps = config.powershell.clone();
    // The doctor's scripts go to the system temp directory, never into the spool.
    ps.scratch_dir = None;
    let program = ps.program.display().to_string();
    let mut checks = Vec::new();
    let skip_rest = |checks: &mut Vec<Check>, because: &str| {
        for name in [names::MODULE, names::SITE] {
            if !checks.iter().any(|c: &Check| c.name == name) {
                checks.push(Check::skipped(name, because));
            }
        }
    };
    let mut runner = match Runner::new(ps) {
        Ok(runner) => runner,
        Err(e) => {
            checks.push(Check::fail(
                names::POWERSHELL,
                e.to_string(),
                "fix [powershell] as the message says",
            ));
            skip_rest(&mut checks, "PowerShell does not start");
            return checks;
        }
    };
    match runner.run(&powershell_probe()).await {
        Ok(run) if run.result.ok() => checks.push(Check::pass(
            names::POWERSHELL,
            format!("{program} ran a script in {} ms", run.duration.as_millis()),
        )),
        Ok(run) => checks.push(Check::fail(
            names::POWERSHELL,
            format!("{program} ran the probe but it failed: {}", failure_text(&run)),
            "run the probe by hand in that PowerShell; check powershell.args and the execution policy",
        )),
        Err(e @ RunError::Spawn { .. }) => checks.push(Check::fail(
            names::POWERSHELL,
            e.to_string(),
            "set powershell.program to the full path of powershell.exe \
             (C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe)",
        )),
        Err(e) => checks.push(Check::fail(
            names::POWERSHELL,
            format!("{program}: {e}"),
            "check powershell.program and powershell.args (they must accept -File SCRIPT)",
        )),
    }
    if checks.iter().any(|c| c.mark == Mark::Fail) {
        runner.shutdown().await;
        skip_rest(&mut checks, "PowerShell does not start");
        return checks;
    }
    let module = match module_probe(site.console_path.as_deref()) {
        Ok(script) => runner.run(&script).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let module_hint = "install the Configuration Manager console on this machine (it sets \
                       SMS_ADMIN_UI_PATH for new processes: restart the service after \
                       installing), or pass --console-path with the console's bin folder";
    let (console, drives) = match module {
        Ok(run) if run.result.ok() => {
            let console = run
                .result
                .object
                .get("console")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string();
            let drives: Vec<String> = match run.result.object.get("drives") {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect(),
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            };
            checks.push(Check::pass(
                names::MODULE,
                format!("imported from {console}"),
            ));
            (console, drives)
        }
        Ok(run) => {
            checks.push(Check::fail(names::MODULE, failure_text(&run), module_hint));
            runner.shutdown().await;
            skip_rest(&mut checks, "the module is not available");
            return checks;
        }
        Err(e) => {
            checks.push(Check::fail(names::MODULE, e, module_hint));
            runner.shutdown().await;
            skip_rest(&mut checks, "the module is not available");
            return checks;
        }
    };
    let site_code = site.site_code.clone().or_else(|| drives.first().cloned());
    let Some(site_code) = site_code else {
        checks.push(Check::fail(
            names::SITE,
            "importing the module created no site drive and no --site-code was given",
            "pass --site-code with the site's code (and set powershell.provider_machine to the \
             SMS Provider if it is not this machine)",
        ));
        runner.shutdown().await;
        return checks;
    };
    let site_run = match site_probe(&site_code, &console, &config.access) {
        Ok(script) => runner.run(&script).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let provider = config
        .access
        .provider_machine
        .clone()
        .unwrap_or_else(|| "this machine".into());
    let site_hint = format!(
        "check the site code and that the SMS Provider ({provider}) is reachable and grants the \
         connector's account a ConfigMgr role (Application Administrator); set \
         powershell.provider_machine if the provider is another machine"
    );
    match site_run {
        Ok(run) if run.result.ok() => checks.push(Check::pass(
            names::SITE,
            format!("{site_code}: answered a read-only query"),
        )),
        Ok(run) => checks.push(Check::fail(
            names::SITE,
            format!("{site_code}: {}", failure_text(&run)),
            site_hint,
        )),
        Err(e) => checks.push(Check::fail(
            names::SITE,
            format!("{site_code}: {e}"),
            site_hint,
        )),
    }
    runner.shutdown().await;
    checks
}

fn share_check(config: &Config) -> Check {
    let mut written = Vec::new();
    let mut failures = Vec::new();
    for root in config.shares.allowed_roots() {
        let local: PathBuf = config.shares.to_local(root);
        match probe_write(&local) {
            Ok(()) => written.push(format!("{root} ({})", local.display())),
            Err(e) => failures.push((root.clone(), local, e)),
        }
    }
    if failures.is_empty() {
        return Check::pass(
            names::SHARES,
            format!("created and removed a file in {}", written.join(", ")),
        );
    }
    let detail = failures
        .iter()
        .map(|(root, local, e)| format!("{root} ({}): {e}", local.display()))
        .collect::<Vec<_>>()
        .join("; ");
    let places = failures
        .iter()
        .map(|(_, local, _)| local.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Check::fail(
        names::SHARES,
        format!("cannot write: {detail}"),
        format!(
            "give the connector's account Modify rights (share and NTFS) on {places}, or fix \
             shares.allowed_roots / shares.map"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_marks_and_hints() {
        let report = Report {
            checks: vec![
                Check::pass(names::CONFIG, "c.toml loaded"),
                Check::warn(names::TLS, "plain HTTP", "use https"),
                Check::fail(names::SHARES, "denied", "grant Modify"),
                Check::skipped(names::SITE, "no module"),
            ],
        };
        assert!(!report.passed());
        assert_eq!(
            report.to_string(),
            "✔ configuration valid: c.toml loaded\n\
             ! TLS valid: plain HTTP\n    fix: use https\n\
             ✖ share writable: denied\n    fix: grant Modify\n\
             - site drive reachable: not checked: no module\n\
             1 check(s) failed, 1 warning(s)\n"
        );
    }

    #[test]
    fn the_probes_pass_the_script_checker() {
        for script in [
            powershell_probe(),
            module_probe(None).expect("a script"),
            module_probe(Some("C:\\Console\\bin")).expect("a script"),
            site_probe("PS1", "C:\\Console\\bin", &SiteAccess::default()).expect("a script"),
        ] {
            crate::powershell::verify::verify_script(
                script.bytes(),
                &crate::powershell::verify::Policy {
                    commands: crate::powershell::script::COMMANDS,
                    constants: crate::powershell::script::CONSTANTS,
                },
            )
            .unwrap_or_else(|v| panic!("{}: {v}", script.step));
        }
    }
}
