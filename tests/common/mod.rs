//! Shared helpers for the CLI tests: run the real binary, read what a run saved, and check that
//! its counts reconcile.
#![allow(dead_code)]

pub mod servers;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(name: &str) -> String {
    repo().join("testdata").join(name).display().to_string()
}

/// Runs `rehydrate` with `args` from the repository root.
pub fn rehydrate(args: &[&str]) -> Output {
    rehydrate_with_stdin(args, None)
}

pub fn rehydrate_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    rehydrate_full(args, stdin, &[])
}

/// The environment that points rehydrate at a local AWS endpoint the standard way
/// (AWS_ENDPOINT_URL, dummy credentials), never reaching a real account.
pub fn aws_env(endpoint: &str) -> Vec<(&str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
}

/// Runs `rehydrate` against a local AWS endpoint (see [`aws_env`]).
pub fn rehydrate_aws(args: &[&str], endpoint: &str) -> Output {
    rehydrate_full(args, None, &aws_env(endpoint))
}

/// One finished run: its output, its saved report (checked to reconcile) and its summary.
pub struct Ran {
    pub output: Output,
    pub run: PathBuf,
    pub summary: Value,
    /// Holds the report directory (and anything else the test puts in `dir`).
    pub dir: tempfile::TempDir,
}

/// Runs an actioning command with a report directory of its own, expects exit `code`, and
/// checks that the saved run reconciles.
pub fn run_checked(args: &[&str], envs: &[(&str, &str)], code: i32) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--report-dir", reports.to_str().unwrap()]);
    let output = rehydrate_full(&all, None, envs);
    assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
    let runs = runs(&reports);
    assert_eq!(runs.len(), 1);
    let summary = assert_reconciles(&runs[0]);
    Ran {
        output,
        run: runs[0].clone(),
        summary,
        dir,
    }
}

pub fn rehydrate_full(args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rehydrate"))
        .args(args)
        .current_dir(repo())
        .env_remove("REHYDRATE_REPORT_DIR")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(envs.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the rehydrate binary");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Starts rehydrate in the background (its output discarded): a run to be killed.
pub fn spawn_rehydrate(args: &[&str], envs: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_rehydrate"))
        .args(args)
        .current_dir(repo())
        .env_remove("REHYDRATE_REPORT_DIR")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running the rehydrate binary")
}

/// SIGKILL: the process gets no chance to write anything more.
pub fn kill_hard(child: &mut std::process::Child) {
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(killed, "kill -KILL {}", child.id());
    child.wait().unwrap();
}

/// Waits (up to 30 s) until the first run under `reports` has logged more than `bytes` of
/// outcomes.
pub fn wait_for_outcomes(reports: &Path, bytes: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let logged = std::fs::read_dir(reports)
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|e| {
                std::fs::metadata(e.unwrap().path().join("outcomes.arrows")).is_ok_and(|m| m.len() > bytes)
            });
        if logged {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Resumes the one run under `reports` (expecting exit 0): the resumed run's directory, the new
/// run's, and the resume's output.
pub fn resume_the_run(reports: &Path, envs: &[(&str, &str)]) -> (PathBuf, PathBuf, Output) {
    let first = runs(reports).pop().expect("a run to resume");
    let id = first.file_name().unwrap().to_str().unwrap().to_owned();
    let o = rehydrate_full(&["resume", "--report-dir", reports.to_str().unwrap(), &id], None, envs);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let second = runs(reports)
        .into_iter()
        .find(|r| r != &first)
        .expect("the resumed run");
    (first, second, o)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run directories under a report directory, oldest first.
pub fn runs(report_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(report_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("run.json").exists())
        .collect();
    dirs.sort();
    dirs
}

pub fn run_summary(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap()
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    builder.build().unwrap().map(|b| b.unwrap()).collect()
}

/// Every Parquet file under `dir`.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// One outcome row, as strings, for assertions.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    pub event_id: Option<String>,
    pub origin: Option<String>,
    pub position: Option<u64>,
    pub status: String,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

pub fn outcomes(run_dir: &Path) -> Vec<OutcomeRow> {
    let mut rows = Vec::new();
    for b in read_parquet(&run_dir.join("outcomes.parquet")) {
        let s = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        let (id, origin, status, msg) = (s("event_id"), s("origin"), s("status"), s("error_message"));
        let code = s("error_code");
        let pos = b
            .column_by_name("position")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .clone();
        let attempts = b
            .column_by_name("attempts")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>()
            .clone();
        for i in 0..b.num_rows() {
            let opt = |a: &arrow::array::StringArray| a.is_valid(i).then(|| a.value(i).to_owned());
            rows.push(OutcomeRow {
                event_id: opt(&id),
                origin: opt(&origin),
                position: pos.is_valid(i).then(|| pos.value(i)),
                status: status.value(i).to_owned(),
                attempts: attempts.value(i),
                error_code: opt(&code),
                error_message: opt(&msg),
            });
        }
    }
    rows
}

/// The counts of a run reconcile with each other and with its outcomes.
pub fn assert_reconciles(run_dir: &Path) -> Value {
    let s = run_summary(run_dir);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {s}"));
    let not_events = s["not_events"].as_u64().unwrap_or(0);
    let routes = s["routes"].as_array().cloned().unwrap_or_default();
    if routes.is_empty() {
        assert_eq!(
            n("read"),
            n("rejected") + not_events + n("filtered") + n("matched"),
            "read = rejected + not_events + filtered + matched: {s}"
        );
    } else {
        // A run of several routes: each route accounts for every event read; the run's counts
        // are the routes' sums.
        let sum = |k: &str| routes.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
        for r in &routes {
            let m = |k: &str| r[k].as_u64().unwrap();
            assert_eq!(
                n("read"),
                n("rejected") + not_events + m("filtered") + m("matched"),
                "{r}"
            );
            assert_eq!(m("matched"), m("succeeded") + m("failed") + m("skipped"), "{r}");
        }
        for k in ["filtered", "matched", "succeeded", "failed", "skipped"] {
            assert_eq!(n(k), sum(k), "{k} is the routes' sum: {s}");
        }
    }
    assert_eq!(
        n("matched"),
        n("succeeded") + n("failed") + n("skipped"),
        "matched = succeeded + failed + skipped: {s}"
    );
    let rows = outcomes(run_dir);
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count() as u64;
    assert_eq!(count("rejected"), n("rejected"));
    assert_eq!(count("succeeded"), n("succeeded"));
    assert_eq!(count("failed"), n("failed"));
    assert_eq!(count("skipped"), n("skipped") + not_events);
    s
}

/// The value of `column` in every row of `batches`, as text.
pub fn column_text(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        let formatter = arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &Default::default()).unwrap();
        for i in 0..b.num_rows() {
            out.push(formatter.value(i).to_string());
        }
    }
    out
}

/// The ids of NDJSON lines.
pub fn ndjson_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}
