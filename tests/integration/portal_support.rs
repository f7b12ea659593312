//! Helpers of the portal tests: a simulator started in process (with its admin API), a test CA
//! (rcgen) issuing server and client certificates, a private tinyproxy with basic
//! authentication, deterministic package bytes, and child processes (the connector's client run
//! once by the hidden `sccm-connector sim portal client MODE`; see `src/sim/portal/drive.rs`).

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use sccm_connector::portal::{PortalConfig, RetryConfig};
use sccm_connector::sim::portal::{SimConfig, SimHandle, SimTls, serve};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

/// The remote ID the tests' connector uses.
pub const REMOTE_ID: &str = "3f0c8b1e-5d2a-4c7e-9b1f-2a6d8e4c0b17";

/// `n` deterministic pseudo-random bytes.
pub fn package_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes);
    bytes
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sccm_connector::portal::download::hex(&sha2::Sha256::digest(bytes))
}

/// A client configuration for `url` with quick retries.
pub fn client_config(url: &str) -> PortalConfig {
    let mut config = PortalConfig::new(url, REMOTE_ID);
    config.connect_timeout_seconds = 5;
    config.read_timeout_seconds = 30;
    config.retry = RetryConfig {
        max_attempts: 4,
        initial_backoff_ms: 20,
        max_backoff_ms: 200,
    };
    config
}

/// A certificate authority for the tests.
pub struct TestCa {
    pub cert_pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM, with the certificate's DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        Self {
            cert_pem: issuer.pem(),
            issuer,
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A server certificate for `names` only.
    pub fn server_for(&self, names: &[&str]) -> Issued {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self) -> Issued {
        self.issue(&["connector.test"], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

/// The CA of every TLS simulator in this process.
pub fn shared_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("sccm-connector test CA"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a test file is written");
    path
}

/// A package as the simulator announces it.
#[derive(Debug, Clone)]
pub struct Package {
    pub package_id: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// A simulator running in this process, with its admin API.
pub struct Portal {
    pub handle: Option<SimHandle>,
    pub config: SimConfig,
    pub dir: tempfile::TempDir,
    admin: reqwest::Client,
    base: String,
}

impl Portal {
    /// Plain HTTP on a free loopback port.
    pub async fn start() -> Self {
        let dir = super::support::temp_dir();
        let config = SimConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            dir.path().join("portal"),
        );
        Self::start_with(config, dir).await
    }

    /// TLS with a certificate of [`shared_ca`] (and client certificates required, if given).
    pub async fn start_tls(server: &Issued, client_ca: Option<&str>) -> Self {
        let dir = super::support::temp_dir();
        let mut config = SimConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            dir.path().join("portal"),
        );
        config.tls = Some(SimTls {
            cert: write(dir.path(), "server.pem", &server.cert_pem),
            key: write(dir.path(), "server.key", &server.key_pem),
            client_ca: client_ca.map(|pem| write(dir.path(), "client-ca.pem", pem)),
        });
        Self::start_with(config, dir).await
    }

    pub async fn start_with(config: SimConfig, dir: tempfile::TempDir) -> Self {
        let handle = serve(config.clone()).await.expect("the simulator starts");
        let base = handle.url();
        Self {
            handle: Some(handle),
            config,
            dir,
            admin: admin_client(),
            base,
        }
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().expect("the simulator runs").addr()
    }

    /// Stops the simulator (its port is free again when this returns).
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }

    /// Starts it again on the same address and data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = self
            .base
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .expect("the old address");
        self.handle = Some(serve(config).await.expect("the simulator restarts"));
    }

    pub async fn add_package(&self, bytes: Vec<u8>) -> Package {
        let v = self.post("/sim/packages", bytes, 201).await;
        Package {
            package_id: v["package_id"].as_str().expect("package_id").to_owned(),
            url: v["url"].as_str().expect("url").to_owned(),
            sha256: v["sha256"].as_str().expect("sha256").to_owned(),
            size: v["size"].as_u64().expect("size"),
        }
    }

    /// Queues a command (any JSON text); returns its id.
    pub async fn add_command(&self, json: &str) -> String {
        let v = self
            .post("/sim/commands", json.as_bytes().to_vec(), 201)
            .await;
        v["id"].as_str().expect("id").to_owned()
    }

    /// Makes the portal deliver command `id` again (as if restored from an old backup).
    pub async fn redeliver(&self, id: &str) {
        let response = self
            .admin
            .post(format!("{}/sim/commands/{id}/redeliver", self.base))
            .send()
            .await
            .expect("the admin API answers");
        assert_eq!(response.status().as_u16(), 204, "redeliver {id}");
    }

    pub async fn command(&self, id: &str) -> Value {
        self.get(&format!("/sim/commands/{id}")).await
    }

    pub async fn upload_info(&self, id: &str) -> Value {
        self.get(&format!("/sim/uploads/{id}")).await
    }

    pub async fn set_faults(&self, plan: Value) {
        self.post("/sim/faults", plan.to_string().into_bytes(), 200)
            .await;
    }

    /// The connector requests the simulator saw.
    pub async fn requests(&self) -> Vec<Value> {
        self.get("/sim/requests").await["requests"]
            .as_array()
            .expect("a request log")
            .clone()
    }

    /// Waits until the simulator has seen `min` connector requests with `method` and a path
    /// starting with `path`; returns them.
    pub async fn wait_for_requests(&self, min: usize, method: &str, path: &str) -> Vec<Value> {
        let seen = self
            .get(&format!(
                "/sim/requests?min={min}&method={method}&path={path}&timeout_ms=30000"
            ))
            .await;
        assert_eq!(seen["satisfied"], true, "{min} {method} {path}: {seen}");
        seen["requests"].as_array().expect("a request log").clone()
    }

    async fn post(&self, path: &str, body: Vec<u8>, expect: u16) -> Value {
        let response = self
            .admin
            .post(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .expect("the admin API answers");
        assert_eq!(response.status().as_u16(), expect, "POST {path}");
        serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON")
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .admin
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the admin API answers");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON")
    }
}

/// A reqwest client for the admin API: no proxy, trusts [`shared_ca`] only.
fn admin_client() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::from(
        pem_to_der(&shared_ca().cert_pem).expect("the CA's DER"),
    );
    roots.add(ca).expect("the CA is a root");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("an admin client")
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c| c.to_vec())
}

/// A private tinyproxy on a free loopback port, requiring basic authentication; killed when
/// dropped. Every line it logs is forwarded to [`Tinyproxy::wait_for_log`].
pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    pub user: String,
    pub password: String,
    lines: mpsc::Receiver<String>,
    pub seen: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Installs tinyproxy with apt-get if it is missing, then starts it.
    pub fn start(user: &str, password: &str) -> Self {
        ensure_tinyproxy();
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start(user, password) {
                Ok(proxy) => return proxy,
                Err(error) => last_error = error,
            }
        }
        panic!("tinyproxy did not start: {last_error}");
    }

    fn try_start(user: &str, password: &str) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        Self::try_start_on(port, user, password)
    }

    /// Kills tinyproxy (an outage: its connections break, new ones are refused).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts tinyproxy again on the same port, with the same credentials (retrying for up to
    /// 20 s while the port is not free yet).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match Self::try_start_on(self.port, &self.user, &self.password) {
                Ok(proxy) => {
                    *self = proxy;
                    return;
                }
                Err(error) => assert!(
                    std::time::Instant::now() < deadline,
                    "tinyproxy did not start again on port {}: {error}",
                    self.port
                ),
            }
            std::thread::yield_now();
        }
    }

    fn try_start_on(port: u16, user: &str, password: &str) -> Result<Self, String> {
        let dir = super::support::temp_dir();
        let config = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 120\nMaxClients 64\nLogLevel Info\n\
             BasicAuth {user} {password}\nAllow 127.0.0.1\nDisableViaHeader Yes\n"
        );
        let config_path = write(dir.path(), "tinyproxy.conf", &config);
        // `exec` so the child's id is tinyproxy's; `2>&1` so one pipe carries its log.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec tinyproxy -d -c \"$1\" 2>&1")
            .arg("sh")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run tinyproxy: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_reader = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen_by_reader
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut proxy = Self {
            child,
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            lines: rx,
            seen,
            _dir: dir,
        };
        if proxy.wait_for_log("Accepting connections", Duration::from_secs(20)) {
            Ok(proxy)
        } else {
            let log = proxy
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .join("\n");
            let _ = proxy.child.kill();
            Err(log)
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until tinyproxy logs a line containing `needle` (already logged counts).
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        if self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.contains(needle))
        {
            return true;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_tinyproxy() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let present = Command::new("sh")
            .arg("-c")
            .arg("command -v tinyproxy")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let status = Command::new("sh")
                .arg("-c")
                .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy")
                .status()
                .expect("apt-get runs");
            assert!(status.success(), "apt-get install tinyproxy failed");
        }
    });
}

/// `sccm-connector sim portal client MODE` with `env` set and the same remote ID, timeouts and
/// quick retries as [`client_config`]; its stdout (the `<what> <n>` reports) is piped.
pub fn child(mode: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sccm-connector"));
    command
        .args(["sim", "portal", "client", mode])
        .env("REMOTE_ID", REMOTE_ID)
        .env("CONNECT_TIMEOUT_SECONDS", "5")
        .env("READ_TIMEOUT_SECONDS", "30")
        .env("RETRY_ATTEMPTS", "4")
        .env("RETRY_INITIAL_MS", "20")
        .env("RETRY_MAX_MS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A child's `<prefix> <n>` reports, read from its stdout as the engine would journal them.
pub struct Reports {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    prefix: String,
    /// The last report read.
    pub last: Option<u64>,
}

impl Reports {
    pub fn new(mut child: Child, prefix: &str) -> Self {
        let stdout = child.stdout.take().expect("a piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            prefix: prefix.to_owned(),
            last: None,
        }
    }

    /// Blocks until the child reports at least `threshold`.
    pub fn wait_for(&mut self, threshold: u64) {
        for line in self.lines.by_ref() {
            let line = line.expect("a line from the child");
            if let Some(n) = parse_report(&line, &self.prefix) {
                self.last = Some(n);
                if n >= threshold {
                    return;
                }
            }
        }
        panic!("the child ended before reporting {threshold}");
    }

    /// SIGKILLs the child, reads what it wrote before dying, returns the last report.
    pub fn kill(mut self) -> u64 {
        self.child.kill().expect("the child is killed");
        let status = self.child.wait().expect("the child is reaped");
        assert!(!status.success(), "the child was killed, not finished");
        // Lines written before the kill are journaled too.
        for line in self.lines.map_while(Result::ok) {
            if let Some(n) = parse_report(&line, &self.prefix) {
                self.last = Some(n);
            }
        }
        self.last
            .expect("the child reported progress before it was killed")
    }
}

/// Reads a child's reports until one is at least `threshold`, then kills the child and returns
/// its last report.
pub fn kill_after(child: Child, prefix: &str, threshold: u64) -> u64 {
    let mut reports = Reports::new(child, prefix);
    reports.wait_for(threshold);
    let last = reports.kill();
    assert!(last >= threshold, "killed at {last}, before {threshold}");
    last
}

/// `<prefix> <n>` at the end of a line (the test harness may print its own text before it).
fn parse_report(line: &str, prefix: &str) -> Option<u64> {
    let (_, rest) = line.rsplit_once(&format!("{prefix} "))?;
    rest.trim().parse().ok()
}

/// Stands in for a stopped portal on `addr`: accepts connections, reads each request's head and
/// closes the connection without an answer, until a request whose first line starts with
/// `request_line` (e.g. `POST /api/connector/v1/commands/x/result`) arrived or `within` ran out.
/// Returns whether it arrived. The listener is gone when this returns (connections refused).
pub async fn refuse_until_request(addr: SocketAddr, request_line: &str, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the stopped portal's port is free");
    let until = tokio::time::Instant::now() + within;
    loop {
        let Ok(Ok((mut socket, _))) = tokio::time::timeout_at(until, listener.accept()).await
        else {
            return false;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
            match tokio::time::timeout_at(until, socket.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        drop(socket);
        if head.starts_with(request_line.as_bytes()) {
            return true;
        }
    }
}
