//! The API shapes clients speak (SPEC §3, §10, §13). A front only translates in and out — the
//! request into the Chat Completions request that gets routed, the answer and the errors
//! back — while routing, fallback and streaming are the gateway's, the same for all.

pub mod anthropic;
pub mod chat_wire;
pub mod openai;
pub mod responses;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

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

/// Why a front's request cannot be translated: answered 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Invalid> for GatewayError {
    fn from(e: Invalid) -> Self {
        GatewayError::invalid_request(e.0)
    }
}

/// What differs between the fronts.
pub trait Front: Send + Sync {
    /// The client's body as the chat request to route, and how to answer it (400-class
    /// errors when it is not a request of this front).
    fn parse(&self, body: Bytes) -> Result<Translated, GatewayError>;
    /// The body of one of the gateway's own errors (its headers are the same for all).
    fn error_body(&self, error: &GatewayError) -> Vec<u8>;
}

/// A client request as the gateway routes it.
pub struct Translated {
    pub chat: ChatRequest,
    /// Writes the answer back; it may remember things about the request (the Responses
    /// front: which tools were custom or namespaced, the ids it gave).
    pub reply: Box<dyn Reply>,
}

/// How one request's answer goes back to its client.
pub trait Reply: Send + Sync {
    /// The client's answer for a complete upstream answer (`status` is upstream's).
    fn complete(&self, status: u16, model: &str, body: Bytes) -> ClientAnswer;
    /// What turns the chosen model's SSE stream into the client's.
    fn relay(&self, model: &str) -> Box<dyn Relay + Send>;
}

/// A token for ids the gateway makes up (`msg_…`, `resp_…`): unique within the process
/// (a counter) and across restarts (the time).
pub fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = crate::util::time::epoch_nanos(SystemTime::now());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:016x}{n:08x}")
}

/// The front that answers requests of `kind`.
pub fn front(kind: FrontKind) -> &'static dyn Front {
    match kind {
        FrontKind::OpenAi => &openai::OpenAi,
        FrontKind::Anthropic => &anthropic::Anthropic,
        FrontKind::Responses => &responses::Responses,
    }
}
