//! The optional metrics endpoint: `/metrics` in the Prometheus text exposition format 0.0.4 and
//! `/healthz`, served on a loopback address only (`[metrics] listen`).
//!
//! Everything about jobs is read from the journal's folded state at scrape time (jobs by state,
//! step durations from each attempt's journaled start and end, results waiting for the portal,
//! the journal's size), so the numbers are the durable truth. The daemon feeds only what the
//! journal does not hold: polls, poll errors, and when the next poll is due ([`Metrics`]).
//!
//! The step duration histogram is a counter for the process's lifetime: each scrape adds the
//! attempts that ended since the last one ([`StepDurations`]), so the attempts of jobs retention
//! prunes stay counted. Its series are labelled by the step's stable name (`read-metadata`, not
//! `read-metadata 16777217`): a bounded set however many applications pass through.
//!
//! `/healthz` answers 200 `{"status":"ok",…}` while the poll loop is on schedule (its next poll
//! not overdue by more than [`HEALTH_GRACE`]), 503 `{"status":"stale",…}` otherwise.

use crate::engine::store::Store;
use replay::JobId;
use replay::{ResultStatus, Stage, Timestamp};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How late the next poll may be before `/healthz` says the loop is stuck.
pub const HEALTH_GRACE: Duration = Duration::from_secs(60);

/// Upper bounds (seconds) of the step duration histogram's buckets.
pub const STEP_BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:port`, a loopback IP (`127.0.0.1:9464`, `[::1]:9464`); port 0 picks a free port.
    pub listen: String,
}

impl MetricsConfig {
    /// The address to listen on, or why it is refused.
    pub fn address(&self) -> Result<SocketAddr, String> {
        let address: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "{:?} is not an IP:port (for example \"127.0.0.1:9464\")",
                self.listen
            )
        })?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "{address} is not a loopback address: the metrics endpoint has no authentication, \
                 so it listens on 127.0.0.1 or [::1] only (put a reverse proxy in front to expose it)"
            ));
        }
        Ok(address)
    }
}

/// The daemon's live counters, shared with the endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    polls: AtomicU64,
    poll_errors: AtomicU64,
    /// Unix milliseconds of the last poll's end (0: none yet).
    last_poll_ms: AtomicI64,
    /// Unix milliseconds when the next poll is due (0: not scheduled yet).
    next_poll_due_ms: AtomicI64,
    /// Where the endpoint listens, once bound (port 0 resolved).
    bound: OnceLock<SocketAddr>,
    /// The step duration histograms, accumulated scrape by scrape.
    steps: Mutex<StepDurations>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::default()
    }

    /// A poll ended at `now`, successfully or not.
    pub fn poll_done(&self, ok: bool, now: Timestamp) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.poll_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.last_poll_ms.store(now.millis(), Ordering::Relaxed);
    }

    /// The loop will poll again after `delay` from `now`.
    pub fn next_poll(&self, now: Timestamp, delay: Duration) {
        let due = now.plus_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self.next_poll_due_ms.store(due.millis(), Ordering::Relaxed);
    }

    /// The endpoint's address, once it listens.
    pub fn bound(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    /// Whether the poll loop is on schedule at `now`.
    pub fn healthy(&self, now: Timestamp) -> bool {
        let due = self.next_poll_due_ms.load(Ordering::Relaxed);
        due > 0
            && now.millis()
                <= due.saturating_add(i64::try_from(HEALTH_GRACE.as_millis()).unwrap_or(i64::MAX))
    }
}

/// The state label of a job.
pub fn state_label(stage: &Stage) -> &'static str {
    match stage {
        Stage::Received => "received",
        Stage::AwaitingPlan { .. } => "awaiting_plan",
        Stage::Running { .. } => "running",
        Stage::Concluding(_) => "concluding",
        Stage::Reporting { .. } => "reporting",
        Stage::Closing { .. } => "closing",
        Stage::Finished { status, .. } => match status {
            ResultStatus::Ok => "finished_ok",
            ResultStatus::Failed => "finished_failed",
            ResultStatus::Rejected => "finished_rejected",
        },
    }
}

/// Every state label, in the order they are exposed (all of them, zeros included).
/// `archived`: finished jobs retention moved to an archive file and pruned.
pub const STATES: [&str; 10] = [
    "received",
    "awaiting_plan",
    "running",
    "concluding",
    "reporting",
    "closing",
    "finished_ok",
    "finished_failed",
    "finished_rejected",
    "archived",
];

#[derive(Debug, Default, Clone, PartialEq)]
struct Histogram {
    buckets: [u64; STEP_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(STEP_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The `step` label of a step: its stable name, the first word of the step's name (`upload
/// 16777217` → `upload`), so the label set stays bounded.
pub fn step_label(name: &str) -> &str {
    name.split(' ').next().unwrap_or(name)
}

/// An attempt's identity: job, step index, attempt number.
type AttemptKey = (JobId, u32, u32);

/// The step duration histograms for the process's lifetime. [`StepDurations::observe`] is given
/// every ended attempt in the journal at each scrape and adds those it has not counted yet; the
/// keys of jobs no longer in the journal (pruned by retention) are forgotten, their attempts stay
/// in the histograms. A restart starts again from what the journal holds (a counter reset).
#[derive(Debug, Default)]
pub struct StepDurations {
    histograms: BTreeMap<String, Histogram>,
    counted: BTreeMap<JobId, BTreeSet<(u32, u32)>>,
}

impl StepDurations {
    /// One scrape's view: every ended attempt still in the journal, as (key, step name,
    /// seconds). Attempts already counted are skipped.
    pub fn observe<'a>(&mut self, ended: impl IntoIterator<Item = (AttemptKey, &'a str, f64)>) {
        let mut present: BTreeMap<JobId, BTreeSet<(u32, u32)>> = BTreeMap::new();
        for ((job, step, attempt), name, seconds) in ended {
            let seen = self
                .counted
                .get(&job)
                .is_some_and(|s| s.contains(&(step, attempt)));
            if !seen {
                self.histograms
                    .entry(step_label(name).to_string())
                    .or_default()
                    .observe(seconds);
            }
            present.entry(job).or_default().insert((step, attempt));
        }
        self.counted = present;
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What one scrape shows, gathered from the store and the counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub jobs: BTreeMap<&'static str, u64>,
    steps: BTreeMap<String, Histogram>,
    pub outbox_depth: u64,
    pub journal_bytes: u64,
    pub polls: u64,
    pub poll_errors: u64,
    pub last_poll_ms: i64,
}

impl Snapshot {
    pub fn gather(store: &Store, metrics: &Metrics) -> Snapshot {
        let fleet = store.fleet();
        let mut snapshot = Snapshot {
            journal_bytes: store.journal().size_on_disk().unwrap_or(0),
            polls: metrics.polls.load(Ordering::Relaxed),
            poll_errors: metrics.poll_errors.load(Ordering::Relaxed),
            last_poll_ms: metrics.last_poll_ms.load(Ordering::Relaxed),
            ..Snapshot::default()
        };
        let archived = fleet.archived().count() as u64;
        if archived > 0 {
            snapshot.jobs.insert("archived", archived);
        }
        let mut ended = Vec::new();
        for job in fleet.jobs() {
            *snapshot.jobs.entry(state_label(job.stage())).or_default() += 1;
            if matches!(job.stage(), Stage::Reporting { .. }) {
                snapshot.outbox_depth += 1;
            }
            for (index, step) in job.steps().iter().enumerate() {
                for attempt in &step.attempts {
                    if let Some(end) = attempt.ended_at {
                        let ms = end
                            .millis()
                            .saturating_sub(attempt.started_at.millis())
                            .max(0);
                        let key = (
                            job.id(),
                            u32::try_from(index).unwrap_or(u32::MAX),
                            attempt.number,
                        );
                        ended.push((key, step.step.name.as_str(), ms as f64 / 1000.0));
                    }
                }
            }
        }
        let mut steps = metrics.steps.lock().unwrap_or_else(|p| p.into_inner());
        steps.observe(ended);
        snapshot.steps = steps.histograms.clone();
        snapshot
    }

    /// The text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "sccm_connector_jobs",
            "gauge",
            "Jobs in the journal by state.",
        );
        for state in STATES {
            let n = self.jobs.get(state).copied().unwrap_or(0);
            let _ = writeln!(out, "sccm_connector_jobs{{state=\"{state}\"}} {n}");
        }
        family(
            &mut out,
            "sccm_connector_step_duration_seconds",
            "histogram",
            "Duration of each finished step attempt, from its journaled start to its outcome, by step name (counted since the connector started).",
        );
        for (step, h) in &self.steps {
            let step = label(step);
            for (bound, n) in STEP_BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "sccm_connector_step_duration_seconds_bucket{{step=\"{step}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "sccm_connector_step_duration_seconds_bucket{{step=\"{step}\",le=\"+Inf\"}} {}\n\
                 sccm_connector_step_duration_seconds_sum{{step=\"{step}\"}} {}\n\
                 sccm_connector_step_duration_seconds_count{{step=\"{step}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        for (name, kind, help, value) in [
            (
                "sccm_connector_polls_total",
                "counter",
                "Polls of the portal since the connector started.",
                self.polls as f64,
            ),
            (
                "sccm_connector_poll_errors_total",
                "counter",
                "Polls of the portal that failed since the connector started.",
                self.poll_errors as f64,
            ),
            (
                "sccm_connector_last_poll_timestamp_seconds",
                "gauge",
                "When the last poll ended (Unix time; 0 before the first).",
                self.last_poll_ms as f64 / 1000.0,
            ),
            (
                "sccm_connector_outbox_depth",
                "gauge",
                "Results journaled and not yet acknowledged by the portal.",
                self.outbox_depth as f64,
            ),
            (
                "sccm_connector_journal_size_bytes",
                "gauge",
                "Bytes of the journal on disk.",
                self.journal_bytes as f64,
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen on {address} for metrics: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Shared {
    store: Store,
    metrics: Arc<Metrics>,
}

fn now() -> Timestamp {
    crate::engine::driver::now()
}

async fn metrics_page(
    axum::extract::State(shared): axum::extract::State<Shared>,
) -> impl axum::response::IntoResponse {
    let text = tokio::task::spawn_blocking(move || {
        Snapshot::gather(&shared.store, &shared.metrics).render()
    })
    .await
    .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn health(
    axum::extract::State(shared): axum::extract::State<Shared>,
) -> impl axum::response::IntoResponse {
    let now = now();
    let healthy = shared.metrics.healthy(now);
    let last = shared.metrics.last_poll_ms.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "stale" },
        "last_poll_unix_ms": (last > 0).then_some(last),
        "unfinished_jobs": shared.store.unfinished().len(),
    });
    let status = if healthy {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Binds `address` and serves the endpoint until the returned task is aborted. The bound
/// address is recorded in `metrics` ([`Metrics::bound`]).
pub async fn serve(
    address: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
) -> Result<tokio::task::JoinHandle<()>, MetricsError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { address, source })?;
    let _ = metrics.bound.set(bound);
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics_page))
        .route("/healthz", axum::routing::get(health))
        .with_state(Shared { store, metrics });
    tracing::info!(address = %bound, "metrics endpoint listening (/metrics, /healthz)");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the metrics endpoint stopped: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let cfg = |s: &str| MetricsConfig { listen: s.into() };
        assert!(cfg("127.0.0.1:9464").address().is_ok());
        assert!(cfg("[::1]:0").address().is_ok());
        let err = cfg("0.0.0.0:9464").address().expect_err("not loopback");
        assert!(err.contains("not a loopback address"), "{err}");
        let err = cfg("localhost:9464").address().expect_err("not an IP");
        assert!(err.contains("is not an IP:port"), "{err}");
    }

    #[test]
    fn health_follows_the_poll_schedule() {
        let m = Metrics::default();
        assert!(!m.healthy(Timestamp(1_000)));
        m.next_poll(Timestamp(1_000), Duration::from_secs(30));
        assert!(m.healthy(Timestamp(31_000 + 60_000)));
        assert!(!m.healthy(Timestamp(31_000 + 60_001)));
    }

    #[test]
    fn steps_are_labelled_by_their_stable_name() {
        assert_eq!(step_label("read-metadata 16777217"), "read-metadata");
        assert_eq!(step_label("upload 16777217"), "upload");
        assert_eq!(step_label("ensure-application"), "ensure-application");
        let mut d = StepDurations::default();
        let (a, b) = (
            JobId(uuid::Uuid::from_u128(1)),
            JobId(uuid::Uuid::from_u128(2)),
        );
        d.observe([
            ((a, 3, 1), "read-metadata 16777217", 0.2),
            ((b, 3, 1), "read-metadata 16777218", 0.3),
        ]);
        assert_eq!(
            d.histograms.keys().collect::<Vec<_>>(),
            ["read-metadata"],
            "one series for every application"
        );
        assert_eq!(d.histograms["read-metadata"].count, 2);
    }

    #[test]
    fn step_counts_never_go_down_when_jobs_are_pruned() {
        let mut d = StepDurations::default();
        let (a, b) = (
            JobId(uuid::Uuid::from_u128(1)),
            JobId(uuid::Uuid::from_u128(2)),
        );
        d.observe([((a, 0, 1), "download", 1.0), ((a, 0, 2), "download", 2.0)]);
        assert_eq!(d.histograms["download"].count, 2);
        // The same attempts at the next scrape are not counted again.
        d.observe([((a, 0, 1), "download", 1.0), ((a, 0, 2), "download", 2.0)]);
        assert_eq!(d.histograms["download"].count, 2);
        // Job a pruned by retention, job b's attempt ended: the count only grows.
        d.observe([((b, 0, 1), "download", 0.5)]);
        let h = &d.histograms["download"];
        assert_eq!((h.count, h.sum), (3, 3.5));
        assert!(
            !d.counted.contains_key(&a),
            "a pruned job's keys are forgotten"
        );
        d.observe([]);
        assert_eq!(d.histograms["download"].count, 3);
    }

    #[test]
    fn the_text_format_is_exact() {
        let mut s = Snapshot {
            polls: 3,
            poll_errors: 1,
            outbox_depth: 2,
            journal_bytes: 4096,
            last_poll_ms: 1_500,
            ..Snapshot::default()
        };
        s.jobs.insert("finished_ok", 1);
        let mut h = Histogram::default();
        h.observe(0.25);
        h.observe(20.0);
        s.steps.insert("ensure-\"app\"".into(), h);
        let text = s.render();
        assert!(text.starts_with(
            "# HELP sccm_connector_jobs Jobs in the journal by state.\n# TYPE sccm_connector_jobs gauge\nsccm_connector_jobs{state=\"received\"} 0\n"
        ));
        assert!(text.contains("sccm_connector_jobs{state=\"finished_ok\"} 1\n"));
        assert!(text.contains(
            "sccm_connector_step_duration_seconds_bucket{step=\"ensure-\\\"app\\\"\",le=\"0.1\"} 0\n\
             sccm_connector_step_duration_seconds_bucket{step=\"ensure-\\\"app\\\"\",le=\"0.5\"} 1\n"
        ));
        assert!(text.contains(
            "sccm_connector_step_duration_seconds_bucket{step=\"ensure-\\\"app\\\"\",le=\"60\"} 2\n"
        ));
        assert!(text.contains(
            "sccm_connector_step_duration_seconds_sum{step=\"ensure-\\\"app\\\"\"} 20.25\n"
        ));
        assert!(text.contains("sccm_connector_poll_errors_total 1\n"));
        assert!(text.contains("sccm_connector_last_poll_timestamp_seconds 1.5\n"));
        assert!(text.ends_with("sccm_connector_journal_size_bytes 4096\n"));
    }
}
