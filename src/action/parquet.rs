//! `populate parquet`: the selected rows as zstd Parquet files under a directory or an S3
//! prefix, optionally Hive-partitioned (`col=value/`, with `date` and `hour` derived from `time`)
//! for Athena, written through `object_store`.
//!
//! Files are named `part-<run-id>-<n>.parquet`, so runs never overwrite each other (`--overwrite`
//! replaces, after the run, the files of other runs in the partitions it wrote). A file is
//! committed when it reaches `max_rows_per_file` rows or `target_file_bytes`, or at the end; its
//! rows' outcomes are reported as succeeded only then (or failed, naming the file, if the commit
//! fails). Locally a file is written under a hidden name and renamed at commit; on S3 it is a
//! multipart upload, which appears only when it completes.

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

/// Files sized for Athena: around 128 MB.
pub const DEFAULT_TARGET_FILE_BYTES: usize = 128 * 1024 * 1024;

/// Partition columns derived from `time` when the selection has no column of that name.
const DERIVED: [(&str, &str); 2] = [("date", "%Y-%m-%d"), ("hour", "%H")];

fn derived_format(name: &str) -> Option<&'static str> {
    DERIVED.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

pub struct ParquetPopulate {
    display: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The prefix as a URL (`s3://bucket/prefix/`, `file:///dir/`), for object keys and DDL.
    url: String,
    /// What an object's key is prefixed with to name it (`s3://bucket`; nothing locally, where
    /// the key is the absolute path without its leading `/`).
    object_base: String,
    /// An object store whose uploads appear only when complete (S3): no rename at commit.
    atomic_put: bool,
    /// Commit a file once this many bytes are written (`--target-file-size`).
    pub target_file_bytes: usize,
    /// Replace, after the run, other runs' files in the partitions written (`--overwrite`).
    pub overwrite: bool,
    /// Write Athena's CREATE EXTERNAL TABLE here (`--athena-ddl`).
    pub athena_ddl: Option<std::path::PathBuf>,
    partition_by: Vec<String>,
    max_rows_per_file: usize,
    /// Files open at once at most (`--max-open-files`).
    pub max_open_files: usize,
    row_group_size: usize,
    /// The zstd level of the files' pages (`--zstd-level`).
    pub zstd_level: i32,
}

/// `--zstd-level`'s default, chosen by measurement (scripts/bench.sh): on the benchmark store,
/// level 1 writes files within a few per cent of level 3's size in far less time.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

impl ParquetPopulate {
    /// `to` is an S3 prefix (`s3://bucket/prefix/`, through `aws`' configuration).
    pub async fn new_s3(
        to: &str,
        partition_by: Vec<String>,
        max_rows_per_file: usize,
        aws: &crate::aws::AwsArgs,
    ) -> Result<Self> {
        let (bucket, key) = crate::aws::s3_location("--to", to)?;
        if max_rows_per_file == 0 {
            return Err(Error::usage("--max-rows-per-file must be at least 1"));
        }
        let config = crate::aws::load(aws).await;
        let store = crate::aws::s3_store(&config, bucket)?;
        let key = key.trim_matches('/');
        let url = if key.is_empty() {
            format!("s3://{bucket}/")
        } else {
            format!("s3://{bucket}/{key}/")
        };
        Ok(Self {
            display: format!("parquet:{url}"),
            store,
            prefix: StorePath::from(key),
            url,
            object_base: format!("s3://{bucket}"),
            atomic_put: true,
            partition_by,
            max_rows_per_file,
            max_open_files: 64,
            row_group_size: 128 * 1024,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            overwrite: false,
            athena_ddl: None,
        })
    }

    /// `to` is a local directory or a `file://` URL.
    pub fn new(to: &str, partition_by: Vec<String>, max_rows_per_file: usize) -> Result<Self> {
        if to.starts_with("s3://") {
            return Err(Error::Internal(format!("--to {to}: S3 prefixes go through new_s3")));
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
            url: format!("file://{}/", absolute.display().to_string().trim_end_matches('/')),
            prefix,
            object_base: String::new(),
            atomic_put: false,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            overwrite: false,
            athena_ddl: None,
            partition_by,
            max_rows_per_file,
            max_open_files: 64,
            row_group_size: 128 * 1024,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        })
    }

    pub fn target(&self) -> String {
        self.display.clone()
    }

    /// Checks the partition columns against the rows that will be written.
    pub fn check(&self, data_schema: &SchemaRef) -> Result<()> {
        let names: Vec<&str> = data_schema.fields().iter().map(|f| f.name().as_str()).collect();
        for p in &self.partition_by {
            let derived = derived_format(p).is_some()
                && matches!(
                    data_schema.field_with_name(crate::event::TIME).map(|f| f.data_type()),
                    Ok(DataType::Timestamp(..))
                );
            if !names.contains(&p.as_str()) && !derived {
                return Err(Error::usage(format!(
                    "--partition-by {p}: no such column in the selected rows; the columns are: {} (and date, hour: from time).\n  To partition by another derived value, project it with --query, e.g. --query \"SELECT *, date_trunc('month', time) AS month FROM events\" --partition-by month",
                    names.join(", ")
                )));
            }
        }
        let stored = self.partition_by.iter().filter(|p| names.contains(&p.as_str())).count();
        if stored > 0 && stored == names.len() {
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
        if let Some(path) = &self.athena_ddl {
            let ddl = athena_ddl(&file_schema, &self.partition_by, &self.url);
            if path.as_os_str() == "-" {
                print!("{ddl}");
            } else {
                std::fs::write(path, ddl).map_err(|source| Error::Input {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        let mut sink = ParquetSink {
            populate: self,
            run_id: &ctx.run_id,
            schema: file_schema,
            open: HashMap::new(),
            next_seq: 0,
            written: std::collections::BTreeSet::new(),
        };
        driver::run_commits(&mut sink, input, ctx).await?;
        if self.overwrite && !ctx.dry_run && !ctx.stopping() {
            self.replace_older(&sink.written, &ctx.run_id).await?;
        }
        Ok(())
    }

    /// `--overwrite`: once the run's files are committed, removes the files of other runs in
    /// the partitions it wrote (and only those).
    async fn replace_older(&self, partitions: &std::collections::BTreeSet<String>, run_id: &str) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let mine = format!("part-{run_id}-");
        for partition in partitions {
            let mut dir = self.prefix.clone();
            for part in partition.split('/').filter(|s| !s.is_empty()) {
                dir = dir.join(part);
            }
            // Only the partition's own files, not those of deeper partitions.
            let listed: Vec<object_store::ObjectMeta> = self
                .store
                .list_with_delimiter(Some(&dir))
                .await
                .map(|l| l.objects)
                .or_else(|e| match e {
                    object_store::Error::NotFound { .. } => Ok(Vec::new()),
                    e => Err(e),
                })
                .map_err(|e| Error::Target {
                    target: format!("{}{partition}", self.url),
                    message: e.to_string(),
                })?;
            let older: Vec<StorePath> = listed
                .into_iter()
                .map(|m| m.location)
                .filter(|l| {
                    l.filename()
                        .is_some_and(|n| n.ends_with(".parquet") && !n.starts_with(&mine) && !n.starts_with('.'))
                })
                .collect();
            let deleted: Vec<StorePath> = self
                .store
                .delete_stream(futures::stream::iter(older.into_iter().map(Ok)).boxed())
                .try_collect()
                .await
                .map_err(|e| Error::Target {
                    target: format!("{}{partition}", self.url),
                    message: format!("--overwrite: removing an older file failed: {e}"),
                })?;
            tracing::info!("--overwrite: removed {} older files in {partition}", deleted.len());
        }
        Ok(())
    }
}

/// The files of one run: a unit is a partition's open file.
struct ParquetSink<'a> {
    populate: &'a ParquetPopulate,
    run_id: &'a str,
    schema: SchemaRef,
    open: HashMap<String, OpenFile>,
    next_seq: u64,
    /// The partitions that got a committed file.
    written: std::collections::BTreeSet<String>,
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
        // killed run never leaves a half file that readers would see. An S3 upload appears only
        // when complete: it is written under its final name.
        let path = if p.atomic_put {
            final_path.clone()
        } else {
            path.join(format!(".{name}.inprogress").as_str())
        };
        let mut props = WriterProperties::builder();
        // Ids and JSON documents almost never repeat: trying a dictionary first only costs time.
        for column in [crate::event::ID, crate::event::DETAIL] {
            props = props.set_column_dictionary_enabled(column.into(), false);
        }
        let props = props
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(p.zstd_level).map_err(|e| write_fault(&path, e))?,
            ))
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
        file.writer.write(&rows).await.map_err(|e| write_fault(&file.path, e))?;
        // Row groups sized to the file: about a quarter of it, so Athena can split the file.
        if file.writer.in_progress_size() >= (self.populate.target_file_bytes / 4).max(1 << 20) {
            file.writer.flush().await.map_err(|e| write_fault(&file.path, e))?;
        }
        Ok(())
    }

    fn unit_full(&self, unit: &str) -> bool {
        self.open
            .get(unit)
            .is_some_and(|f| f.writer.bytes_written() + f.writer.in_progress_size() >= self.populate.target_file_bytes)
    }

    fn unit_object(&self, unit: &str) -> Option<String> {
        let file = self.open.get(unit)?;
        Some(format!("{}/{}", self.populate.object_base, file.final_path))
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
            Ok(_) if path == final_path => Ok(()),
            Ok(_) => store
                .rename(&path, &final_path)
                .await
                .map_err(|e| write_fault(&final_path, format!("committing {rows} rows failed: {e}"))),
            Err(e) => Err(write_fault(&path, format!("writing {rows} rows failed: {e}"))),
        };
        if committed.is_err() {
            let _ = store.delete(&path).await;
        } else {
            self.written.insert(unit.to_owned());
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
        .map(|c| match (batch.column_by_name(c), derived_format(c)) {
            (Some(col), _) => Ok(cast(col, &DataType::Utf8)?),
            (None, Some(format)) => {
                let time = batch
                    .column_by_name(crate::event::TIME)
                    .expect("checked: time is selected");
                let ms = cast(
                    time,
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                )?;
                let ms = arrow::array::AsArray::as_primitive::<arrow::datatypes::TimestampMillisecondType>(ms.as_ref());
                let text: arrow::array::StringArray = ms
                    .iter()
                    .map(|v| {
                        v.and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|t| t.format(format).to_string())
                    })
                    .collect();
                Ok(Arc::new(text) as arrow::array::ArrayRef)
            }
            (None, None) => Err(Error::Internal(format!("partition column {c} is missing"))),
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

/// Athena's `CREATE EXTERNAL TABLE` for files of `schema` under `location`, partitioned by
/// `partitions` (strings), with partition projection so that the table can be queried at once.
pub fn athena_ddl(schema: &SchemaRef, partitions: &[String], location: &str) -> String {
    fn hive_type(t: &DataType) -> String {
        match t {
            DataType::Boolean => "boolean".into(),
            DataType::Int8 => "tinyint".into(),
            DataType::Int16 | DataType::UInt8 => "smallint".into(),
            DataType::Int32 | DataType::UInt16 => "int".into(),
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
            DataType::Float16 | DataType::Float32 => "float".into(),
            DataType::Float64 => "double".into(),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
            DataType::Date32 | DataType::Date64 => "date".into(),
            DataType::Timestamp(..) => "timestamp".into(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
            DataType::List(f) | DataType::LargeList(f) => format!("array<{}>", hive_type(f.data_type())),
            DataType::Struct(fields) => format!(
                "struct<{}>",
                fields
                    .iter()
                    .map(|f| format!("{}:{}", f.name(), hive_type(f.data_type())))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => "string".into(),
        }
    }
    let quote = |name: &str| format!("`{}`", name.replace('`', "``"));
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("  {} {}", quote(f.name()), hive_type(f.data_type())))
        .collect();
    let table = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("events")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>();
    let mut ddl = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {} (\n{}\n)\n",
        quote(&table),
        columns.join(",\n")
    );
    if !partitions.is_empty() {
        let parts: Vec<String> = partitions.iter().map(|p| format!("{} string", quote(p))).collect();
        ddl.push_str(&format!("PARTITIONED BY ({})\n", parts.join(", ")));
    }
    ddl.push_str(&format!(
        "STORED AS PARQUET\nLOCATION '{}'\n",
        location.replace('\'', "''")
    ));
    let mut props = vec![("parquet.compression".to_owned(), "ZSTD".to_owned())];
    if !partitions.is_empty() {
        props.push(("projection.enabled".into(), "true".into()));
        for p in partitions {
            match p.as_str() {
                "date" => {
                    props.push(("projection.date.type".into(), "date".into()));
                    props.push(("projection.date.format".into(), "yyyy-MM-dd".into()));
                    props.push(("projection.date.range".into(), "2000-01-01,NOW".into()));
                }
                "hour" => {
                    props.push(("projection.hour.type".into(), "integer".into()));
                    props.push(("projection.hour.range".into(), "0,23".into()));
                    props.push(("projection.hour.digits".into(), "2".into()));
                }
                // Values not known in advance: queries name them (WHERE source = '…').
                other => props.push((format!("projection.{other}.type"), "injected".into())),
            }
        }
        let template: Vec<String> = partitions.iter().map(|p| format!("{p}=${{{p}}}")).collect();
        props.push((
            "storage.location.template".into(),
            format!("{}{}/", location, template.join("/")),
        ));
    }
    let props: Vec<String> = props
        .iter()
        .map(|(k, v)| format!("  '{}'='{}'", k, v.replace('\'', "''")))
        .collect();
    ddl.push_str(&format!("TBLPROPERTIES (\n{}\n)\n", props.join(",\n")));
    ddl
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
    fn athena_ddl_parses_as_hive() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "time",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "resources",
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                false,
            ),
        ]));
        let ddl = athena_ddl(&schema, &["source".into(), "date".into()], "s3://b/events/");
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::HiveDialect {},
            &ddl,
        );
        assert!(parsed.is_ok(), "{ddl}\n{parsed:?}");
        assert!(ddl.contains("`resources` array<string>"), "{ddl}");
        assert!(
            ddl.contains("'storage.location.template'='s3://b/events/source=${source}/date=${date}/'"),
            "{ddl}"
        );
    }

    #[test]
    fn rejects_unsupported_targets() {
        assert!(ParquetPopulate::new("s3://bucket/x", vec![], 10).is_err());
        assert!(ParquetPopulate::new("ftp://host/x", vec![], 10).is_err());
        assert!(ParquetPopulate::new("out", vec![], 0).is_err());
    }
}
