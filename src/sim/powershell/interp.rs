//! The interpreter: runs a parsed script against a host session. It owns PowerShell's execution
//! semantics for the subset — the output stream, variables (`$env:`, preference variables),
//! pipelines, `if`, `try/catch`, `throw`, `exit`, error records (`$_.Exception.Message`,
//! `$_.InvocationInfo.ScriptLineNumber`), `$ErrorActionPreference`/`-ErrorAction`, terminating vs.
//! non-terminating errors, and PowerShell's error display on stderr.
//!
//! The host ([`Host`]) is what outlives one script in a session: the imported module, the
//! drives, the current location and `[Console]::OutputEncoding`.

use super::commands;
use super::params::{self, BindError, RawArg};
use super::syntax::{
    BinaryOp, Block, Command, CommandElement, Element, Expr, Pipeline, Stmt, StmtKind, Target,
};
use super::value::{self, ObjectKind, Value};
use crate::sim::site::Site;
use crate::sim::site::clock::CivilTime;
use crate::sim::site::faults::FaultPlan;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

/// How the host writes script output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-File script.ps1`: objects are formatted for the console.
    PerStep,
    /// The session host: each output object is written as `[string]$_`.
    Session,
}

/// `[Console]::OutputEncoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEncoding {
    /// The OEM code page (437): anything outside ASCII comes out as `?`.
    Oem,
    Utf8 {
        bom: bool,
    },
}

/// A PowerShell drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    pub name: String,
    pub provider: String,
    pub root: String,
}

/// What lasts for the life of a host process.
pub struct Host {
    pub site: Site,
    pub faults: FaultPlan,
    pub import_delay: Duration,
    pub mode: Mode,
    pub module_loaded: bool,
    pub drives: Vec<Drive>,
    pub location: String,
    pub encoding: ConsoleEncoding,
    bom_written: bool,
    pub out: Box<dyn Write>,
    pub err: Box<dyn Write>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("site", &self.site.dir())
            .field("mode", &self.mode)
            .field("module_loaded", &self.module_loaded)
            .field("drives", &self.drives)
            .field("location", &self.location)
            .finish()
    }
}

impl Host {
    pub fn new(
        site: Site,
        faults: FaultPlan,
        import_delay: Duration,
        mode: Mode,
        out: Box<dyn Write>,
        err: Box<dyn Write>,
    ) -> Host {
        Host {
            site,
            faults,
            import_delay,
            mode,
            module_loaded: false,
            drives: vec![Drive {
                name: "C".into(),
                provider: "FileSystem".into(),
                root: "C:\\".into(),
            }],
            location: "C:\\Windows\\system32".into(),
            encoding: ConsoleEncoding::Oem,
            bom_written: false,
            out,
            err,
        }
    }

    fn encode(&mut self, text: &str) -> Vec<u8> {
        match self.encoding {
            ConsoleEncoding::Oem => text
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect::<String>()
                .into_bytes(),
            ConsoleEncoding::Utf8 { bom } => {
                let mut bytes = Vec::with_capacity(text.len() + 3);
                if bom && !self.bom_written {
                    bytes.extend_from_slice("\u{FEFF}".as_bytes());
                }
                self.bom_written = true;
                bytes.extend_from_slice(text.as_bytes());
                bytes
            }
        }
    }

    /// Writes a line to stdout (flushed, so a crash loses nothing already written).
    pub fn write_line(&mut self, text: &str) {
        let mut bytes = self.encode(text);
        bytes.extend_from_slice(b"\r\n");
        let _ = self.out.write_all(&bytes);
        let _ = self.out.flush();
    }

    /// Writes raw text to stdout.
    pub fn write_raw(&mut self, text: &str) {
        let bytes = self.encode(text);
        let _ = self.out.write_all(&bytes);
        let _ = self.out.flush();
    }

    /// Writes a line to stderr.
    pub fn error_line(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.write_all(b"\r\n");
        let _ = self.err.flush();
    }

    /// Whether the current location is on the site's CMSite drive.
    pub fn on_site_drive(&self) -> bool {
        let code = &self.site.config().site_code;
        self.location
            .split_once(':')
            .is_some_and(|(drive, _)| drive.eq_ignore_ascii_case(code))
            && self
                .drives
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(code) && d.provider == "CMSite")
    }
}

/// A PowerShell error record.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    pub message: String,
    /// The exception's .NET type.
    pub exception: String,
    pub category: String,
    pub id: String,
    /// The command it came from, for the display.
    pub command: Option<String>,
    pub line: usize,
    pub column: usize,
    /// Whether only the statement stops (binding errors, unknown commands) when the preference
    /// is not `Stop`.
    pub statement_terminating: bool,
}

impl ErrorRecord {
    /// `$_` in a catch block.
    pub fn to_value(&self, script: &ScriptFile) -> Value {
        let line_text = script.line(self.line).to_string();
        let exception = Value::object(
            &self.exception,
            ObjectKind::Detail,
            vec![
                ("Message", Value::str(&self.message)),
                ("Source", Value::str("System.Management.Automation")),
            ],
        );
        let invocation = Value::object(
            "System.Management.Automation.InvocationInfo",
            ObjectKind::Detail,
            vec![
                ("ScriptLineNumber", Value::Int(self.line as i64)),
                ("OffsetInLine", Value::Int(self.column as i64)),
                ("Line", Value::str(line_text)),
                ("ScriptName", Value::str(&script.path)),
                ("PositionMessage", Value::str(self.position(script))),
            ],
        );
        let category = Value::object(
            "System.Management.Automation.ErrorCategoryInfo",
            ObjectKind::Detail,
            vec![
                ("Category", Value::str(&self.category)),
                ("Reason", Value::str(short_type(&self.exception))),
                ("Message", Value::str(&self.category)),
            ],
        );
        Value::object(
            "System.Management.Automation.ErrorRecord",
            ObjectKind::ErrorRecord,
            vec![
                ("Exception", exception),
                ("InvocationInfo", invocation),
                ("CategoryInfo", category),
                ("FullyQualifiedErrorId", Value::str(&self.id)),
                ("TargetObject", Value::Null),
                ("Message", Value::str(&self.message)),
            ],
        )
    }

    fn position(&self, script: &ScriptFile) -> String {
        let text = script.line(self.line);
        let col = self.column.max(1);
        let span = text.chars().count().saturating_sub(col - 1).max(1);
        format!(
            "At {}:{} char:{}\r\n+ {}\r\n+ {}{}",
            script.path,
            self.line,
            col,
            text,
            " ".repeat(col - 1),
            "~".repeat(span)
        )
    }

    /// PowerShell 5.1's error view.
    pub fn display(&self, script: &ScriptFile) -> String {
        let head = match &self.command {
            Some(c) => format!("{c} : {}", self.message),
            None => self.message.clone(),
        };
        format!(
            "{head}\r\n{}\r\n    + CategoryInfo          : {}: (:) [{}], {}\r\n    + FullyQualifiedErrorId : {}\r\n ",
            self.position(script),
            self.category,
            self.command.as_deref().unwrap_or(""),
            short_type(&self.exception),
            self.id
        )
    }
}

fn short_type(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// Why execution left the normal path.
#[derive(Debug, Clone, PartialEq)]
pub enum Flow {
    /// A terminating error (catchable).
    Error(Box<ErrorRecord>),
    /// `exit N`.
    Exit(i32),
    /// A simulator limitation: uncatchable, reported on stderr.
    Fatal(String),
}

/// A loaded script.
#[derive(Debug, Clone)]
pub struct ScriptFile {
    pub path: String,
    pub source: String,
    pub block: Block,
}

impl ScriptFile {
    pub fn line(&self, n: usize) -> &str {
        self.source
            .split('\n')
            .nth(n.saturating_sub(1))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// How a script run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ran to its end or `exit N`.
    Exited(i32),
    /// An uncaught terminating error (already displayed on stderr).
    Failed(Box<ErrorRecord>),
    /// A simulator limitation (already reported on stderr).
    Fatal(String),
}

/// One script's execution state.
pub struct Exec<'h> {
    pub host: &'h mut Host,
    pub script: Rc<ScriptFile>,
    vars: HashMap<String, Value>,
    underscore: Vec<Value>,
    capture: Vec<Vec<Value>>,
    try_depth: usize,
    /// The statement being run (for error positions).
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Debug for Exec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("script", &self.script.path)
            .field("line", &self.line)
            .finish()
    }
}

const PREFERENCE_VARIABLES: &[&str] = &[
    "erroractionpreference",
    "progresspreference",
    "warningpreference",
    "verbosepreference",
    "debugpreference",
    "informationpreference",
];

/// How a script pasted at an interactive prompt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PastedOutcome {
    /// It ran to its end; the console stays open.
    Ended,
    /// It ran `exit N`, which at an interactive prompt closes the console.
    ClosedConsole(i32),
    /// An uncaught terminating error (already displayed on stderr); the console stays open.
    Failed(Box<ErrorRecord>),
    /// A simulator limitation (already reported on stderr).
    Fatal(String),
}

/// Runs `script` on `host` as a script file (`-File`, or `& <file>` in the session host):
/// `$PSCommandPath` is the file's path, and `exit N` ends the script with code N. Output and
/// errors go to the host's streams.
pub fn run_script(host: &mut Host, script: Rc<ScriptFile>) -> Outcome {
    let path = script.path.clone();
    match execute(host, script, Some(path)) {
        Ok(()) => Outcome::Exited(0),
        Err(Flow::Exit(code)) => Outcome::Exited(code),
        Err(Flow::Error(record)) => Outcome::Failed(record),
        Err(Flow::Fatal(message)) => Outcome::Fatal(message),
    }
}

/// Runs `script`'s text as if an admin pasted it at an interactive PowerShell prompt: there is no
/// script file, so `$PSCommandPath` is empty, and an `exit` would close the console.
pub fn run_pasted(host: &mut Host, script: Rc<ScriptFile>) -> PastedOutcome {
    match execute(host, script, None) {
        Ok(()) => PastedOutcome::Ended,
        Err(Flow::Exit(code)) => PastedOutcome::ClosedConsole(code),
        Err(Flow::Error(record)) => PastedOutcome::Failed(record),
        Err(Flow::Fatal(message)) => PastedOutcome::Fatal(message),
    }
}

/// Runs `script` with `$PSCommandPath` set to `file` (a script file) or unset (a prompt);
/// uncaught errors and simulator limitations are reported on stderr.
fn execute(host: &mut Host, script: Rc<ScriptFile>, file: Option<String>) -> Result<(), Flow> {
    let mut vars = HashMap::new();
    if let Some(file) = file {
        vars.insert("pscommandpath".to_string(), Value::str(&file));
    }
    let mut exec = Exec {
        host,
        script: Rc::clone(&script),
        vars,
        underscore: Vec::new(),
        capture: Vec::new(),
        try_depth: 0,
        line: 1,
        column: 1,
    };
    let result = exec.run_block(&script.block.stmts);
    match &result {
        Ok(()) | Err(Flow::Exit(_)) => {}
        Err(Flow::Error(record)) => {
            let text = record.display(&script);
            exec.host.error_line(&text);
        }
        Err(Flow::Fatal(message)) => {
            let text = format!(
                "sccm-connector sim powershell: {}:{}: {message}",
                script.path, exec.line
            );
            exec.host.error_line(&text);
        }
    }
    result
}

impl<'h> Exec<'h> {
    /// A terminating error raised at the current statement.
    pub fn error(
        &self,
        command: Option<&str>,
        exception: &str,
        category: &str,
        id: &str,
        message: impl Into<String>,
    ) -> Flow {
        Flow::Error(Box::new(ErrorRecord {
            message: message.into(),
            exception: exception.into(),
            category: category.into(),
            id: id.into(),
            command: command.map(str::to_string),
            line: self.line,
            column: self.column,
            statement_terminating: false,
        }))
    }

    pub fn fatal(&self, message: impl Into<String>) -> Flow {
        Flow::Fatal(message.into())
    }

    /// The effective error action: `-ErrorAction`, else `$ErrorActionPreference`.
    pub fn error_action(&self, bound: &params::Bound) -> String {
        bound
            .str("ErrorAction")
            .or_else(|| self.vars.get("erroractionpreference").map(Value::to_text))
            .unwrap_or_else(|| "Continue".into())
    }

    /// A non-terminating error from a cmdlet, handled by its error action: suppressed,
    /// displayed, or raised.
    pub fn write_error(&mut self, bound: &params::Bound, record: ErrorRecord) -> Result<(), Flow> {
        match self.error_action(bound).as_str() {
            "SilentlyContinue" | "Ignore" => Ok(()),
            "Stop" => Err(Flow::Error(Box::new(record))),
            _ => {
                let text = record.display(&self.script);
                self.host.error_line(&text);
                Ok(())
            }
        }
    }

    /// Writes a warning (unless `-WarningAction SilentlyContinue`).
    pub fn warning(&mut self, bound: &params::Bound, text: &str) {
        let action = bound
            .str("WarningAction")
            .or_else(|| self.vars.get("warningpreference").map(Value::to_text))
            .unwrap_or_else(|| "Continue".into());
        if !matches!(action.as_str(), "SilentlyContinue" | "Ignore") {
            self.host.write_line(&format!("WARNING: {text}"));
        }
    }

    pub fn variable(&self, name: &str) -> Value {
        self.vars
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn output(&mut self, value: Value) {
        if let Some(top) = self.capture.last_mut() {
            top.push(value);
            return;
        }
        match self.host.mode {
            Mode::PerStep => {
                for line in value::format_for_console(&value) {
                    self.host.write_line(&line);
                }
            }
            Mode::Session => {
                if !value.is_null() {
                    let text = value.to_text();
                    self.host.write_line(&text);
                }
            }
        }
    }

    fn run_block(&mut self, stmts: &[Stmt]) -> Result<(), Flow> {
        for stmt in stmts {
            self.line = stmt.line;
            self.column = stmt.column;
            match self.run_stmt(stmt) {
                Err(Flow::Error(record))
                    if record.statement_terminating
                        && self.try_depth == 0
                        && self.variable("ErrorActionPreference").to_text() != "Stop" =>
                {
                    let text = record.display(&self.script);
                    self.host.error_line(&text);
                }
                other => other?,
            }
        }
        Ok(())
    }

    fn run_capturing(&mut self, stmts: &[Stmt]) -> Result<Vec<Value>, Flow> {
        self.capture.push(Vec::new());
        let result = self.run_block(stmts);
        let captured = self.capture.pop().unwrap_or_default();
        result.map(|()| captured)
    }

    fn run_stmt(&mut self, stmt: &Stmt) -> Result<(), Flow> {
        match &stmt.kind {
            StmtKind::Pipeline(p) => {
                for v in self.pipeline(p)? {
                    self.output(v);
                }
                Ok(())
            }
            StmtKind::Assign { target, value } => {
                let v = self.pipeline_value(value)?;
                self.assign(target, v)
            }
            StmtKind::If { clauses, otherwise } => {
                for (condition, body) in clauses {
                    if self.pipeline_value(condition)?.truthy() {
                        return self.run_block(body);
                    }
                }
                match otherwise {
                    Some(body) => self.run_block(body),
                    None => Ok(()),
                }
            }
            StmtKind::Try { body, catch } => {
                self.try_depth += 1;
                let result = self.run_block(body);
                self.try_depth -= 1;
                match result {
                    Err(Flow::Error(record)) => {
                        let value = record.to_value(&self.script);
                        self.underscore.push(value);
                        let result = self.run_block(catch);
                        self.underscore.pop();
                        result
                    }
                    other => other,
                }
            }
            StmtKind::Throw(value) => {
                let v = match value {
                    Some(p) => self.pipeline_value(p)?,
                    None => Value::Null,
                };
                let message = match &v {
                    Value::Null => "ScriptHalted".to_string(),
                    v => v.to_text(),
                };
                let mut flow = self.error(
                    None,
                    "System.Management.Automation.RuntimeException",
                    "OperationStopped",
                    &message,
                    message.clone(),
                );
                if let Flow::Error(record) = &mut flow {
                    record.category = "OperationStopped".into();
                }
                Err(flow)
            }
            StmtKind::Exit(value) => {
                let code = match value {
                    Some(p) => {
                        let v = self.pipeline_value(p)?;
                        match v.as_number() {
                            Some(n) if n.fract() == 0.0 => n as i64 as i32,
                            _ => {
                                return Err(self.error(
                                    None,
                                    "System.Management.Automation.RuntimeException",
                                    "InvalidArgument",
                                    "RuntimeException",
                                    format!(
                                        "Cannot convert value \"{}\" to type \"System.Int32\". Error: \"Input string was not in a correct format.\"",
                                        v.to_text()
                                    ),
                                ));
                            }
                        }
                    }
                    None => 0,
                };
                Err(Flow::Exit(code))
            }
        }
    }

    fn assign(&mut self, target: &Target, value: Value) -> Result<(), Flow> {
        match target {
            Target::Discard => Ok(()),
            Target::Variable(v) => {
                if v.scope.as_deref() == Some("env") {
                    return Err(self.fatal("assigning environment variables is not supported"));
                }
                let name = v.name.to_ascii_lowercase();
                if name == "_" || name == "true" || name == "false" || name == "null" {
                    return Err(self.error(
                        None,
                        "System.Management.Automation.SessionStateUnauthorizedAccessException",
                        "WriteError",
                        "VariableNotWritable",
                        format!(
                            "Cannot overwrite variable {} because it is read-only or constant.",
                            v.name
                        ),
                    ));
                }
                let value = if PREFERENCE_VARIABLES.contains(&name.as_str()) {
                    let text = value.to_text();
                    let names = [
                        "SilentlyContinue",
                        "Stop",
                        "Continue",
                        "Inquire",
                        "Ignore",
                        "Suspend",
                    ];
                    match names.iter().find(|n| n.eq_ignore_ascii_case(text.trim())) {
                        Some(n) => Value::str(*n),
                        None => {
                            return Err(self.error(
                                None,
                                "System.Management.Automation.ArgumentTransformationMetadataException",
                                "MetadataError",
                                "RuntimeException",
                                format!(
                                    "Cannot convert value \"{text}\" to type \"System.Management.Automation.ActionPreference\". Error: \"Unable to match the identifier name {text} to a valid enumerator name. Specify one of the following enumerator names and try again:\n{}\"",
                                    names.join(", ")
                                ),
                            ));
                        }
                    }
                } else {
                    value
                };
                self.vars.insert(name, value);
                Ok(())
            }
            Target::Static { type_name, member } => {
                if !is_console(type_name) {
                    return Err(self.fatal(format!(
                        "assigning [{type_name}]::{member} is not supported"
                    )));
                }
                match member.to_ascii_lowercase().as_str() {
                    "outputencoding" => match &value {
                        Value::Object(o) => match o.kind {
                            ObjectKind::Utf8Encoding(bom) => {
                                self.host.encoding = ConsoleEncoding::Utf8 { bom };
                                Ok(())
                            }
                            _ => Err(self.fatal(
                                "only a UTF8Encoding can be assigned to [Console]::OutputEncoding",
                            )),
                        },
                        Value::Null => Err(self.error(
                            None,
                            "System.Management.Automation.SetValueInvocationException",
                            "NotSpecified",
                            "ExceptionWhenSetting",
                            "Exception setting \"OutputEncoding\": \"Value cannot be null.\r\nParameter name: value\"",
                        )),
                        _ => Err(self.fatal(
                            "only a UTF8Encoding can be assigned to [Console]::OutputEncoding",
                        )),
                    },
                    "inputencoding" => Ok(()),
                    _ => Err(self.fatal(format!("assigning [Console]::{member} is not supported"))),
                }
            }
        }
    }

    /// A pipeline's output items.
    fn pipeline(&mut self, p: &Pipeline) -> Result<Vec<Value>, Flow> {
        let mut input: Option<Vec<Value>> = None;
        for element in &p.elements {
            input = Some(match element {
                Element::Expr(e) => self.eval(e)?.enumerate(),
                Element::Command(c) => self.invoke(c, input.take())?,
            });
        }
        Ok(input.unwrap_or_default())
    }

    /// A pipeline as one value: an expression keeps its value; commands' output is unwrapped.
    fn pipeline_value(&mut self, p: &Pipeline) -> Result<Value, Flow> {
        match p.elements.as_slice() {
            [Element::Expr(e)] => self.eval(e),
            _ => Ok(Value::from_output(self.pipeline(p)?)),
        }
    }

    fn eval(&mut self, expr: &Expr) -> Result<Value, Flow> {
        match expr {
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Variable(v) => Ok(match v.scope.as_deref() {
                Some("env") => self.env(&v.name),
                _ if v.name == "_" => self.underscore.last().cloned().unwrap_or(Value::Null),
                _ => self.variable(&v.name),
            }),
            Expr::Member(target, name) => Ok(self.eval(target)?.member(name)),
            Expr::StaticMember(type_name, member) => self.static_member(type_name, member),
            Expr::StaticCall(type_name, method, args) => {
                let values = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<Vec<_>, _>>()?;
                self.static_call(type_name, method, values)
            }
            Expr::Type(name) => Err(self.fatal(format!(
                "using the type [{name}] as a value is not supported"
            ))),
            Expr::Not(e) => Ok(Value::Bool(!self.eval(e)?.truthy())),
            Expr::Binary(op, left, right) => match op {
                BinaryOp::And => Ok(Value::Bool(
                    self.eval(left)?.truthy() && self.eval(right)?.truthy(),
                )),
                BinaryOp::Or => Ok(Value::Bool(
                    self.eval(left)?.truthy() || self.eval(right)?.truthy(),
                )),
                BinaryOp::Add => {
                    let (l, r) = (self.eval(left)?, self.eval(right)?);
                    value::add(&l, &r).map_err(|m| {
                        self.error(
                            None,
                            "System.Management.Automation.RuntimeException",
                            "InvalidOperation",
                            "MethodNotFound",
                            m,
                        )
                    })
                }
                BinaryOp::Compare(op, case_sensitive) => {
                    let (l, r) = (self.eval(left)?, self.eval(right)?);
                    value::compare(&l, &r, *op, *case_sensitive).map_err(|e| {
                        self.error(
                            None,
                            "System.Management.Automation.RuntimeException",
                            "InvalidOperation",
                            "ComparisonFailure",
                            e.0,
                        )
                    })
                }
            },
            Expr::Paren(p) => self.pipeline_value(p),
            Expr::ArrayOf(stmts) => {
                let items = self.run_capturing(stmts)?;
                Ok(Value::Array(
                    items.into_iter().flat_map(Value::enumerate).collect(),
                ))
            }
            Expr::SubExpression(stmts) => {
                let items = self.run_capturing(stmts)?;
                Ok(Value::from_output(
                    items.into_iter().flat_map(Value::enumerate).collect(),
                ))
            }
            Expr::List(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|i| self.eval(i))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            Expr::Hash(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, p) in entries {
                    out.push((key.clone(), self.pipeline_value(p)?));
                }
                Ok(Value::Hashtable(out))
            }
            Expr::ScriptBlock(block) => Ok(Value::ScriptBlock(Rc::clone(block))),
        }
    }

    fn env(&self, name: &str) -> Value {
        let config = self.host.site.config();
        let user = config.user.rsplit('\\').next().unwrap_or(&config.user);
        let domain = config
            .user
            .split_once('\\')
            .map(|(d, _)| d)
            .unwrap_or("WORKGROUP");
        match name.to_ascii_uppercase().as_str() {
            "COMPUTERNAME" => Value::str(&config.computer_name),
            "USERNAME" => Value::str(user),
            "USERDOMAIN" => Value::str(domain),
            "SMS_ADMIN_UI_PATH" => Value::str(format!("{}\\i386", config.console_path)),
            "SYSTEMROOT" | "WINDIR" => Value::str("C:\\Windows"),
            "TEMP" | "TMP" => Value::str(format!("C:\\Users\\{user}\\AppData\\Local\\Temp")),
            _ => Value::Null,
        }
    }

    fn static_member(&mut self, type_name: &str, member: &str) -> Result<Value, Flow> {
        if is_console(type_name) {
            return match member.to_ascii_lowercase().as_str() {
                "outputencoding" => Ok(match self.host.encoding {
                    ConsoleEncoding::Utf8 { bom } => commands::utf8_encoding(bom),
                    ConsoleEncoding::Oem => Value::object(
                        "System.Text.SBCSCodePageEncoding",
                        ObjectKind::Detail,
                        vec![
                            ("CodePage", Value::Int(437)),
                            ("WebName", Value::str("ibm437")),
                        ],
                    ),
                }),
                _ => Err(self.fatal(format!("[Console]::{member} is not supported"))),
            };
        }
        if is_culture_info(type_name) {
            return match member.to_ascii_lowercase().as_str() {
                "invariantculture" => Ok(Value::object(
                    "System.Globalization.CultureInfo",
                    ObjectKind::InvariantCulture,
                    vec![("Name", Value::str("")), ("LCID", Value::Int(127))],
                )),
                _ => Err(self.fatal(format!("[{type_name}]::{member} is not supported"))),
            };
        }
        if known_type(type_name) {
            return Err(self.fatal(format!("[{type_name}]::{member} is not supported")));
        }
        Err(self.type_not_found(type_name))
    }

    fn type_not_found(&self, type_name: &str) -> Flow {
        self.error(
            None,
            "System.Management.Automation.RuntimeException",
            "InvalidOperation",
            "TypeNotFound",
            format!("Unable to find type [{type_name}]."),
        )
    }

    fn static_call(
        &mut self,
        type_name: &str,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, Flow> {
        if is_datetime(type_name) && method.eq_ignore_ascii_case("ParseExact") {
            let [text, format, culture] = args.as_slice() else {
                return Err(self.error(
                    None,
                    "System.Management.Automation.MethodException",
                    "NotSpecified",
                    "MethodCountCouldNotFindBest",
                    format!(
                        "Cannot find an overload for \"ParseExact\" and the argument count: \"{}\".",
                        args.len()
                    ),
                ));
            };
            let invariant =
                matches!(culture, Value::Object(o) if o.kind == ObjectKind::InvariantCulture);
            if format.to_text() != "s" || !invariant {
                return Err(self.fatal(
                    "[datetime]::ParseExact is supported only with the format 's' and the invariant culture",
                ));
            }
            return match CivilTime::parse_sortable(&text.to_text()) {
                Some(t) => Ok(Value::DateTime(t)),
                None => Err(self.error(
                    None,
                    "System.Management.Automation.MethodInvocationException",
                    "NotSpecified",
                    "FormatException",
                    "Exception calling \"ParseExact\" with \"3\" argument(s): \"String was not recognized as a valid DateTime.\"",
                )),
            };
        }
        if known_type(type_name) || is_console(type_name) {
            return Err(self.fatal(format!("[{type_name}]::{method}() is not supported")));
        }
        Err(self.type_not_found(type_name))
    }

    /// Evaluates a command's arguments, binds them and runs the command.
    fn invoke(&mut self, cmd: &Command, input: Option<Vec<Value>>) -> Result<Vec<Value>, Flow> {
        self.line = cmd.line;
        self.column = cmd.column;
        let mut raw = Vec::with_capacity(cmd.elements.len());
        for element in &cmd.elements {
            raw.push(match element {
                CommandElement::Parameter { name, colon_value } => RawArg::Named(
                    name.clone(),
                    match colon_value {
                        Some(e) => Some(self.eval(e)?),
                        None => None,
                    },
                ),
                CommandElement::Argument(e) => RawArg::Positional(self.eval(e)?),
            });
        }
        let Some(def) = commands::lookup(&cmd.name).filter(|d| !d.cm || self.host.module_loaded)
        else {
            let message = format!(
                "The term '{}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.",
                cmd.name
            );
            return Err(self.loud(
                Some(&cmd.name),
                "System.Management.Automation.CommandNotFoundException",
                "ObjectNotFound",
                "CommandNotFoundException",
                message,
            ));
        };
        self.line = cmd.line;
        self.column = cmd.column;
        let bound = match params::bind(&def.sig, raw, input.is_some()) {
            Ok(bound) => bound,
            Err(BindError::Unsupported(message)) => return Err(self.fatal(message)),
            Err(BindError::Binding { message, id }) => {
                let id = format!("{id},{}", def.sig.type_name);
                return Err(self.loud(
                    Some(def.sig.name),
                    "System.Management.Automation.ParameterBindingException",
                    "InvalidArgument",
                    &id,
                    message,
                ));
            }
        };
        let result = (def.run)(self, def, &bound, input);
        self.line = cmd.line;
        self.column = cmd.column;
        result
    }

    /// A statement-terminating error that also goes to stderr at once: these mean the script
    /// uses something the real PowerShell or ConfigMgr would reject (generator drift).
    fn loud(
        &mut self,
        command: Option<&str>,
        exception: &str,
        category: &str,
        id: &str,
        message: String,
    ) -> Flow {
        let mut flow = self.error(command, exception, category, id, message);
        if let Flow::Error(record) = &mut flow {
            record.statement_terminating = true;
            if self.try_depth > 0 {
                let text = record.display(&self.script);
                self.host.error_line(&text);
            }
        }
        flow
    }

    /// Runs a script block with `$_` bound (Where-Object).
    pub fn run_filter(&mut self, block: &Block, item: Value) -> Result<Value, Flow> {
        self.underscore.push(item);
        let result = self.run_capturing(&block.stmts);
        self.underscore.pop();
        Ok(Value::from_output(result?))
    }
}

fn is_console(name: &str) -> bool {
    name.eq_ignore_ascii_case("Console") || name.eq_ignore_ascii_case("System.Console")
}

fn is_culture_info(name: &str) -> bool {
    [
        "CultureInfo",
        "Globalization.CultureInfo",
        "System.Globalization.CultureInfo",
        "cultureinfo",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

fn is_datetime(name: &str) -> bool {
    name.eq_ignore_ascii_case("datetime") || name.eq_ignore_ascii_case("System.DateTime")
}

/// Types that exist in .NET but whose members the simulator does not model.
fn known_type(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_prefix("system.").unwrap_or(&lower).to_string();
    [
        "datetime",
        "string",
        "int",
        "int32",
        "int64",
        "math",
        "convert",
        "text.encoding",
        "io.path",
        "io.file",
        "guid",
        "environment",
        "timespan",
        "bool",
        "boolean",
        "char",
        "array",
        "object",
        "version",
        "uri",
        "text.utf8encoding",
        "diagnostics.process",
        "management.automation.wildcardpattern",
        "regex",
        "text.regularexpressions.regex",
        "scriptblock",
        "powershell",
        "xml",
        "globalization.cultureinfo",
    ]
    .contains(&lower.as_str())
}
