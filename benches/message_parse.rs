//! One JSON-RPC message parsed from text, as the gateway reads a client's
//! POST body and a stdio upstream's line: rmcp's derived `Deserialize`
//! (serde's buffered path) against its unbuffered parse
//! (`from_json_slice`, `from_client_json_slice`; `vendor/rmcp/PATCHES.md`).
//! Cases: a `tools/call` request, a small tool result, a 1 MB tool result
//! (over the unbuffered parse's 8 KiB limit, so both columns take the
//! derived path: the limit's check is all it adds). The front door's body
//! shape read of the same request, by hand (`shape::read`, the plain case)
//! against serde's visitors (`shape::read_by_serde`).
//! Prints figures; asserts only that each parse succeeds (the equivalences
//! are tested by the fuzz targets `json_rpc_parse` and `front_door`).
//!
//! `cargo bench --bench message_parse`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bulwark::front::shape;
use criterion::{Criterion, criterion_group, criterion_main};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde_json::json;

fn tool_call() -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "echo__echo", "arguments": {"message": "hello from the bench"},
        "_meta": {"progressToken": "p-7"}}})
    .to_string()
    .into_bytes()
}

fn tool_result(text_bytes: usize) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": "x".repeat(text_bytes)}], "isError": false}})
    .to_string()
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let call = tool_call();
    let mut group = c.benchmark_group("tools/call request");
    group.bench_function("derived", |b| {
        b.iter(|| serde_json::from_slice::<ClientJsonRpcMessage>(black_box(&call)).unwrap())
    });
    group.bench_function("from_json_slice", |b| {
        b.iter(|| ClientJsonRpcMessage::from_json_slice(black_box(&call)).unwrap())
    });
    group.bench_function("from_client_json_slice", |b| {
        b.iter(|| ClientJsonRpcMessage::from_client_json_slice(black_box(&call)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("tools/call body shape");
    group.bench_function("serde visitors", |b| {
        b.iter(|| shape::read_by_serde(black_box(&call), 10_000, 64).unwrap())
    });
    group.bench_function("read (plain)", |b| {
        b.iter(|| shape::read(black_box(&call), 10_000, 64).unwrap())
    });
    group.finish();

    for (label, size) in [("small result", 20), ("1 MB result", 1 << 20)] {
        let result = tool_result(size);
        let mut group = c.benchmark_group(label);
        if size > 1000 {
            group.sample_size(20);
        }
        group.bench_function("derived", |b| {
            b.iter(|| serde_json::from_slice::<ServerJsonRpcMessage>(black_box(&result)).unwrap())
        });
        group.bench_function("from_json_slice", |b| {
            b.iter(|| ServerJsonRpcMessage::from_json_slice(black_box(&result)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
