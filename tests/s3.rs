//! S3 against moto: `--from s3://…` over a prefix of NDJSON, gzip, JSON-array and Parquet objects
//! (more than one list page) selects the same events as the same files read locally, and the
//! events' origins are the objects; `populate parquet --to s3://…` writes Hive partitions that
//! read back (downloaded by boto3, read by DuckDB), adds files on a re-run and replaces them with
//! `--overwrite`; files roll over at `--target-file-size`.
//!
//! The objects are written and uploaded without rehydrate: the test splits the sample store
//! itself, DuckDB writes the Parquet, boto3 uploads (tests/support/moto_ctl.py).

mod common;

use std::io::Write;
use std::process::Command;

use common::servers::{duckdb_row, moto, moto_ctl, python};
use common::*;
use serde_json::Value;

/// The sample store as a tree of objects: 1,030 one-event NDJSON objects (every tenth gzip), a
/// JSON array of 100 events, and the other 70 as Parquet written by DuckDB.
fn object_tree(dir: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(testdata("events.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1200);
    std::fs::create_dir_all(dir.join("ndjson")).unwrap();
    for (i, line) in lines[..1030].iter().enumerate() {
        if i % 10 == 0 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(format!("{line}\n").as_bytes()).unwrap();
            std::fs::write(dir.join(format!("ndjson/e-{i:04}.ndjson.gz")), gz.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.join(format!("ndjson/e-{i:04}.ndjson")), format!("{line}\n")).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("arrays")).unwrap();
    let array: Vec<Value> = lines[1030..1130]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    std::fs::write(
        dir.join("arrays/batch.json"),
        serde_json::to_string_pretty(&array).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("parquet")).unwrap();
    let rest = dir.join("rest.ndjson.in");
    std::fs::write(&rest, lines[1130..].join("\n") + "\n").unwrap();
    let sql = format!(
        "COPY (SELECT id, source, \"detail-type\" AS detail_type, CAST(time AS TIMESTAMPTZ) AS time, account, region, version, resources, CAST(detail AS VARCHAR) AS detail \
         FROM read_json('{}', format='newline_delimited', columns={{'id':'VARCHAR','source':'VARCHAR','detail-type':'VARCHAR','time':'VARCHAR','account':'VARCHAR','region':'VARCHAR','version':'VARCHAR','resources':'VARCHAR[]','detail':'JSON'}})) \
         TO '{}' (FORMAT parquet)",
        rest.display(),
        dir.join("parquet/rest.parquet").display()
    );
    duckdb_row(&sql);
    std::fs::remove_file(&rest).unwrap();
    1030 + 1 + 1
}

fn preview_lines(from: &str, filter: &str, envs: &[(&str, &str)]) -> (Vec<String>, String) {
    let o = rehydrate_full(
        &["preview", "--from", from, "--where", filter, "--format", "ndjson"],
        None,
        envs,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    lines.sort();
    (lines, stderr(&o))
}

#[test]
fn an_s3_prefix_selects_the_same_events_as_the_same_files_read_locally() {
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("store");
    let objects = object_tree(&tree);
    // Something under the prefix that is not an event object is left out, as locally.
    std::fs::write(tree.join("_SUCCESS"), "").unwrap();
    let uploaded = moto_ctl(&moto.url, &["upload", "store", "events/", tree.to_str().unwrap()]);
    assert_eq!(uploaded.trim(), (objects + 1).to_string());
    let keys = moto_ctl(&moto.url, &["keys", "store", "events/"]);
    assert!(keys.lines().count() > 1000, "more than one list page");

    let env = aws_env(&moto.url);
    let filter = "source = 'com.shop.orders' OR detail_type = 'UserRegistered'";
    let (from_s3, s3_err) = preview_lines("s3://store/events/", filter, &env);
    let (local, _) = preview_lines(tree.to_str().unwrap(), filter, &[]);
    assert_eq!(from_s3, local);
    assert!(s3_err.contains("1200 records read"), "{s3_err}");
    // The oracle: the same filter over the sample store, read by the test.
    let expected = std::fs::read_to_string(testdata("events.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["source"] == "com.shop.orders" || v["detail-type"] == "UserRegistered"
        })
        .count();
    assert_eq!(from_s3.len(), expected);

    // A run over the prefix names each event by its object.
    let ran = run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            "s3://store/events/arrays/",
            "s3://store/events/parquet/rest.parquet",
            "--to",
            dir.path().join("out").to_str().unwrap(),
        ],
        &env,
        0,
    );
    assert_eq!(ran.summary["succeeded"].as_u64(), Some(170));
    let origins: std::collections::BTreeSet<String> =
        outcomes(&ran.run).into_iter().map(|r| r.origin.unwrap()).collect();
    assert_eq!(
        origins.into_iter().collect::<Vec<_>>(),
        [
            "s3://store/events/arrays/batch.json",
            "s3://store/events/parquet/rest.parquet"
        ]
    );
}

#[test]
fn a_missing_bucket_or_empty_prefix_is_a_clear_error_before_the_run() {
    let moto = moto();
    let env = aws_env(&moto.url);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.txt"), "not an event file").unwrap();
    moto_ctl(
        &moto.url,
        &["upload", "present", "other/", dir.path().to_str().unwrap()],
    );
    for (from, says) in [
        ("s3://absent/events/", "s3://absent/events/"),
        ("s3://present/events/", "no event objects under this prefix"),
        ("s3://present/other/", "no event objects under this prefix"),
    ] {
        let o = rehydrate_full(&["preview", "--from", from, "--format", "count"], None, &env);
        assert_ne!(o.status.code(), Some(0), "{from}");
        assert!(stderr(&o).contains(says), "{from}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

/// DuckDB over local Parquet files (Hive partitions) and the source store: rows of one not in
/// the other, both ways (0 when they hold the same rows and values).
fn duckdb_difference(files: &str, filter: &str) -> String {
    let sql = format!(
        "WITH written AS (SELECT id, source, detail_type, CAST(time AS TIMESTAMPTZ) AS time, CAST(detail AS JSON)::VARCHAR AS detail, date \
           FROM read_parquet('{files}', hive_partitioning = true)), \
         source AS (SELECT id, source, \"detail-type\" AS detail_type, CAST(time AS TIMESTAMPTZ) AS time, CAST(detail AS JSON)::VARCHAR AS detail, strftime(CAST(time AS TIMESTAMPTZ) AT TIME ZONE 'UTC', '%Y-%m-%d') AS date \
           FROM read_json('{}', format='newline_delimited', columns={{'id':'VARCHAR','source':'VARCHAR','detail-type':'VARCHAR','time':'VARCHAR','detail':'JSON'}}) WHERE {filter}) \
         SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM (SELECT * FROM written EXCEPT SELECT * FROM source)), (SELECT count(*) FROM (SELECT * FROM source EXCEPT SELECT * FROM written))",
        testdata("events.ndjson")
    );
    duckdb_row(&sql)
}

#[test]
fn parquet_on_s3_reads_back_with_its_partitions_and_reruns_add_or_overwrite() {
    let moto = moto();
    moto_ctl(&moto.url, &["bucket", "lake"]);
    let env = aws_env(&moto.url);
    let dir = tempfile::tempdir().unwrap();
    let ddl = dir.path().join("events.sql");
    let filter_sql = "source IN ('com.shop.orders', 'com.shop.users')";
    let populate = |extra: &[&str]| {
        let mut args = vec![
            "populate",
            "parquet",
            "--from",
            "testdata/events.ndjson",
            "--where",
            filter_sql,
            "--to",
            "s3://lake/events/",
            "--partition-by",
            "source,date",
        ];
        args.extend_from_slice(extra);
        run_checked(&args, &env, 0)
    };
    let first = populate(&["--athena-ddl", ddl.to_str().unwrap()]);
    let expected = first.summary["matched"].as_u64().unwrap();
    assert_eq!(first.summary["succeeded"].as_u64(), Some(expected));
    assert_eq!(first.summary["target"], "parquet:s3://lake/events/");

    // Read back: boto3 downloads the objects, DuckDB reads them with their partitions.
    let down = dir.path().join("down");
    moto_ctl(&moto.url, &["download", "lake", "events/", down.to_str().unwrap()]);
    let files = format!("{}/events/**/*.parquet", down.display());
    assert_eq!(duckdb_difference(&files, filter_sql), format!("{expected} 0 0"));
    // Every event's object is named in outcomes, in its own partition.
    let run_id = first.run.file_name().unwrap().to_str().unwrap().to_owned();
    let o = rehydrate_full(
        &[
            "report",
            "--format",
            "ndjson",
            "--report-dir",
            first.run.parent().unwrap().to_str().unwrap(),
            "SELECT event_id, object_key FROM outcomes",
        ],
        None,
        &[],
    );
    let by_id: std::collections::HashMap<String, String> = stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_owned(),
                v["object_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let source: Vec<Value> = std::fs::read_to_string(testdata("events.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["source"] == "com.shop.orders" || v["source"] == "com.shop.users")
        .collect();
    assert_eq!(by_id.len() as u64, expected);
    for e in &source {
        let key = &by_id[e["id"].as_str().unwrap()];
        // The UTC date (some events carry an offset).
        let date = chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d")
            .to_string();
        let prefix = format!(
            "s3://lake/events/source={}/date={date}/part-{run_id}-",
            e["source"].as_str().unwrap()
        );
        assert!(key.starts_with(&prefix), "{key} for {}", e["id"]);
    }
    let ddl = std::fs::read_to_string(&ddl).unwrap();
    assert!(
        ddl.contains("LOCATION 's3://lake/events/'") && ddl.contains("PARTITIONED BY (`source` string, `date` string)"),
        "{ddl}"
    );

    // Again, without --overwrite: files are added, none replaced.
    let keys = |moto: &str| -> Vec<String> {
        moto_ctl(moto, &["keys", "lake", "events/"])
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let before = keys(&moto.url);
    populate(&[]);
    let after = keys(&moto.url);
    assert_eq!(after.len(), 2 * before.len());
    assert!(before.iter().all(|k| after.contains(k)));

    // With --overwrite: only this run's files are left in the partitions it wrote.
    let third = populate(&["--overwrite"]);
    let third_id = third.run.file_name().unwrap().to_str().unwrap().to_owned();
    let left = keys(&moto.url);
    assert_eq!(left.len(), before.len());
    assert!(left.iter().all(|k| k.contains(&third_id)), "{left:?}");
    let down = dir.path().join("down3");
    moto_ctl(&moto.url, &["download", "lake", "events/", down.to_str().unwrap()]);
    assert_eq!(
        duckdb_difference(&format!("{}/events/**/*.parquet", down.display()), filter_sql),
        format!("{expected} 0 0")
    );
}

#[test]
fn files_roll_over_at_the_target_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("big.ndjson");
    let o = Command::new(python())
        .args([
            repo().join("scripts/gen_events.py").to_str().unwrap(),
            "--ndjson",
            "50000",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(&store, &o.stdout).unwrap();
    let out = dir.path().join("out");
    run_checked(
        &[
            "populate",
            "parquet",
            "--from",
            store.to_str().unwrap(),
            "--to",
            out.to_str().unwrap(),
            "--target-file-size",
            "1MiB",
        ],
        &[],
        0,
    );
    let mut sizes: Vec<u64> = parquet_files(&out)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(sizes.len() >= 2, "{sizes:?}");
    sizes.pop(); // the last file holds what was left
    for s in &sizes {
        assert!(
            (700_000..=3_000_000).contains(s),
            "a file of {s} bytes for a 1 MiB target: {sizes:?}"
        );
    }
    let sql = format!(
        "SELECT count(*), count(DISTINCT id) FROM read_parquet('{}/*.parquet')",
        out.display()
    );
    assert_eq!(duckdb_row(&sql), "50000 50000");
}
