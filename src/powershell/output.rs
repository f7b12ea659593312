//! Reading what a step script printed: exactly one JSON result object, strictly.
//!
//! A step script prints one line, `{"ok":true,…}` (exit 0) or `{"ok":false,"error":…}` (exit 1).
//! Real hosts may add other lines (warnings written to the host, module notices); those are kept
//! as `noise` for the journal. Anything else — no result, two results, a result that contradicts
//! the exit code, a non-object — is garbage.

use serde_json::{Map, Value};

/// A step's parsed result.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The result object, `ok` included.
    pub object: Map<String, Value>,
    /// Other non-empty lines the host printed.
    pub noise: Vec<String>,
}

impl StepResult {
    pub fn ok(&self) -> bool {
        self.object
            .get("ok")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The result as compact JSON text (what the journal keeps).
    pub fn json(&self) -> String {
        Value::Object(self.object.clone()).to_string()
    }
}

/// Why printed output is not a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("the script printed no result object")]
    NoResult,
    #[error("the script printed {0} result objects; exactly one is expected")]
    SeveralResults(usize),
    #[error("the script's output is not valid UTF-8")]
    NotUtf8,
    #[error("the result says ok={ok} but the exit code is {exit_code}")]
    Contradiction { ok: bool, exit_code: i32 },
}

/// Parses `stdout` given the process's exit code.
pub fn parse(stdout: &[u8], exit_code: i32) -> Result<StepResult, OutputError> {
    let text = std::str::from_utf8(stdout).map_err(|_| OutputError::NotUtf8)?;
    let text = text.trim_start_matches('\u{FEFF}');
    let mut results = Vec::new();
    let mut noise = Vec::new();
    for line in text
        .lines()
        .map(|l| l.trim_start_matches('\u{FEFF}').trim())
        .filter(|l| !l.is_empty())
    {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) if object.get("ok").is_some_and(Value::is_boolean) => {
                results.push(object)
            }
            _ => noise.push(line.to_string()),
        }
    }
    let object = match results.len() {
        0 => return Err(OutputError::NoResult),
        1 => results.remove(0),
        n => return Err(OutputError::SeveralResults(n)),
    };
    let result = StepResult { object, noise };
    let ok = result.ok();
    if (ok && exit_code != 0) || (!ok && exit_code == 0) {
        return Err(OutputError::Contradiction { ok, exit_code });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_result_among_noise() {
        let out = "\u{FEFF}WARNING: module loaded\r\n{\"ok\":true,\"ci_id\":16777541}\r\n\r\n";
        let result = parse(out.as_bytes(), 0).expect("a result");
        assert!(result.ok());
        assert_eq!(result.object["ci_id"], 16777541);
        assert_eq!(result.noise, vec!["WARNING: module loaded".to_string()]);
        assert_eq!(result.json(), "{\"ci_id\":16777541,\"ok\":true}");
    }

    #[test]
    fn a_failure_result() {
        let result = parse(
            b"{\"ok\":false,\"error\":\"Access denied\",\"line\":30}\n",
            1,
        )
        .expect("a result");
        assert!(!result.ok());
    }

    #[test]
    fn garbage() {
        assert_eq!(parse(b"", 0), Err(OutputError::NoResult));
        assert_eq!(
            parse(b"hello\n[1,2]\n{\"x\":1}\n", 0),
            Err(OutputError::NoResult)
        );
        assert_eq!(parse(b"{\"ok\":true,\"a\":", 0), Err(OutputError::NoResult));
        assert_eq!(
            parse(b"{\"ok\":true}\n{\"ok\":true}\n", 0),
            Err(OutputError::SeveralResults(2))
        );
        assert_eq!(
            parse(b"{\"ok\":true}\n", 1),
            Err(OutputError::Contradiction {
                ok: true,
                exit_code: 1
            })
        );
        assert_eq!(
            parse(b"{\"ok\":false}\n", 0),
            Err(OutputError::Contradiction {
                ok: false,
                exit_code: 0
            })
        );
        assert_eq!(parse(b"\xff\xfe{}", 0), Err(OutputError::NotUtf8));
    }
}
