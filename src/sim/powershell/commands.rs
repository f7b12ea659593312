//! The commands the host knows: the built-in cmdlets the generator uses (with their real
//! Windows PowerShell 5.1 signatures), and — once the module is imported — the ConfigMgr
//! cmdlets of [`super::cm`]. Real parameters whose behaviour is not simulated are known (so they
//! are not "not found") but binding them is a loud simulator error.

use super::cm;
use super::interp::{Drive, ErrorRecord, Exec, Flow};
use super::json;
use super::params::{Bound, Extras, Signature, Ty, Validate, p};
use super::value::{ObjectKind, Value};
use super::wildcard::Pattern;
use std::sync::OnceLock;

/// A command's implementation: the host, its definition, the bound parameters, the pipeline
/// input (if it is not the first element).
pub type RunFn =
    fn(&mut Exec<'_>, &'static CommandDef, &Bound, Option<Vec<Value>>) -> Result<Vec<Value>, Flow>;

/// A command.
#[derive(Debug)]
pub struct CommandDef {
    pub sig: Signature,
    pub run: RunFn,
    /// A ConfigMgr cmdlet (exists only once the module is imported).
    pub cm: bool,
}

static REGISTRY: OnceLock<Vec<CommandDef>> = OnceLock::new();

fn registry() -> &'static [CommandDef] {
    REGISTRY.get_or_init(|| {
        let mut defs = builtins();
        defs.extend(cm::commands());
        defs
    })
}

/// The command named `name` (case-insensitive).
pub fn lookup(name: &str) -> Option<&'static CommandDef> {
    registry()
        .iter()
        .find(|d| d.sig.name.eq_ignore_ascii_case(name))
}

/// Every command name the host knows.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|d| d.sig.name).collect()
}

fn def(sig: Signature, run: RunFn) -> CommandDef {
    CommandDef {
        sig,
        run,
        cm: false,
    }
}

/// `New-Object System.Text.UTF8Encoding(bom)`.
pub fn utf8_encoding(bom: bool) -> Value {
    Value::object(
        "System.Text.UTF8Encoding",
        ObjectKind::Utf8Encoding(bom),
        vec![
            ("BodyName", Value::str("utf-8")),
            ("EncodingName", Value::str("Unicode (UTF-8)")),
            ("WebName", Value::str("utf-8")),
            ("CodePage", Value::Int(65001)),
        ],
    )
}

/// A non-terminating error record for the current statement.
pub fn record(
    exec: &Exec<'_>,
    def: &CommandDef,
    exception: &str,
    category: &str,
    id: &str,
    message: impl Into<String>,
) -> ErrorRecord {
    ErrorRecord {
        message: message.into(),
        exception: exception.into(),
        category: category.into(),
        id: format!("{id},{}", def.sig.type_name),
        command: Some(def.sig.name.to_string()),
        line: exec.line,
        column: exec.column,
        statement_terminating: false,
    }
}

/// Collapses `.`/`..` and repeated separators of a Windows path (`/` read as `\`).
pub fn normalize_windows_path(path: &str) -> String {
    let path = path.replace('/', "\\");
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("\\\\") {
        ("\\\\", rest)
    } else {
        ("", path.as_str())
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('\\') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.len() > 1 || (parts.len() == 1 && !parts[0].ends_with(':')) {
                    parts.pop();
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("\\");
    if parts.len() == 1 && joined.ends_with(':') {
        format!("{prefix}{joined}\\")
    } else {
        format!("{prefix}{joined}")
    }
}

fn drive_of(path: &str) -> Option<&str> {
    let (drive, _) = path.split_once(':')?;
    (!drive.is_empty() && drive.chars().all(|c| c.is_ascii_alphanumeric())).then_some(drive)
}

fn drive_not_found(exec: &Exec<'_>, def: &CommandDef, name: &str) -> ErrorRecord {
    record(
        exec,
        def,
        "System.Management.Automation.DriveNotFoundException",
        "ObjectNotFound",
        "DriveNotFound",
        format!("Cannot find drive. A drive with the name '{name}' does not exist."),
    )
}

fn providers(exec: &Exec<'_>) -> Vec<&'static str> {
    let mut list = vec![
        "Registry",
        "Alias",
        "Environment",
        "FileSystem",
        "Function",
        "Variable",
        "Certificate",
        "WSMan",
    ];
    if exec.host.module_loaded {
        list.push("CMSite");
    }
    list
}

fn provider_not_found(exec: &Exec<'_>, def: &CommandDef, name: &str) -> ErrorRecord {
    record(
        exec,
        def,
        "System.Management.Automation.ProviderNotFoundException",
        "ObjectNotFound",
        "ProviderNotFound",
        format!("Cannot find a provider with the name '{name}'."),
    )
}

fn drive_value(drive: &Drive) -> Value {
    Value::object(
        "System.Management.Automation.PSDriveInfo",
        ObjectKind::Drive,
        vec![
            ("Name", Value::str(&drive.name)),
            ("Provider", Value::str(&drive.provider)),
            ("Root", Value::str(&drive.root)),
            ("CurrentLocation", Value::str("")),
            ("Description", Value::str("")),
        ],
    )
}

fn module_value(exec: &Exec<'_>) -> Value {
    let path = format!(
        "{}\\ConfigurationManager.psd1",
        exec.host.site.config().console_path
    );
    Value::object(
        "System.Management.Automation.PSModuleInfo",
        ObjectKind::Module,
        vec![
            ("Name", Value::str("ConfigurationManager")),
            ("Version", Value::str("5.2107.1059.1000")),
            ("ModuleType", Value::str("Manifest")),
            ("Path", Value::str(path)),
        ],
    )
}

fn input_items(bound: &Bound, input: Option<Vec<Value>>, param: &str) -> Vec<Value> {
    match input {
        Some(items) => items,
        None => bound
            .value(param)
            .cloned()
            .map(Value::enumerate)
            .unwrap_or_default(),
    }
}

fn new_object(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let type_name = bound.str("TypeName").unwrap_or_default();
    let lower = type_name.to_ascii_lowercase();
    let short = lower.strip_prefix("system.").unwrap_or(&lower);
    if short == "text.utf8encoding" {
        let args = bound
            .value("ArgumentList")
            .cloned()
            .map(Value::enumerate)
            .unwrap_or_default();
        let bom = match args.as_slice() {
            [] => false,
            [b] | [b, _] => match b {
                Value::Bool(b) => *b,
                other => other.truthy(),
            },
            _ => {
                return Err(exec.error(
                    Some(def.sig.name),
                    "System.Management.Automation.MethodException",
                    "InvalidOperation",
                    "ConstructorInvokedThrowException,Microsoft.PowerShell.Commands.NewObjectCommand",
                    format!(
                        "Cannot find an overload for \"UTF8Encoding\" and the argument count: \"{}\".",
                        args.len()
                    ),
                ));
            }
        };
        return Ok(vec![utf8_encoding(bom)]);
    }
    let known = [
        "text.utf8encoding",
        "text.unicodeencoding",
        "text.asciiencoding",
        "collections.arraylist",
        "collections.hashtable",
        "datetime",
        "object",
        "string",
        "management.automation.pscredential",
        "security.securestring",
        "net.webclient",
        "xml.xmldocument",
        "io.streamreader",
        "io.streamwriter",
        "text.stringbuilder",
    ];
    if known.contains(&short) {
        return Err(exec.fatal(format!(
            "New-Object -TypeName '{type_name}' is not supported by the simulator"
        )));
    }
    Err(exec.error(
        Some(def.sig.name),
        "System.Management.Automation.PSArgumentException",
        "InvalidType",
        "TypeNotFound,Microsoft.PowerShell.Commands.NewObjectCommand",
        format!("Cannot find type [{type_name}]: verify that the assembly containing this type is loaded."),
    ))
}

fn get_module(
    exec: &mut Exec<'_>,
    _def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let names = bound.strs("Name");
    let wanted = |module: &str| {
        names.is_empty()
            || names.iter().any(|n| {
                Pattern::new(n, false)
                    .map(|p| p.matches(module))
                    .unwrap_or(false)
            })
    };
    let available = bound.switch("ListAvailable");
    if (exec.host.module_loaded || available) && wanted("ConfigurationManager") {
        Ok(vec![module_value(exec)])
    } else {
        Ok(Vec::new())
    }
}

fn import_module(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let mut out = Vec::new();
    for name in bound.strs("Name") {
        let console = exec.host.site.config().console_path.clone();
        let normalized = normalize_windows_path(&name);
        let expected = normalize_windows_path(&format!("{console}\\ConfigurationManager.psd1"));
        let is_cm = name.eq_ignore_ascii_case("ConfigurationManager")
            || normalized.eq_ignore_ascii_case(&expected);
        if !is_cm {
            let rec = record(
                exec,
                def,
                "System.IO.FileNotFoundException",
                "ResourceUnavailable",
                "Modules_ModuleNotFound",
                format!(
                    "The specified module '{name}' was not loaded because no valid module file was found in any module directory."
                ),
            );
            exec.write_error(bound, rec)?;
            continue;
        }
        cm::site_touch(exec, def, bound)?;
        if !exec.host.module_loaded {
            if !exec.host.import_delay.is_zero() {
                std::thread::sleep(exec.host.import_delay);
            }
            exec.host.module_loaded = true;
            let config = exec.host.site.config().clone();
            if config.module_creates_drive
                && !exec
                    .host
                    .drives
                    .iter()
                    .any(|d| d.name.eq_ignore_ascii_case(&config.site_code))
            {
                exec.host.drives.push(Drive {
                    name: config.site_code.clone(),
                    provider: "CMSite".into(),
                    root: config.provider_machine.clone(),
                });
            }
        }
        if bound.switch("PassThru") {
            out.push(module_value(exec));
        }
    }
    Ok(out)
}

fn join_path(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let child = bound.str("ChildPath").unwrap_or_default();
    let mut out = Vec::new();
    for path in bound.strs("Path") {
        if let Some(drive) = drive_of(&path)
            && !exec
                .host
                .drives
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(drive))
        {
            let rec = drive_not_found(exec, def, drive);
            exec.write_error(bound, rec)?;
            continue;
        }
        let left = path.replace('/', "\\");
        let right = child.replace('/', "\\");
        let joined = match (left.is_empty(), right.is_empty()) {
            (true, _) => right,
            (_, true) => left,
            _ => format!(
                "{}\\{}",
                left.trim_end_matches('\\'),
                right.trim_start_matches('\\')
            ),
        };
        out.push(Value::str(joined));
    }
    Ok(out)
}

fn get_psdrive(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let known = providers(exec);
    let wanted_providers = bound.strs("PSProvider");
    for provider in &wanted_providers {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(provider)) {
            let rec = provider_not_found(exec, def, provider);
            exec.write_error(bound, rec)?;
            return Ok(Vec::new());
        }
    }
    let provider_ok = |d: &Drive| {
        wanted_providers.is_empty()
            || wanted_providers
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&d.provider))
    };
    let literal = bound.has("LiteralName");
    let names = if literal {
        bound.strs("LiteralName")
    } else {
        bound.strs("Name")
    };
    let drives = exec.host.drives.clone();
    if names.is_empty() {
        return Ok(drives
            .iter()
            .filter(|d| provider_ok(d))
            .map(drive_value)
            .collect());
    }
    let mut out = Vec::new();
    for name in names {
        let matcher = super::wildcard::NameMatch::new(&name, literal).map_err(|m| {
            exec.error(
                Some(def.sig.name),
                "System.Management.Automation.WildcardPatternException",
                "InvalidArgument",
                "RuntimeException",
                m,
            )
        })?;
        let found: Vec<&Drive> = drives
            .iter()
            .filter(|d| matcher.matches(&d.name) && provider_ok(d))
            .collect();
        if found.is_empty() && (literal || !super::wildcard::has_wildcards(&name)) {
            let rec = drive_not_found(exec, def, &name);
            exec.write_error(bound, rec)?;
        }
        out.extend(found.into_iter().map(drive_value));
    }
    Ok(out)
}

fn new_psdrive(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let name = bound.str("Name").unwrap_or_default();
    let provider = bound.str("PSProvider").unwrap_or_default();
    let root = bound.str("Root").unwrap_or_default();
    let known = providers(exec);
    let Some(provider) = known.iter().find(|k| k.eq_ignore_ascii_case(&provider)) else {
        let rec = provider_not_found(exec, def, &provider);
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    };
    if *provider != "CMSite" {
        return Err(exec.fatal(format!(
            "New-PSDrive -PSProvider {provider} is not supported by the simulator"
        )));
    }
    if exec
        .host
        .drives
        .iter()
        .any(|d| d.name.eq_ignore_ascii_case(&name))
    {
        let rec = record(
            exec,
            def,
            "System.Management.Automation.SessionStateException",
            "ResourceExists",
            "DriveAlreadyExists",
            format!("A drive with the name '{name}' already exists."),
        );
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    }
    cm::site_touch(exec, def, bound)?;
    let config = exec.host.site.config().clone();
    let provider_machine = config.provider_machine.to_ascii_lowercase();
    let root_lower = root.to_ascii_lowercase();
    let reachable =
        root_lower == provider_machine || root_lower.starts_with(&format!("{provider_machine}."));
    if !reachable {
        let rec = record(
            exec,
            def,
            "System.Runtime.InteropServices.COMException",
            "ConnectionError",
            "NewDriveProviderException",
            format!(
                "The SMS Provider on '{root}' could not be reached: The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)"
            ),
        );
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    }
    if !name.eq_ignore_ascii_case(&config.site_code) {
        let rec = record(
            exec,
            def,
            "System.InvalidOperationException",
            "InvalidArgument",
            "NewDriveProviderException",
            format!(
                "The site code '{name}' does not exist on the SMS Provider '{root}'. A CMSite drive is named after its site code."
            ),
        );
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    }
    let drive = Drive {
        name: config.site_code.clone(),
        provider: "CMSite".into(),
        root,
    };
    exec.host.drives.push(drive.clone());
    Ok(vec![drive_value(&drive)])
}

fn set_location(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let path = bound
        .str("Path")
        .or_else(|| bound.str("LiteralPath"))
        .unwrap_or_default();
    let Some(drive_name) = drive_of(&path).map(str::to_string) else {
        return Err(exec.fatal(format!(
            "Set-Location to a relative path ('{path}') is not supported by the simulator"
        )));
    };
    let Some(drive) = exec
        .host
        .drives
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&drive_name))
        .cloned()
    else {
        let rec = drive_not_found(exec, def, &drive_name);
        exec.write_error(bound, rec)?;
        return Ok(Vec::new());
    };
    let rest = path.split_once(':').map(|(_, r)| r).unwrap_or("");
    let location = if drive.provider == "CMSite" {
        if !rest.trim_matches('\\').is_empty() {
            let rec = record(
                exec,
                def,
                "System.Management.Automation.ItemNotFoundException",
                "ObjectNotFound",
                "PathNotFound",
                format!("Cannot find path '{path}' because it does not exist."),
            );
            exec.write_error(bound, rec)?;
            return Ok(Vec::new());
        }
        format!("{}:\\", drive.name)
    } else {
        normalize_windows_path(&path)
    };
    exec.host.location = location.clone();
    if bound.switch("PassThru") {
        return Ok(vec![Value::str(location)]);
    }
    Ok(Vec::new())
}

fn out_null(
    _exec: &mut Exec<'_>,
    _def: &'static CommandDef,
    _bound: &Bound,
    _input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    Ok(Vec::new())
}

fn write_output(
    _exec: &mut Exec<'_>,
    _def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    if let Some(items) = input {
        return Ok(items);
    }
    let value = bound.value("InputObject").cloned().unwrap_or(Value::Null);
    Ok(if bound.switch("NoEnumerate") {
        vec![value]
    } else {
        value.enumerate()
    })
}

fn convert_to_json(
    exec: &mut Exec<'_>,
    def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let value = match input {
        Some(items) => Value::from_output(items),
        None => bound.value("InputObject").cloned().unwrap_or(Value::Null),
    };
    let depth = bound.int("Depth").unwrap_or(2).max(0) as usize;
    match json::to_json(&value, depth, bound.switch("Compress")) {
        Ok(text) => Ok(vec![Value::Str(text)]),
        Err(message) => Err(exec.error(
            Some(def.sig.name),
            "System.InvalidOperationException",
            "NotSpecified",
            "System.InvalidOperationException,Microsoft.PowerShell.Commands.ConvertToJsonCommand",
            message,
        )),
    }
}

fn select_object(
    exec: &mut Exec<'_>,
    _def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let items = input_items(bound, input, "InputObject");
    let properties: Vec<String> = match bound.value("Property") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            let mut names = Vec::new();
            for item in v.clone().enumerate() {
                match item {
                    Value::Str(s) if !super::wildcard::has_wildcards(&s) => names.push(s),
                    other => {
                        return Err(exec.fatal(format!(
                            "Select-Object -Property with {} is not supported by the simulator",
                            other.to_text()
                        )));
                    }
                }
            }
            names
        }
    };
    let first = bound.int("First").map(|n| n.max(0) as usize);
    let mut out = Vec::new();
    for item in items.into_iter().take(first.unwrap_or(usize::MAX)) {
        if let Some(expand) = bound.str("ExpandProperty") {
            out.extend(item.member(&expand).enumerate());
        } else if properties.is_empty() {
            out.push(item);
        } else {
            out.push(Value::object(
                "System.Management.Automation.PSCustomObject",
                ObjectKind::Custom,
                properties
                    .iter()
                    .map(|p| (p.as_str(), item.member(p)))
                    .collect(),
            ));
        }
    }
    Ok(out)
}

fn where_object(
    exec: &mut Exec<'_>,
    _def: &'static CommandDef,
    bound: &Bound,
    input: Option<Vec<Value>>,
) -> Result<Vec<Value>, Flow> {
    let Some(Value::ScriptBlock(block)) = bound.value("FilterScript").cloned() else {
        return Ok(Vec::new());
    };
    let items = input_items(bound, input, "InputObject");
    let mut out = Vec::new();
    for item in items {
        if exec.run_filter(&block, item.clone())?.truthy() {
            out.push(item);
        }
    }
    Ok(out)
}

const WHERE_OPERATORS: &[&str] = &[
    "EQ",
    "CEQ",
    "NE",
    "CNE",
    "GT",
    "CGT",
    "LT",
    "CLT",
    "GE",
    "CGE",
    "LE",
    "CLE",
    "Like",
    "CLike",
    "NotLike",
    "CNotLike",
    "Match",
    "CMatch",
    "NotMatch",
    "CNotMatch",
    "Contains",
    "CContains",
    "NotContains",
    "CNotContains",
    "In",
    "CIn",
    "NotIn",
    "CNotIn",
    "Is",
    "IsNot",
];

fn builtins() -> Vec<CommandDef> {
    let mut where_params = vec![
        p("FilterScript", Ty::ScriptBlock).set("ScriptBlockSet", true, Some(0)),
        p("InputObject", Ty::Any).pipe(),
        p("Property", Ty::Str)
            .set("Simplified", true, Some(0))
            .unsupported(),
        p("Value", Ty::Any)
            .set("Simplified", false, Some(1))
            .unsupported(),
    ];
    for op in WHERE_OPERATORS {
        where_params.push(
            p(op, Ty::Switch)
                .set("Simplified", false, None)
                .unsupported(),
        );
    }
    vec![
        def(
            Signature::new(
                "New-Object",
                "Microsoft.PowerShell.Commands.NewObjectCommand",
                Some("Net"),
                Extras::Common,
                vec![
                    p("TypeName", Ty::Str).set("Net", true, Some(0)),
                    p("ArgumentList", Ty::Any)
                        .alias(&["Args"])
                        .set("Net", false, Some(1)),
                    p("Property", Ty::Any).unsupported(),
                    p("ComObject", Ty::Str)
                        .set("Com", true, Some(0))
                        .unsupported(),
                    p("Strict", Ty::Switch)
                        .set("Com", false, None)
                        .unsupported(),
                ],
            ),
            new_object,
        ),
        def(
            Signature::new(
                "Get-Module",
                "Microsoft.PowerShell.Commands.GetModuleCommand",
                Some("Loaded"),
                Extras::Common,
                vec![
                    p("Name", Ty::StrArray).pos(0),
                    p("FullyQualifiedName", Ty::Any).unsupported(),
                    p("All", Ty::Switch),
                    p("ListAvailable", Ty::Switch).set("Available", true, None),
                    p("Refresh", Ty::Switch).set("Available", false, None),
                    p("PSEdition", Ty::Str)
                        .set("Available", false, None)
                        .unsupported(),
                    p("PSSession", Ty::Any)
                        .set("PsSession", true, None)
                        .unsupported(),
                    p("CimSession", Ty::Any)
                        .set("CimSession", true, None)
                        .unsupported(),
                    p("CimResourceUri", Ty::Any)
                        .set("CimSession", false, None)
                        .unsupported(),
                    p("CimNamespace", Ty::Str)
                        .set("CimSession", false, None)
                        .unsupported(),
                ],
            ),
            get_module,
        ),
        def(
            Signature::new(
                "Import-Module",
                "Microsoft.PowerShell.Commands.ImportModuleCommand",
                Some("Name"),
                Extras::Common,
                vec![
                    p("Name", Ty::StrArray).set("Name", true, Some(0)),
                    p("FullyQualifiedName", Ty::Any)
                        .set("FullyQualifiedName", true, Some(0))
                        .unsupported(),
                    p("Assembly", Ty::Any)
                        .set("Assembly", true, Some(0))
                        .unsupported(),
                    p("ModuleInfo", Ty::Any)
                        .set("ModuleInfo", true, Some(0))
                        .unsupported(),
                    p("Global", Ty::Switch),
                    p("Prefix", Ty::Str).unsupported(),
                    p("Function", Ty::StrArray).unsupported(),
                    p("Cmdlet", Ty::StrArray).unsupported(),
                    p("Variable", Ty::StrArray).unsupported(),
                    p("Alias", Ty::StrArray).unsupported(),
                    p("Force", Ty::Switch),
                    p("PassThru", Ty::Switch),
                    p("AsCustomObject", Ty::Switch).unsupported(),
                    p("MinimumVersion", Ty::Str)
                        .alias(&["Version"])
                        .unsupported(),
                    p("MaximumVersion", Ty::Str).unsupported(),
                    p("RequiredVersion", Ty::Str).unsupported(),
                    p("ArgumentList", Ty::Any).alias(&["Args"]).unsupported(),
                    p("DisableNameChecking", Ty::Switch),
                    p("NoClobber", Ty::Switch),
                    p("Scope", Ty::Enum("System.String", &["Local", "Global"])),
                    p("PSSession", Ty::Any).unsupported(),
                    p("CimSession", Ty::Any).unsupported(),
                    p("CimResourceUri", Ty::Any).unsupported(),
                    p("CimNamespace", Ty::Str).unsupported(),
                ],
            ),
            import_module,
        ),
        def(
            Signature::new(
                "Join-Path",
                "Microsoft.PowerShell.Commands.JoinPathCommand",
                None,
                Extras::Common,
                vec![
                    p("Path", Ty::StrArray)
                        .alias(&["PSPath"])
                        .pos(0)
                        .mandatory(),
                    p("ChildPath", Ty::Str).pos(1).mandatory(),
                    p("Resolve", Ty::Switch).unsupported(),
                    p("Credential", Ty::Any).unsupported(),
                    p("UseTransaction", Ty::Switch)
                        .alias(&["usetx"])
                        .unsupported(),
                ],
            ),
            join_path,
        ),
        def(
            Signature::new(
                "Get-PSDrive",
                "Microsoft.PowerShell.Commands.GetPSDriveCommand",
                Some("Name"),
                Extras::Common,
                vec![
                    p("Name", Ty::StrArray).set("Name", false, Some(0)),
                    p("LiteralName", Ty::StrArray).set("LiteralName", true, Some(0)),
                    p("Scope", Ty::Str),
                    p("PSProvider", Ty::StrArray),
                    p("UseTransaction", Ty::Switch)
                        .alias(&["usetx"])
                        .unsupported(),
                ],
            ),
            get_psdrive,
        ),
        def(
            Signature::new(
                "New-PSDrive",
                "Microsoft.PowerShell.Commands.NewPSDriveCommand",
                None,
                Extras::ShouldProcess,
                vec![
                    p("Name", Ty::Str).pos(0).mandatory(),
                    p("PSProvider", Ty::Str).pos(1).mandatory(),
                    p("Root", Ty::Str).pos(2).mandatory(),
                    p("Description", Ty::Str),
                    p("Scope", Ty::Str),
                    p("Persist", Ty::Switch).unsupported(),
                    p("Credential", Ty::Any).unsupported(),
                    p("UseTransaction", Ty::Switch)
                        .alias(&["usetx"])
                        .unsupported(),
                ],
            ),
            new_psdrive,
        ),
        def(
            Signature::new(
                "Set-Location",
                "Microsoft.PowerShell.Commands.SetLocationCommand",
                Some("Path"),
                Extras::Common,
                vec![
                    p("Path", Ty::Str).set("Path", false, Some(0)),
                    p("LiteralPath", Ty::Str)
                        .alias(&["PSPath"])
                        .set("LiteralPath", true, None),
                    p("StackName", Ty::Str)
                        .set("Stack", false, None)
                        .unsupported(),
                    p("PassThru", Ty::Switch),
                    p("UseTransaction", Ty::Switch)
                        .alias(&["usetx"])
                        .unsupported(),
                ],
            ),
            set_location,
        ),
        def(
            Signature::new(
                "Out-Null",
                "Microsoft.PowerShell.Commands.OutNullCommand",
                None,
                Extras::Common,
                vec![p("InputObject", Ty::Any).pipe()],
            ),
            out_null,
        ),
        def(
            Signature::new(
                "Write-Output",
                "Microsoft.PowerShell.Commands.WriteOutputCommand",
                None,
                Extras::Common,
                vec![
                    p("InputObject", Ty::Any).pos(0).pipe(),
                    p("NoEnumerate", Ty::Switch),
                ],
            ),
            write_output,
        ),
        def(
            Signature::new(
                "ConvertTo-Json",
                "Microsoft.PowerShell.Commands.ConvertToJsonCommand",
                None,
                Extras::Common,
                vec![
                    p("InputObject", Ty::Any).pos(0).pipe(),
                    p("Depth", Ty::Int).validate(Validate::Range(1, 100)),
                    p("Compress", Ty::Switch),
                ],
            ),
            convert_to_json,
        ),
        def(
            Signature::new(
                "Select-Object",
                "Microsoft.PowerShell.Commands.SelectObjectCommand",
                Some("DefaultParameter"),
                Extras::Common,
                vec![
                    p("InputObject", Ty::Any).pipe(),
                    p("Property", Ty::Any)
                        .set("DefaultParameter", false, Some(0))
                        .set("SkipLastParameter", false, Some(0)),
                    p("ExcludeProperty", Ty::StrArray)
                        .set("DefaultParameter", false, None)
                        .unsupported(),
                    p("ExpandProperty", Ty::Str).set("DefaultParameter", false, None),
                    p("Unique", Ty::Switch).unsupported(),
                    p("Last", Ty::Int)
                        .set("DefaultParameter", false, None)
                        .unsupported(),
                    p("First", Ty::Int).set("DefaultParameter", false, None),
                    p("Skip", Ty::Int)
                        .set("DefaultParameter", false, None)
                        .unsupported(),
                    p("SkipLast", Ty::Int)
                        .set("SkipLastParameter", false, None)
                        .unsupported(),
                    p("Wait", Ty::Switch)
                        .set("DefaultParameter", false, None)
                        .unsupported(),
                    p("Index", Ty::Any)
                        .set("IndexParameter", false, None)
                        .unsupported(),
                ],
            ),
            select_object,
        ),
        def(
            Signature::new(
                "Where-Object",
                "Microsoft.PowerShell.Commands.WhereObjectCommand",
                Some("ScriptBlockSet"),
                Extras::Common,
                where_params,
            ),
            where_object,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_normalise() {
        assert_eq!(
            normalize_windows_path("C:\\A\\B\\i386\\..\\ConfigurationManager.psd1"),
            "C:\\A\\B\\ConfigurationManager.psd1"
        );
        assert_eq!(normalize_windows_path("C:/A//B/./c"), "C:\\A\\B\\c");
        assert_eq!(normalize_windows_path("C:\\..\\x"), "C:\\x");
        assert_eq!(
            normalize_windows_path("\\\\srv\\share\\a\\..\\b"),
            "\\\\srv\\share\\b"
        );
    }

    #[test]
    fn every_generator_command_is_known_with_a_consistent_signature() {
        for name in crate::powershell::script::COMMANDS {
            let def = lookup(name).unwrap_or_else(|| panic!("{name} is not simulated"));
            let mut seen = std::collections::HashSet::new();
            for param in &def.sig.params {
                for n in std::iter::once(param.name).chain(param.aliases.iter().copied()) {
                    assert!(seen.insert(n.to_ascii_lowercase()), "{name}: -{n} twice");
                }
            }
        }
        assert!(lookup("get-cmapplication").is_some());
        assert!(lookup("Invoke-Expression").is_none());
        assert!(names().len() >= crate::powershell::script::COMMANDS.len());
    }
}
