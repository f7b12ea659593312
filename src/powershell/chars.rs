//! PowerShell's character classes, as its tokenizer defines them (`CharTraits.cs`), not only ASCII.
//!
//! Quotes, dashes and whitespace each have Unicode members that PowerShell treats exactly like
//! their ASCII forms. Anything that quotes for PowerShell or checks PowerShell text must use
//! these, or a value like `a’; calc; ‘b` escapes its literal.

/// U+0027 `'` and its four typographic twins ‘ ’ ‚ ‛.
pub const SINGLE_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// U+0022 `"` and “ ” „ (not U+201F, not fullwidth).
pub const DOUBLE_QUOTES: [char; 4] = ['"', '\u{201C}', '\u{201D}', '\u{201E}'];

/// U+002D `-` and – — ― (parameter prefixes and operators).
pub const DASHES: [char; 4] = ['-', '\u{2013}', '\u{2014}', '\u{2015}'];

pub fn is_single_quote(c: char) -> bool {
    SINGLE_QUOTES.contains(&c)
}

pub fn is_double_quote(c: char) -> bool {
    DOUBLE_QUOTES.contains(&c)
}

pub fn is_dash(c: char) -> bool {
    DASHES.contains(&c)
}

/// PowerShell's whitespace: space, TAB, VT, FF, NBSP, NEL and every Unicode space separator
/// (Zs), line separator (Zl) and paragraph separator (Zp). CR and LF are newlines, not whitespace.
pub fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\u{A0}' | '\u{85}') || is_unicode_separator(c)
}

/// Unicode general categories Zs, Zl, Zp (Unicode 15).
fn is_unicode_separator(c: char) -> bool {
    matches!(
        c,
        '\u{20}' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// CR or LF: the only newline characters PowerShell knows.
pub fn is_newline(c: char) -> bool {
    matches!(c, '\r' | '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_reference() {
        for c in ['\'', '‘', '’', '‚', '‛'] {
            assert!(is_single_quote(c), "{c:?}");
        }
        assert!(!is_single_quote('\u{201F}') && !is_single_quote('＇'));
        for c in ['"', '“', '”', '„'] {
            assert!(is_double_quote(c), "{c:?}");
        }
        assert!(!is_double_quote('\u{201F}') && !is_double_quote('＂'));
        for c in ['-', '–', '—', '―'] {
            assert!(is_dash(c), "{c:?}");
        }
        assert!(!is_dash('\u{2212}'));
        for c in [
            ' ', '\t', '\u{0B}', '\u{0C}', '\u{A0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{3000}',
            '\u{2003}',
        ] {
            assert!(is_whitespace(c), "{c:?}");
        }
        assert!(!is_whitespace('\n') && !is_whitespace('\r') && !is_whitespace('\u{200B}'));
    }
}
