//! The `request_done` line (SPEC §8/§11): one JSON object per request. It names models,
//! masked key tails and numbers — never prompts, completions or whole keys.

use std::time::SystemTime;

use serde::Serialize;

use crate::gateway::ctx::RequestCtx;

/// Log target of request lines; the logger prints these messages bare (one JSON per line).
pub const TARGET: &str = "request_done";

use crate::util::time::epoch_ms;

#[derive(Serialize)]
struct Attempt<'a> {
    model: &'a str,
    key: &'a str,
    outcome: &'a str,
    status: Option<u16>,
    duration_ms: u64,
    cooldown_until: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens_clamped: Option<u64>,
}

#[derive(Serialize)]
struct Line<'a> {
    event: &'static str,
    ts: u64,
    request_id: u64,
    client: Option<&'a str>,
    route: &'static str,
    stream: bool,
    status: u16,
    duration_ms: u64,
    ttfb_ms: Option<u64>,
    chosen_model: Option<&'a str>,
    attempts: Vec<Attempt<'a>>,
    bytes_forwarded: u64,
    client_disconnected: bool,
    events_forwarded: u64,
    mid_stream_error: Option<&'static str>,
}

pub fn line(ctx: &RequestCtx, now: SystemTime) -> String {
    let line = Line {
        event: "request_done",
        ts: epoch_ms(now),
        request_id: ctx.request_id,
        client: ctx.client.as_deref(),
        route: ctx.route.label(),
        stream: ctx.stream,
        status: ctx.status,
        duration_ms: ctx.started.elapsed().as_millis() as u64,
        ttfb_ms: ctx.ttfb.map(|d| d.as_millis() as u64),
        chosen_model: ctx.chosen_model.as_deref(),
        attempts: ctx
            .attempts
            .iter()
            .map(|a| Attempt {
                model: &a.model,
                key: &a.key,
                outcome: a.end.label(),
                status: a.status,
                duration_ms: a.duration_ms,
                cooldown_until: a.end.cooldown_until().map(|t| epoch_ms(t) / 1000),
                max_tokens_clamped: a.max_tokens_clamped,
            })
            .collect(),
        bytes_forwarded: ctx.bytes_forwarded,
        client_disconnected: ctx.client_disconnected,
        events_forwarded: ctx.events_forwarded,
        mid_stream_error: ctx.mid_stream_error,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

pub fn emit(ctx: &RequestCtx) {
    // Health probes would drown the log; they are counted in metrics instead.
    if matches!(
        ctx.route,
        crate::domain::route::Route::Health | crate::domain::route::Route::Ready
    ) && ctx.status == 200
    {
        return;
    }
    log::info!(target: TARGET, "{}", line(ctx, SystemTime::now()));
}
