//! Chat Completions on the wire, as the translating fronts (Anthropic §10, Responses §13)
//! see it: the body they send upstream, the answers and stream chunks that come back,
//! and the relay that drives a front's stream translator. One copy for every front.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::domain::sse::{SseEvent, SseScanner};
use crate::gateway::stream::Relay;

// ---- What goes upstream ----------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct ChatBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: UserContent,
    },
    Assistant {
        /// `null` when the turn is only tool calls (what OpenAI clients send).
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

#[derive(Debug, Serialize)]
pub struct ChatToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: ChatFunctionCall,
}

#[derive(Debug, Serialize)]
pub struct ChatFunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Serialize)]
pub struct ChatTool {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDef,
}

#[derive(Debug, Serialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl ChatBody {
    /// The chat request to route: serialized and parsed like a body an OpenAI client sent,
    /// so routing sees exactly what it would see for that client.
    pub fn to_request(&self) -> Result<ChatRequest, GatewayError> {
        let bytes = serde_json::to_vec(self).map_err(|e| {
            GatewayError::internal(format!("serializing the chat body failed: {e}"))
        })?;
        ChatRequest::parse(Bytes::from(bytes))
            .map_err(|e| GatewayError::invalid_request(e.to_string()))
    }
}

/// A user message's content: plain text, or parts when it carries images.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

// ---- What upstream answers -------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Completion {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

#[derive(Debug, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub message: Option<AssistantMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AssistantMessage {
    /// A string, or (rarely) an array of text parts.
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Reasoning text, as OpenRouter (`reasoning`) or vLLM/DeepSeek (`reasoning_content`)
    /// name it.
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: CalledFunction,
}

#[derive(Debug, Deserialize)]
pub struct CalledFunction {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// The `usage` object of a completion or of a stream's final chunk.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ChatUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// The text of a chat message's `content`.
pub fn content_text(content: Option<Value>) -> String {
    match content {
        Some(Value::String(text)) => text,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Parse a 2xx chat completion body.
pub fn parse_completion(body: &[u8]) -> Result<Completion, AnswerError> {
    serde_json::from_slice(body).map_err(AnswerError::NotACompletion)
}

/// Why a 2xx upstream answer could not be translated for the client (answered 502).
#[derive(Debug)]
pub enum AnswerError {
    NotACompletion(serde_json::Error),
    Serialize(serde_json::Error),
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::NotACompletion(e) => {
                write!(f, "the upstream answer is not a chat completion: {e}")
            }
            AnswerError::Serialize(e) => write!(f, "serializing the answer failed: {e}"),
        }
    }
}

impl std::error::Error for AnswerError {}

// ---- Stream chunks ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub usage: Option<ChatUsage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    pub delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DeltaIn<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Vec<ToolCallDelta<'a>>,
    #[serde(default, borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCallDelta<'a> {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDelta<'a> {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

impl DeltaIn<'_> {
    /// The reasoning text of this delta, under either name.
    pub fn reasoning_text(&self) -> Option<&str> {
        self.reasoning
            .as_deref()
            .or(self.reasoning_content.as_deref())
            .filter(|t| !t.is_empty())
    }
}

// ---- Driving a stream translator -------------------------------------------------------

/// A front's stream translation: fed each complete upstream `data:` payload, it appends
/// the client's events to `out`.
pub trait ChunkTranslator {
    fn data(&mut self, payload: &[u8], out: &mut Vec<u8>);
    /// Upstream ended (after `[DONE]`, or cleanly without it): close the answer.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// End the answer with the front's error event (`code` is the gateway's or
    /// upstream's error code).
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>);
}

/// Drives a [`ChunkTranslator`] from raw upstream chunks inside `stream::forward_with`.
pub struct TranslatingRelay<T> {
    scanner: SseScanner,
    translator: T,
}

impl<T: ChunkTranslator> TranslatingRelay<T> {
    pub fn new(translator: T) -> Self {
        TranslatingRelay {
            scanner: SseScanner::new(),
            translator,
        }
    }
}

impl<T: ChunkTranslator> Relay for TranslatingRelay<T> {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut out = Vec::new();
        let translator = &mut self.translator;
        self.scanner.feed_with_data(&chunk, |event, data| {
            if event != SseEvent::NoData {
                translator.data(data, &mut out);
            }
        });
        Bytes::from(out)
    }

    fn after_error(&mut self, _saw_done: bool) -> Bytes {
        // The error event itself was translated in `chunk`; this only guards the end.
        let mut out = Vec::new();
        self.translator.fail(
            "upstream_error",
            "the upstream model reported an error",
            &mut out,
        );
        Bytes::from(out)
    }

    fn end(&mut self, _saw_done: bool) -> Bytes {
        let mut out = Vec::new();
        self.translator.finish(&mut out);
        Bytes::from(out)
    }

    fn gateway_error(&mut self, code: &str, message: &str) -> Bytes {
        let mut out = Vec::new();
        self.translator.fail(code, message, &mut out);
        Bytes::from(out)
    }
}
