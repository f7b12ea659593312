//! The simulators: a ConfigMgr site behind a PowerShell host, and a portal. The demo, the tests
//! and the benchmarks use them; production code never imports this module. They are reached only
//! through the boundaries production uses: the runner spawns the PowerShell simulator exactly as
//! it spawns `powershell.exe`, and the portal client talks HTTP(S) to the portal simulator.
//!
//! - `powershell`: `sccm-connector sim powershell` — interprets generated scripts against a site.
//! - `site`: `sccm-connector sim site` — dump or seed a simulated site's state.
//! - `portal`: `sccm-connector sim portal` — protocol v1, its admin API and its faults.

pub mod portal;
pub mod powershell;
pub mod site;
