//! The push machine: one command, one phase of steps, one result.
//!
//! A push is planned in a single phase as soon as its command validates: download the package,
//! unpack it into the share, then the guarded PowerShell steps (application, deployment type,
//! distribution and its wait, deployment, folder). The steps run in order; a step that fails for
//! good ends the job with a `failed` result naming it.
//!
//! | stage          | signal                  | next stage                               |
//! |----------------|-------------------------|------------------------------------------|
//! | Received       | Rejected(reason)        | Concluding(Rejected(reason))             |
//! | Received       | Planned(0)              | Running(0)                               |
//! | Received       | Planned(n ≠ 0)          | **divergence**                           |
//! | Running(0)     | PhaseDone(0)            | Concluding(Succeeded)                    |
//! | Running(0)     | StepGaveUp(failure)     | Concluding(Failed(step, attempts, error))|
//! | Concluding(c)  | ResultReady(c.status)   | Reporting(s) (Closing if no command id)  |
//! | Reporting(s)   | ReportSettled(d)        | Closing(s, d)                            |
//! | Closing(s, d)  | Finished(s, d)          | Finished(s, d)                           |
//! | anything else  |                         | **invalid transition**                   |
//!
//! What each stage asks the engine to do is decided in `Job::next_actions`, the same for every
//! kind: `Received` → `Plan(0)`, `Running` → the current step, `Concluding` → `ComposeResult`,
//! `Reporting` → `Report`, `Closing` → `Finish`; `Ack` beside all of them until acked.

use super::{Signal, Stage, settle_transition, wrong_phase};
use crate::action::Conclusion;
use crate::error::ReplayError;

/// A push has a single phase.
pub(crate) const PHASES: u16 = 1;

pub(crate) fn transition(stage: &Stage, signal: Signal) -> Result<Stage, ReplayError> {
    match (stage, signal) {
        (Stage::Received, Signal::Rejected { reason }) => {
            Ok(Stage::Concluding(Conclusion::Rejected { reason }))
        }
        (Stage::Received, Signal::Planned { phase: 0 }) => Ok(Stage::Running { phase: 0 }),
        (Stage::Received, Signal::Planned { phase }) => Err(wrong_phase(0, phase)),
        (Stage::Running { phase: 0 }, Signal::PhaseDone { phase: 0 }) => {
            Ok(Stage::Concluding(Conclusion::Succeeded))
        }
        (Stage::Running { .. }, Signal::StepGaveUp(failure)) => Ok(Stage::Concluding(failure)),
        (stage, signal) => settle_transition(stage, signal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ResultStatus;

    /// One row of the table: `(stage, signal) → Ok(next)` or an error of the given kind.
    fn check(stage: Stage, signal: Signal, expected: Result<Stage, bool>) {
        let got = transition(&stage, signal.clone());
        match (got, expected) {
            (Ok(next), Ok(want)) => assert_eq!(next, want, "{stage} on {signal:?}"),
            (Err(e), Err(divergence)) => {
                assert_eq!(e.is_divergence(), divergence, "{stage} on {signal:?}: {e}")
            }
            (got, want) => panic!("{stage} on {signal:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn every_row_of_the_table() {
        let failed = Conclusion::Failed {
            step: 3,
            step_name: "ensure-deployment-type".into(),
            attempts: 3,
            error: "boom".into(),
        };
        check(
            Stage::Received,
            Signal::Rejected { reason: "r".into() },
            Ok(Stage::Concluding(Conclusion::Rejected {
                reason: "r".into(),
            })),
        );
        check(
            Stage::Received,
            Signal::Planned { phase: 0 },
            Ok(Stage::Running { phase: 0 }),
        );
        check(Stage::Received, Signal::Planned { phase: 1 }, Err(true));
        check(
            Stage::Running { phase: 0 },
            Signal::PhaseDone { phase: 0 },
            Ok(Stage::Concluding(Conclusion::Succeeded)),
        );
        check(
            Stage::Running { phase: 0 },
            Signal::StepGaveUp(failed.clone()),
            Ok(Stage::Concluding(failed.clone())),
        );
        check(
            Stage::Concluding(failed.clone()),
            Signal::ResultReady {
                status: ResultStatus::Failed,
                reportable: true,
            },
            Ok(Stage::Reporting {
                status: ResultStatus::Failed,
            }),
        );
        check(
            Stage::Concluding(failed),
            Signal::ResultReady {
                status: ResultStatus::Ok,
                reportable: true,
            },
            Err(true),
        );
        check(
            Stage::Reporting {
                status: ResultStatus::Failed,
            },
            Signal::ReportSettled { delivered: false },
            Ok(Stage::Closing {
                status: ResultStatus::Failed,
                delivered: false,
            }),
        );
        check(
            Stage::Running { phase: 0 },
            Signal::ReportSettled { delivered: true },
            Err(false),
        );
        check(
            Stage::Closing {
                status: ResultStatus::Ok,
                delivered: true,
            },
            Signal::Finished {
                status: ResultStatus::Ok,
                delivered: true,
            },
            Ok(Stage::Finished {
                status: ResultStatus::Ok,
                delivered: true,
            }),
        );
        check(
            Stage::Closing {
                status: ResultStatus::Ok,
                delivered: true,
            },
            Signal::Finished {
                status: ResultStatus::Failed,
                delivered: true,
            },
            Err(true),
        );
        check(
            Stage::Running { phase: 0 },
            Signal::Rejected {
                reason: "late".into(),
            },
            Err(false),
        );
        check(
            Stage::Running { phase: 0 },
            Signal::Planned { phase: 1 },
            Err(false),
        );
        check(
            Stage::Finished {
                status: ResultStatus::Ok,
                delivered: true,
            },
            Signal::Planned { phase: 0 },
            Err(false),
        );
    }
}
