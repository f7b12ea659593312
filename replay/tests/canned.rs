//! The canned histories, folded: what each one's state is and what it asks for next.
//!
//! One `check` per history keeps every case a single readable line of expectations.

use replay::testkit::{History, TEST_POLICY, canned, push_plan, script};
use replay::{
    Action, Conclusion, Event, Fleet, JobKind, ReplayError, ResultStatus, Stage, StepStatus,
    Timestamp, diagnose, timeline,
};

/// Folds `history` and checks its stage and its next actions at `now`.
fn check(history: &History, now: Timestamp, stage: &str, next: &[Action]) {
    let job = history.fold().expect("canned histories fold");
    assert_eq!(job.stage().to_string(), stage, "stage");
    assert_eq!(job.next_actions(now), next, "next actions");
}

const FAR_FUTURE: Timestamp = Timestamp(i64::MAX / 2);

#[test]
fn a_happy_push_asks_for_nothing() {
    check(&canned::push_happy(), FAR_FUTURE, "Finished(ok)", &[]);
}

#[test]
fn an_interrupted_step_is_rerun_as_a_new_attempt() {
    check(
        &canned::push_killed_in_step(),
        FAR_FUTURE,
        "Running(phase 0)",
        &[Action::RunScript {
            step: 2,
            attempt: 2,
        }],
    );
}

#[test]
fn a_step_failing_three_times_fails_the_job_naming_the_step() {
    let job = canned::push_step_fails().fold().expect("folds");
    match job.next_actions(FAR_FUTURE).as_slice() {
        [
            Action::ComposeResult {
                conclusion:
                    Conclusion::Failed {
                        step,
                        step_name,
                        attempts,
                        error,
                    },
            },
        ] => {
            assert_eq!(
                (*step, step_name.as_str(), *attempts),
                (3, "ensure-deployment-type", 3)
            );
            assert!(error.contains("does not exist or is empty"), "{error}");
        }
        other => panic!("unexpected next actions {other:?}"),
    }
    let diagnosis = diagnose(&job, FAR_FUTURE);
    assert!(
        diagnosis.headline.contains("ensure-deployment-type"),
        "{}",
        diagnosis.headline
    );
    assert_eq!(
        diagnosis.details.len(),
        4,
        "the step line and one line per attempt: {:?}",
        diagnosis.details
    );
}

#[test]
fn a_retryable_failure_waits_for_its_backoff() {
    let mut h = History::received(10, JobKind::Push, "c");
    h.acked()
        .planned(0, push_plan())
        .run_ok(0..2)
        .started(2, 1)
        .failed(2, 1, true, "WMI timeout");
    let failed_at = h.now;
    let retry_at = failed_at.plus_millis(TEST_POLICY.backoff.initial_ms);
    check(
        &h,
        failed_at,
        "Running(phase 0)",
        &[Action::WaitUntil { until: retry_at }],
    );
    check(
        &h,
        retry_at,
        "Running(phase 0)",
        &[Action::RunScript {
            step: 2,
            attempt: 2,
        }],
    );
}

#[test]
fn a_polling_step_polls_until_done_or_timed_out() {
    let h = canned::push_waiting_for_distribution();
    let polled_at = h.now;
    check(
        &h,
        polled_at,
        "Running(phase 0)",
        &[Action::WaitUntil {
            until: polled_at.plus_millis(10_000),
        }],
    );
    // Poll until the 60 s timeout passes: the step, and so the job, fails.
    let mut h = h;
    let mut attempt = 1;
    while matches!(
        h.fold().expect("folds").stage(),
        Stage::Running { phase: 0 }
    ) {
        attempt += 1;
        h.after(10_000)
            .started(5, attempt)
            .event(Event::StepIncomplete {
                step: 5,
                attempt,
                output: "{\"targeted\":3,\"succeeded\":2}".into(),
            });
        assert!(attempt < 20, "the poll must time out");
    }
    let job = h.fold().expect("folds");
    match job.conclusion() {
        Some(Conclusion::Failed {
            step_name, error, ..
        }) => {
            assert_eq!(step_name, "wait-distribution");
            assert!(error.contains("timeout 60 s"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rejected_command_is_acked_and_reported() {
    let h = canned::push_rejected();
    check(&h, FAR_FUTURE, "Finished(rejected)", &[]);
    let d = diagnose(&h.fold().expect("folds"), FAR_FUTURE);
    assert!(
        d.headline.contains("application.name: must not be empty"),
        "{}",
        d.headline
    );
    // Before the ack and the result: the engine must ack and compose a rejected result.
    let early = History {
        entries: h.entries[..2].to_vec(),
        ..h.clone()
    };
    check(
        &early,
        FAR_FUTURE,
        "Concluding(rejected)",
        &[
            Action::Ack,
            Action::ComposeResult {
                conclusion: Conclusion::Rejected {
                    reason: "application.name: must not be empty".into(),
                },
            },
        ],
    );
}

#[test]
fn a_report_in_flight_at_a_crash_is_sent_again() {
    check(
        &canned::push_report_pending(),
        Timestamp(0),
        "Reporting(ok)",
        &[Action::Report { attempt: 3 }],
    );
}

#[test]
fn a_failed_report_waits_then_retries() {
    let mut h = canned::push_report_pending();
    h.event(Event::ReportFailed {
        attempt: 2,
        retryable: true,
        error: "503".into(),
    });
    // Second failure in a row: 2 s.
    let until = h.now.plus_millis(2_000);
    check(&h, h.now, "Reporting(ok)", &[Action::WaitUntil { until }]);
    check(&h, until, "Reporting(ok)", &[Action::Report { attempt: 3 }]);
}

#[test]
fn a_refused_report_closes_the_job_undelivered() {
    let mut h = canned::push_report_pending();
    h.event(Event::ReportFailed {
        attempt: 2,
        retryable: false,
        error: "404 unknown command".into(),
    });
    check(
        &h,
        h.now,
        "Closing(ok)",
        &[Action::Finish {
            status: ResultStatus::Ok,
            delivered: false,
        }],
    );
}

#[test]
fn an_import_plans_each_phase_from_the_last() {
    let h = canned::import_two_apps();
    check(&h, FAR_FUTURE, "Finished(ok)", &[]);
    // Cut after the inventory phase: the engine must plan phase 1.
    let cut = h
        .entries
        .iter()
        .position(|e| matches!(e.event, Event::Planned { phase: 1, .. }))
        .expect("phase 1");
    let early = History {
        entries: h.entries[..cut].to_vec(),
        ..h.clone()
    };
    check(
        &early,
        FAR_FUTURE,
        "AwaitingPlan(phase 1)",
        &[Action::Plan { phase: 1 }],
    );
}

#[test]
fn an_upload_resumes_with_what_it_knows() {
    let h = canned::import_two_apps();
    let cut = h
        .entries
        .iter()
        .position(|e| matches!(e.event, Event::StepSucceeded { step: 4, .. }))
        .expect("step 4");
    let early = History {
        entries: h.entries[..cut].to_vec(),
        ..h.clone()
    };
    match early
        .fold()
        .expect("folds")
        .next_actions(FAR_FUTURE)
        .as_slice()
    {
        [
            Action::Upload {
                step: 4,
                attempt: 2,
                from_offset: 1_000,
                archive: Some(a),
                upload_id: Some(id),
            },
        ] => {
            assert_eq!((a.size, id.as_str()), (1_000, "up-1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_optional_step_failing_does_not_fail_the_import() {
    let mut h = History::received(11, JobKind::Import, "imp");
    let optional = replay::Step {
        required: false,
        ..script("metadata Broken")
    };
    h.acked()
        .planned(0, vec![script("list-folders")])
        .run_ok(0..1)
        .planned(1, vec![optional]);
    h.started(1, 1)
        .failed(1, 1, false, "Get-CMApplication: not found");
    check(
        &h,
        FAR_FUTURE,
        "AwaitingPlan(phase 2)",
        &[Action::Plan { phase: 2 }],
    );
    h.planned(2, vec![]);
    check(
        &h,
        FAR_FUTURE,
        "Concluding(ok)",
        &[Action::ComposeResult {
            conclusion: Conclusion::Succeeded,
        }],
    );
}

#[test]
fn a_step_interrupted_too_often_is_abandoned() {
    let mut h = History::received(12, JobKind::Push, "c");
    h.acked().planned(0, push_plan());
    for attempt in 1..=TEST_POLICY.max_interrupted + 1 {
        h.started(0, attempt);
    }
    let job = h.fold().expect("folds");
    let last = TEST_POLICY.max_interrupted + 1;
    assert!(
        matches!(job.next_actions(FAR_FUTURE).as_slice(), [Action::Abandon { step: 0, attempt, .. }] if *attempt == last)
    );
    h.failed(0, last, false, "abandoned");
    assert!(matches!(
        h.fold().expect("folds").stage(),
        Stage::Concluding(Conclusion::Failed { .. })
    ));
}

#[test]
fn out_of_order_events_are_divergences_and_impossible_ones_invalid() {
    let base = canned::push_killed_in_step();
    let at = base.now;
    let apply = |event: Event| {
        let mut job = base.fold().expect("folds");
        job.apply(&replay::Entry::new(at, event))
    };
    // Step 3 cannot start while step 2 is unfinished.
    assert!(matches!(
        apply(Event::StepStarted {
            step: 3,
            attempt: 1
        }),
        Err(ReplayError::Divergence { .. })
    ));
    // The outcome of an attempt that is not running.
    assert!(matches!(
        apply(Event::StepSucceeded {
            step: 2,
            attempt: 7,
            output: "{}".into()
        }),
        Err(ReplayError::Divergence { .. })
    ));
    // A result while steps are running is not a transition the table has.
    assert!(matches!(
        apply(Event::ResultReady {
            status: ResultStatus::Ok,
            idempotency_key: "k".into(),
            body: "{}".into(),
            retry: replay::testkit::TEST_REPORT_BACKOFF
        }),
        Err(ReplayError::InvalidTransition { .. })
    ));
    // A second command under the same job.
    assert!(matches!(
        apply(Event::CommandReceived {
            command_id: None,
            kind: JobKind::Push,
            raw: vec![]
        }),
        Err(ReplayError::InvalidTransition { .. })
    ));
    // Nothing happens after JobFinished.
    let mut done = canned::push_happy().fold().expect("folds");
    assert!(done.apply(&replay::Entry::new(at, Event::Acked)).is_err());
    // A failed apply leaves the job as it was.
    let mut job = base.fold().expect("folds");
    let before = job.clone();
    assert!(
        job.apply(&replay::Entry::new(
            at,
            Event::StepStarted {
                step: 5,
                attempt: 1
            }
        ))
        .is_err()
    );
    assert_eq!(job, before);
}

#[test]
fn a_fleet_quarantines_a_broken_job_and_keeps_the_others() {
    let good = canned::push_killed_in_step();
    let bad = canned::push_happy();
    let mut fleet = Fleet::new();
    for e in &good.entries {
        fleet.apply(good.job, e).expect("good job folds");
    }
    for e in &bad.entries {
        fleet.apply(bad.job, e).expect("folds");
    }
    let error = fleet
        .apply(bad.job, &replay::Entry::new(bad.now, Event::Acked))
        .expect_err("after finish");
    assert_eq!(error.position, bad.entries.len() + 1);
    assert_eq!(fleet.quarantined().count(), 1);
    assert_eq!(
        fleet.unfinished().map(|j| j.id()).collect::<Vec<_>>(),
        vec![good.job]
    );
    assert_eq!(
        fleet.job_for_command("cmd-push-killed").map(|j| j.id()),
        Some(good.job)
    );
}

#[test]
fn the_timeline_names_steps_and_measures_gaps() {
    let rows = timeline(&canned::push_step_fails().entries);
    let failure = rows
        .iter()
        .find(|r| r.event == "StepFailed")
        .expect("a failure");
    assert!(
        failure
            .summary
            .starts_with("step 3 'ensure-deployment-type' attempt 1 failed (retryable)"),
        "{}",
        failure.summary
    );
    assert_eq!(failure.gap_ms, 2_000);
    assert!(
        rows.windows(2)
            .all(|w| w[0].since_start_ms <= w[1].since_start_ms)
    );
}

#[test]
fn every_canned_history_is_consistent_with_its_diagnosis() {
    for h in [
        canned::push_happy(),
        canned::push_killed_in_step(),
        canned::push_step_fails(),
        canned::push_waiting_for_distribution(),
        canned::push_rejected(),
        canned::push_report_pending(),
        canned::import_two_apps(),
    ] {
        let job = h.fold().expect("folds");
        let d = diagnose(&job, h.now);
        assert_eq!(d.next, job.next_actions(h.now));
        assert!(!d.headline.is_empty());
        if !job.is_finished() {
            assert!(
                d.headline.starts_with("in progress") || d.headline.starts_with("failed"),
                "{}",
                d.headline
            );
        }
        let running = job
            .steps()
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Running { .. }))
            .count();
        assert!(running <= 1, "steps run one at a time");
    }
}

#[test]
fn an_archived_job_leaves_the_fleet_but_its_command_stays_known() {
    use replay::{ArchivedJob, Entry, JobId};
    let happy = canned::push_happy();
    let mut fleet = Fleet::new();
    for entry in &happy.entries {
        fleet.apply(happy.job, entry).expect("folds");
    }
    let job = fleet.job(happy.job).expect("folded").clone();
    assert!(job.is_finished());
    let archived = ArchivedJob {
        job: happy.job,
        command_id: Some("cmd-push-happy".into()),
        kind: JobKind::Push,
        status: ResultStatus::Ok,
        received_at: job.received_at(),
        finished_at: job.last_event_at(),
        events: job.event_count() as u64,
    };
    let event = Event::JobsArchived {
        archive: "jobs-1.jsonl".into(),
        jobs: vec![archived.clone()],
    };
    fleet
        .apply(JobId::CONNECTOR, &Entry::new(happy.now, event))
        .expect("connector events always apply");
    assert!(fleet.job(happy.job).is_none());
    assert!(fleet.job_for_command("cmd-push-happy").is_none());
    assert_eq!(
        fleet.archived_for_command("cmd-push-happy"),
        Some(&archived)
    );
    assert_eq!(
        fleet.archived().collect::<Vec<_>>(),
        vec![("jobs-1.jsonl", &archived)]
    );
    // Nothing more can happen to it.
    let late = Entry::new(happy.now, Event::Acked);
    assert!(fleet.apply(happy.job, &late).is_err());
    assert!(fleet.next_actions(FAR_FUTURE).is_empty());
}
