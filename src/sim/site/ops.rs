//! What the site does when asked: the realistic ConfigMgr behaviour behind the cmdlets, as pure
//! operations on [`State`] (the caller runs them inside a [`Site::update`](super::Site::update)
//! and logs the returned changes). Refusals carry the message ConfigMgr would give.
//!
//! - application names are unique (case-insensitive); texts must be valid XML characters;
//! - a deployment type's content location must be a UNC path that the share map resolves to an
//!   existing, non-empty directory (ConfigMgr 2002+ refuses empty folders);
//! - content is distributed to a DP group once; every targeted DP reports success after the
//!   site's configured number of status polls;
//! - a deployment is unique per application and collection;
//! - folders nest (one level per `New-CMFolder`), an object lives in exactly one folder.

use super::clock;
use super::config::SiteConfig;
use super::content;
use super::state::{
    Application, Change, Content, Deployment, DeploymentType, Distribution, Folder, Membership,
    Resources, State,
};
use crate::command::language;

/// The kind of a refusal (maps to PowerShell's error categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ObjectNotFound,
    ResourceExists,
    InvalidArgument,
    InvalidOperation,
}

impl ErrorKind {
    /// PowerShell's `ErrorCategory` name.
    pub fn category(self) -> &'static str {
        match self {
            ErrorKind::ObjectNotFound => "ObjectNotFound",
            ErrorKind::ResourceExists => "ResourceExists",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::InvalidOperation => "InvalidOperation",
        }
    }
}

/// A refusal, with ConfigMgr's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub kind: ErrorKind,
    pub message: String,
}

fn err<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, OpError> {
    Err(OpError {
        kind,
        message: message.into(),
    })
}

/// ConfigMgr's message for a lookup that found nothing.
pub const NO_OBJECT: &str = "No object corresponds to the specified parameters.";
/// ConfigMgr's message for a name that is taken.
pub const NAME_EXISTS: &str = "An object with the specified name already exists.";

/// Refuses text .NET's XmlWriter would refuse (SDMPackageXML is XML).
pub fn check_xml_text(value: &str) -> Result<(), OpError> {
    for c in value.chars() {
        let ok = matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}';
        if !ok {
            return err(
                ErrorKind::InvalidArgument,
                format!(
                    "'\\u{:04x}', hexadecimal value 0x{:02X}, is an invalid character.",
                    c as u32, c as u32
                ),
            );
        }
    }
    Ok(())
}

/// What `New-CMApplication` (or a seed) asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewApplication {
    pub name: String,
    pub description: Option<String>,
    pub localized_name: Option<String>,
    pub localized_description: Option<String>,
    pub publisher: Option<String>,
    pub software_version: Option<String>,
    pub optional_reference: Option<String>,
    /// `Some(None)`: `-Owner $null` (the current user); `None`: not given (the current user).
    pub owner: Option<Option<String>>,
    pub add_owner: Vec<String>,
    pub support_contact: Option<Option<String>>,
    pub add_support_contact: Vec<String>,
    pub default_language_id: Option<i64>,
    pub keyword: Option<String>,
    pub link_text: Option<String>,
    pub privacy_url: Option<String>,
    pub user_documentation: Option<String>,
    pub release_date: Option<String>,
    pub auto_install: Option<bool>,
    pub is_featured: Option<bool>,
    pub hidden: bool,
}

/// The culture of a Windows LCID (`1033` → `en-US`).
pub fn culture_of(lcid: i64) -> Result<String, OpError> {
    language::lookup(&lcid.to_string())
        .map(|l| l.culture.to_string())
        .ok_or_else(|| OpError {
            kind: ErrorKind::InvalidArgument,
            message: format!(
                "Culture is not supported. Parameter name: culture {lcid} (0x{lcid:04x}) is an invalid culture identifier."
            ),
        })
}

/// Creates an application. `allow_duplicate` is for seeds (estates with duplicate names).
pub fn create_application(
    config: &SiteConfig,
    state: &mut State,
    new: NewApplication,
    allow_duplicate: bool,
    now: &str,
) -> Result<Change, OpError> {
    for text in [
        Some(&new.name),
        new.description.as_ref(),
        new.localized_name.as_ref(),
        new.localized_description.as_ref(),
        new.publisher.as_ref(),
        new.software_version.as_ref(),
        new.optional_reference.as_ref(),
        new.keyword.as_ref(),
        new.link_text.as_ref(),
        new.privacy_url.as_ref(),
        new.user_documentation.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(new.add_owner.iter())
    .chain(new.add_support_contact.iter())
    .chain(new.owner.iter().flatten())
    .chain(new.support_contact.iter().flatten())
    {
        check_xml_text(text)?;
    }
    if !allow_duplicate
        && state
            .applications
            .iter()
            .any(|a| a.name.to_lowercase() == new.name.to_lowercase())
    {
        return err(ErrorKind::ResourceExists, NAME_EXISTS);
    }
    let lcid = new.default_language_id.unwrap_or(1033);
    let culture = culture_of(lcid)?;
    let people = |single: Option<Option<String>>, more: Vec<String>| -> Vec<String> {
        let mut list: Vec<String> = match single {
            Some(Some(v)) if !v.is_empty() => vec![v],
            _ => vec![config.user.clone()],
        };
        for v in more {
            if !list.contains(&v) {
                list.push(v);
            }
        }
        list
    };
    let ci_id = state.take_ci_id();
    let model_name = format!("{}/Application_{}", config.scope_id(), clock::guid_lower());
    let app = Application {
        ci_id,
        model_name: model_name.clone(),
        revision: 1,
        name: new.name.clone(),
        localized_name: new.localized_name,
        description: new.description,
        localized_description: new.localized_description,
        publisher: new.publisher,
        software_version: new.software_version,
        optional_reference: new.optional_reference,
        owners: people(new.owner, new.add_owner),
        support_contacts: people(new.support_contact, new.add_support_contact),
        keywords: new.keyword,
        user_documentation: new.user_documentation,
        link_text: new.link_text,
        privacy_url: new.privacy_url,
        release_date: new.release_date,
        default_language_id: lcid as u32,
        culture,
        auto_install: new.auto_install.unwrap_or(false),
        is_featured: new.is_featured.unwrap_or(false),
        hidden: new.hidden,
        package_id: None,
        resources: Resources {
            title: clock::resource_id(),
            description: clock::resource_id(),
            publisher: clock::resource_id(),
            software_version: clock::resource_id(),
            custom_id: clock::resource_id(),
        },
        date_created: now.to_string(),
        date_last_modified: now.to_string(),
        created_by: config.user.clone(),
        deployment_types: Vec::new(),
    };
    state.applications.push(app);
    Ok(Change::ApplicationCreated {
        ci_id,
        model_name,
        name: new.name,
    })
}

/// What `Add-CMScriptDeploymentType` (or a seed) asks for; `None` takes ConfigMgr's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewScriptDeploymentType {
    pub name: String,
    pub content_location: Option<String>,
    pub install_command: String,
    pub uninstall_command: Option<String>,
    pub repair_command: Option<String>,
    pub install_working_directory: Option<String>,
    pub uninstall_working_directory: Option<String>,
    pub uninstall_option: Option<String>,
    pub uninstall_content_location: Option<String>,
    pub script_language: String,
    pub detection_script: String,
    pub detection_run_as_32bit: bool,
    pub run_as_32bit: bool,
    pub slow_network: Option<String>,
    pub cache_content: bool,
    pub content_fallback: bool,
    pub max_runtime_minutes: Option<i64>,
    pub estimated_runtime_minutes: Option<i64>,
    pub languages: Vec<String>,
    pub comment: Option<String>,
    pub installation_behavior: Option<String>,
    pub logon_requirement: Option<String>,
    pub user_interaction_mode: Option<String>,
    pub reboot_behavior: Option<String>,
    pub require_user_interaction: bool,
}

/// Captures the content at `location`: a UNC path resolved through the share map to an existing,
/// non-empty directory.
pub fn capture_content(config: &SiteConfig, location: &str) -> Result<Content, OpError> {
    if !location.starts_with("\\\\") {
        return err(
            ErrorKind::InvalidArgument,
            format!(
                "The content location '{location}' is not a valid network path. Specify a UNC path such as \\\\server\\share\\folder."
            ),
        );
    }
    let missing = || OpError {
        kind: ErrorKind::ObjectNotFound,
        message: format!(
            "The content location '{location}' does not exist or the site server cannot access it."
        ),
    };
    let local = content::resolve_unc(config, location).ok_or_else(missing)?;
    let files = content::scan(&local).ok_or_else(missing)?;
    if files.is_empty() {
        return err(
            ErrorKind::InvalidArgument,
            format!(
                "The content location '{location}' is empty. Content folders must contain the content files."
            ),
        );
    }
    Ok(Content {
        content_id: format!("Content_{}", clock::guid_lower()),
        location: location.to_string(),
        local_path: local.display().to_string(),
        files,
    })
}

/// Adds a script deployment type to the application `app_ci_id`.
pub fn add_script_deployment_type(
    config: &SiteConfig,
    state: &mut State,
    app_ci_id: u32,
    new: NewScriptDeploymentType,
    now: &str,
) -> Result<Change, OpError> {
    for text in [
        Some(&new.name),
        Some(&new.install_command),
        Some(&new.detection_script),
        new.content_location.as_ref(),
        new.uninstall_command.as_ref(),
        new.repair_command.as_ref(),
        new.install_working_directory.as_ref(),
        new.uninstall_working_directory.as_ref(),
        new.comment.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        check_xml_text(text)?;
    }
    let Some(app) = state.application(app_ci_id) else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    if app
        .deployment_types
        .iter()
        .any(|d| d.name.to_lowercase() == new.name.to_lowercase())
    {
        return err(
            ErrorKind::ResourceExists,
            format!(
                "The deployment type name '{}' is already used in application '{}'.",
                new.name, app.name
            ),
        );
    }
    for culture in &new.languages {
        if language::lookup(culture).is_none_or(|l| !l.culture.eq_ignore_ascii_case(culture)) {
            return err(
                ErrorKind::InvalidArgument,
                format!(
                    "Culture is not supported. Parameter name: name {culture} is an invalid culture identifier."
                ),
            );
        }
    }
    let behavior = new
        .installation_behavior
        .unwrap_or_else(|| "InstallForSystem".into());
    if behavior == "InstallForUser" && new.logon_requirement.is_some() {
        return err(
            ErrorKind::InvalidArgument,
            "LogonRequirementType cannot be set when InstallationBehaviorType is InstallForUser.",
        );
    }
    let uninstall_option = new
        .uninstall_option
        .unwrap_or_else(|| "SameAsInstall".into());
    if uninstall_option == "Different" && new.uninstall_content_location.is_none() {
        return err(
            ErrorKind::InvalidArgument,
            "UninstallContentLocation must be specified when UninstallOption is Different.",
        );
    }
    let content = match &new.content_location {
        Some(location) => Some(capture_content(config, location)?),
        None => None,
    };
    let ci_id = state.take_ci_id();
    let next_package = state.counters.next_package;
    let site_code = config.site_code.clone();
    let Some(app) = state.application_mut(app_ci_id) else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    let mut took_package = false;
    if content.is_some() && app.package_id.is_none() {
        app.package_id = Some(format!("{site_code}{next_package:05X}"));
        took_package = true;
    }
    app.revision += 1;
    app.date_last_modified = now.to_string();
    let dt = DeploymentType {
        ci_id,
        logical_name: format!("DeploymentType_{}", clock::guid_lower()),
        revision: 1,
        name: new.name.clone(),
        title_resource: clock::resource_id(),
        technology: "Script".into(),
        content,
        install_command: new.install_command,
        uninstall_command: new.uninstall_command,
        repair_command: new.repair_command,
        install_working_directory: new.install_working_directory,
        uninstall_working_directory: new.uninstall_working_directory,
        uninstall_option,
        script_language: new.script_language,
        detection_script: new.detection_script,
        detection_run_as_32bit: new.detection_run_as_32bit,
        run_as_32bit: new.run_as_32bit,
        slow_network: new.slow_network.unwrap_or_else(|| "DoNothing".into()),
        cache_content: new.cache_content,
        content_fallback: new.content_fallback,
        max_runtime_minutes: new.max_runtime_minutes.unwrap_or(120),
        estimated_runtime_minutes: new.estimated_runtime_minutes.unwrap_or(0),
        languages: new.languages,
        comment: new.comment,
        installation_behavior: behavior,
        logon_requirement: new
            .logon_requirement
            .unwrap_or_else(|| "OnlyWhenUserLoggedOn".into()),
        user_interaction_mode: new.user_interaction_mode.unwrap_or_else(|| "Normal".into()),
        reboot_behavior: new
            .reboot_behavior
            .unwrap_or_else(|| "BasedOnExitCode".into()),
        require_user_interaction: new.require_user_interaction,
        date_created: now.to_string(),
    };
    app.deployment_types.push(dt);
    let revision = app.revision;
    if took_package {
        state.counters.next_package += 1;
    }
    Ok(Change::DeploymentTypeAdded {
        application_ci_id: app_ci_id,
        ci_id,
        name: new.name,
        revision,
    })
}

/// Targets the application's content at the DP group `group_name`.
pub fn start_distribution(
    config: &SiteConfig,
    state: &mut State,
    app_ci_id: u32,
    group_name: &str,
    now: &str,
) -> Result<Change, OpError> {
    let Some(app) = state.application(app_ci_id) else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    let Some(package_id) = app.package_id.clone() else {
        return err(
            ErrorKind::InvalidOperation,
            format!(
                "The application '{}' has no content to distribute: add a deployment type with a content location first.",
                app.name
            ),
        );
    };
    let Some(group) = config.dp_group(group_name) else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    if state
        .distributions
        .iter()
        .any(|d| d.package_id == package_id && d.group_id == group.group_id)
    {
        return err(
            ErrorKind::ResourceExists,
            format!(
                "The content of '{}' is already targeted to distribution point group '{}'.",
                app.name, group.name
            ),
        );
    }
    let distribution = Distribution {
        package_id: package_id.clone(),
        group_id: group.group_id.clone(),
        group_name: group.name.clone(),
        object_id: app.model_name.clone(),
        application_ci_id: app.ci_id,
        dp_count: group.dp_count,
        failing_dps: group.failing_dps.min(group.dp_count),
        polls: 0,
        started: now.to_string(),
    };
    state.distributions.push(distribution);
    Ok(Change::DistributionStarted {
        package_id,
        group_id: group.group_id.clone(),
        group_name: group.name.clone(),
    })
}

/// A package's distribution status (`SMS_ObjectContentExtraInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistributionStatus {
    pub targeted: u32,
    pub success: u32,
    pub in_progress: u32,
    pub errors: u32,
    pub unknown: u32,
}

/// One status poll of `package_id`: advances its distributions by one poll (the site's own
/// work, not a cmdlet's effect), then reports. `None` if no application has this package.
pub fn poll_distribution(
    config: &SiteConfig,
    state: &mut State,
    package_id: &str,
) -> Option<DistributionStatus> {
    state.application_by_package(package_id)?;
    let polls_needed = config.distribution_polls.max(1);
    let mut status = DistributionStatus {
        targeted: 0,
        success: 0,
        in_progress: 0,
        errors: 0,
        unknown: 0,
    };
    for d in state
        .distributions
        .iter_mut()
        .filter(|d| d.package_id == package_id)
    {
        if d.polls < polls_needed {
            d.polls += 1;
        }
        // The failing DPs stay in progress until the last poll, then report errors.
        let healthy = d.dp_count - d.failing_dps.min(d.dp_count);
        let (success, errors) = if d.polls >= polls_needed {
            (healthy, d.dp_count - healthy)
        } else {
            (healthy * d.polls / polls_needed, 0)
        };
        status.targeted += d.dp_count;
        status.success += success;
        status.errors += errors;
        status.in_progress += d.dp_count - success - errors;
    }
    Some(status)
}

/// What `New-CMApplicationDeployment` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDeployment {
    pub collection_name: String,
    pub deploy_action: Option<String>,
    pub deploy_purpose: Option<String>,
    pub available: Option<String>,
    pub deadline: Option<String>,
    pub time_base: Option<String>,
    pub user_notification: Option<String>,
    pub comment: Option<String>,
    pub options: std::collections::BTreeMap<String, bool>,
}

/// Deploys the application to a collection (once per application and collection).
pub fn create_deployment(
    config: &SiteConfig,
    state: &mut State,
    app_ci_id: u32,
    new: NewDeployment,
    now: &str,
) -> Result<Change, OpError> {
    if let Some(comment) = &new.comment {
        check_xml_text(comment)?;
    }
    let Some(app) = state.application(app_ci_id).cloned() else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    let Some(collection) = config.collection_by_name(&new.collection_name) else {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    };
    if state
        .deployments
        .iter()
        .any(|d| d.application_ci_id == app_ci_id && d.collection_id == collection.collection_id)
    {
        return err(
            ErrorKind::ResourceExists,
            format!(
                "The application '{}' is already deployed to the collection '{}'.",
                app.name, collection.name
            ),
        );
    }
    let action = new.deploy_action.unwrap_or_else(|| "Install".into());
    let purpose = new.deploy_purpose.unwrap_or_else(|| "Available".into());
    if action == "Uninstall" && purpose != "Required" {
        return err(
            ErrorKind::InvalidArgument,
            "An uninstall deployment must be required: use -DeployPurpose Required.",
        );
    }
    let time_base = new.time_base.unwrap_or_else(|| "LocalTime".into());
    let required = purpose == "Required";
    let start = new
        .available
        .unwrap_or_else(|| now.trim_end_matches('Z').to_string());
    let deadline = if required {
        Some(new.deadline.unwrap_or_else(|| start.clone()))
    } else {
        new.deadline
    };
    let assignment_id = state.counters.next_assignment_id;
    state.counters.next_assignment_id += 1;
    let deployment = Deployment {
        assignment_id,
        assignment_unique_id: clock::guid_braced(),
        assignment_name: format!("{}_{}_{}", app.name, collection.collection_id, action),
        application_name: app.name.clone(),
        application_ci_id: app_ci_id,
        app_model_name: app.model_name.clone(),
        collection_id: collection.collection_id.clone(),
        collection_name: collection.name.clone(),
        offer_type_id: if required { 0 } else { 2 },
        desired_config_type: if action == "Install" { 1 } else { 2 },
        deploy_action: action,
        deploy_purpose: purpose,
        start_time: start,
        enforcement_deadline: deadline,
        use_gmt_times: time_base == "Utc",
        time_base,
        user_notification: new
            .user_notification
            .unwrap_or_else(|| "DisplaySoftwareCenterOnly".into()),
        comment: new.comment,
        options: new.options,
        created: now.to_string(),
    };
    let change = Change::DeploymentCreated {
        assignment_id,
        assignment_unique_id: deployment.assignment_unique_id.clone(),
        application_ci_id: app_ci_id,
        collection_id: deployment.collection_id.clone(),
    };
    state.deployments.push(deployment);
    Ok(change)
}

/// A place in the Applications node: the root or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Root,
    Folder(u32),
}

impl Place {
    pub fn id(self) -> u32 {
        match self {
            Place::Root => 0,
            Place::Folder(id) => id,
        }
    }
}

/// The object-type keywords of console paths (`DEM:\Application\…`).
const TYPE_KEYWORDS: &[&str] = &[
    "Application",
    "Package",
    "DeviceCollection",
    "UserCollection",
    "TaskSequence",
    "Driver",
    "DriverPackage",
    "BootImage",
    "OperatingSystemImage",
    "OperatingSystemInstaller",
    "ConfigurationItem",
    "ConfigurationBaseline",
    "Query",
    "UserStateMigration",
    "SoftwareUpdate",
    "SoftwareUpdateGroup",
];

/// A console folder path split into its type keyword and folder names; an optional
/// `<SITECODE>:` prefix is accepted (and must name this site).
pub fn split_folder_path(
    config: &SiteConfig,
    path: &str,
) -> Result<(&'static str, Vec<String>), OpError> {
    let invalid = || OpError {
        kind: ErrorKind::InvalidArgument,
        message: format!("The folder path '{path}' is not valid."),
    };
    let mut rest = path;
    if let Some((drive, after)) = path.split_once(':') {
        if !drive.eq_ignore_ascii_case(&config.site_code) {
            return Err(invalid());
        }
        rest = after;
    }
    let rest = rest.trim_start_matches('\\').trim_end_matches('\\');
    let mut parts = rest.split('\\');
    let keyword = parts.next().unwrap_or_default();
    let keyword = TYPE_KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(keyword))
        .ok_or_else(invalid)?;
    let names: Vec<String> = parts.map(str::to_string).collect();
    if names.iter().any(String::is_empty) {
        return Err(invalid());
    }
    Ok((keyword, names))
}

/// The folder a path names, `Ok(None)` if some level does not exist. Only the `Application`
/// type has folders on this site.
pub fn find_folder(
    config: &SiteConfig,
    state: &State,
    path: &str,
) -> Result<Option<Place>, OpError> {
    let (keyword, names) = split_folder_path(config, path)?;
    if keyword != "Application" {
        return Ok(None);
    }
    let mut place = Place::Root;
    for name in names {
        let parent = place.id();
        match state.folders.iter().find(|f| {
            f.parent_container_node_id == parent && f.name.to_lowercase() == name.to_lowercase()
        }) {
            Some(f) => place = Place::Folder(f.container_node_id),
            None => return Ok(None),
        }
    }
    Ok(Some(place))
}

/// Creates the folder `name` in `parent`.
pub fn create_folder(
    state: &mut State,
    parent: Place,
    name: &str,
    now: &str,
) -> Result<Change, OpError> {
    check_xml_text(name)?;
    if name.is_empty() || name.contains('\\') || name.chars().count() > 255 {
        return err(
            ErrorKind::InvalidArgument,
            format!("The folder name '{name}' is not valid."),
        );
    }
    let parent_id = parent.id();
    if state.folders.iter().any(|f| {
        f.parent_container_node_id == parent_id && f.name.to_lowercase() == name.to_lowercase()
    }) {
        return err(ErrorKind::ResourceExists, NAME_EXISTS);
    }
    let id = state.counters.next_container_node_id;
    state.counters.next_container_node_id += 1;
    state.folders.push(Folder {
        container_node_id: id,
        name: name.to_string(),
        parent_container_node_id: parent_id,
        folder_guid: clock::guid_upper(),
        created: now.to_string(),
    });
    Ok(Change::FolderCreated {
        container_node_id: id,
        name: name.to_string(),
        parent_container_node_id: parent_id,
    })
}

/// Moves the application `model_name` to `target` (an object lives in exactly one folder).
pub fn move_application(
    state: &mut State,
    model_name: &str,
    target: Place,
) -> Result<Change, OpError> {
    if !state
        .applications
        .iter()
        .any(|a| a.model_name == model_name)
    {
        return err(ErrorKind::ObjectNotFound, NO_OBJECT);
    }
    let from = state.folder_of(model_name).unwrap_or(0);
    let to = target.id();
    if from == to {
        return Ok(Change::Unchanged {
            reason: format!("{model_name} is in folder {to} already"),
        });
    }
    state.memberships.retain(|m| m.instance_key != model_name);
    if to != 0 {
        let member_id = state.counters.next_member_id;
        state.counters.next_member_id += 1;
        state.memberships.push(Membership {
            member_id,
            container_node_id: to,
            instance_key: model_name.to_string(),
            member_guid: clock::guid_upper(),
        });
    }
    Ok(Change::ObjectMoved {
        instance_key: model_name.to_string(),
        from,
        to,
    })
}

#[cfg(test)]
mod tests;
