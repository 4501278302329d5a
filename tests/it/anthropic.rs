//! The Anthropic Messages front (SPEC §10) through the real gateway against the scripted
//! mock: the same candidate selection, attempt loop and streaming rules as
//! `/v1/chat/completions`, answered in Anthropic's shapes.

use crate::support;

use std::time::Duration;

use crate::support::events::*;
use crate::support::mock::{chunk_event, role_event, DONE_EVENT, PROCESSING_COMMENT};
use crate::support::scenario::*;
use crate::support::{Behaviour, GatewayBuilder, MockUpstream, Response, SseEnd, SseStep};
use serde_json::{json, Value};

const MESSAGES: &str = "/anthropic/v1/messages?beta=true";
const COUNT_TOKENS: &str = "/anthropic/v1/messages/count_tokens?beta=true";
const CLIENT_KEY: &str = "claude-client-key-0001";

/// The headers Claude Code sends besides its key.
const CLAUDE_HEADERS: [(&str, &str); 2] = [
    ("anthropic-version", "2023-06-01"),
    (
        "anthropic-beta",
        "claude-code-20250219,interleaved-thinking-2025-05-14,some-future-beta",
    ),
];

/// A Messages request the way Claude Code shapes it.
fn messages_body(stream: bool, messages: Value) -> Value {
    json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be helpful.", "cache_control": {"type": "ephemeral"}}
        ],
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "metadata": {"user_id": "user_abc"},
        "messages": messages,
    })
}

fn hello_turn() -> Value {
    json!([{"role": "user", "content": [{"type": "text", "text": "say hello"}]}])
}

async fn post(gateway: &support::Gateway, path: &str, body: &Value) -> Response {
    support::post_json(gateway.addr, path, body, &CLAUDE_HEADERS).await
}

async fn post_with(
    gateway: &support::Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Response {
    let mut all: Vec<(&str, &str)> = CLAUDE_HEADERS.to_vec();
    all.extend_from_slice(headers);
    support::post_json(gateway.addr, path, body, &all).await
}

/// Streams a Messages request; returns the response head and the whole body.
async fn stream(gateway: &support::Gateway, body: &Value) -> (support::StreamResponse, String) {
    let mut headers = CLAUDE_HEADERS.to_vec();
    headers.push(("content-type", "application/json"));
    let bytes = body.to_string();
    let mut response =
        support::open_stream(gateway.addr, "POST", MESSAGES, &headers, bytes.as_bytes()).await;
    let text = response.read_to_end(Duration::from_secs(15)).await;
    (response, String::from_utf8(text).expect("utf-8 stream"))
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/text").and_then(Value::as_str))
        .collect()
}

/// Asserts an Anthropic-shaped error of this type and returns its message.
#[track_caller]
fn anthropic_error(response: &Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status, status, "body {}", response.text());
    let body = response.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_string()
}

#[tokio::test]
async fn non_streamed_text_answer() {
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    let response = post(&gateway, MESSAGES, &messages_body(false, hello_turn())).await;

    assert_answered_by(&response, RANK1, 1);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], RANK1);
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": format!("hello from {RANK1}")}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 1);
    assert_eq!(body["usage"]["output_tokens"], 1);

    // What went upstream is a plain chat body.
    let sent = mock.requests_for(RANK1)[0].json();
    assert_eq!(sent["model"], RANK1);
    assert_eq!(sent["max_tokens"], 32000);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are Claude Code.\n\nBe helpful."},
            {"role": "user", "content": "say hello"}
        ])
    );
    for dropped in ["thinking", "metadata", "system", "stream", "reasoning"] {
        assert!(
            sent.get(dropped).is_none(),
            "{dropped} went upstream: {sent}"
        );
    }
}

#[tokio::test]
async fn streamed_text_answer() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![sse(&[
            PROCESSING_COMMENT.to_string(),
            role_event(RANK1),
            chunk_event(RANK1, "Hi", None),
            chunk_event(RANK1, " there", Some("stop")),
            usage_event(RANK1, 21, 2),
            DONE_EVENT.to_string(),
        ])],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let body = messages_body(true, hello_turn());
    let (response, text) = stream(&gateway, &body).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.header(MODEL_HEADER), Some(RANK1));
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let events = events(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let start = &events[0].1["message"];
    assert_eq!(start["model"], RANK1);
    // message_start carries the local estimate: bytes of the translated body / 4 (the
    // body routed, before the candidate's id replaced the client's `model`).
    let sent = &mock.requests_for(RANK1)[0];
    let estimate = start["usage"]["input_tokens"]
        .as_u64()
        .expect("input_tokens");
    assert!(
        estimate.abs_diff(sent.body.len() as u64 / 4) <= 8,
        "estimate {estimate} for {} upstream bytes",
        sent.body.len()
    );
    assert_eq!(streamed_text(&events), "Hi there");
    assert_eq!(events[5].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[5].1["usage"]["input_tokens"], 21);
    assert_eq!(events[5].1["usage"]["output_tokens"], 2);

    let sent = sent.json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn tool_use_round_trip_over_two_turns() {
    let mock = MockUpstream::start().await;
    let args = r#"{"command":"ls -la","description":"List files"}"#;
    let mut turn1 = vec![
        role_event(RANK1),
        chunk_event(RANK1, "Let me look.", None),
        tool_delta(RANK1, 0, Some("call_abc"), Some("Bash"), ""),
    ];
    turn1.extend(
        args.as_bytes()
            .chunks(5)
            .map(|c| tool_delta(RANK1, 0, None, None, std::str::from_utf8(c).unwrap())),
    );
    turn1.push(data(json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": RANK1,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    })));
    turn1.push(DONE_EVENT.to_string());
    mock.script(RANK1, vec![sse(&turn1)]);
    mock.script(RANK1, vec![Behaviour::sse_text(RANK1, &["Two files", "."])]);
    let gateway = GatewayBuilder::new(&mock).start().await;
    let tools = json!([{
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
            "required": ["command"]
        }
    }]);

    // Turn 1: the model calls a tool.
    let first_user = json!({"role": "user", "content": "what is here?"});
    let mut body = messages_body(true, json!([first_user]));
    body["tools"] = tools.clone();
    let (response, text) = stream(&gateway, &body).await;
    assert_eq!(response.status, 200);
    let turn1_events = events(&text);
    assert_eq!(
        names(&turn1_events)
            .into_iter()
            .filter(|n| *n != "content_block_delta")
            .collect::<Vec<_>>(),
        [
            "message_start",
            "content_block_start",
            "content_block_stop",
            "content_block_start",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let tool_start = turn1_events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .map(|(_, d)| d.clone())
        .expect("a tool_use block");
    assert_eq!(tool_start["index"], 1);
    assert_eq!(tool_start["content_block"]["id"], "call_abc");
    assert_eq!(tool_start["content_block"]["name"], "Bash");
    let input_json: String = turn1_events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/partial_json").and_then(Value::as_str))
        .collect();
    let input: Value = serde_json::from_str(&input_json).expect("tool input is JSON");
    assert_eq!(input["command"], "ls -la");
    let stop = turn1_events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");

    let sent1 = mock.requests_for(RANK1)[0].json();
    assert_eq!(sent1["tools"][0]["type"], "function");
    assert_eq!(sent1["tools"][0]["function"]["name"], "Bash");
    assert_eq!(
        sent1["tools"][0]["function"]["parameters"],
        tools[0]["input_schema"]
    );

    // Turn 2: Claude Code runs it and sends the result back.
    let messages = json!([
        first_user,
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": input}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_abc", "content": "a.txt\nb.txt"},
            {"type": "text", "text": "<system-reminder>be brief</system-reminder>"}
        ]}
    ]);
    let mut body = messages_body(true, messages);
    body["tools"] = tools;
    let (_, text) = stream(&gateway, &body).await;
    assert_eq!(streamed_text(&events(&text)), "Two files.");

    let sent2 = mock.requests_for(RANK1)[1].json();
    let upstream_messages = sent2["messages"].as_array().unwrap();
    assert_eq!(
        upstream_messages[2],
        json!({"role": "assistant", "content": "Let me look.", "tool_calls": [{
            "id": "call_abc", "type": "function",
            "function": {"name": "Bash", "arguments": input.to_string()}
        }]})
    );
    assert_eq!(
        upstream_messages[3],
        json!({"role": "tool", "tool_call_id": "call_abc", "content": "a.txt\nb.txt"})
    );
    assert_eq!(
        upstream_messages[4],
        json!({"role": "user", "content": "<system-reminder>be brief</system-reminder>"})
    );
}

#[tokio::test]
async fn first_event_error_gives_a_clean_stream_from_the_next_model() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_error_first(
            429,
            "Rate limit exceeded upstream",
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let (response, text) = stream(&gateway, &messages_body(true, hello_turn())).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.header(MODEL_HEADER), Some(RANK2));
    assert_eq!(response.header(ATTEMPTS_HEADER), Some("2"));
    assert!(!text.contains("Rate limit"), "{text}");
    let events = events(&text);
    assert_eq!(names(&events).first(), Some(&"message_start"));
    assert_eq!(names(&events).last(), Some(&"message_stop"));
    assert!(!names(&events).contains(&"error"), "{text}");
    assert_eq!(events[0].1["message"]["model"], RANK2);
    assert_eq!(streamed_text(&events), format!("hello from {RANK2}"));
}

#[tokio::test]
async fn error_after_content_ends_with_an_error_event() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse(
            vec![
                SseStep::Send(chunk_event(RANK1, "par", None)),
                SseStep::Send(support::mock::error_event(502, "provider crashed")),
            ],
            SseEnd::Hang,
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    let (_, text) = stream(&gateway, &messages_body(true, hello_turn())).await;

    let events = events(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ],
        "{text}"
    );
    assert_eq!(
        events[3].1["error"],
        json!({"type": "api_error", "message": "provider crashed"})
    );
    // The model that failed mid-stream cools, like on the OpenAI front.
    let next = post(&gateway, MESSAGES, &messages_body(false, hello_turn())).await;
    assert_answered_by(&next, RANK2, 1);
}

#[tokio::test]
async fn auth_errors_use_the_anthropic_shape_and_hello_needs_no_key() {
    let mock = MockUpstream::start().await;
    let keys: serde_yaml::Value =
        serde_yaml::from_str(&format!("[{{name: claude, key: {CLIENT_KEY}}}]")).unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", keys)
        .start()
        .await;
    let body = messages_body(false, hello_turn());

    let missing = post(&gateway, MESSAGES, &body).await;
    let message = anthropic_error(&missing, 401, "authentication_error");
    assert!(message.contains("x-api-key"), "{message}");
    let wrong = post_with(&gateway, MESSAGES, &body, &[("x-api-key", "nope")]).await;
    anthropic_error(&wrong, 401, "authentication_error");
    let count = post(&gateway, COUNT_TOKENS, &body).await;
    anthropic_error(&count, 401, "authentication_error");
    assert_eq!(mock.request_count(), 0);

    // ANTHROPIC_API_KEY sends x-api-key; ANTHROPIC_AUTH_TOKEN sends a Bearer token.
    let by_api_key = post_with(&gateway, MESSAGES, &body, &[("x-api-key", CLIENT_KEY)]).await;
    assert_answered_by(&by_api_key, RANK1, 1);
    let bearer = format!("Bearer {CLIENT_KEY}");
    let by_bearer = post_with(&gateway, MESSAGES, &body, &[("authorization", &bearer)]).await;
    assert_answered_by(&by_bearer, RANK1, 1);

    // Claude Code's start-up probes come without a key.
    for (method, path) in [
        ("HEAD", "/anthropic/api/hello"),
        ("GET", "/anthropic/api/hello"),
        ("HEAD", "/anthropic"),
    ] {
        let hello = support::request(gateway.addr, method, path, &[], b"").await;
        assert_eq!(hello.status, 200, "{method} {path}");
    }
    // Unknown paths under /anthropic answer in its shape too.
    let unknown = post_with(
        &gateway,
        "/anthropic/v1/complete",
        &body,
        &[("x-api-key", CLIENT_KEY)],
    )
    .await;
    anthropic_error(&unknown, 404, "not_found_error");
}

#[tokio::test]
async fn large_first_turn_with_a_huge_budget_goes_to_a_fitting_model_clamped() {
    let mock = MockUpstream::start().await;
    // Rank 1 cannot hold a 60 KB prompt at all; rank 2 can, but gives at most 32 768.
    let list = json!({
        "updatedAt": "2026-04-25T03:17:45.681Z",
        "fallback": {"id": FALLBACK},
        "models": [
            {"rank": 1, "id": "tiny/ctx:free", "contextLength": 8192,
             "maxCompletionTokens": 4096, "supportsTools": true},
            {"rank": 2, "id": "big/ctx:free", "contextLength": 131072,
             "maxCompletionTokens": 32768, "supportsTools": true},
        ],
    });
    mock.set_list(200, list.to_string());
    let gateway = GatewayBuilder::new(&mock).start().await;
    assert!(
        wait_for_list_source(&gateway, "remote", SETTLE).await,
        "the custom list was never loaded"
    );

    let mut body = messages_body(
        true,
        json!([{"role": "user", "content": "x".repeat(60_000)}]),
    );
    body["max_tokens"] = json!(128000);
    let (response, text) = stream(&gateway, &body).await;

    assert_eq!(response.status, 200, "{text}");
    assert_eq!(response.header(MODEL_HEADER), Some("big/ctx:free"));
    assert_eq!(response.header(ATTEMPTS_HEADER), Some("1"));
    assert_eq!(names(&events(&text)).last(), Some(&"message_stop"));
    assert_eq!(mock.count_for("tiny/ctx:free"), 0);
    let sent = mock.requests_for("big/ctx:free")[0].json();
    assert_eq!(
        sent["max_tokens"], 32768,
        "budget clamped to what the model gives"
    );
    // The request_done line is written just after the last byte goes out.
    let clamped_logged = support::wait_until(SETTLE, || {
        gateway
            .log_events("request_done")
            .iter()
            .any(|l| l["attempts"][0]["max_tokens_clamped"] == 32768)
    })
    .await;
    assert!(clamped_logged, "{:?}", gateway.log_events("request_done"));
}

#[tokio::test]
async fn count_tokens_is_local_and_not_charged_against_rpm() {
    let mock = MockUpstream::start().await;
    let keys: serde_yaml::Value =
        serde_yaml::from_str(&format!("[{{name: claude, key: {CLIENT_KEY}, rpm: 1}}]")).unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", keys)
        .start()
        .await;
    let auth = [("x-api-key", CLIENT_KEY)];
    let body = json!({
        "model": "claude-sonnet-4-5",
        "system": "s",
        "messages": [{"role": "user", "content": "y".repeat(4000)}],
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
    });

    // Claude Code fires ~27 at once at start-up.
    let calls: Vec<_> = (0..27)
        .map(|_| {
            let (addr, body) = (gateway.addr, body.clone());
            tokio::spawn(async move {
                let headers = [
                    CLAUDE_HEADERS[0],
                    CLAUDE_HEADERS[1],
                    ("x-api-key", CLIENT_KEY),
                ];
                support::post_json(addr, COUNT_TOKENS, &body, &headers).await
            })
        })
        .collect();
    for call in calls {
        let answer = call.await.expect("count_tokens task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        let n = answer.json()["input_tokens"].as_u64().unwrap();
        assert!((1000..1200).contains(&n), "{n}");
    }
    assert_eq!(mock.request_count(), 0, "count_tokens never goes upstream");

    // The one message a minute this client may send is still available...
    let first = post_with(
        &gateway,
        MESSAGES,
        &messages_body(false, hello_turn()),
        &auth,
    )
    .await;
    assert_answered_by(&first, RANK1, 1);
    // ...and the next is over budget: 429 rate_limit_error with Retry-After.
    let second = post_with(
        &gateway,
        MESSAGES,
        &messages_body(false, hello_turn()),
        &auth,
    )
    .await;
    anthropic_error(&second, 429, "rate_limit_error");
    assert!(retry_after_secs(&second) >= 1);
}

#[tokio::test]
async fn upstream_client_errors_and_gateway_errors_in_the_anthropic_shape() {
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::error(400, "tool schema rejected by provider")],
    );
    let gateway = GatewayBuilder::new(&mock)
        .set("routing.max_attempts", 2)
        .start()
        .await;

    // A client error from upstream comes back unchanged in status, in Anthropic's shape.
    let rejected = post(&gateway, MESSAGES, &messages_body(true, hello_turn())).await;
    let message = anthropic_error(&rejected, 400, "invalid_request_error");
    assert_eq!(message, "tool schema rejected by provider");
    assert_eq!(rejected.header(MODEL_HEADER), Some(RANK1));

    // Images cannot be served: 400 before any upstream call.
    let before = mock.request_count();
    let image = json!([{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "text", "text": "what is this?"}
    ]}]);
    let image = post(&gateway, MESSAGES, &messages_body(false, image)).await;
    anthropic_error(&image, 400, "invalid_request_error");
    let no_budget = post(&gateway, MESSAGES, &json!({"messages": hello_turn()})).await;
    assert!(anthropic_error(&no_budget, 400, "invalid_request_error").contains("max_tokens"));
    let not_json = support::request(
        gateway.addr,
        "POST",
        MESSAGES,
        &[("content-type", "application/json")],
        b"{nope",
    )
    .await;
    anthropic_error(&not_json, 400, "invalid_request_error");
    assert_eq!(mock.request_count(), before);

    // Every attempt failing: 503 overloaded_error with Retry-After.
    for model in [RANK1, RANK2] {
        mock.script(model, vec![Behaviour::error(500, "down")]);
    }
    let down = post(&gateway, MESSAGES, &messages_body(false, hello_turn())).await;
    anthropic_error(&down, 503, "overloaded_error");
    assert!(retry_after_secs(&down) >= 1);
}
