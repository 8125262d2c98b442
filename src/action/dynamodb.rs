//! `populate dynamodb`: write each selected row as an item with BatchWriteItem.
//!
//! What is particular to DynamoDB: turning a row into attributes (exactly: numbers keep their
//! digits, JSON text such as `detail` becomes a map), an item's size by DynamoDB's rule, the
//! table's key (checked with DescribeTable before any write; two items with one key never share
//! a request), and reading `UnprocessedItems` back. Batching, retries and the rest are the
//! driver's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type, Field, Float16Type,
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, PutRequest, ScalarAttributeType, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::driver::{classify_sdk, Answer, Fault, Limits, Prepared, RequestTarget};
use super::ActionContext;
use crate::{Error, Result};

/// BatchWriteItem: 25 items and 16 MB a request; an item at most 400 KB (DynamoDB's size rule:
/// attribute names and values in UTF-8).
pub const MAX_ITEMS: usize = 25;
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB nests lists and maps at most 32 levels deep.
const MAX_DEPTH: usize = 32;

/// How timestamps are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeAs {
    /// RFC 3339 UTC strings with milliseconds (`S`): 2026-03-01T12:00:00.000Z.
    Rfc3339,
    /// Milliseconds since the epoch (`N`).
    EpochMs,
}

pub struct DynamoDbPopulate {
    pub client: Client,
    pub table: String,
    pub time_as: TimeAs,
    /// Keep JSON-text columns (`detail`) as strings instead of maps.
    pub json_as_string: bool,
    /// The table's key attributes and their types, from DescribeTable (filled by `check`).
    pub key: std::sync::OnceLock<Vec<(String, ScalarAttributeType)>>,
}

/// A batch's columns as items are built from them: name, values, and whether to write the text
/// as a map (JSON `detail`).
type ItemColumns = Arc<Vec<(String, ArrayRef, bool)>>;

/// One item of a request, with its key (to tell which items came back unprocessed).
pub struct DynamoItem {
    /// The item, until its first request takes it (the SDK takes ownership; a deep copy of
    /// every item's nested maps cost more than all the rest of a request).
    attrs: std::sync::Mutex<Option<HashMap<String, AttributeValue>>>,
    /// Where to build it again for a retry: the row and the batch's prepared columns.
    source: Option<(ItemColumns, usize)>,
    key: String,
}

impl DynamoDbPopulate {
    pub fn target(&self) -> String {
        format!("dynamodb:{}", self.table)
    }

    /// DescribeTable, then checks that the selection has every key attribute with a type that
    /// fits, naming what is missing.
    pub async fn check(&self, schema: &SchemaRef, _dry_run: bool) -> Result<()> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| {
                let f = classify_sdk(&e);
                Error::Target {
                    target: self.target(),
                    message: format!(
                        "DescribeTable failed: {}: {}; check the table name, region and credentials",
                        f.code, f.message
                    ),
                }
            })?;
        let table = described.table().ok_or_else(|| Error::Target {
            target: self.target(),
            message: "DescribeTable returned no table".into(),
        })?;
        let types: HashMap<&str, &ScalarAttributeType> = table
            .attribute_definitions()
            .iter()
            .map(|d| (d.attribute_name(), d.attribute_type()))
            .collect();
        let mut key = Vec::new();
        let mut schema_keys = table.key_schema().to_vec();
        schema_keys.sort_by_key(|k| k.key_type() != &KeyType::Hash);
        for k in schema_keys {
            let name = k.attribute_name().to_owned();
            let ty = types
                .get(name.as_str())
                .map(|t| (*t).clone())
                .unwrap_or(ScalarAttributeType::S);
            key.push((name, ty));
        }
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut problems = Vec::new();
        for f in schema.fields() {
            if !writable(f.data_type()) {
                problems.push(format!(
                    "the column {} is of type {}, which has no DynamoDB attribute type (cast it in --query)",
                    f.name(),
                    f.data_type()
                ));
            }
        }
        for (name, ty) in &key {
            match schema.field_with_name(name) {
                Err(_) => problems.push(format!("the key attribute {name} ({}) is not a column", ty.as_str())),
                Ok(f) => {
                    if let Some(have) = self.kind_of(f) {
                        if have != *ty {
                            problems.push(format!(
                                "the key attribute {name} is {} in the table, but the column {name} ({}) would be written as {}",
                                ty.as_str(),
                                f.data_type(),
                                have.as_str()
                            ));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::usage(format!(
                "--table {}: {}.\n  The selected columns are: {}. Project the key with --query, e.g. --query \"SELECT id AS {} , * FROM events\"",
                self.table,
                problems.join("; "),
                columns.join(", "),
                key.first().map_or("pk", |k| k.0.as_str())
            )));
        }
        let _ = self.key.set(key);
        Ok(())
    }

    /// The scalar type a column is written as, when it is one.
    fn kind_of(&self, f: &Field) -> Option<ScalarAttributeType> {
        Some(match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32 | DataType::Date64 => {
                ScalarAttributeType::S
            }
            DataType::Timestamp(..) => match self.time_as {
                TimeAs::Rfc3339 => ScalarAttributeType::S,
                TimeAs::EpochMs => ScalarAttributeType::N,
            },
            t if t.is_numeric() => ScalarAttributeType::N,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                ScalarAttributeType::B
            }
            DataType::Dictionary(_, v) => return self.kind_of(&Field::new(f.name(), (**v).clone(), true)),
            _ => return None,
        })
    }

    fn key(&self) -> &[(String, ScalarAttributeType)] {
        self.key.get().map_or(&[], Vec::as_slice)
    }

    /// The item of one row, or why it cannot be written.
    fn item(&self, columns: &[(String, ArrayRef, bool)], row: usize) -> Result<DynamoItem, Fault> {
        let mut attrs = HashMap::with_capacity(columns.len());
        for (name, array, json) in columns {
            let value = to_attr(array.as_ref(), row, *json, self.time_as, 0)
                .map_err(|m| Fault::permanent("InvalidValue", format!("column {name}: {m}")))?;
            if let Some(v) = value {
                attrs.insert(name.clone(), v);
            }
        }
        if let Some((name, _)) = self.key().iter().find(|(name, _)| !attrs.contains_key(name)) {
            return Err(Fault::permanent(
                "MissingKey",
                format!("the key attribute {name} is null in this row"),
            ));
        }
        let key = self.key_of(&attrs);
        Ok(DynamoItem {
            attrs: std::sync::Mutex::new(Some(attrs)),
            source: None,
            key,
        })
    }
}

fn key_text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => format!("S:{s}"),
        AttributeValue::N(n) => format!("N:{n}"),
        AttributeValue::B(b) => format!("B:{:?}", b.as_ref()),
        other => format!("{other:?}"),
    }
}

impl RequestTarget for DynamoDbPopulate {
    type Item = DynamoItem;

    fn request_name(&self) -> &'static str {
        "BatchWriteItem"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_items: MAX_ITEMS,
            max_request_bytes: MAX_REQUEST_BYTES,
            max_item_bytes: MAX_ITEM_BYTES,
            oversize_code: "ItemTooLarge",
            size_rule: "by DynamoDB's item size rule (attribute names and values)",
        }
    }

    fn prepare(&self, rows: &RecordBatch, ctx: &ActionContext) -> Result<Vec<Result<Prepared<Self::Item>, Fault>>> {
        let data = ctx.strip_helpers(rows)?;
        let schema = data.schema();
        let columns: Vec<(String, ArrayRef, bool)> = schema
            .fields()
            .iter()
            .zip(data.columns())
            .map(|(f, a)| {
                let a = match a.data_type() {
                    DataType::Dictionary(_, v) => arrow::compute::cast(a, v)?,
                    _ => a.clone(),
                };
                let json = !self.json_as_string && f.name() == crate::event::DETAIL && is_text(a.data_type());
                Ok((f.name().clone(), a, json))
            })
            .collect::<Result<_>>()?;
        let columns = Arc::new(columns);
        Ok((0..data.num_rows())
            .map(|row| {
                let mut item = self.item(&columns, row)?;
                item.source = Some((columns.clone(), row));
                let size = item_size(
                    item.attrs
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .expect("just built"),
                );
                Ok(Prepared {
                    size,
                    dedupe_key: Some(item.key.clone()),
                    item,
                })
            })
            .collect())
    }

    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> String {
        super::row_json(rows, row)
    }

    async fn send(&self, items: &[&Self::Item]) -> Result<Vec<Answer>, Fault> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(items.len());
        for i in items {
            // Taken on the first attempt; a retry builds the item again from its row (the same
            // row and columns give the same item).
            let taken = i.attrs.lock().unwrap_or_else(|e| e.into_inner()).take();
            let attrs = match taken {
                Some(a) => a,
                None => {
                    let rebuilt = i.source.as_ref().map(|(columns, row)| self.item(columns, *row));
                    match rebuilt {
                        Some(Ok(item)) => item
                            .attrs
                            .into_inner()
                            .unwrap_or_else(|e| e.into_inner())
                            .unwrap_or_default(),
                        Some(Err(f)) => return Err(f),
                        None => {
                            return Err(Fault::permanent(
                                "InvalidValue",
                                "the item was already sent and cannot be built again",
                            ))
                        }
                    }
                }
            };
            let put = PutRequest::builder()
                .set_item(Some(attrs))
                .build()
                .map_err(|e| Fault::permanent("InvalidValue", e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let resp = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await
            .map_err(|e| {
                let mut f = classify_sdk(&e);
                // A validation error names one item but refuses the whole request: the driver
                // resends the items one by one so that only the offending one fails.
                f.per_item = f.code == "ValidationException";
                f
            })?;
        let unprocessed: HashSet<String> = resp
            .unprocessed_items()
            .and_then(|u| u.get(&self.table))
            .map(|reqs| {
                reqs.iter()
                    .filter_map(|r| r.put_request())
                    .map(|p| self.key_of(p.item()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(items
            .iter()
            .map(|i| {
                if unprocessed.contains(&i.key) {
                    Answer::Failed(Fault::retryable(
                        "UnprocessedItems",
                        "DynamoDB returned the item unprocessed (throughput exceeded or an internal limit)",
                    ))
                } else {
                    Answer::Succeeded
                }
            })
            .collect())
    }
}

impl DynamoDbPopulate {
    /// The item's key as text (`name=S:value`, one per key attribute): what tells two items
    /// with one key apart in a request, and unprocessed items from the rest.
    fn key_of(&self, attrs: &HashMap<String, AttributeValue>) -> String {
        let mut key = String::new();
        for (name, _) in self.key() {
            if let Some(v) = attrs.get(name) {
                // A separator no key value holds in practice, so two keys never read alike.
                if !key.is_empty() {
                    key.push('\u{1f}');
                }
                key.push_str(name);
                key.push('=');
                key.push_str(&key_text(v));
            }
        }
        key
    }
}

/// Whether values of type `t` can be written as attributes (see [`to_attr`]).
fn writable(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => writable(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| writable(f.data_type())),
        DataType::Dictionary(_, v) => writable(v),
        DataType::Union(..) => true,
        t => {
            t.is_numeric()
                || matches!(
                    t,
                    DataType::Null
                        | DataType::Boolean
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Timestamp(..)
                        | DataType::Date32
                        | DataType::Date64
                        | DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                        | DataType::FixedSizeBinary(_)
                )
        }
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// DynamoDB's item size: each attribute's name and value in UTF-8; numbers about one byte per
/// two significant digits plus one; lists and maps 3 bytes plus one byte per element.
pub fn item_size(attrs: &HashMap<String, AttributeValue>) -> usize {
    attrs.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.trim_start_matches('-').split(['e', 'E']).next().unwrap_or("");
            let significant = digits.replace('.', "");
            let significant = significant.trim_start_matches('0').trim_end_matches('0');
            significant.len().div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| value_size(&AttributeValue::N(n.clone()))).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// The attribute value of `array[row]`: `None` for a null (the attribute is left out).
/// `json` marks text that holds JSON (it becomes a map, a list, or a scalar).
pub fn to_attr(
    array: &dyn Array,
    row: usize,
    json: bool,
    time_as: TimeAs,
    depth: usize,
) -> Result<Option<AttributeValue>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than DynamoDB's {MAX_DEPTH} levels"));
    }
    if array.is_null(row) {
        return Ok(None);
    }
    macro_rules! num {
        ($t:ty) => {
            AttributeValue::N(array.as_primitive::<$t>().value(row).to_string())
        };
    }
    macro_rules! float {
        ($t:ty) => {{
            let v = array.as_primitive::<$t>().value(row);
            if !v.is_finite() {
                return Err(format!("{v} is not a number DynamoDB can store"));
            }
            AttributeValue::N(v.to_string())
        }};
    }
    let text = |s: &str| -> Result<AttributeValue, String> {
        if json {
            json_to_attr(s, depth)
        } else {
            Ok(AttributeValue::S(s.to_owned()))
        }
    };
    Ok(Some(match array.data_type() {
        DataType::Null => return Ok(None),
        DataType::Utf8 => text(array.as_string::<i32>().value(row))?,
        DataType::LargeUtf8 => text(array.as_string::<i64>().value(row))?,
        DataType::Utf8View => text(array.as_string_view().value(row))?,
        DataType::Boolean => AttributeValue::Bool(array.as_boolean().value(row)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float16 => float!(Float16Type),
        DataType::Float32 => float!(Float32Type),
        DataType::Float64 => float!(Float64Type),
        DataType::Decimal32(..) => AttributeValue::N(array.as_primitive::<Decimal32Type>().value_as_string(row)),
        DataType::Decimal64(..) => AttributeValue::N(array.as_primitive::<Decimal64Type>().value_as_string(row)),
        DataType::Decimal128(..) => AttributeValue::N(array.as_primitive::<Decimal128Type>().value_as_string(row)),
        DataType::Decimal256(..) => AttributeValue::N(array.as_primitive::<Decimal256Type>().value_as_string(row)),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1000),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .div_euclid(1000),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(row)
                    .div_euclid(1_000_000),
            };
            match time_as {
                TimeAs::EpochMs => AttributeValue::N(v.to_string()),
                TimeAs::Rfc3339 => AttributeValue::S(rfc3339_ms(v)?),
            }
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            AttributeValue::S(rfc3339_ms(days as i64 * 86_400_000)?[..10].to_owned())
        }
        DataType::Date64 => {
            AttributeValue::S(rfc3339_ms(array.as_primitive::<Date64Type>().value(row))?[..10].to_owned())
        }
        DataType::Binary => AttributeValue::B(Blob::new(array.as_binary::<i32>().value(row))),
        DataType::LargeBinary => AttributeValue::B(Blob::new(array.as_binary::<i64>().value(row))),
        DataType::BinaryView => AttributeValue::B(Blob::new(array.as_binary_view().value(row))),
        DataType::FixedSizeBinary(_) => AttributeValue::B(Blob::new(array.as_fixed_size_binary().value(row))),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref(), time_as, depth)?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref(), time_as, depth)?,
        DataType::FixedSizeList(..) => list(array.as_fixed_size_list().value(row).as_ref(), time_as, depth)?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut m = HashMap::new();
            for (f, child) in fields.iter().zip(s.columns()) {
                if let Some(v) = to_attr(child.as_ref(), row, false, time_as, depth + 1)? {
                    m.insert(f.name().clone(), v);
                }
            }
            AttributeValue::M(m)
        }
        DataType::Dictionary(_, value) => {
            let plain = arrow::compute::cast(&array.slice(row, 1), value).map_err(|e| e.to_string())?;
            return to_attr(plain.as_ref(), 0, json, time_as, depth);
        }
        DataType::Union(..) => {
            let Some((name, child, offset)) = super::union_member(array, row) else {
                return Ok(None);
            };
            let is_json = matches!(name, "array" | "object");
            return to_attr(child.as_ref(), offset, is_json, time_as, depth);
        }
        other => {
            return Err(format!(
                "columns of type {other} cannot be written to DynamoDB; cast it in --query"
            ))
        }
    }))
}

fn list(values: &dyn Array, time_as: TimeAs, depth: usize) -> Result<AttributeValue, String> {
    (0..values.len())
        .map(|i| Ok(to_attr(values, i, false, time_as, depth + 1)?.unwrap_or(AttributeValue::Null(true))))
        .collect::<Result<Vec<_>, String>>()
        .map(AttributeValue::L)
}

fn rfc3339_ms(ms: i64) -> Result<String, String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or_else(|| format!("{ms} ms is outside the range of dates"))
}

/// JSON text as an attribute value, numbers exactly as written (no float round-trip).
pub fn json_to_attr(text: &str, depth: usize) -> Result<AttributeValue, String> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let v = p.value(depth)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("not valid JSON: trailing characters at byte {}", p.i));
    }
    Ok(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("not valid JSON: {what} at byte {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than DynamoDB's {MAX_DEPTH} levels"));
        }
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut m = HashMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(AttributeValue::M(m));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    m.insert(key, v);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(AttributeValue::M(m));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut l = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(AttributeValue::L(l));
                }
                loop {
                    l.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(AttributeValue::L(l));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(AttributeValue::S(self.string()?)),
            Some(b't') => self.word("true", AttributeValue::Bool(true)),
            Some(b'f') => self.word("false", AttributeValue::Bool(false)),
            Some(b'n') => self.word("null", AttributeValue::Null(true)),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let n = &self.text[start..self.i];
                if serde_json::from_str::<serde_json::Number>(n).is_err() {
                    return self.err("bad number");
                }
                Ok(AttributeValue::N(n.to_owned()))
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn word(&mut self, w: &str, v: AttributeValue) -> Result<AttributeValue, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            self.err("unexpected word")
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                b'"' => {
                    self.i += 1;
                    let raw = &self.text[start..self.i];
                    if !escaped {
                        return Ok(raw[1..raw.len() - 1].to_owned());
                    }
                    return serde_json::from_str::<String>(raw).map_err(|e| format!("not valid JSON: {e}"));
                }
                _ => self.i += 1,
            }
        }
        self.err("unterminated string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_every_digit() {
        let v = json_to_attr(r#"{"big": 12345678901234567890123, "dec": 0.1000000000000000055511151231257827, "s": "a\"b", "n": null, "l": [1, "x", true]}"#, 0).unwrap();
        let AttributeValue::M(m) = v else { panic!() };
        assert_eq!(m["big"], AttributeValue::N("12345678901234567890123".into()));
        assert_eq!(
            m["dec"],
            AttributeValue::N("0.1000000000000000055511151231257827".into())
        );
        assert_eq!(m["s"], AttributeValue::S("a\"b".into()));
        assert_eq!(m["n"], AttributeValue::Null(true));
        assert_eq!(
            m["l"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::S("x".into()),
                AttributeValue::Bool(true)
            ])
        );
        assert!(json_to_attr("{\"a\": 1,}", 0).is_err());
        assert!(json_to_attr("[1] x", 0).is_err());
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(json_to_attr(&deep, 0).unwrap_err().contains("32 levels"));
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        let mut item = HashMap::new();
        item.insert("pk".to_owned(), AttributeValue::S("abc".into()));
        item.insert("n".to_owned(), AttributeValue::N("12345".into()));
        item.insert("b".to_owned(), AttributeValue::Bool(true));
        // pk: 2 + 3; n: 1 + (3 + 1); b: 1 + 1
        assert_eq!(item_size(&item), 5 + 5 + 2);
    }
}
