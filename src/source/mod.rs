//! Sources: where events are read from. Each yields `events` batches in source order plus the
//! records it had to reject, and counts what it read.
//!
//! Local files and directories, stdin (`-`), and S3 prefixes (`s3://bucket/prefix/`): NDJSON, JSON
//! arrays, either gzip-compressed, and Parquet whose columns follow `events`. DynamoDB sources
//! plug in here.

pub mod file;
pub mod parquet;

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
}

/// One decoded slice of the input: the events and, separately, what was rejected.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub rejections: Vec<Rejection>,
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
    ) -> Result<Self> {
        if from.is_empty() {
            return Err(Error::usage(
                "--from is required: give event files, directories, or - for stdin",
            ));
        }
        if batch_size == 0 {
            return Err(Error::usage("--batch-size must be at least 1"));
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
        })
    }
}
