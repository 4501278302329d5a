//! Per-client `rpm` (SPEC §3, §11): the request past a client's budget in a
//! minute gets 429 `rate_limited` with `Retry-After`; other clients are not
//! affected; listing models is not counted.

use crate::support;

use crate::support::scenario::*;
use crate::support::{GatewayBuilder, MockUpstream};

#[tokio::test]
async fn the_request_past_a_clients_rpm_gets_429_with_retry_after() {
    // Given alice may make 3 requests a minute, bob 3 as well, carol has no limit
    let mock = MockUpstream::start().await;
    let client_keys: serde_yaml::Value = serde_yaml::from_str(
        "[{name: alice, key: alice-rpm-key, rpm: 3},
          {name: bob, key: bob-rpm-key, rpm: 3},
          {name: carol, key: carol-rpm-key}]",
    )
    .unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", client_keys)
        .start()
        .await;
    let alice = [("authorization", "Bearer alice-rpm-key")];
    let bob = [("x-api-key", "bob-rpm-key")];
    let carol = [("x-api-key", "carol-rpm-key")];

    // When alice sends 3 chats, they are served
    for _ in 0..3 {
        let ok = support::post_json(gateway.addr, CHAT, &chat_body(), &alice).await;
        assert_answered_by(&ok, RANK1, 1);
    }
    let upstream_calls = mock.request_count();

    // Then her 4th in the same minute is refused, OpenAI-shaped, with Retry-After
    let refused = support::post_json(gateway.addr, CHAT, &chat_body(), &alice).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(error_code(&refused), "rate_limited");
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    let wait = retry_after_secs(&refused);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(refused.header(MODEL_HEADER), None);
    // ...without reaching the upstream
    assert_eq!(mock.request_count(), upstream_calls);

    // And so is a streamed one
    let stream = chat_body_with(serde_json::json!({"stream": true}));
    let refused = support::post_json(gateway.addr, CHAT, &stream, &alice).await;
    assert_eq!(refused.status, 429);

    // And listing models is not counted against her
    let models = support::get(gateway.addr, "/v1/models", &alice).await;
    assert_eq!(models.status, 200);

    // And bob (same limit, own budget) and carol (no limit) are unaffected
    for _ in 0..3 {
        let ok = support::post_json(gateway.addr, CHAT, &chat_body(), &bob).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    for _ in 0..5 {
        let ok = support::post_json(gateway.addr, CHAT, &chat_body(), &carol).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    let bob_over = support::post_json(gateway.addr, CHAT, &chat_body(), &bob).await;
    assert_eq!(bob_over.status, 429);

    // And the refusals are logged and counted under the client's name
    let alice_refused = || {
        gateway
            .log_events("request_done")
            .iter()
            .any(|l| l["status"] == 429 && l["client"] == "alice")
    };
    assert!(
        support::wait_until(SETTLE, alice_refused).await,
        "no 429 request_done line for alice"
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(
            r#"freellm_requests_total{client="alice",route="chat_completions",status="429"} 2"#
        ),
        "{metrics}"
    );
}
