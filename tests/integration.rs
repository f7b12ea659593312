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

/// Shared helpers of the portal tests: the simulator in process, a test CA, tinyproxy, children.
#[path = "integration/portal_support.rs"]
mod portal_support;

/// The portal client against the simulator: exact command bytes, acks, results, retries, 401.
#[path = "integration/portal_client.rs"]
mod portal_client;

/// Resumable downloads and uploads against the simulator's faults.
#[path = "integration/portal_transfer.rs"]
mod portal_transfer;

/// TLS with a test CA: bundle, refusal, SPKI pins, host names, mutual TLS.
#[path = "integration/portal_tls.rs"]
mod portal_tls;

/// Through a real proxy (tinyproxy) with basic authentication, and the proxy environment.
#[path = "integration/portal_proxy.rs"]
mod portal_proxy;

/// The daemon through tinyproxy: the proxy killed mid-download and restarted (one result), and
/// its password in no log, journal file or export.
#[path = "integration/portal_proxy_outage.rs"]
mod portal_proxy_outage;

/// Crashes: the client killed mid-download and mid-upload; the portal down while a result waits.
#[path = "integration/portal_crash.rs"]
mod portal_crash;

/// `sccm-connector demo` end to end, and what it leaves behind.
#[path = "integration/demo.rs"]
mod demo;

/// The site simulator through the real runner: the FileZilla push and import per step and in a
/// session, `sim site dump`, durability under SIGKILL, concurrent hosts, faults, error texts,
/// hostile values and seeded estates.
#[path = "integration/sim_site.rs"]
mod sim_site;

/// Fault injection end to end: the daemon against portal faults and PowerShell faults from the
/// simulators' fault plans, each ending in the right result without loss.
#[path = "integration/faults.rs"]
mod faults;

/// Running unattended: doctor against the simulators (good and broken configurations), the
/// metrics endpoint, CMTrace log files, `service` outside Windows.
#[path = "integration/operations.rs"]
mod operations;

/// `jobs` and `replay` on real journals (a failed push; a connector still running): steps,
/// exact scripts, diagnosis, `--journal` and `--config`, the journal untouched, exit code 2.
#[path = "integration/diagnosis.rs"]
mod diagnosis;

/// Audit exports (jsonl, csv, html) of a real journal and a hostile one: verification, the
/// tamper suite, filters, signatures (with openssl), damaged journals, Chromium rendering.
#[path = "integration/audit.rs"]
mod audit;

/// Retention end to end: a finished job archived (signed, verifiable) and pruned while the daemon
/// runs; the operator's view of it; its command delivered again and not run.
#[path = "integration/retention.rs"]
mod retention;

/// The engine end to end: progress posts, results through portal downtime, job slots released
/// while waiting, prompt shutdown, broken applications in an import, a vanished spool archive.
#[path = "integration/engine.rs"]
mod engine;
