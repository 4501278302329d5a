//! The Anthropic Messages front (SPEC §10), so Claude Code runs on free models.
//!
//! One machinery, two fronts: a Messages request is translated into a Chat Completions
//! body (`request`), parsed by `ChatRequest::parse` and sent through the very same
//! `dispatch::dispatch` as `/v1/chat/completions`; only the answer is written back
//! differently — a translated JSON body (`response`) or a translated event stream
//! (`stream`). This module holds what the proxy shell calls: the error shape, and the
//! glue between the translations and the gateway's types.

pub mod request;
pub mod response;
pub mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::http::respond;

/// `HEAD/GET /anthropic/api/hello`: Claude Code's start-up connectivity probe.
pub const HELLO_BODY: &[u8] = br#"{"ok":true}"#;

/// Anthropic's error `type` for an HTTP status (SPEC §11).
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 504 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":...,"message":...}}`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
        .to_string()
        .into_bytes()
}

/// Write one of the gateway's own errors in the Anthropic shape, with the same
/// `Retry-After` / `Allow` headers the OpenAI front sends.
pub async fn write_error(session: &mut Session, error: &GatewayError) -> pingora::Result<()> {
    let mut extra = Vec::new();
    if let Some(secs) = error.retry_after {
        extra.push(("retry-after", secs.to_string()));
    }
    if let Some(allowed) = error.allow {
        extra.push(("allow", allowed.to_string()));
    }
    let body = error_body(error.status, &error.message);
    respond::json(session, error.status, body, &extra).await
}

/// Translate a `/v1/messages` body into the chat request that gets routed.
pub fn chat_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let chat = request::translate(body).map_err(|e| GatewayError::invalid_request(e.0))?;
    let bytes = serde_json::to_vec(&chat)
        .map_err(|e| GatewayError::internal(format!("serializing the chat body failed: {e}")))?;
    ChatRequest::parse(Bytes::from(bytes)).map_err(|e| GatewayError::invalid_request(e.to_string()))
}

/// `/v1/messages/count_tokens`: `{"input_tokens": n}` from the translated body, no upstream
/// call (Claude Code fires dozens of these at once).
pub fn count_tokens(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let invalid = |e: request::Invalid| GatewayError::invalid_request(e.0);
    let chat = request::to_chat(request::parse(body).map_err(invalid)?).map_err(invalid)?;
    let bytes = serde_json::to_vec(&chat)
        .map_err(|e| GatewayError::internal(format!("serializing the chat body failed: {e}")))?;
    Ok(json!({"input_tokens": bytes.len() / 4})
        .to_string()
        .into_bytes())
}

/// The client's body for a complete upstream answer: a Messages answer for a 2xx, the
/// upstream error in the Anthropic shape (same status) otherwise.
pub fn complete_body(status: u16, model: &str, body: &[u8], input_estimate: u64) -> (u16, Bytes) {
    if !(200..300).contains(&status) {
        return (status, Bytes::from(response::upstream_error(status, body)));
    }
    match response::message(body, &message_id(), model, input_estimate) {
        Ok(out) => (status, Bytes::from(out)),
        Err(e) => {
            log::warn!("anthropic: {e}");
            (502, Bytes::from(error_body(502, &e)))
        }
    }
}

/// The header of a translated complete answer: its status (502 when the upstream answer
/// could not be translated) and a JSON content type whatever upstream declared.
pub fn json_header(mut header: ResponseHeader, status: u16) -> pingora::Result<ResponseHeader> {
    header.set_status(status)?;
    header.insert_header("content-type", "application/json")?;
    Ok(header)
}

/// The relay that turns the chosen model's stream into Messages events.
pub fn relay(model: &str, input_estimate: u64) -> stream::AnthropicRelay {
    stream::AnthropicRelay::new(stream::StreamTranslator::new(
        message_id(),
        model,
        input_estimate,
    ))
}

/// A fresh `msg_...` id: unique within the process (counter) and across restarts (time).
fn message_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = crate::util::time::epoch_nanos(SystemTime::now());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("msg_{nanos:016x}{n:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_types_by_status() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (405, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "overloaded_error"),
        ];
        for (status, want) in cases {
            assert_eq!(error_type(status), want, "{status}");
        }
        let body: Value = serde_json::from_slice(&error_body(401, "invalid API key")).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}})
        );
    }

    #[test]
    fn count_tokens_is_a_quarter_of_the_translated_body() {
        let body =
            json!({"model": "claude", "messages": [{"role": "user", "content": "x".repeat(4000)}]});
        let out: Value =
            serde_json::from_slice(&count_tokens(body.to_string().as_bytes()).unwrap()).unwrap();
        let n = out["input_tokens"].as_u64().unwrap();
        assert!((1000..1100).contains(&n), "{n}");
        assert!(count_tokens(b"{}").is_err());
    }

    #[test]
    fn chat_request_routes_the_translated_body() {
        let req = chat_request(
            json!({"model": "claude", "max_tokens": 128000, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(req.stream);
        assert_eq!(req.requested_budget, Some(128000));
        let upstream: Value =
            serde_json::from_slice(&req.body_for("m/x:free", Some(32768))).unwrap();
        assert_eq!(upstream["model"], "m/x:free");
        assert_eq!(upstream["max_tokens"], 32768);
        assert_eq!(upstream["stream_options"]["include_usage"], true);
        assert_eq!(chat_request(b"{\"messages\":[]}").unwrap_err().status, 400);
    }

    #[test]
    fn message_ids_are_unique() {
        let a = message_id();
        let b = message_id();
        assert!(a.starts_with("msg_") && a != b);
    }
}
