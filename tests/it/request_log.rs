//! The per-request log line (SPEC §8, §11 `request_done`): one JSON line per
//! request, naming models and masked keys, never a whole key.

use crate::support;

use crate::support::gateway::TEST_UPSTREAM_KEY;
use crate::support::mock::error_body;
use crate::support::scenario::*;
use crate::support::{wait_until, Behaviour, Gateway, GatewayBuilder, MockUpstream};
use serde_json::Value;

/// `request_done` lines other than health probes.
fn request_lines(gateway: &Gateway) -> Vec<Value> {
    gateway
        .log_events("request_done")
        .into_iter()
        .filter(|line| line["route"] != "health" && line["route"] != "ready")
        .collect()
}

#[tokio::test]
async fn every_request_is_one_request_done_line_with_masked_keys() {
    // Given rank 1 is rate-limited once and one client key is configured
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(Some("60"), error_body(429, "busy"))],
    );
    let client_keys: serde_yaml::Value =
        serde_yaml::from_str("[{name: alice, key: alice-log-key-9}]").unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("auth.client_keys", client_keys)
        .start()
        .await;
    let alice = [("x-api-key", "alice-log-key-9")];

    // When three requests come: a chat that falls back, a model list, and
    // one with a wrong key
    let chat = support::post_json(gateway.addr, CHAT, &chat_body(), &alice).await;
    assert_answered_by(&chat, RANK2, 2);
    let models = support::get(gateway.addr, "/v1/models", &alice).await;
    assert_eq!(models.status, 200);
    let refused =
        support::post_json(gateway.addr, CHAT, &chat_body(), &[("x-api-key", "wrong")]).await;
    assert_eq!(refused.status, 401);

    // Then exactly three request_done lines appear
    assert!(
        wait_until(SETTLE, || request_lines(&gateway).len() >= 3).await,
        "request_done lines: {:?}",
        request_lines(&gateway)
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let lines = request_lines(&gateway);
    assert_eq!(lines.len(), 3, "{lines:#?}");

    // And the chat line names the chosen model and both attempts, with the
    // key masked to its tail
    let chat_line = lines
        .iter()
        .find(|l| l["status"] == 200 && l["route"] == "chat_completions")
        .unwrap_or_else(|| panic!("no chat line in {lines:#?}"));
    for field in ["ts", "request_id", "duration_ms", "ttfb_ms"] {
        assert!(chat_line[field].is_u64(), "{field} in {chat_line}");
    }
    assert_eq!(chat_line["event"], "request_done");
    assert_eq!(chat_line["client"], "alice");
    assert_eq!(chat_line["stream"], false);
    assert_eq!(chat_line["chosen_model"], RANK2);
    let attempts = chat_line["attempts"].as_array().expect("attempts array");
    assert_eq!(attempts.len(), 2, "{chat_line}");
    assert_eq!(attempts[0]["model"], RANK1);
    assert_eq!(attempts[0]["key"], "...0001");
    assert_eq!(attempts[0]["status"], 429);
    assert!(attempts[0]["outcome"].is_string());
    assert!(attempts[0]["cooldown_until"].is_u64(), "{chat_line}");
    assert!(attempts[0]["duration_ms"].is_u64());
    assert_eq!(attempts[1]["model"], RANK2);
    assert_eq!(attempts[1]["key"], "...0001");
    assert_eq!(attempts[1]["status"], 200);

    // And the other two are there with their statuses
    assert!(lines
        .iter()
        .any(|l| l["status"] == 200 && l["route"] != "chat_completions"));
    assert!(lines
        .iter()
        .any(|l| l["status"] == 401 && l["attempts"] == Value::Array(vec![])));

    // And neither the upstream key nor a prompt appears anywhere in the log
    let logs = gateway.logs();
    assert!(
        !logs.contains(TEST_UPSTREAM_KEY),
        "the whole upstream key was logged"
    );
    assert!(
        !logs.contains("alice-log-key-9"),
        "the client key was logged"
    );
    assert!(!logs.contains("\"content\":\"hi\""), "a prompt was logged");
}
