//! Unpacking a package into its share folder: refuse what could escape, stop zip bombs, never
//! leave a half-written folder, and recognise content already in place after a crash.
//!
//! 1. Every entry is checked before anything is written ([`entry_name::segments`]; symlinks and
//!    duplicate names — compared case-insensitively, as Windows does — are refused) and the
//!    declared sizes are held to the limits: entry count, total uncompressed size, and the
//!    compression ratio of each entry. While writing, an entry that inflates beyond its declared
//!    size is stopped, so lying headers cannot get past the limits either.
//! 2. If the target already holds exactly this package — its manifest names the archive's SHA-256,
//!    every file matches its recorded size and SHA-256, and there is no other file — nothing is
//!    written.
//! 3. Otherwise the archive is unpacked, on every core, into a temporary sibling
//!    (`.<name>.partial-<random>`), every file synced, and the sibling renamed into place (an
//!    older folder is moved aside first and removed after). Files are synced by a separate thread
//!    as soon as they are written, so the disk writes back one file while the cores inflate the
//!    next; the rename waits until every sync has returned. The manifest is written last, atomically, beside the folder
//!    (`.<name>.sccm-connector.json`), so the package folder holds only the package.
//!
//! A crash at any point leaves either the old folder, or the new one without a manifest (which a
//! re-run replaces), plus temporary siblings that the next run removes.

use super::entry_name;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use thiserror::Error;

/// Written files waiting for their sync; bounds the open handles.
const SYNC_QUEUE: usize = 64;

/// Bounds on what an archive may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct UnpackLimits {
    /// Sum of the entries' uncompressed sizes.
    pub max_total_bytes: u64,
    pub max_entries: u64,
    /// Largest uncompressed/compressed ratio of any one entry.
    pub max_ratio: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_total_bytes: 32 << 30,
            max_entries: 100_000,
            max_ratio: 1_000,
        }
    }
}

/// One file of an unpacked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative path with `/` separators.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What was unpacked where, written beside the package folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub archive_sha256: String,
    pub files: Vec<ManifestEntry>,
}

/// How an unpack ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpacked {
    /// The archive was unpacked.
    Written(Manifest),
    /// The target already held exactly this package.
    AlreadyInPlace(Manifest),
}

#[derive(Debug, Error)]
pub enum UnpackError {
    #[error("the archive is not a readable zip file: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("entry {index} ({name:?}) is refused: {reason}")]
    Refused {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("the archive is too large when unpacked: {0}")]
    Limit(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the target {0} has no parent folder or no name")]
    BadTarget(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// A planned entry: where it goes, whether it is a directory, its declared size.
struct Planned {
    index: usize,
    relative: Vec<String>,
    is_dir: bool,
    size: u64,
}

/// Checks every entry against the rules and the limits, before anything is written.
fn plan<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: &UnpackLimits,
) -> Result<Vec<Planned>, UnpackError> {
    if archive.len() as u64 > limits.max_entries {
        return Err(UnpackError::Limit(format!(
            "{} entries; the limit is {}",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut total: u64 = 0;
    let mut seen = BTreeSet::new();
    let mut planned = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let refuse = |reason: String| UnpackError::Refused {
            index,
            name: name.clone(),
            reason,
        };
        let segments = entry_name::segments(&name).map_err(refuse)?;
        if entry.is_symlink() {
            return Err(refuse("symbolic links are not unpacked".into()));
        }
        let is_dir = entry.is_dir();
        let key = segments.join("/").to_lowercase();
        if !seen.insert(key) && !is_dir {
            return Err(refuse(
                "another entry has the same name (Windows names ignore case)".into(),
            ));
        }
        let size = entry.size();
        let compressed = entry.compressed_size();
        if compressed > 0 && size / compressed > limits.max_ratio {
            return Err(refuse(format!(
                "compression ratio {} exceeds {}",
                size / compressed,
                limits.max_ratio
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(UnpackError::Limit(format!(
                "more than {} bytes uncompressed",
                limits.max_total_bytes
            )));
        }
        planned.push(Planned {
            index,
            relative: segments.iter().map(|s| s.to_string()).collect(),
            is_dir,
            size,
        });
    }
    Ok(planned)
}

fn sibling(target: &Path, suffix: &str) -> Result<PathBuf, UnpackError> {
    let parent = target
        .parent()
        .ok_or_else(|| UnpackError::BadTarget(target.display().to_string()))?;
    let name = target
        .file_name()
        .ok_or_else(|| UnpackError::BadTarget(target.display().to_string()))?;
    Ok(parent.join(format!(".{}{suffix}", name.to_string_lossy())))
}

/// The manifest file of `target`.
pub fn manifest_path(target: &Path) -> Result<PathBuf, UnpackError> {
    sibling(target, ".sccm-connector.json")
}

/// Whether `target` holds exactly what `manifest` (for `archive_sha256`) says.
fn in_place(target: &Path, archive_sha256: &str) -> Option<Manifest> {
    let text = fs::read(manifest_path(target).ok()?).ok()?;
    let manifest: Manifest = serde_json::from_slice(&text).ok()?;
    if manifest.archive_sha256 != archive_sha256 {
        return None;
    }
    for entry in &manifest.files {
        let path = entry
            .path
            .split('/')
            .fold(target.to_path_buf(), |p, s| p.join(s));
        let size = fs::metadata(&path).ok()?.len();
        if size != entry.size || sha256_file(&path).ok()? != entry.sha256 {
            return None;
        }
    }
    // Nothing else either: a file someone added would otherwise be distributed with the package.
    (count_files(target).ok()? == manifest.files.len()).then_some(manifest)
}

/// Number of non-directory entries under `dir`, recursively (links are counted, not followed).
fn count_files(dir: &Path) -> io::Result<usize> {
    let mut count = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count += count_files(&entry.path())?;
        } else {
            count += 1;
        }
    }
    Ok(count)
}

/// Removes temporary siblings left by an earlier, interrupted run.
fn clean_leftovers(target: &Path) -> Result<(), UnpackError> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(());
    };
    let prefixes = [
        format!(".{}.partial-", name.to_string_lossy()),
        format!(".{}.old-", name.to_string_lossy()),
    ];
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            fs::remove_dir_all(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes renames durable on Linux; Windows has no equivalent and needs none.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Syncs the files it receives until every sender is gone; the first failure is returned.
fn sync_files(written: Receiver<(PathBuf, File)>) -> Result<(), UnpackError> {
    let mut first_error = None;
    for (path, file) in written {
        if first_error.is_none()
            && let Err(source) = file.sync_all()
        {
            first_error = Some(UnpackError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Extracts `share` (files only, directories exist) into `staging`: inflate, hash, write, then
/// hand the file to the syncer.
fn extract_share(
    archive_path: &Path,
    share: &[&Planned],
    staging: &Path,
    to_sync: SyncSender<(PathBuf, File)>,
) -> Result<Vec<ManifestEntry>, UnpackError> {
    if share.is_empty() {
        return Ok(Vec::new());
    }
    let file = File::open(archive_path).map_err(io_err(archive_path))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file))?;
    let mut files = Vec::with_capacity(share.len());
    let mut buf = vec![0u8; 256 * 1024];
    for entry in share {
        let path = entry
            .relative
            .iter()
            .fold(staging.to_path_buf(), |p, s| p.join(s));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut reader = archive.by_index(entry.index)?;
        let mut out = File::create_new(&path).map_err(io_err(&path))?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        loop {
            let n = reader.read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > entry.size {
                return Err(UnpackError::Refused {
                    index: entry.index,
                    name: entry.relative.join("/"),
                    reason: format!("inflates beyond its declared size of {} bytes", entry.size),
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&path))?;
        }
        files.push(ManifestEntry {
            path: entry.relative.join("/"),
            size: written,
            sha256: hex(&hasher.finalize()),
        });
        if to_sync.send((path, out)).is_err() {
            // The syncer is gone only if it panicked; the join below reports it.
            break;
        }
    }
    Ok(files)
}

/// Unpacks `archive_path` (whose SHA-256 is `archive_sha256`) into the folder `target`.
pub fn unpack(
    archive_path: &Path,
    archive_sha256: &str,
    target: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, UnpackError> {
    if let Some(manifest) = in_place(target, archive_sha256) {
        return Ok(Unpacked::AlreadyInPlace(manifest));
    }
    let file = File::open(archive_path).map_err(io_err(archive_path))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file))?;
    let planned = plan(&mut archive, limits)?;
    let parent = target
        .parent()
        .ok_or_else(|| UnpackError::BadTarget(target.display().to_string()))?;
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    clean_leftovers(target)?;
    let staging = sibling(
        target,
        &format!(".partial-{}", uuid::Uuid::new_v4().simple()),
    )?;
    fs::create_dir(&staging).map_err(io_err(&staging))?;
    // Directories first; then the files, spread over the cores (each thread reads the archive
    // through its own handle), largest first so the threads finish together.
    for entry in planned.iter().filter(|e| e.is_dir) {
        let path = entry
            .relative
            .iter()
            .fold(staging.clone(), |p, s| p.join(s));
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let mut work: Vec<&Planned> = planned.iter().filter(|e| !e.is_dir).collect();
    work.sort_by_key(|e| std::cmp::Reverse(e.size));
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(work.len().max(1));
    let mut shares: Vec<Vec<&Planned>> = vec![Vec::new(); threads];
    let mut loads = vec![0u64; threads];
    for entry in work {
        let lightest = (0..threads).min_by_key(|&t| loads[t]).unwrap_or(0);
        loads[lightest] += entry.size.max(1);
        shares[lightest].push(entry);
    }
    let panicked = || UnpackError::BadTarget("an unpack thread panicked".into());
    let (results, synced) = std::thread::scope(|scope| {
        let (to_sync, written) = sync_channel(SYNC_QUEUE);
        let syncer = scope.spawn(move || sync_files(written));
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let staging = &staging;
                let to_sync = to_sync.clone();
                scope.spawn(move || extract_share(archive_path, share, staging, to_sync))
            })
            .collect();
        drop(to_sync);
        let results: Vec<Result<Vec<ManifestEntry>, UnpackError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(panicked())))
            .collect();
        let synced = syncer.join().unwrap_or_else(|_| Err(panicked()));
        (results, synced)
    });
    let mut files = Vec::new();
    for result in results {
        files.extend(result?);
    }
    synced?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    sync_dir(&staging);
    if target.exists() {
        let aside = sibling(target, &format!(".old-{}", uuid::Uuid::new_v4().simple()))?;
        fs::rename(target, &aside).map_err(io_err(target))?;
        fs::rename(&staging, target).map_err(io_err(target))?;
        fs::remove_dir_all(&aside).map_err(io_err(&aside))?;
    } else {
        fs::rename(&staging, target).map_err(io_err(target))?;
    }
    sync_dir(parent);
    let manifest = Manifest {
        archive_sha256: archive_sha256.to_string(),
        files,
    };
    let manifest_file = manifest_path(target)?;
    let temp = sibling(target, ".sccm-connector.json.tmp")?;
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| UnpackError::Io {
        path: temp.display().to_string(),
        source: e.into(),
    })?;
    let mut f = File::create(&temp).map_err(io_err(&temp))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&temp))?;
    fs::rename(&temp, &manifest_file).map_err(io_err(&manifest_file))?;
    sync_dir(parent);
    Ok(Unpacked::Written(manifest))
}

#[cfg(test)]
mod tests;
