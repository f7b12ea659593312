//! The simulator's admin API under `/sim/` (tests and the demo): publish packages, queue
//! commands, inspect deliveries, results and uploads, set the fault plan, read the request log.
//! Never authenticated, never faulted.

use super::faults::FaultPlan;
use super::files::{self, Sink};
use super::state::{CommandRecord, PackageRecord, rename_durably};
use super::{ApiError, Sim, json_response};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// `POST /sim/packages`: body = the zip → `201 {"package_id", "url", "sha256", "size"}`.
pub async fn add_package(State(sim): State<Arc<Sim>>, body: Body) -> Result<Response, ApiError> {
    let temp = sim.layout.temp();
    let mut sink = Sink::open(&temp, None).await.map_err(ApiError::internal)?;
    let complete = files::append_body(&mut sink, body.into_data_stream(), None)
        .await
        .map_err(ApiError::internal)?;
    if !complete {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the body broke off"));
    }
    let (size, sha256) = (sink.len, sink.sha256());
    drop(sink);
    let id = sim.update(|state| {
        state.next_package += 1;
        let id = format!("pkg-{}", state.next_package);
        rename_durably(&temp, &sim.layout.package(&id)).map_err(ApiError::internal)?;
        state.packages.insert(
            id.clone(),
            PackageRecord {
                size,
                sha256: sha256.clone(),
            },
        );
        Ok(id)
    })?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "package_id": id,
            "url": format!("/api/connector/v1/packages/{id}"),
            "sha256": sha256,
            "size": size,
        }),
    ))
}

/// `POST /sim/commands`: body = a command (any JSON; kept byte for byte) → `201 {"id"}`. Its
/// `id` is the command's `"id"` string, or a generated `sim-…` when it has none.
pub async fn add_command(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "a command is UTF-8 JSON"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("not JSON: {e}")))?;
    let id = match value.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => format!("sim-{}", uuid::Uuid::new_v4()),
    };
    let raw = text.trim().to_owned();
    sim.update(|state| {
        if state.command(&id).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("command {id:?} exists"),
            ));
        }
        state.commands.push(CommandRecord {
            id: id.clone(),
            raw,
            delivered: 0,
            acked: false,
            results: Vec::new(),
            result_posts: 0,
            progress: Vec::new(),
        });
        Ok(())
    })?;
    Ok(json_response(StatusCode::CREATED, &json!({"id": id})))
}

/// `POST /sim/commands/{id}/redeliver`: forgets the command's acknowledgement, so the next poll
/// delivers it again — what a portal restored from an old backup does. Its results are kept.
/// `204`, or `404` for an unknown command.
pub async fn redeliver(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    sim.update(|state| {
        let command = state
            .commands
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| ApiError::unknown_command(&id))?;
        command.acked = false;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /sim/commands/{id}`.
pub async fn command(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = sim
        .read(|state| state.command(&id).cloned())
        .ok_or_else(|| ApiError::unknown_command(&id))?;
    let results: Vec<Value> = record
        .results
        .iter()
        .map(|r| {
            json!({
                "idempotency_key": r.idempotency_key,
                "body": parse_or_text(&r.body),
                "deliveries": r.deliveries,
            })
        })
        .collect();
    let effective = record.results.first().map(|r| parse_or_text(&r.body));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": record.id,
            "delivered": record.delivered,
            "acked": record.acked,
            "results": results,
            "effective_result": effective,
            "result_posts": record.result_posts,
            "progress": record.progress,
        }),
    ))
}

/// `GET /sim/results`: every effective result.
pub async fn results(State(sim): State<Arc<Sim>>) -> Response {
    let results: Vec<Value> = sim.read(|state| {
        state
            .commands
            .iter()
            .filter_map(|c| {
                c.results.first().map(|r| {
                    json!({
                        "command_id": c.id,
                        "idempotency_key": r.idempotency_key,
                        "result": parse_or_text(&r.body),
                    })
                })
            })
            .collect()
    });
    json_response(StatusCode::OK, &Value::Array(results))
}

/// `GET /sim/uploads/{id}` → `{"size", "sha256", "complete", "command_id", "application"}`.
pub async fn upload(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = sim.upload_record(&id)?;
    let lock = sim.upload_lock(&id);
    let mut hash = lock.lock().await;
    let sink = Sink::open(&sim.layout.upload(&id), hash.take())
        .await
        .map_err(ApiError::internal)?;
    *hash = Some(sink.hash_state());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "size": sink.len,
            "sha256": sink.sha256(),
            "complete": record.complete,
            "command_id": record.command_id,
            "application": record.application,
        }),
    ))
}

/// `POST /sim/faults`: replaces the fault plan.
pub async fn set_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, ApiError> {
    let plan: FaultPlan = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("not a fault plan: {e}")))?;
    let shown = serde_json::to_value(&plan).unwrap_or(Value::Null);
    *sim.faults.lock().unwrap_or_else(|p| p.into_inner()) = plan;
    Ok(json_response(StatusCode::OK, &shown))
}

/// `GET /sim/faults`: what is left of the plan.
pub async fn faults(State(sim): State<Arc<Sim>>) -> Response {
    let plan = sim.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(&plan).unwrap_or(Value::Null),
    )
}

/// `DELETE /sim/faults`: no more faults.
pub async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.faults.lock().unwrap_or_else(|p| p.into_inner()) = FaultPlan::default();
    StatusCode::NO_CONTENT
}

/// `GET /sim/requests[?min=N&method=M&path=P&timeout_ms=T]`: the connector requests seen
/// since start (the last 10 000), optionally only those with method `M` and a path starting
/// with `P`. With `min`, waits (up to `T` ms, default 30 000) until at least `N` such requests
/// were seen; `"satisfied"` says whether they were.
pub async fn requests(State(sim): State<Arc<Sim>>, Query(query): Query<RequestsQuery>) -> Response {
    let mut changes = sim.logged.subscribe();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(query.timeout_ms.unwrap_or(30_000));
    loop {
        let log: Vec<Value> = sim
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| {
                query
                    .method
                    .as_deref()
                    .is_none_or(|m| r.method.eq_ignore_ascii_case(m))
            })
            .filter(|r| query.path.as_deref().is_none_or(|p| r.path.starts_with(p)))
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        let satisfied = query.min.is_none_or(|min| log.len() >= min);
        let waited = satisfied
            || tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err();
        if waited {
            return json_response(
                StatusCode::OK,
                &json!({"requests": log, "satisfied": satisfied}),
            );
        }
    }
}

/// The filters of `GET /sim/requests`.
#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    min: Option<usize>,
    method: Option<String>,
    path: Option<String>,
    timeout_ms: Option<u64>,
}

fn parse_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
