//! Helpers shared by the integration tests: paths, the binary, temporary directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture(relative: &str) -> PathBuf {
    root().join("tests/fixtures").join(relative)
}

/// Runs the `sccm-connector` binary with `args`.
pub fn connector(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sccm-connector"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A fresh temporary directory, removed when dropped.
/// Sends SIGTERM to `child` (it must still be running).
pub async fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("a running child has a pid").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sccm-connector-test-")
        .tempdir()
        .expect("a temporary directory")
}

/// The files of `dir`, sorted by name, with their bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("the directory exists")
        .map(|e| {
            let e = e.expect("a directory entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("readable"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Every file under `dir` (relative path with `/`) with its size, modification time and bytes:
/// equal before and after means nothing in `dir` was touched.
pub fn fingerprint(dir: &Path) -> Vec<(String, u64, std::time::SystemTime, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64, std::time::SystemTime, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("the directory exists") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let meta = std::fs::metadata(&path).expect("metadata");
                let relative = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let modified = meta.modified().expect("a modification time");
                out.push((
                    relative,
                    meta.len(),
                    modified,
                    std::fs::read(&path).expect("readable"),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The connector against both simulators (the kill loop and the fault tests): commands derived
/// from the seed's fixtures, packages, the simulated site, the connector's configuration, and the
/// checks every end-to-end run makes afterwards — one effective result per command, exactly one
/// of each object at the site with no duplicate mutation in its effect log, share folders holding
/// exactly their packages, and a journal that verifies with every job finished.
pub mod e2e {
    use super::{connector, fixture};
    use sccm_connector::engine::store::Store;
    use serde_json::{Value, json};
    use sha2::{Digest as _, Sha256};
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{Read as _, Write as _};
    use std::path::{Path, PathBuf};

    /// The share the seed's commands name, mapped to `DIR/share` in every test.
    pub const SHARE_ROOT: &str = "\\\\WIN-2HDJCBHRRVB\\Sources$";
    /// The remote ID of the connector in these tests.
    pub const REMOTE_ID: &str = "5b7e2c1a-9d4f-4e3b-8a6c-1f2e3d4c5b6a";
    /// The collection and DP group of the seed's push.
    pub const COLLECTION: &str = "Demo devices";
    pub const DP_GROUP: &str = "Demo Distribution Group";

    /// Lowercase hex SHA-256.
    pub fn sha256_hex(bytes: &[u8]) -> String {
        sccm_connector::portal::download::hex(&Sha256::digest(bytes))
    }

    /// `n` deterministic, incompressible bytes.
    pub fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bytes = vec![0u8; n];
        rng.fill(&mut bytes);
        bytes
    }

    /// A zip of `files` (relative names with `/`); `stored` leaves them uncompressed.
    pub fn zip_package(files: &[(String, Vec<u8>)], stored: bool) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if stored {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in files {
            zip.start_file(name.as_str(), options).expect("a zip entry");
            zip.write_all(bytes).expect("zip bytes");
        }
        zip.finish().expect("a finished zip").into_inner()
    }

    /// A PSADT-shaped package: the wrapper, the toolkit, `Files/<msi>` of `msi_bytes` noise,
    /// and a nested folder.
    pub fn psadt_package(product: &str, msi_bytes: usize, seed: u64, stored: bool) -> Vec<u8> {
        let files = vec![
            (
                "Deploy-Application.exe".to_string(),
                format!("MZ\u{90} PSAppDeployToolkit launcher for {product}").into_bytes(),
            ),
            (
                "Deploy-Application.ps1".to_string(),
                format!("[CmdletBinding()]\r\nParam ([string]$DeploymentType = 'Install')\r\n$appName = '{product}'\r\nExecute-MSI -Action $DeploymentType -Path '{product}.msi'\r\n").into_bytes(),
            ),
            (
                "AppDeployToolkit/AppDeployToolkitMain.ps1".to_string(),
                b"# PSAppDeployToolkit main\r\n".to_vec(),
            ),
            (
                "AppDeployToolkit/AppDeployToolkitConfig.xml".to_string(),
                b"<AppDeployToolkit_Config><Toolkit_Options/></AppDeployToolkit_Config>".to_vec(),
            ),
            (format!("Files/{product}.msi"), noise(msi_bytes, seed)),
            (
                "SupportFiles/Config/settings.ini".to_string(),
                format!("[{product}]\r\nseed={seed}\r\n").into_bytes(),
            ),
        ];
        zip_package(&files, stored)
    }

    /// Entry name → SHA-256 of every file in a zip.
    pub fn zip_digest(bytes: &[u8]) -> BTreeMap<String, String> {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a readable zip");
        let mut digest = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).expect("a zip entry");
            if entry.is_dir() {
                continue;
            }
            let name = entry.name().expect("an entry name").into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("the entry inflates");
            digest.insert(name, sha256_hex(&content));
        }
        digest
    }

    /// Relative path (with `/`) → SHA-256 of every file under `dir`.
    pub fn tree_digest(dir: &Path) -> Result<BTreeMap<String, String>, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> Result<(), String> {
            let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, out)?;
                } else {
                    let relative = path
                        .strip_prefix(root)
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(|s| s.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    let bytes =
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    out.insert(relative, sha256_hex(&bytes));
                }
            }
            Ok(())
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out)?;
        Ok(out)
    }

    /// The seed's push fixture.
    pub fn push_fixture() -> Value {
        serde_json::from_slice(
            &std::fs::read(fixture("commands/push-filezilla.json")).expect("the push fixture"),
        )
        .expect("the push fixture is JSON")
    }

    /// The console path the seed's commands name (the site must be initialised with it).
    pub fn console_path() -> String {
        push_fixture()["site"]["console_path"]
            .as_str()
            .expect("a console path")
            .to_string()
    }

    /// The seed's push with its own `id`, application `name` (package name, deployment type
    /// name, share folder `incoming\<name>`), console `folder` (`Applications/…`) and the
    /// package as `POST /sim/packages` announced it.
    pub fn push_command(id: &str, name: &str, folder: &str, package: &Value) -> Value {
        let mut push = push_fixture();
        let location = format!("{SHARE_ROOT}\\incoming\\{name}");
        push["id"] = json!(id);
        push["site"]["share_path"] = json!(location);
        push["application"]["package_name"] = json!(name);
        push["application"]["name"] = json!(name.split('_').nth(1).unwrap_or(name));
        push["application"]["folder"] = json!(folder);
        push["deployment_type"]["name"] = json!(format!("{name}_DT"));
        push["deployment_type"]["content_location"] = json!(location);
        push["content"] = json!({
            "package_id": package["package_id"],
            "url": package["url"],
            "sha256": package["sha256"],
            "size": package["size"],
        });
        push
    }

    /// The seed's import with its own `id`, asking for `applications` (empty: all).
    pub fn import_command(id: &str, applications: &[String], upload_sources: bool) -> Value {
        let mut import: Value = serde_json::from_slice(
            &std::fs::read(fixture("commands/import-filezilla.json")).expect("the import fixture"),
        )
        .expect("the import fixture is JSON");
        import["id"] = json!(id);
        import["applications"] = json!(applications);
        import["upload_sources"] = json!(upload_sources);
        import
    }

    /// The local folder a push named `name` unpacks into.
    pub fn share_folder(share: &Path, name: &str) -> PathBuf {
        share.join("incoming").join(name)
    }

    /// `sim site --site SITE init --force` with the fixtures' console path and the share mapped
    /// to `share`, plus `extra` options.
    pub fn init_site(site: &Path, share: &Path, extra: &[&str]) {
        std::fs::create_dir_all(share.join("incoming")).expect("the share");
        let site_arg = site.display().to_string();
        let share_arg = format!("{SHARE_ROOT}={}", share.display());
        let console = console_path();
        let mut args = vec![
            "sim",
            "site",
            "--site",
            &site_arg,
            "init",
            "--force",
            "--console-path",
            &console,
            "--share",
            &share_arg,
        ];
        args.extend_from_slice(extra);
        let out = connector(&args);
        assert!(
            out.status.success(),
            "sim site init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Installs a site fault plan (`sim site faults set`).
    pub fn set_site_faults(site: &Path, plan: &Value) {
        let file = site.with_extension("faults.json");
        std::fs::write(&file, plan.to_string()).expect("the fault plan file");
        let out = connector(&[
            "sim",
            "site",
            "--site",
            &site.display().to_string(),
            "faults",
            "set",
            &file.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "sim site faults set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `sim site dump`.
    pub fn site_dump(site: &Path) -> Value {
        let out = connector(&["sim", "site", "--site", &site.display().to_string(), "dump"]);
        assert!(
            out.status.success(),
            "sim site dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the dump is JSON")
    }

    /// `sim site check`: its report, or why the effect log does not account for the state.
    pub fn site_check(site: &Path) -> Result<String, String> {
        let out = connector(&[
            "sim",
            "site",
            "--site",
            &site.display().to_string(),
            "check",
        ]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "sim site check: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// How the connector is configured against the simulators.
    #[derive(Debug, Clone)]
    pub struct Setup {
        /// Holds `journal/`, `spool/`, `connector.toml`.
        pub dir: PathBuf,
        pub portal_url: String,
        pub remote_id: String,
        pub site: PathBuf,
        pub share: PathBuf,
        /// `session` or `per-step`.
        pub mode: String,
        pub step_timeout_seconds: u64,
        pub max_attempts: u32,
        pub max_interrupted: u32,
        pub concurrency: u32,
        /// Options of `sim powershell` before its `--`.
        pub host_options: Vec<String>,
        /// TOML appended to the configuration (whole sections, e.g. `[retention]`).
        pub extra_toml: String,
    }

    impl Setup {
        pub fn new(dir: &Path, portal_url: &str) -> Setup {
            Setup {
                dir: dir.to_path_buf(),
                portal_url: portal_url.to_string(),
                remote_id: REMOTE_ID.to_string(),
                site: dir.join("site"),
                share: dir.join("share"),
                mode: "session".into(),
                step_timeout_seconds: 60,
                max_attempts: 3,
                max_interrupted: 20,
                concurrency: 2,
                host_options: Vec::new(),
                extra_toml: String::new(),
            }
        }

        pub fn journal(&self) -> PathBuf {
            self.dir.join("journal")
        }

        pub fn spool(&self) -> PathBuf {
            self.dir.join("spool")
        }

        /// The configuration `run --config` reads (quick retries, polls and distribution polls).
        pub fn toml(&self) -> String {
            let quote = |s: &str| format!("'{s}'");
            let site = self.site.display().to_string();
            let mut args: Vec<String> = vec![
                quote("sim"),
                quote("powershell"),
                quote("--site"),
                quote(&site),
            ];
            args.extend(self.host_options.iter().map(|o| quote(o)));
            args.extend(
                [
                    "--",
                    "-NoLogo",
                    "-NoProfile",
                    "-NonInteractive",
                    "-ExecutionPolicy",
                    "Bypass",
                ]
                .iter()
                .map(|a| quote(a)),
            );
            format!(
                "[portal]\nbase_url = '{url}'\nremote_id = '{remote}'\npoll_interval_seconds = 1\nread_timeout_seconds = 15\n\
                 [portal.retry]\nmax_attempts = 4\ninitial_backoff_ms = 50\nmax_backoff_ms = 400\n\n\
                 [powershell]\nprogram = '{exe}'\nargs = [{args}]\nmode = '{mode}'\nstep_timeout_seconds = {timeout}\n\n\
                 [storage]\njournal = '{journal}'\nspool = '{spool}'\n\n\
                 [shares]\nallowed_roots = ['{SHARE_ROOT}\\incoming']\n[[shares.map]]\nunc = '{SHARE_ROOT}'\nlocal = '{share}'\n\n\
                 [engine]\nconcurrency = {concurrency}\nmax_attempts = {attempts}\nmax_interrupted = {interrupted}\n\
                 retry_initial_seconds = 1\nretry_max_seconds = 2\ndistribution_poll_seconds = 1\ndistribution_timeout_minutes = 5\n",
                url = self.portal_url,
                remote = self.remote_id,
                exe = env!("CARGO_BIN_EXE_sccm-connector"),
                args = args.join(", "),
                mode = self.mode,
                timeout = self.step_timeout_seconds,
                journal = self.journal().display(),
                spool = self.spool().display(),
                share = self.share.display(),
                concurrency = self.concurrency,
                attempts = self.max_attempts,
                interrupted = self.max_interrupted,
            ) + &self.extra_toml
        }

        /// Writes `DIR/connector.toml` and returns its path.
        pub fn write_config(&self) -> PathBuf {
            let path = self.dir.join("connector.toml");
            std::fs::write(&path, self.toml()).expect("connector.toml is written");
            path
        }

        /// The configuration as the daemon sees it (for running it in process).
        pub fn config(&self) -> sccm_connector::config::Config {
            sccm_connector::config::Config::load(&self.write_config())
                .expect("the test configuration is valid")
        }
    }

    /// A push the end state must show.
    #[derive(Debug, Clone)]
    pub struct ExpectedPush {
        pub command_id: String,
        pub name: String,
        /// The portal's form: `Applications/A/B`.
        pub folder: String,
        /// The package's zip.
        pub zip: Vec<u8>,
    }

    /// The one result of a command at the portal (`GET /sim/commands/{id}`): an effective result,
    /// exactly one stored result (one idempotency key), equal to the effective one.
    pub fn one_result(view: &Value) -> Result<Value, String> {
        let id = view["id"].as_str().unwrap_or("?");
        let effective = &view["effective_result"];
        if effective.is_null() {
            return Err(format!("command {id} has no effective result: {view}"));
        }
        let results = view["results"].as_array().cloned().unwrap_or_default();
        if results.len() != 1 {
            return Err(format!(
                "command {id} has {} stored results (idempotency keys), not 1: {view}",
                results.len()
            ));
        }
        if results[0]["body"] != *effective {
            return Err(format!(
                "command {id}: the stored result is not the effective one"
            ));
        }
        if effective["command_id"] != view["id"] {
            return Err(format!(
                "command {id}: the result names another command: {effective}"
            ));
        }
        Ok(effective.clone())
    }

    fn apps_named<'a>(state: &'a Value, name: &str) -> Vec<&'a Value> {
        state["applications"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .collect()
    }

    /// The folder path (`A/B`) of folder `id` in a dump's state.
    fn folder_path(state: &Value, id: u64) -> String {
        let folders = state["folders"].as_array().cloned().unwrap_or_default();
        let mut names = Vec::new();
        let mut current = id;
        while current != 0 && names.len() < 64 {
            match folders
                .iter()
                .find(|f| f["container_node_id"].as_u64() == Some(current))
            {
                Some(f) => {
                    names.push(f["name"].as_str().unwrap_or("?").to_string());
                    current = f["parent_container_node_id"].as_u64().unwrap_or(0);
                }
                None => break,
            }
        }
        names.reverse();
        names.join("/")
    }

    /// Checks that the site holds exactly one application per push, with one deployment type,
    /// one distribution and one deployment, in its folder; and that the push's result (if `ok`)
    /// agrees with the site.
    pub fn check_push(dump: &Value, push: &ExpectedPush, result: &Value) -> Result<(), String> {
        let state = &dump["state"];
        let name = &push.name;
        let apps = apps_named(state, name);
        if apps.len() != 1 {
            return Err(format!("{} applications named {name:?}, not 1", apps.len()));
        }
        let app = apps[0];
        let ci_id = app["ci_id"].as_u64().unwrap_or(0);
        let dts = app["deployment_types"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let dt_name = format!("{name}_DT");
        if dts.len() != 1 || dts[0]["name"] != json!(dt_name) {
            return Err(format!(
                "{name:?}: deployment types {dts:?}, expected exactly {dt_name:?}"
            ));
        }
        let of_app = |key: &str| -> Vec<Value> {
            state[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["application_ci_id"].as_u64() == Some(ci_id))
                .cloned()
                .collect()
        };
        let deployments = of_app("deployments");
        if deployments.len() != 1 || deployments[0]["collection_name"] != json!(COLLECTION) {
            return Err(format!(
                "{name:?}: deployments {deployments:?}, expected one to {COLLECTION:?}"
            ));
        }
        let distributions = of_app("distributions");
        if distributions.len() != 1 || distributions[0]["group_name"] != json!(DP_GROUP) {
            return Err(format!(
                "{name:?}: distributions {distributions:?}, expected one to {DP_GROUP:?}"
            ));
        }
        let model = app["model_name"].as_str().unwrap_or_default();
        let memberships: Vec<&Value> = state["memberships"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["instance_key"].as_str() == Some(model))
            .collect();
        let expected_folder = push
            .folder
            .strip_prefix("Applications")
            .unwrap_or(&push.folder)
            .trim_start_matches('/')
            .to_string();
        let actual_folder = match memberships.as_slice() {
            [] => String::new(),
            [m] => folder_path(state, m["container_node_id"].as_u64().unwrap_or(0)),
            more => return Err(format!("{name:?} is in {} folders", more.len())),
        };
        if actual_folder != expected_folder {
            return Err(format!(
                "{name:?} is in folder {actual_folder:?}, expected {expected_folder:?}"
            ));
        }
        if result["status"] == "ok" {
            let p = &result["push"];
            let expected_console = format!(
                "DEM:\\Application{}",
                expected_folder
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("\\{s}"))
                    .collect::<String>()
            );
            let checks = [
                ("ci_id", p["ci_id"].as_u64() == Some(ci_id)),
                ("model_name", p["model_name"].as_str() == Some(model)),
                ("deployment_type", p["deployment_type"] == json!(dt_name)),
                (
                    "deployment_id",
                    p["deployment_id"] == deployments[0]["assignment_unique_id"],
                ),
                ("folder", p["folder"] == json!(expected_console)),
                (
                    "distribution",
                    p["distribution"]["succeeded"] == p["distribution"]["targeted"]
                        && p["distribution"]["targeted"].as_u64().unwrap_or(0) > 0,
                ),
            ];
            for (what, ok) in checks {
                if !ok {
                    return Err(format!(
                        "{name:?}: the result's {what} disagrees with the site: {result}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that the share folder of `push` holds exactly its package's files (names and
    /// SHA-256).
    pub fn check_share(share: &Path, push: &ExpectedPush) -> Result<(), String> {
        let folder = share_folder(share, &push.name);
        let actual = tree_digest(&folder)?;
        let expected = zip_digest(&push.zip);
        if actual != expected {
            let missing: Vec<&String> = expected
                .keys()
                .filter(|k| !actual.contains_key(*k))
                .collect();
            let extra: Vec<&String> = actual
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .collect();
            return Err(format!(
                "{} does not hold exactly its package: missing {missing:?}, extra {extra:?}, or different bytes",
                folder.display()
            ));
        }
        Ok(())
    }

    /// What `share/incoming` holds besides the pushed folders and their manifests
    /// (`.<name>.sccm-connector.json`): leftovers of interrupted unpacks.
    pub fn share_leftovers(share: &Path, names: &[String]) -> Vec<String> {
        let expected: BTreeSet<String> = names
            .iter()
            .flat_map(|n| [n.clone(), format!(".{n}.sccm-connector.json")])
            .collect();
        std::fs::read_dir(share.join("incoming"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !expected.contains(n))
            .collect()
    }

    /// Counts the creating mutations of the site's effect log per object; returns the
    /// duplicates (an object created twice, an application moved twice), and the number of
    /// effects.
    pub fn duplicate_effects(dump: &Value) -> (Vec<String>, usize) {
        let effects = dump["state"]["effects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for effect in &effects {
            for change in effect["changes"].as_array().into_iter().flatten() {
                let key = match change["kind"].as_str().unwrap_or("") {
                    "application_created" => format!(
                        "application {}",
                        change["name"].as_str().unwrap_or("").to_lowercase()
                    ),
                    "deployment_type_added" => format!(
                        "deployment type {} of {}",
                        change["name"].as_str().unwrap_or("").to_lowercase(),
                        change["application_ci_id"]
                    ),
                    "distribution_started" => format!(
                        "distribution of {} to {}",
                        change["package_id"], change["group_id"]
                    ),
                    "deployment_created" => format!(
                        "deployment of {} to {}",
                        change["application_ci_id"], change["collection_id"]
                    ),
                    "folder_created" => format!(
                        "folder {} in {}",
                        change["name"].as_str().unwrap_or("").to_lowercase(),
                        change["parent_container_node_id"]
                    ),
                    "object_moved" => format!("move of {}", change["instance_key"]),
                    _ => continue,
                };
                *seen.entry(key).or_default() += 1;
            }
        }
        let duplicates = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        (duplicates, effects.len())
    }

    /// What the journal says after the connector stopped.
    #[derive(Debug, Default)]
    pub struct JournalSummary {
        pub records: u64,
        pub jobs: usize,
        /// Connector runs (`ConnectorStarted`).
        pub runs: usize,
        /// Attempts that were interrupted (the connector died during them).
        pub interrupted: usize,
        /// Attempts that failed, with their errors.
        pub failures: Vec<String>,
        /// Jobs retention archived (counted in `jobs` too) and the records it pruned.
        pub archived: usize,
        pub pruned_records: u64,
        /// The archived jobs' ids, each with the name of the archive file the journal says holds
        /// it (their attempts are there, not in the fold: see [`archived_attempts`]).
        pub archived_in: BTreeMap<String, String>,
    }

    /// The attempts of archived (pruned) jobs, read from retention's archive files.
    #[derive(Debug, Default)]
    pub struct ArchivedAttempts {
        /// Archived jobs found in the archives.
        pub jobs: usize,
        /// Attempts started and never ended (no `StepSucceeded`, `StepFailed` or
        /// `StepIncomplete` of the same step and attempt): the connector died during them.
        pub interrupted: usize,
        /// `StepFailed` attempts, as `"<step name>: <error>"` like [`JournalSummary::failures`].
        pub failures: Vec<String>,
    }

    /// Reads the attempts of the archived jobs `archived_in` (job id → archive file name, as the
    /// journal records it) from retention's JSON Lines archives in `archive_dir`
    /// (docs/audit.md). Every job must be in its archive. The archives' integrity is not
    /// checked here (`verify ARCHIVE --journal DIR` does that).
    pub fn archived_attempts(
        archive_dir: &Path,
        archived_in: &BTreeMap<String, String>,
    ) -> Result<ArchivedAttempts, String> {
        #[derive(Default)]
        struct Job {
            names: Vec<String>,
            started: BTreeSet<(u64, u64)>,
            ended: BTreeSet<(u64, u64)>,
            failures: Vec<String>,
        }
        let at = |e: &Value| {
            (
                e["step"].as_u64().unwrap_or(u64::MAX),
                e["attempt"].as_u64().unwrap_or(0),
            )
        };
        let files: BTreeSet<&String> = archived_in.values().collect();
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        for name in files {
            let file = archive_dir.join(name);
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for line in text.lines() {
                let record: Value = serde_json::from_str(line)
                    .map_err(|e| format!("{}: a line is not JSON: {e}", file.display()))?;
                let Some(id) = record["job"].as_str() else {
                    continue;
                };
                if record["type"] != "record" || archived_in.get(id) != Some(name) {
                    continue;
                }
                let job = jobs.entry(id.to_string()).or_default();
                let data = &record["data"];
                match record["event"].as_str() {
                    Some("Planned") => job.names.extend(
                        data["Planned"]["steps"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| s["name"].as_str().unwrap_or("?").to_string()),
                    ),
                    Some("StepStarted") => {
                        job.started.insert(at(&data["StepStarted"]));
                    }
                    Some(kind @ ("StepSucceeded" | "StepIncomplete")) => {
                        job.ended.insert(at(&data[kind]));
                    }
                    Some("StepFailed") => {
                        let e = &data["StepFailed"];
                        job.ended.insert(at(e));
                        let step = usize::try_from(at(e).0)
                            .ok()
                            .and_then(|i| job.names.get(i))
                            .map_or("?", String::as_str);
                        job.failures.push(format!(
                            "{step}: {}",
                            e["error"].as_str().unwrap_or("(no error)")
                        ));
                    }
                    _ => {}
                }
            }
        }
        let missing: Vec<&String> = archived_in
            .keys()
            .filter(|id| !jobs.contains_key(*id))
            .collect();
        if !missing.is_empty() {
            return Err(format!("archived jobs not in their archive: {missing:?}"));
        }
        let done = jobs;
        let mut attempts = ArchivedAttempts::default();
        for job in done.into_values() {
            attempts.jobs += 1;
            attempts.interrupted += job.started.difference(&job.ended).count();
            attempts.failures.extend(job.failures);
        }
        Ok(attempts)
    }

    /// Opens the journal of a stopped connector: the chain verifies; then the store folds with
    /// no broken or quarantined job, every job finished, exactly one job per command in
    /// `commands`, and no other job.
    pub fn check_journal(
        journal_dir: &Path,
        commands: &[String],
    ) -> Result<JournalSummary, String> {
        let journal = journal::Journal::open(journal_dir, journal::Options::new())
            .map_err(|e| format!("the journal does not open: {e}"))?;
        let report = journal
            .verify()
            .map_err(|e| format!("the journal does not verify: {e}"))?;
        journal
            .close()
            .map_err(|e| format!("the journal does not close: {e}"))?;
        let store = Store::open(journal_dir, journal::Options::new())
            .map_err(|e| format!("the store does not open: {e}"))?;
        if !store.broken().is_empty() {
            return Err(format!("broken jobs: {:?}", store.broken()));
        }
        let fleet = store.fleet();
        let quarantined: Vec<String> = fleet.quarantined().map(|q| q.to_string()).collect();
        if !quarantined.is_empty() {
            return Err(format!("quarantined jobs: {quarantined:?}"));
        }
        let unfinished: Vec<String> = fleet
            .jobs()
            .filter(|j| !j.is_finished())
            .map(|j| format!("{} ({:?}, {:?})", j.id(), j.command_id(), j.stage()))
            .collect();
        if !unfinished.is_empty() {
            return Err(format!("unfinished jobs: {unfinished:?}"));
        }
        let mut per_command: BTreeMap<String, usize> = BTreeMap::new();
        let mut summary = JournalSummary {
            records: report.records,
            runs: fleet.runs().len(),
            ..JournalSummary::default()
        };
        for job in fleet.jobs() {
            summary.jobs += 1;
            *per_command
                .entry(job.command_id().unwrap_or("(none)").to_string())
                .or_default() += 1;
            for step in job.steps() {
                for attempt in &step.attempts {
                    match &attempt.outcome {
                        Some(replay::AttemptOutcome::Interrupted) => summary.interrupted += 1,
                        Some(replay::AttemptOutcome::Failed { error, .. }) => summary
                            .failures
                            .push(format!("{}: {error}", step.step.name)),
                        _ => {}
                    }
                }
            }
        }
        // Jobs retention archived and pruned count as finished jobs of their command.
        for (file, archived) in fleet.archived() {
            summary.jobs += 1;
            summary.archived += 1;
            summary
                .archived_in
                .insert(archived.job.to_string(), file.to_string());
            *per_command
                .entry(
                    archived
                        .command_id
                        .clone()
                        .unwrap_or_else(|| "(none)".into()),
                )
                .or_default() += 1;
        }
        summary.pruned_records = report.pruned;
        let expected: BTreeMap<String, usize> = commands.iter().map(|c| (c.clone(), 1)).collect();
        if per_command != expected {
            return Err(format!(
                "jobs per command {per_command:?}, expected one job for each of {commands:?}"
            ));
        }
        Ok(summary)
    }
}

/// The audit tests' shared material: one real journal (the demo's push and import through both
/// simulators, made once per test run), a journal with hostile and secret-bearing text, and
/// running `export`/`verify`.
pub mod audit {
    use super::connector;
    use replay::testkit::canned;
    use replay::{Event, StepKind};
    use sccm_connector::engine::store::Store;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// Script text that would break out of an HTML page if it were not escaped.
    pub const HOSTILE_SCRIPT: &str = "Write-Output '</script><img src=x onerror=alert(1)>'\n# </pre><b id=\"injected\">bold</b> & done\n";
    /// Secrets the hostile journal holds; no export may show them.
    pub const SECRETS: [&str; 3] = ["Pr0xyPassw0rd", "SASsecretSig123", "PwInOutput9"];

    /// `(exit code, stdout, stderr)` of the binary.
    pub fn run(args: &[&str]) -> (i32, String, String) {
        let out = connector(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A path as the binary's argument.
    pub fn arg(path: &Path) -> &str {
        path.to_str().expect("a UTF-8 path")
    }

    /// The demo's directory (`connector.toml`, `journal`, …): made by `sccm-connector demo
    /// --dir`, once, under the test target's temporary directory. Read it; never change it.
    pub fn demo() -> &'static Path {
        static DEMO: OnceLock<PathBuf> = OnceLock::new();
        DEMO.get_or_init(|| {
            prune_old_demos();
            let dir = tempfile::Builder::new()
                .prefix("audit-demo-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .expect("a temporary directory")
                .keep();
            let keep = dir.join("demo");
            let (code, stdout, stderr) = run(&["demo", "--dir", arg(&keep)]);
            assert_eq!(code, 0, "demo failed:\n{stdout}\n{stderr}");
            // Only the journal and the configuration are read; the rest is megabytes.
            for bulky in ["share", "portal", "site"] {
                let _ = std::fs::remove_dir_all(keep.join(bulky));
            }
            keep
        })
    }

    /// Removes the demo directories of earlier test runs (older than an hour, so never one a
    /// concurrent run is using).
    fn prune_old_demos() {
        let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if old
                && entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("audit-demo-")
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// A copy of the demo's journal in `dir` (for tests that damage it).
    pub fn copy_demo_journal(dir: &Path) -> PathBuf {
        let to = dir.join("journal");
        copy_tree(&demo().join("journal"), &to);
        to
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("a directory");
        for entry in std::fs::read_dir(from).expect("readable") {
            let entry = entry.expect("an entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("a type").is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copied");
            }
        }
    }

    /// A journal at `dir` holding one push whose command carries a proxy password and a SAS
    /// signature, whose `ensure-application` script is [`HOSTILE_SCRIPT`], and whose step 3
    /// output shows a URL with a password.
    pub fn hostile_journal(dir: &Path) -> PathBuf {
        let path = dir.join("hostile-journal");
        let mut history = canned::push_happy();
        for entry in &mut history.entries {
            match &mut entry.event {
                Event::CommandReceived { raw, .. } => {
                    *raw = br#"{"id":"cmd-push-happy","kind":"push","package":{"url":"https://svc:Pr0xyPassw0rd@files.example/p.zip?sv=2020-08-04&sig=SASsecretSig123"}}"#.to_vec();
                }
                Event::Planned { steps, .. } => {
                    steps[2].kind = StepKind::Script {
                        script: HOSTILE_SCRIPT.into(),
                        poll: None,
                    };
                }
                Event::StepSucceeded {
                    step: 3, output, ..
                } => {
                    *output = "{\"source\":\"https://admin:PwInOutput9@share.example/x\"}".into();
                }
                _ => {}
            }
        }
        let store = Store::open(&path, journal::Options::new()).expect("a store");
        for entry in &history.entries {
            store
                .record(history.job, entry.at, entry.event.clone())
                .expect("recorded");
        }
        drop(store);
        path
    }

    /// The records of an export split into units that can be moved about: JSON Lines lines, or
    /// CSV rows (the column row first), each with its line end.
    pub fn units(bytes: &[u8]) -> Vec<Vec<u8>> {
        if bytes.starts_with(b"{") {
            return bytes
                .split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
        }
        let rows = sccm_connector::audit::csv::parse(bytes).expect("a CSV export");
        let mut starts: Vec<usize> = vec![0];
        starts.extend(rows.iter().map(|r| r.start));
        starts.push(bytes.len());
        starts
            .windows(2)
            .map(|w| bytes[w[0]..w[1]].to_vec())
            .collect()
    }

    /// The index of the unit holding record `seq`.
    pub fn unit_of(units: &[Vec<u8>], seq: u64) -> usize {
        let json = format!("\"type\":\"record\",\"seq\":{seq},");
        let csv = format!("record,{seq},");
        units
            .iter()
            .position(|u| {
                let text = String::from_utf8_lossy(u);
                text.contains(&json) || text.starts_with(&csv)
            })
            .unwrap_or_else(|| panic!("no line for record {seq}"))
    }

    /// The Python verifier of `docs/audit.md`, written to `dir`.
    pub fn python_verifier(dir: &Path) -> PathBuf {
        let doc = std::fs::read_to_string(super::root().join("docs/audit.md")).expect("the doc");
        let start = doc.find("```python\n").expect("a python block") + "```python\n".len();
        let len = doc[start..].find("```").expect("its end");
        let path = dir.join("verify_export.py");
        std::fs::write(&path, &doc[start..start + len]).expect("written");
        path
    }

    /// Whether `program` is on the PATH.
    pub fn have(program: &str) -> bool {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

/// The daemon in process against the portal simulator (in process) and the site simulator (its
/// PowerShell host a child process): a case with its commands, run until each has a result, and
/// the checks every end-to-end run makes afterwards. Used by the fault and diagnosis tests.
pub mod case {
    use super::e2e::{self, ExpectedPush, JournalSummary, Setup};
    use super::temp_dir;
    use crate::portal_support::Portal;
    use sccm_connector::sim::portal::SimConfig;
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    /// The daemon running in process (see [`Case::start_daemon`]).
    #[derive(Debug)]
    pub struct Daemon {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), sccm_connector::daemon::DaemonError>>,
    }

    impl Daemon {
        /// Whether it is still running (it has not stopped by itself).
        pub fn is_running(&self) -> bool {
            !self.task.is_finished()
        }

        /// Asks it to stop and requires a clean stop.
        pub async fn stop(self) {
            let _ = self.stop.send(());
            self.task
                .await
                .expect("the daemon task")
                .expect("the daemon stops cleanly");
        }
    }

    /// A result document says `ok`.
    pub fn assert_ok(result: &Value) {
        assert_eq!(result["status"], "ok", "{result}");
    }

    /// How long a case may take to reach its results.
    pub const DEADLINE: Duration = Duration::from_secs(90);

    /// One case: a portal, a site, a connector configuration, the commands enqueued.
    pub struct Case {
        pub dir: tempfile::TempDir,
        pub portal: Portal,
        pub setup: Setup,
        pub pushes: Vec<ExpectedPush>,
        pub commands: Vec<String>,
    }

    impl Case {
        pub async fn new() -> Case {
            Case::with_remote_ids(Vec::new()).await
        }

        /// A case whose portal accepts only `remote_ids` (empty: any).
        pub async fn with_remote_ids(remote_ids: Vec<String>) -> Case {
            let dir = temp_dir();
            let mut sim = SimConfig::new(
                "127.0.0.1:0".parse().expect("an address"),
                dir.path().join("portal"),
            );
            sim.poll_after_seconds = 1;
            sim.remote_ids = remote_ids;
            let portal = Portal::start_with(sim, temp_dir()).await;
            let setup = Setup::new(dir.path(), &portal.url());
            e2e::init_site(&setup.site, &setup.share, &["--distribution-polls", "1"]);
            Case {
                dir,
                portal,
                setup,
                pushes: Vec::new(),
                commands: Vec::new(),
            }
        }

        /// A case whose site applies `rules` (fault plan rules, seed 1).
        pub async fn with_site_faults(rules: Value) -> Case {
            let case = Case::new().await;
            e2e::set_site_faults(&case.setup.site, &json!({"seed": 1, "rules": rules}));
            case
        }

        /// Waits (bounded by [`DEADLINE`]) until command `id` has an effective result at the
        /// portal and returns it; `alive` is asked on every round and must stay true.
        pub async fn wait_for_result(&self, id: &str, alive: impl Fn() -> bool) -> Value {
            let until = Instant::now() + DEADLINE;
            loop {
                let view = self.portal.command(id).await;
                if !view["effective_result"].is_null() {
                    return view["effective_result"].clone();
                }
                assert!(alive(), "the daemon stopped before {id} had a result");
                assert!(
                    Instant::now() < until,
                    "no result for {id} within {DEADLINE:?}: {view}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// Publishes `zip` and enqueues a push of it as application `name` into `folder`.
        pub async fn push(&mut self, name: &str, folder: &str, zip: Vec<u8>) -> String {
            let package = self.portal.add_package(zip.clone()).await;
            let announced = json!({"package_id": package.package_id, "url": package.url, "sha256": package.sha256, "size": package.size});
            let id = format!("push-{}", self.commands.len() + 1);
            let command = e2e::push_command(&id, name, folder, &announced);
            self.portal.add_command(&command.to_string()).await;
            self.pushes.push(ExpectedPush {
                command_id: id.clone(),
                name: name.to_string(),
                folder: folder.to_string(),
                zip,
            });
            self.commands.push(id.clone());
            id
        }

        /// Enqueues an import of `applications` with their sources.
        pub async fn import(&mut self, applications: &[String]) -> String {
            let id = format!("import-{}", self.commands.len() + 1);
            let command = e2e::import_command(&id, applications, true);
            self.portal.add_command(&command.to_string()).await;
            self.commands.push(id.clone());
            id
        }

        /// Runs the daemon in process until every command has an effective result, stops it
        /// cleanly, and returns the results by command.
        pub async fn run(&self) -> Vec<Value> {
            self.run_until(&self.commands).await
        }

        pub async fn run_until(&self, commands: &[String]) -> Vec<Value> {
            let daemon = self.start_daemon();
            let mut results = Vec::new();
            for id in commands {
                results.push(self.wait_for_result(id, || daemon.is_running()).await);
            }
            self.wait_jobs_finished().await;
            daemon.stop().await;
            results
        }

        /// A daemon run that must end by being stopped (`until` resolves first).
        pub async fn run_stopped_when(&self, until: impl std::future::Future<Output = ()>) {
            let daemon = self.start_daemon();
            until.await;
            daemon.stop().await;
        }

        /// The daemon in process on this case's configuration, until [`Daemon::stop`].
        pub fn start_daemon(&self) -> Daemon {
            let config = self.setup.config();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(sccm_connector::daemon::run(config, async {
                let _ = stopped.await;
            }));
            Daemon { stop, task }
        }

        /// Returns once no job folder is left in the spool. A finished job's spool folder is
        /// removed right after `JobFinished` is journaled: once none is left, every job that
        /// downloaded or uploaded is finished.
        pub async fn wait_jobs_finished(&self) {
            let until = Instant::now() + DEADLINE;
            loop {
                let left: Vec<String> = std::fs::read_dir(self.setup.spool())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "scripts")
                    .collect();
                if left.is_empty() {
                    return;
                }
                assert!(Instant::now() < until, "jobs {left:?} never finished");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Everything that must hold after the daemon stopped: one result per command, the pushes
        /// that succeeded at the site exactly once and in the share exactly, no duplicate mutation,
        /// the journal verified with one finished job per command. Returns the journal's summary.
        pub async fn verify(&self) -> JournalSummary {
            for id in &self.commands {
                let view = self.portal.command(id).await;
                e2e::one_result(&view).unwrap_or_else(|e| panic!("{e}"));
            }
            let dump = e2e::site_dump(&self.setup.site);
            e2e::site_check(&self.setup.site).unwrap_or_else(|e| panic!("{e}"));
            let (duplicates, _) = e2e::duplicate_effects(&dump);
            assert!(duplicates.is_empty(), "duplicate mutations: {duplicates:?}");
            for push in &self.pushes {
                let view = self.portal.command(&push.command_id).await;
                let result = &view["effective_result"];
                if result["status"] == "ok" {
                    e2e::check_push(&dump, push, result).unwrap_or_else(|e| panic!("{e}"));
                }
                e2e::check_share(&self.setup.share, push).unwrap_or_else(|e| panic!("{e}"));
            }
            e2e::check_journal(&self.setup.journal(), &self.commands)
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// The connector requests the portal saw for paths starting with `path`.
        pub async fn requests_to(&self, path: &str) -> Vec<Value> {
            self.portal
                .requests()
                .await
                .into_iter()
                .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(path)))
                .collect()
        }
    }

    pub fn app(name: &str) -> String {
        format!("{name}_1.0_English(United States)")
    }

    /// A package of about `msi` bytes (stored: its size is what travels).
    pub fn package(product: &str, msi: usize) -> Vec<u8> {
        e2e::psadt_package(product, msi, 7, true)
    }
}
