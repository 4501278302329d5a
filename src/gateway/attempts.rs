//! The attempt loop (SPEC §5): try (model, key) pairs in plan order until one answers,
//! the client is at fault, or the attempt budget or deadline runs out.
//!
//! Everything the client will see is decided here before a byte goes downstream: a
//! non-streamed 2xx body is read and inspected for an `error` object first.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use pingora::http::ResponseHeader;

use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::domain::outcome::{
    classify, classify_embedded_error, classify_transport, KeyFault, Outcome, TransportFailure,
    UpstreamError,
};
use crate::domain::plan::{self, Candidate, Plan, RouteRequest};
use crate::gateway::app::App;
use crate::gateway::ctx::AttemptRecord;
use crate::gateway::stream::{self, LiveStream, Peeked};
use crate::state::cooldowns::Cooldown;
use crate::state::key_pool::{KeyEvent, KeyLease, NoKey};
use crate::upstream::client::Outbound;

/// Largest non-streamed upstream body the gateway will buffer.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// The answer chosen for the client.
pub struct Answer {
    pub model: String,
    /// The key that served it (a stream that fails later settles against it).
    pub key: KeyLease,
    pub header: ResponseHeader,
    pub body: AnswerBody,
}

pub enum AnswerBody {
    /// Fully read and inspected.
    Complete(Bytes),
    /// A stream past its first content event; the rest is forwarded as it arrives.
    Stream(Box<LiveStream>),
}

/// What one attempt produced.
enum Attempt {
    Deliver(Box<Answer>),
    /// The outcome, and the upstream status when there was one.
    Failed(Outcome, Option<u16>),
}

/// Run the attempt loop for `req`. `attempts` is filled as attempts finish, so the caller
/// can log them even when this future is dropped (client gone).
pub async fn dispatch(
    app: &App,
    req: &ChatRequest,
    attempts: &mut Vec<AttemptRecord>,
) -> Result<Answer, GatewayError> {
    let started = Instant::now();
    let routing_cfg = &app.config.routing;
    let deadline = started + routing_cfg.request_deadline;
    let snapshot = app.state.registry.snapshot();
    let now = SystemTime::now();
    let route = RouteRequest {
        pinned_model: req.model.as_deref(),
        needs: req.needs,
        prompt_tokens: req.prompt_estimate(),
        requested_budget: req.requested_budget,
    };
    let candidates = match plan::plan(
        &snapshot,
        &route,
        routing_cfg.use_list_fallback,
        now,
        |id| app.state.cooldowns.cooling_until(id, now),
    ) {
        Plan::Try(candidates) => candidates,
        Plan::NoCapableModel { missing } => return Err(GatewayError::no_capable_model(&missing)),
        Plan::AllCooling { retry_after } => {
            return Err(GatewayError::all_models_unavailable(
                "every capable model is cooling down after rate limits or errors",
            )
            .with_retry_after(retry_after))
        }
    };

    let max_attempts = routing_cfg.max_attempts as usize;
    for candidate in &candidates {
        // Another request may have cooled this model since the plan was made.
        if app
            .state
            .cooldowns
            .cooling_until(&candidate.model_id, SystemTime::now())
            .is_some()
        {
            continue;
        }
        // Same model, next key, for as long as keys are what fails.
        loop {
            if attempts.len() >= max_attempts {
                return Err(exhausted(app, &candidates, "routing.max_attempts reached"));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GatewayError::deadline_exceeded(
                    routing_cfg.request_deadline,
                ));
            }
            let lease = match app.state.keys.lease(SystemTime::now()) {
                Ok(lease) => lease,
                Err(no_key) => return Err(no_key_error(no_key)),
            };
            let attempt_started = Instant::now();
            let attempt = pingora::prelude::timeout(
                remaining,
                Box::pin(attempt_once(app, req, candidate, &lease)),
            )
            .await;
            let Ok(attempt) = attempt else {
                attempts.push(record(
                    candidate,
                    lease.masked(),
                    "deadline_exceeded",
                    None,
                    attempt_started,
                    None,
                ));
                return Err(GatewayError::deadline_exceeded(
                    routing_cfg.request_deadline,
                ));
            };
            let now = SystemTime::now();
            let (outcome, status) = match attempt {
                Attempt::Deliver(answer) => {
                    app.state.keys.record(&lease, KeyEvent::Served, now);
                    let status = answer.header.status.as_u16();
                    let label = if (200..300).contains(&status) {
                        "success"
                    } else {
                        "client_error"
                    };
                    attempts.push(record(
                        candidate,
                        lease.masked(),
                        label,
                        Some(status),
                        attempt_started,
                        None,
                    ));
                    return Ok(*answer);
                }
                Attempt::Failed(outcome, status) => (outcome, status),
            };
            attempts.push(record(
                candidate,
                lease.masked(),
                outcome.label(),
                status,
                attempt_started,
                outcome.cooldown_until(),
            ));
            if settle(app, &candidate.model_id, &lease, &outcome, now) == Next::Model {
                break;
            }
        }
    }
    Err(exhausted(app, &candidates, "every candidate model failed"))
}

/// After a failed attempt: what to try next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The same model with another key.
    Key,
    Model,
}

/// Apply a failed attempt's outcome to the shared state: cool the model or the key.
pub fn settle(
    app: &App,
    model: &str,
    lease: &KeyLease,
    outcome: &Outcome,
    now: SystemTime,
) -> Next {
    match *outcome {
        Outcome::ModelCooldown {
            until,
            until_refresh,
            ..
        } => {
            // The key did its job; the model failed. Only delivered answers count as
            // the key's successes.
            app.state.cooldowns.cool(
                model,
                Cooldown {
                    until,
                    until_refresh,
                },
            );
            log::info!(
                "model {model} cooling for {}s ({})",
                secs_until(until, now),
                outcome.label()
            );
            Next::Model
        }
        Outcome::KeyCooldown { fault, until } => {
            app.state.keys.record(
                lease,
                KeyEvent::Cooled {
                    until,
                    reason: fault,
                },
                now,
            );
            log::warn!(
                "upstream key {} cooling for {}s ({})",
                lease.masked(),
                secs_until(until, now),
                fault.as_str()
            );
            Next::Key
        }
        Outcome::KeyDisabled => {
            app.state.keys.record(
                lease,
                KeyEvent::Disabled {
                    reason: KeyFault::Unauthorized,
                },
                now,
            );
            log::warn!(
                "upstream key {} disabled: upstream answered 401",
                lease.masked()
            );
            Next::Key
        }
        // Deliverable outcomes are never settled as failures.
        Outcome::Success | Outcome::ClientError => Next::Model,
    }
}

fn secs_until(until: SystemTime, now: SystemTime) -> u64 {
    until.duration_since(now).unwrap_or_default().as_secs()
}

fn record(
    candidate: &Candidate,
    key: String,
    outcome: &'static str,
    status: Option<u16>,
    started: Instant,
    cooldown_until: Option<SystemTime>,
) -> AttemptRecord {
    AttemptRecord {
        model: candidate.model_id.clone(),
        key,
        outcome,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        cooldown_until,
        max_tokens_clamped: candidate.budget_clamp,
    }
}

/// 503 with `Retry-After` = time until the earliest candidate is usable again.
fn exhausted(app: &App, candidates: &[Candidate], why: &str) -> GatewayError {
    let now = SystemTime::now();
    let earliest = candidates
        .iter()
        .filter_map(|c| app.state.cooldowns.cooling_until(&c.model_id, now))
        .min();
    let error =
        GatewayError::all_models_unavailable(format!("no model could serve the request: {why}"));
    match earliest {
        Some(until) => error.with_retry_after(until.duration_since(now).unwrap_or_default()),
        None => error,
    }
}

fn no_key_error(no_key: NoKey) -> GatewayError {
    match no_key {
        NoKey::NoneConfigured => GatewayError::no_upstream_key(),
        NoKey::AllDisabled { described } => GatewayError::upstream_auth_error(&described),
        NoKey::AllCooling { until } => GatewayError::all_models_unavailable(
            "every upstream API key is resting after hitting its quota",
        )
        .with_retry_after(until.duration_since(SystemTime::now()).unwrap_or_default()),
    }
}

/// One (model, key) attempt: send, then decide whether the answer can be delivered.
async fn attempt_once(
    app: &App,
    req: &ChatRequest,
    candidate: &Candidate,
    key: &KeyLease,
) -> Attempt {
    let upstream = &app.config.upstream;
    let policy = app.cooldown_policy();
    let body = req.body_for(&candidate.model_id, candidate.budget_clamp);
    let outbound = Outbound {
        method: "POST",
        url: &upstream.base_url,
        path_suffix: "/chat/completions",
        headers: vec![
            ("authorization", format!("Bearer {}", key.secret())),
            ("content-type", "application/json".to_string()),
            // The gateway reads answers (errors inside 200s, SSE events): no compression.
            ("accept-encoding", "identity".to_string()),
            (
                "accept",
                if req.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .to_string(),
            ),
            ("x-title", "free-llm-proxy".to_string()),
        ],
        body: Some(body),
        connect_timeout: upstream.connect_timeout,
    };
    let mut exchange = match app.client.send(outbound, upstream.timeout).await {
        Ok(exchange) => exchange,
        Err(failure) => {
            return Attempt::Failed(
                classify_transport(failure, SystemTime::now(), &policy),
                None,
            )
        }
    };
    let status = exchange.status();
    let success = (200..300).contains(&status);

    if success && req.stream {
        let header = exchange.header().clone();
        return match stream::peek(exchange, upstream.timeout, &policy).await {
            Peeked::Deliver(live) => Attempt::Deliver(Box::new(Answer {
                model: candidate.model_id.clone(),
                key: key.clone(),
                header,
                body: AnswerBody::Stream(live),
            })),
            Peeked::Failed(outcome) => Attempt::Failed(outcome, Some(status)),
        };
    }

    let body = match exchange
        .read_to_end(upstream.timeout, MAX_UPSTREAM_BODY)
        .await
    {
        Ok(body) => body,
        Err(failure) => {
            return Attempt::Failed(
                classify_transport(failure, SystemTime::now(), &policy),
                Some(status),
            )
        }
    };
    let header = exchange.header().clone();
    app.client.finish(exchange).await;

    let now = SystemTime::now();
    let outcome = if success {
        match inspect_success_body(&body) {
            BodyVerdict::Clean => Outcome::Success,
            BodyVerdict::Garbage => classify_transport(TransportFailure::Garbage, now, &policy),
            // A failure reported inside a 200: classified as if it were that status.
            BodyVerdict::Error(error) => {
                classify_embedded_error(&error, &header.headers, now, &policy)
            }
        }
    } else {
        let error = UpstreamError::from_body(&body);
        classify(status, &header.headers, error.as_ref(), now, &policy)
    };
    match outcome {
        Outcome::Success | Outcome::ClientError => Attempt::Deliver(Box::new(Answer {
            model: candidate.model_id.clone(),
            key: key.clone(),
            header,
            body: AnswerBody::Complete(body),
        })),
        failed => Attempt::Failed(failed, Some(status)),
    }
}

enum BodyVerdict {
    Clean,
    Garbage,
    Error(UpstreamError),
}

/// A non-streamed 2xx is delivered only when it is JSON without a top-level `error`.
fn inspect_success_body(body: &[u8]) -> BodyVerdict {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        error: Option<&'a serde_json::value::RawValue>,
    }
    match serde_json::from_slice::<Probe<'_>>(body) {
        Err(_) => BodyVerdict::Garbage,
        Ok(Probe { error: None }) => BodyVerdict::Clean,
        Ok(Probe { error: Some(raw) }) if raw.get() == "null" => BodyVerdict::Clean,
        Ok(Probe { error: Some(_) }) => match UpstreamError::from_body(body) {
            Some(error) => BodyVerdict::Error(error),
            None => BodyVerdict::Clean,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_inspection() {
        assert!(matches!(
            inspect_success_body(br#"{"choices":[]}"#),
            BodyVerdict::Clean
        ));
        assert!(matches!(
            inspect_success_body(br#"{"choices":[],"error":null}"#),
            BodyVerdict::Clean
        ));
        assert!(matches!(
            inspect_success_body(b"<html>oops"),
            BodyVerdict::Garbage
        ));
        assert!(matches!(inspect_success_body(b""), BodyVerdict::Garbage));
        match inspect_success_body(br#"{"error":{"code":429,"message":"busy"}}"#) {
            BodyVerdict::Error(e) => assert_eq!(e.code, Some(429)),
            _ => panic!("expected an error verdict"),
        }
    }
}
