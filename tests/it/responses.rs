//! The OpenAI Responses front (SPEC §13) through the real gateway against the scripted
//! mock: the attempt loop, fallback and streaming rules of `/v1/chat/completions`,
//! answered as Responses objects and events, with what Codex CLI 0.171 sends.

use crate::support;

use std::time::Duration;

use crate::support::events::*;
use crate::support::mock::{chunk_event, role_event, DONE_EVENT, PROCESSING_COMMENT};
use crate::support::scenario::*;
use crate::support::{Behaviour, GatewayBuilder, MockUpstream, Response, SseEnd, SseStep};
use serde_json::{json, Value};

const RESPONSES: &str = "/v1/responses";
const CLIENT_KEY: &str = "codex-client-key-0001";

/// The headers Codex CLI sends besides its key (never forwarded upstream).
const CODEX_HEADERS: [(&str, &str); 5] = [
    ("originator", "codex_exec"),
    ("session-id", "01a23387-fe2e-72f2-88d7-fe8f27cb40c1"),
    (
        "x-client-request-id",
        "01a23387-fe2e-72f2-88d7-fe8f27cb40c1",
    ),
    (
        "x-codex-window-id",
        "01a23387-fe2e-72f2-88d7-fe8f27cb40c1:0",
    ),
    ("x-codex-beta-features", "remote_compaction_v2"),
];

fn codex_fixture() -> Value {
    serde_json::from_str(include_str!(
        "../fixtures/codex-0.171.0-responses-requests.json"
    ))
    .expect("the Codex fixture is JSON")
}

/// A small Responses request in Codex's shape.
fn responses_body(stream: bool, input: Value) -> Value {
    json!({
        "model": "auto",
        "instructions": "You are a coding agent.",
        "input": input,
        "stream": stream,
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "01a23387",
        "client_metadata": {"turn_id": "01a23387"},
    })
}

fn say_hello() -> Value {
    json!([{"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "say hello"}]}])
}

fn exec_command_tool() -> Value {
    json!({"type": "function", "name": "exec_command", "description": "Runs a command",
        "strict": false, "parameters": {"type": "object",
            "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}})
}

async fn post(gateway: &support::Gateway, body: &Value, headers: &[(&str, &str)]) -> Response {
    support::post_json(gateway.addr, RESPONSES, body, headers).await
}

/// Streams a Responses request; returns the response head and the whole body.
async fn stream(gateway: &support::Gateway, body: &Value) -> (support::StreamResponse, String) {
    let mut headers = CODEX_HEADERS.to_vec();
    headers.push(("content-type", "application/json"));
    headers.push(("accept", "text/event-stream"));
    let bytes = body.to_string();
    let mut response =
        support::open_stream(gateway.addr, "POST", RESPONSES, &headers, bytes.as_bytes()).await;
    let text = response.read_to_end(Duration::from_secs(15)).await;
    (response, String::from_utf8(text).expect("utf-8 stream"))
}

/// Checks what every Responses stream must be (increasing sequence numbers, no `[DONE]`)
/// and returns the final response.
#[track_caller]
fn final_response(events: &[(String, Value)], ending: &str) -> Value {
    for (n, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], n as u64, "{data}");
    }
    let (name, last) = events.last().expect("events");
    assert_eq!(name, ending, "{:?}", names(events));
    last["response"].clone()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_string))
        .collect()
}

#[track_caller]
fn openai_error(response: &Response, status: u16, code: &str) -> String {
    assert_eq!(response.status, status, "body {}", response.text());
    assert_eq!(error_code(response), code, "{}", response.text());
    error_message(response)
}

#[tokio::test]
async fn non_streamed_text_answer() {
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    let response = post(
        &gateway,
        &responses_body(false, say_hello()),
        &CODEX_HEADERS,
    )
    .await;

    assert_answered_by(&response, RANK1, 1);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], RANK1);
    assert_eq!(output_text(&body), format!("hello from {RANK1}"));
    let message = &body["output"][0];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["content"][0]["annotations"], json!([]));
    assert_eq!(body["usage"]["input_tokens"], 1);
    assert_eq!(body["usage"]["output_tokens"], 1);
    assert_eq!(body["usage"]["total_tokens"], 2);

    // Upstream gets a plain chat body, none of the Responses-only fields and none of
    // Codex's own headers.
    let sent = &mock.requests_for(RANK1)[0];
    for (name, _) in CODEX_HEADERS {
        assert!(sent.header(name).is_none(), "{name} went upstream");
    }
    let sent = sent.json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "say hello"}
        ])
    );
    for dropped in [
        "input",
        "instructions",
        "reasoning",
        "store",
        "include",
        "prompt_cache_key",
        "client_metadata",
        "tool_choice",
        "parallel_tool_calls",
    ] {
        assert!(
            sent.get(dropped).is_none(),
            "{dropped} went upstream: {sent}"
        );
    }

    // Ids are unique per response.
    let again = post(&gateway, &responses_body(false, say_hello()), &[])
        .await
        .json();
    assert_ne!(again["id"], body["id"]);
    assert_ne!(again["output"][0]["id"], body["output"][0]["id"]);
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

    let (response, text) = stream(&gateway, &responses_body(true, say_hello())).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.header(MODEL_HEADER), Some(RANK1));
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(!text.contains("[DONE]"), "{text}");
    let events = events(&text);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ],
        "{text}"
    );
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[0].1["response"]["model"], RANK1);
    let done = &events[8].1["item"];
    assert_eq!(done["content"][0]["text"], "Hi there");
    let response = final_response(&events, "response.completed");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"], json!([done]));
    assert_eq!(response["usage"]["input_tokens"], 21);
    assert_eq!(response["usage"]["output_tokens"], 2);

    let sent = mock.requests_for(RANK1)[0].json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

/// Codex's two recorded turns, replayed: the model calls `exec_command`, Codex runs it and
/// sends the whole history back with the call and its output.
#[tokio::test]
async fn codex_function_call_round_trip_over_two_turns() {
    let mock = MockUpstream::start().await;
    let args = r#"{"cmd":"cat /home/dev/project/marker.txt"}"#;
    let mut turn1 = vec![
        role_event(RANK1),
        tool_delta(RANK1, 0, Some("call_shape_1"), Some("exec_command"), ""),
    ];
    turn1.extend(
        args.as_bytes()
            .chunks(7)
            .map(|c| tool_delta(RANK1, 0, None, None, std::str::from_utf8(c).unwrap())),
    );
    turn1.push(data(json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": RANK1,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    })));
    turn1.push(DONE_EVENT.to_string());
    mock.script(RANK1, vec![sse(&turn1)]);
    mock.script(
        RANK1,
        vec![Behaviour::sse_text(
            RANK1,
            &["The secret is ", "RCSECRET-13c8b28074ed"],
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;
    let fixture = codex_fixture();

    // Turn 1: the recorded first request, as Codex sent it.
    let (response, text) = stream(&gateway, &fixture["requests"][0]["body"]).await;
    assert_eq!(response.status, 200, "{text}");
    let turn1_events = events(&text);
    let response1 = final_response(&turn1_events, "response.completed");
    let call = &response1["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_shape_1");
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], args);
    assert_eq!(call["status"], "completed");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"), "{call}");
    let item_done = turn1_events
        .iter()
        .find(|(n, _)| n == "response.output_item.done")
        .expect("output_item.done");
    assert_eq!(
        &item_done.1["item"], call,
        "output_item.done carries the whole call"
    );

    // What went upstream: one system message, the flat and namespaced functions, no
    // built-in tools, none of Codex's headers.
    let sent1 = &mock.requests_for(RANK1)[0];
    assert!(sent1.header("x-codex-turn-metadata").is_none());
    let sent1 = sent1.json();
    let messages = sent1["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[1..].iter().all(|m| m["role"] == "user"), "{sent1}");
    assert_eq!(
        messages.last().unwrap()["content"],
        "What is the secret in marker.txt?"
    );
    let names: Vec<&str> = sent1["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"exec_command") && names.contains(&"spawn_agent"),
        "{names:?}"
    );
    assert!(!names.contains(&"web_search"));
    assert_eq!(sent1["tool_choice"], "auto");
    assert_eq!(sent1["parallel_tool_calls"], true);

    // Turn 2: the recorded second request carries the call and its output.
    let (_, text) = stream(&gateway, &fixture["requests"][1]["body"]).await;
    let response2 = final_response(&events(&text), "response.completed");
    assert_eq!(
        output_text(&response2),
        "The secret is RCSECRET-13c8b28074ed"
    );
    let sent2 = mock.requests_for(RANK1)[1].json();
    let messages = sent2["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(
        messages[n - 2],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_shape_1",
            "type": "function", "function": {"name": "exec_command",
                "arguments": "{\"cmd\": \"cat /home/dev/project/marker.txt\"}"}}]})
    );
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], "call_shape_1");
    assert!(messages[n - 1]["content"]
        .as_str()
        .unwrap()
        .contains("The secret is RCSECRET-13c8b28074ed"));
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

    let (response, text) = stream(&gateway, &responses_body(true, say_hello())).await;

    assert_eq!(response.status, 200);
    assert_eq!(response.header(MODEL_HEADER), Some(RANK2));
    assert_eq!(response.header(ATTEMPTS_HEADER), Some("2"));
    assert!(!text.contains("Rate limit"), "{text}");
    let events = events(&text);
    assert_eq!(names(&events).first(), Some(&"response.created"));
    let response = final_response(&events, "response.completed");
    assert_eq!(response["model"], RANK2);
    assert_eq!(output_text(&response), format!("hello from {RANK2}"));
}

#[tokio::test]
async fn error_after_content_ends_with_response_failed() {
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

    let (_, text) = stream(&gateway, &responses_body(true, say_hello())).await;

    let events = events(&text);
    assert!(
        names(&events).contains(&"response.output_text.delta"),
        "{text}"
    );
    let response = final_response(&events, "response.failed");
    assert_eq!(response["status"], "failed");
    assert_eq!(response["error"]["message"], "provider crashed");
    assert!(!names(&events).contains(&"response.completed"));
}

#[tokio::test]
async fn previous_response_id_is_refused_without_an_upstream_call() {
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;
    let mut body = responses_body(false, say_hello());
    body["previous_response_id"] = json!("resp_abc");

    let response = post(&gateway, &body, &[]).await;

    let message = openai_error(&response, 400, "invalid_request");
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");
    assert!(message.contains("stores no responses"), "{message}");
    assert!(message.contains("input"), "{message}");
    let not_json = support::request(
        gateway.addr,
        "POST",
        RESPONSES,
        &[("content-type", "application/json")],
        b"{\"input\": ",
    )
    .await;
    openai_error(&not_json, 400, "invalid_json");
    let wrong_method = support::get(gateway.addr, RESPONSES, &[]).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn client_auth_and_rpm_as_for_chat() {
    let mock = MockUpstream::start().await;
    let keys: serde_yaml::Value =
        serde_yaml::from_str(&format!("[{{name: codex, key: {CLIENT_KEY}, rpm: 1}}]")).unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", keys)
        .start()
        .await;
    let body = responses_body(false, say_hello());

    let missing = post(&gateway, &body, &[]).await;
    openai_error(&missing, 401, "missing_api_key");
    let wrong = post(&gateway, &body, &[("authorization", "Bearer nope")]).await;
    openai_error(&wrong, 401, "invalid_api_key");
    assert_eq!(mock.request_count(), 0);

    let bearer = format!("Bearer {CLIENT_KEY}");
    let auth = [("authorization", bearer.as_str())];
    // The alias path is the same route.
    let ok = support::post_json(gateway.addr, "/api/v1/responses", &body, &auth).await;
    assert_answered_by(&ok, RANK1, 1);
    let limited = post(&gateway, &body, &auth).await;
    openai_error(&limited, 429, "rate_limited");
    assert!(retry_after_secs(&limited) >= 1);
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn large_first_turn_with_a_huge_budget_goes_to_a_fitting_model_clamped() {
    let mock = MockUpstream::start().await;
    // Rank 1 cannot hold a 100 KB prompt at all; rank 2 can, but gives at most 32 768.
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

    let mut body = responses_body(
        true,
        json!([{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "x".repeat(100_000)}]}]),
    );
    body["max_output_tokens"] = json!(128000);
    body["tools"] = json!([exec_command_tool()]);
    let (response, text) = stream(&gateway, &body).await;

    assert_eq!(response.status, 200, "{text}");
    assert_eq!(response.header(MODEL_HEADER), Some("big/ctx:free"));
    assert_eq!(response.header(ATTEMPTS_HEADER), Some("1"));
    final_response(&events(&text), "response.completed");
    assert_eq!(mock.count_for("tiny/ctx:free"), 0);
    let sent = mock.requests_for("big/ctx:free")[0].json();
    assert_eq!(
        sent["max_tokens"], 32768,
        "budget clamped to what the model gives"
    );
}
