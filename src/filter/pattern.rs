//! EventBridge event patterns (`--pattern`), with Amazon EventBridge's semantics: exact values,
//! `prefix`, `suffix` (each also `equals-ignore-case`), `anything-but` (values, lists, `prefix`,
//! `suffix`, `wildcard`, `equals-ignore-case`), `numeric` ranges, `exists`, `equals-ignore-case`,
//! `wildcard`, `cidr`, `$or`, nested and dotted keys, and array fields (matching when any
//! element does).
//!
//! A pattern is compiled once (an invalid one is refused with its path and the reason, as
//! EventBridge's `InvalidEventPatternException` would), then run over the `events` batches as one
//! DataFusion function ([`PatternUdf`]) that sees each row as EventBridge sees the event:
//! `detail-type`, `time` as RFC 3339 text, `detail` as JSON.
//!
//! Keys are matched as dotted paths: `{"a": {"b": [..]}}` and `{"a.b": [..]}` are the same, and
//! either matches an event with `{"a": {"b": …}}` or with `{"a.b": …}`. Arrays on the way are
//! looked into: a path's values are every scalar at it, in every element.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use serde_json::{Map, Value};

/// A scalar of a pattern or an event.
#[derive(Debug, Clone)]
enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Scalar {
    fn of(v: &Value) -> Option<Scalar> {
        Some(match v {
            Value::String(s) => Scalar::Str(s.clone()),
            Value::Number(n) => Scalar::Num(n.as_f64()?),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Null => Scalar::Null,
            _ => return None,
        })
    }

    fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Str(a), Value::String(b)) => a == b,
            (Scalar::Num(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Null, Value::Null) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// What `anything-but` leaves out.
#[derive(Debug, Clone)]
enum Except {
    Values(Vec<Scalar>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    Wildcard(Vec<String>),
    IgnoreCase(Vec<String>),
}

/// One element of a pattern's match array.
#[derive(Debug, Clone)]
enum Cond {
    Exact(Scalar),
    Prefix { text: String, ignore_case: bool },
    Suffix { text: String, ignore_case: bool },
    EqualsIgnoreCase(String),
    Wildcard(String),
    Numeric(Vec<(Op, f64)>),
    Cidr { net: IpAddr, bits: u8 },
    Exists(bool),
    AnythingBut(Except),
}

impl Cond {
    /// Whether the event value `v` (a scalar at the condition's path) satisfies it.
    fn matches(&self, v: &Value) -> bool {
        let text = v.as_str();
        match self {
            Cond::Exact(s) => s.equals(v),
            Cond::Prefix { text: p, ignore_case } => text.is_some_and(|t| {
                if *ignore_case {
                    lower(t).starts_with(&lower(p))
                } else {
                    t.starts_with(p.as_str())
                }
            }),
            Cond::Suffix { text: p, ignore_case } => text.is_some_and(|t| {
                if *ignore_case {
                    lower(t).ends_with(&lower(p))
                } else {
                    t.ends_with(p.as_str())
                }
            }),
            Cond::EqualsIgnoreCase(p) => text.is_some_and(|t| lower(t) == lower(p)),
            Cond::Wildcard(p) => text.is_some_and(|t| wildcard(p, t)),
            Cond::Numeric(ranges) => v.as_f64().is_some_and(|n| {
                ranges.iter().all(|&(op, x)| match op {
                    Op::Lt => n < x,
                    Op::Le => n <= x,
                    Op::Eq => n == x,
                    Op::Ge => n >= x,
                    Op::Gt => n > x,
                })
            }),
            Cond::Cidr { net, bits } => text
                .and_then(|t| t.parse::<IpAddr>().ok())
                .is_some_and(|ip| in_network(ip, *net, *bits)),
            Cond::Exists(_) => true, // decided on the path, not the value
            Cond::AnythingBut(except) => match except {
                Except::Values(values) => !values.iter().any(|s| s.equals(v)),
                // A value that is not a string is none of these strings.
                Except::Prefix(ps) => text.is_none_or(|t| !ps.iter().any(|p| t.starts_with(p.as_str()))),
                Except::Suffix(ps) => text.is_none_or(|t| !ps.iter().any(|p| t.ends_with(p.as_str()))),
                Except::Wildcard(ps) => text.is_none_or(|t| !ps.iter().any(|p| wildcard(p, t))),
                Except::IgnoreCase(ps) => text.is_none_or(|t| !ps.iter().any(|p| lower(p) == lower(t))),
            },
        }
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `*` matches any run of characters (none included); `\*` is a literal star.
fn wildcard(pattern: &str, text: &str) -> bool {
    // Tokens: Some(c) a literal character, None a star.
    let mut tokens: Vec<Option<char>> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Some(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(None),
            c => tokens.push(Some(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last star: linear for patterns without stars.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Some(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(None) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(Option::is_none)
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits as u32) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits as u32) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One alternative of a pattern (`$or` makes several): every path must match.
type Branch = Vec<(String, Vec<Cond>)>;

/// A compiled event pattern.
#[derive(Debug)]
pub struct Pattern {
    text: String,
    branches: Vec<Branch>,
}

impl Pattern {
    /// Compiles a pattern's JSON text. The error names the place in the pattern and the reason.
    pub fn compile(text: &str) -> Result<Pattern, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = &value else {
            return Err("a pattern must be a JSON object, e.g. {\"source\": [\"orders\"]}".into());
        };
        let branches = flatten(map, "", vec![Vec::new()])?;
        Ok(Pattern {
            text: text.to_owned(),
            branches,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The top-level fields of the event the pattern looks at (the first key of each path, or,
    /// with dotted keys, any of its leading parts).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.branches.iter().flatten().map(|(p, _)| p.as_str())
    }

    /// Whether some branch of the pattern can still match `event` considering only the paths
    /// outside `detail` (the ones that need `detail` are taken as matching): a cheap first test
    /// that saves parsing `detail` for events the envelope already rules out.
    pub fn envelope_allows(&self, event: &Value) -> bool {
        let mut values: Vec<&Value> = Vec::new();
        self.branches.iter().any(|branch| {
            branch.iter().all(|(path, conds)| {
                if path == "detail" || path.starts_with("detail.") {
                    return true;
                }
                values.clear();
                collect(event, path, &mut values);
                conds.iter().any(|c| match c {
                    Cond::Exists(want) => values.is_empty() != *want,
                    c => values.iter().any(|v| c.matches(v)),
                })
            })
        })
    }

    /// Whether the pattern matches `event` (a JSON object).
    pub fn matches(&self, event: &Value) -> bool {
        let mut values: Vec<&Value> = Vec::new();
        self.branches.iter().any(|branch| {
            branch.iter().all(|(path, conds)| {
                values.clear();
                collect(event, path, &mut values);
                conds.iter().any(|c| match c {
                    Cond::Exists(want) => values.is_empty() != *want,
                    c => values.iter().any(|v| c.matches(v)),
                })
            })
        })
    }
}

/// The scalars at dotted `path` in `v`, through arrays and dotted keys.
fn collect<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if path == k {
                    leaves(child, out);
                } else if path.len() > k.len() && path.starts_with(k.as_str()) && path.as_bytes()[k.len()] == b'.' {
                    collect(child, &path[k.len() + 1..], out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, path, out);
            }
        }
        _ => {}
    }
}

fn leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| leaves(i, out)),
        Value::Object(_) => {}
        scalar => out.push(scalar),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The pattern as branches of (path, conditions), `$or` multiplying the branches.
fn flatten(map: &Map<String, Value>, prefix: &str, mut branches: Vec<Branch>) -> Result<Vec<Branch>, String> {
    if map.is_empty() && !prefix.is_empty() {
        return Err(format!(
            "at {prefix}: an empty object matches nothing; give a match array"
        ));
    }
    for (key, value) in map {
        if key == "$or" {
            let Value::Array(alternatives) = value else {
                return Err(format!("at {}: $or must be an array of patterns", join(prefix, key)));
            };
            if alternatives.len() < 2 {
                return Err(format!("at {}: $or needs at least two patterns", join(prefix, key)));
            }
            let mut out = Vec::new();
            for (i, alt) in alternatives.iter().enumerate() {
                let Value::Object(alt) = alt else {
                    return Err(format!(
                        "at {}[{i}]: each $or alternative must be an object",
                        join(prefix, key)
                    ));
                };
                out.extend(flatten(alt, prefix, branches.clone())?);
            }
            branches = out;
            continue;
        }
        let path = join(prefix, key);
        match value {
            Value::Object(inner) => branches = flatten(inner, &path, branches)?,
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(format!("at {path}: empty arrays are not allowed"));
                }
                let conds = items
                    .iter()
                    .map(|item| condition(item).map_err(|reason| format!("at {path}: {reason}")))
                    .collect::<Result<Vec<_>, _>>()?;
                for b in &mut branches {
                    b.push((path.clone(), conds.clone()));
                }
            }
            _ => return Err(format!("at {path}: must be an object or an array, e.g. [\"value\"]")),
        }
    }
    Ok(branches)
}

fn string(v: &Value, what: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} must be a string"))
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items.iter().map(|i| string(i, what)).collect(),
        _ => Err(format!("{what} must be a string or an array of strings")),
    }
}

/// One element of a match array.
fn condition(item: &Value) -> Result<Cond, String> {
    let Value::Object(map) = item else {
        return Scalar::of(item)
            .map(Cond::Exact)
            .ok_or_else(|| "match values must be strings, numbers, true, false or null".into());
    };
    let mut entries = map.iter();
    let (Some((op, value)), None) = (entries.next(), entries.next()) else {
        return Err("a match expression has exactly one key (prefix, suffix, anything-but, numeric, exists, equals-ignore-case, wildcard, cidr)".into());
    };
    let ignore_case_inner = |value: &Value, op: &str| -> Result<Option<String>, String> {
        match value {
            Value::Object(m) => match (m.len(), m.get("equals-ignore-case")) {
                (1, Some(Value::String(s))) => Ok(Some(s.clone())),
                (1, Some(_)) => Err(format!("{op}/equals-ignore-case must be a string")),
                _ => Err(format!("{op} takes a string or {{\"equals-ignore-case\": STRING}}")),
            },
            _ => Ok(None),
        }
    };
    Ok(match op.as_str() {
        "prefix" | "suffix" => {
            let (text, ignore_case) = match ignore_case_inner(value, op)? {
                Some(s) => (s, true),
                None => (string(value, &format!("{op} match pattern"))?, false),
            };
            if op == "prefix" {
                Cond::Prefix { text, ignore_case }
            } else {
                Cond::Suffix { text, ignore_case }
            }
        }
        "equals-ignore-case" => Cond::EqualsIgnoreCase(string(value, "equals-ignore-case match pattern")?),
        "wildcard" => {
            let p = string(value, "wildcard match pattern")?;
            check_wildcard(&p)?;
            Cond::Wildcard(p)
        }
        "exists" => match value {
            Value::Bool(b) => Cond::Exists(*b),
            _ => return Err("exists must be true or false".into()),
        },
        "numeric" => Cond::Numeric(numeric(value)?),
        "cidr" => {
            let (net, bits) = cidr(value)?;
            Cond::Cidr { net, bits }
        }
        "anything-but" => Cond::AnythingBut(anything_but(value)?),
        other => {
            return Err(format!(
                "unrecognized match type {other:?} (operators are lower case: prefix, suffix, anything-but, numeric, exists, equals-ignore-case, wildcard, cidr)"
            ))
        }
    })
}

fn anything_but(value: &Value) -> Result<Except, String> {
    let scalar = |v: &Value| -> Result<Scalar, String> {
        match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                Scalar::of(v).ok_or_else(|| format!("anything-but: {v} is out of range"))
            }
            _ => Err("anything-but takes strings or numbers (not null, objects or arrays)".into()),
        }
    };
    Ok(match value {
        Value::Array(items) if !items.is_empty() => Except::Values(items.iter().map(scalar).collect::<Result<_, _>>()?),
        Value::Array(_) => return Err("anything-but: empty arrays are not allowed".into()),
        Value::Object(m) => {
            let mut entries = m.iter();
            let (Some((op, inner)), None) = (entries.next(), entries.next()) else {
                return Err("anything-but takes one of prefix, suffix, wildcard, equals-ignore-case".into());
            };
            let what = format!("anything-but/{op}");
            match op.as_str() {
                "prefix" | "suffix" => {
                    if inner.is_object() {
                        return Err(format!(
                            "{what} must be a string or an array of strings (equals-ignore-case is not allowed here)"
                        ));
                    }
                    let list = strings(inner, &what)?;
                    if list.iter().any(String::is_empty) {
                        return Err(format!("{what}: an empty string is not allowed"));
                    }
                    if op == "prefix" {
                        Except::Prefix(list)
                    } else {
                        Except::Suffix(list)
                    }
                }
                "wildcard" => {
                    let list = strings(inner, &what)?;
                    for p in &list {
                        check_wildcard(p)?;
                    }
                    Except::Wildcard(list)
                }
                "equals-ignore-case" => Except::IgnoreCase(strings(inner, &what)?),
                other => return Err(format!("unsupported anything-but pattern: {other}")),
            }
        }
        Value::Null => return Err("anything-but takes strings or numbers, not null".into()),
        v => Except::Values(vec![scalar(v)?]),
    })
}

/// EventBridge refuses consecutive stars and (as its complexity rule does for these) more than
/// five stars in one wildcard.
fn check_wildcard(p: &str) -> Result<(), String> {
    if let Some(i) = p.find("**") {
        return Err(format!(
            "consecutive wildcard characters at position {} of {p:?}",
            i + 1
        ));
    }
    if p.matches('*').count() > 5 {
        return Err(format!(
            "wildcard {p:?} is too complex: use fewer wildcard characters (at most five)"
        ));
    }
    Ok(())
}

fn numeric(value: &Value) -> Result<Vec<(Op, f64)>, String> {
    let Value::Array(items) = value else {
        return Err("numeric takes an array, e.g. [\">\", 0, \"<=\", 5]".into());
    };
    let op = |v: &Value| -> Result<Op, String> {
        Ok(match v.as_str() {
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some("=") => Op::Eq,
            Some(">=") => Op::Ge,
            Some(">") => Op::Gt,
            _ => return Err(format!("{v} is not a numeric operator (<, <=, =, >=, >)")),
        })
    };
    let number = |v: Option<&Value>, op: &str| -> Result<f64, String> {
        v.and_then(Value::as_f64)
            .ok_or_else(|| format!("the value of {op} must be a number"))
    };
    match items.as_slice() {
        [o, n] => {
            let o = op(o)?;
            Ok(vec![(o, number(Some(n), &items[0].to_string())?)])
        }
        [o1, n1, o2, n2] => {
            let (a, b) = (op(o1)?, op(o2)?);
            if !matches!(a, Op::Gt | Op::Ge) || !matches!(b, Op::Lt | Op::Le) {
                return Err("a numeric range is [\">\" or \">=\", LOW, \"<\" or \"<=\", HIGH]".into());
            }
            let (lo, hi) = (number(Some(n1), &o1.to_string())?, number(Some(n2), &o2.to_string())?);
            if hi <= lo {
                return Err(format!(
                    "numeric range: the bottom ({lo}) must be less than the top ({hi})"
                ));
            }
            Ok(vec![(a, lo), (b, hi)])
        }
        [] => Err("numeric: empty arrays are not allowed".into()),
        _ => Err("numeric takes [OP, NUMBER] or [\">\"|\">=\", LOW, \"<\"|\"<=\", HIGH]".into()),
    }
}

fn cidr(value: &Value) -> Result<(IpAddr, u8), String> {
    let text = string(value, "cidr")?;
    let (addr, bits) = text
        .split_once('/')
        .ok_or_else(|| format!("cidr {text:?}: one '/' is required, e.g. 10.0.0.0/24"))?;
    let bits: u8 = bits
        .parse()
        .map_err(|_| format!("cidr {text:?}: the mask must be a number of bits"))?;
    let net: IpAddr = addr
        .parse()
        .map_err(|_| format!("cidr {text:?}: {addr:?} is not an IP address"))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!("cidr {text:?}: at most {max} mask bits"));
    }
    Ok((net, bits))
}

// ---------------------------------------------------------------------------------------------
// On the events table

/// The pattern as a DataFusion function of the envelope columns (id, source, detail_type, time,
/// account, region, version, resources, detail), true where it matches.
#[derive(Debug)]
pub struct PatternUdf {
    pattern: Arc<Pattern>,
    name: String,
    signature: Signature,
    /// Which of the envelope fields the pattern reads (the rest are never built).
    wanted: [bool; 9],
}

impl PartialEq for PatternUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.pattern.text == other.pattern.text
    }
}
impl Eq for PatternUdf {}
impl std::hash::Hash for PatternUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.pattern.text.hash(state);
    }
}

/// The EventBridge names of the arguments, in order.
pub const FIELDS: [&str; 9] = [
    "id",
    "source",
    "detail-type",
    "time",
    "account",
    "region",
    "version",
    "resources",
    "detail",
];

impl PatternUdf {
    pub fn new(pattern: Arc<Pattern>, index: usize) -> Self {
        let mut wanted = [false; 9];
        for path in pattern.paths() {
            for (i, f) in FIELDS.iter().enumerate() {
                if path == *f || (path.starts_with(f) && path.as_bytes().get(f.len()) == Some(&b'.')) {
                    wanted[i] = true;
                }
            }
        }
        Self {
            pattern,
            name: format!("eventbridge_pattern_{index}"),
            signature: Signature::any(9, Volatility::Immutable),
            wanted,
        }
    }
}

fn text_column(a: &ArrayRef) -> DfResult<arrow::array::StringArray> {
    let cast = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(cast.as_string::<i32>().clone())
}

impl ScalarUDFImpl for PatternUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if arrays.len() != 9 {
            return Err(DataFusionError::Internal(format!("{} takes 9 columns", self.name)));
        }
        let text = |i: usize| -> DfResult<Option<arrow::array::StringArray>> {
            if !self.wanted[i] || i == 3 || i == 7 {
                return Ok(None);
            }
            text_column(&arrays[i]).map(Some)
        };
        let strings: Vec<Option<arrow::array::StringArray>> = (0..9).map(text).collect::<DfResult<_>>()?;
        let time = match self.wanted[3] {
            true => Some(
                arrow::compute::cast(
                    &arrays[3],
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
                )?
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .clone(),
            ),
            false => None,
        };
        let resources = match self.wanted[7] {
            true => Some(arrow::compute::cast(
                &arrays[7],
                &DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(DataType::Utf8, true))),
            )?),
            false => None,
        };
        let resources = resources.as_ref().map(|r| r.as_list::<i32>());
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut event = Map::new();
            let mut detail_text = None;
            for (i, col) in strings.iter().enumerate() {
                let Some(col) = col else { continue };
                if col.is_null(row) {
                    continue;
                }
                let v = col.value(row);
                if i == 8 {
                    detail_text = Some(v);
                } else {
                    event.insert(FIELDS[i].into(), Value::String(v.to_owned()));
                }
            }
            if let Some(t) = &time {
                if t.is_valid(row) {
                    event.insert("time".into(), Value::String(crate::event::format_time(t.value(row))));
                }
            }
            if let Some(list) = resources {
                if list.is_valid(row) {
                    let items = list.value(row);
                    let items = items.as_string::<i32>();
                    let values = items.iter().flatten().map(|s| Value::String(s.to_owned())).collect();
                    event.insert("resources".into(), Value::Array(values));
                }
            }
            let mut event = Value::Object(event);
            // `detail` is parsed only for events the rest of the envelope does not rule out.
            if let Some(text) = detail_text {
                if !self.pattern.envelope_allows(&event) {
                    out.push(Some(false));
                    continue;
                }
                if let (Ok(detail), Value::Object(m)) = (serde_json::from_str::<Value>(text), &mut event) {
                    m.insert("detail".into(), detail);
                }
            }
            out.push(Some(self.pattern.matches(&event)));
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard("arn:*:bus/*", "arn:aws:events:bus/x"));
        assert!(wildcard("*.png", ".png"));
        assert!(!wildcard("*.png", "a.jpg"));
        assert!(wildcard("a\\*b", "a*b"));
        assert!(!wildcard("a\\*b", "axb"));
        assert!(wildcard("/Users/*/doc.txt", "/Users/u/dir/dir/doc.txt"));
        assert!(!wildcard("", "x"));
    }

    #[test]
    fn errors_name_the_path() {
        let e = Pattern::compile(r#"{"detail": {"state": "running"}}"#).unwrap_err();
        assert!(e.starts_with("at detail.state: must be an object or an array"), "{e}");
        let e = Pattern::compile(r#"{"detail": {"n": [{"numeric": [">", 5, ">", 1]}]}}"#).unwrap_err();
        assert!(e.starts_with("at detail.n: a numeric range"), "{e}");
    }
}
