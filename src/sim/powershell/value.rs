//! PowerShell values as the interpreter sees them, with PowerShell's conversions: truthiness,
//! `[string]` conversion, comparison (`-eq` is case-insensitive and converts the right operand
//! to the left one's type), member access (with member enumeration over arrays, `.Count`), and
//! the default formatting of objects written to the console.

use crate::sim::site::clock::CivilTime;
use std::rc::Rc;

/// A .NET object's property bag, with its type names (most specific first).
#[derive(Debug, Clone, PartialEq)]
pub struct PsObject {
    /// E.g. `IResultObject#SMS_ApplicationLatest`, `System.Management.Automation.PSCustomObject`.
    pub type_name: String,
    /// What the interpreter needs to know about it beyond its properties.
    pub kind: ObjectKind,
    pub props: Vec<(String, Value)>,
}

/// The kinds of objects the interpreter treats specially.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// `[pscustomobject]` (Select-Object output).
    Custom,
    /// A ConfigMgr `IResultObject` of the WMI class.
    Cm(String),
    /// A CIM instance of the WMI class.
    Cim(String),
    /// `System.Text.UTF8Encoding`; `true` when it emits a BOM.
    Utf8Encoding(bool),
    /// `[System.Globalization.CultureInfo]::InvariantCulture`.
    InvariantCulture,
    /// An `ErrorRecord` (`$_` in a catch block).
    ErrorRecord,
    /// Nested objects of an error record (`Exception`, `InvocationInfo`).
    Detail,
    /// `PSModuleInfo`.
    Module,
    /// `PSDriveInfo`.
    Drive,
}

impl PsObject {
    pub fn new(type_name: &str, kind: ObjectKind, props: Vec<(String, Value)>) -> PsObject {
        PsObject {
            type_name: type_name.to_string(),
            kind,
            props,
        }
    }

    /// A property, case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The WMI class of a ConfigMgr or CIM object.
    pub fn wmi_class(&self) -> Option<&str> {
        match &self.kind {
            ObjectKind::Cm(c) | ObjectKind::Cim(c) => Some(c),
            _ => None,
        }
    }
}

/// A value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    DateTime(CivilTime),
    Array(Vec<Value>),
    /// `@{ … }`: keys in insertion order, compared case-insensitively.
    Hashtable(Vec<(String, Value)>),
    Object(Rc<PsObject>),
    /// A script block: its statements (index into the script's blocks) and its text.
    ScriptBlock(Rc<super::syntax::Block>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn object(type_name: &str, kind: ObjectKind, props: Vec<(&str, Value)>) -> Value {
        Value::Object(Rc::new(PsObject::new(
            type_name,
            kind,
            props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        )))
    }

    pub fn opt_str(s: Option<&str>) -> Value {
        s.map(Value::str).unwrap_or(Value::Null)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// PowerShell's truthiness (`if ($x)`, `-not`, `-and`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Double(d) => *d != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Array(items) => match items.as_slice() {
                [] => false,
                [one] => one.truthy(),
                _ => true,
            },
            _ => true,
        }
    }

    /// The `[string]` conversion (invariant culture; arrays joined by a space).
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Str(s) => s.clone(),
            Value::DateTime(t) => format!(
                "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
                t.month, t.day, t.year, t.hour, t.minute, t.second
            ),
            Value::Array(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(" "),
            Value::Hashtable(_) => "System.Collections.Hashtable".into(),
            Value::Object(o) => match &o.kind {
                ObjectKind::Custom => format!(
                    "@{{{}}}",
                    o.props
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.to_text()))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                ObjectKind::ErrorRecord | ObjectKind::Detail => o
                    .get("Message")
                    .map(Value::to_text)
                    .unwrap_or_else(|| o.type_name.clone()),
                ObjectKind::Module | ObjectKind::Drive => o
                    .get("Name")
                    .map(Value::to_text)
                    .unwrap_or_else(|| o.type_name.clone()),
                _ => o.type_name.clone(),
            },
            Value::ScriptBlock(b) => b.text.clone(),
        }
    }

    /// The .NET type name, for messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(_) => "System.Boolean".into(),
            Value::Int(i) if i32::try_from(*i).is_ok() => "System.Int32".into(),
            Value::Int(_) => "System.Int64".into(),
            Value::Double(_) => "System.Double".into(),
            Value::Str(_) => "System.String".into(),
            Value::DateTime(_) => "System.DateTime".into(),
            Value::Array(_) => "System.Object[]".into(),
            Value::Hashtable(_) => "System.Collections.Hashtable".into(),
            Value::Object(o) => o.type_name.clone(),
            Value::ScriptBlock(_) => "System.Management.Automation.ScriptBlock".into(),
        }
    }

    /// The items a value contributes to a pipeline (arrays are enumerated one level).
    pub fn enumerate(self) -> Vec<Value> {
        match self {
            Value::Array(items) => items,
            other => vec![other],
        }
    }

    /// Pipeline output as one value: nothing → `$null`, one → itself, more → an array.
    pub fn from_output(mut items: Vec<Value>) -> Value {
        match items.len() {
            0 => Value::Null,
            1 => items.remove(0),
            _ => Value::Array(items),
        }
    }

    /// `$x.Name`: a property; `Count`/`Length` of arrays and scalars; member enumeration over
    /// arrays. Unknown members are `$null` (not strict mode).
    pub fn member(&self, name: &str) -> Value {
        let lower = name.to_ascii_lowercase();
        match self {
            Value::Array(items) => {
                if lower == "count" || lower == "length" {
                    return Value::Int(items.len() as i64);
                }
                let values: Vec<Value> = items
                    .iter()
                    .map(|i| i.member(name))
                    .filter(|v| !v.is_null())
                    .flat_map(Value::enumerate)
                    .collect();
                Value::from_output(values)
            }
            Value::Null if lower == "count" => Value::Int(0),
            Value::Null => Value::Null,
            Value::Str(s) if lower == "length" => Value::Int(s.encode_utf16().count() as i64),
            Value::Hashtable(entries) => {
                if let Some((_, v)) = entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                    return v.clone();
                }
                match lower.as_str() {
                    "count" => Value::Int(entries.len() as i64),
                    "keys" => Value::Array(entries.iter().map(|(k, _)| Value::str(k)).collect()),
                    _ => Value::Null,
                }
            }
            Value::Object(o) => match o.get(name) {
                Some(v) => v.clone(),
                None if lower == "count" => Value::Int(1),
                None => Value::Null,
            },
            Value::DateTime(t) => match lower.as_str() {
                "year" => Value::Int(t.year),
                "month" => Value::Int(i64::from(t.month)),
                "day" => Value::Int(i64::from(t.day)),
                "hour" => Value::Int(i64::from(t.hour)),
                "minute" => Value::Int(i64::from(t.minute)),
                "second" => Value::Int(i64::from(t.second)),
                _ => Value::Null,
            },
            _ if lower == "count" => Value::Int(1),
            _ => Value::Null,
        }
    }

    /// The value as a number, if PowerShell would convert it.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Null => Some(0.0),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            Value::Str(s) => {
                let t = s.trim();
                if t.is_empty() {
                    Some(0.0)
                } else {
                    t.parse::<f64>().ok()
                }
            }
            _ => None,
        }
    }
}

fn format_double(d: f64) -> String {
    if d.fract() == 0.0 && d.abs() < 1e15 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
}

/// Why a comparison cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareError(pub String);

/// `left -op right` for a scalar left operand.
fn compare_scalar(
    left: &Value,
    right: &Value,
    op: CompareOp,
    case_sensitive: bool,
) -> Result<bool, CompareError> {
    use std::cmp::Ordering;
    if matches!(op, CompareOp::Like | CompareOp::NotLike) {
        let pattern = super::wildcard::Pattern::new(&right.to_text(), case_sensitive)
            .map_err(CompareError)?;
        let hit = pattern.matches(&left.to_text());
        return Ok(hit == (op == CompareOp::Like));
    }
    let ordering: Option<Ordering> = match (left, right) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => {
            return Ok(match op {
                CompareOp::Eq => false,
                CompareOp::Ne => true,
                // $null sorts before everything.
                CompareOp::Lt | CompareOp::Le => true,
                _ => false,
            });
        }
        (Value::Str(l), r) => {
            let r = r.to_text();
            Some(if case_sensitive {
                l.as_str().cmp(r.as_str())
            } else {
                l.to_lowercase().cmp(&r.to_lowercase())
            })
        }
        (Value::Bool(l), r) => Some(l.cmp(&r.truthy())),
        (Value::Int(_) | Value::Double(_), r) => {
            let l = left.as_number().unwrap_or(0.0);
            match r {
                Value::Null => Some(if l < 0.0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }),
                _ => match r.as_number() {
                    Some(rn) => l.partial_cmp(&rn),
                    None if matches!(op, CompareOp::Eq | CompareOp::Ne) => None,
                    None => {
                        return Err(CompareError(format!(
                            "Cannot convert value \"{}\" to type \"{}\". Error: \"Input string was not in a correct format.\"",
                            r.to_text(),
                            left.type_name()
                        )));
                    }
                },
            }
        }
        (Value::DateTime(l), Value::DateTime(r)) => Some(l.cmp(r)),
        (l, r) => {
            let equal = l == r;
            if matches!(op, CompareOp::Eq | CompareOp::Ne) {
                Some(if equal {
                    Ordering::Equal
                } else {
                    Ordering::Less
                })
            } else {
                return Err(CompareError(format!(
                    "Cannot compare \"{}\" because it is not IComparable.",
                    l.to_text()
                )));
            }
        }
    };
    Ok(match (op, ordering) {
        (CompareOp::Eq, o) => o == Some(Ordering::Equal),
        (CompareOp::Ne, o) => o != Some(Ordering::Equal),
        (CompareOp::Gt, o) => o == Some(Ordering::Greater),
        (CompareOp::Ge, o) => matches!(o, Some(Ordering::Greater | Ordering::Equal)),
        (CompareOp::Lt, o) => o == Some(Ordering::Less),
        (CompareOp::Le, o) => matches!(o, Some(Ordering::Less | Ordering::Equal)),
        (CompareOp::Like | CompareOp::NotLike, _) => false,
    })
}

/// `left -op right`: with an array on the left, the matching elements (PowerShell filters).
pub fn compare(
    left: &Value,
    right: &Value,
    op: CompareOp,
    case_sensitive: bool,
) -> Result<Value, CompareError> {
    match left {
        Value::Array(items) => {
            let mut kept = Vec::new();
            for item in items {
                if compare_scalar(item, right, op, case_sensitive)? {
                    kept.push(item.clone());
                }
            }
            Ok(Value::Array(kept))
        }
        _ => Ok(Value::Bool(compare_scalar(
            left,
            right,
            op,
            case_sensitive,
        )?)),
    }
}

/// `left + right`.
pub fn add(left: &Value, right: &Value) -> Result<Value, String> {
    Ok(match (left, right) {
        (Value::Null, r) => r.clone(),
        (Value::Str(l), r) => Value::Str(format!("{l}{}", r.to_text())),
        (Value::Int(l), Value::Int(r)) => match l.checked_add(*r) {
            Some(sum) => Value::Int(sum),
            None => Value::Double(*l as f64 + *r as f64),
        },
        (Value::Int(_) | Value::Double(_), r) => match (left.as_number(), r.as_number()) {
            (Some(l), Some(r)) => Value::Double(l + r),
            _ => {
                return Err(format!(
                    "Cannot convert value \"{}\" to type \"System.Int32\". Error: \"Input string was not in a correct format.\"",
                    r.to_text()
                ));
            }
        },
        (Value::Array(l), r) => {
            let mut items = l.clone();
            items.extend(r.clone().enumerate());
            Value::Array(items)
        }
        (Value::Hashtable(l), Value::Hashtable(r)) => {
            let mut entries = l.clone();
            for (k, v) in r {
                if entries.iter().any(|(e, _)| e.eq_ignore_ascii_case(k)) {
                    return Err(format!(
                        "Item has already been added. Key in dictionary: '{k}'  Key being added: '{k}'"
                    ));
                }
                entries.push((k.clone(), v.clone()));
            }
            Value::Hashtable(entries)
        }
        (l, _) => {
            return Err(format!(
                "Method invocation failed because [{}] does not contain a method named 'op_Addition'.",
                l.type_name()
            ));
        }
    })
}

/// How an object written to the console looks (PowerShell's default formatting, roughly):
/// scalars as text; objects as `Name : Value` lists; hashtables as a Name/Value table.
pub fn format_for_console(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Hashtable(entries) => {
            let width = entries
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            let mut lines = vec![
                String::new(),
                format!("{:width$} Value", "Name"),
                format!("{:width$} -----", "----"),
            ];
            for (k, v) in entries {
                lines.push(format!("{k:width$} {}", v.to_text()));
            }
            lines.push(String::new());
            lines
        }
        Value::Object(o) if !o.props.is_empty() && o.kind != ObjectKind::ErrorRecord => {
            let width = o
                .props
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            let mut lines = vec![String::new()];
            for (k, v) in &o.props {
                lines.push(format!("{k:width$} : {}", v.to_text()));
            }
            lines.push(String::new());
            lines
        }
        Value::Array(items) => items.iter().flat_map(format_for_console).collect(),
        other => other
            .to_text()
            .split('\n')
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthiness_follows_powershell() {
        assert!(!Value::Null.truthy());
        assert!(!Value::str("").truthy());
        assert!(Value::str("False").truthy());
        assert!(!Value::Array(vec![]).truthy());
        assert!(!Value::Array(vec![Value::Int(0)]).truthy());
        assert!(Value::Array(vec![Value::Int(0), Value::Int(0)]).truthy());
        assert!(Value::object("x", ObjectKind::Custom, vec![]).truthy());
    }

    #[test]
    fn equality_converts_the_right_operand_and_ignores_case() {
        let eq = |l: Value, r: Value| compare(&l, &r, CompareOp::Eq, false).expect("compares");
        assert_eq!(eq(Value::str("ABC"), Value::str("abc")), Value::Bool(true));
        assert_eq!(eq(Value::Int(5), Value::str("5")), Value::Bool(true));
        assert_eq!(eq(Value::Null, Value::Null), Value::Bool(true));
        assert_eq!(eq(Value::Null, Value::Int(0)), Value::Bool(false));
        assert_eq!(eq(Value::Int(0), Value::Null), Value::Bool(false));
        assert_eq!(
            eq(
                Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(1)]),
                Value::Int(1)
            ),
            Value::Array(vec![Value::Int(1), Value::Int(1)])
        );
        assert_eq!(
            compare(&Value::Int(3), &Value::Int(0), CompareOp::Gt, false),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            compare(&Value::Null, &Value::Int(0), CompareOp::Gt, false),
            Ok(Value::Bool(false))
        );
    }

    #[test]
    fn members_enumerate_over_arrays() {
        let obj = |id: i64| {
            Value::object(
                "x",
                ObjectKind::Custom,
                vec![("CI_ID", Value::Int(id)), ("Name", Value::str("n"))],
            )
        };
        assert_eq!(obj(1).member("ci_id"), Value::Int(1));
        assert_eq!(obj(1).member("Missing"), Value::Null);
        let both = Value::Array(vec![obj(1), obj(2)]);
        assert_eq!(
            both.member("CI_ID"),
            Value::Array(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(both.member("Count"), Value::Int(2));
        assert_eq!(Value::Null.member("Count"), Value::Int(0));
        assert_eq!(Value::Null.member("Anything"), Value::Null);
    }

    #[test]
    fn addition_concatenates_strings() {
        assert_eq!(
            add(&Value::str("DEM"), &Value::str(":")),
            Ok(Value::str("DEM:"))
        );
        assert_eq!(add(&Value::str("a"), &Value::Int(1)), Ok(Value::str("a1")));
        assert_eq!(add(&Value::Int(1), &Value::Int(2)), Ok(Value::Int(3)));
        assert!(add(&Value::Int(1), &Value::str("x")).is_err());
        assert_eq!(
            Value::Array(vec![Value::str("a"), Value::Int(1)]).to_text(),
            "a 1"
        );
    }
}
