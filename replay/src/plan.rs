//! What a job will do, as decided once and journaled in a `Planned` event.
//!
//! A plan is data: the steps with everything needed to perform them (the exact PowerShell text, the
//! download's expected size and hash, …) and the retry policy. Recording it once means that a
//! connector upgraded in the middle of a job finishes the job it started, not a re-planned one.

use serde::{Deserialize, Serialize};

/// Index of a step in a job's plan, counted across all of the job's phases.
pub type StepIndex = u32;

/// One unit of work of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Short stable name, e.g. `ensure-application`; shown in reports and diagnoses.
    pub name: String,
    /// What to do.
    pub kind: StepKind,
    /// A required step that fails for good fails the job; an optional one (e.g. one application of
    /// an import) is recorded as failed and the job goes on.
    pub required: bool,
}

/// The kinds of work the engine knows how to perform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    /// Fetch a package into `dest`, resumable from a byte offset, verified by size and SHA-256.
    Download {
        url: String,
        size: u64,
        sha256: String,
        dest: String,
    },
    /// Unpack the archive at `archive` into the directory `dest`.
    Unpack { archive: String, dest: String },
    /// Run one PowerShell script. With `poll`, the script reports whether a condition holds yet
    /// and is re-run every `interval_ms` until it does or `timeout_ms` has passed.
    Script {
        script: String,
        poll: Option<PollPolicy>,
    },
    /// Pack the folder `source` into an archive and upload it for `application`, resumably.
    Upload { application: String, source: String },
}

impl StepKind {
    /// A short word for the kind, for timelines and errors.
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Download { .. } => "download",
            StepKind::Unpack { .. } => "unpack",
            StepKind::Script { .. } => "script",
            StepKind::Upload { .. } => "upload",
        }
    }

    /// Whether the step moves bytes and journals offsets.
    pub fn is_transfer(&self) -> bool {
        matches!(self, StepKind::Download { .. } | StepKind::Upload { .. })
    }
}

/// How a polling step waits for its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollPolicy {
    /// Pause between two polls.
    pub interval_ms: u64,
    /// Give up this long after the step first started.
    pub timeout_ms: u64,
}

/// Capped exponential backoff: `initial_ms`, doubled per failure, never above `max_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The pause after the `failures`-th consecutive failure (1-based).
    pub fn delay_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        self.initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }

    /// The pause before the next attempt after the `failures`-th consecutive failure: the
    /// backoff less `jitter_ms` (at most half of it counts, so the pause is in `[d/2, d]`), and
    /// never shorter than `retry_after_ms`.
    pub fn retry_delay_ms(
        &self,
        failures: u32,
        jitter_ms: u64,
        retry_after_ms: Option<u64>,
    ) -> u64 {
        let delay = self.delay_ms(failures);
        let jittered = delay - jitter_ms.min(delay / 2);
        jittered.max(retry_after_ms.unwrap_or(0))
    }
}

/// How often a step may be tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts that ended in a retryable failure before the step fails for good.
    pub max_attempts: u32,
    /// Pause between failed attempts.
    pub backoff: Backoff,
    /// Attempts that were interrupted (journaled as started, no outcome: the connector died)
    /// before the step is abandoned. Counted apart from failures so that restarts never eat the
    /// retry budget, yet a step that kills the connector every time cannot loop forever.
    pub max_interrupted: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff {
                initial_ms: 5_000,
                max_ms: 300_000,
            },
            max_interrupted: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
        };
        let delays: Vec<u64> = (1..=6).map(|n| backoff.delay_ms(n)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff.delay_ms(u32::MAX), 1_000);
    }

    #[test]
    fn retry_delay_is_jittered_within_half_and_floored_by_retry_after() {
        let backoff = Backoff {
            initial_ms: 1_000,
            max_ms: 8_000,
        };
        assert_eq!(backoff.retry_delay_ms(1, 0, None), 1_000);
        assert_eq!(backoff.retry_delay_ms(1, 300, None), 700);
        // At most half the backoff is taken off, whatever the jitter says.
        assert_eq!(backoff.retry_delay_ms(2, 60_000, None), 1_000);
        // Retry-After is a floor, above the backoff too.
        assert_eq!(backoff.retry_delay_ms(1, 300, Some(900)), 900);
        assert_eq!(backoff.retry_delay_ms(1, 0, Some(30_000)), 30_000);
        assert_eq!(backoff.retry_delay_ms(4, 0, Some(10)), 8_000);
    }
}
