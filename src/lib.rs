//! # sccm-connector
//!
//! The connector between a packaging portal and ConfigMgr (SCCM). It polls the portal, journals
//! every command, plans each job into guarded PowerShell steps, runs them, and reports back; after
//! any crash it resumes every job from its journal.
//!
//! ## Layout
//! - `cli`: the command line, as raw arguments (clap); no I/O.
//! - `command`: protocol-v1 commands → validated domain values, or a rejection naming the field.
//! - `plan`: `sccm-connector plan` — a command's scripts, rendered, nothing run.
//! - `portal`: the portal's wire format (serde shapes, converted by hand).
//! - `sdm`: SDMPackageXML (AppMgmtDigest) → an imported application's metadata.
//! - `sim`: the simulators (a ConfigMgr site behind a PowerShell host; a portal). Never used by
//!   production code.
//! - `powershell`: PowerShell's character classes and quoting.
//!
//! The durable core lives in two crates of this workspace: `journal` (the append-only,
//! hash-chained log) and `replay` (the pure job state machines). See `docs/architecture.md`.

pub mod cli;
pub mod command;
pub mod plan;
pub mod portal;
pub mod sdm;
pub mod sim;
pub mod powershell;
