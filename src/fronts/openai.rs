//! The OpenAI Chat Completions front (SPEC §3–§6): the client's body is routed as it is
//! (only `model` and an over-large budget change, §4), and answers pass through untouched.

use bytes::Bytes;

use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::fronts::{ClientAnswer, Front, Reply, Translated};
use crate::gateway::stream::{error_event, Relay, DONE_EVENT};

/// `/v1/chat/completions`.
pub struct OpenAi;

impl Front for OpenAi {
    fn parse(&self, body: Bytes) -> Result<Translated, GatewayError> {
        Ok(Translated {
            chat: ChatRequest::parse(body)?,
            reply: Box::new(Unchanged),
        })
    }

    fn error_body(&self, error: &GatewayError) -> Vec<u8> {
        error.openai_body()
    }
}

/// Upstream's answer is the client's.
struct Unchanged;

impl Reply for Unchanged {
    fn complete(&self, status: u16, _model: &str, body: Bytes) -> ClientAnswer {
        ClientAnswer {
            status,
            body,
            content_type: None,
        }
    }

    fn relay(&self, _model: &str) -> Box<dyn Relay + Send> {
        Box::new(Passthrough)
    }
}

/// Upstream chunks reach the client unchanged (no copy); every stream ends with exactly
/// one `[DONE]` (SPEC §6).
pub struct Passthrough;

impl Relay for Passthrough {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        chunk
    }

    fn after_error(&mut self, saw_done: bool) -> Bytes {
        self.end(saw_done)
    }

    fn end(&mut self, saw_done: bool) -> Bytes {
        if saw_done {
            Bytes::new()
        } else {
            Bytes::from_static(DONE_EVENT)
        }
    }

    fn gateway_error(&mut self, code: &str, message: &str) -> Bytes {
        error_event(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_appends_exactly_one_done() {
        let mut relay = Passthrough;
        assert_eq!(
            relay.chunk(Bytes::from_static(b"data: x\n\n")),
            "data: x\n\n"
        );
        assert_eq!(relay.end(true), "");
        assert_eq!(relay.end(false), "data: [DONE]\n\n");
        assert_eq!(relay.after_error(false), "data: [DONE]\n\n");
    }
}
