//! Plan files (`rehydrate run plan.toml`): one read of the store serves every route, and each
//! route does exactly what its single command does, against moto (EventBridge, Lambda) and a
//! local Parquet directory.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::servers::{moto, moto_ctl};
use common::*;

const ORDERS: &str = "source = 'com.shop.orders'";
const PAYMENTS: &str = r#"{"source": ["com.shop.payments"], "detail-type": [{"prefix": "Payment"}]}"#;
const USERS: &str = "source = 'com.shop.users'";

fn plan_text(out: &Path) -> String {
    format!(
        r#"# three routes, one read
[source]
from = ["testdata/events.ndjson"]

[[route]]
name = "orders"
action = "replay"
where = "{ORDERS}"
bus = "plan-bus"

[[route]]
name = "payments"
action = "invoke"
pattern = '{PAYMENTS}'
function = "plan-fn"
concurrency = 4

[[route]]
name = "lake"
action = "populate-parquet"
where = "{USERS}"
to = "{}"
partition_by = ["source"]
"#,
        out.display()
    )
}

/// (event id, status) of every outcome of `run_dir`'s `route` (all outcomes when `None`).
fn outcome_set(run_dir: &Path, route: Option<&str>) -> BTreeSet<(String, String)> {
    let o = rehydrate(&[
        "report",
        "--format",
        "csv",
        "--report-dir",
        run_dir.parent().unwrap().to_str().unwrap(),
        &format!(
            "SELECT event_id, status FROM outcomes WHERE run_id = '{}' AND {}",
            run_dir.file_name().unwrap().to_str().unwrap(),
            match route {
                Some(r) => format!("route = '{r}'"),
                None => "route IS NULL".to_owned(),
            }
        ),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .skip(1)
        .map(|l| {
            let (id, status) = l.split_once(',').unwrap();
            (id.to_owned(), status.to_owned())
        })
        .collect()
}

fn single(args: &[&str], env: &[(&str, &str)]) -> std::path::PathBuf {
    let ran = run_checked(args, env, 0);
    let kept = ran.dir.keep();
    let _ = kept;
    ran.run
}

#[test]
fn a_plan_reads_the_store_once_and_each_route_does_what_its_command_does() {
    let moto = moto();
    moto_ctl(&moto.url, &["replay-target", "plan-bus", "plan-q"]);
    moto_ctl(&moto.url, &["function", "plan-fn"]);
    let env = aws_env(&moto.url);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, plan_text(&dir.path().join("lake"))).unwrap();

    // --check: the routes, nothing read, nothing written.
    let o = rehydrate_full(&["run", "--check", plan.to_str().unwrap()], None, &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for needle in [
        "3 routes",
        "orders: replay",
        "payments: invoke",
        "lake: populate parquet",
        "--bus plan-bus",
    ] {
        assert!(stdout(&o).contains(needle), "{needle}: {}", stdout(&o));
    }
    assert!(!dir.path().join("lake").exists());

    let reports = dir.path().join("runs");
    let o = rehydrate_full(
        &["run", plan.to_str().unwrap(), "--report-dir", reports.to_str().unwrap()],
        None,
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = runs(&reports).pop().unwrap();
    let s = run_summary(&run);
    // One read: the bytes read are the store's size, once.
    let size = std::fs::metadata(testdata("events.ndjson")).unwrap().len();
    assert_eq!(s["bytes_read"].as_u64(), Some(size), "{s}");
    assert_eq!(s["read"].as_u64(), Some(1200));
    let routes = s["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 3);
    for r in routes {
        let n = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(n("filtered") + n("matched"), 1200, "{r}");
        assert_eq!(n("matched"), n("succeeded") + n("failed") + n("skipped"), "{r}");
    }
    // Each route's outcomes are those of its single command.
    let orders = single(
        &[
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            ORDERS,
            "--bus",
            "plan-bus",
        ],
        &env,
    );
    let payments = single(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--pattern",
            PAYMENTS,
            "--function",
            "plan-fn",
        ],
        &env,
    );
    let lake = dir.path().join("lake-single");
    let users = single(
        &[
            "populate",
            "parquet",
            "--from",
            "testdata/events.ndjson",
            "--where",
            USERS,
            "--to",
            lake.to_str().unwrap(),
            "--partition-by",
            "source",
        ],
        &env,
    );
    for (route, single_run) in [("orders", &orders), ("payments", &payments), ("lake", &users)] {
        let from_plan = outcome_set(&run, Some(route));
        let alone = outcome_set(single_run, None);
        assert!(!alone.is_empty(), "{route}");
        assert_eq!(from_plan, alone, "route {route}");
    }
    assert_eq!(outcome_set(&run, Some("orders")).len(), 559);
    // The Parquet the plan wrote holds the same rows as the single command's.
    let rows = |d: &Path| -> BTreeSet<String> {
        parquet_files(d)
            .iter()
            .flat_map(|f| column_text(&read_parquet(f), "id"))
            .collect()
    };
    assert_eq!(rows(&dir.path().join("lake")), rows(&lake));
    // The routes' targets are named in outcomes.
    let o = rehydrate(&[
        "report",
        "--format",
        "csv",
        "--report-dir",
        reports.to_str().unwrap(),
        "SELECT route, target, count(*) FROM outcomes GROUP BY route, target ORDER BY route",
    ]);
    assert!(stdout(&o).contains("lake,parquet:"), "{}", stdout(&o));
    assert!(stdout(&o).contains("orders,eventbridge:plan-bus,559"), "{}", stdout(&o));
}

#[test]
fn a_plan_with_an_unknown_option_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.toml");
    std::fs::write(
        &plan,
        "[source]\nfrom = [\"testdata/events.ndjson\"]\n\n[[route]]\nname = \"a\"\naction = \"replay\"\nbus = \"b\"\nbuss = \"c\"\n",
    )
    .unwrap();
    let o = rehydrate(&["run", "--check", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml:8:1: route a: `buss` is not an option of replay"),
        "{}",
        stderr(&o)
    );
    // Bad SQL in a route is found by --check too.
    std::fs::write(
        &plan,
        "[source]\nfrom = [\"testdata/events.ndjson\"]\n\n[[route]]\nname = \"a\"\naction = \"replay\"\nbus = \"b\"\nwhere = \"nosuch = 1\"\n",
    )
    .unwrap();
    let o = rehydrate(&["run", "--check", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("route a"), "{}", stderr(&o));
    // The example plan checks.
    let o = rehydrate(&["run", "--check", "queries/rebuild.plan.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The same plan as JSON.
    let json = dir.path().join("plan.json");
    std::fs::write(
        &json,
        r#"{"source": {"from": ["testdata/events.ndjson"]}, "route": [{"name": "a", "action": "replay", "bus": "b", "pattern": {"source": ["com.shop.orders"]}}]}"#,
    )
    .unwrap();
    let o = rehydrate(&["run", "--check", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_killed_plan_resumes_each_route_from_what_it_finished() {
    let moto = moto();
    moto_ctl(&moto.url, &["replay-target", "slow-bus", "slow-q"]);
    let env = aws_env(&moto.url);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    // A slow route (40 events a second) and a fast one: killed while the slow one is midway.
    std::fs::write(
        &plan,
        format!(
            "[source]\nfrom = [\"testdata/events.ndjson\"]\n\n[[route]]\nname = \"slow\"\naction = \"replay\"\nwhere = \"source = 'com.shop.payments'\"\nbus = \"slow-bus\"\nrate = 40\n\n[[route]]\nname = \"fast\"\naction = \"populate-parquet\"\nwhere = \"{USERS}\"\nto = \"{}\"\n",
            dir.path().join("lake").display()
        ),
    )
    .unwrap();
    let reports = dir.path().join("runs");
    let mut child = spawn_rehydrate(
        &["run", plan.to_str().unwrap(), "--report-dir", reports.to_str().unwrap()],
        &env,
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    kill_hard(&mut child);
    let (_, second, _) = resume_the_run(&reports, &env);
    // Across both runs, each route gave each of its events exactly one outcome.
    let o = rehydrate(&[
        "report",
        "--format",
        "csv",
        "--report-dir",
        reports.to_str().unwrap(),
        "SELECT route, count(*), count(DISTINCT event_id), max(n) FROM (SELECT route, event_id, count(*) AS n FROM outcomes \
         WHERE status = 'succeeded' GROUP BY route, event_id) GROUP BY route ORDER BY route",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let payments = 220;
    let users = 335;
    assert_eq!(
        stdout(&o).lines().skip(1).collect::<Vec<_>>(),
        [
            format!("fast,{users},{users},1"),
            format!("slow,{payments},{payments},1")
        ],
        "{}",
        stdout(&o)
    );
    let s = run_summary(&second);
    assert!(s["already_done"].as_u64().unwrap() > 0, "{s}");
}
