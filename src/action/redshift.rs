//! `populate redshift`: rows staged as Parquet on S3, loaded with `COPY … FORMAT AS PARQUET`
//! through the Redshift Data API.
//!
//! What is particular to Redshift: a load (a unit of the commit driver) is one staged Parquet
//! object and a COPY manifest naming exactly it; the commit is `ExecuteStatement` of the COPY,
//! then `DescribeStatement` polled with backoff until FINISHED, FAILED or ABORTED. A failed COPY
//! fails exactly that load's events with Redshift's error and the hint to query
//! `sys_load_error_detail`; its staged files are kept for inspection. COPY maps Parquet columns
//! to table columns by position, so an existing table's column order is checked before anything
//! is staged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use aws_sdk_redshiftdata::types::StatusString;
use aws_sdk_redshiftdata::Client;
use datafusion::execution::SendableRecordBatchStream;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::driver::{self, Fault};
use super::fault::classify_sdk;
use super::{strip_columns, ActionContext};
use crate::{Error, Result};

/// The Data API takes statements of up to 100 KB.
const MAX_STATEMENT_BYTES: usize = 100 * 1024;

/// Where statements run.
#[derive(Debug, Clone)]
pub enum Warehouse {
    /// Redshift Serverless.
    Workgroup(String),
    /// A provisioned cluster.
    Cluster(String),
}

/// How the Data API authenticates to the database.
#[derive(Debug, Clone)]
pub enum DbAuth {
    SecretArn(String),
    DbUser(String),
    /// Serverless with the caller's IAM identity.
    Iam,
}

pub struct RedshiftPopulate {
    pub client: Client,
    pub warehouse: Warehouse,
    pub database: String,
    pub auth: DbAuth,
    /// Schema and table.
    pub schema: String,
    pub table: String,
    /// `IAM_ROLE` of the COPY (`default` without one).
    pub iam_role: Option<String>,
    pub create_table: bool,
    pub cleanup_staging: bool,
    /// The staging prefix: its store and location, and its URL.
    pub staging: Arc<dyn ObjectStore>,
    pub staging_bucket: String,
    pub staging_prefix: StorePath,
    /// Rows per load (one COPY).
    pub rows_per_load: usize,
    /// How long one statement may run before the load counts as timed out.
    pub statement_timeout: Duration,
}

/// A Data API request addressed to the warehouse, with the database authentication (the
/// request builders of the API share these setters but no trait).
macro_rules! with_target {
    ($populate:expr, $req:expr) => {{
        let req = match &$populate.warehouse {
            Warehouse::Workgroup(w) => $req.workgroup_name(w),
            Warehouse::Cluster(c) => $req.cluster_identifier(c),
        };
        match &$populate.auth {
            DbAuth::SecretArn(a) => req.secret_arn(a),
            DbAuth::DbUser(u) => req.db_user(u),
            DbAuth::Iam => req,
        }
    }};
}

/// A quoted identifier (`"orders"`).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The column type `--create-table` gives a column: SUPER for JSON text and nested values,
/// TIMESTAMPTZ for times, exact numerics.
fn redshift_type(name: &str, t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if name == crate::event::DETAIL => "SUPER".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR(65535)".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "SMALLINT".into(),
        DataType::Int32 | DataType::UInt16 => "INTEGER".into(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".into(),
        DataType::UInt64 => "DECIMAL(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE PRECISION".into(),
        DataType::Decimal128(p, s) if *p <= 38 => format!("DECIMAL({p},{s})"),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) => "SUPER".into(),
        _ => return None,
    })
}

fn nested(t: &DataType) -> bool {
    matches!(t, DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_))
}

impl RedshiftPopulate {
    pub fn target(&self) -> String {
        let at = match &self.warehouse {
            Warehouse::Workgroup(w) => format!("workgroup/{w}"),
            Warehouse::Cluster(c) => format!("cluster/{c}"),
        };
        format!("redshift:{at}/{}/{}.{}", self.database, self.schema, self.table)
    }

    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }

    fn staging_url(&self, key: &StorePath) -> String {
        format!("s3://{}/{}", self.staging_bucket, key)
    }

    /// Runs one statement and waits until it ends: Ok when FINISHED; a fault naming Redshift's
    /// error otherwise.
    async fn run_statement(&self, sql: &str) -> std::result::Result<(), Fault> {
        if sql.len() > MAX_STATEMENT_BYTES {
            return Err(Fault::permanent(
                "StatementTooLarge",
                format!("the statement is {} bytes; the Data API takes 100 KB", sql.len()),
            ));
        }
        let req = self.client.execute_statement().sql(sql).database(&self.database);
        let started = with_target!(self, req).send().await.map_err(|e| classify_sdk(&e))?;
        let id = started
            .id()
            .ok_or_else(|| Fault::permanent("NoStatementId", "ExecuteStatement answered without an Id"))?
            .to_owned();
        let deadline = Instant::now() + self.statement_timeout;
        let mut wait = Duration::from_millis(100);
        loop {
            let d = match self.client.describe_statement().id(&id).send().await {
                Ok(d) => d,
                Err(e) => {
                    let f = classify_sdk(&e);
                    if !f.retryable || Instant::now() > deadline {
                        return Err(f);
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            match d.status() {
                Some(StatusString::Finished) => return Ok(()),
                Some(StatusString::Failed) | Some(StatusString::Aborted) => {
                    let status = d.status().map_or("FAILED", |s| s.as_str());
                    let mut message = d.error().unwrap_or("no error text").to_owned();
                    let query = d.redshift_query_id();
                    if query != 0 {
                        message.push_str(&format!(
                            " (statement {id}, query {query}: SELECT * FROM sys_load_error_detail WHERE query_id = {query})"
                        ));
                    } else {
                        message.push_str(&format!(
                            " (statement {id}; the rows Redshift refused are in sys_load_error_detail)"
                        ));
                    }
                    return Err(Fault::permanent(format!("Statement{}", title(status)), message));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(Fault {
                    maybe_applied: true,
                    ..Fault::permanent(
                        "StatementTimedOut",
                        format!(
                            "statement {id} still running after {} s",
                            self.statement_timeout.as_secs()
                        ),
                    )
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Creates the table (`--create-table`) or checks an existing table's columns against the
    /// selection, in order (COPY maps by position), before anything is staged.
    pub async fn check(&self, schema: &SchemaRef, dry_run: bool) -> Result<()> {
        let mut columns = Vec::new();
        for f in schema.fields() {
            match redshift_type(f.name(), f.data_type()) {
                Some(t) => columns.push(format!("{} {t}", ident(f.name()))),
                None => {
                    return Err(Error::usage(format!(
                        "--table {}.{}: the column {} is {}, which COPY cannot load; cast it in --query",
                        self.schema,
                        self.table,
                        f.name(),
                        f.data_type()
                    )))
                }
            }
        }
        if dry_run {
            return Ok(());
        }
        let target = || format!("{}.{}", self.schema, self.table);
        if self.create_table {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                self.qualified(),
                columns.join(", ")
            );
            return self.run_statement(&sql).await.map_err(|f| Error::Target {
                target: target(),
                message: format!("creating the table failed: {}: {}", f.code, f.message),
            });
        }
        let req = self
            .client
            .describe_table()
            .database(&self.database)
            .schema(&self.schema)
            .table(&self.table);
        let described = with_target!(self, req).send().await.map_err(|e| {
            let f = classify_sdk(&e);
            Error::Target {
                target: target(),
                message: format!(
                    "DescribeTable: {}: {}; pass --create-table to create it",
                    f.code, f.message
                ),
            }
        })?;
        let have: Vec<String> = described
            .column_list()
            .iter()
            .filter_map(|c| c.name().map(str::to_lowercase))
            .collect();
        let want: Vec<String> = schema.fields().iter().map(|f| f.name().to_lowercase()).collect();
        if have.is_empty() {
            return Err(Error::usage(format!(
                "--table {}: no such table (or no columns); pass --create-table to create it",
                target()
            )));
        }
        if have != want {
            return Err(Error::usage(format!(
                "--table {}: COPY maps columns by position, and the table's columns ({}) are not the selection's ({}); select them in the table's order with --query",
                target(),
                have.join(", "),
                want.join(", ")
            )));
        }
        Ok(())
    }

    pub async fn run(&self, input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        let schema = strip_columns(&RecordBatch::new_empty(input.schema()), &ctx.helper_columns)?.schema();
        let mut sink = Loads {
            populate: self,
            run_id: &ctx.run_id,
            schema,
            open: None,
            next: 0,
        };
        driver::run_commits(&mut sink, input, ctx).await
    }
}

fn title(status: &str) -> String {
    let lower = status.to_lowercase();
    let mut c = lower.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().collect::<String>() + c.as_str())
}

/// The loads of one run: a unit is one staged Parquet object, loaded by one COPY.
struct Loads<'a> {
    populate: &'a RedshiftPopulate,
    run_id: &'a str,
    schema: SchemaRef,
    open: Option<Load>,
    next: u64,
}

struct Load {
    writer: AsyncArrowWriter<BufWriter>,
    dir: StorePath,
    object: StorePath,
    rows: usize,
}

fn stage_fault(what: &str, e: impl std::fmt::Display) -> Fault {
    Fault::permanent("StagingFailed", format!("{what}: {e}"))
}

impl Loads<'_> {
    fn open(&mut self) -> std::result::Result<&mut Load, Fault> {
        if self.open.is_none() {
            let p = self.populate;
            let dir = p
                .staging_prefix
                .clone()
                .join(self.run_id)
                .join(format!("load-{:05}", self.next).as_str());
            self.next += 1;
            let object = dir.clone().join("part-00000.parquet");
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                .set_created_by(format!("rehydrate {}", env!("CARGO_PKG_VERSION")))
                .build();
            let writer = AsyncArrowWriter::try_new(
                BufWriter::new(p.staging.clone(), object.clone()),
                self.schema.clone(),
                Some(props),
            )
            .map_err(|e| stage_fault(&p.staging_url(&object), e))?;
            self.open = Some(Load {
                writer,
                dir,
                object,
                rows: 0,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }
}

impl driver::CommitTarget for Loads<'_> {
    fn rows_per_unit(&self) -> usize {
        self.populate.rows_per_load
    }

    async fn write(&mut self, _unit: &str, rows: &RecordBatch) -> std::result::Result<(), Fault> {
        let staging = self.populate.staging_url(&self.populate.staging_prefix);
        let load = self.open()?;
        load.rows += rows.num_rows();
        load.writer.write(rows).await.map_err(|e| stage_fault(&staging, e))
    }

    fn unit_object(&self, _unit: &str) -> Option<String> {
        self.open.as_ref().map(|l| self.populate.staging_url(&l.object))
    }

    async fn commit(&mut self, _unit: &str) -> std::result::Result<(), Fault> {
        let Some(load) = self.open.take() else {
            return Ok(());
        };
        let p = self.populate;
        let object_url = p.staging_url(&load.object);
        load.writer
            .close()
            .await
            .map_err(|e| stage_fault(&object_url, format!("staging {} rows failed: {e}", load.rows)))?;
        let size = p
            .staging
            .head(&load.object)
            .await
            .map_err(|e| stage_fault(&object_url, e))?
            .size;
        // A manifest naming exactly the staged object (Parquet manifests need its length).
        let manifest = serde_json::json!({
            "entries": [{"url": object_url, "mandatory": true, "meta": {"content_length": size}}]
        });
        let manifest_path = load.dir.clone().join("manifest");
        p.staging
            .put(&manifest_path, manifest.to_string().into_bytes().into())
            .await
            .map_err(|e| stage_fault(&p.staging_url(&manifest_path), e))?;
        let role = p.iam_role.as_deref().map_or_else(|| "default".to_owned(), literal);
        let serialize = if self.schema.fields().iter().any(|f| nested(f.data_type())) {
            " SERIALIZETOJSON"
        } else {
            ""
        };
        let sql = format!(
            "COPY {} FROM {} IAM_ROLE {role} FORMAT AS PARQUET{serialize} MANIFEST",
            p.qualified(),
            literal(&p.staging_url(&manifest_path))
        );
        match p.run_statement(&sql).await {
            Ok(()) => {
                if p.cleanup_staging {
                    for path in [&load.object, &manifest_path] {
                        let _ = p.staging.delete(path).await;
                    }
                }
                Ok(())
            }
            Err(mut f) => {
                f.message.push_str(&format!(
                    "; the staged files are kept for inspection: {}",
                    p.staging_url(&load.dir)
                ));
                Err(f)
            }
        }
    }

    fn discard(&mut self, _unit: &str) {
        self.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("or\"ders"), "\"or\"\"ders\"");
        assert_eq!(literal("s3://b/it's"), "'s3://b/it''s'");
        assert_eq!(title("ABORTED"), "Aborted");
        assert_eq!(redshift_type("detail", &DataType::Utf8).as_deref(), Some("SUPER"));
        assert_eq!(
            redshift_type(
                "time",
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()))
            )
            .as_deref(),
            Some("TIMESTAMPTZ")
        );
        assert_eq!(
            redshift_type("n", &DataType::Decimal128(20, 3)).as_deref(),
            Some("DECIMAL(20,3)")
        );
    }
}
