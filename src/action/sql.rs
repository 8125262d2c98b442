//! `populate postgres` and `populate mysql`: upsert the selected rows into a table of an RDS (or
//! any) PostgreSQL, MySQL or MariaDB server, a batch per transaction.
//!
//! What is particular to SQL stores: the table's columns (created from the Arrow schema, or
//! checked against it before the run), the upsert statement of each dialect, PostgreSQL's COPY
//! into a staging table, values bound or sent as COPY data (never spliced into SQL), and reading
//! the server's error codes. When to commit, retrying a transaction that failed for a passing
//! reason, and splitting a refused batch into single rows are the driver's.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::driver::{self, CommitTarget};
use super::fault::{classify_sql, Fault};
use super::ActionContext;
use crate::{Error, Result};

/// Statements are built from quoted identifiers and placeholders only; every value is bound or
/// sent as COPY data.
fn safe(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// Multi-row upserts of `rows` in `tx`, `per_statement` rows a statement (a macro: the two
/// drivers' transactions are different types with the same methods).
macro_rules! insert_chunks {
    ($populate:expr, $tx:expr, $rows:expr, $per_statement:expr) => {
        for chunk in $rows.chunks($per_statement) {
            let sql = $populate.insert_sql(chunk.len());
            let mut q = sqlx::query(safe(sql));
            for v in chunk.iter().flatten() {
                q = q.bind(v.as_deref());
            }
            q.execute(&mut *$tx).await.map_err(|e| classify_sql(&e))?;
        }
    };
}

/// Bound parameters per statement: both servers take at most 65,535.
const MAX_PARAMS: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

/// How PostgreSQL batches are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Load {
    /// COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT (PostgreSQL).
    Copy,
    /// Multi-row INSERT … ON CONFLICT / ON DUPLICATE KEY UPDATE with bound values.
    Insert,
}

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

pub struct SqlPopulate {
    dialect: Dialect,
    /// The URL without its password, for the `target` column and messages.
    display: String,
    url: String,
    schema: Option<String>,
    table: String,
    key: Vec<String>,
    create_table: bool,
    rows_per_batch: usize,
    load: Load,
    concurrency: u32,
    timeout: Duration,
    pool: OnceLock<Pool>,
    /// The written columns: name, the SQL type values are cast to, and whether it holds JSON.
    columns: OnceLock<Vec<Column>>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    sql_type: String,
}

/// The settings of `populate postgres|mysql`, from the command line.
pub struct SqlSettings {
    pub url: String,
    pub table: String,
    pub key: Vec<String>,
    pub create_table: bool,
    pub rows_per_batch: usize,
    pub load: Load,
    pub concurrency: usize,
    /// How long connecting, or one batch's transaction, may take.
    pub timeout: Duration,
}

impl SqlPopulate {
    pub fn new(dialect: Dialect, s: SqlSettings) -> Result<Self> {
        let flag = "--url";
        let parsed = url::Url::parse(&s.url).map_err(|e| Error::usage(format!("{flag}: not a URL ({e})")))?;
        let schemes: &[&str] = match dialect {
            Dialect::Postgres => &["postgres", "postgresql"],
            Dialect::MySql => &["mysql", "mariadb"],
        };
        if !schemes.contains(&parsed.scheme()) {
            return Err(Error::usage(format!(
                "{flag}: the scheme must be {}:// (e.g. {}://user@host:port/db)",
                schemes[0], schemes[0]
            )));
        }
        let mut display = parsed.clone();
        if display.password().is_some() {
            let _ = display.set_password(None);
        }
        let mut url = parsed;
        if url.scheme() == "mariadb" {
            let rest = url.as_str().trim_start_matches("mariadb:").to_owned();
            url = url::Url::parse(&format!("mysql:{rest}")).map_err(|e| Error::usage(format!("{flag}: {e}")))?;
        }
        let (schema, table) = match s.table.split_once('.') {
            Some((a, b)) => (Some(a.to_owned()), b.to_owned()),
            None => (None, s.table.clone()),
        };
        if table.is_empty() || schema.as_deref() == Some("") {
            return Err(Error::usage("--table: give a table name, or schema.table"));
        }
        if s.key.is_empty() || s.key.iter().any(String::is_empty) {
            return Err(Error::usage(
                "--key: name the key column(s) to upsert on, e.g. --key id",
            ));
        }
        if s.rows_per_batch == 0 || s.rows_per_batch > 100_000 {
            return Err(Error::usage("--batch-rows must be between 1 and 100000"));
        }
        Ok(Self {
            dialect,
            display: format!(
                "{}:{}",
                dialect.name(),
                display.as_str().split('?').next().unwrap_or("")
            ),
            url: url.into(),
            schema,
            table,
            key: s.key,
            create_table: s.create_table,
            rows_per_batch: s.rows_per_batch,
            load: if dialect == Dialect::MySql {
                Load::Insert
            } else {
                s.load
            },
            concurrency: s.concurrency.clamp(1, 64) as u32,
            timeout: s.timeout,
            pool: OnceLock::new(),
            columns: OnceLock::new(),
        })
    }

    pub fn target(&self) -> String {
        format!("{}/{}", self.display, self.qualified_display())
    }

    pub fn command(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "populate postgres",
            Dialect::MySql => "populate mysql",
        }
    }

    fn qualified_display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.table),
            None => self.table.clone(),
        }
    }

    fn quote(&self, ident: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&self.table)),
            None => self.quote(&self.table),
        }
    }

    fn target_error(&self, message: impl Into<String>) -> Error {
        Error::Target {
            target: self.target(),
            message: message.into(),
        }
    }

    async fn connect(&self) -> Result<&Pool> {
        if let Some(p) = self.pool.get() {
            return Ok(p);
        }
        let timeout = self.timeout;
        let pool = match self.dialect {
            Dialect::Postgres => {
                let opts = PgConnectOptions::from_str(&self.url).map_err(|e| Error::usage(format!("--url: {e}")))?;
                Pool::Pg(
                    PgPoolOptions::new()
                        .max_connections(self.concurrency)
                        .acquire_timeout(timeout)
                        .connect_with(opts)
                        .await
                        .map_err(|e| self.target_error(format!("cannot connect: {e}")))?,
                )
            }
            Dialect::MySql => {
                let mut opts =
                    MySqlConnectOptions::from_str(&self.url).map_err(|e| Error::usage(format!("--url: {e}")))?;
                let has_password = url::Url::parse(&self.url).is_ok_and(|u| u.password().is_some());
                if !has_password {
                    if let Ok(pw) = std::env::var("MYSQL_PWD") {
                        opts = opts.password(&pw);
                    }
                }
                // Timestamps are written as UTC.
                let opts = opts.timezone(Some("+00:00".into()));
                Pool::My(
                    MySqlPoolOptions::new()
                        .max_connections(self.concurrency)
                        .acquire_timeout(timeout)
                        .connect_with(opts)
                        .await
                        .map_err(|e| self.target_error(format!("cannot connect: {e}")))?,
                )
            }
        };
        let _ = self.pool.set(pool);
        Ok(self.pool.get().expect("set above"))
    }

    /// Connects, creates the table (`--create-table`) or checks the existing one against the
    /// selection, and checks the key: all before the run directory exists.
    pub async fn check(&self, schema: &SchemaRef, dry_run: bool) -> Result<()> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let missing: Vec<&String> = self.key.iter().filter(|k| !names.contains(&k.as_str())).collect();
        if !missing.is_empty() {
            return Err(Error::usage(format!(
                "--key {}: no such column in the selected rows; the columns are: {}",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                names.join(", ")
            )));
        }
        for f in schema.fields() {
            sql_type(self.dialect, f, self.key.contains(f.name())).map_err(Error::usage)?;
        }
        self.connect().await?;
        let mut existing = self.table_columns().await?;
        if existing.is_empty() {
            if !self.create_table {
                return Err(self.target_error(format!(
                    "the table {} does not exist (or has no columns you can see); pass --create-table to create it from the selection",
                    self.qualified_display()
                )));
            }
            if !dry_run {
                self.create(schema).await?;
                existing = self.table_columns().await?;
            } else {
                existing = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let t = sql_type(self.dialect, f, self.key.contains(f.name())).unwrap_or_default();
                        (f.name().clone(), t)
                    })
                    .collect();
            }
        }
        let mut problems = Vec::new();
        let mut columns = Vec::new();
        for f in schema.fields() {
            match existing.iter().find(|(n, _)| n == f.name()) {
                None => problems.push(format!("the table has no column {}", f.name())),
                Some((_, table_type)) => {
                    if !compatible(f, table_type) {
                        problems.push(format!(
                            "column {} is {table_type} in the table, but the selection gives {} (cast it in --query)",
                            f.name(),
                            f.data_type()
                        ));
                    }
                    columns.push(Column {
                        name: f.name().clone(),
                        sql_type: table_type.clone(),
                    });
                }
            }
        }
        if !problems.is_empty() {
            let have: Vec<String> = existing.iter().map(|(n, t)| format!("{n} {t}")).collect();
            return Err(self.target_error(format!(
                "the selection does not fit the table {}: {}.\n  The table's columns: {}",
                self.qualified_display(),
                problems.join("; "),
                have.join(", ")
            )));
        }
        let key_unchecked = dry_run && self.create_table; // the table does not exist yet
        if !key_unchecked && !self.key_is_unique().await? {
            return Err(self.target_error(format!(
                "no primary key or unique index on ({}) in {}: an upsert needs one; add it, or choose --key to match it",
                self.key.join(", "),
                self.qualified_display()
            )));
        }
        let _ = self.columns.set(columns);
        Ok(())
    }

    /// The table's columns and their types, empty when there is no such table.
    async fn table_columns(&self) -> Result<Vec<(String, String)>> {
        let pool = self.connect().await?;
        let rows: Vec<(String, String)> = match pool {
            Pool::Pg(p) => {
                sqlx::query_as(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                )
                .bind(self.qualified())
                .fetch_all(p)
                .await
            }
            Pool::My(p) => {
                sqlx::query_as(
                    "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? ORDER BY ordinal_position",
                )
                .bind(self.schema.clone())
                .bind(&self.table)
                .fetch_all(p)
                .await
            }
        }
        .map_err(|e| self.target_error(format!("reading the table's columns: {e}")))?;
        Ok(rows)
    }

    async fn key_is_unique(&self) -> Result<bool> {
        let pool = self.connect().await?;
        let mut want = self.key.clone();
        want.sort();
        let want = want.join(",");
        let sets: Vec<(String,)> = match pool {
            Pool::Pg(p) => {
                sqlx::query_as(
                    "SELECT string_agg(a.attname::text, ',' ORDER BY a.attname::text) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique GROUP BY i.indexrelid",
                )
                .bind(self.qualified())
                .fetch_all(p)
                .await
            }
            Pool::My(p) => {
                sqlx::query_as(
                    "SELECT CAST(GROUP_CONCAT(column_name ORDER BY column_name SEPARATOR ',') AS CHAR) \
                 FROM information_schema.statistics WHERE table_schema = COALESCE(?, DATABASE()) \
                 AND table_name = ? AND non_unique = 0 GROUP BY index_name",
                )
                .bind(self.schema.clone())
                .bind(&self.table)
                .fetch_all(p)
                .await
            }
        }
        .map_err(|e| self.target_error(format!("reading the table's indexes: {e}")))?;
        Ok(sets.iter().any(|(s,)| *s == want))
    }

    async fn create(&self, schema: &SchemaRef) -> Result<()> {
        let mut defs = Vec::new();
        for f in schema.fields() {
            let t = sql_type(self.dialect, f, self.key.contains(f.name())).map_err(Error::usage)?;
            let not_null = if self.key.contains(f.name()) { " NOT NULL" } else { "" };
            defs.push(format!("{} {t}{not_null}", self.quote(f.name())));
        }
        let key: Vec<String> = self.key.iter().map(|k| self.quote(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
        // MySQL's default character set may not hold every character (emoji need utf8mb4); a
        // binary collation keeps keys that differ only in case or accents apart.
        let options = match self.dialect {
            Dialect::Postgres => "",
            Dialect::MySql => " DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({}){options}",
            self.qualified(),
            defs.join(", ")
        );
        let result = match self.connect().await? {
            Pool::Pg(p) => sqlx::query(safe(sql.clone())).execute(p).await.map(|_| ()),
            Pool::My(p) => sqlx::query(safe(sql.clone())).execute(p).await.map(|_| ()),
        };
        result.map_err(|e| self.target_error(format!("creating the table: {e}")))
    }

    pub async fn run(&self, input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        let mut sink = SqlSink {
            populate: self,
            rows: Vec::new(),
        };
        driver::run_commits(&mut sink, input, ctx).await
    }

    fn columns(&self) -> &[Column] {
        self.columns.get().map_or(&[], Vec::as_slice)
    }

    /// `INSERT INTO t (cols) VALUES (…), … ON CONFLICT …` for `rows` rows of bound values.
    fn insert_sql(&self, rows: usize) -> String {
        let cols = self.columns();
        let names: Vec<String> = cols.iter().map(|c| self.quote(&c.name)).collect();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", self.qualified(), names.join(", "));
        let mut n = 0;
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                match self.dialect {
                    Dialect::Postgres => sql.push_str(&format!("${n}::{}", c.sql_type)),
                    Dialect::MySql => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql.push_str(&self.on_conflict());
        sql
    }

    fn on_conflict(&self) -> String {
        let updates: Vec<&Column> = self.columns().iter().filter(|c| !self.key.contains(&c.name)).collect();
        match self.dialect {
            Dialect::Postgres => {
                let key: Vec<String> = self.key.iter().map(|k| self.quote(k)).collect();
                if updates.is_empty() {
                    return format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "));
                }
                let set: Vec<String> = updates
                    .iter()
                    .map(|c| format!("{0} = EXCLUDED.{0}", self.quote(&c.name)))
                    .collect();
                format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), set.join(", "))
            }
            Dialect::MySql => {
                let set: Vec<String> = if updates.is_empty() {
                    self.key.iter().map(|k| format!("{0} = {0}", self.quote(k))).collect()
                } else {
                    updates
                        .iter()
                        .map(|c| format!("{0} = VALUES({0})", self.quote(&c.name)))
                        .collect()
                };
                format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
        }
    }

    /// Upserts `rows` (already rendered) in one transaction, within the request timeout: a server
    /// that stops answering ends in a retryable `Timeout` (the transaction may or may not have
    /// committed: an upsert again is harmless).
    async fn upsert(&self, rows: &[Vec<Option<String>>]) -> Result<(), Fault> {
        match tokio::time::timeout(self.timeout, self.upsert_now(rows)).await {
            Ok(result) => result,
            Err(_) => Err(Fault {
                maybe_applied: true,
                ..Fault::retryable(
                    "Timeout",
                    format!("the server did not answer within {} s", self.timeout.as_secs_f64()),
                )
            }),
        }
    }

    async fn upsert_now(&self, rows: &[Vec<Option<String>>]) -> Result<(), Fault> {
        let pool = self
            .connect()
            .await
            .map_err(|e| Fault::retryable("ConnectFailed", e.to_string()))?;
        let width = self.columns().len().max(1);
        let per_statement = (MAX_PARAMS / width).max(1);
        match pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await.map_err(|e| classify_sql(&e))?;
                if self.load == Load::Copy && rows.len() > 1 {
                    self.copy(&mut tx, rows).await?;
                } else {
                    insert_chunks!(self, tx, rows, per_statement);
                }
                tx.commit().await.map_err(|e| classify_sql(&e))
            }
            Pool::My(p) => {
                let mut tx = p.begin().await.map_err(|e| classify_sql(&e))?;
                insert_chunks!(self, tx, rows, per_statement);
                tx.commit().await.map_err(|e| classify_sql(&e))
            }
        }
    }

    /// PostgreSQL: COPY the rows (CSV) into a temporary table, then upsert from it.
    async fn copy(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        rows: &[Vec<Option<String>>],
    ) -> Result<(), Fault> {
        let names: Vec<String> = self.columns().iter().map(|c| self.quote(&c.name)).collect();
        let names = names.join(", ");
        sqlx::query(safe(format!(
            "CREATE TEMPORARY TABLE IF NOT EXISTS rehydrate_stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
            self.qualified()
        )))
        .execute(&mut **tx)
        .await
        .map_err(|e| classify_sql(&e))?;
        let mut data = Vec::with_capacity(rows.len() * 128);
        for row in rows {
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    data.push(b',');
                }
                if let Some(v) = v {
                    data.push(b'"');
                    for b in v.bytes() {
                        if b == b'"' {
                            data.push(b'"');
                        }
                        data.push(b);
                    }
                    data.push(b'"');
                }
            }
            data.push(b'\n');
        }
        let mut copy = tx
            .copy_in_raw(&format!("COPY rehydrate_stage ({names}) FROM STDIN WITH (FORMAT csv)"))
            .await
            .map_err(|e| classify_sql(&e))?;
        if let Err(e) = copy.send(data).await {
            let _ = copy.abort("rehydrate: sending the batch failed").await;
            return Err(classify_sql(&e));
        }
        copy.finish().await.map_err(|e| classify_sql(&e))?;
        sqlx::query(safe(format!(
            "INSERT INTO {} ({names}) SELECT {names} FROM rehydrate_stage{}",
            self.qualified(),
            self.on_conflict()
        )))
        .execute(&mut **tx)
        .await
        .map_err(|e| classify_sql(&e))?;
        Ok(())
    }

    /// Each row rendered as text (or NULL), in column order; the later of two rows with one key
    /// wins (as upserting them in order would leave it).
    fn render(&self, batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>, Fault> {
        let key_index: Vec<usize> = self
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| self.key.contains(&c.name))
            .map(|(i, _)| i)
            .collect();
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        let mut by_key: HashMap<Vec<Option<String>>, usize> = HashMap::new();
        for b in batches {
            for row in self.render_batch(b)? {
                let key: Vec<Option<String>> = key_index.iter().map(|&i| row[i].clone()).collect();
                match by_key.get(&key) {
                    Some(&i) => rows[i] = row,
                    None => {
                        by_key.insert(key, rows.len());
                        rows.push(row);
                    }
                }
            }
        }
        Ok(rows)
    }

    fn render_batch(&self, b: &RecordBatch) -> Result<Vec<Vec<Option<String>>>, Fault> {
        let mut out = vec![Vec::with_capacity(self.columns().len()); b.num_rows()];
        for c in self.columns() {
            let array = b
                .column_by_name(&c.name)
                .ok_or_else(|| Fault::permanent("MissingColumn", format!("no column {}", c.name)))?;
            let field = b
                .schema()
                .field_with_name(&c.name)
                .cloned()
                .map_err(|e| Fault::permanent("MissingColumn", e.to_string()))?;
            for (row, values) in out.iter_mut().enumerate() {
                values.push(render(self.dialect, &field, array.as_ref(), row).map_err(|m| Fault {
                    per_item: true,
                    ..Fault::permanent("InvalidValue", format!("column {}: {m}", c.name))
                })?);
            }
        }
        Ok(out)
    }
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }
}

/// The rows of the open batch (one unit: a transaction).
struct SqlSink<'a> {
    populate: &'a SqlPopulate,
    rows: Vec<RecordBatch>,
}

impl CommitTarget for SqlSink<'_> {
    fn rows_per_unit(&self) -> usize {
        self.populate.rows_per_batch
    }

    async fn write(&mut self, _unit: &str, rows: &RecordBatch) -> Result<(), Fault> {
        self.rows.push(rows.clone());
        Ok(())
    }

    async fn commit(&mut self, _unit: &str) -> Result<(), Fault> {
        let rows = self.populate.render(&self.rows)?;
        self.populate.upsert(&rows).await?;
        self.rows.clear();
        Ok(())
    }

    async fn commit_each(&mut self, _unit: &str) -> Option<Vec<Result<(), Fault>>> {
        let mut answers = Vec::new();
        for b in std::mem::take(&mut self.rows) {
            for row in 0..b.num_rows() {
                let one = b.slice(row, 1);
                let answer = match self.populate.render_batch(&one) {
                    Ok(rendered) => self.populate.upsert(&rendered).await,
                    Err(f) => Err(f),
                };
                answers.push(answer);
            }
        }
        Some(answers)
    }

    fn discard(&mut self, _unit: &str) {
        self.rows.clear();
    }

    const DEAD_LETTERS: bool = true;

    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> Option<String> {
        Some(super::row_json(rows, row))
    }
}

fn is_json_field(f: &Field) -> bool {
    (f.name() == crate::event::DETAIL
        && matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
        || matches!(
            f.data_type(),
            DataType::List(_)
                | DataType::LargeList(_)
                | DataType::FixedSizeList(..)
                | DataType::Struct(_)
                | DataType::Map(..)
                | DataType::Union(..)
        )
}

/// The column type `--create-table` uses for a field.
fn sql_type(dialect: Dialect, f: &Field, is_key: bool) -> Result<String, String> {
    let pg = dialect == Dialect::Postgres;
    if is_json_field(f) {
        return Ok(if pg { "jsonb" } else { "JSON" }.into());
    }
    let t = match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match (pg, is_key) {
            (true, _) => "text".into(),
            (false, true) => "VARCHAR(512)".into(),
            (false, false) => "LONGTEXT".into(),
        },
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 | DataType::UInt16 => "integer".into(),
        DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => if pg { "numeric(20,0)" } else { "BIGINT UNSIGNED" }.into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => if pg { "double precision" } else { "DOUBLE" }.into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            let s = (*s).max(0) as u8;
            if pg {
                format!("numeric({p},{s})")
            } else if *p > 65 || s > 30 {
                return Err(format!(
                    "column {}: MySQL's DECIMAL holds at most 65 digits, 30 after the point; cast it in --query",
                    f.name()
                ));
            } else {
                format!("DECIMAL({p},{s})")
            }
        }
        DataType::Timestamp(..) => if pg { "timestamptz" } else { "DATETIME(3)" }.into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Dictionary(_, v) => return sql_type(dialect, &Field::new(f.name(), (**v).clone(), true), is_key),
        other => {
            return Err(format!(
                "column {}: values of type {other} cannot be written to a SQL table; cast or encode it in --query",
                f.name()
            ))
        }
    };
    Ok(t)
}

/// Whether values of `f` can go into a column of `table_type` without a silent change.
fn compatible(f: &Field, table_type: &str) -> bool {
    let t = table_type.to_ascii_lowercase();
    let text = [
        "text",
        "char",
        "varchar",
        "character",
        "longtext",
        "mediumtext",
        "tinytext",
    ]
    .iter()
    .any(|k| t.contains(k));
    if text {
        return true;
    }
    let json = t.contains("json");
    let numeric = ["int", "numeric", "decimal", "double", "real", "float"]
        .iter()
        .any(|k| t.contains(k));
    if is_json_field(f) {
        return json || (f.name() == crate::event::DETAIL && text);
    }
    match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json || t.contains("uuid") || t.contains("enum"),
        DataType::Boolean => t.contains("bool") || t.starts_with("tinyint"),
        d if d.is_integer() => numeric,
        d if d.is_floating() => numeric && !t.contains("int"),
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            numeric
        }
        DataType::Timestamp(..) => t.contains("timestamp") || t.contains("datetime"),
        DataType::Date32 | DataType::Date64 => t.contains("date") || t.contains("timestamp"),
        DataType::Dictionary(_, v) => compatible(&Field::new(f.name(), (**v).clone(), true), table_type),
        _ => false,
    }
}

/// The text of one value as the server reads it (bound, or as COPY data); `None` for NULL.
fn render(dialect: Dialect, f: &Field, array: &dyn Array, row: usize) -> Result<Option<String>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    let pg = dialect == Dialect::Postgres;
    Ok(Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        DataType::Boolean => {
            let v = array.as_boolean().value(row);
            match (pg, v) {
                (true, v) => v.to_string(),
                (false, true) => "1".into(),
                (false, false) => "0".into(),
            }
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => {
                    array.as_primitive::<arrow::datatypes::TimestampSecondType>().value(row) * 1_000_000
                }
                TimeUnit::Millisecond => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                        .value(row)
                        * 1000
                }
                TimeUnit::Microsecond => array
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(row),
                TimeUnit::Nanosecond => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                        .value(row)
                        / 1000
                }
            };
            let t = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(v).ok_or("a time out of range")?;
            if pg {
                t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
            } else {
                t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = arrow::util::display::array_value_to_string(array, row).map_err(|e| e.to_string())?;
            if !pg && (text.contains("NaN") || text.contains("inf")) {
                return Err(format!("{text} cannot be stored in MySQL"));
            }
            text
        }
        DataType::Dictionary(_, v) => {
            let plain = arrow::compute::cast(&array.slice(row, 1), v).map_err(|e| e.to_string())?;
            return render(dialect, f, plain.as_ref(), 0);
        }
        DataType::Union(..)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => {
            return Ok(json_value(f, array, row));
        }
        _ => arrow::util::display::array_value_to_string(array, row).map_err(|e| e.to_string())?,
    }))
}

/// A nested value (list, struct, map, or the JSON union of `detail->'a'`) as JSON text.
fn json_value(f: &Field, array: &dyn Array, row: usize) -> Option<String> {
    if let Some((name, child, offset)) = super::union_member(array, row) {
        if child.is_null(offset) {
            return None;
        }
        let text = arrow::util::display::array_value_to_string(child.as_ref(), offset).ok()?;
        return Some(match name {
            "str" => serde_json::to_string(&text).ok()?,
            _ => text,
        });
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![Field::new(
        "v",
        f.data_type().clone(),
        true,
    )]));
    let one = RecordBatch::try_new(schema, vec![array.slice(row, 1)]).ok()?;
    let mut out = Vec::new();
    let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
    w.write(&one).ok()?;
    w.finish().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
    Some(v.get("v")?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_target_name() {
        let s = SqlPopulate::new(
            Dialect::Postgres,
            SqlSettings {
                url: "postgres://app:s3cret@db.example:5432/shop?sslmode=require".into(),
                table: "public.orders".into(),
                key: vec!["id".into()],
                create_table: false,
                rows_per_batch: 10,
                load: Load::Copy,
                concurrency: 1,
                timeout: Duration::from_secs(30),
            },
        )
        .unwrap();
        assert_eq!(s.target(), "postgres:postgres://app@db.example:5432/shop/public.orders");
        assert!(!s.target().contains("s3cret"));
    }

    #[test]
    fn identifiers_are_quoted() {
        let s = SqlPopulate::new(
            Dialect::MySql,
            SqlSettings {
                url: "mysql://root@127.0.0.1/test".into(),
                table: "we`ird".into(),
                key: vec!["id".into()],
                create_table: true,
                rows_per_batch: 10,
                load: Load::Insert,
                concurrency: 1,
                timeout: Duration::from_secs(30),
            },
        )
        .unwrap();
        assert_eq!(s.qualified(), "`we``ird`");
    }
}
