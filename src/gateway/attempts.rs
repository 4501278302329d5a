//! The attempt loop (SPEC §5, §12): try (endpoint, key) pairs in plan order until one answers,
//! the client is at fault, or the attempt budget or deadline runs out.
//!
//! Everything the client will see is decided here before a byte goes downstream: a
//! non-streamed 2xx body is read and inspected for an `error` object first.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use pingora::http::ResponseHeader;

use crate::config::RoutingSettings;
use crate::domain::catalogue::{Catalogue, Endpoint, ProviderIndex};
use crate::domain::chat::ChatRequest;
use crate::domain::error::GatewayError;
use crate::domain::outcome::{KeyFault, Outcome};
use crate::domain::plan::{self, Candidate, Plan, Readiness, RouteRequest};
use crate::gateway::app::App;
use crate::gateway::ctx::{AttemptEnd, AttemptRecord};
use crate::gateway::exchange::HttpUpstream;
use crate::gateway::stream::LiveStream;
use crate::state::cooldowns::{Cooldown, ModelCooldowns};
use crate::state::health::{Health, Sample};
use crate::state::key_pool::{KeyEvent, KeyLease, KeyPool, NoKey};

/// The answer chosen for the client.
pub struct Answer {
    /// The routed model.
    pub model: String,
    /// Where it was served (a stream that fails later settles against it).
    pub endpoint: Endpoint,
    /// The key that served it.
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
pub enum Attempt {
    Deliver(Box<Answer>),
    /// The outcome, and the upstream status when there was one.
    Failed(Outcome, Option<u16>),
}

/// The clock the loop reads: wall time for cooldowns, monotonic time for the deadline.
/// Tests drive a fake one.
pub trait Clock {
    fn wall(&self) -> SystemTime;
    fn mono(&self) -> Instant;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn mono(&self) -> Instant {
        Instant::now()
    }
}

/// Where one (model, key) attempt goes: the real upstream over HTTP, or a script in tests.
pub trait Upstream {
    fn attempt<'a>(
        &'a self,
        req: &'a ChatRequest,
        candidate: &'a Candidate,
        key: &'a KeyLease,
    ) -> impl Future<Output = Attempt> + Send + 'a;
}

/// The pieces of state the loop reads and settles into.
#[derive(Clone, Copy)]
pub struct LoopState<'a> {
    pub routing: &'a RoutingSettings,
    pub cooldowns: &'a ModelCooldowns,
    /// By provider index.
    pub pools: &'a [KeyPool],
    pub health: &'a Health<Endpoint>,
    /// Provider names by index, for the attempt records.
    pub provider_names: &'a [Arc<str>],
}

impl LoopState<'_> {
    /// Whether `endpoint` can take an attempt at `now` (SPEC §12 "Order").
    fn readiness(&self, endpoint: &Endpoint, now: SystemTime) -> Readiness {
        if let Some(until) = self.cooldowns.cooling_until(endpoint, now) {
            return Readiness::NotBefore(until);
        }
        let Some(pool) = self.pools.get(endpoint.provider) else {
            return Readiness::NoUsableKey;
        };
        match pool.availability(&endpoint.provider_model, now) {
            Err(NoKey::AllCooling { until }) => Readiness::NotBefore(until),
            Err(NoKey::AllDisabled { .. } | NoKey::NoneConfigured) => Readiness::NoUsableKey,
            Ok(()) if self.health.demoted(endpoint, now).is_some() => Readiness::Demoted,
            Ok(()) => Readiness::Ready,
        }
    }

    fn provider_name(&self, index: ProviderIndex) -> Arc<str> {
        self.provider_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| Arc::from("?"))
    }

    /// Why no provider of `candidates` has a usable key: 502 naming the rejected keys
    /// when some were disabled, else "no key configured".
    fn no_usable_key(&self) -> GatewayError {
        let mut described = Vec::new();
        for pool in self.pools {
            described.extend(pool.all_disabled().into_iter().flatten());
        }
        if described.is_empty() {
            GatewayError::no_upstream_key()
        } else {
            GatewayError::upstream_auth_error(&described)
        }
    }
}

/// Run the attempt loop for `req` against the real upstream. `attempts` is filled as
/// attempts finish, so the caller can log them even when this future is dropped (client
/// gone).
pub async fn dispatch(
    app: &App,
    req: &ChatRequest,
    attempts: &mut Vec<AttemptRecord>,
) -> Result<Answer, GatewayError> {
    let names: Vec<Arc<str>> = app.providers.iter().map(|p| p.name.clone()).collect();
    let state = LoopState {
        routing: &app.config.routing,
        cooldowns: &app.state.cooldowns,
        pools: &app.state.pools,
        health: &app.state.health,
        provider_names: &names,
    };
    let catalogue = app.state.registry.catalogue();
    let result = run(
        state,
        &catalogue,
        &HttpUpstream { app },
        &SystemClock,
        req,
        attempts,
    )
    .await;
    // A daily cap at OpenRouter: ask `/key` what is left (SPEC §12).
    if attempts.iter().any(|a| {
        a.provider.as_ref() == crate::config::OPENROUTER
            && matches!(
                a.end,
                AttemptEnd::Answered(Outcome::KeyCooldown {
                    fault: KeyFault::DailyCap,
                    ..
                })
            )
    }) {
        app.state.quota_check_now.notify_one();
    }
    result
}

/// The attempt loop itself: plan, then (endpoint, key) attempts until an answer, a
/// client fault, `max_attempts` or the deadline.
pub async fn run(
    state: LoopState<'_>,
    catalogue: &Catalogue,
    upstream: &impl Upstream,
    clock: &impl Clock,
    req: &ChatRequest,
    attempts: &mut Vec<AttemptRecord>,
) -> Result<Answer, GatewayError> {
    let started = clock.mono();
    let routing_cfg = state.routing;
    let deadline = started + routing_cfg.request_deadline;
    let now = clock.wall();
    let route = RouteRequest {
        pinned_model: req.model.as_deref(),
        needs: req.needs,
        prompt_tokens: req.prompt_estimate(),
        requested_budget: req.requested_budget,
    };
    let candidates = match plan::plan(catalogue, &route, routing_cfg.use_list_fallback, now, |e| {
        state.readiness(e, now)
    }) {
        Plan::Try(candidates) => candidates,
        Plan::NoCapableModel { missing } => return Err(GatewayError::no_capable_model(&missing)),
        Plan::AllCooling { retry_after } => {
            return Err(GatewayError::all_models_unavailable(
                "every capable model is cooling down or out of quota after rate limits or errors",
            )
            .with_retry_after(retry_after))
        }
        Plan::NoUsableKey => return Err(state.no_usable_key()),
    };

    let max_attempts = routing_cfg.max_attempts as usize;
    for candidate in &candidates {
        let endpoint = &candidate.endpoint;
        // Another request may have cooled this endpoint since the plan was made.
        if state
            .cooldowns
            .cooling_until(endpoint, clock.wall())
            .is_some()
        {
            continue;
        }
        let Some(pool) = state.pools.get(endpoint.provider) else {
            continue;
        };
        let provider = state.provider_name(endpoint.provider);
        // Same endpoint, next key, for as long as keys are what fails.
        loop {
            if attempts.len() >= max_attempts {
                return Err(exhausted(
                    state,
                    &candidates,
                    "routing.max_attempts reached",
                    clock.wall(),
                ));
            }
            let remaining = deadline.saturating_duration_since(clock.mono());
            if remaining.is_zero() {
                return Err(GatewayError::deadline_exceeded(
                    routing_cfg.request_deadline,
                ));
            }
            // No key left for this endpoint (resting, at a limit, disabled): next one.
            let Ok(lease) = pool.lease(&endpoint.provider_model, clock.wall()) else {
                break;
            };
            let attempt_started = clock.mono();
            let attempt = pingora::prelude::timeout(
                remaining,
                Box::pin(upstream.attempt(req, candidate, &lease)),
            )
            .await;
            let took = clock.mono().saturating_duration_since(attempt_started);
            let record = |end: AttemptEnd, status: Option<u16>| AttemptRecord {
                model: candidate.model_id.clone(),
                provider: provider.clone(),
                key: lease.masked(),
                end,
                status,
                duration_ms: took.as_millis() as u64,
                max_tokens_clamped: candidate.budget_clamp,
            };
            let Ok(attempt) = attempt else {
                attempts.push(record(AttemptEnd::DeadlineExceeded, None));
                state.health.record(endpoint, Sample::Failure, clock.wall());
                return Err(GatewayError::deadline_exceeded(
                    routing_cfg.request_deadline,
                ));
            };
            let now = clock.wall();
            let (outcome, status) = match attempt {
                Attempt::Deliver(answer) => {
                    pool.record(&lease, KeyEvent::Served, now);
                    let status = answer.header.status.as_u16();
                    let delivered = if (200..300).contains(&status) {
                        Outcome::Success
                    } else {
                        Outcome::ClientError
                    };
                    // A client-fault answer still shows the endpoint working.
                    state
                        .health
                        .record(endpoint, Sample::Success { ttfb: took }, now);
                    attempts.push(record(AttemptEnd::Answered(delivered), Some(status)));
                    return Ok(*answer);
                }
                Attempt::Failed(outcome, status) => (outcome, status),
            };
            attempts.push(record(AttemptEnd::Answered(outcome), status));
            if matches!(outcome, Outcome::ModelCooldown { .. }) {
                state.health.record(endpoint, Sample::Failure, now);
            }
            if settle(
                state.cooldowns,
                pool,
                endpoint,
                &provider,
                &lease,
                &outcome,
                now,
            ) == Next::Model
            {
                break;
            }
        }
    }
    Err(exhausted(
        state,
        &candidates,
        "every candidate model failed",
        clock.wall(),
    ))
}

/// After a failed attempt: what to try next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The same model with another key.
    Key,
    Model,
}

/// Apply a failed attempt's outcome to the shared state: cool the endpoint, or cool,
/// rest or disable the key.
pub fn settle(
    cooldowns: &ModelCooldowns,
    pool: &KeyPool,
    endpoint: &Endpoint,
    provider: &str,
    lease: &KeyLease,
    outcome: &Outcome,
    now: SystemTime,
) -> Next {
    let model = &endpoint.provider_model;
    match *outcome {
        Outcome::ModelCooldown {
            until,
            until_refresh,
            ..
        } => {
            // The key did its job; the model failed. Only delivered answers count as
            // the key's successes.
            cooldowns.cool(
                endpoint,
                Cooldown {
                    until,
                    until_refresh,
                },
            );
            log::info!(
                "model {model} at {provider} cooling for {}s ({})",
                secs_until(until, now),
                outcome.label()
            );
            Next::Model
        }
        Outcome::KeyCooldown { fault, until } => {
            pool.record(
                lease,
                KeyEvent::Cooled {
                    until,
                    reason: fault,
                },
                now,
            );
            log::warn!(
                "{provider} key {} cooling for {}s ({})",
                lease.masked(),
                secs_until(until, now),
                fault.as_str()
            );
            Next::Key
        }
        Outcome::KeyRest { fault, until } => {
            pool.record(
                lease,
                KeyEvent::Rested {
                    model: model.clone(),
                    until,
                    reason: fault,
                },
                now,
            );
            log::info!(
                "{provider} key {} resting for {model} for {}s ({})",
                lease.masked(),
                secs_until(until, now),
                fault.as_str()
            );
            Next::Key
        }
        Outcome::KeyDisabled => {
            pool.record(
                lease,
                KeyEvent::Disabled {
                    reason: KeyFault::Unauthorized,
                },
                now,
            );
            log::warn!(
                "{provider} key {} disabled: upstream answered 401",
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

/// Why the loop ran out: 503 with `Retry-After` = time until the earliest candidate is
/// usable again, or 502 when every key that could serve was rejected.
fn exhausted(
    state: LoopState<'_>,
    candidates: &[Candidate],
    why: &str,
    now: SystemTime,
) -> GatewayError {
    let mut earliest: Option<SystemTime> = None;
    let mut any_usable_key = false;
    for candidate in candidates {
        match state.readiness(&candidate.endpoint, now) {
            Readiness::NotBefore(until) if until > now => {
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
                any_usable_key = true;
            }
            Readiness::NoUsableKey => {}
            _ => any_usable_key = true,
        }
    }
    if !any_usable_key {
        return state.no_usable_key();
    }
    let error =
        GatewayError::all_models_unavailable(format!("no model could serve the request: {why}"));
    match earliest {
        Some(until) => error.with_retry_after(until.duration_since(now).unwrap_or_default()),
        None => error,
    }
}

/// One (model, key) attempt: send, then decide whether the answer can be delivered.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::models::{parse_list, EMBEDDED_LIST};
    use crate::domain::outcome::ModelFault;
    use crate::state::health::HealthPolicy;
    use parking_lot::Mutex;
    use std::collections::VecDeque;
    use std::time::{Duration, UNIX_EPOCH};

    /// A clock that moves only when told to (each scripted attempt advances it).
    struct FakeClock {
        start: Instant,
        elapsed: Mutex<Duration>,
    }

    impl Clock for FakeClock {
        fn wall(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_780_000_000) + *self.elapsed.lock()
        }
        fn mono(&self) -> Instant {
            self.start + *self.elapsed.lock()
        }
    }

    /// What one scripted attempt answers.
    #[derive(Clone, Copy)]
    enum Scripted {
        Ok,
        ClientFault,
        ModelFault,
        KeyFault,
    }

    /// Answers attempts from a script, records (model, key tail) per call, and advances
    /// the clock by `step` per attempt.
    struct ScriptedUpstream<'a> {
        script: Mutex<VecDeque<Scripted>>,
        calls: Mutex<Vec<(String, String)>>,
        clock: &'a FakeClock,
        step: Duration,
    }

    impl Upstream for ScriptedUpstream<'_> {
        fn attempt<'a>(
            &'a self,
            _req: &'a ChatRequest,
            candidate: &'a Candidate,
            key: &'a KeyLease,
        ) -> impl Future<Output = Attempt> + Send + 'a {
            self.calls
                .lock()
                .push((candidate.model_id.clone(), key.masked()));
            *self.clock.elapsed.lock() += self.step;
            let now = self.clock.wall();
            let next = self
                .script
                .lock()
                .pop_front()
                .unwrap_or(Scripted::ModelFault);
            let deliver = |status: u16| {
                Attempt::Deliver(Box::new(Answer {
                    model: candidate.model_id.clone(),
                    endpoint: candidate.endpoint.clone(),
                    key: key.clone(),
                    header: ResponseHeader::build(status, None).unwrap(),
                    body: AnswerBody::Complete(Bytes::from_static(b"{}")),
                }))
            };
            let attempt = match next {
                Scripted::Ok => deliver(200),
                Scripted::ClientFault => deliver(400),
                Scripted::ModelFault => Attempt::Failed(
                    Outcome::ModelCooldown {
                        fault: ModelFault::ServerError,
                        until: now + Duration::from_secs(60),
                        until_refresh: false,
                    },
                    Some(500),
                ),
                Scripted::KeyFault => Attempt::Failed(
                    Outcome::KeyCooldown {
                        fault: KeyFault::DailyCap,
                        until: now + Duration::from_secs(3600),
                    },
                    Some(429),
                ),
            };
            std::future::ready(attempt)
        }
    }

    struct Harness {
        routing: RoutingSettings,
        cooldowns: ModelCooldowns,
        pools: Vec<KeyPool>,
        health: Health<Endpoint>,
        names: Vec<Arc<str>>,
        catalogue: Catalogue,
        clock: FakeClock,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                routing: RoutingSettings::default(),
                cooldowns: ModelCooldowns::default(),
                pools: vec![KeyPool::new(&[
                    "sk-test-key-aaaa".into(),
                    "sk-test-key-bbbb".into(),
                ])],
                health: Health::new(HealthPolicy {
                    window: 20,
                    slow_ttfb: Duration::from_secs(20),
                    demotion: Duration::from_secs(120),
                }),
                names: vec![Arc::from("openrouter")],
                catalogue: crate::domain::catalogue::build(
                    &parse_list(EMBEDDED_LIST).unwrap(),
                    &[],
                    &[0],
                ),
                clock: FakeClock {
                    start: Instant::now(),
                    elapsed: Mutex::new(Duration::ZERO),
                },
            }
        }

        /// Run one request through the loop; returns its result and the calls made.
        fn run(
            &self,
            script: &[Scripted],
            step: Duration,
        ) -> (Result<Answer, GatewayError>, Vec<(String, String)>) {
            let upstream = ScriptedUpstream {
                script: Mutex::new(script.iter().copied().collect()),
                calls: Mutex::new(Vec::new()),
                clock: &self.clock,
                step,
            };
            let state = LoopState {
                routing: &self.routing,
                cooldowns: &self.cooldowns,
                pools: &self.pools,
                health: &self.health,
                provider_names: &self.names,
            };
            let req = ChatRequest::parse(Bytes::from_static(
                br#"{"messages":[{"role":"user","content":"hi"}]}"#,
            ))
            .unwrap();
            let mut attempts = Vec::new();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let result = runtime.block_on(run(
                state,
                &self.catalogue,
                &upstream,
                &self.clock,
                &req,
                &mut attempts,
            ));
            assert_eq!(attempts.len(), upstream.calls.lock().len());
            (result, upstream.calls.into_inner())
        }
    }

    fn ranked(h: &Harness, i: usize) -> String {
        let mut models: Vec<_> = h.catalogue.models.iter().map(|r| &r.model).collect();
        models.sort_by_key(|m| m.rank);
        models[i].id.clone()
    }

    fn at_openrouter(id: &str) -> Endpoint {
        Endpoint {
            provider: 0,
            provider_model: id.into(),
        }
    }

    #[test]
    fn a_model_fault_moves_to_the_next_model_which_answers() {
        let h = Harness::new();
        let (result, calls) = h.run(
            &[Scripted::ModelFault, Scripted::Ok],
            Duration::from_millis(10),
        );
        let answer = result.unwrap();
        assert_eq!(answer.model, ranked(&h, 1));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].0, ranked(&h, 0));
        // The failed model is cooling now; the key that served is not.
        assert!(h
            .cooldowns
            .cooling_until(&at_openrouter(&ranked(&h, 0)), h.clock.wall())
            .is_some());
        assert_eq!(h.pools[0].tally(h.clock.wall()).usable, 2);
    }

    #[test]
    fn a_key_fault_retries_the_same_model_with_the_next_key() {
        let h = Harness::new();
        let (result, calls) = h.run(
            &[Scripted::KeyFault, Scripted::Ok],
            Duration::from_millis(10),
        );
        assert_eq!(result.unwrap().model, ranked(&h, 0));
        assert_eq!(calls[0].0, calls[1].0, "same model");
        assert_ne!(calls[0].1, calls[1].1, "another key");
        assert_eq!(h.pools[0].tally(h.clock.wall()).cooling, 1);
        assert!(
            h.cooldowns.active(h.clock.wall()).is_empty(),
            "no model cooled"
        );
    }

    #[test]
    fn a_client_fault_is_delivered_at_once_without_fallback() {
        let h = Harness::new();
        let (result, calls) = h.run(
            &[Scripted::ClientFault, Scripted::Ok],
            Duration::from_millis(10),
        );
        assert_eq!(result.unwrap().header.status.as_u16(), 400);
        assert_eq!(calls.len(), 1);
        assert!(h.cooldowns.active(h.clock.wall()).is_empty());
    }

    #[test]
    fn the_deadline_stops_the_loop_with_504() {
        let mut h = Harness::new();
        h.routing.request_deadline = Duration::from_secs(100);
        h.routing.max_attempts = 10;
        // Each failed attempt takes 40 s: after the third, the deadline has passed.
        let (result, calls) = h.run(&[Scripted::ModelFault; 10], Duration::from_secs(40));
        let error = result.err().unwrap();
        assert_eq!((error.status, error.code), (504, "deadline_exceeded"));
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn max_attempts_stops_the_loop_with_503_and_retry_after() {
        let mut h = Harness::new();
        h.routing.max_attempts = 2;
        let (result, calls) = h.run(&[Scripted::ModelFault; 5], Duration::from_millis(10));
        let error = result.err().unwrap();
        assert_eq!((error.status, error.code), (503, "all_models_unavailable"));
        assert!(error.message.contains("max_attempts"));
        assert_eq!(
            error.retry_after,
            Some(60),
            "until the first cooled model returns"
        );
        assert_eq!(calls.len(), 2);
    }
}
