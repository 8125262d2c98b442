//! `populate redshift` against moto's Redshift Data API and S3, through the test bed's moto
//! wrapper (tests/support/moto_server.py says what it corrects). moto runs no SQL: the tests
//! check what reaches the Data API (moto's own record of the statements) and what is staged on
//! S3 (downloaded with boto3, read by DuckDB), and how the run reports a FAILED COPY.

mod common;

use common::servers::{duckdb_row, moto, moto_ctl};
use common::*;
use serde_json::Value;

const ROLE: &str = "arn:aws:iam::123456789012:role/redshift-copy";

fn statements(endpoint: &str) -> Vec<Value> {
    moto_ctl(endpoint, &["statements"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn populate(table: &str, extra: &[&str], endpoint: &str, code: i32) -> Ran {
    let mut args = vec![
        "populate",
        "redshift",
        "--from",
        "testdata/events.ndjson",
        "--query",
        "SELECT id, source, detail_type, time, detail FROM events WHERE source = 'com.shop.orders'",
        "--staging",
        "s3://stage/loads/",
        "--workgroup",
        "analytics",
        "--database",
        "dev",
        "--table",
        table,
        "--iam-role",
        ROLE,
        "--load-rows",
        "150",
    ];
    args.extend_from_slice(extra);
    run_checked(&args, &aws_env(endpoint), code)
}

fn orders() -> usize {
    std::fs::read_to_string(testdata("events.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["source"] == "com.shop.orders")
        .count()
}

#[test]
fn copy_names_the_manifest_table_and_role_and_the_manifest_names_exactly_the_staged_objects() {
    let moto = moto();
    moto_ctl(&moto.url, &["bucket", "stage"]);
    let ran = populate("public.orders", &["--create-table"], &moto.url, 0);
    let n = orders();
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(n as u64));
    let run_id = ran.run.file_name().unwrap().to_str().unwrap().to_owned();

    let all = statements(&moto.url);
    assert!(all[0]["QueryString"].as_str().unwrap().starts_with("CREATE TABLE IF NOT EXISTS \"public\".\"orders\" (\"id\" VARCHAR(65535), \"source\" VARCHAR(65535), \"detail_type\" VARCHAR(65535), \"time\" TIMESTAMPTZ, \"detail\" SUPER)"), "{}", all[0]);
    let copies: Vec<&str> = all[1..].iter().map(|s| s["QueryString"].as_str().unwrap()).collect();
    let loads = n.div_ceil(150);
    assert_eq!(copies.len(), loads, "one COPY per load of 150 rows: {copies:?}");
    let keys = moto_ctl(&moto.url, &["keys", "stage", "loads/"]);
    let staged: Vec<&str> = keys.lines().filter(|k| k.ends_with(".parquet")).collect();
    assert_eq!(staged.len(), loads);
    let dir = tempfile::tempdir().unwrap();
    moto_ctl(
        &moto.url,
        &["download", "stage", "loads/", dir.path().to_str().unwrap()],
    );
    for (i, copy) in copies.iter().enumerate() {
        let manifest_key = format!("loads/{run_id}/load-{i:05}/manifest");
        assert_eq!(
            *copy,
            format!("COPY \"public\".\"orders\" FROM 's3://stage/{manifest_key}' IAM_ROLE '{ROLE}' FORMAT AS PARQUET MANIFEST")
        );
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(&manifest_key)).unwrap()).unwrap();
        let entries = manifest["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        let object = format!("loads/{run_id}/load-{i:05}/part-00000.parquet");
        assert_eq!(entries[0]["url"], format!("s3://stage/{object}"));
        assert_eq!(entries[0]["mandatory"], true);
        let size = std::fs::metadata(dir.path().join(&object)).unwrap().len();
        assert_eq!(entries[0]["meta"]["content_length"].as_u64(), Some(size));
    }
    // The staged rows, read by DuckDB, are the selected events, each once, in the table's order.
    let sql = format!(
        "SELECT count(*), count(DISTINCT id), string_agg(DISTINCT source, ',') FROM read_parquet('{}/loads/{run_id}/*/*.parquet')",
        dir.path().display()
    );
    assert_eq!(duckdb_row(&sql), format!("{n} {n} com.shop.orders"));
}

#[test]
fn a_failed_copy_fails_its_loads_events_with_the_error_and_keeps_the_staged_files() {
    let moto = moto();
    moto_ctl(&moto.url, &["bucket", "stage"]);
    // The test bed's convention: a statement on a table named failing_… ends FAILED.
    let ran = populate(
        "public.failing_orders",
        &["--create-table", "--cleanup-staging"],
        &moto.url,
        3,
    );
    let n = orders();
    assert_eq!(ran.summary["failed"].as_u64(), Some(n as u64));
    let rows = outcomes(&ran.run);
    for r in &rows {
        assert_eq!(r.status, "failed");
        assert_eq!(r.error_code.as_deref(), Some("StatementFailed"));
        let m = r.error_message.as_deref().unwrap();
        assert!(
            m.contains("Load into table 'failing_orders' failed") && m.contains("sys_load_error_detail"),
            "{m}"
        );
        assert!(m.contains("staged files are kept"), "{m}");
    }
    let keys = moto_ctl(&moto.url, &["keys", "stage", "loads/"]);
    assert_eq!(
        keys.lines().filter(|k| k.ends_with(".parquet")).count(),
        n.div_ceil(150)
    );
    // A load's rows are not held in memory until its COPY ends, so they leave no dead letters:
    // `rehydrate redrive` reads exactly the failed ones from the store again.
    assert!(!ran.run.join("dead-letter.ndjson").exists());
}

#[test]
fn an_existing_table_in_another_column_order_stops_before_anything_is_staged() {
    let moto = moto();
    moto_ctl(&moto.url, &["bucket", "stage"]);
    moto_ctl(
        &moto.url,
        &["sql", "analytics", "dev", "CREATE TABLE IF NOT EXISTS public.orders (source VARCHAR(100), id VARCHAR(100), detail_type VARCHAR(100), time TIMESTAMPTZ, detail SUPER)"],
    );
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let o = rehydrate_full(
        &[
            "populate",
            "redshift",
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id, source, detail_type, time, detail FROM events",
            "--staging",
            "s3://stage/loads/",
            "--workgroup",
            "analytics",
            "--database",
            "dev",
            "--table",
            "public.orders",
            "--report-dir",
            reports.to_str().unwrap(),
        ],
        None,
        &aws_env(&moto.url),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("COPY maps columns by position"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(source, id, detail_type, time, detail)"),
        "{}",
        stderr(&o)
    );
    assert!(!reports.exists(), "no run directory");
    assert_eq!(
        moto_ctl(&moto.url, &["keys", "stage", "loads/"]).trim(),
        "",
        "nothing staged"
    );
}
