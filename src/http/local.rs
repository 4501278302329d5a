//! The bodies of the gateway's own endpoints (SPEC §3, §11): `/v1/models`, `/ready`,
//! `/admin/state`. Built here from the snapshot and the shared state; `handlers` writes them.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::domain::catalogue::{Catalogue, Endpoint};
use crate::domain::models::{Model, Snapshot};
use crate::gateway::app::App;
use crate::state::key_pool::{KeyState, KeyTally, KeyView, LimitSource, LimiterView};
use crate::util::time::epoch_secs;

fn model_entry(
    id: &str,
    created: u64,
    context_length: u64,
    caps: &crate::domain::models::Capabilities,
    providers: &[&str],
) -> Value {
    json!({
        "id": id,
        "providers": providers,
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

/// OpenAI model list: the virtual `auto` first, then every routed model (providers'
/// extra models in their place) in rank order; each names the providers serving it.
pub fn models_body(snapshot: &Snapshot, catalogue: &Catalogue, provider_names: &[&str]) -> Value {
    let created = epoch_secs(snapshot.list.updated_at.unwrap_or(snapshot.loaded_at));
    let models: Vec<&Model> = catalogue.models.iter().map(|r| &r.model).collect();
    // `auto` can do whatever some model can, up to the largest context.
    let any = |f: fn(&Model) -> bool| models.iter().any(|m| f(m));
    let auto_caps = crate::domain::models::Capabilities {
        tools: any(|m| m.capabilities.tools),
        tool_choice: any(|m| m.capabilities.tool_choice),
        structured_outputs: any(|m| m.capabilities.structured_outputs),
        response_format: any(|m| m.capabilities.response_format),
        reasoning: any(|m| m.capabilities.reasoning),
        seed: any(|m| m.capabilities.seed),
        stop: any(|m| m.capabilities.stop),
    };
    let name = |e: &Endpoint| provider_names.get(e.provider).copied().unwrap_or("?");
    let mut all_providers: Vec<&str> = Vec::new();
    for routed in &catalogue.models {
        for e in &routed.endpoints {
            if !all_providers.contains(&name(e)) {
                all_providers.push(name(e));
            }
        }
    }
    let max_context = models.iter().map(|m| m.context_length).max().unwrap_or(0);
    let mut data = vec![model_entry(
        "auto",
        created,
        max_context,
        &auto_caps,
        &all_providers,
    )];
    data.extend(catalogue.models.iter().map(|r| {
        let providers: Vec<&str> = r.endpoints.iter().map(name).collect();
        model_entry(
            &r.model.id,
            created,
            r.model.context_length,
            &r.model.capabilities,
            &providers,
        )
    }));
    json!({ "object": "list", "data": data })
}

/// `/ready`: 200 when a model is not cooling and a key is usable.
pub fn ready_body(app: &App, now: SystemTime) -> (bool, Value) {
    let snapshot = app.state.registry.snapshot();
    let (available, cooling) = app.state.model_tally(now);
    let keys = app
        .state
        .pools
        .iter()
        .map(|p| p.tally(now))
        .fold(KeyTally::default(), |a, b| KeyTally {
            usable: a.usable + b.usable,
            cooling: a.cooling + b.cooling,
            disabled: a.disabled + b.disabled,
        });
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

fn limiter_json(l: &LimiterView) -> Value {
    json!({
        "minute": { "used": l.used.minute_used, "limit": l.rpm },
        "day": {
            "used": l.used.day_used,
            "limit": l.rpd,
            "source": l.rpd_source.map(|s| match s {
                LimitSource::Config => "config",
                LimitSource::Learned => "learned",
            }),
        },
    })
}

fn key_json(provider: &str, k: &KeyView, now: SystemTime) -> Value {
    let (until, reason) = match &k.state {
        KeyState::Active => (None, None),
        KeyState::Cooling { until, reason } => (Some(epoch_secs(*until)), Some(reason.as_str())),
        KeyState::Disabled { reason } => (None, Some(reason.as_str())),
    };
    // The account-wide limiter, or the busiest model's, summarises the key.
    let headline = k
        .limiters
        .iter()
        .max_by_key(|l| (l.used.day_used, l.used.minute_used))
        .map(limiter_json)
        .unwrap_or_else(|| json!({"minute": {"used": 0, "limit": null}, "day": {"used": 0, "limit": null, "source": null}}));
    let per_model: Vec<Value> = k
        .limiters
        .iter()
        .filter_map(|l| {
            let mut entry = limiter_json(l);
            entry["model"] = json!(&**l.model.as_ref()?);
            Some(entry)
        })
        .collect();
    let rests: Vec<Value> = k
        .rests
        .iter()
        .map(|(model, rest)| {
            json!({
                "model": &**model,
                "until": epoch_secs(rest.until),
                "remaining_secs": rest.until.duration_since(now).unwrap_or_default().as_secs(),
                "reason": rest.reason.as_str(),
            })
        })
        .collect();
    json!({
        "id": &*k.id,
        "key": k.masked,
        "provider": provider,
        "state": k.state.label(),
        "until": until,
        "cooling_until": until,
        "reason": reason,
        "minute": headline["minute"],
        "day": headline["day"],
        "models": per_model,
        "resting": rests,
        "requests": k.counters.requests,
        "successes": k.counters.successes,
        "errors": {
            "total": k.counters.errors(),
            "daily_cap": k.counters.daily_cap,
            "payment_required": k.counters.payment_required,
            "unauthorized": k.counters.unauthorized,
            "rate_limited": k.counters.rate_limited,
        },
        "marked_at": k.marked_at.map(epoch_secs),
    })
}

/// `/admin/state`: the snapshot, cooldowns, keys (masked) and endpoints (SPEC §12).
pub fn state_body(app: &App, now: SystemTime) -> Value {
    let snapshot = app.state.registry.snapshot();
    let catalogue = app.state.registry.catalogue();
    let cooldowns: Vec<Value> = app
        .state
        .cooldowns
        .active(now)
        .into_iter()
        .map(|(endpoint, c)| {
            json!({
                "model": &*endpoint.provider_model,
                "provider": app.provider_name(endpoint.provider),
                "until": epoch_secs(c.until),
                "remaining_secs": c.until.duration_since(now).unwrap_or_default().as_secs(),
                "until_refresh": c.until_refresh,
            })
        })
        .collect();
    let keys: Vec<Value> = app
        .state
        .pools
        .iter()
        .enumerate()
        .flat_map(|(index, pool)| {
            let provider = app.provider_name(index);
            pool.view(now)
                .into_iter()
                .map(move |k| key_json(provider, &k, now))
        })
        .collect();
    let endpoints: Vec<Value> = catalogue
        .models
        .iter()
        .chain(catalogue.fallback.as_ref())
        .flat_map(|routed| routed.endpoints.iter().map(move |e| (routed, e)))
        .map(|(routed, e)| {
            let cooling = app.state.cooldowns.cooling_until(e, now);
            let health = app.state.health.view(e, now);
            json!({
                "model": routed.model.id,
                "provider": app.provider_name(e.provider),
                "provider_model": &*e.provider_model,
                "state": if cooling.is_some() { "cooling" } else if health.demoted.is_some() { "demoted" } else { "ok" },
                "cooling_until": cooling.map(epoch_secs),
                "demoted": health.demoted.is_some(),
                "demoted_until": health.demoted.as_ref().map(|d| epoch_secs(d.until)),
                "demoted_reason": health.demoted.as_ref().map(|d| d.reason.to_string()),
                "attempts": health.attempts,
                "success_rate": health.success_rate,
                "ttfb_p50_ms": health.ttfb_p50.map(|d| d.as_millis() as u64),
            })
        })
        .collect();
    json!({
        "models": {
            "source": snapshot.source.as_str(),
            "age_secs": snapshot.age(now).as_secs(),
            "loaded_at": epoch_secs(snapshot.loaded_at),
            "fallback": snapshot.list.fallback,
            "ranked": catalogue.models.iter().map(|r| json!({"rank": r.model.rank, "id": r.model.id, "extra": r.extra})).collect::<Vec<_>>(),
        },
        "cooldowns": cooldowns,
        "keys": keys,
        "endpoints": endpoints,
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
        let catalogue = crate::domain::catalogue::build(&snapshot.list, &[], &[0]);
        let body = models_body(&snapshot, &catalogue, &["openrouter"]);
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
        assert_eq!(second["providers"], json!(["openrouter"]));
    }
}
