//! The shape every generated script has, and the builder that enforces it.
//!
//! ```text
//! <BOM># sccm-connector step: <name>
//! # (fixed explanation)
//! $ErrorActionPreference = 'Stop'            # cmdlet errors become terminating
//! $ProgressPreference = 'SilentlyContinue'   # no CLIXML progress records on stderr
//! [Console]::OutputEncoding = …UTF8…         # stdout in UTF-8, not the OEM code page
//! $CMPSSuppressFastNotUsedCheck = $true
//!
//! # Inputs
//! $ApplicationName = '…'                     # every outside value, once, single-quoted
//!
//! try {
//!     <connect to the site>                  # import the module, site drive, Set-Location
//!     <body>                                 # check first, act only if needed
//!     Write-Output (ConvertTo-Json -InputObject $result -Depth 10 -Compress)
//!     if ($PSCommandPath) { exit 0 }
//! } catch {
//!     <one JSON failure object>
//!     if ($PSCommandPath) { exit 1 }
//! }
//! ```
//!
//! The exit code is set only when the script runs as a file: `powershell.exe -File`, or `& <file>`
//! in the session host, where `exit` ends the script and sets `$LASTEXITCODE`. `$PSCommandPath`
//! (the running script's path) is empty at an interactive prompt, so an admin who pastes a step
//! into a console gets its one JSON line and keeps the console (a bare `exit` would close it).
//!
//! Outside values enter **only** through [`ScriptBuilder::input`], which quotes them with
//! [`single_quoted`]; body code is `&'static str` or built by the generator from typed values
//! (numbers, booleans, variable names), so no portal text can become code. The result is UTF-8
//! **with BOM** (Windows PowerShell 5.1 reads BOM-less scripts as CP1252, where bytes inside
//! UTF-8 characters turn into quotes and dashes) with LF line endings.

use super::quote::{QuoteError, single_quoted};
use std::fmt::Write as _;

/// The UTF-8 byte order mark every script starts with.
pub const BOM: &str = "\u{FEFF}";

/// Literals the generator itself writes (never outside values). The script checker accepts no
/// other literal outside the Inputs block.
pub const CONSTANTS: &[&str] = &[
    "Stop",
    "SilentlyContinue",
    "System.Text.UTF8Encoding",
    "ConfigurationManager",
    "ConfigurationManager.psd1",
    "CMSite",
    "Global",
    ":",
    ":\\",
    "\\",
    "Application",
    "root\\SMS\\site_",
    "ObjectType=6000",
    "SMS_ObjectContainerNode",
    "SMS_ObjectContainerItem",
    "SMS_ApplicationLatest",
    "SMS_DPGroupContentInfo",
    "s",
    "PowerShell",
    "VBScript",
    "JavaScript",
    "Download",
    "DoNothing",
    "Install",
    "Uninstall",
    "Available",
    "Required",
    "LocalTime",
    "Utc",
    "The application does not exist.",
    "The distribution point group does not exist.",
    "The console folder does not exist.",
    "Content distribution failed: ",
    " of ",
    " distribution points report errors and none is still in progress.",
];

/// How a script ends successfully: an exit code only when it runs as a file (`-File`, or `& file`
/// in the session host); pasted into a console, where `$PSCommandPath` is empty, it just ends.
pub const EXIT_OK: &str = "if ($PSCommandPath) { exit 0 }";
/// How the catch block ends, likewise.
pub const EXIT_FAILED: &str = "if ($PSCommandPath) { exit 1 }";

/// The commands generated scripts may call.
pub const COMMANDS: &[&str] = &[
    "New-Object",
    "Get-Module",
    "Import-Module",
    "Join-Path",
    "Get-PSDrive",
    "New-PSDrive",
    "Set-Location",
    "Out-Null",
    "Write-Output",
    "ConvertTo-Json",
    "Select-Object",
    "Where-Object",
    "Get-CimInstance",
    "Get-CMApplication",
    "New-CMApplication",
    "Get-CMDeploymentType",
    "Add-CMScriptDeploymentType",
    "Get-CMDistributionPointGroup",
    "Start-CMContentDistribution",
    "Get-CMDistributionStatus",
    "Get-CMApplicationDeployment",
    "New-CMApplicationDeployment",
    "Get-CMFolder",
    "New-CMFolder",
    "Move-CMObject",
];

/// One outside value bound to a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub variable: &'static str,
    pub value: String,
}

/// A rendered script: its bytes (BOM included) and the inputs it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub step: String,
    pub inputs: Vec<Input>,
    pub text: String,
}

impl Script {
    /// The exact bytes to write to the `.ps1` file.
    pub fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

/// Builds one step's script.
#[derive(Debug)]
pub struct ScriptBuilder {
    step: String,
    inputs: Vec<Input>,
    literals: Vec<String>,
    body: String,
    indent: usize,
}

/// A value could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input ${variable}: {source}")]
pub struct InputError {
    pub variable: &'static str,
    pub source: QuoteError,
}

impl ScriptBuilder {
    pub fn new(step: &str) -> ScriptBuilder {
        ScriptBuilder {
            step: step.to_string(),
            inputs: Vec::new(),
            literals: Vec::new(),
            body: String::new(),
            indent: 1,
        }
    }

    /// Binds the outside value `value` to `$variable` in the Inputs block.
    ///
    /// # Panics
    /// If `variable` is bound twice or is not a plain identifier: both are generator bugs, caught
    /// by the golden and property tests, never by input.
    pub fn input(&mut self, variable: &'static str, value: &str) -> Result<&mut Self, InputError> {
        assert!(
            variable.bytes().all(|b| b.is_ascii_alphanumeric())
                && !self.inputs.iter().any(|i| i.variable == variable),
            "generator bug: input ${variable} is not a fresh identifier"
        );
        let literal = single_quoted(value).map_err(|source| InputError { variable, source })?;
        self.inputs.push(Input {
            variable,
            value: value.to_string(),
        });
        self.literals.push(literal);
        Ok(self)
    }

    /// Whether `$variable` is bound.
    pub fn has_input(&self, variable: &str) -> bool {
        self.inputs.iter().any(|i| i.variable == variable)
    }

    /// A line of generator code (at the current indentation).
    pub fn line(&mut self, code: &str) -> &mut Self {
        if code.is_empty() {
            self.body.push('\n');
        } else {
            let _ = writeln!(self.body, "{:width$}{code}", "", width = self.indent * 4);
        }
        self
    }

    /// A comment line (fixed generator text).
    pub fn comment(&mut self, text: &'static str) -> &mut Self {
        let line = format!("# {text}");
        self.line(&line)
    }

    /// Opens a block: `head {`, indented until [`close`](Self::close).
    pub fn open(&mut self, head: &str) -> &mut Self {
        let line = format!("{head} {{");
        self.line(&line);
        self.indent += 1;
        self
    }

    /// Closes the current block and opens the next on the same line: `} head {` (`else`), so the
    /// statement also reads as one when pasted at a prompt.
    pub fn reopen(&mut self, head: &str) -> &mut Self {
        self.indent = self.indent.saturating_sub(1).max(1);
        let line = format!("}} {head} {{");
        self.line(&line);
        self.indent += 1;
        self
    }

    pub fn close(&mut self) -> &mut Self {
        self.indent = self.indent.saturating_sub(1).max(1);
        self.line("}")
    }

    /// Renders the script, ending the body by emitting `$result` as the one JSON line.
    pub fn finish(mut self) -> Script {
        self.line("Write-Output (ConvertTo-Json -InputObject $result -Depth 10 -Compress)");
        self.line(EXIT_OK);
        let mut text = String::with_capacity(self.body.len() + 1024);
        text.push_str(BOM);
        let _ = writeln!(text, "# sccm-connector step: {}", self.step);
        text.push_str(
            "# Generated by sccm-connector. Outside values are bound once, in the Inputs block, as\n\
             # single-quoted literals; the code below them only uses the variables. Paste the whole\n\
             # script into a PowerShell console on the console machine to reproduce this step: it\n\
             # prints one JSON line and sets an exit code only when run as a file, so the console\n\
             # stays open.\n",
        );
        text.push_str("$ErrorActionPreference = 'Stop'\n");
        text.push_str("$ProgressPreference = 'SilentlyContinue'\n");
        text.push_str("[Console]::OutputEncoding = New-Object -TypeName 'System.Text.UTF8Encoding' -ArgumentList $false\n");
        text.push_str("$CMPSSuppressFastNotUsedCheck = $true\n\n# Inputs\n");
        for (input, literal) in self.inputs.iter().zip(&self.literals) {
            let _ = writeln!(text, "${} = {literal}", input.variable);
        }
        text.push_str("\ntry {\n");
        text.push_str(&self.body);
        text.push_str(
            "} catch {\n    \
             $failure = @{ ok = $false; error = $_.Exception.Message; line = $_.InvocationInfo.ScriptLineNumber }\n    \
             Write-Output (ConvertTo-Json -InputObject $failure -Depth 10 -Compress)\n",
        );
        let _ = writeln!(text, "    {EXIT_FAILED}\n}}");
        Script {
            step: self.step,
            inputs: self.inputs,
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_has_the_fixed_shape() {
        let mut b = ScriptBuilder::new("example");
        b.input("Name", "it's").expect("no NUL");
        b.line("$result = @{ ok = $true; name = $Name }");
        let script = b.finish();
        assert!(
            script
                .text
                .starts_with("\u{FEFF}# sccm-connector step: example\n")
        );
        assert!(script.text.contains("\n$Name = 'it''s'\n"));
        assert!(script.text.contains("$ErrorActionPreference = 'Stop'\n"));
        assert!(
            script
                .text
                .ends_with("    if ($PSCommandPath) { exit 1 }\n}\n")
        );
        assert!(
            script
                .text
                .contains("\n    if ($PSCommandPath) { exit 0 }\n} catch {\n")
        );
        assert_eq!(
            script.inputs,
            vec![Input {
                variable: "Name",
                value: "it's".into()
            }]
        );
    }

    #[test]
    fn nul_is_refused_naming_the_input() {
        let err = ScriptBuilder::new("x")
            .input("Name", "a\0")
            .map(|_| ())
            .expect_err("NUL");
        assert_eq!(
            err.to_string(),
            "input $Name: contains a NUL character at position 1, which PowerShell's native layers would truncate"
        );
    }
}
