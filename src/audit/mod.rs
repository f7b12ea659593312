//! Audit: exporting the journal for auditors and proving that an export (or a journal) is
//! exactly what the connector journaled.
//!
//! * `sccm-connector export --format jsonl|csv|html` ([`export`], [`html`]): every chosen event
//!   with its chain hash, the bytes the chain hashes (unless redacted), a header and a trailer,
//!   optionally signed; secrets are never shown ([`redact`]).
//! * `sccm-connector verify FILE|--journal DIR|--config FILE` ([`verify`]): recomputes the chain
//!   and names the first bad record.
//! * `sccm-connector audit keygen` ([`sign`]): an Ed25519 key pair for signing exports.
//!
//! The exported lines are defined in [`record`] (and byte by byte in `docs/audit.md`); CSV in
//! [`csv`]; instants in [`time`]. Every read-only command works on a private copy of the journal
//! (`inspect`), never on the journal itself.

pub mod csv;
pub mod export;
pub mod html;
pub mod record;
pub mod redact;
pub mod sign;
pub mod time;
pub mod verify;

pub use export::{
    Encoding, ExportMeta, ExportSummary, Filter, write_csv, write_export, write_jsonl,
};
pub use html::write_html;
pub use verify::{
    VerifyFailure, VerifyReport, journal_holds_export, verify_export, verify_journal,
};

use thiserror::Error;

/// What can stop an export, a key operation or a journal verification from running at all.
/// (A verification that runs and finds a problem reports a [`VerifyFailure`] instead.)
#[derive(Debug, Error)]
pub enum AuditError {
    #[error("journal: {0}")]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    #[error("cannot write: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot encode the export: {0}")]
    Encode(String),
    #[error("the journal changed while it was exported: {0}")]
    Changed(String),
    #[error("{0}")]
    Key(String),
}
