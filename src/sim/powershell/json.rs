//! `ConvertTo-Json` as Windows PowerShell 5.1 writes it (JavaScriptSerializer rules): `<`, `>`,
//! `&` and `'` escaped as `\u003c`…, control characters escaped, DateTime as `\/Date(ms)\/`,
//! objects as their properties, and anything deeper than `-Depth` flattened to its `[string]`
//! form (5.1's silent truncation). With `-Compress`, one line.

use super::value::{ObjectKind, Value};
use std::fmt::Write as _;

fn escape(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(d: f64) -> String {
    if d.is_finite() {
        if d.fract() == 0.0 && d.abs() < 1e15 {
            format!("{}", d as i64)
        } else {
            format!("{d}")
        }
    } else {
        "null".into()
    }
}

struct Writer {
    compress: bool,
    max_depth: usize,
}

impl Writer {
    fn newline(&self, out: &mut String, indent: usize) {
        if !self.compress {
            out.push_str("\r\n");
            out.push_str(&"    ".repeat(indent));
        }
    }

    fn entries(&self, out: &mut String, entries: &[(String, Value)], depth: usize) {
        out.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.newline(out, depth + 1);
            escape(k, out);
            out.push(':');
            if !self.compress {
                out.push_str("  ");
            }
            self.value(out, v, depth + 1);
        }
        if !entries.is_empty() {
            self.newline(out, depth);
        }
        out.push('}');
    }

    fn value(&self, out: &mut String, value: &Value, depth: usize) {
        let structured = matches!(
            value,
            Value::Array(_) | Value::Hashtable(_) | Value::Object(_)
        );
        if structured && depth > self.max_depth {
            escape(&value.to_text(), out);
            return;
        }
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Double(d) => out.push_str(&number(*d)),
            Value::Str(s) => escape(s, out),
            Value::DateTime(t) => {
                let _ = write!(out, "\"\\/Date({})\\/\"", t.unix_seconds() * 1000);
            }
            Value::ScriptBlock(b) => escape(&b.text, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.newline(out, depth + 1);
                    self.value(out, item, depth + 1);
                }
                if !items.is_empty() {
                    self.newline(out, depth);
                }
                out.push(']');
            }
            Value::Hashtable(entries) => self.entries(out, entries, depth),
            Value::Object(o) => match o.kind {
                ObjectKind::InvariantCulture => escape("", out),
                _ => self.entries(out, &o.props, depth),
            },
        }
    }
}

/// The JSON text of `value`.
pub fn to_json(value: &Value, depth: usize, compress: bool) -> Result<String, String> {
    let writer = Writer {
        compress,
        max_depth: depth,
    };
    let mut out = String::new();
    writer.value(&mut out, value, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_json_escapes_like_javascriptserializer() {
        let v = Value::Hashtable(vec![
            ("ok".into(), Value::Bool(true)),
            ("ci_id".into(), Value::Int(16777217)),
            ("name".into(), Value::str("a<b>&'c\"\\\n\u{1}é")),
            ("none".into(), Value::Null),
            ("list".into(), Value::Array(vec![])),
        ]);
        let text = to_json(&v, 10, true).expect("json");
        assert_eq!(
            text,
            "{\"ok\":true,\"ci_id\":16777217,\"name\":\"a\\u003cb\\u003e\\u0026\\u0027c\\\"\\\\\\n\\u0001é\",\"none\":null,\"list\":[]}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["name"], "a<b>&'c\"\\\n\u{1}é");
    }

    #[test]
    fn depth_flattens_and_pretty_printing_is_valid_json() {
        let inner = Value::Hashtable(vec![("x".into(), Value::Int(1))]);
        let v = Value::Hashtable(vec![(
            "a".into(),
            Value::Hashtable(vec![("b".into(), inner)]),
        )]);
        assert_eq!(
            to_json(&v, 1, true).expect("json"),
            "{\"a\":{\"b\":\"System.Collections.Hashtable\"}}"
        );
        let pretty = to_json(&v, 10, false).expect("json");
        assert!(pretty.contains("\r\n"));
        serde_json::from_str::<serde_json::Value>(&pretty).expect("valid");
    }
}
