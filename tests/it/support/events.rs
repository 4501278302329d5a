//! Named SSE events (`event: X` + `data: {...}`, the Anthropic and Responses streams) and
//! the upstream chat chunks that tests script to produce them.
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::support::{Behaviour, SseEnd, SseStep};

/// `event: X\ndata: {...}\n\n` events as (name, data) pairs; each data's `type` is its name.
pub fn events(body: &str) -> Vec<(String, Value)> {
    assert!(
        body.ends_with("\n\n"),
        "stream does not end an event: {body}"
    );
    body.split_terminator("\n\n")
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(v).expect("JSON data"));
                }
            }
            let (name, data) = (name.expect("event line"), data.expect("data line"));
            assert_eq!(
                data["type"],
                name.as_str(),
                "event name and data type agree"
            );
            (name, data)
        })
        .collect()
}

pub fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

pub fn sse(parts: &[String]) -> Behaviour {
    Behaviour::sse(
        parts.iter().map(|p| SseStep::Send(p.clone())).collect(),
        SseEnd::Clean,
    )
}

pub fn data(chunk: Value) -> String {
    format!("data: {chunk}\n\n")
}

pub fn tool_delta(
    model: &str,
    index: u64,
    id: Option<&str>,
    name: Option<&str>,
    args: &str,
) -> String {
    let mut call = json!({"index": index, "type": "function", "function": {"arguments": args}});
    if let Some(id) = id {
        call["id"] = json!(id);
    }
    if let Some(name) = name {
        call["function"]["name"] = json!(name);
    }
    data(json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]
    }))
}

pub fn usage_event(model: &str, prompt: u64, completion: u64) -> String {
    data(json!({
        "id": "gen-1", "object": "chat.completion.chunk", "model": model, "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}
    }))
}
