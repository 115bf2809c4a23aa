//! Calls to a plain-`http` remote upstream ride HTTP/1.1 connections that
//! the calling task drives itself (`upstream/caller_conns`): one is kept
//! for the next call, and one the server closed while it sat idle is given
//! up without failing a call or restarting the upstream.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{DemoHttp, remote_upstream};
use crate::common::{Gateway, PythonSession, peers};
use crate::gateway::{HEAD, upstream_node};

/// The proxy's relays, each with the method of its first request.
type Relays = Arc<Mutex<Vec<(String, JoinHandle<()>)>>>;

/// A TCP proxy in front of an upstream that knows each connection by the
/// method of its first request, and can close the `POST` ones.
struct Proxy {
    port: u16,
    conns: Relays,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Relays = Arc::default();
        let seen = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let mut first = [0u8; 4];
                // Every request line is longer than four bytes.
                client.read_exact(&mut first).await.unwrap();
                let method = String::from_utf8_lossy(&first).trim().to_owned();
                let mut server = TcpStream::connect(("127.0.0.1", upstream_port))
                    .await
                    .unwrap();
                let relay = tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    server.write_all(&first).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                seen.lock().unwrap().push((method, relay));
            }
        });
        Proxy {
            port,
            conns,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Connections opened so far whose first request was a `POST`.
    fn posts_opened(&self) -> usize {
        let conns = self.conns.lock().unwrap();
        conns.iter().filter(|(method, _)| method == "POST").count()
    }

    /// Closes every connection that began with a `POST`, both ways, and
    /// returns once their sockets are closed.
    async fn close_posts(&self) {
        let closing: Vec<JoinHandle<()>> = {
            let mut conns = self.conns.lock().unwrap();
            let (posts, rest) = conns.drain(..).partition(|(method, _)| method == "POST");
            *conns = rest;
            posts
                .into_iter()
                .map(|(_, relay): (String, JoinHandle<()>)| {
                    relay.abort();
                    relay
                })
                .collect()
        };
        for relay in closing {
            // Joined, a relay has dropped both its sockets (ended or aborted).
            if let Err(err) = relay.await {
                assert!(err.is_cancelled(), "{err}");
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, relay) in self.conns.lock().unwrap().drain(..) {
            relay.abort();
        }
    }
}

/// `count` echo calls through the upstream, one at a time, each answered
/// with its own message.
fn echo_calls(session: &mut PythonSession, label: &str, count: usize) {
    for i in 0..count {
        let message = format!("{label} {i}");
        let answer = session.call("remote__echo", json!({"message": message}));
        assert_eq!(answer["result"]["text"], message.as_str(), "{answer}");
    }
}

// The Python session's calls block their thread: the proxy runs on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_calls_reuse_a_connection_and_outlive_the_server_closing_it() {
    let Some(peers) = peers() else { return };
    let upstream = DemoHttp::start("echo");
    let proxy = Proxy::start(upstream.port).await;
    let gw = Gateway::start(
        // No health pings: one beside a call would open a second connection.
        &format!(
            "{HEAD}{}",
            remote_upstream(
                "remote",
                &proxy.url(),
                "[upstreams.remote.health]\ninterval_ms = 3600000"
            )
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let first = session.call("remote__echo", json!({"message": "first"}));
    assert_eq!(first["result"]["text"], "first", "{first}");

    // One call at a time: each finds the connection the last one parked.
    let opened = proxy.posts_opened();
    echo_calls(&mut session, "call", 20);
    assert_eq!(
        proxy.posts_opened(),
        opened,
        "20 calls in a row opened connections"
    );

    // The server side closes every posting connection while it is idle:
    // the next calls open a new one, and the upstream is not restarted.
    proxy.close_posts().await;
    echo_calls(&mut session, "after close", 3);
    assert_eq!(
        proxy.posts_opened(),
        1,
        "one new connection after the close"
    );
    let node = upstream_node(&gw, "remote").await;
    assert_eq!(node["restarts"], 0, "{node}");
    assert_eq!(node["state"], "ready", "{node}");
    session.quit();
}
