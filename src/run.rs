//! One run, end to end: source → `events` → filter → action → outcomes → summary. Also the
//! `preview` command, which stops before the action.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::action::{Action, ActionContext};
use crate::event::{self, EnvelopeReader};
use crate::filter::{self, FilterSpec};
use crate::progress::Progress;
use crate::report::query::{print_batches, TableFormat};
use crate::report::{self, Recorder, RecorderMsg, RunSummary};
use crate::source::{SourceSpec, SourceStats};
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
/// One selection and its action. A command is one route; a plan or a bus's rules are several,
/// served by one read of the source.
pub struct Route {
    /// The route's name (none for a single command): `outcomes.route`.
    pub name: Option<String>,
    pub filter: FilterSpec,
    pub action: Action,
    /// The driver's settings (concurrency, rate, retries).
    pub send: crate::action::driver::SendPolicy,
}

pub struct RunSpec {
    pub source: SourceSpec,
    pub routes: Vec<Route>,
    /// The command name for the summary of a run of several routes (`run`, `invoke`).
    pub command: Option<String>,
    /// The job this run is one worker of.
    pub job_id: Option<String>,
    /// Reports on S3: `report_dir` is then the local staging folder, uploaded as the run goes.
    pub report_remote: Option<Arc<crate::report::remote::Remote>>,
    pub dry_run: bool,
    pub report_dir: PathBuf,
    pub dead_letter: Option<PathBuf>,
    pub output: OutputFormat,
    /// After SIGINT / SIGTERM, how long requests in flight may take to finish.
    pub grace_period: Duration,
    /// The command line (after the program name), saved so that the run can be resumed.
    pub argv: Vec<String>,
    /// When resuming: the run resumed, and the events it already finished (left out); when
    /// re-driving (the flag): the run, and the only events to take.
    pub resume: Option<(String, Arc<crate::resume::Done>, bool)>,
    /// When resuming: the events that were in flight when the resumed run stopped (their
    /// delivery is unknown); their outcomes here count that earlier attempt.
    pub in_flight: Option<Arc<crate::resume::Done>>,
}

/// Decoding threads: the reader is one more, and DataFusion and the action share the rest.
fn decode_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

/// The source as a DataFusion stream; rejections go to the recorder as they are found. The
/// stream ends early once `stop` is set (a signal), and `reached` counts the records that went
/// on to the filter (events and rejections).
fn events_stream(
    source: &SourceSpec,
    stats: Arc<SourceStats>,
    rejections: report::RecorderTx,
    stop: Arc<AtomicBool>,
    reached: Arc<AtomicU64>,
    done: Option<(Arc<crate::resume::Done>, bool, Arc<AtomicU64>)>,
    // Both set once the selection is planned, before the stream is first polled: the
    // checkpoint log (when the run keeps one) and the row filters the source applies.
    (checkpoints, prefilter): (Arc<OnceLock<crate::resume::CheckpointLog>>, filter::Pushdown),
    // Whether `done` applies to the events here (one route), or only to rejections (several
    // routes: each leaves out its own events, see `route_input`).
    rows_too: bool,
) -> SendableRecordBatchStream {
    let mut seq = 0u64;
    // The source starts when the plan first asks for events, so that it knows the prefilter.
    let source = source.clone();
    let stream = futures::stream::once(async move {
        let mut spec = source;
        spec.prefilter = prefilter.get().cloned();
        crate::source::stream(&spec, stats, decode_parallelism())
    })
    .flatten()
    .take_while(move |_| futures::future::ready(!stop.load(Ordering::Relaxed)))
    .map(move |decoded| match decoded {
        Ok(mut d) => {
            // Slices are numbered in the order the filter takes them (see resume::starts_of).
            seq += 1;
            if let Some(log) = checkpoints.get() {
                log.write(seq, &d.marks);
            }
            if let Some((done, only, skipped)) = &done {
                // Resuming: what already has an outcome is not read again. Re-driving: only
                // what ended failed, rejected or skipped is.
                let before = d.batch.num_rows() + d.rejections.len();
                d.rejections.retain(|r| done.contains(&r.origin, r.position) == *only);
                if rows_too {
                    d.batch = leave_out_done(&d.batch, done, *only, None)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                }
                skipped.fetch_add(
                    (before - d.batch.num_rows() - d.rejections.len()) as u64,
                    Ordering::Relaxed,
                );
            }
            // Left out by the prefilter: read and filtered, though no row was built.
            reached.fetch_add(
                (d.batch.num_rows() + d.rejections.len()) as u64 + d.prefiltered,
                Ordering::Relaxed,
            );
            if !d.rejections.is_empty() {
                rejections.send(RecorderMsg::Rejections(d.rejections));
            }
            Ok(d.batch)
        }
        Err(e) => Err(DataFusionError::External(Box::new(e))),
    });
    Box::pin(RecordBatchStreamAdapter::new(event::source_schema(), stream))
}

/// The rows of an `events` batch whose (origin, position) has no outcome yet.
fn leave_out_done(
    batch: &arrow::array::RecordBatch,
    done: &crate::resume::Done,
    only: bool,
    route: Option<&str>,
) -> Result<arrow::array::RecordBatch> {
    use arrow::array::{Array, AsArray, BooleanArray};
    let origin = batch
        .column_by_name(event::ORIGIN)
        .map(|c| c.as_string::<i32>().clone());
    let position = batch
        .column_by_name(event::POSITION)
        .map(|c| c.as_primitive::<arrow::datatypes::UInt64Type>().clone());
    let (Some(origin), Some(position)) = (origin, position) else {
        return Ok(batch.clone());
    };
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let listed = origin.is_valid(i)
                && position.is_valid(i)
                && done.contains(&crate::resume::route_key(route, origin.value(i)), position.value(i));
            Some(listed == only)
        })
        .collect();
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

/// SIGINT / SIGTERM during a run. The first stops reading and lets the work in flight finish
/// within the grace period; the second, or the end of the grace period, stops at once.
struct Interrupt {
    stop: Arc<AtomicBool>,
    first: Arc<tokio::sync::Notify>,
    second: Arc<tokio::sync::Notify>,
    /// The work in flight was abandoned (grace period over, or a second signal).
    hard: Arc<AtomicBool>,
    /// A second signal: stop at once, not even turning the outcomes log into Parquet.
    at_once: Arc<AtomicBool>,
}

impl Interrupt {
    fn listen(grace: Duration) -> Self {
        let me = Self {
            stop: Arc::new(AtomicBool::new(false)),
            first: Arc::new(tokio::sync::Notify::new()),
            second: Arc::new(tokio::sync::Notify::new()),
            hard: Arc::new(AtomicBool::new(false)),
            at_once: Arc::new(AtomicBool::new(false)),
        };
        let (stop, first, second) = (me.stop.clone(), me.first.clone(), me.second.clone());
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                return;
            };
            for n in 0..2 {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if n == 0 {
                    stop.store(true, Ordering::Relaxed);
                    first.notify_one();
                    eprintln!(
                        "rehydrate: stopping: no more events are read; requests in flight may finish for {} s (signal again to stop at once)",
                        grace.as_secs_f64()
                    );
                } else {
                    second.notify_one();
                }
            }
        });
        me
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Resolves when the run must stop at once: a second signal, or the grace period after the
    /// first.
    async fn hard_stop(&self, grace: Duration) {
        self.first.notified().await;
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = self.second.notified() => self.at_once.store(true, Ordering::Relaxed),
        }
        self.hard.store(true, Ordering::Relaxed);
    }
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

/// Appending failures to a file the run is reading would feed them back into it.
fn check_dead_letter_is_not_an_input(spec: &RunSpec) -> Result<()> {
    let Some(dl) = &spec.dead_letter else {
        return Ok(());
    };
    let parent = dl
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let Ok(dir) = std::fs::canonicalize(parent) else {
        return Ok(());
    };
    let dl = dir.join(dl.file_name().unwrap_or_default());
    for input in &spec.source.inputs {
        if let crate::source::Input::File(path) = input {
            if std::fs::canonicalize(path).is_ok_and(|p| p == dl) {
                return Err(Error::usage(format!(
                    "--dead-letter {}: is also an input (--from); the run would read its own failures. Choose another file",
                    dl.display()
                )));
            }
        }
    }
    Ok(())
}

/// A run id that sorts by start time and is unique across concurrent runs.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let random = h.finish() as u16;
    format!("{}-{random:04x}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Splits one stream of `events` batches into `n` streams that each see every batch (the
/// source is read once for every route). Bounded: the slowest route holds the source back.
fn fan_out(events: SendableRecordBatchStream, n: usize) -> Vec<SendableRecordBatchStream> {
    let schema = events.schema();
    let mut senders = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<datafusion::error::Result<arrow::array::RecordBatch>>(2);
        senders.push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        streams.push(Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream)) as SendableRecordBatchStream);
    }
    tokio::spawn(async move {
        let mut events = events;
        while let Some(item) = events.next().await {
            let mut alive = false;
            for tx in &senders {
                let copy = match &item {
                    Ok(b) => Ok(b.clone()),
                    Err(e) => Err(DataFusionError::External(e.to_string().into())),
                };
                alive |= tx.send(copy).await.is_ok();
            }
            if !alive {
                return;
            }
        }
    });
    streams
}

/// Plans `filter` over an empty `events` table: its SQL and pattern are checked without reading
/// anything (`rehydrate run --check`).
pub async fn check_filter(filter: &FilterSpec) -> Result<()> {
    let ctx = filter::session(8192)?;
    let empty: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
        event::source_schema(),
        futures::stream::empty(),
    ));
    filter::select(&ctx, empty, filter, None).await.map(|_| ())
}

/// A route's copy of the events without those the route already finished (resume) or with only
/// those it did not (re-drive).
fn route_input(
    input: SendableRecordBatchStream,
    done: Arc<crate::resume::Done>,
    only: bool,
    route: Option<String>,
    skipped: Arc<AtomicU64>,
) -> SendableRecordBatchStream {
    let schema = input.schema();
    let stream = input.map(move |batch| {
        let batch = batch?;
        let kept = leave_out_done(&batch, &done, only, route.as_deref())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        skipped.fetch_add((batch.num_rows() - kept.num_rows()) as u64, Ordering::Relaxed);
        Ok(kept)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// One route of a run, planned: its selection and its target checked.
struct PlannedRoute<'a> {
    route: &'a Route,
    selection: filter::Selection,
    name: Option<Arc<str>>,
}

/// Runs an actioning command and returns its exit code (0, or 3 when events failed or were
/// rejected). Errors that stop the run are returned after the summary has been saved.
pub async fn execute(spec: RunSpec) -> Result<i32> {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let stats = Arc::new(SourceStats::default());
    let (tx, rx) = report::RecorderTx::bounded();
    let interrupt = Interrupt::listen(spec.grace_period);
    let reached = Arc::new(AtomicU64::new(0));
    let already_done = Arc::new(AtomicU64::new(0));
    if spec.routes.is_empty() {
        return Err(Error::usage("nothing to do: the run has no routes"));
    }
    let many = spec.routes.len() > 1 || spec.routes[0].name.is_some();

    // Plan first: bad SQL is reported before anything is created on disk.
    let checkpoints = Arc::new(OnceLock::new());
    let prefilter = Arc::new(OnceLock::new());
    let events = events_stream(
        &spec.source,
        stats.clone(),
        tx.clone(),
        interrupt.stop.clone(),
        reached.clone(),
        spec.resume
            .as_ref()
            .map(|(_, done, only)| (done.clone(), *only, already_done.clone())),
        (checkpoints.clone(), prefilter.clone()),
        !many,
    );
    let inputs = match spec.routes.len() {
        1 => vec![events],
        n => fan_out(events, n),
    };
    // Resuming a run of several routes: each route leaves out what it finished itself.
    let inputs: Vec<SendableRecordBatchStream> = inputs
        .into_iter()
        .zip(&spec.routes)
        .map(|(input, route)| match (&spec.resume, many) {
            (Some((_, done, only)), true) => {
                route_input(input, done.clone(), *only, route.name.clone(), already_done.clone())
            }
            _ => input,
        })
        .collect();
    let mut planned = Vec::with_capacity(spec.routes.len());
    for (route, input) in spec.routes.iter().zip(inputs) {
        // Each route has a session of its own: its own `events` view over its copy of the stream.
        let ctx = filter::session(spec.source.batch_size)?;
        // One route reads the source alone: the source may apply its row filters itself.
        let pushdown = (!many).then(|| prefilter.clone());
        let selection = filter::select(&ctx, input, &route.filter, pushdown)
            .await
            .map_err(|e| in_route(route, e))?;
        // What the target needs from the selection is checked before anything exists on disk.
        let data_schema = crate::action::strip_columns(
            &arrow::array::RecordBatch::new_empty(Arc::new(selection.df.schema().as_arrow().clone())),
            &selection.helper_columns,
        )?
        .schema();
        route
            .action
            .check(&data_schema, selection.is_whole_events(), spec.dry_run)
            .await
            .map_err(|e| in_route(route, e))?;
        planned.push(PlannedRoute {
            route,
            selection,
            name: route.name.as_deref().map(Arc::from),
        });
    }

    check_dead_letter_is_not_an_input(&spec)?;

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
    let target = match many {
        false => spec.routes[0].action.target(),
        true => format!("{} routes", spec.routes.len()),
    };
    let route_targets = spec
        .routes
        .iter()
        .filter_map(|r| Some((r.name.clone()?, r.action.target())))
        .collect();
    let recorder = Recorder::start(
        &run_id,
        &run_dir,
        &target,
        route_targets,
        dead_letter.clone(),
        spec.in_flight.clone(),
        rx,
    )?;
    let in_flight = match spec.dry_run {
        true => None,
        false => Some(Arc::new(crate::resume::InFlightLog::create(&run_dir)?)),
    };
    // Checkpoints, and the events the filter passed, let a resume start each origin where its
    // settled part ends; only for one route whose selection keeps the source's order and whose
    // rows are events (several routes settle an origin each at their own pace).
    let matched_log = match !spec.dry_run
        && !many
        && planned[0].selection.keys.is_some()
        && filter::keeps_source_order(&planned[0].selection)
    {
        true => {
            let _ = checkpoints.set(crate::resume::CheckpointLog::create(&run_dir)?);
            Some(Arc::new(crate::resume::InFlightLog::create_named(
                &run_dir,
                crate::resume::MATCHED_LOG,
            )?))
        }
        false => None,
    };
    let progress = Progress::new(stats.clone(), spec.source.total_bytes);
    let counters = Arc::new(crate::action::driver::Counters::default());
    let command = match many {
        false => spec.routes[0].action.command().to_owned(),
        true => spec.command.clone().unwrap_or_else(|| "run".to_owned()),
    };
    let filter_text = match many {
        false => spec.routes[0].filter.to_string(),
        true => format!("{} routes", spec.routes.len()),
    };
    let mut summary = RunSummary {
        run_id: run_id.clone(),
        status: "running".into(),
        pid: Some(std::process::id()),
        resumed_from: spec.resume.as_ref().map(|(id, _, _)| id.clone()),
        already_done: 0,
        in_flight_resent: 0,
        command: command.clone(),
        source: spec.source.description.clone(),
        filter: filter_text.clone(),
        target: target.clone(),
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        finished_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        read: 0,
        rejected: 0,
        not_events: 0,
        filtered: 0,
        matched: 0,
        succeeded: 0,
        failed: 0,
        skipped: 0,
        duration_ms: 0,
        events_per_s: 0.0,
        bytes_read: 0,
        requests: 0,
        retries: 0,
        bytes_sent: 0,
        dry_run: spec.dry_run,
        exit_code: 0,
        dead_letter: None,
        error: None,
        rehydrate_version: env!("CARGO_PKG_VERSION").into(),
        job_id: spec.job_id.clone(),
        shard: spec.source.shard.map(|s| s.to_string()),
        routes: Vec::new(),
    };
    // Saved now, so that a run killed before its end is still seen by `rehydrate report`.
    report::save_summary(&run_dir, &summary)?;
    // A shard or job taken from the engine's environment is saved with the command line, so
    // that a resume elsewhere takes the same part of the store into the same job.
    let mut argv = spec.argv.clone();
    if argv.first().is_some_and(|c| c != "run") {
        if let (Some(shard), false) = (spec.source.shard, argv.iter().any(|a| a == "--shard")) {
            argv.extend(["--shard".to_owned(), shard.to_string()]);
        }
        if let (Some(job), false) = (&spec.job_id, argv.iter().any(|a| a == "--job-id")) {
            argv.extend(["--job-id".to_owned(), job.clone()]);
        }
    }
    crate::resume::save(&run_dir, &argv)?;
    // Reports on S3: the run's files go up now and every few seconds, and at the end.
    let uploader = match &spec.report_remote {
        Some(remote) => {
            remote.upload_run(&run_dir, false).await?;
            let (remote, dir) = (remote.clone(), run_dir.clone());
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(crate::report::remote::UPLOAD_EVERY).await;
                    if let Err(e) = remote.upload_run(&dir, false).await {
                        tracing::warn!("uploading the report: {e}");
                    }
                }
            }))
        }
        None => None,
    };

    // `matched` is counted where the filter emits rows, apart from the outcomes, so an outcome
    // that never arrives is a gap to report, not a silent "filtered".
    let matched_rows: Vec<Arc<AtomicU64>> = planned.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut contexts = Vec::with_capacity(planned.len());
    for p in &planned {
        contexts.push(ActionContext {
            run_id: run_id.clone(),
            dry_run: spec.dry_run,
            keys: p.selection.keys.clone(),
            helper_columns: p.selection.helper_columns.clone(),
            outcomes: tx.clone(),
            progress: progress.clone(),
            send: p.route.send.clone(),
            counters: counters.clone(),
            stop: interrupt.stop.clone(),
            in_flight: in_flight.clone(),
            route: p.name.clone(),
        });
    }
    drop(tx);
    let work = {
        let runs = planned
            .iter()
            .zip(&contexts)
            .zip(&matched_rows)
            .map(|((p, ctx), counter)| {
                let matched_log = matched_log.clone();
                let progress = progress.clone();
                let counter = counter.clone();
                async move {
                    let stream = p.selection.df.clone().execute_stream().await?;
                    let schema = stream.schema();
                    let keys = p.selection.keys.clone();
                    let counted = stream.inspect(move |b| {
                        if let Ok(b) = b {
                            counter.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                            progress.add_matched(b.num_rows() as u64);
                            if let Some(log) = &matched_log {
                                let rows = crate::action::RowKeys::new(b, keys.as_ref());
                                log.mark(true, (0..rows.len()).filter_map(|i| rows.place(i)));
                            }
                        }
                    });
                    let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(schema, counted));
                    p.route.action.run(stream, ctx).await.map_err(|e| in_route(p.route, e))
                }
            });
        // Every route runs to its end (one failing does not abandon the others' work in
        // flight); the first error is the run's.
        futures::future::join_all(runs).map(|results| results.into_iter().collect::<Result<Vec<()>>>().map(|_| ()))
    };
    let result = tokio::select! {
        r = work => r.map_err(plain),
        () = interrupt.hard_stop(spec.grace_period) => Ok(()),
    };
    progress.finish();
    let hard = interrupt.hard.load(Ordering::Relaxed);
    if interrupt.at_once.load(Ordering::Relaxed) {
        // Stop at once: the log stays as it is (the report reads it) instead of becoming
        // outcomes.parquet.
        recorder.keep_log();
    }
    drop(contexts);
    drop(planned);
    let totals = recorder.finish()?;

    let read = reached.load(Ordering::Relaxed);
    let (requests, retries, bytes_sent) = counters.get();
    let matched: u64 = matched_rows.iter().map(|m| m.load(Ordering::Relaxed)).sum();
    let outcomes = totals.succeeded + totals.failed + totals.skipped - totals.skipped_at_source;
    let interrupted = interrupt.interrupted();
    let result = match result {
        Ok(()) if !interrupted && outcomes != matched => Err(Error::Internal(format!(
            "{matched} events were matched but {outcomes} outcomes were recorded: {} missing",
            matched as i64 - outcomes as i64
        ))),
        other => other,
    };
    // A DynamoDB export whose files hold other counts than its manifest says: what was read is
    // actioned, but the store read is not the one the manifest describes.
    let mismatches = std::mem::take(&mut *stats.count_mismatches.lock().unwrap_or_else(|e| e.into_inner()));
    let result = match result {
        Ok(()) if !mismatches.is_empty() && !interrupted => Err(Error::Input {
            path: PathBuf::from(&spec.source.description),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "item counts disagree with the manifest: {}; the export may be incomplete or altered: export again, or check the data files",
                    mismatches.join("; ")
                ),
            ),
        }),
        other => other,
    };
    let duration = t0.elapsed();
    let exit_code = match &result {
        _ if interrupted => 130,
        Err(e) => e.exit_code(),
        Ok(()) if totals.failed > 0 || totals.rejected > 0 => 3,
        Ok(()) => 0,
    };
    let error = match &result {
        Err(e) => Some(e.to_string()),
        Ok(()) if interrupted => Some(format!(
            "interrupted by a signal: {} of {matched} matched events have an outcome{}",
            outcomes,
            if hard {
                " (stopped at once: requests in flight were abandoned)"
            } else {
                ""
            }
        )),
        Ok(()) => None,
    };
    let unfiltered = read.saturating_sub(totals.rejected + totals.skipped_at_source);
    let routes: Vec<report::RouteSummary> = match many {
        false => Vec::new(),
        true => spec
            .routes
            .iter()
            .zip(&matched_rows)
            .map(|(r, m)| {
                let name = r.name.clone().unwrap_or_default();
                let t = totals.by_route.get(&name).cloned().unwrap_or_default();
                let matched = m.load(Ordering::Relaxed);
                report::RouteSummary {
                    route: name,
                    command: r.action.command().to_owned(),
                    filter: r.filter.to_string(),
                    target: r.action.target(),
                    filtered: unfiltered.saturating_sub(matched),
                    matched,
                    succeeded: t.succeeded,
                    failed: t.failed,
                    skipped: t.skipped,
                }
            })
            .collect(),
    };
    summary = RunSummary {
        run_id: run_id.clone(),
        status: if interrupted {
            "interrupted"
        } else if result.is_err() {
            "failed"
        } else {
            "completed"
        }
        .into(),
        pid: None,
        resumed_from: spec.resume.as_ref().map(|(id, _, _)| id.clone()),
        already_done: already_done.load(Ordering::Relaxed),
        in_flight_resent: totals.in_flight_resent,
        command,
        source: spec.source.description.clone(),
        filter: filter_text,
        target,
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        finished_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        read,
        rejected: totals.rejected,
        not_events: totals.skipped_at_source,
        // Whatever was read and neither rejected nor matched was filtered out (per route, in a
        // run of several). (A --query that aggregates makes rows that are not events; matched
        // then counts its rows.)
        filtered: match many {
            false => unfiltered.saturating_sub(matched),
            true => routes.iter().map(|r| r.filtered).sum(),
        },
        matched,
        succeeded: totals.succeeded,
        failed: totals.failed,
        skipped: totals.skipped - totals.skipped_at_source,
        duration_ms: duration.as_millis() as u64,
        events_per_s: read as f64 / duration.as_secs_f64().max(1e-9),
        bytes_read: stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        requests,
        retries,
        bytes_sent,
        dry_run: spec.dry_run,
        exit_code,
        dead_letter: (totals.dead_letters > 0).then(|| dead_letter.display().to_string()),
        error,
        rehydrate_version: env!("CARGO_PKG_VERSION").into(),
        job_id: spec.job_id.clone(),
        shard: spec.source.shard.map(|s| s.to_string()),
        routes,
    };
    report::save_summary(&run_dir, &summary)?;
    if let Some(remote) = &spec.report_remote {
        if let Some(u) = uploader {
            u.abort();
        }
        remote.upload_run(&run_dir, true).await?;
    }
    match spec.output {
        OutputFormat::Text => eprint!(
            "{}",
            report::human_summary(
                &summary,
                &totals.named_failures,
                &spec
                    .report_remote
                    .as_ref()
                    .map_or_else(|| spec.report_dir.clone(), |r| PathBuf::from(&r.url)),
            )
        ),
        OutputFormat::Json => {
            print_line(&serde_json::to_string(&summary).map_err(|e| Error::Internal(e.to_string()))?)?;
            if !totals.named_failures.is_empty() {
                for f in &totals.named_failures {
                    eprintln!("{f}");
                }
            }
        }
    }
    match result {
        Ok(()) => Ok(exit_code),
        Err(_) if interrupted => Ok(exit_code),
        Err(e) => Err(e),
    }
}

/// An error of one route of several, prefixed with the route's name.
fn in_route(route: &Route, e: Error) -> Error {
    match (&route.name, e) {
        (Some(name), Error::Usage(m)) => Error::Usage(format!("route {name}: {m}")),
        (Some(name), Error::Sql(m)) => Error::Sql(format!("route {name}: {m}")),
        (Some(name), Error::Target { target, message }) => Error::Target {
            target: format!("route {name}: {target}"),
            message,
        },
        (_, e) => e,
    }
}

fn print_line(text: &str) -> Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
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
    let prefilter = Arc::new(OnceLock::new());
    let events = events_stream(
        &source,
        stats.clone(),
        report::RecorderTx::Unbounded(tx),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        None,
        (Arc::new(OnceLock::new()), prefilter.clone()),
        true,
    );
    let selection = filter::select(&ctx, events, &filter_spec, Some(prefilter)).await?;
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
        PreviewFormat::Count => print_line(&shown.to_string())?,
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
