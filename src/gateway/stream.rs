//! Streaming (SPEC §6): hold an SSE answer back only until its first content-bearing
//! event, so a model that fails in its first event never reaches the client; then pass
//! every upstream chunk through unchanged as it arrives.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora::proxy::Session;

use crate::domain::outcome::{
    classify_embedded_error, classify_transport, CooldownPolicy, Outcome, TransportFailure,
    UpstreamError,
};
use crate::domain::sse::{SseEvent, SseScanner};
use crate::upstream::client::{BodyRead, Exchange, HttpClient};

/// Most bytes held back before the first content event (comments and headers only).
const MAX_HELD_BYTES: usize = 1024 * 1024;

/// What the events seen so far say about a stream.
#[derive(Debug, Default)]
pub struct StreamState {
    pub content_started: bool,
    pub saw_done: bool,
    pub events: u64,
    /// An upstream error event (the first one).
    pub error: Option<UpstreamError>,
}

impl StreamState {
    fn observe(&mut self, event: SseEvent) {
        self.events += 1;
        // Once an error or [DONE] has ended the stream's meaning, only a later [DONE]
        // still matters (so the gateway does not append a second one).
        let ended = self.error.is_some() || self.saw_done;
        match event {
            SseEvent::NoData => {}
            SseEvent::Done => self.saw_done = true,
            SseEvent::Content if !ended => self.content_started = true,
            SseEvent::Error(error) if !ended => self.error = Some(error),
            SseEvent::Content | SseEvent::Error(_) => {}
        }
    }

    /// Scan a chunk and update the state.
    pub fn scan(&mut self, scanner: &mut SseScanner, chunk: &[u8]) {
        scanner.feed(chunk, |event| self.observe(event));
    }
}

/// A stream that passed the peek: its held bytes and scanning state.
pub struct LiveStream {
    pub exchange: Exchange,
    pub held: Vec<Bytes>,
    pub scanner: SseScanner,
    pub state: StreamState,
}

/// The peek's verdict.
pub enum Peeked {
    /// Deliver: content has started, or the upstream reported a client-side error
    /// (which is returned unchanged).
    Deliver(Box<LiveStream>),
    /// The attempt failed before any content.
    Failed(Outcome),
}

/// Read until the first content-bearing event, for at most `first_content_within`.
pub async fn peek(
    mut exchange: Exchange,
    first_content_within: Duration,
    policy: &CooldownPolicy,
) -> Peeked {
    let deadline = tokio::time::Instant::now() + first_content_within;
    let mut held = Vec::new();
    let mut held_len = 0;
    let mut scanner = SseScanner::new();
    let mut state = StreamState::default();
    let fail = |failure| Peeked::Failed(classify_transport(failure, SystemTime::now(), policy));
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return fail(TransportFailure::HeaderTimeout);
        }
        let chunk = match exchange.next_chunk(remaining).await {
            BodyRead::Data(chunk) => chunk,
            BodyRead::End | BodyRead::Broken => return fail(TransportFailure::BodyFailed),
            BodyRead::Silent => return fail(TransportFailure::HeaderTimeout),
        };
        state.scan(&mut scanner, &chunk);
        held_len += chunk.len();
        held.push(chunk);
        if let (false, Some(error)) = (state.content_started, &state.error) {
            let headers = &exchange.header().headers;
            return match classify_embedded_error(error, headers, SystemTime::now(), policy) {
                Outcome::ClientError => Peeked::Deliver(Box::new(LiveStream {
                    exchange,
                    held,
                    scanner,
                    state,
                })),
                failed => Peeked::Failed(failed),
            };
        }
        if state.content_started {
            return Peeked::Deliver(Box::new(LiveStream {
                exchange,
                held,
                scanner,
                state,
            }));
        }
        if state.saw_done || held_len > MAX_HELD_BYTES {
            // Ended (or rambled) without a single content event.
            return fail(TransportFailure::BodyFailed);
        }
    }
}

pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// The gateway's own SSE error event, in the OpenAI chunk-error shape, then `[DONE]`.
pub fn error_event(code: &str, message: &str) -> Bytes {
    let event = serde_json::json!({
        "error": {"message": message, "type": "upstream_error", "code": code}
    });
    Bytes::from(format!("data: {event}\n\ndata: [DONE]\n\n"))
}

/// How a forwarded stream ended, for the log and for cooling the model.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// Upstream finished (with or without `[DONE]`; one is appended when missing).
    Complete,
    /// Upstream sent an error event after content; forwarded, then `[DONE]`.
    UpstreamError(UpstreamError),
    IdleTimeout,
    Disconnected,
    ClientGone,
}

impl StreamEnd {
    pub fn label(&self) -> Option<&'static str> {
        match self {
            StreamEnd::Complete | StreamEnd::ClientGone => None,
            StreamEnd::UpstreamError(_) => Some("upstream_error_event"),
            StreamEnd::IdleTimeout => Some("upstream_idle_timeout"),
            StreamEnd::Disconnected => Some("upstream_disconnected"),
        }
    }

    /// The outcome to settle for the model that was streaming, if it failed.
    pub fn outcome(
        &self,
        headers: &http::HeaderMap,
        now: SystemTime,
        policy: &CooldownPolicy,
    ) -> Option<Outcome> {
        match self {
            StreamEnd::Complete | StreamEnd::ClientGone => None,
            StreamEnd::UpstreamError(error) => {
                Some(classify_embedded_error(error, headers, now, policy))
            }
            StreamEnd::IdleTimeout => Some(classify_transport(
                TransportFailure::HeaderTimeout,
                now,
                policy,
            )),
            StreamEnd::Disconnected => Some(classify_transport(
                TransportFailure::BodyFailed,
                now,
                policy,
            )),
        }
    }
}

/// What forwarding a stream did.
#[derive(Debug)]
pub struct Forwarded {
    pub end: StreamEnd,
    pub bytes: u64,
    pub events: u64,
}

/// After `[DONE]`, how long to wait for upstream to end its body so the connection can
/// go back to the pool.
const DRAIN_AFTER_DONE: Duration = Duration::from_secs(1);

/// What the client receives for a forwarded stream. The OpenAI front passes upstream bytes
/// through untouched (`fronts::openai::Passthrough`); the Anthropic front translates them into its own
/// events. Either way the forward loop, its timeouts and its endings are the same.
pub trait Relay {
    /// Downstream bytes for one upstream chunk (may be empty).
    fn chunk(&mut self, chunk: Bytes) -> Bytes;
    /// The last bytes after a chunk that carried an upstream error event; `saw_done`:
    /// upstream also sent `[DONE]`.
    fn after_error(&mut self, saw_done: bool) -> Bytes;
    /// The last bytes when upstream ended; `saw_done`: it sent `[DONE]`.
    fn end(&mut self, saw_done: bool) -> Bytes;
    /// The gateway's own closing error (idle timeout, broken connection).
    fn gateway_error(&mut self, code: &str, message: &str) -> Bytes;
}

impl<R: Relay + ?Sized> Relay for Box<R> {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        (**self).chunk(chunk)
    }
    fn after_error(&mut self, saw_done: bool) -> Bytes {
        (**self).after_error(saw_done)
    }
    fn end(&mut self, saw_done: bool) -> Bytes {
        (**self).end(saw_done)
    }
    fn gateway_error(&mut self, code: &str, message: &str) -> Bytes {
        (**self).gateway_error(code, message)
    }
}

/// Forward a live stream downstream through `relay`, chunk by chunk as it arrives.
pub async fn forward_with(
    session: &mut Session,
    live: Box<LiveStream>,
    idle: Duration,
    client: &HttpClient,
    mut relay: impl Relay,
) -> Forwarded {
    let LiveStream {
        mut exchange,
        held,
        mut scanner,
        mut state,
    } = *live;
    let mut bytes = 0u64;
    let finish = |end: StreamEnd, bytes: u64, state: &StreamState| Forwarded {
        end,
        bytes,
        events: state.events,
    };
    for chunk in held {
        let chunk = relay.chunk(chunk);
        bytes += chunk.len() as u64;
        if session
            .write_response_body(Some(chunk), false)
            .await
            .is_err()
        {
            return finish(StreamEnd::ClientGone, bytes, &state);
        }
    }
    loop {
        if let Some(error) = state.error.clone() {
            let done = relay.after_error(state.saw_done);
            let _ = session.write_response_body(Some(done), true).await;
            return finish(StreamEnd::UpstreamError(error), bytes, &state);
        }
        if state.saw_done {
            let _ = session
                .write_response_body(Some(relay.end(true)), true)
                .await;
            if matches!(exchange.next_chunk(DRAIN_AFTER_DONE).await, BodyRead::End) {
                client.finish(exchange).await;
            }
            return finish(StreamEnd::Complete, bytes, &state);
        }
        let read = tokio::select! {
            read = exchange.next_chunk(idle) => read,
            _ = session.downstream_session.read_body_or_idle(true) => {
                // Dropping the exchange closes the upstream connection at once.
                return finish(StreamEnd::ClientGone, bytes, &state);
            }
        };
        let (chunk, end) = match read {
            BodyRead::Data(chunk) => {
                state.scan(&mut scanner, &chunk);
                (relay.chunk(chunk), StreamEnd::Complete)
            }
            BodyRead::End => {
                let done = relay.end(state.saw_done);
                let written = session.write_response_body(Some(done), true).await;
                client.finish(exchange).await;
                let end = if written.is_ok() {
                    StreamEnd::Complete
                } else {
                    StreamEnd::ClientGone
                };
                return finish(end, bytes, &state);
            }
            BodyRead::Silent => (
                relay.gateway_error(
                    "upstream_idle_timeout",
                    "the upstream model stopped sending",
                ),
                StreamEnd::IdleTimeout,
            ),
            BodyRead::Broken => (
                relay.gateway_error("upstream_disconnected", "the upstream connection broke"),
                StreamEnd::Disconnected,
            ),
        };
        let last = end != StreamEnd::Complete;
        bytes += chunk.len() as u64;
        if session
            .write_response_body(Some(chunk), last)
            .await
            .is_err()
        {
            return finish(StreamEnd::ClientGone, bytes, &state);
        }
        if last {
            return finish(end, bytes, &state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_stops_at_the_first_error_or_done() {
        let mut scanner = SseScanner::new();
        let mut state = StreamState::default();
        state.scan(&mut scanner, b": hi\n\ndata: {\"choices\":[]}\n\ndata: {\"error\":{\"code\":500,\"message\":\"x\"}}\n\ndata: {\"error\":{\"code\":429,\"message\":\"y\"}}\n\n");
        assert!(state.content_started);
        assert_eq!(state.error.as_ref().and_then(|e| e.code), Some(500));
        assert!(!state.saw_done);
        state.scan(&mut scanner, b"data: [DONE]\n\n");
        assert!(state.saw_done, "a [DONE] after the error is still noted");
        assert_eq!(state.error.as_ref().and_then(|e| e.code), Some(500));
    }
}
