//! Reading a script: tree-sitter-powershell's tree lowered into the small syntax the interpreter
//! runs. Every single-quoted literal is decoded from the source by PowerShell's own rules
//! ([`decode_single_quoted`]), never from tree-sitter's text, and must end exactly where
//! tree-sitter ends it. Any construct outside the generator's subset — `foreach`, functions,
//! double-quoted strings, casts, indexing, method calls on instances, `&`, redirection, typed
//! catches, `finally`, … — is refused here, before anything runs, with a PowerShell-style parse
//! error, so generator drift fails loudly instead of being half-interpreted.

use super::value::{CompareOp, Value};
use crate::powershell::quote::decode_single_quoted;
use std::rc::Rc;
use tree_sitter::{Node, Parser};

/// A statement list with its source text (script blocks keep theirs for `[string]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub text: String,
}

/// A statement and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub line: usize,
    pub column: usize,
    pub kind: StmtKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// A pipeline whose output goes to the output stream.
    Pipeline(Pipeline),
    Assign {
        target: Target,
        value: Pipeline,
    },
    If {
        clauses: Vec<(Pipeline, Vec<Stmt>)>,
        otherwise: Option<Vec<Stmt>>,
    },
    /// `try { … } catch { … }` (one untyped catch).
    Try {
        body: Vec<Stmt>,
        catch: Vec<Stmt>,
    },
    Throw(Option<Pipeline>),
    Exit(Option<Pipeline>),
}

/// The left side of `=`.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Variable(VarRef),
    /// `[Console]::OutputEncoding`.
    Static {
        type_name: String,
        member: String,
    },
    /// `$null = …`: the value is discarded.
    Discard,
}

/// `$name`, `$env:NAME`, `$global:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub scope: Option<String>,
    pub name: String,
}

/// Pipeline elements separated by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub elements: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Command(Command),
    Expr(Expr),
}

/// A command invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub line: usize,
    pub column: usize,
    /// The invocation's source text (for error displays).
    pub text: String,
    pub elements: Vec<CommandElement>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandElement {
    /// `-Name` (without the dash), with its value when written `-Name:value`.
    Parameter {
        name: String,
        colon_value: Option<Expr>,
    },
    Argument(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Add,
    Compare(CompareOp, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Variable(VarRef),
    Member(Box<Expr>, String),
    /// `[Type]::Member`.
    StaticMember(String, String),
    /// `[Type]::Method(args)`.
    StaticCall(String, String, Vec<Expr>),
    /// `[Type]` alone.
    Type(String),
    Not(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `( pipeline )`.
    Paren(Box<Pipeline>),
    /// `@( … )`: always an array.
    ArrayOf(Vec<Stmt>),
    /// `$( … )`.
    SubExpression(Vec<Stmt>),
    /// `a, b, c`.
    List(Vec<Expr>),
    Hash(Vec<(String, Pipeline)>),
    ScriptBlock(Rc<Block>),
}

/// A parse error, PowerShell style.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// `ParserError` id (e.g. `UnsupportedConstruct`).
    pub id: &'static str,
}

struct Lowerer<'s> {
    src: &'s str,
}

fn named_children<'t>(node: Node<'t>) -> Vec<Node<'t>> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|n| n.kind() != "comment")
        .collect()
}

fn all_children<'t>(node: Node<'t>) -> Vec<Node<'t>> {
    let mut cursor = node.walk();
    node.children(&mut cursor)
        .filter(|n| n.kind() != "comment")
        .collect()
}

/// Node kinds that only wrap one operand when no operator is present.
const WRAPPERS: &[&str] = &[
    "pipeline_chain",
    "logical_expression",
    "bitwise_expression",
    "comparison_expression",
    "additive_expression",
    "multiplicative_expression",
    "format_expression",
    "range_expression",
    "array_literal_expression",
    "unary_expression",
    "argument_expression",
    "left_assignment_expression",
    "integer_literal",
    "logical_argument_expression",
    "bitwise_argument_expression",
    "comparison_argument_expression",
    "additive_argument_expression",
    "multiplicative_argument_expression",
    "format_argument_expression",
    "range_argument_expression",
];

impl<'s> Lowerer<'s> {
    fn text(&self, node: Node<'_>) -> &'s str {
        &self.src[node.byte_range()]
    }

    fn position(&self, node: Node<'_>) -> (usize, usize) {
        let start = node.start_position();
        let line_start = self.src[..node.start_byte()]
            .rfind('\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        let column = self.src[line_start..node.start_byte()].chars().count() + 1;
        (start.row + 1, column)
    }

    fn error(&self, node: Node<'_>, id: &'static str, message: String) -> ParseError {
        let (line, column) = self.position(node);
        ParseError {
            line,
            column,
            message,
            id,
        }
    }

    fn unsupported(&self, node: Node<'_>, what: &str) -> ParseError {
        let snippet: String = self.text(node).chars().take(60).collect();
        self.error(
            node,
            "UnsupportedConstruct",
            format!(
                "The sccm-connector site simulator does not support {what} ({}): `{}`. Only the subset the connector's script generator emits is interpreted.",
                node.kind(),
                snippet.replace('\n', " ")
            ),
        )
    }

    fn block(&self, node: Node<'_>) -> Result<Vec<Stmt>, ParseError> {
        let mut stmts = Vec::new();
        for child in named_children(node) {
            match child.kind() {
                "statement_list" | "script_block_body" => stmts.extend(self.block(child)?),
                "empty_statement" => {}
                _ => stmts.push(self.statement(child)?),
            }
        }
        Ok(stmts)
    }

    fn statement_block(&self, node: Node<'_>) -> Result<Vec<Stmt>, ParseError> {
        if node.kind() != "statement_block" {
            return Err(self.unsupported(node, "this block"));
        }
        self.block(node)
    }

    fn statement(&self, node: Node<'_>) -> Result<Stmt, ParseError> {
        let (line, column) = self.position(node);
        let kind = match node.kind() {
            "pipeline" => self.pipeline_statement(node)?,
            "if_statement" => self.if_statement(node)?,
            "try_statement" => self.try_statement(node)?,
            "flow_control_statement" => {
                let children = all_children(node);
                let keyword = children.first().map(|c| c.kind()).unwrap_or_default();
                let value = match children.get(1) {
                    Some(v) => Some(self.pipeline(*v)?),
                    None => None,
                };
                match keyword {
                    "throw" => StmtKind::Throw(value),
                    "exit" => StmtKind::Exit(value),
                    _ => return Err(self.unsupported(node, "this flow-control statement")),
                }
            }
            _ => return Err(self.unsupported(node, "this statement")),
        };
        Ok(Stmt { line, column, kind })
    }

    fn pipeline_statement(&self, node: Node<'_>) -> Result<StmtKind, ParseError> {
        let children = named_children(node);
        if let [only] = children.as_slice()
            && only.kind() == "assignment_expression"
        {
            return self.assignment(*only);
        }
        Ok(StmtKind::Pipeline(self.pipeline(node)?))
    }

    fn assignment(&self, node: Node<'_>) -> Result<StmtKind, ParseError> {
        let children = all_children(node);
        let [left, op, value] = children.as_slice() else {
            return Err(self.unsupported(node, "this assignment"));
        };
        if self.text(*op).trim() != "=" {
            return Err(self.unsupported(*op, "compound assignment"));
        }
        let target = match self.expr(*left)? {
            Expr::Literal(Value::Null) => Target::Discard,
            Expr::Variable(v) => Target::Variable(v),
            Expr::StaticMember(type_name, member) => Target::Static { type_name, member },
            _ => return Err(self.unsupported(*left, "assigning to this target")),
        };
        Ok(StmtKind::Assign {
            target,
            value: self.pipeline(*value)?,
        })
    }

    fn pipeline(&self, node: Node<'_>) -> Result<Pipeline, ParseError> {
        match node.kind() {
            "pipeline" => {
                let children = named_children(node);
                match children.as_slice() {
                    [only] if only.kind() == "pipeline_chain" => self.chain(*only),
                    [only] if only.kind() == "assignment_expression" => {
                        Err(self.unsupported(node, "an assignment used as a value"))
                    }
                    [only] => self.chain(*only),
                    _ => Err(self.unsupported(node, "this pipeline")),
                }
            }
            _ => Ok(Pipeline {
                elements: vec![self.element(node)?],
            }),
        }
    }

    fn chain(&self, node: Node<'_>) -> Result<Pipeline, ParseError> {
        if node.kind() != "pipeline_chain" {
            return Ok(Pipeline {
                elements: vec![self.element(node)?],
            });
        }
        let mut elements = Vec::new();
        for child in all_children(node) {
            match child.kind() {
                "|" => {}
                "&&" | "||" => return Err(self.unsupported(child, "pipeline chain operators")),
                _ if child.is_named() => elements.push(self.element(child)?),
                _ => return Err(self.unsupported(child, "this pipeline token")),
            }
        }
        for (i, e) in elements.iter().enumerate() {
            if i > 0 && matches!(e, Element::Expr(_)) {
                return Err(self.unsupported(node, "an expression after a pipe"));
            }
        }
        Ok(Pipeline { elements })
    }

    fn element(&self, node: Node<'_>) -> Result<Element, ParseError> {
        if node.kind() == "command" {
            Ok(Element::Command(self.command(node)?))
        } else {
            Ok(Element::Expr(self.expr(node)?))
        }
    }

    fn command(&self, node: Node<'_>) -> Result<Command, ParseError> {
        let (line, column) = self.position(node);
        let mut name = None;
        let mut elements: Vec<CommandElement> = Vec::new();
        for child in all_children(node) {
            match child.kind() {
                "command_name" => name = Some(self.text(child).to_string()),
                "command_elements" => elements = self.command_elements(child)?,
                "command_invokation_operator" => {
                    return Err(self.unsupported(child, "invoking with & or ."));
                }
                _ => return Err(self.unsupported(child, "this command form")),
            }
        }
        let name = name.ok_or_else(|| self.unsupported(node, "a command without a name"))?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.unsupported(node, "this command name"));
        }
        Ok(Command {
            name,
            line,
            column,
            text: self.text(node).to_string(),
            elements,
        })
    }

    fn command_elements(&self, node: Node<'_>) -> Result<Vec<CommandElement>, ParseError> {
        let mut out: Vec<CommandElement> = Vec::new();
        let mut colon_pending = false;
        let mut joining = false;
        for child in all_children(node) {
            match child.kind() {
                "command_argument_sep" => {
                    if self.text(child).trim() == ":" {
                        if !matches!(out.last(), Some(CommandElement::Parameter { .. })) {
                            return Err(self.unsupported(child, "a colon here"));
                        }
                        colon_pending = true;
                    }
                }
                "command_parameter" => {
                    let text = self.text(child);
                    let name = text.trim_start_matches('-').trim_end_matches(':');
                    if name.starts_with(|c: char| c.is_ascii_digit()) {
                        let value: i64 = text
                            .parse()
                            .map_err(|_| self.unsupported(child, "this numeric argument"))?;
                        out.push(CommandElement::Argument(Expr::Literal(Value::Int(value))));
                    } else {
                        out.push(CommandElement::Parameter {
                            name: name.to_string(),
                            colon_value: None,
                        });
                        colon_pending = text.ends_with(':');
                    }
                }
                "," => {
                    if !matches!(out.last(), Some(CommandElement::Argument(_))) {
                        return Err(self.unsupported(child, "a comma here"));
                    }
                    joining = true;
                }
                kind if kind.contains("redirection") => {
                    return Err(self.unsupported(child, "redirection"));
                }
                _ if child.is_named() => {
                    let expr = self.expr(child)?;
                    if joining {
                        joining = false;
                        match out.pop() {
                            Some(CommandElement::Argument(Expr::List(mut items))) => {
                                items.push(expr);
                                out.push(CommandElement::Argument(Expr::List(items)));
                            }
                            Some(CommandElement::Argument(first)) => {
                                out.push(CommandElement::Argument(Expr::List(vec![first, expr])));
                            }
                            _ => return Err(self.unsupported(child, "this argument list")),
                        }
                    } else if colon_pending {
                        colon_pending = false;
                        match out.last_mut() {
                            Some(CommandElement::Parameter { colon_value, .. }) => {
                                *colon_value = Some(expr);
                            }
                            _ => return Err(self.unsupported(child, "this argument")),
                        }
                    } else {
                        out.push(CommandElement::Argument(expr));
                    }
                }
                _ => return Err(self.unsupported(child, "this command element")),
            }
        }
        if joining || colon_pending {
            return Err(self.unsupported(node, "an unfinished argument"));
        }
        Ok(out)
    }

    fn if_statement(&self, node: Node<'_>) -> Result<StmtKind, ParseError> {
        let mut clauses = Vec::new();
        let mut otherwise = None;
        let mut condition = None;
        for child in all_children(node) {
            match child.kind() {
                "if" | "(" | ")" => {}
                "pipeline" => condition = Some(self.pipeline(child)?),
                "statement_block" => {
                    let c = condition
                        .take()
                        .ok_or_else(|| self.unsupported(node, "this if statement"))?;
                    clauses.push((c, self.statement_block(child)?));
                }
                "elseif_clauses" => {
                    for clause in named_children(child) {
                        let mut cond = None;
                        for part in all_children(clause) {
                            match part.kind() {
                                "elseif" | "(" | ")" => {}
                                "pipeline" => cond = Some(self.pipeline(part)?),
                                "statement_block" => {
                                    let c = cond.take().ok_or_else(|| {
                                        self.unsupported(clause, "this elseif clause")
                                    })?;
                                    clauses.push((c, self.statement_block(part)?));
                                }
                                _ => return Err(self.unsupported(part, "this elseif clause")),
                            }
                        }
                    }
                }
                "else_clause" => {
                    let block = named_children(child)
                        .into_iter()
                        .find(|c| c.kind() == "statement_block")
                        .ok_or_else(|| self.unsupported(child, "this else clause"))?;
                    otherwise = Some(self.statement_block(block)?);
                }
                _ => return Err(self.unsupported(child, "this part of an if statement")),
            }
        }
        if clauses.is_empty() {
            return Err(self.unsupported(node, "this if statement"));
        }
        Ok(StmtKind::If { clauses, otherwise })
    }

    fn try_statement(&self, node: Node<'_>) -> Result<StmtKind, ParseError> {
        let mut body = None;
        let mut catch = None;
        for child in all_children(node) {
            match child.kind() {
                "try" => {}
                "statement_block" => body = Some(self.statement_block(child)?),
                "catch_clauses" => {
                    let clauses = named_children(child);
                    let [clause] = clauses.as_slice() else {
                        return Err(self.unsupported(child, "several catch clauses"));
                    };
                    for part in all_children(*clause) {
                        match part.kind() {
                            "catch" => {}
                            "statement_block" => catch = Some(self.statement_block(part)?),
                            _ => return Err(self.unsupported(part, "a typed catch clause")),
                        }
                    }
                }
                _ => return Err(self.unsupported(child, "this part of a try statement")),
            }
        }
        match (body, catch) {
            (Some(body), Some(catch)) => Ok(StmtKind::Try { body, catch }),
            _ => Err(self.unsupported(node, "a try statement without one catch")),
        }
    }

    fn literal(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let start = node.start_byte();
        let (value, len) = decode_single_quoted(&self.src[start..]).ok_or_else(|| {
            self.error(
                node,
                "TerminatorExpectedAtEndOfString",
                "The string is missing the terminator: '.".into(),
            )
        })?;
        if len != node.end_byte() - start {
            return Err(self.error(
                node,
                "LiteralMismatch",
                "This single-quoted literal ends at a different place by PowerShell's rules than tree-sitter's reading; the simulator refuses to guess.".into(),
            ));
        }
        Ok(Expr::Literal(Value::Str(value)))
    }

    fn variable(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let text = self.text(node);
        let Some(body) = text.strip_prefix('$') else {
            return Err(self.unsupported(node, "this variable form"));
        };
        if body.starts_with('{') || body.is_empty() {
            return Err(self.unsupported(node, "this variable form"));
        }
        let (scope, name) = match body.split_once(':') {
            Some((scope, name)) => (Some(scope.to_ascii_lowercase()), name),
            None => (None, body),
        };
        if scope.is_none() {
            match name.to_ascii_lowercase().as_str() {
                "true" => return Ok(Expr::Literal(Value::Bool(true))),
                "false" => return Ok(Expr::Literal(Value::Bool(false))),
                "null" => return Ok(Expr::Literal(Value::Null)),
                _ => {}
            }
        }
        if let Some(s) = &scope
            && !matches!(s.as_str(), "env" | "global" | "script" | "local")
        {
            return Err(self.unsupported(node, "this variable scope"));
        }
        Ok(Expr::Variable(VarRef {
            scope,
            name: name.to_string(),
        }))
    }

    fn type_name(&self, node: Node<'_>) -> Result<String, ParseError> {
        let text = self.text(node).trim();
        text.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .map(|t| t.trim().to_string())
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            })
            .ok_or_else(|| self.unsupported(node, "this type literal"))
    }

    fn member_name(&self, node: Node<'_>) -> Result<String, ParseError> {
        let text = self.text(node);
        if node.kind() == "member_name"
            && !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            Ok(text.to_string())
        } else {
            Err(self.unsupported(node, "a computed member name"))
        }
    }

    fn member_access(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let children = all_children(node);
        let [target, op, member] = children.as_slice() else {
            return Err(self.unsupported(node, "this member access"));
        };
        let name = self.member_name(*member)?;
        match (target.kind(), op.kind()) {
            ("type_literal", "::") => Ok(Expr::StaticMember(self.type_name(*target)?, name)),
            (_, ".") => Ok(Expr::Member(Box::new(self.expr(*target)?), name)),
            _ => Err(self.unsupported(node, "this member access")),
        }
    }

    fn invocation(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let children = all_children(node);
        let [target, op, member, arguments] = children.as_slice() else {
            return Err(self.unsupported(node, "this method call"));
        };
        if target.kind() != "type_literal" || op.kind() != "::" {
            return Err(self.unsupported(node, "calling methods on instances"));
        }
        let mut args = Vec::new();
        for part in named_children(*arguments) {
            if part.kind() != "argument_expression_list" {
                return Err(self.unsupported(part, "these method arguments"));
            }
            for arg in named_children(part) {
                args.push(self.expr(arg)?);
            }
        }
        Ok(Expr::StaticCall(
            self.type_name(*target)?,
            self.member_name(*member)?,
            args,
        ))
    }

    fn hash(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let mut entries = Vec::new();
        for child in all_children(node) {
            match child.kind() {
                "@{" | "}" => {}
                "hash_literal_body" => {
                    for entry in all_children(child) {
                        if entry.kind() != "hash_entry" {
                            return Err(self.unsupported(entry, "this hashtable entry"));
                        }
                        let parts: Vec<Node<'_>> = all_children(entry)
                            .into_iter()
                            .filter(|p| p.kind() != ";")
                            .collect();
                        let [key, eq, value] = parts.as_slice() else {
                            return Err(self.unsupported(entry, "this hashtable entry"));
                        };
                        if eq.kind() != "=" {
                            return Err(self.unsupported(entry, "this hashtable entry"));
                        }
                        let key_node = named_children(*key)
                            .into_iter()
                            .next()
                            .ok_or_else(|| self.unsupported(*key, "this hashtable key"))?;
                        let key = match key_node.kind() {
                            "simple_name" => self.text(key_node).to_string(),
                            _ => match self.expr(key_node)? {
                                Expr::Literal(v) => v.to_text(),
                                _ => return Err(self.unsupported(key_node, "this hashtable key")),
                            },
                        };
                        if entries
                            .iter()
                            .any(|(k, _): &(String, Pipeline)| k.eq_ignore_ascii_case(&key))
                        {
                            return Err(self.error(
                                key_node,
                                "DuplicateKeyInHashLiteral",
                                format!("Duplicate keys '{key}' are not allowed in hash literals."),
                            ));
                        }
                        entries.push((key, self.pipeline(*value)?));
                    }
                }
                _ => return Err(self.unsupported(child, "this hashtable")),
            }
        }
        Ok(Expr::Hash(entries))
    }

    fn script_block(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let mut stmts = Vec::new();
        for child in named_children(node) {
            match child.kind() {
                "script_block" => {
                    for part in named_children(child) {
                        match part.kind() {
                            "script_block_body" | "statement_list" => {
                                stmts.extend(self.block(part)?)
                            }
                            _ => stmts.push(self.statement(part)?),
                        }
                    }
                }
                _ => return Err(self.unsupported(child, "this script block")),
            }
        }
        Ok(Expr::ScriptBlock(Rc::new(Block {
            stmts,
            text: self.text(node).to_string(),
        })))
    }

    fn binary(&self, node: Node<'_>, children: &[Node<'_>]) -> Result<Expr, ParseError> {
        let [left, op, right] = children else {
            return Err(self.unsupported(node, "this expression"));
        };
        let op_text = self.text(*op).trim().to_ascii_lowercase();
        let op = match op_text.as_str() {
            "-and" => BinaryOp::And,
            "-or" => BinaryOp::Or,
            "+" => BinaryOp::Add,
            other => {
                let (case_sensitive, base) = match other.strip_prefix("-c") {
                    Some(rest) if rest != "ontains" => (true, format!("-{rest}")),
                    _ => (
                        false,
                        other
                            .strip_prefix("-i")
                            .map(|r| format!("-{r}"))
                            .unwrap_or_else(|| other.to_string()),
                    ),
                };
                let compare = match base.as_str() {
                    "-eq" => CompareOp::Eq,
                    "-ne" => CompareOp::Ne,
                    "-gt" => CompareOp::Gt,
                    "-ge" => CompareOp::Ge,
                    "-lt" => CompareOp::Lt,
                    "-le" => CompareOp::Le,
                    "-like" => CompareOp::Like,
                    "-notlike" => CompareOp::NotLike,
                    _ => return Err(self.unsupported(*op, "this operator")),
                };
                BinaryOp::Compare(compare, case_sensitive)
            }
        };
        Ok(Expr::Binary(
            op,
            Box::new(self.expr(*left)?),
            Box::new(self.expr(*right)?),
        ))
    }

    fn expr(&self, node: Node<'_>) -> Result<Expr, ParseError> {
        let kind = node.kind();
        if WRAPPERS.contains(&kind) {
            let children = all_children(node);
            return match children.as_slice() {
                [only] => self.expr(*only),
                _ if kind == "array_literal_expression" => {
                    let mut items = Vec::new();
                    for child in children {
                        match child.kind() {
                            "," => {}
                            _ => items.push(self.expr(child)?),
                        }
                    }
                    Ok(Expr::List(items))
                }
                _ => self.binary(node, &children),
            };
        }
        match kind {
            "pipeline" => {
                let pipeline = self.pipeline(node)?;
                match pipeline.elements.as_slice() {
                    [Element::Expr(e)] => Ok(e.clone()),
                    _ => Ok(Expr::Paren(Box::new(pipeline))),
                }
            }
            "string_literal" => match named_children(node).as_slice() {
                [inner] if inner.kind() == "verbatim_string_characters" => self.literal(*inner),
                _ => Err(self.unsupported(node, "double-quoted or here-strings")),
            },
            "verbatim_string_characters" => self.literal(node),
            "expandable_string_literal"
            | "expandable_here_string_literal"
            | "verbatim_here_string_characters" => {
                Err(self.unsupported(node, "double-quoted or here-strings"))
            }
            "decimal_integer_literal" => self
                .text(node)
                .parse::<i64>()
                .map(|i| Expr::Literal(Value::Int(i)))
                .map_err(|_| self.unsupported(node, "this number")),
            "hexadecimal_integer_literal" => {
                let text = self.text(node);
                i64::from_str_radix(text.trim_start_matches("0x").trim_start_matches("0X"), 16)
                    .map(|i| Expr::Literal(Value::Int(i)))
                    .map_err(|_| self.unsupported(node, "this number"))
            }
            "real_literal" => self
                .text(node)
                .parse::<f64>()
                .map(|d| Expr::Literal(Value::Double(d)))
                .map_err(|_| self.unsupported(node, "this number")),
            "variable" => self.variable(node),
            "generic_token" => Ok(Expr::Literal(Value::Str(self.text(node).to_string()))),
            "member_access" => self.member_access(node),
            "invokation_expression" => self.invocation(node),
            "type_literal" => Ok(Expr::Type(self.type_name(node)?)),
            "parenthesized_expression" => {
                let inner = named_children(node);
                let [only] = inner.as_slice() else {
                    return Err(self.unsupported(node, "this parenthesized expression"));
                };
                match self.pipeline(*only)? {
                    Pipeline { elements } if elements.len() == 1 => match &elements[0] {
                        Element::Expr(e) => Ok(e.clone()),
                        Element::Command(_) => Ok(Expr::Paren(Box::new(Pipeline { elements }))),
                    },
                    p => Ok(Expr::Paren(Box::new(p))),
                }
            }
            "array_expression" | "sub_expression" => {
                let mut stmts = Vec::new();
                for child in named_children(node) {
                    stmts.extend(self.block(child)?);
                }
                Ok(if kind == "array_expression" {
                    Expr::ArrayOf(stmts)
                } else {
                    Expr::SubExpression(stmts)
                })
            }
            "expression_with_unary_operator" => {
                let children = all_children(node);
                let [op, operand] = children.as_slice() else {
                    return Err(self.unsupported(node, "this unary expression"));
                };
                match self.text(*op).to_ascii_lowercase().as_str() {
                    "-not" | "!" => Ok(Expr::Not(Box::new(self.expr(*operand)?))),
                    _ => Err(self.unsupported(*op, "this unary operator")),
                }
            }
            "hash_literal_expression" => self.hash(node),
            "script_block_expression" => self.script_block(node),
            "command" => Ok(Expr::Paren(Box::new(Pipeline {
                elements: vec![Element::Command(self.command(node)?)],
            }))),
            _ => Err(self.unsupported(node, "this expression")),
        }
    }
}

/// Finds the first `ERROR` or `MISSING` node.
fn first_error<'t>(node: Node<'t>) -> Option<Node<'t>> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    if !node.has_error() {
        return None;
    }
    let mut cursor = node.walk();
    let children: Vec<Node<'t>> = node.children(&mut cursor).collect();
    children.into_iter().find_map(first_error)
}

/// Parses a script's text (BOM already removed) into its top-level block.
pub fn parse(src: &str) -> Result<Block, ParseError> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .map_err(|e| ParseError {
            line: 1,
            column: 1,
            message: format!("tree-sitter-powershell is unavailable: {e}"),
            id: "ParserUnavailable",
        })?;
    let tree = parser.parse(src, None).ok_or(ParseError {
        line: 1,
        column: 1,
        message: "tree-sitter-powershell returned no tree".into(),
        id: "ParserUnavailable",
    })?;
    let root = tree.root_node();
    let lowerer = Lowerer { src };
    if let Some(bad) = first_error(root) {
        let what = if bad.is_missing() {
            format!("Missing '{}'.", bad.kind())
        } else {
            let snippet: String = lowerer.text(bad).chars().take(40).collect();
            format!("Unexpected token '{}' in expression or statement.", snippet)
        };
        return Err(lowerer.error(bad, "ParseError", what));
    }
    let mut stmts = Vec::new();
    for child in named_children(root) {
        match child.kind() {
            "statement_list" => stmts.extend(lowerer.block(child)?),
            "empty_statement" => {}
            _ => return Err(lowerer.unsupported(child, "this top-level construct")),
        }
    }
    Ok(Block {
        stmts,
        text: src.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(src: &str) -> Vec<Stmt> {
        parse(src).expect("parses").stmts
    }

    #[test]
    fn literals_are_decoded_by_powershell_rules() {
        let stmts = body("$a = 'it''s ‘‘x’’ $(calc) \"q\"'\n");
        let StmtKind::Assign { value, .. } = &stmts[0].kind else {
            panic!("assignment")
        };
        assert_eq!(
            value.elements[0],
            Element::Expr(Expr::Literal(Value::str("it's ‘x’ $(calc) \"q\"")))
        );
        // An unpaired typographic quote ends the literal for PowerShell but not for
        // tree-sitter: the simulator refuses to guess.
        let e = parse("$a = 'a’; calc; ‘b'\n").expect_err("injection");
        assert_eq!(e.id, "LiteralMismatch");
    }

    #[test]
    fn commands_keep_parameters_arguments_lists_and_colon_values() {
        let stmts = body("Select-Object -Property A, B -Confirm:$false 'x' -Depth 10\n");
        let StmtKind::Pipeline(p) = &stmts[0].kind else {
            panic!("pipeline")
        };
        let Element::Command(c) = &p.elements[0] else {
            panic!("command")
        };
        assert_eq!(c.name, "Select-Object");
        assert_eq!(
            c.elements,
            vec![
                CommandElement::Parameter {
                    name: "Property".into(),
                    colon_value: None
                },
                CommandElement::Argument(Expr::List(vec![
                    Expr::Literal(Value::str("A")),
                    Expr::Literal(Value::str("B"))
                ])),
                CommandElement::Parameter {
                    name: "Confirm".into(),
                    colon_value: Some(Expr::Literal(Value::Bool(false)))
                },
                CommandElement::Argument(Expr::Literal(Value::str("x"))),
                CommandElement::Parameter {
                    name: "Depth".into(),
                    colon_value: None
                },
                CommandElement::Argument(Expr::Literal(Value::Int(10))),
            ]
        );
    }

    #[test]
    fn every_golden_script_parses() {
        for dir in ["push-filezilla", "import-filezilla"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(dir);
            for entry in std::fs::read_dir(path).expect("golden dir") {
                let path = entry.expect("entry").path();
                let text = std::fs::read_to_string(&path).expect("utf-8");
                let text = text.trim_start_matches('\u{FEFF}');
                if let Err(e) = parse(text) {
                    panic!("{}: line {}: {}", path.display(), e.line, e.message);
                }
            }
        }
    }

    #[test]
    fn constructs_outside_the_subset_are_refused_before_running() {
        for src in [
            "foreach ($x in $y) { $x }\n",
            "$a = \"x$y\"\n",
            "& $script\n",
            "$a = [int]$b\n",
            "$a = $b[0]\n",
            "$a = $b.Foo()\n",
            "function f { 1 }\n",
            "try { 1 } catch [System.Exception] { 2 }\n",
            "try { 1 } finally { 2 }\n",
            "Get-X > out.txt\n",
            "$a += 1\n",
            "$a.b = 1\n",
            "return\n",
            "$a = @'\nx\n'@\n",
            "$a = 1 -band 2\n",
        ] {
            let e = parse(src).expect_err(src);
            assert!(
                e.id == "UnsupportedConstruct" || e.id == "ParseError",
                "{src}: {e:?}"
            );
        }
        let e = parse("if ($a {\n").expect_err("syntax");
        assert_eq!(e.id, "ParseError");
    }

    #[test]
    fn positions_are_one_based() {
        let stmts = body("\n  $a = 1\n");
        assert_eq!((stmts[0].line, stmts[0].column), (2, 3));
    }
}
