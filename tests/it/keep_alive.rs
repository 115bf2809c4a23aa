//! HTTP/1.1 keep-alive clients (wrk, most HTTP libraries): many calls on ONE
//! connection, each response read to its end. The gateway and the demo
//! servers set TCP_NODELAY on accepted connections, so such a client is not
//! held up by delayed ACKs (`benches/gateway_load.rs` shows the latency);
//! here: the calls work on one connection, and the gateway reuses pooled
//! connections to a remote upstream instead of opening one per call.
//!
//! A call's response holds its head until the call's first message (for at
//! most a short window): a quick call leaves in one write, as plain JSON, so
//! such a client is woken once per call, not once for the head and again
//! for the result; a slow call still gets its SSE head early.
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::Gateway;
use crate::remote::{DemoHttp, remote_upstream};

const CALLS: usize = 100;

/// One TCP connection speaking MCP over HTTP/1.1 with keep-alive.
struct KeepAliveClient {
    stream: BufReader<TcpStream>,
    host: String,
    path: String,
    session: Option<String>,
}

impl KeepAliveClient {
    async fn connect(url: &str) -> Self {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let stream = TcpStream::connect(host).await.unwrap();
        let mut client = Self {
            stream: BufReader::new(stream),
            host: host.to_owned(),
            path: path.to_owned(),
            session: None,
        };
        let (headers, _) = client
            .post(&json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "keep-alive-test", "version": "1"}}
            }))
            .await;
        client.session = header(&headers, "mcp-session-id");
        assert!(client.session.is_some(), "no session id: {headers}");
        client
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        client
    }

    /// Sends one POST and reads its response to the end; (headers, body).
    async fn post(&mut self, message: &Value) -> (String, String) {
        self.send(message).await;
        self.read_response().await
    }

    async fn send(&mut self, message: &Value) {
        let body = message.to_string();
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.path,
            self.host,
            body.len()
        );
        if let Some(session) = &self.session {
            request.push_str(&format!(
                "Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n"
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let stream = self.stream.get_mut();
        stream.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads one response to its end; (headers, body).
    async fn read_response(&mut self) -> (String, String) {
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            let read = self.stream.read_line(&mut line).await.unwrap();
            assert!(read > 0, "the server closed the connection: {headers}");
            if line == "\r\n" {
                break;
            }
            headers.push_str(&line);
        }
        assert!(headers.starts_with("HTTP/1.1 2"), "{headers}");
        assert!(
            !headers.to_ascii_lowercase().contains("connection: close"),
            "{headers}"
        );
        let mut body = Vec::new();
        if let Some(length) = header(&headers, "content-length") {
            body.resize(length.parse().unwrap(), 0);
            self.stream.read_exact(&mut body).await.unwrap();
        } else {
            assert_eq!(
                header(&headers, "transfer-encoding").as_deref(),
                Some("chunked"),
                "{headers}"
            );
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).await.unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        (headers, String::from_utf8(body).unwrap())
    }

    /// Sends a `tools/call` and returns what the first read of the
    /// connection brings (left unread) and how long it took to come.
    async fn first_read_of_call(&mut self, tool: &str, arguments: Value) -> (String, Duration) {
        let started = Instant::now();
        self.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": tool, "arguments": arguments}}))
            .await;
        let first = self.stream.fill_buf().await.unwrap();
        (
            String::from_utf8_lossy(first).into_owned(),
            started.elapsed(),
        )
    }

    async fn echo(&mut self, tool: &str, id: usize) {
        let message = format!("keep-alive call {id}");
        let (_, body) = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": tool, "arguments": {"message": message}}}))
            .await;
        assert!(body.contains(&message), "call {id}: {body}");
    }
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// TCP connections to or from `port` in this network namespace, including
/// closed ones still in TIME_WAIT: each connection ever opened to a port
/// lingers there for a minute.
fn connections_of(port: u16) -> usize {
    let hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 2 && (fields[1].ends_with(&hex) || fields[2].ends_with(&hex))
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_reuse_one_connection_and_remote_calls_are_pooled() {
    let demo = DemoHttp::start("echo");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nenabled = false\n\n{}",
        remote_upstream("echo", &demo.url(), "")
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;

    // Straight to the demo server, then through the gateway: one connection each.
    let mut direct = KeepAliveClient::connect(&demo.url()).await;
    for id in 1..=CALLS {
        direct.echo("echo", id).await;
    }
    let before = connections_of(demo.port);
    let mut through = KeepAliveClient::connect(gw.mcp_url()).await;
    for id in 1..=CALLS {
        through.echo("echo__echo", id).await;
    }
    // Without pooling every call would have left one more connection to the
    // demo server behind (in TIME_WAIT); pooled, a handful serve them all.
    let opened = connections_of(demo.port).saturating_sub(before);
    assert!(
        opened < CALLS / 4,
        "{opened} new connections to the upstream for {CALLS} calls{}",
        gw.logs()
    );
}

/// A gateway in front of the demo `echo` and `slow`, whose responses' heads
/// wait up to 1.5 s for their first message: a wide window, so that a quick
/// call in a debug build on a busy machine still answers within it.
async fn echo_and_slow() -> Gateway {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.limits]\nresponse_head_wait_ms = 1500\n\
         [auth]\nenabled = false\n\n{}{}",
        crate::gateway::demo_upstream("echo", "\"echo\""),
        crate::gateway::demo_upstream("slow", "\"slow\""),
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_call_answers_in_one_write_and_a_slow_one_gets_its_head_early() {
    let gw = echo_and_slow().await;

    // The head and the result (plain JSON: nothing came before it) come in
    // the first read: one write by the gateway. Sent at once, the head
    // would come alone, before the upstream had answered.
    let mut client = KeepAliveClient::connect(gw.mcp_url()).await;
    for call in 0..5 {
        let message = format!("in one write {call}");
        let (first, _) = client
            .first_read_of_call("echo__echo", json!({ "message": message }))
            .await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(
            first.contains("application/json") && first.contains(&message),
            "the first read held no JSON result: {first:?}"
        );
        let (_, body) = client.read_response().await;
        assert!(body.contains(&message), "{body}");
    }

    // A call silent for longer is not held back: its head (and priming
    // event) come once the window ends, long before its result.
    let (first, waited) = client
        .first_read_of_call("slow__slow", json!({"ms": 10_000}))
        .await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first.contains("retry: ") && !first.contains("\"result\""),
        "the slow call's first read: {first:?}"
    );
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(8),
        "the slow call's head took {waited:?}, with a 1.5 s window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_reports_progress_first_keeps_its_event_stream() {
    let gw = echo_and_slow().await;
    let mut client = KeepAliveClient::connect(gw.mcp_url()).await;

    // Progress every 100 ms comes before the result: the head goes with
    // the first notification, and the stream carries both, in order.
    let (headers, body) = client
        .post(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "slow__slow", "arguments": {"ms": 400},
                                 "_meta": {"progressToken": "p-1"}}}))
        .await;
    assert_eq!(
        header(&headers, "content-type").as_deref(),
        Some("text/event-stream"),
        "{headers}"
    );
    let progress = body.find("notifications/progress");
    let result = body.find("slept 400 ms");
    assert!(
        progress.is_some() && result.is_some() && progress < result,
        "progress, then the result: {body}"
    );

    // A quick answer is the JSON-RPC response itself, error or not, with
    // HTTP 200 as its stream would have had, and the connection goes on.
    for (id, tool) in [(4, "echo__echo"), (5, "echo__nope")] {
        let (headers, body) = client
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": tool, "arguments": {"message": "quick"}}}))
            .await;
        assert_eq!(
            header(&headers, "content-type").as_deref(),
            Some("application/json"),
            "{headers}"
        );
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["id"], id, "{body}");
        assert!(
            answer.get("result").is_some() || answer.get("error").is_some(),
            "{body}"
        );
    }
    client.echo("echo__echo", 6).await;
}
