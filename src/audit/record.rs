//! The lines of an export (`docs/audit.md` defines them field by field): a [`Header`], one
//! [`RecordLine`] per journal record (or per run of records a filter left out), a [`Trailer`].
//!
//! A record line shows its record in one of three ways ([`Content`]):
//!
//! * `full`: the decoded event **and** `body`, the base64 of the exact bytes the chain hashes
//!   (`Record::encoded_body`), so that `SHA-256(prev_hash ‖ body) = hash` can be recomputed and
//!   the displayed fields checked against the bytes;
//! * `redacted`: the event with its secrets replaced (see `redact`), **without** `body` — the bytes
//!   would show the secret. Only the link is checked (`prev_hash` equals the previous line's
//!   `hash`); the record's own hash is authenticated by the next full record, whose recomputed
//!   hash covers it, or by the signed head;
//! * `omitted`: records `seq..=seq_end` that the filter left out, as one link from the hash
//!   before them (`prev_hash`) to the hash of the last of them (`hash`);
//! * `pruned`: a record whose job retention pruned from the journal (its content is in an
//!   archive): the journal's stub — job, job sequence, timestamp and hash — checked as a link.

use super::redact;
use super::time::rfc3339_millis;
use base64::Engine as _;
use journal::{Hash, Record};
use replay::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `format` of every header.
pub const FORMAT_NAME: &str = "sccm-connector-audit";
/// `version` of the export format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The payload format of the connector's events (`engine::store::PAYLOAD_FORMAT`).
pub use crate::engine::store::PAYLOAD_FORMAT;

/// base64 (standard alphabet, padded), as every binary field of an export.
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a standard padded base64 field.
pub(crate) fn from_b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Reads a 64-character lower-case hex hash.
pub(crate) fn hash_from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(Hash(out))
}

/// What the filter asked for, as recorded in the header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The chosen jobs (every job when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// `jsonl` or `csv`.
    pub encoding: String,
    /// The journal directory the export was taken from (informational).
    pub source: String,
    /// When the export was made (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
    pub filter: FilterInfo,
    /// Global sequence of the first record covered (`last_seq + 1` when nothing is).
    pub first_seq: u64,
    /// Global sequence of the last record covered.
    pub last_seq: u64,
    /// Hash of record `first_seq - 1` (32 zero bytes when `first_seq` is 1): the chain base.
    pub chain_base: String,
    /// Record lines between header and trailer.
    pub count: u64,
    /// The journal's last record when the export was taken (informational).
    pub journal_head_seq: u64,
    pub journal_head_hash: String,
}

/// The signature of a signed export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureInfo {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signer's public key: base64 of its 32 raw bytes.
    pub public_key: String,
    /// base64 of the 64-byte Ed25519 signature of [`super::sign::signed_message`].
    pub value: String,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub chain_base: String,
    /// Hash of record `last_seq` (the chain base when nothing is covered).
    pub head: String,
    /// SHA-256 of every byte of the file before the trailer line.
    pub content_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureInfo>,
}

/// How a record line shows its record(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    Full,
    Redacted,
    Omitted,
    Pruned,
}

impl Content {
    pub fn as_str(self) -> &'static str {
        match self {
            Content::Full => "full",
            Content::Redacted => "redacted",
            Content::Omitted => "omitted",
            Content::Pruned => "pruned",
        }
    }

    pub fn parse(text: &str) -> Option<Content> {
        match text {
            "full" => Some(Content::Full),
            "redacted" => Some(Content::Redacted),
            "omitted" => Some(Content::Omitted),
            "pruned" => Some(Content::Pruned),
            _ => None,
        }
    }
}

/// One record (or one omitted run of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLine {
    pub seq: u64,
    /// Last sequence of an omitted run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_end: Option<u64>,
    pub content: Content,
    /// `content == redacted`, spelled out for readers that look for it.
    pub redacted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<u16>,
    /// The event's name (`replay::Event::name`); absent when the payload does not decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The event as JSON (see [`event_json`]); absent when the payload does not decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
    /// base64 of the record's encoded body (full records only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Any line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Header(Header),
    Record(RecordLine),
    Trailer(Trailer),
}

/// The event as an export shows it: serde's JSON of [`replay::Event`] (externally tagged:
/// `{"Planned": {…}}`, `"Acked"`), script text verbatim, except that `CommandReceived.raw` (the
/// command's exact bytes) is shown as `raw_text` when it is UTF-8 and `raw_base64` otherwise.
#[must_use]
pub fn event_json(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Event::CommandReceived { raw, .. } = event
        && let Some(inner) = value
            .get_mut("CommandReceived")
            .and_then(Value::as_object_mut)
    {
        inner.remove("raw");
        match std::str::from_utf8(raw) {
            Ok(text) => inner.insert("raw_text".into(), Value::String(text.into())),
            Err(_) => inner.insert("raw_base64".into(), Value::String(b64(raw))),
        };
    }
    value
}

/// The event of a record, if its payload is one of ours and decodes.
#[must_use]
pub fn decode_event(record: &Record) -> Option<Event> {
    if record.payload_format() != PAYLOAD_FORMAT {
        return None;
    }
    journal::decode_payload::<Event>(record.payload()).ok()
}

/// A record's line, redacted if it shows a secret. `prev` is its predecessor's hash.
#[must_use]
pub fn record_line(record: &Record, prev: &Hash) -> (RecordLine, Option<Event>) {
    let event = decode_event(record);
    let (name, mut data, mut secret) = match &event {
        Some(e) => (Some(e.name().to_string()), Some(event_json(e)), false),
        None => {
            // Not ours, or corrupt: at least never show a secret it might hold in the bytes.
            let text = String::from_utf8_lossy(record.payload());
            let secret = matches!(redact::redact_text(&text), std::borrow::Cow::Owned(_));
            (None, None, secret)
        }
    };
    if let Some(d) = data.as_mut() {
        secret |= redact::redact_json(d);
    }
    let content = if secret {
        Content::Redacted
    } else {
        Content::Full
    };
    let line = RecordLine {
        seq: record.seq(),
        seq_end: None,
        content,
        redacted: secret,
        job: Some(record.job().to_string()),
        job_seq: Some(record.job_seq()),
        timestamp: Some(rfc3339_millis(record.timestamp().0)),
        timestamp_ms: Some(record.timestamp().0),
        payload_format: Some(record.payload_format()),
        event: name,
        data,
        prev_hash: prev.to_hex(),
        hash: record.hash().to_hex(),
        body: (!secret).then(|| b64(record.encoded_body())),
    };
    (line, event)
}

/// The line of a pruned record: its stub. `prev` is its predecessor's hash.
#[must_use]
pub fn pruned_line(link: &journal::PrunedLink, prev: &Hash) -> RecordLine {
    RecordLine {
        seq: link.seq,
        seq_end: None,
        content: Content::Pruned,
        redacted: false,
        job: Some(link.job.to_string()),
        job_seq: Some(link.job_seq),
        timestamp: Some(rfc3339_millis(link.timestamp.0)),
        timestamp_ms: Some(link.timestamp.0),
        payload_format: None,
        event: None,
        data: None,
        prev_hash: prev.to_hex(),
        hash: link.hash.to_hex(),
        body: None,
    }
}

/// The line standing for the omitted records `from..=to`.
#[must_use]
pub fn omitted_line(from: u64, to: u64, prev: &Hash, last: &Hash) -> RecordLine {
    RecordLine {
        seq: from,
        seq_end: Some(to),
        content: Content::Omitted,
        redacted: false,
        job: None,
        job_seq: None,
        timestamp: None,
        timestamp_ms: None,
        payload_format: None,
        event: None,
        data: None,
        prev_hash: prev.to_hex(),
        hash: last.to_hex(),
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back() {
        let h = journal::link(&journal::GENESIS, b"abc");
        assert_eq!(hash_from_hex(&h.to_hex()), Some(h));
        assert_eq!(hash_from_hex(&h.to_hex().to_uppercase()), None);
        assert_eq!(hash_from_hex("00"), None);
    }

    #[test]
    fn command_bytes_show_as_text_or_base64() {
        let text = event_json(&Event::CommandReceived {
            command_id: Some("c".into()),
            kind: replay::JobKind::Push,
            raw: b"{\"id\":\"c\"}".to_vec(),
        });
        assert_eq!(text["CommandReceived"]["raw_text"], "{\"id\":\"c\"}");
        let binary = event_json(&Event::CommandReceived {
            command_id: None,
            kind: replay::JobKind::Unrecognized,
            raw: vec![0xff, 0x00],
        });
        assert_eq!(binary["CommandReceived"]["raw_base64"], "/wA=");
        assert_eq!(event_json(&Event::Acked), Value::String("Acked".into()));
    }

    #[test]
    fn lines_tag_their_type() {
        let line = Line::Record(omitted_line(3, 5, &journal::GENESIS, &journal::GENESIS));
        let text = serde_json::to_string(&line).expect("json");
        assert!(
            text.starts_with("{\"type\":\"record\",\"seq\":3,\"seq_end\":5"),
            "{text}"
        );
        let back: Line = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, line);
    }
}
