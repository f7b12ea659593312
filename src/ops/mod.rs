//! The operator's read-only commands over a journal: `jobs` (one line per job) and `replay` (one
//! job laid out for a stranger, with a diagnosis).
//!
//! Both read a private copy of the journal ([`crate::inspect::open`]), so they never modify it and
//! work while the connector runs or on a journal brought over from another machine. The pure part
//! — states, steps, attempts, transfers, deliveries, timeline, verdict — is
//! [`replay::overview`]; this module owns what is connector-specific: the clock, reading the
//! journaled command's JSON (secret-looking fields redacted), finding a job from what an admin
//! types, and rendering text and JSON.
//!
//! - `mod.rs`: errors, job lookup, the command summary, time formatting.
//! - `jobs.rs`: `sccm-connector jobs`.
//! - `replay.rs`: `sccm-connector replay`.

pub mod jobs;
pub mod replay;

use crate::engine::store::StoreError;
use crate::inspect::{InspectError, Inspection};
use ::replay::{Fleet, JobId, Timestamp};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Why a read-only command could not answer.
#[derive(Debug, Error)]
pub enum OpsError {
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("reading the journal copy: {0}")]
    Store(#[from] StoreError),
    #[error("unknown state {given:?}; valid states: {}", valid.join(", "))]
    UnknownState {
        given: String,
        valid: Vec<&'static str>,
    },
    #[error(
        "no job matches {given:?} (give a job id, a unique prefix of at least 4 hex digits, or the portal's command id; `sccm-connector jobs` lists them)"
    )]
    UnknownJob { given: String },
    #[error("{given:?} matches {} jobs: {}; give more of the id", candidates.len(), candidates.join(", "))]
    AmbiguousJob {
        given: String,
        candidates: Vec<String>,
    },
    #[error(
        "job {job} finished long ago: retention exported it to the archive file {archive} and pruned it from the journal; `sccm-connector verify <archive folder>/{archive}` checks that file, which holds every event of the job"
    )]
    Archived { job: String, archive: String },
    #[error("job {job} cannot be shown: its first record is unreadable ({reason})")]
    Unreadable { job: String, reason: String },
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl OpsError {
    /// 2 for what the user asked wrong (unknown or ambiguous job, unknown state), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpsError::UnknownState { .. }
            | OpsError::UnknownJob { .. }
            | OpsError::AmbiguousJob { .. } => 2,
            _ => 1,
        }
    }
}

/// Now, as the journal counts time.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(millis)
}

/// A job the journal holds, as lookup and listing see it.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub id: JobId,
    pub command_id: Option<String>,
    /// Why the job is quarantined or unreadable, if it is.
    pub broken: Option<String>,
    /// The archive file retention moved the job to, if it did.
    pub archived: Option<String>,
}

/// Every job of the inspected journal — those that fold, quarantined ones, unreadable ones —
/// with the folded fleet they were read from.
pub(crate) fn known_jobs(inspection: &Inspection) -> (Fleet, Vec<Known>) {
    let fleet = inspection.store.fleet();
    let mut known: Vec<Known> = fleet
        .jobs()
        .map(|j| Known {
            id: j.id(),
            command_id: j.command_id().map(str::to_string),
            broken: None,
            archived: None,
        })
        .collect();
    known.extend(fleet.archived().map(|(archive, a)| Known {
        id: a.job,
        command_id: a.command_id.clone(),
        broken: None,
        archived: Some(archive.to_string()),
    }));
    let mut mark = |id: JobId, reason: String| {
        match known.iter_mut().find(|k| k.id == id) {
            Some(k) => k.broken = Some(reason),
            None => known.push(Known {
                id,
                command_id: fleet
                    .job(id)
                    .and_then(|j| j.command_id().map(str::to_string)),
                broken: Some(reason),
                archived: None,
            }),
        };
    };
    for error in fleet.quarantined() {
        mark(error.job, error.to_string());
    }
    for (id, reason) in inspection.store.broken() {
        mark(id, reason);
    }
    (fleet, known)
}

/// The job `query` names among `known`: a full id, a unique prefix of at least 4 hex digits
/// (hyphens as in the id, or none), or a portal command id.
pub(crate) fn resolve(known: &[Known], query: &str) -> Result<JobId, OpsError> {
    let q = query.trim();
    let unknown = || OpsError::UnknownJob {
        given: query.to_string(),
    };
    if q.is_empty() {
        return Err(unknown());
    }
    let by_command: Vec<JobId> = known
        .iter()
        .filter(|k| k.command_id.as_deref() == Some(q))
        .map(|k| k.id)
        .collect();
    if let [one] = by_command.as_slice() {
        return Ok(*one);
    }
    let lowered = q.to_ascii_lowercase();
    let compact: String = lowered.chars().filter(|c| *c != '-').collect();
    let hex_prefix = compact.len() >= 4 && compact.chars().all(|c| c.is_ascii_hexdigit());
    let mut matches: Vec<JobId> = if hex_prefix {
        known
            .iter()
            .filter(|k| {
                let full = k.id.to_string();
                let simple: String = full.chars().filter(|c| *c != '-').collect();
                full.starts_with(&lowered) || simple.starts_with(&compact)
            })
            .map(|k| k.id)
            .collect()
    } else {
        Vec::new()
    };
    matches.extend(by_command);
    matches.sort();
    matches.dedup();
    match matches.as_slice() {
        [] => Err(unknown()),
        [one] => Ok(*one),
        many => Err(OpsError::AmbiguousJob {
            given: query.to_string(),
            candidates: many.iter().map(ToString::to_string).collect(),
        }),
    }
}

/// `3s`, `4m`, `2h`, `5d`: how long ago, in the largest whole unit.
pub fn format_age(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `850ms`, `12.3s`, `4m05s`, `2h03m`: a duration, precise enough to compare attempts.
pub fn format_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", ms / 1000, (ms % 1000) / 100),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// The first 8 hex digits of a job id.
pub fn short_id(id: JobId) -> String {
    id.to_string().chars().take(8).collect()
}

/// One labelled value of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
}

/// What a journaled command asked for, read from its exact bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandSummary {
    /// What `jobs` shows in its package column.
    pub package: String,
    /// The command's fields worth reading, in a fixed order (targets included).
    pub fields: Vec<Field>,
    pub raw_bytes: usize,
    /// The command as received, with any secret-looking field replaced by `"(redacted)"`; `None`
    /// when the bytes are not JSON.
    pub document: Option<Value>,
}

const PUSH_FIELDS: &[(&str, &str)] = &[
    ("issued at", "/issued_at"),
    ("site code", "/site/site_code"),
    ("application", "/application/package_name"),
    ("name", "/application/name"),
    ("version", "/application/version"),
    ("vendor", "/application/vendor"),
    ("language", "/application/language"),
    ("owner", "/application/owner"),
    ("folder", "/application/folder"),
    ("package id", "/content/package_id"),
    ("package url", "/content/url"),
    ("package size", "/content/size"),
    ("package sha256", "/content/sha256"),
    ("share path", "/site/share_path"),
    ("deployment type", "/deployment_type/name"),
    ("content location", "/deployment_type/content_location"),
    ("install command", "/deployment_type/install_command"),
    ("uninstall command", "/deployment_type/uninstall_command"),
    ("DP group", "/deployment_type/distribution_group"),
    ("collection", "/deployment/collection"),
    ("action", "/deployment/action"),
    ("purpose", "/deployment/purpose"),
    ("deadline", "/deployment/deadline"),
    ("time base", "/deployment/time_base"),
];

const IMPORT_FIELDS: &[(&str, &str)] = &[
    ("issued at", "/issued_at"),
    ("site code", "/site/site_code"),
    ("share path", "/site/share_path"),
    ("applications", "/applications"),
    ("upload sources", "/upload_sources"),
];

/// Object keys whose values are never shown.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "api_key",
        "apikey",
        "private_key",
        "authorization",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if looks_secret(key) {
                    *v = Value::String("(redacted)".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(text_of)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}

impl CommandSummary {
    /// Reads a command's exact bytes; anything unreadable is shown as such, never an error.
    pub fn of(raw: &[u8]) -> CommandSummary {
        let document: Option<Value> = serde_json::from_slice(raw).ok().map(|mut v| {
            redact(&mut v);
            v
        });
        let doc = document.as_ref().filter(|d| d.is_object());
        let kind = doc.and_then(|d| d.get("kind")).and_then(Value::as_str);
        let table = match kind {
            Some("push") => PUSH_FIELDS,
            Some("import") => IMPORT_FIELDS,
            _ => &[],
        };
        let at = |pointer: &str| doc.and_then(|d| d.pointer(pointer)).and_then(text_of);
        let fields = table
            .iter()
            .filter_map(|(name, pointer)| {
                let value = match (at(pointer), *name) {
                    (Some(v), "applications") if v.is_empty() => "(all)".to_string(),
                    (Some(v), _) => v,
                    (None, _) => return None,
                };
                Some(Field { name, value })
            })
            .collect();
        let package = match kind {
            Some("push") => [at("/application/name"), at("/application/version")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            Some("import") => {
                let apps = doc
                    .and_then(|d| d.get("applications"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let sources = doc
                    .and_then(|d| d.get("upload_sources"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let what = match apps {
                    0 => "all applications".to_string(),
                    1 => at("/applications/0").unwrap_or_default(),
                    n => format!("{n} applications"),
                };
                if sources {
                    format!("{what} + sources")
                } else {
                    what
                }
            }
            _ => String::new(),
        };
        CommandSummary {
            package: if package.is_empty() {
                "(unreadable command)".into()
            } else {
                package
            },
            fields,
            raw_bytes: raw.len(),
            document,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn known(ids: &[(u128, Option<&str>)]) -> Vec<Known> {
        ids.iter()
            .map(|(id, cmd)| Known {
                id: JobId(Uuid::from_u128(*id)),
                command_id: cmd.map(str::to_string),
                broken: None,
                archived: None,
            })
            .collect()
    }

    #[test]
    fn jobs_resolve_by_id_prefix_or_command_id() {
        let a = 0x8d3f_8f7e_2b1c_4c1e_9a57_3e0f_5d7b_9a10_u128;
        let b = 0x8d3f_0000_0000_4000_8000_0000_0000_0001_u128;
        let list = known(&[(a, Some("push-1")), (b, Some("import-2"))]);
        let ja = JobId(Uuid::from_u128(a));
        let jb = JobId(Uuid::from_u128(b));
        assert_eq!(resolve(&list, &ja.to_string()).expect("full"), ja);
        assert_eq!(resolve(&list, "8D3F8F7E").expect("prefix"), ja);
        assert_eq!(resolve(&list, "8d3f8f7e-2b1c").expect("hyphens"), ja);
        assert_eq!(resolve(&list, "8d3f8f7e2b1c").expect("compact"), ja);
        assert_eq!(resolve(&list, "import-2").expect("command id"), jb);
        let ambiguous = resolve(&list, "8d3f").expect_err("two match");
        assert!(
            matches!(&ambiguous, OpsError::AmbiguousJob { candidates, .. } if candidates.len() == 2)
        );
        assert_eq!(ambiguous.exit_code(), 2);
        for unknown in ["8d3", "ffff", "push-9", "", "zzzz"] {
            let err = resolve(&list, unknown).expect_err(unknown);
            assert!(
                matches!(err, OpsError::UnknownJob { .. }),
                "{unknown}: {err}"
            );
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn quarantined_and_unreadable_jobs_are_listed_and_explained() {
        use crate::engine::store::{PAYLOAD_FORMAT, Store};
        use ::replay::testkit::canned;
        let dir = tempfile::tempdir().expect("tempdir");
        let good = canned::push_killed_in_step();
        let diverging = canned::push_step_fails();
        let unreadable = Uuid::from_u128(0xdead_0000_0000_4000_8000_0000_0000_0001);
        {
            let store = Store::open(dir.path(), journal::Options::new()).expect("a store");
            for entry in &good.entries {
                store
                    .record(good.job, entry.at, entry.event.clone())
                    .expect("records");
            }
            // Written around the store's check, as a different machine version might have: the
            // last event starts a step after the job concluded.
            let mut events: Vec<::replay::Event> =
                diverging.entries.iter().map(|e| e.event.clone()).collect();
            events.push(::replay::Event::StepStarted {
                step: 42,
                attempt: 1,
            });
            for event in &events {
                let payload = journal::encode_payload(event).expect("encodes");
                store
                    .journal()
                    .append_durable(
                        diverging.job.0,
                        journal::Timestamp(diverging.now.0),
                        PAYLOAD_FORMAT,
                        &payload,
                    )
                    .expect("appends");
            }
            // A job whose first record a future connector wrote.
            store
                .journal()
                .append_durable(unreadable, journal::Timestamp(0), 9, b"future")
                .expect("appends");
        }
        let source = crate::inspect::JournalSource::Dir(dir.path().to_path_buf());
        let inspection = crate::inspect::open(&source).expect("opens a copy");
        let now = good.now.plus_millis(60_000);
        let rows = jobs::rows(&inspection, now);
        drop(inspection);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let row = |id: JobId| rows.iter().find(|r| r.id == id).expect("a row");
        assert_eq!(row(good.job).state, ::replay::JobState::Running);
        let quarantined = row(diverging.job);
        assert_eq!(quarantined.state, ::replay::JobState::Broken);
        assert!(
            quarantined
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("event #16 (StepStarted)")),
            "{quarantined:?}"
        );
        let lost = row(JobId(unreadable));
        assert_eq!(
            (lost.kind, lost.state),
            ("unknown", ::replay::JobState::Broken)
        );
        assert!(
            lost.reason
                .as_deref()
                .is_some_and(|r| r.contains("payload format 9"))
        );
        assert!(jobs::table(&rows).contains("└ broken:"));

        let shown = replay::build(&source, "cmd-push-fails", now).expect("replayed");
        assert_eq!(shown.overview.state, ::replay::JobState::Broken);
        assert!(shown.overview.diagnosis.headline.starts_with("broken"));
        assert!(shown.overview.diagnosis.next.is_empty());
        // The timeline shows every journaled event, the one that does not fold included.
        assert_eq!(shown.overview.timeline.len(), diverging.entries.len() + 1);
        let err = replay::build(&source, "dead0000", now).expect_err("unreadable");
        assert!(matches!(err, OpsError::Unreadable { .. }), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn ages_and_durations_use_the_largest_whole_unit() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(59_999), "59s");
        assert_eq!(format_age(180_000), "3m");
        assert_eq!(format_age(2 * 3_600_000 + 5), "2h");
        assert_eq!(format_age(5 * 86_400_000 + 3_600_000), "5d");
        assert_eq!(format_duration(850), "850ms");
        assert_eq!(format_duration(12_345), "12.3s");
        assert_eq!(format_duration(245_000), "4m05s");
        assert_eq!(format_duration(7_380_000), "2h03m");
    }

    #[test]
    fn a_push_command_is_summarized_with_its_targets() {
        let raw = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/commands/push-filezilla.json"),
        )
        .expect("the fixture");
        let summary = CommandSummary::of(&raw);
        assert_eq!(summary.package, "FileZilla 3.46.3");
        let get = |name: &str| {
            summary
                .fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.value.as_str())
        };
        assert_eq!(get("collection"), Some("Demo devices"));
        assert_eq!(get("DP group"), Some("Demo Distribution Group"));
        assert_eq!(get("purpose"), Some("available"));
        assert_eq!(get("deadline"), Some("2020-02-02T18:00:00"));
        assert_eq!(get("folder"), Some("Applications/Test 1"));
        assert_eq!(get("package size"), Some("7340032"));
        assert_eq!(summary.raw_bytes, raw.len());
    }

    #[test]
    fn imports_garbage_and_secrets_are_summarized_safely() {
        let import = br#"{"id":"i-1","kind":"import","applications":[],"upload_sources":true,"site":{"site_code":"DEM"}}"#;
        let summary = CommandSummary::of(import);
        assert_eq!(summary.package, "all applications + sources");
        assert!(summary.fields.contains(&Field {
            name: "applications",
            value: "(all)".into()
        }));
        assert_eq!(
            CommandSummary::of(b"\xff not json").package,
            "(unreadable command)"
        );
        assert!(CommandSummary::of(b"\xff not json").document.is_none());
        let secret = br#"{"id":"p","kind":"push","proxy":{"password":"hunter2"},"api_token":"abc","items":[{"client_secret":"s3"}]}"#;
        let text = serde_json::to_string(&CommandSummary::of(secret)).expect("json");
        for leaked in ["hunter2", "abc", "s3"] {
            assert!(!text.contains(leaked), "{leaked} leaked: {text}");
        }
        assert!(text.contains("(redacted)"));
    }
}
