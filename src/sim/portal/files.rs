//! Bytes on disk for the simulator: storing a streamed body (packages), appending to an upload
//! with its SHA-256 kept up to date, and serving a package range with the download faults
//! (truncate, reset, pause, flipped byte) applied. Blocking file work runs on tokio's blocking
//! pool in batches of up to [`BATCH`] bytes.

use super::faults::Fault;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

/// Bytes gathered before one blocking write.
pub const BATCH: usize = 4 * 1024 * 1024;

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An open file being appended to, with the SHA-256 of all its bytes.
#[derive(Debug)]
pub struct Sink {
    file: Option<File>,
    hasher: Sha256,
    /// Bytes in the file (and in the hash).
    pub len: u64,
}

impl Sink {
    /// Opens `path` for appending, re-hashing what it holds unless `known` is the hash of
    /// exactly `known_len` bytes and the file has that length.
    pub async fn open(path: &Path, known: Option<(u64, Sha256)>) -> std::io::Result<Self> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let len = file.metadata()?.len();
            let hasher = match known {
                Some((known_len, hasher)) if known_len == len => hasher,
                _ => hash_prefix(&path, len)?,
            };
            Ok(Self {
                file: Some(file),
                hasher,
                len,
            })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Appends `bytes` (on the blocking pool).
    pub async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("sink closed"))?;
        let mut hasher = std::mem::take(&mut self.hasher);
        let (file, hasher, result) = tokio::task::spawn_blocking(move || {
            let result = file.write_all(&bytes);
            if result.is_ok() {
                hasher.update(&bytes);
            }
            (file, hasher, result.map(|()| bytes.len() as u64))
        })
        .await
        .map_err(std::io::Error::other)?;
        self.file = Some(file);
        self.hasher = hasher;
        self.len += result?;
        Ok(())
    }

    /// `fsync`s the data.
    pub async fn sync(&mut self) -> std::io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("sink closed"))?;
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = file.sync_data();
            (file, result)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.file = Some(file);
        result
    }

    /// The hash state (to keep for the next append).
    pub fn hash_state(&self) -> (u64, Sha256) {
        (self.len, self.hasher.clone())
    }

    /// The SHA-256 of everything written, in hex.
    pub fn sha256(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

/// Appends a streamed body to `sink` in batches, stopping after `limit` bytes if given.
/// Returns whether the body ended normally (`false`: it broke off, or the limit was hit);
/// whatever arrived is written either way, and synced.
pub async fn append_body<S, E>(
    sink: &mut Sink,
    mut body: S,
    limit: Option<u64>,
) -> std::io::Result<bool>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut batch = BytesMut::new();
    let mut taken = 0u64;
    let mut complete = true;
    while let Some(next) = body.next().await {
        let Ok(mut chunk) = next else {
            complete = false;
            break;
        };
        if let Some(limit) = limit {
            let left = limit - taken;
            if chunk.len() as u64 >= left {
                chunk.truncate(usize::try_from(left).unwrap_or(chunk.len()));
                batch.extend_from_slice(&chunk);
                complete = false;
                break;
            }
        }
        taken += chunk.len() as u64;
        batch.extend_from_slice(&chunk);
        if batch.len() >= BATCH {
            sink.write(batch.split().freeze()).await?;
        }
    }
    sink.write(batch.freeze()).await?;
    sink.sync().await?;
    Ok(complete)
}

/// The SHA-256 of the first `len` bytes of `path`.
pub fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Sha256> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let n = file.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

/// The bytes `[start, start + len)` of `path`, with a download fault applied.
pub async fn serve_range(
    path: &Path,
    start: u64,
    len: u64,
    fault: Option<Fault>,
) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + use<>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let inner = ReaderStream::with_capacity(file.take(len), 256 * 1024);
    let state = Faulty {
        inner,
        fault,
        sent: 0,
        pending: None,
        paused: false,
        flipped: false,
        finished: false,
    };
    Ok(futures_util::stream::unfold(state, Faulty::next))
}

struct Faulty<S> {
    inner: S,
    fault: Option<Fault>,
    sent: u64,
    /// The rest of a chunk split at a fault's boundary.
    pending: Option<Bytes>,
    paused: bool,
    flipped: bool,
    finished: bool,
}

impl<S> Faulty<S>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        if self.finished {
            return None;
        }
        // The byte count at which the body stops (truncate, reset) or pauses (delay).
        let boundary = match &self.fault {
            Some(Fault::Truncate { after_bytes }) | Some(Fault::Reset { after_bytes }) => {
                Some(*after_bytes)
            }
            Some(Fault::Delay {
                after_bytes: Some(after),
                ..
            }) if !self.paused => Some(*after),
            _ => None,
        };
        if let Some(at) = boundary
            && self.sent >= at
        {
            match self.fault.clone() {
                Some(Fault::Truncate { .. }) => return None,
                Some(Fault::Reset { .. }) => {
                    self.finished = true;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by the fault plan",
                    );
                    return Some((Err(error), self));
                }
                Some(Fault::Delay { ms, .. }) => {
                    self.paused = true;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                _ => {}
            }
        }
        let mut chunk = match self.pending.take() {
            Some(chunk) => chunk,
            None => match self.inner.next().await? {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), self)),
            },
        };
        if let Some(at) = boundary
            && self.sent + chunk.len() as u64 > at
        {
            let keep = usize::try_from(at - self.sent).unwrap_or(chunk.len());
            self.pending = Some(chunk.split_off(keep));
        }
        if matches!(self.fault, Some(Fault::WrongSha256)) && !self.flipped && !chunk.is_empty() {
            let mut flipped = BytesMut::from(chunk.as_ref());
            flipped[0] ^= 0xff;
            chunk = flipped.freeze();
            self.flipped = true;
        }
        self.sent += chunk.len() as u64;
        Some((Ok(chunk), self))
    }
}
