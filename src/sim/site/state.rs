//! The simulated site's state (`state.json`): applications with their deployment types and
//! content, distributions, deployments, console folders and memberships, the per-cmdlet call
//! counters the fault plan uses, and the **effect log** — one entry per successful mutating cmdlet
//! (or seed), written in the same atomic commit as the change it describes.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The state file's format version.
pub const FORMAT: u32 = 1;

/// The first id ConfigMgr hands out for CIs, folders, members and assignments.
pub const FIRST_ID: u32 = 16_777_217;

/// Id counters (ConfigMgr's are site-wide sequences).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub next_ci_id: u32,
    pub next_container_node_id: u32,
    pub next_member_id: u32,
    pub next_assignment_id: u32,
    /// The next package number (`<SITECODE>` + 5 hex digits).
    pub next_package: u32,
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub counters: Counters,
    pub applications: Vec<Application>,
    pub distributions: Vec<Distribution>,
    pub deployments: Vec<Deployment>,
    pub folders: Vec<Folder>,
    pub memberships: Vec<Membership>,
    /// Calls per cmdlet name (as the reference spells it), for the fault plan.
    pub calls: BTreeMap<String, u64>,
    pub effects: Vec<Effect>,
}

impl State {
    pub fn new(first_package: u32) -> State {
        State {
            format: FORMAT,
            counters: Counters {
                next_ci_id: FIRST_ID,
                next_container_node_id: FIRST_ID,
                next_member_id: FIRST_ID,
                next_assignment_id: FIRST_ID,
                next_package: first_package,
            },
            applications: Vec::new(),
            distributions: Vec::new(),
            deployments: Vec::new(),
            folders: Vec::new(),
            memberships: Vec::new(),
            calls: BTreeMap::new(),
            effects: Vec::new(),
        }
    }

    pub fn take_ci_id(&mut self) -> u32 {
        let id = self.counters.next_ci_id;
        self.counters.next_ci_id += 1;
        id
    }

    pub fn application(&self, ci_id: u32) -> Option<&Application> {
        self.applications.iter().find(|a| a.ci_id == ci_id)
    }

    pub fn application_mut(&mut self, ci_id: u32) -> Option<&mut Application> {
        self.applications.iter_mut().find(|a| a.ci_id == ci_id)
    }

    pub fn application_by_package(&self, package_id: &str) -> Option<&Application> {
        self.applications
            .iter()
            .find(|a| a.package_id.as_deref() == Some(package_id))
    }

    pub fn folder(&self, id: u32) -> Option<&Folder> {
        self.folders.iter().find(|f| f.container_node_id == id)
    }

    /// The folder holding the application with `model_name` (`None`: the root).
    pub fn folder_of(&self, model_name: &str) -> Option<u32> {
        self.memberships
            .iter()
            .find(|m| m.instance_key == model_name)
            .map(|m| m.container_node_id)
    }

    /// `/A/B` for a folder id, `/` for the root (SMS_ApplicationLatest.ObjectPath).
    pub fn object_path(&self, folder: Option<u32>) -> String {
        let mut names = Vec::new();
        let mut current = folder;
        while let Some(id) = current {
            match self.folder(id) {
                Some(f) if names.len() < 64 => {
                    names.push(f.name.clone());
                    current =
                        (f.parent_container_node_id != 0).then_some(f.parent_container_node_id);
                }
                _ => break,
            }
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// Checks that the effect log accounts for the state exactly: every object was created by
    /// exactly one logged effect (or seed), nothing logged as created is missing, ids are unique,
    /// and every membership's folder exists. Returns what disagrees.
    pub fn audit(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut logged_apps = BTreeMap::<u32, usize>::new();
        let mut logged_dts = BTreeMap::<u32, usize>::new();
        let mut logged_folders = BTreeMap::<u32, usize>::new();
        let mut logged_deployments = BTreeMap::<u32, usize>::new();
        let mut logged_distributions = BTreeMap::<(String, String), usize>::new();
        let mut seqs = BTreeSet::new();
        for effect in &self.effects {
            if !seqs.insert(effect.seq) {
                problems.push(format!("effect seq {} appears twice", effect.seq));
            }
            for change in &effect.changes {
                match change {
                    Change::ApplicationCreated { ci_id, .. } => {
                        *logged_apps.entry(*ci_id).or_default() += 1
                    }
                    Change::DeploymentTypeAdded { ci_id, .. } => {
                        *logged_dts.entry(*ci_id).or_default() += 1
                    }
                    Change::FolderCreated {
                        container_node_id, ..
                    } => *logged_folders.entry(*container_node_id).or_default() += 1,
                    Change::DeploymentCreated { assignment_id, .. } => {
                        *logged_deployments.entry(*assignment_id).or_default() += 1
                    }
                    Change::DistributionStarted {
                        package_id,
                        group_id,
                        ..
                    } => {
                        *logged_distributions
                            .entry((package_id.clone(), group_id.clone()))
                            .or_default() += 1
                    }
                    Change::ObjectMoved { .. } | Change::Unchanged { .. } => {}
                }
            }
        }
        let mut compare = |what: &str, logged: BTreeMap<String, usize>, present: Vec<String>| {
            let mut seen = BTreeSet::new();
            for id in &present {
                if !seen.insert(id.clone()) {
                    problems.push(format!("{what} {id} exists twice"));
                }
                match logged.get(id) {
                    None => problems.push(format!("{what} {id} exists but no effect created it")),
                    Some(1) => {}
                    Some(n) => problems.push(format!("{what} {id} was created {n} times")),
                }
            }
            for id in logged.keys() {
                if !seen.contains(id) {
                    problems.push(format!("{what} {id} was logged as created but is missing"));
                }
            }
        };
        let stringify = |m: BTreeMap<u32, usize>| -> BTreeMap<String, usize> {
            m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        compare(
            "application",
            stringify(logged_apps),
            self.applications
                .iter()
                .map(|a| a.ci_id.to_string())
                .collect(),
        );
        compare(
            "deployment type",
            stringify(logged_dts),
            self.applications
                .iter()
                .flat_map(|a| a.deployment_types.iter().map(|d| d.ci_id.to_string()))
                .collect(),
        );
        compare(
            "folder",
            stringify(logged_folders),
            self.folders
                .iter()
                .map(|f| f.container_node_id.to_string())
                .collect(),
        );
        compare(
            "deployment",
            stringify(logged_deployments),
            self.deployments
                .iter()
                .map(|d| d.assignment_id.to_string())
                .collect(),
        );
        compare(
            "distribution",
            logged_distributions
                .into_iter()
                .map(|((p, g), n)| (format!("{p}@{g}"), n))
                .collect(),
            self.distributions
                .iter()
                .map(|d| format!("{}@{}", d.package_id, d.group_id))
                .collect(),
        );
        for m in &self.memberships {
            if self.folder(m.container_node_id).is_none() {
                problems.push(format!(
                    "membership {} names the missing folder {}",
                    m.member_id, m.container_node_id
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// An application (`SMS_Application`, latest revision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    pub ci_id: u32,
    /// `ScopeId_<SITE GUID>/Application_<guid>`.
    pub model_name: String,
    pub revision: u32,
    /// `LocalizedDisplayName`: the console name (`-Name`).
    pub name: String,
    /// Software Center's name (`-LocalizedName`); `None` means the console name.
    pub localized_name: Option<String>,
    /// The administrator comment (`-Description`).
    pub description: Option<String>,
    pub localized_description: Option<String>,
    pub publisher: Option<String>,
    pub software_version: Option<String>,
    pub optional_reference: Option<String>,
    pub owners: Vec<String>,
    pub support_contacts: Vec<String>,
    pub keywords: Option<String>,
    pub user_documentation: Option<String>,
    pub link_text: Option<String>,
    pub privacy_url: Option<String>,
    pub release_date: Option<String>,
    pub default_language_id: u32,
    /// The culture of `default_language_id` (`en-US`).
    pub culture: String,
    pub auto_install: bool,
    pub is_featured: bool,
    pub hidden: bool,
    /// The content package, once a deployment type with content exists.
    pub package_id: Option<String>,
    pub resources: Resources,
    pub date_created: String,
    pub date_last_modified: String,
    pub created_by: String,
    pub deployment_types: Vec<DeploymentType>,
}

/// The SDM resource ids of an application's texts (`Res_<digits>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub title: String,
    pub description: String,
    pub publisher: String,
    pub software_version: String,
    pub custom_id: String,
}

/// A script deployment type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentType {
    pub ci_id: u32,
    /// `DeploymentType_<guid>`.
    pub logical_name: String,
    pub revision: u32,
    pub name: String,
    pub title_resource: String,
    pub technology: String,
    pub content: Option<Content>,
    pub install_command: String,
    pub uninstall_command: Option<String>,
    pub repair_command: Option<String>,
    pub install_working_directory: Option<String>,
    pub uninstall_working_directory: Option<String>,
    pub uninstall_option: String,
    pub script_language: String,
    pub detection_script: String,
    pub detection_run_as_32bit: bool,
    pub run_as_32bit: bool,
    pub slow_network: String,
    pub cache_content: bool,
    pub content_fallback: bool,
    pub max_runtime_minutes: i64,
    pub estimated_runtime_minutes: i64,
    pub languages: Vec<String>,
    pub comment: Option<String>,
    pub installation_behavior: String,
    pub logon_requirement: String,
    pub user_interaction_mode: String,
    pub reboot_behavior: String,
    pub require_user_interaction: bool,
    pub date_created: String,
}

/// A deployment type's content, as ConfigMgr captured it from the source folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// `Content_<guid>`.
    pub content_id: String,
    /// The UNC path as given.
    pub location: String,
    /// The directory the share map resolved it to.
    pub local_path: String,
    pub files: Vec<ContentFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentFile {
    /// Relative to the content folder, `\`-separated.
    pub name: String,
    pub size: u64,
}

/// A package's content targeted at a distribution point group (`SMS_DPGroupContentInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub package_id: String,
    pub group_id: String,
    pub group_name: String,
    /// The application's ModelName.
    pub object_id: String,
    pub application_ci_id: u32,
    pub dp_count: u32,
    /// DPs of the group that fail this distribution (the group's `failing_dps` when it started).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failing_dps: u32,
    /// Status polls seen so far; after the site's `distribution_polls` every targeted DP reports
    /// success, or errors for the failing ones.
    pub polls: u32,
    pub started: String,
}

/// An application deployment (`SMS_ApplicationAssignment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub assignment_id: u32,
    /// `{GUID}`: the deployment id.
    pub assignment_unique_id: String,
    pub assignment_name: String,
    pub application_name: String,
    pub application_ci_id: u32,
    pub app_model_name: String,
    pub collection_id: String,
    pub collection_name: String,
    pub deploy_action: String,
    pub deploy_purpose: String,
    /// 0 required, 2 available.
    pub offer_type_id: u32,
    /// 1 install, 2 uninstall.
    pub desired_config_type: u32,
    pub start_time: String,
    pub enforcement_deadline: Option<String>,
    pub time_base: String,
    pub use_gmt_times: bool,
    pub user_notification: String,
    pub comment: Option<String>,
    pub options: BTreeMap<String, bool>,
    pub created: String,
}

/// A console folder (`SMS_ObjectContainerNode`, ObjectType 6000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    pub container_node_id: u32,
    pub name: String,
    /// 0: directly under the Applications node.
    pub parent_container_node_id: u32,
    pub folder_guid: String,
    pub created: String,
}

/// An application placed in a folder (`SMS_ObjectContainerItem`); root apps have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub member_id: u32,
    pub container_node_id: u32,
    /// The application's ModelName.
    pub instance_key: String,
    pub member_guid: String,
}

/// One effect-log entry: a mutating cmdlet (or a seed) and what it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub seq: u64,
    pub time: String,
    pub pid: u32,
    /// The cmdlet (`New-CMApplication`) or `seed`.
    pub cmdlet: String,
    /// The bound parameters, by their canonical names.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    pub changes: Vec<Change>,
}

/// What an effect changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    ApplicationCreated {
        ci_id: u32,
        model_name: String,
        name: String,
    },
    DeploymentTypeAdded {
        application_ci_id: u32,
        ci_id: u32,
        name: String,
        revision: u32,
    },
    DistributionStarted {
        package_id: String,
        group_id: String,
        group_name: String,
    },
    DeploymentCreated {
        assignment_id: u32,
        assignment_unique_id: String,
        application_ci_id: u32,
        collection_id: String,
    },
    FolderCreated {
        container_node_id: u32,
        name: String,
        parent_container_node_id: u32,
    },
    ObjectMoved {
        instance_key: String,
        /// 0: the root.
        from: u32,
        to: u32,
    },
    /// The cmdlet succeeded without changing anything (e.g. a move to the current folder).
    Unchanged { reason: String },
}

impl State {
    /// Appends an effect-log entry (the caller commits it with the change).
    pub fn log(
        &mut self,
        time: &str,
        cmdlet: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        changes: Vec<Change>,
    ) {
        let seq = self.effects.last().map(|e| e.seq + 1).unwrap_or(1);
        self.effects.push(Effect {
            seq,
            time: time.to_string(),
            pid: std::process::id(),
            cmdlet: cmdlet.to_string(),
            arguments,
            changes,
        });
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
