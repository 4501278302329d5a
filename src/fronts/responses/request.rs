//! OpenAI Responses request → Chat Completions body (SPEC §13).
//!
//! Pure translation: bytes in, a chat body plus the [`ToolMap`] the answer needs out. The
//! chat body is then parsed by `ChatRequest::parse` like any OpenAI client's, so capability
//! routing (tools, structured output, images, context fit) works unchanged. Fields with no
//! chat meaning (`reasoning`, `store`, `include`, `metadata`, `client_metadata`,
//! `prompt_cache_key`, `service_tier`, `truncation`, `user`, `safety_identifier`, …) are
//! not read.

use serde::Deserialize;
use serde_json::{json, Value};

use super::tools::{ToolMap, ToolOrigin};
use crate::domain::chat::RequestError;
use crate::fronts::chat_wire::{
    ChatBody, ChatFunctionCall, ChatMessage, ChatTool, ChatToolCall, ContentPart, FunctionDef,
    ImageUrl, StreamOptions, UserContent,
};
use crate::fronts::Invalid;

/// The gateway keeps no responses, so it cannot continue one.
pub const NO_STORED_RESPONSES: &str = "previous_response_id is not supported: this gateway \
    stores no responses; send the whole conversation in `input` (with `store: false`, as \
    Codex CLI does by default)";

// ---- What the client sends -------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<Value>,
    #[serde(default)]
    top_p: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    text: Option<TextOptions>,
    #[serde(default)]
    previous_response_id: Option<Value>,
    #[serde(default)]
    conversation: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Value>),
}

#[derive(Debug, Deserialize)]
struct TextOptions {
    #[serde(default)]
    format: Option<Value>,
}

/// One `input` item. An item with `role` and `content` but no `type` is a message, as the
/// OpenAI API accepts.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item {
    Message {
        role: String,
        content: MessageContent,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    CustomToolCall {
        call_id: String,
        name: String,
        #[serde(default)]
        input: String,
    },
    CustomToolCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {
        #[serde(default)]
        image_url: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    InputFile {},
    #[serde(other)]
    Other,
}

/// A tool's output: a string, or content parts (text is kept).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolOutput {
    Text(String),
    Parts(Vec<Value>),
}

impl ToolOutput {
    fn text(self) -> String {
        match self {
            ToolOutput::Text(text) => text,
            ToolOutput::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

// ---- Translation -----------------------------------------------------------------------

/// A `/v1/responses` body as the chat body to route, and what the answer needs to know
/// about the tools.
pub fn translate(body: &[u8]) -> Result<(ChatBody, ToolMap), TranslateError> {
    let req: ResponsesRequest = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Body(RequestError::from_json(e)))?;
    to_chat(req).map_err(TranslateError::Invalid)
}

/// Why a Responses body cannot be routed.
#[derive(Debug)]
pub enum TranslateError {
    /// Not JSON, or not the shape of a request (the chat front's 400s).
    Body(RequestError),
    Invalid(Invalid),
}

pub fn to_chat(req: ResponsesRequest) -> Result<(ChatBody, ToolMap), Invalid> {
    if req
        .previous_response_id
        .as_ref()
        .is_some_and(|v| !v.is_null())
        || req.conversation.as_ref().is_some_and(|v| !v.is_null())
    {
        return Err(Invalid(NO_STORED_RESPONSES.into()));
    }
    let (tools, map) = chat_tools(req.tools)?;
    let mut system: Vec<String> = req.instructions.into_iter().collect();
    let mut messages = Vec::new();
    match req.input {
        None => {}
        Some(Input::Text(text)) => messages.push(ChatMessage::User {
            content: UserContent::Text(text),
        }),
        Some(Input::Items(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let item = parse_item(item).map_err(|e| Invalid(format!("input[{i}]: {e}")))?;
                push_item(item, &map, &mut system, &mut messages)
                    .map_err(|Invalid(e)| Invalid(format!("input[{i}]: {e}")))?;
            }
        }
    }
    // Chat models expect one leading system message; developer and system items (Codex
    // sends several) are merged into it in order, as on the Anthropic front.
    system.retain(|s| !s.is_empty());
    if !system.is_empty() {
        messages.insert(
            0,
            ChatMessage::System {
                content: system.join("\n\n"),
            },
        );
    }
    if messages.is_empty() {
        return Err(Invalid("input: at least one message is required".into()));
    }

    let has_tools = !tools.is_empty();
    let tool_choice = match req.tool_choice {
        Some(choice) if has_tools => chat_tool_choice(choice, &map),
        _ => None,
    };
    let response_format = req
        .text
        .and_then(|t| t.format)
        .and_then(|f| response_format(&f));
    let stream = req.stream == Some(true);
    let body = ChatBody {
        model: req.model,
        messages,
        max_tokens: req.max_output_tokens,
        stream: stream.then_some(true),
        // The usage `response.completed` carries comes from the final usage chunk.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: None,
        tools: has_tools.then_some(tools),
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| has_tools),
        response_format,
    };
    Ok((body, map))
}

fn parse_item(mut item: Value) -> Result<Item, String> {
    if let Value::Object(fields) = &mut item {
        if !fields.contains_key("type") && fields.contains_key("role") {
            fields.insert("type".into(), Value::String("message".into()));
        }
    }
    serde_json::from_value(item).map_err(|e| format!("not an input item: {e}"))
}

fn push_item(
    item: Item,
    map: &ToolMap,
    system: &mut Vec<String>,
    messages: &mut Vec<ChatMessage>,
) -> Result<(), Invalid> {
    match item {
        Item::Message { role, content } => match role.as_str() {
            "system" | "developer" => system.push(texts(content)?.join("\n\n")),
            "user" => messages.push(ChatMessage::User {
                content: user_content(content)?,
            }),
            "assistant" => {
                let text = texts(content)?.join("");
                if !text.is_empty() {
                    messages.push(ChatMessage::Assistant {
                        content: Some(text),
                        tool_calls: Vec::new(),
                    });
                }
            }
            other => {
                return Err(Invalid(format!(
                    "unexpected role {other:?} (use user, assistant, system or developer)"
                )))
            }
        },
        Item::FunctionCall {
            call_id,
            name,
            namespace,
            arguments,
        } => {
            let origin = match namespace {
                Some(namespace) => ToolOrigin::Namespaced { namespace, name },
                None => ToolOrigin::Function { name },
            };
            push_tool_call(messages, call_id, map.upstream_name(&origin), arguments);
        }
        Item::CustomToolCall {
            call_id,
            name,
            input,
        } => {
            let origin = ToolOrigin::Custom { name };
            let arguments = json!({ "input": input }).to_string();
            push_tool_call(messages, call_id, map.upstream_name(&origin), arguments);
        }
        Item::FunctionCallOutput { call_id, output }
        | Item::CustomToolCallOutput { call_id, output } => messages.push(ChatMessage::Tool {
            tool_call_id: call_id,
            content: output.text(),
        }),
        // `reasoning` (its encrypted content means nothing to another model), and items
        // of built-in tools that were never offered upstream.
        Item::Other => {}
    }
    Ok(())
}

/// A call joins the assistant message right before it (text, or earlier calls of the same
/// turn): chat APIs expect one assistant message per turn, followed by its tool results.
fn push_tool_call(messages: &mut Vec<ChatMessage>, id: String, name: String, arguments: String) {
    let call = ChatToolCall {
        id,
        kind: "function",
        function: ChatFunctionCall {
            name,
            arguments: if arguments.trim().is_empty() {
                "{}".into()
            } else {
                arguments
            },
        },
    };
    if let Some(ChatMessage::Assistant { tool_calls, .. }) = messages.last_mut() {
        tool_calls.push(call);
    } else {
        messages.push(ChatMessage::Assistant {
            content: None,
            tool_calls: vec![call],
        });
    }
}

const FILES_UNSUPPORTED: &str =
    "input_file content is not supported by this gateway; send the file's text";
const IMAGE_WITHOUT_URL: &str =
    "input_image needs an image_url (a URL or a data: URL); file_id is not supported";

/// The text of a message (images and files are refused where chat has no place for them).
fn texts(content: MessageContent) -> Result<Vec<String>, Invalid> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(vec![text]),
        MessageContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::InputText { text } | Part::OutputText { text } => out.push(text),
            Part::Refusal { refusal } => out.push(refusal),
            Part::InputImage { .. } => {
                return Err(Invalid(
                    "input_image is only supported in user messages".into(),
                ))
            }
            Part::InputFile {} => return Err(Invalid(FILES_UNSUPPORTED.into())),
            Part::Other => {}
        }
    }
    Ok(out)
}

/// A user message: plain text, or chat content parts when it carries images.
fn user_content(content: MessageContent) -> Result<UserContent, Invalid> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(UserContent::Text(text)),
        MessageContent::Parts(parts) => parts,
    };
    if !parts.iter().any(|p| matches!(p, Part::InputImage { .. })) {
        return texts(MessageContent::Parts(parts)).map(|t| UserContent::Text(t.join("\n\n")));
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::InputText { text } | Part::OutputText { text } => {
                out.push(ContentPart::Text { text })
            }
            Part::Refusal { refusal } => out.push(ContentPart::Text { text: refusal }),
            Part::InputImage { image_url, detail } => {
                let url = image_url
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| Invalid(IMAGE_WITHOUT_URL.into()))?;
                out.push(ContentPart::ImageUrl {
                    image_url: ImageUrl { url, detail },
                });
            }
            Part::InputFile {} => return Err(Invalid(FILES_UNSUPPORTED.into())),
            Part::Other => {}
        }
    }
    Ok(UserContent::Parts(out))
}

// ---- Tools -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct FunctionTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CustomTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    format: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct NamespaceTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tools: Vec<Value>,
}

/// Chat tools for the client's tools: flat functions as they are, custom tools as a
/// function of one string, the functions of each namespace group; built-in tools
/// (`web_search`, `file_search`, `local_shell`, …) have no chat equivalent and are dropped.
fn chat_tools(tools: Vec<Value>) -> Result<(Vec<ChatTool>, ToolMap), Invalid> {
    let mut out = Vec::new();
    let mut map = ToolMap::default();
    map.reserve(tools.iter().filter_map(|tool| {
        let flat = matches!(
            tool.get("type").and_then(Value::as_str),
            Some("function" | "custom")
        );
        let name = tool.get("name").and_then(Value::as_str);
        name.filter(|_| flat).map(str::to_string)
    }));
    let mut dropped = Vec::new();
    for (i, tool) in tools.into_iter().enumerate() {
        let at = |e: serde_json::Error| Invalid(format!("tools[{i}]: {e}"));
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "function" => {
                let f: FunctionTool = serde_json::from_value(tool).map_err(at)?;
                let name = map.add(ToolOrigin::Function {
                    name: f.name.clone(),
                });
                out.push(function(name, f.description, f.parameters, f.strict));
            }
            "custom" => {
                let c: CustomTool = serde_json::from_value(tool).map_err(at)?;
                let description = custom_description(c.description, c.format.as_ref());
                let name = map.add(ToolOrigin::Custom { name: c.name });
                out.push(function(
                    name,
                    Some(description),
                    Some(json!({
                        "type": "object",
                        "properties": {"input": {"type": "string"}},
                        "required": ["input"],
                        "additionalProperties": false,
                    })),
                    None,
                ));
            }
            "namespace" => {
                let group: NamespaceTool = serde_json::from_value(tool).map_err(at)?;
                for (j, inner) in group.tools.into_iter().enumerate() {
                    if inner.get("type").and_then(Value::as_str) != Some("function") {
                        dropped.push(format!("{}.{}", group.name, tool_label(&inner)));
                        continue;
                    }
                    let f: FunctionTool = serde_json::from_value(inner)
                        .map_err(|e| Invalid(format!("tools[{i}].tools[{j}]: {e}")))?;
                    let description = match (&group.description, f.description) {
                        (Some(group), Some(own)) => Some(format!("{own}\n\n({group})")),
                        (group, own) => own.or(group.clone()),
                    };
                    let name = map.add(ToolOrigin::Namespaced {
                        namespace: group.name.clone(),
                        name: f.name,
                    });
                    out.push(function(name, description, f.parameters, f.strict));
                }
            }
            _ => dropped.push(tool_label(&tool)),
        }
    }
    if !dropped.is_empty() {
        log::info!(
            "responses: dropping tools with no chat equivalent: {}",
            dropped.join(", ")
        );
    }
    Ok((out, map))
}

fn function(
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
) -> ChatTool {
    ChatTool {
        kind: "function",
        function: FunctionDef {
            name,
            description,
            parameters,
            strict,
        },
    }
}

/// A built-in tool's name for the log: its `name`, else its `type`.
fn tool_label(tool: &Value) -> String {
    tool.get("name")
        .or_else(|| tool.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string()
}

/// A custom tool's description, with its input format (a grammar, say) spelled out: the
/// model only sees a string parameter, so the format has to be in the words.
fn custom_description(description: Option<String>, format: Option<&Value>) -> String {
    let mut text = description.unwrap_or_default();
    let syntax = format
        .and_then(|f| f.get("syntax"))
        .and_then(Value::as_str)
        .unwrap_or("text");
    if let Some(definition) = format
        .and_then(|f| f.get("definition"))
        .and_then(Value::as_str)
    {
        text.push_str(&format!(
            "\n\nPass the whole input as the string parameter `input`. It must follow this \
             {syntax} grammar:\n{definition}"
        ));
    } else {
        text.push_str("\n\nPass the whole input as the string parameter `input`.");
    }
    text
}

fn chat_tool_choice(choice: Value, map: &ToolMap) -> Option<Value> {
    match &choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Some(choice)
        }
        Value::Object(fields) => {
            let name = fields.get("name").and_then(Value::as_str);
            let origin = match (fields.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => ToolOrigin::Function { name: name.into() },
                (Some("custom"), Some(name)) => ToolOrigin::Custom { name: name.into() },
                // `allowed_tools` and built-in tool choices have no chat equivalent.
                _ => return Some(Value::String("auto".into())),
            };
            Some(json!({"type": "function", "function": {"name": map.upstream_name(&origin)}}))
        }
        _ => None,
    }
}

/// `text.format` → `response_format` (json_schema, json_object; `text` is the default).
fn response_format(format: &Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => Some(json!({"type": "json_object"})),
        "json_schema" => {
            let mut schema = serde_json::Map::new();
            schema.insert(
                "name".into(),
                format
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| json!("output")),
            );
            for field in ["schema", "strict", "description"] {
                if let Some(value) = format.get(field) {
                    schema.insert(field.into(), value.clone());
                }
            }
            Some(json!({"type": "json_schema", "json_schema": schema}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(req: Value) -> Value {
        let (body, _) = translate(req.to_string().as_bytes()).expect("translates");
        serde_json::to_value(body).expect("serializes")
    }

    fn error(req: Value) -> String {
        match translate(req.to_string().as_bytes()) {
            Ok((body, _)) => panic!("should be refused, got {:?}", serde_json::to_value(body)),
            Err(TranslateError::Invalid(Invalid(e))) => e,
            Err(TranslateError::Body(e)) => e.to_string(),
        }
    }

    /// `want` is a subset: every key it names must be equal in the translation.
    fn assert_contains(got: &Value, want: &Value, case: &str) {
        for (key, value) in want.as_object().expect("object") {
            assert_eq!(&got[key], value, "{case}: {key} in {got}");
        }
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn translation_table() {
        let hi = json!({"role": "user", "content": "hi"});
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "input string",
                json!({"model": "auto", "input": "hi"}),
                json!({"model": "auto", "messages": [hi]}),
            ),
            (
                "instructions lead",
                json!({"instructions": "be brief", "input": "hi"}),
                json!({"messages": [{"role": "system", "content": "be brief"}, hi]}),
            ),
            (
                "developer and late system items merge into the leading system message",
                json!({"instructions": "A", "input": [
                    {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "B"}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                    {"role": "system", "content": "C"}
                ]}),
                json!({"messages": [{"role": "system", "content": "A\n\nB\n\nC"}, hi]}),
            ),
            (
                "an item without type is a message; output_text and several parts",
                json!({"input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
                    {"role": "assistant", "content": [{"type": "output_text", "text": "c", "annotations": []}]}
                ]}),
                json!({"messages": [
                    {"role": "user", "content": "a\n\nb"},
                    {"role": "assistant", "content": "c"}
                ]}),
            ),
            (
                "input_image becomes an image_url part",
                json!({"input": [{"role": "user", "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
                ]}]}),
                json!({"messages": [{"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]}]}),
            ),
            (
                "function_call and its output, reasoning dropped",
                json!({"input": [
                    user("list"),
                    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                    {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                    {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "exec_command", "arguments": ""},
                    {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                    {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "b"}, {"type": "input_text", "text": "c"}]}
                ]}),
                json!({"messages": [
                    {"role": "user", "content": "list"},
                    {"role": "assistant", "content": "Looking.", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "exec_command", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "b\nc"}
                ]}),
            ),
            (
                "custom tool call: one string argument `input`",
                json!({"input": [
                    user("patch it"),
                    {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
                    {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"}
                ]}),
                json!({"messages": [
                    {"role": "user", "content": "patch it"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_p", "type": "function", "function": {"name": "apply_patch",
                            "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}
                ]}),
            ),
            (
                "budget, sampling, streaming with usage",
                json!({"input": "hi", "max_output_tokens": 999, "temperature": 0.2, "top_p": 0.9, "stream": true}),
                json!({"max_tokens": 999, "temperature": 0.2, "top_p": 0.9, "stream": true,
                    "stream_options": {"include_usage": true}}),
            ),
            (
                "dropped fields",
                json!({"input": "hi", "reasoning": {"summary": "auto"}, "store": false,
                    "include": ["reasoning.encrypted_content"], "metadata": {"a": "b"},
                    "client_metadata": {"x": "y"}, "prompt_cache_key": "k", "service_tier": "auto",
                    "truncation": "auto", "user": "u", "safety_identifier": "s",
                    "previous_response_id": null}),
                json!({"messages": [hi], "reasoning": null, "store": null, "include": null,
                    "metadata": null, "user": null}),
            ),
            (
                "json_schema text format",
                json!({"input": "hi", "text": {"format": {"type": "json_schema", "name": "person",
                    "schema": {"type": "object"}, "strict": true}}}),
                json!({"response_format": {"type": "json_schema", "json_schema":
                    {"name": "person", "schema": {"type": "object"}, "strict": true}}}),
            ),
            (
                "json_object text format; text is the default",
                json!({"input": "hi", "text": {"format": {"type": "json_object"}}}),
                json!({"response_format": {"type": "json_object"}}),
            ),
            (
                "plain text format adds nothing",
                json!({"input": "hi", "text": {"format": {"type": "text"}, "verbosity": "low"}}),
                json!({"response_format": null}),
            ),
        ];
        for (case, req, want) in cases {
            assert_contains(&chat(req), &want, case);
        }
    }

    #[test]
    fn tools_table() {
        let params = json!({"type": "object", "properties": {"cmd": {"type": "string"}}});
        let got = chat(json!({
            "input": "hi",
            "tools": [
                {"type": "function", "name": "exec_command", "description": "Run", "strict": false, "parameters": params},
                {"type": "custom", "name": "apply_patch", "description": "Patch files",
                    "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"}},
                {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
                    "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn", "parameters": params}]},
                {"type": "web_search", "external_web_access": false},
                {"type": "local_shell"}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": true
        }));
        let tools = got["tools"].as_array().expect("tools");
        let names: Vec<&str> = tools
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["exec_command", "apply_patch", "spawn_agent"]);
        assert_eq!(
            tools[0],
            json!({"type": "function", "function": {"name": "exec_command", "description": "Run",
                "parameters": params, "strict": false}})
        );
        let custom = &tools[1]["function"];
        assert_eq!(
            custom["parameters"],
            json!({"type": "object", "properties": {"input": {"type": "string"}},
                "required": ["input"], "additionalProperties": false})
        );
        let description = custom["description"].as_str().unwrap();
        assert!(description.starts_with("Patch files"), "{description}");
        assert!(
            description.contains("lark grammar:\nstart: patch"),
            "{description}"
        );
        assert_eq!(tools[2]["function"]["description"], "Spawn\n\n(Sub-agents)");
        assert_eq!(got["tool_choice"], "auto");
        assert_eq!(got["parallel_tool_calls"], true);
    }

    #[test]
    fn tool_choice_table() {
        let tools = json!([
            {"type": "function", "name": "f"},
            {"type": "custom", "name": "c"}
        ]);
        let cases = [
            (json!("required"), json!("required")),
            (json!("none"), json!("none")),
            (
                json!({"type": "function", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
            ),
            (
                json!({"type": "custom", "name": "c"}),
                json!({"type": "function", "function": {"name": "c"}}),
            ),
            (
                json!({"type": "allowed_tools", "mode": "auto", "tools": []}),
                json!("auto"),
            ),
            (json!({"type": "web_search"}), json!("auto")),
        ];
        for (choice, want) in cases {
            let got = chat(json!({"input": "hi", "tools": tools, "tool_choice": choice}));
            assert_eq!(got["tool_choice"], want, "{choice}");
        }
        // Without tools upstream (only built-ins were offered) there is nothing to choose.
        let got = chat(json!({"input": "hi", "tools": [{"type": "web_search"}],
            "tool_choice": "required", "parallel_tool_calls": false}));
        assert_eq!(got["tools"], Value::Null);
        assert_eq!(got["tool_choice"], Value::Null);
        assert_eq!(got["parallel_tool_calls"], Value::Null);
    }

    #[test]
    fn namespaced_calls_in_history_use_the_name_offered_upstream() {
        let req = json!({
            "input": [
                user("go"),
                {"type": "function_call", "call_id": "c1", "namespace": "ns", "name": "spawn", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"}
            ],
            "tools": [
                {"type": "function", "name": "spawn"},
                {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "spawn"}]}
            ]
        });
        let got = chat(req);
        // The flat `spawn` keeps its name; the namespaced one gets a qualified name.
        let names: Vec<&str> = got["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["spawn", "ns__spawn"]);
        assert_eq!(
            got["messages"][1]["tool_calls"][0]["function"]["name"],
            "ns__spawn"
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            (
                json!({"input": "hi", "previous_response_id": "resp_1"}),
                "stores no responses",
            ),
            (
                json!({"input": "hi", "conversation": "conv_1"}),
                "stores no responses",
            ),
            (json!({"input": []}), "at least one message"),
            (json!({}), "at least one message"),
            (
                json!({"input": [{"role": "robot", "content": "x"}]}),
                "input[0]: unexpected role \"robot\"",
            ),
            (
                json!({"input": [{"type": "function_call", "name": "f"}]}),
                "input[0]: not an input item",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input_file",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input_image needs an image_url",
            ),
            (
                json!({"input": "hi", "tools": [{"type": "function"}]}),
                "tools[0]: missing field `name`",
            ),
            (json!({"input": 5}), "unexpected shape"),
            (json!([1]), "unexpected shape"),
        ];
        for (req, want) in cases {
            let got = error(req.clone());
            assert!(got.contains(want), "{req}: {got:?} should contain {want:?}");
        }
        match translate(b"{not json") {
            Err(TranslateError::Body(RequestError::InvalidJson(_))) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn codex_fixture_requests_translate() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/codex-0.171.0-responses-requests.json"
        ))
        .expect("fixture");
        for (n, recorded) in fixture["requests"].as_array().unwrap().iter().enumerate() {
            let got = chat(recorded["body"].clone());
            let messages = got["messages"].as_array().unwrap();
            assert_eq!(messages[0]["role"], "system", "request {n}");
            assert_eq!(
                messages.iter().filter(|m| m["role"] == "system").count(),
                1,
                "request {n}"
            );
            assert_eq!(got["stream"], true);
            let names: Vec<&str> = got["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"exec_command"), "{names:?}");
            assert!(
                names.contains(&"spawn_agent"),
                "namespace tools offered: {names:?}"
            );
            assert!(!names.contains(&"web_search"));
        }
        let second = chat(fixture["requests"][1]["body"].clone());
        let messages = second["messages"].as_array().unwrap();
        let call = &messages[messages.len() - 2];
        assert_eq!(call["tool_calls"][0]["id"], "call_shape_1");
        assert_eq!(messages[messages.len() - 1]["tool_call_id"], "call_shape_1");
    }
}
