//! Bulwark patch: one JSON-RPC message parsed from JSON text without serde's
//! buffering.
//!
//! The derived path ([`JsonRpcMessage`]'s `Deserialize`) buffers the whole
//! message into serde's private `Content` tree, walks it once for the shape
//! check and again per flattened field, and only then builds the payload:
//! ~15k instructions of each `tools/call`'s request, and again for its
//! response from a stdio upstream (callgrind). Here the top level is read
//! once into its keys and the raw text of their values, the shape comes
//! from the keys, and each part is parsed from its own text, straight into
//! its type.
//!
//! The outcome is the derived path's: whatever this path does not take as
//! plainly well formed (a repeated key, a missing `jsonrpc`, a payload that
//! does not fit its type, not an object at all) goes to the derived path,
//! which decides, with its own error. Bulwark's fuzz target
//! `tests/fuzz/json_rpc_parse.rs` holds the two to the same outcome.
use std::borrow::Cow;

use serde::{
    Deserialize,
    de::{self, MapAccess, Visitor, value::MapDeserializer},
};
use serde_json::value::RawValue;

use super::{
    CallToolRequestMethod, CallToolRequestParams, CallToolResultFirst, ClientJsonRpcMessage,
    ClientRequest, ConstString, Extensions, JsonRpcError, JsonRpcMessage, JsonRpcMessageShape,
    JsonRpcNotification, JsonRpcRequest, JsonRpcResponse, JsonRpcVersion2_0, Request, RequestId,
    ServerJsonRpcMessage, ServerRequest, ServerResult,
};

/// Larger messages take the derived path: reading the top level first is a
/// second pass over the text, which costs more than the buffer saves once the
/// payload dominates (`message_parse` bench: a 1 MB result, 219 µs derived
/// against 336 µs here).
const UNBUFFERED_MAX: usize = 8 * 1024;

impl<'de, Req, Resp, Noti> JsonRpcMessage<Req, Resp, Noti>
where
    Req: Deserialize<'de>,
    Resp: Deserialize<'de>,
    Noti: Deserialize<'de>,
{
    /// Parses one message from JSON text: as `serde_json::from_slice` would,
    /// without buffering the message first.
    pub fn from_json_slice(bytes: &'de [u8]) -> Result<Self, serde_json::Error> {
        Self::parse_with(
            bytes,
            |entries| Req::deserialize(rest(entries)).ok(),
            derived,
        )
    }

    /// The unbuffered parse, a request's payload made by `request` and a
    /// response's result by `result`, where it applies; else the derived one.
    fn parse_with(
        bytes: &'de [u8],
        request: impl FnOnce(Vec<Entry<'de>>) -> Option<Req>,
        result: impl FnOnce(&'de RawValue) -> Option<Resp>,
    ) -> Result<Self, serde_json::Error> {
        let unbuffered = (bytes.len() <= UNBUFFERED_MAX)
            .then(|| Self::parse_unbuffered(bytes, request, result))
            .flatten();
        match unbuffered {
            Some(message) => Ok(message),
            None => serde_json::from_slice(bytes),
        }
    }

    /// The message in `bytes`, a request's payload made by `request` from
    /// its keys but `jsonrpc` and `id`, a response's result by `result` from
    /// its text; `None` leaves it to the derived path.
    fn parse_unbuffered(
        bytes: &'de [u8],
        request: impl FnOnce(Vec<Entry<'de>>) -> Option<Req>,
        result: impl FnOnce(&'de RawValue) -> Option<Resp>,
    ) -> Option<Self> {
        let Entries(mut entries) = serde_json::from_slice(bytes).ok()?;
        let mut known = Known::default();
        for (index, (key, _)) in entries.iter().enumerate() {
            let slot = match key.as_ref() {
                "jsonrpc" => &mut known.jsonrpc,
                "id" => &mut known.id,
                "method" => &mut known.method,
                "result" => &mut known.result,
                "error" => &mut known.error,
                _ => continue,
            };
            if slot.replace(index).is_some() {
                return None;
            }
        }
        let raw = |slot: Option<usize>| slot.map(|index| entries[index].1);
        let jsonrpc = JsonRpcVersion2_0::deserialize(raw(known.jsonrpc)?).ok()?;
        let id = match raw(known.id) {
            Some(id) => Some(RequestId::deserialize(id).ok()?),
            None => None,
        };
        let shape = JsonRpcMessageShape::classify_object_keys::<serde_json::Error>(
            known.method.is_some(),
            known.id.is_some(),
            known.result.is_some(),
            known.error.is_some(),
        )
        .ok()?;
        match shape {
            JsonRpcMessageShape::Request => {
                // The payload sees every key but the envelope's, as the
                // flattened field of the derived path does.
                entries.retain(|(key, _)| key != "jsonrpc" && key != "id");
                let request = request(entries)?;
                Some(Self::Request(JsonRpcRequest {
                    jsonrpc,
                    id: id?,
                    request,
                }))
            }
            JsonRpcMessageShape::Notification => {
                entries.retain(|(key, _)| key != "jsonrpc");
                let notification = Noti::deserialize(rest(entries)).ok()?;
                Some(Self::Notification(JsonRpcNotification {
                    jsonrpc,
                    notification,
                }))
            }
            // A response without an id is the derived path's error.
            JsonRpcMessageShape::Response => Some(Self::Response(JsonRpcResponse {
                jsonrpc,
                id: id?,
                result: result(raw(known.result)?)?,
            })),
            JsonRpcMessageShape::Error => Some(Self::Error(JsonRpcError {
                jsonrpc,
                id,
                error: Deserialize::deserialize(raw(known.error)?).ok()?,
            })),
        }
    }
}

impl ClientJsonRpcMessage {
    /// [`JsonRpcMessage::from_json_slice`] for a client's message, with its
    /// `tools/call` parsed from the text of its params straight into
    /// [`CallToolRequestParams`] (`ClientRequest`'s own parse goes through a
    /// `serde_json::Value` of the whole request first, ~6k instructions).
    pub fn from_client_json_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Self::parse_with(
            bytes,
            |entries| {
                tool_call(&entries).or_else(|| ClientRequest::deserialize(rest(entries)).ok())
            },
            derived,
        )
    }
}

impl ServerJsonRpcMessage {
    /// [`JsonRpcMessage::from_json_slice`] for a server's message, with a
    /// tool result parsed from its text straight into `CallToolResult`.
    /// `ServerResult` is an untagged union: its derived parse buffers the
    /// result into serde's `Content` before trying its variants (~5k
    /// instructions of each `tools/call` a client reads).
    pub fn from_server_json_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Self::parse_with(
            bytes,
            |entries| ServerRequest::deserialize(rest(entries)).ok(),
            server_result,
        )
    }
}

/// A server's result: a tool result when [`CallToolResultFirst`] takes it
/// (what the union's own order makes of it, since the union tries that
/// first), else the union's parse.
fn server_result(raw: &RawValue) -> Option<ServerResult> {
    match serde_json::from_str::<CallToolResultFirst>(raw.get()) {
        Ok(first) => Some(first.into()),
        Err(_) => derived(raw),
    }
}

/// `raw` parsed by its type's own `Deserialize`.
fn derived<'de, T: Deserialize<'de>>(raw: &'de RawValue) -> Option<T> {
    T::deserialize(raw).ok()
}

/// A `tools/call` of exactly `method` and `params`, as `ClientRequest`'s
/// parse makes it: the params' `_meta` goes to the request's extensions.
/// `None` for anything else, or a call whose params do not fit.
fn tool_call(entries: &[Entry<'_>]) -> Option<ClientRequest> {
    let [(first, first_raw), (second, second_raw)] = entries else {
        return None;
    };
    let (method, params) = match (first.as_ref(), second.as_ref()) {
        ("method", "params") => (first_raw, second_raw),
        ("params", "method") => (second_raw, first_raw),
        _ => return None,
    };
    let method = method.get().strip_prefix('"')?.strip_suffix('"')?;
    if method != CallToolRequestMethod::VALUE {
        return None;
    }
    let mut params: CallToolRequestParams = serde_json::from_str(params.get()).ok()?;
    let mut extensions = Extensions::new();
    if let Some(meta) = params.meta.take() {
        extensions.insert(meta);
    }
    Some(ClientRequest::CallToolRequest(Request {
        method: CallToolRequestMethod,
        params,
        extensions,
    }))
}

/// Where the envelope's keys sit in [`Entries`].
#[derive(Default)]
struct Known {
    jsonrpc: Option<usize>,
    id: Option<usize>,
    method: Option<usize>,
    result: Option<usize>,
    error: Option<usize>,
}

type Entry<'de> = (Cow<'de, str>, &'de RawValue);

/// The keys not in the envelope, as a map for the payload's type.
fn rest(
    entries: Vec<Entry<'_>>,
) -> MapDeserializer<'_, std::vec::IntoIter<Entry<'_>>, serde_json::Error> {
    MapDeserializer::new(entries.into_iter())
}

/// A JSON object's keys, in order, each with the raw text of its value.
struct Entries<'de>(Vec<Entry<'de>>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Key(key)) = map.next_key()? {
                    entries.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A key, borrowed from the text unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}
