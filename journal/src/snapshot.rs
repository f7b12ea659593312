//! Copying a journal for reading: [`copy_for_reading`].
//!
//! sled 0.34.7 has no read-only open: opening takes an exclusive lock and
//! may write (recovery snapshot, zeroing a torn tail). Tools that must never
//! modify a journal (an operator's `replay`, an auditor's `verify`) therefore
//! open a copy. The copy is taken file by file in the order sled's recovery
//! needs for a crash-consistent view even while the journal is being
//! written: `conf`, then the page-table snapshots and blobs, then the log
//! (`db`) last, so the log holds everything a copied snapshot refers to. A
//! log copied mid-write is a torn tail, which recovery cuts at the last
//! complete batch — the copy is what a crash at that moment would have left.

use crate::error::{JournalError, Result};
use std::path::Path;

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> JournalError {
    move |source| JournalError::Io { context, source }
}

/// Copies the journal at `from` into the empty or missing directory `to`,
/// without opening, locking or changing `from`. Open the copy with
/// [`crate::Journal::open`].
///
/// # Errors
/// [`JournalError::Io`] if `from` is not a journal directory (no `conf` or
/// no `db`) or a file cannot be copied.
pub fn copy_for_reading(from: &Path, to: &Path) -> Result<()> {
    let conf = from.join("conf");
    let db = from.join("db");
    if !conf.is_file() || !db.is_file() {
        return Err(JournalError::Io {
            context: "finding a journal (conf and db files) to copy",
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a journal directory", from.display()),
            ),
        });
    }
    std::fs::create_dir_all(to).map_err(io("creating the copy's directory"))?;
    // The anchor first: it may then be older than the copied log, never newer.
    let anchor = crate::anchor::path(from);
    if anchor.is_file() {
        std::fs::copy(&anchor, crate::anchor::path(to)).map_err(io("copying head.anchor"))?;
    }
    std::fs::copy(&conf, to.join("conf")).map_err(io("copying conf"))?;
    for entry in std::fs::read_dir(from).map_err(io("listing the journal directory"))? {
        let entry = entry.map_err(io("listing the journal directory"))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("snap.") {
            std::fs::copy(entry.path(), to.join(&name)).map_err(io("copying a snapshot"))?;
        }
    }
    let blobs = from.join("blobs");
    if blobs.is_dir() {
        std::fs::create_dir_all(to.join("blobs")).map_err(io("creating blobs/"))?;
        for entry in std::fs::read_dir(&blobs).map_err(io("listing blobs/"))? {
            let entry = entry.map_err(io("listing blobs/"))?;
            std::fs::copy(entry.path(), to.join("blobs").join(entry.file_name()))
                .map_err(io("copying a blob"))?;
        }
    }
    std::fs::copy(&db, to.join("db")).map_err(io("copying db"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Journal, Options, Timestamp};
    use uuid::Uuid;

    #[test]
    fn a_copy_taken_while_the_journal_is_open_reads_every_committed_record()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let live = Journal::open(dir.path().join("live"), Options::new())?;
        for i in 0..50u64 {
            live.append_durable(Uuid::from_u128(1), Timestamp(0), 1, &i.to_be_bytes())?;
        }
        copy_for_reading(&dir.path().join("live"), &dir.path().join("copy"))?;
        // The original is still open and usable; the copy opens beside it.
        live.append_durable(Uuid::from_u128(1), Timestamp(0), 1, b"after")?;
        let copy = Journal::open(dir.path().join("copy"), Options::new())?;
        assert_eq!(copy.verify()?.records, 50);
        assert_eq!(live.verify()?.records, 51);
        Ok(())
    }

    #[test]
    fn a_directory_without_a_journal_is_an_error()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let err = copy_for_reading(dir.path(), &dir.path().join("copy"));
        assert!(matches!(err, Err(JournalError::Io { .. })));
        Ok(())
    }
}
