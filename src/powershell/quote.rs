//! Outside values as PowerShell single-quoted literals — the only way a portal value enters a
//! script.
//!
//! Inside `'…'` nothing is special except the five single-quote characters; a pair of them
//! stands for one. So quoting doubles **every** single-quote-class character (what PowerShell's
//! own `CodeGeneration.EscapeSingleQuotedStringContent` does) and wraps the result in ASCII
//! quotes. NUL is refused: native and WMI layers truncate at it, so the value the cmdlet sees
//! would not be the value the portal sent.
//!
//! [`decode_single_quoted`] is the inverse, by PowerShell's rules; the script checker and the
//! site simulator read literals with it.

use super::chars::is_single_quote;
use thiserror::Error;

/// Why a value cannot become a literal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    #[error(
        "contains a NUL character at position {position}, which PowerShell's native layers would truncate"
    )]
    Nul { position: usize },
}

/// `value` as a single-quoted PowerShell literal, `'` included.
pub fn single_quoted(value: &str) -> Result<String, QuoteError> {
    if let Some(position) = value.chars().position(|c| c == '\0') {
        return Err(QuoteError::Nul { position });
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if is_single_quote(c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

/// Reads the single-quoted literal at the start of `text` by PowerShell's rules.
///
/// Returns the decoded value and the length in bytes of the literal (both quotes included), or
/// `None` when `text` does not start with a single quote or the literal is not terminated. The
/// literal may open with any of the five single quotes and ends at the first single-quote-class
/// character that is not followed by another one.
pub fn decode_single_quoted(text: &str) -> Option<(String, usize)> {
    let mut chars = text.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if is_single_quote(c) => {}
        _ => return None,
    }
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if is_single_quote(c) {
            match chars.peek() {
                Some(&(_, next)) if is_single_quote(next) => {
                    // A doubled quote stands for the second character of the pair.
                    chars.next();
                    value.push(next);
                }
                _ => return Some((value, i + c.len_utf8())),
            }
        } else {
            value.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_every_single_quote_class_character() {
        assert_eq!(single_quoted("it's").as_deref(), Ok("'it''s'"));
        assert_eq!(
            single_quoted("a’; calc; ‘b").as_deref(),
            Ok("'a’’; calc; ‘‘b'")
        );
        assert_eq!(single_quoted("‚‛").as_deref(), Ok("'‚‚‛‛'"));
        assert_eq!(
            single_quoted("$(calc) `n \"x\" “y”").as_deref(),
            Ok("'$(calc) `n \"x\" “y”'")
        );
        assert_eq!(single_quoted("").as_deref(), Ok("''"));
    }

    #[test]
    fn refuses_nul() {
        assert_eq!(single_quoted("a\0b"), Err(QuoteError::Nul { position: 1 }));
    }

    #[test]
    fn decoding_follows_powershell() {
        // An unpaired typographic quote ends the literal: what follows would be code.
        assert_eq!(
            decode_single_quoted("'a’; calc; ‘b'"),
            Some(("a".to_string(), 5))
        );
        assert_eq!(decode_single_quoted("‘x’ rest"), Some(("x".to_string(), 7)));
        assert_eq!(
            decode_single_quoted("'it''s'"),
            Some(("it's".to_string(), 7))
        );
        assert_eq!(decode_single_quoted("'open"), None);
        assert_eq!(decode_single_quoted("x'"), None);
    }

    /// Characters that matter to PowerShell's lexer, mixed with ordinary and exotic ones.
    fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                '\'', '‘', '’', '‚', '‛', '"', '“', '”', '„', '-', '–', '—', '―', '$', '(', ')',
                '`', ';', '|', '&', '#', '<', '>', '@', '{', '}', '[', ']', '*', '?', '\n', '\r',
                '\t', '\u{A0}', '\u{85}', '\u{2028}', '\u{202E}', '\u{2066}', 'Ò', '✓', '😀', ' ',
                'a', 'Z', '0',
            ]),
            any::<char>().prop_filter("no NUL", |c| *c != '\0'),
        ]
    }

    proptest! {
        #[test]
        fn quoting_round_trips_by_powershell_rules(
            value in prop::collection::vec(hostile_char(), 0..40).prop_map(String::from_iter),
            tail in "[ ;),\n][ -~]{0,8}",
        ) {
            let literal = single_quoted(&value).expect("no NUL");
            // Whatever follows the literal in a script (a delimiter: a literal directly followed
            // by a quote would merge with it, so the generator never writes one), PowerShell
            // reads exactly the value back and the literal ends exactly where the quoter ended it.
            let script = format!("{literal}{tail}");
            let (decoded, len) = decode_single_quoted(&script).expect("terminated");
            prop_assert_eq!(decoded, value);
            prop_assert_eq!(len, literal.len());
        }
    }
}
