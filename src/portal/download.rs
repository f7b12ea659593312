//! Resumable package download: streamed to disk with the SHA-256 computed on the way, durable
//! checkpoints reported to the caller (who journals them), `Range: bytes=N-` to resume, and the
//! size and SHA-256 verified at the end.
//!
//! The network side (an async task) hands chunks to a writer thread through a bounded channel,
//! so memory stays bounded whatever the size and hashing overlaps receiving. A third thread
//! syncs the file continuously (`sync_data`, at most every 8 MiB) so the disk keeps up while
//! bytes arrive; an offset is reported only once synced: a reported offset never exceeds the
//! bytes durably on disk. On resume the bytes already on disk up to `from_offset` are hashed again
//! (anything beyond is truncated first); if the file is shorter than `from_offset`, or the
//! server ignores the range (`200`), the download starts over — after reporting offset `0`.

use super::client::{PortalClient, ProgressTarget, transport_error};
use super::error::PortalError;
use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to download and where, and how often to checkpoint.
#[derive(Debug, Clone)]
pub struct Download {
    /// The command's `content.url` (see [`PortalClient::resolve`]).
    pub url: String,
    /// The file to write.
    pub dest: PathBuf,
    /// The command's `content.size`.
    pub size: u64,
    /// The command's `content.sha256` (hex, any case).
    pub sha256: String,
    /// The last journaled durable offset (0 for a fresh download).
    pub from_offset: u64,
    /// A durable offset is reported at least this many bytes after the last one …
    pub checkpoint_bytes: u64,
    /// … or this much time after it, whichever comes first (and the last one always).
    pub checkpoint_interval: Duration,
    /// Best-effort progress posts (every `progress_interval`), if wanted.
    pub progress: Option<ProgressTarget>,
    /// Interval of progress posts and log lines.
    pub progress_interval: Duration,
}

impl Download {
    /// A fresh download with default checkpoints (64 MiB or 2 s) and progress logs every 10 s.
    pub fn new(
        url: impl Into<String>,
        dest: impl Into<PathBuf>,
        size: u64,
        sha256: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            dest: dest.into(),
            size,
            sha256: sha256.into(),
            from_offset: 0,
            checkpoint_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(2),
            progress: None,
            progress_interval: Duration::from_secs(10),
        }
    }

    /// Resumes from a journaled durable offset.
    pub fn resume_from(mut self, offset: u64) -> Self {
        self.from_offset = offset;
        self
    }
}

/// A verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// The offset the transfer actually resumed from (0 if it started over).
    pub resumed_from: u64,
    /// HTTP requests made for the body (1 when nothing went wrong).
    pub requests: u32,
}

/// The network side's ends of the writer's channels.
struct Pipe {
    tx: mpsc::Sender<ToWriter>,
    durable_rx: mpsc::UnboundedReceiver<(u32, u64)>,
    /// Restarts so far; checkpoints of an older epoch are stale.
    epoch: u32,
    checkpoints: Checkpoints,
}

/// The file is synced continuously (every [`SYNC_GRANULE`] at most, so the disk keeps up with
/// the network); of the durable offsets, only those at least `every` bytes or `interval` apart
/// — and the last — are reported to the caller, who journals each.
struct Checkpoints {
    every: u64,
    interval: Duration,
    reported: u64,
    at: Instant,
    pending: Option<u64>,
}

/// The most bytes written before the background sync is asked to catch up.
const SYNC_GRANULE: u64 = 8 * 1024 * 1024;

impl Checkpoints {
    fn new(job: &Download, start: u64) -> Self {
        Self {
            every: job.checkpoint_bytes.max(1),
            interval: job.checkpoint_interval,
            reported: start,
            at: Instant::now(),
            pending: None,
        }
    }

    /// A durable offset: reported now, or kept for later.
    fn offer(&mut self, offset: u64, report: &mut impl FnMut(u64)) {
        if offset.saturating_sub(self.reported) >= self.every || self.at.elapsed() >= self.interval
        {
            self.report(offset, report);
        } else {
            self.pending = Some(offset);
        }
    }

    /// Starting over: 0 is reported before the file is truncated.
    fn restart(&mut self, report: &mut impl FnMut(u64)) {
        self.report(0, report);
    }

    /// The last durable offset, if not reported yet.
    fn finish(&mut self, report: &mut impl FnMut(u64)) {
        if let Some(offset) = self.pending.take() {
            self.report(offset, report);
        }
    }

    fn report(&mut self, offset: u64, report: &mut impl FnMut(u64)) {
        report(offset);
        self.reported = offset;
        self.at = Instant::now();
        self.pending = None;
    }
}

enum ToWriter {
    Chunk(Bytes),
    /// The server ignored the range: truncate to 0 and hash from scratch.
    Restart,
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
    written: u64,
    /// The offset of the last checkpoint asked of the syncer.
    requested: u64,
    last_sync: Instant,
    checkpoint_bytes: u64,
    checkpoint_interval: Duration,
    /// Bumped by every restart; checkpoints carry it.
    epoch: u32,
    syncer: Syncer,
}

/// Syncs the file in the background so that writing goes on while the disk catches up: each
/// request `(epoch, n)` is answered by `sync_data` and then the report of `n` as durable.
struct Syncer {
    requests: Option<std::sync::mpsc::SyncSender<(u32, u64)>>,
    busy: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Syncer {
    fn spawn(file: File, durable: mpsc::UnboundedSender<(u32, u64)>) -> std::io::Result<Self> {
        let (requests, received) = std::sync::mpsc::sync_channel::<(u32, u64)>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let done = busy.clone();
        let thread = std::thread::Builder::new()
            .name("download-sync".into())
            .spawn(move || {
                for (epoch, offset) in received {
                    file.sync_data()?;
                    let _ = durable.send((epoch, offset));
                    done.store(false, Ordering::Release);
                }
                Ok(())
            })?;
        Ok(Self {
            requests: Some(requests),
            busy,
            thread: Some(thread),
        })
    }

    /// Asks for a sync up to `offset` unless one is under way; whether it was asked.
    fn request(&self, epoch: u32, offset: u64) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        match &self.requests {
            Some(requests) => requests.try_send((epoch, offset)).is_ok(),
            None => false,
        }
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Waits for the syncs asked so far; their error, if one failed.
    fn finish(&mut self) -> std::io::Result<()> {
        self.requests = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| std::io::Error::other("the sync thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Writer {
    fn io(&self, action: &'static str, e: std::io::Error) -> PortalError {
        PortalError::io(action, &self.path, e)
    }

    fn chunk(&mut self, bytes: &[u8]) -> Result<(), PortalError> {
        self.out
            .write_all(bytes)
            .map_err(|e| self.io("cannot write", e))?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        let due = self.written - self.requested >= SYNC_GRANULE.min(self.checkpoint_bytes)
            || (self.last_sync.elapsed() >= self.checkpoint_interval
                && self.written > self.requested);
        if due && !self.syncer.busy() {
            self.out.flush().map_err(|e| self.io("cannot write", e))?;
            if self.syncer.request(self.epoch, self.written) {
                self.requested = self.written;
                self.last_sync = Instant::now();
            } else {
                // The sync thread stopped: its error says why.
                let error = self
                    .syncer
                    .finish()
                    .err()
                    .unwrap_or_else(|| std::io::Error::other("the sync thread stopped"));
                return Err(self.io("cannot sync", error));
            }
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), PortalError> {
        self.out.flush().map_err(|e| self.io("cannot write", e))?;
        let file = self.out.get_mut();
        file.set_len(0)
            .map_err(|e| PortalError::io("cannot truncate", &self.path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| PortalError::io("cannot seek", &self.path, e))?;
        file.sync_data()
            .map_err(|e| PortalError::io("cannot sync", &self.path, e))?;
        self.hasher = Sha256::new();
        self.written = 0;
        self.requested = 0;
        self.epoch += 1;
        Ok(())
    }

    /// Runs until the channel closes; then waits for the syncs, syncs the rest, reports it and
    /// returns the length and digest.
    fn run(
        mut self,
        mut rx: mpsc::Receiver<ToWriter>,
        durable: mpsc::UnboundedSender<(u32, u64)>,
    ) -> Result<(u64, [u8; 32]), PortalError> {
        let outcome = self.receive(&mut rx);
        let synced = self.syncer.finish();
        outcome?;
        synced.map_err(|e| self.io("cannot sync", e))?;
        self.out.flush().map_err(|e| self.io("cannot write", e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| self.io("cannot sync", e))?;
        if self.written != self.requested {
            let _ = durable.send((self.epoch, self.written));
        }
        Ok((self.written, self.hasher.finalize().into()))
    }

    fn receive(&mut self, rx: &mut mpsc::Receiver<ToWriter>) -> Result<(), PortalError> {
        while let Some(message) = rx.blocking_recv() {
            match message {
                ToWriter::Chunk(bytes) => self.chunk(&bytes)?,
                ToWriter::Restart => self.restart()?,
            }
        }
        Ok(())
    }
}

/// Opens `path` for a download starting at `start` (≤ its length): truncates what lies beyond,
/// re-hashes what lies before.
fn prepare(path: &Path, start: u64) -> Result<(File, Sha256), PortalError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| PortalError::io("cannot open", path, e))?;
    file.set_len(start)
        .map_err(|e| PortalError::io("cannot truncate", path, e))?;
    file.sync_data()
        .map_err(|e| PortalError::io("cannot sync", path, e))?;
    let mut hasher = Sha256::new();
    file.seek(SeekFrom::Start(0))
        .map_err(|e| PortalError::io("cannot seek", path, e))?;
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut left = start;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let n = file
            .read(&mut buffer[..want])
            .map_err(|e| PortalError::io("cannot read", path, e))?;
        if n == 0 {
            return Err(PortalError::io(
                "cannot read",
                path,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    Ok((file, hasher))
}

/// `start` for a resume from `from_offset`: `from_offset` if the file holds that much (and it
/// does not exceed the size), else 0.
fn resumable_start(path: &Path, from_offset: u64, size: u64) -> u64 {
    let on_disk = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if from_offset <= on_disk && from_offset <= size {
        from_offset
    } else {
        0
    }
}

impl PortalClient {
    /// Downloads `job.url` into `job.dest`, resuming from `job.from_offset`, and verifies the
    /// size and SHA-256. `on_durable_offset(n)` is called (on the calling task; keep it quick)
    /// each time the first `n` bytes are synced to disk — including `0` before a restart from
    /// scratch truncates the file. Interruptions are retried within the client's bounded
    /// schedule (the count resets whenever bytes arrive); a size or SHA-256 mismatch is
    /// [`PortalError::SizeMismatch`] / [`PortalError::Sha256Mismatch`]: start again from 0.
    pub async fn download(
        &self,
        job: &Download,
        mut on_durable_offset: impl FnMut(u64) + Send,
    ) -> Result<Downloaded, PortalError> {
        let url = self.resolve(&job.url)?;
        let expected = job.sha256.trim().to_ascii_lowercase();
        let path = job.dest.clone();
        let (from, size) = (job.from_offset, job.size);
        let start = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || resumable_start(&path, from, size))
                .await
                .map_err(|e| PortalError::Client(format!("download task: {e}")))?
        };
        if start < job.from_offset {
            tracing::warn!(
                "portal: {} holds fewer than the journaled {} bytes; downloading from 0",
                path.display(),
                job.from_offset
            );
            on_durable_offset(0);
        }
        let (file, hasher) = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || prepare(&path, start))
                .await
                .map_err(|e| PortalError::Client(format!("download task: {e}")))??
        };
        let (tx, rx) = mpsc::channel::<ToWriter>(16);
        let (durable_tx, durable_rx) = mpsc::unbounded_channel::<(u32, u64)>();
        let syncer = file
            .try_clone()
            .and_then(|clone| Syncer::spawn(clone, durable_tx.clone()))
            .map_err(|e| PortalError::io("cannot sync", &path, e))?;
        let writer = Writer {
            path: path.clone(),
            out: BufWriter::with_capacity(1024 * 1024, file),
            hasher,
            written: start,
            requested: start,
            last_sync: Instant::now(),
            checkpoint_bytes: job.checkpoint_bytes.max(1),
            checkpoint_interval: job.checkpoint_interval,
            epoch: 0,
            syncer,
        };
        let writer = tokio::task::spawn_blocking(move || writer.run(rx, durable_tx));

        let mut pipe = Pipe {
            tx,
            durable_rx,
            epoch: 0,
            checkpoints: Checkpoints::new(job, start),
        };
        let fetched = self
            .fetch(job, &url, start, &mut pipe, &mut on_durable_offset)
            .await;
        let Pipe {
            tx,
            mut durable_rx,
            epoch,
            mut checkpoints,
        } = pipe;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| PortalError::Client(format!("download writer: {e}")))?;
        while let Ok((from, offset)) = durable_rx.try_recv() {
            if from == epoch {
                checkpoints.offer(offset, &mut on_durable_offset);
            }
        }
        checkpoints.finish(&mut on_durable_offset);
        // A writer failure (disk full…) explains a fetch failure; report it first.
        let (length, digest) = written?;
        let (resumed_from, requests) = fetched?;
        if length != job.size {
            return Err(PortalError::SizeMismatch {
                expected: job.size,
                actual: length,
            });
        }
        let actual = hex(&digest);
        if actual != expected {
            return Err(PortalError::Sha256Mismatch { expected, actual });
        }
        tracing::info!(
            "portal: downloaded {} ({} bytes, resumed from {resumed_from}, {requests} request(s))",
            path.display(),
            length
        );
        Ok(Downloaded {
            size: length,
            sha256: actual,
            resumed_from,
            requests,
        })
    }

    /// The network side: requests with ranges until `size` bytes went to the writer.
    async fn fetch(
        &self,
        job: &Download,
        url: &reqwest::Url,
        start: u64,
        pipe: &mut Pipe,
        on_durable_offset: &mut (impl FnMut(u64) + Send),
    ) -> Result<(u64, u32), PortalError> {
        let Pipe {
            tx,
            durable_rx,
            epoch,
            checkpoints,
        } = pipe;
        let mut resumed_from = start;
        let mut written = start;
        let mut requests = 0u32;
        let mut retry = 0u32;
        let mut last_report = Instant::now();
        while written < job.size {
            requests += 1;
            let mut request = self.request(reqwest::Method::GET, url.clone());
            if written > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={written}-"));
            }
            let attempt: Result<(), PortalError> = async {
                let response = request.send().await.map_err(|e| transport_error(&e))?;
                let status = response.status();
                if status == StatusCode::RANGE_NOT_SATISFIABLE && written > 0 {
                    // We hold at least as much as the server has: let verification decide.
                    return Err(PortalError::SizeMismatch {
                        expected: job.size,
                        actual: written,
                    });
                }
                let response = self.check(response).await?;
                if written > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
                    tracing::warn!(
                        "portal: the server ignored the range (answered {}); starting over",
                        response.status()
                    );
                    checkpoints.restart(on_durable_offset);
                    // Checkpoints of the old bytes still in flight are stale from now on.
                    *epoch += 1;
                    send(tx, ToWriter::Restart).await?;
                    written = 0;
                    resumed_from = 0;
                } else if written > 0 {
                    check_content_range(&response, written)?;
                }
                let mut body = response.bytes_stream();
                loop {
                    tokio::select! {
                        biased;
                        Some((from, offset)) = durable_rx.recv() => {
                            if from == *epoch {
                                checkpoints.offer(offset, on_durable_offset);
                            }
                        }
                        next = body.next() => match next {
                            None => return Ok(()),
                            Some(Err(e)) => return Err(transport_error(&e)),
                            Some(Ok(chunk)) => {
                                if written + chunk.len() as u64 > job.size {
                                    return Err(PortalError::SizeMismatch {
                                        expected: job.size,
                                        actual: written + chunk.len() as u64,
                                    });
                                }
                                written += chunk.len() as u64;
                                retry = 0;
                                send(tx, ToWriter::Chunk(chunk)).await?;
                                if last_report.elapsed() >= job.progress_interval {
                                    last_report = Instant::now();
                                    self.report(job, written);
                                }
                            }
                        },
                    }
                }
            }
            .await;
            match attempt {
                Ok(()) if written >= job.size => break,
                Ok(()) => {
                    // The body ended early without an error: resume from where it stopped.
                    retry += 1;
                    let error = PortalError::Interrupted {
                        detail: format!("the body ended at byte {written} of {}", job.size),
                    };
                    self.wait_or_fail(retry, error).await?;
                }
                Err(error) => {
                    retry += 1;
                    self.wait_or_fail(retry, error).await?;
                }
            }
        }
        Ok((resumed_from, requests))
    }

    async fn wait_or_fail(&self, retry: u32, error: PortalError) -> Result<(), PortalError> {
        match self.inner.backoff.delay(retry, &error) {
            Some(wait) => {
                tracing::warn!(
                    "portal: download interrupted ({error}); resuming in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                Ok(())
            }
            None => Err(error),
        }
    }

    fn report(&self, job: &Download, done: u64) {
        let percent = done
            .saturating_mul(100)
            .checked_div(job.size)
            .unwrap_or(100);
        tracing::info!(
            "portal: downloading {}: {done} of {} bytes ({percent} %)",
            job.dest.display(),
            job.size
        );
        if let Some(target) = &job.progress {
            self.progress_in_background(target, "downloading", done, job.size);
        }
    }
}

async fn send(tx: &mpsc::Sender<ToWriter>, message: ToWriter) -> Result<(), PortalError> {
    // A closed channel means the writer failed; its error is reported by the caller.
    tx.send(message)
        .await
        .map_err(|_| PortalError::Client("the download writer stopped".into()))
}

/// A `206` must start where we asked.
fn check_content_range(response: &reqwest::Response, written: u64) -> Result<(), PortalError> {
    let Some(value) = response.headers().get(reqwest::header::CONTENT_RANGE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let first = text
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split('-').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    match first {
        Some(first) if first == written => Ok(()),
        _ => Err(PortalError::Protocol(format!(
            "asked for bytes from {written}, got Content-Range {text:?}"
        ))),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
