//! `sccm-connector verify`: an export file (JSON Lines or CSV, told apart by content) or a
//! journal, checked link by link. The first problem is reported with the record it concerns.
//!
//! For an export (`docs/audit.md` §Verifying): the header opens it; record lines cover
//! `first_seq..=last_seq` exactly once, in order; every line's `prev_hash` is the previous
//! line's `hash` (the header's `chain_base` for the first); a full record's `hash` is
//! `SHA-256(prev_hash ‖ body)` and its displayed fields and event equal what its body encodes;
//! the trailer repeats count, range, base and head, and `content_sha256` is the SHA-256 of every
//! byte before it; nothing follows it. With a public key, the trailer's signature must verify.

use super::AuditError;
use super::csv as csv_encoding;
use super::record::{
    Content, FORMAT_NAME, FORMAT_VERSION, Header, Line, RecordLine, Trailer, decode_event,
    event_json, from_b64, hash_from_hex,
};
use super::sign::{self, VerifyingKey};
use super::time::rfc3339_millis;
use crate::inspect::JournalSource;
use journal::{Hash, JournalError, Record};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::fmt;

/// A verified export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// `jsonl` or `csv`.
    pub encoding: &'static str,
    /// Journal records covered (`last_seq - first_seq + 1`), every one of them accounted for.
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Records whose bytes were hashed and decoded, shown redacted, left out by the filter,
    /// pruned from the journal (stubs).
    pub full: u64,
    pub redacted: u64,
    pub omitted: u64,
    pub pruned: u64,
    pub chain_base: String,
    pub head: String,
    /// The trailer's signature: `None` unsigned; `Some(true)` checked against the given public
    /// key; `Some(false)` checked only against the key the trailer names (no key was given).
    pub signature_trusted: Option<bool>,
    /// Every record line as (its last sequence, its hash), in order: what a journal must match
    /// to hold this export ([`journal_holds_export`]).
    pub links: Vec<(u64, Hash)>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}/{} records valid", self.records, self.records)?;
        writeln!(
            f,
            "  {} export of records {}..={}: {} with their bytes rehashed and decoded, {} redacted (link checked), {} left out by the export's filter (link checked)",
            self.encoding, self.first_seq, self.last_seq, self.full, self.redacted, self.omitted
        )?;
        writeln!(f, "  chain base {}", self.chain_base)?;
        writeln!(f, "  chain head {}", self.head)?;
        match self.signature_trusted {
            None => writeln!(f, "  not signed"),
            Some(true) => writeln!(f, "  signature valid for the given public key"),
            Some(false) => writeln!(
                f,
                "  signature valid for the key it names (pass --public-key to check whose it is)"
            ),
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The record concerned, when there is one.
    pub seq: Option<u64>,
    /// The line (JSON Lines) or row (CSV, counting the column row) where it was found.
    pub line: Option<usize>,
    pub reason: String,
    /// Records verified before it.
    pub valid: u64,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.line) {
            (Some(seq), Some(line)) => write!(f, "record {seq} (line {line}): {}", self.reason),
            (Some(seq), None) => write!(f, "record {seq}: {}", self.reason),
            (None, Some(line)) => write!(f, "line {line}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for VerifyFailure {}

/// One parsed line with where it starts.
struct Parsed {
    number: usize,
    start: usize,
    line: Result<Line, String>,
}

fn fail(
    seq: Option<u64>,
    line: Option<usize>,
    reason: impl Into<String>,
    valid: u64,
) -> VerifyFailure {
    VerifyFailure {
        seq,
        line,
        reason: reason.into(),
        valid,
    }
}

fn parse_jsonl(bytes: &[u8]) -> Result<Vec<Parsed>, VerifyFailure> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut number = 0usize;
    while start < bytes.len() {
        number += 1;
        let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') else {
            out.push(Parsed {
                number,
                start,
                line: Err("the file ends in the middle of this line (truncated)".into()),
            });
            break;
        };
        let text = &bytes[start..start + len];
        let line = std::str::from_utf8(text)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|t| {
                serde_json::from_str::<Line>(t).map_err(|e| format!("not an export line: {e}"))
            });
        out.push(Parsed {
            number,
            start,
            line,
        });
        start += len + 1;
    }
    Ok(out)
}

fn parse_csv(bytes: &[u8]) -> Result<Vec<Parsed>, VerifyFailure> {
    let rows =
        csv_encoding::parse(bytes).map_err(|(row, reason)| fail(None, Some(row), reason, 0))?;
    let mut out: Vec<Parsed> = rows
        .into_iter()
        .map(|r| Parsed {
            number: r.number,
            start: r.start,
            line: r.line,
        })
        .collect();
    // The csv reader accepts a last row without its line end; a truncated file must not pass.
    if !bytes.ends_with(b"\n")
        && let Some(last) = out.last_mut()
    {
        last.line = Err("the file ends in the middle of this row (truncated)".into());
    }
    Ok(out)
}

/// Which encoding `bytes` are in.
fn detect(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"{") {
        Some("jsonl")
    } else if bytes.starts_with(b"type,") {
        Some("csv")
    } else {
        None
    }
}

/// Checks a full record's bytes against its line.
fn check_full(line: &RecordLine, prev: &Hash, hash: &Hash) -> Result<(), String> {
    let body_text = line
        .body
        .as_deref()
        .ok_or("a full record without body (its bytes)")?;
    let body = from_b64(body_text).ok_or("body is not base64")?;
    let computed = journal::link(prev, &body);
    if computed != *hash {
        return Err(format!(
            "hash mismatch: the line says {hash}, SHA-256(prev_hash ‖ body) is {computed}"
        ));
    }
    let mut stored = body;
    stored.extend_from_slice(hash.as_bytes());
    let record =
        Record::decode(line.seq, stored).map_err(|e| format!("body does not decode: {e}"))?;
    let mismatch = |field: &str| format!("{field} differs from what the hashed body encodes");
    if line.job.as_deref() != Some(record.job().to_string().as_str()) {
        return Err(mismatch("job"));
    }
    if line.job_seq != Some(record.job_seq()) {
        return Err(mismatch("job_seq"));
    }
    if line.timestamp_ms != Some(record.timestamp().0)
        || line.timestamp.as_deref() != Some(rfc3339_millis(record.timestamp().0).as_str())
    {
        return Err(mismatch("timestamp"));
    }
    if line.payload_format != Some(record.payload_format()) {
        return Err(mismatch("payload_format"));
    }
    let event = decode_event(&record);
    if line.event.as_deref() != event.as_ref().map(replay::Event::name) {
        return Err(mismatch("event"));
    }
    if line.data != event.as_ref().map(event_json) {
        return Err(mismatch("data"));
    }
    if line.redacted {
        return Err("a full record marked redacted".into());
    }
    Ok(())
}

/// Verifies an export. With `public_key`, the export must be signed by it.
///
/// # Errors
/// The first problem, naming the record (and line) it concerns.
pub fn verify_export(
    bytes: &[u8],
    public_key: Option<&VerifyingKey>,
) -> Result<VerifyReport, VerifyFailure> {
    let encoding = detect(bytes).ok_or_else(|| {
        fail(
            None,
            Some(1),
            "neither a JSON Lines nor a CSV audit export (it must start with `{` or `type,`)",
            0,
        )
    })?;
    let lines = if encoding == "jsonl" {
        parse_jsonl(bytes)?
    } else {
        parse_csv(bytes)?
    };
    let mut iter = lines.iter();
    let header: Header = match iter.next() {
        Some(Parsed {
            line: Ok(Line::Header(h)),
            ..
        }) => h.clone(),
        Some(p) => {
            return Err(fail(
                None,
                Some(p.number),
                match &p.line {
                    Err(e) => e.clone(),
                    Ok(_) => "the export does not start with its header".into(),
                },
                0,
            ));
        }
        None => return Err(fail(None, None, "the export is empty", 0)),
    };
    let header_line = lines.first().map(|p| p.number);
    if header.format != FORMAT_NAME || header.version != FORMAT_VERSION {
        return Err(fail(
            None,
            header_line,
            format!(
                "format {:?} version {}; this build reads {FORMAT_NAME} version {FORMAT_VERSION}",
                header.format, header.version
            ),
            0,
        ));
    }
    if header.encoding != encoding {
        return Err(fail(
            None,
            header_line,
            format!(
                "the header says {}, the file is {encoding}",
                header.encoding
            ),
            0,
        ));
    }
    let mut prev = hash_from_hex(&header.chain_base)
        .ok_or_else(|| fail(None, header_line, "chain_base is not a hash", 0))?;
    let base = prev;
    let first_seq = header.first_seq;
    let mut expected = first_seq;
    let (mut full, mut redacted, mut omitted, mut pruned, mut count) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut links: Vec<(u64, Hash)> = Vec::new();
    let valid = |expected: u64| expected - first_seq;
    // Every sequence some line claims, to tell a missing record from a moved one.
    let claimed: BTreeSet<u64> = lines
        .iter()
        .filter_map(|p| match &p.line {
            Ok(Line::Record(r)) => Some(r.seq),
            _ => None,
        })
        .collect();
    let mut trailer: Option<(&Parsed, Trailer)> = None;
    for parsed in iter.by_ref() {
        let n = Some(parsed.number);
        let record = match &parsed.line {
            Err(e) => return Err(fail(Some(expected), n, e.clone(), valid(expected))),
            Ok(Line::Header(_)) => {
                return Err(fail(
                    Some(expected),
                    n,
                    "a second header in the middle of the export (two exports spliced together?)",
                    valid(expected),
                ));
            }
            Ok(Line::Trailer(t)) => {
                trailer = Some((parsed, t.clone()));
                break;
            }
            Ok(Line::Record(r)) => r,
        };
        if record.seq != expected {
            // Lines run in increasing order, so a sequence below the expected one was seen.
            let reason = if record.seq < expected {
                format!(
                    "expected record {expected}, found record {} again (duplicated or reordered)",
                    record.seq
                )
            } else if claimed.contains(&expected) {
                format!(
                    "expected record {expected}, found record {} (records reordered: record {expected} comes later)",
                    record.seq
                )
            } else {
                format!(
                    "missing: expected record {expected}, found record {} (deleted)",
                    record.seq
                )
            };
            return Err(fail(Some(expected), n, reason, valid(expected)));
        }
        let seq = Some(record.seq);
        let line_prev = hash_from_hex(&record.prev_hash)
            .ok_or_else(|| fail(seq, n, "prev_hash is not a hash", valid(expected)))?;
        let hash = hash_from_hex(&record.hash)
            .ok_or_else(|| fail(seq, n, "hash is not a hash", valid(expected)))?;
        if line_prev != prev {
            return Err(fail(
                seq,
                n,
                format!(
                    "broken link: prev_hash is {line_prev}, the previous record's hash is {prev}"
                ),
                valid(expected),
            ));
        }
        let last_of_line = match record.content {
            Content::Full => {
                check_full(record, &prev, &hash).map_err(|e| fail(seq, n, e, valid(expected)))?;
                full += 1;
                record.seq
            }
            Content::Redacted => {
                if record.body.is_some() || !record.redacted {
                    return Err(fail(
                        seq,
                        n,
                        "a redacted record must have redacted = true and no body",
                        valid(expected),
                    ));
                }
                redacted += 1;
                record.seq
            }
            Content::Pruned => {
                if record.body.is_some() || record.data.is_some() || record.redacted {
                    return Err(fail(
                        seq,
                        n,
                        "a pruned record shows content",
                        valid(expected),
                    ));
                }
                pruned += 1;
                record.seq
            }
            Content::Omitted => {
                let end = record.seq_end.filter(|&e| e >= record.seq).ok_or_else(|| {
                    fail(
                        seq,
                        n,
                        "an omitted run without a valid seq_end",
                        valid(expected),
                    )
                })?;
                if record.body.is_some() || record.data.is_some() || record.redacted {
                    return Err(fail(
                        seq,
                        n,
                        "an omitted run shows content",
                        valid(expected),
                    ));
                }
                omitted = omitted.saturating_add((end - record.seq).saturating_add(1));
                end
            }
        };
        count += 1;
        prev = hash;
        links.push((last_of_line, hash));
        expected = last_of_line.checked_add(1).ok_or_else(|| {
            fail(
                seq,
                n,
                "a sequence beyond the largest there can be",
                valid(expected),
            )
        })?;
    }
    let covered = expected - first_seq;
    let Some((trailer_line, trailer)) = trailer else {
        let reason = if expected <= header.last_seq {
            format!(
                "missing: the export ends before record {expected}; its header covers records {}..={} (truncated)",
                header.first_seq, header.last_seq
            )
        } else {
            "the export ends without its trailer (truncated)".to_string()
        };
        return Err(fail(Some(expected), None, reason, covered));
    };
    let t = Some(trailer_line.number);
    if let Some(extra) = iter.next() {
        // Name the first record that follows, if any does.
        let seq = std::iter::once(extra)
            .chain(iter)
            .find_map(|p| match &p.line {
                Ok(Line::Record(r)) => Some(r.seq),
                _ => None,
            });
        return Err(fail(
            seq,
            Some(extra.number),
            "more lines after the trailer (two exports spliced together?)",
            covered,
        ));
    }
    if expected != header.last_seq.saturating_add(1) {
        return Err(fail(
            Some(expected.min(header.last_seq.saturating_add(1))),
            t,
            format!(
                "the records end at {}, the header says {} (records deleted or added)",
                expected.saturating_sub(1),
                header.last_seq
            ),
            covered,
        ));
    }
    let checks = [
        (trailer.count == count && header.count == count, "count"),
        (trailer.first_seq == header.first_seq, "first_seq"),
        (trailer.last_seq == header.last_seq, "last_seq"),
        (trailer.chain_base == header.chain_base, "chain_base"),
        (trailer.head == prev.to_hex(), "head"),
    ];
    for (ok, field) in checks {
        if !ok {
            return Err(fail(
                None,
                t,
                format!(
                    "the trailer's {field} does not match the header and the records (two exports spliced together?)"
                ),
                covered,
            ));
        }
    }
    let content = crate::portal::download::hex(&Sha256::digest(&bytes[..trailer_line.start]));
    if trailer.content_sha256 != content {
        return Err(fail(
            None,
            t,
            format!(
                "content_sha256 is {}, the bytes before the trailer hash to {content} (the file was changed)",
                trailer.content_sha256
            ),
            covered,
        ));
    }
    let message = sign::signed_message(
        &trailer.head,
        trailer.count,
        trailer.first_seq,
        trailer.last_seq,
        &trailer.chain_base,
        &trailer.content_sha256,
    );
    let signature_trusted = match (&trailer.signature, public_key) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(fail(
                None,
                t,
                "the export is not signed, but a public key was given",
                covered,
            ));
        }
        (Some(sig), key) => {
            let value = from_b64(&sig.value).unwrap_or_default();
            let named = from_b64(&sig.public_key)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok());
            if sig.algorithm != "ed25519" {
                return Err(fail(
                    None,
                    t,
                    format!("unknown signature algorithm {:?}", sig.algorithm),
                    covered,
                ));
            }
            match key {
                Some(key) => {
                    if !sign::verify(key, &message, &value) {
                        return Err(fail(
                            None,
                            t,
                            "the signature does not verify with the given public key",
                            covered,
                        ));
                    }
                    Some(true)
                }
                None => {
                    let ok = named.is_some_and(|k| sign::verify(&k, &message, &value));
                    if !ok {
                        return Err(fail(
                            None,
                            t,
                            "the signature does not verify with the key the trailer names",
                            covered,
                        ));
                    }
                    Some(false)
                }
            }
        }
    };
    Ok(VerifyReport {
        encoding,
        records: covered,
        first_seq: header.first_seq,
        last_seq: header.last_seq,
        full,
        redacted,
        omitted,
        pruned,
        chain_base: base.to_hex(),
        head: prev.to_hex(),
        signature_trusted,
        links,
    })
}

/// A verified journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalReport {
    pub records: u64,
    pub jobs: u64,
    pub head: Hash,
}

impl fmt::Display for JournalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}/{} records valid", self.records, self.records)?;
        writeln!(f, "  {} jobs; chain head {}", self.jobs, self.head)
    }
}

/// The record a journal error names.
#[must_use]
pub fn error_seq(error: &JournalError) -> Option<u64> {
    match error {
        JournalError::CorruptRecord { seq, .. }
        | JournalError::UnknownVersion { seq, .. }
        | JournalError::HashMismatch { seq, .. }
        | JournalError::IndexMismatch { seq, .. } => Some(*seq),
        JournalError::Gap { expected, .. } => Some(*expected),
        _ => None,
    }
}

fn as_failure(e: JournalError) -> Result<VerifyFailure, AuditError> {
    Ok(VerifyFailure {
        seq: error_seq(&e),
        line: None,
        reason: e.to_string(),
        valid: error_seq(&e).map_or(0, |s| s.saturating_sub(1)),
    })
}

/// A verified private copy of the journal `source` names (see `inspect`): the copy's directory
/// (removed when dropped), the open journal and its report.
fn open_verified(
    source: &JournalSource,
) -> Result<(tempfile::TempDir, journal::Journal, JournalReport), Result<VerifyFailure, AuditError>>
{
    let dir = source
        .journal_dir()
        .map_err(|e| Err(AuditError::Inspect(e)))?;
    let copy = tempfile::Builder::new()
        .prefix("sccm-connector-verify-")
        .tempdir()
        .map_err(|e| Err(AuditError::Write(e)))?;
    let copied = copy.path().join("journal");
    journal::copy_for_reading(&dir, &copied).map_err(|e| Err(AuditError::Journal(e)))?;
    let journal = journal::Journal::open(&copied, journal::Options::new()).map_err(as_failure)?;
    let report = journal.verify().map_err(as_failure)?;
    let report = JournalReport {
        records: report.records,
        jobs: report.jobs,
        head: report.head_hash,
    };
    Ok((copy, journal, report))
}

/// `verify --journal DIR` / `--config FILE`: the whole chain of a private copy of the journal
/// (see `inspect`), every hash recomputed, every index and head checked.
///
/// A journal is self-consistent after sled's recovery cut a damaged log back to its last
/// intact batch, so this cannot tell a journal that lost its tail; [`journal_holds_export`]
/// can, given an earlier export.
///
/// # Errors
/// `Err(Ok(failure))` for a journal that does not verify (naming the record), `Err(Err(e))`
/// when it cannot be read at all.
pub fn verify_journal(
    source: &JournalSource,
) -> Result<JournalReport, Result<VerifyFailure, AuditError>> {
    let (_copy, journal, report) = open_verified(source)?;
    drop(journal);
    Ok(report)
}

/// `verify FILE --journal DIR`: the journal verifies and still holds what the (verified)
/// export covers — record `first_seq - 1` has the export's chain base as its hash, and the last
/// record of every line (`seq`, or `seq_end` of an omitted run) has the line's hash. Catches a
/// journal that lost records or was rewritten since, and an export whose hash-only lines
/// (redacted, omitted) were altered.
///
/// # Errors
/// As [`verify_journal`]; a failure names the first record that differs or is missing.
pub fn journal_holds_export(
    source: &JournalSource,
    export: &VerifyReport,
) -> Result<JournalReport, Result<VerifyFailure, AuditError>> {
    let (_copy, journal, report) = open_verified(source)?;
    let differs = |seq: u64, reason: String| {
        Err(Ok(VerifyFailure {
            seq: Some(seq),
            line: None,
            reason,
            valid: 0,
        }))
    };
    if report.records < export.last_seq {
        return differs(
            report.records.saturating_add(1),
            format!(
                "missing from the journal: it ends at record {} ({}), the export covers records up to {} (records lost, or the journal was cut back)",
                report.records, report.head, export.last_seq
            ),
        );
    }
    let base = hash_from_hex(&export.chain_base).unwrap_or_default();
    let first = export.first_seq;
    if first <= 1 && base != journal::GENESIS {
        return differs(
            1,
            format!("the export's chain base {base} is not the journal's genesis"),
        );
    }
    let mut links = export.links.iter().peekable();
    // Pruned records count: their stubs keep the original hashes (an archive verifies against
    // the journal it was pruned from).
    for record in journal.iter_chain_from(first.saturating_sub(1).max(1)) {
        let record = record.map_err(as_failure)?;
        let seq = record.seq();
        if seq > export.last_seq {
            break;
        }
        if seq + 1 == first && record.hash() != base {
            return differs(
                seq,
                format!(
                    "the journal's record {seq} has hash {}, the export's chain base is {base}",
                    record.hash()
                ),
            );
        }
        if let Some((last, hash)) = links.peek()
            && *last == seq
        {
            if record.hash() != *hash {
                return differs(
                    seq,
                    format!(
                        "the journal's record {seq} has hash {}, the export says {hash} (the journal or the export was changed)",
                        record.hash()
                    ),
                );
            }
            links.next();
        }
    }
    if let Some((last, _)) = links.next() {
        return differs(*last, "not found in the journal".into());
    }
    drop(journal);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = r#"{"type":"header","format":"sccm-connector-audit","version":1,"encoding":"jsonl","source":"","filter":{},"first_seq":1,"last_seq":18446744073709551615,"chain_base":"0000000000000000000000000000000000000000000000000000000000000000","count":1,"journal_head_seq":0,"journal_head_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

    #[test]
    fn hostile_numbers_are_failures_not_panics() {
        let zero = "0".repeat(64);
        let omitted = format!(
            r#"{{"type":"record","seq":1,"seq_end":18446744073709551615,"content":"omitted","redacted":false,"prev_hash":"{zero}","hash":"{zero}"}}"#
        );
        let text = format!("{HEADER}\n{omitted}\n");
        assert!(verify_export(text.as_bytes(), None).is_err());
        let text = format!("{HEADER}\n");
        assert!(verify_export(text.as_bytes(), None).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), csv in any::<bool>()) {
            let mut input = if csv { b"type,".to_vec() } else { b"{".to_vec() };
            input.extend(bytes);
            prop_assert!(verify_export(&input, None).is_err());
        }

        #[test]
        fn arbitrary_lines_after_a_header_never_panic(lines in proptest::collection::vec("[ -~]{0,80}", 0..6)) {
            let text = format!("{HEADER}\n{}\n", lines.join("\n"));
            let _ = verify_export(text.as_bytes(), None);
        }
    }
}
