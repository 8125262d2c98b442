//! The one action driver. A target says only what is particular to its service; the driver owns
//! the rest, for every target alike.
//!
//! - **Request targets** ([`RequestTarget`]: EventBridge, Lambda, DynamoDB) turn a row into an
//!   item, declare their [`Limits`], and send one request, answering per item. The driver batches
//!   by count and bytes, fails an oversize item alone without sending it, keeps ordering lanes
//!   (`--ordering-key`), sends `--concurrency` requests at once within `--rate`, resends only the
//!   failed items with backoff and full jitter up to `--max-attempts`, does the dry run, and turns
//!   every answer into an outcome (and a dead letter).
//! - **Commit targets** ([`CommitTarget`]: Parquet, PostgreSQL, MySQL) write rows into units (a
//!   file, a transaction) and commit them. The driver decides when a unit is full, retries a
//!   commit that failed for a passing reason, splits a unit the server refused into single rows
//!   where the target can, and reports every event of a unit when its commit is known.
//!
//! Error classes live in one place, `fault.rs`: [`Fault`] (retryable or not, the service's code
//! and message, and whether the request may have been applied although no answer came back).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::DataType;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::mpsc;

pub use super::fault::{classify_sdk, Fault};
use super::policy::{RateLimiter, RetryPolicy};
use super::{ActionContext, RowKeys};
use crate::report::{Outcome, Status};
use crate::{Error, Result};

/// The column the ordering key is computed into (see `filter::with_ordering_key`).
pub const ORDERING_KEY: &str = "__rehydrate_ordering_key";

/// How hard to push a target: from `--concurrency`, `--rate`, `--max-attempts` and
/// `--continue-on-error`, checked by the CLI.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    pub retry: RetryPolicy,
    pub rate: Option<Arc<RateLimiter>>,
    /// Requests (or commits) in flight; with an ordering key, the number of ordered lanes.
    pub concurrency: usize,
    /// With an ordering key, keep actioning a key's later events after one of them failed.
    pub continue_on_error: bool,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            rate: None,
            concurrency: 1,
            continue_on_error: false,
        }
    }
}

/// What the driver sent, for the summary (`runs.requests`, `runs.retries`, `runs.bytes_sent`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent (commits, for commit targets); in a dry run, the requests it would send.
    pub requests: AtomicU64,
    /// Items sent again after a retryable failure.
    pub retries: AtomicU64,
    /// Bytes of items sent, by the target's own size rule.
    pub bytes_sent: AtomicU64,
}

impl Counters {
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.bytes_sent.load(Ordering::Relaxed),
        )
    }
}

/// What a request target accepts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Items per request.
    pub max_items: usize,
    /// Bytes per request: the sum of the items' sizes.
    pub max_request_bytes: usize,
    /// Bytes per item; a larger item fails alone and is never sent.
    pub max_item_bytes: usize,
    /// The error code an oversize item fails with (`EventTooLarge`, `ItemTooLarge`, …).
    pub oversize_code: &'static str,
    /// How the size is counted, for the oversize message ("by EventBridge's size formula").
    pub size_rule: &'static str,
}

/// One row turned into an item of a request.
pub struct Prepared<I> {
    pub item: I,
    /// Bytes, by the target's size rule.
    pub size: usize,
    /// Two items with the same dedupe key may not share a request: the later one (in source
    /// order) replaces the earlier, which is reported as superseded.
    pub dedupe_key: Option<String>,
}

/// A request target's answer for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Succeeded,
    /// Not applied, and not a failure: the target already holds it (an OpenSearch `create`
    /// of a document that exists). Reported `skipped` with the code and message.
    Skipped(Fault),
    /// Retried by the driver when the fault is retryable and attempts remain.
    Failed(Fault),
}

/// A service that takes items in requests (EventBridge PutEvents, Lambda Invoke, DynamoDB
/// BatchWriteItem). The target builds items and requests and reads answers; nothing else.
#[allow(async_fn_in_trait)]
pub trait RequestTarget {
    type Item;

    /// The request's name, for messages and dry runs ("PutEvents").
    fn request_name(&self) -> &'static str;

    fn limits(&self) -> Limits;

    /// One entry per row of `rows`: the item, or the fault that stops this row from being sent
    /// (it fails alone).
    fn prepare(&self, rows: &RecordBatch, ctx: &ActionContext) -> Result<Vec<Result<Prepared<Self::Item>, Fault>>>;

    /// The dead letter of a failed row that does not carry its original record (a row of an
    /// aggregating `--query`); rows of single events leave their original record
    /// ([`super::dead_letter_of`]).
    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> String;

    /// Sends one request of `items` and answers for each, in order; `Err` when the request
    /// failed as a whole.
    async fn send(&self, items: &[&Self::Item]) -> Result<Vec<Answer>, Fault>;
}

/// An item on its way, with what is needed to report it.
struct Pending<I> {
    item: I,
    size: usize,
    dedupe_key: Option<String>,
    lane_key: Option<String>,
    rows: RecordBatch,
    row: usize,
    keys: RowKeys,
    attempts: u32,
    /// An earlier attempt may have been applied (its answer was lost).
    uncertain: bool,
    started: Instant,
}

impl<I> Pending<I> {
    fn outcome(&self, status: Status, code: Option<&str>, message: Option<String>) -> Outcome {
        let mut o = self.keys.outcome(self.row, status);
        o.attempts = self.attempts;
        o.latency_ms = Some(self.started.elapsed().as_secs_f64() * 1000.0);
        o.error_code = code.map(str::to_owned);
        o.error_message = message;
        o
    }
}

/// Runs a request target over the whole input, returning once every item has an outcome.
pub async fn run_requests<T: RequestTarget>(
    target: &T,
    mut input: SendableRecordBatchStream,
    ctx: &ActionContext,
) -> Result<()> {
    let limits = target.limits();
    let ordered = input.schema().column_with_name(ORDERING_KEY).is_some();
    let driver = Driver { target, ctx, limits };
    let lanes = if ordered { ctx.send.concurrency.max(1) } else { 1 };
    let mut lane_tx = Vec::with_capacity(lanes);
    let mut lane_rx = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (tx, rx) = mpsc::channel::<Pending<T::Item>>(256);
        lane_tx.push(tx);
        lane_rx.push(rx);
    }
    let feeder = async {
        // If the input fails mid-way, the items already taken are still sent and reported.
        while let Some(rows) = input.next().await {
            let rows = rows?;
            if rows.num_rows() == 0 {
                continue;
            }
            let keys = ctx.keys_of(&rows);
            let lane_keys = lane_keys(&rows)?;
            let prepared = target.prepare(&rows, ctx)?;
            for (row, p) in prepared.into_iter().enumerate() {
                let pending = |item, size, dedupe_key| Pending {
                    item,
                    size,
                    dedupe_key,
                    lane_key: lane_keys.as_ref().map(|k| k[row].clone()),
                    rows: rows.clone(),
                    row,
                    keys: keys.clone(),
                    attempts: 0,
                    uncertain: false,
                    started: Instant::now(),
                };
                let p = match p {
                    Ok(p) => pending(p.item, p.size, p.dedupe_key),
                    Err(fault) => {
                        let o = driver.fail_row(&rows, row, &keys, &fault);
                        ctx.send(vec![o]);
                        continue;
                    }
                };
                let lane = match &p.lane_key {
                    Some(k) if lanes > 1 => {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        k.hash(&mut h);
                        (h.finish() % lanes as u64) as usize
                    }
                    _ => 0,
                };
                if lane_tx[lane].send(p).await.is_err() {
                    return Ok(());
                }
            }
        }
        drop(lane_tx);
        Ok::<(), Error>(())
    };
    let lanes_done = futures::future::join_all(lane_rx.into_iter().map(|rx| driver.lane(rx, ordered)));
    let (fed, _) = futures::join!(feeder, lanes_done);
    fed
}

/// The ordering key of each row, when the selection has one.
fn lane_keys(rows: &RecordBatch) -> Result<Option<Vec<String>>> {
    let Some(column) = rows.column_by_name(ORDERING_KEY) else {
        return Ok(None);
    };
    let text = arrow::compute::cast(column, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    Ok(Some(
        (0..rows.num_rows())
            .map(|i| {
                if text.is_valid(i) {
                    text.value(i).to_owned()
                } else {
                    String::new()
                }
            })
            .collect(),
    ))
}

struct Driver<'a, T: RequestTarget> {
    target: &'a T,
    ctx: &'a ActionContext,
    limits: Limits,
}

/// Items gathered into one request, within the target's limits.
struct Batch<I> {
    items: Vec<Pending<I>>,
    bytes: usize,
}

impl<I> Default for Batch<I> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
        }
    }
}

impl<'a, T: RequestTarget> Driver<'a, T> {
    fn fail_row(&self, rows: &RecordBatch, row: usize, keys: &RowKeys, fault: &Fault) -> Outcome {
        let mut o = keys.outcome(row, Status::Failed);
        o.error_code = Some(fault.code.clone());
        o.error_message = Some(fault.message.clone());
        o.dead_letter = super::dead_letter_of(rows, row, || Some(self.target.dead_letter(rows, row)));
        o
    }

    fn failed(&self, p: &Pending<T::Item>, fault: &Fault) -> Outcome {
        let mut message = fault.message.clone();
        if fault.maybe_applied {
            message.push_str(" (no answer came back: the request may have been applied)");
        }
        let mut o = p.outcome(Status::Failed, Some(&fault.code), Some(message));
        o.dead_letter = super::dead_letter_of(&p.rows, p.row, || Some(self.target.dead_letter(&p.rows, p.row)));
        o
    }

    /// One lane: batches its items and sends them. Unordered input has one lane whose
    /// requests go out `concurrency` at a time. An ordered lane sends one request at a time and
    /// waits for its answer before it takes the next event, so a key's events keep their order
    /// and a failure stops the key's later events (unless `--continue-on-error`).
    async fn lane(&self, mut rx: mpsc::Receiver<Pending<T::Item>>, ordered: bool) {
        if ordered {
            let stop_failed_keys = !self.ctx.send.continue_on_error;
            let mut failed_keys = HashSet::<String>::new();
            let mut batch = Batch::default();
            while let Some(p) = rx.recv().await {
                let Some(p) = self.admit(p) else { continue };
                if !self.fits(&batch, &p) {
                    failed_keys.extend(self.send_with_retries(std::mem::take(&mut batch).items).await);
                }
                if stop_failed_keys {
                    if let Some(key) = p.lane_key.as_ref().filter(|k| failed_keys.contains(*k)) {
                        let mut o = p.outcome(
                            Status::Skipped,
                            Some("EarlierEventFailed"),
                            Some(format!(
                                "not sent: an earlier event with ordering key {key:?} failed (use --continue-on-error to send anyway)"
                            )),
                        );
                        o.dead_letter =
                            super::dead_letter_of(&p.rows, p.row, || Some(self.target.dead_letter(&p.rows, p.row)));
                        self.ctx.send(vec![o]);
                        continue;
                    }
                }
                self.push(&mut batch, p);
                if batch.items.len() >= self.limits.max_items || rx.is_empty() {
                    failed_keys.extend(self.send_with_retries(std::mem::take(&mut batch).items).await);
                }
            }
            if !batch.items.is_empty() {
                self.send_with_retries(batch.items).await;
            }
            return;
        }
        let concurrency = self.ctx.send.concurrency.max(1);
        let (batch_tx, batch_rx) = mpsc::channel::<Vec<Pending<T::Item>>>(concurrency * 2);
        // The batcher owns the sending half: when it is done, the sender's stream ends.
        let batcher = async move {
            let mut batch = Batch::default();
            while let Some(p) = rx.recv().await {
                let Some(p) = self.admit(p) else { continue };
                if !self.fits(&batch, &p) && batch_tx.send(std::mem::take(&mut batch).items).await.is_err() {
                    return;
                }
                self.push(&mut batch, p);
            }
            if !batch.items.is_empty() {
                let _ = batch_tx.send(batch.items).await;
            }
        };
        let sender = async {
            futures::stream::unfold(batch_rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
                .for_each_concurrent(concurrency, |batch| async {
                    self.send_with_retries(batch).await;
                })
                .await;
        };
        futures::join!(batcher, sender);
    }

    /// An oversize item fails alone, never sent; anything else may go on.
    fn admit(&self, p: Pending<T::Item>) -> Option<Pending<T::Item>> {
        let l = &self.limits;
        let max = l.max_item_bytes.min(l.max_request_bytes);
        if p.size <= max {
            return Some(p);
        }
        let fault = Fault::permanent(
            l.oversize_code,
            format!(
                "the item is {} bytes {}; {} takes at most {max} bytes ({} KB), so it was not sent",
                p.size,
                l.size_rule,
                self.target.request_name(),
                max / 1024
            ),
        );
        self.ctx.send(vec![self.failed(&p, &fault)]);
        None
    }

    /// Whether `p` may join `batch` (after any item it supersedes leaves).
    fn fits(&self, batch: &Batch<T::Item>, p: &Pending<T::Item>) -> bool {
        let superseded = p
            .dedupe_key
            .as_ref()
            .and_then(|k| batch.items.iter().find(|q| q.dedupe_key.as_ref() == Some(k)))
            .map(|q| q.size);
        let count = batch.items.len() - usize::from(superseded.is_some());
        let bytes = batch.bytes - superseded.unwrap_or(0);
        count < self.limits.max_items && bytes + p.size <= self.limits.max_request_bytes
    }

    /// Adds `p` to a batch it fits; an item with the same dedupe key leaves it, superseded.
    fn push(&self, batch: &mut Batch<T::Item>, p: Pending<T::Item>) {
        if let Some(key) = &p.dedupe_key {
            if let Some(i) = batch.items.iter().position(|q| q.dedupe_key.as_ref() == Some(key)) {
                let earlier = batch.items.remove(i);
                batch.bytes -= earlier.size;
                self.ctx.send(vec![earlier.outcome(
                    Status::Skipped,
                    Some("Superseded"),
                    Some(format!(
                        "a later event with the same key ({key}) was written in its place: one request may not hold two items with one key"
                    )),
                )]);
            }
        }
        batch.bytes += p.size;
        batch.items.push(p);
    }

    /// Sends one batch, resending only the items that failed with a retryable fault, and
    /// reports every item. Returns the ordering keys of the items that failed.
    async fn send_with_retries(&self, batch: Vec<Pending<T::Item>>) -> Vec<String> {
        let ctx = self.ctx;
        let policy = &ctx.send;
        let name = self.target.request_name();
        let mut failed_keys = Vec::new();
        let mut queue = std::collections::VecDeque::from([batch]);
        'requests: while let Some(mut batch) = queue.pop_front() {
            loop {
                if ctx.stopping() {
                    // A signal: items not yet sent stay without an outcome (not actioned).
                    continue 'requests;
                }
                let request = ctx.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
                if ctx.dry_run {
                    let outcomes = batch
                        .iter()
                        .map(|p| {
                            p.outcome(
                                Status::Skipped,
                                Some("DryRun"),
                                Some(format!("dry run: would be sent in {name} request {request}")),
                            )
                        })
                        .collect();
                    ctx.send(outcomes);
                    continue 'requests;
                }
                if let Some(rate) = &policy.rate {
                    rate.acquire(batch.len()).await;
                    if ctx.stopping() {
                        continue 'requests;
                    }
                }
                let mut bytes = 0u64;
                for p in batch.iter_mut() {
                    if p.attempts > 0 {
                        ctx.counters.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    p.attempts += 1;
                    bytes += p.size as u64;
                }
                ctx.counters.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                ctx.mark_in_flight(true, batch.iter().filter_map(|p| p.keys.place(p.row)));
                let refs: Vec<&T::Item> = batch.iter().map(|p| &p.item).collect();
                let answers = match self.target.send(&refs).await {
                    Ok(answers) if answers.len() == batch.len() => answers,
                    Ok(answers) => {
                        let fault = Fault::permanent(
                            "MissingResult",
                            format!("{name} answered for {} of {} items", answers.len(), batch.len()),
                        );
                        vec![Answer::Failed(fault); batch.len()]
                    }
                    Err(fault)
                        if fault.per_item
                            && batch.len() > 1
                            && batch.iter().all(|p| policy.retry.may_retry(p.attempts)) =>
                    {
                        // Find the offender: each item again, in a request of its own. Refused
                        // as a whole, none was applied.
                        ctx.mark_in_flight(
                            false,
                            batch
                                .iter()
                                .filter(|p| !p.uncertain)
                                .filter_map(|p| p.keys.place(p.row)),
                        );
                        queue.extend(batch.into_iter().map(|p| vec![p]));
                        continue 'requests;
                    }
                    Err(fault) => vec![Answer::Failed(fault); batch.len()],
                };
                let mut retry = Vec::new();
                let mut outcomes = Vec::with_capacity(batch.len());
                for (p, answer) in batch.into_iter().zip(answers) {
                    match answer {
                        Answer::Succeeded => outcomes.push(p.outcome(Status::Succeeded, None, None)),
                        Answer::Skipped(f) => outcomes.push(p.outcome(Status::Skipped, Some(&f.code), Some(f.message))),
                        Answer::Failed(f) if f.retryable && policy.retry.may_retry(p.attempts) => {
                            let mut p = p;
                            p.uncertain |= f.maybe_applied;
                            retry.push(p)
                        }
                        Answer::Failed(f) => {
                            failed_keys.extend(p.lane_key.clone());
                            outcomes.push(self.failed(&p, &f));
                        }
                    }
                }
                ctx.send(outcomes);
                if retry.is_empty() {
                    continue 'requests;
                }
                // Refused, so not applied: not in doubt while they wait for the next attempt.
                ctx.mark_in_flight(
                    false,
                    retry
                        .iter()
                        .filter(|p| !p.uncertain)
                        .filter_map(|p| p.keys.place(p.row)),
                );
                let next = retry.iter().map(|p| p.attempts).max().unwrap_or(1) + 1;
                tokio::time::sleep(policy.retry.backoff(next)).await;
                batch = retry;
            }
        }
        failed_keys
    }
}

/// A store written in units that commit (a Parquet file, a database transaction). The target
/// writes and commits; the driver decides when, and reports each unit's events.
#[allow(async_fn_in_trait)]
pub trait CommitTarget {
    /// Rows after which a unit is committed.
    fn rows_per_unit(&self) -> usize;

    /// Whether a unit is full for another reason (a file's bytes), checked after each write.
    fn unit_full(&self, unit: &str) -> bool {
        let _ = unit;
        false
    }

    /// Units open at once at most; past it the least recently written is committed.
    fn max_open_units(&self) -> usize {
        usize::MAX
    }

    /// The units `rows` belong to: each unit's name with the rows for it (all rows in one
    /// unit, "", unless the target partitions).
    fn route(&self, rows: &RecordBatch) -> Result<Vec<(String, Option<UInt32Array>)>> {
        let _ = rows;
        Ok(vec![(String::new(), None)])
    }

    /// Adds rows to a unit (opened on first use). A fault here fails the unit.
    async fn write(&mut self, unit: &str, rows: &RecordBatch) -> Result<(), Fault>;

    /// Commits a unit. On a retryable fault the unit is kept and committed again; on a
    /// permanent one the driver may ask for [`CommitTarget::commit_each`].
    async fn commit(&mut self, unit: &str) -> Result<(), Fault>;

    /// After a permanent commit fault: commits the unit's rows one at a time and answers for
    /// each, in the order written. `None` when a unit cannot be split (a file).
    async fn commit_each(&mut self, unit: &str) -> Option<Vec<Result<(), Fault>>> {
        let _ = unit;
        None
    }

    /// Forgets a unit that failed.
    fn discard(&mut self, unit: &str);

    /// The file or object a unit is committed as (`outcomes.object_key`), asked before its
    /// commit.
    fn unit_object(&self, unit: &str) -> Option<String> {
        let _ = unit;
        None
    }

    /// Whether failed rows leave dead letters ([`CommitTarget::dead_letter`]); the driver then
    /// keeps each unit's rows until its commit is known.
    const DEAD_LETTERS: bool = false;

    /// The dead letter of a failed row without its original record (see
    /// [`RequestTarget::dead_letter`]); `rows` hold the helper columns.
    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> Option<String> {
        let _ = (rows, row);
        None
    }
}

/// An open unit: the events in it, reported when it commits.
#[derive(Default)]
struct OpenUnit {
    rows: usize,
    pending: Vec<(Instant, RowKeys, Option<RecordBatch>)>,
}

/// Runs a commit target over the whole input. Every unit is committed (or failed) before it
/// returns; a failed unit fails its events, named, and the run goes on. A fault while writing
/// (the disk is full) stops the run after the other units are committed.
pub async fn run_commits<T: CommitTarget>(
    target: &mut T,
    mut input: SendableRecordBatchStream,
    ctx: &ActionContext,
) -> Result<()> {
    let mut open: HashMap<String, OpenUnit> = HashMap::new();
    // Open units, least recently written first.
    let mut order: Vec<String> = Vec::new();
    let mut stop: Option<Error> = None;
    let keep_rows = T::DEAD_LETTERS;
    while let Some(batch) = input.next().await {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                stop = Some(e.into());
                break;
            }
        };
        if batch.num_rows() == 0 {
            continue;
        }
        if ctx.dry_run {
            ctx.skip_all(&batch);
            continue;
        }
        let keys = ctx.keys_of(&batch);
        let data = ctx.strip_helpers(&batch)?;
        'units: for (unit, indices) in target.route(&data)? {
            let (rows, keys) = match &indices {
                Some(i) => (arrow::compute::take_record_batch(&data, i)?, keys.take(i)?),
                None => (data.clone(), keys.clone()),
            };
            // Kept for dead letters: the rows with their helpers (the original records).
            let kept = match (&indices, keep_rows) {
                (_, false) => None,
                (Some(i), true) => Some(arrow::compute::take_record_batch(&batch, i)?),
                (None, true) => Some(batch.clone()),
            };
            // A unit takes at most `rows_per_unit` rows: the rows that would pass it go to the
            // next unit.
            let per_unit = target.rows_per_unit().max(1);
            let mut pieces = Vec::new();
            let (mut offset, total) = (0, rows.num_rows());
            let mut room = per_unit.saturating_sub(open.get(&unit).map_or(0, |u| u.rows)).max(1);
            while offset < total {
                let len = room.min(total - offset);
                pieces.push((offset, len));
                offset += len;
                room = per_unit;
            }
            for (offset, len) in pieces {
                let (rows, keys, kept) = if len == total {
                    (rows.clone(), keys.clone(), kept.clone())
                } else {
                    (
                        rows.slice(offset, len),
                        keys.slice(offset, len),
                        kept.as_ref().map(|k| k.slice(offset, len)),
                    )
                };
                if let Err(fault) = target.write(&unit, &rows).await {
                    let mut failed = open.remove(&unit).unwrap_or_default();
                    failed.pending.push((Instant::now(), keys, kept));
                    target.discard(&unit);
                    report_unit(target, ctx, &failed, Err(&fault), 1);
                    stop = Some(Error::Target {
                        target: unit_name(&unit),
                        message: format!("{}: {}", fault.code, fault.message),
                    });
                    break 'units;
                }
                order.retain(|n| n != &unit);
                order.push(unit.clone());
                let u = open.entry(unit.clone()).or_default();
                u.rows += rows.num_rows();
                u.pending.push((Instant::now(), keys, kept));
                if u.rows >= per_unit || target.unit_full(&unit) {
                    let u = open.remove(&unit).unwrap();
                    order.retain(|n| n != &unit);
                    commit_unit(target, ctx, &unit, u).await;
                }
                // Too many open (`--max-open-files`): the least recently written one is committed.
                while open.len() > target.max_open_units() {
                    let oldest = order.remove(0);
                    if let Some(u) = open.remove(&oldest) {
                        commit_unit(target, ctx, &oldest, u).await;
                    }
                }
            }
        }
        if stop.is_some() {
            break;
        }
    }
    let mut names: Vec<String> = order.into_iter().filter(|n| open.contains_key(n)).collect();
    names.sort();
    for unit in names {
        let u = open.remove(&unit).unwrap();
        commit_unit(target, ctx, &unit, u).await;
    }
    match stop {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn unit_name(unit: &str) -> String {
    if unit.is_empty() {
        "the target".into()
    } else {
        unit.to_owned()
    }
}

/// Commits one unit: retries passing faults, splits a refused unit into rows where the target
/// can, and reports its events.
async fn commit_unit<T: CommitTarget>(target: &mut T, ctx: &ActionContext, unit: &str, u: OpenUnit) {
    let policy = &ctx.send;
    let mut attempts = 0u32;
    let object = target.unit_object(unit);
    loop {
        attempts += 1;
        ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
        if attempts > 1 {
            ctx.counters.retries.fetch_add(u.rows as u64, Ordering::Relaxed);
        }
        if attempts == 1 {
            ctx.mark_in_flight(
                true,
                u.pending
                    .iter()
                    .flat_map(|(_, keys, _)| (0..keys.len()).filter_map(|r| keys.place(r))),
            );
        }
        match target.commit(unit).await {
            Ok(()) => {
                report_unit(target, ctx, &u, Ok(object.as_deref()), attempts);
                return;
            }
            Err(f) if f.retryable && policy.retry.may_retry(attempts) => {
                tokio::time::sleep(policy.retry.backoff(attempts + 1)).await;
            }
            Err(f) if f.per_item => {
                if let Some(answers) = target.commit_each(unit).await {
                    report_rows(target, ctx, &u, &answers, attempts + 1);
                } else {
                    target.discard(unit);
                    report_unit(target, ctx, &u, Err(&f), attempts);
                }
                return;
            }
            Err(f) => {
                target.discard(unit);
                report_unit(target, ctx, &u, Err(&f), attempts);
                return;
            }
        }
    }
}

fn report_unit<T: CommitTarget>(
    target: &T,
    ctx: &ActionContext,
    u: &OpenUnit,
    result: std::result::Result<Option<&str>, &Fault>,
    attempts: u32,
) {
    let now = Instant::now();
    for (arrived, keys, rows) in &u.pending {
        let latency = Some(now.duration_since(*arrived).as_secs_f64() * 1000.0);
        match (result, rows) {
            (Err(f), Some(rows)) => {
                // Rows kept for their dead letters: one outcome each.
                let outcomes = (0..keys.len())
                    .map(|row| {
                        let mut o = keys.outcome(row, Status::Failed);
                        o.attempts = attempts;
                        o.latency_ms = latency;
                        o.error_code = Some(f.code.clone());
                        o.error_message = Some(f.message.clone());
                        o.dead_letter = super::dead_letter_of(rows, row, || target.dead_letter(rows, row));
                        o
                    })
                    .collect();
                ctx.send(outcomes);
            }
            _ => {
                let status = if result.is_ok() {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                ctx.send_bulk(keys, status, |o| {
                    o.attempts = attempts;
                    o.latency_ms = latency;
                    match result {
                        Ok(object) => o.object_key = object.map(str::to_owned),
                        Err(f) => {
                            o.error_code = Some(f.code.clone());
                            o.error_message = Some(f.message.clone());
                        }
                    }
                });
            }
        }
    }
}

/// Reports a unit that was committed row by row.
fn report_rows<T: CommitTarget>(
    target: &T,
    ctx: &ActionContext,
    u: &OpenUnit,
    answers: &[Result<(), Fault>],
    attempts: u32,
) {
    let now = Instant::now();
    let mut answers = answers.iter();
    for (arrived, keys, rows) in &u.pending {
        let latency = Some(now.duration_since(*arrived).as_secs_f64() * 1000.0);
        let outcomes = (0..keys.len())
            .map(|row| {
                let answer = answers
                    .next()
                    .cloned()
                    .unwrap_or_else(|| Err(Fault::permanent("MissingResult", "no answer for this row")));
                let status = if answer.is_ok() {
                    Status::Succeeded
                } else {
                    Status::Failed
                };
                let mut o = keys.outcome(row, status);
                o.attempts = attempts;
                o.latency_ms = latency;
                if let Err(f) = answer {
                    o.error_code = Some(f.code);
                    o.error_message = Some(f.message);
                    o.dead_letter = rows
                        .as_ref()
                        .and_then(|r| super::dead_letter_of(r, row, || target.dead_letter(r, row)));
                }
                o
            })
            .collect();
        ctx.send(outcomes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::RecorderMsg;
    use arrow::array::{StringArray, UInt64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use std::sync::Mutex;

    /// A target that records the requests it is given and answers from a script: the first
    /// time an item named in `flaky` is sent it fails retryably.
    struct Scripted {
        requests: Mutex<Vec<Vec<String>>>,
        flaky: Vec<&'static str>,
        seen: Mutex<HashSet<String>>,
    }

    impl RequestTarget for Scripted {
        type Item = String;
        fn request_name(&self) -> &'static str {
            "Test"
        }
        fn limits(&self) -> Limits {
            Limits {
                max_items: 3,
                max_request_bytes: 10,
                max_item_bytes: 6,
                oversize_code: "TooLarge",
                size_rule: "by length",
            }
        }
        fn prepare(&self, rows: &RecordBatch, _: &ActionContext) -> Result<Vec<Result<Prepared<String>, Fault>>> {
            let ids = rows.column(0).as_string::<i32>();
            let sizes = rows.column(1).as_primitive::<arrow::datatypes::UInt64Type>();
            Ok((0..rows.num_rows())
                .map(|i| {
                    let id = ids.value(i).to_owned();
                    Ok(Prepared {
                        dedupe_key: Some(id.trim_end_matches('\'').to_owned()),
                        size: sizes.value(i) as usize,
                        item: id,
                    })
                })
                .collect())
        }
        fn dead_letter(&self, _: &RecordBatch, _: usize) -> String {
            String::new()
        }
        async fn send(&self, items: &[&String]) -> Result<Vec<Answer>, Fault> {
            self.requests
                .lock()
                .unwrap()
                .push(items.iter().map(|s| (*s).clone()).collect());
            Ok(items
                .iter()
                .map(|s| {
                    let first = self.seen.lock().unwrap().insert((*s).clone());
                    if first && self.flaky.contains(&s.as_str()) {
                        Answer::Failed(Fault::retryable("Throttled", "try again"))
                    } else {
                        Answer::Succeeded
                    }
                })
                .collect())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_by_count_and_bytes_fails_oversize_alone_supersedes_and_retries_only_failures() {
        // (id, size): "b'" has b's key and replaces it in the same request.
        let rows = [
            ("a", 2),
            ("b", 2),
            ("b'", 2),
            ("c", 2),
            ("big", 7),
            ("d", 5),
            ("e", 5),
            ("f", 1),
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("size", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(UInt64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let input = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let tx = crate::report::RecorderTx::Unbounded(tx);
        let ctx = ActionContext {
            run_id: "r".into(),
            dry_run: false,
            keys: Some(crate::filter::EventKeys {
                id: "id".into(),
                origin: "none".into(),
                position: "none".into(),
            }),
            helper_columns: vec![],
            outcomes: tx,
            progress: crate::progress::Progress::new(Arc::new(Default::default()), None),
            send: SendPolicy::default(),
            counters: Arc::new(Counters::default()),
            stop: Default::default(),
            in_flight: None,
            route: None,
        };
        let target = Scripted {
            requests: Mutex::new(Vec::new()),
            flaky: vec!["d"],
            seen: Mutex::new(HashSet::new()),
        };
        run_requests(&target, input, &ctx).await.unwrap();
        drop(ctx);
        let mut outcomes = HashMap::new();
        while let Some(msg) = rx.recv().await {
            if let RecorderMsg::Outcomes(os) = msg {
                for o in os {
                    outcomes.insert(o.event_id.clone().unwrap(), o);
                }
            }
        }
        let requests = target.requests.lock().unwrap().clone();
        // a, b' and c fit three items; d (5) then e (5) make 10 bytes; the retry of d goes
        // alone (before f: one request in flight, the default); f starts a new request.
        assert_eq!(
            requests,
            vec![vec!["a", "b'", "c"], vec!["d", "e"], vec!["d"], vec!["f"]]
        );
        assert_eq!(outcomes["b"].error_code.as_deref(), Some("Superseded"));
        assert_eq!(outcomes["big"].error_code.as_deref(), Some("TooLarge"));
        assert_eq!(outcomes["big"].attempts, 0);
        assert_eq!((outcomes["d"].status, outcomes["d"].attempts), (Status::Succeeded, 2));
        assert_eq!((outcomes["e"].status, outcomes["e"].attempts), (Status::Succeeded, 1));
        assert_eq!(outcomes.len(), rows.len());
    }
}
