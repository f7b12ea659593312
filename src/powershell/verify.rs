//! The sound checker every generated PowerShell script passes before it may run.
//!
//! A generated script embeds outside (portal) values only as single-quoted literals. The checker
//! proves that, when real PowerShell reads the script, every such value stays data, and it
//! reports what the script does: the commands it runs, the values it binds ([`Input`]s) and the
//! fixed strings it uses ([`Policy::constants`]).
//!
//! # Why tree-sitter alone is not enough
//!
//! `tree-sitter-powershell` knows only the ASCII quote, dash and whitespace. PowerShell also
//! treats `‘ ’ ‚ ‛` as single quotes, `“ ” „` as double quotes, `– — ―` as dashes and NBSP/NEL/
//! U+2028… as whitespace. So tree-sitter reads `'a’; calc; ‘b'` as one harmless string, where
//! PowerShell reads the literal `'a’`, the code `; calc; ` and the literal `‘b'`.
//!
//! # The soundness argument
//!
//! The checker reads the text twice, independently, and accepts only if both readings agree and
//! every place where PowerShell and tree-sitter *could* differ is ruled out:
//!
//! 1. **Encoding.** The bytes start with the UTF-8 BOM and are valid UTF-8, so Windows PowerShell
//!    5.1 decodes the same characters we check (without a BOM it uses CP1252, where bytes inside
//!    UTF-8 characters become quotes and dashes).
//! 2. **PowerShell's reading** (`lex`): a left-to-right scan by PowerShell's rules splits the
//!    text into single-quoted literals (opened by any of the five single quotes, read by
//!    [`decode_single_quoted`]), comments (`#` to the end of the line, `<#` to the first `#>`)
//!    and code. Outside literals, every character must be printable ASCII, TAB, LF or CR+LF —
//!    so no Unicode quote, dash, whitespace, line separator or bidi control can exist where
//!    PowerShell would give it meaning. Also refused outside literals, because tree-sitter reads
//!    them differently from PowerShell even in ASCII or because they open a second quoting
//!    language: a lone CR (a newline to PowerShell, mere whitespace to tree-sitter), the backtick
//!    (escapes, line continuation), `"` and `@'`/`@"` (expandable strings, here-strings), `&`,
//!    and a `#`/`<#` glued to preceding code (PowerShell makes it part of a bare word). NUL is
//!    refused everywhere.
//! 3. **tree-sitter's reading** must parse without `ERROR` or `MISSING` nodes.
//! 4. **Agreement.** The literals of (2) must be exactly tree-sitter's `verbatim_string_characters`
//!    tokens — same byte spans, one to one — and the comments of (2) exactly tree-sitter's
//!    `comment` tokens. Every literal must also stand alone (a delimiter on each side), so it is a
//!    token of its own to PowerShell rather than part of a bare word.
//!
//! Given (2)–(4), the text outside literals is plain ASCII with the troublesome characters
//! removed, and both readers cut the literals and comments at the same places. By induction
//! along the text, PowerShell reaches each literal's opening `'` in the same state as
//! tree-sitter, reads it by the rules of (2) — which end it exactly where tree-sitter ends it —
//! and continues after it on ASCII again. So PowerShell's token structure is tree-sitter's tree,
//! and a literal's value is its PowerShell decoding (returned in [`Input::value`]; a pair of any
//! two single quotes stands for one, so `’’` reads as `’` to PowerShell — tree-sitter leaves the
//! content undecoded, which is why the value is always taken from PowerShell's reading).
//! The remaining trust is that tree-sitter-powershell 0.26.6 tokenizes this restricted ASCII
//! subset as PowerShell does; the restrictions above remove the ASCII corners where it is known
//! not to (backtick escapes in block comments, lone CR, `#` inside bare words, stop-parsing).
//!
//! On that tree the checker then enforces the policy: no expandable strings or here-strings, no
//! `&`/`.` invocation, every command a plain name from [`Policy::commands`], every parameter
//! `-Letters`, and every literal either an input (`$Name = '…'` at top level, bound once) or one
//! of [`Policy::constants`]. So no outside value can become code, a command name or a parameter.
//! Every `exit` must be the only statement of `if ($PSCommandPath) { … }`, so a script pasted
//! into an interactive console (where `$PSCommandPath` is empty) never closes it.
//!
//! Beyond soundness, a small deny-list catches the usual dynamic-code doors written by the
//! generator itself (`Invoke-Expression`/`iex`, `[scriptblock]`, `[powershell]`,
//! `$ExecutionContext`, `.Invoke(`, `.InvokeScript(`, `.AddScript(`…). That list is best effort,
//! not part of the argument: the fixed code is the generator's responsibility; this module
//! guarantees that outside values never become part of it.

use super::chars::{is_dash, is_double_quote, is_newline, is_single_quote, is_whitespace};
use super::quote::decode_single_quoted;
use std::collections::HashMap;
use std::ops::Range;
use thiserror::Error;
use tree_sitter::{Node, Parser, Tree};

/// What a script may use besides its inputs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy<'a> {
    /// Command names the script may run (matched case-insensitively, exactly).
    pub commands: &'a [&'a str],
    /// Values single-quoted literals may have when they are not inputs (matched exactly).
    pub constants: &'a [&'a str],
}

/// An outside value bound at top level as `$variable = '…'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The variable name, without `$`, as written.
    pub variable: String,
    /// The value as PowerShell reads the literal.
    pub value: String,
    /// 1-based line of the assignment.
    pub line: usize,
}

/// What a verified script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The inputs, in order.
    pub inputs: Vec<Input>,
    /// The constants the other literals decode to, in order of first appearance.
    pub constants_used: Vec<String>,
    /// The commands run, in order of first appearance (case-insensitively), as first written.
    pub commands: Vec<String>,
}

/// Why a script may not run. Lines and columns are 1-based (columns count characters, the BOM
/// excluded); snippets show the text at the place, with everything but printable ASCII escaped.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    #[error(
        "line {line}, column {column}: the script does not start with the UTF-8 byte order mark (EF BB BF); Windows PowerShell 5.1 would read it as CP1252, where bytes inside UTF-8 characters become quotes and dashes (starts with `{snippet}`)"
    )]
    MissingBom {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error("line {line}, column {column}: the script is not valid UTF-8 (bytes `{snippet}`)")]
    InvalidUtf8 {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error("tree-sitter-powershell is unavailable: {reason}")]
    ParserUnavailable { reason: String },
    #[error(
        "line {line}, column {column}: tree-sitter-powershell cannot parse the script ({problem}) at `{snippet}`"
    )]
    Syntax {
        line: usize,
        column: usize,
        problem: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: this single-quoted literal is never closed (by PowerShell's rules): `{snippet}`"
    )]
    UnterminatedLiteral {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: this block comment is never closed by `#>`: `{snippet}`"
    )]
    UnterminatedComment {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: PowerShell and tree-sitter read the literals differently: {detail}: `{snippet}`"
    )]
    LiteralMismatch {
        line: usize,
        column: usize,
        detail: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: PowerShell and tree-sitter read the comments differently: {detail}: `{snippet}`"
    )]
    CommentMismatch {
        line: usize,
        column: usize,
        detail: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: a single-quoted literal must stand alone ({detail}; allowed before it: whitespace ( , = [ {{ ; and after it: whitespace ) , ; ] }}): `{snippet}`"
    )]
    LiteralNotDelimited {
        line: usize,
        column: usize,
        detail: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: non-ASCII character {character} ({class}) outside a single-quoted literal: `{snippet}`"
    )]
    NonAsciiOutsideLiteral {
        line: usize,
        column: usize,
        character: String,
        class: &'static str,
        snippet: String,
    },
    #[error("line {line}, column {column}: control character {character} ({rule}): `{snippet}`")]
    ControlCharacter {
        line: usize,
        column: usize,
        character: String,
        rule: &'static str,
        snippet: String,
    },
    #[error("line {line}, column {column}: {construct} is not allowed: `{snippet}`")]
    ForbiddenSyntax {
        line: usize,
        column: usize,
        construct: &'static str,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: double-quoted (expandable) strings are not allowed; outside values go in single-quoted literals: `{snippet}`"
    )]
    ExpandableString {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error("line {line}, column {column}: here-strings are not allowed: `{snippet}`")]
    HereString {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: dynamic invocation ({form}) is not allowed: `{snippet}`"
    )]
    DynamicInvocation {
        line: usize,
        column: usize,
        form: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: a command must be named by a plain name (ASCII letters, digits, `-`, `_`): `{snippet}`"
    )]
    CommandNameNotPlain {
        line: usize,
        column: usize,
        snippet: String,
    },
    #[error("line {line}, column {column}: command `{name}` is not in the policy: `{snippet}`")]
    CommandNotAllowed {
        line: usize,
        column: usize,
        name: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: parameter `{parameter}` is not an ASCII `-` followed by ASCII letters and digits: `{snippet}`"
    )]
    InvalidParameter {
        line: usize,
        column: usize,
        parameter: String,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: input `${variable}` is bound again (first bound on line {first_line}): `{snippet}`"
    )]
    DuplicateInput {
        line: usize,
        column: usize,
        variable: String,
        first_line: usize,
        snippet: String,
    },
    #[error(
        "line {line}, column {column}: literal `{value}` is neither an input (`$Name = '…'` at top level) nor a policy constant: `{snippet}`"
    )]
    UnexpectedLiteral {
        line: usize,
        column: usize,
        value: String,
        snippet: String,
    },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Commands that run text as code; refused even if a policy lists them.
const DYNAMIC_COMMANDS: &[&str] = &["Invoke-Expression", "iex"];
/// Members that compile or run text or script blocks (best effort, see the module doc).
const DYNAMIC_MEMBERS: &[&str] = &[
    "Invoke",
    "InvokeReturnAsIs",
    "InvokeWithContext",
    "InvokeScript",
    "NewScriptBlock",
    "ExpandString",
    "AddScript",
    "AddCommand",
    "BeginInvoke",
];
/// Types whose use means dynamic code (last segment of the type name).
const DYNAMIC_TYPES: &[&str] = &["ScriptBlock", "PowerShell", "RunspaceFactory"];

/// Automatic and preference variables (besides every `*Preference`): PowerShell reads them
/// itself, so a literal assigned to one is a setting that must be a constant, never an input.
const POWERSHELL_VARIABLES: &[&str] = &[
    "_",
    "args",
    "ConsoleFileName",
    "Error",
    "ErrorView",
    "Event",
    "EventArgs",
    "EventSubscriber",
    "ExecutionContext",
    "false",
    "foreach",
    "FormatEnumerationLimit",
    "HOME",
    "Host",
    "input",
    "LASTEXITCODE",
    "LogCommandHealthEvent",
    "LogCommandLifecycleEvent",
    "LogEngineHealthEvent",
    "LogEngineLifecycleEvent",
    "LogProviderHealthEvent",
    "LogProviderLifecycleEvent",
    "Matches",
    "MaximumAliasCount",
    "MaximumDriveCount",
    "MaximumErrorCount",
    "MaximumFunctionCount",
    "MaximumHistoryCount",
    "MaximumVariableCount",
    "MyInvocation",
    "NestedPromptLevel",
    "null",
    "OFS",
    "OutputEncoding",
    "PID",
    "PROFILE",
    "PSBoundParameters",
    "PSCmdlet",
    "PSCommandPath",
    "PSCulture",
    "PSDebugContext",
    "PSDefaultParameterValues",
    "PSEdition",
    "PSEmailServer",
    "PSHOME",
    "PSItem",
    "PSNativeCommandArgumentPassing",
    "PSScriptRoot",
    "PSSenderInfo",
    "PSSessionApplicationName",
    "PSSessionConfigurationName",
    "PSSessionOption",
    "PSStyle",
    "PSUICulture",
    "PSVersionTable",
    "PWD",
    "Sender",
    "ShellId",
    "StackTrace",
    "switch",
    "this",
    "true",
];

/// Checks `script` (the file's bytes) and reports what it does, or the first violation.
pub fn verify_script(script: &[u8], policy: &Policy<'_>) -> Result<Verified, Violation> {
    let Some(body) = script.strip_prefix(BOM) else {
        return Err(Violation::MissingBom {
            line: 1,
            column: 1,
            snippet: escape_bytes(&script[..script.len().min(16)]),
        });
    };
    let text = std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = body[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        Violation::InvalidUtf8 {
            line: body[..at].iter().filter(|&&b| b == b'\n').count() + 1,
            column: at - line_start + 1,
            snippet: escape_bytes(&body[at..body.len().min(at + 8)]),
        }
    })?;

    let lexed = lex(text)?;
    let tree = parse(text)?;
    let root = tree.root_node();
    check_syntax(text, root)?;
    check_agreement(text, root, &lexed)?;
    check_literals_stand_alone(text, &lexed)?;
    let (inputs, input_literals) = collect_inputs(text, root, &lexed)?;
    check_tree(text, root, policy, &lexed, &input_literals).map(|(constants_used, commands)| {
        Verified {
            inputs,
            constants_used,
            commands,
        }
    })
}

/// A single-quoted literal as PowerShell reads it.
#[derive(Debug)]
struct Literal {
    span: Range<usize>,
    value: String,
}

/// PowerShell's reading of the text: its literals and comments, in order.
#[derive(Debug)]
struct Lexed {
    literals: Vec<Literal>,
    comments: Vec<Range<usize>>,
}

impl Lexed {
    fn literal_at(&self, start: usize) -> Option<&Literal> {
        self.literals
            .binary_search_by_key(&start, |l| l.span.start)
            .ok()
            .map(|i| &self.literals[i])
    }
}

/// Splits `text` into literals, comments and code by PowerShell's rules, and checks every
/// character outside literals (rule 4 and the lexical parts of rule 5).
fn lex(text: &str) -> Result<Lexed, Violation> {
    let mut lexed = Lexed {
        literals: Vec::new(),
        comments: Vec::new(),
    };
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if is_single_quote(c) {
            let Some((value, len)) = decode_single_quoted(&text[i..]) else {
                return Err(at(text, i, |line, column, snippet| {
                    Violation::UnterminatedLiteral {
                        line,
                        column,
                        snippet,
                    }
                }));
            };
            if let Some(nul) = text[i..i + len].find('\0') {
                return Err(control(text, i + nul, '\0', "NUL is refused everywhere"));
            }
            lexed.literals.push(Literal {
                span: i..i + len,
                value,
            });
            i += len;
            continue;
        }
        let block = c == '<' && text[i + 1..].starts_with('#');
        if c == '#' || block {
            if !matches!(
                text[..i].chars().next_back(),
                None | Some(' ' | '\t' | '\n')
            ) {
                return Err(forbidden(
                    text,
                    i,
                    "a comment glued to preceding code (PowerShell reads `#` there as part of a word)",
                ));
            }
            let end = if block {
                let Some(close) = text[i + 2..].find("#>") else {
                    return Err(at(text, i, |line, column, snippet| {
                        Violation::UnterminatedComment {
                            line,
                            column,
                            snippet,
                        }
                    }));
                };
                i + 2 + close + 2
            } else {
                i + text[i..].find(is_newline).unwrap_or(text.len() - i)
            };
            if !block
                && text[i + 1..end]
                    .get(..8)
                    .is_some_and(|w| w.eq_ignore_ascii_case("requires"))
            {
                return Err(forbidden(text, i, "a `#requires` directive"));
            }
            for (j, c) in text[i..end].char_indices() {
                check_plain(text, i + j, c)?;
            }
            lexed.comments.push(i..end);
            i = end;
            continue;
        }
        check_plain(text, i, c)?;
        match c {
            '`' => {
                return Err(forbidden(
                    text,
                    i,
                    "a backtick (escape or line continuation) outside a literal",
                ));
            }
            '"' => {
                return Err(at(text, i, |line, column, snippet| {
                    Violation::ExpandableString {
                        line,
                        column,
                        snippet,
                    }
                }));
            }
            '@' if text[i + 1..]
                .starts_with(|n: char| is_single_quote(n) || is_double_quote(n)) =>
            {
                return Err(at(text, i, |line, column, snippet| Violation::HereString {
                    line,
                    column,
                    snippet,
                }));
            }
            '&' => {
                return Err(dynamic(
                    text,
                    i,
                    "`&`: call operator, `&&` or background job",
                ));
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    Ok(lexed)
}

/// Outside literals: printable ASCII, TAB, LF, or CR followed by LF.
fn check_plain(text: &str, i: usize, c: char) -> Result<(), Violation> {
    if c == '\r' && !text[i + 1..].starts_with('\n') {
        return Err(control(
            text,
            i,
            c,
            "a CR without LF is a newline to PowerShell but not to tree-sitter",
        ));
    }
    if c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r') {
        return Err(control(
            text,
            i,
            c,
            "only TAB, LF and CR+LF are allowed outside literals",
        ));
    }
    if !c.is_ascii() {
        let class = if is_single_quote(c) {
            "a single quote to PowerShell"
        } else if is_double_quote(c) {
            "a double quote to PowerShell"
        } else if is_dash(c) {
            "a dash to PowerShell"
        } else if is_whitespace(c) {
            "whitespace to PowerShell"
        } else if c == '\u{FEFF}'
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}')
        {
            "an invisible or bidi control character"
        } else {
            "only ASCII is allowed outside literals"
        };
        return Err(at(text, i, |line, column, snippet| {
            Violation::NonAsciiOutsideLiteral {
                line,
                column,
                character: code_point(c),
                class,
                snippet,
            }
        }));
    }
    Ok(())
}

fn parse(text: &str) -> Result<Tree, Violation> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .map_err(|e| Violation::ParserUnavailable {
            reason: e.to_string(),
        })?;
    parser
        .parse(text, None)
        .ok_or_else(|| Violation::ParserUnavailable {
            reason: "the parser returned no tree".to_string(),
        })
}

/// Rule 2: no `ERROR` and no `MISSING` node anywhere.
fn check_syntax(text: &str, root: Node<'_>) -> Result<(), Violation> {
    if !root.has_error() {
        return Ok(());
    }
    let mut found = None;
    preorder(root, |node| {
        if found.is_none() && (node.is_error() || node.is_missing()) {
            found = Some(node);
        }
        Ok(())
    })?;
    let (offset, problem) = match found {
        Some(node) if node.is_missing() => {
            (node.start_byte(), format!("missing `{}`", node.kind()))
        }
        Some(node) => (node.start_byte(), "unexpected text".to_string()),
        None => (0, "error".to_string()),
    };
    Err(at(text, offset, |line, column, snippet| {
        Violation::Syntax {
            line,
            column,
            problem,
            snippet,
        }
    }))
}

/// Rule 3: PowerShell's literals and comments are exactly tree-sitter's.
fn check_agreement(text: &str, root: Node<'_>, lexed: &Lexed) -> Result<(), Violation> {
    let mut literals = Vec::new();
    let mut comments = Vec::new();
    preorder(root, |node| {
        match node.kind() {
            "verbatim_string_characters" => literals.push(node.byte_range()),
            "comment" => comments.push(node.byte_range()),
            _ => {}
        }
        Ok(())
    })?;
    literals.sort_by_key(|r| r.start);
    comments.sort_by_key(|r| r.start);
    let ours: Vec<Range<usize>> = lexed.literals.iter().map(|l| l.span.clone()).collect();
    compare_spans(
        text,
        &ours,
        &literals,
        "literal",
        |line, column, detail, snippet| Violation::LiteralMismatch {
            line,
            column,
            detail,
            snippet,
        },
    )?;
    compare_spans(
        text,
        &lexed.comments,
        &comments,
        "comment",
        |line, column, detail, snippet| Violation::CommentMismatch {
            line,
            column,
            detail,
            snippet,
        },
    )
}

fn compare_spans(
    text: &str,
    powershell: &[Range<usize>],
    tree_sitter: &[Range<usize>],
    what: &str,
    violation: impl FnOnce(usize, usize, String, String) -> Violation,
) -> Result<(), Violation> {
    let mut ours = powershell.iter();
    let mut theirs = tree_sitter.iter();
    loop {
        let (p, t) = (ours.next(), theirs.next());
        let (offset, detail) = match (p, t) {
            (None, None) => return Ok(()),
            (Some(p), Some(t)) if p == t => continue,
            (Some(p), Some(t)) if p.start == t.start => {
                let (pl, pc) = line_column(text, p.end);
                let (tl, tc) = line_column(text, t.end);
                let detail = format!(
                    "PowerShell ends this {what} at line {pl}, column {pc}, tree-sitter at line {tl}, column {tc}"
                );
                (p.start, detail)
            }
            (Some(p), Some(t)) if p.start < t.start => (
                p.start,
                format!("PowerShell reads a {what} here that tree-sitter does not"),
            ),
            (Some(p), None) => (
                p.start,
                format!("PowerShell reads a {what} here that tree-sitter does not"),
            ),
            (_, Some(t)) => (
                t.start,
                format!("tree-sitter reads a {what} here that PowerShell does not"),
            ),
        };
        let (line, column) = line_column(text, offset);
        return Err(violation(line, column, detail, snippet(text, offset)));
    }
}

/// Each literal is a token of its own: a delimiter before and after it.
fn check_literals_stand_alone(text: &str, lexed: &Lexed) -> Result<(), Violation> {
    for literal in &lexed.literals {
        let before = text[..literal.span.start].chars().next_back();
        let after = text[literal.span.end..].chars().next();
        let detail = if !matches!(
            before,
            None | Some(' ' | '\t' | '\n' | '(' | ',' | '=' | '[' | '{' | ';')
        ) {
            format!("preceded by {}", code_point(before.unwrap_or(' ')))
        } else if !matches!(
            after,
            None | Some(' ' | '\t' | '\r' | '\n' | ')' | ',' | ';' | ']' | '}')
        ) {
            format!("followed by {}", code_point(after.unwrap_or(' ')))
        } else {
            continue;
        };
        return Err(at(text, literal.span.start, |line, column, snippet| {
            Violation::LiteralNotDelimited {
                line,
                column,
                detail,
                snippet,
            }
        }));
    }
    Ok(())
}

/// Rule 7, first half: the top-level `$Name = '…'` bindings, and the start offsets of their
/// literals.
fn collect_inputs(
    text: &str,
    root: Node<'_>,
    lexed: &Lexed,
) -> Result<(Vec<Input>, Vec<usize>), Violation> {
    let mut inputs: Vec<Input> = Vec::new();
    let mut literals = Vec::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let statement_lists = named_children(root).filter(|n| n.kind() == "statement_list");
    for statement in statement_lists.flat_map(named_children) {
        let Some((variable, literal)) = input_binding(text, statement) else {
            continue;
        };
        let name = &text[variable.byte_range()][1..];
        let (line, column) = line_column(text, variable.start_byte());
        if let Some(&first_line) = first_lines.get(&name.to_ascii_lowercase()) {
            return Err(Violation::DuplicateInput {
                line,
                column,
                variable: name.to_string(),
                first_line,
                snippet: snippet(text, variable.start_byte()),
            });
        }
        let Some(decoded) = lexed.literal_at(literal.start_byte()) else {
            continue;
        };
        first_lines.insert(name.to_ascii_lowercase(), line);
        inputs.push(Input {
            variable: name.to_string(),
            value: decoded.value.clone(),
            line,
        });
        literals.push(literal.start_byte());
    }
    Ok((inputs, literals))
}

/// `$Name = '…'`: the variable and the literal, when `statement` has exactly that form.
fn input_binding<'t>(text: &str, statement: Node<'t>) -> Option<(Node<'t>, Node<'t>)> {
    if statement.kind() != "pipeline" {
        return None;
    }
    let mut parts = named_children(statement);
    let assignment = parts
        .next()
        .filter(|n| n.kind() == "assignment_expression" && parts.next().is_none())?;
    let parts: Vec<Node<'t>> = named_children(assignment).collect();
    let [left, operator, value] = parts.as_slice() else {
        return None;
    };
    if left.kind() != "left_assignment_expression"
        || operator.kind() != "assignement_operator"
        || &text[operator.byte_range()] != "="
    {
        return None;
    }
    let variable = descend_to(*left, "variable")?;
    let literal = descend_to(*value, "verbatim_string_characters")?;
    let name = text[variable.byte_range()].strip_prefix('$')?;
    let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let automatic = name.len() >= "Preference".len()
        && name[name.len() - "Preference".len()..].eq_ignore_ascii_case("Preference")
        || POWERSHELL_VARIABLES
            .iter()
            .any(|v| v.eq_ignore_ascii_case(name));
    (plain && !automatic).then_some((variable, literal))
}

/// The node of `kind` that spans exactly what `node` spans (following single wrappers down).
fn descend_to<'t>(mut node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    while node.kind() != kind {
        let range = node.byte_range();
        node = named_children(node).find(|c| c.byte_range() == range)?;
    }
    Some(node)
}

/// Rules 5–8 on the tree; returns the constants used and the commands.
fn check_tree(
    text: &str,
    root: Node<'_>,
    policy: &Policy<'_>,
    lexed: &Lexed,
    input_literals: &[usize],
) -> Result<(Vec<String>, Vec<String>), Violation> {
    let mut constants_used: Vec<String> = Vec::new();
    let mut commands: Vec<String> = Vec::new();
    preorder(root, |node| {
        let start = node.start_byte();
        let node_text = &text[node.byte_range()];
        match node.kind() {
            "expandable_string_literal" | "expandable_here_string_literal" => {
                Err(at(text, start, |line, column, snippet| {
                    Violation::ExpandableString {
                        line,
                        column,
                        snippet,
                    }
                }))
            }
            "verbatim_here_string_characters" => Err(at(text, start, |line, column, snippet| {
                Violation::HereString {
                    line,
                    column,
                    snippet,
                }
            })),
            "command_invokation_operator" | "background_operator" => {
                Err(dynamic(text, start, &format!("`{node_text}` operator")))
            }
            "stop_parsing" | "verbatim_command_argument" => {
                Err(forbidden(text, start, "the `--%` stop-parsing token"))
            }
            "flow_control_statement"
                if node_text
                    .get(..4)
                    .is_some_and(|w| w.eq_ignore_ascii_case("exit"))
                    && !exit_only_as_file(text, node) =>
            {
                Err(forbidden(
                    text,
                    start,
                    "an `exit` that is not the only statement of `if ($PSCommandPath) { … }` (pasted into a console it would close the console)",
                ))
            }
            "command" => {
                let mut children = named_children(node);
                if let Some(op) = children.find(|c| c.kind() == "command_invokation_operator") {
                    return Err(dynamic(
                        text,
                        start,
                        &format!("`{}` operator", &text[op.byte_range()]),
                    ));
                }
                let name = node
                    .child_by_field_name("command_name")
                    .filter(|n| n.kind() == "command_name")
                    .map(|n| &text[n.byte_range()])
                    .filter(|name| {
                        name.starts_with(|c: char| c.is_ascii_alphabetic())
                            && name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    });
                let Some(name) = name else {
                    return Err(at(text, start, |line, column, snippet| {
                        Violation::CommandNameNotPlain {
                            line,
                            column,
                            snippet,
                        }
                    }));
                };
                if DYNAMIC_COMMANDS
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(name))
                {
                    return Err(dynamic(text, start, &format!("`{name}`")));
                }
                if !policy.commands.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                    let name = name.to_string();
                    return Err(at(text, start, |line, column, snippet| {
                        Violation::CommandNotAllowed {
                            line,
                            column,
                            name,
                            snippet,
                        }
                    }));
                }
                if !commands.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                    commands.push(name.to_string());
                }
                Ok(())
            }
            "command_parameter" => {
                let valid = node_text.strip_prefix('-').is_some_and(|p| {
                    p.starts_with(|c: char| c.is_ascii_alphabetic())
                        && p.chars().all(|c| c.is_ascii_alphanumeric())
                });
                if valid {
                    return Ok(());
                }
                let parameter = node_text.to_string();
                Err(at(text, start, |line, column, snippet| {
                    Violation::InvalidParameter {
                        line,
                        column,
                        parameter,
                        snippet,
                    }
                }))
            }
            "member_name"
                if DYNAMIC_MEMBERS
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(node_text.trim_matches('\''))) =>
            {
                Err(dynamic(text, start, &format!("member `{node_text}`")))
            }
            "type_name" if node.parent().is_none_or(|p| p.kind() != "type_name") => {
                let last = node_text.rsplit('.').next().unwrap_or(node_text).trim();
                if DYNAMIC_TYPES.iter().any(|t| t.eq_ignore_ascii_case(last)) {
                    return Err(dynamic(text, start, &format!("type `{node_text}`")));
                }
                Ok(())
            }
            "variable" => {
                let name = node_text
                    .trim_start_matches(['$', '@'])
                    .trim_start_matches('{')
                    .trim_end_matches('}');
                let name = name.rsplit(':').next().unwrap_or(name);
                if name.eq_ignore_ascii_case("ExecutionContext") {
                    return Err(dynamic(text, start, "`$ExecutionContext`"));
                }
                Ok(())
            }
            "verbatim_string_characters" if input_literals.binary_search(&start).is_err() => {
                let Some(literal) = lexed.literal_at(start) else {
                    // Unreachable after `check_agreement`; refuse rather than guess.
                    return Err(at(text, start, |line, column, snippet| {
                        Violation::LiteralMismatch {
                            line,
                            column,
                            detail: "tree-sitter reads a literal here that PowerShell does not"
                                .to_string(),
                            snippet,
                        }
                    }));
                };
                if !policy.constants.contains(&literal.value.as_str()) {
                    let value = escape(&literal.value, 60);
                    return Err(at(text, start, |line, column, snippet| {
                        Violation::UnexpectedLiteral {
                            line,
                            column,
                            value,
                            snippet,
                        }
                    }));
                }
                if !constants_used.contains(&literal.value) {
                    constants_used.push(literal.value.clone());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    })?;
    Ok((constants_used, commands))
}

/// Whether the `exit` statement `node` is the only statement of an `if ($PSCommandPath) { … }`
/// without `else`: it then runs only when the script runs as a file (`-File`, or `& file` in the
/// session host); pasted into a console, where `$PSCommandPath` is empty, the script just ends.
fn exit_only_as_file(text: &str, node: Node<'_>) -> bool {
    let Some(list) = node.parent().filter(|p| p.kind() == "statement_list") else {
        return false;
    };
    let Some(block) = list.parent().filter(|p| p.kind() == "statement_block") else {
        return false;
    };
    let Some(statement) = block.parent().filter(|p| p.kind() == "if_statement") else {
        return false;
    };
    let alone = named_children(list).count() == 1;
    let plain_if = statement.child_by_field_name("else_clause").is_none()
        && statement.child_by_field_name("elseif_clauses").is_none();
    let condition = statement
        .child_by_field_name("condition")
        .map(|c| text[c.byte_range()].trim());
    alone && plain_if && condition.is_some_and(|c| c.eq_ignore_ascii_case("$PSCommandPath"))
}

/// Visits every node (named or not) in document order, without recursion.
fn preorder<'t>(
    root: Node<'t>,
    mut visit: impl FnMut(Node<'t>) -> Result<(), Violation>,
) -> Result<(), Violation> {
    let mut cursor = root.walk();
    loop {
        visit(cursor.node())?;
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return Ok(());
            }
        }
    }
}

/// The named children of `node` other than comments (which tree-sitter puts anywhere).
fn named_children<'t>(node: Node<'t>) -> impl Iterator<Item = Node<'t>> {
    (0..node.named_child_count())
        .filter_map(move |i| node.named_child(i as u32))
        .filter(|n| n.kind() != "comment")
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Up to 40 characters of `text` from `offset`, escaped.
fn snippet(text: &str, offset: usize) -> String {
    escape(&text[offset..], 40)
}

/// Printable ASCII as is, `\n` `\r` `\t`, and every other character as `\u{…}`; `limit` chars.
fn escape(value: &str, limit: usize) -> String {
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n == limit {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
        }
    }
    out
}

fn escape_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                (*b as char).to_string()
            } else {
                format!("\\x{b:02X}")
            }
        })
        .collect()
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

fn at(
    text: &str,
    offset: usize,
    make: impl FnOnce(usize, usize, String) -> Violation,
) -> Violation {
    let (line, column) = line_column(text, offset);
    make(line, column, snippet(text, offset))
}

fn control(text: &str, offset: usize, c: char, rule: &'static str) -> Violation {
    at(text, offset, |line, column, snippet| {
        Violation::ControlCharacter {
            line,
            column,
            character: code_point(c),
            rule,
            snippet,
        }
    })
}

fn forbidden(text: &str, offset: usize, construct: &'static str) -> Violation {
    at(text, offset, |line, column, snippet| {
        Violation::ForbiddenSyntax {
            line,
            column,
            construct,
            snippet,
        }
    })
}

fn dynamic(text: &str, offset: usize, form: &str) -> Violation {
    at(text, offset, |line, column, snippet| {
        Violation::DynamicInvocation {
            line,
            column,
            form: form.to_string(),
            snippet,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powershell::quote::single_quoted;
    use proptest::prelude::*;

    const COMMANDS: &[&str] = &[
        "New-Object",
        "Get-Module",
        "Import-Module",
        "Join-Path",
        "Set-Location",
        "Get-CMApplication",
        "New-CMApplication",
        "Write-Output",
        "ConvertTo-Json",
    ];
    const CONSTANTS: &[&str] = &[
        "Stop",
        "SilentlyContinue",
        "System.Text.UTF8Encoding",
        "ConfigurationManager",
        "ConfigurationManager.psd1",
        ":",
    ];
    const POLICY: Policy<'static> = Policy {
        commands: COMMANDS,
        constants: CONSTANTS,
    };

    const HEAD: &str = "\u{FEFF}# sccm-connector step: ensure-application
# Outside values are bound once, below, as single-quoted literals; the body only uses the variables.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false
$CMPSSuppressFastNotUsedCheck = $true

# Inputs
";
    const INPUTS: &str = "$SiteCode = 'DEM'
$ConsolePath = 'C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin'
$ApplicationName = 'TimKosse_FileZilla_3.46.3_English(United States)'
$Description = 'line one
line two with it''s quote and a ’’ typographic one'
";
    const BODY: &str = "
try {
    if (-not (Get-Module -Name 'ConfigurationManager')) {
        Import-Module -Name (Join-Path -Path $ConsolePath -ChildPath 'ConfigurationManager.psd1')
    }
    Set-Location -Path ($SiteCode + ':')
    $app = Get-CMApplication -Name $ApplicationName -Fast -DisableWildcardHandling
    if ($null -eq $app) {
        $app = New-CMApplication -Name $ApplicationName -Description $Description -AutoInstall $true
    }
    $result = @{ ok = $true; ci_id = $app.CI_ID; model_name = $app.ModelName }
    Write-Output (ConvertTo-Json -InputObject $result -Depth 10 -Compress)
    if ($PSCommandPath) { exit 0 }
} catch {
    $failure = @{ ok = $false; error = $_.Exception.Message }
    Write-Output (ConvertTo-Json -InputObject $failure -Depth 10 -Compress)
    if ($PSCommandPath) { exit 1 }
}
";

    fn example() -> String {
        format!("{HEAD}{INPUTS}{BODY}")
    }

    /// The example with `line` added at the end of the Inputs block (top level).
    fn with_top_line(line: &str) -> String {
        format!("{HEAD}{INPUTS}{line}\n{BODY}")
    }

    /// The example with `line` added inside the `try` block, before its exit.
    fn with_body_line(line: &str) -> String {
        example().replacen(
            "    if ($PSCommandPath) { exit 0 }\n",
            &format!("    {line}\n    if ($PSCommandPath) {{ exit 0 }}\n"),
            1,
        )
    }

    fn verify(text: &str) -> Result<Verified, Violation> {
        verify_script(text.as_bytes(), &POLICY)
    }

    fn input(variable: &str, value: &str, line: usize) -> Input {
        Input {
            variable: variable.to_string(),
            value: value.to_string(),
            line,
        }
    }

    /// Asserts that `text` is rejected with a violation `matches` accepts.
    #[track_caller]
    fn assert_rejected(text: &str, matches: impl Fn(&Violation) -> bool) {
        match verify(text) {
            Ok(verified) => panic!("accepted {text:?}: {verified:?}"),
            Err(violation) => assert!(
                matches(&violation),
                "wrong violation for {text:?}: {violation:?}"
            ),
        }
    }

    #[test]
    fn the_example_verifies_with_its_inputs_constants_and_commands() {
        let verified = verify(&example()).expect("the example is valid");
        assert_eq!(
            verified.inputs,
            vec![
                input("SiteCode", "DEM", 9),
                input(
                    "ConsolePath",
                    "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin",
                    10
                ),
                input(
                    "ApplicationName",
                    "TimKosse_FileZilla_3.46.3_English(United States)",
                    11
                ),
                input(
                    "Description",
                    "line one\nline two with it's quote and a ’ typographic one",
                    12
                ),
            ]
        );
        assert_eq!(verified.constants_used, CONSTANTS);
        assert_eq!(
            verified.commands,
            vec![
                "New-Object",
                "Get-Module",
                "Import-Module",
                "Join-Path",
                "Set-Location",
                "Get-CMApplication",
                "New-CMApplication",
                "Write-Output",
                "ConvertTo-Json"
            ]
        );
    }

    #[test]
    fn crlf_line_endings_verify_and_stay_in_values() {
        let verified = verify(&example().replace('\n', "\r\n")).expect("CRLF is fine");
        assert_eq!(
            verified.inputs[3].value,
            "line one\r\nline two with it's quote and a ’ typographic one"
        );
        assert_eq!(verified.inputs[3].line, 12);
    }

    #[test]
    fn empty_and_hostile_values_are_inputs() {
        let hostile = "a’; calc; ‘b \"$(calc)\" `n <# #> '@ \u{2028}\u{202E}\u{A0}– 😀\r\n# x";
        let line = format!(
            "$Empty = ''\n$Hostile = {}",
            single_quoted(hostile).expect("no NUL")
        );
        let verified = verify(&with_top_line(&line)).expect("correctly quoted values are data");
        assert_eq!(verified.inputs[4], input("Empty", "", 14));
        assert_eq!(verified.inputs[5], input("Hostile", hostile, 15));
    }

    #[test]
    fn commands_match_case_insensitively_and_are_listed_once_as_first_written() {
        let verified =
            verify(&with_body_line("WRITE-OUTPUT $SiteCode")).expect("case does not matter");
        assert_eq!(
            verified
                .commands
                .iter()
                .filter(|c| c.eq_ignore_ascii_case("write-output"))
                .count(),
            1
        );
        assert!(verified.commands.contains(&"Write-Output".to_string()));
    }

    // Rule 1: encoding.

    #[test]
    fn rejects_a_script_without_bom() {
        let text = example();
        let without = text.strip_prefix('\u{FEFF}').expect("BOM");
        assert!(matches!(
            verify(without),
            Err(Violation::MissingBom {
                line: 1,
                column: 1,
                ..
            })
        ));
        assert!(matches!(verify(""), Err(Violation::MissingBom { .. })));
    }

    #[test]
    fn rejects_the_cp1252_trap() {
        // `Ò` is C3 92 in UTF-8; read as CP1252 without a BOM, 0x92 is `’` and closes the literal.
        let trap = with_top_line("$Name = 'Ò; calc; '");
        let without = trap.strip_prefix('\u{FEFF}').expect("BOM");
        assert!(matches!(verify(without), Err(Violation::MissingBom { .. })));
        // A BOM followed by CP1252 bytes is not UTF-8.
        let mut bytes = format!("{HEAD}{INPUTS}$Name = 'a").into_bytes();
        bytes.extend_from_slice(b"\x92; calc; \x91b'\n");
        bytes.extend_from_slice(BODY.as_bytes());
        let err = verify_script(&bytes, &POLICY).expect_err("not UTF-8");
        assert!(
            matches!(
                err,
                Violation::InvalidUtf8 {
                    line: 14,
                    column: 11,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    // Rule 2: tree-sitter parses it.

    #[test]
    fn rejects_what_tree_sitter_cannot_parse() {
        let text = format!("{HEAD}{INPUTS}if ($SiteCode) {{\n");
        assert_rejected(&text, |v| matches!(v, Violation::Syntax { .. }));
        assert_rejected(
            &with_body_line("Write-Output 'Stop'+'Stop'"),
            |v| matches!(v, Violation::Syntax { problem, .. } if problem.contains("missing")),
        );
        assert_rejected(&with_body_line("Write-Output )"), |v| {
            matches!(v, Violation::Syntax { .. })
        });
    }

    // Rule 3: both readings agree.

    #[test]
    fn rejects_a_value_quoted_by_doubling_only_the_ascii_quote() {
        let text = with_top_line("$Name = 'a’; calc; ‘b'");
        assert_rejected(
            &text,
            |v| matches!(v, Violation::LiteralMismatch { line: 14, column: 9, detail, .. } if detail.contains("PowerShell ends")),
        );
        assert_rejected(&with_body_line("Write-Output 'a’; calc; ‘b'"), |v| {
            matches!(v, Violation::LiteralMismatch { .. })
        });
    }

    #[test]
    fn rejects_a_literal_opened_by_a_typographic_quote() {
        assert_rejected(
            &with_top_line("$x = ‘abc’"),
            |v| matches!(v, Violation::LiteralMismatch { detail, .. } if detail.contains("tree-sitter does not")),
        );
        assert_rejected(&with_body_line("Write-Output ‛abc‚"), |v| {
            matches!(v, Violation::LiteralMismatch { .. })
        });
    }

    #[test]
    fn rejects_unterminated_literals() {
        let text = format!("{HEAD}{INPUTS}{BODY}$Tail = 'abc\n");
        assert_rejected(&text, |v| {
            matches!(
                v,
                Violation::UnterminatedLiteral {
                    line: 32,
                    column: 9,
                    ..
                }
            )
        });
        // A doubled typographic quote is one character: still open.
        let text = format!("{HEAD}{INPUTS}{BODY}$Tail = 'abc’’\n");
        assert_rejected(&text, |v| {
            matches!(v, Violation::UnterminatedLiteral { .. })
        });
        // A single one closes it for PowerShell, but not for tree-sitter.
        let text = format!("{HEAD}{INPUTS}{BODY}$Tail = 'abc’\n");
        assert_rejected(&text, |v| matches!(v, Violation::Syntax { .. }));
        // In the middle, the next quote closes it: whatever happens next is refused.
        assert!(verify(&with_top_line("$Open = 'abc")).is_err());
    }

    #[test]
    fn rejects_comments_the_readers_cut_differently() {
        // tree-sitter skips an escaped `#>` in a block comment; PowerShell ends the comment there.
        assert_rejected(
            &with_body_line("<# `#> Remove-Item -Path $ConsolePath <# #>"),
            |v| matches!(v, Violation::CommentMismatch { .. }),
        );
        assert_rejected(&with_body_line("<# never closed"), |v| {
            matches!(v, Violation::UnterminatedComment { .. })
        });
        // `#` inside a word is not a comment to PowerShell.
        assert_rejected(&with_body_line("Write-Output a#b"), |v| {
            matches!(v, Violation::ForbiddenSyntax { .. })
        });
        assert_rejected(
            &with_top_line("#requires -Modules evil"),
            |v| matches!(v, Violation::ForbiddenSyntax { construct, .. } if construct.contains("requires")),
        );
    }

    #[test]
    fn rejects_literals_glued_to_code() {
        assert_rejected(
            &with_body_line("$n = 'Stop'.Length"),
            |v| matches!(v, Violation::LiteralNotDelimited { detail, .. } if detail.contains("followed by U+002E")),
        );
        assert_rejected(
            &with_body_line("Write-Output -Name:'Stop'"),
            |v| matches!(v, Violation::LiteralNotDelimited { detail, .. } if detail.contains("preceded by U+003A")),
        );
    }

    // Rule 4: ASCII outside literals.

    #[test]
    fn rejects_an_en_dash_parameter() {
        assert_rejected(
            &with_body_line("Get-CMApplication –Name $ApplicationName"),
            |v| {
                matches!(v, Violation::NonAsciiOutsideLiteral { line: 26, column: 23, character, class, .. }
                if character == "U+2013" && class.contains("dash"))
            },
        );
    }

    #[test]
    fn rejects_nbsp_in_a_command_name() {
        assert_rejected(
            &with_body_line("Get-CM\u{A0}Application -Name $ApplicationName"),
            |v| matches!(v, Violation::NonAsciiOutsideLiteral { class, .. } if class.contains("whitespace")),
        );
    }

    #[test]
    fn rejects_non_ascii_in_comments() {
        for comment in [
            "# it’s fine",
            "# a\u{2028}calc",
            "<# \u{202E} #>",
            "<# ü\n #>",
            "# \u{85}",
        ] {
            assert_rejected(&with_body_line(comment), |v| {
                matches!(v, Violation::NonAsciiOutsideLiteral { .. })
            });
        }
    }

    #[test]
    fn rejects_invisible_and_control_characters_outside_literals() {
        assert_rejected(
            &with_body_line("Write-Output $SiteCode\u{202E}"),
            |v| matches!(v, Violation::NonAsciiOutsideLiteral { class, .. } if class.contains("bidi")),
        );
        assert_rejected(&with_body_line("\u{FEFF}Write-Output $SiteCode"), |v| {
            matches!(v, Violation::NonAsciiOutsideLiteral { .. })
        });
        // A lone CR separates statements for PowerShell only.
        assert_rejected(
            &with_body_line("Write-Output $SiteCode\rRemove-Item -Path $ConsolePath"),
            |v| matches!(v, Violation::ControlCharacter { character, .. } if character == "U+000D"),
        );
        assert_rejected(&with_body_line("Write-Output\u{0B}$SiteCode"), |v| {
            matches!(v, Violation::ControlCharacter { .. })
        });
        assert_rejected(
            &with_top_line("$Nul = 'a\0b'"),
            |v| matches!(v, Violation::ControlCharacter { character, .. } if character == "U+0000"),
        );
        assert_rejected(&with_body_line("Write-Output `\n  $SiteCode"), |v| {
            matches!(v, Violation::ForbiddenSyntax { .. })
        });
    }

    // Rule 5: no expandable strings, here-strings or dynamic invocation.

    #[test]
    fn rejects_double_quoted_strings() {
        assert_rejected(&with_body_line("Write-Output \"a$(calc)\""), |v| {
            matches!(v, Violation::ExpandableString { .. })
        });
        assert_rejected(
            &with_body_line("Write-Output “a$(calc)”"),
            |v| matches!(v, Violation::NonAsciiOutsideLiteral { class, .. } if class.contains("double quote")),
        );
    }

    #[test]
    fn rejects_here_strings() {
        assert_rejected(&with_top_line("$x = @'\nabc\n'@"), |v| {
            matches!(v, Violation::HereString { .. })
        });
        assert_rejected(&with_top_line("$x = @\"\n$(calc)\n\"@"), |v| {
            matches!(v, Violation::HereString { .. })
        });
    }

    #[test]
    fn rejects_dynamic_invocation() {
        let commands: Vec<&str> = COMMANDS
            .iter()
            .copied()
            .chain(["Invoke-Expression", "iex"])
            .collect();
        let permissive = Policy {
            commands: &commands,
            constants: CONSTANTS,
        };
        for line in [
            "Invoke-Expression $Description",
            "iex $Description",
            "invoke-expression -Command $Description",
        ] {
            let text = with_body_line(line);
            for policy in [&POLICY, &permissive] {
                let err = verify_script(text.as_bytes(), policy).expect_err(line);
                assert!(
                    matches!(err, Violation::DynamicInvocation { .. }),
                    "{line}: {err:?}"
                );
            }
        }
        for line in [
            "& $Description",
            "&$Description",
            "Write-Output $SiteCode && calc",
            ". $Description",
            ".$Description",
            ". 'Stop'",
            ". { calc }",
            "$sb = [scriptblock]::Create($Description)",
            "$sb = [System.Management.Automation.ScriptBlock]::Create($Description)",
            "$app.Invoke()",
            "$null = $ExecutionContext.SessionState",
            "$app.InvokeCommand.InvokeScript($Description)",
        ] {
            assert_rejected(&with_body_line(line), |v| {
                matches!(v, Violation::DynamicInvocation { .. })
            });
        }
        assert_rejected(&with_body_line("Write-Output --% 'a’; calc"), |v| {
            matches!(
                v,
                Violation::ForbiddenSyntax { .. } | Violation::LiteralMismatch { .. }
            )
        });
    }

    // Rule 6: commands.

    #[test]
    fn exit_is_allowed_only_when_run_as_a_file() {
        // The example's exits are guarded; these forms would close an admin's console.
        for bad in [
            "exit 0",
            "if ($true) { exit 0 }",
            "if ($PSCommandPath) { $x = 1; exit 0 }",
            "if ($PSCommandPath) { exit 0 } else { $x = 1 }",
            "if (-not $PSCommandPath) { exit 0 }",
            "EXIT 2",
        ] {
            assert_rejected(
                &with_body_line(bad),
                |v| matches!(v, Violation::ForbiddenSyntax { construct, .. } if construct.contains("$PSCommandPath")),
            );
        }
        verify(&with_body_line("if ($pscommandpath) { exit 3 }")).expect("guarded exit");
        // `return` and `throw` are other flow control, not exits.
        verify(&with_body_line("if ($null -eq $app) { throw 'Stop' }"))
            .expect("throw is not an exit");
    }

    #[test]
    fn rejects_commands_outside_the_policy() {
        assert_rejected(
            &with_body_line("Remove-Item -Path $ConsolePath"),
            |v| matches!(v, Violation::CommandNotAllowed { name, line: 26, column: 5, .. } if name == "Remove-Item"),
        );
        assert_rejected(
            &with_body_line("$x = calc"),
            |v| matches!(v, Violation::CommandNotAllowed { name, .. } if name == "calc"),
        );
        assert_rejected(
            &with_body_line("Get-CMApplication | Remove-CMApplication"),
            |v| matches!(v, Violation::CommandNotAllowed { name, .. } if name == "Remove-CMApplication"),
        );
        assert_rejected(
            &with_body_line("C:\\Windows\\System32\\calc.exe -Name $SiteCode"),
            |v| matches!(v, Violation::CommandNameNotPlain { .. }),
        );
        assert_rejected(&with_body_line("using module Evil"), |v| {
            matches!(v, Violation::CommandNotAllowed { .. })
        });
    }

    // Rule 7: inputs and constants.

    #[test]
    fn rejects_literals_that_are_neither_inputs_nor_constants() {
        assert_rejected(
            &with_body_line("Write-Output 'hello'"),
            |v| matches!(v, Violation::UnexpectedLiteral { value, line: 26, column: 18, .. } if value == "hello"),
        );
        // Nested bindings, expressions and settings are not inputs.
        assert_rejected(&with_body_line("$Late = 'late'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        assert_rejected(&with_top_line("$Joined = 'a' + 'b'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        assert_rejected(&with_top_line("$Both = 'a', 'b'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        assert_rejected(
            &with_top_line("$ErrorActionPreference = 'Continue'"),
            |v| matches!(v, Violation::UnexpectedLiteral { value, .. } if value == "Continue"),
        );
        assert_rejected(&with_top_line("$OFS = 'x'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        assert_rejected(&with_top_line("$env:Path = 'C:\\evil'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        assert_rejected(&with_top_line("$Name += 'x'"), |v| {
            matches!(v, Violation::UnexpectedLiteral { .. })
        });
        // The reported value is escaped.
        assert_rejected(
            &with_body_line("Write-Output 'a\u{202E}b'"),
            |v| matches!(v, Violation::UnexpectedLiteral { value, .. } if value == "a\\u{202E}b"),
        );
    }

    #[test]
    fn rejects_a_second_binding_of_an_input() {
        assert_rejected(
            &with_top_line("$SiteCode = 'EVL'"),
            |v| matches!(v, Violation::DuplicateInput { variable, first_line: 9, line: 14, .. } if variable == "SiteCode"),
        );
        assert_rejected(&with_top_line("$sitecode = 'EVL'"), |v| {
            matches!(v, Violation::DuplicateInput { .. })
        });
    }

    // Rule 8: parameters.

    #[test]
    fn rejects_parameters_that_are_not_plain() {
        for line in [
            "Get-CMApplication -Na_me $ApplicationName",
            "Get-CMApplication --Name $ApplicationName",
            "Write-Output -- $SiteCode",
            "Write-Output -Name? $SiteCode",
        ] {
            assert_rejected(&with_body_line(line), |v| {
                matches!(v, Violation::InvalidParameter { .. })
            });
        }
    }

    #[test]
    fn violations_name_the_place() {
        let err = verify(&with_top_line("$Name = 'a’; calc; ‘b'")).expect_err("attack");
        let message = err.to_string();
        assert!(message.starts_with("line 14, column 9: "), "{message}");
        assert!(
            message.contains("'a\\u{2019}; calc; \\u{2018}b'"),
            "{message}"
        );
    }

    #[test]
    fn a_value_the_wrong_quoter_happens_to_quote_correctly_is_read_as_powershell_reads_it() {
        // Doubling only `'` turns `’’` into `'’’'`, which is also the correct quoting of `’`: the
        // script cannot tell them apart, and the checker reports PowerShell's reading.
        let verified = verify(&with_top_line("$Pair = '’’'")).expect("one literal to both readers");
        assert_eq!(verified.inputs[4].value, "’");
    }

    /// Characters and sequences that matter to PowerShell's lexer, and exotic ones.
    fn hostile_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "'", "‘", "’", "‚", "‛", "''", "’’", "\"", "“", "”", "„", "-", "–", "—", "―", "$(", ")", "$(calc)", "`",
                "`n", ";", "|", "&", "\n", "\r", "\r\n", "#", "<#", "#>", "'@", "\"@", "@'", "@\"", "*", "?", "[", "]",
                "\u{A0}", "\u{85}", "\u{2028}", "\u{2029}", "\u{202E}", "\u{2066}", "\u{FEFF}", "😀", "Ò", " ", "\t",
                "a", "calc",
            ])
            .prop_map(String::from),
            1 => any::<char>().prop_filter("no NUL", |c| *c != '\0').prop_map(String::from),
        ]
    }

    fn hostile_value() -> impl Strategy<Value = String> {
        prop::collection::vec(hostile_piece(), 0..24).prop_map(|pieces| pieces.concat())
    }

    const NAMES: [&str; 3] = ["SiteCode", "ApplicationName", "Description"];

    /// The example with its inputs bound to `values` by `quote`, with LF or CRLF line ends.
    fn script_binding(values: &[String], quote: impl Fn(&str) -> String, crlf: bool) -> String {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut inputs = format!("$ConsolePath = 'C:\\bin'{nl}");
        for (name, value) in NAMES.iter().zip(values) {
            inputs.push_str(&format!("${name} = {}{nl}", quote(value)));
        }
        format!(
            "{}{inputs}{}",
            HEAD.replace('\n', nl),
            BODY.replace('\n', nl)
        )
    }

    fn doubling_only_the_ascii_quote(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    proptest! {
        #[test]
        fn correctly_quoted_values_verify_as_exactly_themselves(
            values in prop::collection::vec(hostile_value(), 3),
            crlf in any::<bool>(),
        ) {
            let text = script_binding(&values, |v| single_quoted(v).expect("no NUL"), crlf);
            let verified = verify(&text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let mut expected = vec![input("ConsolePath", "C:\\bin", 9)];
            let mut line = 10;
            for (name, value) in NAMES.iter().zip(&values) {
                expected.push(input(name, value, line));
                line += value.matches('\n').count() + 1;
            }
            prop_assert_eq!(verified.inputs, expected);
        }

        #[test]
        fn a_wrong_quoter_is_never_accepted_with_a_reading_that_differs(
            values in prop::collection::vec(hostile_value(), 3),
            crlf in any::<bool>(),
        ) {
            let text = script_binding(&values, doubling_only_the_ascii_quote, crlf);
            let literals: Vec<String> = values.iter().map(|v| doubling_only_the_ascii_quote(v)).collect();
            // PowerShell's reading of each wrong literal: does it end where the quoter ended it?
            let readings: Vec<Option<String>> = literals
                .iter()
                .map(|l| decode_single_quoted(l).filter(|(_, len)| *len == l.len()).map(|(value, _)| value))
                .collect();
            let result = verify(&text);
            if readings.iter().any(Option::is_none) {
                // A value breaks out of its literal for PowerShell: always refused.
                prop_assert!(result.is_err(), "accepted a break-out: {:?}", values);
            } else if let Ok(verified) = result {
                // Each literal is one literal to both readers; the values are PowerShell's.
                let read: Vec<String> = verified.inputs[1..].iter().map(|i| i.value.clone()).collect();
                let expected: Vec<String> = readings.iter().flatten().cloned().collect();
                prop_assert_eq!(read, expected);
            }
            // And the wrong quoter never yields the intended value once a typographic quote is in
            // it: PowerShell either ends the literal there or reads a pair as one character. So
            // with such a value the script is refused or reports a value other than the portal's.
            for (value, reading) in values.iter().zip(&readings) {
                if value.chars().any(|c| is_single_quote(c) && c != '\'') {
                    prop_assert_ne!(reading.as_ref(), Some(value));
                }
            }
        }
    }
}
