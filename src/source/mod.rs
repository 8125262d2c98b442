//! Sources: where events are read from. Each yields `events` batches in source order plus the
//! records it had to reject, and counts what it read.
//!
//! Today: local files and directories, and stdin (`-`). S3 and DynamoDB sources plug in here.

pub mod file;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn origin(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_owned(),
            Input::File(p) => p.display().to_string(),
        }
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
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".json", ".ndjson", ".jsonl"].iter().any(|ext| name.ends_with(ext))
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
    /// Resolves `--from` values into inputs, checking that each exists before any work starts.
    pub fn resolve(from: &[String], map: Option<FieldMap>, batch_size: usize) -> Result<Self> {
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
        for f in from {
            if f == "-" {
                if inputs.contains(&Input::Stdin) {
                    return Err(Error::usage("--from - (stdin) can be given only once"));
                }
                inputs.push(Input::Stdin);
                total = None;
                continue;
            }
            if f.starts_with("s3://") {
                return Err(Error::usage(format!(
                    "--from {f}: S3 sources are not supported yet; download the objects (aws s3 cp --recursive) and pass the folder"
                )));
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
                        "--from {f}: the directory holds no event files (*.json, *.ndjson, *.jsonl, optionally .gz)"
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
