//! `sccm-connector sim portal client MODE` (hidden): one transfer or poll by the connector's
//! portal client, in a process of its own, reporting what the engine would journal — one
//! `<what> <n>` line on stdout per event, flushed at once. The crash tests run it, SIGKILL it at
//! a chosen report and resume from what it reported; it is also a way to try a portal by hand.
//!
//! Inputs come from the environment:
//!
//! - always `PORTAL_URL` and `REMOTE_ID`; optional `CONNECT_TIMEOUT_SECONDS`,
//!   `READ_TIMEOUT_SECONDS`, `RETRY_ATTEMPTS`, `RETRY_INITIAL_MS`, `RETRY_MAX_MS` (otherwise the
//!   client's defaults). No proxy is configured: the proxy environment variables apply.
//! - `download`: `PKG_URL`, `PKG_SIZE`, `PKG_SHA256`, `DEST`, `FROM`, `CHECKPOINT_BYTES`;
//!   prints `durable <n>` after each durable checkpoint, then `downloaded <size>`.
//! - `upload`: `UPLOAD_ID`, `FILE`, `SIZE`, `SHA256`, `CHUNK`; prints `committed <n>` for each
//!   committed offset, then `uploaded <size>`.
//! - `poll`: prints `commands <n>`.
//!
//! Exit status 0 once done; 1 with the error on stderr otherwise (2: bad inputs).

use crate::portal::{Download, PortalClient, PortalConfig, Upload};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
enum DriveError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{0} is not a number: {1:?}")]
    NotANumber(&'static str, String),
    #[error("unknown mode {0:?} (download, upload or poll)")]
    Mode(String),
    #[error(transparent)]
    Config(#[from] crate::portal::ConfigError),
    #[error(transparent)]
    Portal(#[from] crate::portal::PortalError),
}

fn var(name: &'static str) -> Result<String, DriveError> {
    std::env::var(name).map_err(|_| DriveError::Missing(name))
}

fn number(name: &'static str) -> Result<u64, DriveError> {
    let text = var(name)?;
    text.parse().map_err(|_| DriveError::NotANumber(name, text))
}

fn optional(name: &'static str) -> Result<Option<u64>, DriveError> {
    match std::env::var(name) {
        Ok(_) => number(name).map(Some),
        Err(_) => Ok(None),
    }
}

fn report(what: &str, n: u64) {
    let mut out = std::io::stdout().lock();
    // A parent that stopped reading is not our concern: it kills us anyway.
    let _ = writeln!(out, "{what} {n}");
    let _ = out.flush();
}

fn config() -> Result<PortalConfig, DriveError> {
    let mut config = PortalConfig::new(var("PORTAL_URL")?, var("REMOTE_ID")?);
    if let Some(n) = optional("CONNECT_TIMEOUT_SECONDS")? {
        config.connect_timeout_seconds = n;
    }
    if let Some(n) = optional("READ_TIMEOUT_SECONDS")? {
        config.read_timeout_seconds = n;
    }
    if let Some(n) = optional("RETRY_ATTEMPTS")? {
        config.retry.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = optional("RETRY_INITIAL_MS")? {
        config.retry.initial_backoff_ms = n;
    }
    if let Some(n) = optional("RETRY_MAX_MS")? {
        config.retry.max_backoff_ms = n;
    }
    Ok(config)
}

/// What a mode needs, read before anything runs.
enum Job {
    Download(Download),
    Upload(Upload),
    Poll,
}

fn job(mode: &str) -> Result<Job, DriveError> {
    Ok(match mode {
        "download" => {
            let mut job = Download::new(
                var("PKG_URL")?,
                var("DEST")?,
                number("PKG_SIZE")?,
                var("PKG_SHA256")?,
            )
            .resume_from(number("FROM")?);
            job.checkpoint_bytes = number("CHECKPOINT_BYTES")?;
            job.checkpoint_interval = Duration::from_secs(3600);
            Job::Download(job)
        }
        "upload" => {
            let mut job = Upload::new(
                var("UPLOAD_ID")?,
                var("FILE")?,
                number("SIZE")?,
                var("SHA256")?,
            );
            job.chunk_size = number("CHUNK")?;
            Job::Upload(job)
        }
        "poll" => Job::Poll,
        other => return Err(DriveError::Mode(other.to_owned())),
    })
}

/// Entry point of `sccm-connector sim portal client MODE`.
pub fn main(mode: &str) -> ExitCode {
    let (config, job) = match config().and_then(|c| Ok((c, job(mode)?))) {
        Ok(inputs) => inputs,
        Err(e) => {
            eprintln!("sccm-connector sim portal client: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sccm-connector sim portal client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let client = PortalClient::new(&config)?;
        match job {
            Job::Download(job) => {
                let done = client.download(&job, |n| report("durable", n)).await?;
                report("downloaded", done.size);
            }
            Job::Upload(job) => {
                client.upload(&job, |n| report("committed", n)).await?;
                report("uploaded", job.size);
            }
            Job::Poll => {
                let poll = client.poll().await?;
                report("commands", poll.commands.len() as u64);
            }
        }
        Ok::<_, DriveError>(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sccm-connector sim portal client {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}
