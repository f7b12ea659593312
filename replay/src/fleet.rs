//! All jobs of a journal, folded together.
//!
//! The engine feeds every journaled event, in journal order, to [`Fleet::apply`]. A job whose
//! events do not fold (an invalid transition or a divergence) is **quarantined**: it keeps the
//! error, ignores its later events and asks for nothing, so one bad job never blocks the others
//! and an admin can look at it with `replay`.

use crate::action::Action;
use crate::error::FoldError;
use crate::error::ReplayError;
use crate::event::{ArchivedJob, Entry, Event};
use crate::ids::{JobId, Timestamp};
use crate::job::Job;
use std::collections::BTreeMap;

/// A connector start or stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorRun {
    pub started_at: Timestamp,
    pub version: String,
    /// `None` when the run did not stop cleanly (crash, kill, power loss) or is the current one.
    pub stopped_at: Option<Timestamp>,
}

/// The state of every job, plus the connector's own history.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    jobs: BTreeMap<JobId, Job>,
    quarantined: BTreeMap<JobId, FoldError>,
    positions: BTreeMap<JobId, usize>,
    by_command: BTreeMap<String, JobId>,
    runs: Vec<ConnectorRun>,
    /// Jobs retention archived and pruned, and their command ids.
    /// Archived jobs with the archive file each went to.
    archived: BTreeMap<JobId, (String, ArchivedJob)>,
    archived_by_command: BTreeMap<String, JobId>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet::default()
    }

    /// Applies one journaled event. An error quarantines the job (and is also returned).
    pub fn apply(&mut self, job: JobId, entry: &Entry) -> Result<(), FoldError> {
        if job == JobId::CONNECTOR {
            self.apply_connector(entry);
            return Ok(());
        }
        let position = self.positions.entry(job).or_insert(0);
        *position += 1;
        let position = *position;
        if self.quarantined.contains_key(&job) {
            return Ok(());
        }
        if self.archived.contains_key(&job) {
            // An archived job is over; nothing may be added to it.
            let error = FoldError {
                job,
                position,
                event: entry.event.name(),
                source: ReplayError::InvalidTransition {
                    stage: "Archived".into(),
                    event: entry.event.name(),
                },
            };
            return Err(error);
        }
        let result = match self.jobs.get_mut(&job) {
            Some(state) => state.apply(entry),
            None => Job::start(job, entry).map(|state| {
                if let Some(command_id) = state.command_id() {
                    self.by_command.entry(command_id.to_string()).or_insert(job);
                }
                self.jobs.insert(job, state);
            }),
        };
        result.map_err(|source| {
            let error = FoldError {
                job,
                position,
                event: entry.event.name(),
                source,
            };
            self.quarantined.insert(job, error.clone());
            error
        })
    }

    fn apply_connector(&mut self, entry: &Entry) {
        match &entry.event {
            Event::ConnectorStarted { version } => self.runs.push(ConnectorRun {
                started_at: entry.at,
                version: version.clone(),
                stopped_at: None,
            }),
            Event::ConnectorStopped => {
                if let Some(run) = self.runs.last_mut() {
                    run.stopped_at = Some(entry.at);
                }
            }
            Event::JobsArchived { archive, jobs } => {
                for archived in jobs {
                    self.jobs.remove(&archived.job);
                    self.quarantined.remove(&archived.job);
                    self.positions.remove(&archived.job);
                    if let Some(command_id) = &archived.command_id {
                        if self.by_command.get(command_id) == Some(&archived.job) {
                            self.by_command.remove(command_id);
                        }
                        self.archived_by_command
                            .entry(command_id.clone())
                            .or_insert(archived.job);
                    }
                    self.archived
                        .insert(archived.job, (archive.clone(), archived.clone()));
                }
            }
            // Job events under the connector id are meaningless; they are kept in the journal
            // for audit and otherwise ignored.
            _ => {}
        }
    }

    /// Every job that folded, in id order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs
            .values()
            .filter(|j| !self.quarantined.contains_key(&j.id()))
    }

    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Jobs that did not fold, with why.
    pub fn quarantined(&self) -> impl Iterator<Item = &FoldError> {
        self.quarantined.values()
    }

    /// Jobs with work left, in id order.
    pub fn unfinished(&self) -> impl Iterator<Item = &Job> {
        self.jobs().filter(|j| !j.is_finished())
    }

    /// The job (if any) that already holds the portal command `command_id`: a command delivered
    /// twice runs once.
    pub fn job_for_command(&self, command_id: &str) -> Option<&Job> {
        self.by_command
            .get(command_id)
            .and_then(|id| self.jobs.get(id))
    }

    /// The archived job (if any) that held the portal command `command_id`.
    pub fn archived_for_command(&self, command_id: &str) -> Option<&ArchivedJob> {
        self.archived_by_command
            .get(command_id)
            .and_then(|id| self.archived.get(id))
            .map(|(_, job)| job)
    }

    /// Jobs retention archived (their records are pruned, or about to be), in id order, each
    /// with the name of its archive file.
    pub fn archived(&self) -> impl Iterator<Item = (&str, &ArchivedJob)> {
        self.archived
            .values()
            .map(|(file, job)| (file.as_str(), job))
    }

    /// What every unfinished job asks for now.
    pub fn next_actions(&self, now: Timestamp) -> Vec<(JobId, Vec<Action>)> {
        self.unfinished()
            .map(|j| (j.id(), j.next_actions(now)))
            .collect()
    }

    /// The connector's runs, oldest first.
    pub fn runs(&self) -> &[ConnectorRun] {
        &self.runs
    }
}
