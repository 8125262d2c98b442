//! A local AWS endpoint that answers every request with success at once: the driver benchmark's
//! peer (scripts/bench.sh). moto is too slow to measure the driver against (it is the bottleneck
//! itself); this server costs a few microseconds a request, so what is measured is rehydrate.
//!
//!   cargo run --release --example noop_endpoint [PORT]     (prints "listening on 127.0.0.1:PORT")
//!
//! It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the AWS SDK's calls
//! that replay, invoke and populate dynamodb make:
//!   - EventBridge PutEvents (`X-Amz-Target: AWSEvents.PutEvents`): one EventId per entry;
//!   - Lambda GetFunction and Invoke (`/2015-03-31/functions/NAME[/invocations]`);
//!   - DynamoDB DescribeTable (a table keyed by `id`, a string) and BatchWriteItem (nothing
//!     unprocessed).
//!
//! `GET /__stats` answers `{"requests":R,"entries":E}`: what it was sent, for the benchmark to
//! check rehydrate's summary against (entries: PutEvents entries, invocations, items written).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    entries: AtomicU64,
}

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        None => 0,
        Some(p) => p.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("PORT {p:?}: not a port number"),
            )
        })?,
    };
    // One thread: the benchmark runs on the same cores as rehydrate, and a server that takes
    // one core at most leaves the client the rest.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        let stats = Arc::new(Stats::default());
        loop {
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let stats = stats.clone();
            tokio::spawn(async move {
                let _ = serve(socket, &stats).await;
            });
        }
    })
}

/// Serves one connection's requests until the client closes it.
async fn serve(mut socket: TcpStream, stats: &Stats) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(4 << 10);
    loop {
        // The head: up to the blank line.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if read_more(&mut socket, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = std::str::from_utf8(&buf[..head_end]).unwrap_or("");
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut length = 0usize;
        let mut target = String::new();
        let mut invocation_type = String::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "x-amz-target" => target = value.to_owned(),
                "x-amz-invocation-type" => invocation_type = value.to_owned(),
                _ => {}
            }
        }
        while buf.len() < head_end + length {
            if read_more(&mut socket, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body = &buf[head_end..head_end + length];
        let (status, content_type, answer) = answer(stats, &method, &path, &target, &invocation_type, body);
        out.clear();
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: noop\r\n\r\n",
                answer.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(answer.as_bytes());
        socket.write_all(&out).await?;
        buf.drain(..head_end + length);
    }
}

fn answer(
    stats: &Stats,
    method: &str,
    path: &str,
    target: &str,
    invocation_type: &str,
    body: &[u8],
) -> (&'static str, &'static str, String) {
    const JSON11: &str = "application/x-amz-json-1.1";
    const JSON10: &str = "application/x-amz-json-1.0";
    if method == "GET" && path == "/__stats" {
        let r = stats.requests.load(Ordering::Relaxed);
        let e = stats.entries.load(Ordering::Relaxed);
        return (
            "200 OK",
            "application/json",
            format!(r#"{{"requests":{r},"entries":{e}}}"#),
        );
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    match target {
        "AWSEvents.PutEvents" => {
            let n = entries(body, "Entries");
            stats.entries.fetch_add(n as u64, Ordering::Relaxed);
            let ids: Vec<String> = (0..n).map(|i| format!(r#"{{"EventId":"noop-{i}"}}"#)).collect();
            (
                "200 OK",
                JSON11,
                format!(r#"{{"FailedEntryCount":0,"Entries":[{}]}}"#, ids.join(",")),
            )
        }
        "DynamoDB_20120810.BatchWriteItem" => {
            let n = put_requests(body);
            stats.entries.fetch_add(n as u64, Ordering::Relaxed);
            ("200 OK", JSON10, r#"{"UnprocessedItems":{}}"#.to_owned())
        }
        "DynamoDB_20120810.DescribeTable" => {
            let table = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["TableName"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "noop".into());
            (
                "200 OK",
                JSON10,
                format!(
                    r#"{{"Table":{{"TableName":"{table}","TableStatus":"ACTIVE","KeySchema":[{{"AttributeName":"id","KeyType":"HASH"}}],"AttributeDefinitions":[{{"AttributeName":"id","AttributeType":"S"}}],"TableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"}}}}"#
                ),
            )
        }
        _ if path.starts_with("/2015-03-31/functions/") && path.ends_with("/invocations") => {
            stats.entries.fetch_add(1, Ordering::Relaxed);
            if invocation_type == "Event" {
                ("202 Accepted", "application/json", String::new())
            } else {
                ("200 OK", "application/json", "null".to_owned())
            }
        }
        _ if path.starts_with("/2015-03-31/functions/") => {
            let name = path
                .trim_start_matches("/2015-03-31/functions/")
                .split('/')
                .next()
                .unwrap_or("noop");
            (
                "200 OK",
                "application/json",
                format!(
                    r#"{{"Configuration":{{"FunctionName":"{name}","FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:{name}"}}}}"#
                ),
            )
        }
        _ => (
            "400 Bad Request",
            JSON11,
            format!(
                r#"{{"__type":"UnknownOperationException","message":"the no-op endpoint does not answer {method} {path} {target}"}}"#
            ),
        ),
    }
}

/// The length of the top-level array `key` of a JSON body.
fn entries(body: &[u8], key: &str) -> usize {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v[key].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The write requests of a BatchWriteItem body, over every table.
fn put_requests(body: &[u8]) -> usize {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["RequestItems"]
                .as_object()
                .map(|t| t.values().filter_map(|r| r.as_array()).map(Vec::len).sum())
        })
        .unwrap_or(0)
}

async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + (64 << 10), 0);
    let n = socket.read(&mut buf[start..]).await?;
    buf.truncate(start + n);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
