//! `sccm-connector sim powershell`: a PowerShell host that behaves like Windows PowerShell 5.1
//! with the ConfigurationManager module against a simulated site. The runner starts it exactly
//! as it starts `powershell.exe`:
//!
//! ```text
//! sccm-connector sim powershell --site DIR [--import-delay-ms N] [--faults FILE] [--fault RULE]…
//!     [--fault-seed N] -- -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -File X.ps1
//! ```
//!
//! With `-File <dir>/sccm-connector-session-host.ps1 <token>` (whose text must be exactly the
//! runner's [`SESSION_HOST_SCRIPT`]) it speaks the session protocol natively: one `RUN <path>`
//! request per stdin line, the script's output, then `<<<sccm-connector:<token>:exit=<code>>>>`.
//! The module, the drives, the location and the console encoding persist across a session's
//! scripts, as they do in one real PowerShell process.
//!
//! - `syntax`: tree-sitter-powershell → the interpreted subset (anything else is refused).
//! - `value`: values and PowerShell's conversions. `wildcard`: wildcard patterns.
//! - `interp`: the interpreter and the host session. `params`: signatures and binding.
//! - `commands`: built-in cmdlets. `cm`: ConfigMgr cmdlets and CIM. `json`: ConvertTo-Json.

pub mod cm;
pub mod commands;
pub mod interp;
pub mod json;
pub mod params;
pub mod syntax;
pub mod value;
pub mod wildcard;

use crate::powershell::runner::{SESSION_HOST_FILE, SESSION_HOST_SCRIPT};
use crate::sim::site::Site;
use crate::sim::site::faults::FaultPlan;
use clap::Parser;
use interp::{Host, Mode, Outcome, ScriptFile};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

/// `sccm-connector sim powershell` options (before `--`).
#[derive(Debug, Parser)]
#[command(name = "sccm-connector sim powershell")]
struct PsCli {
    /// The simulated site's directory (`sim site --site DIR init`).
    #[arg(long, value_name = "DIR")]
    site: PathBuf,
    /// How long `Import-Module ConfigurationManager` takes (once per host process);
    /// default: the site's `import_delay_ms`.
    #[arg(long, value_name = "MS")]
    import_delay_ms: Option<u64>,
    /// A fault plan file (JSON), in addition to the site's own `faults.json`.
    #[arg(long = "faults", value_name = "FILE")]
    faults: Option<PathBuf>,
    /// A fault rule: `CMDLET@N[,N…][+after]=KIND[:ARG]` or `CMDLET%P[+after]=KIND[:ARG]`.
    #[arg(long = "fault", value_name = "RULE")]
    fault: Vec<String>,
    /// Seeds the probabilistic fault rules.
    #[arg(long, value_name = "N")]
    fault_seed: Option<u64>,
    /// The powershell.exe arguments.
    #[arg(last = true, allow_hyphen_values = true)]
    powershell: Vec<OsString>,
}

/// What the powershell.exe arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerShellArgs {
    pub file: PathBuf,
    pub script_args: Vec<String>,
    pub execution_policy: Option<String>,
    pub non_interactive: bool,
}

/// Why the host cannot start (PowerShell's own complaints included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Script(String),
}

const SWITCHES: &[&str] = &[
    "NoLogo",
    "NoProfile",
    "NonInteractive",
    "NoExit",
    "Sta",
    "Mta",
];
const VALUED: &[&str] = &[
    "ExecutionPolicy",
    "File",
    "Command",
    "EncodedCommand",
    "InputFormat",
    "OutputFormat",
    "WindowStyle",
    "Version",
    "PSConsoleFile",
    "ConfigurationName",
];

fn canonical_flag(flag: &str) -> Result<&'static str, HostError> {
    let lower = flag.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "ep" | "ex" | "exec" => Some("ExecutionPolicy"),
        "f" => Some("File"),
        "c" => Some("Command"),
        "e" | "ec" | "enc" => Some("EncodedCommand"),
        "w" => Some("WindowStyle"),
        "nop" => Some("NoProfile"),
        "noni" => Some("NonInteractive"),
        "nol" => Some("NoLogo"),
        "noe" => Some("NoExit"),
        _ => None,
    };
    if let Some(a) = alias {
        return Ok(a);
    }
    let all: Vec<&'static str> = SWITCHES.iter().chain(VALUED).copied().collect();
    if let Some(exact) = all.iter().find(|n| n.eq_ignore_ascii_case(flag)) {
        return Ok(exact);
    }
    let matches: Vec<&'static str> = all
        .into_iter()
        .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
        .collect();
    match matches.as_slice() {
        [one] if !lower.is_empty() => Ok(one),
        _ => Err(HostError::Usage(format!(
            "Cannot process the command line: the parameter '-{flag}' is not recognised or is ambiguous."
        ))),
    }
}

/// Parses powershell.exe's command line (case-insensitive, `-` or `/`, abbreviations).
pub fn parse_powershell_args(args: &[String]) -> Result<PowerShellArgs, HostError> {
    let mut file = None;
    let mut script_args = Vec::new();
    let mut execution_policy = None;
    let mut non_interactive = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix('-').or_else(|| arg.strip_prefix('/')) else {
            return Err(HostError::Usage(format!(
                "The sccm-connector site simulator runs scripts only with -File; got the argument '{arg}'."
            )));
        };
        let flag = canonical_flag(flag)?;
        match flag {
            "NoLogo" | "NoProfile" | "Sta" | "Mta" => {}
            "NonInteractive" => non_interactive = true,
            "ExecutionPolicy" => {
                let value = iter.next().ok_or_else(|| {
                    HostError::Usage("Missing the argument for -ExecutionPolicy.".into())
                })?;
                let policies = [
                    "Bypass",
                    "Unrestricted",
                    "RemoteSigned",
                    "AllSigned",
                    "Restricted",
                    "Default",
                    "Undefined",
                ];
                let policy = policies
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(value))
                    .ok_or_else(|| {
                        HostError::Usage(format!(
                            "Invalid argument '{value}' to -ExecutionPolicy. Valid values are {}.",
                            policies.join(", ")
                        ))
                    })?;
                execution_policy = Some((*policy).to_string());
            }
            "File" => {
                let value = iter
                    .next()
                    .ok_or_else(|| HostError::Usage("Missing the argument for -File.".into()))?;
                file = Some(PathBuf::from(value));
                script_args.extend(iter.by_ref().cloned());
            }
            "InputFormat" | "OutputFormat" | "WindowStyle" => {
                iter.next();
            }
            other => {
                return Err(HostError::Usage(format!(
                    "The sccm-connector site simulator does not support powershell.exe -{other}; scripts run with -File."
                )));
            }
        }
    }
    let file = file.ok_or_else(|| {
        HostError::Usage(
            "No -File was given; the sccm-connector site simulator runs script files only.".into(),
        )
    })?;
    Ok(PowerShellArgs {
        file,
        script_args,
        execution_policy,
        non_interactive,
    })
}

/// Reads a script file: it must exist, end in `.ps1`, start with the UTF-8 BOM and be UTF-8.
pub fn load_script(path: &Path) -> Result<ScriptFile, HostError> {
    let display = path.display().to_string();
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ps1"))
    {
        return Err(HostError::Script(format!(
            "Processing -File '{display}' failed because the file does not have a '.ps1' extension. Specify a valid Windows PowerShell script file name, and then try again."
        )));
    }
    let bytes = std::fs::read(path).map_err(|_| {
        HostError::Script(format!(
            "The argument '{display}' to the -File parameter does not exist. Provide the path to an existing '.ps1' file as an argument to the -File parameter."
        ))
    })?;
    let Some(body) = bytes.strip_prefix(b"\xEF\xBB\xBF") else {
        return Err(HostError::Script(format!(
            "{display}: the script has no UTF-8 byte order mark. Windows PowerShell 5.1 would read it as ANSI (CP1252), where bytes inside UTF-8 characters become quotes and dashes; the site simulator refuses it."
        )));
    };
    let source = String::from_utf8(body.to_vec()).map_err(|e| {
        HostError::Script(format!(
            "{display}: the script is not valid UTF-8 after its byte order mark (at byte {}).",
            e.utf8_error().valid_up_to() + 3
        ))
    })?;
    let block = syntax::parse(&source).map_err(|e| {
        let line = source
            .split('\n')
            .nth(e.line.saturating_sub(1))
            .unwrap_or("")
            .trim_end_matches('\r');
        HostError::Script(format!(
            "At {display}:{} char:{}\r\n+ {line}\r\n+ {}~\r\n{}\r\n    + CategoryInfo          : ParserError: (:) [], ParseException\r\n    + FullyQualifiedErrorId : {}",
            e.line,
            e.column,
            " ".repeat(e.column.saturating_sub(1)),
            e.message,
            e.id
        ))
    })?;
    Ok(ScriptFile {
        path: display,
        source,
        block,
    })
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from((code & 0xFF) as u8)
}

fn load_faults(cli: &PsCli, site: &Site) -> Result<FaultPlan, String> {
    let mut plan = FaultPlan::default();
    if site.faults_path().exists() {
        plan = plan.merge(FaultPlan::load(&site.faults_path()).map_err(|e| e.to_string())?);
    }
    if let Some(file) = &cli.faults {
        plan = plan.merge(FaultPlan::load(file).map_err(|e| e.to_string())?);
    }
    for rule in &cli.fault {
        plan.rules
            .push(FaultPlan::parse_rule(rule).map_err(|e| e.to_string())?);
    }
    if let Some(seed) = cli.fault_seed {
        plan.seed = seed;
    }
    Ok(plan)
}

/// Runs one script file in per-step mode; returns the process exit code.
pub fn run_file(host: &mut Host, path: &Path) -> i32 {
    let script = match load_script(path) {
        Ok(s) => Rc::new(s),
        Err(e) => {
            host.error_line(&e.to_string());
            return 1;
        }
    };
    match interp::run_script(host, Rc::clone(&script)) {
        Outcome::Exited(code) => code,
        Outcome::Failed(record) => {
            let text = record.display(&script);
            host.error_line(&text);
            1
        }
        Outcome::Fatal(_) => 1,
    }
}

/// Runs one `RUN <path>` request of a session; returns the step's exit code (`$LASTEXITCODE`).
pub fn run_in_session(host: &mut Host, path: &str) -> i32 {
    let file = Path::new(path);
    if !file.exists() {
        host.error_line(&format!(
            "The term '{path}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
        ));
        return 1;
    }
    let script = match load_script(file) {
        Ok(s) => Rc::new(s),
        Err(e) => {
            host.error_line(&e.to_string());
            return 1;
        }
    };
    match interp::run_script(host, script) {
        Outcome::Exited(code) => code,
        Outcome::Failed(record) => {
            // The host's catch block: [Console]::Error.WriteLine($_.Exception.Message)
            host.error_line(&record.message);
            1
        }
        Outcome::Fatal(_) => 1,
    }
}

/// Speaks the session protocol on stdin/stdout until stdin closes.
pub fn serve_session(host: &mut Host, token: &str, input: &mut dyn BufRead) {
    let marker = |code: i32| format!("<<<sccm-connector:{token}:exit={code}>>>");
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let request = text
            .trim_end_matches(['\r', '\n'])
            .trim_start_matches('\u{FEFF}');
        let Some(path) = request.strip_prefix("RUN ") else {
            continue;
        };
        let code = run_in_session(host, path);
        host.write_line(&marker(code));
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::from(1)
}

/// Entry point of `sccm-connector sim powershell` (arguments after `sim powershell`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("sccm-connector sim powershell")).chain(args);
    let cli = match PsCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let ps_args: Vec<String> = cli
        .powershell
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let ps = match parse_powershell_args(&ps_args) {
        Ok(ps) => ps,
        Err(e) => return fail(&e.to_string()),
    };
    let site = match Site::open(&cli.site) {
        Ok(site) => site,
        Err(e) => return fail(&format!("sccm-connector sim powershell: {e}")),
    };
    let plan = match load_faults(&cli, &site) {
        Ok(plan) => plan,
        Err(e) => return fail(&format!("sccm-connector sim powershell: {e}")),
    };
    if let Some(policy) = &ps.execution_policy
        && matches!(policy.as_str(), "Restricted" | "AllSigned")
    {
        return fail(&format!(
            "File {} cannot be loaded because running scripts is disabled on this system (execution policy {policy}). For more information, see about_Execution_Policies at https:/go.microsoft.com/fwlink/?LinkID=135170.",
            ps.file.display()
        ));
    }
    let delay = Duration::from_millis(cli.import_delay_ms.unwrap_or(site.config().import_delay_ms));
    let is_session = ps
        .file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case(SESSION_HOST_FILE));
    let mode = if is_session {
        Mode::Session
    } else {
        Mode::PerStep
    };
    let mut host = Host::new(
        site,
        plan,
        delay,
        mode,
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    );
    if !is_session {
        return exit_code(run_file(&mut host, &ps.file));
    }
    match std::fs::read(&ps.file) {
        Ok(bytes) if bytes == SESSION_HOST_SCRIPT.as_bytes() => {}
        Ok(_) => {
            return fail(&format!(
                "sccm-connector sim powershell: {} is not the runner's session host script (SESSION_HOST_SCRIPT); the simulator speaks only that protocol and refuses a changed host.",
                ps.file.display()
            ));
        }
        Err(e) => {
            return fail(&format!(
                "The argument '{}' to the -File parameter does not exist ({e}).",
                ps.file.display()
            ));
        }
    }
    let Some(token) = ps.script_args.first().filter(|t| !t.is_empty()) else {
        return fail(
            "Cannot process command because of one or more missing mandatory parameters: Token.",
        );
    };
    // The host script sets UTF-8 for both directions before its loop.
    host.encoding = interp::ConsoleEncoding::Utf8 { bom: false };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    serve_session(&mut host, token, &mut input);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests;
