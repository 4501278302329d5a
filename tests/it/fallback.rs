//! Attempts, fallback and cooldowns (SPEC §5, §11 "stop reasons"): each
//! upstream failure class moves the request to the next model, or does not.

use std::time::{Duration, Instant};

use crate::support::gateway::TEST_UPSTREAM_KEY;
use crate::support::mock::error_body;
use crate::support::scenario::*;
use crate::support::{closed_port, Behaviour, GatewayBuilder, MockUpstream};
use serde_json::json;

#[tokio::test]
async fn rate_limited_model_is_skipped_and_stays_cooled() {
    // Given rank 1 answers 429 with Retry-After: 120 once
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(
            Some("120"),
            error_body(429, "Provider returned error"),
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes, rank 2 answers it on the second attempt
    let first = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&first, RANK2, 2);
    assert_eq!(completion_content(&first), format!("hello from {RANK2}"));

    // When the next request comes, nothing is sent to the cooling rank 1
    let second = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&second, RANK2, 1);
    assert_eq!(mock.count_for(RANK1), 1, "rank 1 is asked once only");
    assert_eq!(mock.count_for(RANK2), 2);
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn server_error_moves_on_and_cools_the_model() {
    // Given rank 1 answers 500 once
    let mock = MockUpstream::start().await;
    mock.script(RANK1, vec![Behaviour::error(500, "Internal Server Error")]);
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When two requests come
    let first = post_chat(&gateway, &chat_body()).await;
    let second = post_chat(&gateway, &chat_body()).await;

    // Then rank 2 answers both; rank 1 (cooling error_cooldown_secs) was
    // asked once
    assert_answered_by(&first, RANK2, 2);
    assert_answered_by(&second, RANK2, 1);
    assert_eq!(mock.count_for(RANK1), 1);
    assert_eq!(mock.count_for(RANK2), 2);
}

#[tokio::test]
async fn timeout_before_headers_moves_on() {
    // Given rank 1 never answers and upstream.timeout_secs is 1
    let mock = MockUpstream::start().await;
    mock.script(RANK1, vec![Behaviour::Hang]);
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.timeout_secs", 1)
        .start()
        .await;

    // When a request comes
    let started = Instant::now();
    let response = post_chat(&gateway, &chat_body()).await;
    let took = started.elapsed();

    // Then rank 2 answers after about one second
    assert_answered_by(&response, RANK2, 2);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    assert_eq!(mock.count_for(RANK1), 1);
    assert_eq!(mock.count_for(RANK2), 1);
}

#[tokio::test]
async fn connection_closed_without_an_answer_moves_on() {
    // Given rank 1 closes the connection without a byte (first request of a
    // fresh gateway, so no pooled connection is involved)
    let mock = MockUpstream::start().await;
    mock.set_default(RANK1, Behaviour::CloseImmediately);
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body()).await;

    // Then rank 2 answers it
    assert_answered_by(&response, RANK2, 2);
    assert_eq!(mock.count_for(RANK1), 1);
    assert_eq!(mock.count_for(RANK2), 1);
}

#[tokio::test]
async fn unreachable_upstream_gives_503_all_models_unavailable() {
    // Given the upstream base_url points at a closed port (the list still
    // comes from the mock)
    let mock = MockUpstream::start().await;
    let dead = format!("http://127.0.0.1:{}/api/v1", closed_port());
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.base_url", dead)
        .start()
        .await;

    // When a request comes
    let started = Instant::now();
    let response = post_chat(&gateway, &chat_body()).await;

    // Then the gateway gives up quickly with its own 503
    assert_eq!(response.status, 503, "body {}", response.text());
    assert_eq!(error_code(&response), "all_models_unavailable");
    assert!(retry_after_secs(&response) >= 1);
    assert_eq!(response.header(MODEL_HEADER), None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn errors_inside_http_200_move_on() {
    // Given rank 1 answers 200 carrying a 429 error, rank 2 200 carrying a 502
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::status(
            200,
            json!({"error": {"code": 429, "message": "Rate limit exceeded", "metadata": {"raw": "x"}}})
                .to_string(),
        )],
    );
    mock.script(
        RANK2,
        vec![Behaviour::status(
            200,
            json!({"error": {"code": 502, "message": "Provider returned error"}}).to_string(),
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body()).await;

    // Then rank 3 answers, and no error body reached the client
    assert_answered_by(&response, RANK3, 3);
    assert_eq!(completion_content(&response), format!("hello from {RANK3}"));
    assert!(response.json().get("error").is_none());

    // And both failed models are cooling
    let next = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&next, RANK3, 1);
    assert_eq!(
        (
            mock.count_for(RANK1),
            mock.count_for(RANK2),
            mock.count_for(RANK3)
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn client_fault_400_is_returned_unchanged_without_fallback() {
    // Given rank 1 rejects the request's parameters with a 400
    let mock = MockUpstream::start().await;
    let upstream_body = r#"{"error":{"code":400,"message":"temperature must be <= 2","metadata":{"provider_name":"X"}}}"#;
    mock.script(
        RANK1,
        vec![Behaviour::status(400, upstream_body).with_header("X-Upstream-Trace", "t-42")],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body_with(json!({"temperature": 7}))).await;

    // Then the client gets that 400, byte for byte, and no other model is asked
    assert_eq!(response.status, 400);
    assert_eq!(response.body, upstream_body.as_bytes());
    assert_eq!(response.header("x-upstream-trace"), Some("t-42"));
    assert_eq!(response.header(MODEL_HEADER), Some(RANK1));
    assert_eq!(response.header(ATTEMPTS_HEADER), Some("1"));
    assert_eq!(mock.request_count(), 1);
    assert_eq!(mock.count_for(RANK1), 1);

    // And rank 1 is not cooled by the client's mistake
    let next = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&next, RANK1, 1);
}

#[tokio::test]
async fn missing_models_move_on() {
    // Given rank 1 answers 404 and rank 2 says it has no endpoints
    let mock = MockUpstream::start().await;
    mock.script(RANK1, vec![Behaviour::error(404, "Model not found")]);
    mock.script(
        RANK2,
        vec![Behaviour::error(
            400,
            &format!("No endpoints found for {RANK2}."),
        )],
    );
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body()).await;

    // Then rank 3 answers it
    assert_answered_by(&response, RANK3, 3);
    assert_eq!(
        (
            mock.count_for(RANK1),
            mock.count_for(RANK2),
            mock.count_for(RANK3)
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn everything_cooling_gives_503_without_upstream_calls() {
    // Given every listed model and the fallback answer 429 Retry-After: 120
    let mock = MockUpstream::start().await;
    rate_limit_every_model(&mock, "120");
    let gateway = GatewayBuilder::new(&mock)
        .set("routing.max_attempts", 10)
        .start()
        .await;

    // When a first request comes, every model is tried once and fails
    let first = post_chat(&gateway, &chat_body()).await;
    assert_eq!(first.status, 503, "body {}", first.text());
    assert_eq!(error_code(&first), "all_models_unavailable");
    let wait = retry_after_secs(&first);
    assert!((100..=120).contains(&wait), "Retry-After {wait}");
    assert_eq!(mock.request_count(), 7);
    for model in RANKED.iter().chain([&FALLBACK]) {
        assert_eq!(mock.count_for(model), 1, "{model}");
    }

    // When a second request comes, it is refused without any upstream call
    let second = post_chat(&gateway, &chat_body()).await;
    assert_eq!(second.status, 503, "body {}", second.text());
    assert_eq!(error_code(&second), "all_models_unavailable");
    let wait = retry_after_secs(&second);
    assert!((100..=120).contains(&wait), "Retry-After {wait}");
    assert_eq!(second.header(MODEL_HEADER), None);
    assert_eq!(
        mock.request_count(),
        7,
        "the second request reached upstream"
    );

    // And /ready says no model is available
    let (status, body) = ready(&gateway).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["models"]["available"], 0);
    assert_eq!(body["models"]["cooling"], 6);
}

#[tokio::test]
async fn max_attempts_bounds_the_attempts() {
    // Given every model fails with 500 and max_attempts is 3
    let mock = MockUpstream::start().await;
    for model in RANKED.iter().chain([&FALLBACK]) {
        mock.set_default(model, Behaviour::error(500, "down"));
    }
    let gateway = GatewayBuilder::new(&mock)
        .set("routing.max_attempts", 3)
        .start()
        .await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body()).await;

    // Then three models are tried, in rank order, and the answer is a 503
    assert_eq!(response.status, 503, "body {}", response.text());
    assert_eq!(error_code(&response), "all_models_unavailable");
    assert!(retry_after_secs(&response) >= 1);
    let order: Vec<String> = mock
        .requests()
        .into_iter()
        .filter_map(|r| r.model)
        .collect();
    assert_eq!(order, [RANK1, RANK2, RANK3]);
}

#[tokio::test]
async fn upstream_401_on_the_only_key_gives_502_naming_the_key_tail() {
    // Given the only upstream key is rejected
    let mock = MockUpstream::start().await;
    mock.set_default(RANK1, Behaviour::error(401, "User not found."));
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When a request comes
    let response = post_chat(&gateway, &chat_body()).await;

    // Then the client gets 502 upstream_auth_error naming the key by its
    // tail and length, never the whole key
    assert_eq!(response.status, 502, "body {}", response.text());
    assert_eq!(error_code(&response), "upstream_auth_error");
    let message = error_message(&response);
    assert!(message.contains("...0001 (len=19)"), "message {message:?}");
    assert!(!response.text().contains(TEST_UPSTREAM_KEY));
    assert_eq!(response.header(MODEL_HEADER), None);
    assert_eq!(
        mock.request_count(),
        1,
        "no other model is tried without a key"
    );

    // And the disabled key is not used again
    let again = post_chat(&gateway, &chat_body()).await;
    assert_eq!(again.status, 502);
    assert_eq!(error_code(&again), "upstream_auth_error");
    assert_eq!(mock.request_count(), 1);
    assert!(!gateway.logs().contains(TEST_UPSTREAM_KEY));
}
