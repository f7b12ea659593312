//! `sccm-connector plan`: a command's scripts, rendered exactly as they would run.
//!
//! For a push, every script (download and unpack are the connector's own work and have none).
//! For an import, the inventory scripts, then one metadata script per requested application —
//! rendered with CI_ID 0 as a placeholder, since the real id comes from the inventory.

use crate::command::{self, Command, Limits, Rejection};
use crate::powershell::script::{InputError, Script};
use crate::powershell::{import, push, push::SiteAccess};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the command is rejected: {0}")]
    Rejected(#[from] Rejection),
    #[error("the command is rejected: {0}")]
    Input(#[from] InputError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl PlanError {
    /// Rejections are the caller's input problem (exit code 2); the rest are I/O (1).
    pub fn is_rejection(&self) -> bool {
        matches!(self, PlanError::Rejected(_) | PlanError::Input(_))
    }
}

/// Every script `raw` would run, in order.
pub fn scripts_for(raw: &[u8], access: &SiteAccess) -> Result<Vec<Script>, PlanError> {
    Ok(match command::parse(raw, &Limits::default())? {
        Command::Push(p) => push::scripts(&p, access)?,
        Command::Import(i) => {
            let mut scripts = vec![
                import::list_folders(&i, access)?,
                import::list_applications(&i, access)?,
            ];
            for name in &i.applications {
                scripts.push(import::read_metadata(&i, access, name, 0)?);
            }
            scripts
        }
    })
}

/// The file name of the `index`-th script (0-based): `01-ensure-application.ps1`.
pub fn file_name(index: usize, script: &Script) -> String {
    format!("{:02}-{}.ps1", index + 1, script.step)
}

/// Runs `plan`: print the scripts, or write them into `out`.
pub fn run(
    command_file: &Path,
    out: Option<&Path>,
    access: &SiteAccess,
) -> Result<String, PlanError> {
    let raw = std::fs::read(command_file).map_err(|source| PlanError::Read {
        path: command_file.display().to_string(),
        source,
    })?;
    let scripts = scripts_for(&raw, access)?;
    let mut report = String::new();
    match out {
        Some(dir) => {
            let write_err = |path: &Path, source| PlanError::Write {
                path: path.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
            for (i, script) in scripts.iter().enumerate() {
                let path = dir.join(file_name(i, script));
                std::fs::write(&path, script.bytes()).map_err(|e| write_err(&path, e))?;
                report.push_str(&format!("{}\n", path.display()));
            }
        }
        None => {
            for (i, script) in scripts.iter().enumerate() {
                report.push_str(&format!("==> {} <==\n", file_name(i, script)));
                report.push_str(
                    script
                        .text
                        .trim_start_matches(crate::powershell::script::BOM),
                );
                report.push('\n');
            }
        }
    }
    Ok(report)
}
