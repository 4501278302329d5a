//! The OpenAI Responses front (SPEC §13), so Codex CLI and the Agents SDK run on free
//! models.
//!
//! A third front on the one machinery: a Responses request is translated into a Chat
//! Completions body (`request`, remembering in a [`tools::ToolMap`] which upstream function
//! stands for which custom or namespaced tool), routed by the same attempt loop, and the
//! answer is written back as a `response` object (`response`) or a Responses event stream
//! (`stream`). Errors are the OpenAI shape of §3, as on the chat front.

pub mod request;
pub mod response;
pub mod stream;
pub mod tools;

use std::time::SystemTime;

use bytes::Bytes;

use crate::domain::error::GatewayError;
use crate::domain::outcome::UpstreamError;
use crate::fronts::{unique_token, ClientAnswer, Front, Reply, Translated};
use crate::gateway::stream::Relay;
use request::TranslateError;
use response::{Answering, Ids};

/// `/v1/responses`.
pub struct Responses;

impl Front for Responses {
    fn parse(&self, body: Bytes) -> Result<Translated, GatewayError> {
        let (chat, tools) = request::translate(&body).map_err(|e| match e {
            TranslateError::Body(e) => GatewayError::from(e),
            TranslateError::Invalid(e) => GatewayError::from(e),
        })?;
        let chat = chat.to_request()?;
        let answering = Answering {
            ids: Ids::new(unique_token()),
            tools,
            input_estimate: chat.prompt_estimate(),
            created_at: crate::util::time::epoch_secs(SystemTime::now()),
        };
        Ok(Translated {
            chat,
            reply: Box::new(ResponsesReply { answering }),
        })
    }

    fn error_body(&self, error: &GatewayError) -> Vec<u8> {
        error.openai_body()
    }
}

struct ResponsesReply {
    answering: Answering,
}

impl Reply for ResponsesReply {
    /// A `response` object for a 2xx, upstream's error in the OpenAI shape (same status)
    /// otherwise; 502 when a 2xx cannot be translated. Always JSON.
    fn complete(&self, status: u16, model: &str, body: Bytes) -> ClientAnswer {
        let (status, body) = if !(200..300).contains(&status) {
            (status, upstream_error(status, &body))
        } else {
            match response::response(&body, &self.answering, model) {
                Ok(out) => (status, out),
                Err(e) => {
                    log::warn!("responses: {e}");
                    (
                        502,
                        GatewayError::bad_upstream_answer(e.to_string()).openai_body(),
                    )
                }
            }
        };
        ClientAnswer {
            status,
            body: Bytes::from(body),
            content_type: Some("application/json"),
        }
    }

    fn relay(&self, model: &str) -> Box<dyn Relay + Send> {
        Box::new(stream::ResponsesRelay::new(stream::StreamTranslator::new(
            self.answering.clone(),
            model,
        )))
    }
}

/// An upstream error answer (a client error, returned with its status) in the OpenAI
/// shape: providers' error bodies vary, and some are not JSON at all.
fn upstream_error(status: u16, body: &[u8]) -> Vec<u8> {
    let message = match UpstreamError::from_body(body) {
        Some(error) if !error.message.is_empty() => error.message,
        _ => String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned(),
    };
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    serde_json::json!({"error": {"message": message, "type": kind, "code": status.to_string()}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn upstream_errors_in_the_openai_shape() {
        let got: Value = serde_json::from_slice(&upstream_error(
            400,
            br#"{"error":{"code":400,"message":"bad tool schema","metadata":{}}}"#,
        ))
        .unwrap();
        assert_eq!(
            got,
            json!({"error": {"message": "bad tool schema", "type": "invalid_request_error", "code": "400"}})
        );
        let got: Value =
            serde_json::from_slice(&upstream_error(403, b"<html>nope</html>")).unwrap();
        assert_eq!(got["error"]["type"], "permission_error");
        assert_eq!(got["error"]["message"], "<html>nope</html>");
    }

    #[test]
    fn parse_routes_the_translated_body_and_refuses_stored_responses() {
        let translated = Responses
            .parse(Bytes::from(
                json!({"model": "auto", "input": "hi", "stream": true, "max_output_tokens": 64,
                    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]})
                .to_string(),
            ))
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert!(translated.chat.stream);
        let error = Responses
            .parse(Bytes::from_static(
                br#"{"input":"hi","previous_response_id":"resp_1"}"#,
            ))
            .err()
            .expect("refused");
        assert_eq!(error.status, 400);
        assert_eq!(error.kind, "invalid_request_error");
        assert!(
            error.message.contains("stores no responses"),
            "{}",
            error.message
        );
        let error = Responses
            .parse(Bytes::from_static(b"{"))
            .err()
            .expect("refused");
        assert_eq!(error.code, "invalid_json");
    }
}
