//! `sccm-connector demo`, run as a newcomer would, and what it leaves behind: the real connector
//! against both simulators, one push and one import.

use crate::support::{connector, temp_dir};
use serde_json::Value;

#[test]
fn the_demo_pushes_and_imports_and_leaves_a_consistent_site() {
    let dir = temp_dir();
    let keep = dir.path().join("demo");
    let output = connector(&["demo", "--dir", keep.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("Push of FileZilla 3.46.3 to site DEM: ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Demo Distribution Group: 2/2 distribution points"),
        "{stdout}"
    );
    assert!(
        stdout.contains("folder         DEM:\\Application\\Test 1"),
        "{stdout}"
    );
    assert!(stdout.contains("Import: ok"), "{stdout}");
    assert!(stdout.contains("TimKosse_FileZilla_3.46.3_English(United States)  path /Test 1  version 3.46.3  vendor Tim Kosse"), "{stdout}");

    // Everything the issue promises is left in DIR.
    for name in ["connector.toml", "journal", "portal", "site", "share"] {
        assert!(
            keep.join(name).exists(),
            "{name} is missing from the demo directory"
        );
    }
    // The package was unpacked into the share.
    let package = keep.join("share/incoming/TimKosse_FileZilla_3.46.3_English(United States)");
    assert!(package.join("Files/FileZilla_3.46.3_win64.msi").exists());

    // The site holds exactly one of each object, and its effect log accounts for its state.
    let site = keep.join("site");
    let check = connector(&[
        "sim",
        "site",
        "--site",
        site.to_str().expect("utf-8"),
        "check",
    ]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let dump = connector(&[
        "sim",
        "site",
        "--site",
        site.to_str().expect("utf-8"),
        "dump",
    ]);
    let dump: Value = serde_json::from_slice(&dump.stdout).expect("the dump is JSON");
    let count = |key: &str| {
        dump["state"][key]
            .as_array()
            .or_else(|| dump[key].as_array())
            .map_or(0, Vec::len)
    };
    assert_eq!(
        (count("applications"), count("deployments")),
        (1, 1),
        "{dump}"
    );
}
