//! The engine: where the pure machines meet I/O. (Its driving loop arrives with the daemon.)
//!
//! - `planner`: `Action::Plan` → the steps of a phase (or the command's rejection);
//! - `interpret`: a script run → the outcome event to journal;
//! - `result`: a concluded job → its one result document;
//! - `outputs`: reading journaled step outputs back;
//! - `store`: the journal and the folded jobs, kept in step (check, commit, apply).

pub mod interpret;
pub mod outputs;
pub mod planner;
pub mod result;
pub mod store;

#[cfg(test)]
mod tests;
