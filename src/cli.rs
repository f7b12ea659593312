//! The command line: raw arguments only (clap). Parsing does no I/O; `main` acts on the result.

use clap::Parser;

/// Polls a packaging portal and drives ConfigMgr (SCCM) through PowerShell, with an
/// event-sourced job journal that makes every job resumable after a crash.
#[derive(Debug, Parser)]
#[command(name = "sccm-connector", version, about, long_about = None)]
pub struct Cli {}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
