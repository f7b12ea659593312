//! The one final result of a job, composed from its journaled state (protocol v1 "Result").
//!
//! Composed once, journaled in `ResultReady`, and re-sent byte for byte under the same
//! idempotency key (`portal::outbox::idempotency_key`) until the portal acknowledges it. Everything in it comes from the journal:
//! the conclusion and the outputs of the steps, never from a fresh look at the site.

use super::outputs::{list, number, step_output, text};
use super::planner::names;
use crate::command::{self, Command, Limits};
use replay::{Conclusion, Job};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The result document for `job`, concluded as `conclusion`.
pub fn compose(job: &Job, conclusion: &Conclusion) -> String {
    let mut result = Map::new();
    result.insert("command_id".into(), json!(job.command_id()));
    result.insert("status".into(), json!(conclusion.status().as_str()));
    result.insert("error".into(), json!(conclusion.error_text()));
    if *conclusion == Conclusion::Succeeded {
        match command::parse(
            job.raw_command(),
            &Limits {
                max_package_bytes: u64::MAX,
            },
        ) {
            Ok(Command::Push(p)) => {
                result.insert("push".into(), push_result(job, &p));
            }
            Ok(Command::Import(i)) => {
                result.insert("import".into(), import_result(job, &i));
            }
            Err(_) => {}
        }
    }
    Value::Object(result).to_string()
}

fn push_result(job: &Job, p: &command::Push) -> Value {
    let app = step_output(job, "ensure-application").unwrap_or_default();
    let dt = step_output(job, "ensure-deployment-type").unwrap_or_default();
    let dist = step_output(job, names::WAIT_DISTRIBUTION).unwrap_or_default();
    let deployment = step_output(job, "ensure-deployment").unwrap_or_default();
    let folder = step_output(job, "ensure-folder")
        .and_then(|f| text(&f, "folder"))
        .unwrap_or_else(|| format!("{}:\\Application", p.site.site_code));
    json!({
        "ci_id": number(&app, "ci_id"),
        "model_name": text(&app, "model_name"),
        "deployment_type": text(&dt, "name").unwrap_or_else(|| p.deployment_type.name.clone()),
        "distribution": {
            "group": p.deployment_type.distribution_group,
            "targeted": number(&dist, "targeted"),
            "succeeded": number(&dist, "succeeded"),
        },
        "deployment_id": text(&deployment, "deployment_id"),
        "folder": folder,
    })
}

/// Folder id → (name, parent id), from the inventory.
fn folders(job: &Job) -> BTreeMap<String, (String, String)> {
    let Some(out) = step_output(job, names::LIST_FOLDERS) else {
        return BTreeMap::new();
    };
    list(&out, "folders")
        .into_iter()
        .filter_map(|f| {
            let id = text(f, "ContainerNodeID")?;
            Some((
                id,
                (
                    text(f, "Name").unwrap_or_default(),
                    text(f, "ParentContainerNodeID").unwrap_or_else(|| "0".into()),
                ),
            ))
        })
        .collect()
}

/// `/Test 1/Sub` for a folder id, walking parents to the root (cycles are cut).
fn folder_path(folders: &BTreeMap<String, (String, String)>, id: &str) -> String {
    let mut parts = Vec::new();
    let mut current = id.to_string();
    while let Some((name, parent)) = folders.get(&current) {
        if parts.len() > folders.len() {
            break;
        }
        parts.push(name.clone());
        current = parent.clone();
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

fn import_result(job: &Job, i: &command::Import) -> Value {
    let folders = folders(job);
    let folder_list: Vec<Value> = folders
        .iter()
        .map(|(id, (name, parent))| json!({"name": name, "container_id": id, "parent_id": parent, "path": folder_path(&folders, id)}))
        .collect();
    let inventory = step_output(job, names::LIST_APPLICATIONS).unwrap_or_default();
    let all_names: Vec<String> = list(&inventory, "applications")
        .iter()
        .filter_map(|a| text(a, "LocalizedDisplayName"))
        .collect();
    let membership: BTreeMap<String, String> = list(&inventory, "memberships")
        .into_iter()
        .filter_map(|m| Some((text(m, "InstanceKey")?, text(m, "ContainerNodeID")?)))
        .collect();
    let model_of: BTreeMap<u64, String> = list(&inventory, "applications")
        .into_iter()
        .filter_map(|a| Some((number(a, "CI_ID")?, text(a, "ModelName")?)))
        .collect();
    let (selected, beyond) = super::planner::selected_applications(job, i);
    let applications: Vec<Value> = selected
        .iter()
        .map(|found| {
            let container = model_of.get(&u64::from(found.ci_id)).and_then(|m| membership.get(m)).cloned();
            let metadata_step = job.steps().iter().find(|s| s.step.name == format!("{} {}", names::READ_METADATA, found.ci_id));
            let upload_step = job.steps().iter().find(|s| s.step.name == format!("{} {}", names::UPLOAD, found.ci_id));
            let parsed = metadata_step
                .and_then(|s| super::outputs::parse_object(s.output()?))
                .map(|o| match text(&o, "sdm_package_xml") {
                    Some(xml) => crate::sdm::parse(&xml).map_err(|e| e.to_string()),
                    None => Err("the application has no SDMPackageXML".to_string()),
                });
            let mut errors = Vec::new();
            for step in [metadata_step, upload_step].into_iter().flatten() {
                if let Some(e) = step.last_error().filter(|_| step.output().is_none()) {
                    errors.push(format!("{}: {e}", step.step.name));
                }
            }
            // What the planner could not plan is reported too: an application is never silently
            // left without metadata or sources.
            let read_metadata = format!("{} {}", names::READ_METADATA, found.ci_id);
            match (&parsed, metadata_step) {
                (_, None) => errors.push(format!(
                    "{read_metadata}: not read: no metadata step could be built for this application (the connector's log names why)"
                )),
                (Some(Err(e)), Some(_)) => {
                    errors.push(format!("{read_metadata}: its metadata cannot be read: {e}"));
                }
                (Some(Ok(m)), Some(_))
                    if i.upload_sources && upload_step.is_none() && m.content_location().is_none() =>
                {
                    errors.push(format!(
                        "{} {}: sources not uploaded: the application has no deployment type with a content location",
                        names::UPLOAD,
                        found.ci_id
                    ));
                }
                _ => {}
            }
            let metadata = parsed.and_then(Result::ok);
            json!({
                "name": found.name,
                "path": container.as_deref().map_or_else(|| "/".to_string(), |c| folder_path(&folders, c)),
                "container_id": container.unwrap_or_else(|| "0".into()),
                "resource_id": metadata.as_ref().and_then(|m| m.resource_id.clone()),
                "is_duplicated": all_names.iter().filter(|n| same_name(n, &found.name)).count() > 1,
                "metadata": metadata.as_ref().map(|m| json!({
                    "package_name": m.package_name,
                    "version": m.version,
                    "vendor": m.vendor,
                    "name": m.name,
                    "language": m.language,
                })),
                "upload_id": upload_step.and_then(|s| s.upload_id.clone()),
                "error": if errors.is_empty() { Value::Null } else { json!(errors.join("; ")) },
            })
        })
        .chain(beyond.iter().map(|skipped| {
            json!({
                "name": skipped.name,
                "error": format!(
                    "not read: one import reads at most {} applications; send another import naming this one",
                    command::MAX_IMPORT_APPLICATIONS
                ),
            })
        }))
        .collect();
    let not_found: Vec<&String> = i
        .applications
        .iter()
        .filter(|wanted| {
            !selected
                .iter()
                .chain(&beyond)
                .any(|f| f.name.eq_ignore_ascii_case(wanted))
        })
        .collect();
    json!({ "folders": folder_list, "applications": applications, "not_found": not_found })
}

/// Whether ConfigMgr would see two application names as the same: its database compares names
/// without regard to case in every script (`Ä` = `ä`, not only ASCII) but with regard to accents.
fn same_name(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn names_compare_without_case_in_every_script() {
        assert!(same_name("FileZilla", "FILEZILLA"));
        assert!(same_name("Überwachung", "überwachung"));
        assert!(
            !same_name("ΣΥΣΤΗΜΑ", "σύστημα"),
            "accents count, as in ConfigMgr's collation"
        );
        assert!(same_name("ΣΥΣΤΗΜΑ", "συστημα"));
        assert!(!same_name("App", "App2"));
    }
}
