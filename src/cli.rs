//! The command line: raw arguments only (clap). Parsing does no I/O; `main` acts on the result.

use crate::inspect::JournalSource;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
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
    /// Run the whole product end to end against the simulators: a push of FileZilla and an
    /// import, through the real connector. No setup needed.
    Demo {
        /// Keep everything in DIR (config, journal, portal data, site, share) to explore.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the connector: resume every unfinished job, then poll the portal until stopped
    /// (Ctrl-C or SIGTERM), finishing running steps first.
    Run {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Run under the Windows service control manager (what `service install` registers).
        #[arg(long)]
        service: bool,
    },
    /// Validate one command (protocol-v1 JSON) and show every PowerShell script it would run,
    /// in order. Runs nothing. Exit code 2 when the command is rejected.
    ///
    /// An import's read-metadata scripts are shown with the placeholder CI_ID 0 (labelled in the
    /// script and on its header): the real id comes from the list-applications step's output
    /// when the import runs, and plan runs nothing.
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
    /// Check everything the connector needs (configuration, journal, portal, TLS, remote ID,
    /// PowerShell, the ConfigurationManager module, the site drive, the shares), each with a
    /// fix hint. Changes nothing. Exit code 1 when a check fails.
    Doctor {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The site code (default: the site drive the ConfigurationManager module creates).
        #[arg(long, value_name = "CODE")]
        site_code: Option<String>,
        /// The console's bin folder (default: the parent of %SMS_ADMIN_UI_PATH%).
        #[arg(long, value_name = "DIR")]
        console_path: Option<String>,
    },
    /// List the jobs of a journal, one line each: id, kind, package, state, age, last step.
    /// Reads a copy; the journal is never modified. Exit code 2 for an unknown --state.
    Jobs {
        #[command(flatten)]
        journal: JournalArgs,
        /// Only jobs in this state (received, planning, running, waiting, concluding, reporting,
        /// closing, succeeded, failed, rejected, broken, archived).
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// A JSON array instead of the table (full ids, RFC 3339 times).
        #[arg(long)]
        json: bool,
    },
    /// Show one job for a reader: the command, a timeline, every step with its exact script and
    /// attempts, transfers, the exchange with the portal, and a diagnosis. Reads a copy; the
    /// journal is never modified. Exit code 2 for an unknown or ambiguous JOB.
    Replay {
        #[command(flatten)]
        journal: JournalArgs,
        /// A job id, a unique prefix of at least 4 hex digits, or the portal's command id.
        #[arg(value_name = "JOB")]
        job: String,
        /// One JSON document instead of the text.
        #[arg(long)]
        json: bool,
    },
    /// Manage the Windows service (install, uninstall, start, stop). On Linux: see the systemd
    /// unit in docs/operations.md.
    Service {
        #[command(subcommand)]
        action: ServiceCommand,
    },
    /// Export the journal's events for an auditor: every chosen event with its chain hash and the
    /// bytes the chain hashes, secrets redacted, with a header and trailer (optionally signed).
    /// Never modifies the journal (it reads a private copy).
    Export {
        #[command(flatten)]
        journal: JournalArgs,
        /// jsonl and csv can be checked with `verify`; html is one self-contained page to read.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only records at or after T (RFC 3339, or a date YYYY-MM-DD: from its start, UTC).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only records at or before T (RFC 3339, or a date YYYY-MM-DD: to its end, UTC).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Only this job: its id (uuid) or its portal command id. Repeat for several jobs.
        #[arg(long = "job", value_name = "ID")]
        job: Vec<String>,
        /// Sign the chain head with this PKCS#8 PEM Ed25519 key (default: `[audit] signing_key`
        /// of the --config file).
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// The export file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Verify an export (jsonl or csv) or a journal: recompute the hash chain, print
    /// `N/N records valid`, or name the first bad record and exit 1. Given both an export and a
    /// journal, also check that the journal still holds every record the export covers.
    #[command(group(ArgGroup::new("target").required(true).multiple(true).args(["file", "journal", "config"])))]
    Verify {
        /// An export file written by `export --format jsonl|csv`.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// A journal directory (read from a private copy, never modified).
        #[arg(long, value_name = "DIR", conflicts_with = "config")]
        journal: Option<PathBuf>,
        /// The journal of this connector configuration (`[storage] journal`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The export must be signed by this SPKI PEM Ed25519 public key (needs FILE).
        #[arg(long, value_name = "PUB.pem")]
        public_key: Option<PathBuf>,
    },
    /// Audit key management.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// The simulators used by the demo, the tests and the benchmarks.
    Sim {
        #[command(subcommand)]
        simulator: SimCommand,
    },
}

/// Which journal a read-only command reads: exactly one of `--journal DIR` or `--config FILE`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct JournalArgs {
    /// The journal directory (a crash-consistent copy is read, also while the connector runs).
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// A connector configuration (TOML) whose `[storage] journal` names the journal.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl From<JournalArgs> for JournalSource {
    fn from(args: JournalArgs) -> JournalSource {
        match (args.journal, args.config) {
            (Some(dir), _) => JournalSource::Dir(dir),
            // clap requires exactly one of the two.
            (None, config) => JournalSource::Config(config.unwrap_or_default()),
        }
    }
}

/// What to do with the Windows service.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Register the service: `run --config FILE --service`, automatic start.
    Install {
        /// The configuration file (TOML); its absolute path is registered.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Stop and remove the service (the journal and logs stay).
    Uninstall,
    Start,
    /// Stop the service; running steps finish first.
    Stop,
}

/// `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Html,
}

/// `audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write a new Ed25519 key pair for signing exports: DIR/audit-signing.pem (private,
    /// mode 0600) and DIR/audit-signing.pub.pem (give this one to auditors). Never overwrites.
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// One simulator; each parses its own arguments (see `src/sim/`).
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A PowerShell host that behaves like ConfigMgr's: started exactly like powershell.exe.
    Powershell(RawArgs),
    /// Inspect or seed a simulated site's state.
    Site(RawArgs),
    /// The portal simulator: protocol v1 over HTTP(S), with an admin API and faults.
    Portal(RawArgs),
}

/// Arguments passed through untouched to a simulator's own parser (`--help` included).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RawArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn audit_commands_take_exactly_one_journal() {
        let parse = |args: &[&str]| Cli::try_parse_from(["sccm-connector"].iter().chain(args));
        assert!(parse(&["export", "--journal", "j", "--format", "jsonl", "-o", "x"]).is_ok());
        assert!(parse(&["export", "--config", "c", "--format", "html", "-o", "x"]).is_ok());
        assert!(parse(&["export", "--format", "csv", "-o", "x"]).is_err());
        assert!(
            parse(&[
                "export",
                "--journal",
                "j",
                "--config",
                "c",
                "--format",
                "csv",
                "-o",
                "x"
            ])
            .is_err()
        );
        assert!(parse(&["verify", "x.jsonl"]).is_ok());
        assert!(parse(&["verify", "x.jsonl", "--public-key", "k"]).is_ok());
        assert!(parse(&["verify", "--journal", "j"]).is_ok());
        assert!(parse(&["verify", "x.jsonl", "--journal", "j"]).is_ok());
        assert!(parse(&["verify", "--journal", "j", "--config", "c"]).is_err());
        assert!(parse(&["verify"]).is_err());
        assert!(parse(&["audit", "keygen", "--out", "d"]).is_ok());
    }

    /// The long help of a subcommand, with clap's line wrapping undone.
    fn help(name: &str) -> String {
        let mut command = Cli::command();
        let sub = command
            .find_subcommand_mut(name)
            .expect("the subcommand exists");
        sub.render_long_help()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn plan_help_says_the_metadata_ci_id_is_a_placeholder() {
        let text = help("plan");
        assert!(
            text.contains("placeholder CI_ID 0")
                && text.contains("the real id comes from the list-applications step"),
            "{text}"
        );
    }

    #[test]
    fn jobs_help_lists_every_state_including_archived() {
        let text = help("jobs");
        for state in [
            "received",
            "planning",
            "running",
            "waiting",
            "concluding",
            "reporting",
            "closing",
            "succeeded",
            "failed",
            "rejected",
            "broken",
            "archived",
        ] {
            assert!(text.contains(state), "{state} missing from: {text}");
            assert!(
                crate::ops::jobs::parse_state(state).is_ok(),
                "{state} is listed but not accepted"
            );
        }
    }

    #[test]
    fn read_only_commands_take_exactly_one_journal_source() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let source = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(CliCommand::Replay { journal, .. }) | Ok(CliCommand::Jobs { journal, .. }) => {
                Some(JournalSource::from(journal))
            }
            _ => None,
        };
        assert_eq!(
            source(&["sccm-connector", "jobs", "--journal", "/j"]),
            Some(JournalSource::Dir("/j".into()))
        );
        assert_eq!(
            source(&["sccm-connector", "replay", "abcd", "--config", "c.toml"]),
            Some(JournalSource::Config("c.toml".into()))
        );
        assert!(parse(&["sccm-connector", "jobs"]).is_err());
        assert!(parse(&["sccm-connector", "jobs", "--journal", "/j", "--config", "c"]).is_err());
        assert!(parse(&["sccm-connector", "replay", "--journal", "/j"]).is_err());
    }
}
