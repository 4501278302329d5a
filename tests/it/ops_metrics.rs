//! Prometheus metrics on `metrics_listen` (SPEC §8): every contract name, with
//! bounded labels, after a few requests of different kinds.

use crate::support;

use std::time::{Duration, Instant};

use crate::support::gateway::TEST_UPSTREAM_KEY;
use crate::support::mock::error_body;
use crate::support::scenario::*;
use crate::support::{Behaviour, Gateway, GatewayBuilder, MockUpstream};

/// Polls `/metrics` until it contains every line in `wanted` (or `SETTLE` passes):
/// request metrics are recorded in the logging hook, just after the answer is sent.
async fn metrics_with(gateway: &Gateway, wanted: &[&str]) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = gateway.metrics().await;
        let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(**w)).collect();
        if missing.is_empty() {
            return text;
        }
        if Instant::now() >= deadline {
            panic!("/metrics lacks {missing:?}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_expose_every_contract_name_with_bounded_labels() {
    // Given rank 1 is rate-limited once and a client key "alice"
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(Some("60"), error_body(429, "busy"))],
    );
    let client_keys: serde_yaml::Value =
        serde_yaml::from_str("[{name: alice, key: alice-metrics-key-1}]").unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", client_keys)
        .start()
        .await;
    let alice = [("x-api-key", "alice-metrics-key-1")];

    // When alice makes a chat that falls back to rank 2, a streamed chat, and
    // lists the models; someone else knocks with a wrong key; a probe asks /health
    let chat = support::post_json(gateway.addr, CHAT, &chat_body(), &alice).await;
    assert_answered_by(&chat, RANK2, 2);
    let stream_body = chat_body_with(serde_json::json!({"stream": true}));
    let streamed = support::post_json(gateway.addr, CHAT, &stream_body, &alice).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert_eq!(
        support::get(gateway.addr, "/v1/models", &alice)
            .await
            .status,
        200
    );
    let refused = support::post_json(
        gateway.addr,
        "/v1/chat/completions?token=secret-in-query",
        &chat_body(),
        &[("x-api-key", "wrong-key-zzz")],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(support::get(gateway.addr, "/health", &[]).await.status, 200);

    // Then /metrics shows every SPEC §8 name with the expected labels
    let text = metrics_with(
        &gateway,
        &[
            r#"freellm_requests_total{client="alice",route="chat_completions",status="200"} 2"#,
            r#"freellm_requests_total{client="alice",route="models",status="200"} 1"#,
            r#"freellm_requests_total{client="anonymous",route="chat_completions",status="401"} 1"#,
            // (start-up probes are counted too)
            r#"freellm_requests_total{client="anonymous",route="health",status="200"} "#,
            r#"freellm_request_duration_seconds_count{route="chat_completions"} 3"#,
            r#"freellm_request_duration_seconds_bucket{route="chat_completions",le="+Inf"} 3"#,
            &format!(r#"freellm_upstream_attempts_total{{model="{RANK1}",outcome="#),
            // Rank 1 is cooling by the time the stream comes: rank 2 serves both.
            &format!(r#"freellm_upstream_attempts_total{{model="{RANK2}",outcome="success",provider="openrouter"}} 2"#),
            r#"freellm_ttfb_seconds_count{route="chat_completions"} 2"#,
            r#"freellm_ttfb_seconds_bucket{route="chat_completions",le="0.0005"}"#,
            r#"freellm_ttfb_seconds_bucket{route="chat_completions",le="600"}"#,
            "freellm_fallback_depth_count 2",
            r#"freellm_fallback_depth_bucket{le="1"} 1"#,
            r#"freellm_fallback_depth_bucket{le="2"} 2"#,
            // Rank 1 cools after its 429 (Retry-After: 60); five others stay available.
            "freellm_models_available 5",
            "freellm_models_cooling 1",
            "freellm_model_list_age_seconds ",
            r#"freellm_keys{state="active"} 1"#,
            r#"freellm_keys{state="cooling"} 0"#,
            r#"freellm_keys{state="disabled"} 0"#,
        ],
    )
    .await;
    for name in [
        "freellm_requests_total",
        "freellm_request_duration_seconds",
        "freellm_upstream_attempts_total",
        "freellm_ttfb_seconds",
        "freellm_models_available",
        "freellm_models_cooling",
        "freellm_model_list_age_seconds",
        "freellm_keys",
        "freellm_fallback_depth",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no # TYPE line for {name}"
        );
    }
    assert!(text.contains("# TYPE freellm_fallback_depth histogram"));
    assert!(text.contains("# TYPE freellm_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE freellm_ttfb_seconds histogram"));

    // And no label carries a key, a raw path or a query string
    for leak in [
        "alice-metrics-key-1",
        "wrong-key-zzz",
        TEST_UPSTREAM_KEY,
        "secret-in-query",
        "/v1/",
    ] {
        assert!(!text.contains(leak), "{leak} appears in /metrics");
    }
    // And the fallback model is not counted among the listed ones
    assert!(!text.contains(FALLBACK), "{text}");
}

#[tokio::test]
async fn model_list_age_tracks_the_list_in_use() {
    // Given a gateway serving the fixture
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // When Prometheus scrapes
    let text = metrics_with(&gateway, &["freellm_model_list_age_seconds "]).await;

    // Then the age is a non-negative number and all six models are available
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("freellm_model_list_age_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no numeric list age in\n{text}"));
    assert!(age >= 0.0, "{age}");
    assert!(text.contains("freellm_models_available 6"), "{text}");
    assert!(text.contains("freellm_models_cooling 0"), "{text}");
}

#[tokio::test]
async fn a_busy_metrics_port_stops_the_start_with_a_reason() {
    // Given something already listens on the metrics address
    let mock = MockUpstream::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local address").to_string();

    // When the gateway starts with that metrics_listen
    let mut gateway = GatewayBuilder::new(&mock)
        .set("metrics_listen", addr.as_str())
        .spawn();

    // Then it exits non-zero at once and names the address
    let status = gateway
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the gateway kept running on a busy metrics port");
    assert!(!status.success());
    assert!(
        gateway.logs().contains(&format!("cannot listen on {addr}")),
        "{}",
        gateway.logs()
    );
}
