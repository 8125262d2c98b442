//! Scale-out: one hydration split across worker processes with `--shard I/N`, reporting to one
//! S3 report directory (moto), read back as one job by `rehydrate report`. And the deployment
//! files under `deploy/`: they parse, and they set the variables rehydrate reads.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::servers::{moto, moto_ctl, python};
use common::*;

/// The sample store as 40 NDJSON objects of 30 events under `s3://store/events/`.
fn objects(moto: &str, dir: &Path) {
    let text = std::fs::read_to_string(testdata("events.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tree = dir.join("objects");
    std::fs::create_dir_all(&tree).unwrap();
    for (i, chunk) in lines.chunks(30).enumerate() {
        std::fs::write(tree.join(format!("part-{i:03}.ndjson")), chunk.join("\n") + "\n").unwrap();
    }
    moto_ctl(moto, &["upload", "store", "events/", tree.to_str().unwrap()]);
}

/// What `rehydrate report --report-dir s3://reports/<prefix>/` answers, as CSV lines.
fn report(moto: &str, prefix: &str, sql: &str) -> Vec<String> {
    let o = rehydrate_full(
        &[
            "report",
            "--format",
            "csv",
            "--report-dir",
            &format!("s3://reports/{prefix}/"),
            sql,
        ],
        None,
        &aws_env(moto),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o).lines().skip(1).map(str::to_owned).collect()
}

fn worker(moto: &str, from: &[&str], shard: &str, job: &str, out: &Path) {
    let mut args = vec!["populate", "parquet", "--from"];
    args.extend_from_slice(from);
    let out = out.to_str().unwrap();
    args.extend_from_slice(&[
        "--to",
        out,
        "--shard",
        shard,
        "--job-id",
        job,
        "--report-dir",
        "s3://reports/jobs/",
    ]);
    let o = rehydrate_full(&args, None, &aws_env(moto));
    assert_eq!(o.status.code(), Some(0), "{shard}: {}", stderr(&o));
    assert!(stderr(&o).contains(&format!("shard {shard}")), "{}", stderr(&o));
}

#[test]
fn four_workers_cover_the_store_exactly_once_and_report_as_one_job() {
    let moto = moto();
    let dir = tempfile::tempdir().unwrap();
    moto_ctl(&moto.url, &["bucket", "reports"]);
    moto_ctl(&moto.url, &["table", "store", "id:S"]);
    moto_ctl(&moto.url, &["put-items", "store", &testdata("events.ndjson")]);
    objects(&moto.url, dir.path());
    let sources: [(&str, Vec<&str>); 2] = [
        ("ddb-job", vec!["dynamodb://store", "--segments", "8"]),
        ("s3-job", vec!["s3://store/events/"]),
    ];
    for (job, from) in &sources {
        // The workers one after another (they are independent processes either way).
        for i in 0..4 {
            worker(
                &moto.url,
                from,
                &format!("{i}/4"),
                job,
                &dir.path().join(format!("{job}-{i}")),
            );
        }
    }
    // One query over the S3 reports sums each job: the single run's count.
    let sums = report(
        &moto.url,
        "jobs",
        "SELECT job_id, count(*), sum(matched), count(DISTINCT shard) FROM runs GROUP BY job_id ORDER BY job_id",
    );
    assert_eq!(sums, ["ddb-job,4,1200,4", "s3-job,4,1200,4"]);
    // Every event in exactly one shard: the union of the outcomes is the single run's.
    for (job, from) in &sources {
        let mut args = vec!["populate", "parquet", "--from"];
        args.extend_from_slice(from);
        let single_out = dir.path().join(format!("{job}-single"));
        args.extend_from_slice(&["--to", single_out.to_str().unwrap()]);
        let single = run_checked(&args, &aws_env(&moto.url), 0);
        let alone: BTreeSet<(String, String)> = outcomes(&single.run)
            .into_iter()
            .map(|r| (r.event_id.unwrap(), r.origin.unwrap()))
            .collect();
        let rows = report(
            &moto.url,
            "jobs",
            &format!(
                "SELECT o.event_id, o.origin, r.shard FROM outcomes o JOIN runs r ON o.run_id = r.run_id WHERE r.job_id = '{job}' AND o.status = 'succeeded'"
            ),
        );
        assert_eq!(rows.len(), 1200, "{job}: no event in two shards");
        let mut by_origin: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let union: BTreeSet<(String, String)> = rows
            .iter()
            .map(|l| {
                let parts: Vec<&str> = l.split(',').collect();
                by_origin
                    .entry(parts[1].to_owned())
                    .or_default()
                    .insert(parts[2].to_owned());
                (parts[0].to_owned(), parts[1].to_owned())
            })
            .collect();
        assert_eq!(union, alone, "{job}");
        // A segment or object belongs to one shard.
        assert!(
            by_origin.values().all(|shards| shards.len() == 1),
            "{job}: {by_origin:?}"
        );
        if *job == "ddb-job" {
            // Segments s with s mod 4 = i: worker i scans segments i and i + 4.
            for (origin, shards) in &by_origin {
                let segment: u32 = origin
                    .split('#')
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(shards.iter().next().unwrap(), &format!("{}/4", segment % 4), "{origin}");
            }
        }
    }
}

#[test]
fn a_killed_worker_resumed_in_its_shard_keeps_the_job_exact() {
    let moto = moto();
    moto_ctl(&moto.url, &["bucket", "reports"]);
    moto_ctl(&moto.url, &["table", "store", "id:S"]);
    moto_ctl(&moto.url, &["table", "copy", "id:S"]);
    moto_ctl(&moto.url, &["put-items", "store", &testdata("events.ndjson")]);
    let env = aws_env(&moto.url);
    let args = |shard: &str, rate: &str| -> Vec<String> {
        [
            "populate",
            "dynamodb",
            "--from",
            "dynamodb://store",
            "--segments",
            "8",
            "--page-items",
            "40",
            "--table",
            "copy",
            "--shard",
            shard,
            "--job-id",
            "copy-job",
            "--report-dir",
            "s3://reports/kill/",
            "--rate",
            rate,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    // Worker 0 (about 300 items at 40 a second) is killed midway; the others run to the end.
    let first = args("0/4", "40");
    let mut child = spawn_rehydrate(&first.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    std::thread::sleep(std::time::Duration::from_secs(4));
    kill_hard(&mut child);
    for i in 1..4 {
        let a = args(&format!("{i}/4"), "400");
        let o = rehydrate_full(&a.iter().map(String::as_str).collect::<Vec<_>>(), None, &env);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    // The killed worker's run, from the S3 reports, resumed within its shard.
    let killed = report(
        &moto.url,
        "kill",
        "SELECT run_id, status, shard FROM runs WHERE shard = '0/4'",
    );
    assert_eq!(killed.len(), 1, "{killed:?}");
    let run_id = killed[0].split(',').next().unwrap().to_owned();
    assert!(
        killed[0].contains("interrupted"),
        "the killed run never finished: {killed:?}"
    );
    let o = rehydrate_full(&["resume", "--report-dir", "s3://reports/kill/", &run_id], None, &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The job: every item exactly one succeeded outcome, each in the shard of its segment.
    let rows = report(
        &moto.url,
        "kill",
        "SELECT count(*), count(DISTINCT event_id), max(n) FROM (SELECT event_id, count(*) AS n FROM outcomes WHERE status = 'succeeded' GROUP BY event_id)",
    );
    assert_eq!(rows, ["1200,1200,1"]);
    let shards = report(
        &moto.url,
        "kill",
        "SELECT shard, count(*) FROM runs WHERE job_id = 'copy-job' GROUP BY shard ORDER BY shard",
    );
    assert_eq!(
        shards,
        ["0/4,2", "1/4,1", "2/4,1", "3/4,1"],
        "the resume ran in shard 0/4"
    );
    assert_eq!(moto_ctl(&moto.url, &["scan", "copy"]).lines().count(), 1200);
}

#[test]
fn the_deployment_files_parse_and_set_the_variables_rehydrate_reads() {
    // The Kubernetes manifest: an Indexed Job whose REHYDRATE_SHARDS is its completion count.
    let check = r#"
import json, sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]
assert job["kind"] == "Job" and spec["completionMode"] == "Indexed", job
env = {e["name"]: e for e in spec["template"]["spec"]["containers"][0]["env"]}
assert env["REHYDRATE_SHARDS"]["value"] == str(spec["completions"]), env
assert "job-name" in env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
args = spec["template"]["spec"]["containers"][0]["args"]
assert "--report-dir" in args and args[args.index("--report-dir") + 1].startswith("s3://")
batch = json.load(open(sys.argv[2]))
benv = {e["name"]: e["value"] for e in batch["containerProperties"]["environment"]}
assert "REHYDRATE_SHARDS" in benv, benv
print("ok")
"#;
    let o = std::process::Command::new(python())
        .args(["-c", check])
        .arg(repo().join("deploy/kubernetes/indexed-job.yaml"))
        .arg(repo().join("deploy/aws-batch/job-definition.json"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The variables those engines set are the ones rehydrate takes its shard and job from.
    let dir = tempfile::tempdir().unwrap();
    for (envs, shard, job) in [
        (
            vec![
                ("JOB_COMPLETION_INDEX", "1"),
                ("REHYDRATE_SHARDS", "4"),
                ("JOB_NAME", "rehydrate-orders"),
            ],
            "1/4",
            "rehydrate-orders",
        ),
        (
            vec![
                ("AWS_BATCH_JOB_ARRAY_INDEX", "3"),
                ("REHYDRATE_SHARDS", "4"),
                ("AWS_BATCH_JOB_ID", "8f1c-22:3"),
            ],
            "3/4",
            "8f1c-22",
        ),
    ] {
        let reports = dir.path().join(shard.replace('/', "-"));
        let o = rehydrate_full(
            &[
                "populate",
                "parquet",
                "--from",
                "testdata/events.ndjson",
                "--to",
                "/dev/null/none",
                "--dry-run",
                "--report-dir",
                reports.to_str().unwrap(),
                "--output",
                "json",
            ],
            None,
            &envs,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(s["shard"], shard, "{s}");
        assert_eq!(s["job_id"], job, "{s}");
    }
    // An index without a count is refused, naming the variable.
    let o = rehydrate_full(
        &["preview", "--from", "testdata/events.ndjson", "--format", "count"],
        None,
        &[("JOB_COMPLETION_INDEX", "2")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("JOB_COMPLETION_INDEX=2 is set but not how many shards"),
        "{}",
        stderr(&o)
    );
}
