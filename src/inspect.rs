//! Opening a journal for the read-only commands (`jobs`, `replay`, `export`, `verify --journal`).
//!
//! They name the journal with `--journal DIR` or `--config FILE` (its `[storage] journal`) and
//! must never modify it, not even while the connector runs: sled has no read-only open (opening
//! locks and may write), so they work on a crash-consistent copy taken with
//! [`journal::copy_for_reading`] into a temporary directory that is removed afterwards. The copy
//! also works on a journal brought over from another machine.

use crate::engine::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where a read-only command finds its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalSource {
    /// `--journal DIR`.
    Dir(PathBuf),
    /// `--config FILE`: the journal directory of a connector configuration.
    Config(PathBuf),
}

#[derive(Debug, Error)]
pub enum InspectError {
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("cannot copy the journal {dir} for reading: {source}")]
    Copy {
        dir: String,
        source: journal::JournalError,
    },
    #[error("cannot open the copy of the journal {dir}: {source}")]
    Open { dir: String, source: StoreError },
    #[error("cannot create a temporary directory: {0}")]
    Temp(std::io::Error),
}

impl JournalSource {
    /// The journal directory this source names. A configuration is read only for its
    /// `[storage] journal` key, so a configuration that would not start the connector (a missing
    /// remote ID, say) still locates its journal.
    pub fn journal_dir(&self) -> Result<PathBuf, InspectError> {
        match self {
            JournalSource::Dir(dir) => Ok(dir.clone()),
            JournalSource::Config(path) => journal_dir_of_config(path),
        }
    }
}

fn journal_dir_of_config(path: &Path) -> Result<PathBuf, InspectError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InspectError::ReadConfig {
        path: shown.clone(),
        source,
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| InspectError::Config {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    value
        .get("storage")
        .and_then(|s| s.get("journal"))
        .and_then(|j| j.as_str())
        .map(PathBuf::from)
        .ok_or(InspectError::Config {
            path: shown,
            reason: "has no [storage] journal = \"DIR\"".into(),
        })
}

/// A read-only view of a journal: a private copy, folded into every job's state.
#[derive(Debug)]
pub struct Inspection {
    /// The journal directory the copy was taken from.
    pub source_dir: PathBuf,
    pub store: Store,
    // Dropped after `store` (field order): the copy goes once nothing reads it.
    _copy: tempfile::TempDir,
}

/// Copies the journal `source` names and opens the copy.
pub fn open(source: &JournalSource) -> Result<Inspection, InspectError> {
    let dir = source.journal_dir()?;
    let copy = tempfile::Builder::new()
        .prefix("sccm-connector-inspect-")
        .tempdir()
        .map_err(InspectError::Temp)?;
    let copied = copy.path().join("journal");
    journal::copy_for_reading(&dir, &copied).map_err(|source| InspectError::Copy {
        dir: dir.display().to_string(),
        source,
    })?;
    let store =
        Store::open(&copied, journal::Options::new()).map_err(|source| InspectError::Open {
            dir: dir.display().to_string(),
            source,
        })?;
    Ok(Inspection {
        source_dir: dir,
        store,
        _copy: copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_names_its_journal_even_when_it_would_not_start_the_connector() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("connector.toml");
        std::fs::write(
            &config,
            "[portal]\nremote_id = \"\"\n[storage]\njournal = \"/var/lib/sccm/journal\"\nspool = \"/tmp\"\n",
        )
        .expect("config");
        let source = JournalSource::Config(config.clone());
        assert_eq!(
            source.journal_dir().expect("a journal dir"),
            PathBuf::from("/var/lib/sccm/journal")
        );
        std::fs::write(&config, "[storage]\nspool = \"/tmp\"\n").expect("config");
        let err = source.journal_dir().expect_err("no journal key");
        assert!(err.to_string().contains("[storage] journal"), "{err}");
    }

    #[test]
    fn the_journal_is_read_from_a_copy_and_left_untouched() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let live = dir.path().join("journal");
        {
            let store = Store::open(&live, journal::Options::new()).expect("a store");
            store
                .record(
                    replay::JobId::CONNECTOR,
                    replay::Timestamp(1),
                    replay::Event::ConnectorStarted {
                        version: "test".into(),
                    },
                )
                .expect("recorded");
        }
        let before = std::fs::read(live.join("db")).expect("db");
        let inspection = open(&JournalSource::Dir(live.clone())).expect("opened");
        assert_eq!(
            inspection
                .store
                .journal()
                .verify()
                .expect("verified")
                .records,
            1
        );
        drop(inspection);
        assert_eq!(std::fs::read(live.join("db")).expect("db"), before);
        assert!(open(&JournalSource::Dir(dir.path().join("absent"))).is_err());
    }
}
