//! Routing of paths to handlers, and the gateway's own endpoints (SPEC §3): `/v1/models`,
//! `/health`, `/ready`, `/admin/*`. Handlers build bodies; `proxy` writes them.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::domain::models::{Model, Snapshot};
use crate::gateway::app::App;
use crate::state::key_pool::KeyState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    /// `POST /anthropic/v1/messages` (SPEC §10).
    AnthropicMessages,
    /// `POST /anthropic/v1/messages/count_tokens`: answered locally.
    AnthropicCountTokens,
    /// `HEAD/GET /anthropic/api/hello` and `HEAD /anthropic` (the base URL itself): Claude
    /// Code's start-up connectivity probes, answered without auth.
    AnthropicHello,
    Models,
    Health,
    Ready,
    AdminRefresh,
    AdminState,
    AdminKeysReset,
    /// The path exists but not for this method; carries the allowed method.
    WrongMethod(&'static str),
    NotFound,
}

impl Route {
    /// Label used in logs and metrics (bounded set; never the raw path).
    pub fn label(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat_completions",
            Route::AnthropicMessages => "anthropic_messages",
            Route::AnthropicCountTokens => "anthropic_count_tokens",
            Route::AnthropicHello => "anthropic_hello",
            Route::Models => "models",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::AdminRefresh => "admin_refresh",
            Route::AdminState => "admin_state",
            Route::AdminKeysReset => "admin_keys_reset",
            Route::WrongMethod(_) => "wrong_method",
            Route::NotFound => "not_found",
        }
    }
}

/// Match on the path only; any query string (`?beta=true`) is ignored.
pub fn route(method: &str, path_and_query: &str) -> Route {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let path = path
        .strip_prefix("/api")
        .filter(|p| p.starts_with("/v1/"))
        .unwrap_or(path);
    let (wanted, route) = match path {
        "/v1/chat/completions" => ("POST", Route::ChatCompletions),
        "/anthropic/v1/messages" => ("POST", Route::AnthropicMessages),
        "/anthropic/v1/messages/count_tokens" => ("POST", Route::AnthropicCountTokens),
        "/anthropic/api/hello" | "/anthropic" => ("GET", Route::AnthropicHello),
        "/v1/models" => ("GET", Route::Models),
        "/health" => ("GET", Route::Health),
        "/ready" => ("GET", Route::Ready),
        "/admin/refresh" => ("POST", Route::AdminRefresh),
        "/admin/state" => ("GET", Route::AdminState),
        "/admin/keys/reset" => ("POST", Route::AdminKeysReset),
        _ => return Route::NotFound,
    };
    let method_ok = method == wanted || (wanted == "GET" && method == "HEAD");
    if method_ok {
        route
    } else {
        Route::WrongMethod(wanted)
    }
}

/// Which API shape a request speaks: decides how answers and errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    OpenAi,
    Anthropic,
}

impl Front {
    /// Everything under `/anthropic/` (unknown paths included) answers in the Anthropic
    /// shape, so Claude Code can read every error.
    pub fn of_path(path_and_query: &str) -> Front {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if path == "/anthropic" || path.starts_with("/anthropic/") {
            Front::Anthropic
        } else {
            Front::OpenAi
        }
    }
}

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
    let snapshot = app.registry.snapshot();
    let (available, cooling) = app.model_tally(&snapshot, now);
    let keys = app.keys.tally(now);
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

/// Time until the earliest cooling listed model or key is usable again, if any is cooling.
pub fn usable_again_in(app: &App, now: SystemTime) -> Option<std::time::Duration> {
    let snapshot = app.registry.snapshot();
    let models = snapshot
        .list
        .models
        .iter()
        .filter_map(|m| app.cooldowns.cooling_until(&m.id, now));
    let keys = app
        .keys
        .view(now)
        .into_iter()
        .filter_map(|k| match k.state {
            KeyState::Cooling { until, .. } => Some(until),
            _ => None,
        });
    models
        .chain(keys)
        .min()
        .map(|until| until.duration_since(now).unwrap_or_default())
}

/// `/admin/state`: the snapshot, cooldowns and keys (masked).
pub fn state_body(app: &App, now: SystemTime) -> Value {
    let snapshot = app.registry.snapshot();
    let cooldowns: Vec<Value> = app
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
    fn route_table() {
        let cases = [
            ("POST", "/v1/chat/completions", Route::ChatCompletions),
            (
                "POST",
                "/api/v1/chat/completions?beta=true",
                Route::ChatCompletions,
            ),
            ("POST", "/v1/chat/completions/", Route::ChatCompletions),
            ("GET", "/v1/chat/completions", Route::WrongMethod("POST")),
            ("GET", "/v1/models", Route::Models),
            ("GET", "/api/v1/models", Route::Models),
            ("HEAD", "/health", Route::Health),
            ("GET", "/ready", Route::Ready),
            ("POST", "/admin/refresh", Route::AdminRefresh),
            ("GET", "/admin/state", Route::AdminState),
            ("POST", "/admin/keys/reset", Route::AdminKeysReset),
            ("POST", "/anthropic/v1/messages", Route::AnthropicMessages),
            (
                "POST",
                "/anthropic/v1/messages?beta=true",
                Route::AnthropicMessages,
            ),
            (
                "POST",
                "/anthropic/v1/messages/count_tokens?beta=true",
                Route::AnthropicCountTokens,
            ),
            ("GET", "/anthropic/v1/messages", Route::WrongMethod("POST")),
            ("HEAD", "/anthropic/api/hello", Route::AnthropicHello),
            ("GET", "/anthropic/api/hello", Route::AnthropicHello),
            ("HEAD", "/anthropic", Route::AnthropicHello),
            ("HEAD", "/anthropic/", Route::AnthropicHello),
            ("POST", "/v1/messages", Route::NotFound),
            ("GET", "/api/health", Route::NotFound),
            ("GET", "/", Route::NotFound),
            ("GET", "/v1/modelsx", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn front_by_path() {
        let cases = [
            ("/anthropic/v1/messages?beta=true", Front::Anthropic),
            ("/anthropic/nope", Front::Anthropic),
            ("/anthropic", Front::Anthropic),
            ("/anthropicx/v1/messages", Front::OpenAi),
            ("/v1/chat/completions?x=/anthropic/", Front::OpenAi),
        ];
        for (path, want) in cases {
            assert_eq!(Front::of_path(path), want, "{path}");
        }
    }

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
