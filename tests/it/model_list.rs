//! The model list (SPEC §7) and how it is shown (§3 `/v1/models`, `/ready`,
//! §11 entry shape): start-up sources, refreshes, bad lists.

use crate::support;

use std::time::Duration;

use crate::support::scenario::*;
use crate::support::{GatewayBuilder, MockUpstream};
use serde_json::Value;

const ADMIN_KEY: &str = "admin-key-for-tests";

#[tokio::test]
async fn models_are_listed_auto_first_then_by_rank_without_the_fallback() {
    // Given the fixture list
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;
    let mut expected = vec!["auto".to_string()];
    expected.extend(RANKED.iter().map(|id| id.to_string()));

    for path in ["/v1/models", "/api/v1/models"] {
        // When the list is asked on either path
        let response = support::get(gateway.addr, path, &[]).await;

        // Then it is an OpenAI list: auto, then the fixture in rank order
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let body = response.json();
        assert_eq!(body["object"], "list");
        assert_eq!(model_ids(&response), expected, "{path}");
        assert!(!model_ids(&response).contains(&FALLBACK.to_string()));

        // And each entry has the §11 shape with the §4 defaults applied
        let rank2 = &body["data"][2];
        assert_eq!(rank2["object"], "model");
        assert_eq!(rank2["context_length"], 262144);
        assert!(rank2["created"].is_u64() && rank2["owned_by"].is_string());
        let caps = &rank2["capabilities"];
        // rank 2 omits supportsToolChoice/ResponseFormat/Seed/Stop: true
        for (cap, want) in [
            ("tools", true),
            ("tool_choice", true),
            ("structured_outputs", true),
            ("response_format", true),
            ("reasoning", false),
            ("seed", true),
            ("stop", true),
        ] {
            assert_eq!(caps[cap], want, "{path}: rank 2 capability {cap}");
        }
        assert_eq!(body["data"][3]["capabilities"]["structured_outputs"], false);
    }
    assert_eq!(mock.request_count(), 0, "listing models calls no model");
}

#[tokio::test]
async fn list_source_down_at_start_serves_the_embedded_snapshot() {
    // Given the list source fails and state_dir holds no saved list
    let mock = MockUpstream::start().await;
    mock.set_list(500, "");
    let gateway = GatewayBuilder::new(&mock).start().await;
    assert!(
        support::wait_until(SETTLE, || mock.list_requests() >= 1).await,
        "the gateway never asked for the list"
    );

    // When /ready is asked
    let (status, body) = ready(&gateway).await;

    // Then the gateway is ready on the embedded snapshot
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["models"]["source"], "embedded", "{body}");
    assert_eq!(body["models"]["available"], 6);
    assert!(body["models"]["age_secs"].is_u64(), "{body}");

    // And requests are routed on it
    let response = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&response, RANK1, 1);
    let listed = support::get(gateway.addr, "/v1/models", &[]).await;
    assert_eq!(model_ids(&listed).len(), 7);
}

#[tokio::test]
async fn a_good_list_makes_ready_say_remote() {
    // Given the list source works
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock).start().await;

    // Then /ready eventually reports the remote list
    assert!(
        wait_for_list_source(&gateway, "remote", SETTLE).await,
        "/ready never said remote: {}",
        ready(&gateway).await.1
    );
    let (status, body) = ready(&gateway).await;
    assert_eq!(status, 200);
    assert_eq!(body["models"]["available"], 6);
    assert_eq!(body["keys"]["usable"], 1);
    assert!(mock.list_requests() >= 1);
}

#[tokio::test]
async fn a_garbage_list_keeps_the_previous_snapshot() {
    // Given a custom two-model list has been loaded
    let mock = MockUpstream::start().await;
    mock.set_list(
        200,
        list_document(&[("a/x:free", true), ("b/y:free", true)]),
    );
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.admin_keys", vec![ADMIN_KEY])
        .start()
        .await;
    assert!(
        wait_for_list_source(&gateway, "remote", SETTLE).await,
        "the custom list was never loaded"
    );
    let listed = support::get(gateway.addr, "/v1/models", &[]).await;
    assert_eq!(model_ids(&listed), ["auto", "a/x:free", "b/y:free"]);
    // (the refresher publishes its report right after swapping the list in)
    tokio::time::sleep(Duration::from_millis(200)).await;

    // When the source starts serving garbage and an admin forces a refresh
    mock.set_list(200, "garbage");
    let before = mock.list_requests();
    let bearer = format!("Bearer {ADMIN_KEY}");
    let refresh = support::request(
        gateway.addr,
        "POST",
        "/admin/refresh",
        &[("Authorization", &bearer)],
        b"",
    )
    .await;

    // Then the refresh is reported as failed
    assert_eq!(refresh.status, 502, "body {}", refresh.text());
    let report: Value = refresh.json();
    assert_eq!(report["refreshed"], false, "{report}");
    assert!(report["error"].is_string(), "{report}");
    assert_eq!(mock.list_requests(), before + 1);

    // And the old list is still served
    let listed = support::get(gateway.addr, "/v1/models", &[]).await;
    assert_eq!(model_ids(&listed), ["auto", "a/x:free", "b/y:free"]);
    let response = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&response, "a/x:free", 1);
    let (_, body) = ready(&gateway).await;
    assert_eq!(body["models"]["source"], "remote");
}

#[tokio::test]
async fn admin_refresh_needs_an_admin_key() {
    // Given admin endpoints are enabled with one key
    let mock = MockUpstream::start().await;
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.admin_keys", vec![ADMIN_KEY])
        .start()
        .await;

    // When /admin/refresh is called without a key, or with a wrong one
    let anonymous = support::request(gateway.addr, "POST", "/admin/refresh", &[], b"").await;
    let wrong = support::request(
        gateway.addr,
        "POST",
        "/admin/refresh",
        &[("x-api-key", "not-the-admin-key")],
        b"",
    )
    .await;

    // Then both are refused
    assert_eq!(anonymous.status, 401, "body {}", anonymous.text());
    assert_eq!(error_code(&anonymous), "missing_api_key");
    assert_eq!(wrong.status, 401, "body {}", wrong.text());
    assert_eq!(error_code(&wrong), "invalid_api_key");

    // And with the key (as x-api-key) a good list refreshes
    let ok = support::request(
        gateway.addr,
        "POST",
        "/admin/refresh",
        &[("x-api-key", ADMIN_KEY)],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200, "body {}", ok.text());
    assert_eq!(ok.json()["refreshed"], true);
    assert_eq!(ok.json()["models"], 6);
}
