//! The local test bed: real servers on loopback, one per test, on free ports, stopped when the
//! test ends. Adding a server is one function that spawns it and waits until it answers.
//!
//! Everything comes from the test virtualenv that scripts/test.sh creates (.venv).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo;

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub port: u16,
    /// The server's own working directory, removed after it stops.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The virtualenv's Python (override with REHYDRATE_TEST_PYTHON).
pub fn python() -> PathBuf {
    let path = std::env::var_os("REHYDRATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "the tests need the test virtualenv ({}): run scripts/test.sh, which creates it",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it listened: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on port {port} within 60 s");
}

/// moto server (EventBridge, Lambda, SQS, IAM, …) through our startup wrapper
/// (tests/support/moto_server.py says what it corrects).
///
/// Quirk: moto's request recorder appends to one file, `moto_recording` in the working
/// directory, whatever the port; so each server runs in a directory of its own with its own
/// MOTO_RECORDER_FILEPATH, or parallel tests would read each other's requests.
pub fn moto() -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(python())
        .arg(repo().join("tests/support/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto");
    wait_for_port(port, &mut child, "moto");
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
        _dir: Some(dir),
    }
}

/// The fault-injecting proxy in front of `upstream`; its decisions are logged to `log`.
pub fn fault_proxy(upstream: &str, rate: f64, seed: u64, log: &Path) -> Server {
    let (rate, seed) = (rate.to_string(), seed.to_string());
    let args = ["--upstream", upstream, "--rate", &rate, "--seed", &seed];
    python_proxy("fault_proxy.py", &args, log)
}

/// The SigV4-checking proxy in front of `upstream` (tests/support/sigv4_check.py): it forwards
/// requests whose signature (for `secret`, `region`, `service`) is valid and logs its verdicts.
pub fn sigv4_check(upstream: &str, secret: &str, region: &str, service: &str, log: &Path) -> Server {
    let args = [
        "--upstream",
        upstream,
        "--secret",
        secret,
        "--region",
        region,
        "--service",
        service,
    ];
    python_proxy("sigv4_check.py", &args, log)
}

/// A proxy script of tests/support that prints its port first.
fn python_proxy(script: &str, args: &[&str], log: &Path) -> Server {
    let mut child = Command::new(python())
        .arg(repo().join("tests/support").join(script))
        .args(args)
        .arg("--log")
        .arg(log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting a test proxy");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first.trim().parse().expect("the proxy prints its port");
    wait_for_port(port, &mut child, script);
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
        _dir: None,
    }
}

/// Runs tests/support/moto_ctl.py against `endpoint` and returns its stdout.
pub fn moto_ctl(endpoint: &str, args: &[&str]) -> String {
    let o = Command::new(python())
        .arg(repo().join("tests/support/moto_ctl.py"))
        .arg(endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "moto_ctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// osmem-server (an in-memory OpenSearch-compatible server, from the test virtualenv), on a
/// free port. It exits with its stdin, so a test process that dies takes it along.
pub fn osmem() -> Server {
    let o = Command::new(python())
        .args(["-c", "import osmem_server; print(osmem_server.resolve_binary())"])
        .output()
        .expect("finding osmem-server");
    assert!(
        o.status.success(),
        "osmem-server: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let binary = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(binary)
        .args(["--addr", "127.0.0.1:0", "--no-ja"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting osmem-server");
    // Its first line says where it listens: {"url":"http://127.0.0.1:PORT",…}.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&first).expect("osmem-server prints its address");
    let url = ready["url"].as_str().unwrap().to_owned();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    wait_for_port(port, &mut child, "osmem-server");
    Server {
        child,
        url,
        port,
        _dir: None,
    }
}

/// Runs tests/support/os_ctl.py against an OpenSearch server and returns its stdout.
pub fn os_ctl(url: &str, args: &[&str]) -> String {
    let o = Command::new(python())
        .arg(repo().join("tests/support/os_ctl.py"))
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "os_ctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The first row of `sql` run by DuckDB (the independent reader; session time zone UTC), its
/// values joined by spaces.
pub fn duckdb_row(sql: &str) -> String {
    let o = Command::new(python())
        .args([
            "-c",
            "import duckdb, sys; duckdb.sql(\"SET TimeZone='UTC'\"); r = duckdb.sql(sys.argv[1]); print(*(r.fetchone() if r else ()))",
            sql,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "duckdb: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
