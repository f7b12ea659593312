//! Fault plans: which call of which cmdlet misbehaves, and how.
//!
//! A plan is a list of rules, each naming a cmdlet (or `*`), the calls it hits — by call number
//! (1-based, counted per cmdlet in the site state, so per-step processes share the count) or by
//! probability (decided by a hash of the plan's seed, the cmdlet and the call number, so a run is
//! reproducible and no random state needs saving) — and the fault:
//!
//! | kind | what the host does |
//! |---|---|
//! | `fail` | the cmdlet throws `message` (a catchable error, as ConfigMgr's own) |
//! | `hang` | the cmdlet never returns (until the host is killed) |
//! | `crash` | the cmdlet's effect is committed, then the host dies (SIGABRT) before printing anything |
//! | `garbage` | the host prints `text` (default: CLIXML and a truncated JSON) instead of the result and exits 0 |
//! | `exit` | the host exits at once with `code` (default 3) |
//! | `slow` | the cmdlet takes `ms` longer, then behaves normally |
//!
//! `after_effect: true` makes `fail`, `garbage` and `exit` happen after the cmdlet's effect is
//! committed (`crash` always does; `hang` and `slow` happen before).
//!
//! On the command line a rule is `CMDLET@N[,N…][+after]=KIND[:ARG]` or
//! `CMDLET%P[+after]=KIND[:ARG]`, e.g. `New-CMApplication@2=fail:Access is denied.`,
//! `Get-CMDistributionStatus%0.5=slow:200`, `Move-CMObject@1=crash`.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    Fail {
        message: String,
    },
    Hang,
    Crash,
    Garbage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    Exit {
        #[serde(default = "default_exit_code")]
        code: i32,
    },
    Slow {
        ms: u64,
    },
}

fn default_exit_code() -> i32 {
    3
}

/// What a garbage fault prints when the rule gives no text.
pub const DEFAULT_GARBAGE: &str = "#< CLIXML\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T>\n{\"ok\":tr";

impl Fault {
    /// Whether the fault strikes after the cmdlet's effect is committed.
    pub fn after_effect(&self, rule_after: bool) -> bool {
        match self {
            Fault::Crash => true,
            Fault::Hang | Fault::Slow { .. } => false,
            _ => rule_after,
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A cmdlet name (case-insensitive) or `*`.
    pub cmdlet: String,
    /// Call numbers (1-based) the rule hits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<u64>,
    /// Or: the probability (0–1) that any call is hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    pub fault: Fault,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_effect: bool,
}

/// A fault plan (`faults.json`, `--faults FILE`, `--fault RULE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Seeds the probability decisions.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A fault plan that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultPlanError {
    #[error("fault plan {path}: {message}")]
    File { path: String, message: String },
    #[error("fault rule {rule:?}: {message}")]
    Rule { rule: String, message: String },
}

/// A decided fault for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub fault: Fault,
    pub after_effect: bool,
    /// Which rule (0-based) decided it.
    pub rule: usize,
}

/// SplitMix64: a well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic number in [0, 1) for (seed, cmdlet, call, rule).
fn draw(seed: u64, cmdlet: &str, call: u64, rule: usize) -> f64 {
    let mut h = mix(seed);
    for b in cmdlet.to_lowercase().bytes() {
        h = mix(h ^ u64::from(b));
    }
    h = mix(h ^ call);
    h = mix(h ^ rule as u64);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultPlan {
    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<FaultPlan, FaultPlanError> {
        let fail = |message: String| FaultPlanError::File {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let plan: FaultPlan = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        plan.validate().map_err(fail)?;
        Ok(plan)
    }

    fn validate(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.cmdlet.is_empty() {
                return Err(format!("rule {i}: no cmdlet"));
            }
            match (rule.calls.is_empty(), rule.probability) {
                (true, None) => {
                    return Err(format!("rule {i}: give calls or a probability"));
                }
                (false, Some(_)) => {
                    return Err(format!("rule {i}: give calls or a probability, not both"));
                }
                (_, Some(p)) if !(0.0..=1.0).contains(&p) => {
                    return Err(format!("rule {i}: probability {p} is not within 0..1"));
                }
                _ => {}
            }
            if rule.calls.contains(&0) {
                return Err(format!("rule {i}: call numbers start at 1"));
            }
        }
        Ok(())
    }

    /// Parses a command-line rule (`CMDLET@N,N+after=KIND:ARG`, `CMDLET%P=KIND`).
    pub fn parse_rule(text: &str) -> Result<Rule, FaultPlanError> {
        let fail = |message: &str| FaultPlanError::Rule {
            rule: text.to_string(),
            message: message.to_string(),
        };
        let (target, fault) = text
            .split_once('=')
            .ok_or_else(|| fail("expected CMDLET@CALLS=KIND or CMDLET%P=KIND"))?;
        let (target, after_effect) = match target.strip_suffix("+after") {
            Some(t) => (t, true),
            None => (target, false),
        };
        let (cmdlet, calls, probability) = if let Some((c, n)) = target.split_once('@') {
            let calls = n
                .split(',')
                .map(|s| s.trim().parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| fail("call numbers are positive integers"))?;
            (c, calls, None)
        } else if let Some((c, p)) = target.split_once('%') {
            let p = p
                .trim()
                .parse::<f64>()
                .map_err(|_| fail("the probability is a number within 0..1"))?;
            (c, Vec::new(), Some(p))
        } else {
            return Err(fail("name the calls (@N,N) or a probability (%P)"));
        };
        let (kind, arg) = match fault.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (fault, None),
        };
        let number = |what: &str| -> Result<Option<i64>, FaultPlanError> {
            arg.map(|a| a.trim().parse::<i64>())
                .transpose()
                .map_err(|_| fail(what))
        };
        let fault = match kind.to_lowercase().as_str() {
            "fail" => Fault::Fail {
                message: arg
                    .unwrap_or("The SMS Provider reported an error.")
                    .to_string(),
            },
            "hang" => Fault::Hang,
            "crash" => Fault::Crash,
            "garbage" => Fault::Garbage {
                text: arg.map(str::to_string),
            },
            "exit" => Fault::Exit {
                code: number("the exit code is an integer")?.unwrap_or(3) as i32,
            },
            "slow" => Fault::Slow {
                ms: number("slow:MS takes milliseconds")?
                    .ok_or_else(|| fail("slow:MS takes milliseconds"))?
                    .max(0) as u64,
            },
            _ => return Err(fail("the kind is fail, hang, crash, garbage, exit or slow")),
        };
        let rule = Rule {
            cmdlet: cmdlet.trim().to_string(),
            calls,
            probability,
            fault,
            after_effect,
        };
        FaultPlan {
            seed: 0,
            rules: vec![rule.clone()],
        }
        .validate()
        .map_err(|m| fail(&m))?;
        Ok(rule)
    }

    /// The fault for call number `call` (1-based) of `cmdlet`, if any rule hits it.
    pub fn decide(&self, cmdlet: &str, call: u64) -> Option<Decision> {
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            let named = rule.cmdlet == "*" || rule.cmdlet.eq_ignore_ascii_case(cmdlet);
            let hit = named
                && (rule.calls.contains(&call)
                    || rule
                        .probability
                        .is_some_and(|p| draw(self.seed, cmdlet, call, i) < p));
            hit.then(|| Decision {
                after_effect: rule.fault.after_effect(rule.after_effect),
                fault: rule.fault.clone(),
                rule: i,
            })
        })
    }

    /// `self` followed by `other`'s rules (the seed of `other` wins if not 0).
    pub fn merge(mut self, other: FaultPlan) -> FaultPlan {
        if other.seed != 0 {
            self.seed = other.seed;
        }
        self.rules.extend(other.rules);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_from_the_command_line() {
        let rule = FaultPlan::parse_rule("New-CMApplication@1,3+after=fail:Access is denied.")
            .expect("parses");
        assert_eq!(rule.calls, vec![1, 3]);
        assert!(rule.after_effect);
        assert_eq!(
            rule.fault,
            Fault::Fail {
                message: "Access is denied.".into()
            }
        );
        let rule = FaultPlan::parse_rule("*%0.25=slow:200").expect("parses");
        assert_eq!(rule.probability, Some(0.25));
        assert_eq!(rule.fault, Fault::Slow { ms: 200 });
        assert_eq!(
            FaultPlan::parse_rule("X@1=exit").expect("parses").fault,
            Fault::Exit { code: 3 }
        );
        assert_eq!(
            FaultPlan::parse_rule("X@1=garbage:zzz")
                .expect("parses")
                .fault,
            Fault::Garbage {
                text: Some("zzz".into())
            }
        );
        for bad in [
            "X=fail",
            "X@0=fail",
            "X@a=fail",
            "X%2=fail",
            "X@1=explode",
            "X@1=slow",
            "X@1",
        ] {
            assert!(FaultPlan::parse_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_by_call_number_and_by_probability() {
        let plan = FaultPlan {
            seed: 7,
            rules: vec![
                FaultPlan::parse_rule("New-CMApplication@2=crash").expect("rule"),
                FaultPlan::parse_rule("get-cmfolder%0.5=fail:x").expect("rule"),
            ],
        };
        assert_eq!(plan.decide("New-CMApplication", 1), None);
        let d = plan.decide("new-cmapplication", 2).expect("hit");
        assert_eq!(d.fault, Fault::Crash);
        assert!(d.after_effect, "a crash always follows the effect");
        let hits = (1..=1000)
            .filter(|n| plan.decide("Get-CMFolder", *n).is_some())
            .count();
        assert!((400..600).contains(&hits), "{hits} of 1000");
        // Reproducible: the same seed decides the same calls.
        let again: Vec<bool> = (1..=50)
            .map(|n| plan.decide("Get-CMFolder", n).is_some())
            .collect();
        let first: Vec<bool> = (1..=50)
            .map(|n| plan.decide("Get-CMFolder", n).is_some())
            .collect();
        assert_eq!(again, first);
        let other_seed = FaultPlan {
            seed: 8,
            ..plan.clone()
        };
        let other: Vec<bool> = (1..=50)
            .map(|n| other_seed.decide("Get-CMFolder", n).is_some())
            .collect();
        assert_ne!(other, first);
    }

    #[test]
    fn plan_files_are_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faults.json");
        std::fs::write(
            &path,
            r#"{"seed":1,"rules":[{"cmdlet":"Move-CMObject","calls":[1],"fault":{"kind":"hang"}}]}"#,
        )
        .expect("write");
        let plan = FaultPlan::load(&path).expect("valid");
        assert_eq!(plan.rules[0].fault, Fault::Hang);
        std::fs::write(
            &path,
            r#"{"rules":[{"cmdlet":"X","fault":{"kind":"hang"}}]}"#,
        )
        .expect("write");
        assert!(FaultPlan::load(&path).is_err());
        std::fs::write(&path, r#"{"rules":[],"extra":1}"#).expect("write");
        assert!(FaultPlan::load(&path).is_err());
    }
}
