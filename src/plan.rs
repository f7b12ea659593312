//! `sccm-connector plan`: a command's scripts, rendered exactly as they would run.
//!
//! For a push, every script (download and unpack are the connector's own work and have none).
//! For an import, the inventory scripts, then one metadata script per requested application.
//! Those are the only scripts not shown exactly as they will run: their CI_ID comes from the
//! inventory's output, which plan does not produce, so they are rendered with the placeholder
//! [`import::PLAN_PLACEHOLDER_CI_ID`] (0), labelled by a comment in the script and by a note on
//! its header line.

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
                scripts.push(import::read_metadata_for_plan(&i, access, name)?);
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
                let note = if script.step == "read-metadata" {
                    format!(
                        " (CI_ID {} is a placeholder: the real id comes from list-applications when the import runs)",
                        import::PLAN_PLACEHOLDER_CI_ID
                    )
                } else {
                    String::new()
                };
                report.push_str(&format!("==> {}{note} <==\n", file_name(i, script)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powershell::script::{COMMANDS, CONSTANTS};
    use crate::powershell::verify::{Policy, verify_script};

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/commands")
            .join(name)
    }

    #[test]
    fn an_import_plan_labels_the_metadata_ci_id_as_a_placeholder() {
        let access = SiteAccess::default();
        let raw = std::fs::read(fixture("import-filezilla.json")).expect("fixture");
        let scripts = scripts_for(&raw, &access).expect("plans");
        let metadata = scripts
            .iter()
            .find(|s| s.step == "read-metadata")
            .expect("a metadata script");
        assert!(
            metadata
                .text
                .contains("# PLACEHOLDER (sccm-connector plan): -Id 0 below is not a real CI_ID.")
                && metadata
                    .text
                    .contains("Get-CMApplication -Id 0 -ShowHidden"),
            "{}",
            metadata.text
        );
        verify_script(
            metadata.bytes(),
            &Policy {
                commands: COMMANDS,
                constants: CONSTANTS,
            },
        )
        .expect("the labelled script passes the checker");
        // A real run's script carries no such label.
        let Ok(Command::Import(i)) = command::parse(&raw, &Limits::default()) else {
            panic!("an import")
        };
        let real =
            import::read_metadata(&i, &access, &i.applications[0], 16_777_217).expect("renders");
        assert!(!real.text.contains("PLACEHOLDER"));
        assert!(
            real.text
                .contains("Get-CMApplication -Id 16777217 -ShowHidden")
        );

        let printed = run(&fixture("import-filezilla.json"), None, &access).expect("prints");
        assert!(
            printed.contains(
                "==> 03-read-metadata.ps1 (CI_ID 0 is a placeholder: the real id comes from list-applications when the import runs) <==\n"
            ),
            "{printed}"
        );
        assert!(printed.contains("==> 01-list-folders.ps1 <==\n"));
    }
}
