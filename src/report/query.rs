//! `rehydrate report "<SQL>"`: read-only SQL over every saved run, as the tables `runs`
//! (one row per `run.json`) and `outcomes` (every run's `outcomes.parquet`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SQLOptions, SessionContext};

use super::{outcomes_schema, runs_schema};
use crate::filter::{check_single_select, session};
use crate::{Error, Result};

/// Output formats of `report` and `preview`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// An aligned text table.
    Table,
    /// One JSON object per row.
    Ndjson,
    /// Comma-separated values with a header.
    Csv,
}

/// Registers `runs` and `outcomes` over the saved runs in `report_dir`.
pub async fn register(ctx: &SessionContext, report_dir: &Path) -> Result<usize> {
    let mut lines = Vec::new();
    let mut logs: Vec<RecordBatch> = Vec::new();
    let entries = std::fs::read_dir(report_dir).map_err(|e| {
        Error::usage(format!(
            "no saved runs: cannot read the report directory {} ({e}).\n  Run an actioning command first (e.g. rehydrate populate parquet …), or point --report-dir / REHYDRATE_REPORT_DIR at the right place.",
            report_dir.display()
        ))
    })?;
    let mut dirs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let run_json = dir.join("run.json");
        if !run_json.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&run_json)?;
        // Through the struct, so that summaries of older versions get today's columns.
        let mut summary: super::RunSummary = serde_json::from_str(&text).map_err(|e| Error::Report {
            path: run_json.clone(),
            message: format!("not a run summary ({e}); remove the directory or fix the file"),
        })?;
        let log = dir.join(super::OUTCOMES_LOG);
        let log_batches = if log.is_file() {
            super::read_log(&log)?
        } else {
            Vec::new()
        };
        if summary.status == "running" && !summary.pid.is_some_and(alive) {
            // Killed before it could say so: what it has is in its outcomes log.
            summary.status = "interrupted".into();
            summary.error = Some("the process ended without finishing the run (killed?)".into());
            count_outcomes(&mut summary, &log_batches);
        }
        logs.extend(log_batches);
        lines.push(serde_json::to_string(&summary).map_err(|e| Error::Internal(e.to_string()))?);
    }
    if lines.is_empty() {
        return Err(Error::usage(format!(
            "no saved runs under {}.\n  Run an actioning command first (e.g. rehydrate populate parquet …), or point --report-dir / REHYDRATE_REPORT_DIR at the right place.",
            report_dir.display()
        )));
    }
    let ndjson = lines.join("\n");
    let reader = arrow::json::ReaderBuilder::new(runs_schema()).build(std::io::Cursor::new(ndjson.into_bytes()))?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    ctx.register_table("runs", Arc::new(MemTable::try_new(runs_schema(), vec![batches])?))?;

    let dir = std::fs::canonicalize(report_dir)?;
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("outcomes.parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(outcomes_schema());
    ctx.register_table("outcomes_files", Arc::new(ListingTable::try_new(config)?))?;
    // Runs that were killed, or stopped at once, left their outcomes in a log.
    ctx.register_table(
        "outcomes_logs",
        Arc::new(MemTable::try_new(outcomes_schema(), vec![logs])?),
    )?;
    let outcomes = ctx
        .sql("SELECT * FROM outcomes_files UNION ALL SELECT * FROM outcomes_logs")
        .await?;
    ctx.register_table("outcomes", outcomes.into_view())?;
    Ok(lines.len())
}

/// Whether process `pid` is still running (a run of it is then still going on).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The counts of an interrupted run, from the outcomes it recorded.
fn count_outcomes(summary: &mut super::RunSummary, batches: &[RecordBatch]) {
    use arrow::array::{Array, AsArray};
    let (mut succeeded, mut failed, mut rejected, mut skipped, mut not_events) = (0, 0, 0, 0, 0);
    for b in batches {
        let Some(status) = b.column_by_name("status") else {
            continue;
        };
        let code = b.column_by_name("error_code").map(|c| c.as_string::<i32>().clone());
        for (i, s) in status.as_string::<i32>().iter().enumerate() {
            match s {
                Some("succeeded") => succeeded += 1,
                Some("failed") => failed += 1,
                Some("rejected") => rejected += 1,
                _ if code
                    .as_ref()
                    .is_some_and(|c| c.is_valid(i) && c.value(i) == "NotAnEvent") =>
                {
                    not_events += 1
                }
                Some(_) => skipped += 1,
                None => {}
            }
        }
    }
    summary.succeeded = succeeded;
    summary.failed = failed;
    summary.rejected = rejected;
    summary.skipped = skipped;
    summary.not_events = not_events;
    summary.matched = succeeded + failed + skipped;
    summary.exit_code = 130;
}

/// Runs `sql` over the saved runs and prints the result.
pub async fn run(sql: &str, report_dir: &Path, format: TableFormat) -> Result<()> {
    check_single_select(sql)?;
    let ctx = session(8192)?;
    // Each run's outcomes.parquet sits in its own folder under the report directory.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .listing_table_ignore_subdirectory = false;
    register(&ctx, report_dir).await?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(report_error)?;
    let batches = df.collect().await.map_err(report_error)?;
    print_batches(&batches, format, None)
}

fn report_error(e: datafusion::error::DataFusionError) -> Error {
    let text = e.find_root().to_string();
    Error::Sql(format!(
        "report: {text}\n  The tables are `runs` (run_id, status, resumed_from, already_done, in_flight_resent, command, source, filter, target, started_at, finished_at, read, rejected, not_events, filtered, matched, succeeded, failed, skipped, duration_ms, events_per_s, bytes_read, requests, retries, bytes_sent, dry_run, exit_code, dead_letter, error, rehydrate_version, job_id, shard) and `outcomes` (run_id, event_id, origin, position, target, status, attempts, error_code, error_message, latency_ms, object_key, route)."
    ))
}

/// Prints batches to stdout. `max_cell` truncates table cells (long `detail` values).
pub fn print_batches(batches: &[RecordBatch], format: TableFormat, max_cell: Option<usize>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match format {
        TableFormat::Table => {
            let shown: Vec<RecordBatch> = match max_cell {
                Some(n) => batches.iter().map(|b| truncate_cells(b, n)).collect::<Result<_>>()?,
                None => batches.to_vec(),
            };
            let table = arrow::util::pretty::pretty_format_batches(&shown)?;
            writeln!(out, "{table}")
        }
        TableFormat::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            Ok(())
        }
        TableFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b)?;
            }
            Ok(())
        }
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(Error::from),
    }
}

/// Renders every column as text, cut to `max` characters, for a readable table.
fn truncate_cells(batch: &RecordBatch, max: usize) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("");
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut fields = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let mut b = StringBuilder::new();
        for row in 0..batch.num_rows() {
            let text = formatter.value(row).to_string();
            if text.chars().count() > max {
                let cut: String = text.chars().take(max.saturating_sub(1)).collect();
                b.append_value(cut + "…");
            } else {
                b.append_value(text);
            }
        }
        columns.push(Arc::new(b.finish()));
        fields.push(Field::new(field.name(), DataType::Utf8, true));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
