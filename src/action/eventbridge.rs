//! `replay`: put the selected events back onto an EventBridge bus with PutEvents.
//!
//! What is particular to EventBridge: the request entry (with the marker resource naming the
//! run, so rules and archives can tell replays from live traffic), its size by EventBridge's
//! formula, and reading PutEvents' per-entry results. Batching, retries and the rest are the
//! driver's.

use arrow::array::RecordBatch;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use aws_smithy_types::DateTime;

use super::driver::{classify_sdk, Answer, Fault, Limits, Prepared, RequestTarget};
use super::ActionContext;
use crate::event::EnvelopeReader;
use crate::Result;

/// PutEvents limits: 10 entries, and since 2026-01-29 1 MB per request by EventBridge's size
/// formula (256 KB before; `--max-request-bytes` lowers it for accounts still there).
pub const MAX_ENTRIES: usize = 10;
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

pub struct EventBridgeReplay {
    pub client: Client,
    /// Bus name or ARN.
    pub bus: String,
    pub source_override: Option<String>,
    pub detail_type_override: Option<String>,
    /// Adds `marker_prefix + run_id` to every event's resources.
    pub marker: bool,
    pub max_request_bytes: usize,
}

/// The resource added to every replayed event: `arn:aws:rehydrate:::run/<run-id>`.
pub fn marker_resource(run_id: &str) -> String {
    format!("arn:aws:rehydrate:::run/{run_id}")
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
}

impl RequestTarget for EventBridgeReplay {
    type Item = PutEventsRequestEntry;

    fn request_name(&self) -> &'static str {
        "PutEvents"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_items: MAX_ENTRIES,
            max_request_bytes: self.max_request_bytes,
            max_item_bytes: self.max_request_bytes,
            oversize_code: "EventTooLarge",
            size_rule: "by EventBridge's size formula",
        }
    }

    fn prepare(&self, rows: &RecordBatch, ctx: &ActionContext) -> Result<Vec<Result<Prepared<Self::Item>, Fault>>> {
        let reader = ctx.whole_events(rows, "replay")?;
        Ok((0..rows.num_rows())
            .map(|row| {
                let entry = self.entry(&reader, row, &ctx.run_id);
                Ok(Prepared {
                    size: entry_size(&entry),
                    item: entry,
                    dedupe_key: None,
                })
            })
            .collect())
    }

    fn dead_letter(&self, rows: &RecordBatch, row: usize) -> String {
        super::envelope_line(rows, row)
    }

    async fn send(&self, items: &[&Self::Item]) -> Result<Vec<Answer>, Fault> {
        let entries: Vec<PutEventsRequestEntry> = items.iter().map(|e| (*e).clone()).collect();
        let resp = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify_sdk(&e))?;
        // Results come in request order: an id for each success, a code for each failure.
        Ok(resp
            .entries()
            .iter()
            .map(|r| match r.error_code() {
                Some(code) => Answer::Failed(Fault::from_code(code, r.error_message().unwrap_or(""))),
                None if r.event_id().is_some() => Answer::Succeeded,
                None => Answer::Failed(Fault::permanent(
                    "MissingResult",
                    "PutEvents returned no result for this entry",
                )),
            })
            .collect())
    }
}
