//! The log file appender: one file a day, `sccm-connector-YYYY-MM-DD.log`, rolled to `.1`, `.2`, …
//! when it would grow past the size cap, and at most `keep` files in the directory (the oldest
//! removed first). The date comes from an injected clock, so rotation is tested without waiting.
//!
//! Each `write` call is one whole log line (the formatters write a line per call through the
//! non-blocking writer), so a line never straddles two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file name prefix of every log file.
pub const PREFIX: &str = "sccm-connector-";

/// Today's date in the log's time zone: `(year, month, day)`.
pub type DateSource = Box<dyn Fn() -> (i32, u8, u8) + Send + Sync>;

/// A size-capped, daily-rotated, pruned log file writer.
pub struct RotatingWriter {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    today: DateSource,
    current: Option<Current>,
}

struct Current {
    date: (i32, u8, u8),
    file: File,
    size: u64,
}

impl std::fmt::Debug for RotatingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingWriter")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// The base name of the log file of `date`.
pub fn file_name(date: (i32, u8, u8)) -> String {
    format!("{PREFIX}{:04}-{:02}-{:02}.log", date.0, date.1, date.2)
}

impl RotatingWriter {
    /// A writer into `dir` (created if missing). `max_bytes` and `keep` are at least 1.
    pub fn new(dir: &Path, max_bytes: u64, keep: usize, today: DateSource) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(RotatingWriter {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
            today,
            current: None,
        })
    }

    fn open(&self, date: (i32, u8, u8)) -> io::Result<Current> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file_name(date)))?;
        let size = file.metadata()?.len();
        Ok(Current { date, file, size })
    }

    /// Renames `<day>.log.N` to `.N+1` (highest first) and `<day>.log` to `.log.1`.
    fn roll(&self, date: (i32, u8, u8)) -> io::Result<()> {
        let base = file_name(date);
        let mut highest = 0u32;
        while self.dir.join(format!("{base}.{}", highest + 1)).exists() {
            highest += 1;
        }
        for n in (1..=highest).rev() {
            std::fs::rename(
                self.dir.join(format!("{base}.{n}")),
                self.dir.join(format!("{base}.{}", n + 1)),
            )?;
        }
        std::fs::rename(self.dir.join(&base), self.dir.join(format!("{base}.1")))
    }

    /// Removes the oldest log files beyond `keep`.
    fn prune(&self) -> io::Result<()> {
        let mut logs: Vec<(String, u32, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((day, generation)) = parse_name(&name) {
                logs.push((day, generation, entry.path()));
            }
        }
        // Newest first: a later day, then a lower generation (`.log` is newer than `.log.1`).
        logs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, path) in logs.into_iter().skip(self.keep) {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// `sccm-connector-YYYY-MM-DD.log[.N]` → (`YYYY-MM-DD`, N or 0).
fn parse_name(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(PREFIX)?;
    let day = rest.get(..10)?;
    if !day.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    }) {
        return None;
    }
    match rest.get(10..)? {
        ".log" => Some((day.to_string(), 0)),
        tail => {
            let n = tail.strip_prefix(".log.")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((day.to_string(), n.parse().ok()?))
        }
    }
}

impl Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let date = (self.today)();
        let new_day = self.current.as_ref().is_none_or(|c| c.date != date);
        if new_day {
            self.current = None;
            self.current = Some(self.open(date)?);
            self.prune()?;
        }
        let full = self
            .current
            .as_ref()
            .is_some_and(|c| c.size > 0 && c.size + buf.len() as u64 > self.max_bytes);
        if full {
            self.current = None;
            self.roll(date)?;
            self.current = Some(self.open(date)?);
            self.prune()?;
        }
        let Some(current) = self.current.as_mut() else {
            return Err(io::Error::other("the log file is not open"));
        };
        current.file.write_all(buf)?;
        current.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut() {
            Some(c) => c.file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("the log directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    fn writer(dir: &Path, max: u64, keep: usize) -> (RotatingWriter, Arc<AtomicU8>) {
        let day = Arc::new(AtomicU8::new(1));
        let clock = Arc::clone(&day);
        let w = RotatingWriter::new(
            dir,
            max,
            keep,
            Box::new(move || (2026, 11, clock.load(Ordering::SeqCst))),
        )
        .expect("a writer");
        (w, day)
    }

    #[test]
    fn a_file_per_day_and_a_roll_at_the_size_cap() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (mut w, day) = writer(dir.path(), 20, 10);
        w.write_all(b"first line 0123\n").expect("write");
        w.write_all(b"second line 0123\n").expect("write");
        w.write_all(b"third line 0123\n").expect("write");
        assert_eq!(
            names(dir.path()),
            [
                "sccm-connector-2026-11-01.log",
                "sccm-connector-2026-11-01.log.1",
                "sccm-connector-2026-11-01.log.2"
            ]
        );
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).expect("a log file");
        assert_eq!(read("sccm-connector-2026-11-01.log.2"), "first line 0123\n");
        assert_eq!(
            read("sccm-connector-2026-11-01.log.1"),
            "second line 0123\n"
        );
        assert_eq!(read("sccm-connector-2026-11-01.log"), "third line 0123\n");
        day.store(2, Ordering::SeqCst);
        w.write_all(b"next day\n").expect("write");
        assert_eq!(read("sccm-connector-2026-11-02.log"), "next day\n");
        // A line larger than the cap still goes into an empty file whole.
        day.store(3, Ordering::SeqCst);
        w.write_all(&[b'x'; 50]).expect("write");
        assert_eq!(read("sccm-connector-2026-11-03.log").len(), 50);
    }

    #[test]
    fn only_the_newest_files_are_kept() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("unrelated.txt"), "keep me").expect("write");
        let (mut w, day) = writer(dir.path(), 10, 3);
        for d in 1..=3u8 {
            day.store(d, Ordering::SeqCst);
            w.write_all(b"0123456789\n").expect("write");
            w.write_all(b"0123456789\n").expect("write");
        }
        assert_eq!(
            names(dir.path()),
            [
                "sccm-connector-2026-11-02.log",
                "sccm-connector-2026-11-03.log",
                "sccm-connector-2026-11-03.log.1",
                "unrelated.txt"
            ]
        );
    }

    #[test]
    fn reopening_appends_to_todays_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        {
            let (mut w, _) = writer(dir.path(), 1000, 5);
            w.write_all(b"before restart\n").expect("write");
        }
        let (mut w, _) = writer(dir.path(), 1000, 5);
        w.write_all(b"after restart\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sccm-connector-2026-11-01.log"))
                .expect("the log"),
            "before restart\nafter restart\n"
        );
    }

    #[test]
    fn names_are_parsed_strictly() {
        assert_eq!(
            parse_name("sccm-connector-2026-11-01.log"),
            Some(("2026-11-01".into(), 0))
        );
        assert_eq!(
            parse_name("sccm-connector-2026-11-01.log.12"),
            Some(("2026-11-01".into(), 12))
        );
        assert_eq!(parse_name("sccm-connector-2026-11-01.log."), None);
        assert_eq!(parse_name("sccm-connector-2026-1x-01.log"), None);
        assert_eq!(parse_name("other-2026-11-01.log"), None);
    }
}
