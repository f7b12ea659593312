//! The simulated ConfigMgr site: its configuration, its durable state and effect log, the
//! realistic behaviour behind the cmdlets, SDMPackageXML, seeds and fault plans — and
//! `sccm-connector sim site`, which creates, inspects and seeds a site directory.
//!
//! - `config`: `site.json` (site code and GUID, provider, DP groups, collections, share map).
//! - `state`: `state.json` (objects, call counters, the effect log) and its audit.
//! - `store`: the site directory; atomic, durable, locked read-modify-write.
//! - `ops`: what the site does when a cmdlet asks (ConfigMgr's rules and messages).
//! - `content`: UNC content locations through the share map.
//! - `sdm`: SDMPackageXML in the AppMgmtDigest shape.
//! - `seed`: preloading an estate.
//! - `faults`: the fault plan and its decisions.
//! - `clock`: timestamps and ConfigMgr-shaped ids.
//!
//! The format of all of these is documented in `docs/simulators.md`.

pub mod clock;
pub mod config;
pub mod content;
pub mod faults;
pub mod ops;
pub mod sdm;
pub mod seed;
pub mod state;
pub mod store;

pub use config::SiteConfig;
pub use state::State;
pub use store::{Site, StoreError};

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// `sccm-connector sim site`: create, inspect and seed a simulated site.
#[derive(Debug, Parser)]
#[command(name = "sccm-connector sim site")]
struct SiteCli {
    /// The site directory.
    #[arg(long, value_name = "DIR")]
    site: PathBuf,
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum SiteCommand {
    /// Create the site directory (site.json and an empty state).
    Init {
        /// Three-character site code (the CMSite drive's name).
        #[arg(long, default_value = "DEM")]
        site_code: String,
        #[arg(long)]
        site_name: Option<String>,
        /// The site GUID (default: a fresh one).
        #[arg(long)]
        site_guid: Option<String>,
        /// The SMS Provider's machine name.
        #[arg(long, default_value = "CM01")]
        provider_machine: String,
        /// `$env:COMPUTERNAME` in scripts (default: the provider machine).
        #[arg(long)]
        computer_name: Option<String>,
        /// The console's bin folder that `Import-Module` must name.
        #[arg(long)]
        console_path: Option<String>,
        /// The administrator the cmdlets run as.
        #[arg(long)]
        user: Option<String>,
        /// A distribution point group, `NAME=DPCOUNT` (repeatable; default
        /// `Demo Distribution Group=2`).
        #[arg(long = "dp-group", value_name = "NAME=DPCOUNT")]
        dp_groups: Vec<String>,
        /// A device collection name (repeatable; default `Demo devices`).
        #[arg(long = "collection", value_name = "NAME")]
        collections: Vec<String>,
        /// A share, `\\SERVER\Share=LOCALDIR` (repeatable; default
        /// `\\<provider>\Sources$=DIR/shares/Sources`).
        #[arg(long = "share", value_name = "UNC=DIR")]
        shares: Vec<String>,
        /// Status polls until a distribution completes.
        #[arg(long, default_value_t = 3)]
        distribution_polls: u32,
        /// Default module import delay for hosts on this site.
        #[arg(long, default_value_t = 0)]
        import_delay_ms: u64,
        /// Importing the module creates the site drive (as the real module does).
        #[arg(long)]
        module_creates_drive: bool,
        /// Replace an existing site (its state is emptied).
        #[arg(long)]
        force: bool,
    },
    /// Print the whole state (and the configuration) as JSON.
    Dump,
    /// Check that the effect log accounts for the state exactly; exit 1 if not.
    Check,
    /// Preload an estate from a seed file (see docs/simulators.md).
    Seed {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Install (`set FILE`) or remove (`clear`) the site's fault plan; `reset-counters` zeroes
    /// the per-cmdlet call counters.
    Faults {
        #[command(subcommand)]
        action: FaultsAction,
    },
}

#[derive(Debug, Subcommand)]
enum FaultsAction {
    /// Validate FILE and install it as the site's fault plan.
    Set {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Remove the site's fault plan.
    Clear,
    /// Zero the per-cmdlet call counters.
    ResetCounters,
}

/// A `sim site` failure.
#[derive(Debug, thiserror::Error)]
pub enum SiteCliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(transparent)]
    Faults(#[from] faults::FaultPlanError),
    #[error("the effect log does not match the state: {0}")]
    Audit(String),
}

fn split_pair(value: &str, what: &str) -> Result<(String, String), SiteCliError> {
    value
        .rsplit_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| SiteCliError::Usage(format!("{what} {value:?} must be NAME=VALUE")))
}

fn run(cli: SiteCli, out: &mut dyn std::io::Write) -> Result<(), SiteCliError> {
    match cli.command {
        SiteCommand::Init {
            site_code,
            site_name,
            site_guid,
            provider_machine,
            computer_name,
            console_path,
            user,
            dp_groups,
            collections,
            shares,
            distribution_polls,
            import_delay_ms,
            module_creates_drive,
            force,
        } => {
            let dp_groups = dp_groups
                .iter()
                .map(|g| {
                    let (name, count) = split_pair(g, "--dp-group")?;
                    let count = count.parse::<u32>().map_err(|_| {
                        SiteCliError::Usage(format!("--dp-group {g:?}: the DP count is a number"))
                    })?;
                    Ok((name, count))
                })
                .collect::<Result<Vec<_>, SiteCliError>>()?;
            let shares = shares
                .iter()
                .map(|s| {
                    // The UNC part may not contain '=', the directory may: split at the first.
                    s.split_once('=')
                        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                        .map(|(a, b)| (a.to_string(), PathBuf::from(b)))
                        .ok_or_else(|| {
                            SiteCliError::Usage(format!("--share {s:?} must be UNC=DIR"))
                        })
                })
                .collect::<Result<Vec<_>, SiteCliError>>()?;
            let options = config::InitOptions {
                site_code: Some(site_code),
                site_name,
                site_guid,
                provider_machine: Some(provider_machine),
                computer_name,
                console_path,
                user,
                dp_groups,
                collections,
                shares,
                distribution_polls: Some(distribution_polls),
                import_delay_ms: Some(import_delay_ms),
                module_creates_drive,
            };
            let config = SiteConfig::from_options(&cli.site, &options)
                .map_err(|e| SiteCliError::Store(e.into()))?;
            let site = Site::init(&cli.site, config, force)?;
            let _ = writeln!(
                out,
                "initialised site {} at {}",
                site.config().site_code,
                cli.site.display()
            );
            Ok(())
        }
        SiteCommand::Dump => {
            let site = Site::open(&cli.site)?;
            let state = site.read()?;
            let dump = serde_json::json!({ "config": site.config(), "state": state });
            let text = serde_json::to_string_pretty(&dump).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            Ok(())
        }
        SiteCommand::Check => {
            let site = Site::open(&cli.site)?;
            let state = site.read()?;
            state.audit().map_err(SiteCliError::Audit)?;
            let _ = writeln!(
                out,
                "ok: {} effects account for {} applications, {} folders, {} deployments, {} distributions",
                state.effects.len(),
                state.applications.len(),
                state.folders.len(),
                state.deployments.len(),
                state.distributions.len()
            );
            Ok(())
        }
        SiteCommand::Seed { file } => {
            let site = Site::open(&cli.site)?;
            let report = seed::seed_file(&site, &file)?;
            let _ = writeln!(out, "{report}");
            Ok(())
        }
        SiteCommand::Faults { action } => {
            let site = Site::open(&cli.site)?;
            match action {
                FaultsAction::Set { file } => {
                    let plan = faults::FaultPlan::load(&file)?;
                    let bytes = serde_json::to_vec_pretty(&plan).unwrap_or_default();
                    store::write_atomic(site.dir(), store::FAULTS_FILE, &bytes)?;
                    let _ = writeln!(out, "installed {} fault rules", plan.rules.len());
                }
                FaultsAction::Clear => match std::fs::remove_file(site.faults_path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(SiteCliError::Store(StoreError::Io {
                            path: site.faults_path(),
                            source,
                        }));
                    }
                },
                FaultsAction::ResetCounters => {
                    site.update(|s| s.calls.clear())?;
                }
            }
            Ok(())
        }
    }
}

/// Entry point of `sccm-connector sim site` (arguments after `sim site`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("sccm-connector sim site")).chain(args);
    let cli = match SiteCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sccm-connector sim site: {e}");
            ExitCode::from(1)
        }
    }
}
