//! The site directory on disk, and atomic, durable, serialised updates of its state.
//!
//! ```text
//! DIR/site.json    the configuration (written once by `init`)
//! DIR/state.json   the state, effect log included (always a complete document)
//! DIR/faults.json  an optional fault plan every host on this site applies
//! DIR/lock         the lock every read-modify-write holds
//! ```
//!
//! An update holds an exclusive lock on `DIR/lock` (`File::lock`; the OS releases it when the
//! holder dies, even by SIGKILL) for its whole read-modify-write, so concurrent simulator
//! processes on one site serialise. The new state is written to a fresh temporary file, flushed
//! to disk (`fsync`), renamed over `state.json` and the directory is flushed — so `state.json` is
//! at every instant either the old or the new complete document, and a committed change survives
//! a crash. Readers without the lock therefore always see a whole state.

use super::config::SiteConfig;
use super::state::{FORMAT, State};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "site.json";
pub const STATE_FILE: &str = "state.json";
pub const FAULTS_FILE: &str = "faults.json";
const LOCK_FILE: &str = "lock";
/// Temporary files of writers that hold the lock (`state.json`, `site.json`): under the lock, any
/// one found is a dead writer's.
const LOCKED_TEMP_PREFIXES: [&str; 2] = ["state.json.tmp-", "site.json.tmp-"];
/// Temporary files of `faults.json`, written without the lock (`sim site faults set`): only one
/// older than [`UNLOCKED_TEMP_AGE`] is a dead writer's (a live write takes milliseconds).
const UNLOCKED_TEMP_PREFIX: &str = "faults.json.tmp-";
const UNLOCKED_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why the site directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a simulated site's file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{0} is not a simulated site (no site.json); create one with `sccm-connector sim site --site DIR init`"
    )]
    NotASite(PathBuf),
    #[error("{0} is a simulated site already (use --force to replace it)")]
    Exists(PathBuf),
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open site directory.
#[derive(Debug, Clone)]
pub struct Site {
    dir: PathBuf,
    config: SiteConfig,
}

/// Writes `bytes` to `dir/name` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = dir.join(format!(
        "{name}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io(&temp))?;
        file.write_all(bytes).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        drop(file);
        let target = dir.join(name);
        std::fs::rename(&temp, &target).map_err(io(&target))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Site {
    /// Creates the site directory with `config` and an empty state.
    pub fn init(dir: &Path, config: SiteConfig, force: bool) -> Result<Site, StoreError> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let site = Site {
            dir: dir.to_path_buf(),
            config,
        };
        let _lock = site.lock()?;
        if dir.join(CONFIG_FILE).exists() && !force {
            return Err(StoreError::Exists(dir.to_path_buf()));
        }
        for share in &site.config.shares {
            std::fs::create_dir_all(&share.local).map_err(io(&share.local))?;
        }
        let config_json =
            serde_json::to_vec_pretty(&site.config).map_err(|e| StoreError::Corrupt {
                path: dir.join(CONFIG_FILE),
                message: e.to_string(),
            })?;
        write_atomic(dir, CONFIG_FILE, &config_json)?;
        site.save(&State::new(site.config.first_package_number()))?;
        let _ = std::fs::remove_file(dir.join(FAULTS_FILE));
        Ok(site)
    }

    /// Opens an existing site directory.
    pub fn open(dir: &Path) -> Result<Site, StoreError> {
        let path = dir.join(CONFIG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotASite(dir.to_path_buf()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let config: SiteConfig =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(Site {
            dir: dir.to_path_buf(),
            config,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// The state as last committed (no lock needed: the file is always complete).
    pub fn read(&self) -> Result<State, StoreError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if state.format != FORMAT {
            return Err(StoreError::Corrupt {
                path,
                message: format!("state format {} (expected {FORMAT})", state.format),
            });
        }
        Ok(state)
    }

    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    fn save(&self, state: &State) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(STATE_FILE),
            message: e.to_string(),
        })?;
        write_atomic(&self.dir, STATE_FILE, &bytes)
    }

    /// Runs one read-modify-write under the site lock: `change` sees the committed state and
    /// may modify it; if it did, the new state is committed (atomically, durably) before the lock
    /// is released. What `change` returns is passed through, committed or not.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let _lock = self.lock()?;
        self.remove_stale_temps();
        let before = self.read()?;
        let mut state = before.clone();
        let result = change(&mut state);
        if state != before {
            self.save(&state)?;
        }
        Ok(result)
    }

    /// Temporary files left by writers that died before their rename (only under the lock):
    /// those of `state.json` and `site.json`, and those of `faults.json` once old enough.
    fn remove_stale_temps(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = if LOCKED_TEMP_PREFIXES.iter().any(|p| name.starts_with(p)) {
                true
            } else if name.starts_with(UNLOCKED_TEMP_PREFIX) {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= UNLOCKED_TEMP_AGE)
            } else {
                false
            };
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The site's own fault plan file, if any.
    pub fn faults_path(&self) -> PathBuf {
        self.dir.join(FAULTS_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{InitOptions, SiteConfig};
    use super::*;

    fn site(dir: &Path) -> Site {
        let config = SiteConfig::from_options(dir, &InitOptions::default()).expect("config");
        Site::init(dir, config, false).expect("init")
    }

    #[test]
    fn init_open_and_update_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = site(dir.path());
        assert!(matches!(
            Site::init(dir.path(), site.config().clone(), false),
            Err(StoreError::Exists(_))
        ));
        let reopened = Site::open(dir.path()).expect("open");
        assert_eq!(reopened.config(), site.config());
        let id = reopened.update(|s| s.take_ci_id()).expect("update");
        assert_eq!(id, super::super::state::FIRST_ID);
        assert_eq!(site.read().expect("read").counters.next_ci_id, id + 1);
        // An update that changes nothing writes nothing.
        let before = std::fs::metadata(dir.path().join(STATE_FILE))
            .and_then(|m| m.modified())
            .expect("mtime");
        site.update(|s| s.applications.len()).expect("no-op");
        let after = std::fs::metadata(dir.path().join(STATE_FILE))
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(before, after);
    }

    #[test]
    fn dead_writers_temp_files_are_ignored_and_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = site(dir.path());
        let write = |name: &str, age: u64| {
            let path = dir.path().join(name);
            let file = File::create(&path).expect("create");
            (&file).write_all(b"{\"half").expect("write");
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            file.set_modified(when).expect("mtime");
            path
        };
        let state = write("state.json.tmp-999-abc", 0);
        let config = write("site.json.tmp-999-abc", 0);
        let old_faults = write("faults.json.tmp-999-abc", 3600);
        // A fault plan being written right now (without the lock) is left alone.
        let live_faults = write("faults.json.tmp-1000-def", 0);
        let other = write("notes.json.tmp-1-x", 3600);
        assert_eq!(site.read().expect("read").applications.len(), 0);
        site.update(|s| s.take_ci_id()).expect("update");
        assert!(!state.exists());
        assert!(!config.exists());
        assert!(!old_faults.exists());
        assert!(live_faults.exists());
        assert!(other.exists());
        assert!(Site::open(dir.path()).is_ok());
    }

    #[test]
    fn not_a_site_and_corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Site::open(dir.path()),
            Err(StoreError::NotASite(_))
        ));
        let site = site(dir.path());
        std::fs::write(dir.path().join(STATE_FILE), b"[]").expect("write");
        assert!(matches!(site.read(), Err(StoreError::Corrupt { .. })));
        std::fs::write(dir.path().join(CONFIG_FILE), b"{").expect("write");
        assert!(matches!(
            Site::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn concurrent_updates_serialise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = site(dir.path());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let site = site.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        site.update(|s| s.take_ci_id()).expect("update");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(
            site.read().expect("read").counters.next_ci_id,
            super::super::state::FIRST_ID + 40
        );
    }
}
