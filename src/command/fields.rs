//! Field validators: each takes the field's protocol path and value and returns the checked value
//! or a [`Rejection`] naming the field and saying why.
//!
//! Lengths are counted the way ConfigMgr counts them — in UTF-16 code units, as .NET strings
//! are — so an emoji counts two. Text fields refuse NUL and control characters (multi-line fields
//! accept TAB, CR and LF); names also refuse leading or trailing white space, which ConfigMgr
//! trims: `'FileZilla '` would be created as `FileZilla` and never be found again by its guard.

use super::Rejection;
use crate::powershell::chars::is_whitespace;

pub(crate) fn reject(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection {
        field: field.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn required<T>(field: &str, value: Option<T>) -> Result<T, Rejection> {
    value.ok_or_else(|| reject(field, "is required"))
}

pub(crate) fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn check_length(field: &str, value: &str, max_utf16: usize) -> Result<(), Rejection> {
    let len = utf16_len(value);
    if len > max_utf16 {
        return Err(reject(
            field,
            format!("is {len} characters long; the limit is {max_utf16}"),
        ));
    }
    Ok(())
}

fn check_controls(field: &str, value: &str, allow_line_breaks: bool) -> Result<(), Rejection> {
    for (position, c) in value.chars().enumerate() {
        let allowed = allow_line_breaks && matches!(c, '\t' | '\r' | '\n');
        if c.is_control() && !allowed {
            return Err(reject(
                field,
                format!(
                    "contains the control character U+{:04X} at position {position}",
                    c as u32
                ),
            ));
        }
    }
    Ok(())
}

/// A one-line text: non-empty, at most `max_utf16` long, no control characters, no leading or
/// trailing white space.
pub(crate) fn name(field: &str, value: String, max_utf16: usize) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(reject(field, "must not be empty"));
    }
    check_controls(field, &value, false)?;
    check_length(field, &value, max_utf16)?;
    let first = value.chars().next().is_some_and(is_whitespace);
    let last = value.chars().next_back().is_some_and(is_whitespace);
    if first || last {
        return Err(reject(
            field,
            "must not begin or end with white space (ConfigMgr would trim it)",
        ));
    }
    Ok(value)
}

/// An optional one-line text; empty counts as absent.
pub(crate) fn optional_name(
    field: &str,
    value: Option<String>,
    max_utf16: usize,
) -> Result<Option<String>, Rejection> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| name(field, v, max_utf16))
        .transpose()
}

/// A text that may span lines: at most `max_utf16` long, no control characters but TAB/CR/LF.
pub(crate) fn text(field: &str, value: String, max_utf16: usize) -> Result<String, Rejection> {
    check_controls(field, &value, true)?;
    check_length(field, &value, max_utf16)?;
    Ok(value)
}

/// An optional multi-line text; empty counts as absent.
pub(crate) fn optional_text(
    field: &str,
    value: Option<String>,
    max_utf16: usize,
) -> Result<Option<String>, Rejection> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| text(field, v, max_utf16))
        .transpose()
}

/// One of a fixed set of protocol words (exact, lower case).
pub(crate) fn one_of<T: Copy>(
    field: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, Rejection> {
    choices
        .iter()
        .find(|(word, _)| *word == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
            reject(
                field,
                format!("must be one of {}; got {value:?}", words.join(", ")),
            )
        })
}

/// An identifier that travels in URLs: 1–128 characters of `A-Z a-z 0-9 . _ : -`.
pub(crate) fn identifier(field: &str, value: String) -> Result<String, Rejection> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(value)
    } else {
        Err(reject(
            field,
            format!(
                "must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'; got {value:?}"
            ),
        ))
    }
}

/// A UNC path `\\server\share[\folder…]`: backslashes only, no empty, `.` or `..` segments.
pub(crate) fn unc_path(field: &str, value: String) -> Result<String, Rejection> {
    let value = name(field, value, 1024)?;
    let Some(rest) = value.strip_prefix("\\\\") else {
        return Err(reject(
            field,
            format!("must be a UNC path (\\\\server\\share\\…); got {value:?}"),
        ));
    };
    let rest = rest.strip_suffix('\\').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('\\').collect();
    if segments.len() < 2 {
        return Err(reject(
            field,
            format!("must name a server and a share (\\\\server\\share\\…); got {value:?}"),
        ));
    }
    for segment in &segments {
        if segment.is_empty() || *segment == "." || *segment == ".." {
            return Err(reject(
                field,
                format!("must not contain empty, '.' or '..' segments; got {value:?}"),
            ));
        }
        if segment.contains(['/', ':', '*', '?', '"', '<', '>', '|']) {
            return Err(reject(
                field,
                format!("segment {segment:?} contains a character Windows paths do not allow"),
            ));
        }
    }
    Ok(value)
}

/// An absolute Windows path: `C:\…` or a UNC path.
pub(crate) fn windows_path(field: &str, value: String) -> Result<String, Rejection> {
    if value.starts_with("\\\\") {
        return unc_path(field, value);
    }
    let value = name(field, value, 260)?;
    let b = value.as_bytes();
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
    if !drive {
        return Err(reject(
            field,
            format!("must be an absolute Windows path such as C:\\…; got {value:?}"),
        ));
    }
    if value[2..].split('\\').any(|s| s == "..")
        || value[2..].contains(['/', ':', '*', '?', '"', '<', '>', '|'])
    {
        return Err(reject(
            field,
            format!("is not a plain absolute path; got {value:?}"),
        ));
    }
    Ok(value)
}

/// Whether the UNC path `inner` is `outer` or lies beneath it (case-insensitive, as Windows).
pub(crate) fn unc_within(inner: &str, outer: &str) -> bool {
    let norm = |p: &str| p.trim_end_matches('\\').to_lowercase();
    let (inner, outer) = (norm(inner), norm(outer));
    inner == outer || inner.starts_with(&format!("{outer}\\"))
}

/// 64 hexadecimal digits, returned lower-case.
pub(crate) fn sha256_hex(field: &str, value: String) -> Result<String, Rejection> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(reject(
            field,
            format!("must be 64 hexadecimal digits (a SHA-256); got {value:?}"),
        ))
    }
}

/// A number within `range`.
pub(crate) fn within(
    field: &str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, Rejection> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(reject(
            field,
            format!(
                "must be between {} and {}; got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("f", "FileZilla".into(), 256).is_ok());
        assert!(name("f", "".into(), 256).is_err());
        assert!(name("f", "a\nb".into(), 256).is_err());
        assert!(name("f", " a".into(), 256).is_err());
        assert!(name("f", "a\u{A0}".into(), 256).is_err());
        assert!(name("f", "😀".repeat(128), 256).is_ok());
        assert_eq!(
            name("f", "😀".repeat(129), 256).map_err(|r| r.to_string()),
            Err("f: is 258 characters long; the limit is 256".to_string())
        );
        assert!(text("f", "a\r\nb\tc".into(), 10).is_ok());
        assert!(text("f", "a\0b".into(), 10).is_err());
        assert!(text("f", "a\u{1b}b".into(), 10).is_err());
    }

    #[test]
    fn paths() {
        assert!(unc_path("p", "\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming\\TimKosse_FileZilla_3.46.3_English(United States)".into()).is_ok());
        assert!(unc_path("p", "\\\\srv\\share\\".into()).is_ok());
        for bad in [
            "C:\\x",
            "\\\\srv",
            "\\\\srv\\\\x",
            "\\\\srv\\s\\..\\x",
            "\\\\srv\\s\\a/b",
            "//srv/s",
            "\\\\srv\\s\\a:b",
        ] {
            assert!(unc_path("p", bad.into()).is_err(), "{bad}");
        }
        assert!(
            windows_path(
                "p",
                "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin"
                    .into()
            )
            .is_ok()
        );
        assert!(windows_path("p", "bin\\x".into()).is_err());
        assert!(windows_path("p", "C:\\a\\..\\b".into()).is_err());
        assert!(unc_within("\\\\S\\share\\a\\B", "\\\\s\\SHARE\\a\\"));
        assert!(!unc_within("\\\\s\\share\\ab", "\\\\s\\share\\a"));
    }

    #[test]
    fn identifiers_and_hashes() {
        assert!(identifier("id", "8d3f8f7e-2b1c-4c1e-9a57-3e0f5d7b9a10".into()).is_ok());
        assert!(identifier("id", "a/b".into()).is_err());
        assert!(identifier("id", "".into()).is_err());
        assert_eq!(sha256_hex("h", "AB".repeat(32)), Ok("ab".repeat(32)));
        assert!(sha256_hex("h", "g".repeat(64)).is_err());
    }
}
