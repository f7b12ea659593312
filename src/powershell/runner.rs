//! Running step scripts in PowerShell (or anything started the same way, like the site simulator).
//!
//! Two modes:
//! - **per step**: `<program> <args…> -File <script.ps1>`, one process per step;
//! - **session**: one long-lived host per job, `<program> <args…> -File <session-host.ps1>
//!   <token>`, which runs each step script (`& <script.ps1>`) in the same session, so the
//!   ConfigurationManager module is imported once per job instead of once per step. Each request
//!   is a line `RUN <path>`; each step's output ends with a line carrying the session's random
//!   token and the step's exit code, which no step output can forge. A dead or hung host is
//!   replaced transparently: one found dead before a step is replaced before the step is sent;
//!   one that dies during a step (its output ends without the end marker) is replaced and the
//!   step re-run once in the new host, within the step's timeout — safe, because every step
//!   checks before it acts — and only a second death fails the attempt (retryably). A step that
//!   hangs past its timeout is not re-run: the host is killed with its tree, the attempt fails
//!   retryably, and a new host serves the next step.
//!
//! In both modes scripts are written (UTF-8 with BOM, byte-exact) into a private directory
//! (mode 0700 on Unix, removed with the runner), verified by [`verify_script`] before anything is
//! spawned, and removed after their step. stdout and stderr are drained concurrently (a chatty
//! child cannot deadlock), capped in memory, and a step that outlives its timeout has its whole
//! process tree killed (a process group on Unix, a job object on Windows).

use super::output::{self, OutputError, StepResult};
use super::script::{COMMANDS, CONSTANTS, Script};
use super::verify::{Policy, Violation, verify_script};
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::Mutex;

/// Prefix of the private directory each runner writes its scripts into (swept at daemon start).
pub const SCRIPT_DIR_PREFIX: &str = "sccm-connector-scripts-";

/// At most this much of a step's stdout or stderr is kept in memory.
const OUTPUT_CAP: usize = 8 << 20;

/// How steps are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    PerStep,
    Session,
}

/// The PowerShell to start, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerShellConfig {
    /// `powershell.exe` in production; the site simulator in tests and the demo.
    pub program: PathBuf,
    /// Arguments before `-File <script>`.
    pub args: Vec<String>,
    pub mode: RunMode,
    /// A step still running after this is killed, with its process tree.
    pub step_timeout: Duration,
    /// Where the private script directory is created (default: the system temp directory).
    pub scratch_dir: Option<PathBuf>,
}

impl Default for PowerShellConfig {
    fn default() -> Self {
        PowerShellConfig {
            program: PathBuf::from("powershell.exe"),
            args: [
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
            ]
            .map(String::from)
            .to_vec(),
            mode: RunMode::Session,
            step_timeout: Duration::from_secs(30 * 60),
            scratch_dir: None,
        }
    }
}

/// A step that ran to a result (which may be `ok: false`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub result: StepResult,
    pub exit_code: i32,
    /// What the host wrote to stderr while the step ran (capped).
    pub stderr: String,
    pub duration: Duration,
}

/// Why a step did not produce a usable result.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("the script failed the safety check and was not run: {0}")]
    Unsafe(#[from] Violation),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot write the script file {path}: {source}")]
    Scratch {
        path: String,
        source: std::io::Error,
    },
    #[error("the step did not finish within {seconds} s and was killed with its process tree{}", stderr_suffix(.stderr))]
    Timeout { seconds: u64, stderr: String },
    #[error("PowerShell exited without a result ({how}){}", stderr_suffix(.stderr))]
    Crashed { how: String, stderr: String },
    #[error("unusable output: {error}; output began: {head:?}{}", stderr_suffix(.stderr))]
    Garbage {
        error: OutputError,
        head: String,
        stderr: String,
    },
    #[error("I/O with PowerShell failed: {0}")]
    Io(#[from] std::io::Error),
}

fn stderr_suffix(stderr: &str) -> String {
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr: {tail}")
    }
}

impl RunError {
    /// Whether another attempt may succeed. A script that fails the safety check, or a program
    /// that does not exist or may not be executed, will not get better by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::Unsafe(_) => false,
            RunError::Spawn { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            _ => true,
        }
    }
}

/// The session host, as run by Windows PowerShell. Fixed text: no outside value is ever in it.
pub const SESSION_HOST_SCRIPT: &str =
    "\u{FEFF}# sccm-connector session host: runs one generated step script per request, in this one
# session, so the ConfigurationManager module is imported once per job. Request: a line
# 'RUN <script path>'. Reply: the script's output, then '<<<sccm-connector:<token>:exit=<code>>>>'.
param([Parameter(Mandatory = $true)][string]$Token)
$ErrorActionPreference = 'Continue'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false
[Console]::InputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false
while ($true) {
    $request = [Console]::In.ReadLine()
    if ($null -eq $request) { break }
    if (-not $request.StartsWith('RUN ')) { continue }
    $script = $request.Substring(4)
    $global:LASTEXITCODE = 0
    $code = 0
    try {
        & $script | ForEach-Object { [Console]::Out.WriteLine([string]$_) }
        $code = $LASTEXITCODE
    } catch {
        [Console]::Error.WriteLine($_.Exception.Message)
        $code = 1
    }
    [Console]::Out.WriteLine('<<<sccm-connector:' + $Token + ':exit=' + $code + '>>>')
    [Console]::Out.Flush()
}
";

/// The file name the session host is written under (the site simulator recognises it).
pub const SESSION_HOST_FILE: &str = "sccm-connector-session-host.ps1";

/// The end-of-step line of a session.
fn end_marker_prefix(token: &str) -> String {
    format!("<<<sccm-connector:{token}:exit=")
}

/// A long-lived host and its pipes.
struct Session {
    child: Box<dyn ChildWrapper>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    token: String,
}

/// Why a session host gave no reply to a step.
enum ReplyError {
    /// Its output ended without the end marker: the host died during the step.
    HostExited,
    /// Anything else (a malformed marker, a failed read).
    Broken(String),
}

/// How one attempt in a session failed.
enum SessionFailure {
    /// The host died during the step; the step may be re-run in a new host.
    HostDied { how: String, stderr: String },
    /// Final for this attempt (timeout, garbage, spawn failure…).
    Other(RunError),
}

impl From<RunError> for SessionFailure {
    fn from(error: RunError) -> Self {
        SessionFailure::Other(error)
    }
}

/// Runs step scripts; one per job (a session is per job).
pub struct Runner {
    config: PowerShellConfig,
    scratch: tempfile::TempDir,
    counter: u64,
    session: Option<Session>,
    /// Hosts started so far (for tests and diagnostics).
    hosts_started: u64,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .field("hosts_started", &self.hosts_started)
            .finish()
    }
}

fn spawn(
    config: &PowerShellConfig,
    file: &Path,
    extra: &[&str],
    stdin: bool,
) -> Result<Box<dyn ChildWrapper>, RunError> {
    let mut command = tokio::process::Command::new(&config.program);
    command
        .args(&config.args)
        .arg("-File")
        .arg(file)
        .args(extra)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = CommandWrap::from(command);
    #[cfg(unix)]
    command.wrap(process_wrap::tokio::ProcessGroup::leader());
    #[cfg(windows)]
    command.wrap(process_wrap::tokio::JobObject);
    command.wrap(KillOnDrop);
    command.spawn().map_err(|source| RunError::Spawn {
        program: config.program.display().to_string(),
        source,
    })
}

/// Reads `reader` to its end, keeping at most [`OUTPUT_CAP`] bytes.
async fn drain(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn head(bytes: &[u8]) -> String {
    lossy(&bytes[..bytes.len().min(200)])
}

impl Runner {
    /// A runner with its own private script directory.
    pub fn new(config: PowerShellConfig) -> Result<Runner, RunError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(SCRIPT_DIR_PREFIX);
        let scratch = match &config.scratch_dir {
            Some(dir) => std::fs::create_dir_all(dir).and_then(|()| builder.tempdir_in(dir)),
            None => builder.tempdir(),
        }
        .map_err(|source| RunError::Scratch {
            path: "(temporary directory)".into(),
            source,
        })?;
        Ok(Runner {
            config,
            scratch,
            counter: 0,
            session: None,
            hosts_started: 0,
        })
    }

    pub fn config(&self) -> &PowerShellConfig {
        &self.config
    }

    /// Host processes started so far (per-step mode: one per step).
    pub fn hosts_started(&self) -> u64 {
        self.hosts_started
    }

    /// Verifies `script`, then runs it in the configured mode.
    pub async fn run(&mut self, script: &Script) -> Result<StepRun, RunError> {
        verify_script(
            script.bytes(),
            &Policy {
                commands: COMMANDS,
                constants: CONSTANTS,
            },
        )?;
        self.counter += 1;
        let path = self
            .scratch
            .path()
            .join(format!("{:06}-{}.ps1", self.counter, script.step));
        tokio::fs::write(&path, script.bytes())
            .await
            .map_err(|source| RunError::Scratch {
                path: path.display().to_string(),
                source,
            })?;
        let outcome = match self.config.mode {
            RunMode::PerStep => self.run_process(&path).await,
            RunMode::Session => self.run_in_session(&path).await,
        };
        let _ = tokio::fs::remove_file(&path).await;
        outcome
    }

    async fn run_process(&mut self, path: &Path) -> Result<StepRun, RunError> {
        let started = Instant::now();
        let mut child = spawn(&self.config, path, &[], false)?;
        self.hosts_started += 1;
        let stdout = child.stdout().take().map(|s| tokio::spawn(drain(s)));
        let stderr = child.stderr().take().map(|s| tokio::spawn(drain(s)));
        let status = tokio::time::timeout(self.config.step_timeout, child.wait()).await;
        let collect = |task: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            match task {
                Some(task) => task.await.unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let status = match status {
            Ok(status) => status?,
            Err(_) => {
                // Kill the whole tree; the drains end when the last holder of the pipes dies.
                let _ = child.start_kill();
                let _ = child.wait().await;
                let stderr = lossy(&collect(stderr).await);
                drop(collect(stdout).await);
                return Err(RunError::Timeout {
                    seconds: self.config.step_timeout.as_secs(),
                    stderr,
                });
            }
        };
        let stdout = collect(stdout).await;
        let stderr = lossy(&collect(stderr).await);
        let Some(exit_code) = status.code() else {
            return Err(RunError::Crashed {
                how: format!("terminated: {status}"),
                stderr,
            });
        };
        if exit_code != 0 && exit_code != 1 {
            return Err(RunError::Crashed {
                how: format!("exit code {exit_code}"),
                stderr,
            });
        }
        let result = output::parse(&stdout, exit_code).map_err(|error| RunError::Garbage {
            error,
            head: head(&stdout),
            stderr: stderr.clone(),
        })?;
        Ok(StepRun {
            result,
            exit_code,
            stderr,
            duration: started.elapsed(),
        })
    }

    async fn start_session(&mut self) -> Result<(), RunError> {
        let host = self.scratch.path().join(SESSION_HOST_FILE);
        if !host.exists() {
            tokio::fs::write(&host, SESSION_HOST_SCRIPT)
                .await
                .map_err(|source| RunError::Scratch {
                    path: host.display().to_string(),
                    source,
                })?;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut child = spawn(&self.config, &host, &[&token], true)?;
        self.hosts_started += 1;
        let (Some(stdin), Some(stdout), Some(stderr_pipe)) = (
            child.stdin().take(),
            child.stdout().take(),
            child.stderr().take(),
        ) else {
            return Err(RunError::Crashed {
                how: "the host's pipes are missing".into(),
                stderr: String::new(),
            });
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut reader = stderr_pipe;
            let mut buf = [0u8; 8 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().await;
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        });
        self.session = Some(Session {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
            token,
        });
        Ok(())
    }

    /// Whether the current host is alive (exited hosts are replaced before the next step).
    fn session_alive(&mut self) -> bool {
        match &mut self.session {
            Some(session) => matches!(session.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    async fn send(&mut self, path: &Path) -> Result<(), std::io::Error> {
        let session = self
            .session
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        session.stderr.lock().await.clear();
        let request = format!("RUN {}\n", path.display());
        session.stdin.write_all(request.as_bytes()).await?;
        session.stdin.flush().await
    }

    /// Runs a step in the session host. A host that dies during the step (its output ends
    /// without the end marker) is replaced and the step run once more, within the step's time
    /// budget — safe, as every step checks before it acts; a second death is a retryable
    /// [`RunError::Crashed`]. A step that times out is not re-run: its host is killed (with its
    /// tree) and replaced before the next step.
    async fn run_in_session(&mut self, path: &Path) -> Result<StepRun, RunError> {
        let started = Instant::now();
        let deadline = started + self.config.step_timeout;
        let how = match self.session_attempt(path, started, deadline).await {
            Ok(run) => return Ok(run),
            Err(SessionFailure::Other(error)) => return Err(error),
            Err(SessionFailure::HostDied { how, stderr }) => {
                tracing::warn!(
                    script = %path.display(),
                    stderr = %stderr,
                    "{how}; replacing the host and re-running the step once"
                );
                how
            }
        };
        match self.session_attempt(path, started, deadline).await {
            Ok(run) => Ok(run),
            Err(SessionFailure::Other(error)) => Err(error),
            Err(SessionFailure::HostDied { how: again, stderr }) => Err(RunError::Crashed {
                how: format!("{how}; the host was replaced and the step re-run once, and {again}"),
                stderr,
            }),
        }
    }

    /// One attempt of a step in the session host (a dead host is replaced first).
    async fn session_attempt(
        &mut self,
        path: &Path,
        started: Instant,
        deadline: Instant,
    ) -> Result<StepRun, SessionFailure> {
        if !self.session_alive() {
            self.kill_session().await;
            self.start_session().await?;
        }
        if self.send(path).await.is_err() {
            // The host died between steps: replace it and send again, transparently.
            self.kill_session().await;
            self.start_session().await?;
            self.send(path).await.map_err(RunError::Io)?;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let reply = tokio::time::timeout(remaining, self.read_reply()).await;
        let stderr = match &self.session {
            Some(session) => lossy(&session.stderr.lock().await),
            None => String::new(),
        };
        match reply {
            Err(_) => {
                self.kill_session().await;
                Err(SessionFailure::Other(RunError::Timeout {
                    seconds: self.config.step_timeout.as_secs(),
                    stderr,
                }))
            }
            Ok(Err(ReplyError::HostExited)) => {
                self.kill_session().await;
                Err(SessionFailure::HostDied {
                    how: "the session host exited during the step".into(),
                    stderr,
                })
            }
            Ok(Err(ReplyError::Broken(how))) => {
                self.kill_session().await;
                Err(SessionFailure::Other(RunError::Crashed { how, stderr }))
            }
            Ok(Ok((stdout, exit_code))) => {
                let result =
                    output::parse(&stdout, exit_code).map_err(|error| RunError::Garbage {
                        error,
                        head: head(&stdout),
                        stderr: stderr.clone(),
                    })?;
                Ok(StepRun {
                    result,
                    exit_code,
                    stderr,
                    duration: started.elapsed(),
                })
            }
        }
    }

    /// Reads one step's output up to the end marker: `(stdout, exit code)`, or how it failed.
    async fn read_reply(&mut self) -> Result<(Vec<u8>, i32), ReplyError> {
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| ReplyError::Broken("no session".into()))?;
        let marker = end_marker_prefix(&session.token);
        let mut stdout = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = session
                .stdout
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| ReplyError::Broken(e.to_string()))?;
            if n == 0 {
                return Err(ReplyError::HostExited);
            }
            let text = String::from_utf8_lossy(&line);
            let trimmed = text
                .trim_end_matches(['\r', '\n'])
                .trim_start_matches('\u{FEFF}');
            if let Some(rest) = trimmed.strip_prefix(&marker) {
                let code = rest.strip_suffix(">>>").and_then(|c| c.parse::<i32>().ok());
                return code.map(|c| (stdout, c)).ok_or_else(|| {
                    ReplyError::Broken(format!("malformed end marker {trimmed:?}"))
                });
            }
            if stdout.len() < OUTPUT_CAP {
                stdout.extend_from_slice(&line);
            }
        }
    }

    async fn kill_session(&mut self) {
        if let Some(mut session) = self.session.take() {
            let _ = session.child.start_kill();
            let _ = session.child.wait().await;
        }
    }

    /// Ends the session host (if any) by closing its input, killing it if it lingers.
    pub async fn shutdown(&mut self) {
        if let Some(mut session) = self.session.take() {
            let _ = session.stdin.shutdown().await;
            drop(session.stdin);
            let wait = session.child.wait();
            if tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .is_err()
            {
                let _ = session.child.start_kill();
                let _ = session.child.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `ERROR` and `MISSING` node tree-sitter-powershell finds in `text`, and the kinds of
    /// all nodes.
    fn parse(text: &str) -> (Vec<String>, Vec<&'static str>) {
        let mut parser = tree_sitter::Parser::new();
        parser
            .set_language(&tree_sitter_powershell::LANGUAGE.into())
            .expect("tree-sitter-powershell loads");
        let tree = parser.parse(text, None).expect("a tree");
        let (mut problems, mut kinds) = (Vec::new(), Vec::new());
        let mut cursor = tree.walk();
        'walk: loop {
            let node = cursor.node();
            kinds.push(node.kind());
            if node.is_error() || node.is_missing() {
                let at = node.start_position();
                problems.push(format!(
                    "{} `{}` at {}:{}",
                    if node.is_missing() {
                        "MISSING"
                    } else {
                        "ERROR"
                    },
                    node.kind(),
                    at.row + 1,
                    at.column + 1
                ));
            }
            if cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    break 'walk;
                }
            }
        }
        (problems, kinds)
    }

    #[test]
    fn the_session_host_script_parses_without_error_or_missing_nodes() {
        let text = SESSION_HOST_SCRIPT
            .strip_prefix('\u{FEFF}')
            .expect("written with a BOM");
        let (problems, kinds) = parse(text);
        assert_eq!(problems, Vec::<String>::new(), "{text}");
        // It is read as the program it is: the param block, the loop, the try/catch, the call.
        for kind in [
            "param_block",
            "while_statement",
            "try_statement",
            "catch_clause",
            "command_invokation_operator",
        ] {
            assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
        }
        // The check itself sees a broken host: a lost closing brace, a lost quote.
        let (problems, _) = parse(&text.replacen("{ break }", "{ break ", 1));
        assert!(!problems.is_empty(), "a missing brace goes unnoticed");
        let (problems, _) = parse(&text.replacen("'RUN '", "'RUN ", 1));
        assert!(
            !problems.is_empty(),
            "an unterminated literal goes unnoticed"
        );
    }
}
