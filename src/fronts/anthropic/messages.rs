//! The Anthropic Messages request as clients send it (SPEC §10): the wire types the
//! translation in `request` reads. Fields serde does not know are ignored, so new client
//! fields never cause an error.

use serde::Deserialize;
use serde_json::Value;

// ---- What the client sends -------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub(super) system: Option<Content>,
    pub(super) messages: Vec<Message>,
    #[serde(default)]
    pub(super) stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    // Kept as raw JSON numbers so they reach upstream exactly as the client wrote them.
    #[serde(default)]
    pub(super) temperature: Option<Value>,
    #[serde(default)]
    pub(super) top_p: Option<Value>,
    #[serde(default)]
    pub(super) tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub(super) tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub(super) output_config: Option<OutputConfig>,
    /// The structured-outputs beta's older spelling of `output_config.format`.
    #[serde(default)]
    pub(super) output_format: Option<OutputFormat>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Message {
    pub(super) role: String,
    pub(super) content: Content,
}

/// A string, or an array of content blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        text: String,
    },
    Image {},
    Document {},
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    /// `thinking`, `redacted_thinking`, server-tool blocks...: nothing a chat model can use.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ToolResultContent {
    Text(String),
    Blocks(Vec<ResultBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ResultBlock {
    Text {
        text: String,
    },
    /// Claude Code's tool search answers with references to the tools it loaded.
    ToolReference {
        tool_name: String,
    },
    Image {},
    Document {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub(super) struct Tool {
    pub(super) name: String,
    /// Absent or `custom` for client tools; Anthropic's server tools
    /// (`web_search_20250305`, ...) have a versioned type and no schema.
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) input_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    #[serde(rename = "none")]
    NoTool {},
}

#[derive(Debug, Deserialize)]
pub(super) struct OutputConfig {
    #[serde(default)]
    pub(super) format: Option<OutputFormat>,
}

#[derive(Debug, Deserialize)]
pub(super) struct OutputFormat {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) schema: Option<Value>,
}
