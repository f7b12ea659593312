//! PowerShell's wildcard patterns (`WildcardPattern`): `*`, `?`, `[abc]`, `[a-z]`, and the
//! backtick escaping the next character; case-insensitive unless asked. ConfigMgr's `-Name`
//! parameters use them unless `-DisableWildcardHandling` is given.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    Many,
    Set(Vec<(char, char)>),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
    case_sensitive: bool,
}

fn fold(c: char, case_sensitive: bool) -> char {
    if case_sensitive {
        c
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

impl Pattern {
    /// Compiles `pattern`; an unclosed `[` is an error with PowerShell's message.
    pub fn new(pattern: &str, case_sensitive: bool) -> Result<Pattern, String> {
        let invalid =
            || format!("The specified wildcard character pattern is not valid: {pattern}");
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '`' => match chars.next() {
                    Some(next) => tokens.push(Token::Literal(fold(next, case_sensitive))),
                    None => tokens.push(Token::Literal('`')),
                },
                '*' => tokens.push(Token::Many),
                '?' => tokens.push(Token::Any),
                '[' => {
                    let mut set = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        let c = match c {
                            ']' => {
                                closed = true;
                                break;
                            }
                            '`' => chars.next().ok_or_else(invalid)?,
                            c => c,
                        };
                        if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.peek().copied() {
                                Some(']') | None => {
                                    set.push((c, c));
                                    set.push(('-', '-'));
                                }
                                Some(end) => {
                                    chars.next();
                                    set.push((c, end));
                                }
                            }
                        } else {
                            set.push((c, c));
                        }
                    }
                    if !closed {
                        return Err(invalid());
                    }
                    tokens.push(Token::Set(
                        set.into_iter()
                            .map(|(a, b)| (fold(a, case_sensitive), fold(b, case_sensitive)))
                            .collect(),
                    ));
                }
                c => tokens.push(Token::Literal(fold(c, case_sensitive))),
            }
        }
        Ok(Pattern {
            tokens,
            case_sensitive,
        })
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().map(|c| fold(c, self.case_sensitive)).collect();
        // Classic two-pointer glob matching with backtracking on the last `*`.
        let (mut t, mut p) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            let step = match self.tokens.get(p) {
                Some(Token::Literal(c)) => *c == text[t],
                Some(Token::Any) => true,
                Some(Token::Set(ranges)) => {
                    ranges.iter().any(|(a, b)| *a <= text[t] && text[t] <= *b)
                }
                Some(Token::Many) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                None => false,
            };
            if step {
                t += 1;
                p += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Many)
    }
}

/// Whether `text` contains wildcard characters (unescaped `*`, `?`, `[`).
pub fn has_wildcards(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// How a `-Name`-style parameter matches: literally (`-DisableWildcardHandling`, or no
/// wildcard characters) or as a pattern. Both ignore case, as ConfigMgr's lookups do.
#[derive(Debug, Clone)]
pub enum NameMatch {
    Literal(String),
    Pattern(Pattern),
}

impl NameMatch {
    pub fn new(text: &str, disable_wildcards: bool) -> Result<NameMatch, String> {
        if disable_wildcards || !has_wildcards(text) {
            Ok(NameMatch::Literal(text.to_lowercase()))
        } else {
            Pattern::new(text, false).map(NameMatch::Pattern)
        }
    }

    pub fn matches(&self, candidate: &str) -> bool {
        match self {
            NameMatch::Literal(l) => candidate.to_lowercase() == *l,
            NameMatch::Pattern(p) => p.matches(candidate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern, false).expect("valid").matches(text)
    }

    #[test]
    fn patterns_match_like_powershell() {
        assert!(m("File*", "FileZilla"));
        assert!(m("*zilla", "FileZilla"));
        assert!(m("f?lez*a", "FileZilla"));
        assert!(!m("File", "FileZilla"));
        assert!(m("App[1]", "App1"));
        assert!(!m("App[1]", "App[1]"));
        assert!(m("App`[1`]", "App[1]"));
        assert!(m("[a-c]x", "Bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
        assert_eq!(
            Pattern::new("App[1", false),
            Err("The specified wildcard character pattern is not valid: App[1".into())
        );
    }

    #[test]
    fn names_match_literally_without_wildcards_or_when_disabled() {
        let literal = NameMatch::new("App[1]", true).expect("literal");
        assert!(literal.matches("app[1]"));
        assert!(!literal.matches("App1"));
        let pattern = NameMatch::new("App[1]", false).expect("pattern");
        assert!(pattern.matches("App1"));
        assert!(!pattern.matches("App[1]"));
        assert!(NameMatch::new("App[1", false).is_err());
        assert!(NameMatch::new("App[1", true).is_ok());
        assert!(!has_wildcards("Tim (x) `*"));
    }
}
