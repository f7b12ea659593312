//! The child side of the portal crash and proxy-environment tests. The parent re-runs this test
//! binary as `<test binary> --exact portal_child::entry --nocapture` with `SCCM_PORTAL_CHILD`
//! set to a mode and its inputs in environment variables; the child reports on stdout (one
//! `<what> <n>` line per event, written as the engine would journal it) and is SIGKILLed by the
//! parent at a chosen moment. Without `SCCM_PORTAL_CHILD` the entry does nothing and passes.
//!
//! Modes:
//! - `download`: `PORTAL_URL`, `PKG_URL`, `PKG_SIZE`, `PKG_SHA256`, `DEST`, `FROM`,
//!   `CHECKPOINT_BYTES`; prints `durable <n>` after each durable checkpoint.
//! - `upload`: `PORTAL_URL`, `UPLOAD_ID`, `FILE`, `SIZE`, `SHA256`, `CHUNK`; prints
//!   `committed <n>` for each committed offset.
//! - `poll`: `PORTAL_URL`, with no proxy configured (the environment's proxy variables apply);
//!   prints `commands <n>`.

use super::portal_support::client_config;
use sccm_connector::portal::{Download, PortalClient, Upload};
use std::io::Write as _;
use std::time::Duration;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for the child"))
}

fn number(name: &str) -> u64 {
    var(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is a number"))
}

fn report(what: &str, n: u64) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} {n}").expect("the parent reads our stdout");
    out.flush().expect("the parent reads our stdout");
}

#[test]
fn entry() {
    let Ok(mode) = std::env::var("SCCM_PORTAL_CHILD") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let client = PortalClient::new(&client_config(&var("PORTAL_URL"))).expect("a client");
        match mode.as_str() {
            "download" => {
                let mut job = Download::new(
                    var("PKG_URL"),
                    var("DEST"),
                    number("PKG_SIZE"),
                    var("PKG_SHA256"),
                )
                .resume_from(number("FROM"));
                job.checkpoint_bytes = number("CHECKPOINT_BYTES");
                job.checkpoint_interval = Duration::from_secs(3600);
                let done = client
                    .download(&job, |n| report("durable", n))
                    .await
                    .expect("the download completes");
                report("downloaded", done.size);
            }
            "upload" => {
                let mut job =
                    Upload::new(var("UPLOAD_ID"), var("FILE"), number("SIZE"), var("SHA256"));
                job.chunk_size = number("CHUNK");
                client
                    .upload(&job, |n| report("committed", n))
                    .await
                    .expect("the upload completes");
                report("uploaded", number("SIZE"));
            }
            "poll" => {
                let poll = client.poll().await.expect("the poll succeeds");
                report("commands", poll.commands.len() as u64);
            }
            other => panic!("unknown child mode {other:?}"),
        }
    });
}
