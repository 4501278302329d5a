//! Chat Completions answer → Anthropic Messages answer (non-streamed), and the pieces the
//! stream translation shares with it: stop reasons and usage.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::errors::error_body;
use crate::domain::outcome::UpstreamError;
use crate::fronts::chat_wire::{content_text, parse_completion, AnswerError, ChatUsage};

// ---- What the client gets --------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct MessageOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<BlockOut>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'static str>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockOut {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Anthropic usage. The cache counters are always 0 (nothing is cached here) but present,
/// because clients add them up.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }

    /// Upstream's real counts, else the local input estimate and no output.
    pub fn from_chat(usage: Option<ChatUsage>, input_estimate: u64) -> Self {
        match usage {
            Some(u) => Usage::new(u.prompt_tokens, u.completion_tokens),
            None => Usage::new(input_estimate, 0),
        }
    }
}

/// Anthropic `stop_reason` for a chat `finish_reason`. A turn that called tools stops for
/// `tool_use` even when the provider said `stop` (agent loops key on it).
pub fn stop_reason(finish_reason: Option<&str>, called_tools: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// A tool call's arguments as the `input` object. Models do emit broken JSON; the call is
/// still delivered (with `{}`) so the agent can answer with a tool error.
pub fn tool_input(arguments: &str, tool: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) | Err(_) => {
            log::warn!(
                "anthropic: tool call {tool} has arguments that are not a JSON object ({} bytes); sending {{}}",
                arguments.len()
            );
            Value::Object(Default::default())
        }
    }
}

/// Translate a 2xx chat completion body into a Messages answer.
pub fn message(
    body: &[u8],
    id: &str,
    model: &str,
    input_estimate: u64,
) -> Result<Vec<u8>, AnswerError> {
    let completion = parse_completion(body)?;
    let choice = completion.choices.into_iter().next();
    let finish_reason = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let message = choice.and_then(|c| c.message);
    let mut content = Vec::new();
    let mut called_tools = false;
    if let Some(message) = message {
        let text = content_text(message.content);
        if !text.is_empty() {
            content.push(BlockOut::Text { text });
        }
        for (i, call) in message.tool_calls.into_iter().enumerate() {
            called_tools = true;
            let arguments = call.function.arguments.unwrap_or_default();
            content.push(BlockOut::ToolUse {
                id: tool_id(call.id.as_deref(), id, i),
                input: tool_input(&arguments, &call.function.name),
                name: call.function.name,
            });
        }
    }
    let out = MessageOut {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: Some(stop_reason(finish_reason.as_deref(), called_tools)),
        stop_sequence: None,
        usage: Usage::from_chat(completion.usage, input_estimate),
    };
    serde_json::to_vec(&out).map_err(AnswerError::Serialize)
}

/// Upstream's tool call id, or one derived from the message id when it sent none.
pub fn tool_id(upstream: Option<&str>, message_id: &str, n: usize) -> String {
    match upstream {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("toolu_{}_{n}", message_id.trim_start_matches("msg_")),
    }
}

/// An upstream error answer (a client error returned unchanged on the OpenAI front) in
/// the Anthropic shape, same status.
pub fn upstream_error(status: u16, body: &[u8]) -> Vec<u8> {
    let message: Cow<'_, str> = match UpstreamError::from_body(body) {
        Some(error) if !error.message.is_empty() => Cow::Owned(error.message),
        _ => String::from_utf8_lossy(&body[..body.len().min(2048)]),
    };
    error_body(status, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn translate(completion: Value) -> Value {
        let out = message(completion.to_string().as_bytes(), "msg_1", "m/x:free", 99).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn completion(message: Value, finish: &str, usage: Option<Value>) -> Value {
        let mut c = json!({
            "id": "gen-1", "object": "chat.completion", "model": "m/x:free",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        c
    }

    #[test]
    fn text_answer() {
        let got = translate(completion(
            json!({"role": "assistant", "content": "hello"}),
            "stop",
            Some(json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})),
        ));
        assert_eq!(
            got,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m/x:free",
                "content": [{"type": "text", "text": "hello"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 3,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            })
        );
    }

    #[test]
    fn tool_calls_answer() {
        let got = translate(completion(
            json!({"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\"/\"}"}},
                {"type": "function", "function": {"name": "cat", "arguments": "{broken"}},
                {"id": "", "type": "function", "function": {"name": "pwd", "arguments": ""}}
            ]}),
            "tool_calls",
            None,
        ));
        assert_eq!(
            got["content"],
            json!([
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_a", "name": "ls", "input": {"path": "/"}},
                {"type": "tool_use", "id": "toolu_1_1", "name": "cat", "input": {}},
                {"type": "tool_use", "id": "toolu_1_2", "name": "pwd", "input": {}}
            ])
        );
        assert_eq!(got["stop_reason"], "tool_use");
        // No usage upstream: the local estimate.
        assert_eq!(got["usage"]["input_tokens"], 99);
        assert_eq!(got["usage"]["output_tokens"], 0);
    }

    #[test]
    fn stop_reason_table() {
        let cases = [
            (Some("stop"), false, "end_turn"),
            (Some("length"), false, "max_tokens"),
            (Some("length"), true, "max_tokens"),
            (Some("tool_calls"), true, "tool_use"),
            (Some("stop"), true, "tool_use"),
            (Some("content_filter"), false, "refusal"),
            (Some("error"), false, "end_turn"),
            (None, false, "end_turn"),
        ];
        for (finish, tools, want) in cases {
            assert_eq!(stop_reason(finish, tools), want, "{finish:?} {tools}");
        }
    }

    #[test]
    fn empty_and_odd_answers() {
        let got = translate(json!({"choices": []}));
        assert_eq!(got["content"], json!([]));
        assert_eq!(got["stop_reason"], "end_turn");
        let got = translate(completion(
            json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            "length",
            None,
        ));
        assert_eq!(got["content"], json!([{"type": "text", "text": "ab"}]));
        assert_eq!(got["stop_reason"], "max_tokens");
        assert!(message(b"[1,2]", "msg_1", "m", 0).is_err());
    }

    #[test]
    fn upstream_client_error_in_anthropic_shape() {
        let body = upstream_error(
            400,
            br#"{"error":{"code":400,"message":"bad tool schema"}}"#,
        );
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            got,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad tool schema"}})
        );
        let got: Value = serde_json::from_slice(&upstream_error(403, b"nope")).unwrap();
        assert_eq!(got["error"]["type"], "permission_error");
        assert_eq!(got["error"]["message"], "nope");
    }
}
