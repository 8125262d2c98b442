//! Sources: where events are read from. Each yields `events` batches in source order plus the
//! records it had to reject, and counts what it read.
//!
//! Local files and directories, stdin (`-`), and S3 prefixes (`s3://bucket/prefix/`): NDJSON, JSON
//! arrays, either gzip-compressed, and Parquet whose columns follow `events`; DynamoDB tables
//! (`dynamodb://TABLE`, a parallel scan) and DynamoDB exports on S3 (`dynamodb-export://…`).

pub mod dynamodb;
pub mod file;
pub mod parquet;
mod split;

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::event::FieldMap;
use crate::{Error, Result};

/// A record that could not become an event. It keeps its bytes so that it can be written,
/// verbatim, to the dead-letter file.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub origin: Arc<str>,
    /// Line number for NDJSON, element ordinal for a JSON array.
    pub position: u64,
    /// Line where the record starts (equal to `position` for NDJSON).
    pub line: u64,
    pub reason: String,
    pub raw: Vec<u8>,
    /// Not an event, and rightly so (a deletion in an incremental export): reported `skipped`
    /// with the reason, not `rejected`, and not dead-lettered.
    pub skipped: bool,
}

/// One decoded slice of the input: the events and, separately, what was rejected.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub rejections: Vec<Rejection>,
    /// Checkpoints passed in this slice, in source order.
    pub marks: Vec<Mark>,
    /// Events of this slice decoded but left out by the prefilter (filtered, with no row).
    pub prefiltered: u64,
}

impl Decoded {
    /// The slice with the selection's row filters applied to its batch (when the source has
    /// them), the rows they leave out counted in `prefiltered`.
    pub fn filtered(mut self, prefilter: Option<&crate::event::Prefilter>) -> Result<Decoded> {
        if let Some(p) = prefilter {
            let (batch, left_out) = p.apply(self.batch)?;
            self.batch = batch;
            self.prefiltered += left_out;
        }
        Ok(self)
    }
}

/// A checkpoint in an origin: a place a resumed run can start reading from. `position` is the
/// first position from here; `key` is what the source needs to start there (a DynamoDB
/// segment's exclusive start key), none for the start of the origin. `end` marks the end of the
/// origin (nothing follows `position - 1`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    #[serde(with = "arc_str")]
    pub origin: Arc<str>,
    pub position: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

mod arc_str {
    use std::sync::Arc;
    pub fn serialize<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(Arc::from(s))
    }
}

/// Where a resumed run starts an origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Every event of the origin has a final outcome or was filtered out: not read again.
    Complete,
    /// From this checkpoint on.
    At { position: u64, key: Option<String> },
}

/// What the records of the inputs are.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum RecordFormat {
    /// JSON records (events, or another shape read through `--map`).
    #[default]
    Json,
    /// Lines of a DynamoDB export data file (DYNAMODB_JSON): `{"Item": …}` or, incremental,
    /// `{"Keys": …, "NewImage": …}`.
    DynamoDbExport,
}

/// Counters shared with the progress bar and the run summary.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Records read (events plus rejections).
    pub records: AtomicU64,
    pub rejected: AtomicU64,
    /// Bytes read from disk (compressed bytes for gzip files).
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// Inputs whose record count disagrees with what their manifest says (DynamoDB exports).
    pub count_mismatches: std::sync::Mutex<Vec<String>>,
}

impl SourceStats {
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// An input named by `--from`.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    File(PathBuf),
    /// An object of an object store (S3): `url` is its origin, `s3://bucket/key`.
    Object {
        url: String,
        store: Arc<dyn object_store::ObjectStore>,
        location: object_store::path::Path,
        size: u64,
    },
}

impl Input {
    pub fn origin(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File(p) => p.display().to_string(),
            Input::Object { url, .. } => url.clone(),
        }
    }

    /// Whether the input is Parquet, by its name.
    pub fn is_parquet(&self) -> bool {
        let name = match self {
            Input::Stdin => return false,
            Input::File(p) => p.to_string_lossy().into_owned(),
            Input::Object { url, .. } => url.clone(),
        };
        name.ends_with(".parquet")
    }
}

/// How to read: what `--from`, `--map` and `--batch-size` said.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub inputs: Vec<Input>,
    pub map: Option<Arc<FieldMap>>,
    pub batch_size: usize,
    /// Human description for the run summary (`testdata/events.ndjson`, `2 files under data/`).
    pub description: String,
    /// Total bytes of the inputs when known (not for stdin); drives the progress bar.
    pub total_bytes: Option<u64>,
    pub format: RecordFormat,
    /// A DynamoDB table scan (then `inputs` is empty).
    pub scan: Option<Arc<dynamodb::Scan>>,
    /// Record counts the inputs must have (a DynamoDB export's manifest), by origin.
    pub expected: Arc<HashMap<String, u64>>,
    /// Resuming: where each origin starts (origins not listed start at their beginning).
    pub starts: Arc<HashMap<String, Start>>,
    /// The worker's part of the store, when it is split across workers.
    pub shard: Option<Shard>,
    /// Set once the selection is planned: what the decoder may leave out ([`crate::event::Prefilter`]).
    pub prefilter: Option<Arc<crate::event::Prefilter>>,
}

/// One worker's part of a store split across `count` workers (`--shard INDEX/COUNT`): the
/// DynamoDB segments `s` with `s mod count == index`, and the files, objects and export data
/// files whose name hashes (SHA-256 of the origin, a stable hash) to `index`. The shards of a
/// store are disjoint and together cover it exactly once; a shard may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || {
            Error::usage(format!(
                "--shard {text}: write INDEX/COUNT with 0 <= INDEX < COUNT, e.g. --shard 0/4"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether an input named `origin` belongs to this shard.
    pub fn takes(&self, origin: &str) -> bool {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(origin.as_bytes());
        let h = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        h % u64::from(self.count) == u64::from(self.index)
    }

    /// Keeps this shard's part of `spec`.
    pub fn apply(&self, spec: &mut SourceSpec) -> Result<()> {
        if spec.inputs.iter().any(|i| matches!(i, Input::Stdin)) {
            return Err(Error::usage(
                "--shard splits files, objects and tables; stdin (--from -) cannot be split",
            ));
        }
        if let Some(scan) = spec.scan.take() {
            let mut scan = Arc::try_unwrap(scan).map_err(|_| Error::Internal("the scan is shared".into()))?;
            scan.segments.retain(|s| s % self.count == self.index);
            spec.scan = Some(Arc::new(scan));
        }
        let before = spec.inputs.len();
        spec.inputs.retain(|i| self.takes(&i.origin()));
        if before > 0 || spec.scan.is_some() {
            let kept = match &spec.scan {
                Some(s) => format!("{} of {} segments", s.segments.len(), s.total_segments),
                None => format!("{} of {before} inputs", spec.inputs.len()),
            };
            spec.description = format!("{} — shard {self}: {kept}", spec.description);
        }
        spec.total_bytes = if spec.scan.is_some() {
            None
        } else {
            Some(
                spec.inputs
                    .iter()
                    .map(|i| match i {
                        Input::Object { size, .. } => *size,
                        Input::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
                        Input::Stdin => 0,
                    })
                    .sum(),
            )
        };
        spec.shard = Some(*self);
        Ok(())
    }
}

/// Streams the events of `spec` as decoded batches.
pub fn stream(
    spec: &SourceSpec,
    stats: Arc<SourceStats>,
    parallelism: usize,
) -> futures::stream::BoxStream<'static, Result<Decoded>> {
    match &spec.scan {
        Some(scan) => dynamodb::stream(spec, scan.clone(), stats),
        None => file::stream(spec, stats, parallelism),
    }
}

/// File names a directory walk picks up. Explicitly named files are read whatever their name.
fn is_event_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') {
        return false;
    }
    is_event_name(name)
}

/// Whether a file or object name is one a directory walk or an S3 listing picks up: `*.json`,
/// `*.ndjson`, `*.jsonl` (optionally `.gz`) and `*.parquet`, not hidden (`.…`, `_…`).
fn is_event_name(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('_') {
        return false;
    }
    if name.ends_with(".parquet") {
        return true;
    }
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".json", ".ndjson", ".jsonl"].iter().any(|ext| name.ends_with(ext))
}

/// The objects `s3://bucket/prefix` names: the one object of that key, or every event object
/// under the prefix (all list pages), in key order.
async fn list_s3(
    url: &str,
    aws: &crate::aws::AwsArgs,
    config: &mut Option<aws_config::SdkConfig>,
) -> Result<Vec<Input>> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let (bucket, key) = crate::aws::s3_location("--from", url)?;
    if config.is_none() {
        *config = Some(crate::aws::load(aws).await);
    }
    let store = crate::aws::s3_store(config.as_ref().expect("loaded"), bucket)?;
    let failed = |e: object_store::Error| Error::Target {
        target: url.to_owned(),
        message: format!(
            "{e}; check the bucket, the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the region (--region)"
        ),
    };
    let object = |location: object_store::path::Path, size: u64| Input::Object {
        url: format!("s3://{bucket}/{location}"),
        store: store.clone(),
        location,
        size,
    };
    // A key that is an object is that object, whatever its name.
    if !key.is_empty() && !key.ends_with('/') {
        let location = object_store::path::Path::from(key);
        match store.head(&location).await {
            Ok(meta) => return Ok(vec![object(meta.location, meta.size)]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    let prefix = object_store::path::Path::from(key.trim_end_matches('/'));
    let prefix = (!key.is_empty()).then_some(prefix);
    let mut metas: Vec<object_store::ObjectMeta> = store.list(prefix.as_ref()).try_collect().await.map_err(failed)?;
    metas.retain(|m| m.location.filename().is_some_and(is_event_name));
    metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    if metas.is_empty() {
        return Err(Error::usage(format!(
            "--from {url}: no event objects under this prefix (*.json, *.ndjson, *.jsonl, optionally .gz, or *.parquet)"
        )));
    }
    Ok(metas.into_iter().map(|m| object(m.location, m.size)).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Input {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|source| Error::Input {
            path: dir.to_owned(),
            source,
        })?;
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                walk(&p, out)?;
            }
        } else if is_event_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl SourceSpec {
    /// Resolves `--from` values into inputs, checking that each exists (listing S3 prefixes)
    /// before any work starts.
    pub async fn resolve(
        from: &[String],
        map: Option<FieldMap>,
        batch_size: usize,
        aws: &crate::aws::AwsArgs,
        scan: &dynamodb::ScanOptions,
    ) -> Result<Self> {
        if from.is_empty() {
            return Err(Error::usage(
                "--from is required: give event files, directories, or - for stdin",
            ));
        }
        if batch_size == 0 {
            return Err(Error::usage("--batch-size must be at least 1"));
        }
        let dynamo = from
            .iter()
            .find(|f| f.starts_with("dynamodb://") || f.starts_with("dynamodb-export://"));
        let scan_flags =
            scan.segments.is_some() || scan.consistent_read || scan.read_rate.is_some() || scan.page_items.is_some();
        if let Some(url) = dynamo {
            if from.len() > 1 {
                return Err(Error::usage(format!(
                    "--from {url}: a DynamoDB table or export is read on its own; give it as the only --from"
                )));
            }
            if let Some(n) = scan.segments {
                if n == 0 || n > dynamodb::MAX_SEGMENTS {
                    return Err(Error::usage(format!(
                        "--segments {n}: give 1 to {} (DynamoDB's TotalSegments)",
                        dynamodb::MAX_SEGMENTS
                    )));
                }
            }
            if scan.read_rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(Error::usage(
                    "--read-rate must be a positive number of read capacity units a second",
                ));
            }
            let config = crate::aws::load(aws).await;
            let map = map.map(Arc::new);
            if url.starts_with("dynamodb://") {
                let table = dynamodb::resolve_scan(url, &config, scan, map.as_deref()).await?;
                return Ok(Self {
                    inputs: Vec::new(),
                    map,
                    batch_size,
                    description: format!("DynamoDB table {} ({} segments)", table.table, table.total_segments),
                    total_bytes: None,
                    format: RecordFormat::Json,
                    scan: Some(Arc::new(table)),
                    expected: Arc::default(),
                    starts: Arc::default(),
                    shard: None,
                    prefilter: None,
                });
            }
            if scan_flags {
                return Err(Error::usage(
                    "--segments, --consistent-read, --read-rate and --page-items apply to a table scan (--from dynamodb://TABLE), not to an export",
                ));
            }
            let export = dynamodb::resolve_export(url, &config).await?;
            let total = export.files.iter().map(|f| match f {
                Input::Object { size, .. } => *size,
                _ => 0,
            });
            return Ok(Self {
                description: format!(
                    "DynamoDB {} export {url} ({} data files{})",
                    if export.incremental { "incremental" } else { "full" },
                    export.files.len(),
                    export.items.map(|n| format!(", {n} items")).unwrap_or_default()
                ),
                total_bytes: Some(total.sum()),
                inputs: export.files,
                map,
                batch_size,
                format: RecordFormat::DynamoDbExport,
                scan: None,
                expected: Arc::new(export.expected),
                starts: Arc::default(),
                shard: None,
                prefilter: None,
            });
        }
        if scan_flags {
            return Err(Error::usage(
                "--segments, --consistent-read, --read-rate and --page-items apply to --from dynamodb://TABLE",
            ));
        }
        let mut inputs = Vec::new();
        let mut total: Option<u64> = Some(0);
        let mut config = None;
        for f in from {
            if f == "-" {
                if inputs.iter().any(|i| matches!(i, Input::Stdin)) {
                    return Err(Error::usage("--from - (stdin) can be given only once"));
                }
                inputs.push(Input::Stdin);
                total = None;
                continue;
            }
            if f.starts_with("s3://") {
                for object in list_s3(f, aws, &mut config).await? {
                    if let Input::Object { size, .. } = &object {
                        total = total.map(|t| t + size);
                    }
                    inputs.push(object);
                }
                continue;
            }
            let path = PathBuf::from(f);
            let meta = std::fs::metadata(&path).map_err(|source| Error::Input {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                let mut files = Vec::new();
                walk(&path, &mut files)?;
                if files.is_empty() {
                    return Err(Error::usage(format!(
                        "--from {f}: the directory holds no event files (*.json, *.ndjson, *.jsonl, optionally .gz, or *.parquet)"
                    )));
                }
                for p in files {
                    total = total.and_then(|t| Some(t + std::fs::metadata(&p).ok()?.len()));
                    inputs.push(Input::File(p));
                }
            } else {
                total = total.map(|t| t + meta.len());
                inputs.push(Input::File(path));
            }
        }
        let description = match inputs.as_slice() {
            [one] => one.origin(),
            many if from.iter().all(|f| f.starts_with("s3://")) => {
                format!("{} objects ({})", many.len(), from.join(", "))
            }
            many if from.iter().any(|f| f.starts_with("s3://")) => {
                format!("{} objects and files ({})", many.len(), from.join(", "))
            }
            many => format!("{} files ({})", many.len(), from.join(", ")),
        };
        Ok(Self {
            inputs,
            map: map.map(Arc::new),
            batch_size,
            description,
            total_bytes: total,
            format: RecordFormat::Json,
            scan: None,
            expected: Arc::default(),
            starts: Arc::default(),
            shard: None,
            prefilter: None,
        })
    }
}
