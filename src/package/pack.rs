//! Packing an application's source folder into a zip for upload: streaming, on every core, with
//! bounded memory.
//!
//! Files are read in order in 1 MiB chunks. Worker threads deflate chunks independently, each
//! primed with the previous 32 KiB of its file as the dictionary and ended with a sync flush (the
//! last with a final block) — as pigz does — so the concatenated chunks are one valid deflate
//! stream whose ratio is within a fraction of a percent of serial deflate. CRC-32s are computed
//! per chunk and combined. A single writer puts the chunks back in order into a
//! [`ZipStreamWriter`], hashing the archive (SHA-256) as it is written. Files that are already
//! compressed (`.msi`, `.cab`, `.zip`, images, …) are stored, not deflated. At most a few chunks per
//! worker are in flight, so memory stays at a few MiB whatever the file sizes.
//!
//! The default level is 5, not 6: zlib-rs follows zlib-ng, whose level 6 searches hash chains
//! four times longer than level 5. On the benchmark's mix (PSADT logs and scripts, binaries) level
//! 5 deflates text about three times faster than level 6 — which is no faster than Info-ZIP's
//! `zip -6` — for an archive about 0.5 % larger (`benches/package.rs` measures both against
//! `zip -r -6`).
//!
//! The archive is deterministic for the same folder contents and modification times (sorted
//! walk, fixed header fields), and is synced to disk before `pack` returns.

use super::zip_stream::{Method, ZipStreamWriter};
use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use thiserror::Error;

/// Extensions of formats that are compressed already: stored as they are.
const STORED_EXTENSIONS: &[&str] = &[
    "msi", "msp", "msu", "msix", "appx", "cab", "zip", "7z", "rar", "gz", "tgz", "bz2", "xz",
    "zst", "jar", "nupkg", "docx", "xlsx", "pptx", "jpg", "jpeg", "png", "gif", "webp", "mp3",
    "mp4", "mkv", "avi", "wim", "esd", "iso", "pdf",
];

const DICTIONARY: usize = 32 * 1024;

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// Deflate level (0–9) of zlib-rs; 5 compresses within about 0.5 % of `zip -6`.
    pub level: u32,
    /// Compression threads (default: every core).
    pub threads: usize,
    /// Bytes per chunk.
    pub chunk: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            level: 5,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            chunk: 1 << 20,
        }
    }
}

/// What was packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub size: u64,
    /// Lower-case hex SHA-256 of the archive.
    pub sha256: String,
    pub files: u64,
    pub bytes_in: u64,
}

#[derive(Debug, Error)]
pub enum PackError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0} is a symbolic link; source folders are packed without following links")]
    Symlink(String),
    #[error("{0} is not valid Unicode and cannot be named in the archive")]
    Name(String),
    #[error("compression failed: {0}")]
    Compress(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file or folder to put in the archive.
#[derive(Debug, Clone)]
struct Item {
    path: PathBuf,
    name: String,
    directory: bool,
    size: u64,
    mtime: i64,
    stored: bool,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Item>) -> Result<(), PackError> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.file_type().is_symlink() {
            return Err(PackError::Symlink(path.display().to_string()));
        }
        let relative = path
            .strip_prefix(root)
            .map_err(|_| PackError::Name(path.display().to_string()))?;
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PackError::Name(path.display().to_string()))?
            .join("/");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        if meta.is_dir() {
            out.push(Item {
                path: path.clone(),
                name: format!("{name}/"),
                directory: true,
                size: 0,
                mtime,
                stored: true,
            });
            walk(root, &path, out)?;
        } else {
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let stored = meta.len() == 0
                || extension.is_some_and(|e| STORED_EXTENSIONS.contains(&e.as_str()));
            out.push(Item {
                path,
                name,
                directory: false,
                size: meta.len(),
                mtime,
                stored,
            });
        }
    }
    Ok(())
}

/// A chunk of a file, to compress.
struct Job {
    seq: u64,
    item: usize,
    last: bool,
    stored: bool,
    dictionary: Vec<u8>,
    data: Vec<u8>,
}

/// A compressed chunk.
struct Done {
    seq: u64,
    item: usize,
    last: bool,
    crc: crc32fast::Hasher,
    input: u64,
    output: Vec<u8>,
}

fn deflate(level: u32, job: &Job) -> Result<Vec<u8>, PackError> {
    let mut c = Compress::new(Compression::new(level), false);
    if !job.dictionary.is_empty() {
        c.set_dictionary(&job.dictionary)
            .map_err(|e| PackError::Compress(e.to_string()))?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    let mut input = &job.data[..];
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let before_in = c.total_in();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(|e| PackError::Compress(e.to_string()))?;
        let consumed = (c.total_in() - before_in) as usize;
        input = &input[consumed..];
        let done = match status {
            Status::StreamEnd => true,
            // Sync flush is complete once all input is consumed and output space was left over.
            Status::Ok | Status::BufError => {
                !job.last && input.is_empty() && out.len() < out.capacity()
            }
        };
        if done {
            return Ok(out);
        }
    }
}

fn worker(level: u32, jobs: Arc<Mutex<Receiver<Job>>>, done: SyncSender<Result<Done, PackError>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&job.data);
        let input = job.data.len() as u64;
        let (seq, item, last) = (job.seq, job.item, job.last);
        let output = if job.stored {
            Ok(job.data)
        } else {
            deflate(level, &job)
        };
        let result = output.map(|output| Done {
            seq,
            item,
            last,
            crc,
            input,
            output,
        });
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Reads every file in chunks and queues them, in order.
fn read_all(items: &[Item], chunk: usize, jobs: SyncSender<Job>) -> Result<(), PackError> {
    let mut seq = 0;
    for (index, item) in items.iter().enumerate().filter(|(_, i)| !i.directory) {
        let mut file = File::open(&item.path).map_err(io_err(&item.path))?;
        let mut dictionary = Vec::new();
        let mut remaining = item.size;
        loop {
            let want = remaining.min(chunk as u64) as usize;
            let mut data = vec![0u8; want];
            file.read_exact(&mut data).map_err(io_err(&item.path))?;
            remaining -= want as u64;
            let last = remaining == 0;
            let next_dictionary = if item.stored {
                Vec::new()
            } else {
                data[data.len().saturating_sub(DICTIONARY)..].to_vec()
            };
            let job = Job {
                seq,
                item: index,
                last,
                stored: item.stored,
                dictionary: std::mem::take(&mut dictionary),
                data,
            };
            seq += 1;
            if jobs.send(job).is_err() {
                return Ok(()); // the writer stopped; it reports why
            }
            dictionary = next_dictionary;
            if last {
                break;
            }
        }
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Packs the folder `source` into the new file `dest`.
pub fn pack(source: &Path, dest: &Path, options: &PackOptions) -> Result<Packed, PackError> {
    let mut items = Vec::new();
    walk(source, source, &mut items)?;
    let file = File::create(dest).map_err(io_err(dest))?;
    let mut zip = ZipStreamWriter::new(Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    });
    let threads = options.threads.max(1);
    let (job_tx, job_rx) = sync_channel::<Job>(threads * 2);
    let (done_tx, done_rx) = sync_channel::<Result<Done, PackError>>(threads * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let chunk = options.chunk.max(DICTIONARY);
    let level = options.level.min(9);
    let mut bytes_in = 0u64;
    let files = items.iter().filter(|i| !i.directory).count() as u64;
    let outcome: Result<(), PackError> = std::thread::scope(|scope| {
        // The receivers live in this closure: if the writer stops early (an error), they are
        // dropped before the scope joins, so blocked workers and the reader see a closed channel
        // and end instead of waiting forever.
        let (job_rx, done_rx) = (job_rx, done_rx);
        for _ in 0..threads {
            let (rx, tx) = (Arc::clone(&job_rx), done_tx.clone());
            scope.spawn(move || worker(level, rx, tx));
        }
        drop(job_rx);
        drop(done_tx);
        let items_ref = &items;
        let reader = scope.spawn(move || read_all(items_ref, chunk, job_tx));
        // Write entries in order: directories as they come, files chunk by chunk.
        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut next_item = 0usize;
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        let mut open = false;
        let write_err = |e: io::Error| PackError::Io {
            path: dest.display().to_string(),
            source: e,
        };
        let write_directories = |zip: &mut ZipStreamWriter<_>,
                                 upto: usize,
                                 next_item: &mut usize|
         -> Result<(), PackError> {
            while *next_item < upto {
                let item = &items_ref[*next_item];
                if item.directory {
                    zip.add_directory(&item.name, item.mtime)
                        .map_err(write_err)?;
                }
                *next_item += 1;
            }
            Ok(())
        };
        for result in done_rx.iter() {
            let done = result?;
            pending.insert(done.seq, done);
            while let Some(done) = pending.remove(&next_seq) {
                next_seq += 1;
                if !open {
                    write_directories(&mut zip, done.item, &mut next_item)?;
                    let item = &items_ref[done.item];
                    let method = if item.stored {
                        Method::Stored
                    } else {
                        Method::Deflated
                    };
                    zip.start_file(&item.name, method, item.mtime, item.size, false)
                        .map_err(write_err)?;
                    open = true;
                    crc = crc32fast::Hasher::new();
                    written = 0;
                }
                zip.write_data(&done.output).map_err(write_err)?;
                crc.combine(&done.crc);
                written += done.output.len() as u64;
                bytes_in += done.input;
                if done.last {
                    let item = &items_ref[done.item];
                    zip.finish_entry(crc.clone().finalize(), written, item.size)
                        .map_err(write_err)?;
                    open = false;
                    next_item = done.item + 1;
                }
            }
        }
        reader
            .join()
            .map_err(|_| PackError::Compress("the reader thread panicked".into()))??;
        write_directories(&mut zip, items_ref.len(), &mut next_item)?;
        Ok(())
    });
    outcome?;
    let (hashing, size) = zip.finish().map_err(io_err(dest))?;
    let sha256: String = hashing
        .hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = hashing.inner.into_inner().map_err(|e| PackError::Io {
        path: dest.display().to_string(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(dest))?;
    Ok(Packed {
        size,
        sha256,
        files,
        bytes_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("Files")).expect("mkdir");
        fs::create_dir_all(dir.join("Empty")).expect("mkdir");
        fs::create_dir_all(dir.join("AppDeployToolkit")).expect("mkdir");
        let text: String = (0..50_000)
            .map(|i| format!("line {i} of a very compressible log\n"))
            .collect();
        fs::write(dir.join("AppDeployToolkit/AppDeployToolkitMain.ps1"), &text).expect("write");
        let mut noise = Vec::with_capacity(3 << 20);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..(3 << 20) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push(x as u8);
        }
        fs::write(dir.join("Files/setup.msi"), &noise).expect("write");
        fs::write(dir.join("Deploy-Application.exe"), b"MZ").expect("write");
        fs::write(dir.join("empty.txt"), b"").expect("write");
    }

    fn pack_and_read(
        threads: usize,
        chunk: usize,
    ) -> (Packed, zip::ZipArchive<Cursor<Vec<u8>>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("src");
        tree(&source);
        let dest = dir.path().join("out.zip");
        let packed = pack(
            &source,
            &dest,
            &PackOptions {
                level: 6,
                threads,
                chunk,
            },
        )
        .expect("packs");
        let bytes = fs::read(&dest).expect("read");
        assert_eq!(packed.size, bytes.len() as u64);
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(packed.sha256, sha);
        (
            packed,
            zip::ZipArchive::new(Cursor::new(bytes)).expect("valid zip"),
            dir,
        )
    }

    #[test]
    fn a_packed_folder_unzips_to_the_same_files() {
        let (packed, mut zip, dir) = pack_and_read(3, 64 * 1024);
        assert_eq!(packed.files, 4);
        let source = dir.path().join("src");
        for name in [
            "AppDeployToolkit/AppDeployToolkitMain.ps1",
            "Files/setup.msi",
            "Deploy-Application.exe",
            "empty.txt",
        ] {
            let mut content = Vec::new();
            zip.by_name(name)
                .expect(name)
                .read_to_end(&mut content)
                .expect("inflates with a valid CRC");
            assert_eq!(
                content,
                fs::read(source.join(name)).expect("source"),
                "{name}"
            );
        }
        assert!(zip.by_name("Empty/").expect("empty folder kept").is_dir());
        assert_eq!(
            zip.by_name("Files/setup.msi").expect("msi").compression(),
            zip::CompressionMethod::Stored
        );
        let text = zip
            .by_name("AppDeployToolkit/AppDeployToolkitMain.ps1")
            .expect("ps1");
        assert!(text.compressed_size() * 5 < text.size(), "text is deflated");
    }

    #[test]
    fn chunking_and_threads_barely_change_the_size_and_the_output_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("src");
        tree(&source);
        let run = |threads, chunk, name: &str| {
            pack(
                &source,
                &dir.path().join(name),
                &PackOptions {
                    level: 6,
                    threads,
                    chunk,
                },
            )
            .expect("packs")
        };
        let serial = run(1, 64 << 20, "serial.zip");
        let parallel = run(4, 64 * 1024, "parallel.zip");
        let again = run(2, 64 * 1024, "again.zip");
        assert_eq!(
            parallel.sha256, again.sha256,
            "same folder, same chunking: same bytes, whatever the threads"
        );
        let growth = parallel.size as f64 / serial.size as f64;
        assert!(
            growth < 1.01,
            "chunked deflate grows the archive by {growth}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("src");
        fs::create_dir_all(&source).expect("mkdir");
        std::os::unix::fs::symlink("/etc/passwd", source.join("link")).expect("symlink");
        assert!(matches!(
            pack(&source, &dir.path().join("o.zip"), &PackOptions::default()),
            Err(PackError::Symlink(_))
        ));
    }

    /// A write error (a full spool disk) ends `pack` with that error; it used to leave the
    /// workers blocked on a channel nobody read, and `pack` never returned.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failing_write_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("src");
        tree(&source);
        // Enough chunks to fill both channels while the writer is gone.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let text: Vec<u8> = (0..(24 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"abcdefgh \n"[(x % 10) as usize]
            })
            .collect();
        fs::write(source.join("big.log"), &text).expect("write");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = pack(
                &source,
                Path::new("/dev/full"),
                &PackOptions {
                    level: 1,
                    threads: 2,
                    chunk: 64 * 1024,
                },
            );
            let _ = tx.send(result.map(|p| p.size));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(Err(PackError::Io { path, source })) => {
                assert_eq!(path, "/dev/full");
                assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {source}");
            }
            other => panic!("expected a write error within 2 minutes, got {other:?}"),
        }
    }
}
