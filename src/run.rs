//! One run, end to end: source → `events` → filter → action → outcomes → summary. Also the
//! `preview` command, which stops before the action.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::action::{Action, ActionContext};
use crate::event::{self, EnvelopeReader};
use crate::filter::{self, FilterSpec};
use crate::progress::Progress;
use crate::report::query::{print_batches, TableFormat};
use crate::report::{self, Recorder, RecorderMsg, RunSummary};
use crate::source::{file, SourceSpec, SourceStats};
use crate::{Error, Result};

/// How the run summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A summary for people, on stderr.
    Text,
    /// The run summary as one JSON object on stdout (same keys as the `runs` table).
    Json,
}

/// Everything an actioning command needs, validated before any I/O.
pub struct RunSpec {
    pub source: SourceSpec,
    pub filter: FilterSpec,
    pub action: Action,
    pub dry_run: bool,
    pub report_dir: PathBuf,
    pub dead_letter: Option<PathBuf>,
    pub output: OutputFormat,
    /// The driver's settings (concurrency, rate, retries).
    pub send: crate::action::driver::SendPolicy,
}

/// Decoding threads: the reader is one more, and DataFusion and the action share the rest.
fn decode_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

/// The source as a DataFusion stream; rejections go to the recorder as they are found.
fn events_stream(
    source: &SourceSpec,
    stats: Arc<SourceStats>,
    rejections: mpsc::UnboundedSender<RecorderMsg>,
) -> SendableRecordBatchStream {
    let stream = file::stream(source, stats, decode_parallelism()).map(move |decoded| match decoded {
        Ok(d) => {
            if !d.rejections.is_empty() {
                let _ = rejections.send(RecorderMsg::Rejections(d.rejections));
            }
            Ok(d.batch)
        }
        Err(e) => Err(DataFusionError::External(Box::new(e))),
    });
    Box::pin(RecordBatchStreamAdapter::new(event::schema(), stream))
}

/// DataFusion wraps our own errors (a source that failed mid-stream); unwrap them so the user
/// sees one clear message.
fn plain(e: Error) -> Error {
    match e {
        Error::DataFusion(df) => {
            let text = df.find_root().to_string();
            let text = text.strip_prefix("External error: ").unwrap_or(&text).to_owned();
            Error::Stopped(text)
        }
        other => other,
    }
}

/// A run id that sorts by start time and is unique across concurrent runs.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let random = h.finish() as u16;
    format!("{}-{random:04x}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Runs an actioning command and returns its exit code (0, or 3 when events failed or were
/// rejected). Errors that stop the run are returned after the summary has been saved.
pub async fn execute(spec: RunSpec) -> Result<i32> {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let stats = Arc::new(SourceStats::default());
    let (tx, rx) = mpsc::unbounded_channel::<RecorderMsg>();

    // Plan first: bad SQL is reported before anything is created on disk.
    let ctx = filter::session(spec.source.batch_size)?;
    let events = events_stream(&spec.source, stats.clone(), tx.clone());
    let selection = filter::select(&ctx, events, &spec.filter).await?;
    // What the target needs from the selection is checked before anything exists on disk.
    let data_schema = crate::action::strip_columns(
        &arrow::array::RecordBatch::new_empty(Arc::new(selection.df.schema().as_arrow().clone())),
        &selection.helper_columns,
    )?
    .schema();
    spec.action
        .check(&data_schema, selection.is_whole_events(), spec.dry_run)
        .await?;

    let run_id = new_run_id();
    let run_dir = spec.report_dir.join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::Report {
        path: run_dir.clone(),
        message: format!("{e}; choose another --report-dir"),
    })?;
    let dead_letter = spec
        .dead_letter
        .clone()
        .unwrap_or_else(|| run_dir.join("dead-letter.ndjson"));
    let target = spec.action.target();
    let recorder = Recorder::start(&run_id, &run_dir, &target, dead_letter.clone(), rx)?;
    let progress = Progress::new(stats.clone(), spec.source.total_bytes);
    let counters = Arc::new(crate::action::driver::Counters::default());

    let action_ctx = ActionContext {
        run_id: run_id.clone(),
        dry_run: spec.dry_run,
        keys: selection.keys.clone(),
        helper_columns: selection.helper_columns.clone(),
        outcomes: tx,
        progress: progress.clone(),
        send: spec.send.clone(),
        counters: counters.clone(),
    };
    let result = async {
        let stream = selection.df.execute_stream().await?;
        spec.action.run(stream, &action_ctx).await
    }
    .await
    .map_err(plain);
    progress.finish();
    drop(action_ctx);
    drop(ctx);
    let totals = recorder.finish()?;

    let read = stats.records();
    let (requests, retries, bytes_sent) = counters.get();
    let matched = totals.succeeded + totals.failed + totals.skipped;
    let duration = t0.elapsed();
    let exit_code = match &result {
        Err(e) => e.exit_code(),
        Ok(()) if totals.failed > 0 || totals.rejected > 0 => 3,
        Ok(()) => 0,
    };
    let summary = RunSummary {
        run_id: run_id.clone(),
        command: spec.action.command().into(),
        source: spec.source.description.clone(),
        filter: spec.filter.to_string(),
        target,
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        finished_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        read,
        rejected: totals.rejected,
        // Whatever was read and neither rejected nor matched was filtered out. (A --query that
        // aggregates makes rows that are not events; matched then counts its rows.)
        filtered: read.saturating_sub(totals.rejected + matched),
        matched,
        succeeded: totals.succeeded,
        failed: totals.failed,
        skipped: totals.skipped,
        duration_ms: duration.as_millis() as u64,
        events_per_s: read as f64 / duration.as_secs_f64().max(1e-9),
        bytes_read: stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        requests,
        retries,
        bytes_sent,
        dry_run: spec.dry_run,
        exit_code,
        dead_letter: (totals.dead_letters > 0).then(|| dead_letter.display().to_string()),
        error: result.as_ref().err().map(|e| e.to_string()),
        rehydrate_version: env!("CARGO_PKG_VERSION").into(),
    };
    report::save_summary(&run_dir, &summary)?;
    match spec.output {
        OutputFormat::Text => eprint!(
            "{}",
            report::human_summary(&summary, &totals.named_failures, &spec.report_dir)
        ),
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string(&summary).map_err(|e| Error::Internal(e.to_string()))?
            );
            if !totals.named_failures.is_empty() {
                for f in &totals.named_failures {
                    eprintln!("{f}");
                }
            }
        }
    }
    result.map(|()| exit_code)
}

/// How `preview` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PreviewFormat {
    /// An aligned table, long values cut short.
    Table,
    /// One JSON object per line: whole events as EventBridge envelopes, projections as rows.
    Ndjson,
    /// Only the number of selected events.
    Count,
}

/// Shows what a filter selects. Rejected records are listed on stderr; nothing is written.
pub async fn preview(
    source: SourceSpec,
    filter_spec: FilterSpec,
    limit: Option<usize>,
    format: PreviewFormat,
) -> Result<i32> {
    let stats = Arc::new(SourceStats::default());
    let (tx, mut rx) = mpsc::unbounded_channel::<RecorderMsg>();
    let ctx = filter::session(source.batch_size)?;
    let events = events_stream(&source, stats.clone(), tx);
    let selection = filter::select(&ctx, events, &filter_spec).await?;
    let limit = match (limit, format) {
        (None, PreviewFormat::Table) => Some(20),
        (l, _) => l,
    };
    let df = match limit {
        Some(n) => selection.df.clone().limit(0, Some(n))?,
        None => selection.df.clone(),
    };
    let mut stream = df.execute_stream().await?;
    let whole = selection.is_whole_events();
    let mut shown = 0u64;
    let mut table = Vec::new();
    let mut out = std::io::stdout().lock();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| plain(e.into()))?;
        shown += batch.num_rows() as u64;
        match format {
            PreviewFormat::Count => {}
            PreviewFormat::Table => table.push(crate::action::strip_columns(&batch, &selection.helper_columns)?),
            PreviewFormat::Ndjson => {
                use std::io::Write;
                let written = if whole {
                    let reader = EnvelopeReader::new(&batch)
                        .ok_or_else(|| Error::Internal("whole events lack envelope columns".into()))?;
                    (0..batch.num_rows()).try_for_each(|row| writeln!(out, "{}", reader.envelope_json(row)))
                } else {
                    let rows = crate::action::strip_columns(&batch, &selection.helper_columns)?;
                    let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
                    w.write(&rows)?;
                    w.finish()?;
                    Ok(())
                };
                match written {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                    other => other?,
                }
            }
        }
    }
    drop(out);
    drop(stream);
    match format {
        PreviewFormat::Count => println!("{shown}"),
        PreviewFormat::Table => print_batches(&table, TableFormat::Table, Some(40))?,
        PreviewFormat::Ndjson => {}
    }
    let mut rejections = Vec::new();
    while let Ok(RecorderMsg::Rejections(r)) = rx.try_recv() {
        rejections.extend(r);
    }
    let partial = if limit.is_some_and(|l| shown as usize >= l) {
        " (stopped at --limit)"
    } else {
        ""
    };
    eprintln!(
        "preview: {shown} selected; {} records read, {} rejected{partial}",
        stats.records(),
        stats.rejected()
    );
    for r in rejections.iter().take(10) {
        eprintln!("  rejected {}:{}: {}", r.origin, r.line, r.reason);
    }
    if rejections.len() > 10 {
        eprintln!("  … and {} more rejected", rejections.len() - 10);
    }
    Ok(0)
}
