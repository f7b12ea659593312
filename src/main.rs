//! The `sccm-connector` binary: parse the command line, set up logging, run, map to an exit code.

use clap::Parser;
use sccm_connector::cli::Cli;

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
