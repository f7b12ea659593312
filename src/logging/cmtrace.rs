//! The CMTrace log line: the format ConfigMgr's own logs use, read by CMTrace and OneTrace.
//!
//! ```text
//! <![LOG[message]LOG]!><time="HH:MM:SS.mmm+TZO" date="MM-DD-YYYY" component="…" context="" type="1" thread="N" file="…">
//! ```
//!
//! - `time` is local time with milliseconds, followed by the time-zone **bias** in minutes as
//!   Windows defines it (`UTC = local time + bias`): `+480` in California in winter, `-60` in
//!   Paris in winter, `+000` at UTC. It is the opposite sign of an ISO 8601 offset.
//! - `type` is 1 (information: info, debug, trace), 2 (warning) or 3 (error).
//! - `component` is the event's target (`sccm_connector::daemon`); `file` is `file:line`.
//! - The message is the event's message followed by its fields (`key=value`) and the names of
//!   the spans it happened in. A `]LOG]!>` inside it is written as `]LOG]!&gt;`, so a hostile
//!   value cannot end the message early; `"` in attributes becomes `'`.
//!
//! The clock is injected ([`Clock`]) so tests get exact lines.

use std::fmt::Write as _;
use time::OffsetDateTime;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Now, in the log's time zone (the offset is part of the value).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock in a fixed UTC offset (the machine's, read once at start-up: reading the
/// local offset later is refused on Unix once threads run).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    pub offset: time::UtcOffset,
}

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().to_offset(self.offset)
    }
}

/// The CMTrace event formatter.
#[derive(Debug, Clone)]
pub struct CmTrace<C> {
    clock: C,
}

impl<C: Clock> CmTrace<C> {
    pub fn new(clock: C) -> Self {
        CmTrace { clock }
    }
}

/// What closes a CMTrace message, and what it becomes inside one.
const END: &str = "]LOG]!>";
const END_ESCAPED: &str = "]LOG]!&gt;";

/// The `time` and `date` attribute values of `at`.
pub fn time_and_date(at: OffsetDateTime) -> (String, String) {
    let bias = -(at.offset().whole_minutes() as i32);
    let sign = if bias < 0 { '-' } else { '+' };
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}{sign}{:03}",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
        bias.unsigned_abs()
    );
    let date = format!(
        "{:02}-{:02}-{:04}",
        u8::from(at.month()),
        at.day(),
        at.year()
    );
    (time, date)
}

/// The CMTrace `type` of a level.
pub fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 2,
        _ => 1,
    }
}

/// The numeric id of the current thread (Rust's, as CMTrace wants a number).
pub fn thread_number() -> u64 {
    let id = format!("{:?}", std::thread::current().id());
    id.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// One whole line, `\r\n`-free (CMTrace reads `\n`), for a message already rendered.
pub fn line(
    message: &str,
    at: OffsetDateTime,
    component: &str,
    level: &Level,
    thread: u64,
    file: &str,
) -> String {
    let (time, date) = time_and_date(at);
    let attribute = |s: &str| s.replace('"', "'");
    format!(
        "<![LOG[{}]LOG]!><time=\"{time}\" date=\"{date}\" component=\"{}\" context=\"\" type=\"{}\" thread=\"{thread}\" file=\"{}\">\n",
        message.replace(END, END_ESCAPED),
        attribute(component),
        severity(level),
        attribute(file),
    )
}

impl<S, N, C> FormatEvent<S, N> for CmTrace<C>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    C: Clock,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut message = String::new();
        ctx.format_fields(Writer::new(&mut message), event)?;
        if let Some(scope) = ctx.event_scope() {
            let mut spans = String::new();
            for span in scope.from_root() {
                if !spans.is_empty() {
                    spans.push(':');
                }
                spans.push_str(span.name());
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    let _ = write!(spans, "{{{fields}}}");
                }
            }
            if !spans.is_empty() {
                let _ = write!(message, " (in {spans})");
            }
        }
        let file = match (meta.file(), meta.line()) {
            (Some(file), Some(line)) => {
                let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
                format!("{name}:{line}")
            }
            _ => String::new(),
        };
        writer.write_str(&line(
            &message,
            self.clock.now(),
            meta.target(),
            meta.level(),
            thread_number(),
            &file,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::sync::{Arc, Mutex};
    use time::macros::{datetime, offset};

    #[derive(Clone)]
    struct Fixed(OffsetDateTime);
    impl Clock for Fixed {
        fn now(&self) -> OffsetDateTime {
            self.0
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(at: OffsetDateTime, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(CmTrace::new(Fixed(at)))
            .with_max_level(Level::TRACE)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8(bytes).expect("UTF-8 lines")
    }

    #[test]
    fn the_bias_is_minutes_west_of_utc() {
        let cases = [
            (
                datetime!(2026-01-15 09:05:03.042 -08:00),
                "09:05:03.042+480",
                "01-15-2026",
            ),
            (
                datetime!(2026-07-04 23:59:59.999 +01:00),
                "23:59:59.999-060",
                "07-04-2026",
            ),
            (
                datetime!(2026-12-31 00:00:00 UTC),
                "00:00:00.000+000",
                "12-31-2026",
            ),
            (
                datetime!(2026-03-01 12:00:00 +05:30),
                "12:00:00.000-330",
                "03-01-2026",
            ),
        ];
        for (at, time, date) in cases {
            assert_eq!(time_and_date(at), (time.to_string(), date.to_string()));
        }
    }

    #[test]
    fn an_event_becomes_one_exact_line() {
        let at = datetime!(2026-11-22 08:15:30.250).assume_offset(offset!(+01:00));
        let thread = thread_number();
        let mut lines = Vec::new();
        let text = capture(at, || {
            lines.push(line!() + 1);
            tracing::info!(target: "sccm_connector::daemon", job = 7, "connector started");
            lines.push(line!() + 1);
            tracing::warn!(target: "sccm_connector::portal", "polling failed");
            lines.push(line!() + 1);
            tracing::error!(target: "x", "it broke");
            lines.push(line!() + 1);
            tracing::debug!(target: "x", "detail");
        });
        let expected = format!(
            "<![LOG[connector started job=7]LOG]!><time=\"08:15:30.250-060\" date=\"11-22-2026\" component=\"sccm_connector::daemon\" context=\"\" type=\"1\" thread=\"{thread}\" file=\"cmtrace.rs:{}\">\n\
             <![LOG[polling failed]LOG]!><time=\"08:15:30.250-060\" date=\"11-22-2026\" component=\"sccm_connector::portal\" context=\"\" type=\"2\" thread=\"{thread}\" file=\"cmtrace.rs:{}\">\n\
             <![LOG[it broke]LOG]!><time=\"08:15:30.250-060\" date=\"11-22-2026\" component=\"x\" context=\"\" type=\"3\" thread=\"{thread}\" file=\"cmtrace.rs:{}\">\n\
             <![LOG[detail]LOG]!><time=\"08:15:30.250-060\" date=\"11-22-2026\" component=\"x\" context=\"\" type=\"1\" thread=\"{thread}\" file=\"cmtrace.rs:{}\">\n",
            lines[0], lines[1], lines[2], lines[3]
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn spans_are_named_in_the_message() {
        let at = datetime!(2026-11-22 08:15:30 UTC);
        let text = capture(at, || {
            let span = tracing::info_span!("job", id = 3);
            let _entered = span.enter();
            tracing::info!(target: "t", "step done");
        });
        assert!(
            text.starts_with("<![LOG[step done (in job{id=3})]LOG]!><time=\"08:15:30.000+000\""),
            "{text}"
        );
    }

    #[test]
    fn a_message_cannot_end_the_record_early() {
        let at = datetime!(2026-11-22 08:15:30 UTC);
        let hostile = "evil]LOG]!><time=\"00:00:00.000+000\" type=\"3\">";
        let text = capture(at, || tracing::info!(target: "t", "{hostile}"));
        assert_eq!(text.matches("]LOG]!>").count(), 1, "{text}");
        assert!(text.starts_with("<![LOG[evil]LOG]!&gt;<time="), "{text}");
        // Quotes cannot leave an attribute either.
        let l = line("m", at, "a\"b", &Level::INFO, 1, "f\"g");
        assert!(
            l.contains("component=\"a'b\"") && l.contains("file=\"f'g\""),
            "{l}"
        );
        let mut sink = Vec::new();
        sink.write_all(l.as_bytes()).expect("write");
        assert!(sink.ends_with(b">\n"));
    }
}
