//! Tests of the `Journal` type against a real sled database: reopen
//! continuity, tamper detection, versioning, group commit, limits.

use super::*;
use crate::chain::link;
use crate::record::FORMAT_VERSION;
use std::sync::Arc;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn job(n: u128) -> Uuid {
    Uuid::from_u128(0xA000 + n)
}

fn payload(job: Uuid, job_seq: u64) -> Vec<u8> {
    format!("{job}/{job_seq}").into_bytes()
}

/// Appends `n` records round-robin over `jobs` jobs, committing at the end.
fn fill(j: &Journal, n: u64, jobs: u128) -> Result<Vec<Appended>> {
    let mut out = Vec::new();
    // Queued records are not listed by `jobs()` until committed.
    let mut last: HashMap<Uuid, u64> = j.jobs()?.iter().map(|s| (s.job, s.last_job_seq)).collect();
    for i in 0..n {
        let id = job(u128::from(i) % jobs);
        let next = last.get(&id).map_or(1, |s| s + 1);
        last.insert(id, next);
        let a = j.append(
            id,
            Timestamp(i64::try_from(i).unwrap_or(0)),
            3,
            &payload(id, next),
        )?;
        assert_eq!(a.job_seq, next);
        out.push(a);
    }
    j.commit_all()?;
    Ok(out)
}

/// Overwrites record `seq`'s stored value through sled.
fn tamper(j: &Journal, seq: u64, f: impl FnOnce(&mut Vec<u8>)) -> TestResult {
    let mut v = j
        .raw_db()
        .get(record_key(seq))?
        .ok_or("no such record")?
        .to_vec();
    f(&mut v);
    j.raw_db().insert(record_key(seq), v)?;
    Ok(())
}

#[test]
fn empty_journal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(
        j.head(),
        Head {
            seq: 0,
            hash: GENESIS
        }
    );
    assert_eq!(j.iter_from(1).count(), 0);
    assert_eq!(j.iter_job(job(1)).count(), 0);
    assert!(j.jobs()?.is_empty());
    assert_eq!(j.verify()?.records, 0);
    j.commit(0)?;
    assert!(matches!(
        j.commit(1),
        Err(JournalError::NotAppended {
            seq: 1,
            appended: 0
        })
    ));
    Ok(())
}

#[test]
fn reopen_keeps_seq_job_seq_and_hash_continuity() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = {
        let j = Journal::open(dir.path(), Options::new())?;
        let v = fill(&j, 10, 3)?;
        j.close()?;
        v
    };
    let last = first.last().ok_or("empty")?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(
        j.head(),
        Head {
            seq: 10,
            hash: last.hash
        }
    );
    assert_eq!(j.durable_seq(), 10);
    let a = j.append_durable(job(0), Timestamp(99), 3, b"after reopen")?;
    assert_eq!(a.seq, 11);
    assert_eq!(a.job_seq, 5); // job 0 had records 0,3,6,9
    let r = j.iter_from(11).next().ok_or("missing")??;
    assert_eq!(r.hash(), link(&last.hash, r.encoded_body()));
    assert_eq!(r.payload(), b"after reopen");
    let report = j.verify()?;
    assert_eq!((report.records, report.jobs, report.head_seq), (11, 3, 11));
    assert_eq!(report.head_hash, a.hash);
    drop(j);
    // Drop flushed, a third open sees the same.
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.head().hash, a.hash);
    Ok(())
}

#[test]
fn reads_return_what_was_appended() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let appended = fill(&j, 12, 4)?;
    let all: Vec<Record> = j.iter_from(1).collect::<Result<_>>()?;
    assert_eq!(all.len(), 12);
    for (r, a) in all.iter().zip(&appended) {
        assert_eq!((r.seq(), r.job_seq(), r.hash()), (a.seq, a.job_seq, a.hash));
        assert_eq!(r.payload(), payload(r.job(), r.job_seq()).as_slice());
        assert_eq!(r.payload_format(), 3);
        assert_eq!(r.format_version(), FORMAT_VERSION);
    }
    let tail: Vec<u64> = j
        .iter_from(10)
        .map(|r| r.map(|r| r.seq()))
        .collect::<Result<_>>()?;
    assert_eq!(tail, vec![10, 11, 12]);
    assert_eq!(j.iter_from(13).count(), 0);
    let job1: Vec<(u64, u64)> = j
        .iter_job(job(1))
        .map(|r| r.map(|r| (r.seq(), r.job_seq())))
        .collect::<Result<_>>()?;
    assert_eq!(job1, vec![(2, 1), (6, 2), (10, 3)]);
    let jobs = j.jobs()?;
    assert_eq!(jobs.len(), 4);
    assert!(jobs.iter().all(|s| s.last_job_seq == 3));
    assert_eq!(jobs.iter().map(|s| s.last_seq).max(), Some(12));
    Ok(())
}

#[test]
fn changed_payload_is_a_hash_mismatch_everywhere() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 10, 2)?;
    // Record 5 = job 0, job seq 3. Flip a payload byte, keep the hash.
    tamper(&j, 5, |v| {
        let at = v.len() - HASH_LEN - 1;
        v[at] ^= 0x20;
    })?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::HashMismatch { seq: 5, .. })
    ));
    let err = j.iter_from(1).find_map(|r| r.err()).ok_or("not detected")?;
    assert!(
        matches!(err, JournalError::HashMismatch { seq: 5, .. }),
        "{err}"
    );
    let err = j
        .iter_job(job(0))
        .find_map(|r| r.err())
        .ok_or("not detected")?;
    assert!(
        matches!(err, JournalError::HashMismatch { seq: 5, .. }),
        "{err}"
    );
    // The message names the record.
    assert!(err.to_string().contains("record 5"));
    Ok(())
}

#[test]
fn rehashed_record_breaks_its_successor() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let appended = fill(&j, 8, 2)?;
    // A forger rewrites record 4 with a self-consistent hash; record 5 no
    // longer links to it.
    let prev = appended[2].hash;
    tamper(&j, 4, |v| {
        let body_end = v.len() - HASH_LEN;
        v[body_end - 1] ^= 1;
        let h = link(&prev, &v[..body_end]);
        v[body_end..].copy_from_slice(&h.0);
    })?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::HashMismatch { seq: 5, .. })
    ));
    Ok(())
}

#[test]
fn missing_record_is_a_gap() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 6, 2)?;
    j.raw_db().remove(record_key(3))?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::Gap {
            expected: 3,
            found: Some(4)
        })
    ));
    let err = j
        .iter_job(job(0))
        .find_map(|r| r.err())
        .ok_or("not detected")?;
    assert!(
        matches!(err, JournalError::IndexMismatch { seq: 3, .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn index_disagreement_is_detected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 6, 2)?;
    // Job 1, job seq 2 is record 4; point its index at record 6.
    j.raw_db()
        .insert(index_key(job(1), 2), &6u64.to_be_bytes()[..])?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::IndexMismatch { seq: 4, .. })
    ));
    let err = j
        .iter_job(job(1))
        .find_map(|r| r.err())
        .ok_or("not detected")?;
    assert!(
        matches!(err, JournalError::IndexMismatch { seq: 6, .. }),
        "{err}"
    );
    // A stray index entry is found too.
    j.raw_db()
        .insert(index_key(job(1), 2), &4u64.to_be_bytes()[..])?;
    j.verify()?;
    j.raw_db()
        .insert(index_key(job(7), 1), &1u64.to_be_bytes()[..])?;
    assert!(matches!(j.verify(), Err(JournalError::Inconsistent { .. })));
    Ok(())
}

#[test]
fn job_head_disagreement_is_detected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 6, 2)?;
    let bad = JobHeadValue {
        last_job_seq: 2,
        last_seq: 3,
    }
    .encode();
    j.raw_db().insert(job_head_key(job(0)), &bad[..])?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::IndexMismatch { .. })
    ));
    Ok(())
}

#[test]
fn tampered_tail_fails_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let j = Journal::open(dir.path(), Options::new())?;
        fill(&j, 5, 2)?;
        tamper(&j, 5, |v| v[10] ^= 0xFF)?;
        j.raw_db().flush()?;
    }
    match Journal::open(dir.path(), Options::new()) {
        Err(JournalError::HashMismatch { seq: 5, .. }) => Ok(()),
        other => Err(format!("unexpected {other:?}").into()),
    }
}

#[test]
fn meta_head_disagreement_fails_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let j = Journal::open(dir.path(), Options::new())?;
        fill(&j, 5, 2)?;
        let meta = MetaValue {
            seq: 5,
            hash: Hash([7; 32]),
        }
        .encode();
        j.raw_db().insert(META_KEY, &meta[..])?;
        j.raw_db().flush()?;
    }
    assert!(matches!(
        Journal::open(dir.path(), Options::new()),
        Err(JournalError::IndexMismatch { seq: 5, .. })
    ));
    Ok(())
}

#[test]
fn truncated_tail_fails_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let j = Journal::open(dir.path(), Options::new())?;
        fill(&j, 5, 2)?;
        j.raw_db().remove(record_key(5))?;
        j.raw_db().flush()?;
    }
    assert!(matches!(
        Journal::open(dir.path(), Options::new()),
        Err(JournalError::Gap {
            expected: 5,
            found: None
        })
    ));
    Ok(())
}

#[test]
fn unknown_future_version_names_the_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let j = Journal::open(dir.path(), Options::new())?;
        fill(&j, 5, 2)?;
        tamper(&j, 3, |v| {
            v[..2].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes())
        })?;
        let err = j.verify().err().ok_or("not detected")?;
        assert!(
            matches!(
                err,
                JournalError::UnknownVersion {
                    seq: 3,
                    version: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("record 3"));
        tamper(&j, 5, |v| v[..2].copy_from_slice(&7u16.to_be_bytes()))?;
        j.raw_db().flush()?;
    }
    // The last record is checked at open.
    assert!(matches!(
        Journal::open(dir.path(), Options::new()),
        Err(JournalError::UnknownVersion {
            seq: 5,
            version: 7,
            ..
        })
    ));
    Ok(())
}

#[test]
fn payload_limit_is_enforced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        j.append(job(0), Timestamp(0), 0, &big),
        Err(JournalError::PayloadTooLarge { .. })
    ));
    assert_eq!(j.head().seq, 0);
    j.append_durable(job(0), Timestamp(0), 0, &big[1..])?;
    Ok(())
}

fn blob_files(dir: &Path) -> std::io::Result<usize> {
    match std::fs::read_dir(dir.join("blobs")) {
        Ok(entries) => Ok(entries.count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// sled never fsyncs blob files; the journal must keep every page inline in
/// the log: records up to 32 KiB (a full leaf of them) as one value, larger
/// ones as 32 KiB fragments.
#[test]
fn large_payloads_never_spill_into_blob_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let inline: Vec<u8> = (0..32 * 1024).map(|i| (i % 251) as u8).collect();
    for i in 0..300u64 {
        j.append(job(u128::from(i % 3)), Timestamp(0), 0, &inline)?;
    }
    let huge: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 239) as u8).collect();
    for i in 0..3u128 {
        j.append(job(i), Timestamp(0), 0, &huge)?;
    }
    j.commit_all()?;
    assert_eq!(blob_files(dir.path())?, 0, "sled wrote blob files");
    drop(j);
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.verify()?.records, 303);
    // The detector works: a value beyond the threshold does spill.
    j.raw_db().insert(b"x-probe", vec![1u8; SEGMENT_SIZE / 2])?;
    j.raw_db().flush()?;
    assert!(blob_files(dir.path())? > 0, "probe did not create a blob");
    Ok(())
}

fn patterned(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i % 253).unwrap_or(0) ^ salt)
        .collect()
}

/// Records above 32 KiB are stored in fragments, which every reader joins:
/// iteration, per-job iteration, the tail check at open (the last record is
/// fragmented) and verify.
#[test]
fn fragmented_records_read_back_exactly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sizes = [
        32 * 1024,
        32 * 1024 + 1,
        64 * 1024,
        100_000,
        1024 * 1024 + 7,
        3,
        2 * 1024 * 1024,
    ];
    {
        let j = Journal::open(dir.path(), Options::new())?;
        for (i, len) in sizes.iter().enumerate() {
            let salt = u8::try_from(i)?;
            j.append(
                job(u128::from(salt % 2)),
                Timestamp(0),
                1,
                &patterned(*len, salt),
            )?;
        }
        j.commit_all()?;
    }
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.head().seq, 7);
    let read: Vec<Vec<u8>> = j
        .iter_from(1)
        .map(|r| r.map(Record::into_payload))
        .collect::<Result<_>>()?;
    let expected: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, len)| patterned(*len, u8::try_from(i).unwrap_or(0)))
        .collect();
    assert_eq!(read, expected);
    let job1: Vec<usize> = j
        .iter_job(job(1))
        .map(|r| r.map(|r| r.payload().len()))
        .collect::<Result<_>>()?;
    assert_eq!(job1, [sizes[1], sizes[3], sizes[5]]);
    assert_eq!(j.verify()?.records, 7);
    Ok(())
}

fn fragment_keys(j: &Journal) -> Result<Vec<sled::IVec>> {
    j.raw_db()
        .scan_prefix([crate::fragment::FRAGMENT_TAG])
        .keys()
        .map(|k| k.map_err(JournalError::from))
        .collect()
}

#[test]
fn a_tampered_or_missing_fragment_names_its_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    j.append(job(0), Timestamp(0), 1, b"small")?;
    j.append(job(0), Timestamp(0), 1, &patterned(200_000, 1))?;
    j.append(job(0), Timestamp(0), 1, b"after")?;
    j.commit_all()?;
    let keys = fragment_keys(&j)?;
    assert_eq!(keys.len(), 6, "200 000 bytes: a head and 6 fragments");

    // One flipped byte in the middle of a fragment breaks the chain there.
    let original = j.raw_db().get(&keys[2])?.ok_or("fragment")?;
    let mut flipped = original.to_vec();
    flipped[100] ^= 0x40;
    j.raw_db().insert(&keys[2], flipped)?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::HashMismatch { seq: 2, .. })
    ));
    assert!(matches!(
        j.iter_job(job(0)).nth(1),
        Some(Err(JournalError::HashMismatch { seq: 2, .. }))
    ));

    // A missing fragment is a corrupt record 2.
    j.raw_db().remove(&keys[2])?;
    let err = j.verify().err().ok_or("verify passed")?;
    assert!(
        matches!(&err, JournalError::CorruptRecord { seq: 2, reason } if reason.contains("fragment 3 of 6 is missing")),
        "{err}"
    );

    // Restored, plus a stray fragment nobody needs: bookkeeping is inconsistent.
    j.raw_db().insert(&keys[2], original)?;
    assert_eq!(j.verify()?.records, 3);
    j.raw_db()
        .insert(crate::fragment::fragment_key(3, 1), vec![0u8; 10])?;
    assert!(matches!(j.verify(), Err(JournalError::Inconsistent { .. })));
    Ok(())
}

#[test]
fn second_open_of_the_same_directory_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _j = Journal::open(dir.path(), Options::new())?;
    let quick = Options::new().lock_wait(Duration::from_millis(20));
    assert!(matches!(
        Journal::open(dir.path(), quick),
        Err(JournalError::Storage(_))
    ));
    Ok(())
}

#[test]
fn group_commit_with_many_threads() -> TestResult {
    const THREADS: u128 = 8;
    const PER_THREAD: u64 = 60;
    let dir = tempfile::tempdir()?;
    let j = Arc::new(Journal::open(dir.path(), Options::new())?);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = Arc::clone(&j);
            std::thread::spawn(move || -> Result<Vec<Appended>> {
                let mut mine = Vec::new();
                for k in 1..=PER_THREAD {
                    let id = job(t);
                    let a = j.append(id, Timestamp(0), 1, &payload(id, k))?;
                    assert_eq!(a.job_seq, k);
                    j.commit(a.seq)?;
                    assert!(j.durable_seq() >= a.seq, "commit returned before durable");
                    mine.push(a);
                }
                Ok(mine)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "writer panicked")??);
    }
    let stats = j.stats();
    let total = u64::try_from(THREADS)? * PER_THREAD;
    assert_eq!(stats.appends, total);
    assert!(
        stats.flushes < stats.appends,
        "no flush was shared: {} flushes for {} appends",
        stats.flushes,
        stats.appends
    );
    drop(j);
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.head().seq, total);
    for a in &all {
        let r = j.iter_from(a.seq).next().ok_or("missing")??;
        assert_eq!((r.seq(), r.job_seq(), r.hash()), (a.seq, a.job_seq, a.hash));
        assert_eq!(r.payload(), payload(r.job(), r.job_seq()).as_slice());
    }
    let report = j.verify()?;
    assert_eq!((report.records, report.jobs), (total, 8));
    Ok(())
}

#[test]
fn sled_flush_cost_is_shared_not_per_append_without_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let before = j.stats().flushes;
    fill(&j, 50, 5)?;
    assert_eq!(j.stats().flushes, before + 1, "one commit, one flush");
    assert_eq!(j.durable_seq(), 50);
    Ok(())
}

#[test]
fn concurrent_appends_to_one_job_are_combined_consistently() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Arc::new(Journal::open(dir.path(), Options::new())?);
    let handles: Vec<_> = (0..6u8)
        .map(|t| {
            let j = Arc::clone(&j);
            std::thread::spawn(move || -> Result<Vec<Appended>> {
                (0..50u8)
                    .map(|k| j.append(job(0), Timestamp(0), 0, &[t, k]))
                    .collect()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "writer panicked")??);
    }
    j.commit_all()?;
    all.sort_by_key(|a| a.seq);
    for (i, a) in all.iter().enumerate() {
        let n = u64::try_from(i)? + 1;
        assert_eq!((a.seq, a.job_seq), (n, n), "one job: job seq follows seq");
    }
    let stats = j.stats();
    assert_eq!(stats.appends, 300);
    assert!(stats.append_batches <= stats.appends);
    let report = j.verify()?;
    assert_eq!((report.records, report.jobs), (300, 1));
    let jobs = j.jobs()?;
    assert_eq!((jobs[0].last_job_seq, jobs[0].last_seq), (300, 300));
    // Every record carries what its caller appended.
    let mut seen: Vec<Vec<u8>> = j
        .iter_job(job(0))
        .map(|r| r.map(Record::into_payload))
        .collect::<Result<_>>()?;
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300);
    Ok(())
}

#[test]
fn appended_records_are_visible_once_committed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let first = j.append_durable(job(0), Timestamp(1), 1, b"one")?;
    let a = j.append(job(0), Timestamp(2), 1, b"two")?;
    let b = j.append(job(1), Timestamp(3), 1, b"three")?;
    // Chained and numbered at once...
    assert_eq!((a.seq, a.job_seq, b.seq, b.job_seq), (2, 2, 3, 1));
    assert_eq!(
        j.head(),
        Head {
            seq: 3,
            hash: b.hash
        }
    );
    assert_eq!(j.stats().appended_seq, 3);
    assert_eq!(j.durable_seq(), 1);
    // ...but only queued: readers see the committed prefix.
    assert_eq!(j.iter_from(1).count(), 1);
    assert_eq!(j.iter_from(2).count(), 0);
    assert_eq!(j.iter_job(job(0)).count(), 1);
    assert_eq!(j.iter_job(job(1)).count(), 0);
    assert_eq!(j.jobs()?.len(), 1);
    let report = j.verify()?;
    assert_eq!((report.records, report.head_hash), (1, first.hash));
    // Committing the first queued record writes everything queued.
    let flushes = j.stats().flushes;
    j.commit(a.seq)?;
    assert_eq!(j.stats().flushes, flushes + 1);
    assert_eq!(j.durable_seq(), 3);
    let seqs: Vec<u64> = j
        .iter_from(1)
        .map(|r| r.map(|r| r.seq()))
        .collect::<Result<_>>()?;
    assert_eq!(seqs, vec![1, 2, 3]);
    let r = j.iter_job(job(1)).next().ok_or("missing")??;
    assert_eq!((r.seq(), r.hash(), r.payload()), (3, b.hash, &b"three"[..]));
    assert_eq!(j.verify()?.head_hash, b.hash);
    Ok(())
}

#[test]
fn drop_and_close_commit_what_was_appended() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = {
        let j = Journal::open(dir.path(), Options::new())?;
        j.append(job(0), Timestamp(0), 1, b"dropped")?
    };
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(
        j.head(),
        Head {
            seq: 1,
            hash: a.hash
        }
    );
    let b = j.append(job(0), Timestamp(0), 1, b"closed")?;
    j.close()?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(
        j.head(),
        Head {
            seq: 2,
            hash: b.hash
        }
    );
    assert_eq!(j.verify()?.records, 2);
    Ok(())
}

#[test]
fn one_writer_costs_one_flush_per_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let before = j.stats();
    for i in 0..20u8 {
        j.append_durable(job(u128::from(i % 3)), Timestamp(0), 1, &[i])?;
    }
    let after = j.stats();
    assert_eq!(after.flushes - before.flushes, 20);
    assert_eq!(after.append_batches - before.append_batches, 20);
    Ok(())
}

#[test]
fn a_full_queue_is_committed_by_the_append() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let n = u64::try_from(crate::append::QUEUE_LIMIT_RECORDS)?;
    for i in 0..n - 1 {
        j.append(job(u128::from(i % 5)), Timestamp(0), 1, &i.to_be_bytes())?;
    }
    assert_eq!(j.durable_seq(), 0);
    assert_eq!(j.stats().flushes, 0);
    j.append(job(0), Timestamp(0), 1, b"last")?;
    assert_eq!(j.durable_seq(), n);
    assert_eq!(j.stats().flushes, 1);
    assert_eq!(j.iter_from(1).count(), usize::try_from(n)?);
    // Bytes count too: 32 payloads of 32 KiB exceed 1 MiB.
    let big = vec![5u8; 32 * 1024];
    for _ in 0..32 {
        j.append(job(1), Timestamp(0), 1, &big)?;
    }
    assert_eq!(j.durable_seq(), n + 32);
    assert_eq!(j.verify()?.records, n + 32);
    Ok(())
}

#[test]
fn job_sequences_survive_job_cache_pruning() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    let jobs = 4500u128;
    for round in 1..=2u64 {
        for k in 0..jobs {
            let a = j.append(job(k), Timestamp(0), 1, &[])?;
            assert_eq!(a.job_seq, round, "job {k}");
        }
        j.commit_all()?;
    }
    let a = j.append_durable(job(7), Timestamp(0), 1, &[])?;
    assert_eq!(a.job_seq, 3);
    let report = j.verify()?;
    assert_eq!((report.records, report.jobs), (2 * 4500 + 1, 4500));
    Ok(())
}

#[test]
fn concurrent_writers_fill_each_flush() -> TestResult {
    const THREADS: u128 = 4;
    const PER_THREAD: u64 = 100;
    let dir = tempfile::tempdir()?;
    let j = Arc::new(Journal::open(dir.path(), Options::new())?);
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (j, barrier) = (Arc::clone(&j), Arc::clone(&barrier));
            std::thread::spawn(move || -> Result<()> {
                barrier.wait();
                for k in 0..PER_THREAD {
                    j.append_durable(job(t), Timestamp(0), 1, &k.to_be_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "writer panicked")??;
    }
    let stats = j.stats();
    assert_eq!(stats.appends, 400);
    assert_eq!(stats.append_batches, stats.flushes);
    // Writers that come back from a commit are gathered into the next
    // batch: far fewer flushes than records (timing-dependent, so loose).
    assert!(
        stats.flushes <= 300,
        "{} flushes for 400 records",
        stats.flushes
    );
    assert_eq!(j.verify()?.records, 400);
    Ok(())
}

// ---- pruning ----------------------------------------------------------

/// Fills three jobs (one with a fragmented record), prunes job 1.
fn pruned_fixture(dir: &Path) -> Result<(Journal, Vec<Appended>)> {
    let j = Journal::open(dir, Options::new())?;
    let mut appended = fill(&j, 30, 3)?;
    // A fragmented record in job 1, then one more record of job 0.
    appended.push(j.append_durable(job(1), Timestamp(99), 3, &patterned(100_000, 7))?);
    appended.push(j.append_durable(job(0), Timestamp(100), 3, b"after")?);
    Ok((j, appended))
}

#[test]
fn pruning_keeps_the_chain_and_removes_the_content() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (j, appended) = pruned_fixture(dir.path())?;
    let before = j.verify()?;
    assert!(!fragment_keys(&j)?.is_empty());
    let report = j.prune_jobs(&[job(1)])?;
    assert_eq!((report.jobs, report.records), (1, 11));
    assert!(report.bytes_removed > 100_000);
    // Fragments of the pruned record are gone with it.
    assert!(fragment_keys(&j)?.is_empty());

    let after = j.verify()?;
    assert_eq!(after.records, before.records);
    assert_eq!(after.head_hash, before.head_hash);
    assert_eq!(after.pruned, 11);
    // Readers no longer see job 1; its place in the chain is a stub.
    assert_eq!(j.iter_job(job(1)).count(), 0);
    assert!(j.iter_from(1).all(|r| r.is_ok_and(|r| r.job() != job(1))));
    assert_eq!(j.iter_from(1).count(), 32 - 11);
    let stubs: Vec<PrunedLink> = j
        .iter_chain_from(1)
        .filter_map(|e| match e {
            Ok(ChainEntry::Pruned(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(stubs.len(), 11);
    for stub in &stubs {
        let original = appended
            .iter()
            .find(|a| a.seq == stub.seq)
            .ok_or("stub seq")?;
        assert_eq!((stub.hash, stub.job_seq), (original.hash, original.job_seq));
    }
    assert!(j.jobs()?.iter().all(|s| s.job != job(1)));
    assert_eq!(
        j.pruned_jobs()?,
        vec![PrunedJob {
            job: job(1),
            last_job_seq: 11,
            last_seq: 31
        }]
    );
    // Pruning again is a no-op; a pruned job takes no more records.
    assert_eq!(j.prune_jobs(&[job(1)])?, PruneReport::default());
    assert!(matches!(
        j.append(job(1), Timestamp(1), 3, b"late"),
        Err(JournalError::JobPruned { .. })
    ));
    // Other jobs continue and the chain links across the stubs.
    let next = j.append_durable(job(2), Timestamp(101), 3, b"next")?;
    assert_eq!(next.job_seq, 11);
    j.close()?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.verify()?.records, 33);
    assert!(matches!(
        j.append(job(1), Timestamp(1), 3, b"late"),
        Err(JournalError::JobPruned { .. })
    ));
    Ok(())
}

#[test]
fn a_journal_whose_last_record_was_pruned_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 6, 2)?;
    // The last record belongs to job 1.
    j.prune_jobs(&[job(1), job(0)])?;
    let head = j.head();
    j.close()?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.head(), head);
    assert_eq!(j.verify()?.pruned, 6);
    assert_eq!(j.iter_from(1).count(), 0);
    let a = j.append_durable(job(5), Timestamp(7), 3, b"new")?;
    assert_eq!((a.seq, a.job_seq), (7, 1));
    j.verify()?;
    Ok(())
}

#[test]
fn a_changed_stub_hash_breaks_the_next_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (j, _) = pruned_fixture(dir.path())?;
    j.prune_jobs(&[job(1)])?;
    // Record 2 belongs to job 1 (round robin), record 3 to job 2.
    tamper(&j, 2, |v| {
        let last = v.len() - 1;
        v[last] ^= 1;
    })?;
    match j.verify() {
        Err(JournalError::HashMismatch { seq, .. }) => assert_eq!(seq, 3),
        other => return Err(format!("expected a mismatch at 3, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_stub_replacing_a_live_record_is_detected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (j, appended) = pruned_fixture(dir.path())?;
    // Forge a stub for record 1 (job 0), which was not pruned: same hash,
    // so the chain still links, but the job index and pruned entries
    // disagree.
    let forged = PrunedLink {
        seq: 1,
        job: job(0),
        job_seq: 1,
        timestamp: Timestamp(0),
        hash: appended[0].hash,
    };
    j.raw_db().insert(record_key(1), forged.encode().to_vec())?;
    assert!(matches!(
        j.verify(),
        Err(JournalError::IndexMismatch { seq: 4, .. })
    ));
    Ok(())
}

#[test]
fn a_job_with_uncommitted_records_is_not_pruned() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 4, 2)?;
    j.append(job(0), Timestamp(9), 3, b"queued")?;
    assert!(matches!(
        j.prune_jobs(&[job(0)]),
        Err(JournalError::JobBusy { .. })
    ));
    j.commit_all()?;
    assert_eq!(j.prune_jobs(&[job(0)])?.records, 3);
    j.verify()?;
    Ok(())
}

// ---- head anchor ---------------------------------------------------------

#[test]
fn a_log_cut_short_by_a_flipped_byte_is_refused_at_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    for i in 0..120u64 {
        let payload = if i == 60 {
            b"MARKER-OF-RECORD-61".to_vec()
        } else {
            i.to_be_bytes().to_vec()
        };
        j.append_durable(job(u128::from(i % 3)), Timestamp(0), 3, &payload)?;
    }
    j.close()?;
    assert_eq!(crate::anchor::read(dir.path()).map(|h| h.seq), Some(120));
    let db = dir.path().join("db");
    let mut bytes = std::fs::read(&db)?;
    let needle = b"MARKER-OF-RECORD-61";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or("the marker is in the log")?;
    bytes[at + 3] ^= 0x01;
    std::fs::write(&db, &bytes)?;
    match Journal::open(dir.path(), Options::new()) {
        Err(JournalError::Truncated { anchored, head }) => {
            assert_eq!(anchored, 120);
            assert!(head < 120, "{head}");
        }
        Err(other) => return Err(format!("expected Truncated, got {other}").into()),
        Ok(j) => {
            return Err(format!("the damaged journal opened with head {:?}", j.head()).into());
        }
    }
    Ok(())
}

#[test]
fn an_anchor_naming_another_hash_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 10, 2)?;
    j.close()?;
    let forged = Head {
        seq: 5,
        hash: Hash([7; 32]),
    };
    crate::anchor::write(dir.path(), forged)?;
    assert!(matches!(
        Journal::open(dir.path(), Options::new()),
        Err(JournalError::AnchorMismatch { seq: 5, .. })
    ));
    Ok(())
}

#[test]
fn a_torn_or_missing_anchor_does_not_stop_a_good_journal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let j = Journal::open(dir.path(), Options::new())?;
    fill(&j, 10, 2)?;
    j.close()?;
    std::fs::write(crate::anchor::path(dir.path()), b"sccm-journal-anchor 1\n1")?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.verify()?.records, 10);
    // Opening anchors the head again.
    assert_eq!(crate::anchor::read(dir.path()).map(|h| h.seq), Some(10));
    j.close()?;
    std::fs::remove_file(crate::anchor::path(dir.path()))?;
    let j = Journal::open(dir.path(), Options::new())?;
    assert_eq!(j.verify()?.records, 10);
    Ok(())
}
