//! The front door: any bytes through the body shape reader (the bounded
//! pass that runs before anything builds a tree), then, for bodies it
//! accepts, the JSON-RPC parse the handler does. The reader's hand-read
//! plain case must come to what serde's visitors make of the same bytes.
use bulwark::front::shape;
use rmcp::model::ClientJsonRpcMessage;

use super::{assemble, built_object, draws};

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
    r#""id":"#,
    r#""a\"b\\c\n""#,
    r#""\u0041""#,
    "-1.25",
    "01",
    " ",
    "\t",
];

/// The screening decision and, when accepted, the handler's parse.
fn screen(bytes: &[u8]) {
    assert_eq!(
        shape::read(bytes, MAX_VALUES, MAX_DEPTH),
        shape::read_by_serde(bytes, MAX_VALUES, MAX_DEPTH),
        "{}",
        String::from_utf8_lossy(bytes)
    );
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

/// Scalars and keys the built bodies draw from: plain ones, and each thing
/// the plain read leaves to serde (escapes, exponents, odd ids, bad tokens).
const SCALARS: &[&str] = &[
    "1",
    "-7",
    "0",
    "-0",
    "1.5",
    "-0.25",
    "1e3",
    "12345678901234567890",
    "01",
    "true",
    "false",
    "null",
    r#""""#,
    r#""x""#,
    r#""tools/call""#,
    r#""a\"b\\c\n\t/""#,
    r#""\u0041""#,
    r#""\ud800""#,
    "\"é\"",
    "\"\u{1}\"",
    "nul",
    "}",
];
const KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "arguments",
    "_meta",
    "name",
    "x",
    "a\\\"b",
    "metho\\u0064",
];
/// A body built from `bytes`: mostly well-formed JSON-RPC-like objects, so
/// that the plain read decides often and is checked against serde's.
fn build(bytes: &[u8]) -> String {
    let mut next = draws(bytes);
    let mut out = String::new();
    built_object(&mut next, KEYS, SCALARS, &mut out);
    // Trailing junk now and then; never once the bytes ran out (a draw
    // past the end is 0).
    if next() % 16 == 15 {
        out.push_str(SCALARS[next() % SCALARS.len()]);
    }
    out
}

#[test]
fn front_door_built_bodies() {
    bolero::check!().with_type::<Vec<u8>>().for_each(|bytes| {
        let body = build(bytes);
        screen(body.as_bytes());
        // Small limits too, drawn from the input, so that bodies land on
        // them, just under and just over.
        let values = usize::from(bytes.first().copied().unwrap_or(0) % 32);
        let depth = usize::from(bytes.get(1).copied().unwrap_or(0) % 8);
        assert_eq!(
            shape::read(body.as_bytes(), values, depth),
            shape::read_by_serde(body.as_bytes(), values, depth),
            "{body} within {values} values, depth {depth}"
        );
    });
}
