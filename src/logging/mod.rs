//! Logs: where they go and in which format. `tracing` events are written to stderr (always) and,
//! when `[logging] directory` is set, to daily, size-capped, pruned files ([`rotate`]) through a
//! non-blocking writer that is flushed when the returned [`LogGuard`] is dropped.
//!
//! Formats: `text` (human-readable, the default), `json` (one object a line, for `jq` and log
//! shippers) and `cmtrace` ([`cmtrace`], for CMTrace/OneTrace). With a directory, the files get
//! the configured format and stderr stays human-readable text; without one, stderr gets it.
//! `RUST_LOG` filters as usual (default `info`).

pub mod cmtrace;
pub mod rotate;

use serde::Deserialize;
use std::path::PathBuf;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
    Cmtrace,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// Where log files go; `None`: stderr only.
    pub directory: Option<PathBuf>,
    /// A file is rolled to `.1`, `.2`, … before it grows past this.
    pub max_file_mb: u64,
    /// At most this many log files are kept (the oldest are removed).
    pub keep_files: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            directory: None,
            max_file_mb: 10,
            keep_files: 10,
        }
    }
}

impl LoggingConfig {
    /// The field at fault and why, for `config`'s errors.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_file_mb == 0 || self.max_file_mb > 4096 {
            return Err((
                "logging.max_file_mb",
                format!("must be between 1 and 4096; got {}", self.max_file_mb),
            ));
        }
        if self.keep_files == 0 || self.keep_files > 10_000 {
            return Err((
                "logging.keep_files",
                format!("must be between 1 and 10000; got {}", self.keep_files),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open the log directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("logging is already set up in this process")]
    AlreadySet,
}

/// Keeps the file writer's worker alive; dropping it flushes what is queued.
#[derive(Debug)]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// The machine's UTC offset now. Call it before any thread starts: on Unix it cannot be read
/// safely afterwards (then UTC is used).
pub fn local_offset() -> time::UtcOffset {
    time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC)
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn layer<W>(format: LogFormat, writer: W, ansi: bool, offset: time::UtcOffset) -> Boxed
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => base.with_ansi(ansi).boxed(),
        LogFormat::Json => base.json().with_current_span(true).boxed(),
        LogFormat::Cmtrace => base
            .with_ansi(false)
            .event_format(cmtrace::CmTrace::new(cmtrace::SystemClock { offset }))
            .boxed(),
    }
}

/// Sets up the process's logging from `config`; `offset` is [`local_offset`], read early.
pub fn init(config: &LoggingConfig, offset: time::UtcOffset) -> Result<LogGuard, LoggingError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let mut layers: Vec<Boxed> = Vec::new();
    let mut worker = None;
    match &config.directory {
        Some(dir) => {
            let today = move || {
                let now = time::OffsetDateTime::now_utc().to_offset(offset);
                (now.year(), u8::from(now.month()), now.day())
            };
            let files = rotate::RotatingWriter::new(
                dir,
                config.max_file_mb << 20,
                config.keep_files,
                Box::new(today),
            )
            .map_err(|source| LoggingError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(files);
            worker = Some(guard);
            layers.push(layer(config.format, writer, false, offset));
            layers.push(layer(LogFormat::Text, std::io::stderr, true, offset));
        }
        None => layers.push(layer(config.format, std::io::stderr, true, offset)),
    }
    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    Ok(LogGuard { _worker: worker })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn emit(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(layer(
            format,
            move || out.clone(),
            false,
            time::UtcOffset::UTC,
        ));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "sccm_connector::daemon", job = 3, "polling failed");
        });
        let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn each_format_writes_one_line_per_event() {
        let json: serde_json::Value =
            serde_json::from_str(emit(LogFormat::Json).trim_end()).expect("one JSON object");
        assert_eq!(json["level"], "WARN");
        assert_eq!(json["target"], "sccm_connector::daemon");
        assert_eq!(json["fields"]["message"], "polling failed");
        assert_eq!(json["fields"]["job"], 3);
        let text = emit(LogFormat::Text);
        assert!(
            text.contains("WARN sccm_connector::daemon: polling failed job=3\n"),
            "{text}"
        );
        let cm = emit(LogFormat::Cmtrace);
        assert!(
            cm.starts_with("<![LOG[polling failed job=3]LOG]!><time=\"")
                && cm.contains("type=\"2\""),
            "{cm}"
        );
    }

    #[test]
    fn the_section_parses_and_validates() {
        let c: LoggingConfig =
            toml::from_str("format = \"cmtrace\"\ndirectory = \"/var/log/x\"\nkeep_files = 3\n")
                .expect("valid");
        assert_eq!(c.format, LogFormat::Cmtrace);
        assert_eq!(c.max_file_mb, 10);
        assert_eq!(c.keep_files, 3);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<LoggingConfig>("format = \"xml\"\n").is_err());
        assert!(toml::from_str::<LoggingConfig>("colour = true\n").is_err());
        let zero = LoggingConfig {
            max_file_mb: 0,
            ..LoggingConfig::default()
        };
        assert_eq!(zero.validate().map_err(|e| e.0), Err("logging.max_file_mb"));
    }
}
