//! Audit exports of a real journal (the demo's push and import through both simulators) and of a
//! hostile one: every format exported and verified (by the binary and by the Python verifier of
//! docs/audit.md), the tamper suite (flipped bytes, deleted, reordered, duplicated and truncated
//! records, spliced exports), filters as sub-chains, signatures (with `openssl`), damaged
//! journals, and the HTML page rendered by headless Chromium. The journal is never changed.

#![cfg(unix)]

use crate::support::audit::{
    HOSTILE_SCRIPT, SECRETS, arg, copy_demo_journal, demo, have, hostile_journal, python_verifier,
    run, unit_of, units,
};
use crate::support::e2e::tree_digest;
use crate::support::temp_dir;
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Number of records of `journal`, from `verify --journal`.
fn journal_records(journal: &Path) -> u64 {
    let (code, stdout, stderr) = run(&["verify", "--journal", arg(journal)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    let (n, rest) = first.split_once('/').expect("N/N");
    assert_eq!(rest, format!("{n} records valid"), "{stdout}");
    n.parse().expect("a number")
}

/// `export --journal JOURNAL --format FORMAT EXTRA… -o DIR/NAME`; the written file.
fn export(journal: &Path, format: &str, extra: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["export", "--journal", arg(journal), "--format", format];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", arg(&out)]);
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "export {args:?}:\n{stdout}{stderr}");
    out
}

/// `verify FILE EXTRA…`: exit code and everything printed.
fn verify(file: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", arg(file)];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(&args);
    (code, format!("{stdout}{stderr}"))
}

/// The Python verifier of docs/audit.md on `file`: exit code and output.
fn python(dir: &Path, file: &Path, extra: &[&str]) -> (i32, String) {
    let script = python_verifier(dir);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(file)
        .args(extra)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The demo journal's full exports, made once: (records, jsonl bytes, csv bytes).
fn full_exports() -> &'static (u64, Vec<u8>, Vec<u8>) {
    static EXPORTS: OnceLock<(u64, Vec<u8>, Vec<u8>)> = OnceLock::new();
    EXPORTS.get_or_init(|| {
        let dir = temp_dir();
        let journal = demo().join("journal");
        let jsonl = export(&journal, "jsonl", &[], dir.path(), "all.jsonl");
        let csv = export(&journal, "csv", &[], dir.path(), "all.csv");
        (
            journal_records(&journal),
            std::fs::read(jsonl).expect("read"),
            std::fs::read(csv).expect("read"),
        )
    })
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn exports_of_a_real_push_and_import_verify_in_every_format() {
    let dir = temp_dir();
    let demo = demo();
    let journal = demo.join("journal");
    let before = tree_digest(&journal).expect("digest");
    let n = journal_records(&journal);
    assert!(n > 20, "{n} records");
    let valid = format!("{n}/{n} records valid");

    let jsonl = export(&journal, "jsonl", &[], dir.path(), "all.jsonl");
    let csv = export(&journal, "csv", &[], dir.path(), "all.csv");
    let html = export(&journal, "html", &[], dir.path(), "all.html");
    for file in [&jsonl, &csv] {
        let (code, out) = verify(file, &[]);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with(&valid), "{out}");
        assert!(
            out.contains(&format!("{n} with their bytes rehashed")),
            "{out}"
        );
        // The journal still holds what was exported.
        let (code, out) = verify(file, &["--journal", arg(&journal)]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("the journal holds the export"), "{out}");
        // An auditor's own verifier agrees.
        let (code, out) = python(dir.path(), file, &[]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(out.trim(), valid);
    }
    // Through the configuration too.
    let config = demo.join("connector.toml");
    let (code, stdout, stderr) = run(&["verify", "--config", arg(&config)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with(&valid), "{stdout}");
    let by_config = dir.path().join("by-config.jsonl");
    let (code, stdout, stderr) = run(&[
        "export",
        "--config",
        arg(&config),
        "--format",
        "jsonl",
        "-o",
        arg(&by_config),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // What an auditor needs is there: every record, each with its hashes and bytes, the events
    // of both jobs, the scripts' exact text and the command's exact bytes.
    let lines = json_lines(&std::fs::read(&jsonl).expect("read"));
    assert_eq!(lines.len() as u64, n + 2);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["count"], n);
    assert_eq!(lines[lines.len() - 1]["type"], "trailer");
    let records = &lines[1..lines.len() - 1];
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
        assert_eq!(r["content"], "full", "{r}");
        for field in [
            "job",
            "job_seq",
            "timestamp",
            "event",
            "data",
            "prev_hash",
            "hash",
            "body",
        ] {
            assert!(!r[field].is_null(), "{field} missing: {r}");
        }
    }
    let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
    for name in [
        "ConnectorStarted",
        "CommandReceived",
        "Planned",
        "StepStarted",
        "StepSucceeded",
        "ResultReady",
        "JobFinished",
    ] {
        assert!(events.contains(&name), "{name} missing from {events:?}");
    }
    let kinds: Vec<&str> = records
        .iter()
        .filter_map(|r| r["data"]["CommandReceived"]["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["Push", "Import"]);
    let scripts: Vec<&str> = records
        .iter()
        .filter_map(|r| r["data"]["Planned"]["steps"].as_array())
        .flatten()
        .filter_map(|s| s["kind"]["Script"]["script"].as_str())
        .collect();
    assert!(scripts.len() >= 6, "{scripts:?}");
    assert!(
        scripts.iter().any(|s| s.contains("New-CMApplication")),
        "{scripts:?}"
    );
    let raw = records[1]["data"]["CommandReceived"]["raw_text"]
        .as_str()
        .expect("the command's bytes");
    assert!(raw.contains("FileZilla"), "{raw}");
    // The HTML page names the chain head.
    let page = std::fs::read_to_string(&html).expect("read");
    let head = lines[lines.len() - 1]["head"].as_str().expect("head");
    assert!(page.contains(head));

    // Nothing of the journal changed.
    assert_eq!(tree_digest(&journal).expect("digest"), before);
}

/// Applies `tamper` to the units of `bytes`, writes the result, and expects `verify` (and the
/// Python verifier) to fail, the binary naming `expect` in its report.
fn assert_refused(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    expect: &[&str],
    tamper: impl Fn(&mut Vec<Vec<u8>>),
) {
    let mut parts = units(bytes);
    tamper(&mut parts);
    let file = dir.join(name);
    std::fs::write(&file, parts.concat()).expect("written");
    let (code, out) = verify(&file, &[]);
    assert_eq!(code, 1, "{name}: {out}");
    for e in expect {
        assert!(out.contains(e), "{name}: {e:?} not in {out}");
    }
    assert!(out.contains("verification FAILED"), "{name}: {out}");
    let (code, out) = python(dir, &file, &[]);
    assert_ne!(code, 0, "{name}: the Python verifier accepted it: {out}");
}

#[test]
fn tampered_exports_are_refused_naming_the_first_bad_record() {
    let dir = temp_dir();
    let (n, jsonl, csv) = full_exports();
    for (ext, bytes) in [("jsonl", jsonl), ("csv", csv)] {
        let at = |seq: u64, parts: &Vec<Vec<u8>>| unit_of(parts, seq);
        assert_refused(
            dir.path(),
            &format!("deleted.{ext}"),
            bytes,
            &["record 10", "deleted"],
            |p| {
                let i = at(10, p);
                p.remove(i);
            },
        );
        assert_refused(
            dir.path(),
            &format!("reordered.{ext}"),
            bytes,
            &["record 10", "reordered"],
            |p| {
                let i = at(10, p);
                p.swap(i, i + 1);
            },
        );
        assert_refused(
            dir.path(),
            &format!("duplicated.{ext}"),
            bytes,
            &["record 11", "record 10 again"],
            |p| {
                let i = at(10, p);
                let copy = p[i].clone();
                p.insert(i + 1, copy);
            },
        );
        assert_refused(
            dir.path(),
            &format!("moved-last.{ext}"),
            bytes,
            &["record 1 "],
            |p| {
                let i = at(*n, p);
                let last = p.remove(i);
                p.insert(if ext == "csv" { 2 } else { 1 }, last);
            },
        );
        assert_refused(
            dir.path(),
            &format!("cut-mid-line.{ext}"),
            bytes,
            &["record 20", "truncated"],
            |p| {
                let i = at(20, p);
                p.truncate(i + 1);
                let half = p[i].len() / 2;
                p[i].truncate(half);
            },
        );
        assert_refused(
            dir.path(),
            &format!("cut-at-line.{ext}"),
            bytes,
            &["record 31", "truncated"],
            |p| {
                let i = at(30, p);
                p.truncate(i + 1);
            },
        );
        assert_refused(
            dir.path(),
            &format!("no-trailer.{ext}"),
            bytes,
            &["truncated"],
            |p| {
                p.pop();
            },
        );
        assert_refused(
            dir.path(),
            &format!("body-byte.{ext}"),
            bytes,
            &["record 7", "hash mismatch"],
            |p| {
                let i = at(7, p);
                // A byte of the body (the base64 after `body`): the recomputed hash differs.
                let text = String::from_utf8_lossy(&p[i]).into_owned();
                let pos = text
                    .rfind(if ext == "csv" {
                        ",AAE"
                    } else {
                        "\"body\":\"AAE"
                    })
                    .expect("a body")
                    + if ext == "csv" { 10 } else { 18 };
                let c = p[i][pos];
                p[i][pos] = if c == b'A' { b'B' } else { b'A' };
            },
        );
        assert_refused(
            dir.path(),
            &format!("shown-field.{ext}"),
            bytes,
            &["record 5", "differs from what the hashed body encodes"],
            |p| {
                // The displayed job sequence no longer matches the hashed bytes.
                let i = at(5, p);
                let text = String::from_utf8_lossy(&p[i]).into_owned();
                let seq = serde_json_job_seq(&text);
                p[i] = text.replacen(&seq.0, &seq.1, 1).into_bytes();
            },
        );
    }
}

/// For a record's line or row: (its job_seq as written, a different one), to swap in.
fn serde_json_job_seq(text: &str) -> (String, String) {
    if let Some(pos) = text.find("\"job_seq\":") {
        let rest = &text[pos + 10..];
        let end = rest.find(',').expect("a comma");
        let n: u64 = rest[..end].parse().expect("a number");
        (
            format!("\"job_seq\":{n},"),
            format!("\"job_seq\":{},", n + 1),
        )
    } else {
        // CSV: record,seq,,full,false,job,job_seq,… — the 7th column.
        let cols: Vec<&str> = text.splitn(8, ',').collect();
        let n: u64 = cols[6].parse().expect("a number");
        let from = format!(",{},{},", cols[5], n);
        let to = format!(",{},{},", cols[5], n + 1);
        (from, to)
    }
}

#[test]
fn spliced_exports_are_refused() {
    let dir = temp_dir();
    let journal = demo().join("journal");
    let (_, all, _) = full_exports();
    let lines = json_lines(all);
    let jobs: Vec<String> = lines
        .iter()
        .filter(|l| !l["data"]["CommandReceived"].is_null())
        .filter_map(|l| l["job"].as_str().map(String::from))
        .collect();
    assert_eq!(jobs.len(), 2, "a push and an import");
    for ext in ["jsonl", "csv"] {
        let a = export(
            &journal,
            ext,
            &["--job", &jobs[0]],
            dir.path(),
            &format!("a.{ext}"),
        );
        let b = export(
            &journal,
            ext,
            &["--job", &jobs[1]],
            dir.path(),
            &format!("b.{ext}"),
        );
        let a = std::fs::read(a).expect("read");
        let b = std::fs::read(b).expect("read");
        let (ua, ub) = (units(&a), units(&b));
        let skip = if ext == "csv" { 1 } else { 0 };
        // B appended after A: a second header after A's trailer.
        let file = dir.path().join(format!("concatenated.{ext}"));
        let mut both = a.clone();
        both.extend_from_slice(&ub[skip..].concat());
        std::fs::write(&file, &both).expect("written");
        let (code, out) = verify(&file, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("spliced"), "{out}");
        assert!(out.contains("record "), "{out}");
        // B's records between A's records and A's trailer: they continue A's chain, but A's
        // header and trailer end it earlier.
        let file = dir.path().join(format!("continued.{ext}"));
        let mut parts: Vec<Vec<u8>> = ua[..ua.len() - 1].to_vec();
        parts.extend_from_slice(&ub[skip + 1..ub.len() - 1]);
        parts.push(ua[ua.len() - 1].clone());
        std::fs::write(&file, parts.concat()).expect("written");
        let (code, out) = verify(&file, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("record "), "{out}");
        // A's header with B's records and trailer.
        let file = dir.path().join(format!("header-swapped.{ext}"));
        let mut parts: Vec<Vec<u8>> = ua[..skip + 1].to_vec();
        parts.extend_from_slice(&ub[skip + 1..]);
        std::fs::write(&file, parts.concat()).expect("written");
        let (code, out) = verify(&file, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("record "), "{out}");
    }
    // Interleaved by sequence: the connector job's export (records 1 and last, an omitted run
    // between) with the push's records.
    let c = export(
        &journal,
        "jsonl",
        &["--job", "00000000-0000-0000-0000-000000000000"],
        dir.path(),
        "c.jsonl",
    );
    let p = export(
        &journal,
        "jsonl",
        &["--job", &jobs[0]],
        dir.path(),
        "p.jsonl",
    );
    let (uc, up) = (
        units(&std::fs::read(c).expect("read")),
        units(&std::fs::read(p).expect("read")),
    );
    let mut records: Vec<(u64, Vec<u8>)> = uc[1..uc.len() - 1]
        .iter()
        .chain(&up[1..up.len() - 1])
        .map(|u| {
            let v: Value = serde_json::from_slice(u).expect("json");
            (v["seq"].as_u64().expect("seq"), u.clone())
        })
        .collect();
    records.sort_by_key(|(s, _)| *s);
    let mut parts = vec![uc[0].clone()];
    parts.extend(records.into_iter().map(|(_, u)| u));
    parts.push(uc[uc.len() - 1].clone());
    let file = dir.path().join("interleaved.jsonl");
    std::fs::write(&file, parts.concat()).expect("written");
    let (code, out) = verify(&file, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("again (duplicated or reordered)"), "{out}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Any byte of an export, changed in any way, fails verification.
    #[test]
    fn any_flipped_byte_fails_verification(position in any::<prop::sample::Index>(), flip in 1u8..=255, csv in any::<bool>()) {
        let (_, jsonl, csv_bytes) = full_exports();
        let mut bytes = if csv { csv_bytes.clone() } else { jsonl.clone() };
        let i = position.index(bytes.len());
        bytes[i] ^= flip;
        let outcome = sccm_connector::audit::verify_export(&bytes, None);
        prop_assert!(outcome.is_err(), "byte {} ^ {flip:#04x} passed", i);
    }
}

#[test]
fn a_flipped_byte_is_refused_through_the_binary_too() {
    let dir = temp_dir();
    let (_, jsonl, _) = full_exports();
    for i in [0, jsonl.len() / 3, jsonl.len() / 2, jsonl.len() - 2] {
        let mut bytes = jsonl.clone();
        bytes[i] ^= 0x20;
        let file = dir.path().join(format!("flip-{i}.jsonl"));
        std::fs::write(&file, &bytes).expect("written");
        let (code, out) = verify(&file, &[]);
        assert_eq!(code, 1, "byte {i}: {out}");
        assert!(out.contains("verification FAILED"), "{out}");
    }
}

#[test]
fn filtered_exports_are_verifiable_sub_chains() {
    let dir = temp_dir();
    let journal = demo().join("journal");
    let (n, all, _) = full_exports();
    let lines = json_lines(all);
    let records = &lines[1..lines.len() - 1];
    let push = records[1]["job"]
        .as_str()
        .expect("the push's job")
        .to_string();
    let command = records[1]["data"]["CommandReceived"]["command_id"]
        .as_str()
        .expect("its command id")
        .to_string();
    let ts = |seq: usize| {
        records[seq - 1]["timestamp"]
            .as_str()
            .expect("ts")
            .to_string()
    };
    let (since, until) = (ts(10), ts(20));
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("job", vec!["--job".into(), push.clone()]),
        ("command", vec!["--job".into(), command.clone()]),
        (
            "connector",
            vec![
                "--job".into(),
                "00000000-0000-0000-0000-000000000000".into(),
            ],
        ),
        (
            "window",
            vec![
                "--since".into(),
                since.clone(),
                "--until".into(),
                until.clone(),
            ],
        ),
        (
            "job-window",
            vec![
                "--job".into(),
                push.clone(),
                "--since".into(),
                since.clone(),
            ],
        ),
        (
            "dates",
            vec![
                "--since".into(),
                "2000-01-01".into(),
                "--until".into(),
                "2999-12-31".into(),
            ],
        ),
        ("nothing", vec!["--until".into(), "1999-12-31".into()]),
    ];
    for (name, extra) in &cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        for ext in ["jsonl", "csv"] {
            let file = export(&journal, ext, &extra, dir.path(), &format!("{name}.{ext}"));
            let (code, out) = verify(&file, &[]);
            assert_eq!(code, 0, "{name}.{ext}: {out}");
            let (code, py) = python(dir.path(), &file, &[]);
            assert_eq!(code, 0, "{name}.{ext}: {py}");
            assert_eq!(out.lines().next(), py.lines().next(), "{name}.{ext}");
            let (code, out) = verify(&file, &["--journal", arg(&journal)]);
            assert_eq!(code, 0, "{name}.{ext}: {out}");
        }
        let file = dir.path().join(format!("{name}.jsonl"));
        let lines = json_lines(&std::fs::read(&file).expect("read"));
        let header = &lines[0];
        let shown: Vec<&Value> = lines[1..lines.len() - 1]
            .iter()
            .filter(|l| l["content"] == "full")
            .collect();
        match *name {
            "job" | "command" => {
                assert!(shown.iter().all(|l| l["job"] == push.as_str()));
                assert_eq!(header["filter"]["jobs"][0], push.as_str());
            }
            "connector" => {
                assert_eq!(
                    (header["first_seq"].as_u64(), header["last_seq"].as_u64()),
                    (Some(1), Some(*n))
                );
                let omitted: Vec<&Value> =
                    lines.iter().filter(|l| l["content"] == "omitted").collect();
                assert!(!omitted.is_empty(), "{lines:?}");
            }
            "window" => {
                for l in &shown {
                    let t = l["timestamp"].as_str().expect("ts");
                    assert!(t >= since.as_str() && t <= until.as_str(), "{t}");
                }
                assert!(
                    header["first_seq"].as_u64() <= Some(10)
                        && header["last_seq"].as_u64() >= Some(20)
                );
            }
            "dates" => assert_eq!(shown.len() as u64, *n),
            "nothing" => {
                assert_eq!(header["count"], 0);
                let (_, out) = verify(&file, &[]);
                assert!(out.starts_with("0/0 records valid"), "{out}");
            }
            _ => assert!(!shown.is_empty()),
        }
    }
    // A filter that cannot be read is refused before anything is written.
    let (code, _, stderr) = run(&[
        "export",
        "--journal",
        arg(&journal),
        "--format",
        "jsonl",
        "--since",
        "last tuesday",
        "-o",
        arg(&dir.path().join("x.jsonl")),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--since"), "{stderr}");
    let (code, _, stderr) = run(&[
        "export",
        "--journal",
        arg(&journal),
        "--format",
        "jsonl",
        "--job",
        "no-such-command",
        "-o",
        arg(&dir.path().join("x.jsonl")),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no-such-command"), "{stderr}");
    assert!(!dir.path().join("x.jsonl").exists());
}

#[test]
fn signed_exports_verify_with_their_key_only() {
    let dir = temp_dir();
    let demo = demo();
    let journal = demo.join("journal");
    let keys = dir.path().join("keys");
    let (code, stdout, stderr) = run(&["audit", "keygen", "--out", arg(&keys)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let private = keys.join("audit-signing.pem");
    let public = keys.join("audit-signing.pub.pem");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        std::fs::read_to_string(&public)
            .expect("pub")
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // keygen never overwrites.
    let (code, _, _) = run(&["audit", "keygen", "--out", arg(&keys)]);
    assert_ne!(code, 0);
    let other = dir.path().join("other");
    assert_eq!(run(&["audit", "keygen", "--out", arg(&other)]).0, 0);
    let other_public = other.join("audit-signing.pub.pem");

    let signed = export(
        &journal,
        "jsonl",
        &["--signing-key", arg(&private)],
        dir.path(),
        "signed.jsonl",
    );
    let signed_csv = export(
        &journal,
        "csv",
        &["--signing-key", arg(&private)],
        dir.path(),
        "signed.csv",
    );
    // The key named by the configuration's [audit] signing_key.
    let config = dir.path().join("connector.toml");
    let text = std::fs::read_to_string(demo.join("connector.toml")).expect("config");
    std::fs::write(
        &config,
        format!("{text}\n[audit]\nsigning_key = '{}'\n", private.display()),
    )
    .expect("written");
    let by_config = dir.path().join("by-config.jsonl");
    let (code, stdout, stderr) = run(&[
        "export",
        "--config",
        arg(&config),
        "--format",
        "jsonl",
        "-o",
        arg(&by_config),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("signed (Ed25519)"), "{stdout}");
    for file in [&signed, &signed_csv, &by_config] {
        let (code, out) = verify(file, &["--public-key", arg(&public)]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("signature valid for the given public key"),
            "{out}"
        );
        let (code, out) = verify(file, &["--public-key", arg(&other_public)]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("does not verify with the given public key"),
            "{out}"
        );
    }
    // A tampered signature.
    let text = std::fs::read_to_string(&signed).expect("read");
    let pos = text.rfind("\"value\":\"").expect("a signature") + 12;
    let mut bytes = text.into_bytes();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    let tampered = dir.path().join("tampered-signature.jsonl");
    std::fs::write(&tampered, &bytes).expect("written");
    for extra in [vec!["--public-key", arg(&public)], vec![]] {
        let (code, out) = verify(&tampered, &extra);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("signature does not verify"), "{out}");
    }
    // An unsigned export with a key given.
    let unsigned = export(&journal, "jsonl", &[], dir.path(), "unsigned.jsonl");
    let (code, out) = verify(&unsigned, &["--public-key", arg(&public)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not signed, but a public key was given"),
        "{out}"
    );

    // What is signed is exactly what docs/audit.md says: openssl verifies the message the
    // Python verifier rebuilds, and signs with a key of its own making.
    if !have("openssl") {
        eprintln!("openssl is not installed: the openssl interoperability checks are skipped");
        return;
    }
    let message = dir.path().join("message.txt");
    let signature = dir.path().join("signature.bin");
    let (code, out) = python(dir.path(), &signed, &[arg(&message), arg(&signature)]);
    assert_eq!(code, 0, "{out}");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        arg(&public),
        "-rawin",
        "-in",
        arg(&message),
        "-sigfile",
        arg(&signature),
    ]);
    assert!(
        ok && out.contains("Signature Verified Successfully"),
        "{out}"
    );
    let (ok, out) = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        arg(&other_public),
        "-rawin",
        "-in",
        arg(&message),
        "-sigfile",
        arg(&signature),
    ]);
    assert!(!ok, "{out}");
    let ossl_key = dir.path().join("openssl.pem");
    let ossl_pub = dir.path().join("openssl.pub.pem");
    assert!(openssl(&["genpkey", "-algorithm", "ed25519", "-out", arg(&ossl_key)]).0);
    assert!(
        openssl(&[
            "pkey",
            "-in",
            arg(&ossl_key),
            "-pubout",
            "-out",
            arg(&ossl_pub)
        ])
        .0
    );
    let by_openssl_key = export(
        &journal,
        "jsonl",
        &["--signing-key", arg(&ossl_key)],
        dir.path(),
        "openssl-key.jsonl",
    );
    let (code, out) = verify(&by_openssl_key, &["--public-key", arg(&ossl_pub)]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn damaged_journals_are_found() {
    let dir = temp_dir();
    let (n, _, _) = full_exports();
    // A record's bytes changed where sled keeps them: the chain breaks at that record.
    let changed = dir.path().join("changed");
    let journal = copy_demo_journal(&changed);
    {
        let db = sled::Config::new()
            .path(&journal)
            .segment_size(journal::SEGMENT_SIZE)
            .open()
            .expect("sled opens the copy");
        let mut key = vec![b'R'];
        key.extend_from_slice(&10u64.to_be_bytes());
        let mut value = db.get(&key).expect("read").expect("record 10").to_vec();
        let i = value.len() - 40;
        value[i] ^= 0x01;
        db.insert(&key, value).expect("written");
        db.flush().expect("flushed");
    }
    let (code, stdout, stderr) = run(&["verify", "--journal", arg(&journal)]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.starts_with("record 10: "), "{stdout}");
    assert!(stdout.contains("verification FAILED"), "{stdout}");

    // A byte of sled's log file flipped: sled's recovery cuts the log back to its last intact
    // batch, which is self-consistent; the journal's head anchor notices the lost records, and
    // an earlier export shows the loss too.
    let (_, all, _) = full_exports();
    let export_file = dir.path().join("before.jsonl");
    std::fs::write(&export_file, all).expect("written");
    let cut = dir.path().join("cut");
    let journal = copy_demo_journal(&cut);
    let db = journal.join("db");
    let mut bytes = std::fs::read(&db).expect("db");
    let needle = b"ensure-deployment-type";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("a script name in the log");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&db, &bytes).expect("written");
    let (code, stdout, stderr) = run(&["verify", "--journal", arg(&journal)]);
    assert_ne!(code, 0, "the damage went unnoticed: {stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("records were lost"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.starts_with(&format!("{n}/{n} ")), "{stdout}");
    let (code, out) = verify(&export_file, &["--journal", arg(&journal)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record "), "{out}");
    // Another journal does not hold this export (a shorter one; and one as long but different).
    let other = hostile_journal(dir.path());
    let (code, out) = verify(&export_file, &["--journal", arg(&other)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\nrecord ") && out.contains("missing from the journal"),
        "{out}"
    );
    let hostile_export = export(&other, "jsonl", &[], dir.path(), "hostile.jsonl");
    let (code, out) = verify(
        &hostile_export,
        &["--journal", arg(&demo().join("journal"))],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\nrecord 1: the journal's record 1 has hash"),
        "{out}"
    );
    // The demo's journal itself is intact, and holds it.
    assert_eq!(journal_records(&demo().join("journal")), *n);
    let (code, out) = verify(&export_file, &["--journal", arg(&demo().join("journal"))]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_html_export_renders_in_chromium_with_journal_text_escaped() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "headless Chromium is needed to render the HTML export: apt-get install -y chromium (CI installs it)"
    );
    let dir = temp_dir();
    let journal = hostile_journal(dir.path());
    let before = tree_digest(&journal).expect("digest");
    let html = export(&journal, "html", &[], dir.path(), "hostile.html");
    let jsonl = export(&journal, "jsonl", &[], dir.path(), "hostile.jsonl");
    let csv = export(&journal, "csv", &[], dir.path(), "hostile.csv");

    // No export shows a secret, anywhere (not even in base64 bodies: redacted records have none).
    for file in [&html, &jsonl, &csv] {
        let text = std::fs::read_to_string(file).expect("read");
        for secret in SECRETS {
            assert!(!text.contains(secret), "{} shows {secret}", file.display());
        }
        assert!(text.contains("[REDACTED]"), "{}", file.display());
    }
    let lines = json_lines(&std::fs::read(&jsonl).expect("read"));
    let redacted: Vec<&Value> = lines.iter().filter(|l| l["redacted"] == true).collect();
    assert_eq!(
        redacted.len(),
        2,
        "the command and the output with a password"
    );
    assert!(
        redacted
            .iter()
            .all(|l| l["body"].is_null() && l["content"] == "redacted")
    );
    for file in [&jsonl, &csv] {
        let (code, out) = verify(file, &[]);
        assert_eq!(code, 0, "{out}");
        let n = lines.len() - 2;
        assert!(out.starts_with(&format!("{n}/{n} records valid")), "{out}");
        assert!(out.contains("2 redacted"), "{out}");
        let (code, out) = python(dir.path(), file, &[]);
        assert_eq!(code, 0, "{out}");
    }
    // The script's exact text is in the JSON (with the markup it contains), escaped in the page.
    let planned = lines
        .iter()
        .find(|l| l["event"] == "Planned")
        .expect("planned");
    assert_eq!(
        planned["data"]["Planned"]["steps"][2]["kind"]["Script"]["script"],
        HOSTILE_SCRIPT
    );
    let page = std::fs::read_to_string(&html).expect("read");
    assert!(!page.contains("<img"), "unescaped markup in the page");
    assert!(page.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!page.contains("http://") || page.contains("http://www.w3.org/2000/svg"));

    let out = std::process::Command::new(chromium)
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The inline script ran and drew the timeline: one bar per step attempt of the push.
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the inline script did not run:\n{dom}"
    );
    let bars = dom.matches("<rect class=\"bar ok\"").count();
    assert_eq!(bars, 8, "one bar per step:\n{dom}");
    assert!(dom.contains("data-bars=\"8\""), "{dom}");
    assert!(dom.contains("<title>0 download: ok"), "{dom}");
    // The hostile script is shown as text, and became no element.
    assert!(
        dom.contains("Write-Output '&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;'"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "an injected element:\n{dom}");
    assert!(!dom.contains("<b id="), "an injected element:\n{dom}");
    assert!(
        dom.contains("&lt;b id=\"injected\"&gt;bold&lt;/b&gt; &amp; done"),
        "{dom}"
    );
    assert!(dom.contains("class=\"status ok\""), "{dom}");
    assert!(dom.contains("id=\"chain-head\""), "{dom}");
    assert_eq!(tree_digest(&journal).expect("digest"), before);
}
