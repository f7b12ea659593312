//! The `sccm-connector` binary: parse the command line, run, map the result to an exit code.

use clap::Parser;
use sccm_connector::cli::{Cli, CliCommand, SimCommand};
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
        CliCommand::Sim { simulator } => match simulator {
            SimCommand::Powershell(raw) => sccm_connector::sim::powershell::main(raw.args),
            SimCommand::Site(raw) => sccm_connector::sim::site::main(raw.args),
            SimCommand::Portal(raw) => sccm_connector::sim::portal::main(raw.args),
        },
    }
}
