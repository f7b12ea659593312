//! Running unattended: `doctor` against the simulators with a good configuration and broken
//! ones (each failing the right check with the right hint), the metrics endpoint of an
//! in-process daemon after a push (families and values, the text format parsed), CMTrace log
//! files written by `run` and flushed at a clean stop, and `service` outside Windows.

#![cfg(unix)]

use crate::portal_support::{Portal, shared_ca, write};
use crate::support::e2e::{self, Setup};
use crate::support::temp_dir;
use sccm_connector::sim::portal::SimConfig;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const DEADLINE: Duration = Duration::from_secs(90);

/// Runs the binary without blocking the runtime the in-process portal serves on.
async fn connector(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(args)
        .output()
        .await
        .expect("the binary runs")
}

/// A portal (TLS with the test CA, or plain HTTP), a site, and a configuration for both.
struct World {
    _dir: tempfile::TempDir,
    portal: Portal,
    setup: Setup,
    ca_bundle: Option<std::path::PathBuf>,
}

impl World {
    async fn new(tls: bool, remote_ids: Vec<String>) -> World {
        let dir = temp_dir();
        let portal = if tls {
            assert!(
                remote_ids.is_empty(),
                "the TLS portal accepts any remote ID"
            );
            Portal::start_tls(&shared_ca().server(), None).await
        } else {
            let mut sim = SimConfig::new(
                "127.0.0.1:0".parse().expect("an address"),
                dir.path().join("portal"),
            );
            sim.poll_after_seconds = 1;
            sim.remote_ids = remote_ids;
            Portal::start_with(sim, temp_dir()).await
        };
        let setup = Setup::new(dir.path(), &portal.url());
        // Importing the module creates the site drive, as the real module does.
        e2e::init_site(
            &setup.site,
            &setup.share,
            &["--distribution-polls", "1", "--module-creates-drive"],
        );
        let ca_bundle = tls.then(|| write(dir.path(), "ca.pem", &shared_ca().cert_pem));
        World {
            _dir: dir,
            portal,
            setup,
            ca_bundle,
        }
    }

    /// The configuration text, with the CA bundle when the portal is TLS.
    fn toml(&self) -> String {
        let mut text = self.setup.toml();
        if let Some(ca) = &self.ca_bundle {
            text.push_str(&format!("\n[portal.tls]\nca_bundle = '{}'\n", ca.display()));
        }
        text
    }

    fn write(&self, text: &str) -> std::path::PathBuf {
        let path = self.setup.dir.join("doctor.toml");
        std::fs::write(&path, text).expect("the configuration is written");
        path
    }
}

/// `doctor` on `config`: exit code, and mark + hint by check name.
async fn doctor(config: &Path) -> (i32, String, BTreeMap<String, (String, String)>) {
    doctor_with(config, &[]).await
}

async fn doctor_with(
    config: &Path,
    extra: &[&str],
) -> (i32, String, BTreeMap<String, (String, String)>) {
    let config = config.display().to_string();
    let mut args = vec!["doctor", "--config", &config];
    args.extend_from_slice(extra);
    let out = connector(&args).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut checks = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if let Some(hint) = line.strip_prefix("    fix: ") {
            let name = last.clone().expect("a hint follows a check");
            if let Some(entry) = checks.get_mut(&name) {
                let (_, h): &mut (String, String) = entry;
                *h = hint.to_string();
            }
            continue;
        }
        let Some((mark, rest)) = line.split_once(' ') else {
            continue;
        };
        if let Some((name, _)) = rest.split_once(": ")
            && ["✔", "✖", "!", "-"].contains(&mark)
        {
            checks.insert(name.to_string(), (mark.to_string(), String::new()));
            last = Some(name.to_string());
        }
    }
    (out.status.code().unwrap_or(-1), text, checks)
}

const ALL: [&str; 10] = [
    "configuration valid",
    "journal writable",
    "portal reachable",
    "TLS valid",
    "remote ID accepted",
    "PowerShell starts",
    "ConfigurationManager module found",
    "site drive reachable",
    "share writable",
    "archive writable",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_every_check_against_the_simulators() {
    let world = World::new(true, Vec::new()).await;
    let config = world.write(&world.toml());
    let (code, text, checks) = doctor(&config).await;
    assert_eq!(code, 0, "{text}");
    for name in ALL {
        assert_eq!(
            checks.get(name).map(|c| c.0.as_str()),
            Some("✔"),
            "{name}: {text}"
        );
    }
    assert!(text.contains("all checks passed (0 warning(s))"), "{text}");
    assert!(
        text.contains("site drive reachable: DEM: answered"),
        "{text}"
    );
    // The site named explicitly, and a site that does not exist.
    let (code, text, _) = doctor_with(&config, &["--site-code", "DEM"]).await;
    assert_eq!(code, 0, "{text}");
    let (code, text, checks) = doctor_with(&config, &["--site-code", "XYZ"]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(checks["site drive reachable"].0, "✖", "{text}");
    assert!(
        checks["site drive reachable"]
            .1
            .contains("check the site code"),
        "{text}"
    );
    // Nothing was consumed or changed: the journal was not even created, the share is empty.
    assert!(!world.setup.journal().exists(), "{text}");
    assert!(e2e::share_leftovers(&world.setup.share, &[]).is_empty());
    assert!(
        world
            .portal
            .requests()
            .await
            .iter()
            .all(|r| r["method"] == "GET")
    );
}

/// `doctor` on a broken variant of a working configuration: exit 1, `check` failed with a hint
/// containing `hint`.
async fn assert_fails(world: &World, text: &str, check: &str, hint: &str) {
    let config = world.write(text);
    let (code, out, checks) = doctor(&config).await;
    assert_eq!(code, 1, "{out}");
    let (mark, got) = checks
        .get(check)
        .unwrap_or_else(|| panic!("{check}: {out}"));
    assert_eq!(mark, "✖", "{check}: {out}");
    assert!(
        got.contains(hint),
        "{check}: hint {got:?} lacks {hint:?}\n{out}"
    );
    // Every other check either ran or says why not; only the broken one fails here.
    let failed: Vec<&String> = checks
        .iter()
        .filter(|(_, (m, _))| m == "✖")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(failed, [check], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_broken_piece_with_its_fix() {
    let world = World::new(true, Vec::new()).await;
    let good = world.toml();

    // The portal: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let unreachable = good.replace(
        &format!("base_url = '{}'", world.portal.url()),
        &format!("base_url = 'https://127.0.0.1:{closed}'"),
    );
    assert_ne!(unreachable, good);
    assert_fails(
        &world,
        &unreachable,
        "portal reachable",
        "check portal.base_url",
    )
    .await;

    // TLS: the portal's CA is not trusted.
    let untrusted = good.replace("[portal.tls]\nca_bundle", "[portal.tls]\n# ca_bundle");
    assert_ne!(untrusted, good);
    assert_fails(&world, &untrusted, "TLS valid", "trust the portal's CA").await;
    // A pin that does not match: the hint names the real key.
    let pinned = good.replace(
        "[portal.tls]\n",
        &format!(
            "[portal.tls]\nspki_sha256_pins = ['{}']\n",
            "A".repeat(43) + "="
        ),
    );
    assert_ne!(pinned, good);
    assert_fails(
        &world,
        &pinned,
        "TLS valid",
        "update portal.tls.spki_sha256_pins",
    )
    .await;

    // PowerShell: the program does not exist.
    let missing = good.replace(
        &format!("program = '{}'", env!("CARGO_BIN_EXE_sccm-connector")),
        "program = '/nonexistent/powershell.exe'",
    );
    assert_ne!(missing, good);
    assert_fails(
        &world,
        &missing,
        "PowerShell starts",
        "set powershell.program",
    )
    .await;

    // The share: its local path cannot be written.
    let blocked = world.setup.dir.join("not-a-directory");
    std::fs::write(&blocked, b"a file where the share should be").expect("a file");
    let unwritable = good.replace(
        &format!("local = '{}'", world.setup.share.display()),
        &format!("local = '{}'", blocked.display()),
    );
    assert_ne!(unwritable, good);
    assert_fails(&world, &unwritable, "share writable", "Modify rights").await;

    // Retention: the archive folder would be under a file; the signing key is not a key.
    let no_archive = format!(
        "{good}\n[retention]\narchive = '{}'\n",
        blocked.join("archive").display()
    );
    assert_fails(&world, &no_archive, "archive writable", "retention.archive").await;
    let garbage = world.setup.dir.join("garbage.pem");
    std::fs::write(&garbage, b"not a key").expect("a file");
    let bad_key = format!("{good}\n[audit]\nsigning_key = '{}'\n", garbage.display());
    assert_fails(&world, &bad_key, "archive writable", "audit keygen").await;

    // An invalid configuration: every other check is skipped.
    let invalid = format!("{good}\n[metrics]\nlisten = '0.0.0.0:9464'\n");
    let config = world.write(&invalid);
    let (code, out, checks) = doctor(&config).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(checks["configuration valid"].0, "✖", "{out}");
    assert!(
        out.contains("metrics.listen") && out.contains("not a loopback address"),
        "{out}"
    );
    assert!(
        checks["configuration valid"]
            .1
            .contains("docs/operations.md"),
        "{out}"
    );
    for name in &ALL[1..] {
        assert_eq!(checks[*name].0, "-", "{name}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_an_unusable_journal_and_a_missing_module_with_their_fixes() {
    let world = World::new(true, Vec::new()).await;
    let good = world.toml();
    let journal = format!("journal = '{}'", world.setup.journal().display());
    assert!(good.contains(&journal), "{good}");
    // The archive stays where it can be written, so only the journal check fails.
    let archive = world.setup.dir.join("archive");
    let with_journal = |dir: &Path| {
        format!(
            "{}\n[retention]\narchive = '{}'\n",
            good.replace(&journal, &format!("journal = '{}'", dir.display())),
            archive.display()
        )
    };

    // The journal would be under a file: it cannot be created.
    let file = world.setup.dir.join("a-file");
    std::fs::write(&file, b"not a directory").expect("a file");
    assert_fails(
        &world,
        &with_journal(&file.join("journal")),
        "journal writable",
        "Modify rights",
    )
    .await;

    // A damaged journal: a byte of sled's log flipped, so sled's recovery cuts the log short and
    // the head anchor refuses it.
    let damaged = crate::support::audit::hostile_journal(&world.setup.dir);
    let mut bytes = std::fs::read(damaged.join("db")).expect("the log");
    let at = bytes
        .windows(b"cmd-push-happy".len())
        .position(|w| w == b"cmd-push-happy")
        .expect("the command in the log");
    bytes[at + 3] ^= 0x01;
    std::fs::write(damaged.join("db"), &bytes).expect("written");
    assert_fails(
        &world,
        &with_journal(&damaged),
        "journal writable",
        "restore the last backup",
    )
    .await;

    // The console's module is not in the folder given: the module check fails, the site check
    // is skipped.
    let config = world.write(&good);
    let missing = world.setup.dir.join("no-console");
    let (code, out, checks) = doctor_with(
        &config,
        &["--console-path", missing.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(checks["ConfigurationManager module found"].0, "✖", "{out}");
    assert!(
        checks["ConfigurationManager module found"]
            .1
            .contains("install the Configuration Manager console"),
        "{out}"
    );
    assert_eq!(checks["site drive reachable"].0, "-", "{out}");
    assert_eq!(checks["PowerShell starts"].0, "✔", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reads_an_existing_journal_without_changing_a_byte() {
    let world = World::new(true, Vec::new()).await;
    let journal = crate::support::audit::hostile_journal(&world.setup.dir);
    let text = world.toml().replace(
        &format!("journal = '{}'", world.setup.journal().display()),
        &format!("journal = '{}'", journal.display()),
    );
    let before = crate::support::fingerprint(&journal);
    // Opening the journal itself would rewrite head.anchor (its modification time at least).
    let (code, out, checks) = doctor(&world.write(&text)).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(checks["journal writable"].0, "✔", "{out}");
    assert!(out.contains("1 job(s), 0 unfinished"), "{out}");
    assert!(
        crate::support::fingerprint(&journal) == before,
        "doctor changed the journal (names, sizes, times or bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_a_refused_remote_id() {
    let world = World::new(false, vec!["a-different-remote-id".into()]).await;
    let config = world.write(&world.toml());
    let (code, out, checks) = doctor(&config).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(checks["remote ID accepted"].0, "✖", "{out}");
    assert!(out.contains("answered 401"), "{out}");
    assert!(
        checks["remote ID accepted"]
            .1
            .contains("SCCM_CONNECTOR_REMOTE_ID"),
        "{out}"
    );
    assert_eq!(checks["portal reachable"].0, "✔", "{out}");
    // Plain HTTP to the loopback simulator is a warning, not a failure.
    assert_eq!(checks["TLS valid"].0, "!", "{out}");
}

/// `GET path` on `addr`: status and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the metrics endpoint accepts");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("request sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("response read");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_string(), body.to_string())
}

/// Parses the text exposition format strictly: every sample belongs to a family declared by
/// `# HELP` and `# TYPE` before it, names and labels are well formed, values are numbers,
/// histogram buckets are cumulative and end in `+Inf` equal to `_count`. Returns
/// `name{labels}` → value.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !valid_name(name) {
                return Err(format!("bad HELP: {line}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("bad TYPE: {line}"));
            };
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("bad type: {line}"));
            }
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line: {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().map_err(|_| format!("bad value: {line}"))?,
        };
        let name = series.split('{').next().unwrap_or_default();
        if !valid_name(name) {
            return Err(format!("bad name: {line}"));
        }
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .ok_or(format!("bad labels: {line}"))?;
            for pair in inner.split("\",") {
                let (key, v) = pair.split_once("=\"").ok_or(format!("bad label: {line}"))?;
                if !valid_name(key) || v.trim_end_matches('"').contains('\n') {
                    return Err(format!("bad label: {line}"));
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(format!("sample before its TYPE: {line}"));
        }
        if samples.insert(series.to_string(), value).is_some() {
            return Err(format!("duplicate series: {line}"));
        }
    }
    // Histograms: cumulative buckets, +Inf == _count.
    for (series, value) in &samples {
        if let Some(rest) = series.strip_prefix("sccm_connector_step_duration_seconds_count{") {
            let inf = format!(
                "sccm_connector_step_duration_seconds_bucket{{{},le=\"+Inf\"}}",
                rest.trim_end_matches('}')
            );
            if samples.get(&inf) != Some(value) {
                return Err(format!("{inf} differs from {series}"));
            }
        }
    }
    Ok(samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_push_show_the_job_the_steps_and_the_polls() {
    let world = World::new(false, Vec::new()).await;
    let zip = e2e::psadt_package("MetricsApp", 64 << 10, 3, true);
    let package = world.portal.add_package(zip).await;
    let announced = json!({"package_id": package.package_id, "url": package.url, "sha256": package.sha256, "size": package.size});
    let command = e2e::push_command("push-metrics", "MetricsApp", "Applications/Ops", &announced);
    world.portal.add_command(&command.to_string()).await;
    std::fs::write(
        world.setup.dir.join("connector.toml"),
        format!("{}\n[metrics]\nlisten = '127.0.0.1:0'\n", world.toml()),
    )
    .expect("the configuration");
    let config = sccm_connector::config::Config::load(&world.setup.dir.join("connector.toml"))
        .expect("a valid configuration");
    let metrics = sccm_connector::metrics::Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(sccm_connector::daemon::run_observed(
        config,
        async {
            let _ = stopped.await;
        },
        std::sync::Arc::clone(&metrics),
    ));
    let until = Instant::now() + DEADLINE;
    let addr = loop {
        if let Some(addr) = metrics.bound() {
            break addr;
        }
        assert!(!daemon.is_finished(), "the daemon stopped early");
        assert!(
            Instant::now() < until,
            "the metrics endpoint never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    // The job is finished once its result is acknowledged and its spool folder is gone.
    let samples = loop {
        let view = world.portal.command("push-metrics").await;
        if !view["effective_result"].is_null() {
            let (status, head, body) = http_get(addr, "/metrics").await;
            assert_eq!(status, 200, "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: text/plain; version=0.0.4"),
                "{head}"
            );
            let samples = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
            if samples.get("sccm_connector_jobs{state=\"finished_ok\"}") == Some(&1.0) {
                break samples;
            }
        }
        assert!(!daemon.is_finished(), "the daemon stopped early");
        assert!(
            Instant::now() < until,
            "no finished job within {DEADLINE:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        world.portal.command("push-metrics").await["effective_result"]["status"],
        "ok"
    );
    for state in ["received", "running", "reporting", "finished_failed"] {
        assert_eq!(
            samples[&format!("sccm_connector_jobs{{state=\"{state}\"}}")],
            0.0
        );
    }
    assert_eq!(samples["sccm_connector_outbox_depth"], 0.0);
    assert!(samples["sccm_connector_polls_total"] >= 1.0);
    assert_eq!(samples["sccm_connector_poll_errors_total"], 0.0);
    assert!(samples["sccm_connector_journal_size_bytes"] > 0.0);
    assert!(samples["sccm_connector_last_poll_timestamp_seconds"] > 1.7e9);
    for step in [
        "ensure-application",
        "ensure-deployment-type",
        "ensure-deployment",
    ] {
        let count = samples
            .get(&format!(
                "sccm_connector_step_duration_seconds_count{{step=\"{step}\"}}"
            ))
            .unwrap_or_else(|| panic!("no histogram for {step}: {samples:?}"));
        assert!(*count >= 1.0, "{step}");
    }
    // Labelled by the steps' stable names: no per-object detail in a label.
    for series in samples.keys() {
        if let Some(rest) = series.strip_prefix("sccm_connector_step_duration_seconds") {
            assert!(!rest.contains(' '), "{series}");
        }
    }
    let (status, _, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["unfinished_jobs"], 0);
    let (status, _, _) = http_get(addr, "/nothing").await;
    assert_eq!(status, 404);

    let _ = stop.send(());
    daemon
        .await
        .expect("the daemon task")
        .expect("the daemon stops cleanly");
    // The endpoint closes with the daemon.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_cmtrace_log_files_flushed_at_a_clean_stop() {
    let world = World::new(false, Vec::new()).await;
    let logs = world.setup.dir.join("logs");
    let config = world.write(&format!(
        "{}\n[logging]\nformat = 'cmtrace'\ndirectory = '{}'\nmax_file_mb = 1\nkeep_files = 3\n",
        world.toml(),
        logs.display()
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(["run", "--config", &config.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run starts");
    let until = Instant::now() + DEADLINE;
    // Started once the portal saw a poll.
    world
        .portal
        .wait_for_requests(1, "GET", "/api/connector/v1/commands")
        .await;
    crate::support::sigterm(&child).await;
    let status = tokio::time::timeout(until - Instant::now(), child.wait())
        .await
        .expect("run stops in time")
        .expect("run exits");
    assert!(status.success(), "{status:?}");
    let files: Vec<String> = std::fs::read_dir(&logs)
        .expect("the log directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("sccm-connector-") && files[0].ends_with(".log"),
        "{files:?}"
    );
    let text = std::fs::read_to_string(logs.join(&files[0])).expect("the log file");
    for line in text.lines() {
        let (message, attributes) = line
            .strip_prefix("<![LOG[")
            .and_then(|l| l.split_once("]LOG]!><"))
            .unwrap_or_else(|| panic!("not a CMTrace line: {line}"));
        assert!(!message.is_empty());
        let attributes = attributes.strip_suffix('>').expect("closed");
        let keys: Vec<&str> = attributes
            .split("\" ")
            .map(|a| a.split_once("=\"").expect("key=\"value\"").0)
            .collect();
        assert_eq!(
            keys,
            [
                "time",
                "date",
                "component",
                "context",
                "type",
                "thread",
                "file"
            ],
            "{line}"
        );
        let time = attributes
            .strip_prefix("time=\"")
            .and_then(|t| t.get(..16))
            .expect("a time");
        let b = time.as_bytes();
        assert!(
            b[2] == b':' && b[5] == b':' && b[8] == b'.' && (b[12] == b'+' || b[12] == b'-'),
            "{line}"
        );
    }
    assert!(
        text.contains("]LOG]!>") && text.contains("connector started"),
        "{text}"
    );
    // Written by the last event before exit: the non-blocking writer was flushed.
    assert!(text.contains("connector stopped"), "{text}");
    assert!(
        text.contains("component=\"sccm_connector::daemon\""),
        "{text}"
    );
}

#[tokio::test]
async fn service_outside_windows_points_at_the_systemd_unit() {
    for args in [
        &["service", "start"][..],
        &["service", "install", "--config", "x.toml"][..],
        &["run", "--config", "x.toml", "--service"][..],
    ] {
        let out = connector(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("systemd") && err.contains("docs/operations.md"),
            "{err}"
        );
    }
}
