//! The API shapes clients speak (SPEC §3, §10). A front only translates in and out — the
//! request into the Chat Completions request that gets routed, the answer and the errors
//! back — while routing, fallback and streaming are the gateway's, the same for all.

pub mod anthropic;
pub mod openai;

use bytes::Bytes;

use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::domain::route::FrontKind;
use crate::gateway::stream::Relay;

/// What the client gets for a complete (non-streamed) upstream answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAnswer {
    pub status: u16,
    pub body: Bytes,
    /// Replaces upstream's `content-type` when set.
    pub content_type: Option<&'static str>,
}

/// What differs between the fronts.
pub trait Front: Send + Sync {
    /// The client's body as the chat request to route (400-class errors when it is not).
    fn parse(&self, body: Bytes) -> Result<ChatRequest, GatewayError>;
    /// The client's answer for a complete upstream answer (`status` is upstream's).
    fn complete(&self, status: u16, model: &str, body: Bytes, prompt_estimate: u64)
        -> ClientAnswer;
    /// What turns the chosen model's SSE stream into the client's.
    fn relay(&self, model: &str, prompt_estimate: u64) -> Box<dyn Relay + Send>;
    /// The body of one of the gateway's own errors (its headers are the same for all).
    fn error_body(&self, error: &GatewayError) -> Vec<u8>;
}

/// The front that answers requests of `kind`.
pub fn front(kind: FrontKind) -> &'static dyn Front {
    match kind {
        FrontKind::OpenAi => &openai::OpenAi,
        FrontKind::Anthropic => &anthropic::Anthropic,
    }
}
