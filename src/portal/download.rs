//! Resumable package download: streamed to disk with the SHA-256 computed on the way, durable
//! checkpoints reported to the caller (who journals them), `Range: bytes=N-` to resume, and the
//! size and SHA-256 verified at the end.
//!
//! The network side (an async task) hands chunks to a writer thread through a bounded channel,
//! so memory stays bounded whatever the size and hashing overlaps receiving. The writer gathers
//! queued chunks into vectored writes and hashes them; syncing is off its path: at the checkpoint
//! cadence (`checkpoint_bytes` or `checkpoint_interval`) it asks a third thread to `sync_data`
//! and goes on writing, and an offset is reported only once its sync returned — a reported
//! offset never exceeds the bytes durably on disk. The end is synced before returning. On resume
//! the bytes already on disk up to `from_offset` are hashed again (anything beyond is truncated
//! first); if the file is shorter than `from_offset`, or the server ignores the range (`200`),
//! the download starts over — after reporting offset `0`. A `206` must carry the
//! `Content-Range` asked for.

use super::client::{PortalClient, ProgressTarget, transport_error};
use super::error::PortalError;
use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Read as _, Seek as _, SeekFrom, Write as _};
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

/// Durable offsets arrive from the syncer at the checkpoint cadence; of these, only those at
/// least `every` bytes or `interval` apart — and the last — are reported to the caller, who
/// journals each.
struct Checkpoints {
    every: u64,
    interval: Duration,
    reported: u64,
    at: Instant,
    pending: Option<u64>,
}

/// The writer gathers at most this many bytes of queued chunks into one vectored write.
const BATCH_BYTES: usize = 1024 * 1024;
/// … and at most this many chunks (well under `IOV_MAX`).
const BATCH_CHUNKS: usize = 64;

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

/// The writer thread: writes the chunks (gathered into vectored writes, no copy), hashes them,
/// and asks the syncer for a sync at the checkpoint cadence — never waiting for one.
struct Writer {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
    /// The offset of the last sync asked of the syncer.
    requested: u64,
    last_request: Instant,
    checkpoint_bytes: u64,
    checkpoint_interval: Duration,
    /// Bumped by every restart; checkpoints carry it.
    epoch: u32,
    syncer: Syncer,
}

/// How the syncer makes the file durable: `sync_data`, or a test's stand-in.
type SyncFn = Box<dyn Fn() -> std::io::Result<()> + Send>;

/// Syncs the file in the background so that writing goes on while the disk catches up: each
/// request `(epoch, n)` is answered by a sync and then the report of `n` as durable. At most one
/// sync is under way; a request while one is busy is not made (the writer asks again later).
struct Syncer {
    requests: Option<std::sync::mpsc::SyncSender<(u32, u64)>>,
    busy: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Syncer {
    fn spawn(file: File, durable: mpsc::UnboundedSender<(u32, u64)>) -> std::io::Result<Self> {
        Self::spawn_with(Box::new(move || file.sync_data()), durable)
    }

    fn spawn_with(
        sync: SyncFn,
        durable: mpsc::UnboundedSender<(u32, u64)>,
    ) -> std::io::Result<Self> {
        let (requests, received) = std::sync::mpsc::sync_channel::<(u32, u64)>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let done = busy.clone();
        let thread = std::thread::Builder::new()
            .name("download-sync".into())
            .spawn(move || {
                for (epoch, offset) in received {
                    sync()?;
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

    /// Asks for a sync up to `offset`; whether it was asked (false: the thread stopped).
    /// Call only when not [`busy`](Self::busy).
    fn request(&self, epoch: u32, offset: u64) -> bool {
        self.busy.store(true, Ordering::Release);
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

/// `write_all` for a batch of chunks, in as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Writer {
    fn new(
        path: PathBuf,
        file: File,
        hasher: Sha256,
        start: u64,
        job: &Download,
        syncer: Syncer,
    ) -> Self {
        Self {
            path,
            file,
            hasher,
            written: start,
            requested: start,
            last_request: Instant::now(),
            checkpoint_bytes: job.checkpoint_bytes.max(1),
            checkpoint_interval: job.checkpoint_interval,
            epoch: 0,
            syncer,
        }
    }

    fn io(&self, action: &'static str, e: std::io::Error) -> PortalError {
        PortalError::io(action, &self.path, e)
    }

    /// Writes a batch, hashes it, and asks for a sync if one is due and none is under way.
    fn write(&mut self, batch: &mut Vec<Bytes>) -> Result<(), PortalError> {
        if batch.is_empty() {
            return Ok(());
        }
        write_all_vectored(&mut self.file, batch).map_err(|e| self.io("cannot write", e))?;
        for chunk in batch.drain(..) {
            self.hasher.update(&chunk);
            self.written += chunk.len() as u64;
        }
        let due = self.written - self.requested >= self.checkpoint_bytes
            || (self.last_request.elapsed() >= self.checkpoint_interval
                && self.written > self.requested);
        if due && !self.syncer.busy() {
            if self.syncer.request(self.epoch, self.written) {
                self.requested = self.written;
                self.last_request = Instant::now();
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
        let file = &mut self.file;
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
        self.file
            .sync_data()
            .map_err(|e| self.io("cannot sync", e))?;
        if self.written != self.requested {
            let _ = durable.send((self.epoch, self.written));
        }
        Ok((self.written, self.hasher.finalize().into()))
    }

    /// Gathers what is queued (up to a batch) into each write.
    fn receive(&mut self, rx: &mut mpsc::Receiver<ToWriter>) -> Result<(), PortalError> {
        let mut batch = Vec::with_capacity(BATCH_CHUNKS);
        while let Some(first) = rx.blocking_recv() {
            let mut message = Some(first);
            let mut bytes = 0;
            while let Some(next) = message.take() {
                match next {
                    ToWriter::Chunk(chunk) => {
                        bytes += chunk.len();
                        batch.push(chunk);
                    }
                    ToWriter::Restart => {
                        self.write(&mut batch)?;
                        self.restart()?;
                    }
                }
                if bytes < BATCH_BYTES && batch.len() < BATCH_CHUNKS {
                    message = rx.try_recv().ok();
                }
            }
            self.write(&mut batch)?;
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
        let writer = Writer::new(path.clone(), file, hasher, start, job, syncer);
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
                if response.status() == StatusCode::PARTIAL_CONTENT {
                    check_content_range(
                        response.headers().get(reqwest::header::CONTENT_RANGE),
                        written,
                        job.size,
                    )?;
                } else if written > 0 {
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

/// A `206` must say which bytes it carries: `Content-Range: bytes N-M/size`, starting where we
/// asked (`N` = `written`), within the file, whose total is the size we expect. Anything else
/// (missing, malformed, `*` for the total, another start or size) is a [`PortalError::Protocol`].
fn check_content_range(
    value: Option<&reqwest::header::HeaderValue>,
    written: u64,
    size: u64,
) -> Result<(), PortalError> {
    let Some(value) = value else {
        return Err(PortalError::Protocol(format!(
            "asked for bytes from {written}, got a 206 without Content-Range"
        )));
    };
    let text = value.to_str().unwrap_or_default();
    let number = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    let parsed = text.strip_prefix("bytes ").and_then(|rest| {
        let (range, total) = rest.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        Some((number(first)?, number(last)?, number(total)?))
    });
    let refuse = |why: &str| {
        Err(PortalError::Protocol(format!(
            "asked for bytes from {written} of {size}, got Content-Range {:?}: {why}",
            text.chars().take(100).collect::<String>()
        )))
    };
    match parsed {
        None => refuse("not `bytes N-M/size`"),
        Some((first, _, _)) if first != written => refuse("another start"),
        Some((_, _, total)) if total != size => refuse("another total size"),
        Some((first, last, total)) if last < first || last >= total => {
            refuse("a range outside the file")
        }
        Some(_) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    fn range(text: &str, written: u64, size: u64) -> Result<(), PortalError> {
        check_content_range(
            Some(&HeaderValue::from_str(text).expect("works")),
            written,
            size,
        )
    }

    #[test]
    fn a_206_must_carry_a_content_range_from_the_asked_offset_of_the_expected_size() {
        assert!(range("bytes 100-999/1000", 100, 1000).is_ok());
        assert!(
            range("bytes 100-499/1000", 100, 1000).is_ok(),
            "a shorter range"
        );
        assert!(range("bytes 0-999/1000", 0, 1000).is_ok());
        assert!(matches!(
            check_content_range(None, 100, 1000),
            Err(PortalError::Protocol(m)) if m.contains("without Content-Range")
        ));
        for bad in [
            "bytes 0-999/1000",   // another start
            "bytes 100-999/2000", // another size
            "bytes 100-999/*",    // unknown size
            "bytes 100-1000/1000",
            "bytes 100-99/1000",
            "bytes 100-999",
            "bytes 100/1000",
            "bytes=100-999/1000",
            "items 100-999/1000",
            "bytes +100-999/1000",
            "bytes 100--999/1000",
            "",
            "garbage",
        ] {
            assert!(
                matches!(range(bad, 100, 1000), Err(PortalError::Protocol(_))),
                "{bad:?} is refused"
            );
        }
    }

    /// A stand-in for `sync_data`: counts calls and, while `hold` is set, waits until it clears.
    #[derive(Clone, Default)]
    struct Gate {
        syncs: Arc<AtomicUsize>,
        hold: Arc<Mutex<bool>>,
        released: Arc<std::sync::Condvar>,
    }

    impl Gate {
        fn sync_fn(&self) -> SyncFn {
            let gate = self.clone();
            Box::new(move || {
                let mut held = gate.hold.lock().expect("the gate");
                while *held {
                    held = gate.released.wait(held).expect("the gate");
                }
                gate.syncs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }

        fn set_hold(&self, hold: bool) {
            *self.hold.lock().expect("the gate") = hold;
            self.released.notify_all();
        }
    }

    fn writer(
        dir: &tempfile::TempDir,
        checkpoint_bytes: u64,
        gate: &Gate,
    ) -> (Writer, mpsc::UnboundedReceiver<(u32, u64)>) {
        let path = dir.path().join("package.zip");
        let (file, hasher) = prepare(&path, 0).expect("works");
        let (durable_tx, durable_rx) = mpsc::unbounded_channel();
        let mut job = Download::new("/p", &path, 1 << 40, "00");
        job.checkpoint_bytes = checkpoint_bytes;
        job.checkpoint_interval = Duration::from_secs(3600);
        let syncer = Syncer::spawn_with(gate.sync_fn(), durable_tx).expect("works");
        (Writer::new(path, file, hasher, 0, &job, syncer), durable_rx)
    }

    fn chunks(n: usize, size: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i as u8; size])).collect()
    }

    fn wait_durable(rx: &mut mpsc::UnboundedReceiver<(u32, u64)>) -> (u32, u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(durable) = rx.try_recv() {
                return durable;
            }
            assert!(Instant::now() < deadline, "no durable offset in 10 s");
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_file_is_synced_only_at_the_checkpoint_cadence() {
        let dir = tempfile::tempdir().expect("works");
        let gate = Gate::default();
        const MIB: usize = 1024 * 1024;
        let (mut writer, mut durable) = writer(&dir, 64 * MIB as u64, &gate);
        for chunk in chunks(63, MIB) {
            writer.write(&mut vec![chunk]).expect("works");
        }
        assert_eq!(
            gate.syncs.load(Ordering::SeqCst),
            0,
            "no sync before 64 MiB"
        );
        assert!(durable.try_recv().is_err());
        writer.write(&mut chunks(1, MIB)).expect("works");
        assert_eq!(wait_durable(&mut durable), (0, 64 * MIB as u64));
        assert_eq!(gate.syncs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn writing_goes_on_during_a_sync_and_an_offset_is_reported_only_once_synced() {
        let dir = tempfile::tempdir().expect("works");
        let gate = Gate::default();
        gate.set_hold(true);
        let (mut writer, mut durable) = writer(&dir, 1000, &gate);
        writer.write(&mut chunks(1, 1000)).expect("works");
        // The sync of the first 1000 bytes hangs; the writer goes on regardless.
        for _ in 0..5 {
            writer.write(&mut chunks(2, 1000)).expect("works");
        }
        assert_eq!(writer.written, 11_000);
        assert!(
            durable.try_recv().is_err(),
            "nothing durable while the sync hangs"
        );
        assert_eq!(gate.syncs.load(Ordering::SeqCst), 0);
        gate.set_hold(false);
        assert_eq!(wait_durable(&mut durable), (0, 1000));
        // The next write asks for the rest.
        writer.write(&mut chunks(1, 1000)).expect("works");
        assert_eq!(wait_durable(&mut durable), (0, 12_000));
        let (closed_tx, closed) = mpsc::channel(1);
        drop(closed_tx);
        let (len, digest) = writer
            .run(closed, mpsc::unbounded_channel().0)
            .expect("works");
        assert_eq!(len, 12_000);
        let on_disk = std::fs::read(dir.path().join("package.zip")).expect("works");
        assert_eq!(on_disk.len(), 12_000);
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&on_disk)));
    }
}
