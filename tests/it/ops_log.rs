//! The request log never holds a prompt, a completion or a whole key (SPEC §8):
//! not for non-streamed or streamed chats, not on error paths (upstream 401,
//! invalid JSON, wrong client key), even at debug verbosity.

use crate::support;

use crate::support::gateway::TEST_UPSTREAM_KEY;
use crate::support::scenario::*;
use crate::support::{Behaviour, Gateway, GatewayBuilder, MockUpstream};
use serde_json::json;

const CLIENT_KEY: &str = "alice-leak-check-key-7f3a";
const PROMPT: &str = "PROMPT-CANARY-do-not-log-4471";
const COMPLETION: &str = "COMPLETION-CANARY-do-not-log-9923";
const STREAM_PARTS: [&str; 3] = [
    "STREAM-CANARY-part-one ",
    "STREAM-CANARY-part-two ",
    "STREAM-CANARY-part-three",
];

fn prompt_body(extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": format!("system {PROMPT}")},
            {"role": "user", "content": PROMPT}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Every canary and secret that must not reach the log, with what it is.
fn forbidden() -> Vec<(&'static str, String)> {
    vec![
        ("prompt", PROMPT.to_string()),
        ("completion", COMPLETION.to_string()),
        ("client key", CLIENT_KEY.to_string()),
        ("upstream key", TEST_UPSTREAM_KEY.to_string()),
        // Not even the part a mask hides (masks keep the last 4 characters).
        (
            "upstream key prefix",
            TEST_UPSTREAM_KEY[..TEST_UPSTREAM_KEY.len() - 4].to_string(),
        ),
        (
            "client key prefix",
            CLIENT_KEY[..CLIENT_KEY.len() - 4].to_string(),
        ),
        ("streamed completion", "STREAM-CANARY".to_string()),
        ("prompt fragment", "CANARY-do-not-log-4471".to_string()),
    ]
}

fn assert_no_leak(gateway: &Gateway) {
    let logs = gateway.logs();
    assert!(
        logs.contains(" DEBUG "),
        "the gateway did not log at debug level"
    );
    for (what, text) in forbidden() {
        assert!(
            !logs.contains(&text),
            "the {what} ({text}) appears in the log:\n{logs}"
        );
    }
}

async fn gateway_for(mock: &MockUpstream) -> Gateway {
    let client_keys: serde_yaml::Value =
        serde_yaml::from_str(&format!("[{{name: alice, key: {CLIENT_KEY}}}]")).unwrap();
    GatewayBuilder::new(mock)
        .set("auth.client_keys", client_keys)
        // The most verbose level an operator is likely to turn on.
        .env("RUST_LOG", "debug")
        .start()
        .await
}

/// Waits for `n` chat `request_done` lines, so the log is complete before it is read.
async fn wait_for_chat_lines(gateway: &Gateway, n: usize) {
    let chat_lines = || {
        gateway
            .log_events("request_done")
            .iter()
            .filter(|l| l["route"] == "chat_completions")
            .count()
            >= n
    };
    assert!(
        support::wait_until(SETTLE, chat_lines).await,
        "fewer than {n} chat request_done lines:\n{}",
        gateway.logs()
    );
}

#[tokio::test]
async fn served_chats_streamed_or_not_log_no_prompt_completion_or_key() {
    // Given a model answering with canary completions, plain then streamed
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![
            Behaviour::ok_text(RANK1, COMPLETION),
            Behaviour::sse_text(RANK1, &STREAM_PARTS),
        ],
    );
    let gateway = gateway_for(&mock).await;
    let alice = [("authorization", format!("Bearer {CLIENT_KEY}"))];
    let alice: Vec<(&str, &str)> = alice.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // When alice sends a canary prompt, then the same streamed
    let plain = support::post_json(gateway.addr, CHAT, &prompt_body(json!({})), &alice).await;
    assert_eq!(completion_content(&plain), COMPLETION);
    let streamed = support::post_json(
        gateway.addr,
        CHAT,
        &prompt_body(json!({"stream": true})),
        &alice,
    )
    .await;
    assert!(support::sse_content(&streamed.body).contains("STREAM-CANARY-part-two"));

    // Then both are logged, and the log holds none of the canaries or keys
    wait_for_chat_lines(&gateway, 2).await;
    assert_no_leak(&gateway);
}

#[tokio::test]
async fn error_paths_log_no_prompt_or_key() {
    // Given the only upstream key is refused (401): it gets disabled
    let mock = MockUpstream::start().await;
    mock.set_default(
        RANK1,
        Behaviour::error(401, &format!("No auth credentials found {PROMPT}")),
    );
    let gateway = gateway_for(&mock).await;
    let alice_header = format!("Bearer {CLIENT_KEY}");
    let alice = [("authorization", alice_header.as_str())];

    // When alice's chat meets the 401 (plain, then streamed)
    let failed = support::post_json(gateway.addr, CHAT, &prompt_body(json!({})), &alice).await;
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert_eq!(error_code(&failed), "upstream_auth_error");
    let failed_stream = support::post_json(
        gateway.addr,
        CHAT,
        &prompt_body(json!({"stream": true})),
        &alice,
    )
    .await;
    assert_eq!(failed_stream.status, 502);

    // And a body that is not JSON, and a wrong client key, both carrying canaries
    let broken = format!("{{\"messages\": [{{\"content\": \"{PROMPT}\"");
    let invalid = support::request(
        gateway.addr,
        "POST",
        CHAT,
        &[
            ("authorization", alice_header.as_str()),
            ("content-type", "application/json"),
        ],
        broken.as_bytes(),
    )
    .await;
    assert_eq!(invalid.status, 400);
    let wrong_key = format!("{}-wrong", &CLIENT_KEY[..CLIENT_KEY.len() - 4]);
    let refused = support::post_json(
        gateway.addr,
        CHAT,
        &prompt_body(json!({})),
        &[("x-api-key", wrong_key.as_str())],
    )
    .await;
    assert_eq!(refused.status, 401);

    // Then every request is logged, the upstream key only as its masked tail
    wait_for_chat_lines(&gateway, 4).await;
    let lines = gateway.log_events("request_done");
    let with_attempt = lines
        .iter()
        .find(|l| l["status"] == 502)
        .unwrap_or_else(|| panic!("no 502 line in {lines:#?}"));
    assert_eq!(with_attempt["attempts"][0]["key"], "...0001");
    // And nothing else of the key, the prompt or the client key
    assert_no_leak(&gateway);
}
