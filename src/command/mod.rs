//! Commands from the portal, as validated domain values.
//!
//! [`parse`] turns protocol-v1 JSON into a [`Command`] or a [`Rejection`] that names the field and
//! says why. It never panics on input. [`peek`] reads just enough of any bytes — even invalid
//! ones — to journal them under the right command id before validation.
//!
//! Limits follow the cmdlets (`New-CMApplication`: Name, Publisher, LocalizedName,
//! OptionalReference ≤ 256, SoftwareVersion ≤ 64, Description ≤ 2048) and ConfigMgr's own rules
//! (maximum run time 15–720 minutes). Where ConfigMgr documents no limit the connector sets a
//! generous one of its own (install command 8191, the `cmd.exe` line limit; detection script
//! 32 KiB of UTF-8).

mod datetime;
mod fields;
pub mod language;

pub use datetime::LocalDateTime;
pub use language::Language;

use crate::portal::wire::{CommandDto, DeploymentDto, DeploymentTypeDto, SiteDto};
use fields::{reject, required};
use replay::JobKind;
use thiserror::Error;

/// Why a command cannot be carried out: the field (its protocol path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct Rejection {
    pub field: String,
    pub reason: String,
}

/// Limits that depend on the installation rather than on ConfigMgr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest package the connector accepts to download.
    pub max_package_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_package_bytes: 8 << 30,
        }
    }
}

/// A validated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Push(Box<Push>),
    Import(Import),
}

impl Command {
    pub fn id(&self) -> &str {
        match self {
            Command::Push(p) => &p.id,
            Command::Import(i) => &i.id,
        }
    }

    pub fn site(&self) -> &Site {
        match self {
            Command::Push(p) => &p.site,
            Command::Import(i) => &i.site,
        }
    }
}

/// The ConfigMgr site a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Three letters or digits, upper-cased (`DEM`).
    pub site_code: String,
    /// The console's `bin` folder, where `ConfigurationManager.psd1` lives.
    pub console_path: String,
    /// The package's folder on the source share (a push unpacks here).
    pub share_path: Option<String>,
}

/// Create, distribute and deploy an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub id: String,
    pub issued_at: String,
    pub site: Site,
    /// The share path the package is unpacked into (required for a push).
    pub share_path: String,
    pub application: Application,
    pub package: Package,
    pub deployment_type: ScriptDeploymentType,
    pub deployment: Deployment,
}

/// The application object (`New-CMApplication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// `-Name`: the application's name in the console (the portal's `package_name`).
    pub name: String,
    /// `-LocalizedName`: the name users see in Software Center (the portal's `name`).
    pub localized_name: String,
    /// `-Publisher`.
    pub publisher: String,
    /// `-SoftwareVersion`.
    pub version: String,
    /// `-DefaultLanguageId` (LCID) and the deployment type's `-AddLanguage` (culture).
    pub language: Language,
    /// `-AutoInstall`: may be installed by a task sequence.
    pub auto_install: bool,
    /// `-Owner`.
    pub owner: Option<String>,
    /// `-Description` (the administrator comment).
    pub description: Option<String>,
    /// `-OptionalReference`.
    pub optional_reference: Option<String>,
    /// Console folder below the Applications node; empty means the root.
    pub folder: Vec<String>,
}

/// The package to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub package_id: String,
    /// Relative to the portal's base URL, or absolute https.
    pub url: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
}

/// `Add-CMScriptDeploymentType -ScriptLanguage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptLanguage {
    PowerShell,
    VBScript,
    JavaScript,
}

/// `-SlowNetworkDeploymentMode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowNetwork {
    Download,
    DoNothing,
}

/// The script deployment type (`Add-CMScriptDeploymentType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptDeploymentType {
    pub name: String,
    pub content_location: String,
    pub distribution_group: String,
    pub detection_language: ScriptLanguage,
    pub detection_script: String,
    pub cache_content: bool,
    pub install_command: String,
    pub uninstall_command: Option<String>,
    pub slow_network: SlowNetwork,
    pub max_runtime_minutes: u32,
    pub estimated_runtime_minutes: u32,
    pub force_32bit: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployAction {
    Install,
    Uninstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployPurpose {
    Available,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBase {
    Local,
    Utc,
}

/// The deployment (`New-CMApplicationDeployment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub collection: String,
    pub action: DeployAction,
    pub purpose: DeployPurpose,
    /// Enforcement deadline; meaningful for required deployments only.
    pub deadline: Option<LocalDateTime>,
    pub time_base: TimeBase,
}

/// The most applications one import reads. Each one is a step of the import's metadata phase
/// (≈ 2 KB of script in the journaled plan); the cap keeps a phase's plan a few MB. An import
/// naming more is rejected; an import of "every application" on a larger site reads the first
/// ones in inventory order and reports the rest as not read (send another import naming them).
pub const MAX_IMPORT_APPLICATIONS: usize = 4000;

/// The largest command the connector accepts, in bytes. Real commands are a few KB (the largest
/// field, a detection script, is capped at 32 KB); anything beyond this is refused unread.
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;

/// Read applications (and their sources) out of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub id: String,
    pub issued_at: String,
    pub site: Site,
    /// Names to import; empty means every application.
    pub applications: Vec<String>,
    /// Zip and upload each application's source folder.
    pub upload_sources: bool,
}

/// What can be read from any bytes, valid or not, to journal them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    pub command_id: Option<String>,
    pub kind: JobKind,
}

/// Reads the id and kind of a command without validating anything else. The id is only taken
/// when it is a usable identifier (it travels in URLs).
pub fn peek(raw: &[u8]) -> Peek {
    let value: serde_json::Value = serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null);
    let command_id = value
        .get("id")
        .and_then(|v| v.as_str())
        .and_then(|id| fields::identifier("id", id.to_string()).ok());
    let kind = match value.get("kind").and_then(|v| v.as_str()) {
        Some("push") => JobKind::Push,
        Some("import") => JobKind::Import,
        _ => JobKind::Unrecognized,
    };
    Peek { command_id, kind }
}

/// Validates a protocol-v1 command.
pub fn parse(raw: &[u8], limits: &Limits) -> Result<Command, Rejection> {
    if raw.len() > MAX_COMMAND_BYTES {
        return Err(reject(
            "(command)",
            format!(
                "is {} bytes; a command may have at most {MAX_COMMAND_BYTES}",
                raw.len()
            ),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let dto: CommandDto = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(command)".to_string()
        } else {
            path
        };
        reject(
            &field,
            format!("is not valid JSON for this field: {}", e.inner()),
        )
    })?;
    let id = fields::identifier("id", required("id", dto.id)?)?;
    let kind = required("kind", dto.kind)?;
    let issued_at = required("issued_at", dto.issued_at)?;
    datetime::check_instant(&issued_at).map_err(|reason| reject("issued_at", reason))?;
    let site = site(required("site", dto.site)?)?;
    match kind.as_str() {
        "push" => {
            let share_path = site
                .share_path
                .clone()
                .ok_or_else(|| reject("site.share_path", "is required for a push"))?;
            let application = application(required("application", dto.application)?)?;
            let package = package(required("content", dto.content)?, limits)?;
            let deployment_type = deployment_type(
                required("deployment_type", dto.deployment_type)?,
                &share_path,
            )?;
            let deployment = deployment(required("deployment", dto.deployment)?)?;
            Ok(Command::Push(Box::new(Push {
                id,
                issued_at,
                site,
                share_path,
                application,
                package,
                deployment_type,
                deployment,
            })))
        }
        "import" => {
            let applications = dto.applications.unwrap_or_default();
            if applications.len() > MAX_IMPORT_APPLICATIONS {
                return Err(reject(
                    "applications",
                    format!(
                        "names {} applications; one import reads at most {MAX_IMPORT_APPLICATIONS}",
                        applications.len()
                    ),
                ));
            }
            let applications = applications
                .into_iter()
                .enumerate()
                .map(|(i, name)| fields::name(&format!("applications[{i}]"), name, 256))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Command::Import(Import {
                id,
                issued_at,
                site,
                applications,
                upload_sources: dto.upload_sources.unwrap_or(true),
            }))
        }
        other => Err(reject(
            "kind",
            format!("must be one of push, import; got {other:?}"),
        )),
    }
}

fn site(dto: SiteDto) -> Result<Site, Rejection> {
    let site_code = required("site.site_code", dto.site_code)?;
    if site_code.len() != 3 || !site_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(reject(
            "site.site_code",
            format!("must be three letters or digits; got {site_code:?}"),
        ));
    }
    Ok(Site {
        site_code: site_code.to_ascii_uppercase(),
        console_path: fields::windows_path(
            "site.console_path",
            required("site.console_path", dto.console_path)?,
        )?,
        share_path: dto
            .share_path
            .map(|p| fields::unc_path("site.share_path", p))
            .transpose()?,
    })
}

fn application(dto: crate::portal::wire::ApplicationDto) -> Result<Application, Rejection> {
    let language_text = required("application.language", dto.language)?;
    let language = language::lookup(&language_text).ok_or_else(|| {
        reject(
            "application.language",
            format!("{language_text:?} is not a language the connector can map to a ConfigMgr language id (use e.g. \"English (United States)\", \"en-US\" or 1033)"),
        )
    })?;
    Ok(Application {
        name: fields::name(
            "application.package_name",
            required("application.package_name", dto.package_name)?,
            256,
        )?,
        localized_name: fields::name(
            "application.name",
            required("application.name", dto.name)?,
            256,
        )?,
        publisher: fields::name(
            "application.vendor",
            required("application.vendor", dto.vendor)?,
            256,
        )?,
        version: fields::name(
            "application.version",
            required("application.version", dto.version)?,
            64,
        )?,
        language,
        auto_install: dto.auto_install.unwrap_or(false),
        owner: fields::optional_name("application.owner", dto.owner, 256)?,
        description: fields::optional_text("application.description", dto.description, 2048)?,
        optional_reference: fields::optional_name(
            "application.optional_reference",
            dto.optional_reference,
            256,
        )?,
        folder: folder(dto.folder)?,
    })
}

/// `Applications/Test 1` → `["Test 1"]` (the console path `<site>:\Application\Test 1`).
fn folder(value: Option<String>) -> Result<Vec<String>, Rejection> {
    const FIELD: &str = "application.folder";
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut segments = value.split('/');
    let root = segments.next().unwrap_or_default();
    if !root.eq_ignore_ascii_case("Applications") {
        return Err(reject(
            FIELD,
            format!(
                "must start with the console's Applications node, as in \"Applications/Test 1\"; got {value:?}"
            ),
        ));
    }
    let segments: Vec<String> = segments
        .map(|s| {
            let s = fields::name(FIELD, s.to_string(), 256)
                .map_err(|r| reject(FIELD, format!("folder {s:?} in {value:?}: {}", r.reason)))?;
            if s.contains('\\') {
                return Err(reject(
                    FIELD,
                    format!("folder {s:?} contains a backslash, the console's path separator"),
                ));
            }
            Ok(s)
        })
        .collect::<Result<_, _>>()?;
    if segments.len() > 16 {
        return Err(reject(FIELD, "is nested deeper than 16 folders"));
    }
    Ok(segments)
}

fn package(dto: crate::portal::wire::ContentDto, limits: &Limits) -> Result<Package, Rejection> {
    let url = required("content.url", dto.url)?;
    let url_ok = (url.starts_with('/') && !url.starts_with("//"))
        || url.starts_with("https://")
        || url.starts_with("http://");
    if !url_ok || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(reject(
            "content.url",
            format!("must be a path on the portal (/api/…) or an http(s) URL; got {url:?}"),
        ));
    }
    let size = required("content.size", dto.size)?;
    if size == 0 || size > limits.max_package_bytes {
        return Err(reject(
            "content.size",
            format!(
                "must be between 1 and {} bytes; got {size}",
                limits.max_package_bytes
            ),
        ));
    }
    Ok(Package {
        package_id: fields::identifier(
            "content.package_id",
            required("content.package_id", dto.package_id)?,
        )?,
        url,
        sha256: fields::sha256_hex("content.sha256", required("content.sha256", dto.sha256)?)?,
        size,
    })
}

fn deployment_type(
    dto: DeploymentTypeDto,
    share_path: &str,
) -> Result<ScriptDeploymentType, Rejection> {
    let installer_type = required("deployment_type.installer_type", dto.installer_type)?;
    fields::one_of(
        "deployment_type.installer_type",
        &installer_type,
        &[("script", ())],
    )?;
    let content_location = fields::unc_path(
        "deployment_type.content_location",
        required("deployment_type.content_location", dto.content_location)?,
    )?;
    if !fields::unc_within(&content_location, share_path) {
        return Err(reject(
            "deployment_type.content_location",
            format!(
                "must be the package's share path ({share_path}) or a folder beneath it, so that the content deployed is the content unpacked"
            ),
        ));
    }
    let detection = required("deployment_type.detection", dto.detection)?;
    let detection_language = required("deployment_type.detection.language", detection.language)?;
    let detection_language = fields::one_of(
        "deployment_type.detection.language",
        &detection_language,
        &[
            ("PowerShell", ScriptLanguage::PowerShell),
            ("VBScript", ScriptLanguage::VBScript),
            ("JavaScript", ScriptLanguage::JavaScript),
        ],
    )?;
    let detection_script = required("deployment_type.detection.script", detection.script)?;
    if detection_script.trim().is_empty() {
        return Err(reject(
            "deployment_type.detection.script",
            "must not be empty",
        ));
    }
    if detection_script.len() > 32 * 1024 {
        return Err(reject(
            "deployment_type.detection.script",
            format!("is {} bytes; the limit is 32768", detection_script.len()),
        ));
    }
    let detection_script = fields::text(
        "deployment_type.detection.script",
        detection_script,
        usize::MAX,
    )?;
    let slow_network = required("deployment_type.slow_network", dto.slow_network)?;
    Ok(ScriptDeploymentType {
        name: fields::name(
            "deployment_type.name",
            required("deployment_type.name", dto.name)?,
            256,
        )?,
        content_location,
        distribution_group: fields::name(
            "deployment_type.distribution_group",
            required("deployment_type.distribution_group", dto.distribution_group)?,
            256,
        )?,
        detection_language,
        detection_script,
        cache_content: dto.persist_in_cache.unwrap_or(false),
        install_command: fields::name(
            "deployment_type.install_command",
            required("deployment_type.install_command", dto.install_command)?,
            8191,
        )?,
        uninstall_command: fields::optional_name(
            "deployment_type.uninstall_command",
            dto.uninstall_command,
            8191,
        )?,
        slow_network: fields::one_of(
            "deployment_type.slow_network",
            &slow_network,
            &[
                ("download", SlowNetwork::Download),
                ("do_nothing", SlowNetwork::DoNothing),
            ],
        )?,
        max_runtime_minutes: fields::within(
            "deployment_type.max_runtime_minutes",
            required(
                "deployment_type.max_runtime_minutes",
                dto.max_runtime_minutes,
            )?,
            15..=720,
        )?,
        estimated_runtime_minutes: fields::within(
            "deployment_type.estimated_runtime_minutes",
            dto.estimated_runtime_minutes.unwrap_or(0),
            0..=720,
        )?,
        force_32bit: dto.run_as_32bit.unwrap_or(false),
        comment: fields::optional_text("deployment_type.admin_comment", dto.admin_comment, 2048)?,
    })
}

fn deployment(dto: DeploymentDto) -> Result<Deployment, Rejection> {
    let action = required("deployment.action", dto.action)?;
    let purpose = required("deployment.purpose", dto.purpose)?;
    let time_base = dto.time_base.unwrap_or_else(|| "local".to_string());
    Ok(Deployment {
        collection: fields::name(
            "deployment.collection",
            required("deployment.collection", dto.collection)?,
            256,
        )?,
        action: fields::one_of(
            "deployment.action",
            &action,
            &[
                ("install", DeployAction::Install),
                ("uninstall", DeployAction::Uninstall),
            ],
        )?,
        purpose: fields::one_of(
            "deployment.purpose",
            &purpose,
            &[
                ("available", DeployPurpose::Available),
                ("required", DeployPurpose::Required),
            ],
        )?,
        deadline: dto
            .deadline
            .filter(|d| !d.is_empty())
            .map(|d| {
                datetime::parse_local(&d).map_err(|reason| reject("deployment.deadline", reason))
            })
            .transpose()?,
        time_base: fields::one_of(
            "deployment.time_base",
            &time_base,
            &[("local", TimeBase::Local), ("utc", TimeBase::Utc)],
        )?,
    })
}

#[cfg(test)]
mod tests;
