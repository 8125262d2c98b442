//! `populate opensearch`: documents indexed through `_bulk`.
//!
//! What is particular to OpenSearch: the index name from a template over the row, the `_bulk`
//! action and document lines, the HTTP call (basic auth, or SigV4 for Amazon OpenSearch Service
//! and Serverless), and reading every item's result, since `_bulk` answers 200 even when items
//! fail. Batching, retries, splitting and the rest are the driver's.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::driver::{Answer, Fault, Limits, Prepared, RequestTarget};
use super::fault::{classify_http, classify_item, classify_transport};
use super::ActionContext;
use crate::{Error, Result};

/// `_bulk` requests: 5 MB by default, as OpenSearch's own guidance for bulk sizes suggests;
/// `--max-request-bytes` up to 100 MiB (`http.max_content_length`; Amazon OpenSearch Service
/// takes 10 MiB on its smaller instance types).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
pub const DEFAULT_MAX_DOCUMENTS: usize = 1000;

/// The `_bulk` action per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// Create or replace the document with that `_id` (a re-run overwrites).
    Index,
    /// Create only: a document that exists already is left alone and the event reported skipped.
    Create,
}

/// The AWS service a SigV4 signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigV4Service {
    /// Amazon OpenSearch Service (managed domains).
    Es,
    /// Amazon OpenSearch Serverless (collections).
    Aoss,
}

impl SigV4Service {
    fn name(self) -> &'static str {
        match self {
            SigV4Service::Es => "es",
            SigV4Service::Aoss => "aoss",
        }
    }
}

/// How requests are authenticated.
pub enum Auth {
    None,
    /// The `Authorization` header value (`Basic …`); never printed.
    Basic(String),
    SigV4 {
        service: SigV4Service,
        region: String,
        credentials: crate::aws::CachedCredentials,
    },
}

impl Auth {
    /// Basic authentication from the user and password (from the URL, or the environment).
    pub fn basic(user: &str, password: &str) -> Self {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Auth::Basic(format!("Basic {token}"))
    }
}

/// One piece of an index name template: text, or a column's value (`{source}`,
/// `{time:%Y.%m}`).
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Column { name: String, format: Option<String> },
}

/// `--index`: the index name, or a template over the row (`events-{source}-{time:%Y.%m}`).
/// Values are lowercased, as index names must be.
#[derive(Debug, Clone)]
pub struct IndexTemplate {
    text: String,
    parts: Vec<Part>,
}

impl IndexTemplate {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| {
            Error::usage(format!(
                "--index {text:?}: {why}. Write a name, or a template such as events-{{source}}-{{time:%Y.%m}}"
            ))
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| bad("a `{` is not closed".into()))?;
            let inner = &after[..close];
            let (name, format) = match inner.split_once(':') {
                Some((n, f)) => (n.trim(), Some(f.to_owned())),
                None => (inner.trim(), None),
            };
            if name.is_empty() {
                return Err(bad("`{}` names no column".into()));
            }
            if let Some(f) = &format {
                let broken = chrono::format::StrftimeItems::new(f).any(|i| matches!(i, chrono::format::Item::Error));
                if broken || f.is_empty() {
                    return Err(bad(format!("`{f}` is not a strftime format (e.g. %Y.%m.%d)")));
                }
            }
            parts.push(Part::Column {
                name: name.to_owned(),
                format,
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(bad("a `}` has no `{`".into()));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err(bad("the name is empty".into()));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    fn columns(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column { name, format } => Some((name.as_str(), format.as_deref())),
            Part::Text(_) => None,
        })
    }

    /// Every column the template names exists, and a format is only given for a time.
    fn check(&self, schema: &SchemaRef) -> std::result::Result<(), String> {
        for (name, format) in self.columns() {
            let Ok(field) = schema.field_with_name(name) else {
                return Err(format!(
                    "the index template names the column `{name}`, which the selection lacks"
                ));
            };
            let timeish = matches!(field.data_type(), DataType::Timestamp(..) | DataType::Date32);
            if format.is_some() && !timeish {
                return Err(format!(
                    "the index template formats `{name}` as a time, but it is {}",
                    field.data_type()
                ));
            }
        }
        Ok(())
    }

    /// The index of `row`.
    fn render(&self, data: &RecordBatch, row: usize) -> std::result::Result<String, Fault> {
        let mut out = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Column { name, format } => {
                    let array = data.column_by_name(name).expect("checked before the run");
                    if array.is_null(row) {
                        return Err(Fault::permanent(
                            "NoIndexName",
                            format!("the index template's column `{name}` is null in this row"),
                        ));
                    }
                    let value = match (format, time_of(array.as_ref(), row)) {
                        (Some(f), Some(t)) => t.format(f).to_string(),
                        (None, Some(t)) => t.format("%Y-%m-%d").to_string(),
                        _ => scalar_text(array.as_ref(), row),
                    };
                    out.push_str(&value.to_lowercase());
                }
            }
        }
        Ok(out)
    }
}

/// A time value as UTC.
fn time_of(array: &dyn Array, row: usize) -> Option<DateTime<Utc>> {
    match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .checked_mul(1_000),
                TimeUnit::Nanosecond => Some(array.as_primitive::<TimestampNanosecondType>().value(row)),
            }?;
            Some(DateTime::from_timestamp_nanos(v))
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row) as i64;
            DateTime::from_timestamp(days * 86_400, 0)
        }
        _ => None,
    }
}

/// A value as text, for index names and ids.
fn scalar_text(array: &dyn Array, row: usize) -> String {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        _ => {
            let options = arrow::util::display::FormatOptions::default();
            arrow::util::display::ArrayFormatter::try_new(array, &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        }
    }
}

/// Whether a column can become a document field.
fn indexable(t: &DataType) -> bool {
    match t {
        DataType::Null
        | DataType::Boolean
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Timestamp(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Union(..) => true,
        t if t.is_integer() || t.is_floating() => true,
        DataType::List(f) | DataType::LargeList(f) => indexable(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| indexable(f.data_type())),
        DataType::Dictionary(_, v) => indexable(v),
        _ => false,
    }
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Appends the value at `row` as JSON. `json_text`: the value is JSON text (`detail`), written
/// as the JSON it holds.
fn json_value(out: &mut Vec<u8>, array: &dyn Array, row: usize, json_text: bool) -> std::result::Result<(), String> {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    macro_rules! number {
        ($t:ty) => {{
            let mut s = String::new();
            let _ = write!(s, "{}", array.as_primitive::<$t>().value(row));
            out.extend_from_slice(s.as_bytes());
        }};
    }
    macro_rules! float {
        ($t:ty) => {{
            let v = f64::from(array.as_primitive::<$t>().value(row));
            if v.is_finite() {
                out.extend_from_slice(serde_json::Number::from_f64(v).expect("finite").to_string().as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
        }};
    }
    let text = |s: &str, out: &mut Vec<u8>| -> std::result::Result<(), String> {
        if json_text {
            let raw: &serde_json::value::RawValue =
                serde_json::from_str(s).map_err(|e| format!("is not JSON text: {e}"))?;
            out.extend_from_slice(raw.get().as_bytes());
        } else {
            json_string(out, s);
        }
        Ok(())
    };
    match array.data_type() {
        DataType::Null => out.extend_from_slice(b"null"),
        DataType::Boolean => out.extend_from_slice(if array.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float16 => {
            let v = f64::from(array.as_primitive::<Float16Type>().value(row).to_f32());
            match serde_json::Number::from_f64(v) {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        DataType::Float32 => float!(Float32Type),
        DataType::Float64 => float!(Float64Type),
        DataType::Decimal128(..) => {
            let s = array.as_primitive::<Decimal128Type>().value_as_string(row);
            out.extend_from_slice(s.as_bytes());
        }
        DataType::Decimal256(..) => {
            let s = array.as_primitive::<Decimal256Type>().value_as_string(row);
            out.extend_from_slice(s.as_bytes());
        }
        DataType::Utf8 => text(array.as_string::<i32>().value(row), out)?,
        DataType::LargeUtf8 => text(array.as_string::<i64>().value(row), out)?,
        DataType::Utf8View => text(array.as_string_view().value(row), out)?,
        DataType::Timestamp(..) | DataType::Date32 => match time_of(array, row) {
            Some(t) if matches!(array.data_type(), DataType::Date32) => {
                json_string(out, &t.format("%Y-%m-%d").to_string())
            }
            Some(t) => json_string(out, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => return Err("holds a time out of range".into()),
        },
        DataType::List(_) | DataType::LargeList(_) => {
            let values = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            out.push(b'[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(b',');
                }
                json_value(out, values.as_ref(), i, false)?;
            }
            out.push(b']');
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push(b'{');
            for (i, (f, child)) in fields.iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(out, f.name());
                out.push(b':');
                json_value(out, child.as_ref(), row, false)?;
            }
            out.push(b'}');
        }
        DataType::Union(..) => match super::union_member(array, row) {
            // The JSON functions' unions: `array` and `object` members hold JSON text.
            Some((name, child, offset)) => json_value(out, child.as_ref(), offset, matches!(name, "array" | "object"))?,
            None => out.extend_from_slice(b"null"),
        },
        DataType::Dictionary(..) => {
            let values = arrow::compute::cast(&array.slice(row, 1), &dictionary_values(array.data_type()))
                .map_err(|e| e.to_string())?;
            json_value(out, values.as_ref(), 0, json_text)?;
        }
        other => return Err(format!("is {other}, which cannot be indexed")),
    }
    Ok(())
}

fn dictionary_values(t: &DataType) -> DataType {
    match t {
        DataType::Dictionary(_, v) => (**v).clone(),
        other => other.clone(),
    }
}

/// One document of a `_bulk` request: its action line and source line.
pub struct BulkItem {
    lines: Vec<u8>,
}

/// The connection: a base URL, the HTTP client and how to authenticate.
pub struct Connection {
    /// The base URL without credentials, without a trailing slash.
    pub base: String,
    pub auth: Auth,
    pub timeout: Duration,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A URL as given to `--url`: its base without credentials, and the user and password it held.
pub fn split_url(raw: &str) -> Result<(String, Option<(String, String)>)> {
    let mut url = url::Url::parse(raw).map_err(|e| {
        Error::usage(format!(
            "--url {raw:?}: {e}; give the server as https://host:9200 (or http:// for a local server)"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::usage(format!(
            "--url {raw:?}: must be an http:// or https:// URL with a host, e.g. https://search-domain.eu-west-1.es.amazonaws.com"
        )));
    }
    let user = (!url.username().is_empty()).then(|| {
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        (
            decode(url.username()).unwrap_or_default(),
            url.password().and_then(decode).unwrap_or_default(),
        )
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    Ok((url.as_str().trim_end_matches('/').to_owned(), user))
}

impl Connection {
    /// The HTTP client: TLS with the system's roots, plus `ca_cert` (PEM) when given.
    pub fn new(base: String, auth: Auth, timeout: Duration, ca_cert: Option<&std::path::Path>) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_cert {
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::usage(format!("--ca-cert {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::usage(format!(
                    "--ca-cert {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::usage(format!("--ca-cert {}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self {
            base,
            auth,
            timeout,
            client,
        })
    }

    /// Sends one request and returns the status and body; a missing answer is a fault.
    pub async fn request(&self, method: &str, path: &str, body: Vec<u8>) -> std::result::Result<(u16, Bytes), Fault> {
        let url = format!("{}{path}", self.base);
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| Fault::permanent("InvalidUrl", format!("{url}: {e}")))?;
        let host = match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(Fault::permanent("InvalidUrl", url)),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &host)
            .header("content-type", "application/x-ndjson")
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| Fault::permanent("InvalidRequest", e.to_string()))?;
        match &self.auth {
            Auth::None => {}
            Auth::Basic(value) => {
                let v = hyper::header::HeaderValue::from_str(value)
                    .map_err(|e| Fault::permanent("InvalidCredentials", e.to_string()))?;
                req.headers_mut().insert(hyper::header::AUTHORIZATION, v);
            }
            Auth::SigV4 {
                service,
                region,
                credentials,
            } => {
                use aws_sigv4::http_request::{
                    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
                };
                let creds = credentials
                    .get()
                    .await
                    .map_err(|e| Fault::permanent("NoCredentials", format!("AWS credentials for SigV4: {e}")))?;
                let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
                let mut settings = SigningSettings::default();
                // Serverless needs the payload hash header; managed domains accept it.
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                let params = aws_sigv4::sign::v4::SigningParams::builder()
                    .identity(&identity)
                    .region(region)
                    .name(service.name())
                    .time(SystemTime::now())
                    .settings(settings)
                    .build()
                    .map_err(|e| Fault::permanent("SigningFailed", e.to_string()))?
                    .into();
                let headers: Vec<(&str, &str)> = req
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
                    .collect();
                let signable = SignableRequest::new(method, &url, headers.into_iter(), SignableBody::Bytes(&body))
                    .map_err(|e| Fault::permanent("SigningFailed", e.to_string()))?;
                let (instructions, _) = sign(signable, &params)
                    .map_err(|e| Fault::permanent("SigningFailed", e.to_string()))?
                    .into_parts();
                instructions.apply_to_request_http1x(&mut req);
            }
        }
        *req.body_mut() = Full::new(Bytes::from(body));
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let connected = !e.is_connect();
                classify_transport(connected, false, format!("{}: {}", self.base, error_chain(&e)))
            })?;
            let status = resp.status().as_u16();
            let body =
                resp.into_body().collect().await.map_err(|e| {
                    classify_transport(true, false, format!("{}: the answer was cut off: {e}", self.base))
                })?;
            Ok((status, body.to_bytes()))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(classify_transport(
                true,
                true,
                format!(
                    "{} did not answer within {} s (--request-timeout)",
                    self.base,
                    self.timeout.as_secs()
                ),
            )),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The error of an OpenSearch answer: its `type` and `reason` (with the cause's reason).
fn error_of(value: &serde_json::Value) -> (String, String) {
    match value {
        serde_json::Value::Object(o) => {
            let kind = o.get("type").and_then(|t| t.as_str()).unwrap_or("error").to_owned();
            let mut reason = o.get("reason").and_then(|r| r.as_str()).unwrap_or("").to_owned();
            if let Some(cause) = o
                .get("caused_by")
                .and_then(|c| c.get("reason"))
                .and_then(|r| r.as_str())
            {
                reason.push_str(&format!(" (caused by: {cause})"));
            }
            (kind, reason)
        }
        serde_json::Value::String(s) => ("error".into(), s.clone()),
        other => ("error".into(), other.to_string()),
    }
}

/// A non-2xx answer to a whole request as a fault, with the server's error when it gave one.
fn request_fault(status: u16, body: &[u8], what: &str) -> Fault {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: serde_json::Value,
    }
    let (kind, reason) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => error_of(&b.error),
        Err(_) => (
            format!("HTTP{status}"),
            String::from_utf8_lossy(&body[..body.len().min(500)]).trim().to_owned(),
        ),
    };
    let mut reason = format!("{what} answered HTTP {status}: {reason}");
    if status == 401 || status == 403 {
        reason.push_str(
            "; check the user and password (in --url or OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD), or --aws-sigv4 for Amazon OpenSearch",
        );
    }
    classify_http(status, kind, reason)
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<std::collections::HashMap<String, BulkItemResult>>,
}

#[derive(Deserialize)]
struct BulkItemResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

pub struct OpenSearchPopulate {
    pub connection: Connection,
    pub index: IndexTemplate,
    /// The column whose value is the document `_id`.
    pub id: String,
    pub op: Op,
    pub max_request_bytes: usize,
    pub max_documents: usize,
}

impl OpenSearchPopulate {
    pub fn target(&self) -> String {
        format!("opensearch:{}/{}", self.connection.base, self.index.text)
    }

    /// Checks the selection (the id column, the template's columns, the column types) and,
    /// unless this is a dry run, that the server answers, before the run directory exists.
    pub async fn check(&self, schema: &SchemaRef, dry_run: bool) -> Result<()> {
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !n.starts_with("__rehydrate_"))
            .collect();
        let mut problems = Vec::new();
        if schema.field_with_name(&self.id).is_err() {
            problems.push(format!(
                "the id column `{}` is not in the selection (pass --id COLUMN)",
                self.id
            ));
        }
        if let Err(p) = self.index.check(schema) {
            problems.push(p);
        }
        for f in schema.fields().iter().filter(|f| !f.name().starts_with("__rehydrate_")) {
            if !indexable(f.data_type()) {
                problems.push(format!(
                    "the column `{}` is {}, which cannot be a document field (cast it in --query)",
                    f.name(),
                    f.data_type()
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::usage(format!(
                "populate opensearch: {}.\n  The selected columns are: {}.",
                problems.join("; "),
                columns.join(", ")
            )));
        }
        if dry_run
            || matches!(
                self.connection.auth,
                Auth::SigV4 {
                    service: SigV4Service::Aoss,
                    ..
                }
            )
        {
            // (Serverless collections have no `GET /`.)
            return Ok(());
        }
        match self.connection.request("GET", "/", Vec::new()).await {
            Ok((status, _)) if (200..300).contains(&status) => Ok(()),
            Ok((status, body)) => Err(Error::Target {
                target: self.connection.base.clone(),
                message: request_fault(status, &body, "the server").message,
            }),
            Err(f) => Err(Error::Target {
                target: format!("--url {}", self.connection.base),
                message: format!(
                    "{}: {}; check the URL and that the server is up (nothing was read or written)",
                    f.code, f.message
                ),
            }),
        }
    }

    fn document(
        &self,
        columns: &[(String, ArrayRef, bool)],
        row: usize,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), Fault> {
        out.push(b'{');
        let mut first = true;
        for (name, array, json) in columns {
            if array.is_null(row) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            json_string(out, name);
            out.push(b':');
            json_value(out, array.as_ref(), row, *json)
                .map_err(|m| Fault::permanent("InvalidValue", format!("column {name} {m}")))?;
        }
        out.push(b'}');
        Ok(())
    }

    fn item(
        &self,
        data: &RecordBatch,
        columns: &[(String, ArrayRef, bool)],
        row: usize,
    ) -> std::result::Result<BulkItem, Fault> {
        let index = self.index.render(data, row)?;
        let id_column = data.column_by_name(&self.id).expect("checked before the run");
        if id_column.is_null(row) {
            return Err(Fault::permanent(
                "NoId",
                format!("the id column `{}` is null in this row", self.id),
            ));
        }
        let id = scalar_text(id_column.as_ref(), row);
        let mut lines = Vec::with_capacity(256);
        lines.extend_from_slice(match self.op {
            Op::Index => b"{\"index\":{\"_index\":",
            Op::Create => b"{\"create\":{\"_index\":",
        });
        json_string(&mut lines, &index);
        lines.extend_from_slice(b",\"_id\":");
        json_string(&mut lines, &id);
        lines.extend_from_slice(b"}}\n");
        self.document(columns, row, &mut lines)?;
        lines.push(b'\n');
        Ok(BulkItem { lines })
    }

    /// Reads every item's result of a `_bulk` answer.
    fn answers(&self, body: &[u8], count: usize) -> std::result::Result<Vec<Answer>, Fault> {
        let resp: BulkResponse = serde_json::from_slice(body).map_err(|e| {
            Fault::permanent(
                "UnreadableAnswer",
                format!(
                    "the _bulk answer is not what OpenSearch sends ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            )
        })?;
        if resp.items.len() != count {
            return Err(Fault::permanent(
                "MissingResult",
                format!("_bulk answered for {} of {count} documents", resp.items.len()),
            ));
        }
        Ok(resp
            .items
            .into_iter()
            .map(|item| {
                let Some(result) = item.into_values().next() else {
                    return Answer::Failed(Fault::permanent("MissingResult", "an empty item in the _bulk answer"));
                };
                if (200..300).contains(&result.status) {
                    return Answer::Succeeded;
                }
                let (kind, reason) = result
                    .error
                    .as_ref()
                    .map(error_of)
                    .unwrap_or_else(|| (format!("HTTP{}", result.status), String::new()));
                if result.status == 409 && self.op == Op::Create {
                    return Answer::Skipped(Fault::permanent(
                        "AlreadyExists",
                        format!("the document exists already (--op create): {reason}"),
                    ));
                }
                Answer::Failed(classify_item(result.status, &kind, &reason))
            })
            .collect())
    }
}

impl RequestTarget for OpenSearchPopulate {
    type Item = BulkItem;

    fn request_name(&self) -> &'static str {
        "_bulk"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_items: self.max_documents,
            max_request_bytes: self.max_request_bytes,
            max_item_bytes: self.max_request_bytes,
            oversize_code: "DocumentTooLarge",
            size_rule: "as _bulk lines (action and document)",
        }
    }

    fn prepare(&self, rows: &RecordBatch, ctx: &ActionContext) -> Result<Vec<Result<Prepared<Self::Item>, Fault>>> {
        let data = ctx.strip_helpers(rows)?;
        let columns: Vec<(String, ArrayRef, bool)> = data
            .schema()
            .fields()
            .iter()
            .zip(data.columns())
            .map(|(f, a): (&Arc<Field>, &ArrayRef)| {
                let json = f.name() == crate::event::DETAIL
                    && matches!(a.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
                (f.name().clone(), a.clone(), json)
            })
            .collect();
        Ok((0..data.num_rows())
            .map(|row| {
                let item = self.item(&data, &columns, row)?;
                Ok(Prepared {
                    size: item.lines.len(),
                    item,
                    dedupe_key: None,
                })
            })
            .collect())
    }

    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> String {
        super::row_json(rows, row)
    }

    async fn send(&self, items: &[&Self::Item]) -> std::result::Result<Vec<Answer>, Fault> {
        let mut body = Vec::with_capacity(items.iter().map(|i| i.lines.len()).sum());
        for item in items {
            body.extend_from_slice(&item.lines);
        }
        let (status, answer) = self.connection.request("POST", "/_bulk", body).await?;
        if !(200..300).contains(&status) {
            return Err(request_fault(status, &answer, "_bulk"));
        }
        self.answers(&answer, items.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_templates_parse_and_refuse_what_they_cannot_render() {
        let t = IndexTemplate::parse("events-{source}-{time:%Y.%m}").unwrap();
        assert_eq!(
            t.columns().collect::<Vec<_>>(),
            [("source", None), ("time", Some("%Y.%m"))]
        );
        assert_eq!(
            IndexTemplate::parse("plain").unwrap().parts,
            [Part::Text("plain".into())]
        );
        for bad in ["events-{source", "events-}", "{}", "", "x-{time:%Q}"] {
            assert!(IndexTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_auth_is_the_standard_header() {
        let Auth::Basic(value) = Auth::basic("ana", "s3cret") else {
            unreachable!()
        };
        assert_eq!(value, "Basic YW5hOnMzY3JldA==");
    }

    #[test]
    fn urls_lose_their_credentials() {
        let (base, user) = split_url("https://ana:p%40ss@search.example:9200/").unwrap();
        assert_eq!(base, "https://search.example:9200");
        assert_eq!(user, Some(("ana".into(), "p@ss".into())));
        assert!(split_url("search.example:9200").is_err());
        assert!(split_url("ftp://x").is_err());
    }

    #[test]
    fn documents_keep_numbers_times_and_json_exactly() {
        use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("n", Arc::new(Int64Array::from(vec![9_007_199_254_740_993])) as ArrayRef),
            (
                "time",
                Arc::new(TimestampMillisecondArray::from(vec![1_767_225_600_123]).with_timezone("UTC")) as ArrayRef,
            ),
            (
                "detail",
                Arc::new(StringArray::from(vec![r#"{"big":12345678901234567.891}"#])) as ArrayRef,
            ),
        ])
        .unwrap();
        let columns: Vec<(String, ArrayRef, bool)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| (f.name().clone(), a.clone(), f.name() == "detail"))
            .collect();
        let mut out = Vec::new();
        for (i, (name, array, json)) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(&mut out, name);
            out.push(b':');
            json_value(&mut out, array.as_ref(), 0, *json).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""id":"a","n":9007199254740993,"time":"2026-01-01T00:00:00.123Z","detail":{"big":12345678901234567.891}"#
        );
    }
}
