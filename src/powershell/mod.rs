//! PowerShell: the language facts, quoting, and (later) script generation and the runner.
//!
//! - `chars`: PowerShell's Unicode-aware character classes.
//! - `quote`: outside values as single-quoted literals, and reading them back.
//! - `script`: the fixed shape of a generated script and its builder (BOM, preamble, Inputs).
//! - `push`, `import`: the guarded steps of each job kind.
//! - `verify`: the sound checker every generated script passes before it may run.
//! - `output`: a step's printed output → its one JSON result, strictly.
//! - `runner`: per-step processes or a per-job session host; timeouts kill the process tree.

pub mod chars;
pub mod import;
pub mod output;
pub mod push;
pub mod quote;
pub mod runner;
pub mod script;
pub mod verify;
