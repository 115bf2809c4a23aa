//! rmcp's unbuffered message parse (`JsonRpcMessage::from_json_slice`, the
//! client's `from_client_json_slice` and the server's
//! `from_server_json_slice`, Bulwark patches) against the
//! derived one they stand in for: on any text, the same message or the same
//! error.
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, MetaObject, RequestMetaObject, ServerJsonRpcMessage,
};
use serde_json::json;

use super::{assemble, draws};

/// Both parses of `bytes`: the same message (as it writes back: the types
/// have no `PartialEq`), or both an error with the same text.
fn same<M>(bytes: &[u8], unbuffered: fn(&[u8]) -> Result<M, serde_json::Error>)
where
    M: for<'de> serde::Deserialize<'de> + serde::Serialize + std::fmt::Debug,
{
    let text = String::from_utf8_lossy(bytes);
    match (serde_json::from_slice::<M>(bytes), unbuffered(bytes)) {
        (Ok(derived), Ok(fast)) => assert_eq!(
            serde_json::to_value(&derived).unwrap(),
            serde_json::to_value(&fast).unwrap(),
            "{text}: {derived:?} / {fast:?}"
        ),
        (Err(derived), Err(fast)) => assert_eq!(derived.to_string(), fast.to_string(), "{text}"),
        (derived, fast) => panic!("{text}: derived {derived:?}, unbuffered {fast:?}"),
    }
}

/// Where a `tools/call`'s `_meta` went: its params, or the request's
/// extensions (which serialize the same, so [`same`] cannot tell).
fn meta_placement(message: &ClientJsonRpcMessage) -> Option<(bool, bool)> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return None;
    };
    Some((
        call.params.meta.is_some(),
        call.extensions.get::<RequestMetaObject>().is_some(),
    ))
}

fn both(bytes: &[u8]) {
    same(bytes, |bytes| ClientJsonRpcMessage::from_json_slice(bytes));
    same(bytes, ClientJsonRpcMessage::from_client_json_slice);
    if let (Ok(derived), Ok(fast)) = (
        serde_json::from_slice::<ClientJsonRpcMessage>(bytes),
        ClientJsonRpcMessage::from_client_json_slice(bytes),
    ) {
        assert_eq!(meta_placement(&derived), meta_placement(&fast));
    }
    same(bytes, |bytes| ServerJsonRpcMessage::from_json_slice(bytes));
    same(bytes, ServerJsonRpcMessage::from_server_json_slice);
}

#[test]
fn client_messages_parse_as_the_derived_path_does() {
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"t"}}}"#,
        r#"{"params":{"name":"echo"},"method":"tools/call","id":"a\"b","jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"vendor/thing","params":{"x":[1,2]},"extra":true}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        r#"{"jsonrpc":"2.0","id":4,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"no"}}"#,
        r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"parse"}}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo"},"id":7}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
        r#"{"jsonrpc":"2.0","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
        r#"{"jsonrpc":"2.0","id":1,"\u006dethod":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":null}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":7}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","requestState":"s","inputResponses":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":5,"x":{"y":[1.5]}}},"x":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        "[1]",
        "{}",
        "not json",
    ] {
        both(text.as_bytes());
    }
}

#[test]
fn server_messages_parse_as_the_derived_path_does() {
    for value in [
        json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}),
        json!({"jsonrpc":"2.0","id":"x","result":{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}}),
        json!({"jsonrpc":"2.0","id":2,"result":{}}),
        json!({"jsonrpc":"2.0","id":2,"result":{"resultType":"input_required","inputRequests":{}}}),
        json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}),
        json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}),
        json!({"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}),
        json!({"jsonrpc":"2.0","id":9,"method":"ping"}),
        json!({"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"boom","data":{"a":1}}}),
        // Tool results and near misses: what the union's order makes of them.
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"a"}],"structuredContent":{"n":1},"isError":true,"_meta":{"k":"v"}}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"image","data":"aGk=","mimeType":"image/png"}]}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"resource","resource":{"uri":"file:///a","text":"t"}}]}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"structuredContent":{"n":1}}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[],"tools":[]}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[],"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[],"taskId":"t","status":"working"}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text"}]}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":{"type":"text","text":"a"}}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"content":[],"isError":"no"}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"contents":[{"uri":"file:///a","text":"t"}]}}),
        json!({"jsonrpc":"2.0","id":4,"result":{"messages":[{"role":"user","content":{"type":"text","text":"a"}}]}}),
    ] {
        both(value.to_string().as_bytes());
    }
}

const FRAGMENTS: &[&str] = &[
    r#"{"jsonrpc":"2.0","#,
    r#""id":1,"#,
    r#""id":"a","#,
    r#""id":null,"#,
    r#""method":"tools/call","#,
    r#""method":"notifications/progress","#,
    r#""method":"ping""#,
    r#""params":{"name":"echo","arguments":{"x":1}}"#,
    r#""params":{"name":"echo","_meta":{"progressToken":"p"},"arguments":{}}"#,
    r#""params":{"progressToken":1,"progress":1}"#,
    r#""result":{"content":[]}"#,
    r#""result":{"content":[{"type":"text","text":"a"}],"isError":true}"#,
    r#""result":{"content":[],"structuredContent":{"a":1},"_meta":{"k":1}}"#,
    r#""result":{"content":[],"content":[]}"#,
    r#""result":{"content":[],"tools":[]}"#,
    r#""result":{"structuredContent":null}"#,
    r#""result":{}"#,
    r#""error":{"code":1,"message":"m"}"#,
    r#""jsonrpc":"2.0""#,
    r#""x":[1,{"y":null}]"#,
    "{",
    "}",
    ",",
    ":",
    "\"",
];

#[test]
fn json_rpc_parse_fragments() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| both(assemble(parts, FRAGMENTS).as_bytes()));
}

#[test]
fn json_rpc_parse_bytes() {
    bolero::check!().for_each(both);
}

/// A `tools/call`'s params as rmcp wrote them before its `WithMeta` patch
/// (a `Value` of the params, their `_meta` merged under the extensions'),
/// against what it writes now: the same JSON.
fn written_as_before(bytes: &[u8]) {
    let Ok(message) = ClientJsonRpcMessage::from_client_json_slice(bytes) else {
        return;
    };
    let ClientJsonRpcMessage::Request(request) = &message else {
        return;
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return;
    };
    let mut before = serde_json::to_value(&call.params).unwrap();
    let object = before.as_object_mut().unwrap();
    let params_meta = object.remove("_meta").and_then(|meta| match meta {
        serde_json::Value::Object(meta) => Some(meta),
        _ => None,
    });
    let merged = match (call.extensions.get::<RequestMetaObject>(), params_meta) {
        (Some(ext), Some(mut params)) => {
            params.extend(ext.0.0.clone());
            Some(params)
        }
        (Some(ext), None) => Some(ext.0.0.clone()),
        (None, params) => params,
    };
    if let Some(meta) = merged {
        object.insert("_meta".into(), serde_json::Value::Object(meta));
    }
    let now = serde_json::to_value(&message).unwrap();
    assert_eq!(now["params"], before, "{}", String::from_utf8_lossy(bytes));
}

#[test]
fn tool_calls_write_as_before() {
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,2.5]},"_meta":{"progressToken":"t"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","requestState":"s","inputResponses":{}}}"#,
    ] {
        written_as_before(text.as_bytes());
    }
    // Both `_meta`s: the params' own one (set after parsing) is merged in.
    let mut message = ClientJsonRpcMessage::from_client_json_slice(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"progressToken":1,"k":"ext"}}}"#,
    )
    .unwrap();
    if let ClientJsonRpcMessage::Request(request) = &mut message
        && let ClientRequest::CallToolRequest(call) = &mut request.request
    {
        let mut own = serde_json::Map::new();
        own.insert("k".into(), json!("params"));
        own.insert("only".into(), json!(true));
        call.params.meta = Some(RequestMetaObject(MetaObject(own)));
    }
    let written = serde_json::to_value(&message).unwrap();
    assert_eq!(
        written["params"]["_meta"],
        json!({"progressToken": 1, "k": "ext", "only": true})
    );
}

#[test]
fn json_rpc_write_fragments() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| written_as_before(assemble(parts, FRAGMENTS).as_bytes()));
}

/// Member values the built messages draw from: what SDKs send and near
/// misses of it.
const IDS: &[&str] = &[
    "1",
    "\"a\"",
    "null",
    "1.5",
    "-0",
    "18446744073709551616",
    "{}",
];
const METHODS: &[&str] = &[
    "\"tools/call\"",
    "\"tools/list\"",
    "\"ping\"",
    "\"initialize\"",
    "\"notifications/progress\"",
    "\"notifications/cancelled\"",
    "\"notifications/initialized\"",
    "\"sampling/createMessage\"",
    "\"vendor/thing\"",
    "7",
];
const PARAMS: &[&str] = &[
    r#"{"name":"echo","arguments":{"x":1}}"#,
    r#"{"name":"echo","_meta":{"progressToken":"p"},"arguments":{}}"#,
    r#"{"_meta":{"progressToken":5,"x":{"y":[1.5]}},"name":"a"}"#,
    r#"{"name":"a","arguments":[1]}"#,
    r#"{"name":7}"#,
    r#"{"name":"a","name":"b"}"#,
    r#"{"progressToken":1,"progress":0.5,"total":2}"#,
    r#"{"requestId":1,"reason":"r"}"#,
    r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#,
    r#"{"messages":[],"maxTokens":5}"#,
    r#"{"cursor":"c"}"#,
    "{}",
    "null",
    "[1]",
];
const RESULTS: &[&str] = &[
    r#"{"content":[{"type":"text","text":"a"}],"isError":false}"#,
    r#"{"content":[{"type":"text","text":"a","annotations":{"priority":1}}],"structuredContent":{"n":1}}"#,
    r#"{"content":[{"type":"image","data":"aGk=","mimeType":"image/png"}]}"#,
    r#"{"content":[{"text":"a","type":"text"}]}"#,
    r#"{"content":[{"type":"text"}]}"#,
    r#"{"content":[],"isError":"no"}"#,
    r#"{"content":[],"tools":[]}"#,
    r#"{"tools":[{"name":"a","inputSchema":{"type":"object"}}]}"#,
    r#"{"resultType":"input_required","inputRequests":{}}"#,
    r#"{"structuredContent":{"n":1}}"#,
    r#"{"contents":[{"uri":"file:///a","text":"t"}]}"#,
    "{}",
    "[]",
];
const ERRORS: &[&str] = &[
    r#"{"code":-32601,"message":"no"}"#,
    r#"{"code":-32000,"message":"boom","data":{"a":1}}"#,
    r#"{"code":"x","message":"m"}"#,
    "{}",
];

/// A message built from `bytes`: mostly well formed (a random text is
/// almost never a JSON-RPC message), in any member order, with the shapes'
/// near misses (missing `jsonrpc`, a request without an id, a result and
/// an error together, a stray member).
fn built_message(bytes: &[u8]) -> String {
    let mut next = draws(bytes);
    let mut draw = |of: usize| next() % of;
    let mut members = Vec::new();
    if draw(8) != 0 {
        members.push(r#""jsonrpc":"2.0""#.to_owned());
    }
    if draw(4) != 0 {
        members.push(format!(r#""id":{}"#, IDS[draw(IDS.len())]));
    }
    match draw(4) {
        0 | 1 => {
            members.push(format!(r#""method":{}"#, METHODS[draw(METHODS.len())]));
            if draw(4) != 0 {
                members.push(format!(r#""params":{}"#, PARAMS[draw(PARAMS.len())]));
            }
        }
        2 => members.push(format!(r#""result":{}"#, RESULTS[draw(RESULTS.len())])),
        _ => members.push(format!(r#""error":{}"#, ERRORS[draw(ERRORS.len())])),
    }
    match draw(16) {
        1 => members.push(format!(r#""result":{}"#, RESULTS[draw(RESULTS.len())])),
        2 => members.push(r#""x":[1,{"y":null}]"#.to_owned()),
        3 => members.push(format!(r#""id":{}"#, IDS[draw(IDS.len())])),
        _ => {}
    }
    // Member order as drawn: a rotation and maybe a swap.
    let turn = draw(members.len().max(1));
    members.rotate_left(turn);
    if members.len() > 1 && draw(2) == 1 {
        members.swap(0, 1);
    }
    format!("{{{}}}", members.join(","))
}

#[test]
fn json_rpc_parse_built_messages() {
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|bytes| both(built_message(bytes).as_bytes()));
}
