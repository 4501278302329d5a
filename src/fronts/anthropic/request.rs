//! Anthropic Messages request → Chat Completions body (SPEC §10).
//!
//! Pure translation: bytes in, a serializable chat body out. The chat body is then
//! serialized and parsed by `ChatRequest::parse`, so routing sees exactly what an OpenAI
//! client sending the same request would have sent. Fields with no Chat Completions
//! meaning (`thinking`, `context_management`, `metadata`, `cache_control`, `top_k`,
//! `defer_loading`, ...) are simply not read: serde ignores unknown fields.

use serde_json::Value;

use crate::domain::chat::RequestError;
use crate::fronts::chat_wire::{
    ChatBody, ChatFunctionCall, ChatMessage, ChatTool, ChatToolCall, FunctionDef, StreamOptions,
    UserContent,
};
pub use crate::fronts::Invalid;

use super::messages::*;

/// The `max_tokens` a Messages request must carry; Anthropic's API answers 400 without it.
const MAX_TOKENS_REQUIRED: &str = "max_tokens: Field required";

/// Media the free models behind the gateway cannot be sent through this translation.
const MEDIA_UNSUPPORTED: &str =
    "image and document content blocks are not supported by this gateway; send text only";

// ---- Translation -----------------------------------------------------------------------

/// Parse a Messages (or count_tokens) body.
pub fn parse(body: &[u8]) -> Result<MessagesRequest, Invalid> {
    serde_json::from_slice(body).map_err(|e| Invalid(RequestError::from_json(e).to_string()))
}

/// A `/v1/messages` body as the chat body to route: `max_tokens` is required.
pub fn translate(body: &[u8]) -> Result<ChatBody, Invalid> {
    let req = parse(body)?;
    if req.max_tokens.is_none() {
        return Err(Invalid(MAX_TOKENS_REQUIRED.into()));
    }
    to_chat(req)
}

/// The chat body for a parsed request (count_tokens bodies carry no `max_tokens`).
pub fn to_chat(req: MessagesRequest) -> Result<ChatBody, Invalid> {
    let mut system: Vec<String> = Vec::new();
    if let Some(content) = req.system {
        system.extend(texts(content)?);
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    for message in req.messages {
        match message.role.as_str() {
            // Claude Code sends reminders as system messages mid-conversation; chat models
            // expect one leading system message, so they are merged into it, in order.
            "system" => system.extend(texts(message.content)?),
            "user" => user_messages(message.content, &mut messages)?,
            "assistant" => messages.extend(assistant_message(message.content)?),
            other => {
                return Err(Invalid(format!(
                    "messages: unexpected role {other:?} (use \"user\" or \"assistant\")"
                )))
            }
        }
    }
    if !system.is_empty() {
        messages.insert(
            0,
            ChatMessage::System {
                content: system.join("\n\n"),
            },
        );
    }

    let tools: Vec<ChatTool> = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .filter_map(chat_tool)
        .collect();
    let has_tools = !tools.is_empty();
    // A tool choice without tools is an error upstream; with no tools it means nothing.
    let (tool_choice, parallel_tool_calls) = match req.tool_choice {
        Some(choice) if has_tools => chat_tool_choice(choice),
        _ => (None, None),
    };
    let response_format = req
        .output_config
        .and_then(|c| c.format)
        .or(req.output_format)
        .and_then(response_format);
    let stream = req.stream == Some(true);
    Ok(ChatBody {
        model: req.model,
        messages,
        max_tokens: req.max_tokens,
        stream: stream.then_some(true),
        // The real token counts for `message_delta` come from the final usage chunk.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.filter(|s| !s.is_empty()),
        tools: has_tools.then_some(tools),
        tool_choice,
        parallel_tool_calls,
        response_format,
    })
}

/// The text of a system prompt or system message.
fn texts(content: Content) -> Result<Vec<String>, Invalid> {
    match content {
        Content::Text(text) => Ok(vec![text]),
        Content::Blocks(blocks) => {
            let mut out = Vec::with_capacity(blocks.len());
            for block in blocks {
                match block {
                    Block::Text { text } => out.push(text),
                    Block::Image {} | Block::Document {} => {
                        return Err(Invalid(MEDIA_UNSUPPORTED.into()))
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
    }
}

/// A user turn: its tool results become `role: "tool"` messages (chat APIs want them
/// right after the assistant's tool calls), then its text becomes one user message.
fn user_messages(content: Content, out: &mut Vec<ChatMessage>) -> Result<(), Invalid> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(ChatMessage::User {
                content: UserContent::Text(text),
            });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push(t),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut content = match content {
                    None => String::new(),
                    Some(content) => tool_result_text(content)?,
                };
                // Chat tool messages have no error flag: say it in the text.
                if is_error == Some(true) {
                    content.insert_str(0, "Error: ");
                }
                out.push(ChatMessage::Tool {
                    tool_call_id: tool_use_id,
                    content,
                });
            }
            Block::Image {} | Block::Document {} => return Err(Invalid(MEDIA_UNSUPPORTED.into())),
            Block::ToolUse { .. } | Block::Other => {}
        }
    }
    if !text.is_empty() {
        out.push(ChatMessage::User {
            content: UserContent::Text(text.join("\n\n")),
        });
    }
    Ok(())
}

fn tool_result_text(content: ToolResultContent) -> Result<String, Invalid> {
    let blocks = match content {
        ToolResultContent::Text(text) => return Ok(text),
        ToolResultContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            ResultBlock::Text { text } => parts.push(text),
            ResultBlock::ToolReference { tool_name } => {
                parts.push(format!("Tool {tool_name} is now available."))
            }
            ResultBlock::Image {} | ResultBlock::Document {} => {
                return Err(Invalid(MEDIA_UNSUPPORTED.into()))
            }
            ResultBlock::Other => {}
        }
    }
    Ok(parts.join("\n"))
}

/// An assistant turn: text plus tool calls. A turn left empty (only thinking blocks) is
/// dropped: several providers reject an assistant message with no content.
fn assistant_message(content: Content) -> Result<Option<ChatMessage>, Invalid> {
    let blocks = match content {
        Content::Text(text) if text.is_empty() => return Ok(None),
        Content::Text(text) => {
            return Ok(Some(ChatMessage::Assistant {
                content: Some(text),
                tool_calls: Vec::new(),
            }))
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: t } if !t.is_empty() => text.push(t),
            Block::ToolUse { id, name, input } => tool_calls.push(ChatToolCall {
                id,
                kind: "function",
                function: ChatFunctionCall {
                    name,
                    arguments: input
                        .filter(|v| !v.is_null())
                        .map_or_else(|| "{}".to_string(), |v| v.to_string()),
                },
            }),
            Block::Image {} | Block::Document {} => return Err(Invalid(MEDIA_UNSUPPORTED.into())),
            _ => {}
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        return Ok(None);
    }
    Ok(Some(ChatMessage::Assistant {
        content: (!text.is_empty()).then(|| text.join("\n\n")),
        tool_calls,
    }))
}

fn chat_tool(tool: Tool) -> Option<ChatTool> {
    if tool.kind.as_deref().is_some_and(|k| k != "custom") {
        log::debug!(
            "anthropic: dropping server tool {} ({:?}): no chat equivalent",
            tool.name,
            tool.kind
        );
        return None;
    }
    Some(ChatTool {
        kind: "function",
        function: FunctionDef {
            name: tool.name,
            description: tool.description,
            // Passed through as sent, `$schema` included.
            parameters: tool.input_schema,
            strict: None,
        },
    })
}

fn chat_tool_choice(choice: ToolChoice) -> (Option<Value>, Option<bool>) {
    let no_parallel = |d: Option<bool>| (d == Some(true)).then_some(false);
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (Some("auto".into()), no_parallel(disable_parallel_tool_use)),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (
            Some("required".into()),
            no_parallel(disable_parallel_tool_use),
        ),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            Some(serde_json::json!({"type": "function", "function": {"name": name}})),
            no_parallel(disable_parallel_tool_use),
        ),
        ToolChoice::NoTool {} => (Some("none".into()), None),
    }
}

fn response_format(format: OutputFormat) -> Option<Value> {
    if format.kind != "json_schema" {
        return None;
    }
    // Chat Completions requires a schema name; Anthropic's format has none.
    Some(serde_json::json!({
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": format.schema.unwrap_or(Value::Null)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(req: Value) -> Value {
        let body = translate(req.to_string().as_bytes()).expect("translates");
        serde_json::to_value(body).expect("serializes")
    }

    fn base(extra: Value) -> Value {
        let mut req = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "hi"}],
        });
        for (k, v) in extra.as_object().expect("object") {
            req[k] = v.clone();
        }
        req
    }

    #[test]
    fn translation_table() {
        let user_hi = json!({"role": "user", "content": "hi"});
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal",
                base(json!({})),
                json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [user_hi]}),
            ),
            (
                "system string",
                base(json!({"system": "be brief"})),
                json!({"messages": [{"role": "system", "content": "be brief"}, user_hi]}),
            ),
            (
                "system text blocks with cache_control",
                base(json!({"system": [
                    {"type": "text", "text": "You are Claude Code."},
                    {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}
                ]})),
                json!({"messages": [
                    {"role": "system", "content": "You are Claude Code.\n\nRules."}, user_hi
                ]}),
            ),
            (
                "mid-conversation system message merged into the leading one",
                base(json!({
                    "system": "base",
                    "messages": [
                        {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "a1"},
                        {"role": "system", "content": [{"type": "text", "text": "reminder"}]},
                        {"role": "user", "content": "q2"}
                    ]
                })),
                json!({"messages": [
                    {"role": "system", "content": "base\n\nreminder"},
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": "a1"},
                    {"role": "user", "content": "q2"}
                ]}),
            ),
            (
                "system message without a system prompt still leads",
                base(json!({"messages": [
                    {"role": "user", "content": "q1"},
                    {"role": "system", "content": "late"}
                ]})),
                json!({"messages": [
                    {"role": "system", "content": "late"},
                    {"role": "user", "content": "q1"}
                ]}),
            ),
            (
                "user text blocks joined, thinking dropped from assistant",
                base(json!({"messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                        {"type": "text", "text": "do it", "cache_control": {"type": "ephemeral"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "done"}
                    ]}
                ]})),
                json!({"messages": [
                    {"role": "user", "content": "<system-reminder>r</system-reminder>\n\ndo it"},
                    {"role": "assistant", "content": "done"}
                ]}),
            ),
            (
                "tool use and several tool results, then trailing text",
                base(json!({"messages": [
                    {"role": "user", "content": "list and read"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Looking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "."}},
                        {"type": "tool_use", "id": "toolu_2", "name": "cat", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                         "content": [{"type": "text", "text": "no such file"}]},
                        {"type": "text", "text": "continue"}
                    ]}
                ]})),
                json!({"messages": [
                    {"role": "user", "content": "list and read"},
                    {"role": "assistant", "content": "Looking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function",
                         "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}},
                        {"id": "toolu_2", "type": "function",
                         "function": {"name": "cat", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such file"},
                    {"role": "user", "content": "continue"}
                ]}),
            ),
            (
                "tool-only assistant turn has null content; tool_reference names the tool",
                base(json!({"messages": [
                    {"role": "user", "content": "find a tool"},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "x"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": [
                            {"type": "tool_reference", "tool_name": "mcp__db__query"}
                        ]}
                    ]}
                ]})),
                json!({"messages": [
                    {"role": "user", "content": "find a tool"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t1", "type": "function",
                         "function": {"name": "ToolSearch", "arguments": "{\"query\":\"x\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "t1",
                     "content": "Tool mcp__db__query is now available."}
                ]}),
            ),
            (
                "tools: schema passed through ($schema kept), defer_loading ignored",
                base(json!({"tools": [
                    {"name": "Read", "description": "read a file", "input_schema": {
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object", "properties": {"path": {"type": "string"}}}},
                    {"name": "mcp__x", "defer_loading": true,
                     "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
                ]})),
                json!({"tools": [
                    {"type": "function", "function": {"name": "Read", "description": "read a file",
                     "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object", "properties": {"path": {"type": "string"}}}}},
                    {"type": "function", "function": {"name": "mcp__x",
                     "parameters": {"type": "object"}}}
                ]}),
            ),
            (
                "tools: [] means no tools and no tool_choice",
                base(json!({"tools": [], "tool_choice": {"type": "any"}})),
                json!({"tools": null, "tool_choice": null}),
            ),
            (
                "tool_choice any, no parallel calls",
                base(
                    json!({"tools": [{"name": "f", "input_schema": {"type": "object"}}],
                    "tool_choice": {"type": "any", "disable_parallel_tool_use": true}}),
                ),
                json!({"tool_choice": "required", "parallel_tool_calls": false}),
            ),
            (
                "tool_choice auto",
                base(
                    json!({"tools": [{"name": "f", "input_schema": {"type": "object"}}],
                    "tool_choice": {"type": "auto"}}),
                ),
                json!({"tool_choice": "auto", "parallel_tool_calls": null}),
            ),
            (
                "tool_choice tool",
                base(
                    json!({"tools": [{"name": "f", "input_schema": {"type": "object"}}],
                    "tool_choice": {"type": "tool", "name": "f"}}),
                ),
                json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}),
            ),
            (
                "tool_choice none",
                base(
                    json!({"tools": [{"name": "f", "input_schema": {"type": "object"}}],
                    "tool_choice": {"type": "none"}}),
                ),
                json!({"tool_choice": "none"}),
            ),
            (
                "sampling and stop sequences",
                base(json!({"temperature": 0.2, "top_p": 0.9, "top_k": 5,
                    "stop_sequences": ["END"]})),
                json!({"temperature": 0.2, "top_p": 0.9, "stop": ["END"], "top_k": null}),
            ),
            (
                "empty stop_sequences are no stop",
                base(json!({"stop_sequences": []})),
                json!({"stop": null}),
            ),
            (
                "stream asks for usage",
                base(json!({"stream": true})),
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ),
            (
                "stream false is omitted",
                base(json!({"stream": false})),
                json!({"stream": null, "stream_options": null}),
            ),
            (
                "output_config.format json_schema; effort dropped",
                base(json!({"output_config": {"effort": "high", "format":
                    {"type": "json_schema", "schema": {"type": "object"}}}})),
                json!({"response_format": {"type": "json_schema",
                    "json_schema": {"name": "output", "schema": {"type": "object"}}},
                    "output_config": null}),
            ),
            (
                "fields without chat meaning are dropped",
                base(json!({
                    "thinking": {"type": "enabled", "budget_tokens": 1000},
                    "context_management": {"edits": []},
                    "metadata": {"user_id": "u"},
                    "safeguards": {},
                })),
                json!({"thinking": null, "context_management": null, "metadata": null,
                    "safeguards": null, "reasoning": null}),
            ),
        ];
        for (label, req, want) in cases {
            let got = chat(req);
            for (key, value) in want.as_object().expect("object") {
                let got_value = got.get(key).cloned().unwrap_or(Value::Null);
                assert_eq!(&got_value, value, "{label}: `{key}` in {got}");
            }
        }
    }

    #[test]
    fn invalid_requests() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("not json", b"{".to_vec(), "not valid JSON"),
            (
                "no messages",
                json!({"max_tokens": 5}).to_string().into_bytes(),
                "messages",
            ),
            (
                "no max_tokens",
                json!({"messages": []}).to_string().into_bytes(),
                "max_tokens",
            ),
            (
                "image block",
                base(json!({"messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
                ]}]}))
                .to_string()
                .into_bytes(),
                "image",
            ),
            (
                "image inside a tool result",
                base(json!({"messages": [{"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}
                ]}]}))
                .to_string()
                .into_bytes(),
                "image",
            ),
            (
                "unknown role",
                base(json!({"messages": [{"role": "tool", "content": "x"}]}))
                    .to_string()
                    .into_bytes(),
                "role",
            ),
        ];
        for (label, body, needle) in cases {
            let err = translate(&body).expect_err(label);
            assert!(err.0.contains(needle), "{label}: {err}");
        }
    }

    #[test]
    fn count_tokens_bodies_need_no_max_tokens() {
        let req = parse(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let body = serde_json::to_value(to_chat(req).unwrap()).unwrap();
        assert_eq!(body["max_tokens"], Value::Null);
        assert_eq!(body["messages"][0]["content"], "hi");
    }

    #[test]
    fn translated_body_routes_like_an_openai_request() {
        let req = base(json!({
            "max_tokens": 128000,
            "stream": true,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["x"],
            "output_config": {"format": {"type": "json_schema", "schema": {}}},
        }));
        let body = serde_json::to_vec(&translate(req.to_string().as_bytes()).unwrap()).unwrap();
        let parsed = crate::domain::chat::ChatRequest::parse(bytes::Bytes::from(body)).unwrap();
        assert!(parsed.stream);
        assert_eq!(parsed.requested_budget, Some(128000));
        assert_eq!(parsed.model.as_deref(), Some("claude-sonnet-4-5"));
        let needs = parsed.needs;
        assert!(needs.tools && needs.tool_choice && needs.stop && needs.json_schema);
        assert!(!needs.reasoning, "thinking is never mapped to reasoning");
    }
}
