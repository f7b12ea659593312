//! SDMPackageXML for a simulated application, in the real AppMgmtDigest shape: the
//! `utf-16` declaration, the AppMgmtDigest default namespace, the `Application` element (display
//! info per language, deployment-type references, titled texts with `Res_` resource ids, owners,
//! contacts) followed by one full `DeploymentType` element per deployment type (installer,
//! content with files and location, detection script, install/uninstall actions, custom data).
//! Compare `tests/fixtures/sdm/filezilla.xml`; `crate::sdm::parse` reads it back.

use super::config::SiteConfig;
use super::state::{Application, DeploymentType};
use std::fmt::Write as _;

const NS: &str = "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";

/// Escapes element text (CR as a character reference, so XML's end-of-line handling keeps it).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (whitespace controls as references, so normalisation keeps them).
fn attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\n' => out.push_str("&#xA;"),
            '\t' => out.push_str("&#x9;"),
            c => out.push(c),
        }
    }
    out
}

/// `<Name ResourceId="…">text</Name>` or `<Name ResourceId="…"/>`.
fn titled(out: &mut String, name: &str, resource: &str, value: Option<&str>) {
    match value {
        Some(v) if !v.is_empty() => {
            let _ = write!(
                out,
                "<{name} ResourceId=\"{}\">{}</{name}>",
                attr(resource),
                text(v)
            );
        }
        _ => {
            let _ = write!(out, "<{name} ResourceId=\"{}\"/>", attr(resource));
        }
    }
}

fn element(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        let _ = write!(out, "<{name}/>");
    } else {
        let _ = write!(out, "<{name}>{}</{name}>", text(value));
    }
}

fn arg(out: &mut String, name: &str, kind: &str, value: &str) {
    if value.is_empty() {
        let _ = write!(out, "<Arg Name=\"{name}\" Type=\"{kind}\"/>");
    } else {
        let _ = write!(
            out,
            "<Arg Name=\"{name}\" Type=\"{kind}\">{}</Arg>",
            text(value)
        );
    }
}

fn script_type(language: &str) -> &'static str {
    match language {
        "VBScript" => "1",
        "JavaScript" => "2",
        _ => "0",
    }
}

fn deployment_type(out: &mut String, scope: &str, dt: &DeploymentType) {
    let _ = write!(
        out,
        "<DeploymentType AuthoringScopeId=\"{}\" LogicalName=\"{}\" Version=\"{}\">",
        attr(scope),
        attr(&dt.logical_name),
        dt.revision
    );
    titled(out, "Title", &dt.title_resource, Some(&dt.name));
    if let Some(comment) = &dt.comment {
        element(out, "Description", comment);
    }
    element(
        out,
        "DeploymentTechnology",
        "GLOBAL/ScriptDeploymentTechnology",
    );
    element(out, "Technology", &dt.technology);
    element(out, "Hosting", "Native");
    out.push_str("<Installer Technology=\"Script\">");
    let context = if dt.installation_behavior == "InstallForUser" {
        "User"
    } else {
        "System"
    };
    element(out, "ExecutionContext", context);
    if let Some(content) = &dt.content {
        out.push_str("<Contents>");
        let _ = write!(
            out,
            "<Content ContentId=\"{}\" Version=\"1\">",
            attr(&content.content_id)
        );
        for file in &content.files {
            let _ = write!(
                out,
                "<File Name=\"{}\" Size=\"{}\"/>",
                attr(&file.name),
                file.size
            );
        }
        let mut location = content.location.clone();
        if !location.ends_with('\\') {
            location.push('\\');
        }
        element(out, "Location", &location);
        element(out, "PeerCache", "true");
        element(out, "OnFastNetwork", "Download");
        element(out, "OnSlowNetwork", &dt.slow_network);
        if dt.cache_content {
            element(out, "PinOnClient", "true");
        }
        out.push_str("</Content></Contents>");
    }
    out.push_str("<DetectAction><Provider>Script</Provider><Args>");
    arg(out, "ExecutionContext", "String", context);
    arg(out, "ScriptType", "Int32", script_type(&dt.script_language));
    arg(out, "ScriptBody", "String", &dt.detection_script);
    arg(
        out,
        "RunAs32Bit",
        "Boolean",
        if dt.detection_run_as_32bit {
            "true"
        } else {
            "false"
        },
    );
    out.push_str("</Args></DetectAction>");
    let bool_text = |b: bool| if b { "true" } else { "false" };
    out.push_str("<InstallAction><Provider>Script</Provider><Args>");
    arg(out, "InstallCommandLine", "String", &dt.install_command);
    arg(
        out,
        "WorkingDirectory",
        "String",
        dt.install_working_directory.as_deref().unwrap_or(""),
    );
    arg(out, "ExecutionContext", "String", context);
    arg(out, "RequiresLogOn", "String", "");
    arg(out, "RequiresElevatedRights", "Boolean", "false");
    arg(
        out,
        "RequiresUserInteraction",
        "Boolean",
        bool_text(dt.require_user_interaction),
    );
    arg(out, "RequiresReboot", "Boolean", "false");
    arg(
        out,
        "UserInteractionMode",
        "String",
        &dt.user_interaction_mode,
    );
    arg(out, "PostInstallBehavior", "String", &dt.reboot_behavior);
    arg(
        out,
        "ExecuteTime",
        "Int32",
        &dt.estimated_runtime_minutes.to_string(),
    );
    arg(
        out,
        "MaxExecuteTime",
        "Int32",
        &dt.max_runtime_minutes.to_string(),
    );
    arg(out, "RunAs32Bit", "Boolean", bool_text(dt.run_as_32bit));
    out.push_str(
        "<Arg Name=\"SuccessExitCodes\" Type=\"Int32[]\"><Item>0</Item><Item>1707</Item></Arg>\
         <Arg Name=\"RebootExitCodes\" Type=\"Int32[]\"><Item>3010</Item></Arg>\
         <Arg Name=\"HardRebootExitCodes\" Type=\"Int32[]\"><Item>1641</Item></Arg>\
         <Arg Name=\"FastRetryExitCodes\" Type=\"Int32[]\"><Item>1618</Item></Arg>",
    );
    out.push_str("</Args></InstallAction>");
    if let Some(uninstall) = &dt.uninstall_command {
        out.push_str("<UninstallAction><Provider>Script</Provider><Args>");
        arg(out, "InstallCommandLine", "String", uninstall);
        arg(
            out,
            "WorkingDirectory",
            "String",
            dt.uninstall_working_directory.as_deref().unwrap_or(""),
        );
        arg(out, "ExecutionContext", "String", context);
        out.push_str("</Args></UninstallAction>");
    }
    out.push_str("<CustomData>");
    element(out, "DetectionMethod", "Script");
    let _ = write!(
        out,
        "<DetectionScript Language=\"{}\">{}</DetectionScript>",
        attr(&dt.script_language),
        text(&dt.detection_script)
    );
    element(out, "InstallCommandLine", &dt.install_command);
    if let Some(uninstall) = &dt.uninstall_command {
        element(out, "UninstallCommandLine", uninstall);
    }
    if let Some(repair) = &dt.repair_command {
        element(out, "RepairCommandLine", repair);
    }
    if let Some(folder) = &dt.install_working_directory {
        element(out, "InstallFolder", folder);
    }
    if let Some(folder) = &dt.uninstall_working_directory {
        element(out, "UninstallFolder", folder);
    }
    element(out, "UninstallSetting", &dt.uninstall_option);
    if let Some(content) = &dt.content {
        let _ = write!(
            out,
            "<InstallContent ContentId=\"{}\" Version=\"1\"/>",
            attr(&content.content_id)
        );
    }
    element(
        out,
        "ExecuteTime",
        &dt.estimated_runtime_minutes.to_string(),
    );
    element(out, "MaxExecuteTime", &dt.max_runtime_minutes.to_string());
    out.push_str(
        "<ExitCodes><ExitCode Code=\"0\" Class=\"Success\"/><ExitCode Code=\"1707\" Class=\"Success\"/>\
         <ExitCode Code=\"3010\" Class=\"SoftReboot\"/><ExitCode Code=\"1641\" Class=\"HardReboot\"/>\
         <ExitCode Code=\"1618\" Class=\"FastRetry\"/></ExitCodes>",
    );
    element(out, "UserInteractionMode", &dt.user_interaction_mode);
    out.push_str("</CustomData></Installer></DeploymentType>");
}

/// The application's SDMPackageXML.
pub fn package_xml(config: &SiteConfig, app: &Application) -> String {
    let scope = config.scope_id();
    let logical = app
        .model_name
        .rsplit('/')
        .next()
        .unwrap_or(&app.model_name)
        .to_string();
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-16\"?><AppMgmtDigest xmlns=\"{NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
    );
    let _ = write!(
        out,
        "<Application AuthoringScopeId=\"{}\" LogicalName=\"{}\" Version=\"{}\">",
        attr(&scope),
        attr(&logical),
        app.revision
    );
    let _ = write!(
        out,
        "<DisplayInfo DefaultLanguage=\"{}\"><Info Language=\"{}\">",
        attr(&app.culture),
        attr(&app.culture)
    );
    element(
        &mut out,
        "Title",
        app.localized_name.as_deref().unwrap_or(&app.name),
    );
    if let Some(description) = &app.localized_description {
        element(&mut out, "Description", description);
    }
    if let Some(publisher) = &app.publisher {
        element(&mut out, "Publisher", publisher);
    }
    if let Some(version) = &app.software_version {
        element(&mut out, "Version", version);
    }
    if let Some(date) = &app.release_date {
        element(&mut out, "ReleaseDate", date);
    }
    if let Some(url) = &app.user_documentation {
        element(&mut out, "InfoUrl", url);
    }
    if let Some(link) = &app.link_text {
        element(&mut out, "InfoUrlText", link);
    }
    if let Some(url) = &app.privacy_url {
        element(&mut out, "PrivacyUrl", url);
    }
    if let Some(keywords) = &app.keywords {
        out.push_str("<Tags>");
        element(&mut out, "Tag", keywords);
        out.push_str("</Tags>");
    }
    out.push_str("</Info></DisplayInfo>");
    if !app.deployment_types.is_empty() {
        out.push_str("<DeploymentTypes>");
        for dt in &app.deployment_types {
            let _ = write!(
                out,
                "<DeploymentType AuthoringScopeId=\"{}\" LogicalName=\"{}\" Version=\"{}\"/>",
                attr(&scope),
                attr(&dt.logical_name),
                dt.revision
            );
        }
        out.push_str("</DeploymentTypes>");
    }
    titled(&mut out, "Title", &app.resources.title, Some(&app.name));
    titled(
        &mut out,
        "Description",
        &app.resources.description,
        app.description.as_deref(),
    );
    titled(
        &mut out,
        "Publisher",
        &app.resources.publisher,
        app.publisher.as_deref(),
    );
    titled(
        &mut out,
        "SoftwareVersion",
        &app.resources.software_version,
        app.software_version.as_deref(),
    );
    titled(
        &mut out,
        "CustomId",
        &app.resources.custom_id,
        app.optional_reference.as_deref(),
    );
    for (element_name, people) in [("Owners", &app.owners), ("Contacts", &app.support_contacts)] {
        if !people.is_empty() {
            let _ = write!(out, "<{element_name}>");
            for person in people {
                let _ = write!(
                    out,
                    "<User Qualifier=\"LogonName\" Id=\"{}\"/>",
                    attr(person)
                );
            }
            let _ = write!(out, "</{element_name}>");
        }
    }
    element(
        &mut out,
        "AutoInstall",
        if app.auto_install { "true" } else { "false" },
    );
    if app.is_featured {
        element(&mut out, "Featured", "true");
    }
    out.push_str("</Application>");
    for dt in &app.deployment_types {
        deployment_type(&mut out, &scope, dt);
    }
    out.push_str("</AppMgmtDigest>");
    out
}
