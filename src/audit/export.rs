//! Writing exports: choose records ([`Filter`]), walk the chain once to plan the covered range,
//! then write the header, the record lines and the trailer (JSON Lines or CSV), hashing every
//! byte written before the trailer and signing the result if asked.
//!
//! The journal is read through [`journal::Journal::iter_from`], which checks every record's link
//! to its predecessor as it reads; an export is therefore only ever written from a chain that
//! verified while it was read.

use super::AuditError;
use super::csv as csv_encoding;
use super::record::{
    Content, FORMAT_NAME, FORMAT_VERSION, FilterInfo, Header, Line, RecordLine, SignatureInfo,
    Trailer, b64, omitted_line, pruned_line, record_line,
};
use super::sign::{self, SigningKey};
use super::time::rfc3339_millis;
use journal::{ChainEntry, GENESIS, Hash, Journal, Record};
use replay::Event;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use uuid::Uuid;

/// Which records an export shows. Records outside it are still accounted for, as omitted runs,
/// between the first and the last record shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records at or after this instant (Unix epoch milliseconds).
    pub since: Option<i64>,
    /// Only records at or before this instant (Unix epoch milliseconds, inclusive).
    pub until: Option<i64>,
    /// Only these jobs' records (every job's when empty).
    pub jobs: Vec<Uuid>,
}

impl Filter {
    /// Whether the record is shown.
    #[must_use]
    pub fn selects(&self, record: &Record) -> bool {
        self.selects_at(record.job(), record.timestamp().0)
    }

    /// Whether a record of `job` at `at` (Unix epoch milliseconds) is shown.
    #[must_use]
    pub fn selects_at(&self, job: Uuid, at: i64) -> bool {
        self.since.is_none_or(|s| at >= s)
            && self.until.is_none_or(|u| at <= u)
            && (self.jobs.is_empty() || self.jobs.contains(&job))
    }

    /// Whether a position of the chain (a record or a pruned record's stub) is shown.
    fn selects_entry(&self, entry: &ChainEntry) -> bool {
        match entry {
            ChainEntry::Record(r) => self.selects(r),
            ChainEntry::Pruned(p) => self.selects_at(p.job, p.timestamp.0),
        }
    }

    fn info(&self) -> FilterInfo {
        FilterInfo {
            since: self.since.map(rfc3339_millis),
            until: self.until.map(rfc3339_millis),
            jobs: self.jobs.iter().map(Uuid::to_string).collect(),
        }
    }
}

/// Informational header fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportMeta {
    /// The journal directory, as the header shows it.
    pub source: String,
    /// When the export is made (Unix epoch milliseconds); the library reads no clock.
    pub exported_at_ms: Option<i64>,
}

/// The two verifiable encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Jsonl,
    Csv,
}

impl Encoding {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Jsonl => "jsonl",
            Encoding::Csv => "csv",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Record lines written.
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub chain_base: Hash,
    /// Hash of record `last_seq`.
    pub head: Hash,
    /// Records shown in full, shown redacted, left out by the filter, and pruned from the
    /// journal (shown as their stubs).
    pub full: u64,
    pub redacted: u64,
    pub omitted: u64,
    pub pruned: u64,
    /// SHA-256 of the bytes before the trailer (`None` for HTML).
    pub content_sha256: Option<String>,
    pub signed: bool,
}

/// The covered range, found by a first walk.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub first: u64,
    pub last: u64,
    pub base: Hash,
    pub head: Hash,
    pub count: u64,
    pub journal_head_seq: u64,
    pub journal_head: Hash,
}

pub(crate) fn plan(journal: &Journal, filter: &Filter) -> Result<Plan, AuditError> {
    let mut prev = GENESIS;
    let mut first: Option<(u64, Hash)> = None;
    let mut last = (0u64, GENESIS);
    let mut count = 0u64;
    let mut gap = false;
    let mut journal_head = (0u64, GENESIS);
    for record in journal.iter_chain_from(1) {
        let record = record?;
        if filter.selects_entry(&record) {
            if first.is_none() {
                first = Some((record.seq(), prev));
            }
            if gap {
                count += 1;
                gap = false;
            }
            count += 1;
            last = (record.seq(), record.hash());
        } else if first.is_some() {
            gap = true;
        }
        prev = record.hash();
        journal_head = (record.seq(), prev);
    }
    Ok(match first {
        Some((first, base)) => Plan {
            first,
            last: last.0,
            base,
            head: last.1,
            count,
            journal_head_seq: journal_head.0,
            journal_head: journal_head.1,
        },
        None => Plan {
            first: journal_head.0 + 1,
            last: journal_head.0,
            base: journal_head.1,
            head: journal_head.1,
            count: 0,
            journal_head_seq: journal_head.0,
            journal_head: journal_head.1,
        },
    })
}

/// Walks the covered range, calling `emit` with every record line (and the decoded event of a
/// shown record). Pruned records are shown as their stubs.
pub(crate) fn walk(
    journal: &Journal,
    filter: &Filter,
    plan: &Plan,
    mut emit: impl FnMut(RecordLine, Option<Event>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    if plan.count == 0 {
        return Ok(());
    }
    let mut prev = plan.base;
    let mut gap: Option<(u64, Hash)> = None;
    for record in journal.iter_chain_from(plan.first) {
        let record = record?;
        if record.seq() > plan.last {
            break;
        }
        if filter.selects_entry(&record) {
            if let Some((from, before)) = gap.take() {
                emit(omitted_line(from, record.seq() - 1, &before, &prev), None)?;
            }
            match &record {
                ChainEntry::Record(r) => {
                    let (line, event) = record_line(r, &prev);
                    emit(line, event)?;
                }
                ChainEntry::Pruned(p) => emit(pruned_line(p, &prev), None)?,
            }
        } else if gap.is_none() {
            gap = Some((record.seq(), prev));
        }
        prev = record.hash();
    }
    if prev != plan.head {
        return Err(AuditError::Changed(format!(
            "the chain ended at {prev}, the first walk at {}",
            plan.head
        )));
    }
    Ok(())
}

/// Lines written, and records by how they are shown.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub count: u64,
    pub full: u64,
    pub redacted: u64,
    pub omitted: u64,
    pub pruned: u64,
}

impl Tally {
    pub fn add(&mut self, line: &RecordLine) {
        self.count += 1;
        match line.content {
            Content::Full => self.full += 1,
            Content::Redacted => self.redacted += 1,
            Content::Pruned => self.pruned += 1,
            Content::Omitted => {
                self.omitted += line.seq_end.unwrap_or(line.seq) - line.seq + 1;
            }
        }
    }
}

fn encode(encoding: Encoding, line: &Line) -> Result<Vec<u8>, AuditError> {
    match encoding {
        Encoding::Jsonl => {
            let mut bytes =
                serde_json::to_vec(line).map_err(|e| AuditError::Encode(e.to_string()))?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        Encoding::Csv => csv_encoding::encode(line),
    }
}

/// Writes the chosen records of `journal` to `out` as JSON Lines (see `docs/audit.md`),
/// signed with `signer` if given. Reusable for archiving jobs before they are pruned.
///
/// # Errors
/// [`AuditError::Journal`] if the chain does not verify while it is read, [`AuditError::Write`]
/// if `out` fails.
pub fn write_jsonl(
    journal: &Journal,
    filter: &Filter,
    meta: &ExportMeta,
    out: &mut impl Write,
    signer: Option<&SigningKey>,
) -> Result<ExportSummary, AuditError> {
    write_export(journal, filter, meta, Encoding::Jsonl, out, signer)
}

/// Writes the archive of `jobs` — every record of theirs, as a JSON Lines export signed with
/// `signer` if given — to `path` (created, or truncated) and syncs it to disk. This is what
/// retention writes before it prunes the jobs; it fits `engine::retention::sweep`'s `export`:
///
/// ```text
/// retention::sweep(&store, now, &policy, |path, jobs| {
///     let ids: Vec<Uuid> = jobs.iter().map(|j| j.0).collect();
///     audit::export::archive_jobs(store.journal(), &ids, path, &meta, signer.as_ref())
///         .map(|_| ())
///         .map_err(|e| e.to_string())
/// })
/// ```
///
/// The archive verifies on its own (`verify ARCHIVE`) and, after the pruning, against the
/// journal whose stubs keep its hashes (`verify ARCHIVE --journal DIR`).
///
/// # Errors
/// As [`write_jsonl`]; [`AuditError::Write`] if the file cannot be created or synced.
pub fn archive_jobs(
    journal: &Journal,
    jobs: &[Uuid],
    path: &std::path::Path,
    meta: &ExportMeta,
    signer: Option<&SigningKey>,
) -> Result<ExportSummary, AuditError> {
    let filter = Filter {
        jobs: jobs.to_vec(),
        ..Filter::default()
    };
    let file = std::fs::File::create(path).map_err(AuditError::Write)?;
    let mut out = std::io::BufWriter::new(file);
    let summary = write_jsonl(journal, &filter, meta, &mut out, signer)?;
    let file = out
        .into_inner()
        .map_err(|e| AuditError::Write(e.into_error()))?;
    file.sync_all().map_err(AuditError::Write)?;
    Ok(summary)
}

/// As [`write_jsonl`], as CSV.
///
/// # Errors
/// As [`write_jsonl`].
pub fn write_csv(
    journal: &Journal,
    filter: &Filter,
    meta: &ExportMeta,
    out: &mut impl Write,
    signer: Option<&SigningKey>,
) -> Result<ExportSummary, AuditError> {
    write_export(journal, filter, meta, Encoding::Csv, out, signer)
}

/// Writes an export in `encoding`.
///
/// # Errors
/// As [`write_jsonl`].
pub fn write_export(
    journal: &Journal,
    filter: &Filter,
    meta: &ExportMeta,
    encoding: Encoding,
    out: &mut impl Write,
    signer: Option<&SigningKey>,
) -> Result<ExportSummary, AuditError> {
    let plan = plan(journal, filter)?;
    let mut digest = Sha256::new();
    let mut emit = |bytes: &[u8]| -> Result<(), AuditError> {
        digest.update(bytes);
        out.write_all(bytes).map_err(AuditError::Write)
    };
    if encoding == Encoding::Csv {
        emit(&csv_encoding::column_row()?)?;
    }
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        encoding: encoding.as_str().into(),
        source: meta.source.clone(),
        exported_at: meta.exported_at_ms.map(rfc3339_millis),
        filter: filter.info(),
        first_seq: plan.first,
        last_seq: plan.last,
        chain_base: plan.base.to_hex(),
        count: plan.count,
        journal_head_seq: plan.journal_head_seq,
        journal_head_hash: plan.journal_head.to_hex(),
    };
    emit(&encode(encoding, &Line::Header(header))?)?;
    let mut tally = Tally::default();
    walk(journal, filter, &plan, |line, _| {
        tally.add(&line);
        emit(&encode(encoding, &Line::Record(line))?)
    })?;
    let Tally {
        count,
        full,
        redacted,
        omitted,
        pruned,
    } = tally;
    let content_sha256 = crate::portal::download::hex(&digest.finalize());
    let head = plan.head.to_hex();
    let base = plan.base.to_hex();
    let signature = signer.map(|key| {
        let message =
            sign::signed_message(&head, count, plan.first, plan.last, &base, &content_sha256);
        SignatureInfo {
            algorithm: "ed25519".into(),
            public_key: b64(key.verifying_key().as_bytes()),
            value: b64(&sign::sign(key, &message)),
        }
    });
    let trailer = Trailer {
        count,
        first_seq: plan.first,
        last_seq: plan.last,
        chain_base: base,
        head,
        content_sha256: content_sha256.clone(),
        signature,
    };
    out.write_all(&encode(encoding, &Line::Trailer(trailer))?)
        .and_then(|()| out.flush())
        .map_err(AuditError::Write)?;
    Ok(ExportSummary {
        count,
        first_seq: plan.first,
        last_seq: plan.last,
        chain_base: plan.base,
        head: plan.head,
        full,
        redacted,
        omitted,
        pruned,
        content_sha256: Some(content_sha256),
        signed: signer.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::verify_export;
    use crate::engine::store::Store;
    use replay::testkit::canned;

    /// Two jobs interleaved record by record, one of whose commands shows a password.
    fn journal(dir: &std::path::Path) -> Store {
        let store = Store::open(dir, journal::Options::new()).expect("a store");
        let mut a = canned::push_happy();
        let mut b = canned::import_two_apps();
        if let Event::CommandReceived { raw, .. } = &mut b.entries[0].event {
            *raw = br#"{"id":"x","password":"hunter2"}"#.to_vec();
        }
        let (mut ia, mut ib) = (a.entries.drain(..), b.entries.drain(..));
        loop {
            let (ea, eb) = (ia.next(), ib.next());
            if ea.is_none() && eb.is_none() {
                break;
            }
            if let Some(e) = ea {
                store.record(a.job, e.at, e.event).expect("recorded");
            }
            if let Some(e) = eb {
                store.record(b.job, e.at, e.event).expect("recorded");
            }
        }
        store
    }

    #[test]
    fn filtered_and_redacted_exports_verify_and_hide_the_secret() {
        let dir = tempfile::tempdir().expect("temp");
        let store = journal(dir.path());
        let jobs = store.journal().jobs().expect("jobs");
        let meta = ExportMeta::default();
        for (filter, encoding) in [
            (Filter::default(), Encoding::Jsonl),
            (Filter::default(), Encoding::Csv),
            (
                Filter {
                    jobs: vec![jobs[0].job],
                    ..Filter::default()
                },
                Encoding::Jsonl,
            ),
            (
                Filter {
                    jobs: vec![jobs[1].job],
                    since: Some(1_580_461_921_000),
                    ..Filter::default()
                },
                Encoding::Csv,
            ),
            (
                Filter {
                    until: Some(0),
                    ..Filter::default()
                },
                Encoding::Jsonl,
            ),
        ] {
            let mut out = Vec::new();
            let summary = write_export(store.journal(), &filter, &meta, encoding, &mut out, None)
                .expect("exported");
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("hunter2"), "{text}");
            let report = verify_export(&out, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(report.records, summary.last_seq + 1 - summary.first_seq);
            assert_eq!(
                (report.full, report.redacted, report.omitted),
                (summary.full, summary.redacted, summary.omitted)
            );
            if !filter.jobs.is_empty() {
                assert!(summary.omitted > 0, "interleaved jobs leave omitted runs");
            }
            if filter.until == Some(0) {
                assert_eq!((summary.count, report.records), (0, 0));
            }
        }
        // Retention: archive one job, prune it; the journal's export shows its stubs and still
        // verifies, and the archive verifies against the pruned journal.
        let mut archive = Vec::new();
        let archived = Filter {
            jobs: vec![jobs[0].job],
            ..Filter::default()
        };
        write_jsonl(store.journal(), &archived, &meta, &mut archive, None).expect("archived");
        let report = store.journal().prune_jobs(&[jobs[0].job]).expect("pruned");
        assert_eq!(report.jobs, 1);
        let mut out = Vec::new();
        let summary = write_jsonl(store.journal(), &Filter::default(), &meta, &mut out, None)
            .expect("exported");
        assert_eq!(summary.pruned, jobs[0].last_job_seq);
        let report = verify_export(&out, None).expect("a pruned journal's export verifies");
        assert_eq!(report.pruned, jobs[0].last_job_seq);
        // A pruned job is still chosen by id: its stubs.
        let mut out = Vec::new();
        let summary =
            write_jsonl(store.journal(), &archived, &meta, &mut out, None).expect("exported");
        assert_eq!((summary.pruned, summary.full), (jobs[0].last_job_seq, 0));
        let archive_report = verify_export(&archive, None).expect("the archive verifies");
        drop(store);
        let source = crate::inspect::JournalSource::Dir(dir.path().to_path_buf());
        crate::audit::journal_holds_export(&source, &archive_report)
            .unwrap_or_else(|e| panic!("the pruned journal holds the archive: {e:?}"));
        let store = Store::open(dir.path(), journal::Options::new()).expect("reopened");

        // Through retention's own sweep: the import job is archived by `archive_jobs`, then
        // pruned; the archive verifies, also against the pruned journal.
        let policy = crate::engine::retention::Retention {
            keep_finished_ms: Some(1),
            archive_dir: dir.path().join("archive"),
            sweep_every_ms: 3_600_000,
        };
        let key = crate::audit::sign::generate().expect("a key");
        let swept = crate::engine::retention::sweep(
            &store,
            replay::Timestamp(1_900_000_000_000),
            &policy,
            |path, jobs| {
                let ids: Vec<Uuid> = jobs.iter().map(|j| j.0).collect();
                archive_jobs(store.journal(), &ids, path, &meta, Some(&key))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .expect("swept");
        let archive = std::fs::read(swept.archive.expect("an archive")).expect("read");
        let archive_report =
            verify_export(&archive, Some(&key.verifying_key())).expect("the archive verifies");
        assert!(archive_report.full > 0);
        drop(store);
        crate::audit::journal_holds_export(&source, &archive_report)
            .unwrap_or_else(|e| panic!("the swept journal holds the archive: {e:?}"));
        let store = Store::open(dir.path(), journal::Options::new()).expect("reopened");

        // Signed through the library, as the retention archive would.
        let key = crate::audit::sign::generate().expect("a key");
        let mut out = Vec::new();
        let summary = write_jsonl(
            store.journal(),
            &Filter::default(),
            &meta,
            &mut out,
            Some(&key),
        )
        .expect("exported");
        assert!(summary.signed && summary.redacted + summary.pruned >= 1);
        let report = verify_export(&out, Some(&key.verifying_key())).expect("verifies");
        assert_eq!(report.signature_trusted, Some(true));
    }
}
