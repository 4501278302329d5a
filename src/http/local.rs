//! The bodies of the gateway's own endpoints (SPEC §3, §11): `/v1/models`, `/ready`,
//! `/admin/state`. Built here from the snapshot and the shared state; `handlers` writes them.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::domain::models::{Model, Snapshot};
use crate::gateway::app::App;
use crate::state::key_pool::KeyState;
use crate::util::time::epoch_secs;

fn model_entry(
    id: &str,
    created: u64,
    context_length: u64,
    caps: &crate::domain::models::Capabilities,
) -> Value {
    json!({
        "id": id,
        "object": "model",
        "created": created,
        "owned_by": id.split_once('/').map_or("free-llm-proxy", |(owner, _)| owner),
        "context_length": context_length,
        "capabilities": {
            "tools": caps.tools,
            "tool_choice": caps.tool_choice,
            "structured_outputs": caps.structured_outputs,
            "response_format": caps.response_format,
            "reasoning": caps.reasoning,
            "seed": caps.seed,
            "stop": caps.stop,
        }
    })
}

/// OpenAI model list: the virtual `auto` first, then the snapshot in rank order.
pub fn models_body(snapshot: &Snapshot) -> Value {
    let created = epoch_secs(snapshot.list.updated_at.unwrap_or(snapshot.loaded_at));
    let models = &snapshot.list.models;
    // `auto` can do whatever some model can, up to the largest context.
    let any = |f: fn(&Model) -> bool| models.iter().any(f);
    let auto_caps = crate::domain::models::Capabilities {
        tools: any(|m| m.capabilities.tools),
        tool_choice: any(|m| m.capabilities.tool_choice),
        structured_outputs: any(|m| m.capabilities.structured_outputs),
        response_format: any(|m| m.capabilities.response_format),
        reasoning: any(|m| m.capabilities.reasoning),
        seed: any(|m| m.capabilities.seed),
        stop: any(|m| m.capabilities.stop),
    };
    let max_context = models.iter().map(|m| m.context_length).max().unwrap_or(0);
    let mut data = vec![model_entry("auto", created, max_context, &auto_caps)];
    data.extend(
        models
            .iter()
            .map(|m| model_entry(&m.id, created, m.context_length, &m.capabilities)),
    );
    json!({ "object": "list", "data": data })
}

/// `/ready`: 200 when a model is not cooling and a key is usable.
pub fn ready_body(app: &App, now: SystemTime) -> (bool, Value) {
    let snapshot = app.state.registry.snapshot();
    let (available, cooling) = app.state.model_tally(&snapshot, now);
    let keys = app.state.keys.tally(now);
    let reason = if available == 0 {
        Some("every listed model is cooling down")
    } else if keys.usable == 0 {
        Some(if keys.cooling + keys.disabled == 0 {
            "no upstream API key is configured"
        } else {
            "no upstream API key is usable"
        })
    } else {
        None
    };
    let body = json!({
        "ready": reason.is_none(),
        "reason": reason,
        "models": {
            "source": snapshot.source.as_str(),
            "age_secs": snapshot.age(now).as_secs(),
            "available": available,
            "cooling": cooling,
        },
        "keys": { "usable": keys.usable, "cooling": keys.cooling, "disabled": keys.disabled },
    });
    (reason.is_none(), body)
}

/// `/admin/state`: the snapshot, cooldowns and keys (masked).
pub fn state_body(app: &App, now: SystemTime) -> Value {
    let snapshot = app.state.registry.snapshot();
    let cooldowns: Vec<Value> = app
        .state
        .cooldowns
        .active(now)
        .into_iter()
        .map(|(model, c)| {
            json!({
                "model": model,
                "until": epoch_secs(c.until),
                "remaining_secs": c.until.duration_since(now).unwrap_or_default().as_secs(),
                "until_refresh": c.until_refresh,
            })
        })
        .collect();
    let keys: Vec<Value> = app
        .state
        .keys
        .view(now)
        .into_iter()
        .map(|k| {
            let (until, reason) = match &k.state {
                KeyState::Active => (None, None),
                KeyState::Cooling { until, reason } => {
                    (Some(epoch_secs(*until)), Some(reason.as_str()))
                }
                KeyState::Disabled { reason } => (None, Some(reason.as_str())),
            };
            json!({
                "key": k.masked,
                "state": k.state.label(),
                "until": until,
                "reason": reason,
                "requests": k.counters.requests,
                "successes": k.counters.successes,
                "errors": {
                    "total": k.counters.errors(),
                    "daily_cap": k.counters.daily_cap,
                    "payment_required": k.counters.payment_required,
                    "unauthorized": k.counters.unauthorized,
                },
                "marked_at": k.marked_at.map(epoch_secs),
            })
        })
        .collect();
    json!({
        "models": {
            "source": snapshot.source.as_str(),
            "age_secs": snapshot.age(now).as_secs(),
            "loaded_at": epoch_secs(snapshot.loaded_at),
            "fallback": snapshot.list.fallback,
            "ranked": snapshot.list.models.iter().map(|m| json!({"rank": m.rank, "id": m.id})).collect::<Vec<_>>(),
        },
        "cooldowns": cooldowns,
        "keys": keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::{parse_list, ListSource, EMBEDDED_LIST};
    use std::time::UNIX_EPOCH;

    #[test]
    fn models_list_has_auto_first_then_rank_order_without_fallback() {
        let snapshot = Snapshot {
            list: parse_list(EMBEDDED_LIST).unwrap(),
            source: ListSource::Embedded,
            loaded_at: UNIX_EPOCH,
        };
        let body = models_body(&snapshot);
        let ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids[0], "auto");
        assert_eq!(ids[1], "inclusionai/ling-2.6-flash:free");
        assert_eq!(ids.len(), 7);
        assert!(!ids.contains(&"openrouter/free"));
        let second = &body["data"][2];
        assert_eq!(second["context_length"], 262144);
        assert_eq!(second["capabilities"]["tool_choice"], true);
        assert_eq!(second["capabilities"]["reasoning"], false);
        assert_eq!(second["owned_by"], "inclusionai");
    }
}
