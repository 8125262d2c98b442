//! `invoke`: call the service's Lambda with each selected event exactly as an EventBridge rule
//! delivers it (the envelope, `detail` as an object).
//!
//! Order: without an ordering key, events are invoked `concurrency` at a time (one at a time by
//! default, so in source order). With `--ordering-key`, events are spread over `concurrency`
//! lanes by key; each lane invokes in order, so events of one key keep their order while keys run
//! in parallel. With ordering on, a failed event stops its key: later events of that key are
//! reported as skipped, unless `--continue-on-error`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, UInt32Array};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::eventbridge::classify;
use super::policy::{RateLimiter, RetryPolicy};
use super::{ActionContext, RowKeys};
use crate::report::{Outcome, Status};
use crate::{Error, Result};

/// The column the ordering key is computed into (see `filter::with_ordering_key`).
pub const ORDERING_KEY: &str = "__rehydrate_ordering_key";

/// Lambda's payload limits: 6 MB for synchronous invocation, 1 MB for asynchronous.
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

const RETRYABLE: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "ServiceException",
    "EC2ThrottledException",
    "ResourceNotReadyException",
    "ResourceConflictException",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Invocation {
    /// Synchronous: function errors are known, order can be kept.
    RequestResponse,
    /// Asynchronous: Lambda queues the event; only the hand-over is reported.
    Event,
}

pub struct LambdaInvoke {
    pub client: Client,
    pub function: String,
    pub invocation: Invocation,
    pub ordered_by_key: bool,
    pub continue_on_error: bool,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub rate: Option<Arc<RateLimiter>>,
}

struct Job {
    key: Option<String>,
    payload: String,
    keys: RowKeys,
}

impl LambdaInvoke {
    pub fn target(&self) -> String {
        format!("lambda:{}", self.function)
    }

    pub async fn run(&self, mut input: SendableRecordBatchStream, ctx: &ActionContext) -> Result<()> {
        let lanes = self.concurrency.max(1);
        let mut senders = Vec::with_capacity(lanes);
        let mut workers = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel::<Job>(64);
            senders.push(tx);
            workers.push(rx);
        }
        let feeder = async {
            let mut next_lane = 0usize;
            while let Some(rows) = input.next().await {
                let rows = rows?;
                let (reader, keys) = ctx.whole_events(&rows, "invoke")?;
                let key_column = rows
                    .column_by_name(ORDERING_KEY)
                    .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8))
                    .transpose()?;
                for row in 0..rows.num_rows() {
                    let key = key_column.as_ref().map(|c| {
                        let c = c.as_string::<i32>();
                        if c.is_valid(row) {
                            c.value(row).to_owned()
                        } else {
                            String::new()
                        }
                    });
                    let lane = match &key {
                        Some(k) => {
                            let mut h = std::collections::hash_map::DefaultHasher::new();
                            k.hash(&mut h);
                            (h.finish() % lanes as u64) as usize
                        }
                        None => {
                            next_lane = (next_lane + 1) % lanes;
                            next_lane
                        }
                    };
                    let job = Job {
                        key,
                        payload: reader.envelope_json(row),
                        keys: keys.take(&UInt32Array::from(vec![row as u32]))?,
                    };
                    if senders[lane].send(job).await.is_err() {
                        return Ok(());
                    }
                }
            }
            drop(senders);
            Ok::<(), Error>(())
        };
        let lanes_done = futures::future::join_all(workers.into_iter().map(|rx| self.lane(rx, ctx)));
        let (fed, _) = futures::join!(feeder, lanes_done);
        fed
    }

    /// Invokes the jobs of one lane in order.
    async fn lane(&self, mut rx: mpsc::Receiver<Job>, ctx: &ActionContext) {
        let mut failed_keys: HashSet<String> = HashSet::new();
        while let Some(job) = rx.recv().await {
            if let Some(key) = &job.key {
                if self.ordered_by_key && !self.continue_on_error && failed_keys.contains(key) {
                    ctx.send(job.keys.outcomes(Status::Skipped, |o| {
                        o.error_code = Some("EarlierEventFailed".into());
                        o.error_message = Some(format!(
                            "not invoked: an earlier event with ordering key {key:?} failed (use --continue-on-error to invoke anyway)"
                        ));
                        o.dead_letter = Some(job.payload.clone());
                    }));
                    continue;
                }
            }
            let outcome = self.invoke_or_check(&job, ctx.dry_run).await;
            if outcome.iter().any(|o| o.status == Status::Failed) {
                if let Some(key) = &job.key {
                    failed_keys.insert(key.clone());
                }
            }
            ctx.send(outcome);
        }
    }

    /// With `dry_run`, checks the event as a real invocation would, and sends nothing.
    async fn invoke_or_check(&self, job: &Job, dry_run: bool) -> Vec<Outcome> {
        let started = Instant::now();
        let finish = |status: Status, attempts: u32, code: Option<String>, message: Option<String>| {
            job.keys.outcomes(status, |o| {
                o.attempts = attempts;
                o.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                o.error_code = code.clone();
                o.error_message = message.clone();
                if status == Status::Failed {
                    o.dead_letter = Some(job.payload.clone());
                }
            })
        };
        let (limit, invocation_type) = match self.invocation {
            Invocation::RequestResponse => (MAX_SYNC_PAYLOAD, InvocationType::RequestResponse),
            Invocation::Event => (MAX_ASYNC_PAYLOAD, InvocationType::Event),
        };
        if job.payload.len() > limit {
            return finish(
                Status::Failed,
                0,
                Some("PayloadTooLarge".into()),
                Some(format!(
                    "the event is {} bytes; Lambda accepts at most {limit} for this invocation type, so it was not sent",
                    job.payload.len()
                )),
            );
        }
        if dry_run {
            return finish(
                Status::Skipped,
                0,
                Some("DryRun".into()),
                Some(format!("dry run: would invoke {}", self.function)),
            );
        }
        let mut attempts = 0u32;
        loop {
            if let Some(rate) = &self.rate {
                rate.acquire(1).await;
            }
            attempts += 1;
            let result = self
                .client
                .invoke()
                .function_name(&self.function)
                .invocation_type(invocation_type.clone())
                .payload(Blob::new(job.payload.as_bytes()))
                .send()
                .await;
            let (code, message, retryable) = match result {
                Ok(resp) => match resp.function_error() {
                    None => return finish(Status::Succeeded, attempts, None, None),
                    Some(kind) => {
                        // The function ran and failed: its answer, not a transport problem.
                        let (error_type, error_message) = function_error(resp.payload().map(|b| b.as_ref()), kind);
                        return finish(Status::Failed, attempts, Some(error_type), Some(error_message));
                    }
                },
                Err(err) => {
                    let (code, message, retryable) = classify(&err);
                    let retryable = retryable || RETRYABLE.contains(&code.as_str());
                    (code, message, retryable)
                }
            };
            if !(retryable && self.retry.may_retry(attempts)) {
                return finish(Status::Failed, attempts, Some(code), Some(message));
            }
            tokio::time::sleep(self.retry.backoff(attempts + 1)).await;
        }
    }
}

/// `errorType` and `errorMessage` of a function error's payload (`Handled` or `Unhandled`).
fn function_error(payload: Option<&[u8]>, kind: &str) -> (String, String) {
    let parsed: Option<serde_json::Value> = payload.and_then(|p| serde_json::from_slice(p).ok());
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let error_type = field("errorType").unwrap_or_else(|| format!("FunctionError{kind}"));
    let message = field("errorMessage").unwrap_or_else(|| {
        payload
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| format!("the function returned a {kind} error"))
    });
    (error_type, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_errors_keep_type_and_message() {
        let (t, m) = function_error(
            Some(br#"{"errorType":"ValueError","errorMessage":"bad order"}"#),
            "Handled",
        );
        assert_eq!((t.as_str(), m.as_str()), ("ValueError", "bad order"));
        let (t, m) = function_error(Some(b"boom"), "Unhandled");
        assert_eq!((t.as_str(), m.as_str()), ("FunctionErrorUnhandled", "boom"));
    }
}
