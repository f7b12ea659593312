//! The connector's integration tests, one binary. Each module says what belongs in it; shared
//! helpers live in `support`.

#[path = "integration/support.rs"]
mod support;

/// `sccm-connector plan` and the golden scripts of the seed's FileZilla push and import.
#[path = "integration/plan.rs"]
mod plan;

/// The PowerShell runner against real misbehaving child processes, per step and in a session.
#[path = "integration/runner.rs"]
mod runner;

/// The proof that no portal value becomes code: every generated script through the checker,
/// with hostile values.
#[path = "integration/script_proof.rs"]
mod script_proof;
