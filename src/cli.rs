//! The command line: raw arguments only (clap). Parsing does no I/O; `main` acts on the result.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Polls a packaging portal and drives ConfigMgr (SCCM) through PowerShell, with an
/// event-sourced job journal that makes every job resumable after a crash.
#[derive(Debug, Parser)]
#[command(name = "sccm-connector", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Validate one command (protocol-v1 JSON) and show every PowerShell script it would run,
    /// in order. Runs nothing. Exit code 2 when the command is rejected.
    Plan {
        /// The command file.
        #[arg(long, value_name = "FILE")]
        command: PathBuf,
        /// Write the scripts to DIR as `NN-<step>.ps1` (byte-exact, with BOM) instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The SMS Provider for the site drive (default: the console machine itself).
        #[arg(long, value_name = "HOST")]
        provider_machine: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
