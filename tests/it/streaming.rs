//! Streaming (SPEC §6): a model that fails before its first content event never reaches
//! the client; after content, failures end the stream cleanly with `[DONE]`.

use crate::support;

use std::time::{Duration, Instant};

use crate::support::mock::{chunk_event, error_event, role_event, DONE_EVENT, PROCESSING_COMMENT};
use crate::support::scenario::*;
use crate::support::{Behaviour, ChunkRead, GatewayBuilder, MockUpstream, SseEnd, SseStep};
use serde_json::json;

fn stream_body() -> serde_json::Value {
    chat_body_with(json!({"stream": true}))
}

fn send(s: &str) -> SseStep {
    SseStep::Send(s.to_string())
}

/// The exact bytes a scripted stream writes.
fn stream_bytes(steps: &[SseStep]) -> String {
    steps
        .iter()
        .filter_map(|s| match s {
            SseStep::Send(text) => Some(text.as_str()),
            SseStep::Sleep(_) => None,
        })
        .collect()
}

async fn open(gateway: &support::Gateway) -> support::StreamResponse {
    let body = stream_body().to_string();
    support::open_stream(
        gateway.addr,
        "POST",
        CHAT,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn first_event_error_falls_back_and_client_sees_only_rank2_bytes() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_error_first(
            429,
            "Rate limit exceeded upstream",
        )],
    );
    let rank2_steps = vec![
        send(PROCESSING_COMMENT),
        send(&role_event(RANK2)),
        send(&chunk_event(RANK2, "one", None)),
        send(&chunk_event(RANK2, "two", Some("stop"))),
        send(DONE_EVENT),
    ];
    mock.script(
        RANK2,
        vec![Behaviour::sse(rank2_steps.clone(), SseEnd::Clean)],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header(MODEL_HEADER), Some(RANK2));
    assert_eq!(stream.header(ATTEMPTS_HEADER), Some("2"));
    let body = stream.read_to_end(Duration::from_secs(10)).await;
    assert_eq!(String::from_utf8(body).unwrap(), stream_bytes(&rank2_steps));
}

#[tokio::test]
async fn keepalive_comments_then_error_falls_back() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse(
            vec![
                send(PROCESSING_COMMENT),
                send(PROCESSING_COMMENT),
                send(&error_event(502, "provider down")),
            ],
            SseEnd::Clean,
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    assert_eq!(stream.header(MODEL_HEADER), Some(RANK2));
    let body = String::from_utf8(stream.read_to_end(Duration::from_secs(10)).await).unwrap();
    assert!(!body.contains("provider down"), "{body}");
    assert!(
        !body.contains("OPENROUTER PROCESSING"),
        "rank 1's held comments are discarded: {body}"
    );
    assert!(body.ends_with(DONE_EVENT));
}

#[tokio::test]
async fn stall_before_content_falls_back_within_the_timeout() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse(vec![send(PROCESSING_COMMENT)], SseEnd::Hang)],
    );
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.timeout_secs", 1)
        .start()
        .await;

    let started = Instant::now();
    let mut stream = open(&gateway).await;
    assert_eq!(stream.header(MODEL_HEADER), Some(RANK2));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "fallback took {:?}",
        started.elapsed()
    );
    stream.read_to_end(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn error_after_content_is_forwarded_then_done_and_the_model_cools() {
    let mock = MockUpstream::start().await;
    let error = error_event(500, "model crashed");
    mock.script(
        RANK1,
        vec![Behaviour::sse(
            vec![
                send(&chunk_event(RANK1, "a", None)),
                send(&chunk_event(RANK1, "b", None)),
                send(&chunk_event(RANK1, "c", None)),
                send(&error),
            ],
            SseEnd::Hang,
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    assert_eq!(stream.header(MODEL_HEADER), Some(RANK1));
    let body = String::from_utf8(stream.read_to_end(Duration::from_secs(10)).await).unwrap();
    let expected = format!(
        "{}{}{}{}{}",
        chunk_event(RANK1, "a", None),
        chunk_event(RANK1, "b", None),
        chunk_event(RANK1, "c", None),
        error,
        DONE_EVENT
    );
    assert_eq!(body, expected);

    // The model that failed mid-stream is cooling: the next request goes to rank 2.
    let next = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&next, RANK2, 1);
    assert_eq!(mock.count_for(RANK1), 1);
    let logged = support::wait_until(SETTLE, || {
        gateway
            .log_events("request_done")
            .iter()
            .any(|l| l["mid_stream_error"] == "upstream_error_event")
    })
    .await;
    assert!(logged, "{:?}", gateway.log_events("request_done"));
}

#[tokio::test]
async fn stall_after_content_ends_within_the_idle_timeout() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse(
            vec![send(&chunk_event(RANK1, "a", None))],
            SseEnd::Hang,
        )],
    );
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.idle_timeout_secs", 1)
        .start()
        .await;

    let started = Instant::now();
    let mut stream = open(&gateway).await;
    let body = String::from_utf8(stream.read_to_end(Duration::from_secs(10)).await).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(body.starts_with(&chunk_event(RANK1, "a", None)), "{body}");
    assert!(body.contains(r#""code":"upstream_idle_timeout""#), "{body}");
    assert!(body.ends_with(DONE_EVENT), "{body}");
}

#[tokio::test]
async fn stream_without_done_gets_one_appended() {
    let mock = MockUpstream::start().await;
    let steps = vec![
        send(&chunk_event(RANK1, "a", None)),
        send(&chunk_event(RANK1, "b", Some("stop"))),
    ];
    mock.script(RANK1, vec![Behaviour::sse(steps.clone(), SseEnd::Clean)]);
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    let body = String::from_utf8(stream.read_to_end(Duration::from_secs(10)).await).unwrap();
    assert_eq!(body, format!("{}{}", stream_bytes(&steps), DONE_EVENT));
}

#[tokio::test]
async fn client_disconnect_closes_the_upstream_connection_at_once() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_slow(RANK1, 50, Duration::from_millis(200))],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    assert!(matches!(
        stream.next_chunk(Duration::from_secs(5)).await,
        ChunkRead::Data(..)
    ));
    let conn_id = mock.requests_for(RANK1)[0].conn_id;
    let left_at = Instant::now();
    stream.close();
    let closed = support::wait_until(Duration::from_secs(1), || {
        mock.connection_closed_at(conn_id).is_some()
    })
    .await;
    assert!(
        closed,
        "upstream connection still open {:?} after the client left",
        left_at.elapsed()
    );
    assert_eq!(mock.connection_closed_by_peer(conn_id), Some(true));
}

#[tokio::test]
async fn slow_stream_reaches_the_client_incrementally() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_slow(RANK1, 30, Duration::from_millis(50))],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    let collected = stream.collect(Duration::from_secs(10)).await;
    assert_eq!(collected.end, support::StreamEnd::Clean);
    let first = collected.chunks.first().expect("a first chunk").0;
    let last = collected.chunks.last().expect("a last chunk").0;
    assert!(
        collected.chunks.len() >= 20,
        "only {} chunks: stream was buffered",
        collected.chunks.len()
    );
    assert!(
        last.duration_since(first) >= Duration::from_millis(1000),
        "all chunks arrived within {:?}",
        last.duration_since(first)
    );
    assert!(collected.text().ends_with(DONE_EVENT));
}

#[tokio::test]
async fn error_and_done_in_one_chunk_give_exactly_one_done() {
    let mock = MockUpstream::start().await;
    let tail = format!("{}{}", error_event(500, "model crashed"), DONE_EVENT);
    let steps = vec![send(&chunk_event(RANK1, "a", None)), send(&tail)];
    mock.script(RANK1, vec![Behaviour::sse(steps.clone(), SseEnd::Clean)]);
    let gateway = GatewayBuilder::new(&mock).start().await;

    let mut stream = open(&gateway).await;
    let body = String::from_utf8(stream.read_to_end(Duration::from_secs(10)).await).unwrap();
    assert_eq!(body, stream_bytes(&steps));
    assert_eq!(body.matches("[DONE]").count(), 1);
}
