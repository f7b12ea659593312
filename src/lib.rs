//! # sccm-connector
//!
//! The connector between a packaging portal and ConfigMgr (SCCM). It polls the portal, journals
//! every command, plans each job into guarded PowerShell steps, runs them, and reports back; after
//! any crash it resumes every job from its journal.
//!
//! ## Layout
//! - `audit`: `export`, `verify`, `audit keygen` — auditable, verifiable, signed journal exports.
//! - `cli`: the command line, as raw arguments (clap); no I/O.
//! - `config`: the TOML configuration, validated; the only place defaults live.
//! - `daemon`: `sccm-connector run` — resume, poll, drive jobs, shut down cleanly.
//! - `demo`: `sccm-connector demo` — the whole product end to end against the simulators.
//! - `engine`: driving jobs, planning phases, interpreting step runs, composing results.
//! - `ops`: `sccm-connector jobs` and `replay` — a journal's jobs listed, one job explained.
//! - `inspect`: a read-only view of a journal (a private copy) for the operator and audit commands.
//! - `logging`: log output — text, JSON or CMTrace, to stderr and daily size-capped files.
//! - `metrics`: the optional loopback `/metrics` (Prometheus) and `/healthz` endpoint.
//! - `doctor`: `sccm-connector doctor` — a checklist of everything the connector needs.
//! - `service`: `sccm-connector service …` and `run --service` (Windows service).
//! - `command`: protocol-v1 commands → validated domain values, or a rejection naming the field.
//! - `package`: unpacking a package into its share folder safely and recognisably.
//! - `plan`: `sccm-connector plan` — a command's scripts, rendered, nothing run.
//! - `portal`: the portal's wire format (serde shapes, converted by hand).
//! - `share`: UNC paths → local paths (the share map) and the allowed share roots.
//! - `sdm`: SDMPackageXML (AppMgmtDigest) → an imported application's metadata.
//! - `sim`: the simulators (a ConfigMgr site behind a PowerShell host; a portal). Never used by
//!   production code.
//! - `powershell`: PowerShell's character classes and quoting.
//!
//! The durable core lives in two crates of this workspace: `journal` (the append-only,
//! hash-chained log) and `replay` (the pure job state machines). See `docs/architecture.md`.

pub mod audit;
pub mod cli;
pub mod command;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod package;
pub mod plan;
pub mod portal;
pub mod powershell;
pub mod sdm;
pub mod service;
pub mod share;
pub mod sim;
