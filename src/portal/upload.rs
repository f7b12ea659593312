//! Resumable upload of an application's source zip: open (idempotent per command and
//! application), ask the portal what it has committed, send the rest in chunks
//! (`PUT ?offset=n`), follow the portal's committed offset on `409` (also after an interrupted
//! chunk, which is retried at the same offset), complete with size and SHA-256.
//!
//! A reader thread streams each chunk from the file through a bounded channel, so memory stays
//! bounded whatever the size. The committed offset the portal reports is handed to the caller
//! (who journals it); after a crash the upload continues from the portal's committed offset.

use super::client::{PortalClient, ProgressTarget, json, read_json, transport_error};
use super::error::PortalError;
use super::retry::retrying;
use super::wire::{CommittedDto, CompleteUploadDto, OpenUploadDto, UploadIdDto, UploadStatusDto};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// From [`PortalClient::open_upload`].
    pub upload_id: String,
    /// The zip to send.
    pub file: PathBuf,
    /// Its size …
    pub size: u64,
    /// … and SHA-256 (hex), as the portal must have received them.
    pub sha256: String,
    /// Bytes per `PUT` (the portal commits each chunk durably before answering).
    pub chunk_size: u64,
    /// Best-effort progress posts, if wanted.
    pub progress: Option<ProgressTarget>,
    /// Interval of progress posts and log lines.
    pub progress_interval: Duration,
}

impl Upload {
    /// An upload with 32 MiB chunks and progress logs every 10 s.
    pub fn new(
        upload_id: impl Into<String>,
        file: impl Into<PathBuf>,
        size: u64,
        sha256: impl Into<String>,
    ) -> Self {
        Self {
            upload_id: upload_id.into(),
            file: file.into(),
            size,
            sha256: sha256.into(),
            chunk_size: 32 * 1024 * 1024,
            progress: None,
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// The portal's view of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStatus {
    pub committed: u64,
    pub complete: bool,
}

/// The size of the reader thread's buffers.
const READ_BUFFER: usize = 1024 * 1024;

impl PortalClient {
    /// `POST /uploads`: the upload of `application`'s sources for `command_id`. The portal
    /// returns the same id for the same pair, so this is safe to repeat after a crash.
    pub async fn open_upload(
        &self,
        command_id: &str,
        application: &str,
    ) -> Result<String, PortalError> {
        let url = self.api_url(&["uploads"]);
        let body = OpenUploadDto {
            command_id,
            application,
        };
        retrying(self.backoff(), "open upload", || async {
            let response = self
                .send(json(self.request(Method::POST, url.clone()), &body)?)
                .await?;
            let dto: UploadIdDto = read_json(response, "open upload").await?;
            Ok(dto.upload_id)
        })
        .await
    }

    /// `GET /uploads/{id}`: what the portal has committed.
    pub async fn upload_status(&self, upload_id: &str) -> Result<UploadStatus, PortalError> {
        let url = self.api_url(&["uploads", upload_id]);
        retrying(self.backoff(), "upload status", || async {
            let response = self.send(self.request(Method::GET, url.clone())).await?;
            let dto: UploadStatusDto = read_json(response, "upload status").await?;
            Ok(UploadStatus {
                committed: dto.committed,
                complete: dto.complete,
            })
        })
        .await
    }

    /// Sends `job.file` from the portal's committed offset and completes the upload.
    /// `on_committed_offset(n)` is called (on the calling task) each time the portal reports
    /// `n` bytes committed. Interruptions are retried within the client's bounded schedule (the
    /// count resets whenever the committed offset advances); `422` at completion is
    /// [`PortalError::UploadMismatch`].
    pub async fn upload(
        &self,
        job: &Upload,
        mut on_committed_offset: impl FnMut(u64) + Send,
    ) -> Result<UploadStatus, PortalError> {
        let on_disk = tokio::fs::metadata(&job.file)
            .await
            .map_err(|e| PortalError::io("cannot read", &job.file, e))?
            .len();
        if on_disk != job.size {
            return Err(PortalError::SourceChanged { what: "size" });
        }
        let mut status = self.upload_status(&job.upload_id).await?;
        on_committed_offset(status.committed);
        let mut retry = 0u32;
        let mut last_report = Instant::now();
        while !status.complete && status.committed < job.size {
            let offset = status.committed;
            let length = job.chunk_size.max(1).min(job.size - offset);
            match self.put_chunk(job, offset, length).await {
                Ok(committed) => {
                    if committed > job.size {
                        return Err(PortalError::Protocol(format!(
                            "the portal reports {committed} bytes committed of a {}-byte file",
                            job.size
                        )));
                    }
                    if committed > status.committed {
                        retry = 0;
                    }
                    status.committed = committed;
                    on_committed_offset(committed);
                    if last_report.elapsed() >= job.progress_interval {
                        last_report = Instant::now();
                        self.report_upload(job, committed);
                    }
                }
                Err(error) => {
                    retry += 1;
                    match self.backoff().delay(retry, &error) {
                        Some(wait) => {
                            tracing::warn!(
                                "portal: upload interrupted ({error}); resuming in {} ms",
                                wait.as_millis()
                            );
                            // The same offset again: if the portal kept part of the broken
                            // chunk, its `409` says where to continue.
                            tokio::time::sleep(wait).await;
                        }
                        None => return Err(error),
                    }
                }
            }
        }
        self.complete_upload(job).await?;
        tracing::info!(
            "portal: uploaded {} ({} bytes) as {}",
            job.file.display(),
            job.size,
            job.upload_id
        );
        Ok(UploadStatus {
            committed: job.size,
            complete: true,
        })
    }

    /// One `PUT`; returns the portal's committed offset (from a `200` or a `409`).
    async fn put_chunk(&self, job: &Upload, offset: u64, length: u64) -> Result<u64, PortalError> {
        let mut url = self.api_url(&["uploads", &job.upload_id]);
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string());
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let path = job.file.clone();
        let reader = tokio::task::spawn_blocking(move || read_range(path, offset, length, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let response = self
            .request(Method::PUT, url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        // The reader ends on its own once the body is consumed or dropped; it is only awaited
        // when it already finished, to prefer its own error (a local file problem) to ours.
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                if reader.is_finished()
                    && let Ok(Err(local)) = reader.await
                {
                    return Err(local);
                }
                return Err(transport_error(&error));
            }
        };
        if response.status() == StatusCode::CONFLICT {
            let dto: CommittedDto = read_json(response, "upload conflict").await?;
            tracing::info!(
                "portal: upload {} is at {} (not {offset}); continuing from there",
                job.upload_id,
                dto.committed
            );
            return Ok(dto.committed);
        }
        let response = self.check(response).await?;
        let dto: CommittedDto = read_json(response, "upload chunk").await?;
        Ok(dto.committed)
    }

    async fn complete_upload(&self, job: &Upload) -> Result<(), PortalError> {
        let url = self.api_url(&["uploads", &job.upload_id, "complete"]);
        let sha256 = job.sha256.trim().to_ascii_lowercase();
        let body = CompleteUploadDto {
            size: job.size,
            sha256: &sha256,
        };
        retrying(self.backoff(), "complete upload", || async {
            self.send(json(self.request(Method::POST, url.clone()), &body)?)
                .await?;
            Ok(())
        })
        .await
    }

    fn report_upload(&self, job: &Upload, done: u64) {
        let percent = done
            .saturating_mul(100)
            .checked_div(job.size)
            .unwrap_or(100);
        tracing::info!(
            "portal: uploading {}: {done} of {} bytes ({percent} %)",
            job.file.display(),
            job.size
        );
        if let Some(target) = &job.progress {
            self.progress_in_background(target, "uploading", done, job.size);
        }
    }
}

/// Streams `length` bytes of `path` from `offset` into `tx`; stops early if the receiver goes.
fn read_range(
    path: PathBuf,
    offset: u64,
    length: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), PortalError> {
    let fail = |action: &'static str, e: std::io::Error| PortalError::io(action, &path, e);
    let mut file = File::open(&path).map_err(|e| fail("cannot open", e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| fail("cannot seek", e))?;
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(READ_BUFFER as u64)).unwrap_or(READ_BUFFER);
        let mut buffer = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let n = file
                .read(&mut buffer[filled..])
                .map_err(|e| fail("cannot read", e))?;
            if n == 0 {
                let _ =
                    tx.blocking_send(Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
                return Err(PortalError::SourceChanged { what: "size" });
            }
            filled += n;
        }
        left -= want as u64;
        if tx.blocking_send(Ok(Bytes::from(buffer))).is_err() {
            // The request was dropped (the connection failed): nothing more to send.
            return Ok(());
        }
    }
    Ok(())
}
