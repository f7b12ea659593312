//! `sccm-connector demo`, run as a newcomer would, and what it leaves behind: the real connector
//! against both simulators, one push and one import; then the printed commands used again on
//! their own — replay, export, the portal simulator and the connector on `DIR`.

use crate::support::e2e::import_command;
use crate::support::{connector, temp_dir};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

const APP: &str = "TimKosse_FileZilla_3.46.3_English(United States)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pushes_and_imports_and_leaves_a_consistent_site() {
    let dir = temp_dir();
    let keep = dir.path().join("demo");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(["demo", "--dir", keep.to_str().expect("utf-8 path")])
        .output()
        .await
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("Push of FileZilla 3.46.3 to site DEM: ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Demo Distribution Group: 2/2 distribution points"),
        "{stdout}"
    );
    assert!(
        stdout.contains("folder         DEM:\\Application\\Test 1"),
        "{stdout}"
    );
    assert!(stdout.contains("Import: ok"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{APP}  path /Test 1  version 3.46.3  vendor Tim Kosse"
        )),
        "{stdout}"
    );

    // Everything the issue promises is left in DIR.
    for name in ["connector.toml", "journal", "portal", "site", "share"] {
        assert!(
            keep.join(name).exists(),
            "{name} is missing from the demo directory"
        );
    }
    // The package was unpacked into the share.
    let package = keep.join("share/incoming").join(APP);
    assert!(package.join("Files/FileZilla_3.46.3_win64.msi").exists());

    // The site holds exactly one of each object, and its effect log accounts for its state.
    let site = keep.join("site");
    let check = connector(&[
        "sim",
        "site",
        "--site",
        site.to_str().expect("utf-8"),
        "check",
    ]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let dump = connector(&[
        "sim",
        "site",
        "--site",
        site.to_str().expect("utf-8"),
        "dump",
    ]);
    let dump: Value = serde_json::from_slice(&dump.stdout).expect("the dump is JSON");
    let count = |key: &str| {
        dump["state"][key]
            .as_array()
            .or_else(|| dump[key].as_array())
            .map_or(0, Vec::len)
    };
    assert_eq!(
        (count("applications"), count("deployments")),
        (1, 1),
        "{dump}"
    );

    // The printed replay and export commands work as printed.
    let replay = printed(&stdout, "Replay the push:");
    assert_eq!(replay[0], "replay", "{stdout}");
    assert!(replay.contains(&"--journal"), "{stdout}");
    let out = connector(&replay);
    assert!(
        out.status.success(),
        "{replay:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ensure-application"),
        "replay shows the push's steps: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let export = printed(&stdout, "Export the journal:");
    assert_eq!(&export[..1], ["export"], "{stdout}");
    assert!(
        export.windows(2).any(|w| w == ["--format", "html"]),
        "{stdout}"
    );
    let out = connector(&export);
    assert!(
        out.status.success(),
        "{export:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = export.last().expect("-o FILE");
    let html = std::fs::read_to_string(html).expect("the export was written");
    assert!(html.contains("<html"), "an HTML export");

    // The printed portal command and `run --config DIR/connector.toml` work again on their own:
    // a new command enqueued on the restarted portal is carried out by the restarted connector.
    let serve = printed(&stdout, "Serve the portal again:");
    assert_eq!(&serve[..2], ["sim", "portal"], "{stdout}");
    let mut portal = Child::start(&serve);
    let line = portal.first_line().await;
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the portal simulator says where it listens: {line}"))
        .to_string();
    let config = std::fs::read_to_string(keep.join("connector.toml")).expect("connector.toml");
    assert!(
        config.contains(&format!("base_url = '{base}'")),
        "connector.toml names the printed portal {base}:\n{config}"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let id = "demo-again-import";
    let status = http
        .post(format!("{base}/sim/commands"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&import_command(id, &[APP.to_string()], false)).expect("JSON"))
        .send()
        .await
        .expect("the restarted portal answers")
        .status();
    assert_eq!(status.as_u16(), 201, "the command was enqueued");

    let run = printed(&stdout, "Run the connector again:");
    assert_eq!(&run[..2], ["run", "--config"], "{stdout}");
    let mut daemon = Child::start(&run);
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        let body = http
            .get(format!("{base}/sim/commands/{id}"))
            .send()
            .await
            .expect("the portal answers")
            .bytes()
            .await
            .expect("a body");
        let view: Value = serde_json::from_slice(&body).expect("JSON");
        if !view["effective_result"].is_null() {
            break view["effective_result"].clone();
        }
        if let Some(status) = daemon.exited() {
            panic!("the connector exited ({status}) before the result");
        }
        assert!(
            Instant::now() < deadline,
            "no result from the restarted connector: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["import"]["applications"][0]["name"].as_str(),
        Some(APP),
        "{result}"
    );
    daemon.stop().await;
    portal.stop().await;
}

/// The arguments of the `sccm-connector …` command the summary prints after `label`.
fn printed<'a>(stdout: &'a str, label: &str) -> Vec<&'a str> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("the summary has no {label:?} line:\n{stdout}"));
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("sccm-connector"), "{line}");
    words.collect()
}

/// A `sccm-connector` child process, killed if the test fails before stopping it.
struct Child(tokio::process::Child);

impl Child {
    fn start(args: &[&str]) -> Child {
        Child(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("the binary starts"),
        )
    }

    /// Its first line of output (within 30 s).
    async fn first_line(&mut self) -> String {
        let stdout = self.0.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("a line within 30 s")
        .expect("stdout is readable");
        line.trim().to_string()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().expect("the child's status")
    }

    /// SIGTERM (a clean stop; the child must exit 0 within 60 s); elsewhere, kill.
    async fn stop(&mut self) {
        #[cfg(unix)]
        {
            crate::support::sigterm(&self.0).await;
            let status = tokio::time::timeout(Duration::from_secs(60), self.0.wait())
                .await
                .expect("a clean stop within 60 s")
                .expect("the exit status");
            assert!(status.success(), "{status}");
        }
        #[cfg(not(unix))]
        let _ = self.0.kill().await;
    }
}
