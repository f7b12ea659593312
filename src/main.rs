//! The `sccm-connector` binary: parse the command line, run, map the result to an exit code.

use anyhow::{Context as _, bail};
use clap::Parser;
use sccm_connector::audit::{self, ExportMeta, Filter};
use sccm_connector::cli::{AuditCommand, Cli, CliCommand, ExportFormat, JournalArgs, SimCommand};
use sccm_connector::inspect::JournalSource;
use sccm_connector::plan;
use sccm_connector::powershell::push::SiteAccess;
use std::io::Write as _;
use std::process::ExitCode;

/// Logs go to stderr, human-readable, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Installs the stop signals' handlers at once (Ctrl-C, and SIGTERM where there is one) and
/// returns the future that resolves when one arrives. Installed before the daemon opens its
/// journal, so a stop asked for during start-up is a clean stop, not the signal's default death.
fn install_shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(windows)]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
        let mut ctrl_break = tokio::signal::windows::ctrl_break()?;
        let mut close = tokio::signal::windows::ctrl_close()?;
        let mut shutdown = tokio::signal::windows::ctrl_shutdown()?;
        Ok(async move {
            tokio::select! {
                _ = ctrl_c.recv() => {}
                _ = ctrl_break.recv() => {}
                _ = close.recv() => {}
                _ = shutdown.recv() => {}
            }
        })
    }
}

fn demo(dir: Option<std::path::PathBuf>) -> ExitCode {
    init_logging();
    let temp = match &dir {
        Some(_) => None,
        None => match tempfile::Builder::new()
            .prefix("sccm-connector-demo-")
            .tempdir()
        {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("sccm-connector demo: cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let path = dir
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .unwrap_or_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sccm-connector demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sccm_connector::demo::run(&path)) {
        Ok(summary) => {
            print!("{summary}");
            if temp.is_some() {
                println!("(a temporary directory, removed now: use --dir DIR to keep everything)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sccm-connector demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &std::path::Path) -> ExitCode {
    // Read while the process has one thread (Unix refuses later).
    let offset = sccm_connector::logging::local_offset();
    let config = match sccm_connector::config::Config::load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sccm-connector run: {e}");
            return ExitCode::from(2);
        }
    };
    // Flushes the log files when dropped, at the end of this function.
    let _logs = match sccm_connector::logging::init(&config.logging, offset) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("sccm-connector run: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sccm-connector run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = install_shutdown_signal()
            .map_err(|e| format!("cannot install the stop signal handlers: {e}"))?;
        sccm_connector::daemon::run(config, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sccm-connector run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `doctor`: the checklist on stdout; 0 when nothing failed, 1 otherwise.
fn doctor(
    config: &std::path::Path,
    site_code: Option<String>,
    console_path: Option<String>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sccm-connector doctor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let site = sccm_connector::doctor::SiteOptions {
        site_code,
        console_path,
    };
    let report = runtime.block_on(sccm_connector::doctor::run(config, &site));
    let _ = std::io::stdout().write_all(report.to_string().as_bytes());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `service …`: 0 done, 1 Windows refused, 2 not on Windows (or a bad configuration path).
fn service(action: sccm_connector::cli::ServiceCommand) -> ExitCode {
    use sccm_connector::cli::ServiceCommand;
    use sccm_connector::service::{Action, ServiceError, manage};
    let action = match action {
        ServiceCommand::Install { config } => Action::Install { config },
        ServiceCommand::Uninstall => Action::Uninstall,
        ServiceCommand::Start => Action::Start,
        ServiceCommand::Stop => Action::Stop,
    };
    match manage(&action) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e @ (ServiceError::Unsupported | ServiceError::Config { .. })) => {
            eprintln!("sccm-connector service: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sccm-connector service: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed pipe (`verify … | head`) is not worth a panic.
macro_rules! outp {
    ($($arg:tt)*) => {{
        let _ = std::io::stdout().write_all(format!($($arg)*).as_bytes());
    }};
}

macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = std::io::stdout().write_all(format!("{}\n", format!($($arg)*)).as_bytes());
    }};
}

fn journal_source(args: &JournalArgs) -> anyhow::Result<JournalSource> {
    match (&args.journal, &args.config) {
        (Some(dir), None) => Ok(JournalSource::Dir(dir.clone())),
        (None, Some(config)) => Ok(JournalSource::Config(config.clone())),
        _ => bail!("name the journal with exactly one of --journal DIR or --config FILE"),
    }
}

/// The arguments of `export`.
struct ExportArgs {
    journal: JournalArgs,
    format: ExportFormat,
    since: Option<String>,
    until: Option<String>,
    job: Vec<String>,
    signing_key: Option<std::path::PathBuf>,
    output: std::path::PathBuf,
}

/// `export`: the file is written beside its final name and renamed into place once complete.
fn export(args: ExportArgs) -> anyhow::Result<()> {
    use audit::time::{Bound, parse_instant};
    let source = journal_source(&args.journal)?;
    let since = args
        .since
        .as_deref()
        .map(|t| parse_instant(t, Bound::Since))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_instant(t, Bound::Until))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--until: {e}"))?;
    let key_path = match (&args.signing_key, &args.journal.config) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(config)) => sccm_connector::config::AuditConfig::from_file(config)?.signing_key,
        (None, None) => None,
    };
    let signer = key_path
        .as_deref()
        .map(audit::sign::read_signing_key)
        .transpose()?;
    let journal_dir = source.journal_dir()?;
    let parent = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if let (Ok(out_dir), Ok(journal)) = (parent.canonicalize(), journal_dir.canonicalize())
        && out_dir.starts_with(&journal)
    {
        bail!(
            "{}: an export is never written inside the journal directory {}",
            args.output.display(),
            journal.display()
        );
    }
    let inspection = sccm_connector::inspect::open(&source)?;
    let journaled_jobs: Vec<uuid::Uuid> = if args.job.is_empty() {
        Vec::new()
    } else {
        let journal = inspection.store.journal();
        let pruned = journal.pruned_jobs()?.into_iter().map(|j| j.job);
        journal
            .jobs()?
            .into_iter()
            .map(|j| j.job)
            .chain(pruned)
            .collect()
    };
    let mut jobs = Vec::new();
    for id in &args.job {
        // A job id, else a portal command id (which may look like a uuid too).
        let job = uuid::Uuid::parse_str(id)
            .ok()
            .filter(|u| journaled_jobs.contains(u))
            .or_else(|| inspection.store.job_for_command(id).map(|j| j.0))
            .with_context(|| format!("--job {id}: no job has this id or command id"))?;
        jobs.push(job);
    }
    let filter = Filter { since, until, jobs };
    let meta = ExportMeta {
        source: inspection.source_dir.display().to_string(),
        exported_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok()),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".sccm-connector-export-")
        .tempfile_in(&parent)
        .with_context(|| format!("cannot create a file in {}", parent.display()))?;
    let journal = inspection.store.journal();
    let summary = {
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        let summary = match args.format {
            ExportFormat::Jsonl => {
                audit::write_jsonl(journal, &filter, &meta, &mut out, signer.as_ref())?
            }
            ExportFormat::Csv => {
                audit::write_csv(journal, &filter, &meta, &mut out, signer.as_ref())?
            }
            ExportFormat::Html => audit::write_html(journal, &filter, &meta, &mut out)?,
        };
        out.flush().context("cannot write the export")?;
        summary
    };
    file.as_file()
        .sync_all()
        .context("cannot write the export")?;
    file.persist(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    outln!(
        "exported records {}..={} to {}: {} line(s), {} shown, {} redacted, {} left out by the filter, {} pruned from the journal",
        summary.first_seq,
        summary.last_seq,
        args.output.display(),
        summary.count,
        summary.full,
        summary.redacted,
        summary.omitted,
        summary.pruned
    );
    outln!("chain base {}", summary.chain_base);
    outln!("chain head {}", summary.head);
    match (args.format, summary.signed) {
        (ExportFormat::Html, _) => {
            if signer.is_some() {
                outln!(
                    "(HTML exports are for reading and are not signed: sign a jsonl or csv export)"
                );
            }
        }
        (_, true) => outln!("signed (Ed25519)"),
        (_, false) => outln!("not signed"),
    }
    Ok(())
}

fn print_failure(failure: &audit::VerifyFailure) {
    outln!("{failure}");
    outln!(
        "verification FAILED: {} record(s) valid before the first bad one",
        failure.valid
    );
}

/// `verify`: 0 valid, 1 a bad record (named), 2 nothing could be checked.
fn verify(
    file: Option<std::path::PathBuf>,
    source: Option<JournalSource>,
    public_key: Option<std::path::PathBuf>,
) -> ExitCode {
    let mut export = None;
    if let Some(file) = file {
        let key = match public_key
            .as_deref()
            .map(audit::sign::read_verifying_key)
            .transpose()
        {
            Ok(key) => key,
            Err(e) => {
                eprintln!("sccm-connector verify: {e}");
                return ExitCode::from(2);
            }
        };
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("sccm-connector verify: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        match audit::verify_export(&bytes, key.as_ref()) {
            Ok(report) => {
                outp!("{report}");
                export = Some(report);
            }
            Err(failure) => {
                print_failure(&failure);
                return ExitCode::FAILURE;
            }
        }
    } else if public_key.is_some() {
        eprintln!(
            "sccm-connector verify: --public-key checks an export's signature: name the export FILE"
        );
        return ExitCode::from(2);
    }
    let Some(source) = source else {
        return ExitCode::SUCCESS;
    };
    let outcome = match &export {
        Some(report) => audit::journal_holds_export(&source, report),
        None => audit::verify_journal(&source),
    };
    match outcome {
        Ok(report) => {
            if let Some(e) = &export {
                outln!(
                    "the journal holds the export: its record {} has the export's head hash",
                    e.last_seq
                );
                outln!("journal: {}", report.to_string().trim_end());
            } else {
                outp!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(Ok(failure)) => {
            print_failure(&failure);
            ExitCode::FAILURE
        }
        Err(Err(e)) => {
            eprintln!("sccm-connector verify: {e}");
            ExitCode::from(2)
        }
    }
}

/// `jobs` and `replay`: their output on stdout; 2 for what the user asked wrong, 1 otherwise.
fn read_only(name: &str, outcome: Result<String, sccm_connector::ops::OpsError>) -> ExitCode {
    match outcome {
        Ok(text) => {
            // A closed pipe (`jobs | head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let code = error.exit_code();
            // The error's text already names its causes.
            eprintln!("sccm-connector {name}: {error}");
            ExitCode::from(code)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        CliCommand::Run {
            config,
            service: true,
        } => match sccm_connector::service::run_as_service(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sccm-connector run --service: {e}");
                ExitCode::from(2)
            }
        },
        CliCommand::Run { config, .. } => run(&config),
        CliCommand::Doctor {
            config,
            site_code,
            console_path,
        } => doctor(&config, site_code, console_path),
        CliCommand::Service { action } => service(action),
        CliCommand::Jobs {
            journal,
            state,
            json,
        } => read_only(
            "jobs",
            sccm_connector::ops::jobs::run(&journal.into(), state.as_deref(), json),
        ),
        CliCommand::Replay { journal, job, json } => read_only(
            "replay",
            sccm_connector::ops::replay::run(&journal.into(), &job, json),
        ),
        CliCommand::Demo { dir } => demo(dir),
        CliCommand::Plan {
            command,
            out,
            provider_machine,
        } => {
            let access = SiteAccess { provider_machine };
            match plan::run(&command, out.as_deref(), &access) {
                Ok(report) => {
                    // A closed pipe (`plan … | head`) is not an error worth a panic.
                    let _ = std::io::stdout().write_all(report.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("sccm-connector plan: {error}");
                    ExitCode::from(if error.is_rejection() { 2 } else { 1 })
                }
            }
        }
        CliCommand::Export {
            journal,
            format,
            since,
            until,
            job,
            signing_key,
            output,
        } => {
            let args = ExportArgs {
                journal,
                format,
                since,
                until,
                job,
                signing_key,
                output,
            };
            match export(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sccm-connector export: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        CliCommand::Verify {
            file,
            journal,
            config,
            public_key,
        } => {
            let source = match (journal, config) {
                (Some(dir), _) => Some(JournalSource::Dir(dir)),
                (None, Some(config)) => Some(JournalSource::Config(config)),
                (None, None) => None,
            };
            verify(file, source, public_key)
        }
        CliCommand::Audit {
            action: AuditCommand::Keygen { out },
        } => match audit::sign::keygen(&out) {
            Ok((private, public)) => {
                outln!(
                    "private key (keep it secret; name it in [audit] signing_key): {}",
                    private.display()
                );
                outln!(
                    "public key (give it to auditors: verify FILE --public-key …): {}",
                    public.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sccm-connector audit keygen: {e}");
                ExitCode::FAILURE
            }
        },
        CliCommand::Sim { simulator } => match simulator {
            SimCommand::Powershell(raw) => sccm_connector::sim::powershell::main(raw.args),
            SimCommand::Site(raw) => sccm_connector::sim::site::main(raw.args),
            SimCommand::Portal(raw) => sccm_connector::sim::portal::main(raw.args),
        },
    }
}
