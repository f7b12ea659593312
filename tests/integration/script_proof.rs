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
use sccm_connector::command::{Command, Limits, parse};
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

fn scripts_of(command: &Value) -> Option<Vec<Script>> {
    let raw = serde_json::to_vec(command).expect("json");
    let access = SiteAccess {
        provider_machine: Some("cm01.contoso.com".into()),
    };
    match parse(&raw, &Limits::default()).ok()? {
        Command::Push(p) => Some(push::scripts(&p, &access).expect("validated values render")),
        Command::Import(i) => {
            let mut scripts = vec![
                import::list_folders(&i, &access).expect("renders"),
                import::list_applications(&i, &access).expect("renders"),
            ];
            for name in &i.applications {
                scripts
                    .push(import::read_metadata(&i, &access, name, 16_777_541).expect("renders"));
            }
            Some(scripts)
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

/// Characters that matter to PowerShell's lexer (every quote and dash class, expansion, escape,
/// statement separators, comments, here-string terminators, wildcards, Unicode line and space
/// separators, bidi controls, CP1252 trap characters, emoji) and ordinary ones.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            '\'', '‘', '’', '‚', '‛', '"', '“', '”', '„', '-', '–', '—', '―', '$', '(', ')', '{', '}', '`', ';', '|',
            '&', '#', '<', '>', '@', '*', '?', '[', ']', '\u{A0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{202E}',
            '\u{2066}', '\u{200B}', 'Ò', '—', '✓', '😀', ' ', '\\', '%', '+', ',', '.',
        ]),
        1 => any::<char>(),
        2 => prop::char::range('a', 'z'),
    ]
}

/// A hostile one-line value: letters at both ends (names may not start or end with white space)
/// around hostile characters, sometimes with here-string terminators and `$()` spelled out.
fn hostile_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(hostile_char(), 0..24),
        prop::sample::select(vec![
            "",
            "'@",
            "\"@",
            "$(calc)",
            "’; calc; ‘",
            "`n",
            "<#",
            "#>",
        ]),
    )
        .prop_map(|(chars, extra)| format!("a{}{extra}z", String::from_iter(chars)))
}

/// A hostile multi-line value.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![hostile_char(), Just('\n'), Just('\r'), Just('\t')],
        1..48,
    )
    .prop_map(|chars| format!("x{}", String::from_iter(chars)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn hostile_push_values_are_only_ever_literals(
        names in prop::collection::vec(hostile_name(), 12),
        texts in prop::collection::vec(hostile_text(), 3),
    ) {
        let mut command = seed("commands/push-filezilla.json");
        let share = format!("\\\\srv\\Sources$\\{}", names[0].replace(['\\', '/', ':', '*', '?', '"', '<', '>', '|'], "_"));
        command["site"]["share_path"] = json!(share);
        command["deployment_type"]["content_location"] = json!(share);
        command["application"]["package_name"] = json!(names[1]);
        command["application"]["name"] = json!(names[2]);
        command["application"]["vendor"] = json!(names[3]);
        command["application"]["owner"] = json!(names[4]);
        command["application"]["optional_reference"] = json!(names[5]);
        command["application"]["folder"] = json!(format!("Applications/{}/{}", names[6].replace(['/', '\\'], "_"), names[7].replace(['/', '\\'], "_")));
        command["application"]["description"] = json!(texts[0]);
        command["deployment_type"]["name"] = json!(names[8]);
        command["deployment_type"]["install_command"] = json!(names[9]);
        command["deployment_type"]["uninstall_command"] = json!(names[10]);
        command["deployment_type"]["distribution_group"] = json!(names[11]);
        command["deployment_type"]["detection"]["script"] = json!(texts[1]);
        command["deployment_type"]["admin_comment"] = json!(texts[2]);
        command["deployment"]["collection"] = json!(names[4]);
        command["deployment"]["purpose"] = json!("required");
        // Values validation refuses (control characters, over-long) never reach the generator;
        // everything it accepts must render to scripts that pass the proof.
        if let Some(scripts) = scripts_of(&command) {
            for script in &scripts {
                check(script);
            }
            let dt = scripts.iter().find(|s| s.step == "ensure-deployment-type").expect("the DT step");
            let detection = dt.inputs.iter().find(|i| i.variable == "DetectionScript").expect("bound");
            prop_assert_eq!(&detection.value, texts[1].as_str());
        }
    }

    #[test]
    fn hostile_import_values_are_only_ever_literals(names in prop::collection::vec(hostile_name(), 1..4)) {
        let mut command = seed("commands/import-filezilla.json");
        command["applications"] = json!(names);
        if let Some(scripts) = scripts_of(&command) {
            prop_assert_eq!(scripts.len(), 2 + names.len());
            for script in &scripts {
                check(script);
            }
        }
    }
}
