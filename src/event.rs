//! The `events` schema every source produces, the decoding of JSON records into it, and the
//! way back from a row to the EventBridge envelope.
//!
//! Decoding is per record and never fails a batch: a record that cannot be an event is returned
//! as a [`Rejection`] reason, and the caller accounts for it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, ListBuilder, RecordBatch, StringBuilder, StringViewBuilder, TimestampMillisecondBuilder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

mod scan;

/// The first index from `i` holding `"`, `\` or a control character (a line break among
/// them), or `b.len()`: how the JSON-array reader skips through strings (SIMD where it can).
pub(crate) fn string_special(b: &[u8], i: usize) -> usize {
    scan::special(b, i, &mut false)
}

pub const ID: &str = "id";
pub const SOURCE: &str = "source";
pub const DETAIL_TYPE: &str = "detail_type";
pub const TIME: &str = "time";
pub const ACCOUNT: &str = "account";
pub const REGION: &str = "region";
pub const VERSION: &str = "version";
pub const RESOURCES: &str = "resources";
pub const DETAIL: &str = "detail";
pub const ORIGIN: &str = "_origin";
pub const POSITION: &str = "_position";
/// The record exactly as read (trimmed of surrounding white space), carried beside the
/// `events` columns so that a failed event's dead letter is its original record. Not a column
/// of `events`: the planner threads it through selections as a helper and drops it before rows
/// are written or shown.
pub const RAW: &str = "__rehydrate_raw";

/// The column names of `events`, in order; used in error messages that list valid columns.
pub const COLUMNS: [&str; 11] = [
    ID,
    SOURCE,
    DETAIL_TYPE,
    TIME,
    ACCOUNT,
    REGION,
    VERSION,
    RESOURCES,
    DETAIL,
    ORIGIN,
    POSITION,
];

/// The schema of the `events` table (see DESIGN.md).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(ID, DataType::Utf8, false),
                Field::new(SOURCE, DataType::Utf8, false),
                Field::new(DETAIL_TYPE, DataType::Utf8, false),
                Field::new(
                    TIME,
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    true,
                ),
                Field::new(ACCOUNT, DataType::Utf8, true),
                Field::new(REGION, DataType::Utf8, true),
                Field::new(VERSION, DataType::Utf8, true),
                Field::new(
                    RESOURCES,
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    false,
                ),
                Field::new(DETAIL, DataType::Utf8, false),
                Field::new(ORIGIN, DataType::Utf8, false),
                Field::new(POSITION, DataType::UInt64, false),
            ]))
        })
        .clone()
}

/// What sources produce: the `events` columns and [`RAW`].
pub fn source_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(RAW, DataType::Utf8View, false));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// An envelope field that `--map` can point elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeField {
    Id,
    Source,
    DetailType,
    Time,
    Account,
    Region,
    Version,
    Resources,
    Detail,
}

impl EnvelopeField {
    const ALL: [EnvelopeField; 9] = [
        EnvelopeField::Id,
        EnvelopeField::Source,
        EnvelopeField::DetailType,
        EnvelopeField::Time,
        EnvelopeField::Account,
        EnvelopeField::Region,
        EnvelopeField::Version,
        EnvelopeField::Resources,
        EnvelopeField::Detail,
    ];

    /// The field's name in an EventBridge envelope.
    pub fn json_name(self) -> &'static str {
        match self {
            EnvelopeField::Id => "id",
            EnvelopeField::Source => "source",
            EnvelopeField::DetailType => "detail-type",
            EnvelopeField::Time => "time",
            EnvelopeField::Account => "account",
            EnvelopeField::Region => "region",
            EnvelopeField::Version => "version",
            EnvelopeField::Resources => "resources",
            EnvelopeField::Detail => "detail",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.json_name() == name || name.replace('-', "_") == f.json_name().replace('-', "_"))
    }
}

/// Where each envelope field is found in records that are not EventBridge envelopes
/// (`--map detail-type=eventType --map detail=payload --map time=meta.createdAt`).
///
/// Unmapped fields are read from their envelope name. When a mapping is given but `detail` is not
/// mapped, `detail` is the whole record. A path of `.` also means the whole record.
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    paths: Vec<(EnvelopeField, Vec<String>)>,
}

impl FieldMap {
    /// Parses `--map FIELD=PATH` arguments.
    pub fn parse(args: &[String]) -> Result<Option<Self>> {
        if args.is_empty() {
            return Ok(None);
        }
        let mut map = FieldMap::default();
        for arg in args {
            let (field, path) = arg.split_once('=').ok_or_else(|| {
                Error::usage(format!(
                    "--map {arg:?}: expected FIELD=PATH, e.g. --map detail-type=eventType"
                ))
            })?;
            let field = EnvelopeField::parse(field.trim()).ok_or_else(|| {
                Error::usage(format!(
                    "--map {arg:?}: {field:?} is not an envelope field; use one of {}",
                    EnvelopeField::ALL.map(|f| f.json_name()).join(", ")
                ))
            })?;
            let path = path.trim();
            if path.is_empty() {
                return Err(Error::usage(format!(
                    "--map {arg:?}: the path is empty; give a field name or a dotted path like payload.body"
                )));
            }
            let segments = if path == "." {
                Vec::new()
            } else {
                path.split('.').map(str::to_owned).collect()
            };
            map.paths.retain(|(f, _)| *f != field);
            map.paths.push((field, segments));
        }
        if !map.paths.iter().any(|(f, _)| *f == EnvelopeField::Detail) {
            map.paths.push((EnvelopeField::Detail, Vec::new()));
        }
        Ok(Some(map))
    }

    fn path(&self, field: EnvelopeField) -> Option<&[String]> {
        self.paths.iter().find(|(f, _)| *f == field).map(|(_, p)| p.as_slice())
    }

    /// The top-level attributes the mapping (or, without one, the envelope) reads, or `None`
    /// when it reads the whole record (`detail` unmapped under `--map`, or a path of `.`).
    pub fn attributes(map: Option<&FieldMap>) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for field in EnvelopeField::ALL {
            let first = match map.and_then(|m| m.path(field)) {
                Some([]) => return None,
                Some(path) => path[0].clone(),
                None => field.json_name().to_owned(),
            };
            if !out.contains(&first) {
                out.push(first);
            }
        }
        Some(out)
    }
}

/// The envelope as written: every field kept as raw JSON text so that errors can name the field
/// and `detail` is copied without being re-serialised.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "detail-type")]
    detail_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    account: Option<&'a RawValue>,
    #[serde(borrow, default)]
    region: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resources: Option<&'a RawValue>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

/// The common case, decoded in one pass: every field of the expected type, strings borrowed
/// from the record. Anything unusual (a numeric id, a string detail, a null, a wrong type) fails
/// here and goes through [`RawEnvelope`], which accepts the variants and explains rejections.
#[derive(Deserialize)]
struct FastEnvelope<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "detail-type")]
    detail_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resources: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

impl<'a> FastEnvelope<'a> {
    /// The decoded event, or `None` when the slow path must decide.
    fn decode(self) -> Option<Decoded<'a>> {
        let detail = self.detail?.get();
        if !detail.starts_with('{') || detail.contains(['\n', '\r']) {
            return None;
        }
        let time_ms = match self.time {
            Some(t) => Some(parse_time(&t).ok()?),
            None => None,
        };
        Some(Decoded {
            id: self.id,
            source: self.source?,
            detail_type: self.detail_type?,
            time_ms,
            account: self.account,
            region: self.region,
            version: self.version,
            resources: self.resources.unwrap_or_default(),
            detail: Cow::Borrowed(detail),
        })
    }
}

/// One decoded event, borrowing from the record where it can.
struct Decoded<'a> {
    id: Option<Cow<'a, str>>,
    source: Cow<'a, str>,
    detail_type: Cow<'a, str>,
    time_ms: Option<i64>,
    account: Option<Cow<'a, str>>,
    region: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    resources: Vec<Cow<'a, str>>,
    detail: Cow<'a, str>,
}

/// The selection's row filters, handed to the source when the plan is made (the `events`
/// table takes them as exact, `filter::EventsTable`). The conjuncts that compare `source` or
/// `detail_type` with literals are checked before a row is built: a record that fails them is
/// still decoded in full, so it is rejected exactly when it would be otherwise, but no row is
/// built for it. The whole predicate then applies to each built batch. Either way the event is
/// counted as filtered.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    /// The values `source` may have (`None`: any).
    pub sources: Option<Vec<String>>,
    /// The values `detail_type` may have (`None`: any).
    pub detail_types: Option<Vec<String>>,
    /// The selection's whole row filter, applied to each batch once it is built.
    pub predicate: Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>,
}

impl Prefilter {
    pub fn allows(&self, source: &str, detail_type: &str) -> bool {
        self.sources.as_ref().is_none_or(|v| v.iter().any(|s| s == source))
            && self
                .detail_types
                .as_ref()
                .is_none_or(|v| v.iter().any(|t| t == detail_type))
    }

    /// The rows of `batch` (a source batch) the predicate passes, and how many it left out. A
    /// null is not a pass, as in a SQL `WHERE`.
    pub fn apply(&self, batch: RecordBatch) -> datafusion::error::Result<(RecordBatch, u64)> {
        let Some(predicate) = &self.predicate else {
            return Ok((batch, 0));
        };
        if batch.num_rows() == 0 {
            return Ok((batch, 0));
        }
        let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = mask.as_boolean_opt().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!("the filter gave {}, not booleans", mask.data_type()))
        })?;
        let kept = arrow::compute::filter_record_batch(&batch, mask)?;
        let left_out = (batch.num_rows() - kept.num_rows()) as u64;
        Ok((kept, left_out))
    }
}

/// Builds `events` batches from JSON records, one record at a time.
pub struct BatchDecoder {
    map: Option<Arc<FieldMap>>,
    prefilter: Option<Arc<Prefilter>>,
    /// Events decoded but not built, failing the prefilter.
    prefiltered: u64,
    id: StringBuilder,
    source: StringBuilder,
    detail_type: StringBuilder,
    time: TimestampMillisecondBuilder,
    account: StringBuilder,
    region: StringBuilder,
    version: StringBuilder,
    resources: ListBuilder<StringBuilder>,
    detail: StringBuilder,
    origin: StringBuilder,
    position: UInt64Builder,
    raw: StringViewBuilder,
    rows: usize,
    /// The byte ranges of `resources` items found by the fast path, reused across records.
    ranges: Vec<std::ops::Range<usize>>,
    /// Whether the fast path is tried first (off only in the tests that compare the two).
    plain_path: bool,
}

impl BatchDecoder {
    pub fn new(map: Option<Arc<FieldMap>>, capacity: usize) -> Self {
        Self {
            map,
            prefilter: None,
            prefiltered: 0,
            id: StringBuilder::with_capacity(capacity, capacity * 36),
            source: StringBuilder::with_capacity(capacity, capacity * 16),
            detail_type: StringBuilder::with_capacity(capacity, capacity * 16),
            time: TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            account: StringBuilder::with_capacity(capacity, capacity * 12),
            region: StringBuilder::with_capacity(capacity, capacity * 9),
            version: StringBuilder::with_capacity(capacity, capacity),
            resources: ListBuilder::new(StringBuilder::new()),
            detail: StringBuilder::with_capacity(capacity, capacity * 256),
            origin: StringBuilder::with_capacity(capacity, capacity * 32),
            position: UInt64Builder::with_capacity(capacity),
            raw: StringViewBuilder::with_capacity(capacity),
            rows: 0,
            ranges: Vec::new(),
            plain_path: true,
        }
    }

    /// Builds rows only for the events `prefilter`'s literals allow (its predicate is for the
    /// caller to apply to the finished batch, [`Prefilter::apply`]).
    pub fn with_prefilter(mut self, prefilter: Option<Arc<Prefilter>>) -> Self {
        self.prefilter = prefilter.filter(|p| p.sources.is_some() || p.detail_types.is_some());
        self
    }

    /// The events decoded but left out by the prefilter since the last call.
    pub fn take_prefiltered(&mut self) -> u64 {
        std::mem::take(&mut self.prefiltered)
    }

    /// Whether the prefilter leaves this event out (and counts it).
    fn left_out(&mut self, source: &str, detail_type: &str) -> bool {
        match &self.prefilter {
            Some(p) if !p.allows(source, detail_type) => {
                self.prefiltered += 1;
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decodes one record and appends it; on `Err` nothing was appended and the string says why
    /// the record is not an event.
    pub fn push(&mut self, record: &[u8], origin: &str, position: u64) -> Result<(), String> {
        let record = trim_ascii(record);
        match record.first() {
            Some(b'{') => {}
            Some(_) => {
                return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(record) {
                    Ok(_) => "not a JSON object: an event must be an object".to_owned(),
                    Err(e) => json_error(e),
                })
            }
            None => return Err("empty record".to_owned()),
        }
        if self.map.is_none() && self.plain_path && self.push_plain(record, origin, position) {
            return Ok(());
        }
        let text = std::str::from_utf8(record).map_err(|e| format!("not UTF-8: {e}"))?;
        let decoded = match &self.map {
            None => match serde_json::from_str::<FastEnvelope>(text)
                .ok()
                .and_then(FastEnvelope::decode)
            {
                Some(decoded) => decoded,
                None => {
                    let raw: RawEnvelope = serde_json::from_str(text).map_err(json_error)?;
                    decode_raw(raw)?
                }
            },
            Some(map) => {
                let owned = decode_mapped(text, map)?;
                if !self.left_out(&owned.source, &owned.detail_type) {
                    self.append(
                        &owned,
                        owned.resources.iter().map(|r| r.as_ref()),
                        origin,
                        position,
                        text,
                    );
                }
                return Ok(());
            }
        };
        if !self.left_out(&decoded.source, &decoded.detail_type) {
            self.append(
                &decoded,
                decoded.resources.iter().map(|r| r.as_ref()),
                origin,
                position,
                text,
            );
        }
        Ok(())
    }

    /// The fast path ([`scan`]): appends the record when it is a plain envelope, and returns
    /// false, having appended nothing, when the serde path must decide.
    fn push_plain(&mut self, record: &[u8], origin: &str, position: u64) -> bool {
        let mut ranges = std::mem::take(&mut self.ranges);
        let done = self.push_scanned(record, origin, position, &mut ranges);
        self.ranges = ranges;
        done
    }

    fn push_scanned(
        &mut self,
        record: &[u8],
        origin: &str,
        position: u64,
        ranges: &mut Vec<std::ops::Range<usize>>,
    ) -> bool {
        let Some(f) = scan::envelope(record, ranges) else {
            return false;
        };
        debug_assert!(std::str::from_utf8(record).is_ok());
        // SAFETY: the scanner accepted the record, which it does only for valid UTF-8 (see
        // `scan`: ASCII outside strings, every string with other bytes checked).
        let text = unsafe { std::str::from_utf8_unchecked(record) };
        let (Some(source), Some(detail_type), Some(detail)) = (f.source, f.detail_type, f.detail) else {
            return false;
        };
        let time_ms = match f.time {
            None => None,
            Some(t) => match scan::rfc3339_ms(t).or_else(|| parse_time(t).ok()) {
                Some(ms) => Some(ms),
                None => return false,
            },
        };
        if self.left_out(source, detail_type) {
            return true;
        }
        let detail: Cow<str> = match f.detail_multiline {
            true => Cow::Owned(compact_json(detail)),
            false => Cow::Borrowed(detail),
        };
        let e = Decoded {
            id: f.id.map(Cow::Borrowed),
            source: Cow::Borrowed(source),
            detail_type: Cow::Borrowed(detail_type),
            time_ms,
            account: f.account.map(Cow::Borrowed),
            region: f.region.map(Cow::Borrowed),
            version: f.version.map(Cow::Borrowed),
            // The items are appended from their ranges, without a vector of their own.
            resources: Vec::new(),
            detail,
        };
        self.append(&e, ranges.iter().map(|r| &text[r.clone()]), origin, position, text);
        true
    }

    /// Appends one event; `resources` are its items (the fast path gives them apart from `e`).
    fn append<'r>(
        &mut self,
        e: &Decoded<'_>,
        resources: impl Iterator<Item = &'r str>,
        origin: &str,
        position: u64,
        raw: &str,
    ) {
        match &e.id {
            Some(id) => self.id.append_value(id),
            None => self.id.append_value(derived_id(e)),
        }
        self.source.append_value(&e.source);
        self.detail_type.append_value(&e.detail_type);
        self.time.append_option(e.time_ms);
        self.account.append_option(e.account.as_deref());
        self.region.append_option(e.region.as_deref());
        self.version.append_option(e.version.as_deref());
        for r in resources {
            self.resources.values().append_value(r);
        }
        self.resources.append(true);
        self.detail.append_value(&e.detail);
        self.origin.append_value(origin);
        self.position.append_value(position);
        self.raw.append_value(raw);
        self.rows += 1;
    }

    /// Finishes the rows pushed so far as one batch and resets the builders.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.detail_type.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.resources.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.origin.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.raw.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(source_schema(), columns).expect("builders match the source schema")
    }
}

/// serde_json's message with the position made relative to the record: "at column 12" for a
/// one-line record, "at record line 2 column 5" for a record that spans lines.
fn json_error(e: serde_json::Error) -> String {
    let text = e.to_string();
    let place = format!(" at line {} column {}", e.line(), e.column());
    let base = text.strip_suffix(&place).unwrap_or(&text);
    if e.line() <= 1 {
        format!("not JSON: {base} at column {}", e.column())
    } else {
        format!("not JSON: {base} at record line {} column {}", e.line(), e.column())
    }
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    // A UTF-8 byte order mark is allowed at the start of a file; treat it as white space.
    if let Some(rest) = b.strip_prefix(b"\xEF\xBB\xBF") {
        b = rest;
    }
    b.trim_ascii()
}

fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

fn string_field<'a>(name: &str, raw: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, String> {
    let Some(raw) = raw.filter(|r| !is_null(r)) else {
        return Ok(None);
    };
    if raw.get().starts_with('"') {
        let s: Cow<'a, str> = serde_json::from_str(raw.get()).map_err(|e| format!("`{name}`: {e}"))?;
        Ok(Some(s))
    } else {
        Err(format!("`{name}` must be a string, found {}", kind_of(raw.get())))
    }
}

fn required<'a>(name: &str, raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, String> {
    string_field(name, raw)?.ok_or_else(|| format!("lacks `{name}`"))
}

fn id_field<'a>(raw: Option<&'a RawValue>) -> Result<Option<Cow<'a, str>>, String> {
    match raw.filter(|r| !is_null(r)) {
        Some(r) if r.get().starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(Some(Cow::Borrowed(r.get()))),
        other => string_field("id", other),
    }
}

/// `time`: RFC 3339 text with any offset and optional fraction, or a number of epoch
/// milliseconds (epoch seconds when below 10^11, i.e. before 1973 in milliseconds).
fn time_field(raw: Option<&RawValue>) -> Result<Option<i64>, String> {
    let Some(raw) = raw.filter(|r| !is_null(r)) else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<str> = serde_json::from_str(text).map_err(|e| format!("`time`: {e}"))?;
        parse_time(&s).map(Some)
    } else if let Ok(n) = text.parse::<f64>() {
        Ok(Some(if n.abs() < 1e11 { (n * 1000.0) as i64 } else { n as i64 }))
    } else {
        Err(format!("`time` must be an RFC 3339 string, found {}", kind_of(text)))
    }
}

/// Parses RFC 3339 (`2024-05-01T12:00:00Z`, `…T12:00:00.123+02:00`, a space for `T`) to UTC ms.
pub fn parse_time(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|e| format!("`time` {s:?} is not an RFC 3339 timestamp ({e}); expected e.g. 2024-05-01T12:00:00Z"))
}

fn resources_field<'a>(raw: Option<&'a RawValue>) -> Result<Vec<Cow<'a, str>>, String> {
    let Some(raw) = raw.filter(|r| !is_null(r)) else {
        return Ok(Vec::new());
    };
    if !raw.get().starts_with('[') {
        return Err(format!(
            "`resources` must be an array of strings, found {}",
            kind_of(raw.get())
        ));
    }
    let items: Vec<&'a RawValue> = serde_json::from_str(raw.get()).map_err(|e| format!("`resources`: {e}"))?;
    items
        .into_iter()
        .map(|r| string_field("resources[]", Some(r))?.ok_or_else(|| "`resources` must not contain null".to_owned()))
        .collect()
}

/// `detail` must be a JSON object. Stores that keep it as a string of JSON are accepted too.
fn detail_field<'a>(raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, String> {
    let raw = raw.filter(|r| !is_null(r)).ok_or("lacks `detail`")?;
    let text = raw.get();
    if text.starts_with('{') {
        // A pretty-printed store spreads detail over lines; keep it one line so that it can be
        // written as NDJSON and sent as-is.
        if text.contains(['\n', '\r']) {
            return Ok(Cow::Owned(compact_json(text)));
        }
        return Ok(Cow::Borrowed(text));
    }
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|e| format!("`detail`: {e}"))?;
        if inner.trim_start().starts_with('{') && serde_json::from_str::<&RawValue>(&inner).is_ok() {
            return Ok(Cow::Owned(inner.trim().to_owned()));
        }
        return Err("`detail` must be a JSON object, found a string that is not a JSON object".to_owned());
    }
    Err(format!("`detail` must be a JSON object, found {}", kind_of(text)))
}

/// Removes the white space between the tokens of valid JSON text, keeping key order and the
/// contents of strings.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            out.push(c);
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

fn decode_raw(raw: RawEnvelope<'_>) -> Result<Decoded<'_>, String> {
    Ok(Decoded {
        id: id_field(raw.id)?,
        source: required("source", raw.source)?,
        detail_type: required("detail-type", raw.detail_type)?,
        time_ms: time_field(raw.time)?,
        account: string_field("account", raw.account)?,
        region: string_field("region", raw.region)?,
        version: string_field("version", raw.version)?,
        resources: resources_field(raw.resources)?,
        detail: detail_field(raw.detail)?,
    })
}

/// The value at `path` in a record, as the record's own text: numbers keep every digit and
/// objects their key order (nothing is re-serialised).
fn lookup<'a>(record: &'a RawValue, path: &[String]) -> Result<Option<&'a RawValue>, String> {
    let mut current = record;
    for key in path {
        let text = current.get();
        let next = match text.as_bytes().first() {
            Some(b'{') => {
                let fields: std::collections::HashMap<Cow<'a, str>, &'a RawValue> =
                    serde_json::from_str(text).map_err(json_error)?;
                fields.get(key.as_str()).copied()
            }
            Some(b'[') => {
                let items: Vec<&'a RawValue> = serde_json::from_str(text).map_err(json_error)?;
                key.parse::<usize>().ok().and_then(|i| items.get(i).copied())
            }
            _ => None,
        };
        match next {
            Some(n) => current = n,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

fn decode_mapped(text: &str, map: &FieldMap) -> Result<Decoded<'static>, String> {
    // Each mapped value is read, as the record's own JSON text, by the same functions as the
    // envelope, so both paths accept and reject exactly the same things.
    let record: &RawValue = serde_json::from_str(text).map_err(json_error)?;
    let mut texts: Vec<Option<&RawValue>> = Vec::with_capacity(EnvelopeField::ALL.len());
    for field in EnvelopeField::ALL {
        let default = [field.json_name().to_owned()];
        let path: &[String] = map.path(field).unwrap_or(&default);
        texts.push(lookup(record, path)?);
    }
    let get = |f: EnvelopeField| texts[f as usize];
    let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
    let path_name = |f: EnvelopeField| match map.path(f) {
        Some([]) => ".".to_owned(),
        Some(p) => p.join("."),
        None => f.json_name().to_owned(),
    };
    let required_mapped = |f: EnvelopeField| -> Result<Cow<'static, str>, String> {
        match get(f) {
            Some(r) if r.get().starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                Ok(Cow::Owned(r.get().to_owned()))
            }
            other => string_field(f.json_name(), other)?
                .map(own)
                .ok_or_else(|| format!("lacks `{}` (mapped from `{}`)", f.json_name(), path_name(f))),
        }
    };
    Ok(Decoded {
        id: id_field(get(EnvelopeField::Id))?.map(own),
        source: required_mapped(EnvelopeField::Source)?,
        detail_type: required_mapped(EnvelopeField::DetailType)?,
        time_ms: time_field(get(EnvelopeField::Time))?,
        account: string_field("account", get(EnvelopeField::Account))?.map(own),
        region: string_field("region", get(EnvelopeField::Region))?.map(own),
        version: string_field("version", get(EnvelopeField::Version))?.map(own),
        resources: resources_field(get(EnvelopeField::Resources))?
            .into_iter()
            .map(own)
            .collect(),
        detail: detail_field(get(EnvelopeField::Detail))
            .map(own)
            .map_err(|e| format!("{e} (mapped from `{}`)", path_name(EnvelopeField::Detail)))?,
    })
}

/// The id given to a record that has none: a UUID-shaped hex string made from the SHA-256 of its
/// `source`, `detail-type`, `time` (as UTC milliseconds) and `detail` text. The same record always
/// gets the same id, on every run and from every copy of the store.
fn derived_id(e: &Decoded<'_>) -> String {
    let mut h = Sha256::new();
    h.update(e.source.as_bytes());
    h.update([0]);
    h.update(e.detail_type.as_bytes());
    h.update([0]);
    if let Some(t) = e.time_ms {
        h.update(t.to_string().as_bytes());
    }
    h.update([0]);
    h.update(e.detail.as_bytes());
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Reads the event columns of an `events` batch back into EventBridge envelopes.
pub struct EnvelopeReader<'b> {
    batch: &'b RecordBatch,
}

impl<'b> EnvelopeReader<'b> {
    /// `None` unless the batch has every envelope column of `events` (a projection may not).
    pub fn new(batch: &'b RecordBatch) -> Option<Self> {
        let s = batch.schema();
        let ok = [
            ID,
            SOURCE,
            DETAIL_TYPE,
            TIME,
            ACCOUNT,
            REGION,
            VERSION,
            RESOURCES,
            DETAIL,
        ]
        .iter()
        .all(|c| {
            s.index_of(c)
                .is_ok_and(|i| s.field(i).data_type() == schema().field_with_name(c).unwrap().data_type())
        });
        ok.then_some(Self { batch })
    }

    fn str_col(&self, name: &str) -> &arrow::array::StringArray {
        self.batch.column_by_name(name).unwrap().as_string::<i32>()
    }

    pub fn source(&self, row: usize) -> &str {
        self.str_col(SOURCE).value(row)
    }

    pub fn detail_type(&self, row: usize) -> &str {
        self.str_col(DETAIL_TYPE).value(row)
    }

    pub fn detail(&self, row: usize) -> &str {
        self.str_col(DETAIL).value(row)
    }

    pub fn time_ms(&self, row: usize) -> Option<i64> {
        let t = self
            .batch
            .column_by_name(TIME)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        t.is_valid(row).then(|| t.value(row))
    }

    pub fn resources(&self, row: usize) -> Vec<String> {
        let list = self.batch.column_by_name(RESOURCES).unwrap().as_list::<i32>();
        let items = list.value(row);
        let items = items.as_string::<i32>();
        items.iter().flatten().map(str::to_owned).collect()
    }

    /// The event in `row` as EventBridge delivers it to a target: `detail` as an object.
    pub fn envelope_json(&self, row: usize) -> String {
        self.envelope_json_with(row, None)
    }

    /// The envelope as EventBridge delivers it: `delivery` (account, region) fills the fields
    /// the store lacks, as EventBridge fills them from the bus; `version` is "0" and
    /// `resources` `[]` when absent, so every envelope has its nine fields (`time` when known).
    pub fn envelope_json_with(&self, row: usize, delivery: Option<(&str, &str)>) -> String {
        let mut out = String::with_capacity(512);
        out.push('{');
        let mut first = true;
        let mut put = |out: &mut String, key: &str, value: Option<&str>| {
            if let Some(v) = value {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&serde_json::to_string(key).unwrap());
                out.push(':');
                out.push_str(&serde_json::to_string(v).unwrap());
            }
        };
        let opt = |name: &str| {
            let a = self.str_col(name);
            a.is_valid(row).then(|| a.value(row))
        };
        put(&mut out, "version", Some(opt(VERSION).unwrap_or("0")));
        put(&mut out, "id", opt(ID));
        put(&mut out, "detail-type", opt(DETAIL_TYPE));
        put(&mut out, "source", opt(SOURCE));
        put(&mut out, "account", opt(ACCOUNT).or(delivery.map(|d| d.0)));
        let time = self
            .batch
            .column_by_name(TIME)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let time_text = time.is_valid(row).then(|| format_time(time.value(row)));
        put(&mut out, "time", time_text.as_deref());
        put(&mut out, "region", opt(REGION).or(delivery.map(|d| d.1)));
        out.push_str(",\"resources\":[");
        let resources = self.batch.column_by_name(RESOURCES).unwrap().as_list::<i32>();
        let items = resources.value(row);
        let items = items.as_string::<i32>();
        for i in 0..items.len() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(items.value(i)).unwrap());
        }
        out.push_str("],\"detail\":");
        out.push_str(self.str_col(DETAIL).value(row));
        out.push('}');
        out
    }
}

/// Formats UTC milliseconds the way EventBridge writes `time`: `2024-05-01T12:00:00Z`, with a
/// fraction only when there is one.
pub fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::Value;

    fn decode(line: &str, map: Option<FieldMap>) -> Result<RecordBatch, String> {
        let mut d = BatchDecoder::new(map.map(Arc::new), 4);
        d.push(line.as_bytes(), "f.ndjson", 1)?;
        Ok(d.finish())
    }

    const GOOD: &str = r#"{"id":"e1","source":"shop.orders","detail-type":"OrderPlaced","time":"2024-05-01T12:00:00.250+02:00","account":"1","region":"eu-west-1","resources":["arn:a"],"detail":{"orderId":"o-1","qty":2}}"#;

    #[test]
    fn decodes_an_envelope() {
        let b = decode(GOOD, None).unwrap();
        assert_eq!(b.num_rows(), 1);
        let time = b.column(3).as_primitive::<TimestampMillisecondType>().value(0);
        assert_eq!(format_time(time), "2024-05-01T10:00:00.250Z");
        assert_eq!(b.column(8).as_string::<i32>().value(0), r#"{"orderId":"o-1","qty":2}"#);
        let env = EnvelopeReader::new(&b).unwrap().envelope_json(0);
        let v: Value = serde_json::from_str(&env).unwrap();
        assert_eq!(v["detail"]["qty"], 2);
        assert_eq!(v["detail-type"], "OrderPlaced");
        assert_eq!(v["resources"][0], "arn:a");
    }

    #[rstest]
    #[case("not json", "not JSON")]
    #[case("[1,2]", "not a JSON object")]
    #[case(r#"{"source":"s","detail":{}}"#, "lacks `detail-type`")]
    #[case(r#"{"detail-type":"t","detail":{}}"#, "lacks `source`")]
    #[case(r#"{"source":"s","detail-type":"t"}"#, "lacks `detail`")]
    #[case(
        r#"{"source":5,"detail-type":"t","detail":{}}"#,
        "`source` must be a string, found a number"
    )]
    #[case(r#"{"source":"s","detail-type":"t","detail":[1]}"#, "`detail` must be a JSON object")]
    #[case(
        r#"{"source":"s","detail-type":"t","detail":{},"time":"yesterday"}"#,
        "not an RFC 3339"
    )]
    #[case(
        r#"{"source":"s","detail-type":"t","detail":{},"resources":"x"}"#,
        "`resources` must be an array"
    )]
    fn rejects_with_a_reason(#[case] line: &str, #[case] reason: &str) {
        let err = decode(line, None).unwrap_err();
        assert!(err.contains(reason), "{err:?} should contain {reason:?}");
    }

    #[test]
    fn pretty_detail_is_compacted_in_key_order() {
        let line =
            "{\"source\":\"s\",\"detail-type\":\"t\",\"detail\": {\n  \"z\": \"a b\\\" \\n\",\n  \"a\": [1, 2]\n}}";
        let b = decode(line, None).unwrap();
        assert_eq!(b.column(8).as_string::<i32>().value(0), r#"{"z":"a b\" \n","a":[1,2]}"#);
    }

    #[test]
    fn missing_id_is_derived_deterministically() {
        let line = r#"{"source":"s","detail-type":"t","time":"2024-01-01T00:00:00Z","detail":{"a":1}}"#;
        let a = decode(line, None).unwrap();
        let b = decode(line, None).unwrap();
        let id = a.column(0).as_string::<i32>().value(0).to_owned();
        assert_eq!(id, b.column(0).as_string::<i32>().value(0));
        assert_eq!(id.len(), 36);
        let other = decode(&line.replace("\"a\":1", "\"a\":2"), None).unwrap();
        assert_ne!(id, other.column(0).as_string::<i32>().value(0));
    }

    #[test]
    fn maps_other_shapes() {
        let map = FieldMap::parse(&[
            "detail-type=eventType".into(),
            "source=meta.service".into(),
            "time=createdAt".into(),
            "detail=payload".into(),
            "id=pk".into(),
        ])
        .unwrap();
        let line = r#"{"pk":"ORDER#1","eventType":"OrderPlaced","meta":{"service":"shop"},"createdAt":1714560000000,"payload":"{\"qty\":3}"}"#;
        let b = decode(line, map).unwrap();
        assert_eq!(b.column(0).as_string::<i32>().value(0), "ORDER#1");
        assert_eq!(b.column(1).as_string::<i32>().value(0), "shop");
        assert_eq!(b.column(8).as_string::<i32>().value(0), r#"{"qty":3}"#);
        let t = b.column(3).as_primitive::<TimestampMillisecondType>().value(0);
        assert_eq!(format_time(t), "2024-05-01T10:40:00Z");
    }

    #[test]
    fn unmapped_detail_is_the_whole_record() {
        let map = FieldMap::parse(&["detail-type=type".into(), "source=svc".into()]).unwrap();
        let b = decode(r#"{"type":"T","svc":"S","x":1}"#, map).unwrap();
        let detail: Value = serde_json::from_str(b.column(8).as_string::<i32>().value(0)).unwrap();
        assert_eq!(detail["x"], 1);
    }

    /// Decodes `lines` with the fast path on and off: each record gets the same row or the same
    /// rejection either way.
    fn assert_paths_agree<L: AsRef<[u8]>>(lines: &[L]) {
        let mut fast = BatchDecoder::new(None, lines.len());
        let mut slow = BatchDecoder::new(None, lines.len());
        slow.plain_path = false;
        for (i, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            let a = fast.push(line, "f", i as u64);
            let b = slow.push(line, "f", i as u64);
            assert_eq!(a, b, "record {:?}", String::from_utf8_lossy(line));
        }
        let (a, b) = (fast.finish(), slow.finish());
        assert_eq!(a.num_rows(), b.num_rows());
        for c in 0..a.num_columns() {
            assert_eq!(a.column(c).to_data(), b.column(c).to_data(), "column {c}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_the_sample_and_its_variants() {
        let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/events.ndjson")).unwrap();
        let base: Vec<&str> = sample.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut lines: Vec<String> = base.iter().map(|l| l.to_string()).collect();
        for l in &base {
            lines.push(l.replace(",\"", ", \n\"").replace(":", " : "));
            lines.push(l.replace("\"time\"", "\"t\"")); // no time
            lines.push(l.replacen("\"id\"", "\"ident\"", 1)); // derived id
            lines.push(l.replace("\"detail\":{", "\"detail\":{\n\"pretty\": [ 1 ,\r\n 2 ],"));
            lines.push(l.replace("Order", "Ord\\u0065r"));
            lines.push(l.replace("\"resources\":[]", "\"resources\":[\"a\", \"b\\\"c\"]"));
            lines.push(l.replace("\"region\"", "\"region\":null,\"x\""));
            lines.push(l.replace("Z\"", "+00:00\"").replace(".", ","));
        }
        for extra in [
            r#"{"source":"s","detail-type":"t","detail":{"n":[-0,0.5,1e9,-2E-3,12345678901234567890123]}}"#,
            r#"{"source":"s","detail-type":"t","time":"2024-02-30T00:00:00Z","detail":{}}"#,
            r#"{"source":"s","detail-type":"t","time":"2016-12-31T23:59:60Z","detail":{}}"#,
            r#"{"source":"s","detail-type":"t","time":"2024-05-01 12:00:00+02:00","detail":{}}"#,
            r#"{"source":"s","detail-type":"t","time":"2024-05-01T12:00:00.1234567891Z","detail":{}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"deep":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}"#,
            r#"{"source":"s","detail-type":"t","detail":{"s":"\ud800"}}"#,
            r#"{"source":"s","detail-type":"t","detail":{},"detail":{}}"#,
            r#"{}"#,
            r#"{"source":"s","detail-type":"t","detail":{"a":"é€𝄞"}}"#,
        ] {
            lines.push(extra.to_owned());
        }
        assert_paths_agree(&lines);
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_mutated_records() {
        // Every record of a few thousand, each a sample event with one byte changed, inserted or
        // deleted (from the characters JSON gives meaning to): whatever the fast path accepts,
        // serde_json accepts the same way.
        let wide = r#"{"id":"é1","source":"shop.Köln","detail-type":"Bestellung €","time":"2024-05-01T12:00:00Z","resources":["arn:𝄞"],"detail":{"städte":["Köln","Zürich"],"n":-1.5e3}}"#;
        let bases = [GOOD.as_bytes(), wide.as_bytes()];
        // Bytes above 0x7f too: lone, leading and continuation bytes make records that are not
        // UTF-8, which both paths must reject alike.
        let alphabet = b"{}[]\",:.-+eE0129 \n\tnulltruefalse\\u\x01a\x80\xbf\xc3\xe2\xf0\xff";
        let mut rng = crate::testing::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next();
        let mut lines = Vec::new();
        for k in 0..20_000 {
            let mut rec = bases[k % 2].to_vec();
            let at = (next() % rec.len() as u64) as usize;
            let c = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 => rec[at] = c,
                1 => rec.insert(at, c),
                _ => {
                    rec.remove(at);
                }
            }
            lines.push(rec);
        }
        assert_paths_agree(&lines);
    }

    #[test]
    fn the_prefilter_leaves_out_rows_but_never_a_rejection() {
        let prefilter = Prefilter {
            detail_types: Some(vec!["OrderPlaced".into()]),
            ..Default::default()
        };
        for plain_path in [true, false] {
            let mut d = BatchDecoder::new(None, 4).with_prefilter(Some(Arc::new(prefilter.clone())));
            d.plain_path = plain_path;
            d.push(GOOD.as_bytes(), "f", 1).unwrap();
            let other = GOOD.replace("OrderPlaced", "OrderShipped");
            d.push(other.as_bytes(), "f", 2).unwrap();
            // Not the wanted type, and not an event either: rejected, as without the prefilter.
            let bad = other.replace("2024-05-01T12:00:00.250+02:00", "yesterday");
            assert!(d.push(bad.as_bytes(), "f", 3).unwrap_err().contains("RFC 3339"));
            assert!(d.push(b"{\"detail-type\":\"OrderShipped\"", "f", 4).is_err());
            assert_eq!(d.take_prefiltered(), 1);
            let b = d.finish();
            assert_eq!(b.num_rows(), 1);
            assert_eq!(b.column(2).as_string::<i32>().value(0), "OrderPlaced");
        }
    }

    #[test]
    fn bad_map_arguments_are_usage_errors() {
        assert!(FieldMap::parse(&["nonsense".into()]).is_err());
        assert!(FieldMap::parse(&["colour=x".into()]).is_err());
    }
}
