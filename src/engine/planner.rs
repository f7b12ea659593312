//! The engine's answer to `Action::Plan`: the steps of a job's next phase, decided once.
//!
//! - push, phase 0: download the package into the spool, unpack it into the share (which must
//!   lie under an allowed share root), then the guarded scripts of `powershell::push`;
//! - import, phase 0: the inventory scripts; phase 1: one `read-metadata` per application the
//!   command asked for (all when it named none), found in the inventory; phase 2: one upload per
//!   application whose metadata names a content location (none without `upload_sources`).
//!
//! A command that does not validate is rejected here, in phase 0, with the reason naming the field.

use super::outputs::{list, number, step_output, text};
use crate::command::{self, Command, Import, Limits};
use crate::powershell::push::SiteAccess;
use crate::powershell::script::Script;
use crate::powershell::{import, push};
use crate::share::Shares;
use replay::{Job, PollPolicy, RetryPolicy, Step, StepKind};
use std::path::PathBuf;

/// Step names the engine reads outputs of.
pub mod names {
    pub const DOWNLOAD: &str = "download";
    pub const UNPACK: &str = "unpack";
    pub const WAIT_DISTRIBUTION: &str = "wait-distribution";
    pub const LIST_FOLDERS: &str = "list-folders";
    pub const LIST_APPLICATIONS: &str = "list-applications";
    pub const READ_METADATA: &str = "read-metadata";
    pub const UPLOAD: &str = "upload";
}

/// What planning needs beyond the command.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub access: SiteAccess,
    pub shares: Shares,
    /// Where downloads and upload archives are kept while a job runs.
    pub spool_dir: PathBuf,
    pub limits: Limits,
    pub policy: RetryPolicy,
    /// How `wait-distribution` polls.
    pub distribution: PollPolicy,
}

/// A phase's plan, or the command's rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhasePlan {
    Steps(Vec<Step>),
    Rejected(String),
}

fn script_step(script: Script, poll: Option<PollPolicy>, required: bool) -> Step {
    Step {
        name: script.step.clone(),
        kind: StepKind::Script {
            script: script.text,
            poll,
        },
        required,
    }
}

/// Plans `phase` of `job`.
pub fn plan(job: &Job, phase: u16, ctx: &PlanContext) -> PhasePlan {
    let command = match command::parse(job.raw_command(), &ctx.limits) {
        Ok(command) => command,
        Err(rejection) => return PhasePlan::Rejected(rejection.to_string()),
    };
    match (command, phase) {
        (Command::Push(p), 0) => plan_push(job, &p, ctx),
        (Command::Import(i), 0) => plan_inventory(&i, ctx),
        (Command::Import(i), 1) => PhasePlan::Steps(plan_metadata(job, &i, ctx)),
        (Command::Import(i), 2) => PhasePlan::Steps(plan_uploads(job, &i, ctx)),
        // The machines never ask for other phases; an empty plan would be harmless.
        _ => PhasePlan::Steps(Vec::new()),
    }
}

fn plan_push(job: &Job, p: &command::Push, ctx: &PlanContext) -> PhasePlan {
    let share = match ctx.shares.writable_local(&p.share_path) {
        Ok(local) => local,
        Err(e) => return PhasePlan::Rejected(format!("site.share_path: {e}")),
    };
    let scripts = match push::scripts(p, &ctx.access) {
        Ok(scripts) => scripts,
        Err(e) => return PhasePlan::Rejected(e.to_string()),
    };
    let archive = ctx
        .spool_dir
        .join(job.id().to_string())
        .join(format!("{}.zip", p.package.package_id));
    let archive = archive.display().to_string();
    let mut steps = vec![
        Step {
            name: names::DOWNLOAD.into(),
            kind: StepKind::Download {
                url: p.package.url.clone(),
                size: p.package.size,
                sha256: p.package.sha256.clone(),
                dest: archive.clone(),
            },
            required: true,
        },
        Step {
            name: names::UNPACK.into(),
            kind: StepKind::Unpack {
                archive,
                dest: share.display().to_string(),
            },
            required: true,
        },
    ];
    steps.extend(scripts.into_iter().map(|s| {
        let poll = (s.step == names::WAIT_DISTRIBUTION).then_some(ctx.distribution);
        script_step(s, poll, true)
    }));
    PhasePlan::Steps(steps)
}

fn plan_inventory(i: &Import, ctx: &PlanContext) -> PhasePlan {
    let scripts = import::list_folders(i, &ctx.access)
        .and_then(|f| Ok([f, import::list_applications(i, &ctx.access)?]));
    match scripts {
        Ok(scripts) => PhasePlan::Steps(
            scripts
                .into_iter()
                .map(|s| script_step(s, None, true))
                .collect(),
        ),
        Err(e) => PhasePlan::Rejected(e.to_string()),
    }
}

/// An application found by the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub ci_id: u32,
}

/// The applications of the inventory that the command asked for, in inventory order, and those
/// of them beyond [`command::MAX_IMPORT_APPLICATIONS`] (not read by this import).
pub fn selected_applications(job: &Job, i: &Import) -> (Vec<Found>, Vec<Found>) {
    let mut selected = wanted_applications(job, i);
    let beyond = selected.split_off(selected.len().min(command::MAX_IMPORT_APPLICATIONS));
    (selected, beyond)
}

fn wanted_applications(job: &Job, i: &Import) -> Vec<Found> {
    let Some(inventory) = step_output(job, names::LIST_APPLICATIONS) else {
        return Vec::new();
    };
    list(&inventory, "applications")
        .into_iter()
        .filter_map(|app| {
            let name = text(app, "LocalizedDisplayName")?;
            let ci_id = u32::try_from(number(app, "CI_ID")?).ok()?;
            let wanted = i.applications.is_empty()
                || i.applications.iter().any(|w| w.eq_ignore_ascii_case(&name));
            wanted.then_some(Found { name, ci_id })
        })
        .collect()
}

fn plan_metadata(job: &Job, i: &Import, ctx: &PlanContext) -> Vec<Step> {
    selected_applications(job, i)
        .0
        .into_iter()
        .filter_map(|found| {
            // Not planned: the result reports the application with an error instead.
            let script = import::read_metadata(i, &ctx.access, &found.name, found.ci_id)
                .inspect_err(|e| {
                    tracing::warn!(application = %found.name, ci_id = found.ci_id, "no metadata step for this application: {e}");
                })
                .ok()?;
            let mut step = script_step(script, None, false);
            step.name = format!("{} {}", names::READ_METADATA, found.ci_id);
            Some(step)
        })
        .collect()
}

fn plan_uploads(job: &Job, i: &Import, ctx: &PlanContext) -> Vec<Step> {
    if !i.upload_sources {
        return Vec::new();
    }
    job.steps()
        .iter()
        .filter(|s| s.phase == 1)
        .filter_map(|s| super::outputs::parse_object(s.output()?))
        .filter_map(|out| {
            let name = text(&out, "name")?;
            let ci_id = number(&out, "ci_id")?;
            // An application whose metadata cannot be read or names no content is not uploaded;
            // the result reports it with an error (`result::import_result`).
            let metadata = crate::sdm::parse(&text(&out, "sdm_package_xml")?).ok()?;
            let location = metadata.content_location()?.to_string();
            Some(Step {
                name: format!("{} {ci_id}", names::UPLOAD),
                kind: StepKind::Upload {
                    application: name,
                    source: ctx.shares.to_local(&location).display().to_string(),
                },
                required: false,
            })
        })
        .collect()
}
