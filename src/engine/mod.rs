//! The engine: where the pure machines meet I/O.
//!
//! - `driver`: one job's loop — ask the machine, journal the intent, act, journal the outcome;
//! - `planner`: `Action::Plan` → the steps of a phase (or the command's rejection);
//! - `interpret`: a script run → the outcome event to journal;
//! - `result`: a concluded job → its one result document;
//! - `outputs`: reading journaled step outputs back;
//! - `store`: the journal and the folded jobs, kept in step (check, commit, apply);
//! - `retention`: archiving and pruning finished jobs; per-job event limits live in `store`;
//! - `spool`: the jobs' working folders and their start-up sweep.

pub mod driver;
pub mod interpret;
pub mod outputs;
pub mod planner;
pub mod result;
pub mod retention;
pub mod spool;
pub mod store;

#[cfg(test)]
mod tests;
