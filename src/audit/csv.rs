//! The CSV encoding of an export: a fixed column row, then one row per line of the JSON Lines
//! encoding with the same fields (`csv` crate; RFC 4180 quoting, `\n` line ends).
//!
//! Record rows fill the columns of [`COLUMNS`] (empty = absent, `data` as compact JSON).
//! The header and trailer rows carry only `type` and, in `data`, the JSON of the header or
//! trailer object (the JSON Lines line without its `type` member).

use super::AuditError;
use super::record::{Content, Header, Line, RecordLine, Trailer};

/// The column row, fixed.
pub const COLUMNS: [&str; 15] = [
    "type",
    "seq",
    "seq_end",
    "content",
    "redacted",
    "job",
    "job_seq",
    "timestamp",
    "timestamp_ms",
    "payload_format",
    "event",
    "data",
    "prev_hash",
    "hash",
    "body",
];

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new())
}

fn row(fields: &[String]) -> Result<Vec<u8>, AuditError> {
    let mut w = writer();
    w.write_record(fields)
        .map_err(|e| AuditError::Encode(e.to_string()))?;
    w.into_inner()
        .map_err(|e| AuditError::Encode(e.to_string()))
}

/// The column row's bytes.
///
/// # Errors
/// Never in practice ([`AuditError::Encode`]).
pub fn column_row() -> Result<Vec<u8>, AuditError> {
    row(&COLUMNS.map(String::from))
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// One line as a CSV row.
///
/// # Errors
/// [`AuditError::Encode`] if JSON or CSV encoding fails.
pub fn encode(line: &Line) -> Result<Vec<u8>, AuditError> {
    let mut fields: Vec<String> = vec![String::new(); COLUMNS.len()];
    match line {
        Line::Header(h) => {
            fields[0] = "header".into();
            fields[11] = json(h)?;
        }
        Line::Trailer(t) => {
            fields[0] = "trailer".into();
            fields[11] = json(t)?;
        }
        Line::Record(r) => {
            fields[0] = "record".into();
            fields[1] = r.seq.to_string();
            fields[2] = opt(r.seq_end);
            fields[3] = r.content.as_str().into();
            fields[4] = r.redacted.to_string();
            fields[5] = opt(r.job.as_ref());
            fields[6] = opt(r.job_seq);
            fields[7] = opt(r.timestamp.as_ref());
            fields[8] = opt(r.timestamp_ms);
            fields[9] = opt(r.payload_format);
            fields[10] = opt(r.event.as_ref());
            fields[11] = match &r.data {
                Some(d) => {
                    serde_json::to_string(d).map_err(|e| AuditError::Encode(e.to_string()))?
                }
                None => String::new(),
            };
            fields[12] = r.prev_hash.clone();
            fields[13] = r.hash.clone();
            fields[14] = opt(r.body.as_ref());
        }
    }
    row(&fields)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, AuditError> {
    serde_json::to_string(value).map_err(|e| AuditError::Encode(e.to_string()))
}

/// A row read back: its 1-based row number (the column row is row 1), the byte offset where it
/// starts, and the line or why it is not one.
#[derive(Debug)]
pub struct ParsedRow {
    pub number: usize,
    pub start: usize,
    pub line: Result<Line, String>,
}

fn field(record: &csv::StringRecord, i: usize) -> &str {
    record.get(i).unwrap_or_default()
}

fn optional<T: std::str::FromStr>(text: &str, name: &str) -> Result<Option<T>, String> {
    if text.is_empty() {
        Ok(None)
    } else {
        text.parse()
            .map(Some)
            .map_err(|_| format!("column {name}: {text:?} is not valid"))
    }
}

fn parse_row(record: &csv::StringRecord) -> Result<Line, String> {
    if record.len() != COLUMNS.len() {
        return Err(format!(
            "{} columns instead of {}",
            record.len(),
            COLUMNS.len()
        ));
    }
    let data = field(record, 11);
    match field(record, 0) {
        "header" => serde_json::from_str::<Header>(data)
            .map(Line::Header)
            .map_err(|e| format!("the header's data is not a header: {e}")),
        "trailer" => serde_json::from_str::<Trailer>(data)
            .map(Line::Trailer)
            .map_err(|e| format!("the trailer's data is not a trailer: {e}")),
        "record" => {
            let seq = optional::<u64>(field(record, 1), "seq")?
                .ok_or_else(|| "column seq is empty".to_string())?;
            let content = Content::parse(field(record, 3))
                .ok_or_else(|| format!("column content: {:?}", field(record, 3)))?;
            let redacted = match field(record, 4) {
                "true" => true,
                "false" => false,
                other => return Err(format!("column redacted: {other:?}")),
            };
            let text = |i: usize| {
                let t = field(record, i);
                (!t.is_empty()).then(|| t.to_string())
            };
            Ok(Line::Record(RecordLine {
                seq,
                seq_end: optional(field(record, 2), "seq_end")?,
                content,
                redacted,
                job: text(5),
                job_seq: optional(field(record, 6), "job_seq")?,
                timestamp: text(7),
                timestamp_ms: optional(field(record, 8), "timestamp_ms")?,
                payload_format: optional(field(record, 9), "payload_format")?,
                event: text(10),
                data: if data.is_empty() {
                    None
                } else {
                    Some(
                        serde_json::from_str(data)
                            .map_err(|e| format!("column data is not JSON: {e}"))?,
                    )
                },
                prev_hash: field(record, 12).to_string(),
                hash: field(record, 13).to_string(),
                body: text(14),
            }))
        }
        other => Err(format!("unknown row type {other:?}")),
    }
}

/// Reads a CSV export: checks the column row, then every row (with its byte offset).
///
/// # Errors
/// A message when the column row is not [`COLUMNS`] or the CSV itself is malformed (the
/// row number is named).
pub fn parse(bytes: &[u8]) -> Result<Vec<ParsedRow>, (usize, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut number = 0usize;
    loop {
        let start = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err((number + 1, format!("malformed CSV: {e}"))),
        }
        number += 1;
        if number == 1 {
            if record.iter().ne(COLUMNS.iter().copied()) {
                return Err((1, "the column row is not the audit export's".into()));
            }
            continue;
        }
        rows.push(ParsedRow {
            number,
            start,
            line: parse_row(&record),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::omitted_line;

    #[test]
    fn rows_read_back_with_their_offsets() {
        let record = Line::Record(RecordLine {
            data: Some(serde_json::json!({"Planned": {"script": "a,\"b\"\nc"}})),
            ..omitted_line(1, 1, &journal::GENESIS, &journal::GENESIS)
        });
        let mut bytes = column_row().expect("row");
        let second = bytes.len();
        bytes.extend(encode(&record).expect("row"));
        let rows = parse(&bytes).expect("parses");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].start, second);
        assert_eq!(rows[0].line.as_ref().expect("a line"), &record);
        assert!(parse(b"a,b\n").is_err());
    }
}
