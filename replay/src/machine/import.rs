//! The import machine: three phases, each planned from what the previous one found.
//!
//! 0. **inventory** — list the application folders and the applications (planned as soon as the
//!    command validates);
//! 1. **metadata** — read each requested application's SDMPackageXML (planned from the inventory:
//!    which applications exist, which the command asked for);
//! 2. **sources** — pack and upload each application's source folder (planned from the metadata,
//!    which holds the content location; planned empty when the command asked for no sources).
//!
//! The per-application steps of phases 1 and 2 are optional: one unreadable application is
//! reported in the result and does not fail the import. Phase 0's steps are required.
//!
//! | stage            | signal                  | next stage                               |
//! |------------------|-------------------------|------------------------------------------|
//! | Received         | Rejected(reason)        | Concluding(Rejected(reason))             |
//! | Received         | Planned(0)              | Running(0)                               |
//! | Received         | Planned(n ≠ 0)          | **divergence**                           |
//! | Running(p)       | PhaseDone(p), p < 2     | AwaitingPlan(p + 1)                      |
//! | Running(2)       | PhaseDone(2)            | Concluding(Succeeded)                    |
//! | Running(p)       | StepGaveUp(failure)     | Concluding(Failed(step, attempts, error))|
//! | AwaitingPlan(p)  | Planned(p)              | Running(p)                               |
//! | AwaitingPlan(p)  | Planned(n ≠ p)          | **divergence**                           |
//! | Concluding(c)    | ResultReady(c.status)   | Reporting(s) (Closing if no command id)  |
//! | Reporting(s)     | ReportSettled(d)        | Closing(s, d)                            |
//! | Closing(s, d)    | Finished(s, d)          | Finished(s, d)                           |
//! | anything else    |                         | **invalid transition**                   |

use super::{Signal, Stage, settle_transition, wrong_phase};
use crate::action::Conclusion;
use crate::error::ReplayError;

/// Inventory, metadata, sources.
pub(crate) const PHASES: u16 = 3;

pub(crate) fn transition(stage: &Stage, signal: Signal) -> Result<Stage, ReplayError> {
    match (stage, signal) {
        (Stage::Received, Signal::Rejected { reason }) => {
            Ok(Stage::Concluding(Conclusion::Rejected { reason }))
        }
        (Stage::Received, Signal::Planned { phase: 0 }) => Ok(Stage::Running { phase: 0 }),
        (Stage::Received, Signal::Planned { phase }) => Err(wrong_phase(0, phase)),
        (Stage::Running { phase }, Signal::PhaseDone { phase: done }) if *phase == done => {
            if done + 1 < PHASES {
                Ok(Stage::AwaitingPlan { phase: done + 1 })
            } else {
                Ok(Stage::Concluding(Conclusion::Succeeded))
            }
        }
        (Stage::Running { .. }, Signal::StepGaveUp(failure)) => Ok(Stage::Concluding(failure)),
        (Stage::AwaitingPlan { phase }, Signal::Planned { phase: planned }) => {
            if *phase == planned {
                Ok(Stage::Running { phase: planned })
            } else {
                Err(wrong_phase(*phase, planned))
            }
        }
        (stage, signal) => settle_transition(stage, signal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ResultStatus;

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
        check(Stage::Received, Signal::Planned { phase: 2 }, Err(true));
        check(
            Stage::Running { phase: 0 },
            Signal::PhaseDone { phase: 0 },
            Ok(Stage::AwaitingPlan { phase: 1 }),
        );
        check(
            Stage::Running { phase: 1 },
            Signal::PhaseDone { phase: 1 },
            Ok(Stage::AwaitingPlan { phase: 2 }),
        );
        check(
            Stage::Running { phase: 2 },
            Signal::PhaseDone { phase: 2 },
            Ok(Stage::Concluding(Conclusion::Succeeded)),
        );
        check(
            Stage::Running { phase: 1 },
            Signal::PhaseDone { phase: 0 },
            Err(false),
        );
        check(
            Stage::AwaitingPlan { phase: 1 },
            Signal::Planned { phase: 1 },
            Ok(Stage::Running { phase: 1 }),
        );
        check(
            Stage::AwaitingPlan { phase: 1 },
            Signal::Planned { phase: 2 },
            Err(true),
        );
        check(
            Stage::AwaitingPlan { phase: 1 },
            Signal::ResultReady {
                status: ResultStatus::Ok,
                reportable: true,
            },
            Err(false),
        );
        check(
            Stage::Concluding(Conclusion::Succeeded),
            Signal::ResultReady {
                status: ResultStatus::Ok,
                reportable: false,
            },
            Ok(Stage::Closing {
                status: ResultStatus::Ok,
                delivered: false,
            }),
        );
    }
}
