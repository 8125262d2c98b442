//! `populate parquet`: the selected rows as zstd Parquet files under a directory, optionally
//! Hive-partitioned (`col=value/`) for Athena, written through `object_store`.
//!
//! Files are named `part-<run-id>-<n>.parquet`, so runs never overwrite each other. A file is
//! committed when it reaches `max_rows_per_file` rows or at the end; its rows' outcomes are
//! reported as succeeded only then (or failed, naming the file, if the commit fails).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{strip_columns, ActionContext, RowKeys};
use crate::report::Status;
use crate::{Error, Result};

/// The value Hive, Athena and Spark use for a null or empty partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

pub struct ParquetPopulate {
    display: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    partition_by: Vec<String>,
    max_rows_per_file: usize,
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
            row_group_size: 128 * 1024,
        })
    }

    pub fn target(&self) -> String {
        self.display.clone()
    }

    /// Checks the partition columns against the rows that will be written.
    fn check_partitions(&self, data_schema: &SchemaRef) -> Result<()> {
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

    pub async fn run(&self, mut input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        let data_schema = strip_columns(&RecordBatch::new_empty(input.schema()), &ctx.helper_columns)?.schema();
        self.check_partitions(&data_schema)?;
        let file_schema = strip_columns(&RecordBatch::new_empty(data_schema.clone()), &self.partition_by)?.schema();
        let mut files = OpenFiles {
            populate: self,
            ctx,
            schema: file_schema,
            open: HashMap::new(),
            next_seq: 0,
            first_error: None,
        };
        // If the input fails mid-way, what was written so far is still committed and reported,
        // and the run then stops with the input's error.
        let mut input_error = None;
        while let Some(batch) = input.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            };
            if batch.num_rows() == 0 {
                continue;
            }
            ctx.progress.add_matched(batch.num_rows() as u64);
            if ctx.dry_run {
                ctx.skip_all(&batch);
                continue;
            }
            let keys = ctx.keys_of(&batch);
            let data = ctx.strip_helpers(&batch)?;
            if self.partition_by.is_empty() {
                files.write(String::new(), &data, keys).await?;
                continue;
            }
            for (partition, indices) in split_by_partition(&data, &self.partition_by)? {
                let rows = arrow::compute::take_record_batch(&data, &indices)?;
                files.write(partition, &rows, keys.take(&indices)?).await?;
            }
        }
        let committed = files.close_all().await;
        match input_error {
            Some(e) => Err(e.into()),
            None => committed,
        }
    }
}

/// A Parquet file being written, and the keys of the rows in it (reported when it commits).
struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    path: StorePath,
    rows: usize,
    pending: Vec<(Instant, RowKeys)>,
}

struct OpenFiles<'a> {
    populate: &'a ParquetPopulate,
    ctx: &'a ActionContext,
    schema: SchemaRef,
    open: HashMap<String, OpenFile>,
    next_seq: u64,
    first_error: Option<Error>,
}

impl OpenFiles<'_> {
    async fn write(&mut self, partition: String, rows: &RecordBatch, keys: RowKeys) -> Result<()> {
        let rows = strip_columns(rows, &self.populate.partition_by)?;
        if !self.open.contains_key(&partition) {
            let file = self.create(&partition)?;
            self.open.insert(partition.clone(), file);
        }
        let file = self.open.get_mut(&partition).unwrap();
        file.pending.push((Instant::now(), keys));
        file.rows += rows.num_rows();
        if let Err(e) = file.writer.write(&rows).await {
            let file = self.open.remove(&partition).unwrap();
            let error = Error::Target {
                target: format!("/{}", file.path),
                message: e.to_string(),
            };
            self.report(&file.pending, Err(&error));
            return Err(error);
        }
        if file.rows >= self.populate.max_rows_per_file {
            let file = self.open.remove(&partition).unwrap();
            self.commit(file).await?;
        }
        Ok(())
    }

    fn create(&mut self, partition: &str) -> Result<OpenFile> {
        let p = self.populate;
        let name = format!("part-{}-{:05}.parquet", self.ctx.run_id, self.next_seq);
        self.next_seq += 1;
        let mut path = p.prefix.clone();
        for part in partition.split('/').filter(|s| !s.is_empty()) {
            path = path.join(part);
        }
        let path = path.join(name.as_str());
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
        )?;
        Ok(OpenFile {
            writer,
            path,
            rows: 0,
            pending: Vec::new(),
        })
    }

    /// Closes the file; its rows succeed if the close (the commit) does.
    async fn commit(&mut self, file: OpenFile) -> Result<()> {
        let OpenFile {
            writer,
            path,
            rows,
            pending,
        } = file;
        let result = writer.close().await.map(|_| ()).map_err(|e| Error::Target {
            target: format!("/{path}"),
            message: format!("writing {rows} rows failed: {e}"),
        });
        self.report(&pending, result.as_ref().map(|_| ()));
        result
    }

    fn report(&self, pending: &[(Instant, RowKeys)], result: std::result::Result<(), &Error>) {
        let now = Instant::now();
        let status = if result.is_ok() {
            Status::Succeeded
        } else {
            Status::Failed
        };
        for (arrived, keys) in pending {
            self.ctx.send_bulk(keys, status, |o| {
                o.attempts = 1;
                o.latency_ms = Some(now.duration_since(*arrived).as_secs_f64() * 1000.0);
                if let Err(e) = result {
                    o.error_code = Some("ParquetWriteFailed".into());
                    o.error_message = Some(e.to_string());
                }
            });
        }
    }

    async fn close_all(mut self) -> Result<()> {
        let mut partitions: Vec<String> = self.open.keys().cloned().collect();
        partitions.sort();
        for p in partitions {
            let file = self.open.remove(&p).unwrap();
            if let Err(e) = self.commit(file).await {
                self.first_error.get_or_insert(e);
            }
        }
        match self.first_error {
            Some(e) => Err(e),
            None => Ok(()),
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
