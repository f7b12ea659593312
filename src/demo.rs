//! `sccm-connector demo`: the whole product, end to end, with no setup.
//!
//! In a temporary directory (or `--dir DIR`, kept for exploring): starts the portal simulator,
//! initialises a simulated ConfigMgr site (site `DEM`, "Demo Distribution Group" with two DPs,
//! "Demo devices"), registers a PSADT-shaped FileZilla package, enqueues the seed's push (Case 1)
//! and import (Case 2), and runs the real connector — the same daemon `run` starts, driving the
//! site simulator exactly as it would drive `powershell.exe` — until both results are
//! acknowledged. Then it prints what exists in the site, the import list, and where the journal
//! is, with the commands to replay and export it. With `--dir`, `DIR/connector.toml`,
//! `DIR/journal/`, `DIR/portal/`, `DIR/site/` and `DIR/share/` stay, and the printed
//! `sim portal --data DIR/portal` (the portal runs on a fixed port outside the ephemeral range,
//! the one `connector.toml` names; the simulator remembers it in `DIR/portal/listen`) and
//! `run --config DIR/connector.toml` work again on their own.

use crate::config::Config;
use crate::sim::portal::{SimConfig, SimHandle, serve};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PUSH: &str = include_str!("../tests/fixtures/commands/push-filezilla.json");
const IMPORT: &str = include_str!("../tests/fixtures/commands/import-filezilla.json");
const SHARE_ROOT: &str = "\\\\WIN-2HDJCBHRRVB\\Sources$";
const REMOTE_ID: &str = "6f1c2a9e-4b7d-4e0a-9c3f-2d8e5a7b1c04";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Setup(String),
    #[error("the connector failed: {0}")]
    Connector(String),
    #[error("no result after {0} s; see the journal")]
    Timeout(u64),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// A PSADT-shaped package: the wrapper, the toolkit, and the MSI under `Files/`.
pub fn filezilla_package() -> Result<Vec<u8>, DemoError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    let mut msi = Vec::with_capacity(2 << 20);
    let mut x: u64 = 0x46_69_6C_65_5A_69_6C_6C;
    while msi.len() < 2 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        msi.extend_from_slice(&x.to_le_bytes());
    }
    let files: [(&str, &[u8]); 5] = [
        ("Deploy-Application.exe", b"MZ\x90\x00 PSAppDeployToolkit launcher (demo)"),
        (
            "Deploy-Application.ps1",
            b"[CmdletBinding()]\r\nParam ([ValidateSet('Install','Uninstall')][string]$DeploymentType = 'Install')\r\n$appVendor = 'Tim Kosse'\r\n$appName = 'FileZilla'\r\n$appVersion = '3.46.3'\r\nExecute-MSI -Action $DeploymentType -Path 'FileZilla_3.46.3_win64.msi'\r\n",
        ),
        ("AppDeployToolkit/AppDeployToolkitMain.ps1", b"# PSAppDeployToolkit main (demo)\r\n"),
        ("AppDeployToolkit/AppDeployToolkitConfig.xml", b"<AppDeployToolkit_Config><Toolkit_Options/></AppDeployToolkit_Config>"),
        ("Files/FileZilla_3.46.3_win64.msi", &msi),
    ];
    for (name, bytes) in files {
        zip.start_file(name, options)
            .map_err(setup("building the package"))?;
        zip.write_all(bytes)
            .map_err(setup("building the package"))?;
    }
    Ok(zip
        .finish()
        .map_err(setup("building the package"))?
        .into_inner())
}

fn toml_string(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// Writes `DIR/connector.toml` for a portal at `portal_url`.
fn write_config(dir: &Path, portal_url: &str, exe: &Path) -> Result<PathBuf, DemoError> {
    let site = dir.join("site");
    let args = ["sim", "powershell", "--site"]
        .iter()
        .map(|a| format!("'{a}'"))
        .chain([toml_string(&site)])
        .chain(
            [
                "--",
                "-NoLogo",
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
            ]
            .iter()
            .map(|a| format!("'{a}'")),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "# Written by `sccm-connector demo`: the connector driving the simulators.\n\
         [portal]\nbase_url = '{portal_url}'\nremote_id = '{REMOTE_ID}'\npoll_interval_seconds = 1\n\n\
         [powershell]\nprogram = {exe}\nargs = [{args}]\nmode = 'session'\nstep_timeout_seconds = 120\n\n\
         [storage]\njournal = {journal}\nspool = {spool}\n\n\
         [shares]\nallowed_roots = ['{SHARE_ROOT}\\incoming']\n[[shares.map]]\nunc = '{SHARE_ROOT}'\nlocal = {share}\n\n\
         [engine]\nconcurrency = 2\nretry_initial_seconds = 1\nretry_max_seconds = 5\ndistribution_poll_seconds = 1\ndistribution_timeout_minutes = 5\n",
        exe = toml_string(exe),
        journal = toml_string(&dir.join("journal")),
        spool = toml_string(&dir.join("spool")),
        share = toml_string(&dir.join("share")),
    );
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).map_err(setup("writing connector.toml"))?;
    Ok(path)
}

/// The `poll_after_seconds` the demo's portal answers (the printed `sim portal` command repeats it).
const POLL_AFTER: u64 = 1;

/// First port tried for the portal simulator; outside the ephemeral ranges of Linux
/// (32768–60999) and Windows (49152–65535), so the operating system does not hand the port to
/// some outgoing connection once the demo is over.
const PORT_BASE: u16 = 20000;
/// How many ports above [`PORT_BASE`] the demo may use.
const PORT_SPAN: u16 = 10000;

/// Starts the portal simulator on `data`, on a fixed free port: the port is written into
/// `connector.toml` and remembered by the simulator in its data (`sim portal --data` alone), so both
/// still agree when the demo directory is used again. The start is spread by the process id and
/// the clock, so demos run at the same time (tests) do not chase the same ports.
async fn serve_portal(data: &Path) -> Result<SimHandle, DemoError> {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    let start = (seed % u64::from(PORT_SPAN)) as u16;
    let mut last = String::new();
    for i in 0..64u16 {
        let port = PORT_BASE + (start + i * 157) % PORT_SPAN;
        let mut sim = SimConfig::new(([127, 0, 0, 1], port).into(), data);
        sim.poll_after_seconds = POLL_AFTER;
        match serve(sim).await {
            Ok(handle) => return Ok(handle),
            Err(e) => last = e,
        }
    }
    Err(DemoError::Setup(format!(
        "starting the portal simulator: no free port from {PORT_BASE} to {}: {last}",
        PORT_BASE + PORT_SPAN - 1
    )))
}

/// Runs `sccm-connector <args>` and returns its stdout.
fn connector(exe: &Path, args: &[&str]) -> Result<String, DemoError> {
    let output = std::process::Command::new(exe)
        .args(args)
        .output()
        .map_err(setup("starting sccm-connector"))?;
    if !output.status.success() {
        return Err(DemoError::Setup(format!(
            "sccm-connector {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the demo in `dir` (created if missing) and returns the summary to print.
pub async fn run(dir: &Path) -> Result<String, DemoError> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(setup("locating the sccm-connector binary"))?;
    std::fs::create_dir_all(dir).map_err(setup("creating the demo directory"))?;
    let dir = dir
        .canonicalize()
        .map_err(setup("resolving the demo directory"))?;
    let site = dir.join("site");
    let share = dir.join("share");
    std::fs::create_dir_all(share.join("incoming")).map_err(setup("creating the share"))?;

    // The site: DEM, its DP group and collection, the share mapped to DIR/share.
    let push: Value = serde_json::from_str(PUSH).map_err(setup("the push fixture"))?;
    let console_path = push["site"]["console_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    connector(
        &exe,
        &[
            "sim",
            "site",
            "--site",
            &site.display().to_string(),
            "init",
            "--force",
            "--console-path",
            &console_path,
            "--share",
            &format!("{SHARE_ROOT}={}", share.display()),
        ],
    )?;

    // The portal, with the package and the two commands.
    let portal = serve_portal(&dir.join("portal")).await?;
    let base = portal.url();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(setup("an HTTP client for the simulator"))?;
    let answer = http
        .post(format!("{base}/sim/packages"))
        .body(filezilla_package()?)
        .send()
        .await
        .map_err(setup("registering the package"))?
        .bytes()
        .await
        .map_err(setup("registering the package"))?;
    let package: Value =
        serde_json::from_slice(&answer).map_err(setup("registering the package"))?;
    let mut push = push;
    push["content"] = json!({
        "package_id": package["package_id"], "url": package["url"], "sha256": package["sha256"], "size": package["size"],
    });
    let import: Value = serde_json::from_str(IMPORT).map_err(setup("the import fixture"))?;

    // The connector, exactly as `run --config DIR/connector.toml` starts it.
    let config_path = write_config(&dir, &base, &exe)?;
    let config = Config::load(&config_path).map_err(|e| DemoError::Setup(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::daemon::run(config, async {
        let _ = stop_rx.await;
    }));
    // Case 1, then Case 2: the import reads back what the push created.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut results = Vec::new();
    for command in [&push, &import] {
        let body = serde_json::to_vec(command).map_err(setup("enqueuing a command"))?;
        let status = http
            .post(format!("{base}/sim/commands"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(setup("enqueuing a command"))?
            .status();
        if !status.is_success() {
            return Err(DemoError::Setup(format!(
                "the portal refused a command: {status}"
            )));
        }
        let id = command["id"].as_str().unwrap_or_default();
        loop {
            if daemon.is_finished() {
                break;
            }
            let view: Value = match http.get(format!("{base}/sim/commands/{id}")).send().await {
                Ok(r) => r
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if !view["effective_result"].is_null() {
                results.push(view["effective_result"].clone());
                break;
            }
            if Instant::now() > deadline {
                let _ = stop_tx.send(());
                return Err(DemoError::Timeout(300));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = stop_tx.send(());
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(DemoError::Connector(e.to_string())),
        Err(e) => return Err(DemoError::Connector(e.to_string())),
    }
    let portal_addr = portal.addr();
    portal.shutdown().await;
    if results.len() != 2 {
        return Err(DemoError::Connector(
            "the connector stopped before both results arrived".into(),
        ));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["status"] != "ok")
        .map(|r| {
            format!(
                "{}: {}",
                r["command_id"].as_str().unwrap_or("?"),
                r["error"].as_str().unwrap_or("(no error)")
            )
        })
        .collect();
    let dump: Value = serde_json::from_str(&connector(
        &exe,
        &["sim", "site", "--site", &site.display().to_string(), "dump"],
    )?)
    .map_err(setup("reading the site dump"))?;
    let text = summary(
        &Leftovers {
            dir: &dir,
            portal: portal_addr,
            push_id: push["id"].as_str().unwrap_or_default(),
        },
        &results[0],
        &results[1],
        &dump,
        started.elapsed(),
    );
    if failed.is_empty() {
        Ok(text)
    } else {
        Err(DemoError::Connector(format!(
            "{text}\nnot everything succeeded: {}",
            failed.join("; ")
        )))
    }
}

/// What the demo leaves behind, for the summary's commands.
struct Leftovers<'a> {
    dir: &'a Path,
    /// The portal simulator's address, also in `connector.toml`.
    portal: std::net::SocketAddr,
    /// The push's portal command id (`replay` accepts it for the job).
    push_id: &'a str,
}

fn summary(
    left: &Leftovers<'_>,
    push: &Value,
    import: &Value,
    dump: &Value,
    took: Duration,
) -> String {
    let dir = left.dir;
    let mut s = String::new();
    let p = &push["push"];
    s.push_str(&format!(
        "Push of FileZilla 3.46.3 to site DEM: {}\n",
        push["status"].as_str().unwrap_or("?")
    ));
    if let Some(error) = push["error"].as_str() {
        s.push_str(&format!("  error: {error}\n"));
    }
    s.push_str(&format!(
        "  application    CI_ID {}  {}\n",
        p["ci_id"],
        p["model_name"].as_str().unwrap_or("")
    ));
    s.push_str(&format!(
        "  deployment type {}\n",
        p["deployment_type"].as_str().unwrap_or("")
    ));
    s.push_str(&format!(
        "  distribution   {}: {}/{} distribution points\n",
        p["distribution"]["group"].as_str().unwrap_or(""),
        p["distribution"]["succeeded"],
        p["distribution"]["targeted"]
    ));
    s.push_str(&format!(
        "  deployment     {} (available to \"Demo devices\")\n",
        p["deployment_id"].as_str().unwrap_or("")
    ));
    s.push_str(&format!(
        "  folder         {}\n",
        p["folder"].as_str().unwrap_or("")
    ));
    s.push_str(&format!(
        "Import: {}\n",
        import["status"].as_str().unwrap_or("?")
    ));
    for name in import["import"]["not_found"]
        .as_array()
        .into_iter()
        .flatten()
    {
        s.push_str(&format!("  not found: {}\n", name.as_str().unwrap_or("?")));
    }
    for app in import["import"]["applications"]
        .as_array()
        .into_iter()
        .flatten()
    {
        s.push_str(&format!(
            "  {}  path {}  version {}  vendor {}  upload {}\n",
            app["name"].as_str().unwrap_or(""),
            app["path"].as_str().unwrap_or(""),
            app["metadata"]["version"].as_str().unwrap_or("?"),
            app["metadata"]["vendor"].as_str().unwrap_or("?"),
            app["upload_id"].as_str().unwrap_or("-"),
        ));
    }
    let count = |key: &str| {
        dump["state"][key]
            .as_array()
            .or_else(|| dump[key].as_array())
            .map_or(0, Vec::len)
    };
    s.push_str(&format!(
        "The simulated site now holds {} application(s), {} deployment(s), {} folder(s).\n",
        count("applications"),
        count("deployments"),
        count("folders")
    ));
    s.push_str(&format!("Done in {:.1} s.\n\n", took.as_secs_f64()));
    let config = dir.join("connector.toml");
    let journal = dir.join("journal");
    s.push_str(&format!("Journal: {}\n", journal.display()));
    s.push_str(&format!(
        "Replay the push:         sccm-connector replay {} --journal {}\n",
        left.push_id,
        journal.display()
    ));
    s.push_str(&format!(
        "Export the journal:      sccm-connector export --journal {} --format html -o {}\n",
        journal.display(),
        dir.join("journal.html").display()
    ));
    s.push_str(&format!(
        "Inspect the site:        sccm-connector sim site --site {} dump\n",
        dir.join("site").display()
    ));
    s.push_str(&format!(
        "Serve the portal again:  sccm-connector sim portal --data {} --poll-after {POLL_AFTER}\n",
        dir.join("portal").display()
    ));
    s.push_str(&format!(
        "                         (it listens on {} again: the address is remembered in its data and named in connector.toml)\n",
        left.portal
    ));
    s.push_str(&format!(
        "Run the connector again: sccm-connector run --config {}\n",
        config.display()
    ));
    s
}
