//! The portal simulator's durable state: commands (their exact JSON, deliveries, acks, results
//! by idempotency key, progress), packages and uploads. Metadata lives in `state.json`, written
//! durably (temporary file, `fsync`, rename, `fsync` of the directory) after every change;
//! package and upload bytes live in files beside it. So the simulator survives its own restart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Everything the simulator remembers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    /// In the order they were posted (the delivery order).
    pub commands: Vec<CommandRecord>,
    pub packages: BTreeMap<String, PackageRecord>,
    pub uploads: BTreeMap<String, UploadRecord>,
    pub next_package: u64,
}

/// One command and what happened to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: String,
    /// The exact JSON text posted to `/sim/commands`, delivered byte for byte.
    pub raw: String,
    /// Times it was returned by a poll (a duplicate delivery counts twice).
    pub delivered: u64,
    pub acked: bool,
    /// Results by idempotency key, first one first (the effective result).
    pub results: Vec<ResultRecord>,
    /// Every `POST …/result` that was accepted (first deliveries and duplicates).
    pub result_posts: u64,
    /// The last progress posts (at most [`MAX_PROGRESS`]).
    pub progress: Vec<serde_json::Value>,
}

/// One result under one idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRecord {
    pub idempotency_key: String,
    /// The body as first received.
    pub body: String,
    /// Times this key was posted with this body (1 + recognised duplicates).
    pub deliveries: u64,
}

/// A package served under `/api/connector/v1/packages/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageRecord {
    pub size: u64,
    pub sha256: String,
}

/// An upload of one application's sources for one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    pub command_id: String,
    pub application: String,
    pub complete: bool,
    /// Set when completed.
    pub sha256: Option<String>,
}

/// Progress posts kept per command.
pub const MAX_PROGRESS: usize = 50;

impl State {
    pub fn command(&self, id: &str) -> Option<&CommandRecord> {
        self.commands.iter().find(|c| c.id == id)
    }

    pub fn command_mut(&mut self, id: &str) -> Option<&mut CommandRecord> {
        self.commands.iter_mut().find(|c| c.id == id)
    }
}

/// Where the simulator keeps things under `--data`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    /// Creates the directories.
    pub fn create(root: &Path) -> std::io::Result<Self> {
        for sub in ["packages", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn package(&self, id: &str) -> PathBuf {
        self.root.join("packages").join(file_name(id))
    }

    pub fn upload(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(file_name(id))
    }

    /// A fresh temporary file path (same file system as the final place).
    pub fn temp(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Reads `state.json`, or an empty state if there is none yet.
    pub fn load(&self) -> Result<State, String> {
        match std::fs::read(self.state_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e}", self.state_file().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{}: {e}", self.state_file().display())),
        }
    }

    /// Writes `state.json` durably.
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        write_durably(&self.temp(), &self.state_file(), &bytes)
    }
}

/// Ids become file names only through hex, so no id can name another path.
fn file_name(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `temp`, syncs it, renames it over `target` and syncs the directory.
pub fn write_durably(temp: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    {
        let mut file = File::create(temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    rename_durably(temp, target)
}

/// Renames `temp` over `target` and syncs the target's directory.
pub fn rename_durably(temp: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::rename(temp, target)?;
    sync_dir(target.parent().unwrap_or(Path::new(".")))
}

/// Syncs a directory's entries (a no-op where directories cannot be opened, as on Windows).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match OpenOptions::new().read(true).open(dir) {
        Ok(handle) => handle.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}
