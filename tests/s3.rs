//! `--from s3://…` against moto's S3: a prefix of NDJSON, gzip, JSON-array and Parquet objects
//! (more than one list page) selects the same events as the same files read locally, and the
//! events' origins are the objects.
//!
//! The objects are written and uploaded without rehydrate: the test splits the sample store
//! itself, DuckDB writes the Parquet, boto3 uploads (tests/support/moto_ctl.py).

mod common;

use std::io::Write;
use std::process::Command;

use common::servers::{moto, moto_ctl, python};
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
    let o = Command::new(python())
        .args(["-c", "import duckdb, sys; duckdb.sql(sys.argv[1])", &sql])
        .output()
        .unwrap();
    assert!(o.status.success(), "duckdb: {}", String::from_utf8_lossy(&o.stderr));
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
