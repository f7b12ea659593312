//! PowerShell: the language facts, quoting, and (later) script generation and the runner.
//!
//! - `chars`: PowerShell's Unicode-aware character classes.
//! - `quote`: outside values as single-quoted literals, and reading them back.
//! - `verify`: the sound checker every generated script passes before it may run.

pub mod chars;
pub mod quote;
pub mod verify;
