//! DynamoDB as an event store: a table read by a parallel Scan (`dynamodb://TABLE`), and a
//! DynamoDB export on S3 (`dynamodb-export://bucket/prefix/AWSDynamoDB/<export-id>/`).
//!
//! Both turn items into plain JSON records, exactly: a number is written as the digits DynamoDB
//! holds (no f64 round trip), a set becomes an array, binary becomes base64 text, maps and lists
//! stay nested, and map keys are written in sorted order (DynamoDB maps have no order, so the
//! same item always gives the same text, from a scan and from an export alike). The records then
//! go through the same envelope decoder (and `--map`) as a file's lines.
//!
//! A scan's origin is `dynamodb://TABLE#SEGMENT/TOTAL` and its position the item's ordinal in
//! the segment (from 1). Each page's start key is a checkpoint (a [`Mark`]): a resumed run starts
//! every segment at its first page that is not settled, instead of scanning the table again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use futures::stream::{BoxStream, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{Decoded, Mark, Rejection, SourceSpec, SourceStats, Start};
use crate::action::fault::classify_sdk;
use crate::action::policy::{RateLimiter, RetryPolicy};
use crate::event::{BatchDecoder, FieldMap, Prefilter};
use crate::{Error, Result};

/// AWS's rule of thumb for a parallel scan: one segment per 2 GB of table.
const BYTES_PER_SEGMENT: i64 = 2 << 30;
/// The most segments a Scan takes (TotalSegments).
pub const MAX_SEGMENTS: u32 = 1_000_000;
/// Segments scanned at once by one process: each holds at most one 1 MB page in flight.
const SEGMENTS_AT_ONCE: usize = 16;

/// What `--from dynamodb://TABLE` reads and how.
#[derive(Debug)]
pub struct Scan {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub total_segments: u32,
    /// The segments this process scans (all of them, unless the work is sharded).
    pub segments: Vec<u32>,
    pub consistent_read: bool,
    /// `ProjectionExpression` and its attribute names, when the mapping names every attribute
    /// it reads.
    pub projection: Option<(String, HashMap<String, String>)>,
    /// `--read-rate`: consumed read capacity units per second, at most.
    pub read_rate: Option<f64>,
    /// `--page-items`: Scan's `Limit` (items a page); DynamoDB's 1 MB page otherwise.
    pub page_items: Option<u32>,
    /// Attempts per page when DynamoDB throttles or fails transiently.
    pub retry: RetryPolicy,
}

impl Scan {
    pub fn origin(&self, segment: u32) -> String {
        format!("dynamodb://{}#{}/{}", self.table, segment, self.total_segments)
    }
}

/// Options of a table scan, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    pub segments: Option<u32>,
    pub consistent_read: bool,
    pub read_rate: Option<f64>,
    pub page_items: Option<u32>,
}

/// Resolves `dynamodb://TABLE`: DescribeTable checks that the table exists and, without
/// `--segments`, sizes the scan.
pub async fn resolve_scan(
    url: &str,
    config: &aws_config::SdkConfig,
    options: &ScanOptions,
    map: Option<&FieldMap>,
) -> Result<Scan> {
    let table = url.trim_start_matches("dynamodb://").trim_end_matches('/');
    if table.is_empty() || table.contains('/') {
        return Err(Error::usage(format!(
            "--from {url}: write dynamodb://TABLE (a table name, or a table ARN's name part)"
        )));
    }
    let client = aws_sdk_dynamodb::Client::new(config);
    let described = client.describe_table().table_name(table).send().await.map_err(|e| {
        let fault = classify_sdk(&e);
        Error::Target {
            target: url.to_owned(),
            message: format!(
                "DescribeTable: {}: {}; check the table name, the region (--region) and the credentials (dynamodb:DescribeTable, dynamodb:Scan)",
                fault.code, fault.message
            ),
        }
    })?;
    let size = described.table().and_then(|t| t.table_size_bytes()).unwrap_or(0);
    let total_segments = match options.segments {
        Some(n) => n,
        None => (size.max(1) as u64)
            .div_ceil(BYTES_PER_SEGMENT as u64)
            .clamp(1, MAX_SEGMENTS as u64) as u32,
    };
    Ok(Scan {
        client,
        table: table.to_owned(),
        total_segments,
        segments: (0..total_segments).collect(),
        consistent_read: options.consistent_read,
        projection: projection(map),
        read_rate: options.read_rate,
        page_items: options.page_items,
        retry: RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::default()
        },
    })
}

/// The `ProjectionExpression` of the attributes the mapping reads, when it names them all (a
/// mapping that takes the whole record as `detail` needs every attribute).
fn projection(map: Option<&FieldMap>) -> Option<(String, HashMap<String, String>)> {
    let attributes = FieldMap::attributes(map)?;
    let mut names = HashMap::new();
    let mut parts = Vec::new();
    for (i, a) in attributes.iter().enumerate() {
        let placeholder = format!("#a{i}");
        parts.push(placeholder.clone());
        names.insert(placeholder, a.clone());
    }
    Some((parts.join(", "), names))
}

/// The scan as decoded batches: `SEGMENTS_AT_ONCE` segments at a time, each page one batch.
pub fn stream(spec: &SourceSpec, scan: Arc<Scan>, stats: Arc<SourceStats>) -> BoxStream<'static, Result<Decoded>> {
    let (tx, rx) = mpsc::channel::<Result<Decoded>>(SEGMENTS_AT_ONCE);
    let map = spec.map.clone();
    let prefilter = spec.prefilter.clone();
    let starts = spec.starts.clone();
    let limiter = scan.read_rate.map(|r| Arc::new(RateLimiter::new(r)));
    let segments: Vec<u32> = scan.segments.clone();
    tokio::spawn(async move {
        futures::stream::iter(segments)
            .for_each_concurrent(SEGMENTS_AT_ONCE, |segment| {
                let (scan, stats, tx, limiter) = (scan.clone(), stats.clone(), tx.clone(), limiter.clone());
                let decode = (map.clone(), prefilter.clone());
                let start = starts.get(&scan.origin(segment)).cloned();
                async move {
                    if let Err(e) = scan_segment(&scan, segment, start, &stats, &tx, decode, limiter).await {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            })
            .await;
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) }).boxed()
}

async fn scan_segment(
    scan: &Scan,
    segment: u32,
    start: Option<Start>,
    stats: &SourceStats,
    tx: &mpsc::Sender<Result<Decoded>>,
    (map, prefilter): (Option<Arc<FieldMap>>, Option<Arc<Prefilter>>),
    limiter: Option<Arc<RateLimiter>>,
) -> Result<()> {
    let origin: Arc<str> = Arc::from(scan.origin(segment));
    let (mut key, mut position) = match start {
        None => (None, 1u64),
        Some(Start::Complete) => return Ok(()),
        Some(Start::At { position, key }) => {
            let key = key
                .as_deref()
                .map(key_from_json)
                .transpose()
                .map_err(|e| Error::Internal(format!("the checkpoint of {origin} is not a DynamoDB key: {e}")))?;
            (key, position)
        }
    };
    stats.files.fetch_add(1, Ordering::Relaxed);
    loop {
        let mut attempt = 1;
        let page = loop {
            let mut request = scan
                .client
                .scan()
                .table_name(&scan.table)
                .set_exclusive_start_key(key.clone())
                .consistent_read(scan.consistent_read)
                .set_limit(scan.page_items.map(|n| n as i32))
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if scan.total_segments > 1 {
                request = request
                    .segment(segment as i32)
                    .total_segments(scan.total_segments as i32);
            }
            if let Some((expression, names)) = &scan.projection {
                request = request
                    .projection_expression(expression)
                    .set_expression_attribute_names(Some(names.clone()));
            }
            match request.send().await {
                Ok(page) => break page,
                Err(e) => {
                    let fault = classify_sdk(&e);
                    if fault.retryable && scan.retry.may_retry(attempt) {
                        attempt += 1;
                        tokio::time::sleep(scan.retry.backoff(attempt)).await;
                        continue;
                    }
                    return Err(Error::Target {
                        target: origin.to_string(),
                        message: format!(
                            "Scan: {}: {} (after {attempt} attempts; {} items of this segment were read)",
                            fault.code,
                            fault.message,
                            position - 1
                        ),
                    });
                }
            }
        };
        let consumed = page.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let next = page.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        let marks = vec![Mark {
            origin: origin.clone(),
            position,
            key: key.as_ref().map(key_to_json),
            end: false,
        }];
        let items = page.items.unwrap_or_default();
        let count = items.len() as u64;
        let (o, m, p, first) = (origin.clone(), map.clone(), prefilter.clone(), position);
        let decoded = tokio::task::spawn_blocking(move || decode_items(&items, m, p, &o, first, marks))
            .await
            .map_err(|e| Error::Internal(format!("decoding a page of {origin}: {e}")))??;
        stats.records.fetch_add(count, Ordering::Relaxed);
        stats.bytes.fetch_add(decoded.1, Ordering::Relaxed);
        stats
            .rejected
            .fetch_add(decoded.0.rejections.len() as u64, Ordering::Relaxed);
        if tx.send(Ok(decoded.0)).await.is_err() {
            return Ok(()); // the run stopped reading
        }
        position += count;
        match next {
            Some(k) => key = Some(k),
            None => {
                // The end of the segment, in a slice of its own after its last page.
                let end = Decoded {
                    batch: BatchDecoder::new(None, 0).finish(),
                    rejections: Vec::new(),
                    marks: vec![Mark {
                        origin: origin.clone(),
                        position,
                        key: None,
                        end: true,
                    }],
                    prefiltered: 0,
                };
                let _ = tx.send(Ok(end)).await;
                return Ok(());
            }
        }
        if let Some(l) = &limiter {
            l.acquire(consumed.ceil() as usize).await;
        }
    }
}

/// One page's items as a batch; also the bytes of JSON they made.
fn decode_items(
    items: &[HashMap<String, AttributeValue>],
    map: Option<Arc<FieldMap>>,
    prefilter: Option<Arc<Prefilter>>,
    origin: &Arc<str>,
    first: u64,
    marks: Vec<Mark>,
) -> Result<(Decoded, u64)> {
    let mut decoder = BatchDecoder::new(map, items.len()).with_prefilter(prefilter.clone());
    let mut rejections = Vec::new();
    let mut text = String::new();
    let mut bytes = 0u64;
    for (i, item) in items.iter().enumerate() {
        let position = first + i as u64;
        text.clear();
        let result = write_item(&mut text, item).and_then(|()| decoder.push(text.as_bytes(), origin, position));
        bytes += text.len() as u64;
        if let Err(reason) = result {
            rejections.push(Rejection {
                origin: origin.clone(),
                position,
                line: position,
                reason,
                raw: text.as_bytes().to_vec(),
                skipped: false,
            });
        }
    }
    let decoded = Decoded {
        prefiltered: decoder.take_prefiltered(),
        batch: decoder.finish(),
        rejections,
        marks,
    };
    Ok((decoded.filtered(prefilter.as_deref())?, bytes))
}

// ---------------------------------------------------------------------------------------------
// Items as plain JSON

fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping; writing a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Writes a DynamoDB number as a JSON number with the same digits. DynamoDB gives numbers in
/// plain decimal notation; a form JSON does not allow (`+1`, `.5`, `5.`) is normalised without
/// changing its value.
fn push_number(out: &mut String, n: &str) -> std::result::Result<(), String> {
    let t = n.trim();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => ("-", &t[1..]),
        Some(b'+') => ("", &t[1..]),
        _ => ("", t),
    };
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let valid = all_digits(int)
        && frac.is_none_or(all_digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty))
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        });
    if !valid {
        return Err(format!("{n:?} is not a number"));
    }
    out.push_str(sign);
    let int = int.trim_start_matches('0');
    out.push_str(if int.is_empty() { "0" } else { int });
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(f);
    }
    if let Some(e) = exponent {
        out.push('e');
        out.push_str(e);
    }
    Ok(())
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    use base64::Engine;
    out.push('"');
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
    out.push('"');
}

/// An item from the SDK as one line of JSON.
pub fn write_item(out: &mut String, item: &HashMap<String, AttributeValue>) -> std::result::Result<(), String> {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort_unstable();
    out.push('{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, k);
        out.push(':');
        write_value(out, &item[k]).map_err(|e| format!("attribute `{k}`: {e}"))?;
    }
    out.push('}');
    Ok(())
}

fn write_value(out: &mut String, v: &AttributeValue) -> std::result::Result<(), String> {
    type Each<'e> = &'e mut dyn FnMut(&mut String, usize) -> std::result::Result<(), String>;
    fn list(out: &mut String, n: usize, each: Each<'_>) -> std::result::Result<(), String> {
        out.push('[');
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            each(out, i)?;
        }
        out.push(']');
        Ok(())
    }
    match v {
        AttributeValue::S(s) => push_json_string(out, s),
        AttributeValue::N(n) => push_number(out, n)?,
        AttributeValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AttributeValue::Null(_) => out.push_str("null"),
        AttributeValue::B(b) => push_base64(out, b.as_ref()),
        AttributeValue::M(m) => write_item(out, m)?,
        AttributeValue::L(l) => list(out, l.len(), &mut |out, i| write_value(out, &l[i]))?,
        AttributeValue::Ss(s) => {
            let s = sorted_strings(s.iter().map(String::as_str));
            list(out, s.len(), &mut |out, i| {
                push_json_string(out, s[i]);
                Ok(())
            })?
        }
        AttributeValue::Ns(s) => {
            let s = sorted_numbers(s.iter().map(String::as_str));
            list(out, s.len(), &mut |out, i| push_number(out, s[i]))?
        }
        AttributeValue::Bs(s) => {
            let mut s: Vec<&[u8]> = s.iter().map(|b| b.as_ref()).collect();
            s.sort_unstable();
            list(out, s.len(), &mut |out, i| {
                push_base64(out, s[i]);
                Ok(())
            })?
        }
        other => return Err(format!("an attribute type this version does not know ({other:?})")),
    }
    Ok(())
}

/// A set's members in one order (a DynamoDB set has none), so that the same item always gives
/// the same text.
fn sorted_strings<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v
}

/// A number set's members by value (then by text, for values a float cannot tell apart).
fn sorted_numbers<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<(f64, &str)> = items
        .map(|s| (s.trim().parse::<f64>().unwrap_or(f64::NAN), s))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    v.into_iter().map(|(_, s)| s).collect()
}

/// One attribute of DynamoDB JSON (`{"S": "…"}`, `{"N": "…"}`, …) as plain JSON.
fn write_typed(out: &mut String, raw: &RawValue) -> std::result::Result<(), String> {
    let typed: BTreeMap<&str, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| format!("not DynamoDB JSON ({e}): {}", raw.get()))?;
    let mut entries = typed.into_iter();
    let (Some((kind, value)), None) = (entries.next(), entries.next()) else {
        return Err(format!(
            "an attribute must be an object of one type key (S, N, B, BOOL, NULL, M, L, SS, NS, BS): {}",
            raw.get()
        ));
    };
    let text = value.get();
    let strings = || -> std::result::Result<Vec<String>, String> {
        serde_json::from_str(text).map_err(|e| format!("{kind} must be an array of strings ({e})"))
    };
    match kind {
        // Written again after parsing, so that escapes come out as a scan's do.
        "S" => {
            let s: String = serde_json::from_str(text).map_err(|e| format!("S must be a string ({e})"))?;
            push_json_string(out, &s);
        }
        // A JSON string literal of base64 is already its JSON.
        "B" if text.starts_with('"') => out.push_str(text),
        "BOOL" if text == "true" || text == "false" => out.push_str(text),
        "NULL" => out.push_str("null"),
        "N" => {
            let n: String = serde_json::from_str(text).map_err(|e| format!("N must be a string ({e})"))?;
            push_number(out, &n)?;
        }
        "M" => write_typed_map(out, value)?,
        "L" => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| format!("L must be an array ({e})"))?;
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_typed(out, item)?;
            }
            out.push(']');
        }
        "SS" | "BS" => {
            let strings = strings()?;
            let mut sorted: Vec<(Vec<u8>, &str)> = Vec::with_capacity(strings.len());
            for s in &strings {
                // Binary sorts by its bytes, as the SDK's sets do here.
                let key = if kind == "BS" {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| format!("BS holds {s:?}, not base64 ({e})"))?
                } else {
                    s.as_bytes().to_vec()
                };
                sorted.push((key, s));
            }
            sorted.sort_unstable();
            out.push('[');
            for (i, (_, s)) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, s);
            }
            out.push(']');
        }
        "NS" => {
            out.push('[');
            let strings = strings()?;
            for (i, s) in sorted_numbers(strings.iter().map(String::as_str)).iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_number(out, s)?;
            }
            out.push(']');
        }
        other => {
            return Err(format!(
                "{other:?} is not a DynamoDB type with this value: {}",
                raw.get()
            ))
        }
    }
    Ok(())
}

/// A map of DynamoDB JSON attributes as a plain JSON object, keys sorted.
fn write_typed_map(out: &mut String, raw: &RawValue) -> std::result::Result<(), String> {
    let attributes: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| format!("an item must be an object of attributes ({e})"))?;
    out.push('{');
    for (i, (k, v)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, k);
        out.push(':');
        write_typed(out, v).map_err(|e| format!("attribute `{k}`: {e}"))?;
    }
    out.push('}');
    Ok(())
}

/// One line of an export data file.
#[derive(serde::Deserialize)]
struct ExportLine<'a> {
    #[serde(borrow, rename = "Item")]
    item: Option<&'a RawValue>,
    #[serde(borrow, rename = "NewImage")]
    new_image: Option<&'a RawValue>,
    #[serde(borrow, rename = "Keys")]
    keys: Option<&'a RawValue>,
}

/// What a line of an export data file holds.
pub enum ExportRecord {
    /// The item (a full export's `Item`, an incremental export's `NewImage`) as plain JSON.
    Item(String),
    /// An incremental export's deletion: keys and no `NewImage`.
    Deleted(String),
}

/// Reads one line of a DYNAMODB_JSON export data file.
pub fn export_record(line: &[u8]) -> std::result::Result<ExportRecord, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let parsed: ExportLine<'_> = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = String::with_capacity(text.len());
    match (parsed.item, parsed.new_image, parsed.keys) {
        (Some(item), _, _) | (None, Some(item), _) => {
            write_typed_map(&mut out, item)?;
            Ok(ExportRecord::Item(out))
        }
        (None, None, Some(keys)) => {
            write_typed_map(&mut out, keys)?;
            Ok(ExportRecord::Deleted(out))
        }
        (None, None, None) => Err("neither `Item` nor `NewImage` nor `Keys`: not a line of a DynamoDB export".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys for checkpoints: DynamoDB JSON of S, N and B attributes.

pub fn key_to_json(key: &HashMap<String, AttributeValue>) -> String {
    use base64::Engine;
    let map: BTreeMap<&str, serde_json::Value> = key
        .iter()
        .map(|(k, v)| {
            let typed = match v {
                AttributeValue::S(s) => serde_json::json!({ "S": s }),
                AttributeValue::N(n) => serde_json::json!({ "N": n }),
                AttributeValue::B(b) => {
                    serde_json::json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
                }
                other => serde_json::json!({ "S": format!("{other:?}") }),
            };
            (k.as_str(), typed)
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

pub fn key_from_json(text: &str) -> std::result::Result<HashMap<String, AttributeValue>, String> {
    use base64::Engine;
    let map: HashMap<String, HashMap<String, String>> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    map.into_iter()
        .map(|(k, typed)| {
            let v = match (typed.get("S"), typed.get("N"), typed.get("B")) {
                (Some(s), _, _) => AttributeValue::S(s.clone()),
                (_, Some(n), _) => AttributeValue::N(n.clone()),
                (_, _, Some(b)) => AttributeValue::B(aws_smithy_types::Blob::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| e.to_string())?,
                )),
                _ => return Err(format!("key attribute `{k}` is not S, N or B")),
            };
            Ok((k, v))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Exports on S3

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestSummary {
    #[serde(default)]
    output_format: Option<String>,
    #[serde(default)]
    export_type: Option<String>,
    #[serde(default)]
    manifest_files_s3_key: Option<String>,
    #[serde(default)]
    item_count: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile {
    item_count: u64,
    data_file_s3_key: String,
}

/// An export resolved from its manifests: the data files, in manifest order, and the item
/// count the manifest gives each.
pub struct Export {
    pub files: Vec<super::Input>,
    pub expected: HashMap<String, u64>,
    pub incremental: bool,
    pub items: Option<u64>,
}

pub async fn resolve_export(url: &str, config: &aws_config::SdkConfig) -> Result<Export> {
    use object_store::ObjectStoreExt;
    let rest = url.trim_start_matches("dynamodb-export://");
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    if bucket.is_empty() || prefix.is_empty() {
        return Err(Error::usage(format!(
            "--from {url}: write dynamodb-export://BUCKET/PREFIX/AWSDynamoDB/EXPORT-ID/ (the folder that holds manifest-summary.json)"
        )));
    }
    let store = crate::aws::s3_store(config, bucket)?;
    let failed = |what: &str, e: object_store::Error| {
        Error::Target {
        target: url.to_owned(),
        message: format!(
            "{what}: {e}; give the export's folder (…/AWSDynamoDB/<export-id>/) and check the credentials (s3:GetObject, s3:ListBucket)"
        ),
    }
    };
    let get = |key: String| {
        let store = store.clone();
        async move {
            let location = object_store::path::Path::from(key.as_str());
            let bytes = store.get(&location).await?.bytes().await?;
            Ok::<_, object_store::Error>(bytes)
        }
    };
    let summary_key = format!("{prefix}/manifest-summary.json");
    let summary_bytes = get(summary_key.clone()).await.map_err(|e| failed(&summary_key, e))?;
    let summary: ManifestSummary = serde_json::from_slice(&summary_bytes).map_err(|e| Error::Target {
        target: format!("s3://{bucket}/{summary_key}"),
        message: format!("not an export's manifest-summary.json: {e}"),
    })?;
    match summary.output_format.as_deref() {
        None | Some("DYNAMODB_JSON") => {}
        Some("ION") => {
            return Err(Error::usage(format!(
                "--from {url}: this export is in Amazon Ion format, which rehydrate does not read; export the table again with ExportFormat DYNAMODB_JSON (aws dynamodb export-table-to-point-in-time --export-format DYNAMODB_JSON)"
            )))
        }
        Some(other) => {
            return Err(Error::usage(format!(
                "--from {url}: unknown export format {other:?}; rehydrate reads DYNAMODB_JSON exports"
            )))
        }
    }
    let incremental = summary.export_type.as_deref() == Some("INCREMENTAL_EXPORT");
    let files_key = summary
        .manifest_files_s3_key
        .clone()
        .unwrap_or_else(|| format!("{prefix}/manifest-files.json"));
    let files_bytes = get(files_key.clone()).await.map_err(|e| failed(&files_key, e))?;
    let mut files = Vec::new();
    let mut expected = HashMap::new();
    let mut keys = Vec::new();
    for (i, line) in files_bytes.split(|b| *b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let f: ManifestFile = serde_json::from_slice(line).map_err(|e| Error::Target {
            target: format!("s3://{bucket}/{files_key}:{}", i + 1),
            message: format!("not a line of manifest-files.json: {e}"),
        })?;
        keys.push(f);
    }
    for f in keys {
        let location = object_store::path::Path::from(f.data_file_s3_key.as_str());
        let meta = store
            .head(&location)
            .await
            .map_err(|e| failed(&format!("data file {}", f.data_file_s3_key), e))?;
        let origin = format!("s3://{bucket}/{}", meta.location);
        expected.insert(origin.clone(), f.item_count);
        files.push(super::Input::Object {
            url: origin,
            store: store.clone(),
            location: meta.location,
            size: meta.size,
        });
    }
    Ok(Export {
        files,
        expected,
        incremental,
        items: summary.item_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(typed: &str) -> String {
        let raw: &RawValue = serde_json::from_str(typed).unwrap();
        let mut out = String::new();
        write_typed_map(&mut out, raw).unwrap();
        out
    }

    #[test]
    fn typed_json_becomes_exact_plain_json() {
        let item = r#"{"z":{"N":"12345678901234567890123"},"a":{"N":"1.10"},"s":{"SS":["y","x"]},"b":{"B":"AAEC"},"m":{"M":{"k":{"L":[{"N":"-0.5"},{"NULL":true},{"BOOL":false}]}}},"q":{"S":"he said \"hi\""},"ns":{"NS":["1","2.50"]}}"#;
        assert_eq!(
            plain(item),
            r#"{"a":1.10,"b":"AAEC","m":{"k":[-0.5,null,false]},"ns":[1,2.50],"q":"he said \"hi\"","s":["x","y"],"z":12345678901234567890123}"#
        );
    }

    #[test]
    fn sdk_items_and_export_lines_give_the_same_text() {
        let mut item = HashMap::new();
        item.insert("n".to_owned(), AttributeValue::N("9007199254740993".into()));
        item.insert(
            "b".to_owned(),
            AttributeValue::B(aws_smithy_types::Blob::new(vec![0u8, 1, 2])),
        );
        item.insert(
            "m".to_owned(),
            AttributeValue::M(HashMap::from([(
                "x".to_owned(),
                AttributeValue::Ns(vec!["3.14".into()]),
            )])),
        );
        let mut from_sdk = String::new();
        write_item(&mut from_sdk, &item).unwrap();
        let from_export = plain(r#"{"n":{"N":"9007199254740993"},"m":{"M":{"x":{"NS":["3.14"]}}},"b":{"B":"AAEC"}}"#);
        assert_eq!(from_sdk, from_export);
        assert_eq!(from_sdk, r#"{"b":"AAEC","m":{"x":[3.14]},"n":9007199254740993}"#);
    }

    #[test]
    fn numbers_keep_their_digits_and_bad_ones_are_named() {
        let n = |s: &str| {
            let mut out = String::new();
            push_number(&mut out, s).map(|()| out)
        };
        assert_eq!(n("100").unwrap(), "100");
        assert_eq!(n("-0.000123").unwrap(), "-0.000123");
        assert_eq!(n("+5").unwrap(), "5");
        assert_eq!(n(".5").unwrap(), "0.5");
        assert_eq!(n("1E+130").unwrap(), "1e+130");
        assert!(n("abc").unwrap_err().contains("\"abc\" is not a number"));
        assert!(n("").is_err());
        assert!(n("1e").is_err());
    }

    #[test]
    fn deletions_and_new_images_of_incremental_exports() {
        let new = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"v":{"N":"2"}}}"#;
        assert!(matches!(export_record(new), Ok(ExportRecord::Item(t)) if t == r#"{"pk":"a","v":2}"#));
        let gone =
            br#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}"#;
        assert!(matches!(export_record(gone), Ok(ExportRecord::Deleted(t)) if t == r#"{"pk":"a"}"#));
        assert!(export_record(b"{\"x\":1}").is_err());
    }

    #[test]
    fn checkpoint_keys_round_trip() {
        let key = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("order#1".into())),
            ("sk".to_owned(), AttributeValue::N("42".into())),
        ]);
        assert_eq!(key_from_json(&key_to_json(&key)).unwrap(), key);
    }
}
