//! What the gateway answers itself (SPEC §3, §4 step 1): client auth, body
//! validation, unknown paths and methods, health and readiness.

use crate::support;

use crate::support::scenario::*;
use crate::support::{GatewayBuilder, MockUpstream};
use serde_json::json;

const ALICE_KEY: &str = "alice-secret-key-123";

fn alice_only() -> serde_yaml::Value {
    serde_yaml::from_str(&format!("[{{name: alice, key: {ALICE_KEY}}}]")).unwrap()
}

#[tokio::test]
async fn client_keys_are_required_when_configured() {
    // Given a gateway with one client key
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", alice_only())
        .start()
        .await;
    let body = chat_body();

    // When a request has no key: 401 missing_api_key
    let missing = support::post_json(gateway.addr, CHAT, &body, &[]).await;
    assert_eq!(missing.status, 401, "body {}", missing.text());
    assert_eq!(error_code(&missing), "missing_api_key");

    // When it has a wrong key, as Bearer or x-api-key: 401 invalid_api_key
    let wrong_bearer = support::post_json(
        gateway.addr,
        CHAT,
        &body,
        &[("Authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong_bearer.status, 401);
    assert_eq!(error_code(&wrong_bearer), "invalid_api_key");
    let wrong_header = support::post_json(
        gateway.addr,
        CHAT,
        &body,
        &[("x-api-key", "alice-secret-key-12")],
    )
    .await;
    assert_eq!(wrong_header.status, 401);
    assert_eq!(error_code(&wrong_header), "invalid_api_key");

    // And none of these reached upstream
    assert_eq!(mock.request_count(), 0);

    // When the right key comes as Bearer or as x-api-key, it is served
    let bearer = format!("Bearer {ALICE_KEY}");
    let by_bearer =
        support::post_json(gateway.addr, CHAT, &body, &[("Authorization", &bearer)]).await;
    assert_answered_by(&by_bearer, RANK1, 1);
    let by_header =
        support::post_json(gateway.addr, CHAT, &body, &[("x-api-key", ALICE_KEY)]).await;
    assert_answered_by(&by_header, RANK1, 1);
    assert_eq!(mock.request_count(), 2);

    // And the client key is never forwarded upstream
    for request in mock.requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer sk-or-test-key-0001")
        );
        assert_eq!(request.header("x-api-key"), None);
    }
}

#[tokio::test]
async fn models_list_needs_a_key_but_health_and_ready_do_not() {
    // Given a gateway with one client key
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", alice_only())
        .start()
        .await;

    // Then /v1/models wants the key
    let anonymous = support::get(gateway.addr, "/v1/models", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(error_code(&anonymous), "missing_api_key");
    let keyed = support::get(gateway.addr, "/v1/models", &[("x-api-key", ALICE_KEY)]).await;
    assert_eq!(keyed.status, 200);

    // And /health and /ready answer without one
    let health = support::get(gateway.addr, "/health", &[]).await;
    assert_eq!(health.status, 200);
    let (status, body) = ready(&gateway).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
}

#[tokio::test]
async fn malformed_bodies_are_refused_before_routing() {
    // Given a gateway with a 2 KiB body limit
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock)
        .set("limits.max_body_bytes", 2048)
        .start()
        .await;
    let json_type = [("Content-Type", "application/json")];

    // When the body is not JSON: 400 invalid_json
    let invalid =
        support::request(gateway.addr, "POST", CHAT, &json_type, b"{\"messages\": [").await;
    assert_eq!(invalid.status, 400, "body {}", invalid.text());
    assert_eq!(error_code(&invalid), "invalid_json");

    // When it has no messages array: 400 invalid_request
    let no_messages = post_chat(&gateway, &json!({"model": "auto"})).await;
    assert_eq!(no_messages.status, 400, "body {}", no_messages.text());
    assert_eq!(error_code(&no_messages), "invalid_request");
    let not_an_array = post_chat(&gateway, &json!({"messages": "hi"})).await;
    assert_eq!(not_an_array.status, 400);
    assert_eq!(error_code(&not_an_array), "invalid_request");

    // When it is 4 KiB: 413
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let too_large = post_chat(&gateway, &big).await;
    assert_eq!(too_large.status, 413, "body {}", too_large.text());
    assert_eq!(too_large.json()["error"]["type"], "invalid_request_error");

    // And nothing reached upstream; a small valid body still works
    assert_eq!(mock.request_count(), 0);
    let fine = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&fine, RANK1, 1);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    // Given a gateway
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When an unknown path is asked: 404 in the OpenAI error shape
    let unknown = support::get(gateway.addr, "/v1/engines", &[]).await;
    assert_eq!(unknown.status, 404, "body {}", unknown.text());
    assert_eq!(unknown.header("content-type"), Some("application/json"));
    let body = unknown.json();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    // When the chat path is used with GET: 405 naming POST
    let wrong = support::get(gateway.addr, CHAT, &[]).await;
    assert_eq!(wrong.status, 405, "body {}", wrong.text());
    assert_eq!(wrong.header("allow"), Some("POST"));
    assert!(wrong.json()["error"]["code"].is_string());

    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn ready_503_carries_retry_after() {
    // Given every model is cooling for 120 s after a rate limit
    let mock = MockUpstream::start().await;
    rate_limit_every_model(&mock, "120");
    let gateway = GatewayBuilder::new(&mock)
        .set("routing.max_attempts", 10)
        .start()
        .await;
    assert_eq!(post_chat(&gateway, &chat_body()).await.status, 503);

    // When /ready is asked
    let response = support::get(gateway.addr, "/ready", &[]).await;

    // Then it is a 503 that, like every 503 the gateway writes (§3), says
    // when to come back
    assert_eq!(response.status, 503, "body {}", response.text());
    assert!(response.json()["reason"].is_string());
    let wait = retry_after_secs(&response);
    assert!((1..=120).contains(&wait), "Retry-After {wait}");
}
