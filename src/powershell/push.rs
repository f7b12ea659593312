//! The guarded PowerShell steps of a push. Each checks before it acts, so running it twice — after
//! a crash — has the effect of running it once.
//!
//! | step | check | act |
//! |---|---|---|
//! | `ensure-application` | `Get-CMApplication -Name … -Fast -DisableWildcardHandling -ShowHidden` | `New-CMApplication` |
//! | `ensure-deployment-type` | `Get-CMDeploymentType -ApplicationName … -DeploymentTypeName …` | `Add-CMScriptDeploymentType` |
//! | `ensure-distribution` | an `SMS_DPGroupContentInfo` row for the group and the app's package | `Start-CMContentDistribution` |
//! | `wait-distribution` | `Get-CMDistributionStatus`: done when every targeted DP succeeded; fails when DPs report errors and none is in progress or unknown | (polls) |
//! | `ensure-deployment` | `Get-CMApplicationDeployment -Name … -CollectionName …` | `New-CMApplicationDeployment` |
//! | `ensure-folder` | `Get-CMFolder` per level; `SMS_ObjectContainerItem` membership | `New-CMFolder`, `Move-CMObject` |
//!
//! Every application lookup passes `-ShowHidden`: since ConfigMgr 1802 hidden applications are
//! not returned without it, so a hidden application with the same name would slip past the
//! "already exists?" check (and `New-CMApplication` would then refuse the name).

use super::script::{InputError, Script, ScriptBuilder};
use crate::command::{DeployAction, DeployPurpose, Push, ScriptLanguage, SlowNetwork, TimeBase};

/// Where and how scripts reach the site, beyond what the command says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteAccess {
    /// The SMS Provider to create the site drive against; `None` uses `$env:COMPUTERNAME`.
    /// When the site drive exists already (the module creates it for the console's site), its
    /// `Root` — the SMS Provider it is connected to — is used instead, for the CIM queries too.
    pub provider_machine: Option<String>,
}

/// Binds the site inputs and writes the connection preamble: import the module from the
/// console's folder (once per session), create the `CMSite` drive if missing — or, if it exists,
/// take the SMS Provider from its `Root` — and go to it.
pub(crate) fn connect(
    b: &mut ScriptBuilder,
    site_code: &str,
    console_path: &str,
    access: &SiteAccess,
) -> Result<(), InputError> {
    b.input("SiteCode", site_code)?
        .input("ConsolePath", console_path)?;
    if let Some(provider) = &access.provider_machine {
        b.input("ProviderMachine", provider)?;
    }
    b.comment("Connect to the site: the module, the site drive, the site drive as location.");
    if access.provider_machine.is_none() {
        b.line("$ProviderMachine = $env:COMPUTERNAME");
    }
    b.open("if (-not (Get-Module -Name 'ConfigurationManager'))")
        .line("Import-Module -Name (Join-Path -Path $ConsolePath -ChildPath 'ConfigurationManager.psd1')")
        .close()
        .line("$siteDrive = Get-PSDrive -Name $SiteCode -PSProvider 'CMSite' -ErrorAction 'SilentlyContinue'")
        .open("if ($null -eq $siteDrive)")
        .line("New-PSDrive -Name $SiteCode -PSProvider 'CMSite' -Root $ProviderMachine -Scope 'Global' | Out-Null")
        .reopen("else")
        .comment("The drive exists (the module creates it for the console's site): its Root is the SMS Provider.")
        .line("$ProviderMachine = $siteDrive.Root")
        .close()
        .line("Set-Location -Path ($SiteCode + ':')")
        .line("");
    Ok(())
}

fn start(step: &str, push: &Push, access: &SiteAccess) -> Result<ScriptBuilder, InputError> {
    let mut b = ScriptBuilder::new(step);
    b.input("CommandId", &push.id)?;
    connect(
        &mut b,
        &push.site.site_code,
        &push.site.console_path,
        access,
    )?;
    Ok(b)
}

fn bool_literal(value: bool) -> &'static str {
    if value { "$true" } else { "$false" }
}

/// `ensure-application`: the application, created once.
pub fn ensure_application(push: &Push, access: &SiteAccess) -> Result<Script, InputError> {
    let app = &push.application;
    let mut b = start("ensure-application", push, access)?;
    b.input("ApplicationName", &app.name)?
        .input("LocalizedName", &app.localized_name)?
        .input("Publisher", &app.publisher)?
        .input("SoftwareVersion", &app.version)?;
    let mut create = format!(
        "$app = New-CMApplication -Name $ApplicationName -LocalizedName $LocalizedName -Publisher $Publisher -SoftwareVersion $SoftwareVersion -DefaultLanguageId {} -AutoInstall {}",
        app.language.lcid,
        bool_literal(app.auto_install)
    );
    for (variable, parameter, value) in [
        ("Owner", "-Owner", &app.owner),
        ("Description", "-Description", &app.description),
        (
            "OptionalReference",
            "-OptionalReference",
            &app.optional_reference,
        ),
    ] {
        if let Some(value) = value {
            b.input(variable, value)?;
            create.push_str(&format!(" {parameter} ${variable}"));
        }
    }
    b.comment("Check first: the application exists already after an earlier, interrupted run.")
        .line("$app = Get-CMApplication -Name $ApplicationName -Fast -DisableWildcardHandling -ShowHidden")
        .line("$created = $false")
        .open("if ($null -eq $app)")
        .line(&create)
        .line("$created = $true")
        .close()
        .line("$result = @{ ok = $true; created = $created; ci_id = $app.CI_ID; model_name = $app.ModelName; ci_unique_id = $app.CI_UniqueID }");
    Ok(b.finish())
}

/// `ensure-deployment-type`: the script deployment type, added once.
pub fn ensure_deployment_type(push: &Push, access: &SiteAccess) -> Result<Script, InputError> {
    let dt = &push.deployment_type;
    let mut b = start("ensure-deployment-type", push, access)?;
    b.input("ApplicationName", &push.application.name)?
        .input("DeploymentTypeName", &dt.name)?
        .input("ContentLocation", &dt.content_location)?
        .input("InstallCommand", &dt.install_command)?
        .input("DetectionScript", &dt.detection_script)?
        .input("Language", push.application.language.culture)?;
    let language = match dt.detection_language {
        ScriptLanguage::PowerShell => "PowerShell",
        ScriptLanguage::VBScript => "VBScript",
        ScriptLanguage::JavaScript => "JavaScript",
    };
    let slow = match dt.slow_network {
        SlowNetwork::Download => "Download",
        SlowNetwork::DoNothing => "DoNothing",
    };
    let mut add = format!(
        "$dt = Add-CMScriptDeploymentType -ApplicationName $ApplicationName -DeploymentTypeName $DeploymentTypeName -ContentLocation $ContentLocation -InstallCommand $InstallCommand -ScriptLanguage '{language}' -ScriptText $DetectionScript -SlowNetworkDeploymentMode '{slow}' -MaximumRuntimeMins {} -EstimatedRuntimeMins {} -AddLanguage $Language",
        dt.max_runtime_minutes, dt.estimated_runtime_minutes
    );
    if let Some(uninstall) = &dt.uninstall_command {
        b.input("UninstallCommand", uninstall)?;
        add.push_str(" -UninstallCommand $UninstallCommand");
    }
    if let Some(comment) = &dt.comment {
        b.input("Comment", comment)?;
        add.push_str(" -Comment $Comment");
    }
    if dt.cache_content {
        add.push_str(" -CacheContent");
    }
    if dt.force_32bit {
        add.push_str(" -Force32Bit");
    }
    b.comment("Check first: the deployment type exists already after an earlier, interrupted run.")
        .line("$dt = Get-CMDeploymentType -ApplicationName $ApplicationName -DeploymentTypeName $DeploymentTypeName -DisableWildcardHandling")
        .line("$created = $false")
        .open("if ($null -eq $dt)")
        .line(&add)
        .line("$created = $true")
        .close()
        .line("$result = @{ ok = $true; created = $created; name = $dt.LocalizedDisplayName }");
    Ok(b.finish())
}

fn lookup_application_with_package(b: &mut ScriptBuilder) {
    b.comment("Without -Fast: PackageID is a lazy property.")
        .line(
            "$app = Get-CMApplication -Name $ApplicationName -DisableWildcardHandling -ShowHidden",
        )
        .open("if ($null -eq $app)")
        .line("throw 'The application does not exist.'")
        .close();
}

/// `ensure-distribution`: the application's content targeted at the DP group, once.
pub fn ensure_distribution(push: &Push, access: &SiteAccess) -> Result<Script, InputError> {
    let mut b = start("ensure-distribution", push, access)?;
    b.input("ApplicationName", &push.application.name)?.input(
        "DistributionGroup",
        &push.deployment_type.distribution_group,
    )?;
    lookup_application_with_package(&mut b);
    b.line("$group = Get-CMDistributionPointGroup -Name $DistributionGroup -DisableWildcardHandling")
        .open("if ($null -eq $group)")
        .line("throw 'The distribution point group does not exist.'")
        .close()
        .comment("Check first: is the content already targeted at this group? (filtered here, no query text built)")
        .line("$namespace = 'root\\SMS\\site_' + $SiteCode")
        .line("$targeted = @(Get-CimInstance -ComputerName $ProviderMachine -Namespace $namespace -ClassName 'SMS_DPGroupContentInfo' | Where-Object { $_.GroupID -eq $group.GroupID -and $_.PackageID -eq $app.PackageID })")
        .line("$started = $false")
        .open("if ($targeted.Count -eq 0)")
        .line("Start-CMContentDistribution -ApplicationName $ApplicationName -DistributionPointGroupName $DistributionGroup -DisableWildcardHandling")
        .line("$started = $true")
        .close()
        .line("$result = @{ ok = $true; started = $started; package_id = $app.PackageID; group_id = $group.GroupID }");
    Ok(b.finish())
}

/// `wait-distribution`: one poll of the distribution status (`SMS_ObjectContentExtraInfo`).
/// `done` is true once every targeted distribution point reports success; the engine polls again
/// until then or its timeout. When distribution points report errors and none is still in
/// progress or unknown, the distribution has failed and no poll will change that: the step fails
/// with a message saying so (and how many DPs failed) instead of polling until the timeout.
pub fn wait_distribution(push: &Push, access: &SiteAccess) -> Result<Script, InputError> {
    let mut b = start("wait-distribution", push, access)?;
    b.input("ApplicationName", &push.application.name)?.input(
        "DistributionGroup",
        &push.deployment_type.distribution_group,
    )?;
    lookup_application_with_package(&mut b);
    b.line("$status = Get-CMDistributionStatus -Id $app.PackageID")
        .comment("Errors with nothing left in progress or unknown: the distribution failed for good.")
        .open("if (($status.NumberErrors -gt 0) -and ($status.NumberInProgress -eq 0) -and ($status.NumberUnknown -eq 0))")
        .line("throw ('Content distribution failed: ' + $status.NumberErrors + ' of ' + $status.Targeted + ' distribution points report errors and none is still in progress.')")
        .close()
        .line("$done = ($status.Targeted -gt 0) -and ($status.NumberSuccess -eq $status.Targeted)")
        .line("$result = @{ ok = $true; done = $done; group = $DistributionGroup; targeted = $status.Targeted; succeeded = $status.NumberSuccess; in_progress = $status.NumberInProgress; errors = $status.NumberErrors; unknown = $status.NumberUnknown }");
    Ok(b.finish())
}

/// `ensure-deployment`: the deployment to the collection, created once.
pub fn ensure_deployment(push: &Push, access: &SiteAccess) -> Result<Script, InputError> {
    let d = &push.deployment;
    let mut b = start("ensure-deployment", push, access)?;
    b.input("ApplicationName", &push.application.name)?
        .input("CollectionName", &d.collection)?;
    let action = match d.action {
        DeployAction::Install => "Install",
        DeployAction::Uninstall => "Uninstall",
    };
    let (purpose, required) = match d.purpose {
        DeployPurpose::Available => ("Available", false),
        DeployPurpose::Required => ("Required", true),
    };
    let time_base = match d.time_base {
        TimeBase::Local => "LocalTime",
        TimeBase::Utc => "Utc",
    };
    let mut create = format!(
        "$deployment = New-CMApplicationDeployment -Name $ApplicationName -CollectionName $CollectionName -DeployAction '{action}' -DeployPurpose '{purpose}' -TimeBaseOn '{time_base}'"
    );
    let deadline = d.deadline.filter(|_| required);
    if let Some(deadline) = deadline {
        b.input("Deadline", &deadline.to_string())?;
        create.push_str(" -DeadlineDateTime $deadlineTime");
    }
    b.comment("Check first: the deployment exists already after an earlier, interrupted run.")
        .line("$deployment = Get-CMApplicationDeployment -Name $ApplicationName -CollectionName $CollectionName -DisableWildcardHandling")
        .line("$created = $false")
        .open("if ($null -eq $deployment)");
    if deadline.is_some() {
        b.comment("The deadline is read culture-invariantly, whatever the console's locale.")
            .line("$deadlineTime = [datetime]::ParseExact($Deadline, 's', [System.Globalization.CultureInfo]::InvariantCulture)");
    } else if d.deadline.is_some() {
        b.comment("A deadline only applies to required deployments; this one is available.");
    }
    b.line(&create)
        .line("$created = $true")
        .close()
        .line("$result = @{ ok = $true; created = $created; deployment_id = $deployment.AssignmentUniqueID; assignment_id = $deployment.AssignmentID }");
    Ok(b.finish())
}

/// Names of the folder-level variables, one per level (a command may nest up to 16 levels).
const FOLDER_VARIABLES: [&str; 16] = [
    "Folder1", "Folder2", "Folder3", "Folder4", "Folder5", "Folder6", "Folder7", "Folder8",
    "Folder9", "Folder10", "Folder11", "Folder12", "Folder13", "Folder14", "Folder15", "Folder16",
];

/// `ensure-folder`: every missing level created, the application moved into the last one.
/// `None` when the application stays at the root of the Applications node.
pub fn ensure_folder(push: &Push, access: &SiteAccess) -> Result<Option<Script>, InputError> {
    let folders = &push.application.folder;
    if folders.is_empty() {
        return Ok(None);
    }
    let mut b = start("ensure-folder", push, access)?;
    b.input("ApplicationName", &push.application.name)?;
    for (variable, name) in FOLDER_VARIABLES.iter().zip(folders) {
        b.input(variable, name)?;
    }
    b.comment("Create each missing level under the Applications node.")
        .line("$path = 'Application'");
    for variable in FOLDER_VARIABLES.iter().take(folders.len()) {
        b.line("$parent = $path")
            .line(&format!("$path = $path + '\\' + ${variable}"))
            .open("if ($null -eq (Get-CMFolder -FolderPath $path -DisableWildcardHandling))")
            .line(&format!(
                "New-CMFolder -ParentFolderPath $parent -Name ${variable} | Out-Null"
            ))
            .close();
    }
    b.line("$folder = Get-CMFolder -FolderPath $path -DisableWildcardHandling")
        .open("if ($null -eq $folder)")
        .line("throw 'The console folder does not exist.'")
        .close()
        .line("$app = Get-CMApplication -Name $ApplicationName -Fast -DisableWildcardHandling -ShowHidden")
        .open("if ($null -eq $app)")
        .line("throw 'The application does not exist.'")
        .close()
        .comment("Check first: is the application already in this folder?")
        .line("$namespace = 'root\\SMS\\site_' + $SiteCode")
        .line("$member = @(Get-CimInstance -ComputerName $ProviderMachine -Namespace $namespace -ClassName 'SMS_ObjectContainerItem' -Filter 'ObjectType=6000' | Where-Object { $_.InstanceKey -eq $app.ModelName -and $_.ContainerNodeID -eq $folder.ContainerNodeID })")
        .line("$target = $SiteCode + ':\\' + $path")
        .line("$moved = $false")
        .open("if ($member.Count -eq 0)")
        .line("Move-CMObject -FolderPath $target -InputObject $app")
        .line("$moved = $true")
        .close()
        .line("$result = @{ ok = $true; moved = $moved; folder = $target; container_id = $folder.ContainerNodeID }");
    Ok(Some(b.finish()))
}

/// Every script of a push, in order, with its step name.
pub fn scripts(push: &Push, access: &SiteAccess) -> Result<Vec<Script>, InputError> {
    let mut scripts = vec![
        ensure_application(push, access)?,
        ensure_deployment_type(push, access)?,
        ensure_distribution(push, access)?,
        wait_distribution(push, access)?,
        ensure_deployment(push, access)?,
    ];
    scripts.extend(ensure_folder(push, access)?);
    Ok(scripts)
}
