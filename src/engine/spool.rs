//! The spool directory: where jobs keep their working files, and its start-up sweep.
//!
//! Layout: `<spool>/<job id>/` holds one job's download and upload archives while it runs; the
//! PowerShell runner writes each job's step scripts into a private
//! `<spool>/scripts/sccm-connector-scripts-*` directory. Both are removed when their job or step
//! ends, but a connector killed in between leaves them behind: `JobFinished` is journaled before
//! the job's folder is removed (a crash may leak the folder, never lose the record). The daemon
//! therefore sweeps at start, before any driver runs: folders of jobs the journal knows as finished
//! (or does not know at all) and every script directory (no step runs yet) are removed; folders of
//! unfinished or unreadable jobs are kept, because resuming needs them.

use crate::powershell::runner::SCRIPT_DIR_PREFIX;
use replay::JobId;
use std::path::{Path, PathBuf};

/// The folder of one job.
pub fn job_dir(spool: &Path, job: JobId) -> PathBuf {
    spool.join(job.to_string())
}

/// What the sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub job_dirs: Vec<PathBuf>,
    pub script_dirs: Vec<PathBuf>,
    /// Entries that could not be removed, with the reason.
    pub failures: Vec<(PathBuf, String)>,
}

/// Removes leftovers from `spool`: job folders for which `keep` is false, and every script
/// directory under `scripts`. Entries that are neither are left alone.
pub fn sweep(spool: &Path, scripts: Option<&Path>, keep: impl Fn(JobId) -> bool) -> Swept {
    let mut swept = Swept::default();
    for entry in read_dir(spool) {
        let path = entry.path();
        let Some(job) = entry
            .file_name()
            .to_str()
            .and_then(|n| uuid::Uuid::parse_str(n).ok())
            .map(JobId)
        else {
            continue;
        };
        if path.is_dir() && !keep(job) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => swept.job_dirs.push(path),
                Err(e) => swept.failures.push((path, e.to_string())),
            }
        }
    }
    for entry in scripts.map(read_dir).into_iter().flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(SCRIPT_DIR_PREFIX));
        if ours && path.is_dir() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => swept.script_dirs.push(path),
                Err(e) => swept.failures.push((path, e.to_string())),
            }
        }
    }
    swept
}

fn read_dir(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir).into_iter().flatten().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_and_script_dirs_go_unfinished_ones_and_strangers_stay() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = dir.path();
        let (running, finished) = (
            JobId(uuid::Uuid::from_u128(1)),
            JobId(uuid::Uuid::from_u128(2)),
        );
        for job in [running, finished] {
            std::fs::create_dir_all(job_dir(spool, job)).expect("job dir");
            std::fs::write(job_dir(spool, job).join("package.zip"), b"zip").expect("a file");
        }
        let scripts = spool.join("scripts");
        std::fs::create_dir_all(scripts.join(format!("{SCRIPT_DIR_PREFIX}abc"))).expect("scripts");
        std::fs::create_dir_all(scripts.join("keep-me")).expect("foreign dir");
        std::fs::create_dir_all(spool.join("not-a-job")).expect("foreign dir");

        let swept = sweep(spool, Some(&scripts), |job| job == running);
        assert_eq!(swept.job_dirs, [job_dir(spool, finished)]);
        assert_eq!(
            swept.script_dirs,
            [scripts.join(format!("{SCRIPT_DIR_PREFIX}abc"))]
        );
        assert!(swept.failures.is_empty());
        assert!(job_dir(spool, running).join("package.zip").exists());
        assert!(scripts.join("keep-me").exists() && spool.join("not-a-job").exists());
        // Nothing to do the second time; a missing spool is not an error.
        assert_eq!(
            sweep(spool, Some(&scripts), |job| job == running),
            Swept::default()
        );
        assert_eq!(
            sweep(&spool.join("absent"), None, |_| false),
            Swept::default()
        );
    }
}
