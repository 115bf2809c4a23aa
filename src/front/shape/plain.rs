//! The shape of a plain body, read by hand in one pass over its bytes.
//!
//! serde's visitor path ([`super::read_by_serde`]) spends ~5k instructions
//! on a small `tools/call` (a visitor call, a budget check and often an
//! allocation per value, the method and id copied into new strings); this
//! pass does the same counting in a few instructions per byte. It takes
//! only what it can decide exactly as that path would: small, well-formed
//! UTF-8 JSON within the limits, with no `\u` escape, no number exponent,
//! no repeated `method`, `id` or `params`, and ids that are a string
//! without escapes or an integer of up to 18 digits. Anything else, and every refusal, is left to the serde path,
//! which decides and words the error. The fuzz target `front_door` holds
//! the two to the same outcome.
use super::{Kind, MAX_METHOD_LEN, Shape};

/// Larger bodies take the serde path: its string scan is faster than this
/// byte loop once strings are long.
const PLAIN_MAX_BYTES: usize = 8 * 1024;

/// Deeper bodies take the serde path, which decides what serde_json's own
/// recursion limit (128) makes of them.
const PLAIN_MAX_DEPTH: usize = 100;

/// The longest number taken here; longer ones go to the serde path, which
/// knows which of them are out of range.
const PLAIN_MAX_NUMBER: usize = 64;

/// The shape of `body` when it is plain and within the limits, else `None`.
pub(super) fn read(body: &[u8], max_values: usize, max_depth: usize) -> Option<Shape> {
    if body.len() > PLAIN_MAX_BYTES {
        return None;
    }
    // serde_json checks every string it reads as UTF-8; checking the whole
    // body once covers them all.
    std::str::from_utf8(body).ok()?;
    let mut scan = Scan {
        bytes: body,
        at: 0,
        values: 0,
        max_values,
        max_depth: max_depth.min(PLAIN_MAX_DEPTH),
    };
    let shape = scan.top()?;
    scan.space();
    (scan.at == body.len()).then_some(shape)
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    values: usize,
    max_values: usize,
    max_depth: usize,
}

impl<'a> Scan<'a> {
    /// The top-level object, as the serde path's `TopSeed` reads it.
    fn top(&mut self) -> Option<Shape> {
        self.space();
        self.expect(b'{')?;
        self.count()?;
        self.enter(1)?;
        let mut shape = Shape::default();
        let (mut method, mut id, mut params) = (false, false, false);
        self.members(|scan, key| {
            match key {
                b"method" if !method => {
                    method = true;
                    scan.count()?;
                    match scan.peek()? {
                        b'"' => {
                            let name = scan.plain_string()?;
                            if name.len() > MAX_METHOD_LEN {
                                shape.method_too_long = true;
                            } else {
                                shape.method = Some(name.to_owned());
                            }
                        }
                        b'n' => scan.literal(b"null")?,
                        // Not a string: the serde path's type error.
                        _ => return None,
                    }
                }
                b"id" if !id => {
                    id = true;
                    shape.id = scan.id()?;
                }
                b"params" if !params => {
                    params = true;
                    let mut arguments = None;
                    let kind = scan.value_seeing(1, |key, kind| {
                        if key == b"arguments" {
                            arguments = Some(kind);
                        }
                    })?;
                    shape.params = Some(kind);
                    shape.arguments = arguments;
                }
                // A repeated key the shape reads: the serde path decides.
                b"method" | b"id" | b"params" => return None,
                _ => {
                    scan.value(1)?;
                }
            }
            Some(())
        })?;
        shape.values = self.values;
        Some(shape)
    }

    /// An object's members after its `{`, through its `}`: `member` reads
    /// each value, given the member's key as written.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.items(b'}', |scan| {
            let key = scan.string()?;
            scan.space();
            scan.expect(b':')?;
            scan.space();
            member(scan, key)
        })
    }

    /// The items of an object or array after its opening, through `close`,
    /// each read by `item`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.space();
        if self.eat(close) {
            return Some(());
        }
        loop {
            self.space();
            item(self)?;
            self.space();
            if !self.eat(b',') {
                return self.expect(close);
            }
        }
    }

    /// `id`: its text when a plain string or an integer that prints as
    /// written, `None` when it is another value (counted all the same).
    fn id(&mut self) -> Option<Option<String>> {
        match self.peek()? {
            b'"' => {
                self.count()?;
                let id = self.plain_string()?;
                Some(Some(format!("\"{id}\"")))
            }
            b'-' | b'0'..=b'9' => {
                self.count()?;
                let number = self.number()?;
                // An integer of up to 18 digits fits i64 and u64 and prints
                // as written; `-0` is left out (serde reads it as a float).
                let digits = number.strip_prefix('-').unwrap_or(number);
                let integer = digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit());
                (integer && number != "-0").then(|| Some(number.to_owned()))
            }
            _ => self.value(1).map(|_| None),
        }
    }

    /// Any value at `depth` (the top object's members are at 1), counted
    /// with everything in it; its kind.
    fn value(&mut self, depth: usize) -> Option<Kind> {
        self.value_seeing(depth, |_, _| {})
    }

    /// [`Self::value`], with `seen` given each key of an object and the kind
    /// of its value.
    fn value_seeing(&mut self, depth: usize, mut seen: impl FnMut(&[u8], Kind)) -> Option<Kind> {
        self.count()?;
        match self.peek()? {
            b'{' => {
                self.at += 1;
                self.enter(depth + 1)?;
                self.members(|scan, key| {
                    seen(key, scan.value(depth + 1)?);
                    Some(())
                })?;
                Some(Kind::Object)
            }
            b'[' => {
                self.at += 1;
                self.enter(depth + 1)?;
                self.items(b']', |scan| scan.value(depth + 1).map(drop))?;
                Some(Kind::Array)
            }
            b'"' => self.string().map(|_| Kind::String),
            b't' => self.literal(b"true").map(|()| Kind::Bool),
            b'f' => self.literal(b"false").map(|()| Kind::Bool),
            b'n' => self.literal(b"null").map(|()| Kind::Null),
            _ => self.number().map(|_| Kind::Number),
        }
    }

    /// A string, as written between its quotes; `None` for a `\u` escape
    /// (left to serde_json's surrogate rules), a bad escape or a control
    /// character.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        let mut at = start;
        loop {
            match *self.bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(&self.bytes[start..at]);
                }
                b'\\' => {
                    match *self.bytes.get(at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        _ => return None,
                    }
                    at += 2;
                }
                0..=0x1f => return None,
                _ => at += 1,
            }
        }
    }

    /// A string without escapes: its text is its value.
    fn plain_string(&mut self) -> Option<&'a str> {
        let text = self.string()?;
        if text.contains(&b'\\') {
            return None;
        }
        // The whole body is UTF-8 and quotes are ASCII: this never fails.
        std::str::from_utf8(text).ok()
    }

    /// A JSON number without exponent, as written.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            let first = self.at;
            self.digits();
            if self.at == first {
                return None;
            }
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E'))
            || self.at - start > PLAIN_MAX_NUMBER
        {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..self.at]).ok()
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// One more value; past the budget the serde path words the refusal.
    fn count(&mut self) -> Option<()> {
        self.values += 1;
        (self.values <= self.max_values).then_some(())
    }

    /// A container whose members are at `depth`; too deep for the serde path.
    fn enter(&self, depth: usize) -> Option<()> {
        (depth <= self.max_depth).then_some(())
    }

    fn space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_by_serde;
    use super::*;

    const VALUES: usize = 1_000;
    const DEPTH: usize = 16;

    fn both(body: &str) -> (Option<Shape>, Result<Shape, super::super::ShapeError>) {
        (
            read(body.as_bytes(), VALUES, DEPTH),
            read_by_serde(body.as_bytes(), VALUES, DEPTH),
        )
    }

    #[test]
    fn the_usual_requests_are_read_here_as_serde_reads_them() {
        for body in [
            // rmcp and the TypeScript SDK: compact.
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo__echo","arguments":{"message":"hi","n":-1.5,"ok":true,"tags":["a","b"],"none":null}}}"#,
            // The Python SDK: spaces, the id last, a progress token.
            "{\"method\": \"tools/call\", \"params\": {\"name\": \"echo\", \"arguments\": {\"text\": \"a \\\"quoted\\\" line\\n\"}, \"_meta\": {\"progressToken\": 7}}, \"jsonrpc\": \"2.0\", \"id\": 12}",
            r#"{"jsonrpc":"2.0","id":"req-1","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{}},"clientInfo":{"name":"c","version":"1.0.0"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":-3,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":null,"params":[1,[2,{}]]}"#,
            "\t{ }\r\n",
            &format!(r#"{{"method":"{}"}}"#, "m".repeat(MAX_METHOD_LEN + 1)),
            r#"{"id":-123456789012345678,"method":"ping"}"#,
        ] {
            let (plain, serde) = both(body);
            assert_eq!(plain.as_ref(), Some(&serde.unwrap()), "{body}");
        }
    }

    #[test]
    fn what_serde_must_decide_is_left_to_it() {
        let too_many = format!(r#"{{"params":[{}1]}}"#, "1,".repeat(VALUES));
        let too_deep = format!(r#"{{"params":{}{}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH));
        for body in [
            r#"{"method":"tools\u002fcall"}"#,
            r#"{"id":"a\"b","method":"ping"}"#,
            r#"{"id":1.0,"method":"ping"}"#,
            r#"{"id":-0,"method":"ping"}"#,
            r#"{"id":12345678901234567890,"method":"ping"}"#,
            r#"{"id":1234567890123456789,"method":"ping"}"#,
            r#"{"method":"a","method":"b"}"#,
            r#"{"params":{},"params":1}"#,
            r#"{"method":1}"#,
            r#"{"params":{"arguments":1e999}}"#,
            r#"{"params":{"arguments":01}}"#,
            r#"{"params":{"arguments":"\ud800"}}"#,
            "{\"params\":\"tab\tinside\"}",
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"[1]"#,
            "",
            too_many.as_str(),
            too_deep.as_str(),
        ] {
            let (plain, serde) = both(body);
            assert_eq!(plain, None, "{body} gave {serde:?}");
            assert_eq!(super::super::read(body.as_bytes(), VALUES, DEPTH), serde);
        }
        assert_eq!(read(b"{\"a\":\"\xff\"}", VALUES, DEPTH), None);
        let big = format!(
            r#"{{"params":{{"arguments":"{}"}}}}"#,
            "x".repeat(PLAIN_MAX_BYTES)
        );
        assert_eq!(read(big.as_bytes(), VALUES, DEPTH), None);
        // Deeper than this pass goes, though within the configured limit.
        let deep = format!(
            r#"{{"params":{}{}}}"#,
            "[".repeat(PLAIN_MAX_DEPTH),
            "]".repeat(PLAIN_MAX_DEPTH)
        );
        assert_eq!(read(deep.as_bytes(), VALUES, 200), None);
        assert_eq!(
            super::super::read(deep.as_bytes(), VALUES, 200),
            read_by_serde(deep.as_bytes(), VALUES, 200)
        );
    }

    #[test]
    fn the_limits_bind_here_exactly_where_they_bind_for_serde() {
        // 1 (object) + 1 (method) + 1 (params) + 3 (items) = 6 values;
        // the array's items sit at depth 2, inside 2 containers.
        let body = br#"{"method":"m","params":[1,2,3]}"#;
        for (values, depth) in [(6, 2), (5, 2), (6, 1), (0, 0), (1, 1)] {
            let serde = read_by_serde(body, values, depth);
            match read(body, values, depth) {
                Some(plain) => assert_eq!(Ok(plain), serde, "{values} {depth}"),
                None => assert!(serde.is_err(), "{values} {depth}: {serde:?}"),
            }
        }
        assert_eq!(read(body, 6, 2).map(|shape| shape.values), Some(6));
        assert_eq!(read(body, 5, 2), None);
        assert_eq!(read(body, 6, 1), None);
    }
}
