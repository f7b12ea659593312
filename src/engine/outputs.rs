//! Reading earlier steps' JSON outputs back, for planning later phases and composing results.
//!
//! PowerShell's `ConvertTo-Json` turns a one-element array into the element itself in some
//! shapes, so every list is read as "an array, or one object, or nothing".

use serde_json::{Map, Value};

/// The output of the succeeded step named `name`, parsed.
pub fn step_output(job: &replay::Job, name: &str) -> Option<Map<String, Value>> {
    job.steps()
        .iter()
        .find(|s| s.step.name == name)
        .and_then(|s| s.output())
        .and_then(parse_object)
}

pub fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `object[key]` as a list of objects.
pub fn list<'a>(object: &'a Map<String, Value>, key: &str) -> Vec<&'a Map<String, Value>> {
    match object.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        Some(Value::Object(one)) => vec![one],
        _ => Vec::new(),
    }
}

/// A property as text, whatever JSON type PowerShell chose for it.
pub fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A property as an unsigned integer (numbers or numeric strings).
pub fn number(object: &Map<String, Value>, key: &str) -> Option<u64> {
    match object.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_scalars_in_any_shape() {
        let o =
            parse_object(r#"{"a":[{"x":1},{"x":"2"}],"b":{"x":3},"n":"16777218","s":16777218}"#)
                .expect("object");
        assert_eq!(list(&o, "a").len(), 2);
        assert_eq!(list(&o, "b").len(), 1);
        assert!(list(&o, "missing").is_empty());
        assert_eq!(number(&o, "n"), Some(16_777_218));
        assert_eq!(text(&o, "s").as_deref(), Some("16777218"));
        assert_eq!(parse_object("[1]"), None);
    }
}
