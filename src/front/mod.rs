//! The HTTP front door below the MCP and API handlers: the accept loop and
//! its timeouts ([`listener`]), the bounded reading of request bodies
//! ([`screen`], [`shape`]), the `Host`/`Origin` check ([`origin`]) and the
//! limits they enforce ([`limits`]); when each request arrived ([`arrival`]).
pub mod arrival;
pub mod inflight;
pub mod limits;
pub mod listener;
pub mod origin;
mod repoll;
pub mod screen;
pub mod shape;

use std::borrow::Cow;

/// At most `max` bytes of client-supplied `text`, cut on a character
/// boundary and marked when cut: what of the input may reach a log line.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[{} bytes]", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(super::clip("short", 10), "short");
        assert_eq!(super::clip("ééé", 3), "é…[6 bytes]");
    }
}
