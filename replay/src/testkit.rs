//! Building histories for tests: a builder and named, canned histories.
//!
//! Used by this crate's tests and by the connector's tests, so every test describes a job the
//! same readable way. Each canned history lists its events in its doc comment.

use crate::FoldError;
use crate::event::{Entry, Event, JobKind, ResultStatus};
use crate::ids::{JobId, Timestamp};
use crate::job::Job;
use crate::plan::{Backoff, PollPolicy, RetryPolicy, Step, StepKind};
use uuid::Uuid;

/// A job's history under construction, with its own clock.
#[derive(Clone, Debug)]
pub struct History {
    pub job: JobId,
    pub now: Timestamp,
    pub entries: Vec<Entry>,
}

/// The retry policy canned histories use: 3 attempts, 1 s doubling to 8 s, 3 interruptions.
pub const TEST_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    backoff: Backoff {
        initial_ms: 1_000,
        max_ms: 8_000,
    },
    max_interrupted: 3,
};

/// The backoff canned results use for delivery: 1 s doubling to 60 s.
pub const TEST_REPORT_BACKOFF: Backoff = Backoff {
    initial_ms: 1_000,
    max_ms: 60_000,
};

impl History {
    /// A history whose first event is `CommandReceived` for a command of `kind`.
    pub fn received(job: u128, kind: JobKind, command_id: &str) -> History {
        let mut h = History {
            job: JobId(Uuid::from_u128(job)),
            now: Timestamp(1_580_461_920_000),
            entries: Vec::new(),
        };
        h.event(Event::CommandReceived {
            command_id: Some(command_id.to_string()),
            kind,
            raw: format!("{{\"id\":\"{command_id}\"}}").into_bytes(),
        });
        h
    }

    /// Appends an event at the current time.
    pub fn event(&mut self, event: Event) -> &mut History {
        self.entries.push(Entry::new(self.now, event));
        self
    }

    /// Advances the clock.
    pub fn after(&mut self, millis: u64) -> &mut History {
        self.now = self.now.plus_millis(millis);
        self
    }

    pub fn acked(&mut self) -> &mut History {
        self.event(Event::Acked)
    }

    pub fn planned(&mut self, phase: u16, steps: Vec<Step>) -> &mut History {
        self.event(Event::Planned {
            phase,
            steps,
            policy: TEST_POLICY,
        })
    }

    pub fn started(&mut self, step: u32, attempt: u32) -> &mut History {
        self.event(Event::StepStarted { step, attempt })
    }

    pub fn succeeded(&mut self, step: u32, attempt: u32, output: &str) -> &mut History {
        self.event(Event::StepSucceeded {
            step,
            attempt,
            output: output.to_string(),
        })
    }

    pub fn failed(
        &mut self,
        step: u32,
        attempt: u32,
        retryable: bool,
        error: &str,
    ) -> &mut History {
        self.event(Event::StepFailed {
            step,
            attempt,
            retryable,
            error: error.to_string(),
        })
    }

    /// `StepStarted` then `StepSucceeded` for each of `steps`, one second apart.
    pub fn run_ok(&mut self, steps: std::ops::Range<u32>) -> &mut History {
        for step in steps {
            self.started(step, 1)
                .after(1_000)
                .succeeded(step, 1, "{}")
                .after(10);
        }
        self
    }

    /// `ResultReady` with `status`, keyed by the command id.
    pub fn result(&mut self, status: ResultStatus) -> &mut History {
        let key = format!("result-{}", self.job);
        self.event(Event::ResultReady {
            status,
            idempotency_key: key,
            body: format!("{{\"status\":\"{}\"}}", status.as_str()),
            retry: TEST_REPORT_BACKOFF,
        })
    }

    /// Delivery attempt `attempt` sent and acknowledged, then `JobFinished`.
    pub fn delivered(&mut self, attempt: u32, status: ResultStatus) -> &mut History {
        self.event(Event::ReportSent { attempt })
            .after(50)
            .event(Event::ReportAcknowledged)
            .event(Event::JobFinished {
                status,
                delivered: true,
            })
    }

    /// Folds the history so far.
    pub fn fold(&self) -> Result<Job, FoldError> {
        Job::fold(self.job, &self.entries)
    }

    /// Hands the finished history over.
    pub fn build(&mut self) -> History {
        self.clone()
    }
}

/// A script step named `name` (its text is a readable placeholder).
pub fn script(name: &str) -> Step {
    Step {
        name: name.into(),
        kind: StepKind::Script {
            script: format!("# {name}\n"),
            poll: None,
        },
        required: true,
    }
}

/// The shape of a push plan: download, unpack, then the guarded scripts with a polling wait.
pub fn push_plan() -> Vec<Step> {
    let mut steps = vec![
        Step {
            name: "download".into(),
            kind: StepKind::Download {
                url: "/api/connector/v1/packages/pkg-5c2a".into(),
                size: 7_340_032,
                sha256: "ab".repeat(32),
                dest: "spool/pkg-5c2a.zip".into(),
            },
            required: true,
        },
        Step {
            name: "unpack".into(),
            kind: StepKind::Unpack {
                archive: "spool/pkg-5c2a.zip".into(),
                dest: "share/FileZilla".into(),
            },
            required: true,
        },
    ];
    steps.extend(
        [
            "ensure-application",
            "ensure-deployment-type",
            "ensure-distribution",
        ]
        .map(script),
    );
    steps.push(Step {
        name: "wait-distribution".into(),
        kind: StepKind::Script {
            script: "# wait-distribution\n".into(),
            poll: Some(PollPolicy {
                interval_ms: 10_000,
                timeout_ms: 60_000,
            }),
        },
        required: true,
    });
    steps.extend(["ensure-deployment", "ensure-folder"].map(script));
    steps
}

/// Canned histories, each named for what it shows.
pub mod canned {
    use super::*;

    /// A push that went through untroubled:
    /// `CommandReceived, Acked, Planned(0: 8 steps), (StepStarted, StepSucceeded) × 8,
    /// ResultReady(ok), ReportSent(1), ReportAcknowledged, JobFinished(ok)`.
    pub fn push_happy() -> History {
        History::received(1, JobKind::Push, "cmd-push-happy")
            .acked()
            .planned(0, push_plan())
            .run_ok(0..8)
            .result(ResultStatus::Ok)
            .delivered(1, ResultStatus::Ok)
            .build()
    }

    /// A push whose connector was killed while `ensure-application` ran:
    /// `CommandReceived, Acked, Planned(0), steps 0–1 ok, StepStarted(2, 1)` — and nothing more.
    pub fn push_killed_in_step() -> History {
        History::received(2, JobKind::Push, "cmd-push-killed")
            .acked()
            .planned(0, push_plan())
            .run_ok(0..2)
            .started(2, 1)
            .build()
    }

    /// A push whose deployment type cannot be created:
    /// `…, steps 0–2 ok, StepStarted(3,1), StepFailed(3,1,retryable), StepStarted(3,2),
    /// StepFailed(3,2,retryable), StepStarted(3,3), StepFailed(3,3,retryable)` — the third failure
    /// exhausts the policy, so the job concludes failed.
    pub fn push_step_fails() -> History {
        let mut h = History::received(3, JobKind::Push, "cmd-push-fails");
        h.acked().planned(0, push_plan()).run_ok(0..3);
        for attempt in 1..=3 {
            h.started(3, attempt)
                .after(2_000)
                .failed(
                    3,
                    attempt,
                    true,
                    "The content location '\\\\srv\\src$\\x' does not exist or is empty.",
                )
                .after(8_000);
        }
        h.build()
    }

    /// A push waiting for its content to reach the distribution points:
    /// `…, steps 0–4 ok, StepStarted(5,1), StepIncomplete(5,1, "2 of 3 succeeded")`.
    pub fn push_waiting_for_distribution() -> History {
        History::received(4, JobKind::Push, "cmd-push-wait")
            .acked()
            .planned(0, push_plan())
            .run_ok(0..5)
            .started(5, 1)
            .after(500)
            .event(Event::StepIncomplete {
                step: 5,
                attempt: 1,
                output: "{\"targeted\":3,\"succeeded\":2}".into(),
            })
            .build()
    }

    /// A command with an invalid field:
    /// `CommandReceived, CommandRejected, Acked, ResultReady(rejected), ReportSent(1),
    /// ReportAcknowledged, JobFinished(rejected)`.
    pub fn push_rejected() -> History {
        History::received(5, JobKind::Push, "cmd-push-rejected")
            .event(Event::CommandRejected {
                reason: "application.name: must not be empty".into(),
            })
            .acked()
            .result(ResultStatus::Rejected)
            .delivered(1, ResultStatus::Rejected)
            .build()
    }

    /// A finished push whose result the portal has not acknowledged yet (portal down):
    /// `…, ResultReady(ok), ReportSent(1), ReportFailed(1, retryable), ReportSent(2)`.
    pub fn push_report_pending() -> History {
        History::received(6, JobKind::Push, "cmd-push-report")
            .acked()
            .planned(0, push_plan())
            .run_ok(0..8)
            .result(ResultStatus::Ok)
            .event(Event::ReportSent { attempt: 1 })
            .event(Event::ReportFailed {
                attempt: 1,
                retryable: true,
                error: "connection refused".into(),
            })
            .after(1_000)
            .event(Event::ReportSent { attempt: 2 })
            .build()
    }

    /// An import of two applications with sources:
    /// `CommandReceived, Acked, Planned(0: folders, applications), 2 steps ok,
    /// Planned(1: metadata × 2), 2 steps ok, Planned(2: upload × 2), 2 uploads ok, ResultReady(ok),
    /// ReportSent(1), ReportAcknowledged, JobFinished(ok)`.
    pub fn import_two_apps() -> History {
        let upload = |app: &str| Step {
            name: format!("upload {app}"),
            kind: StepKind::Upload {
                application: app.into(),
                source: format!("\\\\srv\\src$\\{app}"),
            },
            required: false,
        };
        let metadata = |app: &str| Step {
            required: false,
            ..script(&format!("metadata {app}"))
        };
        History::received(7, JobKind::Import, "cmd-import")
            .acked()
            .planned(0, vec![script("list-folders"), script("list-applications")])
            .run_ok(0..2)
            .planned(1, vec![metadata("7-Zip"), metadata("FileZilla")])
            .run_ok(2..4)
            .planned(2, vec![upload("7-Zip"), upload("FileZilla")])
            .started(4, 1)
            .event(Event::ArchiveBuilt {
                step: 4,
                size: 1_000,
                sha256: "cd".repeat(32),
            })
            .event(Event::UploadOpened {
                step: 4,
                upload_id: "up-1".into(),
            })
            .event(Event::TransferProgress {
                step: 4,
                offset: 1_000,
            })
            .succeeded(4, 1, "{\"upload_id\":\"up-1\"}")
            .run_ok(5..6)
            .result(ResultStatus::Ok)
            .delivered(1, ResultStatus::Ok)
            .build()
    }
}
