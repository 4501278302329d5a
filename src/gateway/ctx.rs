//! The record of one request as it moves along: filled by the HTTP shell and the attempt
//! loop, read once at the end by the request log and the metrics (`obs`). Data only.

use std::time::{Duration, Instant, SystemTime};

use crate::domain::outcome::Outcome;
use crate::domain::route::{FrontKind, Route};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Upstream answered and the answer was classified (a delivered answer is
    /// `Success` or `ClientError`).
    Answered(Outcome),
    /// `routing.request_deadline_secs` ran out while the attempt was under way.
    DeadlineExceeded,
}

impl AttemptEnd {
    /// Stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptEnd::Answered(outcome) => outcome.label(),
            AttemptEnd::DeadlineExceeded => "deadline_exceeded",
        }
    }

    /// The cooldown this attempt imposed on its model or key, if any.
    pub fn cooldown_until(&self) -> Option<SystemTime> {
        match self {
            AttemptEnd::Answered(outcome) => outcome.cooldown_until(),
            AttemptEnd::DeadlineExceeded => None,
        }
    }
}

/// One attempt, as logged in `request_done`.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The routed model (listed id or a provider's extra model).
    pub model: String,
    /// The provider that was called.
    pub provider: std::sync::Arc<str>,
    pub key: String,
    pub end: AttemptEnd,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub max_tokens_clamped: Option<u64>,
}

/// Per-request context, filled as the request moves along and logged at the end.
pub struct RequestCtx {
    pub request_id: u64,
    pub started: Instant,
    pub route: Route,
    /// The API shape the client speaks: how answers and errors are written.
    pub front: FrontKind,
    pub client: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub ttfb: Option<Duration>,
    pub chosen_model: Option<String>,
    /// The provider that answered (`x-free-llm-proxy-provider`).
    pub chosen_provider: Option<std::sync::Arc<str>>,
    pub attempts: Vec<AttemptRecord>,
    pub client_disconnected: bool,
    pub bytes_forwarded: u64,
    pub events_forwarded: u64,
    /// How a stream ended when it failed after content had been forwarded.
    pub mid_stream_error: Option<&'static str>,
    /// Estimated prompt tokens of the routed chat body (SPEC §11: bytes / 4).
    pub prompt_estimate: u64,
}

impl RequestCtx {
    pub fn new(request_id: u64, started: Instant) -> Self {
        RequestCtx {
            request_id,
            started,
            route: Route::NotFound,
            front: FrontKind::OpenAi,
            client: None,
            stream: false,
            status: 0,
            ttfb: None,
            chosen_model: None,
            chosen_provider: None,
            attempts: Vec::new(),
            client_disconnected: false,
            bytes_forwarded: 0,
            events_forwarded: 0,
            mid_stream_error: None,
            prompt_estimate: 0,
        }
    }
}
