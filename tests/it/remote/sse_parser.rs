//! The vendored rmcp's SSE parser (`vendor/rmcp/.../sse_parser.rs`, which
//! moves a large data line into its event instead of copying it) against
//! the crate it replaces, `sse_stream` 0.2.6: the same events and errors for
//! every way the body can be cut into chunks.
use bytes::Bytes;
use futures::StreamExt;
use rmcp::transport::common::client_side_sse::parse_sse;
use sse_stream::{Sse, SseStream};

/// The parser's threshold for moving a line instead of copying it.
const KEEP_LINE_BUFFER: usize = 64 * 1024;

fn body(chunks: &[&[u8]]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<_> = chunks
        .iter()
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    futures::stream::iter(chunks)
}

async fn ours(chunks: &[&[u8]]) -> Vec<Result<Sse, String>> {
    parse_sse(body(chunks))
        .map(|event| event.map_err(|err| err.to_string()))
        .collect()
        .await
}

async fn theirs(chunks: &[&[u8]]) -> Vec<Result<Sse, String>> {
    SseStream::from_bytes_stream(body(chunks))
        .map(|event| event.map_err(|err| err.to_string()))
        .collect()
        .await
}

#[tokio::test]
async fn parses_fields_line_endings_and_a_bom() {
    let got = ours(&[
        b"\xEF\xBB\xBFevent: e\r\nid: 1\rretry: 5\r",
        b"\ndata: a\n: comment\ndata:b\n\n",
    ])
    .await;
    let want = Sse::default().event("e").id("1").retry(5).data("a\nb");
    assert_eq!(got, vec![Ok(want)]);
}

#[tokio::test]
async fn a_data_line_over_many_chunks_is_whole() {
    let big = vec![b'x'; 3 * KEEP_LINE_BUFFER];
    let got = ours(&[b"id: 7\ndata: ", &big, b"y", b"\ndata: z\n\n"]).await;
    let mut data = "x".repeat(3 * KEEP_LINE_BUFFER);
    data.push_str("y\nz");
    assert_eq!(got, vec![Ok(Sse::default().id("7").data(data))]);
}

#[tokio::test]
async fn errors_are_those_of_sse_stream() {
    let got = ours(&[b"bogus\n", b"event: a\nevent: b\n", b"data: \xff\xfe\n\n"]).await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(Result::is_err), "{got:?}");
}

/// Both parsers, fed the same chunks, give the same events and errors.
async fn same(chunks: &[&[u8]], how: &str) {
    assert_eq!(
        ours(chunks).await,
        theirs(chunks).await,
        "{how}: {chunks:?}"
    );
}

/// Every body below, whole, cut at each byte, cut in two places (empty
/// chunks included) and fed a byte at a time, parses as `sse_stream` parses
/// the same chunks.
#[tokio::test]
async fn every_chunking_parses_as_sse_stream_does() {
    let bodies: [&[u8]; 9] = [
        b"\xEF\xBB\xBFevent: e\r\nid: 1\rretry: 5\r\ndata: a\n: comment\ndata:b\n\n",
        b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\nid: 2\ndata: x\r\n\r\n",
        b"data\ndata:\n\ndata:  two spaces\n\n",
        b"id: a\0b\ndata: null id ignored\n\n",
        b"retry: nope\n\ndata: after\n\n",
        b"event: a\nevent: b\n\n",
        b"bogus\ndata: ok\n\n",
        b"data: \xff\xfe\n\ndata: ok\n\n",
        b"data: no blank line at the end",
    ];
    for body in bodies {
        same(&[body], "whole").await;
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            same(&[a, b], "cut once").await;
            for second in cut..=body.len() {
                let (b1, b2) = b.split_at(second - cut);
                same(&[a, b1, b2], "cut twice").await;
            }
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        same(&bytes, "a byte at a time").await;
    }
}

/// A line longer than the parser keeps (moved, not copied) still parses
/// as `sse_stream` parses it, however it is cut.
#[tokio::test]
async fn a_long_line_cut_anywhere_parses_as_sse_stream_does() {
    let mut body = b"id: 9\ndata: ".to_vec();
    body.extend(std::iter::repeat_n(b'q', 2 * KEEP_LINE_BUFFER));
    body.extend_from_slice(b"\r\ndata: tail\n\n");
    assert_eq!(theirs(&[&body]).await.len(), 1);
    for size in [1000, KEEP_LINE_BUFFER - 1, KEEP_LINE_BUFFER + 7] {
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        same(&chunks, "long line").await;
    }
}
