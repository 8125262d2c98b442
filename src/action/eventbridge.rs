//! `replay`: put the selected events back onto an EventBridge bus with PutEvents.
//!
//! Batches hold at most 10 entries and 256 KB by EventBridge's size formula. Only the entries
//! that failed with a retryable code are sent again, with backoff; permanent failures end in
//! the report and the dead-letter file with EventBridge's ErrorCode and ErrorMessage. Every
//! replayed event carries a marker resource naming the run, so rules and archives can tell
//! replays from live traffic.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_eventbridge::config::http::HttpResponse;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use aws_smithy_types::DateTime;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::policy::{RateLimiter, RetryPolicy};
use super::{ActionContext, RowKeys};
use crate::event::EnvelopeReader;
use crate::report::{Outcome, Status};
use crate::{Error, Result};

/// PutEvents limits.
pub const MAX_ENTRIES: usize = 10;
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Error codes worth another attempt; anything else is permanent.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "InternalFailure",
    "InternalException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TooManyRequestsException",
    "RequestTimeout",
];

pub struct EventBridgeReplay {
    pub client: Client,
    /// Bus name or ARN.
    pub bus: String,
    pub source_override: Option<String>,
    pub detail_type_override: Option<String>,
    /// Adds `marker_prefix + run_id` to every event's resources.
    pub marker: bool,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub rate: Option<Arc<RateLimiter>>,
}

/// The resource added to every replayed event: `arn:aws:rehydrate:::run/<run-id>`.
pub fn marker_resource(run_id: &str) -> String {
    format!("arn:aws:rehydrate:::run/{run_id}")
}

/// One event on its way to the bus.
struct Pending {
    entry: PutEventsRequestEntry,
    keys: RowKeys,
    envelope: String,
    attempts: u32,
    started: Instant,
}

/// EventBridge's entry size: Time 14 bytes (when set) plus the UTF-8 bytes of Source,
/// DetailType, Detail and each Resource.
pub fn entry_size(e: &PutEventsRequestEntry) -> usize {
    e.time().map_or(0, |_| 14)
        + e.source().map_or(0, str::len)
        + e.detail_type().map_or(0, str::len)
        + e.detail().map_or(0, str::len)
        + e.resources().iter().map(String::len).sum::<usize>()
}

impl EventBridgeReplay {
    pub fn target(&self) -> String {
        format!("eventbridge:{}", self.bus)
    }

    fn entry(&self, reader: &EnvelopeReader<'_>, row: usize, run_id: &str) -> PutEventsRequestEntry {
        let mut resources = reader.resources(row);
        if self.marker {
            resources.push(marker_resource(run_id));
        }
        PutEventsRequestEntry::builder()
            .set_time(reader.time_ms(row).map(DateTime::from_millis))
            .source(
                self.source_override
                    .clone()
                    .unwrap_or_else(|| reader.source(row).to_owned()),
            )
            .detail_type(
                self.detail_type_override
                    .clone()
                    .unwrap_or_else(|| reader.detail_type(row).to_owned()),
            )
            .detail(reader.detail(row))
            .set_resources(Some(resources))
            .event_bus_name(&self.bus)
            .build()
    }

    pub async fn run(&self, mut input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        // Requests are built in order and sent up to `concurrency` at a time.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Pending>>(self.concurrency.max(1) * 2);
        let sender = async {
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
                .for_each_concurrent(self.concurrency.max(1), |batch| self.send_with_retries(batch, ctx))
                .await;
        };
        let builder = async {
            let mut batch: Vec<Pending> = Vec::new();
            let mut batch_bytes = 0usize;
            // A dry run batches and checks exactly as a real run, and reports the requests it
            // would have sent instead of sending them.
            let dry_requests = std::cell::Cell::new(0u64);
            let dispatch = |full: Vec<Pending>| {
                let tx = tx.clone();
                let dry_requests = &dry_requests;
                async move {
                    if ctx.dry_run {
                        for p in &full {
                            ctx.send(p.keys.outcomes(Status::Skipped, |o| {
                                o.error_code = Some("DryRun".into());
                                o.error_message = Some(format!(
                                    "dry run: would be sent in PutEvents request {}",
                                    dry_requests.get() + 1
                                ));
                            }));
                        }
                        dry_requests.set(dry_requests.get() + 1);
                        true
                    } else {
                        tx.send(full).await.is_ok()
                    }
                }
            };
            // If the input fails mid-way, the events already taken are still sent and reported.
            let mut input_error: Option<Error> = None;
            while let Some(rows) = input.next().await {
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        input_error = Some(e.into());
                        break;
                    }
                };
                let (reader, keys) = ctx.whole_events(&rows, "replay")?;
                for row in 0..rows.num_rows() {
                    let entry = self.entry(&reader, row, &ctx.run_id);
                    let size = entry_size(&entry);
                    let one = keys.take(&arrow::array::UInt32Array::from(vec![row as u32]))?;
                    let pending = Pending {
                        entry,
                        keys: one,
                        envelope: reader.envelope_json(row),
                        attempts: 0,
                        started: Instant::now(),
                    };
                    if size > MAX_REQUEST_BYTES {
                        ctx.send(fail(&pending, "EventTooLarge", &format!(
                            "the event is {size} bytes by EventBridge's size formula; PutEvents takes at most {MAX_REQUEST_BYTES} per request, so it was not sent"
                        )));
                        continue;
                    }
                    if batch.len() == MAX_ENTRIES || batch_bytes + size > MAX_REQUEST_BYTES {
                        let full = std::mem::take(&mut batch);
                        batch_bytes = 0;
                        if !dispatch(full).await {
                            return Ok(());
                        }
                    }
                    batch_bytes += size;
                    batch.push(pending);
                }
            }
            if !batch.is_empty() {
                dispatch(batch).await;
            }
            drop(tx);
            if let Some(e) = input_error {
                return Err(e);
            }
            if ctx.dry_run {
                eprintln!(
                    "dry run: would have sent {} PutEvents requests to {}",
                    dry_requests.get(),
                    self.bus
                );
            }
            Ok::<(), Error>(())
        };
        let (built, ()) = futures::join!(builder, sender);
        built
    }

    /// Sends one batch; resends only the entries that failed with a retryable code.
    async fn send_with_retries(&self, mut batch: Vec<Pending>, ctx: &ActionContext) {
        loop {
            if let Some(rate) = &self.rate {
                rate.acquire(batch.len()).await;
            }
            for p in batch.iter_mut() {
                p.attempts += 1;
            }
            let entries: Vec<PutEventsRequestEntry> = batch.iter().map(|p| p.entry.clone()).collect();
            let result = self.client.put_events().set_entries(Some(entries)).send().await;
            let mut retry: Vec<Pending> = Vec::new();
            let mut outcomes: Vec<Outcome> = Vec::new();
            match result {
                Ok(resp) => {
                    let results = resp.entries();
                    for (i, p) in batch.into_iter().enumerate() {
                        let r = results.get(i);
                        match r.and_then(|r| r.error_code()) {
                            None if r.is_some_and(|r| r.event_id().is_some()) => outcomes.extend(succeed(&p)),
                            None => outcomes.extend(fail(
                                &p,
                                "MissingResult",
                                "PutEvents returned no result for this entry",
                            )),
                            Some(code) if RETRYABLE.contains(&code) && self.retry.may_retry(p.attempts) => {
                                retry.push(p)
                            }
                            Some(code) => {
                                let msg = r.and_then(|r| r.error_message()).unwrap_or("");
                                outcomes.extend(fail(&p, code, msg));
                            }
                        }
                    }
                }
                Err(err) => {
                    let (code, message, retryable) = classify(&err);
                    for p in batch {
                        if retryable && self.retry.may_retry(p.attempts) {
                            retry.push(p);
                        } else {
                            outcomes.extend(fail(&p, &code, &message));
                        }
                    }
                }
            }
            ctx.send(outcomes);
            if retry.is_empty() {
                return;
            }
            let next = retry.iter().map(|p| p.attempts).max().unwrap_or(1) + 1;
            tokio::time::sleep(self.retry.backoff(next)).await;
            batch = retry;
        }
    }
}

fn succeed(p: &Pending) -> Vec<Outcome> {
    p.keys.outcomes(Status::Succeeded, |o| {
        o.attempts = p.attempts;
        o.latency_ms = Some(p.started.elapsed().as_secs_f64() * 1000.0);
    })
}

fn fail(p: &Pending, code: &str, message: &str) -> Vec<Outcome> {
    p.keys.outcomes(Status::Failed, |o| {
        o.attempts = p.attempts;
        o.latency_ms = Some(p.started.elapsed().as_secs_f64() * 1000.0);
        o.error_code = Some(code.to_owned());
        o.error_message = Some(message.to_owned());
        o.dead_letter = Some(p.envelope.clone());
    })
}

/// (code, message, retryable) for a request that failed as a whole. Throttling codes, HTTP 429
/// and 5xx, timeouts and connection failures are worth another attempt; the rest are not.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> (String, String, bool)
where
    SdkError<E, HttpResponse>: std::error::Error,
{
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let code = e
                .err()
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = e.err().message().unwrap_or("").to_owned();
            let retryable =
                RETRYABLE.contains(&code.as_str()) || code.contains("Throttl") || status == 429 || status >= 500;
            (code, message, retryable)
        }
        SdkError::TimeoutError(_) => ("Timeout".into(), "the request timed out".into(), true),
        SdkError::DispatchFailure(e) => ("DispatchFailure".into(), format!("{e:?}"), true),
        SdkError::ResponseError(e) => ("ResponseError".into(), format!("{e:?}"), true),
        other => ("RequestFailed".into(), other.to_string(), false),
    }
}
