//! `populate parquet`: the selected rows as zstd Parquet files under a directory, optionally
//! Hive-partitioned (`col=value/`) for Athena, written through `object_store`.
//!
//! Files are named `part-<run-id>-<n>.parquet`, so runs never overwrite each other. A file is
//! committed when it reaches `max_rows_per_file` rows or at the end; its rows' outcomes are
//! reported as succeeded only then (or failed, naming the file, if the commit fails).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::driver::{self, Fault};
use super::{strip_columns, ActionContext};
use crate::{Error, Result};

/// The value Hive, Athena and Spark use for a null or empty partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

pub struct ParquetPopulate {
    display: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    partition_by: Vec<String>,
    max_rows_per_file: usize,
    /// Files open at once at most (`--max-open-files`).
    pub max_open_files: usize,
    row_group_size: usize,
}

impl ParquetPopulate {
    /// `to` is a local directory or a `file://` URL.
    pub fn new(to: &str, partition_by: Vec<String>, max_rows_per_file: usize) -> Result<Self> {
        if to.starts_with("s3://") {
            return Err(Error::usage(format!(
                "--to {to}: writing to S3 is not supported yet; write to a local directory and upload it (aws s3 sync DIR {to})"
            )));
        }
        let local = match url::Url::parse(to) {
            Ok(u) if u.scheme() == "file" => u
                .to_file_path()
                .map_err(|_| Error::usage(format!("--to {to}: not a valid file:// URL")))?,
            Ok(u) if u.scheme().len() > 1 => {
                return Err(Error::usage(format!(
                    "--to {to}: unsupported scheme {}://; give a local directory",
                    u.scheme()
                )))
            }
            _ => std::path::PathBuf::from(to),
        };
        if local.is_file() {
            return Err(Error::usage(format!(
                "--to {to}: is a file; give a directory to write Parquet files into"
            )));
        }
        let absolute = std::path::absolute(&local)?;
        let prefix = StorePath::from_absolute_path(&absolute).map_err(|e| Error::usage(format!("--to {to}: {e}")))?;
        if max_rows_per_file == 0 {
            return Err(Error::usage("--max-rows-per-file must be at least 1"));
        }
        Ok(Self {
            display: format!("parquet:{}", absolute.display()),
            store: Arc::new(LocalFileSystem::new()),
            prefix,
            partition_by,
            max_rows_per_file,
            max_open_files: 64,
            row_group_size: 128 * 1024,
        })
    }

    pub fn target(&self) -> String {
        self.display.clone()
    }

    /// Checks the partition columns against the rows that will be written.
    pub fn check(&self, data_schema: &SchemaRef) -> Result<()> {
        let names: Vec<&str> = data_schema.fields().iter().map(|f| f.name().as_str()).collect();
        for p in &self.partition_by {
            if !names.contains(&p.as_str()) {
                return Err(Error::usage(format!(
                    "--partition-by {p}: no such column in the selected rows; the columns are: {}.\n  To partition by a derived value, project it with --query, e.g. --query \"SELECT *, date_trunc('day', time) AS day FROM events\" --partition-by day",
                    names.join(", ")
                )));
            }
        }
        if !self.partition_by.is_empty() && self.partition_by.len() == names.len() {
            return Err(Error::usage(
                "--partition-by names every column; leave at least one column to store in the files",
            ));
        }
        Ok(())
    }

    pub async fn run(&self, input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        let data_schema = strip_columns(&RecordBatch::new_empty(input.schema()), &ctx.helper_columns)?.schema();
        self.check(&data_schema)?;
        let file_schema = strip_columns(&RecordBatch::new_empty(data_schema), &self.partition_by)?.schema();
        let mut sink = ParquetSink {
            populate: self,
            run_id: &ctx.run_id,
            schema: file_schema,
            open: HashMap::new(),
            next_seq: 0,
        };
        driver::run_commits(&mut sink, input, ctx).await
    }
}

/// The files of one run: a unit is a partition's open file.
struct ParquetSink<'a> {
    populate: &'a ParquetPopulate,
    run_id: &'a str,
    schema: SchemaRef,
    open: HashMap<String, OpenFile>,
    next_seq: u64,
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    /// Where it is written, and where it appears when committed.
    path: StorePath,
    final_path: StorePath,
    rows: usize,
}

impl ParquetSink<'_> {
    fn create(&mut self, partition: &str) -> Result<OpenFile, Fault> {
        let p = self.populate;
        let name = format!("part-{}-{:05}.parquet", self.run_id, self.next_seq);
        self.next_seq += 1;
        let mut path = p.prefix.clone();
        for part in partition.split('/').filter(|s| !s.is_empty()) {
            path = path.join(part);
        }
        let final_path = path.clone().join(name.as_str());
        // Written under a hidden name (readers and globs skip it) and renamed at commit, so a
        // killed run never leaves a half file that readers would see.
        let path = path.join(format!(".{name}.inprogress").as_str());
        let mut props = WriterProperties::builder();
        // Ids and JSON documents almost never repeat: trying a dictionary first only costs time.
        for column in [crate::event::ID, crate::event::DETAIL] {
            props = props.set_column_dictionary_enabled(column.into(), false);
        }
        let props = props
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_max_row_group_row_count(Some(p.row_group_size))
            .set_created_by(format!("rehydrate {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = AsyncArrowWriter::try_new(
            BufWriter::new(p.store.clone(), path.clone()),
            self.schema.clone(),
            Some(props),
        )
        .map_err(|e| write_fault(&path, e))?;
        Ok(OpenFile {
            writer,
            path,
            final_path,
            rows: 0,
        })
    }
}

fn write_fault(path: &StorePath, e: impl std::fmt::Display) -> Fault {
    Fault::permanent("ParquetWriteFailed", format!("/{path}: {e}"))
}

impl driver::CommitTarget for ParquetSink<'_> {
    fn rows_per_unit(&self) -> usize {
        self.populate.max_rows_per_file
    }

    fn max_open_units(&self) -> usize {
        self.populate.max_open_files
    }

    fn route(&self, rows: &RecordBatch) -> Result<Vec<(String, Option<UInt32Array>)>> {
        if self.populate.partition_by.is_empty() {
            return Ok(vec![(String::new(), None)]);
        }
        Ok(split_by_partition(rows, &self.populate.partition_by)?
            .into_iter()
            .map(|(k, i)| (k, Some(i)))
            .collect())
    }

    async fn write(&mut self, unit: &str, rows: &RecordBatch) -> Result<(), Fault> {
        let rows = strip_columns(rows, &self.populate.partition_by)
            .map_err(|e| Fault::permanent("ParquetWriteFailed", e.to_string()))?;
        if !self.open.contains_key(unit) {
            let file = self.create(unit)?;
            self.open.insert(unit.to_owned(), file);
        }
        let file = self.open.get_mut(unit).expect("opened above");
        file.rows += rows.num_rows();
        file.writer.write(&rows).await.map_err(|e| write_fault(&file.path, e))
    }

    async fn commit(&mut self, unit: &str) -> Result<(), Fault> {
        let Some(file) = self.open.remove(unit) else {
            return Ok(());
        };
        let OpenFile {
            writer,
            path,
            final_path,
            rows,
        } = file;
        let store = &self.populate.store;
        let committed = match writer.close().await {
            Ok(_) => store
                .rename(&path, &final_path)
                .await
                .map_err(|e| write_fault(&final_path, format!("committing {rows} rows failed: {e}"))),
            Err(e) => Err(write_fault(&path, format!("writing {rows} rows failed: {e}"))),
        };
        if committed.is_err() {
            let _ = store.delete(&path).await;
        }
        committed
    }

    fn discard(&mut self, unit: &str) {
        // A failed file is not left behind under its hidden name either.
        if let Some(file) = self.open.remove(unit) {
            let path = file.path.clone();
            drop(file);
            let store = self.populate.store.clone();
            tokio::spawn(async move {
                let _ = store.delete(&path).await;
            });
        }
    }
}

/// Groups the rows of `batch` by the Hive path of their partition values, in order of first
/// appearance.
fn split_by_partition(batch: &RecordBatch, columns: &[String]) -> Result<Vec<(String, UInt32Array)>> {
    let texts = columns
        .iter()
        .map(|c| {
            let col = batch.column_by_name(c).expect("partition columns were checked");
            Ok(cast(col, &DataType::Utf8)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: Vec<&arrow::array::StringArray> = texts
        .iter()
        .map(|a| arrow::array::AsArray::as_string::<i32>(a.as_ref()))
        .collect();
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
    let mut key = String::new();
    for row in 0..batch.num_rows() {
        key.clear();
        for (name, values) in columns.iter().zip(&texts) {
            let value = if arrow::array::Array::is_valid(values, row) {
                values.value(row)
            } else {
                ""
            };
            key.push_str(&hive_escape(name));
            key.push('=');
            if value.is_empty() {
                key.push_str(NULL_PARTITION);
            } else {
                key.push_str(&hive_escape(value));
            }
            key.push('/');
        }
        match groups.get_mut(&key) {
            Some(rows) => rows.push(row as u32),
            None => {
                order.push(key.clone());
                groups.insert(key.clone(), vec![row as u32]);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let rows = groups.remove(&k).unwrap();
            (k, UInt32Array::from(rows))
        })
        .collect())
}

/// Escapes a partition value the way Hive does, so that Athena and Spark read it back.
fn hive_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\{[]^".contains(c) || c == '\u{7f}' {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn splits_rows_by_partition_values_in_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, true),
            Field::new("n", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("b/x"), Some("a"), None, Some("b/x")])),
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let groups = split_by_partition(&batch, &["source".into()]).unwrap();
        let keys: Vec<&str> = groups.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["source=b%2Fx/", "source=a/", "source=__HIVE_DEFAULT_PARTITION__/"]
        );
        assert_eq!(groups[0].1.values().to_vec(), vec![0, 3]);
    }

    #[test]
    fn rejects_unsupported_targets() {
        assert!(ParquetPopulate::new("s3://bucket/x", vec![], 10).is_err());
        assert!(ParquetPopulate::new("ftp://host/x", vec![], 10).is_err());
        assert!(ParquetPopulate::new("out", vec![], 0).is_err());
    }
}
