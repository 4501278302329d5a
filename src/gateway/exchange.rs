//! One (model, key) attempt against the real upstream (SPEC §5, §6): send the routed body,
//! then decide whether the answer can be delivered — a non-streamed 2xx is read whole and
//! inspected for an `error` object, a stream is peeked until its first content event.

use std::future::Future;
use std::time::SystemTime;

use crate::domain::chat::ChatRequest;
use crate::domain::outcome::{
    classify, classify_embedded_error, classify_transport, Outcome, TransportFailure, UpstreamError,
};
use crate::domain::plan::Candidate;
use crate::gateway::app::App;
use crate::gateway::attempts::{Answer, AnswerBody, Attempt, Upstream};
use crate::gateway::stream::{self, Peeked};
use crate::state::key_pool::KeyLease;
use crate::upstream::client::Outbound;

/// Largest non-streamed upstream body the gateway will buffer.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// The real upstream: an HTTP exchange through the shared client.
pub struct HttpUpstream<'a> {
    pub app: &'a App,
}

impl Upstream for HttpUpstream<'_> {
    fn attempt<'a>(
        &'a self,
        req: &'a ChatRequest,
        candidate: &'a Candidate,
        key: &'a KeyLease,
    ) -> impl Future<Output = Attempt> + Send + 'a {
        attempt_once(self.app, req, candidate, key)
    }
}

async fn attempt_once(
    app: &App,
    req: &ChatRequest,
    candidate: &Candidate,
    key: &KeyLease,
) -> Attempt {
    let upstream = &app.config.upstream;
    let endpoint = &candidate.endpoint;
    let Some(provider) = app.providers.get(endpoint.provider) else {
        // Endpoints come from the same config as the providers; never happens.
        return Attempt::Failed(
            classify_transport(
                TransportFailure::Connect,
                SystemTime::now(),
                &app.cooldown_policy(0),
            ),
            None,
        );
    };
    let policy = app.cooldown_policy(endpoint.provider);
    // The body carries the endpoint's own id for the model (SPEC §12).
    let body = req.body_for(&endpoint.provider_model, candidate.budget_clamp);
    let mut headers: Vec<(&str, String)> = vec![
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
    ];
    headers.extend(
        provider
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone())),
    );
    let outbound = Outbound {
        method: "POST",
        url: &provider.base_url,
        path_suffix: "/chat/completions",
        headers,
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
                endpoint: endpoint.clone(),
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
            endpoint: endpoint.clone(),
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

/// A non-streamed 2xx is delivered only when it is a JSON object without a top-level
/// `error` and with a non-empty `choices` array (SPEC §12: a 200 without a usable answer
/// is the model's fault, whoever the provider).
fn inspect_success_body(body: &[u8]) -> BodyVerdict {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        error: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow)]
        choices: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    match serde_json::from_slice::<Probe<'_>>(body) {
        Err(_) => BodyVerdict::Garbage,
        Ok(Probe {
            error: Some(raw), ..
        }) if raw.get() != "null" => match UpstreamError::from_body(body) {
            Some(error) => BodyVerdict::Error(error),
            None => BodyVerdict::Garbage,
        },
        Ok(Probe {
            choices: Some(choices),
            ..
        }) if !choices.is_empty() => BodyVerdict::Clean,
        Ok(_) => BodyVerdict::Garbage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_inspection() {
        let cases: [(&[u8], bool); 8] = [
            (br#"{"choices":[{"message":{"content":"hi"}}]}"#, true),
            (br#"{"choices":[{}],"error":null}"#, true),
            // Without a usable answer: the model's fault, not a success.
            (br#"{"choices":[]}"#, false),
            (br#"{"id":"x","object":"chat.completion"}"#, false),
            (br#"{"choices":null}"#, false),
            (br#"[1,2]"#, false),
            (b"<html><body>502 Bad Gateway</body></html>", false),
            (br#"{"error":"overloaded"}"#, false),
        ];
        for (body, clean) in cases {
            assert_eq!(
                matches!(inspect_success_body(body), BodyVerdict::Clean),
                clean,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
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
