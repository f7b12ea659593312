//! Which zip entry names may become files in the share.
//!
//! An entry is refused — never "sanitised" into something else — when its name could escape the
//! target or mean something special on Windows: `..` segments, absolute paths (`/x`, `\x`), drive
//! letters and alternate data streams (any `:`), UNC prefixes, NUL and control characters,
//! reserved device names (`CON`, `NUL`, `COM1`, …, with or without extension) and segments ending
//! in a dot or a space (Windows silently strips them, so two names could become one). Both `/` and
//! `\` separate segments (Windows tools write either).

/// The relative path segments of `name`, or why it is refused. A trailing separator marks a
/// directory entry.
pub fn segments(name: &str) -> Result<Vec<&str>, String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with(['/', '\\']) {
        return Err("absolute path".into());
    }
    if name.contains(':') {
        return Err("contains ':' (a drive letter or an alternate data stream)".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character U+{:04X}", c as u32));
    }
    let trimmed = name.trim_end_matches(['/', '\\']);
    let mut out = Vec::new();
    for segment in trimmed.split(['/', '\\']) {
        match segment {
            "" => return Err("empty path segment".into()),
            "." | ".." => return Err(format!("'{segment}' segment")),
            _ => {}
        }
        if segment.ends_with(['.', ' ']) {
            return Err(format!("segment {segment:?} ends with a dot or a space"));
        }
        if segment.contains(['<', '>', '"', '|', '?', '*']) {
            return Err(format!(
                "segment {segment:?} contains a character Windows file names do not allow"
            ));
        }
        let stem = segment
            .split('.')
            .next()
            .unwrap_or(segment)
            .to_ascii_uppercase();
        let reserved = matches!(
            stem.as_str(),
            "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
        ) || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
        if reserved {
            return Err(format!(
                "segment {segment:?} is a reserved Windows device name"
            ));
        }
        out.push(segment);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn ordinary_names_pass() {
        assert_eq!(
            segments("Deploy-Application.exe"),
            Ok(vec!["Deploy-Application.exe"])
        );
        assert_eq!(
            segments("Files/FileZilla 3.46.3.msi"),
            Ok(vec!["Files", "FileZilla 3.46.3.msi"])
        );
        assert_eq!(
            segments("AppDeployToolkit\\Logo.png"),
            Ok(vec!["AppDeployToolkit", "Logo.png"])
        );
        assert_eq!(segments("Files/"), Ok(vec!["Files"]));
        assert_eq!(segments("a..b/.hidden"), Ok(vec!["a..b", ".hidden"]));
        assert_eq!(segments("CONFIG.xml"), Ok(vec!["CONFIG.xml"]));
    }

    #[test]
    fn escaping_or_special_names_are_refused() {
        for bad in [
            "",
            "../evil.exe",
            "a/../../evil",
            "/etc/passwd",
            "\\\\server\\share\\x",
            "\\x",
            "C:\\Windows\\x",
            "c:x",
            "file.txt:stream",
            "a//b",
            "a/./b",
            "nul",
            "Files/CON.txt",
            "com1",
            "lpt9.log",
            "trailing. ",
            "dot.",
            "a\u{0}b",
            "line\nbreak",
            "what?.txt",
        ] {
            assert!(segments(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
