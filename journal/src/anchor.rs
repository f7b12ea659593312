//! The head anchor: a small file beside sled's that remembers a committed head, so that a journal
//! cut short is noticed.
//!
//! sled's recovery stops reading its log at the first damaged message and silently drops
//! everything after it. A journal whose log had one byte flipped (bit rot, a bad copy, an edit)
//! therefore opens as a shorter journal that is perfectly consistent on its own: the chain, the
//! job heads and the meta head all agree, because they were all cut at the same batch. The anchor
//! is the outside witness: `<dir>/head.anchor` holds the sequence and hash of a committed record,
//! and [`crate::Journal::open`] refuses a journal whose recovered head is **behind** it
//! ([`crate::JournalError::Truncated`]) or whose record at that sequence has another hash.
//!
//! It is written (temporary file + rename) only after a commit has made that head durable, at
//! most once per [`ANCHOR_EVERY`] and at [`crate::Journal::close`], and never fsynced: after a
//! power loss it may be older than the journal (harmless: it only ever names records the
//! journal had made durable) or missing. A file that does not parse is ignored the same way, so
//! a torn anchor never makes a good journal unusable. What it cannot do is notice damage that
//! only cuts records committed after the last anchor write, or a deleted anchor; an export's
//! signed head (see the connector's `docs/audit.md`) is the stronger, off-machine witness.
//!
//! ```text
//! sccm-journal-anchor 1
//! <seq, decimal>
//! <hash, 64 lower-case hex digits>
//! ```

use crate::chain::Hash;
use crate::journal::Head;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the anchor inside the journal directory.
pub(crate) const ANCHOR_FILE: &str = "head.anchor";

/// Minimum time between two anchor writes by commits.
pub(crate) const ANCHOR_EVERY: Duration = Duration::from_secs(1);

const MAGIC: &str = "sccm-journal-anchor 1";

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(ANCHOR_FILE)
}

/// The anchor's text for `head`.
pub(crate) fn encode(head: Head) -> String {
    format!("{MAGIC}\n{}\n{}\n", head.seq, head.hash.to_hex())
}

/// Parses an anchor; `None` for anything that is not exactly one.
pub(crate) fn decode(text: &str) -> Option<Head> {
    if !text.ends_with('\n') {
        return None;
    }
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let seq: u64 = lines.next()?.parse().ok()?;
    let hex = lines.next()?;
    if hex.len() != 64 || lines.next().is_some() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Head {
        seq,
        hash: Hash(bytes),
    })
}

/// Reads the anchor of the journal in `dir`, if there is a readable one.
pub(crate) fn read(dir: &Path) -> Option<Head> {
    std::fs::read_to_string(path(dir))
        .ok()
        .and_then(|t| decode(&t))
}

/// Replaces the anchor with `head` (temporary file + rename; not synced, see the module doc).
pub(crate) fn write(dir: &Path, head: Head) -> std::io::Result<()> {
    let tmp = dir.join(format!("{ANCHOR_FILE}.tmp"));
    std::fs::write(&tmp, encode(head))?;
    std::fs::rename(&tmp, path(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn anchors_round_trip(seq in any::<u64>(), hash in any::<[u8; 32]>()) {
            let head = Head { seq, hash: Hash(hash) };
            prop_assert_eq!(decode(&encode(head)), Some(head));
        }

        #[test]
        fn garbage_is_no_anchor(text in ".{0,200}") {
            // Never a panic; only an exact anchor parses.
            if let Some(head) = decode(&text) {
                prop_assert_eq!(encode(head), text);
            }
        }
    }

    #[test]
    fn a_torn_anchor_is_none() {
        let text = encode(Head {
            seq: 7,
            hash: Hash([0xab; 32]),
        });
        for cut in 0..text.len() {
            assert_eq!(decode(&text[..cut]), None, "cut at {cut}");
        }
    }
}
