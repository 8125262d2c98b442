//! What a run did: one outcome per actioned or rejected event, appended as it happens to
//! `<report-dir>/<run-id>/outcomes.arrows` (an Arrow IPC stream, flushed whenever the recorder
//! has caught up, so a killed run still says what became of every event it reported) and turned
//! into `outcomes.parquet` at the end; failed and rejected events to the dead-letter file
//! (flushed likewise); and the run summary (`run.json`, written at the start with status
//! `running` and again at the end), printed for people (stderr) or scripts (stdout, JSON).

pub mod query;
pub mod remote;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Float64Builder, RecordBatch, StringBuilder, UInt32Builder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::source::Rejection;
use crate::{Error, Result};

/// How one event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    Rejected,
    /// Not attempted: a dry run, or a later event of an ordering key whose earlier event failed.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
            Status::Skipped => "skipped",
        }
    }
}

/// One row of `outcomes`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub event_id: Option<String>,
    pub origin: Option<String>,
    pub position: Option<u64>,
    pub status: Status,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<f64>,
    /// The file or object that holds the event (stores written in files: Parquet).
    pub object_key: Option<String>,
    /// The line to append to the dead-letter file, for failed events.
    pub dead_letter: Option<String>,
    /// The route of a run of several (a plan's route, a bus rule's target); set by the action
    /// context.
    pub route: Option<Arc<str>>,
}

impl Outcome {
    pub fn new(event_id: Option<String>, origin: Option<String>, position: Option<u64>, status: Status) -> Self {
        Self {
            event_id,
            origin,
            position,
            status,
            attempts: 0,
            error_code: None,
            error_message: None,
            latency_ms: None,
            object_key: None,
            dead_letter: None,
            route: None,
        }
    }
}

/// The schema of `outcomes.parquet` and of the `outcomes` table.
pub fn outcomes_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("run_id", DataType::Utf8, false),
                Field::new("event_id", DataType::Utf8, true),
                Field::new("origin", DataType::Utf8, true),
                Field::new("position", DataType::UInt64, true),
                Field::new("target", DataType::Utf8, false),
                Field::new("status", DataType::Utf8, false),
                Field::new("attempts", DataType::UInt32, false),
                Field::new("error_code", DataType::Utf8, true),
                Field::new("error_message", DataType::Utf8, true),
                Field::new("latency_ms", DataType::Float64, true),
                Field::new("object_key", DataType::Utf8, true),
                Field::new("route", DataType::Utf8, true),
            ]))
        })
        .clone()
}

/// The run summary: `run.json`, the `runs` table, and `--output json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    /// `running` (as written at the start), `completed`, `interrupted` (a signal, or a run killed
    /// before it could say: `rehydrate report` tells), or `failed` (an error stopped it).
    #[serde(default = "completed")]
    pub status: String,
    /// The process, while it runs: `rehydrate report` tells a killed run from a live one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The run this one resumed (`rehydrate resume`).
    #[serde(default)]
    pub resumed_from: Option<String>,
    /// Events left out because the resumed run(s) had already given them an outcome.
    #[serde(default)]
    pub already_done: u64,
    /// Events actioned again that were in flight when the resumed run stopped: their first
    /// delivery is unknown, so they may have arrived twice (`outcomes.attempts` counts it).
    #[serde(default)]
    pub in_flight_resent: u64,
    pub command: String,
    pub source: String,
    pub filter: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    pub read: u64,
    pub rejected: u64,
    /// Records read that are rightly not events (deletions in an incremental DynamoDB export):
    /// `outcomes` rows of status `skipped`, code `NotAnEvent`; they never reach the filter.
    #[serde(default)]
    pub not_events: u64,
    pub filtered: u64,
    pub matched: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub duration_ms: u64,
    pub events_per_s: f64,
    pub bytes_read: u64,
    /// Requests sent (commits, for stores written in transactions or files); in a dry run, the
    /// requests it would have sent.
    #[serde(default)]
    pub requests: u64,
    /// Items sent again after a retryable failure.
    #[serde(default)]
    pub retries: u64,
    /// Bytes of items sent, by the target's size rule.
    #[serde(default)]
    pub bytes_sent: u64,
    pub dry_run: bool,
    pub exit_code: i32,
    pub dead_letter: Option<String>,
    pub error: Option<String>,
    pub rehydrate_version: String,
    /// The job this run is one worker of (`--job-id`, or the engine's job name).
    #[serde(default)]
    pub job_id: Option<String>,
    /// The worker's part of the store (`INDEX/COUNT`).
    #[serde(default)]
    pub shard: Option<String>,
    /// A run of several routes (a plan, a bus's rules): each route's own counts. The run's
    /// `matched`, `filtered`, `succeeded`, `failed` and `skipped` are their sums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSummary>,
}

/// One route of a run of several.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteSummary {
    pub route: String,
    pub command: String,
    pub filter: String,
    pub target: String,
    /// read = rejected + not_events + filtered + matched, for each route.
    pub filtered: u64,
    pub matched: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Outcome counts of one route.
#[derive(Debug, Clone, Default)]
pub struct RouteTotals {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

fn completed() -> String {
    "completed".into()
}

/// The `runs` table schema (the columns of [`RunSummary`]).
pub fn runs_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("resumed_from", DataType::Utf8, true),
        Field::new("already_done", DataType::UInt64, false),
        Field::new("in_flight_resent", DataType::UInt64, false),
        Field::new("command", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("filter", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("started_at", ts.clone(), false),
        Field::new("finished_at", ts, false),
        Field::new("read", DataType::UInt64, false),
        Field::new("rejected", DataType::UInt64, false),
        Field::new("not_events", DataType::UInt64, false),
        Field::new("filtered", DataType::UInt64, false),
        Field::new("matched", DataType::UInt64, false),
        Field::new("succeeded", DataType::UInt64, false),
        Field::new("failed", DataType::UInt64, false),
        Field::new("skipped", DataType::UInt64, false),
        Field::new("duration_ms", DataType::UInt64, false),
        Field::new("events_per_s", DataType::Float64, false),
        Field::new("bytes_read", DataType::UInt64, false),
        Field::new("requests", DataType::UInt64, false),
        Field::new("retries", DataType::UInt64, false),
        Field::new("bytes_sent", DataType::UInt64, false),
        Field::new("dry_run", DataType::Boolean, false),
        Field::new("exit_code", DataType::Int32, false),
        Field::new("dead_letter", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("rehydrate_version", DataType::Utf8, false),
        Field::new("job_id", DataType::Utf8, true),
        Field::new("shard", DataType::Utf8, true),
    ]))
}

/// How many messages may wait for the recorder before senders wait for it (back-pressure
/// instead of growth, when outcomes come faster than they can be written).
pub const RECORDER_QUEUE: usize = 256;

/// The sending side of the recorder's channel.
#[derive(Clone)]
pub enum RecorderTx {
    /// A run's recorder: bounded, a full queue makes the sender wait.
    Bounded(mpsc::Sender<RecorderMsg>),
    /// `preview`, which only collects rejections to show.
    Unbounded(mpsc::UnboundedSender<RecorderMsg>),
}

impl RecorderTx {
    /// A bounded channel to a recorder.
    pub fn bounded() -> (Self, mpsc::Receiver<RecorderMsg>) {
        let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
        (RecorderTx::Bounded(tx), rx)
    }

    /// Sends `msg`, waiting while the recorder's queue is full. The recorder runs on a thread of
    /// its own, so the wait always ends; if the recorder has stopped, its own error is the one
    /// the run reports.
    pub fn send(&self, msg: RecorderMsg) {
        match self {
            RecorderTx::Bounded(tx) => {
                let mut msg = msg;
                loop {
                    match tx.try_send(msg) {
                        Ok(()) => return,
                        Err(mpsc::error::TrySendError::Full(m)) => {
                            msg = m;
                            std::thread::sleep(std::time::Duration::from_micros(200));
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            RecorderTx::Unbounded(tx) => {
                let _ = tx.send(msg);
            }
        }
    }
}

pub enum RecorderMsg {
    Rejections(Vec<Rejection>),
    Outcomes(Vec<Outcome>),
    /// Many events with one outcome, kept as Arrow arrays: a committed file of a million rows
    /// costs a few arrays, not a million structs.
    Bulk(BulkOutcome),
}

/// The same outcome for every event named by `event_id`, `origin` and `position` (Utf8, Utf8 or
/// a dictionary of Utf8, UInt64; each may be absent when rows are not events).
pub struct BulkOutcome {
    pub rows: usize,
    pub event_id: Option<ArrayRef>,
    pub origin: Option<ArrayRef>,
    pub position: Option<ArrayRef>,
    pub status: Status,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub latency_ms: Option<f64>,
    pub object_key: Option<String>,
    pub route: Option<Arc<str>>,
}

/// Totals the recorder counted, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub rejected: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Of `skipped`: records the source read that are rightly not events (deletions in an
    /// incremental export); they never reach the filter.
    pub skipped_at_source: u64,
    pub dead_letters: u64,
    /// Outcomes of events that were in flight when the resumed run stopped.
    pub in_flight_resent: u64,
    /// The first failures and rejections, by name, for the human summary.
    pub named_failures: Vec<String>,
    /// Outcome counts by route (runs of several routes).
    pub by_route: std::collections::HashMap<String, RouteTotals>,
}

const NAMED_FAILURES: usize = 20;
const OUTCOME_BATCH: usize = 8192;
/// How long the recorder gathers outcomes before it writes them (a killed run loses at most
/// this much more than the channel held: those events are in flight and resent on resume).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(20);

/// Writes outcomes and dead letters on its own thread as the run produces them, until every
/// sender of its channel is dropped.
pub struct Recorder {
    handle: std::thread::JoinHandle<Result<Totals>>,
    /// Whether the log becomes outcomes.parquet at the end (not after a second signal).
    convert: Arc<OnceLock<bool>>,
}

impl Recorder {
    /// `target` names the target of outcomes without a route; `routes` the target of each route.
    pub fn start(
        run_id: &str,
        run_dir: &Path,
        target: &str,
        routes: std::collections::HashMap<String, String>,
        dead_letter: PathBuf,
        in_flight_before: Option<Arc<crate::resume::Done>>,
        mut rx: mpsc::Receiver<RecorderMsg>,
    ) -> Result<Self> {
        let log_path = run_dir.join(OUTCOMES_LOG);
        let file = File::create(&log_path).map_err(|e| Error::Report {
            path: log_path.clone(),
            message: e.to_string(),
        })?;
        let options = IpcWriteOptions::default().try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))?;
        let writer = StreamWriter::try_new_with_options(BufWriter::new(file), &outcomes_schema(), options)?;
        let partial = run_dir.join(OUTCOMES_PARTIAL);
        let parquet = File::create(&partial)
            .map_err(|e| Error::Report {
                path: partial.clone(),
                message: e.to_string(),
            })
            .and_then(|f| Ok(ArrowWriter::try_new(f, outcomes_schema(), Some(outcomes_properties()))?))?;
        let mut state = RecorderState {
            parquet: Some((parquet, partial)),
            run_id: run_id.to_owned(),
            target: target.to_owned(),
            route_targets: routes,
            writer,
            pending: OutcomeBuilders::default(),
            dead_letter_path: dead_letter,
            dead_letter: None,
            totals: Totals::default(),
            in_flight_before: in_flight_before.filter(|d| d.events > 0),
        };
        let run_dir = run_dir.to_owned();
        let convert = Arc::new(OnceLock::new());
        let convert_at_end = convert.clone();
        // Outcomes that arrive within a few milliseconds of each other are written together:
        // one log message (and its LZ4 frames) for many requests' outcomes, not one each.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let handle = std::thread::Builder::new()
            .name("rehydrate-report".into())
            .spawn(move || {
                while let Some(msg) = rx.blocking_recv() {
                    state.handle(msg)?;
                    let until = std::time::Instant::now() + COALESCE;
                    loop {
                        while let Ok(msg) = rx.try_recv() {
                            state.handle(msg)?;
                        }
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        let Some(rt) = runtime.as_ref().filter(|_| !left.is_zero()) else {
                            break;
                        };
                        match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                            Ok(Some(msg)) => state.handle(msg)?,
                            Ok(None) | Err(_) => break, // every sender gone, or the time is up
                        }
                    }
                    // Everything that has arrived is on disk before the recorder waits again.
                    state.sync()?;
                }
                state.finish(&run_dir, convert_at_end.get().copied().unwrap_or(true))
            })
            .map_err(|e| Error::Internal(format!("spawning the report writer: {e}")))?;
        Ok(Self { handle, convert })
    }

    /// Waits for every sender to be dropped and everything sent to be written, then closes
    /// the files.
    /// Leaves the outcomes log as it is at the end (after a second signal: stop at once; the
    /// report reads the log). Call before the last sender is dropped.
    pub fn keep_log(&self) {
        let _ = self.convert.set(false);
    }

    pub fn finish(self) -> Result<Totals> {
        self.handle
            .join()
            .map_err(|_| Error::Internal("the report writer panicked".into()))?
    }
}

#[derive(Default)]
struct OutcomeBuilders {
    event_id: StringBuilder,
    origin: StringBuilder,
    position: UInt64Builder,
    status: StringBuilder,
    attempts: UInt32Builder,
    error_code: StringBuilder,
    error_message: StringBuilder,
    latency_ms: Float64Builder,
    object_key: StringBuilder,
    target: StringBuilder,
    route: StringBuilder,
    rows: usize,
}

/// The outcomes log of a run, and its final form.
pub const OUTCOMES_LOG: &str = "outcomes.arrows";
pub const OUTCOMES: &str = "outcomes.parquet";

struct RecorderState {
    run_id: String,
    target: String,
    route_targets: std::collections::HashMap<String, String>,
    writer: StreamWriter<BufWriter<File>>,
    /// `outcomes.parquet`, written as the log is (under a temporary name until the end), so
    /// that the end of a run does not wait for the whole log to be converted.
    parquet: Option<(ArrowWriter<File>, PathBuf)>,
    pending: OutcomeBuilders,
    dead_letter_path: PathBuf,
    dead_letter: Option<BufWriter<File>>,
    totals: Totals,
    /// When resuming: the events in flight at the resumed run's stop.
    in_flight_before: Option<Arc<crate::resume::Done>>,
}

/// A record as one line: verbatim, with line breaks folded to spaces so that each dead letter is
/// one line (white space between JSON tokens means the same either way, and a JSON string cannot
/// hold a raw line break).
pub fn one_line(record: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if record.iter().any(|&b| b == b'\n' || b == b'\r') {
        record
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect::<Vec<u8>>()
            .into()
    } else {
        record.into()
    }
}

impl RecorderState {
    fn handle(&mut self, msg: RecorderMsg) -> Result<()> {
        match msg {
            RecorderMsg::Rejections(rejections) => {
                for r in rejections {
                    if r.skipped {
                        let mut o = Outcome::new(None, Some(r.origin.to_string()), Some(r.position), Status::Skipped);
                        o.error_code = Some("NotAnEvent".into());
                        o.error_message = Some(r.reason);
                        self.totals.skipped_at_source += 1;
                        self.push(o)?;
                        continue;
                    }
                    let message = format!("{}:{}: {}", r.origin, r.line, r.reason);
                    self.name_failure(&message);
                    let mut o = Outcome::new(None, Some(r.origin.to_string()), Some(r.position), Status::Rejected);
                    o.error_code = Some("Rejected".into());
                    o.error_message = Some(message);
                    self.write_dead_letter(&one_line(&r.raw))?;
                    self.push(o)?;
                }
            }
            RecorderMsg::Bulk(bulk) => self.write_bulk(bulk)?,
            RecorderMsg::Outcomes(outcomes) => {
                for o in outcomes {
                    if o.status == Status::Failed {
                        let place = match (&o.event_id, &o.origin, o.position) {
                            (Some(id), Some(origin), Some(p)) => {
                                format!("event {id} ({origin}:{p})")
                            }
                            (Some(id), _, _) => format!("event {id}"),
                            _ => "a row".to_owned(),
                        };
                        let msg = format!(
                            "{place}: {}{}",
                            o.error_code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(),
                            o.error_message.as_deref().unwrap_or("failed")
                        );
                        self.name_failure(&msg);
                    }
                    if let Some(line) = &o.dead_letter {
                        self.write_dead_letter(line.as_bytes())?;
                    }
                    self.push(o)?;
                }
            }
        }
        Ok(())
    }

    fn write_bulk(&mut self, b: BulkOutcome) -> Result<()> {
        if b.rows == 0 {
            return Ok(());
        }
        if b.status == Status::Failed {
            let msg = format!(
                "{} events: {}{}",
                b.rows,
                b.error_code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(),
                b.error_message.as_deref().unwrap_or("failed")
            );
            self.name_failure(&msg);
        }
        self.flush()?;
        self.count(b.status, b.route.as_deref(), b.rows as u64);
        let rows = b.rows;
        let column = |a: Option<ArrayRef>, t: &DataType| -> Result<ArrayRef> {
            Ok(match a {
                Some(a) if a.data_type() == t => a,
                Some(a) => arrow::compute::cast(&a, t)?,
                None => arrow::array::new_null_array(t, rows),
            })
        };
        let repeat = |v: Option<&str>| -> ArrayRef { Arc::new(arrow::array::StringArray::from(vec![v; rows])) };
        let origin = column(b.origin, &DataType::Utf8)?;
        let position = column(b.position, &DataType::UInt64)?;
        let attempts = self.bulk_attempts(&origin, &position, b.attempts, rows, b.route.as_deref());
        let target = self.target_of(b.route.as_deref()).to_owned();
        let columns: Vec<ArrayRef> = vec![
            repeat(Some(&self.run_id)),
            column(b.event_id, &DataType::Utf8)?,
            origin,
            position,
            repeat(Some(&target)),
            repeat(Some(b.status.as_str())),
            attempts,
            repeat(b.error_code.as_deref()),
            repeat(b.error_message.as_deref()),
            Arc::new(arrow::array::Float64Array::from(vec![b.latency_ms; rows])),
            repeat(b.object_key.as_deref()),
            repeat(b.route.as_deref()),
        ];
        let batch = RecordBatch::try_new(outcomes_schema(), columns)?;
        self.writer.write(&batch)?;
        if let Some((parquet, _)) = self.parquet.as_mut() {
            parquet.write(&batch)?;
        }
        Ok(())
    }

    /// The attempts of a bulk outcome: one more for the events in flight at the resumed run's
    /// stop.
    fn bulk_attempts(
        &mut self,
        origin: &ArrayRef,
        position: &ArrayRef,
        attempts: u32,
        rows: usize,
        route: Option<&str>,
    ) -> ArrayRef {
        use arrow::array::{Array, AsArray};
        if self.in_flight_before.is_none() {
            return Arc::new(arrow::array::UInt32Array::from(vec![attempts; rows]));
        }
        let origin = origin.as_string::<i32>();
        let position = position.as_primitive::<arrow::datatypes::UInt64Type>();
        let values: Vec<u32> = (0..rows)
            .map(|i| {
                let o = origin
                    .is_valid(i)
                    .then(|| crate::resume::route_key(route, origin.value(i)).into_owned());
                let p = position.is_valid(i).then(|| position.value(i));
                attempts + u32::from(self.was_in_flight(o.as_deref(), p))
            })
            .collect();
        Arc::new(arrow::array::UInt32Array::from(values))
    }

    fn name_failure(&mut self, msg: &str) {
        if self.totals.named_failures.len() < NAMED_FAILURES {
            self.totals.named_failures.push(msg.to_owned());
        }
    }

    fn write_dead_letter(&mut self, line: &[u8]) -> Result<()> {
        let path = &self.dead_letter_path;
        let err = |e: std::io::Error| Error::Report {
            path: path.clone(),
            message: e.to_string(),
        };
        if self.dead_letter.is_none() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(err)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(err)?;
            self.dead_letter = Some(BufWriter::new(file));
        }
        let w = self.dead_letter.as_mut().unwrap();
        w.write_all(line).map_err(err)?;
        w.write_all(b"\n").map_err(err)?;
        self.totals.dead_letters += 1;
        Ok(())
    }

    /// Whether the event at this place was in flight when the resumed run stopped: its
    /// outcome here counts that attempt, whose result is unknown.
    fn was_in_flight(&mut self, origin: Option<&str>, position: Option<u64>) -> bool {
        let (Some(done), Some(origin), Some(position)) = (&self.in_flight_before, origin, position) else {
            return false;
        };
        let hit = done.contains(origin, position);
        self.totals.in_flight_resent += u64::from(hit);
        hit
    }

    fn push(&mut self, mut o: Outcome) -> Result<()> {
        if self.in_flight_before.is_some() && o.status != Status::Rejected {
            let key = o
                .origin
                .as_deref()
                .map(|origin| crate::resume::route_key(o.route.as_deref(), origin).into_owned());
            if self.was_in_flight(key.as_deref(), o.position) {
                o.attempts += 1;
            }
        }
        self.count(o.status, o.route.as_deref(), 1);
        // By field, not `target_of`, so that `pending` can be borrowed beside it.
        let target = route_target(&self.route_targets, &self.target, o.route.as_deref());
        self.pending.target.append_value(target);
        let b = &mut self.pending;
        b.route.append_option(o.route.as_deref());
        b.event_id.append_option(o.event_id);
        b.origin.append_option(o.origin);
        b.position.append_option(o.position);
        b.status.append_value(o.status.as_str());
        b.attempts.append_value(o.attempts);
        b.error_code.append_option(o.error_code);
        b.error_message.append_option(o.error_message);
        b.latency_ms.append_option(o.latency_ms);
        b.object_key.append_option(o.object_key);
        b.rows += 1;
        if b.rows >= OUTCOME_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn count(&mut self, status: Status, route: Option<&str>, n: u64) {
        match status {
            Status::Succeeded => self.totals.succeeded += n,
            Status::Failed => self.totals.failed += n,
            Status::Rejected => self.totals.rejected += n,
            Status::Skipped => self.totals.skipped += n,
        }
        if let Some(r) = route {
            let t = self.totals.by_route.entry(r.to_owned()).or_default();
            match status {
                Status::Succeeded => t.succeeded += n,
                Status::Failed => t.failed += n,
                Status::Skipped => t.skipped += n,
                Status::Rejected => {}
            }
        }
    }

    fn target_of(&self, route: Option<&str>) -> &str {
        route_target(&self.route_targets, &self.target, route)
    }

    fn flush(&mut self) -> Result<()> {
        let b = &mut self.pending;
        let rows = b.rows;
        if rows == 0 {
            return Ok(());
        }
        let repeat = |s: &str| -> ArrayRef {
            let mut sb = StringBuilder::with_capacity(rows, rows * s.len());
            for _ in 0..rows {
                sb.append_value(s);
            }
            Arc::new(sb.finish())
        };
        let columns: Vec<ArrayRef> = vec![
            repeat(&self.run_id),
            Arc::new(b.event_id.finish()),
            Arc::new(b.origin.finish()),
            Arc::new(b.position.finish()),
            Arc::new(b.target.finish()),
            Arc::new(b.status.finish()),
            Arc::new(b.attempts.finish()),
            Arc::new(b.error_code.finish()),
            Arc::new(b.error_message.finish()),
            Arc::new(b.latency_ms.finish()),
            Arc::new(b.object_key.finish()),
            Arc::new(b.route.finish()),
        ];
        b.rows = 0;
        let batch = RecordBatch::try_new(outcomes_schema(), columns)?;
        self.writer.write(&batch)?;
        if let Some((parquet, _)) = self.parquet.as_mut() {
            parquet.write(&batch)?;
        }
        Ok(())
    }

    /// Puts everything received so far on disk (the log and the dead letters).
    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.writer.flush()?;
        if let Some(w) = self.dead_letter.as_mut() {
            w.flush().map_err(|e| Error::Report {
                path: self.dead_letter_path.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn finish(mut self, run_dir: &Path, convert: bool) -> Result<Totals> {
        self.sync()?;
        self.writer.finish()?;
        drop(self.writer);
        drop(self.dead_letter.take());
        let report_err = |path: &Path, e: &dyn std::fmt::Display| Error::Report {
            path: path.to_owned(),
            message: e.to_string(),
        };
        match (convert, self.parquet.take()) {
            // Everything logged is in the Parquet file too: it takes the log's place.
            (true, Some((parquet, partial))) => {
                parquet.close()?;
                let done = run_dir.join(OUTCOMES);
                std::fs::rename(&partial, &done).map_err(|e| report_err(&done, &e))?;
                let log = run_dir.join(OUTCOMES_LOG);
                std::fs::remove_file(&log).map_err(|e| report_err(&log, &e))?;
            }
            (true, None) => log_to_parquet(run_dir)?,
            // Stopped at once: the log is what the report reads.
            (false, parquet) => {
                if let Some((parquet, partial)) = parquet {
                    drop(parquet);
                    let _ = std::fs::remove_file(partial);
                }
            }
        }
        Ok(self.totals)
    }
}

/// The outcomes a log holds: every complete batch (a run killed mid-write leaves a torn last
/// message, which is where reading stops).
pub fn read_log(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::Report {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let Ok(reader) = StreamReader::try_new(std::io::BufReader::new(file), None) else {
        return Ok(Vec::new());
    };
    // Logs of older versions lack the later columns: they are read as nulls.
    let schema = outcomes_schema();
    Ok(reader
        .map_while(|b| b.ok())
        .filter_map(|b| {
            let columns = schema
                .fields()
                .iter()
                .map(|f| {
                    b.column_by_name(f.name())
                        .cloned()
                        .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), b.num_rows()))
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns).ok()
        })
        .collect())
}

/// The target of a route's outcomes: its own, or the run's for outcomes without a route.
fn route_target<'a>(
    targets: &'a std::collections::HashMap<String, String>,
    run_target: &'a str,
    route: Option<&str>,
) -> &'a str {
    route.and_then(|r| targets.get(r)).map_or(run_target, String::as_str)
}

/// `outcomes.parquet` while it is written.
const OUTCOMES_PARTIAL: &str = "outcomes.parquet.partial";

/// How `outcomes.parquet` is written: small row groups (the writer holds a whole row group in
/// memory until it is full), zstd level 1 (the level `populate parquet` measured best).
fn outcomes_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
        .set_max_row_group_row_count(Some(64 * 1024))
        .set_column_dictionary_enabled("event_id".into(), false)
        .build()
}

/// Turns a run's outcomes log into `outcomes.parquet` (written under a temporary name, renamed
/// when complete), then removes the log.
pub fn log_to_parquet(run_dir: &Path) -> Result<()> {
    let log = run_dir.join(OUTCOMES_LOG);
    let partial = run_dir.join(OUTCOMES_PARTIAL);
    let report_err = |path: &Path, e: &dyn std::fmt::Display| Error::Report {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = File::create(&partial).map_err(|e| report_err(&partial, &e))?;
    let mut writer = ArrowWriter::try_new(file, outcomes_schema(), Some(outcomes_properties()))?;
    let source = File::open(&log).map_err(|e| report_err(&log, &e))?;
    if let Ok(reader) = StreamReader::try_new(std::io::BufReader::new(source), None) {
        for batch in reader.map_while(|b| b.ok()) {
            writer.write(&batch)?;
        }
    }
    writer.close()?;
    std::fs::rename(&partial, run_dir.join(OUTCOMES)).map_err(|e| report_err(&run_dir.join(OUTCOMES), &e))?;
    std::fs::remove_file(&log).map_err(|e| report_err(&log, &e))?;
    Ok(())
}

/// Writes `run.json` into the run's directory.
pub fn save_summary(run_dir: &Path, summary: &RunSummary) -> Result<()> {
    let path = run_dir.join("run.json");
    let text = serde_json::to_string_pretty(summary).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::Report {
        path,
        message: e.to_string(),
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary for people, written to stderr.
pub fn human_summary(s: &RunSummary, named_failures: &[String], report_dir: &Path) -> String {
    let mut out = String::new();
    let dry = if s.dry_run {
        " (dry run: nothing was sent or written)"
    } else {
        ""
    };
    out.push_str(&format!("rehydrate {} — run {}{dry}\n", s.command, s.run_id));
    out.push_str(&format!(
        "  read      {:>10} events from {} in {:.2} s ({} events/s)\n",
        thousands(s.read),
        s.source,
        s.duration_ms as f64 / 1000.0,
        thousands(s.events_per_s.round() as u64)
    ));
    if let Some(from) = &s.resumed_from {
        out.push_str(&format!(
            "  resumed   {:>10}   events left out: they already had an outcome in {from}\n",
            thousands(s.already_done)
        ));
        if s.in_flight_resent > 0 {
            out.push_str(&format!(
                "  note      {} events were in flight when {from} stopped: sent again, they may have arrived twice (outcomes.attempts counts the unknown attempt)\n",
                thousands(s.in_flight_resent)
            ));
        }
    }
    out.push_str(&format!("  rejected  {:>10}\n", thousands(s.rejected)));
    if s.not_events > 0 {
        out.push_str(&format!(
            "  not events{:>10}   skipped: deletions in an incremental export (outcomes.error_code NotAnEvent)\n",
            thousands(s.not_events)
        ));
    }
    out.push_str(&format!(
        "  filtered  {:>10}   by {}\n",
        thousands(s.filtered),
        s.filter
    ));
    out.push_str(&format!(
        "  matched   {:>10}   → succeeded {}, failed {}, skipped {}\n",
        thousands(s.matched),
        thousands(s.succeeded),
        thousands(s.failed),
        thousands(s.skipped)
    ));
    out.push_str(&format!("  target    {}\n", s.target));
    if !s.routes.is_empty() {
        let width = s.routes.iter().map(|r| r.route.len()).max().unwrap_or(0);
        out.push_str(&format!(
            "  routes    {}{}\n",
            s.routes.len(),
            if s.dry_run {
                " (dry run: the events each would receive)"
            } else {
                ""
            }
        ));
        for r in &s.routes {
            out.push_str(&format!(
                "    {:<width$}  {:>8} matched → succeeded {}, failed {}, skipped {}   {}\n",
                r.route,
                thousands(r.matched),
                thousands(r.succeeded),
                thousands(r.failed),
                thousands(r.skipped),
                r.target,
            ));
        }
    }
    if s.dry_run {
        out.push_str(&format!(
            "  requests  {:>10}   would have been sent\n",
            thousands(s.requests)
        ));
    } else if s.requests > 0 {
        let bytes = if s.bytes_sent > 0 {
            format!(", {} bytes sent", thousands(s.bytes_sent))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  requests  {:>10}   {} items retried{bytes}\n",
            thousands(s.requests),
            thousands(s.retries),
        ));
    }
    if !named_failures.is_empty() {
        out.push_str("  problems:\n");
        for f in named_failures {
            out.push_str(&format!("    {f}\n"));
        }
        let total = s.failed + s.rejected;
        if total > named_failures.len() as u64 {
            out.push_str(&format!(
                "    … and {} more: rehydrate report \"SELECT origin, position, error_message FROM outcomes WHERE run_id = '{}' AND status IN ('failed','rejected')\"\n",
                thousands(total - named_failures.len() as u64),
                s.run_id
            ));
        }
    }
    if let Some(dl) = &s.dead_letter {
        out.push_str(&format!("  dead letters: {dl} (re-drive with --from {dl})\n"));
    }
    if let Some(e) = &s.error {
        out.push_str(&format!("  stopped by: {e}\n"));
    }
    out.push_str(&format!(
        "  report    {}  (rehydrate report \"SELECT * FROM runs\")\n",
        report_dir.join(&s.run_id).display()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn recorder_writes_outcomes_and_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let dl = dir.path().join("dl.ndjson");
        let (tx, rx) = RecorderTx::bounded();
        let rec = Recorder::start("r1", dir.path(), "t", Default::default(), dl.clone(), None, rx).unwrap();
        tx.send(RecorderMsg::Rejections(vec![Rejection {
            origin: "f.json".into(),
            position: 2,
            line: 7,
            reason: "lacks `source`".into(),
            raw: b"{\n\"a\": 1}".to_vec(),
            skipped: false,
        }]));
        tx.send(RecorderMsg::Outcomes(vec![Outcome::new(
            Some("e1".into()),
            None,
            None,
            Status::Succeeded,
        )]));
        drop(tx);
        let totals = rec.finish().unwrap();
        assert_eq!((totals.rejected, totals.succeeded, totals.dead_letters), (1, 1, 1));
        assert_eq!(totals.named_failures, ["f.json:7: lacks `source`"]);
        assert_eq!(std::fs::read_to_string(dl).unwrap(), "{ \"a\": 1}\n");
        assert!(dir.path().join("outcomes.parquet").exists());
        assert!(
            !dir.path().join(OUTCOMES_LOG).exists(),
            "the log is gone once converted"
        );
    }

    #[test]
    fn a_full_queue_makes_senders_wait_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = RecorderTx::bounded();
        let rec = Recorder::start(
            "r1",
            dir.path(),
            "t",
            Default::default(),
            dir.path().join("dl"),
            None,
            rx,
        )
        .unwrap();
        // Far more messages than the queue holds, from two threads at once.
        let n = RECORDER_QUEUE * 20;
        std::thread::scope(|scope| {
            for t in 0..2 {
                let tx = tx.clone();
                scope.spawn(move || {
                    for i in 0..n {
                        let id = format!("t{t}-{i}");
                        tx.send(RecorderMsg::Outcomes(vec![Outcome::new(
                            Some(id),
                            None,
                            None,
                            Status::Succeeded,
                        )]));
                    }
                });
            }
        });
        drop(tx);
        assert_eq!(rec.finish().unwrap().succeeded, 2 * n as u64);
    }
}
