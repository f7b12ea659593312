//! Validation, driven by data: the seed's commands parse; each mutation of them is rejected
//! naming the right field.

use super::*;
use serde_json::{Value, json};

const PUSH: &str = include_str!("../../tests/fixtures/commands/push-filezilla.json");
const IMPORT: &str = include_str!("../../tests/fixtures/commands/import-filezilla.json");

fn seed(text: &str) -> Value {
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// Sets (or with `None` removes) the field at the dotted `path` of `command`.
fn mutate(mut command: Value, path: &str, value: Option<Value>) -> Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut node = &mut command;
    for part in parts {
        node = node.get_mut(part).expect("the path exists in the fixture");
    }
    let object = node.as_object_mut().expect("an object");
    match value {
        Some(v) => object.insert(last.to_string(), v),
        None => object.remove(last),
    };
    command
}

/// Parses `command` and expects a rejection of `field` whose reason contains `reason`.
fn check(command: Value, field: &str, reason: &str) {
    let raw = serde_json::to_vec(&command).expect("serializes");
    match parse(&raw, &Limits::default()) {
        Err(rejection) => {
            assert_eq!(rejection.field, field, "{rejection}");
            assert!(rejection.reason.contains(reason), "{rejection}");
        }
        Ok(_) => panic!("accepted; expected a rejection of {field}"),
    }
}

#[test]
fn the_seed_push_parses_into_the_right_values() {
    let Ok(Command::Push(push)) = parse(PUSH.as_bytes(), &Limits::default()) else {
        panic!("the seed push parses")
    };
    assert_eq!(push.id, "8d3f8f7e-2b1c-4c1e-9a57-3e0f5d7b9a10");
    assert_eq!(push.site.site_code, "DEM");
    assert_eq!(
        push.application.name,
        "TimKosse_FileZilla_3.46.3_English(United States)"
    );
    assert_eq!(push.application.localized_name, "FileZilla");
    assert_eq!(push.application.publisher, "Tim Kosse");
    assert_eq!(
        (
            push.application.language.lcid,
            push.application.language.culture
        ),
        (1033, "en-US")
    );
    assert_eq!(push.application.folder, vec!["Test 1".to_string()]);
    assert_eq!(push.application.description, None);
    assert_eq!(push.package.size, 7_340_032);
    assert_eq!(push.deployment_type.slow_network, SlowNetwork::Download);
    assert!(push.deployment_type.cache_content && !push.deployment_type.force_32bit);
    assert_eq!(push.deployment.purpose, DeployPurpose::Available);
    assert_eq!(
        push.deployment.deadline.map(|d| d.to_string()).as_deref(),
        Some("2020-02-02T18:00:00")
    );
    assert_eq!(push.deployment.time_base, TimeBase::Local);
}

#[test]
fn the_seed_import_parses() {
    let Ok(Command::Import(import)) = parse(IMPORT.as_bytes(), &Limits::default()) else {
        panic!("parses")
    };
    assert_eq!(
        import.applications,
        vec!["TimKosse_FileZilla_3.46.3_English(United States)".to_string()]
    );
    assert!(import.upload_sources);
    let all = mutate(seed(IMPORT), "applications", None);
    let Ok(Command::Import(all)) =
        parse(&serde_json::to_vec(&all).expect("json"), &Limits::default())
    else {
        panic!()
    };
    assert!(all.applications.is_empty());
}

#[test]
fn each_bad_field_is_named() {
    let push = || seed(PUSH);
    check(mutate(push(), "id", None), "id", "is required");
    check(
        mutate(push(), "id", Some(json!("../../etc"))),
        "id",
        "must be 1 to 128",
    );
    check(
        mutate(push(), "kind", Some(json!("uninstall"))),
        "kind",
        "must be one of push, import",
    );
    check(
        mutate(push(), "issued_at", Some(json!("yesterday"))),
        "issued_at",
        "expected YYYY-MM-DD",
    );
    check(
        mutate(push(), "site.site_code", Some(json!("DEMO"))),
        "site.site_code",
        "three letters",
    );
    check(
        mutate(push(), "site.share_path", Some(json!("C:\\share"))),
        "site.share_path",
        "UNC",
    );
    check(
        mutate(push(), "site.share_path", None),
        "site.share_path",
        "required for a push",
    );
    check(
        mutate(
            push(),
            "application.package_name",
            Some(json!("x".repeat(257))),
        ),
        "application.package_name",
        "limit is 256",
    );
    check(
        mutate(push(), "application.version", Some(json!("1".repeat(65)))),
        "application.version",
        "limit is 64",
    );
    check(
        mutate(
            push(),
            "application.description",
            Some(json!("d".repeat(2049))),
        ),
        "application.description",
        "limit is 2048",
    );
    check(
        mutate(push(), "application.name", Some(json!("FileZilla "))),
        "application.name",
        "white space",
    );
    check(
        mutate(push(), "application.vendor", Some(json!("Tim\0Kosse"))),
        "application.vendor",
        "U+0000",
    );
    check(
        mutate(push(), "application.owner", Some(json!("John\nDoe"))),
        "application.owner",
        "U+000A",
    );
    check(
        mutate(push(), "application.language", Some(json!("Klingon"))),
        "application.language",
        "not a language",
    );
    check(
        mutate(push(), "application.folder", Some(json!("Test 1"))),
        "application.folder",
        "Applications node",
    );
    check(
        mutate(push(), "application.folder", Some(json!("Applications//x"))),
        "application.folder",
        "must not be empty",
    );
    check(
        mutate(
            push(),
            "application.folder",
            Some(json!("Applications/a\\b")),
        ),
        "application.folder",
        "backslash",
    );
    check(
        mutate(push(), "application.auto_install", Some(json!("yes"))),
        "application.auto_install",
        "invalid type",
    );
    check(
        mutate(push(), "content.sha256", Some(json!("abc"))),
        "content.sha256",
        "64 hexadecimal",
    );
    check(
        mutate(push(), "content.size", Some(json!(0))),
        "content.size",
        "between 1 and",
    );
    check(
        mutate(push(), "content.size", Some(json!(-5))),
        "content.size",
        "invalid value",
    );
    check(
        mutate(push(), "content.url", Some(json!("//evil/x"))),
        "content.url",
        "path on the portal",
    );
    check(mutate(push(), "content", None), "content", "is required");
    check(
        mutate(push(), "deployment_type.installer_type", Some(json!("msi"))),
        "deployment_type.installer_type",
        "one of script",
    );
    check(
        mutate(
            push(),
            "deployment_type.content_location",
            Some(json!("\\\\OTHER\\Sources$\\x")),
        ),
        "deployment_type.content_location",
        "beneath it",
    );
    check(
        mutate(
            push(),
            "deployment_type.detection",
            Some(json!({"language": "Python", "script": "x"})),
        ),
        "deployment_type.detection.language",
        "one of PowerShell",
    );
    check(
        mutate(
            push(),
            "deployment_type.detection",
            Some(json!({"language": "PowerShell", "script": "x".repeat(32 * 1024 + 1)})),
        ),
        "deployment_type.detection.script",
        "limit is 32768",
    );
    check(
        mutate(
            push(),
            "deployment_type.slow_network",
            Some(json!("stream")),
        ),
        "deployment_type.slow_network",
        "download, do_nothing",
    );
    check(
        mutate(
            push(),
            "deployment_type.max_runtime_minutes",
            Some(json!(5)),
        ),
        "deployment_type.max_runtime_minutes",
        "between 15 and 720",
    );
    check(
        mutate(push(), "deployment_type.install_command", Some(json!(""))),
        "deployment_type.install_command",
        "must not be empty",
    );
    check(
        mutate(push(), "deployment.purpose", Some(json!("mandatory"))),
        "deployment.purpose",
        "available, required",
    );
    check(
        mutate(push(), "deployment.action", None),
        "deployment.action",
        "is required",
    );
    check(
        mutate(
            push(),
            "deployment.deadline",
            Some(json!("2020-02-30T18:00:00")),
        ),
        "deployment.deadline",
        "not a valid date",
    );
    check(
        mutate(
            push(),
            "deployment.deadline",
            Some(json!("02/02/2020 18:00")),
        ),
        "deployment.deadline",
        "expected YYYY-MM-DD",
    );
    check(
        mutate(push(), "deployment.time_base", Some(json!("gmt"))),
        "deployment.time_base",
        "local, utc",
    );
    check(
        mutate(seed(IMPORT), "applications", Some(json!(["ok", ""]))),
        "applications[1]",
        "must not be empty",
    );
    check(
        mutate(seed(IMPORT), "applications", Some(json!("all"))),
        "applications",
        "invalid type",
    );
}

#[test]
fn too_many_applications_or_bytes_are_rejected() {
    let names: Vec<String> = (0..=MAX_IMPORT_APPLICATIONS)
        .map(|i| format!("App {i}"))
        .collect();
    check(
        mutate(seed(IMPORT), "applications", Some(json!(names))),
        "applications",
        "names 4001 applications; one import reads at most 4000",
    );
    let exactly = &names[..MAX_IMPORT_APPLICATIONS];
    let command = mutate(seed(IMPORT), "applications", Some(json!(exactly)));
    assert!(parse(command.to_string().as_bytes(), &Limits::default()).is_ok());

    let mut huge = seed(IMPORT);
    huge["padding"] = json!(" ".repeat(MAX_COMMAND_BYTES));
    let rejection = parse(huge.to_string().as_bytes(), &Limits::default()).expect_err("too large");
    assert_eq!(rejection.field, "(command)");
    assert!(
        rejection
            .reason
            .contains("a command may have at most 1048576"),
        "{rejection}"
    );
}

#[test]
fn garbage_is_rejected_not_panicked_on() {
    for raw in [
        &b""[..],
        b"null",
        b"[]",
        b"{",
        b"\xff\xfe",
        b"{\"id\": 5}",
        b"{\"id\":\"a\",\"kind\":\"push\"}",
    ] {
        let rejection = parse(raw, &Limits::default()).expect_err("garbage is rejected");
        assert!(!rejection.reason.is_empty());
    }
}

#[test]
fn peek_reads_id_and_kind_of_anything() {
    assert_eq!(
        peek(PUSH.as_bytes()),
        Peek {
            command_id: Some("8d3f8f7e-2b1c-4c1e-9a57-3e0f5d7b9a10".into()),
            kind: JobKind::Push
        }
    );
    assert_eq!(
        peek(b"{\"id\":\"x-1\",\"kind\":\"reboot\"}"),
        Peek {
            command_id: Some("x-1".into()),
            kind: JobKind::Unrecognized
        }
    );
    assert_eq!(
        peek(b"{\"id\":\"a b\"}"),
        Peek {
            command_id: None,
            kind: JobKind::Unrecognized
        }
    );
    assert_eq!(
        peek(b"\x00garbage"),
        Peek {
            command_id: None,
            kind: JobKind::Unrecognized
        }
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let extra = mutate(
        seed(PUSH),
        "future_field",
        Some(json!({"anything": [1, 2]})),
    );
    assert!(
        parse(
            &serde_json::to_vec(&extra).expect("json"),
            &Limits::default()
        )
        .is_ok()
    );
}

mod never_panics {
    //! `parse` and `peek` take bytes straight from the network: whatever arrives, they return a
    //! command or a typed rejection naming a field, and never panic.

    use super::*;
    use proptest::prelude::*;

    /// Every object key of the seed commands, plus a few near misses.
    fn keys() -> Vec<String> {
        fn walk(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        out.push(k.clone());
                        walk(v, out);
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = vec!["Kind".into(), "ID".into(), "".into(), "__proto__".into()];
        walk(&seed(PUSH), &mut out);
        walk(&seed(IMPORT), &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Every JSON pointer of `value`.
    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    pointers(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    pointers(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(json!(u32::MAX as u64 + 1)),
            Just(json!(-1)),
            any::<String>().prop_map(Value::String),
            prop::sample::select(vec![
                "push",
                "import",
                "",
                " ",
                "\u{0}",
                "2020-01-31T09:12:00Z",
                "2020-02-30T25:61:00",
                "9999-12-31T23:59:60",
                "DEM",
                "\\\\",
                "\\\\a\\b",
                "Applications/",
                "Applications//x",
                "English(United States)",
                "x-XX",
                "65535",
                "😀",
                "\u{FEFF}",
                "required",
                "utc",
            ])
            .prop_map(|s| Value::String(s.to_string())),
        ]
    }

    /// JSON values whose objects use the commands' own keys.
    fn shaped() -> impl Strategy<Value = Value> {
        let keys = keys();
        leaf().prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(keys.clone()), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A seed command with some of its fields replaced by arbitrary values or removed.
    fn mutated_seed() -> impl Strategy<Value = Value> {
        (
            prop::bool::ANY,
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    prop::option::weighted(0.8, shaped()),
                ),
                1..6,
            ),
        )
            .prop_map(|(push, edits)| {
                let mut command = seed(if push { PUSH } else { IMPORT });
                for (index, value) in edits {
                    let mut all = Vec::new();
                    pointers(&command, String::new(), &mut all);
                    let pointer = index.get(&all).clone();
                    match value {
                        Some(value) => {
                            if let Some(slot) = command.pointer_mut(&pointer) {
                                *slot = value;
                            }
                        }
                        None => {
                            let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", ""));
                            if let Some(Value::Object(map)) = command.pointer_mut(parent) {
                                map.remove(key);
                            }
                        }
                    }
                }
                command
            })
    }

    /// Parses `raw` (also with a tiny package limit) and checks the outcome is well formed.
    fn check_bytes(raw: &[u8]) -> Result<(), TestCaseError> {
        let _ = peek(raw);
        for limits in [
            Limits::default(),
            Limits {
                max_package_bytes: 0,
            },
        ] {
            if let Err(rejection) = parse(raw, &limits) {
                prop_assert!(!rejection.field.is_empty(), "{rejection:?}");
                prop_assert!(!rejection.reason.is_empty(), "{rejection:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(raw in prop::collection::vec(any::<u8>(), 0..1024)) {
            check_bytes(&raw)?;
        }

        #[test]
        fn damaged_seed_bytes(
            push in prop::bool::ANY,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut raw = if push { PUSH } else { IMPORT }.as_bytes().to_vec();
            for (index, byte, how) in edits {
                let at = index.index(raw.len().max(1)).min(raw.len());
                match how {
                    0 => raw.insert(at, byte),
                    1 if at < raw.len() => raw[at] = byte,
                    _ => raw.truncate(at),
                }
            }
            check_bytes(&raw)?;
        }

        #[test]
        fn json_shaped_like_commands(value in prop_oneof![mutated_seed(), shaped()]) {
            let raw = serde_json::to_vec(&value).expect("serializes");
            check_bytes(&raw)?;
        }
    }
}
