//! Streamed answers (SPEC §6): SSE bytes reach the client as they arrive,
//! not buffered until the upstream stream ends.

use crate::support;

use std::time::Duration;

use crate::support::scenario::*;
use crate::support::{sse_content, sse_data, Behaviour, ChunkRead, GatewayBuilder, MockUpstream};
use serde_json::json;

#[tokio::test]
async fn a_slow_sse_stream_is_forwarded_chunk_by_chunk() {
    // Given rank 1 streams five content events 300 ms apart
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_slow(RANK1, 5, Duration::from_millis(300))],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a client asks for a stream
    let body =
        json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let mut stream = support::open_stream(
        gateway.addr,
        "POST",
        CHAT,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;

    // Then the head names the model
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header(MODEL_HEADER), Some(RANK1));
    assert_eq!(stream.header(ATTEMPTS_HEADER), Some("1"));
    assert!(
        stream
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream")),
        "content-type {:?}",
        stream.header("content-type")
    );

    // And the events arrive spread over time, not in one burst at the end
    let mut arrivals = Vec::new();
    loop {
        match stream.next_chunk(Duration::from_secs(10)).await {
            ChunkRead::Data(at, data) => arrivals.push((at, data)),
            ChunkRead::End => break,
            other => panic!("stream did not end cleanly: {other:?}"),
        }
    }
    let arrival_of = |needle: &str| {
        arrivals
            .iter()
            .find(|(_, data)| String::from_utf8_lossy(data).contains(needle))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("{needle} never arrived"))
    };
    let gap = arrival_of("tok4") - arrival_of("tok0");
    assert!(
        gap >= Duration::from_millis(600),
        "first and last events arrived only {gap:?} apart"
    );

    // And the bytes are upstream's, ending with [DONE]
    let all: Vec<u8> = arrivals.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(sse_content(&all), "tok0 tok1 tok2 tok3 tok4 ");
    assert_eq!(sse_data(&all).last().map(String::as_str), Some("[DONE]"));
    assert_eq!(mock.request_count(), 1);
}
