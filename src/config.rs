//! The connector's configuration: one TOML file, validated with clear errors, with secrets that
//! environment variables may override. The only place defaults live.
//!
//! ```toml
//! [portal]                       # see portal::config::PortalConfig
//! base_url = "https://portal.example.com"
//! remote_id = "6f1c…"            # or SCCM_CONNECTOR_REMOTE_ID
//!
//! [powershell]
//! program = "powershell.exe"
//! args = ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"]
//! mode = "session"               # or "per-step"
//! step_timeout_seconds = 1800
//! provider_machine = "cm01.contoso.com"   # optional; default: this machine
//!
//! [storage]
//! journal = 'C:\ProgramData\sccm-connector\journal'
//! spool = 'C:\ProgramData\sccm-connector\spool'
//!
//! [shares]
//! allowed_roots = ['\\FS01\Sources$\incoming']
//! [[shares.map]]                 # optional: UNC prefix → local path
//! unc = '\\FS01\Sources$'
//! local = 'D:\Sources'
//!
//! [limits]                       # optional
//! max_package_mb = 8192
//! max_unpacked_mb = 32768
//! max_entries = 100000
//! max_compression_ratio = 1000
//!
//! [engine]                       # optional
//! concurrency = 2
//! max_attempts = 3
//! retry_initial_seconds = 30
//! retry_max_seconds = 900
//! distribution_poll_seconds = 30
//! distribution_timeout_minutes = 120
//!
//! [logging]                      # optional; see logging::LoggingConfig
//! format = "text"                # or "json", "cmtrace"
//! directory = 'C:\ProgramData\sccm-connector\logs'   # optional; default: stderr only
//! max_file_mb = 10
//! keep_files = 10
//!
//! [metrics]                      # optional; see metrics
//! listen = "127.0.0.1:9464"      # loopback only
//!
//! [audit]                        # optional; see audit and docs/audit.md
//! signing_key = 'C:\ProgramData\sccm-connector\audit-signing.pem'   # PKCS#8 PEM Ed25519 key: signs exports
//!
//! [retention]                    # optional; see engine::retention
//! keep_finished = "90d"          # s, m, h or d; "off" keeps every job in the journal
//! archive = 'C:\ProgramData\sccm-connector\archive'   # default: "archive" beside the journal
//! sweep_every = "1h"
//! warn_events_per_job = 20000
//! max_events_per_job = 200000
//! ```
//!
//! Environment overrides: `SCCM_CONNECTOR_REMOTE_ID`, `SCCM_CONNECTOR_PROXY_PASSWORD`.

use crate::command::Limits;
use crate::engine::retention::Retention;
use crate::engine::store::EventLimits;
use crate::package::unpack::UnpackLimits;
use crate::portal::config::{PortalConfig, Secret};
use crate::powershell::push::SiteAccess;
use crate::powershell::runner::{PowerShellConfig, RunMode};
use crate::share::{ShareMapping, Shares};
use replay::{Backoff, PollPolicy, RetryPolicy};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: String,
        field: &'static str,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    portal: PortalConfig,
    #[serde(default)]
    powershell: PowerShellSection,
    storage: StorageSection,
    shares: SharesSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    engine: EngineSection,
    #[serde(default)]
    logging: crate::logging::LoggingConfig,
    metrics: Option<crate::metrics::MetricsConfig>,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    retention: RetentionSection,
}

/// `[audit]`: how exports are made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `signing_key`: a PKCS#8 PEM Ed25519 private key (`sccm-connector audit keygen`) that signs
    /// every export's chain head; `export --signing-key FILE` overrides it. A relative path is
    /// taken from the working directory, like every path of the file.
    pub signing_key: Option<PathBuf>,
}

impl AuditConfig {
    /// Reads only the `[audit]` table of `path`, so that a configuration that would not start
    /// the connector still names its signing key (as `inspect` reads only `[storage] journal`).
    pub fn from_file(path: &Path) -> Result<AuditConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        match table.get("audit") {
            None => Ok(AuditConfig::default()),
            Some(value) => {
                value
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| ConfigError::Invalid {
                        path: shown,
                        field: "audit",
                        reason: e.to_string(),
                    })
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RetentionSection {
    keep_finished: String,
    archive: Option<PathBuf>,
    sweep_every: String,
    warn_events_per_job: u64,
    max_events_per_job: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        let limits = EventLimits::default();
        RetentionSection {
            keep_finished: "90d".into(),
            archive: None,
            sweep_every: "1h".into(),
            warn_events_per_job: limits.warn,
            max_events_per_job: limits.max,
        }
    }
}

/// Parses a duration written as a whole number and a unit: `30s`, `15m`, `12h`, `90d`.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a whole number"))?;
    let unit_ms: u64 = match unit.trim() {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use s, m, h or d)"
            ));
        }
    };
    number
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("'{text}' is too long"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PowerShellSection {
    program: PathBuf,
    args: Vec<String>,
    mode: String,
    step_timeout_seconds: u64,
    provider_machine: Option<String>,
}

impl Default for PowerShellSection {
    fn default() -> Self {
        let d = PowerShellConfig::default();
        PowerShellSection {
            program: d.program,
            args: d.args,
            mode: "session".into(),
            step_timeout_seconds: d.step_timeout.as_secs(),
            provider_machine: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    journal: PathBuf,
    spool: PathBuf,
    #[serde(default = "default_cache_mb")]
    journal_cache_mb: u64,
}

fn default_cache_mb() -> u64 {
    16
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharesSection {
    allowed_roots: Vec<String>,
    #[serde(default)]
    map: Vec<ShareMapping>,
}

/// The largest size in MiB `[limits]` and `[storage] journal_cache_mb` accept: 16 TiB.
const MAX_MIB: u64 = 1 << 24;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsSection {
    max_package_mb: u64,
    max_unpacked_mb: u64,
    max_entries: u64,
    max_compression_ratio: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let u = UnpackLimits::default();
        LimitsSection {
            max_package_mb: Limits::default().max_package_bytes >> 20,
            max_unpacked_mb: u.max_total_bytes >> 20,
            max_entries: u.max_entries,
            max_compression_ratio: u.max_ratio,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EngineSection {
    concurrency: usize,
    max_attempts: u32,
    retry_initial_seconds: u64,
    retry_max_seconds: u64,
    max_interrupted: u32,
    distribution_poll_seconds: u64,
    distribution_timeout_minutes: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            concurrency: 2,
            max_attempts: 3,
            retry_initial_seconds: 30,
            retry_max_seconds: 900,
            max_interrupted: 20,
            distribution_poll_seconds: 30,
            distribution_timeout_minutes: 120,
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub portal: PortalConfig,
    pub powershell: PowerShellConfig,
    pub access: SiteAccess,
    pub journal_dir: PathBuf,
    pub journal_cache_bytes: u64,
    pub spool_dir: PathBuf,
    pub shares: Shares,
    pub limits: Limits,
    pub unpack: UnpackLimits,
    pub concurrency: usize,
    pub policy: RetryPolicy,
    pub distribution: PollPolicy,
    /// Backoff of result deliveries (they are retried until acknowledged).
    pub report_backoff: Backoff,
    /// Where and how logs are written (`[logging]`).
    pub logging: crate::logging::LoggingConfig,
    /// The loopback address of the metrics endpoint (`[metrics] listen`), if enabled.
    pub metrics: Option<std::net::SocketAddr>,
    /// `[audit]`: the exports' signing key.
    pub audit: AuditConfig,
    /// When finished jobs leave the journal for an archive (`[retention]`).
    pub retention: Retention,
    /// Soft and hard limits on one job's events (`[retention]`).
    pub event_limits: EventLimits,
}

impl Config {
    /// Reads and validates `path`, applying environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path, |name| std::env::var(name).ok())
    }

    /// Parses `text` (from `path`, for messages); `env` looks up environment variables.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let mut file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            path: shown.clone(),
            field,
            reason,
        };
        if let Some(remote_id) = env("SCCM_CONNECTOR_REMOTE_ID") {
            file.portal.remote_id = remote_id;
        }
        if let (Some(password), Some(proxy)) = (
            env("SCCM_CONNECTOR_PROXY_PASSWORD"),
            file.portal.proxy.as_mut(),
        ) {
            proxy.password = Some(Secret::new(password));
        }
        if file.portal.remote_id.trim().is_empty() {
            return Err(invalid(
                "portal.remote_id",
                "is empty (set it here or in SCCM_CONNECTOR_REMOTE_ID)".into(),
            ));
        }
        check_base_url(&file.portal.base_url)
            .map_err(|reason| invalid("portal.base_url", reason))?;
        let mode = match file.powershell.mode.as_str() {
            "session" => RunMode::Session,
            "per-step" => RunMode::PerStep,
            other => {
                return Err(invalid(
                    "powershell.mode",
                    format!("must be \"session\" or \"per-step\"; got {other:?}"),
                ));
            }
        };
        if file.powershell.step_timeout_seconds == 0 {
            return Err(invalid(
                "powershell.step_timeout_seconds",
                "must be at least 1".into(),
            ));
        }
        if file.shares.allowed_roots.is_empty() {
            return Err(invalid(
                "shares.allowed_roots",
                "must name at least one UNC root the connector may write under".into(),
            ));
        }
        for root in file
            .shares
            .allowed_roots
            .iter()
            .chain(file.shares.map.iter().map(|m| &m.unc))
        {
            if !root.starts_with("\\\\") || root.len() < 5 {
                return Err(invalid(
                    "shares",
                    format!("{root:?} is not a UNC path (\\\\server\\share…)"),
                ));
            }
        }
        let e = &file.engine;
        if e.concurrency == 0 || e.concurrency > 64 {
            return Err(invalid(
                "engine.concurrency",
                format!("must be between 1 and 64; got {}", e.concurrency),
            ));
        }
        if file
            .audit
            .signing_key
            .as_ref()
            .is_some_and(|k| k.as_os_str().is_empty())
        {
            return Err(invalid(
                "audit.signing_key",
                "is empty (name a PKCS#8 PEM file, or leave the key out)".into(),
            ));
        }
        if e.max_attempts == 0 {
            return Err(invalid("engine.max_attempts", "must be at least 1".into()));
        }
        if e.distribution_poll_seconds == 0 || e.distribution_timeout_minutes == 0 {
            return Err(invalid(
                "engine.distribution_poll_seconds",
                "poll interval and timeout must be positive".into(),
            ));
        }
        file.logging
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        let metrics = match &file.metrics {
            Some(m) => Some(
                m.address()
                    .map_err(|reason| invalid("metrics.listen", reason))?,
            ),
            None => None,
        };
        let r = &file.retention;
        let keep_finished_ms = match r.keep_finished.trim() {
            "off" => None,
            text => Some(
                parse_duration_ms(text)
                    .map_err(|reason| invalid("retention.keep_finished", reason))?,
            ),
        };
        let sweep_every_ms = parse_duration_ms(&r.sweep_every)
            .map_err(|reason| invalid("retention.sweep_every", reason))?;
        if sweep_every_ms == 0 {
            return Err(invalid("retention.sweep_every", "must be positive".into()));
        }
        if r.max_events_per_job < 1_000 || r.warn_events_per_job >= r.max_events_per_job {
            return Err(invalid(
                "retention.max_events_per_job",
                format!(
                    "needs warn_events_per_job ({}) < max_events_per_job ({}) and max_events_per_job >= 1000, so an ordinary job always finishes",
                    r.warn_events_per_job, r.max_events_per_job
                ),
            ));
        }
        let archive_dir = r.archive.clone().unwrap_or_else(|| {
            file.storage
                .journal
                .parent()
                .map_or_else(|| PathBuf::from("archive"), |p| p.join("archive"))
        });
        let retention = Retention {
            keep_finished_ms,
            archive_dir,
            sweep_every_ms,
        };
        let event_limits = EventLimits {
            warn: r.warn_events_per_job,
            max: r.max_events_per_job,
        };
        let l = &file.limits;
        // Sizes in MiB become bytes: 1 MiB up to 16 TiB (a larger number is a typo, and would
        // overflow once shifted).
        let mib = |field: &'static str, value: u64| {
            if (1..=MAX_MIB).contains(&value) {
                Ok(value << 20)
            } else {
                Err(invalid(
                    field,
                    format!("must be between 1 and {MAX_MIB} (MiB); got {value}"),
                ))
            }
        };
        let at_least_one = |field: &'static str, value: u64| {
            if value == 0 {
                Err(invalid(field, "must be at least 1; got 0".into()))
            } else {
                Ok(value)
            }
        };
        let max_package_bytes = mib("limits.max_package_mb", l.max_package_mb)?;
        let max_total_bytes = mib("limits.max_unpacked_mb", l.max_unpacked_mb)?;
        let max_entries = at_least_one("limits.max_entries", l.max_entries)?;
        let max_ratio = at_least_one("limits.max_compression_ratio", l.max_compression_ratio)?;
        let journal_cache_bytes = mib(
            "storage.journal_cache_mb",
            file.storage.journal_cache_mb.max(1),
        )?;
        // Seconds and minutes become milliseconds.
        let ms = |field: &'static str, value: u64, unit: u64| {
            value.checked_mul(unit).ok_or_else(|| {
                invalid(
                    field,
                    format!("{value} is too large (more than {} ms)", u64::MAX),
                )
            })
        };
        let retry_initial_ms = ms(
            "engine.retry_initial_seconds",
            e.retry_initial_seconds,
            1000,
        )?;
        let retry_max_ms = ms(
            "engine.retry_max_seconds",
            e.retry_max_seconds.max(e.retry_initial_seconds),
            1000,
        )?;
        let distribution_interval_ms = ms(
            "engine.distribution_poll_seconds",
            e.distribution_poll_seconds,
            1000,
        )?;
        let distribution_timeout_ms = ms(
            "engine.distribution_timeout_minutes",
            e.distribution_timeout_minutes,
            60_000,
        )?;
        Ok(Config {
            audit: file.audit,
            retention,
            event_limits,
            logging: file.logging,
            metrics,
            powershell: PowerShellConfig {
                program: file.powershell.program,
                args: file.powershell.args,
                mode,
                step_timeout: Duration::from_secs(file.powershell.step_timeout_seconds),
                scratch_dir: Some(file.storage.spool.join("scripts")),
            },
            access: SiteAccess {
                provider_machine: file.powershell.provider_machine,
            },
            portal: file.portal,
            journal_dir: file.storage.journal,
            journal_cache_bytes,
            spool_dir: file.storage.spool,
            shares: Shares::new(file.shares.map, file.shares.allowed_roots),
            limits: Limits { max_package_bytes },
            unpack: UnpackLimits {
                max_total_bytes,
                max_entries,
                max_ratio,
            },
            concurrency: e.concurrency,
            policy: RetryPolicy {
                max_attempts: e.max_attempts,
                backoff: Backoff {
                    initial_ms: retry_initial_ms,
                    max_ms: retry_max_ms,
                },
                max_interrupted: e.max_interrupted.max(1),
            },
            distribution: PollPolicy {
                interval_ms: distribution_interval_ms,
                timeout_ms: distribution_timeout_ms,
            },
            report_backoff: Backoff {
                initial_ms: 5_000,
                max_ms: 300_000,
            },
        })
    }
}

/// `https://…`, or `http://` to a loopback host only (the simulator).
fn check_base_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() {
            Err("has no host".into())
        } else {
            Ok(())
        };
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[")
            || rest.starts_with("[::1]")
            || host.starts_with("127.");
        return if loopback {
            Ok(())
        } else {
            Err(format!(
                "must be https:// (plain http is only allowed to a loopback address); got {url:?}"
            ))
        };
    }
    Err(format!("must start with https://; got {url:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[portal]
base_url = "https://portal.example.com"
remote_id = "6f1c2a9e-0000-4000-8000-000000000001"

[powershell]
mode = "per-step"

[storage]
journal = "/var/lib/sccm-connector/journal"
spool = "/var/lib/sccm-connector/spool"

[shares]
allowed_roots = ['\\FS01\Sources$\incoming']
[[shares.map]]
unc = '\\FS01\Sources$'
local = "/srv/sources"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("connector.toml"), |_| None)
    }

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.powershell.mode, RunMode::PerStep);
        assert_eq!(c.powershell.program, PathBuf::from("powershell.exe"));
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.policy.max_attempts, 3);
        assert_eq!(
            c.shares.to_local("\\\\fs01\\sources$\\incoming\\A"),
            PathBuf::from("/srv/sources/incoming/A")
        );
        assert_eq!(c.journal_cache_bytes, 16 << 20);
    }

    #[test]
    fn retention_defaults_and_overrides() {
        let c = parse(GOOD).expect("valid");
        assert_eq!(c.retention.keep_finished_ms, Some(90 * 86_400_000));
        assert_eq!(
            c.retention.archive_dir,
            PathBuf::from("/var/lib/sccm-connector/archive")
        );
        assert_eq!(c.retention.sweep_every_ms, 3_600_000);
        assert_eq!(c.event_limits, EventLimits::default());
        let text = format!(
            "{GOOD}\n[retention]\nkeep_finished = \"off\"\narchive = \"/srv/archive\"\nsweep_every = \"30s\"\nwarn_events_per_job = 1000\nmax_events_per_job = 5000\n"
        );
        let c = parse(&text).expect("valid");
        assert_eq!(c.retention.keep_finished_ms, None);
        assert_eq!(c.retention.archive_dir, PathBuf::from("/srv/archive"));
        assert_eq!(c.retention.sweep_every_ms, 30_000);
        assert_eq!(
            c.event_limits,
            EventLimits {
                warn: 1000,
                max: 5000
            }
        );
        for (bad, field) in [
            ("keep_finished = \"90\"", "retention.keep_finished"),
            ("keep_finished = \"3w\"", "retention.keep_finished"),
            ("sweep_every = \"0m\"", "retention.sweep_every"),
            ("max_events_per_job = 10", "retention.max_events_per_job"),
        ] {
            let error = parse(&format!("{GOOD}\n[retention]\n{bad}\n")).expect_err(bad);
            assert!(error.to_string().contains(field), "{bad}: {error}");
        }
    }

    #[test]
    fn limits_are_checked_and_name_their_key() {
        let c = parse(&format!(
            "{GOOD}\n[limits]\nmax_package_mb = 1\nmax_unpacked_mb = 16777216\nmax_entries = 1\nmax_compression_ratio = 1\n"
        ))
        .expect("valid");
        assert_eq!(c.limits.max_package_bytes, 1 << 20);
        assert_eq!(c.unpack.max_total_bytes, 1 << 44);
        assert_eq!((c.unpack.max_entries, c.unpack.max_ratio), (1, 1));
        for (section, bad, field) in [
            ("limits", "max_package_mb = 0", "limits.max_package_mb"),
            // 2^44 MiB shifted by 20 bits would silently become 0 bytes.
            (
                "limits",
                "max_package_mb = 17592186044416",
                "limits.max_package_mb",
            ),
            ("limits", "max_unpacked_mb = 0", "limits.max_unpacked_mb"),
            (
                "limits",
                "max_unpacked_mb = 16777217",
                "limits.max_unpacked_mb",
            ),
            ("limits", "max_entries = 0", "limits.max_entries"),
            (
                "limits",
                "max_compression_ratio = 0",
                "limits.max_compression_ratio",
            ),
            (
                "engine",
                "retry_initial_seconds = 18446744073709552",
                "engine.retry_initial_seconds",
            ),
            (
                "engine",
                "distribution_timeout_minutes = 18446744073709551",
                "engine.distribution_timeout_minutes",
            ),
        ] {
            let error = parse(&format!("{GOOD}\n[{section}]\n{bad}\n")).expect_err(bad);
            let text = error.to_string();
            assert!(text.contains(field), "{bad}: {text}");
            assert!(
                text.contains("must be") || text.contains("too large"),
                "{bad}: {text}"
            );
        }
        let error = parse(&GOOD.replace(
            "[storage]",
            "[storage]\njournal_cache_mb = 18446744073709551615",
        ))
        .expect_err("too large a cache");
        assert!(
            error.to_string().contains("storage.journal_cache_mb"),
            "{error}"
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ms("45s"), Ok(45_000));
        assert_eq!(parse_duration_ms(" 2h "), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_duration_ms("d").is_err());
        assert!(parse_duration_ms("99999999999999999d").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                GOOD.replace("https://portal", "http://portal"),
                "portal.base_url",
            ),
            (
                GOOD.replace("\"per-step\"", "\"parallel\""),
                "powershell.mode",
            ),
            (
                GOOD.replace(
                    "allowed_roots = ['\\\\FS01\\Sources$\\incoming']",
                    "allowed_roots = []",
                ),
                "shares.allowed_roots",
            ),
            (
                GOOD.replace(
                    "remote_id = \"6f1c2a9e-0000-4000-8000-000000000001\"",
                    "remote_id = \"\"",
                ),
                "portal.remote_id",
            ),
            (
                format!("{GOOD}\n[engine]\nconcurrency = 0\n"),
                "engine.concurrency",
            ),
        ];
        for (text, field) in cases {
            match parse(&text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(&format!("{GOOD}\nunknown = 1\n")),
            Err(ConfigError::Syntax { .. })
        ));
        assert!(matches!(parse("[portal"), Err(ConfigError::Syntax { .. })));
    }

    #[test]
    fn the_audit_signing_key_is_optional() {
        assert_eq!(parse(GOOD).expect("valid").audit.signing_key, None);
        let c = parse(&format!(
            "{GOOD}\n[audit]\nsigning_key = '/etc/sccm/audit-signing.pem'\n"
        ))
        .expect("valid");
        assert_eq!(
            c.audit.signing_key,
            Some(PathBuf::from("/etc/sccm/audit-signing.pem"))
        );
        match parse(&format!("{GOOD}\n[audit]\nsigning_key = ''\n")) {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "audit.signing_key"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&format!("{GOOD}\n[audit]\nkey = 'x'\n")),
            Err(ConfigError::Syntax { .. })
        ));
        // Read alone, from a file that would not start the connector.
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[storage]\njournal = 'j'\n[audit]\nsigning_key = 'k.pem'\n",
        )
        .expect("written");
        assert_eq!(
            AuditConfig::from_file(&path).expect("read").signing_key,
            Some(PathBuf::from("k.pem"))
        );
        std::fs::write(&path, "[storage]\njournal = 'j'\n").expect("written");
        assert_eq!(
            AuditConfig::from_file(&path).expect("read"),
            AuditConfig::default()
        );
        std::fs::write(&path, "[audit]\nsigning = 'k.pem'\n").expect("written");
        assert!(AuditConfig::from_file(&path).is_err());
    }

    #[test]
    fn environment_overrides_secrets() {
        let c = Config::parse(GOOD, Path::new("x"), |name| {
            (name == "SCCM_CONNECTOR_REMOTE_ID").then(|| "from-env".to_string())
        })
        .expect("valid");
        assert_eq!(c.portal.remote_id, "from-env");
        assert!(
            parse(&GOOD.replace("https://portal.example.com", "http://127.0.0.1:8080")).is_ok()
        );
    }
}
