//! Seeding: preloading a site with an estate it did not create through scripts — applications
//! with their source folders on disk, folder placement, distributions, deployments, and
//! duplicate names (which `New-CMApplication` itself refuses). The whole seed is one atomic
//! commit; its effects are logged under the cmdlet name `seed`, so the audit still holds.
//! The file format is documented in `docs/simulators.md`.

use super::clock;
use super::ops::{self, NewApplication, NewDeployment, NewScriptDeploymentType, Place};
use super::state::{Change, State};
use super::store::{Site, StoreError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A seed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Folders to create (`Applications/A/B`), in addition to the applications' folders.
    #[serde(default)]
    pub folders: Vec<String>,
    #[serde(default)]
    pub applications: Vec<SeedApplication>,
}

/// One application of a seed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedApplication {
    pub name: String,
    pub localized_name: Option<String>,
    pub publisher: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub localized_description: Option<String>,
    pub optional_reference: Option<String>,
    pub owner: Option<String>,
    /// A display name (`English(United States)`), culture (`en-US`) or LCID (`1033`).
    pub language: Option<String>,
    #[serde(default)]
    pub auto_install: bool,
    #[serde(default)]
    pub hidden: bool,
    /// `Applications/Test 1`; absent: the root of the Applications node.
    pub folder: Option<String>,
    #[serde(default)]
    pub deployment_types: Vec<SeedDeploymentType>,
    /// DP groups the content is distributed to (completed at once).
    #[serde(default)]
    pub distribute_to: Vec<String>,
    #[serde(default)]
    pub deploy_to: Vec<SeedDeployment>,
}

/// One script deployment type of a seeded application.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDeploymentType {
    pub name: String,
    /// A UNC path the share map resolves.
    pub content_location: Option<String>,
    /// Files to create in the content folder: relative path (`/` or `\`) → text.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    pub install_command: String,
    pub uninstall_command: Option<String>,
    #[serde(default = "powershell")]
    pub detection_language: String,
    #[serde(default)]
    pub detection_script: String,
    pub slow_network: Option<String>,
    #[serde(default)]
    pub cache_content: bool,
    #[serde(default)]
    pub run_as_32bit: bool,
    pub max_runtime_minutes: Option<i64>,
    pub estimated_runtime_minutes: Option<i64>,
    #[serde(default)]
    pub languages: Vec<String>,
    pub comment: Option<String>,
}

fn powershell() -> String {
    "PowerShell".into()
}

/// One deployment of a seeded application.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDeployment {
    pub collection: String,
    pub action: Option<String>,
    pub purpose: Option<String>,
}

/// Why a seed was refused (nothing of it is committed).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {message}")]
    File { path: String, message: String },
    #[error("seed: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `Applications/A/B` → `["A", "B"]`.
pub fn portal_folder(path: &str) -> Result<Vec<String>, SeedError> {
    let mut parts = path.split('/');
    if parts.next() != Some("Applications") {
        return Err(SeedError::Invalid(format!(
            "folder {path:?} must start with \"Applications\""
        )));
    }
    let names: Vec<String> = parts.map(str::to_string).collect();
    if names.iter().any(|n| n.is_empty() || n.contains('\\')) {
        return Err(SeedError::Invalid(format!(
            "folder {path:?} has an empty level or a backslash"
        )));
    }
    Ok(names)
}

fn ensure_folder(
    state: &mut State,
    names: &[String],
    now: &str,
    changes: &mut Vec<Change>,
) -> Result<Place, SeedError> {
    let mut place = Place::Root;
    for name in names {
        let parent = place.id();
        let existing = state.folders.iter().find(|f| {
            f.parent_container_node_id == parent && f.name.to_lowercase() == name.to_lowercase()
        });
        place = match existing {
            Some(f) => Place::Folder(f.container_node_id),
            None => {
                let change = ops::create_folder(state, place, name, now)
                    .map_err(|e| SeedError::Invalid(e.message))?;
                let Change::FolderCreated {
                    container_node_id, ..
                } = change
                else {
                    return Err(SeedError::Invalid("folder creation failed".into()));
                };
                changes.push(change);
                Place::Folder(container_node_id)
            }
        };
    }
    Ok(place)
}

/// Writes the seed's content files (before the commit; they are the "share").
fn write_files(site: &Site, seed: &Seed) -> Result<(), SeedError> {
    for app in &seed.applications {
        for dt in &app.deployment_types {
            if dt.files.is_empty() {
                continue;
            }
            let location = dt.content_location.as_deref().ok_or_else(|| {
                SeedError::Invalid(format!(
                    "deployment type {:?} has files but no content_location",
                    dt.name
                ))
            })?;
            let dir = super::content::resolve_unc(site.config(), location).ok_or_else(|| {
                SeedError::Invalid(format!(
                    "content location {location:?} is not under a share of the site's share map"
                ))
            })?;
            for (relative, text) in &dt.files {
                let parts: Vec<&str> = relative.split(['/', '\\']).collect();
                if parts
                    .iter()
                    .any(|p| p.is_empty() || *p == "." || *p == "..")
                {
                    return Err(SeedError::Invalid(format!(
                        "file name {relative:?} is not a plain relative path"
                    )));
                }
                let path = parts.iter().fold(dir.clone(), |p, part| p.join(part));
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| SeedError::File {
                        path: parent.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
                std::fs::write(&path, text).map_err(|e| SeedError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
    }
    Ok(())
}

fn seed_application(
    site: &Site,
    state: &mut State,
    app: &SeedApplication,
    now: &str,
    changes: &mut Vec<Change>,
) -> Result<(), SeedError> {
    let config = site.config();
    let invalid = |e: ops::OpError| SeedError::Invalid(format!("{:?}: {}", app.name, e.message));
    let lcid = match &app.language {
        Some(text) => Some(i64::from(
            crate::command::language::lookup(text)
                .ok_or_else(|| SeedError::Invalid(format!("unknown language {text:?}")))?
                .lcid,
        )),
        None => None,
    };
    let change = ops::create_application(
        config,
        state,
        NewApplication {
            name: app.name.clone(),
            description: app.description.clone(),
            localized_name: app.localized_name.clone(),
            localized_description: app.localized_description.clone(),
            publisher: app.publisher.clone(),
            software_version: app.version.clone(),
            optional_reference: app.optional_reference.clone(),
            owner: app.owner.clone().map(Some),
            default_language_id: lcid,
            auto_install: Some(app.auto_install),
            hidden: app.hidden,
            ..NewApplication::default()
        },
        true,
        now,
    )
    .map_err(invalid)?;
    let Change::ApplicationCreated {
        ci_id, model_name, ..
    } = change.clone()
    else {
        return Err(SeedError::Invalid("application creation failed".into()));
    };
    changes.push(change);
    for dt in &app.deployment_types {
        let change = ops::add_script_deployment_type(
            config,
            state,
            ci_id,
            NewScriptDeploymentType {
                name: dt.name.clone(),
                content_location: dt.content_location.clone(),
                install_command: dt.install_command.clone(),
                uninstall_command: dt.uninstall_command.clone(),
                script_language: dt.detection_language.clone(),
                detection_script: dt.detection_script.clone(),
                run_as_32bit: dt.run_as_32bit,
                slow_network: dt.slow_network.clone(),
                cache_content: dt.cache_content,
                max_runtime_minutes: dt.max_runtime_minutes,
                estimated_runtime_minutes: dt.estimated_runtime_minutes,
                languages: dt.languages.clone(),
                comment: dt.comment.clone(),
                ..NewScriptDeploymentType::default()
            },
            now,
        )
        .map_err(invalid)?;
        changes.push(change);
    }
    for group in &app.distribute_to {
        changes.push(ops::start_distribution(config, state, ci_id, group, now).map_err(invalid)?);
        if let Some(d) = state.distributions.last_mut() {
            d.polls = config.distribution_polls;
        }
    }
    for deployment in &app.deploy_to {
        changes.push(
            ops::create_deployment(
                config,
                state,
                ci_id,
                NewDeployment {
                    collection_name: deployment.collection.clone(),
                    deploy_action: deployment.action.clone(),
                    deploy_purpose: deployment.purpose.clone(),
                    ..NewDeployment::default()
                },
                now,
            )
            .map_err(invalid)?,
        );
    }
    if let Some(folder) = &app.folder {
        let names = portal_folder(folder)?;
        let place = ensure_folder(state, &names, now, changes)?;
        changes.push(ops::move_application(state, &model_name, place).map_err(invalid)?);
    }
    Ok(())
}

/// Applies `seed` to the site in one commit; returns a one-line report.
pub fn apply(site: &Site, seed: &Seed, source: &str) -> Result<String, SeedError> {
    write_files(site, seed)?;
    let now = clock::now_rfc3339();
    site.update(|state| {
        let mut working = state.clone();
        let mut changes = Vec::new();
        for folder in &seed.folders {
            let names = portal_folder(folder)?;
            ensure_folder(&mut working, &names, &now, &mut changes)?;
        }
        for app in &seed.applications {
            seed_application(site, &mut working, app, &now, &mut changes)?;
        }
        let mut arguments = serde_json::Map::new();
        arguments.insert("file".into(), source.into());
        working.log(&now, "seed", arguments, changes);
        *state = working;
        Ok(format!(
            "seeded {} applications and {} folders",
            seed.applications.len(),
            seed.folders.len()
        ))
    })?
}

/// Reads a seed file and applies it.
pub fn seed_file(site: &Site, path: &Path) -> Result<String, SeedError> {
    let fail = |message: String| SeedError::File {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let seed: Seed = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    apply(site, &seed, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::super::config::{InitOptions, SiteConfig};
    use super::*;

    #[test]
    fn a_seed_creates_an_estate_in_one_logged_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SiteConfig::from_options(dir.path(), &InitOptions::default()).expect("cfg");
        let site = Site::init(dir.path(), config, false).expect("init");
        let seed: Seed = serde_json::from_str(
            r#"{
              "folders": ["Applications/Archive"],
              "applications": [
                {"name": "Dup", "publisher": "P", "version": "1", "language": "de-DE",
                 "folder": "Applications/Test 1/Sub",
                 "deployment_types": [{"name": "Dup_DT",
                    "content_location": "\\\\CM01\\Sources$\\apps\\Dup",
                    "files": {"setup.exe": "MZ", "Files/a.txt": "a"},
                    "install_command": "setup.exe", "detection_script": "$true"}],
                 "distribute_to": ["Demo Distribution Group"],
                 "deploy_to": [{"collection": "Demo devices"}]},
                {"name": "Dup"}
              ]
            }"#,
        )
        .expect("seed");
        apply(&site, &seed, "inline").expect("applied");
        let state = site.read().expect("read");
        assert_eq!(state.applications.len(), 2);
        assert_eq!(state.folders.len(), 3);
        assert_eq!(state.effects.len(), 1);
        assert_eq!(state.audit(), Ok(()));
        assert_eq!(state.applications[0].culture, "de-DE");
        assert_eq!(
            state.applications[0].deployment_types[0]
                .content
                .as_ref()
                .map(|c| c.files.len()),
            Some(2)
        );
        assert_eq!(
            state.distributions[0].polls,
            site.config().distribution_polls
        );
        let sub = state.folder_of(&state.applications[0].model_name);
        assert_eq!(state.object_path(sub), "/Test 1/Sub");
        assert!(
            dir.path()
                .join("shares/Sources/apps/Dup/Files/a.txt")
                .exists()
        );
    }

    #[test]
    fn a_bad_seed_commits_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SiteConfig::from_options(dir.path(), &InitOptions::default()).expect("cfg");
        let site = Site::init(dir.path(), config, false).expect("init");
        let seed: Seed = serde_json::from_str(
            r#"{"applications": [{"name": "A"}, {"name": "B", "deploy_to": [{"collection": "nope"}]}]}"#,
        )
        .expect("seed");
        assert!(apply(&site, &seed, "inline").is_err());
        assert!(site.read().expect("read").applications.is_empty());
        assert!(portal_folder("Test 1").is_err());
        assert!(portal_folder("Applications//x").is_err());
    }
}
