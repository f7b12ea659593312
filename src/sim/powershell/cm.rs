//! The ConfigurationManager cmdlets and `Get-CimInstance` against the SMS Provider, bound to
//! the simulated site. Every call that reaches the site runs in one locked read-modify-write of
//! the site state ([`site_call`]): it counts the call (per cmdlet, for the fault plan), applies
//! any fault, performs the operation on a copy and commits it — with its effect-log entry —
//! only if it succeeded. ConfigMgr cmdlets refuse to run unless the location is the site drive.

use super::commands::{CommandDef, record};
use super::interp::{Exec, Flow};
use super::params::{Bound, Extras, Param, Signature, Ty, Validate, p};
use super::value::{ObjectKind, Value};
use super::wildcard::NameMatch;
use crate::sim::site::clock::{self, CivilTime};
use crate::sim::site::config::SiteConfig;
use crate::sim::site::faults::{DEFAULT_GARBAGE, Decision, Fault};
use crate::sim::site::ops::{self, ErrorKind, NO_OBJECT, OpError, Place};
use crate::sim::site::sdm;
use crate::sim::site::state::{Application, DeploymentType, State};

const APP_CLASSES: &[&str] = &["SMS_ApplicationLatest", "SMS_Application"];
const FOLDER_CLASSES: &[&str] = &["SMS_ObjectContainerNode"];

/// The message ConfigMgr cmdlets give when the location is not a site drive.
pub const NOT_ON_SITE_DRIVE: &str = "This command cannot be run from the current drive. To run this command you must first connect to a Configuration Manager drive.";

fn exception_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ObjectNotFound => "System.Management.Automation.ItemNotFoundException",
        ErrorKind::ResourceExists | ErrorKind::InvalidArgument => "System.ArgumentException",
        ErrorKind::InvalidOperation => "System.InvalidOperationException",
    }
}

fn op_error(
    exec: &mut Exec<'_>,
    def: &CommandDef,
    bound: &Bound,
    e: OpError,
) -> Result<Vec<Value>, Flow> {
    let rec = record(
        exec,
        def,
        exception_of(e.kind),
        e.kind.category(),
        e.kind.category(),
        e.message,
    );
    exec.write_error(bound, rec)?;
    Ok(Vec::new())
}

/// ConfigMgr cmdlets run only on the site drive (a statement-terminating error otherwise).
fn require_site_drive(exec: &mut Exec<'_>, def: &CommandDef) -> Result<(), Flow> {
    if exec.host.on_site_drive() {
        return Ok(());
    }
    let mut rec = record(
        exec,
        def,
        "System.InvalidOperationException",
        "InvalidOperation",
        "ItemNotFound",
        NOT_ON_SITE_DRIVE,
    );
    rec.statement_terminating = true;
    Err(Flow::Error(Box::new(rec)))
}

enum Step<T> {
    Pre(Decision),
    Done(Result<T, OpError>, Option<Decision>),
}

fn store_failure(exec: &Exec<'_>, e: crate::sim::site::StoreError) -> Flow {
    exec.fatal(format!("the site state could not be used: {e}"))
}

fn strike(exec: &mut Exec<'_>, def: &CommandDef, decision: &Decision) -> Result<(), Flow> {
    match &decision.fault {
        Fault::Fail { message } => Err(exec.error(
            Some(def.sig.name),
            "System.InvalidOperationException",
            "InvalidOperation",
            &format!("InvalidOperation,{}", def.sig.type_name),
            message.clone(),
        )),
        Fault::Exit { code } => {
            let _ = exec.host.out.flush();
            std::process::exit(*code)
        }
        Fault::Crash => {
            let _ = exec.host.out.flush();
            std::process::abort()
        }
        Fault::Garbage { text } => {
            let text = text.clone().unwrap_or_else(|| DEFAULT_GARBAGE.to_string());
            exec.host.write_raw(&text);
            exec.host.write_raw("\r\n");
            Err(Flow::Exit(0))
        }
        Fault::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Fault::Slow { ms } => {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
            Ok(())
        }
    }
}

/// One call of `def` that reaches the site: counted, fault-checked, and `op` run on a copy of
/// the state that is committed (with whatever `op` logged) only if `op` succeeds.
pub fn site_call<T>(
    exec: &mut Exec<'_>,
    def: &CommandDef,
    op: impl Fn(&SiteConfig, &mut State, &str) -> Result<T, OpError>,
) -> Result<Result<T, OpError>, Flow> {
    let name = def.sig.name;
    let site = exec.host.site.clone();
    let plan = exec.host.faults.clone();
    let config = site.config().clone();
    let now = clock::now_rfc3339();
    let run = |state: &mut State| -> Result<T, OpError> {
        let mut work = state.clone();
        let result = op(&config, &mut work, &now);
        if result.is_ok() {
            *state = work;
        }
        result
    };
    let step = site
        .update(|state| {
            let count = state.calls.entry(name.to_string()).or_insert(0);
            *count += 1;
            let decision = plan.decide(name, *count);
            match decision {
                Some(d) if !d.after_effect => Step::Pre(d),
                d => Step::Done(run(state), d),
            }
        })
        .map_err(|e| store_failure(exec, e))?;
    match step {
        Step::Pre(decision) => {
            strike(exec, def, &decision)?;
            // Only a slow call gets here: now it does its work.
            site.update(run).map_err(|e| store_failure(exec, e))
        }
        Step::Done(result, decision) => {
            if let Some(decision) = decision {
                strike(exec, def, &decision)?;
            }
            Ok(result)
        }
    }
}

/// A built-in cmdlet's contact with the site (Import-Module, New-PSDrive): counted and
/// fault-checked like a ConfigMgr cmdlet, with no effect of its own.
pub fn site_touch(exec: &mut Exec<'_>, def: &CommandDef, _bound: &Bound) -> Result<(), Flow> {
    site_call(exec, def, |_, _, _| Ok(())).map(|_| ())
}

fn datetime(stamp: &str) -> Value {
    CivilTime::parse_sortable(stamp.trim_end_matches('Z'))
        .map(Value::DateTime)
        .unwrap_or(Value::Null)
}

fn cm(class: &str, props: Vec<(&str, Value)>) -> Value {
    Value::object(
        &format!("IResultObject#{class}"),
        ObjectKind::Cm(class.to_string()),
        props,
    )
}

fn app_value(config: &SiteConfig, state: &State, app: &Application, lazy: bool) -> Value {
    let folder = state.folder_of(&app.model_name);
    let deployments = state
        .deployments
        .iter()
        .filter(|d| d.application_ci_id == app.ci_id)
        .count();
    let mut props = vec![
        ("CI_ID", Value::Int(i64::from(app.ci_id))),
        (
            "CI_UniqueID",
            Value::str(format!("{}/{}", app.model_name, app.revision)),
        ),
        ("CIVersion", Value::Int(i64::from(app.revision))),
        ("ModelName", Value::str(&app.model_name)),
        ("ModelID", Value::Int(i64::from(app.ci_id))),
        ("LocalizedDisplayName", Value::str(&app.name)),
        (
            "LocalizedDescription",
            Value::opt_str(app.description.as_deref()),
        ),
        ("Manufacturer", Value::opt_str(app.publisher.as_deref())),
        (
            "SoftwareVersion",
            Value::opt_str(app.software_version.as_deref()),
        ),
        ("IsLatest", Value::Bool(true)),
        ("IsHidden", Value::Bool(app.hidden)),
        ("IsExpired", Value::Bool(false)),
        ("IsEnabled", Value::Bool(true)),
        ("IsDeployed", Value::Bool(deployments > 0)),
        ("IsSuperseded", Value::Bool(false)),
        ("IsSuperseding", Value::Bool(false)),
        ("HasContent", Value::Bool(app.package_id.is_some())),
        (
            "NumberOfDeploymentTypes",
            Value::Int(app.deployment_types.len() as i64),
        ),
        ("NumberOfDeployments", Value::Int(deployments as i64)),
        ("ObjectPath", Value::str(state.object_path(folder))),
        ("DateCreated", datetime(&app.date_created)),
        ("DateLastModified", datetime(&app.date_last_modified)),
        ("CreatedBy", Value::str(&app.created_by)),
        ("LastModifiedBy", Value::str(&app.created_by)),
        ("SourceSite", Value::str(&config.site_code)),
    ];
    if lazy {
        props.push((
            "PackageID",
            Value::str(app.package_id.clone().unwrap_or_default()),
        ));
        props.push(("SDMPackageXML", Value::str(sdm::package_xml(config, app))));
    } else {
        props.push(("PackageID", Value::Null));
        props.push(("SDMPackageXML", Value::Null));
    }
    cm("SMS_ApplicationLatest", props)
}

fn dt_value(config: &SiteConfig, app: &Application, index: usize, dt: &DeploymentType) -> Value {
    let model = format!("{}/{}", config.scope_id(), dt.logical_name);
    cm(
        "SMS_DeploymentType",
        vec![
            ("CI_ID", Value::Int(i64::from(dt.ci_id))),
            (
                "CI_UniqueID",
                Value::str(format!("{model}/{}", dt.revision)),
            ),
            ("ModelName", Value::str(model)),
            ("LocalizedDisplayName", Value::str(&dt.name)),
            (
                "LocalizedDescription",
                Value::opt_str(dt.comment.as_deref()),
            ),
            ("Technology", Value::str(&dt.technology)),
            ("AppModelName", Value::str(&app.model_name)),
            ("IsLatest", Value::Bool(true)),
            ("PriorityInLatestApp", Value::Int(index as i64 + 1)),
            (
                "ContentId",
                Value::opt_str(dt.content.as_ref().map(|c| c.content_id.as_str())),
            ),
            ("DateCreated", datetime(&dt.date_created)),
            ("SourceSite", Value::str(&config.site_code)),
        ],
    )
}

fn group_value(
    config: &SiteConfig,
    state: &State,
    group: &crate::sim::site::config::DpGroup,
) -> Value {
    let content = state
        .distributions
        .iter()
        .filter(|d| d.group_id == group.group_id)
        .count();
    cm(
        "SMS_DistributionPointGroup",
        vec![
            ("GroupID", Value::str(&group.group_id)),
            ("Name", Value::str(&group.name)),
            ("Description", Value::str("")),
            ("MemberCount", Value::Int(i64::from(group.dp_count))),
            ("ContentCount", Value::Int(content as i64)),
            ("HasMember", Value::Bool(group.dp_count > 0)),
            ("SourceSite", Value::str(&config.site_code)),
            ("CreatedBy", Value::str(&config.user)),
        ],
    )
}

fn deployment_value(config: &SiteConfig, d: &crate::sim::site::state::Deployment) -> Value {
    cm(
        "SMS_ApplicationAssignment",
        vec![
            ("AssignmentID", Value::Int(i64::from(d.assignment_id))),
            ("AssignmentUniqueID", Value::str(&d.assignment_unique_id)),
            ("AssignmentName", Value::str(&d.assignment_name)),
            ("ApplicationName", Value::str(&d.application_name)),
            (
                "AssignedCIs",
                Value::Array(vec![Value::Int(i64::from(d.application_ci_id))]),
            ),
            ("AppModelName", Value::str(&d.app_model_name)),
            ("TargetCollectionID", Value::str(&d.collection_id)),
            ("CollectionName", Value::str(&d.collection_name)),
            ("OfferTypeID", Value::Int(i64::from(d.offer_type_id))),
            (
                "DesiredConfigType",
                Value::Int(i64::from(d.desired_config_type)),
            ),
            ("StartTime", datetime(&d.start_time)),
            (
                "EnforcementDeadline",
                d.enforcement_deadline
                    .as_deref()
                    .map(datetime)
                    .unwrap_or(Value::Null),
            ),
            ("UseGMTTimes", Value::Bool(d.use_gmt_times)),
            ("SourceSite", Value::str(&config.site_code)),
            ("CreationTime", datetime(&d.created)),
        ],
    )
}

fn folder_value(config: &SiteConfig, state: &State, f: &crate::sim::site::state::Folder) -> Value {
    let empty = !state
        .folders
        .iter()
        .any(|c| c.parent_container_node_id == f.container_node_id)
        && !state
            .memberships
            .iter()
            .any(|m| m.container_node_id == f.container_node_id);
    cm(
        "SMS_ObjectContainerNode",
        vec![
            (
                "ContainerNodeID",
                Value::Int(i64::from(f.container_node_id)),
            ),
            ("Name", Value::str(&f.name)),
            ("ObjectType", Value::Int(6000)),
            ("ObjectTypeName", Value::str("SMS_ApplicationLatest")),
            (
                "ParentContainerNodeID",
                Value::Int(i64::from(f.parent_container_node_id)),
            ),
            ("FolderGuid", Value::str(&f.folder_guid)),
            ("FolderFlags", Value::Int(0)),
            ("IsEmpty", Value::Bool(empty)),
            ("SearchFolder", Value::Bool(false)),
            ("SourceSite", Value::str(&config.site_code)),
        ],
    )
}

fn name_match(
    exec: &Exec<'_>,
    def: &CommandDef,
    bound: &Bound,
    text: &str,
) -> Result<NameMatch, Flow> {
    let disable = bound.switch("DisableWildcardHandling") && !bound.switch("ForceWildcardHandling");
    NameMatch::new(text, disable).map_err(|m| {
        exec.error(
            Some(def.sig.name),
            "System.Management.Automation.WildcardPatternException",
            "InvalidArgument",
            &format!("RuntimeException,{}", def.sig.type_name),
            m,
        )
    })
}

/// The applications `bound` names (by name, id or input object); `exact` names never use
/// wildcards (the cmdlets that create things).
fn resolve_apps(
    state: &State,
    bound: &Bound,
    name_param: &str,
    matcher: Option<&NameMatch>,
) -> Vec<u32> {
    if let Some(m) = matcher {
        return state
            .applications
            .iter()
            .filter(|a| m.matches(&a.name))
            .map(|a| a.ci_id)
            .collect();
    }
    if let Some(name) = bound.str(name_param) {
        let lower = name.to_lowercase();
        return state
            .applications
            .iter()
            .filter(|a| a.name.to_lowercase() == lower)
            .map(|a| a.ci_id)
            .collect();
    }
    for param in ["Id", "ApplicationId"] {
        if let Some(id) = bound.int(param) {
            return state
                .applications
                .iter()
                .filter(|a| i64::from(a.ci_id) == id)
                .map(|a| a.ci_id)
                .collect();
        }
    }
    if let Some(input) = bound.value("InputObject") {
        let keys: Vec<String> = input
            .clone()
            .enumerate()
            .iter()
            .map(|v| v.member("ModelName").to_text())
            .collect();
        return state
            .applications
            .iter()
            .filter(|a| keys.contains(&a.model_name))
            .map(|a| a.ci_id)
            .collect();
    }
    Vec::new()
}

fn single_app(ids: Vec<u32>) -> Result<u32, OpError> {
    match ids.as_slice() {
        [one] => Ok(*one),
        [] => Err(OpError {
            kind: ErrorKind::ObjectNotFound,
            message: NO_OBJECT.into(),
        }),
        _ => Err(OpError {
            kind: ErrorKind::InvalidArgument,
            message: "More than one object matches the specified parameters; specify the object by its ID.".into(),
        }),
    }
}

fn get_application(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let fast = bound.switch("Fast");
    if !fast && !exec.variable("CMPSSuppressFastNotUsedCheck").truthy() {
        exec.warning(
            bound,
            "The cmdlet 'Get-CMApplication' may take a long time to execute because it retrieves lazy properties. Use the -Fast parameter to skip lazy properties. To suppress this warning, set $CMPSSuppressFastNotUsedCheck = $true.",
        );
    }
    let matcher = match bound.str("Name") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let show_hidden = bound.switch("ShowHidden");
    let model = bound.str("ModelName");
    let everything = bound
        .values
        .keys()
        .all(|k| !matches!(*k, "Name" | "Id" | "ModelName" | "InputObject"));
    let result = site_call(exec, def, |config, state, _| {
        let ids: Vec<u32> = if everything {
            state.applications.iter().map(|a| a.ci_id).collect()
        } else if let Some(model) = &model {
            state
                .applications
                .iter()
                .filter(|a| a.model_name.eq_ignore_ascii_case(model))
                .map(|a| a.ci_id)
                .collect()
        } else {
            resolve_apps(state, bound, "Name", matcher.as_ref())
        };
        Ok(ids
            .into_iter()
            .filter_map(|id| state.application(id))
            .filter(|a| show_hidden || !a.hidden || bound.has("Id"))
            .map(|a| app_value(config, state, a, !fast))
            .collect::<Vec<_>>())
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn new_application(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let new = ops::NewApplication {
        name: bound.str("Name").unwrap_or_default(),
        description: bound.str("Description"),
        localized_name: bound.str("LocalizedName"),
        localized_description: bound.str("LocalizedDescription"),
        publisher: bound.str("Publisher"),
        software_version: bound.str("SoftwareVersion"),
        optional_reference: bound.str("OptionalReference"),
        owner: bound.nullable_str("Owner"),
        add_owner: bound.strs("AddOwner"),
        support_contact: bound.nullable_str("SupportContact"),
        add_support_contact: bound.strs("AddSupportContact"),
        default_language_id: bound.int("DefaultLanguageId"),
        keyword: bound.str("Keyword"),
        link_text: bound.str("LinkText"),
        privacy_url: bound.str("PrivacyUrl"),
        user_documentation: bound.str("UserDocumentation"),
        release_date: match bound.value("ReleaseDate") {
            Some(Value::DateTime(t)) => Some(t.sortable()),
            _ => None,
        },
        auto_install: bound.bool("AutoInstall"),
        is_featured: bound.bool("IsFeatured"),
        hidden: false,
    };
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let change = ops::create_application(config, state, new.clone(), false, now)?;
        let ci_id = match &change {
            crate::sim::site::state::Change::ApplicationCreated { ci_id, .. } => *ci_id,
            _ => 0,
        };
        state.log(now, def.sig.name, arguments.clone(), vec![change]);
        let app = state.application(ci_id).cloned();
        Ok(app.map(|a| app_value(config, state, &a, true)))
    })?;
    match result {
        Ok(value) => Ok(value.into_iter().collect()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn get_deployment_type(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let app_matcher = match bound.str("ApplicationName") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let dt_matcher = match bound.str("DeploymentTypeName") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let dt_id = bound.int("DeploymentTypeId");
    let result = site_call(exec, def, |config, state, _| {
        let apps: Vec<&Application> = if let Some(id) = dt_id {
            state
                .applications
                .iter()
                .filter(|a| a.deployment_types.iter().any(|d| i64::from(d.ci_id) == id))
                .collect()
        } else {
            let ids = resolve_apps(state, bound, "ApplicationName", app_matcher.as_ref());
            if ids.is_empty() {
                return Err(OpError {
                    kind: ErrorKind::ObjectNotFound,
                    message: NO_OBJECT.into(),
                });
            }
            ids.into_iter()
                .filter_map(|id| state.application(id))
                .collect()
        };
        let mut out = Vec::new();
        for app in apps {
            for (i, dt) in app.deployment_types.iter().enumerate() {
                let by_name = dt_matcher.as_ref().is_none_or(|m| m.matches(&dt.name));
                let by_id = dt_id.is_none_or(|id| i64::from(dt.ci_id) == id);
                if by_name && by_id {
                    out.push(dt_value(config, app, i, dt));
                }
            }
        }
        Ok(out)
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn add_script_deployment_type(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let Some(script_text) = bound.str("ScriptText") else {
        let mut rec = record(
            exec,
            def,
            "System.Management.Automation.ParameterBindingException",
            "InvalidArgument",
            "MissingMandatoryParameter",
            "Cannot process command because of one or more missing mandatory parameters: ScriptText.",
        );
        rec.statement_terminating = true;
        return Err(Flow::Error(Box::new(rec)));
    };
    let logon = bound.str("LogonRequirementType").map(|l| {
        if l == "WhereOrNotUserLoggedOn" {
            "WhetherOrNotUserLoggedOn".to_string()
        } else {
            l
        }
    });
    let new = ops::NewScriptDeploymentType {
        name: bound.str("DeploymentTypeName").unwrap_or_default(),
        content_location: bound.str("ContentLocation"),
        install_command: bound.str("InstallCommand").unwrap_or_default(),
        uninstall_command: bound.str("UninstallCommand"),
        repair_command: bound.str("RepairCommand"),
        install_working_directory: bound.str("InstallWorkingDirectory"),
        uninstall_working_directory: bound.str("UninstallWorkingDirectory"),
        uninstall_option: bound.str("UninstallOption"),
        uninstall_content_location: bound.str("UninstallContentLocation"),
        script_language: bound.str("ScriptLanguage").unwrap_or_default(),
        detection_script: script_text,
        detection_run_as_32bit: bound.switch("ForceScriptDetection32Bit"),
        run_as_32bit: bound.switch("Force32Bit"),
        slow_network: bound.str("SlowNetworkDeploymentMode"),
        cache_content: bound.switch("CacheContent"),
        content_fallback: bound.switch("ContentFallback"),
        max_runtime_minutes: bound.int("MaximumRuntimeMins"),
        estimated_runtime_minutes: bound.int("EstimatedRuntimeMins"),
        languages: bound.strs("AddLanguage"),
        comment: bound.str("Comment"),
        installation_behavior: bound.str("InstallationBehaviorType"),
        logon_requirement: logon,
        user_interaction_mode: bound.str("UserInteractionMode"),
        reboot_behavior: bound.str("RebootBehavior"),
        require_user_interaction: bound.switch("RequireUserInteraction"),
    };
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let app_id = single_app(resolve_apps(state, bound, "ApplicationName", None))?;
        let change = ops::add_script_deployment_type(config, state, app_id, new.clone(), now)?;
        state.log(now, def.sig.name, arguments.clone(), vec![change]);
        let app = state.application(app_id).cloned();
        Ok(app.and_then(|a| {
            let i = a.deployment_types.len().checked_sub(1)?;
            Some(dt_value(config, &a, i, &a.deployment_types[i]))
        }))
    })?;
    match result {
        Ok(value) => Ok(value.into_iter().collect()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn get_dp_group(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let matcher = match bound.str("Name") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let id = bound.str("Id");
    let result = site_call(exec, def, |config, state, _| {
        Ok(config
            .distribution_point_groups
            .iter()
            .filter(|g| matcher.as_ref().is_none_or(|m| m.matches(&g.name)))
            .filter(|g| {
                id.as_ref()
                    .is_none_or(|i| g.group_id.eq_ignore_ascii_case(i))
            })
            .map(|g| group_value(config, state, g))
            .collect::<Vec<_>>())
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn start_content_distribution(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let groups = bound.strs("DistributionPointGroupName");
    if groups.is_empty() {
        let e = OpError {
            kind: ErrorKind::InvalidArgument,
            message: "No distribution point, distribution point group or collection was specified as the content destination.".into(),
        };
        return op_error(exec, def, bound, e);
    }
    let names = bound.strs("ApplicationName");
    let matchers = names
        .iter()
        .map(|n| name_match(exec, def, bound, n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bound_input = bound.clone();
    if let Some(items) = input {
        bound_input
            .values
            .insert("InputObject", Value::Array(items));
    }
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let mut ids = Vec::new();
        for m in &matchers {
            let found = resolve_apps(state, &bound_input, "ApplicationName", Some(m));
            if found.is_empty() {
                return Err(OpError {
                    kind: ErrorKind::ObjectNotFound,
                    message: NO_OBJECT.into(),
                });
            }
            ids.extend(found);
        }
        if matchers.is_empty() {
            ids = resolve_apps(state, &bound_input, "ApplicationName", None);
            if ids.is_empty() {
                return Err(OpError {
                    kind: ErrorKind::ObjectNotFound,
                    message: NO_OBJECT.into(),
                });
            }
        }
        let mut changes = Vec::new();
        for id in ids {
            for group in &groups {
                changes.push(ops::start_distribution(config, state, id, group, now)?);
            }
        }
        state.log(now, def.sig.name, arguments.clone(), changes);
        Ok(())
    })?;
    match result {
        Ok(()) => Ok(Vec::new()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn get_distribution_status(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let mut packages: Vec<String> = bound.str("Id").into_iter().collect();
    let objects: Vec<Value> = match input {
        Some(items) => items,
        None => bound
            .value("InputObject")
            .cloned()
            .map(Value::enumerate)
            .unwrap_or_default(),
    };
    for object in &objects {
        let model = object.member("ModelName").to_text();
        packages.push(format!("model:{model}"));
    }
    let all = packages.is_empty();
    let result = site_call(exec, def, |config, state, _| {
        let mut wanted: Vec<String> = Vec::new();
        if all {
            for d in &state.distributions {
                if !wanted.contains(&d.package_id) {
                    wanted.push(d.package_id.clone());
                }
            }
        }
        for p in &packages {
            match p.strip_prefix("model:") {
                Some(model) => wanted.extend(
                    state
                        .applications
                        .iter()
                        .filter(|a| a.model_name == model)
                        .filter_map(|a| a.package_id.clone()),
                ),
                None => wanted.push(p.clone()),
            }
        }
        let mut out = Vec::new();
        for package in wanted {
            let Some(status) = ops::poll_distribution(config, state, &package) else {
                continue;
            };
            let Some(app) = state.application_by_package(&package) else {
                continue;
            };
            out.push(cm(
                "SMS_ObjectContentExtraInfo",
                vec![
                    ("PackageID", Value::str(&package)),
                    ("ObjectID", Value::str(&app.model_name)),
                    ("ObjectType", Value::Int(512)),
                    ("ObjectTypeID", Value::Int(31)),
                    ("SoftwareName", Value::str(&app.name)),
                    ("SourceVersion", Value::Int(i64::from(app.revision))),
                    ("Targeted", Value::Int(i64::from(status.targeted))),
                    ("NumberSuccess", Value::Int(i64::from(status.success))),
                    (
                        "NumberInProgress",
                        Value::Int(i64::from(status.in_progress)),
                    ),
                    ("NumberErrors", Value::Int(i64::from(status.errors))),
                    ("NumberUnknown", Value::Int(i64::from(status.unknown))),
                ],
            ));
        }
        Ok(out)
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn collection_filter(bound: &Bound) -> (Option<String>, Option<String>) {
    (bound.str("CollectionName"), bound.str("CollectionId"))
}

fn get_application_deployment(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let matcher = match bound.str("Name") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let (collection_name, collection_id) = collection_filter(bound);
    let deployment_id = bound.str("DeploymentId");
    let ci_id = bound.int("SmsObjectId");
    let input_models: Option<Vec<String>> = bound.value("InputObject").map(|v| {
        v.clone()
            .enumerate()
            .iter()
            .map(|o| o.member("ModelName").to_text())
            .collect()
    });
    let result = site_call(exec, def, |config, state, _| {
        Ok(state
            .deployments
            .iter()
            .filter(|d| {
                matcher
                    .as_ref()
                    .is_none_or(|m| m.matches(&d.application_name))
            })
            .filter(|d| {
                collection_name
                    .as_ref()
                    .is_none_or(|c| d.collection_name.to_lowercase() == c.to_lowercase())
            })
            .filter(|d| {
                collection_id
                    .as_ref()
                    .is_none_or(|c| d.collection_id.eq_ignore_ascii_case(c))
            })
            .filter(|d| {
                deployment_id
                    .as_ref()
                    .is_none_or(|i| d.assignment_unique_id.eq_ignore_ascii_case(i))
            })
            .filter(|d| ci_id.is_none_or(|i| i64::from(d.application_ci_id) == i))
            .filter(|d| {
                input_models
                    .as_ref()
                    .is_none_or(|m| m.contains(&d.app_model_name))
            })
            .map(|d| deployment_value(config, d))
            .collect::<Vec<_>>())
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn new_application_deployment(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let (collection_name, collection_id) = collection_filter(bound);
    if collection_name.is_none() && collection_id.is_none() {
        let mut rec = record(
            exec,
            def,
            "System.Management.Automation.ParameterBindingException",
            "InvalidArgument",
            "MissingMandatoryParameter",
            "Cannot process command because of one or more missing mandatory parameters: CollectionName.",
        );
        rec.statement_terminating = true;
        return Err(Flow::Error(Box::new(rec)));
    }
    let date = |name: &str| match bound.value(name) {
        Some(Value::DateTime(t)) => Some(t.sortable()),
        _ => None,
    };
    let mut options = std::collections::BTreeMap::new();
    for flag in [
        "OverrideServiceWindow",
        "RebootOutsideServiceWindow",
        "AllowRepairApp",
        "ApprovalRequired",
        "EnableSoftDeadline",
        "UpdateSupersedence",
        "UseMeteredNetwork",
        "SendWakeupPacket",
        "PersistOnWriteFilterDevice",
        "ReplaceToastNotificationWithDialog",
        "AutoCloseExecutable",
        "PreDeploy",
    ] {
        if let Some(b) = bound.bool(flag) {
            options.insert(flag.to_string(), b);
        }
    }
    let new = ops::NewDeployment {
        collection_name: collection_name.clone().unwrap_or_default(),
        deploy_action: bound.str("DeployAction"),
        deploy_purpose: bound.str("DeployPurpose"),
        available: date("AvailableDateTime"),
        deadline: date("DeadlineDateTime"),
        time_base: bound.str("TimeBaseOn"),
        user_notification: bound.str("UserNotification"),
        comment: bound.str("Comment"),
        options,
    };
    let distribute = bound
        .switch("DistributeContent")
        .then(|| bound.str("DistributionPointGroupName"))
        .flatten();
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let app_id = single_app(resolve_apps(state, bound, "Name", None))?;
        let mut new = new.clone();
        if let Some(id) = &collection_id {
            let c = config.collection_by_id(id).ok_or_else(|| OpError {
                kind: ErrorKind::ObjectNotFound,
                message: NO_OBJECT.into(),
            })?;
            new.collection_name = c.name.clone();
        }
        let mut changes = Vec::new();
        if let Some(group) = &distribute {
            let package = state.application(app_id).and_then(|a| a.package_id.clone());
            let already = config.dp_group(group).is_some_and(|g| {
                state
                    .distributions
                    .iter()
                    .any(|d| Some(&d.package_id) == package.as_ref() && d.group_id == g.group_id)
            });
            if !already {
                changes.push(ops::start_distribution(config, state, app_id, group, now)?);
            }
        }
        let change = ops::create_deployment(config, state, app_id, new, now)?;
        let assignment = match &change {
            crate::sim::site::state::Change::DeploymentCreated { assignment_id, .. } => {
                *assignment_id
            }
            _ => 0,
        };
        changes.push(change);
        state.log(now, def.sig.name, arguments.clone(), changes);
        Ok(state
            .deployments
            .iter()
            .find(|d| d.assignment_id == assignment)
            .map(|d| deployment_value(config, d)))
    })?;
    match result {
        Ok(value) => Ok(value.into_iter().collect()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn get_folder(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let matcher = match bound.str("Name") {
        Some(n) => Some(name_match(exec, def, bound, &n)?),
        None => None,
    };
    let folder_path = bound.str("FolderPath");
    let parent_path = bound.str("ParentFolderPath");
    let id = bound.int("Id");
    let result = site_call(exec, def, |config, state, _| {
        if let Some(path) = &folder_path {
            return Ok(match ops::find_folder(config, state, path)? {
                Some(Place::Folder(id)) => state
                    .folder(id)
                    .map(|f| vec![folder_value(config, state, f)])
                    .unwrap_or_default(),
                _ => Vec::new(),
            });
        }
        let parent = match &parent_path {
            Some(path) => match ops::find_folder(config, state, path)? {
                Some(place) => Some(place.id()),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        Ok(state
            .folders
            .iter()
            .filter(|f| id.is_none_or(|i| i64::from(f.container_node_id) == i))
            .filter(|f| parent.is_none_or(|p| f.parent_container_node_id == p))
            .filter(|f| matcher.as_ref().is_none_or(|m| m.matches(&f.name)))
            .map(|f| folder_value(config, state, f))
            .collect())
    })?;
    match result {
        Ok(values) => Ok(values),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn parent_place(config: &SiteConfig, state: &State, bound: &Bound) -> Result<Place, OpError> {
    if let Some(parent) = bound.value("InputObject") {
        let id = parent.member("ContainerNodeID").as_number().unwrap_or(0.0) as u32;
        return state
            .folder(id)
            .map(|f| Place::Folder(f.container_node_id))
            .ok_or(OpError {
                kind: ErrorKind::ObjectNotFound,
                message: NO_OBJECT.into(),
            });
    }
    let path = bound.str("ParentFolderPath").unwrap_or_default();
    let (keyword, _) = ops::split_folder_path(config, &path)?;
    if keyword != "Application" {
        return Err(OpError {
            kind: ErrorKind::InvalidOperation,
            message: format!(
                "The sccm-connector site simulator has only application folders; '{path}' is not under Application."
            ),
        });
    }
    ops::find_folder(config, state, &path)?.ok_or(OpError {
        kind: ErrorKind::ObjectNotFound,
        message: format!("The folder path '{path}' does not exist."),
    })
}

fn new_folder(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let name = bound.str("Name").unwrap_or_default();
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let parent = parent_place(config, state, bound)?;
        let change = ops::create_folder(state, parent, &name, now)?;
        let id = match &change {
            crate::sim::site::state::Change::FolderCreated {
                container_node_id, ..
            } => *container_node_id,
            _ => 0,
        };
        state.log(now, def.sig.name, arguments.clone(), vec![change]);
        Ok(state.folder(id).map(|f| folder_value(config, state, f)))
    })?;
    match result {
        Ok(value) => Ok(value.into_iter().collect()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

fn move_object(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    require_site_drive(exec, def)?;
    let path = bound.str("FolderPath").unwrap_or_default();
    let objects: Vec<Value> = match input {
        Some(items) => items,
        None => bound
            .value("InputObject")
            .cloned()
            .map(Value::enumerate)
            .unwrap_or_default(),
    };
    let mut keys: Vec<String> = bound.strs("ObjectId");
    for object in &objects {
        match object {
            Value::Object(o) if o.wmi_class().is_some_and(|c| APP_CLASSES.contains(&c)) => {
                keys.push(object.member("ModelName").to_text());
            }
            Value::Object(o) => {
                let e = OpError {
                    kind: ErrorKind::InvalidArgument,
                    message: format!(
                        "The sccm-connector site simulator moves only applications, not {}.",
                        o.type_name
                    ),
                };
                return op_error(exec, def, bound, e);
            }
            _ => {}
        }
    }
    let arguments = bound.to_json();
    let result = site_call(exec, def, |config, state, now| {
        let (keyword, _) = ops::split_folder_path(config, &path)?;
        if keyword != "Application" {
            return Err(OpError {
                kind: ErrorKind::InvalidOperation,
                message: "Items cannot be moved to a folder of another type.".into(),
            });
        }
        let target = ops::find_folder(config, state, &path)?.ok_or(OpError {
            kind: ErrorKind::ObjectNotFound,
            message: format!("The folder path '{path}' does not exist."),
        })?;
        let mut changes = Vec::new();
        for key in &keys {
            changes.push(ops::move_application(state, key, target)?);
        }
        state.log(now, def.sig.name, arguments.clone(), changes);
        Ok(())
    })?;
    match result {
        Ok(()) => Ok(Vec::new()),
        Err(e) => op_error(exec, def, bound, e),
    }
}

/// The CIM instances of `class` on the site's provider (lazy properties omitted).
fn cim_rows(config: &SiteConfig, state: &State, class: &str) -> Option<Vec<Vec<(String, Value)>>> {
    let strip = |v: Value| match v {
        Value::Object(o) => o.props.clone(),
        _ => Vec::new(),
    };
    let rows = match class.to_ascii_lowercase().as_str() {
        "sms_objectcontainernode" => state
            .folders
            .iter()
            .map(|f| strip(folder_value(config, state, f)))
            .collect(),
        "sms_objectcontaineritem" => state
            .memberships
            .iter()
            .map(|m| {
                vec![
                    ("MemberID".to_string(), Value::Int(i64::from(m.member_id))),
                    (
                        "ContainerNodeID".into(),
                        Value::Int(i64::from(m.container_node_id)),
                    ),
                    ("InstanceKey".into(), Value::str(&m.instance_key)),
                    ("MemberGuid".into(), Value::str(&m.member_guid)),
                    ("ObjectType".into(), Value::Int(6000)),
                    ("ObjectTypeName".into(), Value::str("SMS_ApplicationLatest")),
                    ("SourceSite".into(), Value::str(&config.site_code)),
                ]
            })
            .collect(),
        "sms_applicationlatest" | "sms_application" => state
            .applications
            .iter()
            .map(|a| strip(app_value(config, state, a, false)))
            .collect(),
        "sms_dpgroupcontentinfo" => state
            .distributions
            .iter()
            .map(|d| {
                vec![
                    ("GroupID".to_string(), Value::str(&d.group_id)),
                    ("PackageID".into(), Value::str(&d.package_id)),
                    ("ObjectID".into(), Value::str(&d.object_id)),
                    (
                        "Name".into(),
                        Value::opt_str(
                            state
                                .application(d.application_ci_id)
                                .map(|a| a.name.as_str()),
                        ),
                    ),
                    ("ObjectType".into(), Value::Int(512)),
                    ("ObjectTypeID".into(), Value::Int(31)),
                ]
            })
            .collect(),
        "sms_distributionpointgroup" => config
            .distribution_point_groups
            .iter()
            .map(|g| strip(group_value(config, state, g)))
            .collect(),
        "sms_applicationassignment" => state
            .deployments
            .iter()
            .map(|d| strip(deployment_value(config, d)))
            .collect(),
        "sms_collection" => config
            .collections
            .iter()
            .map(|c| {
                vec![
                    ("CollectionID".to_string(), Value::str(&c.collection_id)),
                    ("Name".into(), Value::str(&c.name)),
                    ("CollectionType".into(), Value::Int(2)),
                ]
            })
            .collect(),
        _ => return None,
    };
    Some(rows)
}

/// A WQL filter of `Prop=Value` comparisons joined by AND; `None` if it is not one.
fn parse_filter(filter: &str) -> Option<Vec<(String, Value)>> {
    let mut conditions = Vec::new();
    let lower = filter.to_ascii_lowercase();
    let mut rest = filter;
    let mut rest_lower = lower.as_str();
    loop {
        let (part, next, next_lower) = match rest_lower.find(" and ") {
            Some(i) => (&rest[..i], &rest[i + 5..], &rest_lower[i + 5..]),
            None => (rest, "", ""),
        };
        let (name, value) = part.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let value = value.trim();
        let value = if let Some(inner) = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        {
            Value::str(inner)
        } else if let Ok(i) = value.parse::<i64>() {
            Value::Int(i)
        } else if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
            Value::Bool(value.eq_ignore_ascii_case("true"))
        } else {
            return None;
        };
        conditions.push((name.to_string(), value));
        if next.is_empty() {
            return Some(conditions);
        }
        rest = next;
        rest_lower = next_lower;
    }
}

fn get_cim_instance(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let config = exec.host.site.config().clone();
    let cim_error = |exec: &Exec<'_>, hresult: &str, category: &str, message: &str| {
        record(
            exec,
            def,
            "Microsoft.Management.Infrastructure.CimException",
            category,
            &format!("HRESULT {hresult}"),
            message.to_string(),
        )
    };
    for computer in bound.strs("ComputerName") {
        let lower = computer.to_ascii_lowercase();
        let provider = config.provider_machine.to_ascii_lowercase();
        let is_provider = lower == provider || lower.starts_with(&format!("{provider}."));
        let is_local = lower == config.computer_name.to_ascii_lowercase()
            || lower == "localhost"
            || lower == ".";
        if !is_provider {
            let rec = if is_local {
                cim_error(exec, "0x8004100e", "MetadataError", "Invalid namespace ")
            } else {
                cim_error(
                    exec,
                    "0x80338126",
                    "ConnectionError",
                    "WinRM cannot complete the operation. Verify that the specified computer name is valid, that the computer is accessible over the network, and that a firewall exception for the WinRM service is enabled and allows access from this computer. By default, the WinRM firewall exception for public profiles limits access to remote computers within the same local subnet.",
                )
            };
            exec.write_error(bound, rec)?;
            return Ok(Vec::new());
        }
    }
    if bound.strs("ComputerName").is_empty()
        && !config
            .computer_name
            .eq_ignore_ascii_case(&config.provider_machine)
    {
        let rec = cim_error(exec, "0x8004100e", "MetadataError", "Invalid namespace ");
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    }
    let namespace = bound
        .str("Namespace")
        .unwrap_or_else(|| "root\\cimv2".into());
    let expected = format!("root\\SMS\\site_{}", config.site_code);
    if !normalize_namespace(&namespace).eq_ignore_ascii_case(&expected) {
        let rec = cim_error(exec, "0x8004100e", "MetadataError", "Invalid namespace ");
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    }
    let class = bound.str("ClassName").unwrap_or_default();
    let filter = match bound.str("Filter") {
        Some(f) => match parse_filter(&f) {
            Some(c) => Some(c),
            None => {
                let rec = cim_error(exec, "0x80041017", "InvalidArgument", "Invalid query ");
                exec.write_error(bound, rec)?;
                return Ok(Vec::new());
            }
        },
        None => None,
    };
    let result = site_call(exec, def, |config, state, _| {
        Ok(cim_rows(config, state, &class))
    })?;
    let rows = match result {
        Ok(Some(rows)) => rows,
        Ok(None) => {
            let rec = cim_error(exec, "0x80041010", "MetadataError", "Invalid class ");
            exec.write_error(bound, rec)?;
            return Ok(Vec::new());
        }
        Err(e) => return op_error(exec, def, bound, e),
    };
    let mut out = Vec::new();
    for row in rows {
        if let Some(conditions) = &filter {
            let mut keep = true;
            for (name, value) in conditions {
                let Some((_, actual)) = row.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
                else {
                    let rec = cim_error(exec, "0x80041017", "InvalidArgument", "Invalid query ");
                    exec.write_error(bound, rec)?;
                    return Ok(Vec::new());
                };
                let equal =
                    super::value::compare(actual, value, super::value::CompareOp::Eq, false)
                        .map(|v| v.truthy())
                        .unwrap_or(false);
                keep &= equal;
            }
            if !keep {
                continue;
            }
        }
        out.push(Value::Object(std::rc::Rc::new(super::value::PsObject {
            type_name: format!(
                "Microsoft.Management.Infrastructure.CimInstance#root/SMS/site_{}/{class}",
                config.site_code
            ),
            kind: ObjectKind::Cim(class.clone()),
            props: row,
        })));
    }
    Ok(out)
}

fn normalize_namespace(ns: &str) -> String {
    ns.replace('/', "\\").trim_matches('\\').to_string()
}

use std::io::Write as _;

fn cm_def(sig: Signature, run: super::commands::RunFn) -> CommandDef {
    CommandDef { sig, run, cm: true }
}

/// `-DisableWildcardHandling` and `-ForceWildcardHandling`, on every ConfigMgr cmdlet.
fn with_wildcard_switches(mut params: Vec<Param>) -> Vec<Param> {
    params.push(p("DisableWildcardHandling", Ty::Switch));
    params.push(p("ForceWildcardHandling", Ty::Switch));
    params
}

fn cm_sig(
    name: &'static str,
    type_name: &'static str,
    default: Option<&'static str>,
    extras: Extras,
    params: Vec<Param>,
) -> Signature {
    Signature::new(
        name,
        type_name,
        default,
        extras,
        with_wildcard_switches(params),
    )
}

const SCRIPT_LANGUAGE: Ty = Ty::Enum(
    "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.ScriptLanguage",
    &["PowerShell", "VBScript", "JavaScript"],
);

/// The ConfigMgr cmdlets (available after `Import-Module ConfigurationManager`) and CIM.
pub fn commands() -> Vec<CommandDef> {
    let app_object = Ty::ResultObject(APP_CLASSES);
    let mut defs = vec![
        cm_def(
            cm_sig(
                "Get-CMApplication",
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.GetApplicationCommand",
                Some("SearchByName"),
                Extras::Common,
                vec![
                    p("Name", Ty::Str)
                        .alias(&["LocalizedDisplayName", "ApplicationName"])
                        .set("SearchByName", false, Some(0)),
                    p("Id", Ty::Int)
                        .alias(&["CIId", "CI_ID", "ApplicationId"])
                        .set("SearchById", true, None),
                    p("ModelName", Ty::Str).set("SearchByModelName", true, None),
                    p("InputObject", Ty::ResultObject(&["SMS_DeploymentType"]))
                        .alias(&["DeploymentType"])
                        .set("SearchByValue", true, None)
                        .pipe()
                        .unsupported(),
                    p("Fast", Ty::Switch),
                    p("ShowHidden", Ty::Switch),
                ],
            ),
            get_application,
        ),
        cm_def(
            cm_sig(
                "New-CMApplication",
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.NewApplicationCommand",
                None,
                Extras::ShouldProcess,
                vec![
                    p("Name", Ty::Str)
                        .alias(&["LocalizedDisplayName"])
                        .pos(0)
                        .mandatory()
                        .validate(Validate::MaxLength(256)),
                    p("Description", Ty::Str).validate(Validate::MaxLength(2048)),
                    p("Publisher", Ty::Str)
                        .alias(&["Manufacturer"])
                        .validate(Validate::MaxLength(256)),
                    p("SoftwareVersion", Ty::Str).validate(Validate::MaxLength(64)),
                    p("OptionalReference", Ty::Str).validate(Validate::MaxLength(256)),
                    p("Owner", Ty::Str),
                    p("AddOwner", Ty::StrArray),
                    p("SupportContact", Ty::Str),
                    p("AddSupportContact", Ty::StrArray),
                    p("LocalizedName", Ty::Str)
                        .alias(&["LocalizedApplicationName"])
                        .validate(Validate::MaxLength(256)),
                    p("LocalizedDescription", Ty::Str)
                        .alias(&["LocalizedApplicationDescription"])
                        .validate(Validate::MaxLength(2048)),
                    p("DefaultLanguageId", Ty::Int),
                    p("Keyword", Ty::Str),
                    p("LinkText", Ty::Str).validate(Validate::MaxLength(128)),
                    p("PrivacyUrl", Ty::Str).validate(Validate::MaxLength(128)),
                    p("UserDocumentation", Ty::Str),
                    p("IconLocationFile", Ty::Str).unsupported(),
                    p("ReleaseDate", Ty::DateTime),
                    p("AutoInstall", Ty::Bool),
                    p("IsFeatured", Ty::Bool),
                    p("AppCatalog", Ty::Any).unsupported(),
                    p("DisplaySupersedenceInApplicationCatalog", Ty::Bool),
                ],
            ),
            new_application,
        ),
        cm_def(
            cm_sig(
                "Get-CMDeploymentType",
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.GetDeploymentTypeCommand",
                Some("SearchByName"),
                Extras::Common,
                vec![
                    p("ApplicationName", Ty::Str).set("SearchByName", true, None),
                    p("ApplicationId", Ty::Int).alias(&["CI_ID", "CIId"]).set(
                        "SearchById",
                        true,
                        None,
                    ),
                    p("InputObject", app_object)
                        .alias(&["Application"])
                        .set("SearchByValue", true, None)
                        .pipe(),
                    p("DeploymentTypeName", Ty::Str)
                        .set("SearchByName", false, None)
                        .set("SearchById", false, None)
                        .set("SearchByValue", false, None),
                    p("DeploymentTypeId", Ty::Int)
                        .set("SearchByName", false, None)
                        .set("SearchById", false, None)
                        .set("SearchByValue", false, None),
                ],
            ),
            get_deployment_type,
        ),
    ];
    let mut script_dt = vec![
        p("ApplicationName", Ty::Str).set("ByAppNameScript", true, None),
        p("ApplicationId", Ty::Int).set("ByAppIdScript", true, None),
        p("InputObject", app_object)
            .alias(&["Application"])
            .set("ByAppValueScript", true, None)
            .pipe(),
        p("DeploymentTypeName", Ty::Str)
            .mandatory()
            .validate(Validate::MaxLength(256)),
        p("InstallCommand", Ty::Str)
            .alias(&["InstallationProgram"])
            .mandatory(),
        p("ContentLocation", Ty::Str).alias(&["InstallationFileLocation"]),
        p("ScriptLanguage", SCRIPT_LANGUAGE)
            .alias(&["ScriptType"])
            .mandatory(),
        p("ScriptText", Ty::Str).alias(&["ScriptContent"]),
        p("ScriptFile", Ty::Str).unsupported(),
        p("UninstallCommand", Ty::Str).alias(&["UninstallationProgram"]),
        p("RepairCommand", Ty::Str),
        p("InstallWorkingDirectory", Ty::Str),
        p("UninstallWorkingDirectory", Ty::Str),
        p("RepairWorkingDirectory", Ty::Str).unsupported(),
        p(
            "UninstallOption",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.UninstallContentSetting",
                &["SameAsInstall", "NoneRequired", "Different"],
            ),
        ),
        p("UninstallContentLocation", Ty::Str),
        p("CacheContent", Ty::Switch).alias(&["PersistContentInClientCache"]),
        p(
            "SlowNetworkDeploymentMode",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.ContentHandlingMode",
                &["DoNothing", "Download"],
            ),
        ),
        p("MaximumRuntimeMins", Ty::Int)
            .alias(&[
                "MaximumAllowedRunTimeMinutes",
                "MaximumAllowedRunTimeMins",
                "MaximumRunTimeMinutes",
            ])
            .validate(Validate::Range(15, 720)),
        p("EstimatedRuntimeMins", Ty::Int)
            .alias(&[
                "EstimatedInstallationTimeMinutes",
                "EstimatedInstallationTimeMins",
                "EstimatedRunTimeMinutes",
            ])
            .validate(Validate::Range(0, i64::from(i32::MAX))),
        p("Force32Bit", Ty::Switch).alias(&["Force32BitInstaller"]),
        p("ForceScriptDetection32Bit", Ty::Switch).alias(&["Force32BitDetectionScript"]),
        p(
            "InstallationBehaviorType",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.InstallationBehaviorType",
                &[
                    "InstallForUser",
                    "InstallForSystem",
                    "InstallForSystemIfResourceIsDeviceOtherwiseInstallForUser",
                ],
            ),
        ),
        p(
            "LogonRequirementType",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.LogonRequirementType",
                &[
                    "OnlyWhenUserLoggedOn",
                    "WhereOrNotUserLoggedOn",
                    "WhetherOrNotUserLoggedOn",
                    "OnlyWhenNoUserLoggedOn",
                ],
            ),
        ),
        p(
            "UserInteractionMode",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.UserInteractionMode",
                &["Normal", "Minimized", "Maximized", "Hidden"],
            ),
        )
        .alias(&["InstallationProgramVisibility"]),
        p(
            "RebootBehavior",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.PostExecutionBehavior",
                &[
                    "BasedOnExitCode",
                    "NoAction",
                    "ProgramReboot",
                    "ForceReboot",
                ],
            ),
        ),
        p("ContentFallback", Ty::Switch).alias(&[
            "EnableContentLocationFallback",
            "AllowClientsToUseFallbackSourceLocationForContent",
        ]),
        p("AddLanguage", Ty::StrArray).alias(&["AddLanguages", "Languages", "Language"]),
        p("Comment", Ty::Str)
            .alias(&["AdministratorComment"])
            .validate(Validate::MaxLength(2048)),
        p("RequireUserInteraction", Ty::Switch),
        p("Force", Ty::Switch).alias(&["ForceForUnknownPublisher"]),
        p("EnableBranchCache", Ty::Switch),
        p("AddRequirement", Ty::Any).unsupported(),
        p("ProductCode", Ty::Str).unsupported(),
        p("AddDetectionClause", Ty::Any).unsupported(),
        p("DetectionClauseConnector", Ty::Any).unsupported(),
        p("GroupDetectionClauses", Ty::Any).unsupported(),
        p("SourceUpdateProductCode", Ty::Str).unsupported(),
    ];
    script_dt.shrink_to_fit();
    defs.push(cm_def(
        cm_sig(
            "Add-CMScriptDeploymentType",
            "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.AddScriptDeploymentTypeCommand",
            Some("ByAppNameScript"),
            Extras::ShouldProcess,
            script_dt,
        ),
        add_script_deployment_type,
    ));
    let mut distribution = vec![
        p("ApplicationName", Ty::StrArray).set("SearchByApplicationName", true, None),
        p("ApplicationId", Ty::StrArray)
            .set("SearchByApplicationId", true, None)
            .unsupported(),
        p("InputObject", app_object)
            .set("SearchByValue", true, None)
            .pipe(),
        p("DistributionPointGroupName", Ty::StrArray),
        p("DistributionPointName", Ty::StrArray).unsupported(),
        p("CollectionName", Ty::StrArray).unsupported(),
        p("DisableContentDependencyDetection", Ty::Switch),
    ];
    for (param, set) in [
        ("PackageName", "SearchByPackageName"),
        ("PackageId", "SearchByPackageId"),
        ("BootImageName", "SearchByBootImageName"),
        ("BootImageId", "SearchByBootImageId"),
        ("DeploymentPackageName", "SearchByDeploymentPackageName"),
        ("DeploymentPackageId", "SearchByDeploymentPackageId"),
        ("DriverPackageName", "SearchByDriverPackageName"),
        ("DriverPackageId", "SearchByDriverPackageId"),
        (
            "OperatingSystemImageName",
            "SearchByOperatingSystemImageName",
        ),
        ("OperatingSystemImageId", "SearchByOperatingSystemImageId"),
        (
            "OperatingSystemInstallerName",
            "SearchByOperatingSystemInstallerName",
        ),
        (
            "OperatingSystemInstallerId",
            "SearchByOperatingSystemInstallerId",
        ),
        ("TaskSequenceName", "SearchByTaskSequenceName"),
        ("TaskSequenceId", "SearchByTaskSequenceId"),
    ] {
        distribution.push(p(param, Ty::StrArray).set(set, true, None).unsupported());
    }
    defs.push(cm_def(
        cm_sig(
            "Start-CMContentDistribution",
            "Microsoft.ConfigurationManagement.Cmdlets.Content.Commands.StartContentDistributionCommand",
            Some("SearchByApplicationName"),
            Extras::ShouldProcess,
            distribution,
        ),
        start_content_distribution,
    ));
    defs.extend([
        cm_def(
            cm_sig(
                "Get-CMDistributionPointGroup",
                "Microsoft.ConfigurationManagement.Cmdlets.Content.Commands.GetDistributionPointGroupCommand",
                Some("SearchByName"),
                Extras::Common,
                vec![
                    p("Name", Ty::Str).set("SearchByName", false, None),
                    p("Id", Ty::Str)
                        .alias(&["GroupId"])
                        .set("SearchById", true, None),
                ],
            ),
            get_dp_group,
        ),
        cm_def(
            cm_sig(
                "Get-CMDistributionStatus",
                "Microsoft.ConfigurationManagement.Cmdlets.Content.Commands.GetDistributionStatusCommand",
                Some("SearchById"),
                Extras::Common,
                vec![
                    p("Id", Ty::Str)
                        .alias(&["PackageId"])
                        .set("SearchById", false, None)
                        .validate(Validate::NotNullOrEmpty),
                    p("InputObject", Ty::ResultObject(&[]))
                        .set("SearchByValue", true, None)
                        .pipe(),
                ],
            ),
            get_distribution_status,
        ),
        cm_def(
            cm_sig(
                "Get-CMApplicationDeployment",
                "Microsoft.ConfigurationManagement.Cmdlets.Deployments.Commands.GetApplicationDeploymentCommand",
                Some("SearchByName"),
                Extras::Common,
                vec![
                    p("Name", Ty::Str)
                        .alias(&["ApplicationName", "LocalizedDisplayName"])
                        .set("SearchByName", false, Some(0)),
                    p("CollectionName", Ty::Str)
                        .set("SearchByName", false, None)
                        .set("SearchBySmsObjectId", false, None)
                        .set("SearchByValue", false, None),
                    p("CollectionId", Ty::Str)
                        .set("SearchByName", false, None)
                        .set("SearchBySmsObjectId", false, None)
                        .set("SearchByValue", false, None),
                    p("Collection", Ty::Any).unsupported(),
                    p("DeploymentId", Ty::Str)
                        .alias(&["AssignmentUniqueId"])
                        .set("SearchByDeploymentId", true, None),
                    p("SmsObjectId", Ty::Int)
                        .alias(&["CI_ID", "CIId"])
                        .set("SearchBySmsObjectId", true, None),
                    p("InputObject", app_object)
                        .alias(&["Application"])
                        .set("SearchByValue", true, None)
                        .pipe(),
                    p("Summary", Ty::Switch).unsupported(),
                ],
            ),
            get_application_deployment,
        ),
    ]);
    let mut deploy = vec![
        p("Name", Ty::Str)
            .alias(&["ApplicationName", "LocalizedDisplayName"])
            .set("SearchByNameMandatory", true, None),
        p("Id", Ty::Int)
            .alias(&["CI_ID", "CIId", "ApplicationId"])
            .set("SearchByIdMandatory", true, None),
        p("InputObject", app_object)
            .alias(&["Application"])
            .set("SearchByValueMandatory", true, None)
            .pipe(),
        p("CollectionName", Ty::Str),
        p("CollectionId", Ty::Str),
        p("Collection", Ty::Any).unsupported(),
        p(
            "DeployAction",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.DeployActionType",
                &["Install", "Uninstall"],
            ),
        ),
        p(
            "DeployPurpose",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.DeployPurposeType",
                &["Available", "Required"],
            ),
        ),
        p("AvailableDateTime", Ty::DateTime),
        p("DeadlineDateTime", Ty::DateTime).alias(&["SupersedenceDeadlineDateTime"]),
        p(
            "TimeBaseOn",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.TimeType",
                &["LocalTime", "Utc"],
            ),
        ),
        p(
            "UserNotification",
            Ty::Enum(
                "Microsoft.ConfigurationManagement.Cmdlets.AppMan.Commands.UserNotificationType",
                &["DisplayAll", "DisplaySoftwareCenterOnly", "HideAll"],
            ),
        ),
        p("Comment", Ty::Str),
        p("DistributeContent", Ty::Switch),
        p("DistributionPointGroupName", Ty::Str),
        p("DistributionPointName", Ty::Str).unsupported(),
        p("DistributeCollectionName", Ty::Str).unsupported(),
        p("DisableContentDependencyDetection", Ty::Switch),
        p("Simulation", Ty::Switch).unsupported(),
        p("EnableMomAlert", Ty::Bool).unsupported(),
        p("GenerateScomAlertOnFailure", Ty::Bool).unsupported(),
        p("FailParameterValue", Ty::Int).unsupported(),
        p("SuccessParameterValue", Ty::Int).unsupported(),
        p("PostponeDateTime", Ty::DateTime).unsupported(),
    ];
    for flag in [
        "OverrideServiceWindow",
        "RebootOutsideServiceWindow",
        "AllowRepairApp",
        "ApprovalRequired",
        "EnableSoftDeadline",
        "UpdateSupersedence",
        "UseMeteredNetwork",
        "SendWakeupPacket",
        "PersistOnWriteFilterDevice",
        "ReplaceToastNotificationWithDialog",
        "AutoCloseExecutable",
        "PreDeploy",
    ] {
        deploy.push(p(flag, Ty::Bool));
    }
    defs.push(cm_def(
        cm_sig(
            "New-CMApplicationDeployment",
            "Microsoft.ConfigurationManagement.Cmdlets.Deployments.Commands.NewApplicationDeploymentCommand",
            Some("SearchByNameMandatory"),
            Extras::ShouldProcess,
            deploy,
        ),
        new_application_deployment,
    ));
    defs.extend([
        cm_def(
            cm_sig(
                "Get-CMFolder",
                "Microsoft.ConfigurationManagement.Cmdlets.Collections.Commands.GetFolderCommand",
                Some("ByName"),
                Extras::Common,
                vec![
                    p("Name", Ty::Str).set("ByName", false, None),
                    p("ParentFolderPath", Ty::Str).set("ByName", false, None),
                    p("TypeName", Ty::Str)
                        .set("ByName", false, None)
                        .unsupported(),
                    p("FolderPath", Ty::Str).set("ByFolderPath", true, None),
                    p("Id", Ty::Int)
                        .alias(&["ContainerNodeId"])
                        .set("ById", true, None),
                    p("Guid", Ty::Str)
                        .alias(&["FolderGuid"])
                        .set("ByGuid", true, None)
                        .unsupported(),
                    p("InputObject", Ty::ResultObject(FOLDER_CLASSES))
                        .alias(&["ParentFolder"])
                        .set("ByParentFolder", true, None)
                        .pipe()
                        .unsupported(),
                ],
            ),
            get_folder,
        ),
        cm_def(
            cm_sig(
                "New-CMFolder",
                "Microsoft.ConfigurationManagement.Cmdlets.Collections.Commands.NewFolderCommand",
                Some("ByParentFolderPath"),
                Extras::ShouldProcess,
                vec![
                    p("Name", Ty::Str).mandatory(),
                    p("ParentFolderPath", Ty::Str).set("ByParentFolderPath", true, None),
                    p("InputObject", Ty::ResultObject(FOLDER_CLASSES))
                        .alias(&["ParentFolder"])
                        .set("ByParentFolder", true, None)
                        .pipe(),
                ],
            ),
            new_folder,
        ),
        cm_def(
            cm_sig(
                "Move-CMObject",
                "Microsoft.ConfigurationManagement.Cmdlets.Collections.Commands.MoveObjectCommand",
                Some("ByValue"),
                Extras::ShouldProcess,
                vec![
                    p("FolderPath", Ty::Str).mandatory(),
                    p("InputObject", Ty::ResultObject(&[]))
                        .set("ByValue", true, None)
                        .pipe(),
                    p("ObjectId", Ty::StrArray)
                        .alias(&["InstanceKey"])
                        .set("ById", true, None),
                ],
            ),
            move_object,
        ),
    ]);
    // Get-CimInstance is a built-in cmdlet that happens to talk to the SMS Provider.
    defs.push(CommandDef {
        sig: Signature::new(
            "Get-CimInstance",
            "Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand",
            Some("ClassNameComputerSet"),
            Extras::Common,
            vec![
                p("ClassName", Ty::Str)
                    .set("ClassNameComputerSet", true, Some(0))
                    .set("ClassNameSessionSet", true, Some(0)),
                p("ComputerName", Ty::StrArray)
                    .alias(&["CN", "ServerName"])
                    .set("ClassNameComputerSet", false, None)
                    .set("QueryComputerSet", false, None),
                p("Namespace", Ty::Str),
                p("Filter", Ty::Str),
                p("OperationTimeoutSec", Ty::Int).alias(&["OT"]),
                p("KeyOnly", Ty::Switch).unsupported(),
                p("Shallow", Ty::Switch).unsupported(),
                p("Property", Ty::StrArray)
                    .alias(&["SelectProperties"])
                    .unsupported(),
                p("QueryDialect", Ty::Str).unsupported(),
                p("Query", Ty::Str)
                    .set("QueryComputerSet", true, None)
                    .set("QuerySessionSet", true, None)
                    .unsupported(),
                p("CimSession", Ty::Any)
                    .set("ClassNameSessionSet", true, None)
                    .set("QuerySessionSet", true, None)
                    .unsupported(),
                p("ResourceUri", Ty::Str).unsupported(),
                p("InputObject", Ty::Any)
                    .alias(&["CimInstance"])
                    .set("CimInstanceComputerSet", true, None)
                    .pipe()
                    .unsupported(),
            ],
        ),
        run: get_cim_instance,
        cm: false,
    });
    defs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wql_filters_are_prop_equals_value() {
        assert_eq!(
            parse_filter("ObjectType=6000"),
            Some(vec![("ObjectType".into(), Value::Int(6000))])
        );
        assert_eq!(
            parse_filter("Name = 'A b' AND ObjectType=6000"),
            Some(vec![
                ("Name".into(), Value::str("A b")),
                ("ObjectType".into(), Value::Int(6000))
            ])
        );
        assert_eq!(parse_filter("ObjectType>6000"), None);
        assert_eq!(parse_filter("ObjectType=6000 OR 1=1"), None);
        assert_eq!(parse_filter("Name LIKE 'x%'"), None);
    }
}
