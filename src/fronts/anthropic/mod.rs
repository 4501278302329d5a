//! The Anthropic Messages front (SPEC §10), so Claude Code runs on free models.
//!
//! One machinery, two fronts: a Messages request is translated into a Chat Completions
//! body (`request`), parsed by `ChatRequest::parse` and sent through the very same attempt
//! loop as `/v1/chat/completions`; only the answer is written back differently — a
//! translated JSON body (`response`) or a translated event stream (`stream`). Error shapes
//! are `errors`. This module is the glue: the [`Front`] implementation and the local
//! `count_tokens` estimate.

pub mod errors;
pub mod messages;
pub mod request;
pub mod response;
pub mod stream;

use bytes::Bytes;
use serde_json::json;

use crate::domain::chat::{estimate_tokens, ChatRequest};
use crate::domain::error::GatewayError;
use crate::fronts::{ClientAnswer, Front, Reply, Translated};
use crate::gateway::stream::Relay;

/// `HEAD/GET /anthropic/api/hello`: Claude Code's start-up connectivity probe.
pub const HELLO_BODY: &[u8] = br#"{"ok":true}"#;

/// `/anthropic/v1/messages`.
pub struct Anthropic;

impl Front for Anthropic {
    fn parse(&self, body: Bytes) -> Result<Translated, GatewayError> {
        let chat = chat_request(&body)?;
        let prompt_estimate = chat.prompt_estimate();
        Ok(Translated {
            chat,
            reply: Box::new(MessagesReply { prompt_estimate }),
        })
    }

    fn error_body(&self, error: &GatewayError) -> Vec<u8> {
        errors::error_body(error.status, &error.message)
    }
}

/// Answers in the Messages shape; `message_start` and a usage-less answer carry the
/// local prompt estimate.
struct MessagesReply {
    prompt_estimate: u64,
}

impl Reply for MessagesReply {
    /// A Messages answer for a 2xx, the upstream error in the Anthropic shape (same status)
    /// otherwise; 502 when a 2xx could not be translated. Always JSON, whatever upstream
    /// declared.
    fn complete(&self, status: u16, model: &str, body: Bytes) -> ClientAnswer {
        let (status, body) = if !(200..300).contains(&status) {
            (status, Bytes::from(response::upstream_error(status, &body)))
        } else {
            match response::message(&body, &message_id(), model, self.prompt_estimate) {
                Ok(out) => (status, Bytes::from(out)),
                Err(e) => {
                    log::warn!("anthropic: {e}");
                    (502, Bytes::from(errors::error_body(502, &e.to_string())))
                }
            }
        };
        ClientAnswer {
            status,
            body,
            content_type: Some("application/json"),
        }
    }

    fn relay(&self, model: &str) -> Box<dyn Relay + Send> {
        Box::new(stream::AnthropicRelay::new(stream::StreamTranslator::new(
            message_id(),
            model,
            self.prompt_estimate,
        )))
    }
}

/// Translate a `/v1/messages` body into the chat request that gets routed.
pub fn chat_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    request::translate(body)?.to_request()
}

/// `/v1/messages/count_tokens`: `{"input_tokens": n}` from the translated body, no upstream
/// call (Claude Code fires dozens of these at once).
pub fn count_tokens(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let chat = request::to_chat(request::parse(body)?)?;
    let bytes = serde_json::to_vec(&chat)
        .map_err(|e| GatewayError::internal(format!("serializing the chat body failed: {e}")))?;
    Ok(json!({"input_tokens": estimate_tokens(bytes.len())})
        .to_string()
        .into_bytes())
}

/// A fresh `msg_...` id.
fn message_id() -> String {
    format!("msg_{}", crate::fronts::unique_token())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
