//! # replay — events in, actions out
//!
//! The pure, deterministic heart of sccm-connector. Every job's history is a list of journaled
//! [`Event`]s (each with the [`Timestamp`] the engine observed); folding it gives a [`Job`] whose
//! [`Job::next_actions`] tells the engine what to do now. The same fold drives normal operation,
//! resumes every job after a crash, and explains a job to an admin ([`diagnose`]).
//!
//! This crate does no I/O, reads no clock, makes no ids and draws no random numbers: time and ids
//! arrive inside events, `now` is an argument. It depends on no tokio, sled, reqwest or zip. So a
//! history always folds to the same state, which is what makes crash recovery testable: the
//! property tests cut histories at every point and check that resuming changes nothing.
//!
//! ## Layout
//! - [`ids`](crate::Timestamp): `Timestamp`, `JobId` — time and identity as data.
//! - `event`: the vocabulary ([`Event`], [`Entry`], [`JobKind`], [`ResultStatus`]).
//! - `plan`: what a job will do ([`Step`], [`StepKind`], [`RetryPolicy`], [`PollPolicy`]).
//! - `action`: what the engine should do next ([`Action`], [`Conclusion`]).
//! - `machine`: the per-kind transition tables (`machine/push.rs`, `machine/import.rs`).
//! - `steps`: one step's attempts, retries, polls and offsets — the recovery rules.
//! - `job`: [`Job`], the fold of one job, and `next_actions`.
//! - `fleet`: [`Fleet`], every job of a journal, with quarantine for jobs that do not fold.
//! - `diagnose`: [`timeline`] and [`diagnose`] for admins.
//! - `overview`: [`overview`] — a job laid out for `jobs` and `replay` (steps, attempts,
//!   transfers, deliveries, timeline, verdict), and [`JobState`], its state in one word.
//! - `error`: [`ReplayError`] (invalid transition vs divergence) and [`FoldError`].
//! - [`testkit`]: a history builder and named canned histories, shared with the connector's tests.
//!
//! ## Example
//! ```
//! use replay::{testkit::canned, Action, Timestamp};
//!
//! let history = canned::push_killed_in_step();
//! let job = history.fold().expect("a canned history folds");
//! // Step 2 was journaled as started, with no outcome: it is re-run as attempt 2.
//! assert_eq!(job.next_actions(Timestamp(0)), vec![Action::RunScript { step: 2, attempt: 2 }]);
//! ```

#![forbid(unsafe_code)]

mod action;
mod diagnose;
mod error;
mod event;
mod fleet;
mod ids;
mod job;
mod machine;
mod overview;
mod plan;
mod steps;
pub mod testkit;

pub use action::{Action, ArchiveInfo, Conclusion};
pub use diagnose::{Diagnosis, TimelineRow, diagnose, one_line, timeline};
pub use error::{FoldError, ReplayError};
pub use event::{ArchivedJob, Entry, Event, JobKind, ResultStatus};
pub use fleet::{ConnectorRun, Fleet};
pub use ids::{JobId, Timestamp, serialize_rfc3339, serialize_rfc3339_opt};
pub use job::{Job, JobResult, ReportLane};
pub use machine::Stage;
pub use overview::{
    AttemptOverview, Delivery, DiagnosisOverview, FailedStep, JobState, LastStep, Overview,
    PortalExchange, ResultOverview, StepOverview, Target, TimelineEntry, TransferRow, kind_label,
    last_step, overview, step_status_label,
};
pub use plan::{Backoff, PollPolicy, RetryPolicy, Step, StepIndex, StepKind};
pub use steps::{Attempt, AttemptOutcome, StepState, StepStatus};
