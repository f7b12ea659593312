//! The connector's integration tests, one binary. Each module says what belongs in it; shared
//! helpers live in `support`.

#[path = "integration/support.rs"]
mod support;

/// `sccm-connector plan` and the golden scripts of the seed's FileZilla push and import.
#[path = "integration/plan.rs"]
mod plan;
