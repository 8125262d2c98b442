//! Actions: what is done with each selected event. An action is called once with the filtered
//! stream, returns only after it has committed or flushed, and reports one outcome per event.
//!
//! Each target is one file that holds only what is particular to its service; everything else
//! (batching, lanes, concurrency, rate, retries, dry runs, outcomes) is the driver's
//! (`driver.rs`), and tracing rows back to their events is here.

pub mod driver;
pub mod dynamodb;
pub mod eventbridge;
pub mod fault;
pub mod lambda;
pub mod opensearch;
pub mod parquet;
pub mod policy;
pub mod redshift;
pub mod rules;
pub mod sql;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::datatypes::{DataType, Int32Type, UInt64Type};
use datafusion::execution::SendableRecordBatchStream;

use crate::event::EnvelopeReader;
use crate::filter::EventKeys;
use crate::progress::Progress;
use crate::report::{BulkOutcome, Outcome, RecorderMsg, Status};
use crate::Result;

/// What every action is given besides its input.
pub struct ActionContext {
    pub run_id: String,
    pub dry_run: bool,
    pub keys: Option<EventKeys>,
    pub helper_columns: Vec<String>,
    pub outcomes: crate::report::RecorderTx,
    pub progress: Progress,
    /// How hard to push the target (the driver's settings).
    pub send: driver::SendPolicy,
    /// What the driver sent, for the summary.
    pub counters: Arc<driver::Counters>,
    /// Set by the first SIGINT / SIGTERM: no new request is started (those in flight finish).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Where the driver marks the events whose request is out (none in a dry run).
    pub in_flight: Option<Arc<crate::resume::InFlightLog>>,
    /// The route this action serves, in a run of several: every outcome names it.
    pub route: Option<Arc<str>>,
}

impl ActionContext {
    /// Whether the run is stopping: nothing new is sent.
    pub fn stopping(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks events as out (`sent`: their request is about to go) or clears them (`sent`
    /// false: the answer said they were not applied), so that a resume after a kill knows
    /// which events' delivery is unknown.
    pub fn mark_in_flight<'a>(&self, sent: bool, places: impl IntoIterator<Item = (&'a str, u64)>) {
        let Some(log) = &self.in_flight else {
            return;
        };
        match &self.route {
            None => log.mark(sent, places),
            Some(r) => {
                let keyed: Vec<(String, u64)> = places
                    .into_iter()
                    .map(|(o, p)| (crate::resume::route_key(Some(r), o).into_owned(), p))
                    .collect();
                log.mark(sent, keyed.iter().map(|(o, p)| (o.as_str(), *p)));
            }
        }
    }

    /// Sends outcomes to the recorder. The recorder only stops after every sender is dropped, so
    /// a failed send means it died, and its own error is the one to report.
    pub fn send(&self, mut outcomes: Vec<Outcome>) {
        if test_fault_lose_outcome() {
            outcomes.pop();
        }
        if !outcomes.is_empty() {
            if let Some(r) = &self.route {
                for o in &mut outcomes {
                    o.route = Some(r.clone());
                }
            }
            self.outcomes.send(RecorderMsg::Outcomes(outcomes));
        }
    }

    /// The batch without the helper columns added to trace rows back to their events.
    pub fn strip_helpers(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        strip_columns(batch, &self.helper_columns)
    }

    /// For actions that send whole events: their envelopes, or a usage error when the
    /// selection is a projection.
    pub fn whole_events<'b>(&self, rows: &'b RecordBatch, command: &str) -> Result<EnvelopeReader<'b>> {
        EnvelopeReader::new(rows).ok_or_else(|| {
            crate::Error::usage(format!(
                "{command} needs whole events: use --where, or a --query that selects every envelope column"
            ))
        })
    }

    /// The event keys of `batch`, to be turned into outcomes later.
    pub fn keys_of(&self, batch: &RecordBatch) -> RowKeys {
        RowKeys::new(batch, self.keys.as_ref())
    }

    /// Sends one outcome for all of `keys`' events without a struct per event.
    pub fn send_bulk(&self, keys: &RowKeys, status: Status, fill: impl FnOnce(&mut BulkOutcome)) {
        let mut bulk = BulkOutcome {
            rows: keys.rows,
            event_id: keys.id.clone(),
            origin: keys.origin.clone(),
            position: keys.position.clone(),
            status,
            attempts: 0,
            error_code: None,
            error_message: None,
            latency_ms: None,
            object_key: None,
            route: self.route.clone(),
        };
        fill(&mut bulk);
        self.outcomes.send(RecorderMsg::Bulk(bulk));
    }

    /// Reports every row of `batch` as skipped (a dry run).
    pub fn skip_all(&self, batch: &RecordBatch) {
        self.send_bulk(&self.keys_of(batch), Status::Skipped, |_| {});
    }
}

/// A test-only fault point: with `REHYDRATE_TEST_FAULT=lose-one-outcome`, the first outcome
/// sent is dropped, so that the tests can see the counts check name the gap.
fn test_fault_lose_outcome() -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: std::sync::OnceLock<AtomicBool> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| AtomicBool::new(std::env::var("REHYDRATE_TEST_FAULT").as_deref() == Ok("lose-one-outcome")))
        .swap(false, Ordering::Relaxed)
}

/// The columns naming each row's event (id, origin, position), kept apart from the data.
#[derive(Clone)]
pub struct RowKeys {
    rows: usize,
    id: Option<ArrayRef>,
    origin: Option<ArrayRef>,
    position: Option<ArrayRef>,
}

impl RowKeys {
    pub fn new(batch: &RecordBatch, keys: Option<&EventKeys>) -> Self {
        let get = |name: Option<&String>| name.and_then(|n| batch.column_by_name(n).cloned());
        // Origins repeat (one file name for thousands of rows): a dictionary keeps them small
        // while the keys wait for their file to commit.
        let origin = get(keys.map(|k| &k.origin)).map(|a| {
            let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            arrow::compute::cast(&a, &dict).unwrap_or(a)
        });
        Self {
            rows: batch.num_rows(),
            id: get(keys.map(|k| &k.id)),
            origin,
            position: get(keys.map(|k| &k.position)),
        }
    }

    /// The keys of the rows at `indices`.
    pub fn take(&self, indices: &arrow::array::UInt32Array) -> Result<Self> {
        let take = |a: &Option<ArrayRef>| -> Result<Option<ArrayRef>> {
            Ok(match a {
                Some(a) => Some(arrow::compute::take(a.as_ref(), indices, None)?),
                None => None,
            })
        };
        Ok(Self {
            rows: indices.len(),
            id: take(&self.id)?,
            origin: take(&self.origin)?,
            position: take(&self.position)?,
        })
    }

    /// The keys of rows `offset..offset + len`.
    pub fn slice(&self, offset: usize, len: usize) -> Self {
        let slice = |a: &Option<ArrayRef>| a.as_ref().map(|a| a.slice(offset, len));
        Self {
            rows: len,
            id: slice(&self.id),
            origin: slice(&self.origin),
            position: slice(&self.position),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The outcome of one row with `status` (nothing else set).
    pub fn outcome(&self, row: usize, status: Status) -> Outcome {
        let origin = self.origin.as_ref().and_then(|a| {
            if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
                let values = d.values().as_string_opt::<i32>()?;
                return d
                    .is_valid(row)
                    .then(|| values.value(d.keys().value(row) as usize).to_owned());
            }
            let s = a.as_string_opt::<i32>()?;
            s.is_valid(row).then(|| s.value(row).to_owned())
        });
        let position = self
            .position
            .as_ref()
            .and_then(|a| a.as_primitive_opt::<UInt64Type>())
            .filter(|a| a.is_valid(row))
            .map(|a| a.value(row));
        Outcome::new(self.event_id(row), origin, position, status)
    }

    /// Where the event of `row` was read: its origin and position.
    pub fn place(&self, row: usize) -> Option<(&str, u64)> {
        let a = self.origin.as_ref()?;
        let origin = match a.as_dictionary_opt::<Int32Type>() {
            Some(d) => {
                let values = d.values().as_string_opt::<i32>()?;
                d.is_valid(row).then(|| values.value(d.keys().value(row) as usize))?
            }
            None => {
                let s = a.as_string_opt::<i32>()?;
                s.is_valid(row).then(|| s.value(row))?
            }
        };
        let p = self.position.as_ref()?.as_primitive_opt::<UInt64Type>()?;
        p.is_valid(row).then(|| (origin, p.value(row)))
    }

    pub fn event_id(&self, row: usize) -> Option<String> {
        let a = self.id.as_ref()?.as_string_opt::<i32>()?;
        a.is_valid(row).then(|| a.value(row).to_owned())
    }

    /// One outcome per row with `status`; `fill` sets the rest (attempts, errors, latency).
    pub fn outcomes(&self, status: Status, fill: impl Fn(&mut Outcome)) -> Vec<Outcome> {
        let origin_text = self
            .origin
            .as_ref()
            .and_then(|a| arrow::compute::cast(a, &DataType::Utf8).ok());
        let origin = origin_text.as_ref().and_then(|a| a.as_string_opt::<i32>());
        let position = self.position.as_ref().and_then(|a| a.as_primitive_opt::<UInt64Type>());
        (0..self.rows)
            .map(|row| {
                let mut o = Outcome::new(
                    self.event_id(row),
                    origin.filter(|a| a.is_valid(row)).map(|a| a.value(row).to_owned()),
                    position.filter(|a| a.is_valid(row)).map(|a| a.value(row)),
                    status,
                );
                fill(&mut o);
                o
            })
            .collect()
    }
}

/// The member of a union value at `row`: its name, the child array and the row in it. The JSON
/// functions (`detail->'a'`) return such unions, whose `array` and `object` members hold JSON
/// text.
pub fn union_member(array: &dyn Array, row: usize) -> Option<(&str, &ArrayRef, usize)> {
    let DataType::Union(fields, _) = array.data_type() else {
        return None;
    };
    let u = array.as_union();
    let id = u.type_id(row);
    let name = fields
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("", |(_, f)| f.name().as_str());
    Some((name, u.child(id), u.value_offset(row)))
}

/// The dead letter of row `row`: the event's original record exactly as read (one shape,
/// whatever the cause, so that `--from <dead letters>` with the same flags re-drives it), or,
/// for rows that do not come from one event (an aggregating `--query`), what the target says.
pub fn dead_letter_of(rows: &RecordBatch, row: usize, otherwise: impl FnOnce() -> Option<String>) -> Option<String> {
    let raw = rows
        .column_by_name(crate::event::RAW)
        .or_else(|| rows.column_by_name(crate::filter::HELPER_RAW))
        .and_then(|c| c.as_string_view_opt())
        .filter(|raw| raw.is_valid(row));
    match raw {
        Some(raw) => Some(String::from_utf8_lossy(&crate::report::one_line(raw.value(row).as_bytes())).into_owned()),
        None => otherwise(),
    }
}

/// Row `row` of a batch of whole events as its EventBridge envelope (the dead letter of the
/// targets that send whole events).
pub fn envelope_line(batch: &RecordBatch, row: usize) -> String {
    EnvelopeReader::new(batch).map_or_else(|| row_json(batch, row), |r| r.envelope_json(row))
}

/// Row `row` of `batch` as one line of JSON, without the helper columns (a dead letter for
/// targets that write projections).
pub fn row_json(batch: &RecordBatch, row: usize) -> String {
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !schema.field(i).name().starts_with("__rehydrate_"))
        .collect();
    let one = match batch.project(&keep) {
        Ok(b) => b.slice(row, 1),
        Err(e) => return format!("{{\"error\":{:?}}}", e.to_string()),
    };
    let mut out = Vec::new();
    let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
    if w.write(&one).and_then(|_| w.finish()).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// `batch` without the named columns (names that are absent are ignored).
pub fn strip_columns(batch: &RecordBatch, names: &[String]) -> Result<RecordBatch> {
    if names.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !names.iter().any(|n| n == schema.field(i).name()))
        .collect();
    Ok(batch.project(&keep)?)
}

/// The actions rehydrate can take.
pub enum Action {
    Parquet(Arc<parquet::ParquetPopulate>),
    Replay(Arc<eventbridge::EventBridgeReplay>),
    Invoke(Arc<lambda::LambdaInvoke>),
    DynamoDb(Arc<dynamodb::DynamoDbPopulate>),
    Sql(Arc<sql::SqlPopulate>),
    OpenSearch(Arc<opensearch::OpenSearchPopulate>),
    Redshift(Arc<redshift::RedshiftPopulate>),
    /// A route whose target rehydrate does not call (a bus rule's target that is not a Lambda
    /// function): its events are reported skipped, with the reason.
    Skip(Arc<SkipTarget>),
}

/// A target that is listed, not called.
pub struct SkipTarget {
    pub target: String,
    pub command: &'static str,
    pub code: &'static str,
    pub reason: String,
}

impl SkipTarget {
    async fn run(&self, mut input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        use futures::StreamExt;
        while let Some(batch) = input.next().await {
            let batch = batch?;
            ctx.send_bulk(&ctx.keys_of(&batch), Status::Skipped, |b| {
                b.error_code = Some(self.code.to_owned());
                b.error_message = Some(self.reason.clone());
            });
        }
        Ok(())
    }
}

impl Action {
    /// Names the target in summaries and in the `target` column.
    pub fn target(&self) -> String {
        match self {
            Action::Parquet(p) => p.target(),
            Action::Replay(r) => r.target(),
            Action::Invoke(i) => i.target(),
            Action::DynamoDb(d) => d.target(),
            Action::Sql(s) => s.target(),
            Action::OpenSearch(o) => o.target(),
            Action::Redshift(r) => r.target(),
            Action::Skip(s) => s.target.clone(),
        }
    }

    pub fn command(&self) -> &'static str {
        match self {
            Action::Parquet(_) => "populate parquet",
            Action::Replay(_) => "replay",
            Action::Invoke(_) => "invoke",
            Action::DynamoDb(_) => "populate dynamodb",
            Action::Sql(s) => s.command(),
            Action::OpenSearch(_) => "populate opensearch",
            Action::Redshift(_) => "populate redshift",
            Action::Skip(s) => s.command,
        }
    }

    /// Checks what the target needs from the selection (whole events, key columns, partition
    /// columns, column types) against the plan's schema, before the run directory exists.
    pub async fn check(&self, schema: &SchemaRef, whole_events: bool, dry_run: bool) -> Result<()> {
        let whole = |command: &str| {
            if whole_events {
                Ok(())
            } else {
                Err(crate::Error::usage(format!(
                    "{command} needs whole events: use --where, or a --query that selects every envelope column (SELECT * FROM events …)"
                )))
            }
        };
        match self {
            Action::Parquet(p) => p.check(schema),
            Action::Replay(_) => whole("replay"),
            Action::Invoke(i) => {
                whole("invoke")?;
                i.check(dry_run).await
            }
            Action::DynamoDb(d) => d.check(schema, dry_run).await,
            Action::Sql(s) => s.check(schema, dry_run).await,
            Action::OpenSearch(o) => o.check(schema, dry_run).await,
            Action::Redshift(r) => r.check(schema, dry_run).await,
            Action::Skip(_) => Ok(()),
        }
    }

    /// Consumes `input`, actioning every row, and returns once everything is committed.
    pub async fn run(&self, input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        match self {
            Action::Parquet(p) => p.run(input, ctx).await,
            Action::Replay(r) => driver::run_requests(r.as_ref(), input, ctx).await,
            Action::Invoke(i) => driver::run_requests(i.as_ref(), input, ctx).await,
            Action::DynamoDb(d) => driver::run_requests(d.as_ref(), input, ctx).await,
            Action::Sql(s) => s.run(input, ctx).await,
            Action::OpenSearch(o) => driver::run_requests(o.as_ref(), input, ctx).await,
            Action::Redshift(r) => r.run(input, ctx).await,
            Action::Skip(s) => s.run(input, ctx).await,
        }
    }
}
