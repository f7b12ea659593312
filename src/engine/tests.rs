//! The engine's pure parts on the seed's commands: plans, and the results composed from outputs.

use super::planner::{PhasePlan, PlanContext, plan};
use super::result::compose;
use crate::command::Limits;
use crate::powershell::push::SiteAccess;
use crate::share::{ShareMapping, Shares};
use replay::testkit::History;
use replay::{Conclusion, Event, JobKind, PollPolicy, RetryPolicy, StepKind};
use serde_json::{Value, json};
use std::path::PathBuf;

const PUSH: &[u8] = include_bytes!("../../tests/fixtures/commands/push-filezilla.json");
const IMPORT: &[u8] = include_bytes!("../../tests/fixtures/commands/import-filezilla.json");
const SDM: &str = include_str!("../../tests/fixtures/sdm/filezilla.xml");

fn ctx() -> PlanContext {
    PlanContext {
        access: SiteAccess::default(),
        shares: Shares::new(
            vec![ShareMapping {
                unc: "\\\\WIN-2HDJCBHRRVB\\Sources$".into(),
                local: PathBuf::from("/srv/sources"),
            }],
            vec!["\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming".into()],
        ),
        spool_dir: PathBuf::from("/var/spool/sccm-connector"),
        limits: Limits::default(),
        policy: RetryPolicy::default(),
        distribution: PollPolicy {
            interval_ms: 10_000,
            timeout_ms: 3_600_000,
        },
    }
}

fn received(kind: JobKind, raw: &[u8]) -> History {
    let mut h = History::received(99, kind, "x");
    h.entries[0].event = Event::CommandReceived {
        command_id: Some("x".into()),
        kind,
        raw: raw.to_vec(),
    };
    h
}

fn steps(p: PhasePlan) -> Vec<replay::Step> {
    match p {
        PhasePlan::Steps(steps) => steps,
        PhasePlan::Rejected(r) => panic!("rejected: {r}"),
    }
}

#[test]
fn a_push_plans_download_unpack_and_the_guarded_scripts() {
    let job = received(JobKind::Push, PUSH).fold().expect("folds");
    let steps = steps(plan(&job, 0, &ctx()));
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "download",
            "unpack",
            "ensure-application",
            "ensure-deployment-type",
            "ensure-distribution",
            "wait-distribution",
            "ensure-deployment",
            "ensure-folder"
        ]
    );
    match &steps[0].kind {
        StepKind::Download {
            url, size, dest, ..
        } => {
            assert_eq!(
                (url.as_str(), *size),
                ("/api/connector/v1/packages/pkg-5c2a", 7_340_032)
            );
            assert!(
                dest.ends_with("pkg-5c2a.zip") && dest.starts_with("/var/spool/sccm-connector/"),
                "{dest}"
            );
        }
        other => panic!("{other:?}"),
    }
    match &steps[1].kind {
        StepKind::Unpack { dest, .. } => {
            assert_eq!(
                dest,
                "/srv/sources/incoming/TimKosse_FileZilla_3.46.3_English(United States)"
            )
        }
        other => panic!("{other:?}"),
    }
    let polls: Vec<bool> = steps
        .iter()
        .map(|s| matches!(s.kind, StepKind::Script { poll: Some(_), .. }))
        .collect();
    assert_eq!(
        polls,
        [false, false, false, false, false, true, false, false]
    );
    let golden = include_str!("../../tests/golden/push-filezilla/01-ensure-application.ps1");
    assert!(matches!(&steps[2].kind, StepKind::Script { script, .. } if script == golden));
}

#[test]
fn a_share_outside_the_allowed_roots_is_rejected() {
    let mut ctx = ctx();
    ctx.shares = Shares::new(vec![], vec!["\\\\OTHER\\share".into()]);
    let job = received(JobKind::Push, PUSH).fold().expect("folds");
    match plan(&job, 0, &ctx) {
        PhasePlan::Rejected(reason) => assert!(reason.starts_with("site.share_path: "), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_invalid_command_is_rejected_naming_the_field() {
    let job = received(JobKind::Push, br#"{"id":"x","kind":"push"}"#)
        .fold()
        .expect("folds");
    assert_eq!(
        plan(&job, 0, &ctx()),
        PhasePlan::Rejected("issued_at: is required".into())
    );
}

/// An import whose inventory found FileZilla (twice: a duplicate name) and 7-Zip.
fn import_history() -> History {
    let mut h = received(JobKind::Import, IMPORT);
    let inventory = steps(plan(&h.fold().expect("folds"), 0, &ctx()));
    h.acked().planned(0, inventory);
    let folders = json!({"ok": true, "folders": [
        {"ContainerNodeID": 16777218, "Name": "Test 1", "ParentContainerNodeID": 0},
        {"ContainerNodeID": 16777219, "Name": "Sub", "ParentContainerNodeID": 16777218}]});
    let apps = json!({"ok": true,
        "applications": [
            {"CI_ID": 16777541, "ModelName": "ScopeId_A/Application_1", "LocalizedDisplayName": "TimKosse_FileZilla_3.46.3_English(United States)"},
            {"CI_ID": 16777600, "ModelName": "ScopeId_A/Application_2", "LocalizedDisplayName": "7-Zip"},
            {"CI_ID": 16777700, "ModelName": "ScopeId_A/Application_3", "LocalizedDisplayName": "timkosse_filezilla_3.46.3_english(united states)"}],
        "memberships": {"InstanceKey": "ScopeId_A/Application_1", "ContainerNodeID": 16777219}});
    h.started(0, 1)
        .succeeded(0, 1, &folders.to_string())
        .started(1, 1)
        .succeeded(1, 1, &apps.to_string());
    h
}

#[test]
fn an_import_plans_metadata_from_its_inventory_then_uploads_from_the_metadata() {
    let mut h = import_history();
    let metadata = steps(plan(&h.fold().expect("folds"), 1, &ctx()));
    let names: Vec<&str> = metadata.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["read-metadata 16777541", "read-metadata 16777700"],
        "the requested name, case-insensitively, both duplicates"
    );
    assert!(metadata.iter().all(|s| !s.required));
    h.planned(1, metadata);
    let out = json!({"ok": true, "name": "TimKosse_FileZilla_3.46.3_English(United States)", "ci_id": 16777541, "sdm_package_xml": SDM});
    h.started(2, 1).succeeded(2, 1, &out.to_string());
    h.started(3, 1)
        .failed(3, 1, false, "Get-CMApplication: access denied");
    let uploads = steps(plan(&h.fold().expect("folds"), 2, &ctx()));
    assert_eq!(uploads.len(), 1);
    match &uploads[0].kind {
        StepKind::Upload {
            application,
            source,
        } => {
            assert_eq!(
                application,
                "TimKosse_FileZilla_3.46.3_English(United States)"
            );
            assert_eq!(
                source,
                "/srv/sources/incoming/TimKosse_FileZilla_3.46.3_English(United States)"
            );
        }
        other => panic!("{other:?}"),
    }
    h.planned(2, uploads).started(4, 1);
    h.event(Event::ArchiveBuilt {
        step: 4,
        size: 10,
        sha256: "ab".repeat(32),
    });
    h.event(Event::UploadOpened {
        step: 4,
        upload_id: "up-7".into(),
    });
    h.succeeded(4, 1, "{\"upload_id\":\"up-7\"}");
    let job = h.fold().expect("folds");
    let result: Value = serde_json::from_str(&compose(&job, &Conclusion::Succeeded)).expect("json");
    assert_eq!(result["status"], "ok");
    let apps = result["import"]["applications"]
        .as_array()
        .expect("applications");
    assert_eq!(apps.len(), 2);
    let fz = &apps[0];
    assert_eq!(fz["path"], "/Test 1/Sub");
    assert_eq!(fz["container_id"], "16777219");
    assert_eq!(fz["resource_id"], "Res_810274514");
    assert_eq!(fz["is_duplicated"], true);
    assert_eq!(fz["metadata"]["vendor"], "Tim Kosse");
    assert_eq!(fz["metadata"]["language"], "English(United States)");
    assert_eq!(fz["upload_id"], "up-7");
    assert_eq!(apps[1]["path"], "/");
    assert!(
        apps[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("access denied"))
    );
    let folders = result["import"]["folders"].as_array().expect("folders");
    assert_eq!(folders[1]["path"], "/Test 1/Sub");
}

#[test]
fn import_without_sources_plans_no_uploads() {
    let raw = String::from_utf8_lossy(IMPORT)
        .replace("\"upload_sources\": true", "\"upload_sources\": false");
    let mut h = received(JobKind::Import, raw.as_bytes());
    h.planned(0, vec![]);
    assert_eq!(
        plan(&h.fold().expect("folds"), 2, &ctx()),
        PhasePlan::Steps(vec![])
    );
}

#[test]
fn a_push_result_carries_what_the_steps_reported() {
    let mut h = received(JobKind::Push, PUSH);
    let plan = steps(plan(&h.fold().expect("folds"), 0, &ctx()));
    h.acked().planned(0, plan);
    let outputs = [
        json!({"ok": true}),
        json!({"ok": true}),
        json!({"ok": true, "created": true, "ci_id": 16777541, "model_name": "ScopeId_A/Application_1"}),
        json!({"ok": true, "created": true, "name": "TimKosse_FileZilla_3.46.3_English(United States)_DT"}),
        json!({"ok": true, "started": true}),
        json!({"ok": true, "done": true, "targeted": 2, "succeeded": 2}),
        json!({"ok": true, "created": true, "deployment_id": "{0AB1C2D3-0000-0000-0000-000000000001}"}),
        json!({"ok": true, "moved": true, "folder": "DEM:\\Application\\Test 1"}),
    ];
    for (i, out) in outputs.iter().enumerate() {
        h.started(i as u32, 1)
            .succeeded(i as u32, 1, &out.to_string());
    }
    let job = h.fold().expect("folds");
    let result: Value = serde_json::from_str(&compose(&job, &Conclusion::Succeeded)).expect("json");
    assert_eq!(
        result,
        json!({"command_id": "x", "status": "ok", "error": null, "push": {
            "ci_id": 16777541, "model_name": "ScopeId_A/Application_1",
            "deployment_type": "TimKosse_FileZilla_3.46.3_English(United States)_DT",
            "distribution": {"group": "Demo Distribution Group", "targeted": 2, "succeeded": 2},
            "deployment_id": "{0AB1C2D3-0000-0000-0000-000000000001}",
            "folder": "DEM:\\Application\\Test 1"}})
    );
}

#[test]
fn failed_and_rejected_results_name_the_reason() {
    let job = received(JobKind::Push, PUSH).fold().expect("folds");
    let failed = Conclusion::Failed {
        step: 3,
        step_name: "ensure-deployment-type".into(),
        attempts: 3,
        error: "boom".into(),
    };
    let result: Value = serde_json::from_str(&compose(&job, &failed)).expect("json");
    assert_eq!(result["status"], "failed");
    assert_eq!(
        result["error"],
        "step 'ensure-deployment-type' failed after 3 attempt(s): boom"
    );
    assert!(result.get("push").is_none());
    let rejected = Conclusion::Rejected {
        reason: "kind: must be one of push, import; got \"x\"".into(),
    };
    let result: Value = serde_json::from_str(&compose(&job, &rejected)).expect("json");
    assert_eq!(result["status"], "rejected");
}

/// An import whose metadata phase holds only a step for 16777541 (the planner could not build
/// one for 16777700), whose output carries `sdm`.
fn import_with_metadata(sdm: &str) -> History {
    let mut h = import_history();
    let metadata = steps(plan(&h.fold().expect("folds"), 1, &ctx()));
    h.planned(1, metadata.into_iter().take(1).collect());
    let out = json!({"ok": true, "name": "TimKosse_FileZilla_3.46.3_English(United States)", "ci_id": 16777541, "sdm_package_xml": sdm});
    h.started(2, 1).succeeded(2, 1, &out.to_string());
    let uploads = steps(plan(&h.fold().expect("folds"), 2, &ctx()));
    h.planned(2, uploads);
    h
}

fn import_errors(h: &History) -> Vec<Value> {
    let job = h.fold().expect("folds");
    let result: Value = serde_json::from_str(&compose(&job, &Conclusion::Succeeded)).expect("json");
    result["import"]["applications"]
        .as_array()
        .expect("applications")
        .iter()
        .map(|a| a["error"].clone())
        .collect()
}

#[test]
fn applications_the_planner_could_not_plan_are_reported_with_an_error() {
    let h = import_with_metadata("<AppMgmtDigest unclosed");
    let job = h.fold().expect("folds");
    assert!(
        job.steps().iter().all(|s| s.phase != 2),
        "nothing to upload"
    );
    let errors = import_errors(&h);
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.contains("read-metadata 16777541") && e.contains("cannot be read")),
        "{errors:?}"
    );
    assert!(
        errors[1]
            .as_str()
            .is_some_and(|e| e.contains("read-metadata 16777700") && e.contains("not read")),
        "{errors:?}"
    );
}

#[test]
fn an_application_without_a_content_location_is_reported_not_uploaded() {
    let start = SDM.find("<Location>").expect("a location");
    let end = SDM.find("</Location>").expect("its end") + "</Location>".len();
    let without = format!("{}{}", &SDM[..start], &SDM[end..]);
    let errors = import_errors(&import_with_metadata(&without));
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.starts_with("upload 16777541")
                && e.contains("no deployment type with a content location")),
        "{errors:?}"
    );
    // With its metadata read, the application's metadata is still reported.
    let ok = import_errors(&import_with_metadata(SDM));
    assert!(ok[0].is_null(), "{ok:?}");
}
