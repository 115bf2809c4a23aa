//! Chaos modes that break JSON-RPC itself, so they speak it by hand: one
//! line per message on stdin/stdout, an `echo` tool, and the mode's abuse.
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use super::ChaosMode;

/// Size of the [`ChaosMode::HugeLine`] line.
const HUGE_LINE_BYTES: usize = 100 * 1024 * 1024;

type Out = Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

/// Serves `mode` until stdin closes.
pub(super) async fn serve(mode: ChaosMode) -> anyhow::Result<()> {
    let out: Out = Arc::new(Mutex::new(Box::new(tokio::io::stdout())));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if mode == ChaosMode::NoInitialize {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let method = message["method"].as_str().unwrap_or_default();
        if method == "notifications/initialized" {
            started(mode, &out);
            continue;
        }
        let Some(id) = message.get("id").cloned() else {
            continue;
        };
        if message.get("method").is_none() {
            continue; // a response to something we never asked
        }
        let reply = match answer(method, &message["params"]) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        let reply = match mode {
            ChaosMode::WrongIds if method != "initialize" => wrong_id(reply),
            _ => reply,
        };
        if mode == ChaosMode::StdoutGarbage {
            write(&out, b"this is not json\n").await?;
            write(&out, b"\xff\xfe{\"jsonrpc\": \xc3\x28\n").await?;
            write(&out, b"{\"jsonrpc\":\"2.0\",\"id\":{\"nested\":true}}\n").await?;
        }
        let mut bytes = serde_json::to_vec(&reply)?;
        bytes.push(b'\n');
        write(&out, &bytes).await?;
    }
    Ok(())
}

/// The same reply under an id nobody is waiting for.
fn wrong_id(mut reply: Value) -> Value {
    let wrong = match &reply["id"] {
        Value::Number(n) => json!(n.as_i64().unwrap_or(0) + 1_000_000),
        _ => json!("not-your-id"),
    };
    reply["id"] = wrong;
    reply
}

async fn write(out: &Out, bytes: &[u8]) -> std::io::Result<()> {
    let mut out = out.lock().await;
    out.write_all(bytes).await?;
    out.flush().await
}

/// What the mode does once the client is initialized.
fn started(mode: ChaosMode, out: &Out) {
    let out = out.clone();
    match mode {
        ChaosMode::HugeLine => {
            tokio::spawn(async move {
                let head = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":""#;
                let mut line = Vec::with_capacity(HUGE_LINE_BYTES + 64);
                line.extend_from_slice(head);
                line.resize(HUGE_LINE_BYTES, b'x');
                line.extend_from_slice(b"\"}}\n");
                let _ = write(&out, &line).await;
                eprintln!("chaos: wrote a {HUGE_LINE_BYTES}-byte line");
            });
        }
        ChaosMode::NotifyFlood => {
            tokio::spawn(async move {
                for i in 0u64.. {
                    let note = match i % 4 {
                        0 => json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
                        1 => json!({"jsonrpc":"2.0","method":"notifications/message",
                            "params":{"level":"warning","data":format!("flood {i}")}}),
                        2 => json!({"jsonrpc":"2.0","method":"notifications/progress",
                            "params":{"progressToken":format!("stray-{i}"),"progress":i}}),
                        _ => json!({"jsonrpc":"2.0","method":"notifications/resources/updated",
                            "params":{"uri":format!("chaos://{i}")}}),
                    };
                    let Ok(mut bytes) = serde_json::to_vec(&note) else {
                        continue;
                    };
                    bytes.push(b'\n');
                    if write(&out, &bytes).await.is_err() {
                        return;
                    }
                    if i % 64 == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            });
        }
        _ => {}
    }
}

/// The result (or error) of one request.
fn answer(method: &str, params: &Value) -> Result<Value, Value> {
    match method {
        "initialize" => Ok(json!({
            "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {"listChanged": true}, "logging": {}},
            "serverInfo": {"name": "bulwark-demo-chaos", "version": env!("CARGO_PKG_VERSION")},
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": [{
            "name": "echo",
            "description": "Returns its message",
            "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
        }]})),
        "tools/call" if params["name"] == "echo" => {
            let text = params["arguments"]["message"].as_str().unwrap_or_default();
            Ok(json!({"content": [{"type": "text", "text": text}]}))
        }
        _ => Err(json!({"code": -32601, "message": format!("{method} not supported")})),
    }
}
