//! Cmdlet signatures and parameter binding, as PowerShell does it: names and aliases matched
//! case-insensitively, unambiguous prefixes accepted, switches vs. values, positional
//! parameters, parameter sets (resolved from what was bound, then the default set), mandatory
//! parameters, type conversion (strings, Int32, Boolean, DateTime, enums, ConfigMgr result
//! objects) and validation attributes — each failure with PowerShell's own wording.

use super::value::{ObjectKind, Value};
use crate::sim::site::clock::CivilTime;
use std::collections::BTreeMap;

/// A parameter's .NET type, as far as binding cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Switch,
    Str,
    StrArray,
    Int,
    Bool,
    DateTime,
    /// A .NET enum: its full type name and its names.
    Enum(&'static str, &'static [&'static str]),
    /// An `IResultObject` of one of the WMI classes (empty: any class).
    ResultObject(&'static [&'static str]),
    ScriptBlock,
    /// `System.Object` / `PSObject`: anything.
    Any,
}

impl Ty {
    fn dotnet(&self) -> &'static str {
        match self {
            Ty::Switch => "System.Management.Automation.SwitchParameter",
            Ty::Str => "System.String",
            Ty::StrArray => "System.String[]",
            Ty::Int => "System.Int32",
            Ty::Bool => "System.Boolean",
            Ty::DateTime => "System.DateTime",
            Ty::Enum(name, _) => name,
            Ty::ResultObject(_) => {
                "Microsoft.ConfigurationManagement.ManagementProvider.IResultObject"
            }
            Ty::ScriptBlock => "System.Management.Automation.ScriptBlock",
            Ty::Any => "System.Object",
        }
    }
}

/// A validation attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validate {
    None,
    NotNullOrEmpty,
    NotNull,
    /// `ValidateLength(0, max)` (UTF-16 units).
    MaxLength(usize),
    Range(i64, i64),
}

/// A parameter's membership in one parameter set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetUse {
    pub set: &'static str,
    pub mandatory: bool,
    pub position: Option<u32>,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub aliases: Vec<&'static str>,
    pub ty: Ty,
    /// Empty: in all sets, optional, named.
    pub sets: Vec<SetUse>,
    /// In all sets, with this position.
    pub position_all: Option<u32>,
    pub mandatory_all: bool,
    pub pipeline: bool,
    /// A real parameter whose behaviour the simulator does not implement (binding it is a
    /// loud simulator error, not "parameter not found").
    pub supported: bool,
    pub validate: Validate,
}

/// Starts a parameter.
pub fn p(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        aliases: Vec::new(),
        ty,
        sets: Vec::new(),
        position_all: None,
        mandatory_all: false,
        pipeline: false,
        supported: true,
        validate: Validate::None,
    }
}

impl Param {
    pub fn alias(mut self, aliases: &[&'static str]) -> Param {
        self.aliases.extend_from_slice(aliases);
        self
    }
    /// Member of `set`.
    pub fn set(mut self, set: &'static str, mandatory: bool, position: Option<u32>) -> Param {
        self.sets.push(SetUse {
            set,
            mandatory,
            position,
        });
        self
    }
    pub fn pos(mut self, position: u32) -> Param {
        self.position_all = Some(position);
        self
    }
    pub fn mandatory(mut self) -> Param {
        self.mandatory_all = true;
        self
    }
    pub fn pipe(mut self) -> Param {
        self.pipeline = true;
        self
    }
    pub fn unsupported(mut self) -> Param {
        self.supported = false;
        self
    }
    pub fn validate(mut self, v: Validate) -> Param {
        self.validate = v;
        self
    }

    fn in_set(&self, set: &str) -> bool {
        self.sets.is_empty() || self.sets.iter().any(|s| s.set == set)
    }

    fn mandatory_in(&self, set: &str) -> bool {
        self.mandatory_all || self.sets.iter().any(|s| s.set == set && s.mandatory)
    }

    fn position_in(&self, set: &str) -> Option<u32> {
        if self.sets.is_empty() {
            self.position_all
        } else {
            self.sets
                .iter()
                .find(|s| s.set == set)
                .and_then(|s| s.position.or(self.position_all))
        }
    }

    fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

/// Which extra parameters a cmdlet has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    /// Common parameters only.
    Common,
    /// Common parameters and `-WhatIf`/`-Confirm`.
    ShouldProcess,
}

/// A cmdlet's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub name: &'static str,
    pub params: Vec<Param>,
    pub default_set: Option<&'static str>,
    /// The full .NET type of the cmdlet (for error ids).
    pub type_name: &'static str,
}

const ACTION_PREFERENCE: &[&str] = &[
    "SilentlyContinue",
    "Stop",
    "Continue",
    "Inquire",
    "Ignore",
    "Suspend",
];

impl Signature {
    pub fn new(
        name: &'static str,
        type_name: &'static str,
        default_set: Option<&'static str>,
        extras: Extras,
        mut params: Vec<Param>,
    ) -> Signature {
        let action = Ty::Enum(
            "System.Management.Automation.ActionPreference",
            ACTION_PREFERENCE,
        );
        params.extend([
            p("Verbose", Ty::Switch).alias(&["vb"]),
            p("Debug", Ty::Switch).alias(&["db"]),
            p("ErrorAction", action).alias(&["ea"]),
            p("WarningAction", action).alias(&["wa"]),
            p("InformationAction", action).alias(&["infa"]),
            p("ErrorVariable", Ty::Str).alias(&["ev"]).unsupported(),
            p("WarningVariable", Ty::Str).alias(&["wv"]).unsupported(),
            p("InformationVariable", Ty::Str)
                .alias(&["iv"])
                .unsupported(),
            p("OutVariable", Ty::Str).alias(&["ov"]).unsupported(),
            p("OutBuffer", Ty::Int).alias(&["ob"]).unsupported(),
            p("PipelineVariable", Ty::Str).alias(&["pv"]).unsupported(),
        ]);
        if extras == Extras::ShouldProcess {
            params.push(p("WhatIf", Ty::Switch).alias(&["wi"]).unsupported());
            params.push(p("Confirm", Ty::Switch).alias(&["cf"]));
        }
        Signature {
            name,
            params,
            default_set,
            type_name,
        }
    }

    /// Every set named by a parameter.
    fn all_sets(&self) -> Vec<&'static str> {
        let mut sets: Vec<&'static str> = self.default_set.into_iter().collect();
        for param in &self.params {
            for s in &param.sets {
                if !sets.contains(&s.set) {
                    sets.push(s.set);
                }
            }
        }
        if sets.is_empty() {
            sets.push("__AllParameterSets");
        }
        sets
    }

    fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// A raw argument of an invocation, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum RawArg {
    /// `-Name` as written (without the dash), and its value if written `-Name:value`.
    Named(String, Option<Value>),
    Positional(Value),
}

/// Why binding failed: a PowerShell `ParameterBindingException` (or validation error), or a
/// simulator limitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    Binding {
        message: String,
        /// `FullyQualifiedErrorId` prefix (`NamedParameterNotFound`, …).
        id: &'static str,
    },
    Unsupported(String),
}

fn binding(id: &'static str, message: String) -> BindError {
    BindError::Binding { message, id }
}

/// The bound parameters of one invocation (canonical names).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bound {
    pub set: &'static str,
    pub values: BTreeMap<&'static str, Value>,
}

impl Bound {
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
    pub fn str(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.to_text()),
        }
    }
    /// Bound to `$null` vs. not bound at all.
    pub fn nullable_str(&self, name: &str) -> Option<Option<String>> {
        self.values.get(name).map(|v| match v {
            Value::Null => None,
            v => Some(v.to_text()),
        })
    }
    pub fn strs(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(Value::to_text).collect(),
            Some(v) => vec![v.to_text()],
        }
    }
    pub fn switch(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The bound parameters as JSON (the effect log's `arguments`).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .iter()
            .map(|(k, v)| ((*k).to_string(), json_of(v)))
            .collect()
    }
}

fn json_of(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Str(s) => s.clone().into(),
        Value::DateTime(t) => t.sortable().into(),
        Value::Array(items) => items.iter().map(json_of).collect(),
        Value::Hashtable(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), json_of(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Object(o) => {
            let key = ["CI_ID", "ContainerNodeID", "ModelName", "Name"]
                .iter()
                .find_map(|k| o.get(k).map(|v| (k, v.to_text())));
            let mut map = serde_json::Map::new();
            map.insert("type".into(), o.type_name.clone().into());
            if let Some((k, v)) = key {
                map.insert((*k).to_string(), v.into());
            }
            map.into()
        }
        Value::ScriptBlock(b) => b.text.clone().into(),
    }
}

/// Finds the parameter `written` names (exact name or alias first, then a unique prefix).
fn resolve<'a>(sig: &'a Signature, written: &str) -> Result<&'a Param, BindError> {
    let lower = written.to_ascii_lowercase();
    if let Some(param) = sig
        .params
        .iter()
        .find(|p| p.names().any(|n| n.eq_ignore_ascii_case(written)))
    {
        return Ok(param);
    }
    let matches: Vec<&Param> = sig
        .params
        .iter()
        .filter(|p| {
            p.names()
                .any(|n| n.to_ascii_lowercase().starts_with(&lower))
        })
        .collect();
    match matches.as_slice() {
        [one] if !written.is_empty() => Ok(one),
        [] | [_] => Err(binding(
            "NamedParameterNotFound",
            format!("A parameter cannot be found that matches parameter name '{written}'."),
        )),
        many => Err(binding(
            "AmbiguousParameter",
            format!(
                "Parameter cannot be processed because the parameter name '{written}' is ambiguous. Possible matches include: {}.",
                many.iter()
                    .map(|p| format!("-{}", p.name))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )),
    }
}

fn parse_datetime(text: &str) -> Option<CivilTime> {
    let t = text.trim();
    if let Some(dt) = CivilTime::parse_sortable(t.trim_end_matches('Z')) {
        return Some(dt);
    }
    // MM/dd/yyyy [HH:mm:ss] (the invariant culture's form)
    let (date, time) = match t.split_once(' ') {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    let mut d = date.split('/');
    let (m, day, y) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() {
        return None;
    }
    let (h, mi, s) = match time {
        Some(tm) => {
            let mut parts = tm.split(':');
            let h = parts.next()?.parse().ok()?;
            let mi = parts.next()?.parse().ok()?;
            let s = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
            (h, mi, s)
        }
        None => (0, 0, 0),
    };
    CivilTime::new(
        y.parse().ok()?,
        m.parse().ok()?,
        day.parse().ok()?,
        h,
        mi,
        s,
    )
}

/// Converts `value` for `param`, PowerShell-style.
fn convert(param: &Param, value: Value) -> Result<Value, BindError> {
    let name = param.name;
    let cannot_convert = |v: &Value, detail: &str| {
        binding(
            "CannotConvertArgumentNoMessage",
            format!(
                "Cannot bind parameter '{name}'. Cannot convert value \"{}\" to type \"{}\". Error: \"{detail}\"",
                v.to_text(),
                param.ty.dotnet()
            ),
        )
    };
    let converted = match param.ty {
        Ty::Switch => Value::Bool(value.truthy()),
        Ty::Any => value,
        Ty::Str => match value {
            Value::Null => Value::Null,
            v => Value::Str(v.to_text()),
        },
        Ty::StrArray => match value {
            Value::Null => Value::Null,
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| Value::Str(i.to_text())).collect())
            }
            v => Value::Array(vec![Value::Str(v.to_text())]),
        },
        Ty::Int => {
            let number = match &value {
                Value::Null => Some(0.0),
                Value::Array(_) | Value::Object(_) | Value::Hashtable(_) => None,
                v => v.as_number(),
            };
            match number {
                Some(n) if n.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&n) => {
                    if value.is_null() {
                        Value::Null
                    } else {
                        Value::Int(n as i64)
                    }
                }
                Some(_) => {
                    return Err(cannot_convert(
                        &value,
                        "Value was either too large or too small for an Int32.",
                    ));
                }
                None => {
                    return Err(cannot_convert(
                        &value,
                        "Input string was not in a correct format.",
                    ));
                }
            }
        }
        Ty::Bool => match value {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Bool(i != 0),
            Value::Double(d) => Value::Bool(d != 0.0),
            other => {
                return Err(binding(
                    "ParameterArgumentTransformationError",
                    format!(
                        "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{}\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0.",
                        other.type_name()
                    ),
                ));
            }
        },
        Ty::DateTime => match value {
            Value::DateTime(t) => Value::DateTime(t),
            Value::Null => Value::Null,
            Value::Str(s) => match parse_datetime(&s) {
                Some(t) => Value::DateTime(t),
                None => {
                    return Err(cannot_convert(
                        &Value::Str(s),
                        "String was not recognized as a valid DateTime.",
                    ));
                }
            },
            other => return Err(cannot_convert(&other, "Invalid cast.")),
        },
        Ty::Enum(type_name, names) => {
            let text = value.to_text();
            match names.iter().find(|n| n.eq_ignore_ascii_case(text.trim())) {
                Some(n) => Value::Str((*n).to_string()),
                None => {
                    return Err(binding(
                        "CannotConvertArgumentNoMessage",
                        format!(
                            "Cannot bind parameter '{name}'. Cannot convert value \"{text}\" to type \"{type_name}\". Error: \"Unable to match the identifier name {text} to a valid enumerator name. Specify one of the following enumerator names and try again:\n{}\"",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        Ty::ResultObject(classes) => {
            let ok = |v: &Value| match v {
                Value::Object(o) => match &o.kind {
                    ObjectKind::Cm(c) => classes.is_empty() || classes.iter().any(|k| k == c),
                    _ => false,
                },
                _ => false,
            };
            match &value {
                Value::Null => Value::Null,
                Value::Array(items) if items.iter().all(ok) => value,
                v if ok(v) => value,
                other => {
                    return Err(binding(
                        "CannotConvertArgument",
                        format!(
                            "Cannot bind parameter '{name}'. Cannot convert the \"{}\" value of type \"{}\" to type \"{}\".",
                            other.to_text(),
                            other.type_name(),
                            param.ty.dotnet()
                        ),
                    ));
                }
            }
        }
        Ty::ScriptBlock => match value {
            Value::ScriptBlock(b) => Value::ScriptBlock(b),
            other => {
                return Err(binding(
                    "CannotConvertArgument",
                    format!(
                        "Cannot bind parameter '{name}'. Cannot convert the \"{}\" value of type \"{}\" to type \"System.Management.Automation.ScriptBlock\".",
                        other.to_text(),
                        other.type_name()
                    ),
                ));
            }
        },
    };
    validate(param, &converted)?;
    Ok(converted)
}

fn validate(param: &Param, value: &Value) -> Result<(), BindError> {
    let name = param.name;
    let fail = |message: String| binding("ParameterArgumentValidationError", message);
    match param.validate {
        Validate::None => Ok(()),
        Validate::NotNull if value.is_null() => Err(fail(format!(
            "Cannot validate argument on parameter '{name}'. The argument is null. Provide a valid value for the argument, and then try the command again."
        ))),
        Validate::NotNullOrEmpty
            if value.is_null()
                || matches!(value, Value::Str(s) if s.is_empty())
                || matches!(value, Value::Array(a) if a.is_empty()) =>
        {
            Err(fail(format!(
                "Cannot validate argument on parameter '{name}'. The argument is null or empty. Provide an argument that is not null or empty, and then try the command again."
            )))
        }
        Validate::MaxLength(max) => match value {
            Value::Str(s) if s.encode_utf16().count() > max => Err(fail(format!(
                "Cannot validate argument on parameter '{name}'. The character length of the {} argument is too long. Shorten the character length of the argument so it is fewer than or equal to \"{max}\" characters, and then try the command again.",
                s.encode_utf16().count()
            ))),
            _ => Ok(()),
        },
        Validate::Range(min, max) => match value {
            Value::Int(i) if *i < min => Err(fail(format!(
                "Cannot validate argument on parameter '{name}'. The {i} argument is less than the minimum allowed range of {min}. Supply an argument that is greater than or equal to {min} and then try the command again."
            ))),
            Value::Int(i) if *i > max => Err(fail(format!(
                "Cannot validate argument on parameter '{name}'. The {i} argument is greater than the maximum allowed range of {max}. Supply an argument that is less than or equal to {max} and then try the command again."
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Binds `args` (and, if `pipeline_input`, the pipeline parameter) to `sig`.
pub fn bind(sig: &Signature, args: Vec<RawArg>, pipeline_input: bool) -> Result<Bound, BindError> {
    let mut named: Vec<(&Param, Value)> = Vec::new();
    let mut positional: Vec<Value> = Vec::new();
    let mut iter = args.into_iter().peekable();
    while let Some(arg) = iter.next() {
        match arg {
            RawArg::Positional(v) => positional.push(v),
            RawArg::Named(written, colon) => {
                let param = resolve(sig, &written)?;
                if named.iter().any(|(p, _)| p.name == param.name) {
                    return Err(binding(
                        "ParameterAlreadyBound",
                        format!(
                            "Cannot bind parameter because parameter '{}' is specified more than once. To provide multiple values to parameters that can accept multiple values, use the array syntax. For example, \"-parameter value1,value2,value3\".",
                            param.name
                        ),
                    ));
                }
                let value = match (colon, param.ty) {
                    (Some(v), _) => v,
                    (None, Ty::Switch) => Value::Bool(true),
                    (None, _) => match iter.next_if(|a| matches!(a, RawArg::Positional(_))) {
                        Some(RawArg::Positional(v)) => v,
                        _ => {
                            return Err(binding(
                                "MissingArgument",
                                format!(
                                    "Missing an argument for parameter '{}'. Specify a parameter of type '{}' and try again.",
                                    param.name,
                                    param.ty.dotnet()
                                ),
                            ));
                        }
                    },
                };
                named.push((param, value));
            }
        }
    }
    // Candidate sets: those every named parameter belongs to.
    let mut candidates = sig.all_sets();
    for (param, _) in &named {
        if !param.sets.is_empty() {
            candidates.retain(|s| param.in_set(s));
        }
    }
    let unresolved = || {
        binding(
            "AmbiguousParameterSet",
            "Parameter set cannot be resolved using the specified named parameters. One or more parameters issued cannot be used together or an insufficient number of parameters were provided.".into(),
        )
    };
    if candidates.is_empty() {
        return Err(unresolved());
    }
    // Positional arguments: the lowest free position of the candidate sets, in order.
    let mut bound: Vec<(&Param, Value)> = named;
    for value in positional {
        let mut best: Option<(u32, &Param)> = None;
        for param in &sig.params {
            if bound.iter().any(|(b, _)| b.name == param.name) {
                continue;
            }
            for set in &candidates {
                if !param.in_set(set) {
                    continue;
                }
                if let Some(pos) = param.position_in(set)
                    && best.is_none_or(|(b, _)| pos < b)
                {
                    best = Some((pos, param));
                }
            }
        }
        let Some((_, param)) = best else {
            return Err(binding(
                "PositionalParameterNotFound",
                format!(
                    "A positional parameter cannot be found that accepts argument '{}'.",
                    value.to_text()
                ),
            ));
        };
        if !param.sets.is_empty() {
            candidates.retain(|s| param.in_set(s));
        }
        bound.push((param, value));
    }
    let piped = if pipeline_input {
        sig.params
            .iter()
            .find(|p| p.pipeline && candidates.iter().any(|s| p.in_set(s)))
    } else {
        None
    };
    if pipeline_input && piped.is_none() {
        return Err(binding(
            "InputObjectNotBound",
            "The input object cannot be bound to any parameters for the command either because the command does not take pipeline input or the input and its properties do not match any of the parameters that take pipeline input.".into(),
        ));
    }
    if let Some(param) = piped
        && !param.sets.is_empty()
    {
        candidates.retain(|s| param.in_set(s));
    }
    let is_bound = |param: &Param| {
        bound.iter().any(|(b, _)| b.name == param.name)
            || piped.is_some_and(|p| p.name == param.name)
    };
    let complete = |set: &str| {
        sig.params
            .iter()
            .filter(|p| p.in_set(set) && p.mandatory_in(set))
            .all(is_bound)
    };
    let set = match candidates.as_slice() {
        [] => return Err(unresolved()),
        [one] => *one,
        many => {
            let satisfied: Vec<&&str> = many.iter().filter(|s| complete(s)).collect();
            match (sig.default_set, satisfied.as_slice()) {
                (Some(d), _) if many.contains(&d) && (complete(d) || satisfied.is_empty()) => d,
                (_, [one]) => one,
                _ => return Err(unresolved()),
            }
        }
    };
    let missing: Vec<&str> = sig
        .params
        .iter()
        .filter(|p| p.in_set(set) && p.mandatory_in(set) && !is_bound(p))
        .map(|p| p.name)
        .collect();
    if !missing.is_empty() {
        return Err(binding(
            "MissingMandatoryParameter",
            format!(
                "Cannot process command because of one or more missing mandatory parameters: {}.",
                missing.join(" ")
            ),
        ));
    }
    let mut out = Bound {
        set,
        values: BTreeMap::new(),
    };
    for (param, value) in bound {
        if !param.supported {
            return Err(BindError::Unsupported(format!(
                "The sccm-connector site simulator does not implement the parameter -{} of {}.",
                param.name, sig.name
            )));
        }
        let mandatory = param.mandatory_in(set);
        if mandatory && param.ty == Ty::Str {
            match &value {
                Value::Null => {
                    return Err(binding(
                        "ParameterArgumentValidationErrorNullNotAllowed",
                        format!(
                            "Cannot bind argument to parameter '{}' because it is null.",
                            param.name
                        ),
                    ));
                }
                Value::Str(s) if s.is_empty() => {
                    return Err(binding(
                        "ParameterArgumentValidationErrorEmptyStringNotAllowed",
                        format!(
                            "Cannot bind argument to parameter '{}' because it is an empty string.",
                            param.name
                        ),
                    ));
                }
                _ => {}
            }
        }
        if mandatory && value.is_null() && param.ty != Ty::Str {
            return Err(binding(
                "ParameterArgumentValidationErrorNullNotAllowed",
                format!(
                    "Cannot bind argument to parameter '{}' because it is null.",
                    param.name
                ),
            ));
        }
        let converted = convert(param, value)?;
        out.values.insert(param.name, converted);
    }
    Ok(out)
}

/// Binds one pipeline input item to the pipeline parameter of the bound set.
pub fn bind_input(sig: &Signature, bound: &Bound, item: Value) -> Result<Bound, BindError> {
    let param = sig
        .params
        .iter()
        .find(|p| p.pipeline && p.in_set(bound.set))
        .ok_or_else(|| {
            binding(
                "InputObjectNotBound",
                "The input object cannot be bound to any parameters for the command either because the command does not take pipeline input or the input and its properties do not match any of the parameters that take pipeline input.".into(),
            )
        })?;
    let mut out = bound.clone();
    let value = convert(param, item)?;
    out.values.insert(param.name, value);
    Ok(out)
}

impl Signature {
    /// The canonical name of a bound parameter (for callers that check membership).
    pub fn knows(&self, name: &str) -> bool {
        self.param(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature::new(
            "New-CMThing",
            "Test.NewThing",
            Some("ByName"),
            Extras::ShouldProcess,
            vec![
                p("Name", Ty::Str)
                    .alias(&["LocalizedDisplayName"])
                    .set("ByName", true, Some(0))
                    .validate(Validate::MaxLength(5)),
                p("Id", Ty::Int).set("ById", true, None),
                p(
                    "DeployAction",
                    Ty::Enum("Test.DeployActionType", &["Install", "Uninstall"]),
                ),
                p(
                    "DeployPurpose",
                    Ty::Enum("Test.DeployPurposeType", &["Available", "Required"]),
                ),
                p("AutoInstall", Ty::Bool),
                p("Fast", Ty::Switch),
                p("Force", Ty::Switch),
                p("Force32Bit", Ty::Switch),
                p("InputObject", Ty::ResultObject(&["SMS_Application"]))
                    .pipe()
                    .set("ByValue", true, None),
                p("Odd", Ty::Str).unsupported(),
            ],
        )
    }

    fn named(name: &str) -> RawArg {
        RawArg::Named(name.into(), None)
    }

    fn val(v: Value) -> RawArg {
        RawArg::Positional(v)
    }

    fn message(e: BindError) -> String {
        match e {
            BindError::Binding { message, .. } | BindError::Unsupported(message) => message,
        }
    }

    #[test]
    fn names_aliases_prefixes_and_case() {
        let b = bind(&sig(), vec![named("NAME"), val(Value::str("a"))], false).expect("binds");
        assert_eq!(b.str("Name").as_deref(), Some("a"));
        assert_eq!(b.set, "ByName");
        let b = bind(
            &sig(),
            vec![named("localizeddisplayname"), val(Value::str("b"))],
            false,
        )
        .expect("alias");
        assert_eq!(b.str("Name").as_deref(), Some("b"));
        let b = bind(
            &sig(),
            vec![named("Na"), val(Value::str("c")), named("Fa")],
            false,
        )
        .expect("prefixes");
        assert!(b.switch("Fast"));
        // An exact name wins over a longer one it prefixes.
        let b = bind(&sig(), vec![val(Value::str("x")), named("Force")], false).expect("exact");
        assert!(b.switch("Force") && !b.switch("Force32Bit"));
        let b = bind(
            &sig(),
            vec![val(Value::str("x")), named("ea"), val(Value::str("stop"))],
            false,
        )
        .expect("common alias");
        assert_eq!(b.str("ErrorAction").as_deref(), Some("Stop"));
    }

    #[test]
    fn unknown_ambiguous_and_duplicate_parameters() {
        let e = bind(&sig(), vec![named("Language"), val(Value::str("x"))], false)
            .expect_err("unknown");
        assert_eq!(
            message(e),
            "A parameter cannot be found that matches parameter name 'Language'."
        );
        let e = bind(&sig(), vec![named("Deploy"), val(Value::str("x"))], false)
            .expect_err("ambiguous");
        assert_eq!(
            message(e),
            "Parameter cannot be processed because the parameter name 'Deploy' is ambiguous. Possible matches include: -DeployAction -DeployPurpose."
        );
        let e = bind(
            &sig(),
            vec![
                named("Name"),
                val(Value::str("a")),
                named("Name"),
                val(Value::str("b")),
            ],
            false,
        )
        .expect_err("twice");
        assert!(message(e).contains("is specified more than once"));
        let e = bind(&sig(), vec![named("Name")], false).expect_err("no value");
        assert_eq!(
            message(e),
            "Missing an argument for parameter 'Name'. Specify a parameter of type 'System.String' and try again."
        );
        let e = bind(
            &sig(),
            vec![val(Value::str("a")), val(Value::str("b"))],
            false,
        )
        .expect_err("extra positional");
        assert_eq!(
            message(e),
            "A positional parameter cannot be found that accepts argument 'b'."
        );
        let e = bind(
            &sig(),
            vec![val(Value::str("a")), named("Odd"), val(Value::str("b"))],
            false,
        )
        .expect_err("unsupported");
        assert!(matches!(e, BindError::Unsupported(_)));
    }

    #[test]
    fn parameter_sets_and_mandatory_parameters() {
        let b = bind(&sig(), vec![named("Id"), val(Value::Int(5))], false).expect("by id");
        assert_eq!(b.set, "ById");
        let e = bind(
            &sig(),
            vec![
                named("Id"),
                val(Value::Int(5)),
                named("Name"),
                val(Value::str("x")),
            ],
            false,
        )
        .expect_err("two sets");
        assert!(message(e).starts_with("Parameter set cannot be resolved"));
        let e = bind(&sig(), vec![named("Fast")], false).expect_err("missing");
        assert_eq!(
            message(e),
            "Cannot process command because of one or more missing mandatory parameters: Name."
        );
        let b = bind(&sig(), vec![named("Fast")], true).expect("pipeline input");
        assert_eq!(b.set, "ByValue");
    }

    #[test]
    fn types_are_converted_or_refused_like_powershell() {
        let base = || vec![val(Value::str("x"))];
        let with = |extra: Vec<RawArg>| {
            let mut args = base();
            args.extend(extra);
            bind(&sig(), args, false)
        };
        assert_eq!(
            with(vec![named("DeployPurpose"), val(Value::str("required"))])
                .expect("enum")
                .str("DeployPurpose")
                .as_deref(),
            Some("Required")
        );
        let e = with(vec![named("DeployPurpose"), val(Value::str("Mandatory"))]).expect_err("enum");
        assert!(message(e).contains("Unable to match the identifier name Mandatory"));
        let e = with(vec![named("AutoInstall"), val(Value::str("yes"))]).expect_err("bool");
        assert!(message(e).contains("Boolean parameters accept only Boolean values and numbers"));
        assert_eq!(
            with(vec![named("AutoInstall"), val(Value::Int(0))])
                .expect("bool")
                .bool("AutoInstall"),
            Some(false)
        );
        let e = with(vec![named("Id"), val(Value::str("abc"))]);
        assert!(e.is_err());
        let e = bind(&sig(), vec![val(Value::str("toolong"))], false).expect_err("length");
        assert!(message(e).contains("fewer than or equal to \"5\" characters"));
        let e = bind(&sig(), vec![named("Name"), val(Value::Null)], false).expect_err("null");
        assert_eq!(
            message(e),
            "Cannot bind argument to parameter 'Name' because it is null."
        );
        let e = bind(&sig(), vec![named("Name"), val(Value::str(""))], false).expect_err("empty");
        assert!(message(e).contains("because it is an empty string"));
        let b = bind(
            &sig(),
            vec![
                val(Value::str("x")),
                RawArg::Named("Fast".into(), Some(Value::Bool(false))),
            ],
            false,
        )
        .expect("switch:$false");
        assert!(!b.switch("Fast"));
    }
}
