//! The `request_done` line (SPEC §8/§11): one JSON object per request. It names models,
//! masked key tails and numbers — never prompts, completions or whole keys.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::proxy::RequestCtx;

/// Log target of request lines; the logger prints these messages bare (one JSON per line).
pub const TARGET: &str = "request_done";

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

pub fn line(ctx: &RequestCtx, now: SystemTime) -> Value {
    let attempts: Vec<Value> = ctx
        .attempts
        .iter()
        .map(|a| {
            let mut entry = json!({
                "model": a.model,
                "key": a.key,
                "outcome": a.outcome,
                "status": a.status,
                "duration_ms": a.duration_ms,
                "cooldown_until": a.cooldown_until.map(|t| epoch_ms(t) / 1000),
            });
            if let Some(clamp) = a.max_tokens_clamped {
                entry["max_tokens_clamped"] = json!(clamp);
            }
            entry
        })
        .collect();
    json!({
        "event": "request_done",
        "ts": epoch_ms(now),
        "request_id": ctx.request_id,
        "client": ctx.client,
        "route": ctx.route.label(),
        "stream": ctx.stream,
        "status": ctx.status,
        "duration_ms": ctx.started.elapsed().as_millis() as u64,
        "ttfb_ms": ctx.ttfb.map(|d| d.as_millis() as u64),
        "chosen_model": ctx.chosen_model,
        "attempts": attempts,
        "bytes_forwarded": ctx.bytes_forwarded,
        "client_disconnected": ctx.client_disconnected,
        "events_forwarded": ctx.events_forwarded,
        "mid_stream_error": ctx.mid_stream_error,
    })
}

pub fn emit(ctx: &RequestCtx) {
    // Health probes would drown the log; they are counted in metrics instead.
    if matches!(
        ctx.route,
        crate::api::Route::Health | crate::api::Route::Ready
    ) && ctx.status == 200
    {
        return;
    }
    log::info!(target: TARGET, "{}", line(ctx, SystemTime::now()));
}
