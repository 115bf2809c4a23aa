//! Protobuf encoding of OTLP spans, field by field as they are recorded:
//! the trace layer's spans and [`super::Step`]s both write their
//! attributes and events into a buffer when they get them, and finish the
//! `Span` message when they end. The gateway's exporter wraps batches of
//! these in an `ExportTraceServiceRequest` (the helpers here are public for
//! it); its tests decode the bytes with `opentelemetry-proto` and compare
//! them with that crate's own conversion.
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{SpanIds, SpanKind as Kind};

/// Appends `span` (a `Span` message's fields) to `batch` as one
/// `ScopeSpans.spans` entry.
pub fn push_span(batch: &mut Vec<u8>, span: &[u8]) {
    header(batch, 2, span.len());
    batch.extend_from_slice(span);
}

/// Where an attribute goes: a span's (`Span.attributes`) or an event's
/// (`Span.Event.attributes`).
#[derive(Debug, Clone, Copy)]
pub enum AttributesOf {
    /// `Span.attributes` = 9.
    Span = 9,
    /// `Span.Event.attributes` = 3.
    Event = 3,
}

/// A text attribute.
pub fn str_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: &str) {
    let (key_len, value_len) = (key.len(), value.len());
    // Nearly every attribute is short: then each length is one byte, and
    // the fields around the key and the value are two slices of known bytes.
    if key_len + value_len < 120 && key_len > 0 {
        let any_value = 2 + value_len;
        let key_value = 2 + key_len + 2 + any_value;
        buf.reserve(2 + key_value);
        buf.extend_from_slice(&[
            ((to as u8) << 3) | LENGTH_DELIMITED,
            key_value as u8,
            (1 << 3) | LENGTH_DELIMITED,
            key_len as u8,
        ]);
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(&[
            (2 << 3) | LENGTH_DELIMITED,
            any_value as u8,
            (1 << 3) | LENGTH_DELIMITED,
            value_len as u8,
        ]);
        buf.extend_from_slice(value.as_bytes());
        return;
    }
    key_value_sized(buf, to, key, delimited_len(value.len()), |buf| {
        string_always(buf, 1, value);
    });
}

/// A text attribute formatted straight into the buffer (`?` and `%`
/// fields), without a `String` in between.
pub fn debug_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: &dyn fmt::Debug) {
    message(buf, to as u32, |buf| {
        string(buf, 1, key);
        message(buf, 2, |buf| message(buf, 1, |buf| write_debug(buf, value)));
    });
}

/// An integer attribute.
pub fn i64_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: i64) {
    let len = 1 + varint_len(value as u64);
    key_value_sized(buf, to, key, len, |buf| i64_value(buf, value));
}

/// A float attribute.
pub fn f64_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: f64) {
    key_value_sized(buf, to, key, 9, |buf| f64_value(buf, value));
}

/// A flag attribute.
pub fn bool_attribute(buf: &mut Vec<u8>, to: AttributesOf, key: &str, value: bool) {
    key_value_sized(buf, to, key, 2, |buf| bool_value(buf, value));
}

/// A `KeyValue` as field `to`, its `AnyValue` of `value_len` bytes written by
/// `value`. The lengths are known before a byte is written: no length to
/// fill in afterwards, one reservation.
fn key_value_sized(
    buf: &mut Vec<u8>,
    to: AttributesOf,
    key: &str,
    value_len: usize,
    value: impl FnOnce(&mut Vec<u8>),
) {
    let key_len = if key.is_empty() {
        0
    } else {
        delimited_len(key.len())
    };
    let len = key_len + delimited_len(value_len);
    buf.reserve(delimited_len(len));
    header(buf, to as u32, len);
    string(buf, 1, key);
    header(buf, 2, value_len);
    value(buf);
}

/// A `Span.Event` (field 11) at `time`; `fields` writes its name and
/// attributes (see [`event_name`]).
pub fn event(buf: &mut Vec<u8>, time: SystemTime, fields: impl FnOnce(&mut Vec<u8>)) {
    message(buf, 11, |buf| {
        fixed64(buf, 1, nanos(time));
        fields(buf);
    });
}

/// An event's name (`Span.Event.name` = 2), inside [`event`].
pub fn event_name(buf: &mut Vec<u8>, name: &dyn fmt::Debug) {
    message(buf, 2, |buf| write_debug(buf, name));
}

/// What a span knows only when it ends.
pub struct SpanEnd<'a> {
    /// Its ids and parent.
    pub ids: &'a SpanIds,
    /// Its name.
    pub name: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its error, if it failed (the text may be empty).
    pub error: Option<&'a str>,
}

/// Appends the rest of a `Span` message to `buf`, which holds its
/// attributes and events: field order is free in protobuf, so they could
/// be written as they were recorded.
pub fn finish_span(buf: &mut Vec<u8>, span: &SpanEnd<'_>) {
    let ids = span.ids;
    let state = ids.state.as_deref().unwrap_or_default();
    let error = span.error.map_or(0, str::len);
    // At most: 64 fixed bytes, name and state with a tag and a 2-byte
    // length each, and the status (an error adds 8 bytes of framing).
    buf.reserve(
        64 + 3 + span.name.len() + 3 + state.len() + 2 + span.error.map_or(0, |_| 8 + error),
    );
    // The fixed-size fields go out as one slice: trace id (1), span id (2),
    // parent (4), kind (6), start (7), end (8) and flags (16), each with
    // its tag. Kind and flags are never zero, the ids never empty.
    let mut fixed = [0u8; 64];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        fixed[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[(1 << 3) | LENGTH_DELIMITED, 16]);
    put(&ids.trace_id);
    put(&[(2 << 3) | LENGTH_DELIMITED, 8]);
    put(&ids.span_id);
    if let Some(parent) = &ids.parent_id {
        put(&[(4 << 3) | LENGTH_DELIMITED, 8]);
        put(parent);
    }
    put(&[6 << 3 | VARINT, kind(span.kind)]);
    for (field, time) in [(7u8, span.start), (8, span.end)] {
        let nanos = nanos(time);
        if nanos != 0 {
            put(&[(field << 3) | FIXED64]);
            put(&nanos.to_le_bytes());
        }
    }
    // Field 16 (fixed32, wire type 5): its tag, 16 << 3 | 5, is a two-byte varint.
    put(&[0x85, 0x01]);
    put(&flags(ids.parent_remote, u8::from(ids.sampled)).to_le_bytes());
    buf.extend_from_slice(&fixed[..at]);
    string(buf, 3, state);
    string(buf, 5, span.name);
    // Status: message = 2, code = 3 (the generated code always sends it).
    match span.error {
        Some(description) => message(buf, 15, |buf| {
            string(buf, 2, description);
            uint(buf, 3, 2);
        }),
        None => buf.extend_from_slice(&[(15 << 3) | LENGTH_DELIMITED, 0]),
    }
}

/// `value`'s `Debug` text (a `%` field's `Display`) written into `buf`.
fn write_debug(buf: &mut Vec<u8>, value: &dyn fmt::Debug) {
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Bytes<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.extend_from_slice(text.as_bytes());
            Ok(())
        }
    }
    let _ = write!(Bytes(buf), "{value:?}");
}

/// `SpanFlags`: the W3C trace flags, plus "whether the parent is remote is
/// known" (0x100) and "it is" (0x200).
fn flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn kind(kind: Kind) -> u8 {
    match kind {
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
    }
}

fn nanos(time: SystemTime) -> u64 {
    // Not `as_nanos`: its u128 arithmetic costs more than the rest of a span's ids.
    time.duration_since(UNIX_EPOCH)
        .map(|d| {
            d.as_secs()
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(d.subsec_nanos()))
        })
        .unwrap_or(0)
}

/// An `AnyValue`'s bool (field 2).
pub fn bool_value(buf: &mut Vec<u8>, flag: bool) {
    tag(buf, 2, VARINT);
    varint(buf, u64::from(flag));
}

/// An `AnyValue`'s int (field 3).
pub fn i64_value(buf: &mut Vec<u8>, number: i64) {
    tag(buf, 3, VARINT);
    // int64 as a varint: two's complement, 10 bytes when negative.
    varint(buf, number as u64);
}

/// An `AnyValue`'s double (field 4).
pub fn f64_value(buf: &mut Vec<u8>, number: f64) {
    tag(buf, 4, FIXED64);
    buf.extend_from_slice(&number.to_le_bytes());
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

#[inline]
fn varint(buf: &mut Vec<u8>, value: u64) {
    // Most are lengths and enums under 128: one byte.
    if value < 0x80 {
        buf.push(value as u8);
        return;
    }
    let (bytes, len) = varint_bytes(value);
    buf.extend_from_slice(&bytes[..len]);
}

/// `value` as a protobuf varint: 7 bits a byte, low first, at most 10 bytes.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while value >= 0x80 {
        bytes[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    bytes[len] = value as u8;
    (bytes, len + 1)
}

#[inline]
fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    // Every field number but `Span.flags` (16) fits a one-byte tag.
    if field < 16 {
        buf.push(((field as u8) << 3) | wire);
    } else {
        varint(buf, (u64::from(field) << 3) | u64::from(wire));
    }
}

/// A proto3 scalar field: left out when it holds the default (zero).
fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, VARINT);
        varint(buf, value);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        string_bytes(buf, field, value);
    }
}

/// A string field, left out when empty (proto3).
pub fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    bytes(buf, field, value.as_bytes());
}

/// A string field sent even when empty (a oneof member: its presence is
/// what says which value it is).
pub fn string_always(buf: &mut Vec<u8>, field: u32, value: &str) {
    string_bytes(buf, field, value.as_bytes());
}

fn string_bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    tag(buf, field, LENGTH_DELIMITED);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// A nested message, written in place after a one-byte length: most
/// (attributes, values, events) are shorter than 128 bytes, and their length
/// is then filled in; a longer one moves its bytes once to make room. No
/// sizing pass, no allocation.
pub fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(buf, field, LENGTH_DELIMITED);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    let (header, used) = varint_bytes(len as u64);
    buf[at] = header[0];
    buf.splice(at + 1..at + 1, header[1..used].iter().copied());
}

/// A length-delimited field's tag and length, its body to follow.
pub fn header(buf: &mut Vec<u8>, field: u32, len: usize) {
    tag(buf, field, LENGTH_DELIMITED);
    varint(buf, len as u64);
}

/// The bytes a length-delimited field of one-byte tag and `len` bytes takes.
pub fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The bytes `value` takes as a varint.
fn varint_len(value: u64) -> usize {
    1 + (63 - (value | 1).leading_zeros() as usize) / 7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            assert_eq!(varint_len(value), varint_bytes(value).1, "{value}");
        }
    }
}
