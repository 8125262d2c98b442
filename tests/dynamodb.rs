//! DynamoDB as the event store, against moto: a table read by a parallel scan
//! (`--from dynamodb://TABLE`) and a DynamoDB export on S3 (`--from dynamodb-export://…`) select
//! exactly what the same events read from a file select; DynamoDB's values come through exactly;
//! a killed scan resumes from its checkpoints.
//!
//! The items are written without rehydrate: boto3's own TypeSerializer turns the JSON lines into
//! DynamoDB items (numbers as Decimal, so exact), and the export is laid out by the test itself
//! (tests/support/moto_ctl.py `export`), since moto's own export writes no manifests.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::servers::{moto, moto_ctl};
use common::*;
use serde_json::Value;

/// The sample store three times over (ids made unique per copy): 3,600 events, about 1.4 MB, so
/// that a scan takes several 1 MB pages.
fn store(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(testdata("events.ndjson")).unwrap();
    let mut out = String::new();
    for copy in 0..3 {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let id = format!("{}-{copy}", v["id"].as_str().unwrap());
            v["id"] = Value::String(id);
            out.push_str(&serde_json::to_string(&v).unwrap());
            out.push('\n');
        }
    }
    let path = dir.join("store.ndjson");
    std::fs::write(&path, out).unwrap();
    path
}

/// Loads `file`'s lines into a new table keyed by `key`.
fn table(moto: &str, name: &str, key: &str, file: &Path) -> usize {
    moto_ctl(moto, &["table", name, key]);
    moto_ctl(moto, &["put-items", name, file.to_str().unwrap()])
        .trim()
        .parse()
        .unwrap()
}

/// What `preview --format ndjson` prints, by event id, parsed.
fn preview(from: &str, extra: &[&str], envs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let mut args = vec!["preview", "--from", from, "--format", "ndjson"];
    args.extend_from_slice(extra);
    let o = rehydrate_full(&args, None, envs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

const FILTERS: [&str; 3] = [
    "source = 'com.shop.orders'",
    "detail_type = 'OrderCancelled' OR detail->>'marketing' = 'true'",
    "time >= TIMESTAMP '2026-01-03T00:00:00Z' AND region = 'eu-west-1'",
];

#[test]
fn a_scan_with_1_and_4_segments_selects_what_the_file_selects() {
    let t0 = std::time::Instant::now();
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    let file = store(dir.path());
    assert!(std::fs::metadata(&file).unwrap().len() > 1 << 20, "more than 1 MB");
    assert_eq!(table(&moto.url, "store", "id:S", &file), 3600);
    let env = aws_env(&moto.url);
    let from_file = preview(file.to_str().unwrap(), &[], &[]);
    assert_eq!(from_file.len(), 3600);
    for segments in ["1", "4"] {
        moto_ctl(&moto.url, &["recording", "start"]);
        let scanned = preview("dynamodb://store", &["--segments", segments], &env);
        // Every event whole and equal (detail compared as JSON: a DynamoDB map has no key order).
        assert_eq!(scanned, from_file, "--segments {segments}: the whole store");
        let scans = moto_ctl(&moto.url, &["recording", "get"])
            .lines()
            .filter(|l| l.contains("DynamoDB_20120810.Scan"))
            .count();
        assert!(
            scans >= 2,
            "--segments {segments}: the pages were followed ({scans} Scan requests)"
        );
        for filter in FILTERS {
            let want: Vec<String> = preview(file.to_str().unwrap(), &["--where", filter], &[])
                .into_keys()
                .collect();
            let got: Vec<String> = preview("dynamodb://store", &["--segments", segments, "--where", filter], &env)
                .into_keys()
                .collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "--segments {segments} --where {filter}");
        }
    }
    eprintln!("scans took {:?}", t0.elapsed());
    // Origins name the table and segment; the summary says how many segments.
    let o = rehydrate_full(
        &[
            "preview",
            "--from",
            "dynamodb://store",
            "--segments",
            "4",
            "--format",
            "table",
            "--query",
            "SELECT DISTINCT _origin FROM events ORDER BY _origin",
        ],
        None,
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for s in 0..4 {
        assert!(
            stdout(&o).contains(&format!("dynamodb://store#{s}/4")),
            "{}",
            stdout(&o)
        );
    }
}

/// One item whose values JSON cannot carry unless written with care: integers above 2^53, long
/// decimals, string, number and binary sets, binary, nested maps and lists, null and booleans.
/// (Sets have no order in DynamoDB; rehydrate writes them sorted, so the text is the same from
/// every read.)
const TYPED: &str = r#"{"typed":{"id":{"S":"exact-1"},"source":{"S":"com.shop.ledger"},"detail-type":{"S":"Exact"},"time":{"S":"2026-02-01T00:00:00Z"},"detail":{"M":{"big":{"N":"123456789012345678901234567890"},"past53":{"N":"9007199254740993"},"dec":{"N":"0.1000000000000000055511151231257827"},"neg":{"N":"-12345678901234567.891"},"tags":{"SS":["b","a"]},"nums":{"NS":["2","1.50"]},"blob":{"B":"AAECAwQ="},"blobs":{"BS":["Ag==","AQ=="]},"nested":{"M":{"list":{"L":[{"N":"1"},{"M":{"z":{"S":"Zürich — 東京 🚀"},"a":{"NULL":true}}},{"BOOL":true}]}}}}}}}"#;

const TYPED_DETAIL: &str = r#"{"big":123456789012345678901234567890,"blob":"AAECAwQ=","blobs":["AQ==","Ag=="],"dec":0.1000000000000000055511151231257827,"neg":-12345678901234567.891,"nested":{"list":[1,{"a":null,"z":"Zürich — 東京 🚀"},true]},"nums":[1.50,2],"past53":9007199254740993,"tags":["a","b"]}"#;

/// The `detail` text of the events `from` reads, by id, as rehydrate writes it to Parquet.
fn details(from: &str, envs: &[(&str, &str)]) -> HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let reports = dir.path().join("runs");
    let args = [
        "populate",
        "parquet",
        "--from",
        from,
        "--to",
        out.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ];
    let o = rehydrate_full(&args, None, envs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut map = HashMap::new();
    for f in parquet_files(&out) {
        let batches = read_parquet(&f);
        let ids = column_text(&batches, "id");
        let details = column_text(&batches, "detail");
        map.extend(ids.into_iter().zip(details));
    }
    map
}

#[test]
fn dynamodb_values_come_through_exactly_from_a_scan_and_from_an_export() {
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    let items = dir.path().join("items.ndjson");
    let exact = std::fs::read_to_string(testdata("exact.ndjson")).unwrap();
    std::fs::write(&items, format!("{TYPED}\n{exact}")).unwrap();
    table(&moto.url, "exact", "id:S", &items);
    let env = aws_env(&moto.url);
    let scanned = details("dynamodb://exact", &env);
    assert_eq!(scanned["exact-1"], TYPED_DETAIL);
    // The sample's exact numbers, written by boto3 as DynamoDB numbers, read back with every digit.
    let from_file = details(&testdata("exact.ndjson"), &[]);
    for (id, text) in &from_file {
        let got = &scanned[id];
        let (a, b): (Value, Value) = (serde_json::from_str(got).unwrap(), serde_json::from_str(text).unwrap());
        assert_eq!(a, b, "{id}");
        for needle in [
            "9007199254740993",
            "123456789012345678901234567890",
            "12345678901234567.891",
        ] {
            assert_eq!(got.contains(needle), text.contains(needle), "{id}: {needle} in {got}");
        }
    }
    // The same items as a DynamoDB export on S3: the same text.
    let tree = dir.path().join("export");
    moto_ctl(
        "-",
        &[
            "export",
            tree.to_str().unwrap(),
            "",
            items.to_str().unwrap(),
            "01-exact",
            "full",
        ],
    );
    moto_ctl(&moto.url, &["upload", "exports", "", tree.to_str().unwrap()]);
    let exported = details("dynamodb-export://exports/AWSDynamoDB/01-exact/", &env);
    assert_eq!(exported, scanned);
}

#[test]
fn exports_full_and_incremental_select_what_the_file_selects_and_a_wrong_count_is_named() {
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    let file = store(dir.path());
    let tree = dir.path().join("export");
    let f = file.to_str().unwrap();
    let t = tree.to_str().unwrap();
    moto_ctl("-", &["export", t, "snapshots/", f, "01-full", "full"]);
    moto_ctl("-", &["export", t, "snapshots/", f, "02-incr", "incremental"]);
    moto_ctl("-", &["export", t, "snapshots/", f, "03-bad", "full", "bad"]);
    moto_ctl(&moto.url, &["upload", "exports", "", t]);
    let env = aws_env(&moto.url);
    let from_file = preview(f, &[], &[]);
    let full = preview("dynamodb-export://exports/snapshots/AWSDynamoDB/01-full/", &[], &env);
    assert_eq!(full, from_file);
    for filter in FILTERS {
        let want: Vec<String> = preview(f, &["--where", filter], &[]).into_keys().collect();
        let got: Vec<String> = preview(
            "dynamodb-export://exports/snapshots/AWSDynamoDB/01-full/",
            &["--where", filter],
            &env,
        )
        .into_keys()
        .collect();
        assert_eq!(got, want, "{filter}");
    }

    // Incremental: NewImage is the event; every tenth line of a file is a deletion (no
    // NewImage), reported skipped with the reason, counted apart from what was filtered.
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            "dynamodb-export://exports/snapshots/AWSDynamoDB/02-incr/",
            "--to",
            dir.path().join("incr-out").to_str().unwrap(),
        ],
        &env,
        0,
    );
    let rows = outcomes(&ran.run);
    let deletions: Vec<&OutcomeRow> = rows.iter().filter(|r| r.status == "skipped").collect();
    // 1,200 lines a file, positions 10, 20, … of each: 120 a file.
    assert_eq!(deletions.len(), 360, "{}", ran.summary);
    assert!(deletions.iter().all(|r| r.position.unwrap() % 10 == 0));
    assert!(deletions[0]
        .error_message
        .as_deref()
        .unwrap()
        .contains("deletion (no NewImage)"));
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(3600 - 360));
    assert_eq!(ran.summary["read"].as_u64(), Some(3600));
    assert_eq!(ran.summary["not_events"].as_u64(), Some(360));
    assert_eq!(ran.summary["filtered"].as_u64(), Some(0));
    assert_eq!(ran.summary["skipped"].as_u64(), Some(0));
    let written: usize = parquet_files(&dir.path().join("incr-out"))
        .iter()
        .map(|p| read_parquet(p).iter().map(|b| b.num_rows()).sum::<usize>())
        .sum();
    assert_eq!(written, 3600 - 360);

    // A manifest that overstates a file's count: the run says which file, and fails.
    let o = rehydrate_full(
        &[
            "populate",
            "parquet",
            "--from",
            "dynamodb-export://exports/snapshots/AWSDynamoDB/03-bad/",
            "--to",
            dir.path().join("bad-out").to_str().unwrap(),
            "--report-dir",
            dir.path().join("runs").to_str().unwrap(),
        ],
        None,
        &env,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("snapshots/AWSDynamoDB/03-bad/data/part-00000.json.gz: the export's manifest lists 1201 items, the file holds 1200"),
        "{}",
        stderr(&o)
    );

    // An ION export is refused with the format to export in instead.
    let ion = tree.join("snapshots/AWSDynamoDB/04-ion");
    std::fs::create_dir_all(&ion).unwrap();
    std::fs::write(
        ion.join("manifest-summary.json"),
        r#"{"outputFormat":"ION","exportType":"FULL_EXPORT"}"#,
    )
    .unwrap();
    moto_ctl(
        &moto.url,
        &[
            "upload",
            "exports",
            "snapshots/AWSDynamoDB/04-ion/",
            ion.to_str().unwrap(),
        ],
    );
    let o = rehydrate_full(
        &[
            "preview",
            "--from",
            "dynamodb-export://exports/snapshots/AWSDynamoDB/04-ion/",
        ],
        None,
        &env,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("DYNAMODB_JSON"), "{}", stderr(&o));
}

#[test]
fn a_mapped_event_store_table_reads_like_the_mapped_file() {
    let moto = moto();
    let file = std::path::PathBuf::from(testdata("eventstore.ndjson"));
    let n = table(&moto.url, "legacy", "pk:S,sk:S", &file);
    assert!(n > 100);
    let map = [
        "--map",
        "id=eventId",
        "--map",
        "detail-type=eventType",
        "--map",
        "source=aggregate",
        "--map",
        "time=createdAt",
        "--map",
        "detail=payload",
    ];
    let env = aws_env(&moto.url);
    let from_file = preview(file.to_str().unwrap(), &map, &[]);
    assert_eq!(from_file.len(), n);
    let scanned = preview("dynamodb://legacy", &[&map[..], &["--segments", "3"]].concat(), &env);
    assert_eq!(scanned, from_file);
    let filter = ["--where", "detail_type = 'OrderShipped'"];
    assert_eq!(
        preview("dynamodb://legacy", &[&map[..], &filter].concat(), &env),
        preview(file.to_str().unwrap(), &[&map[..], &filter].concat(), &[])
    );
}

#[test]
fn a_scan_killed_mid_run_and_resumed_gives_every_item_one_outcome_and_reads_on_from_its_checkpoints() {
    let moto = moto();
    let file = std::path::PathBuf::from(testdata("events.ndjson"));
    assert_eq!(table(&moto.url, "store", "id:S", &file), 1200);
    moto_ctl(&moto.url, &["table", "copy", "id:S"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let env = aws_env(&moto.url);
    // 1,200 items in 4 segments of 40-item pages, copied at 100 a second: killed a few seconds
    // in, with pages of every segment settled and others not yet read.
    let args = [
        "populate",
        "dynamodb",
        "--from",
        "dynamodb://store",
        "--segments",
        "4",
        "--page-items",
        "40",
        "--table",
        "copy",
        "--rate",
        "100",
        "--report-dir",
    ];
    let mut all = args.to_vec();
    all.push(reports.to_str().unwrap());
    let mut child = spawn_rehydrate(&all, &env);
    wait_for_outcomes(&reports, 4000);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    kill_hard(&mut child);
    let (_, second, o) = resume_the_run(&reports, &env);
    assert!(stderr(&o).contains("start at their last checkpoint"), "{}", stderr(&o));
    let summary = run_summary(&second);
    // Every item has exactly one final outcome across the two runs.
    let o = rehydrate(&[
        "report",
        "--format",
        "csv",
        "--report-dir",
        reports.to_str().unwrap(),
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, min(c) AS lo, max(c) AS hi FROM \
         (SELECT event_id, count(*) AS c FROM outcomes WHERE status = 'succeeded' GROUP BY event_id)",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().nth(1), Some("1200,1200,1,1"), "{}", stdout(&o));
    // The resumed run did not scan the table again: it started each segment at its first page
    // that was not settled, so it read the items the first run had not finished, plus at most
    // one page a segment again (whose items with an outcome are left out, not actioned).
    let first_done = 1200 - summary["succeeded"].as_u64().unwrap();
    assert!(first_done >= 40, "the first run had finished some pages: {summary}");
    let read = summary["read"].as_u64().unwrap();
    let read_again = summary["already_done"].as_u64().unwrap();
    eprintln!("the first run finished {first_done} items; the resume read {read} new and {read_again} again");
    assert_eq!(read, 1200 - first_done, "{summary}");
    assert!(read_again <= 4 * 40, "at most one page a segment read twice: {summary}");
    // The copy holds every item (the target's own state, read by boto3).
    let copied = moto_ctl(&moto.url, &["scan", "copy"]);
    assert_eq!(copied.lines().count(), 1200);
}

#[test]
fn a_missing_table_and_misplaced_flags_are_named_before_any_work() {
    let moto = moto();
    let env = aws_env(&moto.url);
    let o = rehydrate_full(&["preview", "--from", "dynamodb://nope"], None, &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("dynamodb://nope"), "{}", stderr(&o));
    assert!(stderr(&o).contains("ResourceNotFoundException"), "{}", stderr(&o));
    assert!(stderr(&o).contains("check the table name"), "{}", stderr(&o));
    for (args, needle) in [
        (
            vec!["preview", "--from", "dynamodb://t", "--segments", "0"],
            "--segments 0: give 1 to 1000000",
        ),
        (
            vec!["preview", "--from", "testdata/events.ndjson", "--segments", "4"],
            "apply to --from dynamodb://TABLE",
        ),
        (
            vec!["preview", "--from", "dynamodb://t", "testdata/events.ndjson"],
            "give it as the only --from",
        ),
        (
            vec!["preview", "--from", "dynamodb://t", "--read-rate=0"],
            "--read-rate must be a positive number",
        ),
        (
            vec!["preview", "--from", "dynamodb-export://bucket-only"],
            "write dynamodb-export://BUCKET/PREFIX/AWSDynamoDB/EXPORT-ID/",
        ),
    ] {
        let o = rehydrate_full(&args, None, &env);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}
