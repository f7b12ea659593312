//! SDMPackageXML (the AppMgmtDigest) → what an import reports about an application.
//!
//! Parsed with a real XML parser, by namespace: the default namespace is
//! `http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest`, so plain
//! element-name lookups would find nothing. The document declares `encoding="utf-16"` even when
//! it arrives as UTF-8 JSON text; the parser works on the decoded text and ignores the
//! declaration. Field map (see `configmgr-cmdlets.md` §3.2):
//!
//! | field | element |
//! |---|---|
//! | `package_name`, `resource_id` | `Application/Title` (text, `@ResourceId`) |
//! | `name` | `Application/DisplayInfo/Info[@Language = DefaultLanguage]/Title` |
//! | `vendor` | `Application/Publisher` (fallback `Info/Publisher`) |
//! | `version` | `Application/SoftwareVersion` (fallback `Info/Version`) |
//! | `language` | `Application/DisplayInfo/@DefaultLanguage` |
//! | deployment types | each top-level `DeploymentType`: `Title`, `Technology`, `Installer/Contents/Content/Location`, `CustomData/…` |

use crate::command::language;
use roxmltree::{Document, Node};
use serde::Serialize;

const NS: &str = "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";

/// One application's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppMetadata {
    /// The application's name in the console.
    pub package_name: String,
    /// The resource id of the application's title, e.g. `Res_810274514`.
    pub resource_id: Option<String>,
    /// The name users see in Software Center.
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub version: Option<String>,
    /// The default language as the portal spells it (`English(United States)`), or the culture
    /// name when the connector has no display name for it.
    pub language: Option<String>,
    pub deployment_types: Vec<DeploymentTypeMetadata>,
}

impl AppMetadata {
    /// The first deployment type's content location: the folder an import uploads.
    pub fn content_location(&self) -> Option<&str> {
        self.deployment_types
            .iter()
            .find_map(|dt| dt.content_location.as_deref())
    }
}

/// One deployment type's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentTypeMetadata {
    pub name: Option<String>,
    /// `Script`, `MSI`, …
    pub technology: Option<String>,
    pub content_location: Option<String>,
    pub install_command: Option<String>,
    pub uninstall_command: Option<String>,
    pub detection_method: Option<String>,
    pub detection_script: Option<String>,
}

/// Why an SDMPackageXML could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdmError {
    #[error("SDMPackageXML is not well-formed XML: {0}")]
    Xml(String),
    #[error("SDMPackageXML has no {0} element (is it an AppMgmtDigest?)")]
    Missing(&'static str),
}

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Option<Node<'a, 'a>> {
    node.children().find(|c| c.has_tag_name((NS, name)))
}

fn path<'a>(node: Node<'a, 'a>, names: &[&str]) -> Option<Node<'a, 'a>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

fn text(node: Option<Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The portal's spelling of a language: `English(United States)`.
fn portal_language(culture: &str) -> String {
    match language::lookup(culture) {
        Some(l) => l.display.replace(" (", "("),
        None => culture.to_string(),
    }
}

/// Reads an SDMPackageXML document.
pub fn parse(xml: &str) -> Result<AppMetadata, SdmError> {
    let xml = xml.trim_start_matches('\u{FEFF}');
    let doc = Document::parse(xml).map_err(|e| SdmError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS, "AppMgmtDigest")) {
        return Err(SdmError::Missing("AppMgmtDigest"));
    }
    let app = child(root, "Application").ok_or(SdmError::Missing("Application"))?;
    let title = child(app, "Title").ok_or(SdmError::Missing("Application/Title"))?;
    let package_name = text(Some(title)).ok_or(SdmError::Missing("Application/Title text"))?;
    let display = child(app, "DisplayInfo");
    let default_language = display
        .and_then(|d| d.attribute("DefaultLanguage"))
        .map(str::to_string);
    let info = display.and_then(|d| {
        let infos = d.children().filter(|c| c.has_tag_name((NS, "Info")));
        let mut infos: Vec<Node<'_, '_>> = infos.collect();
        let preferred = infos
            .iter()
            .position(|i| i.attribute("Language") == default_language.as_deref());
        preferred
            .map(|p| infos.swap_remove(p))
            .or_else(|| infos.into_iter().next())
    });
    let deployment_types = root
        .children()
        .filter(|c| c.has_tag_name((NS, "DeploymentType")))
        .map(|dt| {
            let installer = child(dt, "Installer");
            let custom = installer.and_then(|i| child(i, "CustomData"));
            DeploymentTypeMetadata {
                name: text(child(dt, "Title")),
                technology: text(child(dt, "Technology")),
                content_location: text(
                    installer.and_then(|i| path(i, &["Contents", "Content", "Location"])),
                ),
                install_command: text(custom.and_then(|c| child(c, "InstallCommandLine"))),
                uninstall_command: text(custom.and_then(|c| child(c, "UninstallCommandLine"))),
                detection_method: text(custom.and_then(|c| child(c, "DetectionMethod"))),
                detection_script: text(custom.and_then(|c| child(c, "DetectionScript"))),
            }
        })
        .collect();
    Ok(AppMetadata {
        package_name,
        resource_id: title.attribute("ResourceId").map(str::to_string),
        name: text(info.and_then(|i| child(i, "Title"))),
        vendor: text(child(app, "Publisher"))
            .or_else(|| text(info.and_then(|i| child(i, "Publisher")))),
        version: text(child(app, "SoftwareVersion"))
            .or_else(|| text(info.and_then(|i| child(i, "Version")))),
        language: default_language.as_deref().map(portal_language),
        deployment_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILEZILLA: &str = include_str!("../tests/fixtures/sdm/filezilla.xml");

    #[test]
    fn the_filezilla_digest_reads_into_the_seed_fields() {
        let meta = parse(FILEZILLA).expect("parses");
        assert_eq!(
            meta.package_name,
            "TimKosse_FileZilla_3.46.3_English(United States)"
        );
        assert_eq!(meta.resource_id.as_deref(), Some("Res_810274514"));
        assert_eq!(meta.name.as_deref(), Some("FileZilla"));
        assert_eq!(meta.vendor.as_deref(), Some("Tim Kosse"));
        assert_eq!(meta.version.as_deref(), Some("3.46.3"));
        assert_eq!(meta.language.as_deref(), Some("English(United States)"));
        assert_eq!(
            meta.content_location(),
            Some(
                "\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming\\TimKosse_FileZilla_3.46.3_English(United States)\\"
            )
        );
        let dt = &meta.deployment_types[0];
        assert_eq!(
            dt.name.as_deref(),
            Some("TimKosse_FileZilla_3.46.3_English(United States)_DT")
        );
        assert_eq!(dt.technology.as_deref(), Some("Script"));
        assert_eq!(
            dt.install_command.as_deref(),
            Some("Deploy-Application.exe -DeploymentType Install")
        );
        assert_eq!(dt.detection_method.as_deref(), Some("Script"));
        assert!(
            dt.detection_script
                .as_deref()
                .is_some_and(|s| s.contains("IsInstalled -eq 1"))
        );
    }

    #[test]
    fn elements_outside_the_namespace_are_not_mistaken_for_ours() {
        let foreign = FILEZILLA.replace(
            "xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\"",
            "xmlns=\"urn:other\"",
        );
        assert_eq!(parse(&foreign), Err(SdmError::Missing("AppMgmtDigest")));
    }

    #[test]
    fn escaped_text_is_decoded_and_a_bom_tolerated() {
        let xml = format!(
            "\u{FEFF}{}",
            FILEZILLA.replace(">FileZilla</Title>", ">File &amp; Zilla &lt;x&gt;</Title>")
        );
        assert_eq!(
            parse(&xml).expect("parses").name.as_deref(),
            Some("File & Zilla <x>")
        );
    }

    #[test]
    fn broken_documents_are_errors_not_panics() {
        assert!(matches!(parse(""), Err(SdmError::Xml(_))));
        assert!(matches!(parse("<AppMgmtDigest"), Err(SdmError::Xml(_))));
        assert_eq!(
            parse(
                "<AppMgmtDigest xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\"/>"
            ),
            Err(SdmError::Missing("Application"))
        );
        assert!(matches!(parse(&FILEZILLA[..2000]), Err(SdmError::Xml(_))));
    }
}
