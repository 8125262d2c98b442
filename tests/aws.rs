//! `replay` and `invoke` against real emulators: moto (EventBridge, Lambda, SQS), and the
//! fault-injecting proxy in front of it. Each test starts its own servers on free ports.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine;
use common::servers::{fault_proxy, moto, moto_ctl};
use common::*;
use serde_json::Value;

/// The sample events, by id, as written in the store.
/// The fields of every envelope EventBridge delivers.
const NINE_FIELDS: [&str; 9] = [
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
];

fn source_events() -> Vec<Value> {
    std::fs::read_to_string(testdata("events.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
        .unwrap()
        .into()
}

/// EventBridge delivers `time` at second precision.
fn second(v: &Value) -> i64 {
    instant(v).timestamp()
}

/// What identifies a replayed event on arrival (EventBridge gives it a new id).
fn identity(v: &Value) -> (String, String, i64, String) {
    (
        v["source"].as_str().unwrap().to_owned(),
        v["detail-type"].as_str().unwrap().to_owned(),
        second(v),
        serde_json::to_string(&v["detail"]).unwrap(),
    )
}

/// Every request moto recorded. Concurrent requests can put two records on one line, so the
/// recording is read as a stream of JSON values, not line by line.
fn recording(endpoint: &str) -> Vec<Value> {
    let text = moto_ctl(endpoint, &["recording", "get"]);
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|v| v.expect("moto's recording is a stream of JSON records"))
        .collect()
}

/// The requests moto recorded that `matches` selects, with decoded bodies.
fn recorded(endpoint: &str, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
    recording(endpoint)
        .into_iter()
        .filter(|r| matches(r))
        .map(|r| {
            let body = r["body"].as_str().unwrap_or("");
            let bytes = if r["body_encoded"] == true {
                base64::engine::general_purpose::STANDARD.decode(body).unwrap()
            } else {
                body.as_bytes().to_vec()
            };
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        })
        .collect()
}

fn is_put_events(r: &Value) -> bool {
    r["headers"]["X-Amz-Target"]
        .as_str()
        .is_some_and(|t| t.ends_with("PutEvents"))
}

fn run_summary_json(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// Runs rehydrate against `endpoint` (see `rehydrate_aws`), expecting `code`.
fn run_aws(args: &[&str], endpoint: &str, code: i32) -> Ran {
    run_checked(args, &aws_env(endpoint), code)
}

#[test]
fn replay_delivers_selected_events_with_the_marker_within_limits() {
    let moto = moto();
    moto_ctl(&moto.url, &["recording", "start"]);
    let queue = moto_ctl(&moto.url, &["replay-target", "rebuild", "replays"])
        .trim()
        .to_owned();
    let filter = "source = 'com.shop.orders' AND detail_type = 'OrderCancelled'";
    let ran = run_aws(
        &[
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            filter,
            "--bus",
            "rebuild",
            "--output",
            "json",
        ],
        &moto.url,
        0,
    );
    let summary = run_summary_json(&ran.output);
    assert_eq!(summary, ran.summary, "--output json prints the saved summary");
    let run_id = summary["run_id"].as_str().unwrap();

    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.orders" && e["detail-type"] == "OrderCancelled")
        .collect();
    assert_eq!(summary["succeeded"].as_u64(), Some(expected.len() as u64));

    let delivered: Vec<Value> = moto_ctl(&moto.url, &["drain", &queue, &expected.len().to_string(), "60"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(delivered.len(), expected.len(), "each selected event arrives once");
    let marker = format!("arn:aws:rehydrate:::run/{run_id}");
    let mut want: Vec<_> = expected.iter().map(identity).collect();
    let mut got: Vec<_> = delivered.iter().map(identity).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "time, source, detail-type and detail are preserved");
    let by_identity: HashMap<_, _> = expected.iter().map(|e| (identity(e), e)).collect();
    for d in &delivered {
        let resources: Vec<&str> = d["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(
            resources.last(),
            Some(&marker.as_str()),
            "the replay marker is on every event"
        );
        let original = by_identity[&identity(d)];
        let original_resources: Vec<&str> = original["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(&resources[..resources.len() - 1], original_resources.as_slice());
    }

    // Every PutEvents request kept to 10 entries and 256 KB by EventBridge's size formula.
    let requests = recorded(&moto.url, is_put_events);
    assert!(requests.len() >= expected.len().div_ceil(10));
    for r in &requests {
        let entries = r["Entries"].as_array().unwrap();
        assert!(entries.len() <= 10, "{} entries", entries.len());
        let size: usize = entries
            .iter()
            .map(|e| {
                14 + ["Source", "DetailType", "Detail"]
                    .iter()
                    .map(|k| e[*k].as_str().map_or(0, str::len))
                    .sum::<usize>()
                    + e["Resources"]
                        .as_array()
                        .map_or(0, |rs| rs.iter().map(|r| r.as_str().unwrap().len()).sum())
            })
            .sum();
        assert!(size <= 256 * 1024, "{size} bytes");
    }
}

#[test]
fn replay_batches_by_size_and_fails_an_oversize_event_without_sending_it() {
    let moto = moto();
    moto_ctl(&moto.url, &["recording", "start"]);
    let queue = moto_ctl(&moto.url, &["replay-target", "big", "big-q"])
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    // Eight events of ~200 KB (five fit a 1 MB request by size, not ten) and one of ~1.1 MB.
    let mut lines = Vec::new();
    for i in 0..8 {
        lines.push(serde_json::json!({"id": format!("e{i}"), "source": "s", "detail-type": "Blob", "time": "2026-01-01T00:00:00Z",
            "detail": {"n": i, "pad": "x".repeat(200_000)}}).to_string());
    }
    lines.push(
        serde_json::json!({"id": "huge", "source": "s", "detail-type": "Blob", "time": "2026-01-01T00:00:00Z",
        "detail": {"pad": "y".repeat(1_100_000)}})
        .to_string(),
    );
    let file = dir.path().join("big.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let ran = run_aws(
        &["replay", "--from", file.to_str().unwrap(), "--bus", "big"],
        &moto.url,
        3,
    );
    let run = ran.run.clone();
    let outcomes = outcomes(&run);
    let huge = outcomes.iter().find(|r| r.event_id.as_deref() == Some("huge")).unwrap();
    assert_eq!(huge.status, "failed");
    assert!(huge.error_message.as_deref().unwrap().contains("not sent"), "{huge:?}");
    assert_eq!(outcomes.iter().filter(|r| r.status == "succeeded").count(), 8);
    let requests = recorded(&moto.url, is_put_events);
    assert!(requests.len() >= 2, "eight 200 KB events need more than one request");
    for r in &requests {
        let mut size = 0;
        for e in r["Entries"].as_array().unwrap() {
            let detail = e["Detail"].as_str().unwrap().len();
            assert!(detail < 300_000, "the oversize event was never sent");
            size += detail;
        }
        assert!(size <= 1024 * 1024, "{size} bytes in one request");
    }
    let delivered = moto_ctl(&moto.url, &["drain", &queue, "8", "30"]);
    assert_eq!(delivered.lines().count(), 8);
    // The failed event is in the dead-letter file, ready to re-drive.
    let summary = run_summary(&run);
    let dead = std::fs::read_to_string(summary["dead_letter"].as_str().unwrap()).unwrap();
    let dead: Vec<Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], "huge");
}

#[test]
fn replay_takes_600_kb_events_by_default_and_refuses_them_under_a_lower_limit() {
    let moto = moto();
    moto_ctl(&moto.url, &["recording", "start"]);
    let queue = moto_ctl(&moto.url, &["replay-target", "wide", "wide-q"])
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let event = serde_json::json!({"id": "wide", "source": "s", "detail-type": "Blob", "time": "2026-01-01T00:00:00Z",
        "detail": {"pad": "w".repeat(600 * 1024)}});
    let file = dir.path().join("wide.ndjson");
    std::fs::write(&file, event.to_string()).unwrap();
    // Since 2026-01-29 EventBridge takes entries up to 1 MB: accepted by default.
    let ran = run_aws(
        &["replay", "--from", file.to_str().unwrap(), "--bus", "wide"],
        &moto.url,
        0,
    );
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(1));
    assert!(ran.summary["bytes_sent"].as_u64().unwrap() > 600 * 1024);
    assert_eq!(moto_ctl(&moto.url, &["drain", &queue, "1", "30"]).lines().count(), 1);
    // An account still on the old limit: refused before sending, with the reason.
    let ran = run_aws(
        &[
            "replay",
            "--from",
            file.to_str().unwrap(),
            "--bus",
            "wide",
            "--max-request-bytes",
            "262144",
        ],
        &moto.url,
        3,
    );
    let rows = outcomes(&ran.run);
    assert_eq!(rows[0].status, "failed");
    assert_eq!(rows[0].error_code.as_deref(), Some("EventTooLarge"));
    assert_eq!(rows[0].attempts, 0);
    assert!(
        rows[0].error_message.as_deref().unwrap().contains("262144"),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        recorded(&moto.url, is_put_events).len(),
        1,
        "only the first run sent anything"
    );
    // Out of range: a usage error naming the range.
    let o = rehydrate_aws(
        &[
            "replay",
            "--from",
            file.to_str().unwrap(),
            "--bus",
            "wide",
            "--max-request-bytes",
            "5000000",
        ],
        &moto.url,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("between 1024 and 1048576"), "{}", stderr(&o));
}

fn invoke_payloads(endpoint: &str, function: &str) -> Vec<Value> {
    let path = format!("/functions/{function}/invocations");
    recorded(endpoint, |r| r["url"].as_str().is_some_and(|u| u.contains(&path)))
}

/// The envelope a rule delivers for a source event (`time` in UTC).
fn delivered_form(e: &Value) -> Value {
    let mut e = e.clone();
    e["time"] = Value::String(instant(&e).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    e
}

#[test]
fn invoke_sends_eventbridge_envelopes_in_source_order() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "projector"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    run_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.payments'",
            "--function",
            "projector",
        ],
        &moto.url,
        0,
    );
    let expected: Vec<Value> = source_events()
        .iter()
        .filter(|e| e["source"] == "com.shop.payments")
        .map(delivered_form)
        .collect();
    let payloads = invoke_payloads(&moto.url, "projector");
    assert_eq!(
        payloads, expected,
        "the EventBridge envelope of each event, detail as an object, in source order"
    );
}

#[test]
fn invoke_keeps_order_within_each_key_across_concurrent_lanes() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "orders"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    run_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.orders'",
            "--function",
            "orders",
            "--ordering-key",
            "detail->>'orderId'",
            "--concurrency",
            "4",
        ],
        &moto.url,
        0,
    );
    let per_key = |events: &[Value]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in events {
            m.entry(e["detail"]["orderId"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["id"].as_str().unwrap().to_owned());
        }
        m
    };
    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.orders")
        .collect();
    let payloads = invoke_payloads(&moto.url, "orders");
    assert_eq!(payloads.len(), expected.len());
    assert_eq!(
        per_key(&payloads),
        per_key(&expected),
        "each order's events in source order"
    );
}

#[test]
fn function_errors_are_reported_with_type_and_message_and_stop_their_key() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "flaky"]);
    // The first invocation fails (handled), the second fails (unhandled), the rest echo.
    moto_ctl(
        &moto.url,
        &[
            "queue-results",
            r#"["{\"functionError\":\"Handled\",\"errorType\":\"OrderNotFound\",\"errorMessage\":\"no order ORD-1\"}","{\"functionError\":\"Unhandled\",\"errorType\":\"Runtime.ExitError\",\"errorMessage\":\"exit status 1\"}"]"#,
        ],
    );
    // Failed events give exit code 3.
    let ran = run_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.users'",
            "--function",
            "flaky",
            "--ordering-key",
            "detail->>'userId'",
        ],
        &moto.url,
        3,
    );
    let o = &ran.output;
    let run = ran.run.clone();
    let summary = ran.summary.clone();
    assert_eq!(summary["failed"].as_u64(), Some(2));
    let rows = outcomes(&run);
    let failed: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "failed").collect();
    let messages: Vec<&str> = failed.iter().map(|r| r.error_message.as_deref().unwrap()).collect();
    assert_eq!(messages, ["no order ORD-1", "exit status 1"]);
    let types: Vec<&str> = failed.iter().map(|r| r.error_code.as_deref().unwrap()).collect();
    assert_eq!(types, ["OrderNotFound", "Runtime.ExitError"]);
    // Later events of a failed user's key were not invoked: skipped, and named.
    let users = source_events();
    let key_of = |id: &str| {
        users.iter().find(|e| e["id"] == id).unwrap()["detail"]["userId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let failed_keys: Vec<String> = failed.iter().map(|r| key_of(r.event_id.as_deref().unwrap())).collect();
    let skipped: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "skipped").collect();
    let expected_skips = users
        .iter()
        .filter(|e| e["source"] == "com.shop.users")
        .filter(|e| failed_keys.contains(&e["detail"]["userId"].as_str().unwrap().to_owned()))
        .count()
        - failed.len();
    assert_eq!(skipped.len(), expected_skips);
    assert!(skipped
        .iter()
        .all(|r| failed_keys.contains(&key_of(r.event_id.as_deref().unwrap()))));
    let err = stderr(o);
    assert!(err.contains("OrderNotFound: no order ORD-1"), "{err}");
}

#[test]
fn dry_run_sends_nothing() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "quiet"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    for cmd in [
        &["replay", "--bus", "nowhere"][..],
        &["invoke", "--function", "quiet"][..],
    ] {
        let mut args = vec![
            "--from",
            "testdata/events.ndjson",
            "--where",
            "detail_type = 'PaymentFailed'",
            "--dry-run",
            "--output",
            "json",
            "--report-dir",
            reports.to_str().unwrap(),
        ];
        args.splice(0..0, cmd.iter().copied());
        let o = rehydrate_aws(&args, &moto.url);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s = run_summary_json(&o);
        assert_eq!(
            (s["matched"].as_u64(), s["skipped"].as_u64(), s["dry_run"].as_bool()),
            (Some(25), Some(25), Some(true))
        );
        // The requests it would have sent are a figure of the summary: 25 events make three
        // PutEvents requests of at most 10, or 25 invocations.
        let want = if cmd[0] == "replay" { 3 } else { 25 };
        assert_eq!(s["requests"].as_u64(), Some(want), "{s}");
    }
    for run in runs(&reports) {
        assert_reconciles(&run);
    }
    assert!(recorded(&moto.url, is_put_events).is_empty());
    assert!(invoke_payloads(&moto.url, "quiet").is_empty());
    // The recorder was listening: a real invocation afterwards is recorded.
    let o = rehydrate_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "id = '972a8469-1641-4f82-8b9d-2434e465e150'",
            "--function",
            "quiet",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        &moto.url,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(invoke_payloads(&moto.url, "quiet").len(), 1);
}

/// The proxy's log: every request and what reached the emulator.
fn fault_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What reached the emulator in requests whose response the proxy then dropped: the only
/// deliveries that may repeat, because no client can know they took effect.
fn forwarded_before_lost_responses(faults: &[Value]) -> Vec<&Value> {
    faults
        .iter()
        .filter(|f| f["fault"] == "drop_after")
        .flat_map(|f| f["forwarded"].as_array().unwrap())
        .collect()
}

/// Every expected event was delivered at least once, and more than once only if it was in a
/// request whose response was lost.
fn assert_delivered_once_unless_lost<K: std::hash::Hash + Eq + std::fmt::Debug>(
    expected: impl IntoIterator<Item = (K, String)>,
    delivered: impl IntoIterator<Item = K>,
    may_repeat: &std::collections::HashSet<K>,
) {
    let mut counts: HashMap<K, usize> = HashMap::new();
    for k in delivered {
        *counts.entry(k).or_default() += 1;
    }
    for (k, name) in expected {
        let n = counts.get(&k).copied().unwrap_or(0);
        assert!(n >= 1, "event {name} was lost");
        assert!(
            n == 1 || may_repeat.contains(&k),
            "event {name} arrived {n} times without a lost response"
        );
    }
}

/// What identifies a replayed event on arrival and in the proxy's log (EventBridge gives it a
/// new id): detail-type, time to the second, and detail.
type ReplayKey = (String, i64, String);

fn replay_key(e: &Value) -> ReplayKey {
    (
        e["detail-type"].as_str().unwrap().to_owned(),
        second(e),
        e["detail"].to_string(),
    )
}

/// The replayed events that reached moto in requests whose response the proxy dropped.
fn replays_before_lost_responses(log: &Path) -> std::collections::HashSet<ReplayKey> {
    forwarded_before_lost_responses(&fault_log(log))
        .into_iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(e[2].as_str().unwrap()).unwrap();
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_f64().unwrap() as i64,
                detail.to_string(),
            )
        })
        .collect()
}

/// Drains the rule's queue and checks each expected replay arrived once, or more only if it may.
fn assert_replays_delivered(
    moto: &str,
    queue: &str,
    expected: &[Value],
    may_repeat: &std::collections::HashSet<ReplayKey>,
) {
    let delivered: Vec<Value> = moto_ctl(moto, &["drain", queue, &expected.len().to_string(), "90"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_delivered_once_unless_lost(
        expected.iter().map(|e| (replay_key(e), e["id"].to_string())),
        delivered.iter().map(replay_key),
        may_repeat,
    );
}

#[test]
fn replay_through_faults_delivers_everything_once_except_after_lost_responses() {
    let moto = moto();
    let queue = moto_ctl(&moto.url, &["replay-target", "faulty", "faulty-q"])
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.ndjson");
    let proxy = fault_proxy(&moto.url, 0.2, 11, &log);
    let ran = run_aws(
        &[
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.payments'",
            "--bus",
            "faulty",
            "--max-attempts",
            "12",
        ],
        &proxy.url,
        0,
    );
    let run = ran.run.clone();
    let summary = ran.summary.clone();
    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.payments")
        .collect();
    assert_eq!(
        summary["succeeded"].as_u64(),
        Some(expected.len() as u64),
        "every matched event succeeded"
    );
    let rows = outcomes(&run);
    assert!(
        rows.iter().any(|r| r.attempts > 1),
        "the faults forced retries, and attempts shows them"
    );

    let faults = fault_log(&log);
    assert!(
        faults.iter().any(|f| f["fault"] == "partial"),
        "a partial failure happened"
    );
    assert!(faults.iter().any(|f| f["fault"] == "throttle" || f["fault"] == "error"));
    assert_replays_delivered(&moto.url, &queue, &expected, &replays_before_lost_responses(&log));
}

#[test]
fn invoke_through_faults_succeeds_with_retries_and_no_avoidable_duplicates() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "sturdy"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.ndjson");
    let proxy = fault_proxy(&moto.url, 0.2, 5, &log);
    let ran = run_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.payments'",
            "--function",
            "sturdy",
            "--max-attempts",
            "12",
        ],
        &proxy.url,
        0,
    );
    let run = ran.run.clone();
    let summary = ran.summary.clone();
    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.payments")
        .collect();
    assert_eq!(summary["succeeded"].as_u64(), Some(expected.len() as u64));
    assert!(outcomes(&run).iter().any(|r| r.attempts > 1));

    let faults = fault_log(&log);
    let may_repeat = forwarded_before_lost_responses(&faults)
        .into_iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_delivered_once_unless_lost(
        expected
            .iter()
            .map(|e| (e["id"].as_str().unwrap().to_owned(), e["id"].to_string())),
        invoke_payloads(&moto.url, "sturdy")
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned()),
        &may_repeat,
    );
}

#[test]
fn invoke_order_by_time_sorts_a_shuffled_store() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "sorted"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    // The inventory events, newest first: source order is the reverse of time order.
    let mut events: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.inventory")
        .collect();
    events.reverse();
    let file = dir.path().join("shuffled.ndjson");
    std::fs::write(&file, events.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    run_aws(
        &[
            "invoke",
            "--from",
            file.to_str().unwrap(),
            "--function",
            "sorted",
            "--order-by",
            "time",
        ],
        &moto.url,
        0,
    );
    let payloads = invoke_payloads(&moto.url, "sorted");
    assert_eq!(payloads.len(), events.len());
    let times: Vec<_> = payloads.iter().map(instant).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "invoked in time order");
    let mut expected = events.clone();
    expected.sort_by_key(instant);
    let ids = |v: &[Value]| {
        v.iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&payloads), ids(&expected));
}

#[test]
fn async_invocation_respects_its_payload_limit() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "async-fn"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    let small = serde_json::json!({"id": "small", "source": "s", "detail-type": "T", "detail": {"n": 1}});
    // Over the 1 MB asynchronous limit, well under the 6 MB synchronous one.
    let big =
        serde_json::json!({"id": "big", "source": "s", "detail-type": "T", "detail": {"pad": "z".repeat(1_100_000)}});
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, format!("{small}\n{big}\n")).unwrap();
    let ran = run_aws(
        &[
            "invoke",
            "--from",
            file.to_str().unwrap(),
            "--function",
            "async-fn",
            "--invocation-type",
            "event",
        ],
        &moto.url,
        3,
    );
    let rows = outcomes(&ran.run);
    let by_id = |id: &str| rows.iter().find(|r| r.event_id.as_deref() == Some(id)).unwrap();
    assert_eq!(by_id("small").status, "succeeded");
    assert_eq!(by_id("big").status, "failed");
    assert_eq!(by_id("big").error_code.as_deref(), Some("PayloadTooLarge"));
    assert_eq!(by_id("big").attempts, 0, "not sent");
    let recorded_requests: Vec<Value> = recording(&moto.url)
        .into_iter()
        .filter(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.contains("/functions/async-fn/invocations"))
        })
        .collect();
    assert_eq!(recorded_requests.len(), 1, "only the small event was sent");
    assert_eq!(recorded_requests[0]["headers"]["X-Amz-Invocation-Type"], "Event");
}

#[test]
fn continue_on_error_invokes_the_rest_of_a_failed_key() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "tolerant"]);
    moto_ctl(
        &moto.url,
        &[
            "queue-results",
            r#"["{\"functionError\":\"Handled\",\"errorType\":\"Boom\",\"errorMessage\":\"first fails\"}"]"#,
        ],
    );
    moto_ctl(&moto.url, &["recording", "start"]);
    let ran = run_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.users'",
            "--function",
            "tolerant",
            "--ordering-key",
            "detail->>'userId'",
            "--continue-on-error",
        ],
        &moto.url,
        3,
    );
    let users = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.users")
        .count() as u64;
    assert_eq!(ran.summary["failed"].as_u64(), Some(1));
    assert_eq!(ran.summary["skipped"].as_u64(), Some(0));
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(users - 1));
    assert_eq!(
        invoke_payloads(&moto.url, "tolerant").len() as u64,
        users,
        "every event was invoked"
    );
}

#[test]
fn replay_overrides_source_and_detail_type() {
    let moto = moto();
    let queue = moto_ctl(&moto.url, &["replay-target", "iso", "iso-q"])
        .trim()
        .to_owned();
    run_aws(
        &[
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "detail_type = 'StockReserved'",
            "--bus",
            "iso",
            "--source",
            "rehydrate.inventory",
            "--detail-type",
            "StockReservedReplay",
            "--rate",
            "200",
        ],
        &moto.url,
        0,
    );
    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["detail-type"] == "StockReserved")
        .collect();
    let delivered: Vec<Value> = moto_ctl(&moto.url, &["drain", &queue, &expected.len().to_string(), "60"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(delivered.len(), expected.len());
    for d in &delivered {
        assert_eq!(d["source"], "rehydrate.inventory");
        assert_eq!(d["detail-type"], "StockReservedReplay");
    }
    let mut want: Vec<String> = expected.iter().map(|e| e["detail"].to_string()).collect();
    let mut got: Vec<String> = delivered.iter().map(|d| d["detail"].to_string()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "detail untouched");
}

#[test]
fn missing_credentials_or_region_stop_before_any_work() {
    let base = [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ];
    let args = [
        "replay",
        "--from",
        "testdata/events.ndjson",
        "--bus",
        "b",
        "--report-dir",
        "/nonexistent/never-created",
    ];
    let mut envs = base.to_vec();
    envs.push(("AWS_REGION", "eu-west-1"));
    let o = rehydrate_full(&args, None, &envs);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("AWS credentials"), "{}", stderr(&o));
    let o = rehydrate_full(&args, None, &base);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no AWS region"), "{}", stderr(&o));
}

#[test]
fn replay_killed_mid_run_and_resumed_delivers_everything_once_unless_in_flight_or_lost() {
    let moto = moto();
    let queue = moto_ctl(&moto.url, &["replay-target", "kr", "kr-q"]).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.ndjson");
    let proxy = fault_proxy(&moto.url, 0.2, 5, &log);
    let reports = dir.path().join("runs");
    let filter = "source = 'com.shop.orders' AND detail_type = 'OrderCancelled'";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rehydrate"))
        .args([
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            filter,
            "--bus",
            "kr",
        ])
        .args([
            "--rate",
            "20",
            "--max-attempts",
            "12",
            "--report-dir",
            reports.to_str().unwrap(),
        ])
        .current_dir(repo())
        .env_remove("REHYDRATE_REPORT_DIR")
        .envs(aws_env(&proxy.url))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has reported some outcomes, well before the end (83 events at 20/s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let logged = std::fs::read_dir(&reports)
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|e| {
                std::fs::metadata(e.unwrap().path().join("outcomes.arrows")).is_ok_and(|m| m.len() > 1500)
            });
        if logged {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    // What reached moto before the kill, from the proxy's log.
    let reached_before_kill: std::collections::HashSet<ReplayKey> = fault_log(&log)
        .iter()
        .flat_map(|entry| entry["forwarded"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let detail: Value = serde_json::from_str(e[2].as_str().unwrap()).unwrap();
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_f64().unwrap() as i64,
                detail.to_string(),
            )
        })
        .collect();
    let first = runs(&reports).pop().unwrap();
    let first_id = first.file_name().unwrap().to_str().unwrap().to_owned();
    let o = rehydrate_full(
        &["resume", "--report-dir", reports.to_str().unwrap(), &first_id],
        None,
        &aws_env(&proxy.url),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let second = runs(&reports).into_iter().find(|r| r != &first).unwrap();
    let resent = run_summary(&second)["in_flight_resent"].as_u64().unwrap();
    // Every event has exactly one final outcome across the two runs (the first one's are in
    // its log: it never finished).
    let o = rehydrate(&[
        "report",
        "--format",
        "ndjson",
        "--report-dir",
        reports.to_str().unwrap(),
        "SELECT run_id, event_id, status, attempts FROM outcomes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected: Vec<Value> = source_events()
        .into_iter()
        .filter(|e| e["source"] == "com.shop.orders" && e["detail-type"] == "OrderCancelled")
        .collect();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_event.entry(r["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    let in_first: std::collections::HashSet<String> = rows
        .iter()
        .filter(|r| r["run_id"] == first_id.as_str())
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !in_first.is_empty() && in_first.len() < expected.len(),
        "killed mid-run: {}",
        in_first.len()
    );
    for e in &expected {
        assert_eq!(per_event.get(e["id"].as_str().unwrap()), Some(&1), "{}", e["id"]);
    }
    assert_eq!(per_event.len(), expected.len());
    // The resumed run knows which events were in flight at the kill: every event that reached
    // moto in the first run without getting an outcome there is one of them (counted in
    // `in_flight_resent`), and its outcome counts that unknown attempt.
    let attempts_after: HashMap<String, u64> = rows
        .iter()
        .filter(|r| r["run_id"] != first_id.as_str())
        .map(|r| {
            (
                r["event_id"].as_str().unwrap().to_owned(),
                r["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    let reached_unfinished: Vec<&str> = expected
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .filter(|id| !in_first.contains(*id))
        .filter(|id| reached_before_kill.contains(&replay_key(expected.iter().find(|e| e["id"] == *id).unwrap())))
        .collect();
    for id in &reached_unfinished {
        assert!(
            attempts_after[*id] >= 2,
            "{id} was in flight at the kill: its earlier attempt counts"
        );
    }
    assert!(
        resent as usize >= reached_unfinished.len() && resent as usize <= expected.len() - in_first.len(),
        "in flight: {resent}, reached moto unfinished: {}",
        reached_unfinished.len()
    );
    let in_flight: std::collections::HashSet<String> = attempts_after
        .iter()
        .filter(|(_, a)| **a >= 2)
        .map(|(id, _)| id.clone())
        .collect();
    // Deliveries: at least once each; more than once only after a lost response, or for an
    // event that was in flight at the kill (its attempts count it).
    let mut may_repeat = replays_before_lost_responses(&log);
    for e in &expected {
        if in_flight.contains(e["id"].as_str().unwrap()) {
            may_repeat.insert(replay_key(e));
        }
    }
    assert_replays_delivered(&moto.url, &queue, &expected, &may_repeat);
}

#[test]
fn redrive_sends_exactly_the_failed_and_rejected_events_again() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "legacy"]);
    // The first three invocations fail with a function error (permanent: not retried).
    let fail = r#"{\"functionError\":\"Handled\",\"errorType\":\"Boom\",\"errorMessage\":\"no\"}"#;
    moto_ctl(
        &moto.url,
        &["queue-results", &format!(r#"["{fail}","{fail}","{fail}"]"#)],
    );
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    // Records of another shape (read with --map), two of them broken.
    let mut lines: Vec<String> = std::fs::read_to_string(testdata("eventstore.ndjson"))
        .unwrap()
        .lines()
        .take(20)
        .map(str::to_owned)
        .collect();
    lines.insert(
        5,
        r#"{"pk":"ORDERS#1","eventId":"bad-1","aggregate":"com.legacy.orders"}"#.into(),
    );
    lines.push("not json at all".into());
    let file = dir.path().join("legacy.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let reports = dir.path().join("runs");
    let map = [
        "--map",
        "detail-type=eventType",
        "--map",
        "detail=payload",
        "--map",
        "time=createdAt",
        "--map",
        "source=aggregate",
        "--map",
        "id=eventId",
    ];
    let mut args = vec!["invoke", "--from", file.to_str().unwrap(), "--function", "legacy"];
    args.extend_from_slice(&map);
    args.extend_from_slice(&["--report-dir", reports.to_str().unwrap()]);
    let o = rehydrate_aws(&args, &moto.url);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let first = runs(&reports).pop().unwrap();
    let s = run_summary(&first);
    assert_eq!(
        (s["failed"].as_u64(), s["rejected"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    let failed_ids: std::collections::BTreeSet<String> = outcomes(&first)
        .into_iter()
        .filter(|r| r.status == "failed")
        .map(|r| r.event_id.unwrap())
        .collect();
    let before = invoke_payloads(&moto.url, "legacy").len();
    assert_eq!(before, 20, "every good record was invoked once");
    // The dead letters are the original records, verbatim: the three that failed (found by
    // their id in the input) and the two that were rejected.
    let dead_letters = first.join("dead-letter.ndjson");
    let dead = std::fs::read_to_string(&dead_letters).unwrap();
    let mut dead: Vec<&str> = dead.lines().collect();
    let mut expected: Vec<&str> = lines
        .iter()
        .filter(|l| {
            failed_ids.iter().any(|id| l.contains(&format!("\"eventId\":\"{id}\"")))
                || l.contains("bad-1")
                || l.starts_with("not json")
        })
        .map(String::as_str)
        .collect();
    dead.sort();
    expected.sort();
    assert_eq!(dead, expected);

    let first_id = first.file_name().unwrap().to_str().unwrap().to_owned();
    let o = rehydrate_full(
        &["redrive", "--report-dir", reports.to_str().unwrap(), &first_id],
        None,
        &aws_env(&moto.url),
    );
    // The function now succeeds; the two broken records are rejected again.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let payloads = invoke_payloads(&moto.url, "legacy");
    let again: std::collections::BTreeSet<String> = payloads[before..]
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(payloads.len() - before, 3, "exactly the failed events, once each");
    assert_eq!(again, failed_ids);
    let second = runs(&reports).into_iter().find(|r| r != &first).unwrap();
    let s = run_summary(&second);
    assert_eq!(s["resumed_from"], first_id.as_str());
    assert_eq!(
        (s["succeeded"].as_u64(), s["rejected"].as_u64(), s["failed"].as_u64()),
        (Some(3), Some(2), Some(0)),
        "{s}"
    );

    // The dead-letter file itself, with the same flags, re-drives the same events.
    let mut args = vec![
        "invoke",
        "--from",
        dead_letters.to_str().unwrap(),
        "--function",
        "legacy",
    ];
    args.extend_from_slice(&map);
    args.extend_from_slice(&["--report-dir", reports.to_str().unwrap()]);
    let o = rehydrate_aws(&args, &moto.url);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let after = invoke_payloads(&moto.url, "legacy");
    let third: std::collections::BTreeSet<String> = after[payloads.len()..]
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(after.len() - payloads.len(), 3, "{third:?}");
    assert_eq!(third, failed_ids);
}

#[test]
fn every_invoke_payload_has_the_nine_envelope_fields_even_when_the_store_lacks_some() {
    let moto = moto();
    moto_ctl(&moto.url, &["function", "projector"]);
    moto_ctl(&moto.url, &["recording", "start"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sparse.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"id":"bare","source":"com.shop.orders","detail-type":"OrderPlaced","time":"2026-03-01T10:00:00Z","detail":{"orderId":"O-1"}}"#,
            "\n",
            r#"{"id":"full","version":"0","source":"com.shop.orders","detail-type":"OrderPlaced","account":"999999999999","region":"us-west-2","time":"2026-03-01T10:00:01Z","resources":["arn:x"],"detail":{"orderId":"O-2"}}"#,
            "\n"
        ),
    )
    .unwrap();
    run_aws(
        &["invoke", "--from", file.to_str().unwrap(), "--function", "projector"],
        &moto.url,
        0,
    );
    let payloads = invoke_payloads(&moto.url, "projector");
    assert_eq!(payloads.len(), 2);
    let nine = NINE_FIELDS;
    for p in &payloads {
        let mut keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = nine.to_vec();
        want.sort();
        assert_eq!(keys, want, "{p}");
    }
    // What the store lacks comes from the function's ARN (moto's account, the region), as
    // EventBridge fills it from the bus; what it has is kept.
    assert_eq!(payloads[0]["account"], "123456789012");
    assert_eq!(payloads[0]["region"], "eu-west-1");
    assert_eq!(payloads[0]["version"], "0");
    assert_eq!(payloads[0]["resources"], serde_json::json!([]));
    assert_eq!(payloads[1]["account"], "999999999999");
    assert_eq!(payloads[1]["region"], "us-west-2");
    assert_eq!(payloads[1]["resources"], serde_json::json!(["arn:x"]));
}

// ---------------------------------------------------------------------------------------------
// invoke --rules-from-bus

/// Payloads delivered to `function`, whatever name or ARN it was invoked by.
fn payloads_of(endpoint: &str, function: &str) -> Vec<Value> {
    recorded(endpoint, |r| {
        r["url"]
            .as_str()
            .is_some_and(|u| u.contains("/invocations") && u.contains(function))
    })
}

/// An event as both sides deliver it, without what PutEvents changes (a new `id`; `region` and
/// `account` become the bus's, and moto's SQS delivery lacks `account`): compared as JSON text.
fn comparable(mut e: Value) -> String {
    if let Value::Object(m) = &mut e {
        m.remove("id");
        m.remove("account");
        m.remove("region");
        if let Some(t) = m.get("time").and_then(Value::as_str) {
            // moto writes whole seconds; so does the comparison.
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .with_timezone(&chrono::Utc);
            m.insert("time".into(), Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
    }
    e.to_string()
}

fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

#[test]
fn invoke_rules_from_bus_delivers_what_eventbridge_delivers_through_the_same_rules() {
    let moto = moto();
    for f in ["f-plain", "f-path", "f-transform"] {
        moto_ctl(&moto.url, &["function", f]);
    }
    let queues: HashMap<String, String> = serde_json::from_str(&moto_ctl(&moto.url, &["rules-bed"])).unwrap();
    // moto's own delivery of the same events through the same rules (on the mirror bus, whose
    // targets are queues: a Lambda target makes moto's PutEvents fail).
    let n = moto_ctl(&moto.url, &["put-events", "mirror", &testdata("events.ndjson")]);
    assert_eq!(n.trim(), "1200");
    let events = source_events();
    let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count();
    let placed = count(&|e| e["source"] == "com.shop.orders" && e["detail-type"] == "OrderPlaced");
    let payments = count(&|e| e["source"] == "com.shop.payments");
    let users = count(&|e| e["source"] == "com.shop.users");
    let drain = |q: &str, n: usize| -> Vec<Value> {
        moto_ctl(&moto.url, &["drain", &queues[q], &n.to_string(), "60"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let moto_plain = drain("mirror-plain", placed);
    let moto_path = drain("mirror-path", payments);
    let moto_transform = drain("mirror-transform", users);
    assert_eq!((moto_plain.len(), moto_transform.len()), (placed, users));

    // The dry run prints the routing table and sends nothing.
    let dry = run_checked(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--rules-from-bus",
            "app",
            "--dry-run",
        ],
        &aws_env(&moto.url),
        0,
    );
    let err = stderr(&dry.output);
    let line_of = |route: &str| {
        err.lines()
            .find(|l| l.trim_start().starts_with(route))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        line_of("orders-placed/t-plain").contains(&format!("{placed} matched")),
        "{err}"
    );
    assert!(line_of("orders-placed/audit-queue").contains(":audit"), "{err}");
    assert!(
        line_of("payments/t-path").contains(&format!("{payments} matched")),
        "{err}"
    );
    assert!(
        line_of("users/t-transform").contains(&format!("{users} matched")),
        "{err}"
    );
    assert!(err.contains("switched-off: disabled"), "{err}");

    moto_ctl(&moto.url, &["recording", "start"]);
    let ran = run_checked(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--rules-from-bus",
            "app",
            "--concurrency",
            "4",
        ],
        &aws_env(&moto.url),
        0,
    );
    // Plain target: the events themselves, as moto delivers them through the same rule.
    let plain = payloads_of(&moto.url, "f-plain");
    assert_eq!(plain.len(), placed);
    for p in &plain {
        for field in NINE_FIELDS {
            assert!(p.get(field).is_some(), "{field} in {p}");
        }
    }
    let (ours, theirs) = (
        sorted(plain.iter().cloned().map(comparable)),
        sorted(moto_plain.into_iter().map(comparable)),
    );
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        panic!(
            "plain target, first difference:\n  rehydrate {}\n  moto      {}",
            ours[i], theirs[i]
        );
    }
    // InputTransformer: exactly what moto's transformer delivered.
    let transformed = payloads_of(&moto.url, "f-transform");
    let (ours, theirs) = (
        sorted(transformed.iter().map(Value::to_string)),
        sorted(moto_transform.iter().map(Value::to_string)),
    );
    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
        panic!(
            "transformer, first difference:\n  rehydrate {}\n  moto      {}",
            ours[i], theirs[i]
        );
    }
    assert!(transformed
        .iter()
        .all(|t| t["note"].as_str().unwrap().contains(" of U-")));
    // InputPath: moto delivers whole events whatever the InputPath (not implemented there), so
    // the payloads are compared with the path applied to the source events: their `detail`.
    assert_eq!(moto_path.len(), payments);
    let paths = payloads_of(&moto.url, "f-path");
    let want: Vec<String> = events
        .iter()
        .filter(|e| e["source"] == "com.shop.payments")
        .map(|e| e["detail"].to_string())
        .collect();
    assert_eq!(sorted(paths.iter().map(Value::to_string)), sorted(want));
    // The queue target is listed and its events reported skipped, with its ARN.
    let rows = outcomes(&ran.run);
    let skipped: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "skipped").collect();
    assert_eq!(skipped.len(), placed);
    assert!(skipped.iter().all(
        |r| r.error_code.as_deref() == Some("NotLambda") && r.error_message.as_deref().unwrap().contains(":audit")
    ));
    let routes = ran.summary["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 4, "{}", ran.summary);
    // Events stored without account, region, version or resources get them as EventBridge
    // fills them on delivery: account and region of the bus (the rule's ARN).
    let bare = ran.dir.path().join("bare.ndjson");
    std::fs::write(
        &bare,
        "{\"id\":\"bare-1\",\"source\":\"com.shop.orders\",\"detail-type\":\"OrderPlaced\",\"time\":\"2026-05-01T00:00:00Z\",\"detail\":{\"n\":1}}\n",
    )
    .unwrap();
    let bare_run = run_checked(
        &[
            "invoke",
            "--from",
            bare.to_str().unwrap(),
            "--rules-from-bus",
            "app",
            "--rule",
            "orders-placed",
        ],
        &aws_env(&moto.url),
        0,
    );
    assert_eq!(bare_run.summary["succeeded"].as_u64(), Some(1), "{}", bare_run.summary);
    let delivered = payloads_of(&moto.url, "f-plain")
        .into_iter()
        .find(|p| p["id"] == "bare-1")
        .expect("the bare event was delivered");
    assert_eq!(
        delivered,
        serde_json::json!({"version": "0", "id": "bare-1", "detail-type": "OrderPlaced", "source": "com.shop.orders",
            "account": "123456789012", "time": "2026-05-01T00:00:00Z", "region": "eu-west-1", "resources": [], "detail": {"n": 1}})
    );
    // Only the chosen rule with --rule.
    let o = rehydrate_aws(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--rules-from-bus",
            "app",
            "--rule",
            "nosuch",
            "--dry-run",
            "--report-dir",
            ran.dir.path().to_str().unwrap(),
        ],
        &moto.url,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("has no such rule; its rules are:"),
        "{}",
        stderr(&o)
    );
}
