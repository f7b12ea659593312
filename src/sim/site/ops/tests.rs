//! Unit tests of the site's realistic behaviour (the operations behind the cmdlets).

use super::*;
use crate::sim::site::config::InitOptions;
use crate::sim::site::sdm::package_xml;
use std::path::Path;

const NOW: &str = "2020-01-31T09:12:00Z";
const SHARE: &str = "\\\\WIN-2HDJCBHRRVB\\Sources$";

struct Fixture {
    _dir: tempfile::TempDir,
    config: SiteConfig,
    state: State,
    share: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("incoming").join("FileZilla")).expect("mkdir");
    std::fs::write(
        share
            .join("incoming")
            .join("FileZilla")
            .join("Deploy-Application.exe"),
        b"MZ....",
    )
    .expect("write");
    std::fs::create_dir_all(share.join("empty")).expect("mkdir");
    let config = SiteConfig::from_options(
        dir.path(),
        &InitOptions {
            shares: vec![(SHARE.into(), share.clone())],
            ..InitOptions::default()
        },
    )
    .expect("config");
    let state = State::new(config.first_package_number());
    Fixture {
        _dir: dir,
        config,
        state,
        share,
    }
}

fn new_app(name: &str) -> NewApplication {
    NewApplication {
        name: name.into(),
        localized_name: Some("FileZilla".into()),
        publisher: Some("Tim Kosse".into()),
        software_version: Some("3.46.3".into()),
        default_language_id: Some(1033),
        auto_install: Some(true),
        owner: Some(Some("John Doe".into())),
        ..NewApplication::default()
    }
}

fn new_dt(location: &str) -> NewScriptDeploymentType {
    NewScriptDeploymentType {
        name: "FileZilla_DT".into(),
        content_location: Some(location.into()),
        install_command: "Deploy-Application.exe -DeploymentType Install".into(),
        uninstall_command: Some("Deploy-Application.exe -DeploymentType Uninstall".into()),
        script_language: "PowerShell".into(),
        detection_script: "Get-Item 'HKLM:\\x' | Where { $_.IsInstalled -eq 1 }".into(),
        slow_network: Some("Download".into()),
        cache_content: true,
        languages: vec!["en-US".into()],
        ..NewScriptDeploymentType::default()
    }
}

fn app_id(change: &Change) -> u32 {
    match change {
        Change::ApplicationCreated { ci_id, .. } => *ci_id,
        other => panic!("not an application: {other:?}"),
    }
}

#[test]
fn applications_get_configmgr_ids_and_unique_names() {
    let mut f = fixture();
    let change = create_application(&f.config, &mut f.state, new_app("FileZilla 3"), false, NOW)
        .expect("created");
    let id = app_id(&change);
    assert_eq!(id, 16_777_217);
    let app = f.state.application(id).expect("exists");
    let prefix = format!("ScopeId_{}/Application_", f.config.site_guid);
    assert!(app.model_name.starts_with(&prefix), "{}", app.model_name);
    assert_eq!(app.culture, "en-US");
    assert_eq!(app.owners, vec!["John Doe".to_string()]);
    assert_eq!(app.package_id, None);
    let again = create_application(&f.config, &mut f.state, new_app("filezilla 3"), false, NOW);
    assert_eq!(
        again.map_err(|e| e.message),
        Err(NAME_EXISTS.to_string()),
        "names are unique, case-insensitively"
    );
    // A seed may hold duplicates.
    let dup = create_application(&f.config, &mut f.state, new_app("FileZilla 3"), true, NOW)
        .expect("seeded duplicate");
    assert_eq!(app_id(&dup), 16_777_218);
}

#[test]
fn invalid_xml_characters_and_unknown_lcids_are_refused() {
    let mut f = fixture();
    let e = create_application(&f.config, &mut f.state, new_app("a\u{1}b"), false, NOW)
        .expect_err("control character");
    assert_eq!(
        e.message,
        "'\\u0001', hexadecimal value 0x01, is an invalid character."
    );
    let mut app = new_app("x");
    app.default_language_id = Some(4321);
    let e = create_application(&f.config, &mut f.state, app, false, NOW).expect_err("lcid");
    assert!(
        e.message
            .contains("4321 (0x10e1) is an invalid culture identifier")
    );
    assert!(f.state.applications.is_empty());
}

#[test]
fn content_must_be_a_mapped_non_empty_unc_folder() {
    let f = fixture();
    let ok =
        capture_content(&f.config, &format!("{SHARE}\\incoming\\FileZilla")).expect("captured");
    assert_eq!(ok.files.len(), 1);
    assert_eq!(
        ok.local_path,
        f.share
            .join("incoming")
            .join("FileZilla")
            .display()
            .to_string()
    );
    let e = capture_content(&f.config, &format!("{SHARE}\\empty")).expect_err("empty");
    assert!(e.message.contains("is empty"), "{}", e.message);
    let e = capture_content(&f.config, &format!("{SHARE}\\missing")).expect_err("missing");
    assert!(e.message.contains("does not exist"), "{}", e.message);
    let e = capture_content(&f.config, "\\\\OTHER\\share\\x").expect_err("unmapped");
    assert!(e.message.contains("does not exist"), "{}", e.message);
    let e = capture_content(&f.config, "C:\\Sources\\x").expect_err("local");
    assert!(
        e.message.contains("not a valid network path"),
        "{}",
        e.message
    );
}

#[test]
fn a_deployment_type_gives_the_app_a_package_and_a_revision() {
    let mut f = fixture();
    let id = app_id(
        &create_application(&f.config, &mut f.state, new_app("FZ"), false, NOW).expect("app"),
    );
    let change = add_script_deployment_type(
        &f.config,
        &mut f.state,
        id,
        new_dt(&format!("{SHARE}\\incoming\\FileZilla")),
        NOW,
    )
    .expect("dt");
    assert!(matches!(
        change,
        Change::DeploymentTypeAdded { revision: 2, .. }
    ));
    let app = f.state.application(id).expect("app");
    assert_eq!(app.package_id.as_deref(), Some("DEM00100"));
    assert_eq!(app.deployment_types[0].ci_id, id + 1);
    let e = add_script_deployment_type(
        &f.config,
        &mut f.state,
        id,
        new_dt(&format!("{SHARE}\\incoming\\FileZilla")),
        NOW,
    )
    .expect_err("same name");
    assert!(e.message.contains("already used"), "{}", e.message);
    let mut bad = new_dt(&format!("{SHARE}\\incoming\\FileZilla"));
    bad.name = "other".into();
    bad.languages = vec!["xx-YY".into()];
    assert!(add_script_deployment_type(&f.config, &mut f.state, id, bad, NOW).is_err());
    assert!(add_script_deployment_type(&f.config, &mut f.state, 999, new_dt(SHARE), NOW).is_err());
}

fn pushed(f: &mut Fixture) -> u32 {
    let id = app_id(
        &create_application(&f.config, &mut f.state, new_app("FZ"), false, NOW).expect("app"),
    );
    add_script_deployment_type(
        &f.config,
        &mut f.state,
        id,
        new_dt(&format!("{SHARE}\\incoming\\FileZilla")),
        NOW,
    )
    .expect("dt");
    id
}

#[test]
fn distribution_completes_over_the_configured_polls() {
    let mut f = fixture();
    let id = pushed(&mut f);
    let e =
        start_distribution(&f.config, &mut f.state, id, "No such group", NOW).expect_err("group");
    assert_eq!(e.message, NO_OBJECT);
    start_distribution(&f.config, &mut f.state, id, "demo distribution group", NOW)
        .expect("started");
    let e = start_distribution(&f.config, &mut f.state, id, "Demo Distribution Group", NOW)
        .expect_err("twice");
    assert_eq!(e.kind, ErrorKind::ResourceExists);
    let package = f
        .state
        .application(id)
        .and_then(|a| a.package_id.clone())
        .expect("pkg");
    let polls: Vec<(u32, u32, u32)> = (0..4)
        .map(|_| {
            let s = poll_distribution(&f.config, &mut f.state, &package).expect("status");
            (s.targeted, s.success, s.in_progress)
        })
        .collect();
    assert_eq!(polls, vec![(2, 0, 2), (2, 1, 1), (2, 2, 0), (2, 2, 0)]);
    assert_eq!(poll_distribution(&f.config, &mut f.state, "DEM99999"), None);
}

#[test]
fn an_application_without_content_cannot_be_distributed() {
    let mut f = fixture();
    let id = app_id(
        &create_application(&f.config, &mut f.state, new_app("FZ"), false, NOW).expect("app"),
    );
    let e = start_distribution(&f.config, &mut f.state, id, "Demo Distribution Group", NOW)
        .expect_err("no content");
    assert!(e.message.contains("no content"), "{}", e.message);
}

#[test]
fn deployments_are_unique_per_application_and_collection() {
    let mut f = fixture();
    let id = pushed(&mut f);
    let new = || NewDeployment {
        collection_name: "Demo devices".into(),
        deploy_purpose: Some("Available".into()),
        ..NewDeployment::default()
    };
    let change = create_deployment(&f.config, &mut f.state, id, new(), NOW).expect("deployed");
    let Change::DeploymentCreated {
        assignment_id,
        assignment_unique_id,
        ..
    } = change
    else {
        panic!("not a deployment")
    };
    assert_eq!(assignment_id, 16_777_217);
    assert!(assignment_unique_id.starts_with('{') && assignment_unique_id.ends_with('}'));
    let e = create_deployment(&f.config, &mut f.state, id, new(), NOW).expect_err("twice");
    assert_eq!(e.kind, ErrorKind::ResourceExists);
    let mut other = new();
    other.collection_name = "Nope".into();
    assert_eq!(
        create_deployment(&f.config, &mut f.state, id, other, NOW).map_err(|e| e.message),
        Err(NO_OBJECT.to_string())
    );
    let d = &f.state.deployments[0];
    assert_eq!(d.offer_type_id, 2);
    assert_eq!(d.assignment_name, "FZ_DEM00014_Install");
}

#[test]
fn folders_nest_and_objects_move() {
    let mut f = fixture();
    let id = pushed(&mut f);
    let model = f
        .state
        .application(id)
        .map(|a| a.model_name.clone())
        .expect("app");
    assert_eq!(
        find_folder(&f.config, &f.state, "Application").expect("path"),
        Some(Place::Root)
    );
    assert_eq!(
        find_folder(&f.config, &f.state, "Application\\A").expect("path"),
        None
    );
    let Change::FolderCreated {
        container_node_id: a,
        ..
    } = create_folder(&mut f.state, Place::Root, "A", NOW).expect("A")
    else {
        panic!("folder")
    };
    assert_eq!(a, 16_777_217);
    let Change::FolderCreated {
        container_node_id: b,
        ..
    } = create_folder(&mut f.state, Place::Folder(a), "B", NOW).expect("B")
    else {
        panic!("folder")
    };
    assert_eq!(
        create_folder(&mut f.state, Place::Root, "a", NOW).map_err(|e| e.message),
        Err(NAME_EXISTS.to_string())
    );
    assert!(create_folder(&mut f.state, Place::Root, "x\\y", NOW).is_err());
    assert_eq!(
        find_folder(&f.config, &f.state, "DEM:\\Application\\a\\B").expect("path"),
        Some(Place::Folder(b))
    );
    assert!(find_folder(&f.config, &f.state, "XYZ:\\Application\\A").is_err());
    assert!(find_folder(&f.config, &f.state, "Applications\\A").is_err());
    assert_eq!(
        find_folder(&f.config, &f.state, "Package\\A").expect("path"),
        None
    );
    move_application(&mut f.state, &model, Place::Folder(b)).expect("moved");
    assert_eq!(f.state.folder_of(&model), Some(b));
    assert_eq!(f.state.object_path(Some(b)), "/A/B");
    assert!(matches!(
        move_application(&mut f.state, &model, Place::Folder(b)),
        Ok(Change::Unchanged { .. })
    ));
    move_application(&mut f.state, &model, Place::Folder(a)).expect("moved");
    assert_eq!(
        f.state.memberships.len(),
        1,
        "an object lives in one folder"
    );
    move_application(&mut f.state, &model, Place::Root).expect("to root");
    assert!(
        f.state.memberships.is_empty(),
        "root apps have no membership"
    );
}

#[test]
fn the_digest_parses_back_into_the_application() {
    let mut f = fixture();
    let id = pushed(&mut f);
    let app = f.state.application(id).expect("app").clone();
    let xml = package_xml(&f.config, &app);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-16\"?><AppMgmtDigest xmlns="));
    let meta = crate::sdm::parse(&xml).expect("parses");
    assert_eq!(meta.package_name, "FZ");
    assert_eq!(meta.name.as_deref(), Some("FileZilla"));
    assert_eq!(meta.vendor.as_deref(), Some("Tim Kosse"));
    assert_eq!(meta.version.as_deref(), Some("3.46.3"));
    assert_eq!(meta.language.as_deref(), Some("English(United States)"));
    let resource = meta.resource_id.expect("resource id");
    assert!(resource.starts_with("Res_") && resource[4..].bytes().all(|b| b.is_ascii_digit()));
    let dt = &meta.deployment_types[0];
    assert_eq!(dt.name.as_deref(), Some("FileZilla_DT"));
    assert_eq!(dt.technology.as_deref(), Some("Script"));
    assert_eq!(
        dt.content_location.as_deref(),
        Some(format!("{SHARE}\\incoming\\FileZilla\\").as_str())
    );
    assert_eq!(
        dt.install_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Install")
    );
    assert_eq!(
        dt.uninstall_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Uninstall")
    );
    assert_eq!(dt.detection_method.as_deref(), Some("Script"));
    assert_eq!(
        dt.detection_script.as_deref(),
        Some("Get-Item 'HKLM:\\x' | Where { $_.IsInstalled -eq 1 }")
    );
}

#[test]
fn hostile_texts_survive_the_digest() {
    let mut f = fixture();
    let mut new = new_app("a <b> & \"c\" 'd'");
    new.localized_name = Some("x\r\ny\tz ]]> &amp;".into());
    new.owner = Some(Some("CONTOSO\\\"o\"\n".into()));
    let id = app_id(&create_application(&f.config, &mut f.state, new, false, NOW).expect("app"));
    let app = f.state.application(id).expect("app").clone();
    let xml = package_xml(&f.config, &app);
    let meta = crate::sdm::parse(&xml).expect("parses");
    assert_eq!(meta.package_name, "a <b> & \"c\" 'd'");
    assert_eq!(meta.name.as_deref(), Some("x\r\ny\tz ]]> &amp;"));
    let doc = roxmltree::Document::parse(&xml).expect("xml");
    let owner = doc
        .descendants()
        .find(|n| n.has_tag_name("User"))
        .and_then(|n| n.attribute("Id"))
        .expect("owner");
    assert_eq!(owner, "CONTOSO\\\"o\"\n");
}

#[test]
fn the_audit_catches_unlogged_objects() {
    let mut f = fixture();
    let change =
        create_application(&f.config, &mut f.state, new_app("A"), false, NOW).expect("app");
    assert!(f.state.audit().is_err(), "created but not logged");
    f.state.log(
        NOW,
        "New-CMApplication",
        serde_json::Map::new(),
        vec![change.clone()],
    );
    assert_eq!(f.state.audit(), Ok(()));
    f.state.log(
        NOW,
        "New-CMApplication",
        serde_json::Map::new(),
        vec![change],
    );
    assert!(f.state.audit().is_err(), "created twice");
    let _ = Path::new(".");
}
