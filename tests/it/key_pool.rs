//! The upstream key pool (SPEC §5 key rows, issue 4): quota-aware rotation, state that
//! survives restarts and `kill -9`, key sources that follow files and URLs.

use crate::support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::gateway::TempDir;
use crate::support::scenario::*;
use crate::support::{Behaviour, GatewayBuilder, MockUpstream};
use serde_json::{json, Value};

const KEY_A: &str = "sk-or-v1-alpha-account-aaaa";
const KEY_B: &str = "sk-or-v1-bravo-account-bbbb";
const ADMIN: &str = "admin-secret-for-tests";

fn daily_cap_body(reset_ms: u64) -> String {
    json!({"error": {
        "code": 429,
        "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
        "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset_ms.to_string()}}
    }})
    .to_string()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn bearer(req: &support::RecordedRequest) -> String {
    req.header("authorization")
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string()
}

fn two_keys(mock: &MockUpstream, state_dir: &std::path::Path) -> GatewayBuilder {
    GatewayBuilder::new(mock)
        .set("upstream.api_keys", vec![KEY_A, KEY_B])
        .set("state_dir", state_dir.to_string_lossy().to_string())
        .set("auth.admin_keys", vec![ADMIN])
}

async fn admin_state(gateway: &support::Gateway) -> Value {
    let response = support::get(gateway.addr, "/admin/state", &[("x-api-key", ADMIN)]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

fn key_entry<'a>(state: &'a Value, tail: &str) -> &'a Value {
    state["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["key"] == format!("...{tail}")))
        .unwrap_or_else(|| panic!("no key ...{tail} in {state}"))
}

#[tokio::test]
async fn daily_cap_moves_to_the_next_key_and_the_rest_survives_a_restart() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-state");
    let reset = SystemTime::now() + Duration::from_secs(3600);
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(
            None,
            daily_cap_body(epoch_ms(reset)),
        )],
    );
    let gateway = two_keys(&mock, state_dir.path()).start().await;

    // Given key A hits its account's daily cap, the SAME model answers on key B.
    let response = post_chat(&gateway, &chat_body()).await;
    assert_answered_by(&response, RANK1, 2);
    let seen: Vec<String> = mock.requests_for(RANK1).iter().map(bearer).collect();
    assert_eq!(seen, [KEY_A, KEY_B]);

    // A rests until the reset time the upstream gave.
    let state = admin_state(&gateway).await;
    let a = key_entry(&state, "aaaa");
    assert_eq!(a["state"], "cooling");
    assert_eq!(a["reason"], "daily_cap");
    assert_eq!(a["until"].as_u64(), Some(epoch_ms(reset) / 1000));

    // The state file is written at once (by a task woken on the change), and holds no
    // whole key.
    let keys_json = state_dir.path().join("keys.json");
    let written = support::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&keys_json).is_ok_and(|t| t.contains("\"cooling\""))
    })
    .await;
    assert!(written, "keys.json never recorded the cooling key");
    let saved = std::fs::read_to_string(&keys_json).expect("keys.json written");
    assert!(!saved.contains(KEY_A) && !saved.contains(KEY_B), "{saved}");
    assert!(saved.contains("\"cooling\""), "{saved}");
    drop(gateway);

    // After a restart A is still cooling and never used.
    mock.clear_requests();
    let gateway = two_keys(&mock, state_dir.path()).start().await;
    for _ in 0..3 {
        assert_eq!(post_chat(&gateway, &chat_body()).await.status, 200);
    }
    let seen: Vec<String> = mock.requests().iter().map(bearer).collect();
    assert_eq!(seen, [KEY_B, KEY_B, KEY_B]);
    assert_eq!(
        key_entry(&admin_state(&gateway).await, "aaaa")["state"],
        "cooling"
    );

    // An admin reset brings A back.
    let reset = support::post_json(
        gateway.addr,
        "/admin/keys/reset",
        &json!({}),
        &[("x-api-key", ADMIN)],
    )
    .await;
    assert_eq!(reset.status, 200);
    assert_eq!(
        key_entry(&admin_state(&gateway).await, "aaaa")["state"],
        "active"
    );
}

#[tokio::test]
async fn revoked_key_is_disabled_and_the_next_key_used() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-401");
    mock.script(
        RANK1,
        vec![Behaviour::error(401, "No auth credentials found")],
    );
    let gateway = two_keys(&mock, state_dir.path()).start().await;

    assert_answered_by(&post_chat(&gateway, &chat_body()).await, RANK1, 2);
    let state = admin_state(&gateway).await;
    assert_eq!(key_entry(&state, "aaaa")["state"], "disabled");
    assert_eq!(key_entry(&state, "aaaa")["errors"]["unauthorized"], 1);
    assert_eq!(key_entry(&state, "bbbb")["state"], "active");
    // Later requests use B only.
    mock.clear_requests();
    post_chat(&gateway, &chat_body()).await;
    post_chat(&gateway, &chat_body()).await;
    let seen: Vec<String> = mock.requests().iter().map(bearer).collect();
    assert_eq!(seen, [KEY_B, KEY_B]);
}

#[tokio::test]
async fn every_key_revoked_gives_502_naming_only_tails() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-all-401");
    mock.set_default(RANK1, Behaviour::error(401, "User not found"));
    let gateway = two_keys(&mock, state_dir.path()).start().await;

    let response = post_chat(&gateway, &chat_body()).await;
    assert_eq!(response.status, 502, "{}", response.text());
    assert_eq!(error_code(&response), "upstream_auth_error");
    let message = error_message(&response);
    assert!(
        message.contains("...aaaa (len=27)") && message.contains("...bbbb (len=27)"),
        "{message}"
    );
    assert!(!response.text().contains(KEY_A) && !response.text().contains(KEY_B));
}

#[tokio::test]
async fn every_key_cooling_gives_503_with_retry_after() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-all-cooling");
    let reset = SystemTime::now() + Duration::from_secs(600);
    mock.set_default(
        RANK1,
        Behaviour::rate_limited(None, daily_cap_body(epoch_ms(reset))),
    );
    let gateway = two_keys(&mock, state_dir.path()).start().await;

    let response = post_chat(&gateway, &chat_body()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    let wait = retry_after_secs(&response);
    assert!((590..=600).contains(&wait), "Retry-After {wait}");
    // No further upstream call while every key rests.
    let calls = mock.request_count();
    assert_eq!(post_chat(&gateway, &chat_body()).await.status, 503);
    assert_eq!(mock.request_count(), calls);
}

#[tokio::test]
async fn keys_file_edits_are_followed_without_restart() {
    let mock = MockUpstream::start().await;
    let dir = TempDir::new("keys-file");
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, format!("# team keys\n{KEY_A}\n")).unwrap();
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.api_keys", Vec::<String>::new())
        .set("upstream.api_keys_file", file.to_string_lossy().to_string())
        .start()
        .await;

    post_chat(&gateway, &chat_body()).await;
    assert_eq!(bearer(&mock.requests()[0]), KEY_A);

    // The pool polls the file every 2 s; mtime granularity can hide a quick rewrite, so
    // the new content also differs in length.
    std::fs::write(&file, format!("{KEY_B}   # replaced A\n")).unwrap();
    let mut switched = false;
    for _ in 0..50 {
        mock.clear_requests();
        post_chat(&gateway, &chat_body()).await;
        if bearer(&mock.requests()[0]) == KEY_B {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(switched, "the pool never picked up the edited keys file");
}

#[tokio::test]
async fn keys_url_down_leaves_the_pool_unchanged() {
    let mock = MockUpstream::start().await;
    // The CSV export (served on the mock's list path; the model list then fails to parse,
    // so the embedded snapshot is used, which is fine here).
    mock.set_list(200, format!("key,owner\n{KEY_B},bob\n"));
    let gateway = GatewayBuilder::new(&mock)
        .set("upstream.api_keys", vec![KEY_A])
        .set("upstream.api_keys_url", mock.list_url())
        .set("models.refresh_secs", 1)
        .set("auth.admin_keys", vec![ADMIN])
        .start()
        .await;

    let synced = async {
        for _ in 0..50 {
            if admin_state(&gateway).await["keys"]
                .as_array()
                .map_or(0, Vec::len)
                == 2
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(synced.await, "the CSV key never joined the pool");

    mock.set_list(500, "");
    let syncs_before = mock.list_requests();
    let later = support::wait_until(Duration::from_secs(10), || {
        mock.list_requests() >= syncs_before + 2
    })
    .await;
    assert!(later, "no further sync attempts");
    let keys = admin_state(&gateway).await["keys"].clone();
    let tails: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(tails, ["...aaaa", "...bbbb"]);
}

/// `kill -9` at any moment never leaves a torn `keys.json`.
#[tokio::test]
async fn kill_loop_never_corrupts_the_state_file() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-kill");
    let far = epoch_ms(SystemTime::now() + Duration::from_secs(3600));
    mock.set_default(RANK1, Behaviour::rate_limited(None, daily_cap_body(far)));
    for round in 0..8 {
        let gateway = two_keys(&mock, state_dir.path()).start().await;
        // Flip key state as fast as possible: cap both keys, reset, again...
        let addr = gateway.addr;
        let churn = tokio::spawn(async move {
            loop {
                let _ = support::try_request(
                    addr,
                    "POST",
                    CHAT,
                    &[],
                    chat_body().to_string().as_bytes(),
                    Duration::from_secs(2),
                )
                .await;
                let _ = support::try_request(
                    addr,
                    "POST",
                    "/admin/keys/reset",
                    &[("x-api-key", ADMIN)],
                    b"",
                    Duration::from_secs(2),
                )
                .await;
            }
        });
        tokio::time::sleep(Duration::from_millis(150 + 37 * round)).await;
        drop(gateway); // SIGKILL, mid-churn
        churn.abort();
        let path = state_dir.path().join("keys.json");
        let text = std::fs::read_to_string(&path).expect("keys.json exists");
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("round {round}: torn keys.json ({e}): {text}"));
        assert_eq!(
            doc["keys"].as_array().map(Vec::len),
            Some(2),
            "round {round}: {text}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(state_dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(leftovers.len() <= 3, "temp files pile up: {leftovers:?}");
    }
}

#[tokio::test]
async fn no_whole_key_in_logs_responses_or_state() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-leak");
    mock.script(RANK1, vec![Behaviour::error(401, "bad key")]);
    mock.script(
        RANK2,
        vec![Behaviour::rate_limited(
            None,
            daily_cap_body(epoch_ms(SystemTime::now() + Duration::from_secs(60))),
        )],
    );
    let gateway = two_keys(&mock, state_dir.path()).start().await;
    let mut seen = String::new();
    for _ in 0..3 {
        seen.push_str(&post_chat(&gateway, &chat_body()).await.text());
    }
    seen.push_str(&admin_state(&gateway).await.to_string());
    seen.push_str(&support::get(gateway.addr, "/ready", &[]).await.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.push_str(&gateway.logs());
    for entry in std::fs::read_dir(state_dir.path()).unwrap().flatten() {
        seen.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    for key in [KEY_A, KEY_B] {
        assert!(!seen.contains(key), "whole key {key} leaked");
        assert!(!seen.contains(&key[..20]), "a long prefix of {key} leaked");
    }
}

#[tokio::test]
async fn url_keys_get_their_saved_state_back_after_a_restart() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-url-restart");
    mock.set_list(200, format!("key\n{KEY_B}\n"));
    let reset = SystemTime::now() + Duration::from_secs(3600);
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(
            None,
            daily_cap_body(epoch_ms(reset)),
        )],
    );
    let boot = || {
        GatewayBuilder::new(&mock)
            .set("upstream.api_keys", Vec::<String>::new())
            .set("upstream.api_keys_url", mock.list_url())
            .set("state_dir", state_dir.path().to_string_lossy().to_string())
            .set("auth.admin_keys", vec![ADMIN])
            .start()
    };
    let url_key_state = |state: &Value| {
        state["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["key"] == "...bbbb"))
            .map(|k| k["state"].as_str().unwrap_or_default().to_string())
    };

    let gateway = boot().await;
    let mut joined = false;
    for _ in 0..50 {
        if url_key_state(&admin_state(&gateway).await).is_some() {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the URL key never joined the pool");
    // The only key hits its daily cap: it cools, nothing else can serve.
    assert_eq!(post_chat(&gateway, &chat_body()).await.status, 503);
    let keys_json = state_dir.path().join("keys.json");
    let saved = support::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&keys_json).is_ok_and(|t| t.contains("\"cooling\""))
    })
    .await;
    assert!(saved);
    drop(gateway);

    let gateway = boot().await;
    let mut state = None;
    for _ in 0..50 {
        state = url_key_state(&admin_state(&gateway).await);
        if state.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state.as_deref(),
        Some("cooling"),
        "the URL key lost its saved state"
    );
}

/// Reading key state (a Prometheus scrape, `/ready`, `/admin/state`) after a cooldown has
/// run out reports the key active but changes nothing on disk: only a lease moves it.
#[tokio::test]
async fn a_scrape_after_a_cooldown_ends_does_not_rewrite_keys_json() {
    let mock = MockUpstream::start().await;
    let state_dir = TempDir::new("keys-scrape");
    let reset = SystemTime::now() + Duration::from_secs(2);
    mock.script(
        RANK1,
        vec![Behaviour::rate_limited(
            None,
            daily_cap_body(epoch_ms(reset)),
        )],
    );
    let gateway = two_keys(&mock, state_dir.path()).start().await;
    assert_answered_by(&post_chat(&gateway, &chat_body()).await, RANK1, 2);

    let keys_json = state_dir.path().join("keys.json");
    let written = support::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&keys_json).is_ok_and(|t| t.contains("\"cooling\""))
    })
    .await;
    assert!(written, "keys.json never recorded the cooling key");
    let saved = std::fs::read(&keys_json).expect("keys.json");

    // Past the reset, every read path sees key A as active again...
    tokio::time::sleep(reset.duration_since(SystemTime::now()).unwrap_or_default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        gateway.metrics().await;
        assert_eq!(support::get(gateway.addr, "/ready", &[]).await.status, 200);
        assert_eq!(
            key_entry(&admin_state(&gateway).await, "aaaa")["state"],
            "active"
        );
    }
    // ...and the saver, which wakes at once on a state change, has nothing to write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        std::fs::read(&keys_json).expect("keys.json"),
        saved,
        "a read rewrote keys.json"
    );
}
