//! Self-test of the test support: the mock upstream and the test client
//! against each other (no gateway involved).

use crate::support;

use std::time::{Duration, Instant};

use crate::support::client::{self, ChunkRead, StreamEnd};
use crate::support::mock::{self, Behaviour, MockUpstream, SseEnd, SseStep};
use crate::support::wait_until;
use crate::support::wire::Conn;
use serde_json::json;
use tokio::net::TcpStream;

const CHAT: &str = "/api/v1/chat/completions";
const SHORT: Duration = Duration::from_secs(5);

fn chat_body(model: &str, stream: bool) -> Vec<u8> {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes()
}

async fn post_chat(mock: &MockUpstream, body: &[u8]) -> client::Response {
    let headers = [("content-type", "application/json"), ("X-Trace", "t-1")];
    client::request(mock.addr(), "POST", CHAT, &headers, body).await
}

async fn try_post_chat(
    mock: &MockUpstream,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<client::Response> {
    client::try_request(mock.addr(), "POST", CHAT, &[], body, timeout).await
}

/// Opens a raw connection and sends one chat request on it.
async fn raw_chat(mock: &MockUpstream, model: &str) -> Conn {
    let mut conn = Conn::new(TcpStream::connect(mock.addr()).await.expect("connect"));
    conn.write_all(&raw_request(model, false))
        .await
        .expect("write");
    conn
}

fn raw_request(model: &str, chunked: bool) -> Vec<u8> {
    let body = chat_body(model, false);
    let mut out = format!("POST {CHAT} HTTP/1.1\r\nHost: mock\r\n").into_bytes();
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let (first, second) = body.split_at(body.len() / 2);
        for part in [first, second, b""] {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
    }
    out
}

#[tokio::test]
async fn json_behaviour_and_recording() {
    let mock = MockUpstream::start().await;
    let scripted = Behaviour::status(201, r#"{"x":1}"#).with_header("X-Mock", "yes");
    mock.script("a/model:free", vec![scripted]);
    let body = chat_body("a/model:free", false);

    let first = post_chat(&mock, &body).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("x-mock"), Some("yes"));
    assert_eq!(first.json(), json!({"x": 1}));

    let second = post_chat(&mock, &body).await;
    assert_eq!(second.status, 200);
    let answer = second.json();
    assert_eq!(answer["model"], "a/model:free");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "hello from a/model:free"
    );

    let recorded = mock.requests_for("a/model:free");
    assert_eq!(recorded.len(), 2);
    assert_eq!(mock.count_for("a/model:free"), 2);
    assert_eq!(mock.count_for("other"), 0);
    let request = &recorded[0];
    assert_eq!(request.model.as_deref(), Some("a/model:free"));
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", CHAT)
    );
    assert_eq!(request.body, body, "body bytes are recorded unchanged");
    assert_eq!(request.header("x-trace"), Some("t-1"));
    assert!(
        request.headers.iter().any(|(name, _)| name == "x-trace"),
        "names lowercased"
    );
    assert_ne!(recorded[0].conn_id, recorded[1].conn_id);

    mock.clear_requests();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn script_queue_then_model_default_then_global_default() {
    let mock = MockUpstream::start().await;
    mock.script(
        "m",
        vec![
            Behaviour::error(503, "busy"),
            Behaviour::rate_limited(Some("7"), "{}"),
        ],
    );
    let body = chat_body("m", false);

    let busy = post_chat(&mock, &body).await;
    assert_eq!(busy.status, 503);
    assert_eq!(busy.json()["error"]["message"], "busy");
    let limited = post_chat(&mock, &body).await;
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("7"))
    );
    assert_eq!(mock.remaining_script("m"), 0);
    assert_eq!(post_chat(&mock, &body).await.status, 200, "global default");

    mock.set_default("m", Behaviour::error(404, "gone"));
    assert_eq!(post_chat(&mock, &body).await.status, 404, "model default");
    assert_eq!(
        post_chat(&mock, &body).await.status,
        404,
        "model default repeats"
    );
}

#[tokio::test]
async fn odd_requests_get_400_or_404() {
    let mock = MockUpstream::start().await;
    let no_model = post_chat(&mock, b"not json").await;
    assert_eq!(no_model.status, 400);
    let unknown = client::get(mock.addr(), "/api/v1/other", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(mock.request_count(), 2);
    assert_eq!(mock.requests()[0].model, None);
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    let mock = MockUpstream::start().await;
    let mut conn = Conn::new(TcpStream::connect(mock.addr()).await.expect("connect"));
    for (model, chunked) in [("first", false), ("second", true)] {
        conn.write_all(&raw_request(model, chunked))
            .await
            .expect("write");
        let head = conn.read_head().await.expect("read head").expect("a head");
        assert!(
            head.start_line.starts_with("HTTP/1.1 200"),
            "{}",
            head.start_line
        );
        let len = support::wire::content_length(&head.headers)
            .unwrap()
            .unwrap();
        let body = conn.read_exact_vec(len).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains(&format!("hello from {model}")));
    }
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].conn_id, recorded[1].conn_id, "same connection");
    assert_eq!(
        recorded[1].body,
        chat_body("second", false),
        "chunked body decoded"
    );
    assert_eq!(mock.connections_accepted(), 1);
}

#[tokio::test]
async fn default_stream_is_three_chunks_then_done() {
    let mock = MockUpstream::start().await;
    let mut stream =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("s", true)).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let body = stream.read_to_end(SHORT).await;
    let data = client::sse_data(&body);
    assert_eq!(data.len(), 4, "{data:?}");
    assert_eq!(data[3], "[DONE]");
    assert_eq!(client::sse_content(&body), "hello from s");
}

#[tokio::test]
async fn sse_sleeps_arrive_incrementally() {
    let mock = MockUpstream::start().await;
    let gap = Duration::from_millis(300);
    let steps = vec![
        SseStep::Send(mock::PROCESSING_COMMENT.to_string()),
        SseStep::Sleep(gap),
        SseStep::Send(mock::chunk_event("s", "one", None)),
        SseStep::Sleep(gap),
        SseStep::Send(mock::DONE_EVENT.to_string()),
    ];
    mock.script("s", vec![Behaviour::sse(steps, SseEnd::Clean)]);
    let mut stream =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("s", true)).await;

    let mut arrivals = Vec::new();
    loop {
        match stream.next_chunk(SHORT).await {
            ChunkRead::Data(at, data) => arrivals.push((at, data)),
            ChunkRead::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(arrivals.len(), 3, "one chunk per Send step");
    assert_eq!(arrivals[0].1, mock::PROCESSING_COMMENT.as_bytes());
    for pair in arrivals.windows(2) {
        let spacing = pair[1].0 - pair[0].0;
        assert!(
            spacing >= gap - Duration::from_millis(50),
            "spacing {spacing:?}"
        );
        assert!(spacing < gap * 4, "spacing {spacing:?}");
    }
}

#[tokio::test]
async fn sse_reset_is_seen_as_a_broken_stream() {
    let mock = MockUpstream::start().await;
    let steps = vec![SseStep::Send(mock::chunk_event("r", "partial", None))];
    mock.script("r", vec![Behaviour::sse(steps, SseEnd::Reset)]);
    let mut stream =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("r", true)).await;
    let collected = stream.collect(SHORT).await;
    assert!(
        matches!(collected.end, StreamEnd::Broken(_)),
        "{:?}",
        collected.end
    );
    assert!(
        collected.text().contains("partial"),
        "bytes before the reset arrive"
    );
    assert_eq!(mock.connection_closed_by_peer(1), Some(false));
}

#[tokio::test]
async fn sse_builders() {
    let mock = MockUpstream::start().await;
    let slow = Behaviour::sse_slow("e", 3, Duration::from_millis(20));
    mock.script(
        "e",
        vec![Behaviour::sse_error_first(429, "slow down"), slow],
    );

    let mut first =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("e", true)).await;
    let data = client::sse_data(&first.read_to_end(SHORT).await);
    let event: serde_json::Value = serde_json::from_str(&data[0]).expect("error event is JSON");
    assert_eq!(event["error"]["code"], 429);
    assert_eq!(event["error"]["message"], "slow down");
    assert_eq!(event["choices"][0]["finish_reason"], "error");

    let mut second =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("e", true)).await;
    let body = second.read_to_end(SHORT).await;
    assert_eq!(client::sse_content(&body), "tok0 tok1 tok2 ");
    assert_eq!(
        client::sse_data(&body).last().map(String::as_str),
        Some("[DONE]")
    );

    let with_role = Behaviour::sse_text_with_role("e", &["x"]);
    mock.script("e", vec![with_role]);
    let mut third =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("e", true)).await;
    let data = client::sse_data(&third.read_to_end(SHORT).await);
    assert!(data[0].contains(r#""role":"assistant""#), "{data:?}");
}

#[tokio::test]
async fn hang_makes_the_client_time_out() {
    let mock = MockUpstream::start().await;
    mock.script("h", vec![Behaviour::Hang]);
    let started = Instant::now();
    let error = try_post_chat(&mock, &chat_body("h", false), Duration::from_millis(300))
        .await
        .expect_err("no answer");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(mock.count_for("h"), 1, "the hanging request is recorded");
}

#[tokio::test]
async fn sse_hang_end_times_out_chunk_reads() {
    let mock = MockUpstream::start().await;
    let steps = vec![SseStep::Send(mock::chunk_event("h", "x", None))];
    mock.script("h", vec![Behaviour::sse(steps, SseEnd::Hang)]);
    let mut stream =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("h", true)).await;
    assert!(matches!(
        stream.next_chunk(SHORT).await,
        ChunkRead::Data(..)
    ));
    let wait = Duration::from_millis(200);
    assert_eq!(stream.next_chunk(wait).await, ChunkRead::Timeout);
    let collected = stream.collect(wait).await;
    assert_eq!(collected.end, StreamEnd::Timeout);
}

#[tokio::test]
async fn client_close_during_hang_is_observed() {
    let mock = MockUpstream::start().await;
    mock.script("c", vec![Behaviour::Hang]);
    let conn = raw_chat(&mock, "c").await;
    assert!(wait_until(SHORT, || mock.count_for("c") == 1).await);
    let conn_id = mock.requests()[0].conn_id;
    assert_eq!(mock.connection_closed_at(conn_id), None);

    let closed = Instant::now();
    drop(conn);
    assert!(
        wait_until(Duration::from_secs(1), || mock
            .connection_closed_at(conn_id)
            .is_some())
        .await
    );
    let seen = mock.connection_closed_at(conn_id).unwrap();
    assert!(seen.duration_since(closed) < Duration::from_secs(1));
    assert_eq!(mock.connection_closed_by_peer(conn_id), Some(true));
}

#[tokio::test]
async fn client_close_during_sse_sleep_is_observed() {
    let mock = MockUpstream::start().await;
    let steps = vec![
        SseStep::Send(mock::chunk_event("c", "x", None)),
        SseStep::Sleep(Duration::from_secs(30)),
    ];
    mock.script("c", vec![Behaviour::sse(steps, SseEnd::Clean)]);
    let mut stream =
        client::open_stream(mock.addr(), "POST", CHAT, &[], &chat_body("c", true)).await;
    assert!(matches!(
        stream.next_chunk(SHORT).await,
        ChunkRead::Data(..)
    ));
    let conn_id = mock.requests()[0].conn_id;

    stream.close();
    assert!(
        wait_until(Duration::from_secs(1), || mock
            .connection_closed_at(conn_id)
            .is_some())
        .await
    );
    assert_eq!(mock.connection_closed_by_peer(conn_id), Some(true));
}

#[tokio::test]
async fn delay_postpones_the_answer() {
    let mock = MockUpstream::start().await;
    mock.script(
        "d",
        vec![Behaviour::ok_json("d").delayed(Duration::from_millis(250))],
    );
    let started = Instant::now();
    let response = post_chat(&mock, &chat_body("d", false)).await;
    assert_eq!(response.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(240));
}

#[tokio::test]
async fn list_endpoint_is_scriptable() {
    let mock = MockUpstream::start().await;
    let fixture = std::fs::read_to_string(mock::FIXTURE_PATH).unwrap();
    let list_path = mock
        .list_url()
        .replace(&format!("http://{}", mock.addr()), "");
    assert_eq!(list_path, "/top-models");
    assert!(mock.base_url().ends_with("/api/v1"));

    let default = client::get(mock.addr(), &list_path, &[]).await;
    assert_eq!(default.status, 200);
    assert_eq!(default.text(), fixture);
    assert!(default.json()["models"].is_array());

    mock.set_list(503, "down");
    let down = client::get(mock.addr(), "/top-models?x=1", &[]).await;
    assert_eq!((down.status, down.text().as_str()), (503, "down"));
    assert_eq!(mock.list_requests(), 2);
    assert_eq!(mock.request_count(), 0, "list requests are not recorded");
}

#[tokio::test]
async fn raw_garbage_and_truncation_are_errors_for_the_client() {
    let mock = MockUpstream::start().await;
    mock.script(
        "g",
        vec![
            Behaviour::Raw(b"\x00\x01garbage\r\n\r\n".to_vec()),
            Behaviour::truncated_json(200, r#"{"id":"#, 500),
            Behaviour::CloseImmediately,
            Behaviour::Raw(b"HTTP/1.1 200 OK\r\n\r\nuntil eof".to_vec()),
        ],
    );
    let body = chat_body("g", false);
    let kinds = [
        std::io::ErrorKind::InvalidData,
        std::io::ErrorKind::UnexpectedEof,
        std::io::ErrorKind::UnexpectedEof,
    ];
    for kind in kinds {
        let error = try_post_chat(&mock, &body, SHORT)
            .await
            .expect_err("broken answer");
        assert_eq!(error.kind(), kind, "{error}");
    }
    let until_eof = try_post_chat(&mock, &body, SHORT)
        .await
        .expect("EOF-delimited body");
    assert_eq!(until_eof.text(), "until eof");
    assert!(wait_until(SHORT, || mock.connection_closed_by_peer(1) == Some(false)).await);
}

#[tokio::test]
async fn malformed_request_gets_400_and_the_mock_survives() {
    let mock = MockUpstream::start().await;
    let mut conn = Conn::new(TcpStream::connect(mock.addr()).await.expect("connect"));
    conn.write_all(b"NONSENSE\r\n\r\n").await.expect("write");
    let head = conn.read_head().await.expect("read").expect("head");
    assert!(
        head.start_line.starts_with("HTTP/1.1 400"),
        "{}",
        head.start_line
    );
    assert_eq!(post_chat(&mock, &chat_body("ok", false)).await.status, 200);
}
