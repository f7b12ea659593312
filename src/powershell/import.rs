//! The PowerShell steps of an import. They only read.
//!
//! - `list-folders`: application folders (`SMS_ObjectContainerNode`, ObjectType 6000);
//! - `list-applications`: applications (`SMS_ApplicationLatest`) and their folder memberships
//!   (`SMS_ObjectContainerItem`, ObjectType 6000; root-folder applications have none);
//! - `read-metadata`: one application's SDMPackageXML, fetched by CI_ID **without** `-Fast`
//!   (it is a lazy property) and with `-ShowHidden` (the WMI listing includes hidden applications,
//!   which `Get-CMApplication` returns only with it since ConfigMgr 1802), parsed in Rust.
//!
//! WMI filters are fixed text (`ObjectType=6000`); no query is ever built from a value.

use super::push::{SiteAccess, connect};
use super::script::{InputError, Script, ScriptBuilder};
use crate::command::Import;

fn start(step: &str, import: &Import, access: &SiteAccess) -> Result<ScriptBuilder, InputError> {
    let mut b = ScriptBuilder::new(step);
    b.input("CommandId", &import.id)?;
    connect(
        &mut b,
        &import.site.site_code,
        &import.site.console_path,
        access,
    )?;
    b.line("$namespace = 'root\\SMS\\site_' + $SiteCode");
    Ok(b)
}

/// `list-folders`.
pub fn list_folders(import: &Import, access: &SiteAccess) -> Result<Script, InputError> {
    let mut b = start("list-folders", import, access)?;
    b.line("$folders = @(Get-CimInstance -ComputerName $ProviderMachine -Namespace $namespace -ClassName 'SMS_ObjectContainerNode' -Filter 'ObjectType=6000' | Select-Object -Property ContainerNodeID, Name, ParentContainerNodeID)")
        .line("$result = @{ ok = $true; folders = $folders }");
    Ok(b.finish())
}

/// `list-applications`.
pub fn list_applications(import: &Import, access: &SiteAccess) -> Result<Script, InputError> {
    let mut b = start("list-applications", import, access)?;
    b.line("$applications = @(Get-CimInstance -ComputerName $ProviderMachine -Namespace $namespace -ClassName 'SMS_ApplicationLatest' | Select-Object -Property CI_ID, ModelName, LocalizedDisplayName, SoftwareVersion, Manufacturer)")
        .line("$memberships = @(Get-CimInstance -ComputerName $ProviderMachine -Namespace $namespace -ClassName 'SMS_ObjectContainerItem' -Filter 'ObjectType=6000' | Select-Object -Property InstanceKey, ContainerNodeID)")
        .line("$result = @{ ok = $true; applications = $applications; memberships = $memberships }");
    Ok(b.finish())
}

/// The CI_ID `sccm-connector plan` renders `read-metadata` with: plan runs nothing, so the real
/// id, which the `list-applications` step finds when the import runs, is not known.
pub const PLAN_PLACEHOLDER_CI_ID: u32 = 0;

/// `read-metadata` for the application `name` whose CI_ID is `ci_id`.
pub fn read_metadata(
    import: &Import,
    access: &SiteAccess,
    name: &str,
    ci_id: u32,
) -> Result<Script, InputError> {
    metadata_script(import, access, name, ci_id, false)
}

/// `read-metadata` as `sccm-connector plan` shows it: the CI_ID is
/// [`PLAN_PLACEHOLDER_CI_ID`], and a comment in the script says so.
pub fn read_metadata_for_plan(
    import: &Import,
    access: &SiteAccess,
    name: &str,
) -> Result<Script, InputError> {
    metadata_script(import, access, name, PLAN_PLACEHOLDER_CI_ID, true)
}

fn metadata_script(
    import: &Import,
    access: &SiteAccess,
    name: &str,
    ci_id: u32,
    placeholder: bool,
) -> Result<Script, InputError> {
    let mut b = start("read-metadata", import, access)?;
    b.input("ApplicationName", name)?;
    if placeholder {
        b.comment(
            "PLACEHOLDER (sccm-connector plan): -Id 0 below is not a real CI_ID. When the import",
        )
        .comment("runs, the id is the one the list-applications step finds for ApplicationName;")
        .comment("plan runs nothing, so it cannot know it.");
    }
    b.comment("Without -Fast: SDMPackageXML is a lazy property.")
        .line(&format!("$app = Get-CMApplication -Id {ci_id} -ShowHidden"))
        .open("if ($null -eq $app)")
        .line("throw 'The application does not exist.'")
        .close()
        .line("$result = @{ ok = $true; name = $ApplicationName; ci_id = $app.CI_ID; model_name = $app.ModelName; sdm_package_xml = $app.SDMPackageXML }");
    Ok(b.finish())
}
