//! The CLI as users run it: the real binary on the bundled sample data.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn quick_start_populates_parquet_and_reconciles() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("orders");
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            &testdata("events.ndjson"),
            "--where",
            "source = 'com.shop.orders'",
            "--to",
            out.to_str().unwrap(),
            "--partition-by",
            "detail_type",
        ],
        &[],
        0,
    );
    assert!(stderr(&ran.output).contains("succeeded 559"), "{}", stderr(&ran.output));
    let (run, s) = (&ran.run, &ran.summary);
    assert_eq!((s["read"].as_u64(), s["matched"].as_u64()), (Some(1200), Some(559)));

    // Hive partitions, one per detail type; the partition column is in the path, not the file.
    let files = parquet_files(&out);
    let mut partitions: Vec<String> = files
        .iter()
        .map(|f| f.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    partitions.dedup();
    assert_eq!(
        partitions,
        [
            "detail_type=OrderCancelled",
            "detail_type=OrderPlaced",
            "detail_type=OrderShipped"
        ]
    );
    let mut ids = Vec::new();
    for f in &files {
        let batches = read_parquet(f);
        assert!(batches[0].schema().field_with_name("detail_type").is_err());
        ids.extend(column_text(&batches, "id"));
    }
    ids.sort();
    let mut expected: Vec<String> = outcomes(run).into_iter().filter_map(|r| r.event_id).collect();
    expected.sort();
    assert_eq!(ids, expected, "every succeeded event is in the files, once");
}

#[test]
fn rejected_records_are_accounted_for_and_dead_lettered() {
    let out = tempfile::tempdir().unwrap();
    // Rejections give exit code 3.
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            &testdata("malformed.ndjson"),
            "--to",
            out.path().to_str().unwrap(),
        ],
        &[],
        3,
    );
    let err = stderr(&ran.output);
    assert!(err.contains("malformed.ndjson:5: lacks `source`"), "{err}");
    let (run, s) = (&ran.run, &ran.summary);
    // 16 lines: 2 blank, 4 events, 10 rejected.
    assert_eq!(
        (s["read"].as_u64(), s["rejected"].as_u64(), s["succeeded"].as_u64()),
        (Some(14), Some(10), Some(4))
    );

    let rejected: Vec<OutcomeRow> = outcomes(run).into_iter().filter(|r| r.status == "rejected").collect();
    let lines: Vec<u64> = rejected.iter().map(|r| r.position.unwrap()).collect();
    assert_eq!(lines, [2, 4, 5, 7, 8, 9, 11, 12, 14, 16]);
    for r in &rejected {
        assert!(r.origin.as_deref().unwrap().ends_with("malformed.ndjson"));
        let msg = r.error_message.as_deref().unwrap();
        assert!(
            msg.contains(&format!("malformed.ndjson:{}:", r.position.unwrap())),
            "{msg}"
        );
    }

    // The dead-letter file holds the rejected lines verbatim, in order.
    let dead = std::fs::read_to_string(s["dead_letter"].as_str().unwrap()).unwrap();
    let source = std::fs::read_to_string(testdata("malformed.ndjson")).unwrap();
    let source_lines: Vec<&str> = source.lines().collect();
    let expected: Vec<&str> = lines.iter().map(|&l| source_lines[l as usize - 1]).collect();
    assert_eq!(dead.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn json_array_gzip_stdin_and_ndjson_read_the_same_events() {
    let ids = |args: &[&str], stdin: Option<&[u8]>| {
        let mut all = vec!["preview", "--format", "ndjson"];
        all.extend_from_slice(args);
        let o = rehydrate_with_stdin(&all, stdin);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        ndjson_ids(&stdout(&o))
    };
    let ndjson = ids(&["--from", &testdata("events.ndjson")], None);
    assert_eq!(ndjson.len(), 1200);
    assert_eq!(ids(&["--from", &testdata("events.json")], None), ndjson);
    assert_eq!(ids(&["--from", &testdata("events.ndjson.gz")], None), ndjson);
    let raw = std::fs::read(testdata("events.ndjson.gz")).unwrap();
    assert_eq!(ids(&["--from", "-"], Some(&raw)), ndjson);
}

#[test]
fn preview_ndjson_is_the_eventbridge_envelope() {
    let o = rehydrate(&[
        "preview",
        "--from",
        &testdata("events.ndjson"),
        "--format",
        "ndjson",
        "--limit",
        "50",
    ]);
    let source = std::fs::read_to_string(testdata("events.ndjson")).unwrap();
    for (ours, theirs) in stdout(&o).lines().zip(source.lines()) {
        let ours: Value = serde_json::from_str(ours).unwrap();
        let theirs: Value = serde_json::from_str(theirs).unwrap();
        for key in [
            "id",
            "source",
            "detail-type",
            "account",
            "region",
            "resources",
            "detail",
            "version",
        ] {
            assert_eq!(ours[key], theirs[key], "{key}");
        }
        // The same instant, written in UTC.
        let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
        assert_eq!(t(&ours), t(&theirs));
    }
}

#[test]
fn map_reads_another_shape() {
    let o = rehydrate(&[
        "preview",
        "--from",
        &testdata("eventstore.ndjson"),
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
        "--format",
        "ndjson",
        "--where",
        "source = 'com.legacy.carts' AND json_get_int(detail, 'qty') >= 5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty());
    for v in &lines {
        assert_eq!(v["source"], "com.legacy.carts");
        assert!(v["detail"]["qty"].as_i64().unwrap() >= 5);
        assert!(v["time"].as_str().unwrap().starts_with("2026-"));
    }
    assert!(stderr(&o).contains("0 rejected"), "{}", stderr(&o));
}

#[rstest::rstest]
#[case(&["--where", "1=1; DROP TABLE events"])]
#[case(&["--query", "DROP TABLE events"])]
#[case(&["--query", "CREATE TABLE t AS SELECT * FROM events"])]
#[case(&["--query", "INSERT INTO events SELECT * FROM events"])]
#[case(&["--query", "COPY (SELECT * FROM events) TO '/tmp/rehydrate-copy.csv'"])]
#[case(&["--query", "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'"])]
fn write_statements_are_refused(#[case] filter: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["populate", "parquet", "--from", "testdata/events.ndjson", "--to"];
    let to = dir.path().join("out").display().to_string();
    args.push(&to);
    let reports = dir.path().join("runs").display().to_string();
    args.extend_from_slice(&["--report-dir", &reports]);
    args.extend_from_slice(filter);
    let o = rehydrate(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("out").exists(), "nothing written");
    assert!(!std::path::Path::new("/tmp/rehydrate-copy.csv").exists());
    let err = stderr(&o);
    assert!(err.contains("refused") || err.contains("--where"), "{err}");
}

#[test]
fn wrong_column_lists_the_valid_ones() {
    let o = rehydrate(&[
        "preview",
        "--from",
        "testdata/events.ndjson",
        "--where",
        "detail-type = 'OrderPlaced'",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown column `type`"), "{err}");
    assert!(
        err.contains("id, source, detail_type, time, account, region, version, resources, detail"),
        "{err}"
    );
    assert!(err.contains("detail_type"), "{err}");
}

#[test]
fn report_queries_across_runs_and_explains_bad_sql() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs").display().to_string();
    for (from, code) in [("events.ndjson", 0), ("malformed.ndjson", 3)] {
        let o = rehydrate(&[
            "populate",
            "parquet",
            "--from",
            &testdata(from),
            "--to",
            dir.path().join("out").to_str().unwrap(),
            "--report-dir",
            &reports,
        ]);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    }
    let o = rehydrate(&[
        "report",
        "--report-dir",
        &reports,
        "--format",
        "csv",
        "SELECT status, count(*) AS n FROM outcomes GROUP BY status ORDER BY status",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "status,n\nrejected,10\nsucceeded,1204\n");

    let o = rehydrate(&[
        "report",
        "--report-dir",
        &reports,
        "--format",
        "ndjson",
        "SELECT count(*) AS runs, sum(read) AS read FROM runs",
    ]);
    assert_eq!(stdout(&o).trim(), r#"{"runs":2,"read":1214}"#);

    let o = rehydrate(&["report", "--report-dir", &reports, "SELECT nope FROM outcomes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("The tables are `runs`"), "{}", stderr(&o));

    let o = rehydrate(&["report", "--report-dir", &reports, "DELETE FROM runs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));

    let empty = dir.path().join("none").display().to_string();
    let o = rehydrate(&["report", "--report-dir", &empty, "SELECT * FROM runs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no saved runs"), "{}", stderr(&o));
}

#[test]
fn dry_run_writes_nothing_and_reports_skipped() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("out");
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "detail_type = 'PaymentFailed'",
            "--to",
            out.to_str().unwrap(),
            "--dry-run",
            "--output",
            "json",
        ],
        &[],
        0,
    );
    let s: Value = serde_json::from_str(&stdout(&ran.output)).unwrap();
    assert_eq!(s["dry_run"], true);
    assert_eq!((s["matched"].as_u64(), s["skipped"].as_u64()), (Some(25), Some(25)));
    assert!(!out.exists());
    assert_eq!(ran.summary, s, "the printed summary is the saved one");
}

#[test]
fn query_projection_with_time_window() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("lines");
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            "testdata/events.json",
            "--query",
            "@queries/order_totals.sql",
            "--since",
            "2026-02-01",
            "--until",
            "2026-03-01T00:00:00Z",
            "--to",
            out.to_str().unwrap(),
        ],
        &[],
        0,
    );
    let (run, s) = (&ran.run, &ran.summary);
    let batches: Vec<_> = parquet_files(&out).iter().flat_map(|f| read_parquet(f)).collect();
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("__rehydrate")),
        "helper columns are not written: {names:?}"
    );
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, s["matched"].as_u64().unwrap());
    for t in column_text(&batches, "time") {
        assert!(t.starts_with("2026-02"), "{t}");
    }
    // Each row's outcome names the event it came from.
    assert!(outcomes(run)
        .iter()
        .all(|r| r.event_id.is_some() && r.position.is_some()));
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let o = rehydrate(&["populate", "parquet", "--to", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--from"));
    let o = rehydrate(&["preview", "--from", "testdata/events.ndjson", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--since \"yesterday\""), "{}", stderr(&o));
    let o = rehydrate(&["preview", "--from", "testdata/events.ndjson", "--map", "colour=x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--map"), "{}", stderr(&o));
    let o = rehydrate(&["preview", "--from", "no/such/file.ndjson"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no/such/file.ndjson"), "{}", stderr(&o));
}

#[test]
fn help_shows_examples() {
    let o = rehydrate(&["--help"]);
    assert!(stdout(&o).contains("Examples:"));
    assert!(stdout(&o).contains("rehydrate populate parquet"));
    let o = rehydrate(&["populate", "parquet", "--help"]);
    for flag in [
        "--dry-run",
        "--report-dir",
        "--dead-letter",
        "--output",
        "--partition-by",
        "--where",
        "--query",
        "--since",
        "--map",
    ] {
        assert!(stdout(&o).contains(flag), "{flag}");
    }
}

#[test]
fn a_damaged_input_stops_the_run_after_committing_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(testdata("events.ndjson.gz")).unwrap();
    let truncated = dir.path().join("truncated.ndjson.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let reports = dir.path().join("runs");
    let out = dir.path().join("out");
    let o = rehydrate(&[
        "populate",
        "parquet",
        "--from",
        truncated.to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = assert_reconciles(&runs(&reports)[0]);
    let read = s["read"].as_u64().unwrap();
    assert!(read > 0 && read < 1200, "{s}");
    assert_eq!(
        s["succeeded"].as_u64(),
        Some(read),
        "what was read before the damage is committed"
    );
    let err = stderr(&o);
    assert!(err.contains("truncated.ndjson.gz: "), "{err}");
    assert!(err.contains(&format!("(after line {read})")), "{err}");
    let rows: usize = parquet_files(&out)
        .iter()
        .flat_map(|f| read_parquet(f))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows as u64, read);
}

#[test]
fn help_examples_name_files_that_exist() {
    let help = stdout(&rehydrate(&["--help"]));
    for word in help.split_whitespace() {
        let path = word.trim_start_matches('@');
        if path.starts_with("testdata/") || path.starts_with("queries/") {
            assert!(repo().join(path).exists(), "--help names {path}, which does not exist");
        }
    }
}

#[test]
fn out_of_range_flags_are_usage_errors_not_panics() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["replay", "--bus", "b", "--concurrency", "100000000000", "--dry-run"],
            "between 1 and 1024",
        ),
        (
            &["replay", "--bus", "b", "--concurrency", "0", "--dry-run"],
            "between 1 and 1024",
        ),
        (
            &["replay", "--bus", "b", "--rate", "1e-300", "--dry-run"],
            "between 0.01 and",
        ),
        (
            &["replay", "--bus", "b", "--rate", "NaN", "--dry-run"],
            "between 0.01 and",
        ),
        (
            &["invoke", "--function", "f", "--max-attempts", "0", "--dry-run"],
            "1..=100",
        ),
        (
            &["populate", "parquet", "--to", "out/x", "--batch-size", "0"],
            "1..=1048576",
        ),
        (
            &["populate", "parquet", "--to", "out/x", "--batch-size", "99999999999"],
            "1048576",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec![args[0]];
        let rest: Vec<&str> = args[1..].to_vec();
        if args[0] == "populate" {
            all.push(args[1]);
            all.extend_from_slice(&["--from", "testdata/events.ndjson"]);
            all.extend_from_slice(&rest[1..]);
        } else {
            all.extend_from_slice(&["--from", "testdata/events.ndjson"]);
            all.extend_from_slice(&rest);
        }
        let o = rehydrate(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{all:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn max_open_files_commits_the_least_recently_written_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            "testdata/events.ndjson",
            "--to",
            out.to_str().unwrap(),
            "--partition-by",
            "detail_type",
            "--batch-size",
            "16",
            "--max-open-files",
            "2",
        ],
        &[],
        0,
    );
    assert_eq!(ran.summary["succeeded"], 1200);
    let files = parquet_files(&out);
    let partitions: std::collections::HashSet<_> = files.iter().map(|f| f.parent().unwrap().to_owned()).collect();
    assert!(partitions.len() > 2, "{} partitions", partitions.len());
    assert!(
        files.len() > partitions.len(),
        "closing files early made more files than partitions"
    );
    let mut ids: Vec<String> = files.iter().flat_map(|f| column_text(&read_parquet(f), "id")).collect();
    assert_eq!(ids.len(), 1200);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1200, "every event exactly once");
}
