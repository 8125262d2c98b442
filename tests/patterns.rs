//! EventBridge event patterns: the 157 conformance cases of `../shared/conformance/eventbridge-
//! patterns/` (checked against Amazon EventBridge's TestEventPattern), as one table: each pattern
//! matches, does not match (`_NEG`), or is refused (`_EXC`) exactly as EventBridge does. Then
//! `--pattern` on the events table selects what DuckDB selects with the equivalent SQL.

mod common;

use std::path::{Path, PathBuf};

use common::servers::duckdb_row;
use common::*;
use rehydrate::filter::pattern::Pattern;
use serde_json::Value;

/// The cases' JSON5 uses only `//` comments and trailing commas: removed here, outside strings.
fn json5(text: &str) -> Value {
    let mut out = String::with_capacity(text.len());
    let (mut in_str, mut escaped) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    // Trailing commas: a comma followed (after white space) by a closing bracket.
    let bytes: Vec<char> = out.chars().collect();
    let mut clean = String::with_capacity(out.len());
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in bytes.iter().enumerate() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        } else if c == ',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        clean.push(c);
    }
    serde_json::from_str(&clean).unwrap_or_else(|e| panic!("{e}: {clean}"))
}

fn cases_dir() -> PathBuf {
    repo().join("../shared/conformance/eventbridge-patterns")
}

enum Expect {
    Match,
    NoMatch,
    Invalid,
}

fn cases() -> Vec<(String, Value, String, Expect)> {
    let dir = cases_dir();
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json5"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let case = json5(&std::fs::read_to_string(&path).unwrap());
        out.push((
            name,
            case["Event"].clone(),
            case["EventPattern"].to_string(),
            expect(&path),
        ));
    }
    // The case split in two files: its pattern repeats a key, so it is given as written (the
    // last "location" wins, as in EventBridge).
    let event = json5(&std::fs::read_to_string(dir.join("complex_multi_key_event.json")).unwrap());
    let pattern = std::fs::read_to_string(dir.join("complex_multi_key_event_pattern.json")).unwrap();
    out.push(("complex_multi_key_event".into(), event, pattern, Expect::Match));
    out
}

fn expect(path: &Path) -> Expect {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    if stem.ends_with("_EXC") {
        Expect::Invalid
    } else if stem.ends_with("_NEG") {
        Expect::NoMatch
    } else {
        Expect::Match
    }
}

#[test]
fn every_conformance_case_matches_refuses_or_passes_as_eventbridge_does() {
    let cases = cases();
    // 157 files: 155 cases of one file each, and one case of an event file and a pattern file.
    let files = std::fs::read_dir(cases_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json5" || x == "json")
        })
        .count();
    assert_eq!(files, 157);
    assert_eq!(cases.len(), 156);
    let mut wrong = Vec::new();
    for (name, event, pattern, want) in &cases {
        let got = Pattern::compile(pattern);
        let verdict = match (want, &got) {
            (Expect::Invalid, Err(_)) => None,
            (Expect::Invalid, Ok(_)) => Some("accepted an invalid pattern".to_owned()),
            (_, Err(e)) => Some(format!("refused a valid pattern: {e}")),
            (Expect::Match, Ok(p)) if !p.matches(event) => Some("did not match".to_owned()),
            (Expect::NoMatch, Ok(p)) if p.matches(event) => Some("matched".to_owned()),
            _ => None,
        };
        if let Some(v) = verdict {
            wrong.push(format!("{name}: {v}\n    pattern {pattern}\n    event {event}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

fn preview_ids(args: &[&str]) -> Vec<String> {
    let mut all = vec!["preview", "--from", "testdata/events.ndjson", "--format", "ndjson"];
    all.extend_from_slice(args);
    let o = rehydrate(&all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut ids = ndjson_ids(&stdout(&o));
    ids.sort();
    ids
}

/// The ids DuckDB selects from the sample store with `sql_where` over its columns.
fn duckdb_ids(sql_where: &str) -> Vec<String> {
    let sql = format!(
        "SELECT coalesce(string_agg(id, ',' ORDER BY id), '') FROM read_json('{}', format='newline_delimited', columns={{'id':'VARCHAR','source':'VARCHAR','detail-type':'VARCHAR','time':'VARCHAR','region':'VARCHAR','resources':'VARCHAR[]','detail':'JSON'}}) WHERE {sql_where}",
        testdata("events.ndjson")
    );
    let row = duckdb_row(&sql);
    row.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[test]
fn a_pattern_on_the_events_table_selects_what_duckdb_selects_with_the_same_conditions() {
    // Five conditions: a source list, a detail-type prefix, a numeric range in detail, a nested
    // anything-but, and an exists.
    let pattern = r#"{"source": ["com.shop.orders", "com.shop.payments"], "detail-type": [{"prefix": "Order"}],
        "detail": {"total": [{"numeric": [">", 50, "<=", 400]}], "currency": [{"anything-but": ["USD"]}],
        "customer": {"address": {"city": [{"exists": true}]}}}}"#;
    let ids = preview_ids(&["--pattern", pattern]);
    let want = duckdb_ids(
        "source IN ('com.shop.orders', 'com.shop.payments') AND starts_with(\"detail-type\", 'Order') \
         AND json_type(detail, '$.total') IN ('UBIGINT','BIGINT','DOUBLE') \
         AND CAST(detail->>'$.total' AS DOUBLE) > 50 AND CAST(detail->>'$.total' AS DOUBLE) <= 400 \
         AND json_type(detail, '$.currency') IS NOT NULL AND json_type(detail, '$.currency') <> 'OBJECT' \
         AND coalesce(detail->>'$.currency', '') <> 'USD' \
         AND json_type(detail, '$.customer.address.city') IS NOT NULL AND json_type(detail, '$.customer.address.city') NOT IN ('OBJECT')",
    );
    assert!(!want.is_empty(), "the sample has such events");
    assert_eq!(ids, want);
    // With --where: AND.
    let both = preview_ids(&["--pattern", pattern, "--where", "region = 'eu-west-1'"]);
    let want_both: Vec<String> = duckdb_ids(
        "source IN ('com.shop.orders', 'com.shop.payments') AND starts_with(\"detail-type\", 'Order') \
         AND json_type(detail, '$.total') IN ('UBIGINT','BIGINT','DOUBLE') \
         AND CAST(detail->>'$.total' AS DOUBLE) > 50 AND CAST(detail->>'$.total' AS DOUBLE) <= 400 \
         AND json_type(detail, '$.currency') IS NOT NULL AND json_type(detail, '$.currency') <> 'OBJECT' \
         AND coalesce(detail->>'$.currency', '') <> 'USD' \
         AND json_type(detail, '$.customer.address.city') IS NOT NULL AND json_type(detail, '$.customer.address.city') NOT IN ('OBJECT') \
         AND region = 'eu-west-1'",
    );
    assert_eq!(both, want_both);
    assert!(both.len() < ids.len());
    // time is matched as EventBridge's RFC 3339 text, in UTC.
    let by_time = preview_ids(&["--pattern", r#"{"time": [{"prefix": "2026-01-02"}]}"#]);
    let want_time = preview_ids(&["--since", "2026-01-02", "--until", "2026-01-03"]);
    assert_eq!(by_time, want_time);
    // From a file, as a rule's pattern is usually kept.
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("rule.json");
    std::fs::write(&rule, pattern).unwrap();
    assert_eq!(preview_ids(&["--pattern", &format!("@{}", rule.display())]), ids);
}

#[test]
fn an_invalid_pattern_is_a_usage_error_naming_the_path_and_the_reason() {
    for (pattern, needle) in [
        (
            r#"{"detail": {"state": "running"}}"#,
            "at detail.state: must be an object or an array",
        ),
        (r#"{"source": []}"#, "at source: empty arrays are not allowed"),
        (
            r#"{"detail": {"n": [{"NUMERIC": [">", 1]}]}}"#,
            "unrecognized match type \"NUMERIC\"",
        ),
        (r#"["source"]"#, "a pattern must be a JSON object"),
        (
            r#"{"source": [{"prefix": 5}]}"#,
            "at source: prefix match pattern must be a string",
        ),
    ] {
        let o = rehydrate(&["preview", "--from", "testdata/events.ndjson", "--pattern", pattern]);
        assert_eq!(o.status.code(), Some(2), "{pattern}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{pattern}: {}", stderr(&o));
    }
}
