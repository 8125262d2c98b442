//! Run reports on S3 (`--report-dir s3://bucket/prefix/`), so that the workers of one job report
//! to one place. A run writes its directory locally as always (a staging folder under the
//! system's temporary directory) and uploads its files under `prefix/<run-id>/` as it goes (every
//! few seconds, whole files: each upload replaces the object atomically) and at its end. `report`,
//! `resume` and `redrive` first bring the prefix's runs down into the staging folder and then read
//! them as local runs. A worker killed between two uploads leaves the outcomes of its last upload;
//! its resume re-actions the rest, so the union of the reports stays exact (an event actioned
//! after the last upload may have been delivered twice, as any in-flight event may).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{Error, Result};

/// How often a running run's files go up.
pub const UPLOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

pub struct Remote {
    pub url: String,
    store: Arc<dyn ObjectStore>,
    prefix: object_store::path::Path,
    /// The sizes and times of the files last uploaded, so that unchanged files are not sent again.
    sent: std::sync::Mutex<HashMap<PathBuf, (u64, std::time::SystemTime)>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// Whether `--report-dir` names an S3 prefix.
pub fn is_remote(dir: &Path) -> bool {
    dir.to_str().is_some_and(|s| s.starts_with("s3://"))
}

impl Remote {
    pub async fn open(dir: &Path, aws: &crate::aws::AwsArgs) -> Result<Remote> {
        let url = dir.to_string_lossy().into_owned();
        let (bucket, key) = crate::aws::s3_location("--report-dir", &url)?;
        let config = crate::aws::load(aws).await;
        let store = crate::aws::s3_store(&config, bucket)?;
        Ok(Remote {
            prefix: object_store::path::Path::from(key.trim_matches('/')),
            url,
            store,
            sent: Default::default(),
        })
    }

    /// The local folder where runs reporting here write their directories before uploading them
    /// (each run in a folder of its own, so workers on one machine never meet).
    pub fn staging(&self) -> PathBuf {
        let name: String = self
            .url
            .trim_start_matches("s3://")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::env::temp_dir().join("rehydrate-reports").join(name)
    }

    fn failed(&self, what: &str, e: object_store::Error) -> Error {
        Error::Report {
            path: PathBuf::from(&self.url),
            message: format!(
                "{what}: {e}; check the bucket and the credentials (s3:PutObject, s3:GetObject, s3:ListBucket)"
            ),
        }
    }

    /// Brings every run under the prefix down into a new folder of its own (runs staging here
    /// are left alone); the caller removes it when done.
    pub async fn download_all(&self) -> Result<PathBuf> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut staging = self.staging().into_os_string();
        staging.push(format!(".read-{}-{nanos}", std::process::id()));
        let staging = PathBuf::from(staging);
        std::fs::create_dir_all(&staging)?;
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| self.failed("listing the reports", e))?;
        for meta in metas {
            let rel = meta
                .location
                .as_ref()
                .strip_prefix(self.prefix.as_ref())
                .unwrap_or(meta.location.as_ref())
                .trim_start_matches('/');
            if rel.is_empty() || rel.contains("..") {
                continue;
            }
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(|e| self.failed("reading a report", e))?
                .bytes()
                .await
                .map_err(|e| self.failed("reading a report", e))?;
            let path = staging.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &bytes)?;
        }
        Ok(staging)
    }

    /// Uploads the files of `run_dir` that changed since the last upload; at the end (`prune`),
    /// also removes the run's objects that no longer exist locally (the outcomes log once it
    /// became Parquet).
    pub async fn upload_run(&self, run_dir: &Path, prune: bool) -> Result<()> {
        let run_id = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = self.prefix.clone().join(run_id.as_str());
        let mut present = Vec::new();
        for entry in std::fs::read_dir(run_dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // outcomes.parquet while it is written: of no use to a reader until it is complete.
            if name.ends_with(".partial") {
                continue;
            }
            present.push(name.clone());
            let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
            let unchanged = self.sent.lock().unwrap_or_else(|e| e.into_inner()).get(&entry.path()) == Some(&stamp);
            if unchanged && !prune {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            self.store
                .put(&base.clone().join(name.as_str()), PutPayload::from(bytes))
                .await
                .map_err(|e| self.failed("uploading the report", e))?;
            self.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(entry.path(), stamp);
        }
        if prune {
            let remote: Vec<object_store::ObjectMeta> = self
                .store
                .list(Some(&base))
                .try_collect()
                .await
                .map_err(|e| self.failed("listing the report", e))?;
            for meta in remote {
                if !meta.location.filename().is_some_and(|f| present.iter().any(|p| p == f)) {
                    let _ = self.store.delete(&meta.location).await;
                }
            }
        }
        Ok(())
    }
}
