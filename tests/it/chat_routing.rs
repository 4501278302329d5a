//! Chat requests on the happy path: what goes upstream (SPEC §4 "the body
//! sent upstream"), which model is chosen (§4 capability filter), and what
//! the client gets back (§3 headers).

use crate::support;

use crate::support::scenario::*;
use crate::support::{Behaviour, GatewayBuilder, MockUpstream};
use serde_json::{json, Value};

/// A client body larger than 64 KiB with JSON the gateway must not touch:
/// odd whitespace, unicode escapes (including a surrogate pair), raw UTF-8,
/// parts-array content, `content: null` with `tool_calls`, a function
/// without `parameters`, numbers in unusual spellings. Its `model` member is
/// written exactly as `"model" :  "auto"`.
fn odd_large_body() -> String {
    let filler = "lorem ipsum \\u00e9\\u4e2d \\\"quoted\\\" \\n ".repeat(2200);
    format!(
        concat!(
            "{{ \"temperature\":0.70, \"top_p\" : 1e0,\n",
            "  \"model\" :  \"auto\",\n",
            "  \"messages\": [\n",
            "    {{\"role\":\"system\",\"content\":\"Tu es \\u00e9l\\u00e8ve \\ud83d\\ude00 caf\u{e9} \u{1F600}\"}},\n",
            "    {{\"role\":\"user\",\"content\":[{{\"type\":\"text\",\"text\":\"{filler}\"}},",
            "{{\"type\":\"image_url\",\"image_url\":{{\"url\":\"data:image/png;base64,AAAA\"}}}}]}},\n",
            "    {{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{{\"id\":\"call_1\",\"type\":\"function\",",
            "\"function\":{{\"name\":\"get_time\",\"arguments\":\"{{\\\"tz\\\":\\\"UTC\\\"}}\"}}}}]}},\n",
            "    {{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"12:00\"}}\n",
            "  ],\n",
            "  \"tools\":[{{\"type\":\"function\",\"function\":{{\"name\":\"get_time\",\"description\":\"no parameters\"}}}}],\n",
            "  \"tool_choice\":\"auto\", \"max_tokens\": 500, \"user\":\"\\u0041lice\", \"n\":1.0 ,\"x_extra\":[1,2.50,-0,{{}}]\n",
            "}}"
        ),
        filler = filler
    )
}

#[tokio::test]
async fn model_is_rewritten_and_every_other_byte_is_forwarded() {
    // Given a gateway in front of the fixture list, rank 1 answering
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;
    let body = odd_large_body();
    assert!(body.len() > 64 * 1024, "body is {} bytes", body.len());
    serde_json::from_str::<Value>(&body).expect("the test body is valid JSON");

    // When a client sends it with compression it would like
    let response = support::request(
        gateway.addr,
        "POST",
        CHAT,
        &[
            ("Content-Type", "application/json"),
            ("Accept-Encoding", "br, zstd, gzip"),
        ],
        body.as_bytes(),
    )
    .await;

    // Then rank 1 answers on the first attempt, its body passed through
    assert_answered_by(&response, RANK1, 1);
    let expected_answer = support::mock::completion_json(RANK1, &format!("hello from {RANK1}"));
    assert_eq!(response.text(), expected_answer);

    // And upstream saw the client's bytes with only the model value replaced
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "exactly one upstream request");
    let upstream = &seen[0];
    let expected_body = body.replacen(
        "\"model\" :  \"auto\"",
        &format!("\"model\" :  \"{RANK1}\""),
        1,
    );
    assert_ne!(expected_body, body);
    if upstream.body != expected_body.as_bytes() {
        let first_diff = upstream
            .body
            .iter()
            .zip(expected_body.as_bytes())
            .position(|(a, b)| a != b);
        panic!(
            "upstream body differs (lengths {} vs {}, first difference at byte {first_diff:?})",
            upstream.body.len(),
            expected_body.len()
        );
    }
    assert_eq!(
        (upstream.method.as_str(), upstream.path.as_str()),
        ("POST", "/api/v1/chat/completions")
    );
    assert_eq!(
        upstream.header("authorization"),
        Some("Bearer sk-or-test-key-0001")
    );
    assert_eq!(upstream.header("accept-encoding"), Some("identity"));
}

#[tokio::test]
async fn a_request_without_model_gets_one_inserted() {
    // Given a gateway in front of the fixture list
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When the client names no model at all
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":false}"#;
    let response = support::request(
        gateway.addr,
        "POST",
        CHAT,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;

    // Then rank 1 answers and its body is the client's plus the model
    assert_answered_by(&response, RANK1, 1);
    let upstream = mock.requests_for(RANK1);
    assert_eq!(upstream.len(), 1);
    let mut sent = upstream[0].json();
    assert_eq!(sent["model"], RANK1);
    sent.as_object_mut().unwrap().remove("model");
    assert_eq!(
        sent,
        json!({"messages":[{"role":"user","content":"hi"}],"stream":false})
    );
}

#[tokio::test]
async fn a_model_in_the_list_is_tried_first() {
    // Given the fixture list
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When the client pins rank 4
    let response = post_chat(&gateway, &json!({"model": RANK4, "messages": []})).await;

    // Then rank 4 answers and nobody else is asked
    assert_answered_by(&response, RANK4, 1);
    assert_eq!(mock.request_count(), 1);
    assert_eq!(mock.count_for(RANK4), 1);
}

#[tokio::test]
async fn query_string_on_the_chat_path_is_ignored() {
    // Given a gateway
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When Claude-Code-style `?beta=true` is on the path (and on the alias)
    for path in [
        "/v1/chat/completions?beta=true",
        "/api/v1/chat/completions?beta=true",
    ] {
        let response = support::post_json(gateway.addr, path, &chat_body(), &[]).await;
        // Then it is routed as a chat completion
        assert_answered_by(&response, RANK1, 1);
        assert_eq!(completion_content(&response), format!("hello from {RANK1}"));
    }
    assert_eq!(mock.count_for(RANK1), 2);
}

#[tokio::test]
async fn tools_requests_skip_models_without_tool_support() {
    // Given a list where only rank 2 supports tools
    let mock = MockUpstream::start().await;
    mock.set_list(
        200,
        list_document(&[
            ("plain/no-tools:free", false),
            ("tools/yes:free", true),
            ("plain/also-no-tools:free", false),
        ]),
    );
    let gateway = GatewayBuilder::new(&mock).start().await;
    assert!(
        wait_for_list_source(&gateway, "remote", SETTLE).await,
        "the custom list was never loaded"
    );
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);

    // When a request without tools comes, rank 1 serves it
    let plain = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&plain, "plain/no-tools:free", 1);

    // When a request with tools comes, the tool-less rank 1 is skipped
    let with_tools = post_chat(&gateway, &chat_body_with(json!({"tools": tools}))).await;
    assert_answered_by(&with_tools, "tools/yes:free", 1);

    // When the only tool model fails, the next candidate is the list's
    // fallback, never a model without tools
    mock.script("tools/yes:free", vec![Behaviour::error(500, "boom")]);
    let after_failure = post_chat(&gateway, &chat_body_with(json!({"tools": tools}))).await;
    assert_answered_by(&after_failure, FALLBACK, 2);

    // An empty tools array is no tool use
    let empty_tools = post_chat(&gateway, &chat_body_with(json!({"tools": []}))).await;
    assert_answered_by(&empty_tools, "plain/no-tools:free", 1);

    assert_eq!(mock.count_for("plain/no-tools:free"), 2);
    assert_eq!(mock.count_for("tools/yes:free"), 2);
    assert_eq!(mock.count_for("plain/also-no-tools:free"), 0);
    assert_eq!(mock.count_for(FALLBACK), 1);
}

#[tokio::test]
async fn json_schema_requests_skip_models_without_structured_outputs() {
    // Given the fixture, where ranks 3-5 lack supportsStructuredOutputs and
    // ranks 1 and 2 fail with 500
    let mock = MockUpstream::start().await;
    mock.script(RANK1, vec![Behaviour::error(500, "rank 1 down")]);
    mock.script(RANK2, vec![Behaviour::error(500, "rank 2 down")]);
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request asks for a JSON schema
    let body = chat_body_with(json!({
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}}
        }
    }));
    let response = post_chat(&gateway, &body).await;

    // Then the third model tried is rank 6, not minimax
    assert_answered_by(&response, RANK6, 3);
    let order: Vec<String> = mock
        .requests()
        .into_iter()
        .filter_map(|r| r.model)
        .collect();
    assert_eq!(order, [RANK1, RANK2, RANK6]);
    for skipped in [RANK3, RANK4, RANK5] {
        assert_eq!(mock.count_for(skipped), 0, "{skipped} was asked");
    }
}
