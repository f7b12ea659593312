//! Unpacking real archives built here: a PSADT-shaped package, hostile ones, bombs, re-runs.

use super::*;
use std::io::Cursor;
use zip::write::SimpleFileOptions;

/// Builds a zip in memory from `(name, bytes)` entries (deflated).
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(*name, SimpleFileOptions::default())
            .expect("start");
        w.write_all(bytes).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn archive(&self, bytes: &[u8]) -> (PathBuf, String) {
        let path = self.dir.path().join("package.zip");
        fs::write(&path, bytes).expect("write archive");
        let sha = sha256_file(&path).expect("hash");
        (path, sha)
    }
    fn target(&self) -> PathBuf {
        self.dir
            .path()
            .join("share")
            .join("TimKosse_FileZilla_3.46.3_English(United States)")
    }
}

fn psadt() -> Vec<u8> {
    zip_of(&[
        ("Deploy-Application.exe", b"MZ fake exe"),
        ("Deploy-Application.ps1", b"# PSADT"),
        ("AppDeployToolkit/AppDeployToolkitMain.ps1", b"# main"),
        ("Files/FileZilla_3.46.3_win64-setup.msi", &[7u8; 100_000]),
    ])
}

#[test]
fn a_psadt_package_unpacks_with_a_manifest_beside_it() {
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(&psadt());
    let target = fx.target();
    let Unpacked::Written(manifest) =
        unpack(&archive, &sha, &target, &UnpackLimits::default()).expect("unpacks")
    else {
        panic!("expected a fresh unpack")
    };
    assert_eq!(manifest.files.len(), 4);
    assert_eq!(
        fs::read(target.join("Files/FileZilla_3.46.3_win64-setup.msi"))
            .expect("msi")
            .len(),
        100_000
    );
    assert!(manifest_path(&target).expect("path").exists());
    assert!(
        !target.join(".sccm-connector.json").exists(),
        "the package folder holds only the package"
    );
    // Nothing else is left in the share folder.
    let names: Vec<String> = fs::read_dir(target.parent().expect("parent"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_rerun_recognises_content_in_place_and_a_change_is_replaced() {
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(&psadt());
    let target = fx.target();
    unpack(&archive, &sha, &target, &UnpackLimits::default()).expect("first");
    assert!(matches!(
        unpack(&archive, &sha, &target, &UnpackLimits::default()),
        Ok(Unpacked::AlreadyInPlace(_))
    ));
    // Someone edited a file: the content is no longer the package's; it is unpacked again.
    fs::write(target.join("Deploy-Application.ps1"), b"# tampered").expect("tamper");
    assert!(matches!(
        unpack(&archive, &sha, &target, &UnpackLimits::default()),
        Ok(Unpacked::Written(_))
    ));
    assert_eq!(
        fs::read(target.join("Deploy-Application.ps1")).expect("read"),
        b"# PSADT"
    );
    // Someone added a file: it is not the package either; the folder is replaced without it.
    fs::write(target.join("Files").join("extra.exe"), b"MZ").expect("add");
    assert!(matches!(
        unpack(&archive, &sha, &target, &UnpackLimits::default()),
        Ok(Unpacked::Written(_))
    ));
    assert!(!target.join("Files").join("extra.exe").exists());
    assert!(matches!(
        unpack(&archive, &sha, &target, &UnpackLimits::default()),
        Ok(Unpacked::AlreadyInPlace(_))
    ));
}

#[test]
fn leftovers_of_an_interrupted_run_are_cleaned() {
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(&psadt());
    let target = fx.target();
    let stale = sibling(&target, ".partial-deadbeef").expect("sibling");
    fs::create_dir_all(stale.join("half")).expect("stale dir");
    unpack(&archive, &sha, &target, &UnpackLimits::default()).expect("unpacks");
    assert!(!stale.exists());
}

#[test]
fn escaping_entries_are_refused_and_nothing_is_written() {
    for name in [
        "../evil.exe",
        "/abs",
        "C:/x",
        "Files\\..\\..\\x",
        "nul.txt",
        "a:stream",
    ] {
        let fx = Fixture::new();
        let (archive, sha) = fx.archive(&zip_of(&[("ok.txt", b"ok"), (name, b"evil")]));
        let target = fx.target();
        match unpack(&archive, &sha, &target, &UnpackLimits::default()) {
            Err(UnpackError::Refused { index: 1, .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
        assert!(!target.exists(), "{name}: nothing may be written");
    }
}

#[test]
fn symlinks_and_case_duplicates_are_refused() {
    let fx = Fixture::new();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
        .expect("symlink");
    let (archive, sha) = fx.archive(&w.finish().expect("finish").into_inner());
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &UnpackLimits::default()),
        Err(UnpackError::Refused { .. })
    ));
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(&zip_of(&[("Setup.msi", b"a"), ("setup.MSI", b"b")]));
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &UnpackLimits::default()),
        Err(UnpackError::Refused { .. })
    ));
}

#[test]
fn zip_bombs_stop_at_the_limits() {
    let zeros = vec![0u8; 8 << 20];
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(&zip_of(&[("zeros.bin", &zeros)]));
    let ratio = UnpackLimits {
        max_ratio: 100,
        ..UnpackLimits::default()
    };
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &ratio),
        Err(UnpackError::Refused { .. })
    ));
    let total = UnpackLimits {
        max_total_bytes: 1 << 20,
        max_ratio: u64::MAX,
        ..UnpackLimits::default()
    };
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &total),
        Err(UnpackError::Limit(_))
    ));
    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}"), vec![1u8])).collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let (archive, sha) = fx.archive(&zip_of(&refs));
    let entries = UnpackLimits {
        max_entries: 10,
        ..UnpackLimits::default()
    };
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &entries),
        Err(UnpackError::Limit(_))
    ));
}

#[test]
fn zip64_archives_unpack() {
    let fx = Fixture::new();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("big.bin", SimpleFileOptions::default().large_file(true))
        .expect("start");
    w.write_all(&[3u8; 70_000]).expect("write");
    let (archive, sha) = fx.archive(&w.finish().expect("finish").into_inner());
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &UnpackLimits::default()),
        Ok(Unpacked::Written(_))
    ));
}

#[test]
fn garbage_is_an_error() {
    let fx = Fixture::new();
    let (archive, sha) = fx.archive(b"not a zip at all");
    assert!(matches!(
        unpack(&archive, &sha, &fx.target(), &UnpackLimits::default()),
        Err(UnpackError::Zip(_))
    ));
}
