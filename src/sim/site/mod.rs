//! `sccm-connector sim site` (being built; see the open issues).

use std::ffi::OsString;
use std::process::ExitCode;

/// Entry point of `sccm-connector sim site`.
pub fn main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("sccm-connector sim site: this simulator is not built yet");
    ExitCode::from(2)
}
