//! The front door: any bytes through the body shape reader (the bounded
//! pass that runs before anything builds a tree), then, for bodies it
//! accepts, the JSON-RPC parse the handler does.
use bulwark::front::shape;
use rmcp::model::ClientJsonRpcMessage;

use super::assemble;

const MAX_VALUES: usize = 2_000;
const MAX_DEPTH: usize = 32;

const JSON_RPC: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":"#,
    r#""method":"tools/call""#,
    r#""method":"initialize""#,
    r#""method":"ping""#,
    r#""params":{"#,
    r#""arguments":"#,
    r#""name":"echo__echo""#,
    r#""_meta":{"progressToken":1}"#,
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "1e999",
    "-0",
    r#""\ud800""#,
    r#""x""#,
    "\"",
];

/// The screening decision and, when accepted, the handler's parse.
fn screen(bytes: &[u8]) {
    // A refused body never reaches the handler.
    if let Ok(found) = shape::read(bytes, MAX_VALUES, MAX_DEPTH) {
        assert!(found.values <= MAX_VALUES, "{found:?}");
        if let Some(method) = &found.method {
            assert!(method.len() <= shape::MAX_METHOD_LEN);
        }
        // Accepted bodies are JSON; the handler's parse may refuse them
        // (not JSON-RPC) but must not panic.
        assert!(serde_json::from_slice::<serde_json::Value>(bytes).is_ok());
        let _ = serde_json::from_slice::<ClientJsonRpcMessage>(bytes);
    }
    let _ = bulwark::front::clip(&String::from_utf8_lossy(bytes), 64);
}

#[test]
fn front_door_bytes() {
    bolero::check!().for_each(screen);
}

#[test]
fn front_door_json_rpc_shaped() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| screen(assemble(parts, JSON_RPC).as_bytes()));
}
