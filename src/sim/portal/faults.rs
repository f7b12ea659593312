//! The simulator's fault plan (`POST /sim/faults`): rules matched against connector requests
//! (`/api/…` only; the admin API is never faulted), each applying a number of times. The plan
//! lives in memory: a restarted simulator starts with none. Documented in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

/// A fault plan: rules tried in order; the first that matches (and is not skipping) applies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub faults: Vec<FaultRule>,
}

/// One rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub fault: Fault,
    /// Requests whose path starts with this (default `/api/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Only this method (default any).
    #[serde(default)]
    pub method: Option<String>,
    /// Matching requests let through untouched before the rule applies (default 0).
    #[serde(default)]
    pub skip: u32,
    /// Matching requests the rule applies to (default 1).
    #[serde(default = "default_times")]
    pub times: u32,
}

fn default_path() -> String {
    "/api/".into()
}

fn default_times() -> u32 {
    1
}

/// What happens to a faulted request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `status` (e.g. 500, 503, 401, 429) without handling; `Retry-After` if given.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait `ms` before handling — or, with `after_bytes`, pause a download body after that
    /// many bytes.
    Delay {
        ms: u64,
        #[serde(default)]
        after_bytes: Option<u64>,
    },
    /// Close the connection abruptly: a download body after `after_bytes` bytes; an upload
    /// after `after_bytes` bytes of its body were committed; any other request before it is
    /// handled.
    Reset {
        #[serde(default)]
        after_bytes: u64,
    },
    /// End a download body after `after_bytes` bytes, short of its `Content-Length`.
    Truncate { after_bytes: u64 },
    /// Handle the request (its effects are kept), then close the connection without answering.
    DropResponse,
    /// A poll returns the pending command `command_id` (or every pending one) twice.
    DuplicateDelivery {
        #[serde(default)]
        command_id: Option<String>,
    },
    /// A download serves one byte flipped (the first one served), so its SHA-256 is wrong.
    WrongSha256,
    /// A download ignores its `Range` header and answers `200` with the whole package.
    IgnoreRange,
}

impl FaultPlan {
    /// The fault for a request, consuming one use of the rule that applies.
    pub fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        let mut applied = None;
        for rule in &mut self.faults {
            if rule.times == 0 || !path.starts_with(&rule.path) {
                continue;
            }
            if let Some(m) = &rule.method
                && !m.eq_ignore_ascii_case(method)
            {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            rule.times -= 1;
            applied = Some(rule.fault.clone());
            break;
        }
        self.faults.retain(|rule| rule.times > 0);
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_skip_and_run_out() {
        let mut plan: FaultPlan = serde_json::from_str(
            r#"{"faults": [
                {"kind": "status", "status": 503, "times": 2, "path": "/api/connector/v1/commands", "method": "GET"},
                {"kind": "truncate", "after_bytes": 10, "skip": 1, "path": "/api/connector/v1/packages/"}
            ]}"#,
        )
        .expect("a valid plan");
        let poll = "/api/connector/v1/commands";
        let package = "/api/connector/v1/packages/p1";
        assert_eq!(plan.take("POST", poll), None);
        assert!(matches!(
            plan.take("GET", poll),
            Some(Fault::Status { status: 503, .. })
        ));
        assert_eq!(plan.take("GET", package), None, "skipped once");
        assert_eq!(
            plan.take("GET", package),
            Some(Fault::Truncate { after_bytes: 10 })
        );
        assert!(plan.take("GET", poll).is_some());
        assert_eq!(plan.take("GET", poll), None);
        assert!(plan.faults.is_empty());
    }
}
