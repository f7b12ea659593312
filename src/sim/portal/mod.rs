//! `sccm-connector sim portal`: the portal simulator. It serves protocol v1 (the connector
//! endpoints) and the `/sim/` admin API of the contract on one listener, over HTTP or TLS
//! (optionally requiring client certificates), keeps its state under `--data` (surviving its own
//! restart), deduplicates results by idempotency key while counting deliveries, and injects the
//! faults of a fault plan. `docs/protocol.md` documents it all.
//!
//! - `state`: the durable state and the data directory's layout.
//! - `faults`: the fault plan.
//! - `files`: package and upload bytes, and download faults.
//! - `api`: the connector endpoints; `admin`: `/sim/…`.
//! - `server`: the listener, TLS, and the per-connection kill switch.
//! - `drive`: the hidden `sim portal client MODE`, the connector's client run once in a process
//!   of its own (for the crash tests).
//!
//! In-process use (tests, the demo): [`serve`] returns a [`SimHandle`] with the bound address.

mod admin;
mod api;
mod drive;
pub mod faults;
mod files;
mod server;
mod state;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use faults::{Fault, FaultPlan};
use serde::Serialize;
use sha2::Sha256;
use state::{Layout, State as SimState, UploadRecord};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The address to listen on (port 0 picks a free one; see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    /// Where the state lives (created if missing).
    pub data: PathBuf,
    /// Serve TLS with this certificate chain and key (PEM).
    pub tls: Option<SimTls>,
    /// The accepted remote IDs; empty = any remote ID (the header is still required).
    pub remote_ids: Vec<String>,
    /// The `poll_after_seconds` of every poll answer.
    pub poll_after_seconds: u64,
}

impl SimConfig {
    /// Plain HTTP on `listen`, any remote ID, polls every 10 s.
    pub fn new(listen: SocketAddr, data: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data: data.into(),
            tls: None,
            remote_ids: Vec::new(),
            poll_after_seconds: 10,
        }
    }
}

/// TLS for the simulator.
#[derive(Debug, Clone)]
pub struct SimTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require a client certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A running simulator. Dropping it stops it (abruptly); [`SimHandle::shutdown`] stops it and
/// waits until the port is free again.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, closes every connection, and returns once the listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the simulator on the current tokio runtime.
pub async fn serve(config: SimConfig) -> Result<SimHandle, String> {
    let layout =
        Layout::create(&config.data).map_err(|e| format!("{}: {e}", config.data.display()))?;
    let state = layout.load()?;
    let tls = match &config.tls {
        Some(tls) => Some(server::acceptor(
            &tls.cert,
            &tls.key,
            tls.client_ca.as_deref(),
        )?),
        None => None,
    };
    let sim = Arc::new(Sim {
        layout,
        state: Mutex::new(state),
        writer: Mutex::new(()),
        faults: Mutex::new(FaultPlan::default()),
        requests: Mutex::new(VecDeque::new()),
        next_request: Mutex::new(0),
        logged: tokio::sync::watch::Sender::new(0),
        uploads: Mutex::new(HashMap::new()),
        remote_ids: config.remote_ids.clone(),
        poll_after_seconds: config.poll_after_seconds,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    remember_listen(&sim.layout, &config.data, addr)?;
    let (stop, stopped) = oneshot::channel();
    let with_tls = tls.is_some();
    let task = tokio::spawn(server::run(listener, tls, router(sim), stopped));
    Ok(SimHandle {
        addr,
        tls: with_tls,
        stop: Some(stop),
        task: Some(task),
    })
}

fn router(sim: Arc<Sim>) -> Router {
    let api = Router::new()
        .route("/api/connector/v1/commands", get(api::poll))
        .route("/api/connector/v1/commands/{id}/ack", post(api::ack))
        .route(
            "/api/connector/v1/commands/{id}/progress",
            post(api::progress),
        )
        .route("/api/connector/v1/commands/{id}/result", post(api::result))
        .route("/api/connector/v1/packages/{id}", get(api::package))
        .route("/api/connector/v1/uploads", post(api::open_upload))
        .route(
            "/api/connector/v1/uploads/{id}",
            get(api::upload_status).put(api::upload_chunk),
        )
        .route(
            "/api/connector/v1/uploads/{id}/complete",
            post(api::upload_complete),
        )
        .layer(axum::middleware::from_fn_with_state(sim.clone(), guard));
    let admin = Router::new()
        .route("/sim/packages", post(admin::add_package))
        .route("/sim/commands", post(admin::add_command))
        .route("/sim/commands/{id}", get(admin::command))
        .route("/sim/commands/{id}/redeliver", post(admin::redeliver))
        .route("/sim/results", get(admin::results))
        .route("/sim/uploads/{id}", get(admin::upload))
        .route(
            "/sim/faults",
            post(admin::set_faults)
                .get(admin::faults)
                .delete(admin::clear_faults),
        )
        .route("/sim/requests", get(admin::requests))
        .route("/sim/health", get(|| async { "ok" }));
    api.merge(admin).with_state(sim)
}

/// The shared state of a running simulator.
pub(crate) struct Sim {
    layout: Layout,
    state: Mutex<SimState>,
    /// Held by an update from its copy of the state to the swap.
    writer: Mutex<()>,
    faults: Mutex<FaultPlan>,
    requests: Mutex<VecDeque<LoggedRequest>>,
    next_request: Mutex<u64>,
    /// Bumped whenever a request is logged (for `GET /sim/requests?min=…`).
    logged: tokio::sync::watch::Sender<u64>,
    /// Per upload: the lock serialising its writes, and the hash of its bytes so far.
    uploads: Mutex<HashMap<String, UploadLock>>,
    remote_ids: Vec<String>,
    poll_after_seconds: u64,
}

type UploadLock = Arc<tokio::sync::Mutex<Option<(u64, Sha256)>>>;

/// The connector requests kept for `GET /sim/requests`.
const MAX_LOGGED: usize = 10_000;

/// One connector request, as `GET /sim/requests` shows it.
#[derive(Debug, Clone, Serialize)]
struct LoggedRequest {
    seq: u64,
    method: String,
    /// Path and query.
    path: String,
    range: Option<String>,
    idempotency_key: Option<String>,
    /// The fault applied, if any.
    fault: Option<Fault>,
    /// The answer's status, once known (never, for a connection closed by a fault).
    status: Option<u16>,
}

impl Sim {
    /// Reads the state.
    fn read<T>(&self, f: impl FnOnce(&SimState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Changes the state and saves it durably before answering. The change is made to a copy,
    /// which replaces the state only once saved: if saving fails (or `f` does), memory keeps the
    /// state that is on disk. Updates are serialised by `writer`; readers see the old state until
    /// the swap, never an unsaved one. The blocking save runs off the async workers
    /// ([`blocking`]).
    fn update<T>(
        &self,
        f: impl FnOnce(&mut SimState) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        blocking(|| {
            let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = self.read(SimState::clone);
            let value = f(&mut next)?;
            self.layout.save(&next).map_err(ApiError::internal)?;
            *self.state.lock().unwrap_or_else(|p| p.into_inner()) = next;
            Ok(value)
        })
    }

    fn upload_record(&self, id: &str) -> Result<UploadRecord, ApiError> {
        self.read(|state| state.uploads.get(id).cloned())
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no upload {id:?}")))
    }

    fn upload_lock(&self, id: &str) -> UploadLock {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    fn log(&self, entry: LoggedRequest) {
        let mut log = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= MAX_LOGGED {
            log.pop_front();
        }
        let seq = entry.seq;
        log.push_back(entry);
        drop(log);
        self.logged.send_replace(seq);
    }

    fn log_status(&self, seq: u64, status: u16) {
        let mut log = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = log.iter_mut().rev().find(|e| e.seq == seq) {
            entry.status = Some(status);
        }
    }
}

/// Runs blocking file work from an async handler: on a multi-thread runtime with
/// `block_in_place` (the worker's other tasks move to another thread meanwhile); on a
/// current-thread runtime (where that is not possible) or outside one, inline.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The fault (if any) chosen for a request, for its handler.
#[derive(Debug, Clone)]
pub(crate) struct ActiveFault(Option<Fault>);

/// Before every connector endpoint: log the request, check the remote ID, apply the fault plan.
async fn guard(State(sim): State<Arc<Sim>>, mut request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let [range, idempotency_key, remote_id] = ["range", "idempotency-key", "x-connector-remote-id"]
        .map(|name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let fault = sim
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(&method, &path);
    let seq = {
        let mut next = sim.next_request.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        *next
    };
    sim.log(LoggedRequest {
        seq,
        method,
        path: request
            .uri()
            .path_and_query()
            .map_or(path.clone(), |p| p.as_str().to_owned()),
        range,
        idempotency_key,
        fault: fault.clone(),
        status: None,
    });
    let response = match remote_id {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "X-Connector-Remote-Id is required",
        )
        .into_response(),
        Some(id) if !sim.remote_ids.is_empty() && !sim.remote_ids.contains(&id) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unknown remote ID").into_response()
        }
        Some(_) => match fault {
            Some(Fault::Status {
                status,
                retry_after,
            }) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response =
                    ApiError::new(status, "injected by the fault plan").into_response();
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            Some(Fault::Delay {
                ms,
                after_bytes: None,
            }) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                next.run(request).await
            }
            Some(Fault::Reset { .. })
                if !(path.contains("/packages/") || path.contains("/uploads/")) =>
            {
                let kill = request.extensions().get::<server::ConnKill>().cloned();
                drop(request);
                kill_connection(kill).await
            }
            Some(Fault::DropResponse) => {
                let kill = request.extensions().get::<server::ConnKill>().cloned();
                let response = next.run(request).await;
                // The answer exists (and the state changed); the connector never gets it.
                drop(response);
                if let Some(kill) = kill {
                    kill.kill();
                }
                std::future::pending::<Response>().await
            }
            fault => {
                request.extensions_mut().insert(ActiveFault(fault));
                next.run(request).await
            }
        },
    };
    sim.log_status(seq, response.status().as_u16());
    response
}

async fn kill_connection(kill: Option<server::ConnKill>) -> Response {
    if let Some(kill) = kill {
        kill.kill();
    }
    std::future::pending::<Response>().await
}

/// An error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }

    fn unknown_command(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no command {id:?}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &serde_json::json!({"error": self.message}))
    }
}

/// The file under `--data` that remembers the address the simulator last listened on, so that
/// `sim portal --data DIR` without `--listen` serves where the connectors of that data expect it.
const LISTEN_FILE: &str = "listen";

/// Writes the bound address to `DATA/listen`, durably like the state.
fn remember_listen(layout: &Layout, data: &Path, addr: SocketAddr) -> Result<(), String> {
    let target = data.join(LISTEN_FILE);
    state::write_durably(&layout.temp(), &target, format!("{addr}\n").as_bytes()).map_err(|e| {
        format!(
            "cannot record the listen address in {}: {e}",
            target.display()
        )
    })
}

/// The address `DATA/listen` remembers.
fn remembered_listen(data: &Path) -> Result<SocketAddr, String> {
    let path = data.join(LISTEN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "--listen is required: {} does not remember an address ({e})",
            path.display()
        )
    })?;
    text.trim().parse().map_err(|e| {
        format!(
            "{} holds {:?}, not an address: {e}",
            path.display(),
            text.trim()
        )
    })
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The simulator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "sccm-connector sim portal",
    about = "The portal simulator: protocol v1, its /sim/ admin API and faults"
)]
struct Args {
    /// The address to listen on, e.g. 127.0.0.1:8443 (port 0: any free port, printed). Without
    /// it, the address this --data last listened on (remembered in DATA/listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The state directory (created if missing; survives restarts).
    #[arg(long)]
    data: PathBuf,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (mutual TLS; needs --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// An accepted remote ID (repeatable); without any, every remote ID is accepted.
    #[arg(long = "remote-id")]
    remote_ids: Vec<String>,
    /// The poll_after_seconds of every poll answer.
    #[arg(long, default_value_t = 10)]
    poll_after: u64,
}

/// Entry point of `sccm-connector sim portal` (`args`: everything after it). Prints
/// `listening on http(s)://ADDR` once bound, then serves until SIGINT or SIGTERM.
pub fn main(args: Vec<OsString>) -> ExitCode {
    if args.first().is_some_and(|a| a == "client") {
        return match args.get(1).and_then(|m| m.to_str()) {
            Some(mode) if args.len() == 2 => drive::main(mode),
            _ => {
                eprintln!("usage: sccm-connector sim portal client download|upload|poll");
                ExitCode::from(2)
            }
        };
    }
    let argv = std::iter::once(OsString::from("sccm-connector sim portal")).chain(args);
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let listen = match args.listen {
        Some(listen) => listen,
        None => match remembered_listen(&args.data) {
            Ok(listen) => listen,
            Err(e) => {
                eprintln!("sccm-connector sim portal: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let config = SimConfig {
        listen,
        data: args.data,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(SimTls {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
            _ => None,
        },
        remote_ids: args.remote_ids,
        poll_after_seconds: args.poll_after,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sccm-connector sim portal: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if config.remote_ids.is_empty() {
            eprintln!("sccm-connector sim portal: accepting any remote ID (no --remote-id given)");
        }
        let handle = match serve(config).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("sccm-connector sim portal: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {}", handle.url());
        let _ = stdout.flush();
        wait_for_signal().await;
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_listen_address_is_remembered_in_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = remembered_listen(dir.path()).expect_err("nothing remembered yet");
        assert!(missing.contains("--listen is required"), "{missing}");
        let handle = start(dir.path()).await;
        assert_eq!(remembered_listen(dir.path()), Ok(handle.addr()));
        handle.shutdown().await;
        std::fs::write(dir.path().join(LISTEN_FILE), "not an address").expect("write");
        let garbage = remembered_listen(dir.path()).expect_err("garbage");
        assert!(garbage.contains("not an address"), "{garbage}");
    }

    async fn start(dir: &std::path::Path) -> SimHandle {
        serve(SimConfig::new("127.0.0.1:0".parse().expect("works"), dir))
            .await
            .expect("works")
    }

    async fn post_command(url: &str, id: &str) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("{url}/sim/commands"))
            .body(format!("{{\"id\": \"{id}\"}}"))
            .send()
            .await
            .expect("works")
            .status()
    }

    async fn command_status(url: &str, id: &str) -> reqwest::StatusCode {
        reqwest::get(format!("{url}/sim/commands/{id}"))
            .await
            .expect("works")
            .status()
    }

    async fn a_failed_save_leaves_memory_as_on_disk() {
        // reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("works");
        let sim = start(dir.path()).await;
        let url = sim.url();
        assert_eq!(post_command(&url, "kept").await, 201);
        // Saving fails: its temporary files cannot be created.
        let tmp = dir.path().join("tmp");
        std::fs::remove_dir_all(&tmp).expect("works");
        assert_eq!(post_command(&url, "lost").await, 500);
        assert_eq!(command_status(&url, "lost").await, 404, "not in memory");
        std::fs::create_dir_all(&tmp).expect("works");
        assert_eq!(post_command(&url, "later").await, 201);
        sim.shutdown().await;
        // Memory and disk agree: a restarted simulator knows the same commands.
        let sim = start(dir.path()).await;
        let url = sim.url();
        assert_eq!(command_status(&url, "kept").await, 200);
        assert_eq!(command_status(&url, "lost").await, 404);
        assert_eq!(command_status(&url, "later").await, 200);
        sim.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_save_changes_nothing_on_a_multi_thread_runtime() {
        a_failed_save_leaves_memory_as_on_disk().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_save_changes_nothing_on_a_current_thread_runtime() {
        a_failed_save_leaves_memory_as_on_disk().await;
    }
}
