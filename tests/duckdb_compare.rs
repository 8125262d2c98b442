//! The ids our filters select, against the ids DuckDB selects from the same file with the same
//! predicate written in its dialect: an independent engine, not our own expectations.
//!
//! Needs the test virtualenv with DuckDB (`scripts/test.sh` creates `.venv`).

mod common;

use std::process::Command;

use common::servers::python;
use common::*;

const DUCKDB_SCRIPT: &str = r#"
import sys, duckdb
path, predicate = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
columns = {'id': 'VARCHAR', 'source': 'VARCHAR', 'detail-type': 'VARCHAR', 'time': 'TIMESTAMPTZ',
           'account': 'VARCHAR', 'region': 'VARCHAR', 'version': 'VARCHAR',
           'resources': 'VARCHAR[]', 'detail': 'JSON'}
rows = con.execute(
    f"SELECT id FROM read_json(?, format='newline_delimited', columns={columns!r}) WHERE {predicate} ORDER BY id",
    [path]).fetchall()
print("\n".join(r[0] for r in rows))
"#;

fn duckdb_ids(file: &str, predicate: &str) -> Vec<String> {
    let o = Command::new(python())
        .args(["-c", DUCKDB_SCRIPT, file, predicate])
        .output()
        .expect("running DuckDB");
    assert!(
        o.status.success(),
        "DuckDB failed on {predicate:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn our_ids(file: &str, predicate: &str) -> Vec<String> {
    let o = rehydrate(&["preview", "--from", file, "--where", predicate, "--format", "ndjson"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "rehydrate failed on {predicate:?}: {}",
        stderr(&o)
    );
    let mut ids = ndjson_ids(&stdout(&o));
    ids.sort();
    ids
}

#[rstest::rstest]
#[case::envelope_source("source = 'com.shop.orders'", "source = 'com.shop.orders'")]
#[case::envelope_detail_type_list(
    "detail_type IN ('OrderCancelled', 'PaymentFailed')",
    "\"detail-type\" IN ('OrderCancelled', 'PaymentFailed')"
)]
#[case::envelope_combination(
    "region = 'ap-northeast-1' AND account = '210987654321' AND source <> 'com.shop.users'",
    "region = 'ap-northeast-1' AND account = '210987654321' AND source <> 'com.shop.users'"
)]
#[case::time_window(
    "time >= '2026-03-01T00:00:00Z' AND time < '2026-03-15T00:00:00Z'",
    "time >= TIMESTAMPTZ '2026-03-01 00:00:00+00' AND time < TIMESTAMPTZ '2026-03-15 00:00:00+00'"
)]
#[case::time_with_offset("time < '2026-01-15T09:00:00+09:00'", "time < TIMESTAMPTZ '2026-01-15 00:00:00+00'")]
#[case::nested_detail_path(
    "detail->'customer'->'address'->>'city' = 'München'",
    "detail->'customer'->'address'->>'city' = 'München'"
)]
#[case::detail_number("json_get_float(detail, 'total') > 250", "CAST(detail->>'total' AS DOUBLE) > 250")]
#[case::detail_boolean(
    "json_get_bool(detail, 'express') = true",
    "CAST(detail->>'express' AS BOOLEAN) = true"
)]
#[case::detail_array_length("json_length(detail->'items') >= 4", "json_array_length(detail->'items') >= 4")]
#[case::detail_array_element("detail->'items'->0->>'sku' = 'SKU-007'", "detail->'items'->0->>'sku' = 'SKU-007'")]
#[case::resources_array(
    "array_to_string(resources, ',') LIKE '%:eu-west-1:%'",
    "array_to_string(resources, ',') LIKE '%:eu-west-1:%'"
)]
#[case::resources_empty("cardinality(resources) = 0", "len(resources) = 0")]
#[case::unicode_values(
    "detail->>'name' IN ('山田太郎', 'Søren Ørsted') OR detail->>'carrier' = 'ヤマト運輸'",
    "(detail->>'name') IN ('山田太郎', 'Søren Ørsted') OR (detail->>'carrier') = 'ヤマト運輸'"
)]
#[case::unicode_like(
    "detail->>'name' LIKE '%ü%' OR detail->>'name' LIKE '%🚀%'",
    "(detail->>'name') LIKE '%ü%' OR (detail->>'name') LIKE '%🚀%'"
)]
#[case::nested_error_code(
    "detail->'error'->>'code' = 'card_declined'",
    "detail->'error'->>'code' = 'card_declined'"
)]
fn same_ids_as_duckdb(#[case] ours: &str, #[case] duckdb: &str) {
    let file = testdata("events.ndjson");
    let expected = duckdb_ids(&file, duckdb);
    assert!(
        !expected.is_empty(),
        "a case that selects nothing proves nothing: {duckdb}"
    );
    assert!(
        expected.len() < 1200,
        "a case that selects everything proves nothing: {duckdb}"
    );
    let got = our_ids(&file, ours);
    assert_eq!(got.len(), expected.len(), "{ours}");
    assert_eq!(got, expected, "{ours}");
}
