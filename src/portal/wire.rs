//! Protocol v1's JSON shapes, exactly as they travel. Nothing here is trusted or validated:
//! every field is optional so that a missing one becomes a rejection naming it, not a parse
//! error, and unknown fields are ignored. `command::parse` converts these into domain types.

use serde::Deserialize;

/// A command as delivered by `GET /api/connector/v1/commands`.
#[derive(Debug, Default, Deserialize)]
pub struct CommandDto {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub issued_at: Option<String>,
    pub site: Option<SiteDto>,
    // push
    pub application: Option<ApplicationDto>,
    pub content: Option<ContentDto>,
    pub deployment_type: Option<DeploymentTypeDto>,
    pub deployment: Option<DeploymentDto>,
    // import
    pub applications: Option<Vec<String>>,
    pub upload_sources: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SiteDto {
    pub site_code: Option<String>,
    pub console_path: Option<String>,
    pub share_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApplicationDto {
    pub package_name: Option<String>,
    pub version: Option<String>,
    pub vendor: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub auto_install: Option<bool>,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub optional_reference: Option<String>,
    pub folder: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContentDto {
    pub package_id: Option<String>,
    pub url: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeploymentTypeDto {
    pub name: Option<String>,
    pub content_location: Option<String>,
    pub distribution_group: Option<String>,
    pub installer_type: Option<String>,
    pub detection: Option<DetectionDto>,
    pub persist_in_cache: Option<bool>,
    pub install_command: Option<String>,
    pub uninstall_command: Option<String>,
    pub slow_network: Option<String>,
    pub max_runtime_minutes: Option<u32>,
    pub estimated_runtime_minutes: Option<u32>,
    pub run_as_32bit: Option<bool>,
    pub admin_comment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DetectionDto {
    pub language: Option<String>,
    pub script: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeploymentDto {
    pub collection: Option<String>,
    pub action: Option<String>,
    pub purpose: Option<String>,
    pub deadline: Option<String>,
    pub time_base: Option<String>,
}

// ---- The client's own shapes (poll, uploads, progress). Added with the HTTPS client. ----

/// `GET /api/connector/v1/commands` → `200`. Each command is kept as the exact bytes the portal
/// sent (the engine journals them before parsing); nothing inside a command is interpreted here.
#[derive(Debug, Deserialize)]
pub struct PollResponseDto {
    #[serde(default)]
    pub commands: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    pub poll_after_seconds: Option<f64>,
}

/// `POST /api/connector/v1/uploads` request.
#[derive(Debug, serde::Serialize)]
pub struct OpenUploadDto<'a> {
    pub command_id: &'a str,
    pub application: &'a str,
}

/// `POST /api/connector/v1/uploads` → `{"upload_id"}`.
#[derive(Debug, Deserialize)]
pub struct UploadIdDto {
    pub upload_id: String,
}

/// `GET /api/connector/v1/uploads/{id}` → `{"committed", "complete"}`.
#[derive(Debug, Deserialize)]
pub struct UploadStatusDto {
    pub committed: u64,
    #[serde(default)]
    pub complete: bool,
}

/// `PUT …/uploads/{id}?offset=n` → `{"committed"}` (also the body of its `409`).
#[derive(Debug, Deserialize)]
pub struct CommittedDto {
    pub committed: u64,
}

/// `POST …/uploads/{id}/complete` request.
#[derive(Debug, serde::Serialize)]
pub struct CompleteUploadDto<'a> {
    pub size: u64,
    pub sha256: &'a str,
}

/// `POST …/commands/{id}/progress` request (best effort).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressDto {
    pub step: String,
    pub state: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}
