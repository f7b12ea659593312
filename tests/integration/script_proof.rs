//! Proof that no portal value becomes code, on every generated script.
//!
//! Each script is checked by `verify_script`, which parses it with tree-sitter-powershell (no
//! ERROR/MISSING nodes, only allowed commands), re-reads every literal by PowerShell's own quoting
//! rules (all five single quotes), requires code outside literals to be ASCII, and requires every
//! literal outside the Inputs block to be a generator constant. On top of that, these tests check
//! that the Inputs the checker read back are **exactly** the values of the command: each outside
//! value is one verbatim literal that decodes, by PowerShell's rules, to exactly the input.

use crate::support::{files, fixture, root};
use proptest::prelude::*;
use sccm_connector::command::{Command, Limits, Rejection, parse};
use sccm_connector::powershell::push::SiteAccess;
use sccm_connector::powershell::script::{COMMANDS, CONSTANTS, Script};
use sccm_connector::powershell::verify::{Policy, verify_script};
use sccm_connector::powershell::{import, push};
use serde_json::{Value, json};

const POLICY: Policy<'static> = Policy {
    commands: COMMANDS,
    constants: CONSTANTS,
};

/// Verifies `script` and checks the checker's inputs are the generator's, value for value.
fn check(script: &Script) {
    let verified = verify_script(script.bytes(), &POLICY)
        .unwrap_or_else(|v| panic!("{} fails verification: {v}\n{}", script.step, script.text));
    let read: Vec<(&str, &str)> = verified
        .inputs
        .iter()
        .map(|i| (i.variable.as_str(), i.value.as_str()))
        .collect();
    let bound: Vec<(&str, &str)> = script
        .inputs
        .iter()
        .map(|i| (i.variable, i.value.as_str()))
        .collect();
    assert_eq!(
        read, bound,
        "{}: the literals PowerShell would read differ from the values bound",
        script.step
    );
    assert!(
        verified
            .commands
            .iter()
            .all(|c| COMMANDS.iter().any(|a| a.eq_ignore_ascii_case(c)))
    );
}

/// The scripts of `command`, or the validator's typed rejection.
fn scripts_of(command: &Value) -> Result<Vec<Script>, Rejection> {
    let raw = serde_json::to_vec(command).expect("json");
    let access = SiteAccess {
        provider_machine: Some("cm01.contoso.com".into()),
    };
    match parse(&raw, &Limits::default())? {
        Command::Push(p) => Ok(push::scripts(&p, &access).expect("validated values render")),
        Command::Import(i) => {
            let mut scripts = vec![
                import::list_folders(&i, &access).expect("renders"),
                import::list_applications(&i, &access).expect("renders"),
            ];
            for name in &i.applications {
                scripts
                    .push(import::read_metadata(&i, &access, name, 16_777_541).expect("renders"));
            }
            Ok(scripts)
        }
    }
}

fn seed(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).expect("fixture")).expect("json")
}

#[test]
fn every_golden_script_passes_the_checker() {
    for dir in ["push-filezilla", "import-filezilla"] {
        for (name, bytes) in files(&root().join("tests/golden").join(dir)) {
            verify_script(&bytes, &POLICY).unwrap_or_else(|v| panic!("{dir}/{name}: {v}"));
        }
    }
}

#[test]
fn the_seed_commands_bind_exactly_their_values() {
    let push = seed("commands/push-filezilla.json");
    let scripts = scripts_of(&push).expect("the seed push validates");
    for script in &scripts {
        check(script);
    }
    let app = &scripts[0];
    let value = |var: &str| {
        app.inputs
            .iter()
            .find(|i| i.variable == var)
            .map(|i| i.value.clone())
    };
    assert_eq!(
        value("ApplicationName").as_deref(),
        push["application"]["package_name"].as_str()
    );
    assert_eq!(
        value("Publisher").as_deref(),
        push["application"]["vendor"].as_str()
    );
    for script in
        scripts_of(&seed("commands/import-filezilla.json")).expect("the seed import validates")
    {
        check(&script);
    }
}

/// Characters that matter to PowerShell's lexer and that one-line fields **accept** (validation
/// refuses control characters, so a NEL or an ESC would only test the validator): every single-
/// and double-quote class, every dash class, expansion, escape, statement separators, comments,
/// wildcards, NBSP, Unicode line and paragraph separators, bidi and zero-width controls, CP1252
/// trap characters, emoji — and, now and then, any other character the validators accept.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::sample::select(vec![
            '\'', '‘', '’', '‚', '‛', '"', '“', '”', '„', '-', '–', '—', '―', '$', '(', ')', '{', '}', '`', ';', '|',
            '&', '#', '<', '>', '@', '*', '?', '[', ']', '\u{A0}', '\u{2028}', '\u{2029}', '\u{202E}', '\u{202D}',
            '\u{2066}', '\u{2069}', '\u{200B}', '\u{200F}', 'Ò', '✓', '😀', '🏳', ' ', '\\', '%', '+', ',', '.', '\u{3000}',
        ]),
        1 => any::<char>().prop_filter("validation refuses control characters", |c| !c.is_control()),
        2 => prop::char::range('a', 'z'),
    ]
}

/// Multi-character sequences PowerShell reads specially.
fn hostile_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "'@",
        "\"@",
        "@'",
        "@\"",
        "$(calc)",
        "${env:x}",
        "$x",
        "’; calc; ‘",
        "‘+(calc)+’",
        "`n",
        "`",
        "<#",
        "#>",
        "; calc",
        "| calc",
        "& calc",
        "#",
        "*?[a]",
        "–Name",
        "—Force",
    ])
}

/// A hostile one-line value every name field accepts: letters at both ends (names may not start
/// or end with white space) around hostile characters and sequences; at most 2 + 2·20 + 2·12
/// UTF-16 units, under the tightest limit (64, the version).
fn hostile_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(hostile_char(), 0..20),
        hostile_piece(),
        hostile_piece(),
    )
        .prop_map(|(chars, a, b)| format!("a{a}{}{b}z", String::from_iter(chars)))
}

/// A hostile multi-line value for the fields that accept line breaks (description, detection
/// script, admin comment): CR, LF and TAB besides everything a name may hold, and here-string
/// terminators at the start of a line.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => hostile_char().prop_map(String::from),
            1 => prop::sample::select(vec!["\n", "\r", "\r\n", "\t", "\n'@", "\n\"@", "\r'@\r", "\n#>"]).prop_map(String::from),
            1 => hostile_piece().prop_map(String::from),
        ],
        1..48,
    )
    .prop_map(|parts| format!("x{}", parts.concat()))
}

/// The seed push with every outside value replaced by a hostile one.
fn hostile_push(names: &[String], texts: &[String]) -> Value {
    let mut command = seed("commands/push-filezilla.json");
    let share = format!(
        "\\\\srv\\Sources$\\{}",
        names[0].replace(['\\', '/', ':', '*', '?', '"', '<', '>', '|'], "_")
    );
    command["site"]["share_path"] = json!(share);
    command["deployment_type"]["content_location"] = json!(share);
    command["application"]["package_name"] = json!(names[1]);
    command["application"]["name"] = json!(names[2]);
    command["application"]["vendor"] = json!(names[3]);
    command["application"]["owner"] = json!(names[4]);
    command["application"]["optional_reference"] = json!(names[5]);
    command["application"]["version"] = json!(names[12]);
    command["application"]["folder"] = json!(format!(
        "Applications/{}/{}",
        names[6].replace(['/', '\\'], "_"),
        names[7].replace(['/', '\\'], "_")
    ));
    command["application"]["description"] = json!(texts[0]);
    command["deployment_type"]["name"] = json!(names[8]);
    command["deployment_type"]["install_command"] = json!(names[9]);
    command["deployment_type"]["uninstall_command"] = json!(names[10]);
    command["deployment_type"]["distribution_group"] = json!(names[11]);
    command["deployment_type"]["detection"]["script"] = json!(texts[1]);
    command["deployment_type"]["admin_comment"] = json!(texts[2]);
    command["deployment"]["collection"] = json!(names[13]);
    command["deployment"]["purpose"] = json!("required");
    command
}

/// Every push field that carries outside text, as (JSON pointer, protocol field name, multi-line).
const PUSH_TEXT_FIELDS: &[(&str, &str, bool)] = &[
    ("/site/console_path", "site.console_path", false),
    ("/site/share_path", "site.share_path", false),
    (
        "/deployment_type/content_location",
        "deployment_type.content_location",
        false,
    ),
    (
        "/application/package_name",
        "application.package_name",
        false,
    ),
    ("/application/name", "application.name", false),
    ("/application/vendor", "application.vendor", false),
    ("/application/version", "application.version", false),
    ("/application/owner", "application.owner", false),
    (
        "/application/optional_reference",
        "application.optional_reference",
        false,
    ),
    ("/application/folder", "application.folder", false),
    ("/application/description", "application.description", true),
    ("/deployment_type/name", "deployment_type.name", false),
    (
        "/deployment_type/install_command",
        "deployment_type.install_command",
        false,
    ),
    (
        "/deployment_type/uninstall_command",
        "deployment_type.uninstall_command",
        false,
    ),
    (
        "/deployment_type/distribution_group",
        "deployment_type.distribution_group",
        false,
    ),
    (
        "/deployment_type/detection/script",
        "deployment_type.detection.script",
        true,
    ),
    (
        "/deployment_type/admin_comment",
        "deployment_type.admin_comment",
        true,
    ),
    ("/deployment/collection", "deployment.collection", false),
];

/// Control characters validation refuses everywhere (TAB, CR and LF are refused only in one-line
/// fields).
fn refused_control() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::char::range('\u{0}', '\u{8}'),
        prop::char::range('\u{B}', '\u{C}'),
        prop::char::range('\u{E}', '\u{1F}'),
        prop::char::range('\u{7F}', '\u{9F}'),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_push_values_are_only_ever_literals(
        names in prop::collection::vec(hostile_name(), 14),
        texts in prop::collection::vec(hostile_text(), 3),
    ) {
        let command = hostile_push(&names, &texts);
        // Every value is one the validators accept: the case must reach the generator.
        let scripts = match scripts_of(&command) {
            Ok(scripts) => scripts,
            Err(rejection) => return Err(TestCaseError::fail(format!("a value validation accepts was rejected: {rejection}"))),
        };
        prop_assert_eq!(scripts.len(), 6);
        for script in &scripts {
            check(script);
        }
        let dt = scripts.iter().find(|s| s.step == "ensure-deployment-type").expect("the DT step");
        let detection = dt.inputs.iter().find(|i| i.variable == "DetectionScript").expect("bound");
        prop_assert_eq!(&detection.value, texts[1].as_str());
        let app = &scripts[0];
        let version = app.inputs.iter().find(|i| i.variable == "SoftwareVersion").expect("bound");
        prop_assert_eq!(&version.value, names[12].as_str());
    }

    #[test]
    fn hostile_import_values_are_only_ever_literals(names in prop::collection::vec(hostile_name(), 1..4)) {
        let mut command = seed("commands/import-filezilla.json");
        command["applications"] = json!(names);
        let scripts = match scripts_of(&command) {
            Ok(scripts) => scripts,
            Err(rejection) => return Err(TestCaseError::fail(format!("a value validation accepts was rejected: {rejection}"))),
        };
        prop_assert_eq!(scripts.len(), 2 + names.len());
        for script in &scripts {
            check(script);
        }
        for (script, name) in scripts[2..].iter().zip(&names) {
            let bound = script.inputs.iter().find(|i| i.variable == "ApplicationName").expect("bound");
            prop_assert_eq!(&bound.value, name);
        }
    }

    /// The other half of the contract: a control character never reaches the generator, and the
    /// rejection names the field it was in.
    #[test]
    fn push_control_characters_are_refused_naming_the_field(
        field in prop::sample::select(PUSH_TEXT_FIELDS.to_vec()),
        control in prop_oneof![refused_control(), prop::sample::select(vec!['\t', '\r', '\n'])],
        at in 0usize..3,
    ) {
        let (pointer, name, multi_line) = field;
        prop_assume!(!(multi_line && matches!(control, '\t' | '\r' | '\n')));
        let mut command = seed("commands/push-filezilla.json");
        command["application"]["description"] = json!("About FileZilla");
        command["application"]["optional_reference"] = json!("FZ-1");
        command["deployment_type"]["admin_comment"] = json!("Packaged");
        let slot = command.pointer_mut(pointer).expect("the seed has the field");
        let value = slot.as_str().expect("a text field").to_string();
        let mut chars: Vec<char> = value.chars().collect();
        // In the folder, inside its last level (a broken "Applications" root is refused for that).
        let at = if name == "application.folder" { chars.len() - 1 } else { [1, chars.len() / 2, chars.len() - 1][at] };
        chars.insert(at, control);
        *slot = json!(String::from_iter(chars));
        match scripts_of(&command) {
            Ok(_) => return Err(TestCaseError::fail(format!("U+{:04X} in {name} was accepted", control as u32))),
            Err(rejection) => {
                prop_assert_eq!(&rejection.field, name);
                prop_assert!(rejection.reason.contains(&format!("U+{:04X}", control as u32)), "{}", rejection);
            }
        }
    }

    #[test]
    fn import_control_characters_are_refused_naming_the_field(
        names in prop::collection::vec(hostile_name(), 1..4),
        control in prop_oneof![refused_control(), prop::sample::select(vec!['\t', '\r', '\n'])],
        pick in any::<prop::sample::Index>(),
    ) {
        let mut names = names;
        let i = pick.index(names.len());
        names[i].insert(1, control);
        let mut command = seed("commands/import-filezilla.json");
        command["applications"] = json!(names);
        match scripts_of(&command) {
            Ok(_) => return Err(TestCaseError::fail(format!("U+{:04X} was accepted", control as u32))),
            Err(rejection) => {
                prop_assert_eq!(rejection.field, format!("applications[{i}]"));
                prop_assert!(rejection.reason.contains(&format!("U+{:04X}", control as u32)), "{}", rejection.reason);
            }
        }
    }
}
