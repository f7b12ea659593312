//! Crash recovery, proven on a model: for random mixes of push and import commands and random
//! step and delivery outcomes, crashing at **every** point and resuming from the journal ends
//! exactly like the uninterrupted run.
//!
//! The model engine below drives the real machines the way the connector's engine does: ask
//! `next_actions`, journal the intent, perform the effect on a model world, journal the outcome.
//! The world outlives crashes (as SCCM and the portal do); the in-memory fold does not: a crash
//! drops it and the engine rebuilds it from the journal. The world models what the production
//! code guarantees at its edges: every script checks before it acts (a guarded effect is applied
//! at most once), and the portal deduplicates results by idempotency key.
//!
//! Every operation that touches the journal or the world is a crash point. A run crashes at
//! chosen operation indices (the operation does not happen) and then restarts.

use proptest::prelude::*;
use replay::testkit::push_plan;
use replay::{
    Action, Backoff, Conclusion, Entry, Event, Fleet, Job, JobId, JobKind, RetryPolicy, Step,
    StepKind, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A command waiting at the portal.
#[derive(Clone, Debug)]
enum Command {
    Push,
    Import {
        applications: u32,
        upload_sources: bool,
    },
    Invalid,
}

#[derive(Clone, Debug)]
struct Scenario {
    commands: Vec<Command>,
    seed: u64,
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => Just(Command::Push),
        3 => (0u32..3, any::<bool>()).prop_map(|(applications, upload_sources)| Command::Import { applications, upload_sources }),
        1 => Just(Command::Invalid),
    ]
}

fn scenario_strategy(max_commands: usize) -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(command_strategy(), 1..=max_commands),
        any::<u64>(),
    )
        .prop_map(|(commands, seed)| Scenario { commands, seed })
}

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    backoff: Backoff {
        initial_ms: 1_000,
        max_ms: 4_000,
    },
    max_interrupted: 1_000,
};
const REPORT_BACKOFF: Backoff = Backoff {
    initial_ms: 500,
    max_ms: 4_000,
};

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How one completed attempt of a step turns out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StepOutcome {
    Succeed,
    /// Fails before acting.
    FailRetryable,
    /// Acts, then fails (e.g. a timeout after the object was created): the guard must absorb it.
    ActThenFailRetryable,
    FailPermanent,
    /// A polling step whose condition does not hold yet.
    NotYet,
}

/// Outcomes are a function of (job, step, completed attempts so far), never of the attempt
/// number, so interrupted attempts (which a crash adds) do not change what happens next.
fn step_outcome(seed: u64, job: u128, step: u32, completed: u32, polls: bool) -> StepOutcome {
    let r = splitmix(
        seed ^ (job as u64).wrapping_mul(1_000_003)
            ^ u64::from(step) << 20
            ^ u64::from(completed) << 40,
    );
    match r % 12 {
        0..=7 => StepOutcome::Succeed,
        8 => StepOutcome::FailRetryable,
        9 => StepOutcome::ActThenFailRetryable,
        10 if (r >> 8).is_multiple_of(3) => StepOutcome::FailPermanent,
        10 => StepOutcome::FailRetryable,
        _ if polls && completed < 2 => StepOutcome::NotYet,
        _ => StepOutcome::Succeed,
    }
}

/// How a delivery attempt of a result turns out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DeliveryOutcome {
    Acknowledged,
    /// The request never reached the portal.
    Lost,
    /// The portal stored the result but the response was lost.
    StoredResponseLost,
    /// The portal refuses the result for good.
    Refused,
}

fn delivery_outcome(seed: u64, job: u128, failures: u32) -> DeliveryOutcome {
    if failures >= 4 {
        return DeliveryOutcome::Acknowledged;
    }
    let r = splitmix(seed.rotate_left(17) ^ (job as u64) ^ u64::from(failures) << 32);
    match r % 16 {
        0..=10 => DeliveryOutcome::Acknowledged,
        11 | 12 => DeliveryOutcome::Lost,
        13 | 14 => DeliveryOutcome::StoredResponseLost,
        _ => DeliveryOutcome::Refused,
    }
}

/// What outlives a crash: SCCM, the portal.
#[derive(Clone, Debug, Default, PartialEq)]
struct World {
    /// Effects of steps, and how many times each was actually applied (every act counts).
    effects: BTreeMap<(u128, u32), u32>,
    /// A world whose steps do not check before they act (only to show the checker can fail).
    unguarded: bool,
    /// Commands the portal has seen acknowledged.
    acked: BTreeSet<u128>,
    /// Results stored by the portal: key → (body, deliveries).
    results: BTreeMap<String, (String, u32)>,
    /// Results that arrived with a known key but a different body (a 409 in the real portal).
    conflicts: u32,
}

impl World {
    /// A step's effect: the guard looks at the world first (as every production script does with
    /// its "already there?" lookup) and acts only if the effect is absent; every act is counted.
    fn step_effect(&mut self, job: u128, step: u32) {
        if !self.unguarded && self.effects.contains_key(&(job, step)) {
            return;
        }
        *self.effects.entry((job, step)).or_insert(0) += 1;
    }

    /// Every effect that was applied was applied exactly once.
    fn check_effects_applied_once(&self) -> Result<(), String> {
        match self.effects.iter().find(|(_, count)| **count != 1) {
            Some(((job, step), count)) => Err(format!(
                "job {job} step {step}: effect applied {count} times"
            )),
            None => Ok(()),
        }
    }

    fn deliver(&mut self, key: &str, body: &str) {
        let stored = self
            .results
            .entry(key.to_string())
            .or_insert_with(|| (body.to_string(), 0));
        if stored.0 != body {
            self.conflicts += 1;
        }
        stored.1 += 1;
    }
}

/// What must be the same whether or not the run crashed: the effective results at the portal,
/// the effects in SCCM, the acknowledged commands.
#[derive(Debug, PartialEq)]
struct Outcome {
    results: BTreeMap<String, String>,
    effects: BTreeMap<(u128, u32), u32>,
    acked: BTreeSet<u128>,
}

/// The engine stopped at a crash point.
struct Crashed;

/// A model of the connector's engine over an in-memory journal.
struct Engine {
    seed: u64,
    commands: Vec<Command>,
    journal: Vec<(JobId, Entry)>,
    fleet: Fleet,
    world: World,
    clock: Timestamp,
    ops: usize,
    crash_points: BTreeSet<usize>,
    crashes: usize,
}

fn job_id(index: usize) -> JobId {
    JobId(Uuid::from_u128(index as u128 + 1))
}

impl Engine {
    fn new(scenario: &Scenario, crash_points: BTreeSet<usize>) -> Engine {
        Engine {
            seed: scenario.seed,
            commands: scenario.commands.clone(),
            journal: Vec::new(),
            fleet: Fleet::new(),
            world: World::default(),
            clock: Timestamp(1_600_000_000_000),
            ops: 0,
            crash_points,
            crashes: 0,
        }
    }

    /// Counts an operation; fails if this is a crash point.
    fn op(&mut self) -> Result<(), Crashed> {
        let this = self.ops;
        self.ops += 1;
        if self.crash_points.contains(&this) {
            Err(Crashed)
        } else {
            Ok(())
        }
    }

    fn append(&mut self, job: JobId, event: Event) -> Result<(), Crashed> {
        self.op()?;
        self.clock = self.clock.plus_millis(7);
        let entry = Entry::new(self.clock, event);
        self.fleet
            .apply(job, &entry)
            .unwrap_or_else(|e| panic!("the engine wrote an event that does not fold: {e}"));
        self.journal.push((job, entry));
        Ok(())
    }

    /// Restart: the in-memory state is gone; fold the journal again.
    fn restart(&mut self) {
        self.crashes += 1;
        self.fleet = Fleet::new();
        for (job, entry) in &self.journal {
            self.fleet
                .apply(*job, entry)
                .unwrap_or_else(|e| panic!("the journal does not fold after a crash: {e}"));
        }
        // The restart itself is journaled; a crash right here is not modelled separately.
        let entry = Entry::new(
            self.clock,
            Event::ConnectorStarted {
                version: "model".into(),
            },
        );
        self.fleet
            .apply(JobId::CONNECTOR, &entry)
            .expect("connector events always fold");
        self.journal.push((JobId::CONNECTOR, entry));
    }

    fn run(&mut self) {
        for _ in 0..100_000 {
            match self.tick() {
                Ok(true) => return,
                Ok(false) => {}
                Err(Crashed) => self.restart(),
            }
        }
        panic!(
            "the model did not finish: {:?}",
            self.fleet.next_actions(self.clock)
        );
    }

    /// One round: poll, then perform one job's actions. `Ok(true)` when everything is done.
    fn tick(&mut self) -> Result<bool, Crashed> {
        // Poll: commands without a job are (re)delivered; a command delivered twice runs once.
        for index in 0..self.commands.len() {
            let command_id = format!("cmd-{index}");
            if self.fleet.job_for_command(&command_id).is_some() {
                continue;
            }
            let kind = match self.commands[index] {
                Command::Push => JobKind::Push,
                Command::Import { .. } => JobKind::Import,
                Command::Invalid => JobKind::Unrecognized,
            };
            let raw = format!("{{\"id\":\"{command_id}\"}}").into_bytes();
            self.append(
                job_id(index),
                Event::CommandReceived {
                    command_id: Some(command_id),
                    kind,
                    raw,
                },
            )?;
        }
        let pending = self.fleet.next_actions(self.clock);
        if pending.is_empty() {
            return Ok(true);
        }
        let runnable = pending.iter().find(|(_, actions)| {
            actions
                .iter()
                .any(|a| !matches!(a, Action::WaitUntil { .. }))
        });
        match runnable {
            Some((job, actions)) => {
                let (job, actions) = (*job, actions.clone());
                for action in actions {
                    self.perform(job, action)?;
                }
            }
            None => {
                let earliest = pending
                    .iter()
                    .flat_map(|(_, a)| a.iter())
                    .filter_map(|a| match a {
                        Action::WaitUntil { until } => Some(*until),
                        _ => None,
                    })
                    .min()
                    .expect("every pending job waits");
                self.clock = self.clock.max(earliest);
            }
        }
        Ok(false)
    }

    fn job(&self, id: JobId) -> &Job {
        self.fleet.job(id).expect("the job exists")
    }

    fn perform(&mut self, job: JobId, action: Action) -> Result<(), Crashed> {
        let index = (job.0.as_u128() - 1) as usize;
        let key = job.0.as_u128();
        match action {
            Action::Ack => {
                self.op()?;
                self.world.acked.insert(key);
                self.append(job, Event::Acked)
            }
            Action::Plan { phase } => {
                let event = self.plan(index, job, phase);
                self.append(job, event)
            }
            Action::Download { step, attempt, .. }
            | Action::Unpack { step, attempt }
            | Action::RunScript { step, attempt } => self.run_step(job, step, attempt),
            Action::Upload {
                step,
                attempt,
                archive,
                upload_id,
                ..
            } => {
                self.append(job, Event::StepStarted { step, attempt })?;
                if archive.is_none() {
                    self.append(
                        job,
                        Event::ArchiveBuilt {
                            step,
                            size: 4_096,
                            sha256: "ab".repeat(32),
                        },
                    )?;
                }
                if upload_id.is_none() {
                    self.append(
                        job,
                        Event::UploadOpened {
                            step,
                            upload_id: format!("up-{key}-{step}"),
                        },
                    )?;
                }
                self.append(
                    job,
                    Event::TransferProgress {
                        step,
                        offset: 2_048,
                    },
                )?;
                self.finish_step(job, step, attempt)
            }
            Action::Abandon {
                step,
                attempt,
                reason,
            } => self.append(
                job,
                Event::StepFailed {
                    step,
                    attempt,
                    retryable: false,
                    error: reason,
                },
            ),
            Action::WaitUntil { .. } => Ok(()),
            Action::ComposeResult { conclusion } => {
                let body = self.compose(job, &conclusion);
                self.append(
                    job,
                    Event::ResultReady {
                        status: conclusion.status(),
                        idempotency_key: format!("result-{key}"),
                        body,
                        retry: REPORT_BACKOFF,
                    },
                )
            }
            Action::Report { attempt } => {
                let result = self
                    .job(job)
                    .result()
                    .expect("a result before a report")
                    .clone();
                let failures = self.job(job).report().failures;
                self.append(job, Event::ReportSent { attempt })?;
                let outcome = delivery_outcome(self.seed, key, failures);
                if matches!(
                    outcome,
                    DeliveryOutcome::Acknowledged | DeliveryOutcome::StoredResponseLost
                ) {
                    self.op()?;
                    self.world.deliver(&result.idempotency_key, &result.body);
                }
                let event = match outcome {
                    DeliveryOutcome::Acknowledged => Event::ReportAcknowledged,
                    DeliveryOutcome::Lost | DeliveryOutcome::StoredResponseLost => {
                        // The engine draws the jitter and reads Retry-After; both are data.
                        let r = splitmix(self.seed ^ key as u64 ^ u64::from(failures));
                        Event::ReportDeferred {
                            attempt,
                            error: "connection reset".into(),
                            retry_after_ms: r.is_multiple_of(3).then_some(r % 7_000),
                            jitter_ms: (r >> 16) % 2_000,
                        }
                    }
                    DeliveryOutcome::Refused => Event::ReportFailed {
                        attempt,
                        retryable: false,
                        error: "404 unknown command".into(),
                    },
                };
                self.append(job, event)
            }
            Action::Finish { status, delivered } => {
                self.append(job, Event::JobFinished { status, delivered })
            }
        }
    }

    fn run_step(&mut self, job: JobId, step: u32, attempt: u32) -> Result<(), Crashed> {
        self.append(job, Event::StepStarted { step, attempt })?;
        if matches!(
            self.job(job).step(step).map(|s| &s.step.kind),
            Some(StepKind::Download { .. })
        ) {
            self.append(
                job,
                Event::TransferProgress {
                    step,
                    offset: 1_000_000,
                },
            )?;
        }
        self.finish_step(job, step, attempt)
    }

    fn finish_step(&mut self, job: JobId, step: u32, attempt: u32) -> Result<(), Crashed> {
        let key = job.0.as_u128();
        let state = self.job(job).step(step).expect("the step exists");
        let polls = matches!(state.step.kind, StepKind::Script { poll: Some(_), .. });
        let completed = state
            .attempts
            .iter()
            .filter(
                |a| matches!(a.outcome, Some(ref o) if *o != replay::AttemptOutcome::Interrupted),
            )
            .count() as u32;
        let outcome = step_outcome(self.seed, key, step, completed, polls);
        if matches!(
            outcome,
            StepOutcome::Succeed | StepOutcome::ActThenFailRetryable
        ) {
            self.op()?;
            self.world.step_effect(key, step);
        }
        let output = format!("{{\"step\":{step}}}");
        let event = match outcome {
            StepOutcome::Succeed => Event::StepSucceeded {
                step,
                attempt,
                output,
            },
            StepOutcome::NotYet => Event::StepIncomplete {
                step,
                attempt,
                output,
            },
            StepOutcome::FailRetryable | StepOutcome::ActThenFailRetryable => Event::StepFailed {
                step,
                attempt,
                retryable: true,
                error: "transient".into(),
            },
            StepOutcome::FailPermanent => Event::StepFailed {
                step,
                attempt,
                retryable: false,
                error: "denied".into(),
            },
        };
        self.append(job, event)
    }

    /// The model planner: phase plans from the command and from earlier outputs.
    fn plan(&self, index: usize, job: JobId, phase: u16) -> Event {
        let script = |name: String, required: bool| Step {
            name: name.clone(),
            kind: StepKind::Script {
                script: format!("# {name}"),
                poll: None,
            },
            required,
        };
        let steps = match (&self.commands[index], phase) {
            (Command::Invalid, _) => {
                return Event::CommandRejected {
                    reason: "kind: unknown".into(),
                };
            }
            (Command::Push, _) => push_plan(),
            (Command::Import { .. }, 0) => vec![
                script("list-folders".into(), true),
                script("list-applications".into(), true),
            ],
            (Command::Import { applications, .. }, 1) => (0..*applications)
                .map(|app| script(format!("metadata {app}"), false))
                .collect(),
            (Command::Import { upload_sources, .. }, _) => {
                // Upload what the metadata phase could read.
                let read: Vec<String> = self
                    .job(job)
                    .steps()
                    .iter()
                    .filter(|s| s.phase == 1 && s.output().is_some())
                    .map(|s| s.step.name.clone())
                    .collect();
                if *upload_sources {
                    read.into_iter()
                        .map(|name| Step {
                            name: format!("upload {name}"),
                            kind: StepKind::Upload {
                                application: name,
                                source: "\\\\srv\\src$".into(),
                            },
                            required: false,
                        })
                        .collect()
                } else {
                    Vec::new()
                }
            }
        };
        Event::Planned {
            phase,
            steps,
            policy: POLICY,
        }
    }

    /// The result body: status, failure (without attempt counts, which crashes legitimately
    /// raise), and the outputs of the steps that succeeded.
    fn compose(&self, job: JobId, conclusion: &Conclusion) -> String {
        let outputs: Vec<String> = self
            .job(job)
            .steps()
            .iter()
            .map(|s| format!("{}={}", s.step.name, s.output().unwrap_or("-")))
            .collect();
        let failure = match conclusion {
            Conclusion::Failed {
                step_name, error, ..
            } => format!("{step_name}: {error}"),
            Conclusion::Rejected { reason } => reason.clone(),
            Conclusion::Succeeded => String::new(),
        };
        format!(
            "{}|{failure}|{}",
            conclusion.status().as_str(),
            outputs.join(",")
        )
    }

    /// Checks every invariant of a finished run and returns what must equal across runs.
    fn outcome(&self) -> Outcome {
        assert_eq!(
            self.world.conflicts, 0,
            "a result was re-sent with another body under the same key"
        );
        if let Err(e) = self.world.check_effects_applied_once() {
            panic!("{e}");
        }
        assert_eq!(self.fleet.quarantined().count(), 0);
        for (index, _) in self.commands.iter().enumerate() {
            let id = job_id(index);
            let job = self.job(id);
            assert!(job.is_finished(), "job {index} did not finish");
            let history: Vec<Entry> = self
                .journal
                .iter()
                .filter(|(j, _)| *j == id)
                .map(|(_, e)| e.clone())
                .collect();
            // Applying events one by one (as the engine did) and all at once agree.
            assert_eq!(&Job::fold(id, &history).expect("folds"), job);
            let received = history
                .iter()
                .filter(|e| matches!(e.event, Event::CommandReceived { .. }))
                .count();
            let results = history
                .iter()
                .filter(|e| matches!(e.event, Event::ResultReady { .. }))
                .count();
            assert_eq!(
                (received, results),
                (1, 1),
                "job {index}: one command, exactly one final result"
            );
            // A job that concluded ok had every required step's effect applied: nothing skipped.
            if job.conclusion() == Some(&Conclusion::Succeeded) {
                for (step, state) in job.steps().iter().enumerate() {
                    if state.step.required {
                        assert!(
                            self.world
                                .effects
                                .contains_key(&(id.0.as_u128(), step as u32)),
                            "job {index} step {step} skipped"
                        );
                    }
                }
            }
            // Steps after a failed required step never ran.
            if let Some(Conclusion::Failed { step, .. }) = job.conclusion() {
                assert!(
                    job.steps()
                        .iter()
                        .skip(*step as usize + 1)
                        .all(|s| s.attempts.is_empty())
                );
            }
            // A delivered result is the one the portal holds, under the job's one key.
            if let replay::Stage::Finished {
                delivered: true, ..
            } = job.stage()
            {
                let result = job.result().expect("a finished job has a result");
                let stored = self
                    .world
                    .results
                    .get(&result.idempotency_key)
                    .map(|(body, _)| body);
                assert_eq!(
                    stored,
                    Some(&result.body),
                    "job {index}: the portal holds another result"
                );
            }
        }
        Outcome {
            results: self
                .world
                .results
                .iter()
                .map(|(k, (body, _))| (k.clone(), body.clone()))
                .collect(),
            effects: self.world.effects.clone(),
            acked: self.world.acked.clone(),
        }
    }
}

fn run(scenario: &Scenario, crash_points: BTreeSet<usize>) -> Engine {
    let mut engine = Engine::new(scenario, crash_points);
    engine.run();
    engine
}

/// The "applied once" check can fail: without the guard, a step that acted and then failed
/// (or was interrupted after acting) applies its effect again on the retry, and the checker
/// names it. With the guard, the same runs pass.
#[test]
fn an_unguarded_world_double_applies_and_the_check_reports_it() {
    let mut reported = 0;
    for seed in 0..64u64 {
        let scenario = Scenario {
            commands: vec![Command::Push],
            seed,
        };
        let reference = run(&scenario, BTreeSet::new());
        // A crash right after the first effect was applied: the step is re-run.
        let after_first_effect = reference.ops / 2;
        for crash_points in [BTreeSet::new(), BTreeSet::from([after_first_effect])] {
            let mut guarded = Engine::new(&scenario, crash_points.clone());
            guarded.run();
            assert_eq!(guarded.world.check_effects_applied_once(), Ok(()));

            let mut unguarded = Engine::new(&scenario, crash_points);
            unguarded.world.unguarded = true;
            unguarded.run();
            if let Err(e) = unguarded.world.check_effects_applied_once() {
                assert!(e.contains("effect applied"), "{e}");
                reported += 1;
            }
        }
    }
    assert!(
        reported > 0,
        "no unguarded run double-applied an effect: the check is not exercised"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// One crash, at every operation of the uninterrupted run in turn.
    #[test]
    fn a_crash_at_any_point_changes_nothing(scenario in scenario_strategy(3)) {
        let reference = run(&scenario, BTreeSet::new());
        let expected = reference.outcome();
        for crash_at in 0..reference.ops {
            let crashed = run(&scenario, BTreeSet::from([crash_at]));
            prop_assert_eq!(crashed.crashes, 1);
            let got = crashed.outcome();
            prop_assert_eq!(&got, &expected, "crash at operation {}", crash_at);
        }
    }

    /// Several crashes in one run, including crashes during recovery work.
    #[test]
    fn many_crashes_change_nothing(scenario in scenario_strategy(4), crash_points in prop::collection::btree_set(0usize..400, 0..12)) {
        let expected = run(&scenario, BTreeSet::new()).outcome();
        let crashed = run(&scenario, crash_points);
        prop_assert_eq!(crashed.outcome(), expected);
    }

    /// Applying a journal one event at a time, or folding each job at once, gives the same jobs,
    /// and every cut of a journal folds (a crash can stop the journal anywhere).
    #[test]
    fn every_prefix_of_a_journal_folds(scenario in scenario_strategy(3)) {
        let engine = run(&scenario, BTreeSet::new());
        for cut in 0..=engine.journal.len() {
            let mut fleet = Fleet::new();
            for (job, entry) in &engine.journal[..cut] {
                prop_assert!(fleet.apply(*job, entry).is_ok());
            }
            // Whatever the cut, every unfinished job asks for something (no job is stuck).
            for job in fleet.unfinished() {
                prop_assert!(!job.next_actions(Timestamp(i64::MAX / 2)).is_empty());
            }
        }
    }
}
