//! `populate dynamodb|postgres|mysql|opensearch` against real servers: moto's DynamoDB (and the
//! fault proxy in front of it), the machine's PostgreSQL and MariaDB (scripts/test.sh starts
//! them), and osmem-server for OpenSearch (from the test virtualenv).
//!
//! The oracle is independent of rehydrate: what the store holds is read back with the store's
//! own tools (boto3's scan, psql, the mariadb client) and compared, after tests/support/canon.py
//! has put both sides in one exact form (numbers as decimals, never through a float), with the
//! source events read from the file as written.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::servers::{fault_proxy, moto, moto_ctl, os_ctl, osmem, python, sigv4_check};
use common::*;
use serde_json::value::RawValue;
use serde_json::Value;

const LEDGER_QUERY: &str =
    "SELECT id, source, detail_type, time, detail FROM events WHERE source IN ('com.shop.ledger', 'com.shop.users')";

/// Lines of `text` in the canonical form of tests/support/canon.py (`mode`: plain or ddb).
fn canon(mode: &str, text: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo().join("tests/support/canon.py"))
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "canon.py: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One source event with its raw `detail` text (numbers exactly as written).
#[derive(serde::Deserialize)]
struct Raw<'a> {
    id: String,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: String,
    #[serde(borrow)]
    detail: &'a RawValue,
}

/// The source events of `files` whose source is in `sources`, as plain JSON rows of the
/// columns id, source, detail_type, time, detail (+ `big`, the raw number, when `with_big`).
fn expected_rows(files: &[&str], sources: &[&str], with_big: bool) -> String {
    let mut out = String::new();
    for f in files {
        let text = std::fs::read_to_string(testdata(f)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let e: Raw = serde_json::from_str(line).unwrap();
            if !sources.contains(&e.source.as_str()) {
                continue;
            }
            let mut row = format!(
                "{{\"id\":{},\"source\":{},\"detail_type\":{},\"time\":{},\"detail\":{}",
                serde_json::to_string(&e.id).unwrap(),
                serde_json::to_string(&e.source).unwrap(),
                serde_json::to_string(&e.detail_type).unwrap(),
                serde_json::to_string(&e.time).unwrap(),
                e.detail.get()
            );
            if with_big {
                let fields: HashMap<String, &RawValue> = serde_json::from_str(e.detail.get()).unwrap();
                row.push_str(&format!(",\"big\":{}", fields.get("big").map_or("null", |v| v.get())));
            }
            row.push_str("}\n");
            out.push_str(&row);
        }
    }
    out
}

fn source_count(files: &[&str], sources: &[&str]) -> usize {
    expected_rows(files, sources, false).lines().count()
}

fn run_aws(args: &[&str], endpoint: &str, code: i32) -> Ran {
    run_checked(args, &aws_env(endpoint), code)
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

#[test]
fn dynamodb_items_equal_the_projection_exactly_and_a_rerun_changes_nothing() {
    let moto = moto();
    moto_ctl(&moto.url, &["table", "ledger", "id:S"]);
    let args = [
        "populate",
        "dynamodb",
        "--from",
        "testdata/exact.ndjson",
        "testdata/events.ndjson",
        "--query",
        LEDGER_QUERY,
        "--table",
        "ledger",
    ];
    let files = ["exact.ndjson", "events.ndjson"];
    let sources = ["com.shop.ledger", "com.shop.users"];
    let ran = run_aws(&args, &moto.url, 0);
    let n = source_count(&files, &sources) as u64;
    assert!(n > 10);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(n));
    assert!(ran.summary["requests"].as_u64().unwrap() >= n.div_ceil(25));
    let expected = canon("plain", &expected_rows(&files, &sources, false));
    let first = canon("ddb", &moto_ctl(&moto.url, &["scan", "ledger"]));
    assert_eq!(first.len(), expected.len());
    for (got, want) in first.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    // Integers above 2^53, long decimals and unicode made it through as written.
    let exact = first.iter().find(|l| l.contains("e-exact-1")).unwrap();
    for needle in [
        "9007199254740993",
        "123456789012345678901234567890",
        "12345678901234567.891",
        "Zürich — 東京 🚀",
    ] {
        assert!(exact.contains(needle), "{needle} in {exact}");
    }
    run_aws(&args, &moto.url, 0);
    assert_eq!(
        canon("ddb", &moto_ctl(&moto.url, &["scan", "ledger"])),
        first,
        "a second run leaves the same items"
    );
}

#[test]
fn dynamodb_retries_unprocessed_items_and_throttling_through_the_fault_proxy() {
    let moto = moto();
    moto_ctl(&moto.url, &["table", "orders", "id:S"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.ndjson");
    let proxy = fault_proxy(&moto.url, 0.3, 11, &log);
    let ran = run_aws(
        &[
            "populate",
            "dynamodb",
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id, source, detail_type, time, detail FROM events WHERE source = 'com.shop.orders'",
            "--table",
            "orders",
            "--max-attempts",
            "15",
        ],
        &proxy.url,
        0,
    );
    let sources = ["com.shop.orders"];
    let n = source_count(&["events.ndjson"], &sources);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(n as u64));
    let rows = outcomes(&ran.run);
    assert!(rows.iter().any(|r| r.attempts > 1), "some items needed retries");
    assert!(ran.summary["retries"].as_u64().unwrap() > 0);
    let faults: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: std::collections::HashSet<&str> = faults.iter().map(|f| f["fault"].as_str().unwrap()).collect();
    for k in ["partial", "throttle"] {
        assert!(kinds.contains(k), "the proxy injected {k}: {kinds:?}");
    }
    // Nothing lost: the table holds exactly the selected events (from the emulator's state).
    let expected = canon("plain", &expected_rows(&["events.ndjson"], &sources, false));
    assert_eq!(canon("ddb", &moto_ctl(&moto.url, &["scan", "orders"])), expected);
}

#[test]
fn dynamodb_exhausted_attempts_fail_with_the_service_code() {
    let moto = moto();
    moto_ctl(&moto.url, &["table", "t", "id:S"]);
    let dir = tempfile::tempdir().unwrap();
    let proxy = fault_proxy(&moto.url, 1.0, 3, &dir.path().join("faults.ndjson"));
    let ran = run_aws(
        &[
            "populate",
            "dynamodb",
            "--from",
            "testdata/exact.ndjson",
            "--query",
            "SELECT id, detail FROM events",
            "--table",
            "t",
            "--max-attempts",
            "2",
        ],
        &proxy.url,
        3,
    );
    assert_eq!(ran.summary["failed"].as_u64(), Some(3));
    let rows = outcomes(&ran.run);
    for r in &rows {
        assert_eq!(r.status, "failed");
        assert!(r.attempts <= 2);
    }
    // Every failure carries the code the proxy (standing in for DynamoDB) answered with.
    let codes: std::collections::HashSet<String> = rows.iter().filter_map(|r| r.error_code.clone()).collect();
    let known = [
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "UnprocessedItems",
        "DispatchFailure",
        "ResponseError",
    ];
    assert!(codes.iter().all(|c| known.contains(&c.as_str())), "{codes:?}");
    let dead = std::fs::read_to_string(ran.run.join("dead-letter.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 3, "every failed item is dead-lettered");
}

#[test]
fn dynamodb_bad_items_fail_alone_and_the_rest_lands() {
    let moto = moto();
    moto_ctl(&moto.url, &["table", "mixed", "pk:S"]);
    let dir = tempfile::tempdir().unwrap();
    // Ten good items, one over 400 KB, one with an empty key (DynamoDB's own refusal), and two
    // with one key (the later wins within a request).
    let mut lines = Vec::new();
    let event = |id: &str, pk: &str, pad: usize| {
        serde_json::json!({"id": id, "source": "s", "detail-type": "T", "time": "2026-01-01T00:00:00Z",
            "detail": {"pk": pk, "pad": "p".repeat(pad)}})
        .to_string()
    };
    for i in 0..10 {
        lines.push(event(&format!("good-{i}"), &format!("K{i}"), 10));
    }
    lines.push(event("huge", "KH", 420 * 1024));
    lines.push(event("empty-key", "", 10));
    lines.push(event("dup-early", "KD", 1));
    lines.push(event("dup-late", "KD", 2));
    let file = dir.path().join("mixed.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let ran = run_aws(
        &[
            "populate",
            "dynamodb",
            "--from",
            file.to_str().unwrap(),
            "--query",
            "SELECT detail->>'pk' AS pk, id, detail->>'pad' AS pad FROM events",
            "--table",
            "mixed",
        ],
        &moto.url,
        3,
    );
    let rows = outcomes(&ran.run);
    let by_id = |id: &str| rows.iter().find(|r| r.event_id.as_deref() == Some(id)).unwrap().clone();
    let huge = by_id("huge");
    assert_eq!(
        (huge.status.as_str(), huge.error_code.as_deref()),
        ("failed", Some("ItemTooLarge"))
    );
    assert_eq!(huge.attempts, 0, "never sent");
    assert!(huge.error_message.as_deref().unwrap().contains("400 KB"), "{huge:?}");
    let empty = by_id("empty-key");
    assert_eq!(empty.status, "failed");
    assert_eq!(empty.error_code.as_deref(), Some("ValidationException"), "{empty:?}");
    let early = by_id("dup-early");
    assert_eq!(
        (early.status.as_str(), early.error_code.as_deref()),
        ("skipped", Some("Superseded"))
    );
    assert_eq!(by_id("dup-late").status, "succeeded");
    let items = moto_ctl(&moto.url, &["scan", "mixed"]);
    assert_eq!(
        items.lines().count(),
        11,
        "ten good items and the later duplicate: {items}"
    );
    assert!(items.contains("dup-late") && !items.contains("dup-early"));
}

#[test]
fn dynamodb_projection_without_the_key_stops_before_any_write() {
    let moto = moto();
    moto_ctl(&moto.url, &["table", "users", "userId:S"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let o = rehydrate_aws(
        &[
            "populate",
            "dynamodb",
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id, detail FROM events",
            "--table",
            "users",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        &moto.url,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("userId") && err.contains("not a column"), "{err}");
    assert!(!reports.exists(), "no run directory before the checks pass");
    assert_eq!(moto_ctl(&moto.url, &["scan", "users"]), "");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and MariaDB

/// A database of its own on the test server, dropped when the test ends.
struct Db {
    kind: &'static str,
    name: String,
}

impl Db {
    fn new(kind: &'static str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("rh_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let db = Self { kind, name };
        db.admin(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn url(&self) -> String {
        let base = match self.kind {
            "pg" => std::env::var("REHYDRATE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
            _ => std::env::var("REHYDRATE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        };
        format!("{base}/{}", self.name)
    }

    fn client(&self, db: Option<&str>, sql: &str) -> String {
        let o = match self.kind {
            "pg" => Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-At",
                    "-d",
                    db.unwrap_or("postgres"),
                    "-c",
                    sql,
                ])
                .output(),
            _ => {
                let mut c = Command::new("mariadb");
                c.args([
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "root",
                    "--default-character-set=utf8mb4",
                    "-N",
                    "-B",
                    "-r",
                ]);
                if let Some(db) = db {
                    c.arg(db);
                }
                c.args(["-e", sql]).output()
            }
        }
        .expect("the database client (psql / mariadb) runs");
        assert!(o.status.success(), "{sql}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    fn admin(&self, sql: &str) -> String {
        self.client(None, sql)
    }

    fn sql(&self, sql: &str) -> String {
        self.client(Some(&self.name), sql)
    }

    /// The ledger table as plain JSON rows, read with the server's own client.
    fn ledger_rows(&self, table: &str) -> String {
        match self.kind {
            "pg" => self.sql(&format!(
                "SELECT json_build_object('id', id, 'source', source, 'detail_type', detail_type, 'time', to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'detail', detail, 'big', big) FROM {table}"
            )),
            _ => self.sql(&format!(
                "SELECT CONCAT('{{\"id\":', JSON_QUOTE(id), ',\"source\":', JSON_QUOTE(source), ',\"detail_type\":', JSON_QUOTE(detail_type), ',\"time\":\"', DATE_FORMAT(time, '%Y-%m-%dT%H:%i:%s.%f'), 'Z\",\"detail\":', detail, ',\"big\":', COALESCE(big, 'null'), '}}') FROM {table}"
            )),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        match self.kind {
            "pg" => {
                let _ = Command::new("psql")
                    .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", &sql])
                    .output();
            }
            _ => {
                let _ = Command::new("mariadb")
                    .args(["-h", "127.0.0.1", "-u", "root", "-e", &sql])
                    .output();
            }
        }
    }
}

const SQL_QUERY: &str = "SELECT id, source, detail_type, time, detail, json_get_int(detail, 'big') AS big FROM events WHERE source IN ('com.shop.ledger', 'com.shop.users')";

fn populate_sql(kind: &str, db: &Db, extra: &[&str], code: i32) -> Ran {
    let url = db.url();
    let mut args = vec![
        "populate",
        if kind == "pg" { "postgres" } else { "mysql" },
        "--from",
        "testdata/exact.ndjson",
        "testdata/events.ndjson",
        "--query",
        SQL_QUERY,
        "--url",
        &url,
        "--table",
        "ledger",
        "--key",
        "id",
    ];
    args.extend_from_slice(extra);
    run_checked(&args, &[], code)
}

fn sql_rows_equal_the_projection(kind: &'static str) {
    let db = Db::new(kind);
    let files = ["exact.ndjson", "events.ndjson"];
    let sources = ["com.shop.ledger", "com.shop.users"];
    let expected = canon("plain", &expected_rows(&files, &sources, true));
    let ran = populate_sql(kind, &db, &["--create-table", "--batch-rows", "7"], 0);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(expected.len() as u64));
    let first = canon("plain", &db.ledger_rows("ledger"));
    assert_eq!(first.len(), expected.len());
    for (got, want) in first.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    assert!(first
        .iter()
        .any(|l| l.contains("9007199254740993") && l.contains("12345678901234567.891")));
    // The same run again (with the other load path on PostgreSQL) leaves the same rows.
    let again: &[&str] = if kind == "pg" { &["--load", "insert"] } else { &[] };
    populate_sql(kind, &db, again, 0);
    assert_eq!(canon("plain", &db.ledger_rows("ledger")), first);
}

#[test]
fn postgres_rows_equal_the_projection_and_a_rerun_changes_nothing() {
    sql_rows_equal_the_projection("pg");
}

#[test]
fn mysql_rows_equal_the_projection_and_a_rerun_changes_nothing() {
    sql_rows_equal_the_projection("my");
}

fn check_violation_fails_only_its_row(kind: &'static str) {
    let db = Db::new(kind);
    let (json, text, ts) = match kind {
        "pg" => ("jsonb", "text", "timestamptz"),
        _ => ("JSON", "VARCHAR(200)", "DATETIME(3)"),
    };
    db.sql(&format!(
        "CREATE TABLE ledger (id {text} PRIMARY KEY, source {text}, detail_type {text}, time {ts}, detail {json}, big BIGINT, CONSTRAINT big_not_negative CHECK (big >= 0))"
    ));
    let ran = populate_sql(kind, &db, &[], 3);
    let rows = outcomes(&ran.run);
    let failed: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].event_id.as_deref(), Some("e-exact-2"));
    let message = failed[0].error_message.as_deref().unwrap();
    assert!(message.contains("big_not_negative"), "the server's message: {message}");
    let code = failed[0].error_code.as_deref().unwrap();
    assert!(code == "23514" || code == "23000", "SQLSTATE {code}");
    let n = source_count(
        &["exact.ndjson", "events.ndjson"],
        &["com.shop.ledger", "com.shop.users"],
    );
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(n as u64 - 1));
    assert_eq!(db.sql("SELECT count(*) FROM ledger").trim(), (n - 1).to_string());
    // The dead letter is the original record as read (not the projected row), so that
    // `--from dead-letter.ndjson` with the same --query re-drives it.
    let dead = std::fs::read_to_string(ran.run.join("dead-letter.ndjson")).unwrap();
    let original = std::fs::read_to_string("testdata/exact.ndjson").unwrap();
    let original = original.lines().find(|l| l.contains("\"e-exact-2\"")).unwrap();
    assert_eq!(dead, format!("{original}\n"));
}

#[test]
fn postgres_check_violation_fails_only_its_row() {
    check_violation_fails_only_its_row("pg");
}

#[test]
fn mysql_check_violation_fails_only_its_row() {
    check_violation_fails_only_its_row("my");
}

#[test]
fn sql_mismatches_and_missing_keys_stop_before_the_run() {
    for kind in ["pg", "my"] {
        let db = Db::new(kind);
        db.sql("CREATE TABLE ledger (id VARCHAR(100) PRIMARY KEY, big INTEGER)");
        let dir = tempfile::tempdir().unwrap();
        let reports = dir.path().join("runs");
        let url = db.url();
        let cmd = if kind == "pg" { "postgres" } else { "mysql" };
        // A text column into an integer column, and a column the table lacks.
        let o = rehydrate(&[
            "populate",
            cmd,
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id, source AS big, detail_type FROM events",
            "--url",
            &url,
            "--table",
            "ledger",
            "--key",
            "id",
            "--report-dir",
            reports.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("column big") && err.contains("no column detail_type"),
            "{err}"
        );
        assert!(!reports.exists());
        // A key that is not a column of the selection.
        let o = rehydrate(&[
            "populate",
            cmd,
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id FROM events",
            "--url",
            &url,
            "--table",
            "ledger",
            "--key",
            "order_id",
            "--report-dir",
            reports.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--key order_id"), "{}", stderr(&o));
        // A password in the URL is never printed or saved.
        let with_password = url.replacen("@", ":hunter2@", 1);
        let o = rehydrate(&[
            "populate",
            cmd,
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id, big FROM (SELECT id, 1 AS big FROM events)",
            "--url",
            &with_password,
            "--table",
            "nope",
            "--key",
            "id",
            "--report-dir",
            reports.to_str().unwrap(),
        ]);
        assert_ne!(o.status.code(), Some(0));
        assert!(
            !stderr(&o).contains("hunter2") && !stdout(&o).contains("hunter2"),
            "{}",
            stderr(&o)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OpenSearch (osmem-server; read back with its own _search by tests/support/os_ctl.py)

const OS_QUERY: &str = "SELECT id, source, detail_type, time, detail, json_get_int(detail, 'big') AS big FROM events WHERE source IN ('com.shop.ledger', 'com.shop.users')";
const OS_INDEX: &str = "ev-{source}-{time:%Y}";

fn populate_opensearch(url: &str, extra: &[&str], envs: &[(&str, &str)], code: i32) -> Ran {
    let mut args = vec![
        "populate",
        "opensearch",
        "--from",
        "testdata/exact.ndjson",
        "testdata/events.ndjson",
        "--query",
        OS_QUERY,
        "--url",
        url,
        "--index",
        OS_INDEX,
    ];
    args.extend_from_slice(extra);
    run_checked(&args, envs, code)
}

/// osmem-server with the `ev-*` indices set up as event stores usually are: `detail` is kept in
/// `_source` but not indexed (`enabled: false`). Dynamic mapping would otherwise refuse, as
/// OpenSearch does, the test events whose detail fields change type from event to event
/// (exact.ndjson holds such on purpose) or exceed a long.
fn event_store() -> common::servers::Server {
    let os = osmem();
    os_ctl(
        &os.url,
        &[
            "template",
            "ev",
            r#"{"index_patterns":["ev-*"],"template":{"mappings":{"properties":{"detail":{"type":"object","enabled":false}}}}}"#,
        ],
    );
    os
}

/// What the index should hold: the projection of the source events, canonical; and each
/// event's index and id (`ev-<source>-<year of time>`, the event id).
fn expected_documents() -> (Vec<String>, Vec<String>) {
    let files = ["exact.ndjson", "events.ndjson"];
    let sources = ["com.shop.ledger", "com.shop.users"];
    let rows = expected_rows(&files, &sources, true);
    // `big` is null where the detail has none: a document leaves null fields out.
    let rows: String = rows.lines().map(|l| l.replace(",\"big\":null", "") + "\n").collect();
    let mut meta: Vec<String> = rows
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let year = &v["time"].as_str().unwrap()[..4];
            format!(
                "{}\tev-{}-{year}",
                v["id"].as_str().unwrap(),
                v["source"].as_str().unwrap()
            )
        })
        .collect();
    meta.sort();
    (canon("plain", &rows), meta)
}

fn indexed(url: &str) -> (Vec<String>, Vec<String>) {
    let mut meta: Vec<String> = os_ctl(url, &["meta", "ev-*"]).lines().map(str::to_owned).collect();
    meta.sort();
    (canon("plain", &os_ctl(url, &["dump", "ev-*"])), meta)
}

#[test]
fn opensearch_documents_equal_the_projection_and_a_rerun_leaves_the_same() {
    let os = event_store();
    let (docs, meta) = expected_documents();
    let ran = populate_opensearch(&os.url, &["--bulk-documents", "50"], &[], 0);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(docs.len() as u64));
    assert!(ran.summary["target"]
        .as_str()
        .unwrap()
        .starts_with("opensearch:http://127.0.0.1:"));
    let (got, got_meta) = indexed(&os.url);
    assert_eq!(got.len(), docs.len());
    for (g, w) in got.iter().zip(&docs) {
        assert_eq!(g, w);
    }
    assert!(
        got.iter().any(|l| l.contains("9007199254740993")),
        "a number above 2^53 stays exact"
    );
    assert_eq!(
        got_meta, meta,
        "each document in its template's index, under the event id"
    );

    // Again: the same ids, so the same documents (overwritten, not duplicated).
    populate_opensearch(&os.url, &[], &[], 0);
    assert_eq!(indexed(&os.url), (docs.clone(), meta));

    // --op create: every document exists already, so every event is skipped, none failed.
    let ran = populate_opensearch(&os.url, &["--op", "create"], &[], 0);
    assert_eq!(
        (ran.summary["skipped"].as_u64(), ran.summary["failed"].as_u64()),
        (Some(docs.len() as u64), Some(0))
    );
    let rows = outcomes(&ran.run);
    assert!(rows.iter().all(|r| r.error_code.as_deref() == Some("AlreadyExists")));
}

#[test]
fn opensearch_a_document_that_contradicts_the_mapping_fails_alone() {
    let os = osmem();
    os_ctl(
        &os.url,
        &[
            "create",
            "ev-com.shop.orders-2026",
            r#"{"mappings":{"properties":{"detail":{"properties":{"qty":{"type":"integer"}}}}}}"#,
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (1..=5)
        .map(|i| {
            let qty = if i == 3 { "\"many\"".to_owned() } else { i.to_string() };
            format!(r#"{{"id":"o-{i}","source":"com.shop.orders","detail-type":"OrderPlaced","time":"2026-03-0{i}T10:00:00Z","detail":{{"qty":{qty}}}}}"#)
        })
        .collect();
    let file = dir.path().join("orders.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    // Basic auth in the URL (osmem-server takes any): the password is never written down.
    let url = os.url.replace("http://", "http://ana:s3cret@");
    let base = [
        "populate",
        "opensearch",
        "--from",
        file.to_str().unwrap(),
        "--url",
        &url,
    ];

    // A template over a column the selection lacks stops before the run.
    let none = dir.path().join("none");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--index", "ev-{colour}", "--report-dir", none.to_str().unwrap()]);
    let o = rehydrate(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`colour`"), "{}", stderr(&o));
    assert!(!none.exists(), "no run directory for a refused run");

    let mut args = base.to_vec();
    args.extend_from_slice(&["--index", OS_INDEX]);
    let ran = run_checked(&args, &[], 3);
    let rows = outcomes(&ran.run);
    let failed: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].event_id.as_deref(), Some("o-3"));
    assert_eq!(failed[0].error_code.as_deref(), Some("mapper_parsing_exception"));
    assert!(
        failed[0].error_message.as_deref().unwrap().contains("qty"),
        "{failed:?}"
    );
    let dump = os_ctl(&os.url, &["meta", "ev-*"]);
    let mut ids: Vec<&str> = dump.lines().map(|l| l.split('\t').next().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["o-1", "o-2", "o-4", "o-5"]);
    // The dead letter is the original record.
    let dead = std::fs::read_to_string(ran.run.join("dead-letter.ndjson")).unwrap();
    assert_eq!(dead, format!("{}\n", lines[2]));
    assert!(!ran.summary["target"].as_str().unwrap().contains("s3cret"));
    assert!(!stderr(&ran.output).contains("s3cret"));
    for f in std::fs::read_dir(&ran.run).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"s3cret"),
            "a password in the run directory"
        );
    }
}

#[test]
fn opensearch_item_429s_inside_a_200_are_retried_with_nothing_lost() {
    let os = event_store();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.ndjson");
    let proxy = fault_proxy(&os.url, 0.4, 11, &log);
    let (docs, meta) = expected_documents();
    let ran = populate_opensearch(&proxy.url, &["--bulk-documents", "20", "--max-attempts", "10"], &[], 0);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(docs.len() as u64));
    assert_eq!(indexed(&os.url), (docs, meta), "every document landed, once");

    // From the proxy's log: which ids were answered 429 inside a 200, and which reached the server.
    let entries: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let partial = entries.iter().filter(|e| e["fault"] == "partial").count();
    assert!(partial > 0, "the proxy answered some _bulk requests with per-item 429s");
    let withheld: std::collections::HashSet<String> = entries
        .iter()
        .filter(|e| e["fault"] != "drop_after")
        .flat_map(|e| {
            e["withheld"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
        })
        .collect();
    let rows = outcomes(&ran.run);
    for r in &rows {
        let id = r.event_id.clone().unwrap();
        if withheld.contains(&id) {
            assert!(
                r.attempts > 1,
                "{id} was refused once, so it took more than one attempt: {r:?}"
            );
        }
    }
    assert!(rows.iter().any(|r| r.attempts > 1));
}

#[test]
fn opensearch_sigv4_requests_carry_a_valid_signature() {
    let os = event_store();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sigv4.ndjson");
    let checker = sigv4_check(&os.url, "testing-secret", "eu-west-1", "es", &log);
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDTESTING"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let (docs, _) = expected_documents();
    let ran = populate_opensearch(&checker.url, &["--aws-sigv4", "es"], &env, 0);
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(docs.len() as u64));
    let verdicts: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(verdicts.len() >= 2, "the check and the _bulk requests: {verdicts:?}");
    for v in &verdicts {
        assert_eq!(v["valid"], true, "{v}");
        let signed: Vec<&str> = v["signed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(signed.contains(&"x-amz-content-sha256"), "{v}");
    }
    assert_eq!(indexed(&os.url).0, docs);

    // The checker is not vacuous: the wrong secret is refused, and the run stops before it starts.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", "AKIDTESTING"),
        ("AWS_SECRET_ACCESS_KEY", "another-secret"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let mut args = vec![
        "populate",
        "opensearch",
        "--from",
        "testdata/events.ndjson",
        "--url",
        &checker.url,
        "--index",
        "x",
        "--aws-sigv4",
        "es",
    ];
    let reports = dir.path().join("runs");
    args.extend_from_slice(&["--report-dir", reports.to_str().unwrap()]);
    let o = rehydrate_full(&args, None, &wrong);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&log).unwrap().contains("signature mismatch"));
}
