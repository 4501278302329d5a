//! Several providers behind one ranking (SPEC §12, issue 12): two scripted upstreams on
//! their own ports — one plays OpenRouter, the other a second provider ("groq") — and
//! the real gateway routing between them: endpoints in provider order, the provider's
//! own model id in the body, known limits that skip keys without a call, OpenRouter's
//! learned daily limit, per-provider key faults, and live health demotion.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support;
use crate::support::gateway::TempDir;
use crate::support::scenario::*;
use crate::support::{Behaviour, Gateway, GatewayBuilder, MockUpstream};

const GROQ_KEY: &str = "gsk-second-provider-key-9999";
const GROQ_ID: &str = "groq/ling-flash";
const EXTRA: &str = "llama-3.3-70b-versatile";
const ADMIN: &str = "admin-secret-for-tests";
const PROVIDER_HEADER: &str = "x-free-llm-proxy-provider";

/// A `providers:` list with one provider, `groq`, serving RANK1 under its own id (and
/// one extra model after RANK2), with `limits` and any extra keys given.
fn groq(second: &MockUpstream, limits: Value) -> serde_yaml::Value {
    let provider = json!([{
        "name": "groq",
        "base_url": second.base_url(),
        "api_keys": [GROQ_KEY],
        "limits": limits,
        "models": [
            {"same_as": RANK1, "id": GROQ_ID},
            {"id": EXTRA, "after": RANK2, "context_length": 131072,
             "max_completion_tokens": 32768, "capabilities": {"tools": true}},
        ],
    }]);
    serde_yaml::to_value(provider).unwrap()
}

fn two_providers(openrouter: &MockUpstream, second: &MockUpstream, limits: Value) -> GatewayBuilder {
    GatewayBuilder::new(openrouter)
        .set("providers", groq(second, limits))
        .set("auth.admin_keys", vec![ADMIN])
}

fn groq_first(builder: GatewayBuilder) -> GatewayBuilder {
    builder.set("routing.provider_order", vec!["groq", "openrouter"])
}

async fn admin_state(gateway: &Gateway) -> Value {
    let response = support::get(gateway.addr, "/admin/state", &[("x-api-key", ADMIN)]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

fn key_of<'a>(state: &'a Value, provider: &str) -> &'a Value {
    state["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["provider"] == provider))
        .unwrap_or_else(|| panic!("no {provider} key in {state}"))
}

fn endpoint_of<'a>(state: &'a Value, model: &str, provider: &str) -> &'a Value {
    state["endpoints"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["model"] == model && e["provider"] == provider)
        })
        .unwrap_or_else(|| panic!("no endpoint {model} at {provider} in {state}"))
}

fn daily_cap_body() -> String {
    json!({"error": {
        "code": 429,
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
        "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0"}}
    }})
    .to_string()
}

fn key_info(creator: &str, limit: u64, remaining: u64) -> String {
    json!({"data": {
        "label": "sk-or-v1-...",
        "creator_user_id": creator,
        "free_model_daily_requests": {"limit": limit, "remaining": remaining, "used": limit - remaining},
    }})
    .to_string()
}

#[track_caller]
fn assert_served(response: &support::Response, model: &str, provider: &str, attempts: u32) {
    assert_answered_by(response, model, attempts);
    assert_eq!(response.header(PROVIDER_HEADER), Some(provider), "provider header");
}

#[tokio::test]
async fn rank_1_is_served_by_openrouter_and_models_name_their_providers() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    let gateway = two_providers(&openrouter, &second, json!({})).start().await;

    let response = post_chat(&gateway, &chat_body()).await;
    assert_served(&response, RANK1, "openrouter", 1);
    assert_eq!(second.request_count(), 0);

    // /v1/models: the extra model right after its anchor; every entry names providers.
    let models = support::get(gateway.addr, "/v1/models", &[]).await.json();
    let data = models["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(&ids[..5], ["auto", RANK1, RANK2, EXTRA, RANK3]);
    assert_eq!(data[1]["providers"], json!(["openrouter", "groq"]));
    assert_eq!(data[3]["providers"], json!(["groq"]));
    assert_eq!(data[3]["context_length"], 131072);

    // The extra model is routable by its id, at the provider that describes it.
    let response = post_chat(&gateway, &chat_body_with(json!({"model": EXTRA}))).await;
    assert_served(&response, EXTRA, "groq", 1);
    assert_eq!(second.requests()[0].json()["model"], EXTRA);
}

#[tokio::test]
async fn an_openrouter_daily_cap_moves_the_model_to_the_second_provider_with_its_own_id() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    openrouter.script(RANK1, vec![Behaviour::rate_limited(None, daily_cap_body())]);
    let gateway = two_providers(&openrouter, &second, json!({})).start().await;

    let response = post_chat(&gateway, &chat_body()).await;
    assert_served(&response, RANK1, "groq", 2);
    let sent = second.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["model"], GROQ_ID, "the provider's own id");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {GROQ_KEY}").as_str())
    );
    assert_eq!(response.json()["model"], GROQ_ID, "the answer's own model field");

    // The request log and the metrics name the provider of every attempt.
    let done = gateway.log_events("request_done");
    let attempts = done.last().unwrap()["attempts"].as_array().unwrap().clone();
    let providers: Vec<&str> = attempts.iter().map(|a| a["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["openrouter", "groq"]);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(&format!(
            r#"freellm_upstream_attempts_total{{model="{RANK1}",outcome="success",provider="groq"}} 1"#
        )),
        "{metrics}"
    );

    // The OpenRouter key stays cooling: the next request goes to groq at once.
    let response = post_chat(&gateway, &chat_body()).await;
    assert_served(&response, RANK1, "groq", 1);
    assert_eq!(openrouter.request_count(), 1);
}

#[tokio::test]
async fn a_provider_key_at_its_rpd_is_skipped_and_the_count_survives_a_restart() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    let state = TempDir::new("providers-rpd");
    let builder = || {
        groq_first(two_providers(&openrouter, &second, json!({"rpm": 0, "rpd": 2})))
            .set("state_dir", state.path().to_string_lossy().to_string())
    };
    let mut gateway = builder().start().await;
    for _ in 0..2 {
        assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "groq", 1);
    }
    // The third request makes no call to the provider: its key is at 2 of 2 today.
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
    assert_eq!(second.request_count(), 2);
    let groq_key = key_of(&admin_state(&gateway).await, "groq").clone();
    assert_eq!(groq_key["key"], "...9999");
    let ling = groq_key["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == GROQ_ID)
        .cloned()
        .unwrap();
    assert_eq!(ling["day"], json!({"used": 2, "limit": 2, "source": "config"}));

    // A restart mid-day keeps the day count (saved at shutdown).
    gateway.signal("TERM");
    assert!(gateway.wait_exit(SETTLE).await.is_some(), "gateway did not stop");
    let saved = std::fs::read_to_string(state.path().join("keys.json")).unwrap();
    assert!(!saved.contains(GROQ_KEY), "{saved}");
    let gateway = builder().start().await;
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
    assert_eq!(second.request_count(), 2, "no call to the provider after the restart");
}

#[tokio::test]
async fn key_info_with_nothing_remaining_means_no_openrouter_call_until_the_reset() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    openrouter.set_key_info(
        support::gateway::TEST_UPSTREAM_KEY,
        200,
        key_info("user_1", 50, 0),
    );
    let gateway = GatewayBuilder::new(&openrouter)
        .set("auth.admin_keys", vec![ADMIN])
        .start()
        .await;
    let learned = support::wait_until(SETTLE, || {
        !openrouter.key_requests().is_empty()
    })
    .await;
    assert!(learned, "the gateway never asked /key");
    // The lookup runs in the background; wait until its answer is in the pool.
    let mut day = Value::Null;
    for _ in 0..50 {
        day = key_of(&admin_state(&gateway).await, "openrouter")["day"].clone();
        if day["source"] == "learned" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(day, json!({"used": 50, "limit": 50, "source": "learned"}));
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"freellm_key_quota_remaining{key="...0001",provider="openrouter"} 0"#),
        "{metrics}"
    );

    let response = post_chat(&gateway, &chat_body()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(error_code(&response), "all_models_unavailable");
    let retry = retry_after_secs(&response);
    assert!(retry > 0 && retry <= 86_400, "Retry-After {retry} = until the UTC day turns");
    assert_eq!(openrouter.request_count(), 0, "not one upstream call");
    drop(second);
}

#[tokio::test]
async fn two_keys_of_one_account_share_one_daily_count() {
    let openrouter = MockUpstream::start().await;
    let (key_a, key_b) = ("sk-or-v1-one-account-aaaa", "sk-or-v1-one-account-bbbb");
    for key in [key_a, key_b] {
        openrouter.set_key_info(key, 200, key_info("user_shared", 3, 2));
    }
    let gateway = GatewayBuilder::new(&openrouter)
        .set("upstream.api_keys", vec![key_a, key_b])
        .set("auth.admin_keys", vec![ADMIN])
        .start()
        .await;
    let asked = support::wait_until(SETTLE, || openrouter.key_requests().len() >= 2).await;
    assert!(asked, "both keys looked up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One of 3 left for the account, whichever key asks.
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
    let response = post_chat(&gateway, &chat_body()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(openrouter.request_count(), 1);
    let state = admin_state(&gateway).await;
    for key in state["keys"].as_array().unwrap() {
        assert_eq!(key["day"]["used"], 3, "{key}");
    }
}

#[tokio::test]
async fn a_provider_401_disables_only_that_providers_key() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    second.script(GROQ_ID, vec![Behaviour::error(401, "Invalid API Key")]);
    let gateway = groq_first(two_providers(&openrouter, &second, json!({})))
        .start()
        .await;
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 2);
    let state = admin_state(&gateway).await;
    assert_eq!(key_of(&state, "groq")["state"], "disabled");
    assert_eq!(key_of(&state, "openrouter")["state"], "active");
    // The disabled provider is skipped without a call; OpenRouter serves.
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
    assert_eq!(second.request_count(), 1);
}

#[tokio::test]
async fn a_provider_answering_garbage_or_no_choices_is_a_model_fault_not_a_success() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    for body in [
        Behaviour::status(200, "<html><body>Bad gateway</body></html>"),
        Behaviour::status(200, r#"{"id":"x","object":"chat.completion"}"#),
        Behaviour::status(503, "<html>upstream down</html>"),
        Behaviour::status(429, r#"{"detail":"not the OpenAI error shape"}"#),
    ] {
        second.script(GROQ_ID, vec![body]);
        let gateway = groq_first(two_providers(&openrouter, &second, json!({})))
            .start()
            .await;
        let response = post_chat(&gateway, &chat_body()).await;
        assert_served(&response, RANK1, "openrouter", 2);
    }
    assert_eq!(second.request_count(), 4);
}

#[tokio::test]
async fn a_per_minute_429_at_a_provider_rests_that_key_for_that_model_only() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    let groq_429 = json!({"error": {
        "message": "Rate limit reached for model `groq/ling-flash` in organization `org_1` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 7.5s.",
        "type": "requests", "code": "rate_limit_exceeded"}});
    second.script(
        GROQ_ID,
        vec![Behaviour::status(429, groq_429.to_string())
            .with_header("x-ratelimit-reset-requests", "7.5s")],
    );
    let gateway = groq_first(two_providers(&openrouter, &second, json!({})))
        .start()
        .await;
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 2);
    let state = admin_state(&gateway).await;
    let groq_key = key_of(&state, "groq");
    assert_eq!(groq_key["state"], "active", "the key itself is fine");
    let resting = groq_key["resting"].as_array().unwrap();
    assert_eq!(resting.len(), 1, "{groq_key}");
    assert_eq!(resting[0]["model"], GROQ_ID);
    assert_eq!(resting[0]["reason"], "rate_limited");
    let secs = resting[0]["remaining_secs"].as_u64().unwrap();
    assert!((6..=8).contains(&secs), "rest follows x-ratelimit-reset-requests: {secs}");
    // The endpoint itself is not cooling, and the same key serves its other model.
    assert_eq!(endpoint_of(&state, RANK1, "groq")["state"], "ok");
    let response = post_chat(&gateway, &chat_body_with(json!({"model": EXTRA}))).await;
    assert_served(&response, EXTRA, "groq", 1);
}

/// Poll until `endpoint` at groq is no longer cooling (a failure cools it for 1 s).
async fn wait_not_cooling(gateway: &Gateway) {
    for _ in 0..40 {
        if endpoint_of(&admin_state(gateway).await, RANK1, "groq")["state"] != "cooling" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the groq endpoint kept cooling");
}

#[tokio::test]
async fn an_endpoint_failing_most_of_its_window_is_demoted_behind_the_healthy_ones() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    // 5 answers, then failures: at 6 failures of 11 the success rate drops under 50 %.
    let mut script = vec![Behaviour::ok_json(GROQ_ID); 5];
    script.extend(vec![Behaviour::error(500, "overloaded"); 15]);
    second.script(GROQ_ID, script);
    let gateway = groq_first(two_providers(&openrouter, &second, json!({})))
        .set("routing.error_cooldown_secs", 1)
        .start()
        .await;
    for _ in 0..5 {
        assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "groq", 1);
    }
    for failure in 1..=6 {
        wait_not_cooling(&gateway).await;
        assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 2);
        let endpoint = endpoint_of(&admin_state(&gateway).await, RANK1, "groq").clone();
        assert_eq!(endpoint["demoted"], failure == 6, "after {failure} failures: {endpoint}");
    }
    wait_not_cooling(&gateway).await;
    let endpoint = endpoint_of(&admin_state(&gateway).await, RANK1, "groq").clone();
    assert_eq!(endpoint["state"], "demoted");
    assert_eq!(endpoint["attempts"], 11);
    assert!(endpoint["demoted_reason"].as_str().unwrap().contains("5/11"), "{endpoint}");
    // Demoted, not dropped: the healthy OpenRouter endpoint is tried first now.
    let before = second.request_count();
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
    assert_eq!(second.request_count(), before);
}

#[tokio::test]
async fn a_slow_endpoint_is_demoted() {
    let (openrouter, second) = (MockUpstream::start().await, MockUpstream::start().await);
    second.set_default(
        GROQ_ID,
        Behaviour::ok_json(GROQ_ID).delayed(Duration::from_millis(1300)),
    );
    let gateway = groq_first(two_providers(&openrouter, &second, json!({})))
        .set("routing.slow_ttfb_secs", 1)
        .set("routing.health_window", 5)
        .start()
        .await;
    for _ in 0..5 {
        assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "groq", 1);
    }
    let endpoint = endpoint_of(&admin_state(&gateway).await, RANK1, "groq").clone();
    assert_eq!(endpoint["state"], "demoted", "{endpoint}");
    assert!(
        endpoint["demoted_reason"].as_str().unwrap().contains("time to first byte"),
        "{endpoint}"
    );
    assert!(endpoint["ttfb_p50_ms"].as_u64().unwrap() >= 1300);
    assert_served(&post_chat(&gateway, &chat_body()).await, RANK1, "openrouter", 1);
}
