//! A script run's outcome → the event to journal.
//!
//! - `{"ok":true,…}`: `StepSucceeded`, except a polling step whose result says `"done": false`,
//!   which is `StepIncomplete` (the machine polls again after its interval);
//! - `{"ok":false,"error":…}`: `StepFailed`, retryable — every step checks before it acts, so a
//!   retry is safe, and the plan's policy bounds the attempts;
//! - a runner error: `StepFailed`, retryable as the error says (a script that fails the safety
//!   check, or a PowerShell that cannot be started, is not).

use crate::powershell::runner::{RunError, StepRun};
use replay::{Event, StepIndex};

/// The event for attempt `attempt` of script step `step`.
pub fn script_outcome(
    step: StepIndex,
    attempt: u32,
    polls: bool,
    run: Result<StepRun, RunError>,
) -> Event {
    match run {
        Ok(run) if run.result.ok() => {
            let done = run
                .result
                .object
                .get("done")
                .and_then(serde_json::Value::as_bool);
            let output = run.result.json();
            if polls && done != Some(true) {
                Event::StepIncomplete {
                    step,
                    attempt,
                    output,
                }
            } else {
                Event::StepSucceeded {
                    step,
                    attempt,
                    output,
                }
            }
        }
        Ok(run) => {
            let message = run
                .result
                .object
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("(no error message)");
            let line = run
                .result
                .object
                .get("line")
                .and_then(serde_json::Value::as_u64);
            let error = match line {
                Some(line) if line > 0 => format!("{message} (script line {line})"),
                _ => message.to_string(),
            };
            Event::StepFailed {
                step,
                attempt,
                retryable: true,
                error,
            }
        }
        Err(e) => Event::StepFailed {
            step,
            attempt,
            retryable: e.is_retryable(),
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powershell::output;
    use std::time::Duration;

    fn run(stdout: &str, exit_code: i32) -> Result<StepRun, RunError> {
        Ok(StepRun {
            result: output::parse(stdout.as_bytes(), exit_code).expect("a result"),
            exit_code,
            stderr: String::new(),
            duration: Duration::ZERO,
        })
    }

    #[test]
    fn outcomes() {
        assert!(matches!(
            script_outcome(2, 1, false, run("{\"ok\":true,\"ci_id\":1}", 0)),
            Event::StepSucceeded {
                step: 2,
                attempt: 1,
                ..
            }
        ));
        assert!(matches!(
            script_outcome(5, 3, true, run("{\"ok\":true,\"done\":false}", 0)),
            Event::StepIncomplete {
                step: 5,
                attempt: 3,
                ..
            }
        ));
        assert!(matches!(
            script_outcome(5, 3, true, run("{\"ok\":true,\"done\":true}", 0)),
            Event::StepSucceeded { .. }
        ));
        match script_outcome(
            3,
            2,
            false,
            run("{\"ok\":false,\"error\":\"Access denied\",\"line\":31}", 1),
        ) {
            Event::StepFailed {
                retryable: true,
                error,
                ..
            } => assert_eq!(error, "Access denied (script line 31)"),
            other => panic!("{other:?}"),
        }
        let spawn = RunError::Spawn {
            program: "powershell.exe".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert!(matches!(
            script_outcome(1, 1, false, Err(spawn)),
            Event::StepFailed {
                retryable: false,
                ..
            }
        ));
    }
}
