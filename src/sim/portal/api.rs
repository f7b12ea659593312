//! The connector endpoints of protocol v1 (`/api/connector/v1/…`), as the simulator serves
//! them. Authentication and faults are applied before these run (see `mod.rs`).

use super::faults::Fault;
use super::files::{self, Sink};
use super::server::ConnKill;
use super::state::{MAX_PROGRESS, ResultRecord, UploadRecord};
use super::{ActiveFault, ApiError, Sim, json_response};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// `GET /commands`: every command not yet acked, in posting order, as the exact bytes posted.
pub async fn poll(
    State(sim): State<Arc<Sim>>,
    Extension(fault): Extension<ActiveFault>,
) -> Result<Response, ApiError> {
    let duplicate = match fault.0 {
        Some(Fault::DuplicateDelivery { command_id }) => Some(command_id),
        _ => None,
    };
    let raws = sim.update(|state| {
        let mut raws = Vec::new();
        for command in state.commands.iter_mut().filter(|c| !c.acked) {
            let twice = match &duplicate {
                Some(None) => true,
                Some(Some(id)) => *id == command.id,
                None => false,
            };
            let times = if twice { 2 } else { 1 };
            command.delivered += times;
            for _ in 0..times {
                raws.push(command.raw.clone());
            }
        }
        Ok(raws)
    })?;
    let body = format!(
        "{{\"commands\":[{}],\"poll_after_seconds\":{}}}",
        raws.join(","),
        sim.poll_after_seconds
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /commands/{id}/ack` → `204`.
pub async fn ack(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    sim.update(|state| {
        let command = state
            .command_mut(&id)
            .ok_or_else(|| ApiError::unknown_command(&id))?;
        command.acked = true;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /commands/{id}/progress` → `204` (kept, the last few per command).
pub async fn progress(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("progress is not JSON: {e}"),
        )
    })?;
    sim.update(|state| {
        let command = state
            .command_mut(&id)
            .ok_or_else(|| ApiError::unknown_command(&id))?;
        command.progress.push(value);
        if command.progress.len() > MAX_PROGRESS {
            command.progress.remove(0);
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /commands/{id}/result` with `Idempotency-Key`: `200` (first time or the same body
/// again, counted as a delivery); `409` for another body under the same key.
pub async fn result(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "Idempotency-Key is required"))?
        .to_owned();
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the result is not UTF-8"))?
        .to_owned();
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the result is not JSON: {e}"),
        )
    })?;
    let duplicate = sim.update(|state| {
        let command = state
            .command_mut(&id)
            .ok_or_else(|| ApiError::unknown_command(&id))?;
        match command
            .results
            .iter_mut()
            .find(|r| r.idempotency_key == key)
        {
            Some(existing) => {
                let same = serde_json::from_str::<serde_json::Value>(&existing.body)
                    .is_ok_and(|stored| stored == value);
                if !same {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("Idempotency-Key {key:?} was used with a different body"),
                    ));
                }
                existing.deliveries += 1;
                command.result_posts += 1;
                Ok(true)
            }
            None => {
                command.results.push(ResultRecord {
                    idempotency_key: key.clone(),
                    body: text,
                    deliveries: 1,
                });
                command.result_posts += 1;
                Ok(false)
            }
        }
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"accepted": true, "duplicate": duplicate, "idempotency_key": key}),
    ))
}

/// `GET /packages/{id}`: the bytes, honouring `Range: bytes=N-` (and `bytes=N-M`) with `206`.
pub async fn package(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Extension(fault): Extension<ActiveFault>,
) -> Result<Response, ApiError> {
    let record = sim
        .read(|state| state.packages.get(&id).cloned())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no package {id:?}")))?;
    let size = record.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range)
        .filter(|_| !matches!(fault.0, Some(Fault::IgnoreRange)));
    let (status, start, end) = match range {
        Some((start, _)) if start >= size => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response());
        }
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            start,
            end.map_or(size, |e| e.saturating_add(1).min(size)),
        ),
        None => (StatusCode::OK, 0, size),
    };
    let stream = files::serve_range(&sim.layout.package(&id), start, end - start, fault.0)
        .await
        .map_err(ApiError::internal)?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// `bytes=N-` or `bytes=N-M` (one range); anything else is ignored (a `200`).
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first = first.trim().parse::<u64>().ok()?;
    let last = match last.trim() {
        "" => None,
        n => Some(n.parse::<u64>().ok()?),
    };
    match last {
        Some(last) if last < first => None,
        _ => Some((first, last)),
    }
}

#[derive(Debug, Deserialize)]
pub struct OpenUpload {
    command_id: String,
    application: String,
}

/// `POST /uploads`: the same `(command_id, application)` always gets the same id.
pub async fn open_upload(State(sim): State<Arc<Sim>>, body: Bytes) -> Result<Response, ApiError> {
    let request: OpenUpload = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"command_id\", \"application\"}}: {e}"),
        )
    })?;
    let id = sim.update(|state| {
        let existing = state
            .uploads
            .iter()
            .find(|(_, u)| {
                u.command_id == request.command_id && u.application == request.application
            })
            .map(|(id, _)| id.clone());
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        std::fs::File::create(sim.layout.upload(&id)).map_err(ApiError::internal)?;
        state.uploads.insert(
            id.clone(),
            UploadRecord {
                command_id: request.command_id.clone(),
                application: request.application.clone(),
                complete: false,
                sha256: None,
            },
        );
        Ok(id)
    })?;
    Ok(json_response(StatusCode::OK, &json!({"upload_id": id})))
}

/// `GET /uploads/{id}` → `{"committed", "complete"}`.
pub async fn upload_status(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = sim.upload_record(&id)?;
    let committed = file_len(&sim.layout.upload(&id)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"committed": committed, "complete": record.complete}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct Offset {
    offset: Option<u64>,
}

/// `PUT /uploads/{id}?offset=n`: appends the body if `n` is the committed size (`409` with the
/// committed size otherwise), syncs, answers the new committed size. A body that breaks off
/// keeps what arrived.
pub async fn upload_chunk(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(query): Query<Offset>,
    Extension(fault): Extension<ActiveFault>,
    Extension(kill): Extension<ConnKill>,
    body: Body,
) -> Result<Response, ApiError> {
    let offset = query
        .offset
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "?offset=n is required"))?;
    let record = sim.upload_record(&id)?;
    let lock = sim.upload_lock(&id);
    let mut hash = lock.lock().await;
    let path = sim.layout.upload(&id);
    let committed = file_len(&path).await?;
    if record.complete || offset != committed {
        return Ok(json_response(
            StatusCode::CONFLICT,
            &json!({"committed": committed, "complete": record.complete}),
        ));
    }
    let mut sink = Sink::open(&path, hash.take())
        .await
        .map_err(ApiError::internal)?;
    let limit = match &fault.0 {
        Some(Fault::Reset { after_bytes }) => Some(*after_bytes),
        _ => None,
    };
    let stream = body.into_data_stream();
    let outcome = files::append_body(&mut sink, stream, limit).await;
    *hash = Some(sink.hash_state());
    let complete = outcome.map_err(ApiError::internal)?;
    if limit.is_some() {
        drop(hash);
        kill.kill();
        std::future::pending::<()>().await;
    }
    if !complete {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the body broke off"));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"committed": sink.len}),
    ))
}

#[derive(Debug, Deserialize)]
pub struct Complete {
    size: u64,
    sha256: String,
}

/// `POST /uploads/{id}/complete`: `200` if size and SHA-256 match what was received, else `422`.
pub async fn upload_complete(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Complete = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"size\", \"sha256\"}}: {e}"),
        )
    })?;
    sim.upload_record(&id)?;
    let lock = sim.upload_lock(&id);
    let mut hash = lock.lock().await;
    let sink = Sink::open(&sim.layout.upload(&id), hash.take())
        .await
        .map_err(ApiError::internal)?;
    *hash = Some(sink.hash_state());
    let actual = sink.sha256();
    if request.size != sink.len || !request.sha256.eq_ignore_ascii_case(&actual) {
        return Ok(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({
                "error": "size or sha256 differ from what was received",
                "size": sink.len,
                "sha256": actual,
            }),
        ));
    }
    sim.update(|state| {
        if let Some(upload) = state.uploads.get_mut(&id) {
            upload.complete = true;
            upload.sha256 = Some(actual.clone());
        }
        Ok(())
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"size": sink.len, "sha256": actual, "complete": true}),
    ))
}

async fn file_len(path: &std::path::Path) -> Result<u64, ApiError> {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_one_open_or_closed_byte_range() {
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=10-19"), Some((10, Some(19))));
        assert_eq!(parse_range("bytes=19-10"), None);
        assert_eq!(parse_range("bytes=-10"), None, "suffix ranges are ignored");
        assert_eq!(parse_range("items=1-"), None);
        assert_eq!(parse_range("bytes=1-2,5-"), None);
    }
}
