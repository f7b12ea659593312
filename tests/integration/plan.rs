//! `sccm-connector plan` against the golden scripts in `tests/golden/`.
//!
//! The golden files are the complete scripts of the seed's FileZilla push and import, so
//! reviewers can read exactly what runs on an SCCM server. After an intended change to the
//! generator, regenerate them with `UPDATE_GOLDEN=1 cargo test --test integration plan::` and
//! review the diff.

use crate::support::{connector, files, fixture, root, temp_dir};

/// Renders `command` with `plan --out` and compares every file with `tests/golden/<golden>/`.
fn check_golden(command: &str, golden: &str) {
    let out = temp_dir();
    let output = connector(&[
        "plan",
        "--command",
        fixture(command).to_str().expect("utf-8 path"),
        "--out",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert!(
        output.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let golden_dir = root().join("tests/golden").join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        std::fs::create_dir_all(&golden_dir).expect("create golden dir");
        for (name, bytes) in files(out.path()) {
            std::fs::write(golden_dir.join(name), bytes).expect("write golden");
        }
    }
    let rendered = files(out.path());
    let expected = files(&golden_dir);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&rendered),
        names(&expected),
        "the set of scripts changed"
    );
    for ((name, got), (_, want)) in rendered.iter().zip(&expected) {
        assert!(got.starts_with(b"\xEF\xBB\xBF"), "{name} has no BOM");
        assert!(
            got == want,
            "{name} differs from its golden file; if intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
        );
    }
}

#[test]
fn the_filezilla_push_renders_to_its_golden_scripts() {
    check_golden("commands/push-filezilla.json", "push-filezilla");
}

#[test]
fn the_filezilla_import_renders_to_its_golden_scripts() {
    check_golden("commands/import-filezilla.json", "import-filezilla");
}

#[test]
fn plan_prints_scripts_without_bom_in_order() {
    let output = connector(&[
        "plan",
        "--command",
        fixture("commands/push-filezilla.json")
            .to_str()
            .expect("utf-8"),
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("==> ")).collect();
    assert_eq!(
        headers,
        [
            "==> 01-ensure-application.ps1 <==",
            "==> 02-ensure-deployment-type.ps1 <==",
            "==> 03-ensure-distribution.ps1 <==",
            "==> 04-wait-distribution.ps1 <==",
            "==> 05-ensure-deployment.ps1 <==",
            "==> 06-ensure-folder.ps1 <==",
        ]
    );
    assert!(!text.contains('\u{FEFF}'));
}

#[test]
fn a_rejected_command_exits_2_with_the_reason() {
    let dir = temp_dir();
    let bad = dir.path().join("bad.json");
    let mut command: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("commands/push-filezilla.json")).expect("fixture"),
    )
    .expect("json");
    command["deployment"]["purpose"] = serde_json::json!("mandatory");
    std::fs::write(&bad, serde_json::to_vec(&command).expect("json")).expect("write");
    let output = connector(&["plan", "--command", bad.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("deployment.purpose: must be one of available, required; got \"mandatory\""),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_command_file_exits_1() {
    let output = connector(&["plan", "--command", "/nonexistent/command.json"]);
    assert_eq!(output.status.code(), Some(1));
}
