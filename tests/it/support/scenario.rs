//! Scenario helpers shared by the gateway integration tests: the fixture's
//! model ids, chat bodies, and small assertions on the gateway's answers.
//! Everything here is built on `support` (mock upstream, client, gateway).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, Gateway, Response};

/// The fixture (`shared/fixtures/top-models.json`, also the embedded
/// snapshot) in rank order.
pub const RANK1: &str = "inclusionai/ling-2.6-flash:free";
pub const RANK2: &str = "inclusionai/ling-2.6-1t:free";
pub const RANK3: &str = "minimax/minimax-m2.5:free";
pub const RANK4: &str = "openai/gpt-oss-120b:free";
pub const RANK5: &str = "openai/gpt-oss-20b:free";
pub const RANK6: &str = "nvidia/nemotron-3-super-120b-a12b:free";
pub const RANKED: [&str; 6] = [RANK1, RANK2, RANK3, RANK4, RANK5, RANK6];
/// The fixture's `fallback.id`.
pub const FALLBACK: &str = "openrouter/free";

pub const CHAT: &str = "/v1/chat/completions";
pub const MODEL_HEADER: &str = "x-free-llm-proxy-model";
pub const ATTEMPTS_HEADER: &str = "x-free-llm-proxy-attempts";

/// How long a test waits for something the gateway does in the background.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A minimal non-streamed chat request routed by rank (`model: auto`).
pub fn chat_body() -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
}

/// `chat_body` with extra top-level fields merged in.
pub fn chat_body_with(extra: Value) -> Value {
    let mut body = chat_body();
    for (k, v) in extra.as_object().expect("extra fields are an object") {
        body[k] = v.clone();
    }
    body
}

/// POSTs a chat request to the gateway with no client key.
pub async fn post_chat(gateway: &Gateway, body: &Value) -> Response {
    support::post_json(gateway.addr, CHAT, body, &[]).await
}

/// The gateway's own error code (`error.code`), panicking with the body when
/// the answer is not an OpenAI-shaped error.
pub fn error_code(response: &Response) -> String {
    let body = response.json();
    match body.pointer("/error/code").and_then(Value::as_str) {
        Some(code) => code.to_string(),
        None => panic!(
            "expected an OpenAI-shaped error, got status {} body {}",
            response.status,
            response.text()
        ),
    }
}

/// The `error.message` of an OpenAI-shaped error.
pub fn error_message(response: &Response) -> String {
    response
        .json()
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error.message in {}", response.text()))
        .to_string()
}

/// `Retry-After` as integer seconds; panics unless present and an integer.
pub fn retry_after_secs(response: &Response) -> u64 {
    let value = response.header("retry-after").unwrap_or_else(|| {
        panic!(
            "status {} has no Retry-After; headers {:?}",
            response.status, response.headers
        )
    });
    value
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {value:?} is not integer seconds"))
}

/// The `choices[0].message.content` of a non-streamed completion.
pub fn completion_content(response: &Response) -> String {
    response
        .json()
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no completion content in {}", response.text()))
        .to_string()
}

/// Asserts a 200 that `model` answered after `attempts` attempts.
#[track_caller]
pub fn assert_answered_by(response: &Response, model: &str, attempts: u32) {
    assert_eq!(
        response.status,
        200,
        "expected 200 from {model}, got body {}",
        response.text()
    );
    assert_eq!(
        response.header(MODEL_HEADER),
        Some(model),
        "answering model"
    );
    assert_eq!(
        response.header(ATTEMPTS_HEADER),
        Some(attempts.to_string().as_str()),
        "attempts header"
    );
}

/// The `/ready` body.
pub async fn ready(gateway: &Gateway) -> (u16, Value) {
    let response = support::get(gateway.addr, "/ready", &[]).await;
    (response.status, response.json())
}

/// Polls `/ready` until the list in use came from `source` (`remote`,
/// `state_dir`, `embedded`); false after `timeout`.
pub async fn wait_for_list_source(gateway: &Gateway, source: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, body) = ready(gateway).await;
        if body.pointer("/models/source").and_then(Value::as_str) == Some(source) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The ids of a `/v1/models` answer, in order.
pub fn model_ids(response: &Response) -> Vec<String> {
    response.json()["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array in {}", response.text()))
        .iter()
        .map(|m| m["id"].as_str().expect("string id").to_string())
        .collect()
}

/// A ranked list document with these `(id, supportsTools)` entries, every
/// other capability left to the §4 defaults, and `openrouter/free` as the
/// fallback.
pub fn list_document(models: &[(&str, bool)]) -> String {
    let models: Vec<Value> = models
        .iter()
        .enumerate()
        .map(|(i, (id, tools))| {
            json!({
                "rank": i + 1,
                "id": id,
                "contextLength": 65536,
                "maxCompletionTokens": 8192,
                "supportsTools": tools,
            })
        })
        .collect();
    json!({
        "updatedAt": "2026-04-25T03:17:45.681Z",
        "fallback": {"id": FALLBACK},
        "models": models,
    })
    .to_string()
}

/// Every listed model and the list's fallback answer 429 with `Retry-After: secs`.
pub fn rate_limit_every_model(mock: &support::MockUpstream, retry_after_secs: &str) {
    for model in RANKED.iter().chain([&FALLBACK]) {
        mock.set_default(
            model,
            support::Behaviour::rate_limited(
                Some(retry_after_secs),
                support::mock::error_body(429, "busy"),
            ),
        );
    }
}
