//! The simulated site's configuration (`site.json` in the site directory): what exists on the
//! site before any script runs — its code and GUID, the SMS Provider, distribution point groups,
//! collections, the share map that makes UNC content locations local directories, and how the
//! site behaves (polls until distribution completes, module import delay).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A distribution point group and how many distribution points it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpGroup {
    pub name: String,
    /// `{GUID}` as `SMS_DistributionPointGroup.GroupID`.
    pub group_id: String,
    pub dp_count: u32,
    /// How many of the group's DPs fail every distribution to them: after the site's
    /// `distribution_polls` they report errors (`NumberErrors`) instead of success. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failing_dps: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A device collection deployments can target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    pub name: String,
    /// `<SITECODE>` + 5 hex digits.
    pub collection_id: String,
}

/// One share: UNC prefix → local directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// `\\SERVER\Share$` (matched case-insensitively, as Windows does).
    pub unc: String,
    /// The directory that stands for the share's root.
    pub local: PathBuf,
}

/// `site.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Three characters, e.g. `DEM`; also the CMSite drive's name.
    pub site_code: String,
    pub site_name: String,
    /// Upper-case GUID without braces; applications' authoring scope is `ScopeId_<this>`.
    pub site_guid: String,
    /// The SMS Provider the site drive and CIM queries must name.
    pub provider_machine: String,
    /// `$env:COMPUTERNAME` of the console machine the host pretends to run on.
    pub computer_name: String,
    /// The console's `bin` folder: `Import-Module` accepts `<this>\ConfigurationManager.psd1`.
    pub console_path: String,
    /// The administrator the cmdlets run as (`CreatedBy`, default owner).
    pub user: String,
    pub distribution_point_groups: Vec<DpGroup>,
    pub collections: Vec<Collection>,
    pub shares: Vec<Share>,
    /// `Get-CMDistributionStatus` polls of a package until every targeted DP reports success.
    pub distribution_polls: u32,
    /// Default for `--import-delay-ms`: how long `Import-Module ConfigurationManager` takes.
    pub import_delay_ms: u64,
    /// Whether importing the module creates the site drive itself (as the real module does for
    /// the console's site). Default false, so scripts exercise `New-PSDrive`.
    pub module_creates_drive: bool,
}

/// Options of `sim site init`, all with defaults.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub site_code: Option<String>,
    pub site_name: Option<String>,
    pub site_guid: Option<String>,
    pub provider_machine: Option<String>,
    pub computer_name: Option<String>,
    pub console_path: Option<String>,
    pub user: Option<String>,
    /// `NAME=DPCOUNT`
    pub dp_groups: Vec<(String, u32)>,
    pub collections: Vec<String>,
    /// `(UNC, local directory)`
    pub shares: Vec<(String, PathBuf)>,
    pub distribution_polls: Option<u32>,
    pub import_delay_ms: Option<u64>,
    pub module_creates_drive: bool,
}

/// The default console folder (as in the seed's commands).
pub const DEFAULT_CONSOLE_PATH: &str =
    "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin";

/// Why a configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("site configuration: {0}")]
pub struct ConfigError(pub String);

impl SiteConfig {
    /// The configuration `init` writes for `dir` with `options`.
    pub fn from_options(dir: &Path, options: &InitOptions) -> Result<SiteConfig, ConfigError> {
        let site_code = options.site_code.clone().unwrap_or_else(|| "DEM".into());
        let provider_machine = options
            .provider_machine
            .clone()
            .unwrap_or_else(|| "CM01".into());
        let dp_groups = if options.dp_groups.is_empty() {
            vec![("Demo Distribution Group".to_string(), 2)]
        } else {
            options.dp_groups.clone()
        };
        let collections = if options.collections.is_empty() {
            vec!["Demo devices".to_string()]
        } else {
            options.collections.clone()
        };
        let shares = if options.shares.is_empty() {
            vec![Share {
                unc: format!("\\\\{provider_machine}\\Sources$"),
                local: dir.join("shares").join("Sources"),
            }]
        } else {
            options
                .shares
                .iter()
                .map(|(unc, local)| Share {
                    unc: unc.clone(),
                    local: local.clone(),
                })
                .collect()
        };
        let config = SiteConfig {
            site_name: options
                .site_name
                .clone()
                .unwrap_or_else(|| format!("{site_code} simulated site")),
            site_guid: options
                .site_guid
                .clone()
                .map(|g| g.trim_matches(['{', '}']).to_uppercase())
                .unwrap_or_else(super::clock::guid_upper),
            computer_name: options
                .computer_name
                .clone()
                .unwrap_or_else(|| provider_machine.clone()),
            provider_machine,
            console_path: options
                .console_path
                .clone()
                .unwrap_or_else(|| DEFAULT_CONSOLE_PATH.into()),
            user: options
                .user
                .clone()
                .unwrap_or_else(|| "CONTOSO\\cmadmin".into()),
            distribution_point_groups: dp_groups
                .into_iter()
                .map(|(name, dp_count)| DpGroup {
                    name,
                    group_id: super::clock::guid_braced(),
                    dp_count,
                    failing_dps: 0,
                })
                .collect(),
            collections: collections
                .into_iter()
                .enumerate()
                .map(|(i, name)| Collection {
                    name,
                    collection_id: format!("{site_code}{:05X}", 0x14 + i),
                })
                .collect(),
            site_code,
            shares,
            distribution_polls: options.distribution_polls.unwrap_or(3),
            import_delay_ms: options.import_delay_ms.unwrap_or(0),
            module_creates_drive: options.module_creates_drive,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the simulator relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.site_code.len() != 3 || !self.site_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad(format!(
                "site code {:?} must be three letters or digits",
                self.site_code
            ));
        }
        if uuid::Uuid::parse_str(&self.site_guid).is_err() {
            return bad(format!("site GUID {:?} is not a GUID", self.site_guid));
        }
        if self.provider_machine.is_empty() || self.computer_name.is_empty() {
            return bad("the provider and computer names must not be empty".into());
        }
        if self.distribution_polls == 0 {
            return bad("distribution_polls must be at least 1".into());
        }
        if let Some(g) = self
            .distribution_point_groups
            .iter()
            .find(|g| g.failing_dps > g.dp_count)
        {
            return bad(format!(
                "distribution point group {:?} has {} failing DPs but only {} DPs",
                g.name, g.failing_dps, g.dp_count
            ));
        }
        for share in &self.shares {
            let ok = share.unc.starts_with("\\\\")
                && share.unc[2..]
                    .trim_end_matches('\\')
                    .split('\\')
                    .filter(|s| !s.is_empty())
                    .count()
                    == 2;
            if !ok {
                return bad(format!(
                    "share {:?} must be \\\\SERVER\\Share (a server and a share name)",
                    share.unc
                ));
            }
        }
        let mut names: Vec<String> = self
            .distribution_point_groups
            .iter()
            .map(|g| g.name.to_lowercase())
            .collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return bad("two distribution point groups have the same name".into());
        }
        Ok(())
    }

    /// The package-id prefix's first free number after the configured collection ids.
    pub fn first_package_number(&self) -> u32 {
        self.collections
            .iter()
            .filter_map(|c| c.collection_id.strip_prefix(&self.site_code))
            .filter_map(|hex| u32::from_str_radix(hex, 16).ok())
            .max()
            .unwrap_or(0x13)
            .max(0xFF)
            + 1
    }

    /// `ScopeId_<SITE GUID>`.
    pub fn scope_id(&self) -> String {
        format!("ScopeId_{}", self.site_guid)
    }

    pub fn dp_group(&self, name: &str) -> Option<&DpGroup> {
        self.distribution_point_groups
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    pub fn collection_by_name(&self, name: &str) -> Option<&Collection> {
        self.collections
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn collection_by_id(&self, id: &str) -> Option<&Collection> {
        self.collections
            .iter()
            .find(|c| c.collection_id.eq_ignore_ascii_case(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_demo_site() {
        let config =
            SiteConfig::from_options(Path::new("/site"), &InitOptions::default()).expect("valid");
        assert_eq!(config.site_code, "DEM");
        assert_eq!(
            config.distribution_point_groups[0].name,
            "Demo Distribution Group"
        );
        assert_eq!(config.distribution_point_groups[0].dp_count, 2);
        assert_eq!(config.collections[0].name, "Demo devices");
        assert_eq!(config.collections[0].collection_id, "DEM00014");
        assert_eq!(config.shares[0].unc, "\\\\CM01\\Sources$");
        assert_eq!(config.first_package_number(), 0x100);
        assert!(config.scope_id().starts_with("ScopeId_"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut options = InitOptions {
            site_code: Some("DEMO".into()),
            ..InitOptions::default()
        };
        assert!(SiteConfig::from_options(Path::new("/s"), &options).is_err());
        options.site_code = None;
        options.shares = vec![("\\\\only-server".into(), "/x".into())];
        assert!(SiteConfig::from_options(Path::new("/s"), &options).is_err());
        options.shares.clear();
        options.distribution_polls = Some(0);
        assert!(SiteConfig::from_options(Path::new("/s"), &options).is_err());
    }
}
