//! `overview` over every prefix of the canned histories: it never panics, and it agrees with
//! `diagnose`, `timeline` and the fold.

use proptest::prelude::*;
use replay::testkit::{History, canned};
use replay::{JobState, Timestamp, diagnose, overview, timeline};

fn histories() -> Vec<History> {
    vec![
        canned::push_happy(),
        canned::push_killed_in_step(),
        canned::push_step_fails(),
        canned::push_waiting_for_distribution(),
        canned::push_rejected(),
        canned::push_report_pending(),
        canned::import_two_apps(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn overview_of_any_prefix_agrees_with_diagnose(
        which in 0usize..7,
        cut in 1usize..64,
        later in 0u64..200_000,
    ) {
        let history = &histories()[which];
        let entries = &history.entries[..cut.min(history.entries.len())];
        let job = replay::Job::fold(history.job, entries).expect("a prefix of a canned history folds");
        let now = entries.last().map_or(Timestamp(0), |e| e.at).plus_millis(later);
        let o = overview(&job, entries, now);
        let verdict = diagnose(&job, now);
        prop_assert_eq!(&o.diagnosis.headline, &verdict.headline);
        prop_assert_eq!(&o.diagnosis.details, &verdict.details);
        prop_assert_eq!(o.diagnosis.next.len(), verdict.next.len());
        prop_assert_eq!(o.timeline.len(), timeline(entries).len());
        prop_assert_eq!(o.steps.len(), job.steps().len());
        prop_assert_eq!(o.state, JobState::of(&job, now));
        prop_assert_eq!(o.state == JobState::Succeeded || o.state == JobState::Failed
            || o.state == JobState::Rejected, job.is_finished());
        // A failed step in the overview is the one the verdict's details name.
        if let Some(failed) = &o.diagnosis.failed_step {
            let named = format!("step {} '{}'", failed.index, failed.name);
            prop_assert!(verdict.details.iter().any(|d| d.contains(&named)));
        }
    }
}
