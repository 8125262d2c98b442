//! `invoke`: call the service's Lambda with each selected event exactly as an EventBridge rule
//! delivers it (the envelope, `detail` as an object).
//!
//! What is particular to Lambda: the payload, the invocation type and its payload limit, and
//! reading a function error from the answer. Order is the driver's: without an ordering key,
//! events are invoked `concurrency` at a time (one at a time by default, so in source order);
//! with `--ordering-key`, each key's events are invoked in order on one lane while keys run in
//! parallel, and a failed event stops its key unless `--continue-on-error`.

use arrow::array::RecordBatch;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use super::driver::{classify_sdk, Answer, Fault, Limits, Prepared, RequestTarget};
use super::ActionContext;
use crate::Result;

/// Lambda's payload limits: 6 MB for synchronous invocation, 1 MB for asynchronous (since
/// 2026-01-29; 256 KB before).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Invocation {
    /// Synchronous: function errors are known, order can be kept.
    RequestResponse,
    /// Asynchronous: Lambda queues the event; only the hand-over is reported.
    Event,
}

impl Invocation {
    /// The largest payload Lambda accepts for this invocation type.
    pub fn max_payload(self) -> usize {
        match self {
            Invocation::RequestResponse => MAX_SYNC_PAYLOAD,
            Invocation::Event => MAX_ASYNC_PAYLOAD,
        }
    }
}

pub struct LambdaInvoke {
    pub client: Client,
    pub function: String,
    pub invocation: Invocation,
    /// At most the invocation type's limit.
    pub max_request_bytes: usize,
    /// The account and region of the function, for events stored without them (set by
    /// [`LambdaInvoke::check`]), or of the bus whose rule routes to it.
    pub delivery: std::sync::OnceLock<(String, String)>,
    /// Invoked as a bus rule's target: what the target is given (the event, a constant, a path
    /// of it, or a transformation), as EventBridge delivers it.
    pub input: Option<std::sync::Arc<super::rules::TargetInput>>,
}

/// The account and region of a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
fn account_region(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", region, account, ..] if !region.is_empty() && !account.is_empty() => {
            Some(((*account).to_owned(), (*region).to_owned()))
        }
        _ => None,
    }
}

impl LambdaInvoke {
    pub fn target(&self) -> String {
        format!("lambda:{}", self.function)
    }

    /// Finds the function's account and region (from its ARN, or GetFunction for a name) before
    /// the run: an event stored without `account` or `region` is delivered with them, as
    /// EventBridge delivers it. A function that does not exist stops the run here.
    pub async fn check(&self, dry_run: bool) -> Result<()> {
        if self.delivery.get().is_some() {
            return Ok(());
        }
        if let Some(d) = account_region(&self.function) {
            let _ = self.delivery.set(d);
            return Ok(());
        }
        if dry_run {
            return Ok(());
        }
        let found = self
            .client
            .get_function()
            .function_name(&self.function)
            .send()
            .await
            .map_err(|e| {
                let f = classify_sdk(&e);
                crate::Error::Target {
                    target: format!("lambda:{}", self.function),
                    message: format!(
                        "{}: {}; check --function (a name, an ARN, or name:alias) and the region",
                        f.code, f.message
                    ),
                }
            })?;
        if let Some(d) = found
            .configuration()
            .and_then(|c| c.function_arn())
            .and_then(account_region)
        {
            let _ = self.delivery.set(d);
        }
        Ok(())
    }
}

impl RequestTarget for LambdaInvoke {
    /// The payload: the EventBridge envelope as JSON.
    type Item = String;

    fn request_name(&self) -> &'static str {
        "Invoke"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_items: 1,
            max_request_bytes: self.max_request_bytes,
            max_item_bytes: self.max_request_bytes,
            oversize_code: "PayloadTooLarge",
            size_rule: "as a JSON payload",
        }
    }

    fn prepare(&self, rows: &RecordBatch, ctx: &ActionContext) -> Result<Vec<Result<Prepared<Self::Item>, Fault>>> {
        let reader = ctx.whole_events(rows, "invoke")?;
        let ingestion_time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Ok((0..rows.num_rows())
            .map(|row| {
                let delivery = self.delivery.get().map(|(a, r)| (a.as_str(), r.as_str()));
                let mut payload = reader.envelope_json_with(row, delivery);
                if let Some(input) = &self.input {
                    let event: serde_json::Value = serde_json::from_str(&payload)
                        .map_err(|e| Fault::permanent("InputTransformation", e.to_string()))?;
                    payload = super::rules::deliver(input, &event, &ingestion_time);
                }
                Ok(Prepared {
                    size: payload.len(),
                    item: payload,
                    dedupe_key: None,
                })
            })
            .collect())
    }

    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> String {
        super::envelope_line(rows, row)
    }

    async fn send(&self, items: &[&Self::Item]) -> Result<Vec<Answer>, Fault> {
        let mut answers = Vec::with_capacity(items.len());
        let invocation_type = match self.invocation {
            Invocation::RequestResponse => InvocationType::RequestResponse,
            Invocation::Event => InvocationType::Event,
        };
        for payload in items {
            let resp = self
                .client
                .invoke()
                .function_name(&self.function)
                .invocation_type(invocation_type.clone())
                .payload(Blob::new(payload.as_bytes()))
                .send()
                .await
                .map_err(|e| classify_sdk(&e))?;
            answers.push(match resp.function_error() {
                None => Answer::Succeeded,
                // The function ran and failed: its answer, not a transport problem, so a retry
                // would run it again. Permanent.
                Some(kind) => {
                    let (error_type, message) = function_error(resp.payload().map(|b| b.as_ref()), kind);
                    Answer::Failed(Fault::permanent(error_type, message))
                }
            });
        }
        Ok(answers)
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
