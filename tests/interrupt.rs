//! Runs that are stopped: SIGINT / SIGTERM end a run cleanly (exit 130, the report saved with
//! status `interrupted`), and a run killed with SIGKILL still leaves, for every event it had
//! reported, its outcome, which `rehydrate report` shows as an interrupted run.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::{moto, moto_ctl};
use common::*;

/// Starts a slow replay (`--rate 40` events a second over 559 events) against `endpoint`.
fn slow_replay(endpoint: &str, reports: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rehydrate"))
        .args([
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "source = 'com.shop.orders'",
            "--bus",
            "slow",
            "--rate",
            "40",
            "--grace-period",
            "2",
            "--report-dir",
            reports.to_str().unwrap(),
        ])
        .current_dir(repo())
        .env_remove("REHYDRATE_REPORT_DIR")
        .envs(aws_env(endpoint))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run has reported some outcomes (its outcomes log has grown).
fn wait_for_progress(reports: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let grown = std::fs::read_dir(reports)
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|e| {
                let log = e.unwrap().path().join("outcomes.arrows");
                std::fs::metadata(log).is_ok_and(|m| m.len() > 2000)
            });
        if grown {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the run reported no outcomes within 60 s");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

use common::servers::duckdb_row;

fn report(reports: &std::path::Path, sql: &str) -> String {
    let o = rehydrate(&[
        "report",
        "--format",
        "csv",
        "--report-dir",
        reports.to_str().unwrap(),
        sql,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn sigint_stops_cleanly_with_exit_130_and_an_interrupted_report() {
    let moto = moto();
    moto_ctl(&moto.url, &["replay-target", "slow", "slow-q"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let child = slow_replay(&moto.url, &reports);
    wait_for_progress(&reports);
    let sent = Instant::now();
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "stopped within the grace period"
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopping"), "{}", stderr(&o));
    let run = runs(&reports).pop().unwrap();
    let s = run_summary(&run);
    assert_eq!(s["status"], "interrupted", "{s}");
    assert_eq!(s["exit_code"], 130);
    let succeeded = s["succeeded"].as_u64().unwrap();
    assert!(succeeded > 0 && succeeded < 559, "{s}");
    // The outcomes were kept, and `report` sees the run.
    let rows = outcomes(&run);
    assert_eq!(
        rows.iter().filter(|r| r.status == "succeeded").count() as u64,
        succeeded
    );
    let csv = report(&reports, "SELECT status, succeeded FROM runs");
    assert_eq!(csv.trim(), format!("status,succeeded\ninterrupted,{succeeded}"));
}

#[test]
fn a_killed_run_still_says_what_became_of_every_event_it_reported() {
    let moto = moto();
    let queue = moto_ctl(&moto.url, &["replay-target", "slow", "slow-q"])
        .trim()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("runs");
    let mut child = slow_replay(&moto.url, &reports);
    wait_for_progress(&reports);
    signal(&child, "-KILL");
    child.wait().unwrap();
    let csv = report(
        &reports,
        "SELECT r.status, r.succeeded, count(o.event_id) AS outcomes FROM runs r JOIN outcomes o USING (run_id) GROUP BY r.status, r.succeeded",
    );
    let line = csv
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no interrupted run: {csv}"));
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields[0], "interrupted", "{csv}");
    let succeeded: u64 = fields[1].parse().unwrap();
    assert!(succeeded > 0, "{csv}");
    assert_eq!(fields[2], fields[1], "every reported outcome is readable: {csv}");
    // The independent check: every event reported succeeded did reach the bus's rule target.
    let delivered = moto_ctl(&moto.url, &["drain", &queue, "559", "5"]).lines().count() as u64;
    assert!(
        delivered >= succeeded,
        "{delivered} delivered, {succeeded} reported succeeded"
    );
}

#[test]
fn a_query_that_does_not_read_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = rehydrate(&[
        "populate",
        "parquet",
        "--from",
        "testdata/events.ndjson",
        "--query",
        "SELECT * FROM generate_series(1, 5)",
        "--to",
        dir.path().join("out").to_str().unwrap(),
        "--report-dir",
        dir.path().join("runs").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not read the table `events`"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn a_closed_pipe_ends_preview_quietly() {
    use std::io::Read;
    for format in ["ndjson", "table", "count"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rehydrate"))
            .args([
                "preview",
                "--from",
                "testdata/events.ndjson",
                "--format",
                format,
                "--limit",
                "1000",
            ])
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away at once
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{format}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Error"), "{format}: {err}");
    }
}

/// A server that accepts connections and never answers.
struct Silent {
    child: Child,
    url: String,
}

impl Drop for Silent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn silent_server() -> Silent {
    use std::io::BufRead;
    let script = "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(64)\nprint(s.getsockname()[1], flush=True)\nheld = []\nwhile True:\n    held.append(s.accept()[0])\n";
    let mut child = Command::new(common::servers::python())
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    Silent {
        url: format!("http://127.0.0.1:{}", port.trim()),
        child,
    }
}

#[test]
fn a_server_that_never_answers_ends_in_timeouts_not_a_hang() {
    let server = silent_server();
    let started = Instant::now();
    let ran = run_checked(
        &[
            "replay",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "detail_type = 'OrderCancelled' AND source = 'com.shop.orders'",
            "--bus",
            "b",
            "--request-timeout",
            "1",
            "--max-attempts",
            "2",
            "--concurrency",
            "16",
        ],
        &aws_env(&server.url),
        3,
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let rows = outcomes(&ran.run);
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r.status, "failed");
        assert_eq!(r.error_code.as_deref(), Some("Timeout"), "{r:?}");
        assert_eq!(r.attempts, 2);
    }
}

#[test]
fn a_lost_outcome_is_an_internal_error_not_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let o = rehydrate_full(
        &[
            "invoke",
            "--from",
            "testdata/events.ndjson",
            "--where",
            "detail_type = 'PaymentFailed'",
            "--function",
            "f",
            "--dry-run",
            "--output",
            "json",
            "--report-dir",
            dir.path().join("runs").to_str().unwrap(),
        ],
        None,
        &[
            ("REHYDRATE_TEST_FAULT", "lose-one-outcome"),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(s["matched"], 25, "{s}");
    assert_eq!(s["skipped"], 24, "{s}");
    assert_eq!(s["filtered"], 1200 - 25, "the lost one is not counted as filtered: {s}");
    assert!(s["error"].as_str().unwrap().contains("1 missing"), "{s}");
    assert!(stderr(&o).contains("internal error"), "{}", stderr(&o));
}

#[test]
fn a_file_without_newlines_is_refused_at_the_record_cap_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one-line.ndjson");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        f.write_all(br#"{"id":"x","source":"s","detail-type":"T","detail":{"pad":""#)
            .unwrap();
        let block = vec![b'a'; 1 << 20];
        for _ in 0..200 {
            f.write_all(&block).unwrap(); // 200 MB, no line break
        }
    }
    let reports = dir.path().join("runs");
    let out = dir.path().join("out");
    let args = [
        "populate",
        "parquet",
        "--from",
        file.to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
        "--report-dir",
        reports.to_str().unwrap(),
    ];
    let timed = std::path::Path::new("/usr/bin/time").exists();
    let rss = dir.path().join("rss");
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o", rss.to_str().unwrap(), env!("CARGO_BIN_EXE_rehydrate")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_rehydrate"))
    };
    let o = cmd
        .args(args)
        .current_dir(repo())
        .env("REHYDRATE_MAX_RECORD_BYTES", "1048576")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than 1048576 bytes"), "{}", stderr(&o));
    if timed {
        // Refused at the cap: the 200 MB line is never held.
        // GNU time puts "Command exited with non-zero status 1" before the figure.
        let text = std::fs::read_to_string(&rss).unwrap();
        let kb: u64 = text.trim().lines().last().unwrap().parse().unwrap();
        assert!(kb < 150 * 1024, "peak RSS {kb} KB");
    }
}

#[test]
fn a_killed_parquet_run_leaves_no_half_file_that_readers_would_see() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let reports = dir.path().join("runs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rehydrate"))
        .args(["populate", "parquet", "--from", "-", "--to", out.to_str().unwrap()])
        .args([
            "--max-rows-per-file",
            "100",
            "--batch-size",
            "25",
            "--report-dir",
            reports.to_str().unwrap(),
        ])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Feed the store slowly, so that the run is killed with files both committed and open.
    let events = std::fs::read_to_string(testdata("events.ndjson")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (i, line) in events.lines().enumerate() {
        if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
            break;
        }
        if i % 50 == 49 {
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        if i == 730 {
            break;
        }
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-KILL");
    child.wait().unwrap();
    drop(stdin);
    let visible = parquet_files(&out);
    assert!(!visible.is_empty(), "some files were committed before the kill");
    // DuckDB reads every visible file whole: none is half written.
    let glob = format!("{}/*.parquet", out.display());
    let rows: usize = duckdb_row(&format!("SELECT count(*) FROM read_parquet('{glob}')"))
        .parse()
        .unwrap();
    assert_eq!(rows, visible.len() * 100, "every visible file holds its 100 rows");
    assert!(rows < 731, "the open file's rows were never visible");
}

#[test]
fn a_dead_letter_file_that_is_also_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::copy(testdata("events.ndjson"), &input).unwrap();
    let o = rehydrate(&[
        "populate",
        "parquet",
        "--from",
        input.to_str().unwrap(),
        "--to",
        dir.path().join("out").to_str().unwrap(),
        "--dead-letter",
        input.to_str().unwrap(),
        "--report-dir",
        dir.path().join("runs").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is also an input"), "{}", stderr(&o));
}

#[test]
fn a_database_that_never_answers_stops_the_run_within_the_timeout() {
    let server = silent_server();
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    for (cmd, scheme) in [("postgres", "postgres"), ("mysql", "mysql")] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{scheme}://u@127.0.0.1:{port}/db");
        let started = Instant::now();
        let o = rehydrate(&[
            "populate",
            cmd,
            "--from",
            "testdata/events.ndjson",
            "--query",
            "SELECT id FROM events",
            "--url",
            &url,
            "--table",
            "t",
            "--key",
            "id",
            "--request-timeout",
            "2",
            "--report-dir",
            dir.path().join("runs").to_str().unwrap(),
        ]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{cmd}: {:?}",
            started.elapsed()
        );
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot connect"), "{cmd}: {}", stderr(&o));
    }
}

/// Writes `lines` into the FIFO at `path` (blocks until a reader opens it), pausing after
/// `pause_after` lines until `abort` is set (then it stops, closing the FIFO).
fn feed_fifo(
    path: std::path::PathBuf,
    lines: Vec<String>,
    pause_after: Option<usize>,
    abort: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return;
        };
        for (i, line) in lines.iter().enumerate() {
            if f.write_all(line.as_bytes()).and_then(|_| f.write_all(b"\n")).is_err() {
                return;
            }
            if Some(i + 1) == pause_after {
                let _ = f.flush();
                while !abort.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        }
    })
}

#[test]
fn parquet_killed_then_resumed_writes_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("store.ndjson");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.path().join("out");
    let reports = dir.path().join("runs");
    let lines: Vec<String> = std::fs::read_to_string(testdata("events.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let args = |cmd: &mut Command| {
        cmd.args([
            "populate",
            "parquet",
            "--from",
            fifo.to_str().unwrap(),
            "--to",
            out.to_str().unwrap(),
        ])
        .args([
            "--max-rows-per-file",
            "100",
            "--batch-size",
            "50",
            "--report-dir",
            reports.to_str().unwrap(),
        ])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    };
    // The first run: 530 lines, then the store stalls; it is killed while it waits, with five
    // files committed and one open.
    let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = feed_fifo(fifo.clone(), lines.clone(), Some(530), abort.clone());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehydrate"));
    args(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(out.exists() && parquet_files(&out).len() >= 5) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-KILL");
    child.wait().unwrap();
    abort.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    let first = runs(&reports).pop().unwrap();
    let first_id = first.file_name().unwrap().to_str().unwrap().to_owned();
    // The resume reads the whole store again from the same path.
    let feeder = feed_fifo(fifo.clone(), lines.clone(), None, abort.clone());
    let o = rehydrate(&["resume", "--report-dir", reports.to_str().unwrap(), &first_id]);
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let resumed = runs(&reports).into_iter().find(|r| r != &first).unwrap();
    let s = run_summary(&resumed);
    assert_eq!(s["resumed_from"], first_id.as_str());
    assert_eq!(s["already_done"], 500, "{s}");
    // The union of both runs' files: every event exactly once (DuckDB reads them).
    let glob = format!("{}/*.parquet", out.display());
    let sql = format!("SELECT count(*), count(DISTINCT id) FROM read_parquet('{glob}')");
    assert_eq!(duckdb_row(&sql), "1200 1200");
}
