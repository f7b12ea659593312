//! The `sccm-connector` binary: parse the command line, run, map the result to an exit code.

use clap::Parser;
use sccm_connector::cli::{Cli, CliCommand, SimCommand};
use sccm_connector::plan;
use sccm_connector::powershell::push::SiteAccess;
use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
