//! Chat Completions answer → Responses `response` object (SPEC §13), and the pieces the
//! stream translation shares with it: ids, output items, usage, status.

use serde_json::{json, Value};

use super::tools::{ToolMap, ToolOrigin};
use crate::fronts::chat_wire::{content_text, parse_completion, AnswerError, ChatUsage};

/// What answering one request needs to know, fixed when the request was translated.
#[derive(Debug, Clone)]
pub struct Answering {
    pub ids: Ids,
    pub tools: ToolMap,
    /// The local prompt estimate, for when upstream reports no usage.
    pub input_estimate: u64,
    /// Seconds since the epoch.
    pub created_at: u64,
}

/// The ids of one response and its items, all derived from one unique token.
#[derive(Debug, Clone)]
pub struct Ids {
    token: String,
}

impl Ids {
    pub fn new(token: impl Into<String>) -> Self {
        Ids {
            token: token.into(),
        }
    }

    pub fn response(&self) -> String {
        format!("resp_{}", self.token)
    }

    pub fn message(&self, n: usize) -> String {
        format!("msg_{}_{n}", self.token)
    }

    pub fn reasoning(&self, n: usize) -> String {
        format!("rs_{}_{n}", self.token)
    }

    /// The item id of the `n`-th tool call (`fc_…`, or `ctc_…` for a custom tool).
    pub fn call(&self, n: usize, origin: &ToolOrigin) -> String {
        match origin {
            ToolOrigin::Custom { .. } => format!("ctc_{}_{n}", self.token),
            _ => format!("fc_{}_{n}", self.token),
        }
    }

    /// Upstream's tool call id (the client answers with it), or one made up when it sent
    /// none.
    pub fn call_id(&self, upstream: Option<&str>, n: usize) -> String {
        match upstream {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("call_{}_{n}", self.token),
        }
    }
}

/// How an answer ended, from the chat `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// Cut by `max_output_tokens` (`length`) or a content filter.
    Incomplete(&'static str),
}

impl Ending {
    pub fn of(finish_reason: Option<&str>) -> Ending {
        match finish_reason {
            Some("length") => Ending::Incomplete("max_output_tokens"),
            Some("content_filter") => Ending::Incomplete("content_filter"),
            _ => Ending::Completed,
        }
    }

    pub fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Incomplete(_) => "incomplete",
        }
    }

    fn details(self) -> Value {
        match self {
            Ending::Completed => Value::Null,
            Ending::Incomplete(reason) => json!({ "reason": reason }),
        }
    }
}

/// Responses usage: upstream's counts, else the local input estimate and no output.
pub fn usage(chat: Option<ChatUsage>, input_estimate: u64) -> Value {
    let (input, output) = chat.map_or((input_estimate, 0), |u| {
        (u.prompt_tokens, u.completion_tokens)
    });
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    })
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": [output_text(text)],
    })
}

pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

pub fn reasoning_item(id: &str, summary: &str) -> Value {
    json!({
        "type": "reasoning",
        "id": id,
        "summary": [{"type": "summary_text", "text": summary}],
    })
}

/// A tool call as the client's tool expects it back: `function_call` (with `namespace`
/// for a namespaced function) or `custom_tool_call` with the string input.
pub fn call_item(
    id: &str,
    call_id: &str,
    origin: &ToolOrigin,
    arguments: &str,
    status: &str,
) -> Value {
    match origin {
        ToolOrigin::Function { name } => json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status,
        }),
        ToolOrigin::Namespaced { namespace, name } => json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name,
            "namespace": namespace, "arguments": arguments, "status": status,
        }),
        ToolOrigin::Custom { name } => json!({
            "type": "custom_tool_call", "id": id, "call_id": call_id, "name": name,
            "input": custom_input(arguments), "status": status,
        }),
    }
}

/// The string a custom tool gets: the `input` of the `{"input": …}` arguments upstream
/// produced; a model that wrote the input bare gets it as written.
pub fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut fields)) => match fields.remove("input") {
            Some(Value::String(input)) => input,
            Some(other) => other.to_string(),
            None => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

/// The whole `response` object.
pub fn response_object(
    answering: &Answering,
    model: &str,
    status: &str,
    ending: Option<Ending>,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": answering.ids.response(),
        "object": "response",
        "created_at": answering.created_at,
        "status": status,
        "error": null,
        "incomplete_details": ending.map_or(Value::Null, Ending::details),
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    })
}

/// Translate a 2xx chat completion body into a `response` object.
pub fn response(body: &[u8], answering: &Answering, model: &str) -> Result<Vec<u8>, AnswerError> {
    let completion = parse_completion(body)?;
    let choice = completion.choices.into_iter().next();
    let finish_reason = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let mut output = Vec::new();
    if let Some(message) = choice.and_then(|c| c.message) {
        if let Some(reasoning) = message
            .reasoning
            .or(message.reasoning_content)
            .filter(|r| !r.is_empty())
        {
            output.push(reasoning_item(&answering.ids.reasoning(0), &reasoning));
        }
        let text = content_text(message.content);
        if !text.is_empty() {
            output.push(message_item(&answering.ids.message(0), &text, "completed"));
        }
        for (n, call) in message.tool_calls.into_iter().enumerate() {
            let origin = answering.tools.origin(&call.function.name);
            let arguments = call.function.arguments.unwrap_or_default();
            output.push(call_item(
                &answering.ids.call(n, &origin),
                &answering.ids.call_id(call.id.as_deref(), n),
                &origin,
                &arguments,
                "completed",
            ));
        }
    }
    let ending = Ending::of(finish_reason.as_deref());
    let out = response_object(
        answering,
        model,
        ending.status(),
        Some(ending),
        output,
        usage(completion.usage, answering.input_estimate),
    );
    serde_json::to_vec(&out).map_err(AnswerError::Serialize)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn answering() -> Answering {
        let mut tools = ToolMap::default();
        tools.add(ToolOrigin::Custom {
            name: "apply_patch".into(),
        });
        tools.add(ToolOrigin::Namespaced {
            namespace: "multi_agent_v1".into(),
            name: "spawn_agent".into(),
        });
        Answering {
            ids: Ids::new("t"),
            tools,
            input_estimate: 77,
            created_at: 1_700_000_000,
        }
    }

    fn translate(completion: Value) -> Value {
        let out = response(completion.to_string().as_bytes(), &answering(), "m/x:free").unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn completion(message: Value, finish: &str, usage: Option<Value>) -> Value {
        let mut c = json!({"id": "gen-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]});
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
            Some(json!({"prompt_tokens": 12, "completion_tokens": 3})),
        ));
        assert_eq!(got["id"], "resp_t");
        assert_eq!(got["object"], "response");
        assert_eq!(got["created_at"], 1_700_000_000);
        assert_eq!(got["status"], "completed");
        assert_eq!(got["model"], "m/x:free");
        assert_eq!(got["incomplete_details"], Value::Null);
        assert_eq!(
            got["output"],
            json!([{"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "hello", "annotations": []}]}])
        );
        assert_eq!(got["usage"]["input_tokens"], 12);
        assert_eq!(got["usage"]["output_tokens"], 3);
        assert_eq!(got["usage"]["total_tokens"], 15);
    }

    #[test]
    fn tool_calls_of_every_kind() {
        let got = translate(completion(
            json!({"role": "assistant", "content": null, "reasoning": "think", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}},
                {"type": "function", "function": {"name": "spawn_agent", "arguments": "{}"}}
            ]}),
            "tool_calls",
            None,
        ));
        assert_eq!(
            got["output"],
            json!([
                {"type": "reasoning", "id": "rs_t_0", "summary": [{"type": "summary_text", "text": "think"}]},
                {"type": "function_call", "id": "fc_t_0", "call_id": "call_a", "name": "exec_command",
                    "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                {"type": "custom_tool_call", "id": "ctc_t_1", "call_id": "call_b", "name": "apply_patch",
                    "input": "*** Begin Patch", "status": "completed"},
                {"type": "function_call", "id": "fc_t_2", "call_id": "call_t_2", "name": "spawn_agent",
                    "namespace": "multi_agent_v1", "arguments": "{}", "status": "completed"}
            ])
        );
        // No usage upstream: the local estimate.
        assert_eq!(got["usage"]["input_tokens"], 77);
        assert_eq!(got["usage"]["output_tokens"], 0);
    }

    #[test]
    fn length_is_incomplete() {
        let got = translate(completion(
            json!({"role": "assistant", "content": "cut"}),
            "length",
            None,
        ));
        assert_eq!(got["status"], "incomplete");
        assert_eq!(
            got["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert!(response(b"[1]", &answering(), "m").is_err());
    }

    #[test]
    fn custom_input_table() {
        let cases = [
            (r#"{"input":"a\nb"}"#, "a\nb"),
            (r#"{"input":{"x":1}}"#, r#"{"x":1}"#),
            (r#"{"other":1}"#, r#"{"other":1}"#),
            ("*** Begin Patch", "*** Begin Patch"),
            ("", ""),
        ];
        for (arguments, want) in cases {
            assert_eq!(custom_input(arguments), want, "{arguments}");
        }
    }
}
