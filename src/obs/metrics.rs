//! Prometheus metrics (SPEC §8), served by Pingora's Prometheus service on
//! `metrics_listen` (`GET /metrics`).
//!
//! Two halves:
//! - per-request counters and histograms, updated once per request from the `logging`
//!   hook ([`record`]): a handful of atomic increments on the hot path;
//! - state gauges (models available / cooling, list age, keys by state), computed when
//!   Prometheus scrapes ([`StateGauges`]), so nothing has to keep them up to date.
//!
//! Every label value comes from a bounded set: route labels from [`Route::label`]
//! (`crate::domain::route::Route`), client names from the config (`anonymous` without auth), model
//! ids from the current list plus its fallback (anything else is `other`), attempt
//! outcomes from their fixed labels. Never a raw path or a key.
//!
//! Metrics are registered in the default registry of the `prometheus` crate that
//! `pingora-prometheus` re-exports: a different `prometheus` version would land them in a
//! registry the service never reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use once_cell::sync::Lazy;
use pingora::services::listening::Service;
use pingora_prometheus::prometheus::core::{Collector, Desc};
use pingora_prometheus::prometheus::proto::MetricFamily;
use pingora_prometheus::prometheus::{
    self, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};
use pingora_prometheus::PrometheusServer;

use crate::gateway::app::App;
use crate::gateway::ctx::RequestCtx;

const NAMESPACE: &str = "freellm";

/// Client label of requests made without client auth (no keys configured, or refused).
pub const ANONYMOUS: &str = "anonymous";
/// Model label of an id that is neither in the current list nor its fallback (the list
/// changed under a request): keeps the label set bounded by the list.
pub const OTHER_MODEL: &str = "other";

/// Seconds. Local answers take well under a millisecond; a streamed completion from a
/// slow free model can run for minutes (up to `routing.request_deadline_secs` before
/// the first byte, then as long as tokens keep coming).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Upstream attempts per request: 1 is the happy path; `routing.max_attempts` defaults
/// to 5 and is rarely set beyond 10.
const DEPTH_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace(NAMESPACE)
        .buckets(buckets.to_vec())
}

/// Counters and histograms fed once per finished request.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    attempts: IntCounterVec,
    ttfb: HistogramVec,
    fallback_depth: Histogram,
}

/// What one finished request contributes; built from the request context.
pub struct Observation<'a> {
    pub route: &'static str,
    pub status: u16,
    pub client: Option<&'a str>,
    pub duration: Duration,
    pub ttfb: Option<Duration>,
}

impl RequestMetrics {
    /// Unregistered metrics; [`Collector`] lets them be registered as one unit.
    pub fn new() -> prometheus::Result<Self> {
        Ok(RequestMetrics {
            requests: IntCounterVec::new(
                opts("requests_total", "Client requests answered, by route, HTTP status and client name (status 0: the client left before any answer)."),
                &["route", "status", "client"],
            )?,
            duration: HistogramVec::new(
                histogram_opts("request_duration_seconds", "Time from request to the end of the answer (a stream's last byte), by route.", LATENCY_BUCKETS),
                &["route"],
            )?,
            attempts: IntCounterVec::new(
                opts("upstream_attempts_total", "Upstream attempts, by routed model, provider and outcome (success, client_error, model_rate_limited, ...)."),
                &["model", "provider", "outcome"],
            )?,
            ttfb: HistogramVec::new(
                histogram_opts("ttfb_seconds", "Time from request to the first byte of an upstream model's answer sent to the client, by route.", LATENCY_BUCKETS),
                &["route"],
            )?,
            fallback_depth: Histogram::with_opts(histogram_opts(
                "fallback_depth",
                "Upstream attempts per request that made at least one (1 = the first choice answered).",
                DEPTH_BUCKETS,
            ))?,
        })
    }

    /// Count one request. `attempts` yields (model id, provider, outcome label) per
    /// upstream attempt; `listed` says whether a model id may appear as a label.
    pub fn observe<'a>(
        &self,
        request: &Observation<'_>,
        attempts: impl ExactSizeIterator<Item = (&'a str, &'a str, &'static str)>,
        listed: impl Fn(&str) -> bool,
    ) {
        let status = request.status.to_string();
        let client = request.client.unwrap_or(ANONYMOUS);
        self.requests
            .with_label_values(&[request.route, status.as_str(), client])
            .inc();
        self.duration
            .with_label_values(&[request.route])
            .observe(request.duration.as_secs_f64());
        if let Some(ttfb) = request.ttfb {
            self.ttfb
                .with_label_values(&[request.route])
                .observe(ttfb.as_secs_f64());
        }
        if attempts.len() > 0 {
            self.fallback_depth.observe(attempts.len() as f64);
        }
        for (model, provider, outcome) in attempts {
            let model = if listed(model) { model } else { OTHER_MODEL };
            self.attempts
                .with_label_values(&[model, provider, outcome])
                .inc();
        }
    }
}

impl Collector for RequestMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.requests.desc();
        descs.extend(self.duration.desc());
        descs.extend(self.attempts.desc());
        descs.extend(self.ttfb.desc());
        descs.extend(self.fallback_depth.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.requests.collect();
        families.extend(self.duration.collect());
        families.extend(self.attempts.collect());
        families.extend(self.ttfb.collect());
        families.extend(self.fallback_depth.collect());
        families
    }
}

/// Gauges read from the shared state when Prometheus scrapes: each scrape takes the
/// same short locks `/ready` takes, and the request path pays nothing for them.
pub struct StateGauges {
    app: Arc<App>,
    models_available: IntGauge,
    models_cooling: IntGauge,
    list_age: Gauge,
    keys: IntGaugeVec,
    quota_remaining: IntGaugeVec,
}

impl StateGauges {
    pub fn new(app: Arc<App>) -> prometheus::Result<Self> {
        Ok(StateGauges {
            app,
            models_available: IntGauge::with_opts(opts(
                "models_available",
                "Listed models not cooling down (the list's fallback is not counted).",
            ))?,
            models_cooling: IntGauge::with_opts(opts(
                "models_cooling",
                "Listed models cooling down after rate limits or errors.",
            ))?,
            list_age: Gauge::with_opts(opts(
                "model_list_age_seconds",
                "Age of the model list in use (since its updatedAt, else since it was loaded).",
            ))?,
            keys: IntGaugeVec::new(
                opts(
                    "keys",
                    "Upstream API keys by state (active, cooling, disabled).",
                ),
                &["state"],
            )?,
            quota_remaining: IntGaugeVec::new(
                opts(
                    "key_quota_remaining",
                    "Requests a key has left today, when its daily limit is known (configured or learned from OpenRouter's /key).",
                ),
                &["provider", "key"],
            )?,
        })
    }

    fn refresh(&self, now: SystemTime) {
        let snapshot = self.app.state.registry.snapshot();
        let (available, cooling) = self.app.state.model_tally(now);
        self.models_available.set(available as i64);
        self.models_cooling.set(cooling as i64);
        self.list_age.set(snapshot.age(now).as_secs_f64());
        let mut usable = 0;
        let mut cooling = 0;
        let mut disabled = 0;
        // Keys removed from a pool must not linger as series.
        self.quota_remaining.reset();
        for (index, pool) in self.app.state.pools.iter().enumerate() {
            let tally = pool.tally(now);
            usable += tally.usable;
            cooling += tally.cooling;
            disabled += tally.disabled;
            let provider = self.app.provider_name(index);
            for key in pool.view(now) {
                // Per-model limits add up to what the key has left today.
                let known: Vec<u64> = key
                    .limiters
                    .iter()
                    .filter_map(|l| l.remaining_today())
                    .collect();
                if !known.is_empty() {
                    self.quota_remaining
                        .with_label_values(&[provider, key.masked.as_str()])
                        .set(known.iter().sum::<u64>() as i64);
                }
            }
        }
        for (state, n) in [
            ("active", usable),
            ("cooling", cooling),
            ("disabled", disabled),
        ] {
            self.keys.with_label_values(&[state]).set(n as i64);
        }
    }
}

impl Collector for StateGauges {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.models_available.desc();
        descs.extend(self.models_cooling.desc());
        descs.extend(self.list_age.desc());
        descs.extend(self.keys.desc());
        descs.extend(self.quota_remaining.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh(SystemTime::now());
        let mut families = self.models_available.collect();
        families.extend(self.models_cooling.collect());
        families.extend(self.list_age.collect());
        families.extend(self.keys.collect());
        families.extend(self.quota_remaining.collect());
        families
    }
}

/// The process-wide request metrics, registered by [`service`]. A global because the
/// Pingora `logging` hook is their only writer and the registry they live in is global too.
static REQUESTS: Lazy<Option<RequestMetrics>> = Lazy::new(|| match RequestMetrics::new() {
    Ok(metrics) => Some(metrics),
    Err(e) => {
        // Only reachable through an invalid metric definition above (a code defect);
        // the gateway keeps serving without request metrics rather than failing.
        log::error!("request metrics disabled: {e}");
        None
    }
});

/// Count a finished request (called once, from the `logging` hook).
pub fn record(app: &App, ctx: &RequestCtx) {
    let Some(metrics) = REQUESTS.as_ref() else {
        return;
    };
    let observation = Observation {
        route: ctx.route.label(),
        status: ctx.status,
        client: ctx.client.as_deref(),
        duration: ctx.started.elapsed(),
        ttfb: ctx.ttfb,
    };
    let attempts = ctx
        .attempts
        .iter()
        .map(|a| (a.model.as_str(), &*a.provider, a.end.label()));
    if attempts.len() == 0 {
        metrics.observe(&observation, attempts, |_| false);
        return;
    }
    // Provider labels come from the config; model labels from the routed catalogue.
    let catalogue = app.state.registry.catalogue();
    metrics.observe(&observation, attempts, |model| {
        catalogue.get(model).is_some()
    });
}

/// Register every metric in `registry`.
pub fn register(registry: &Registry, app: Arc<App>) -> prometheus::Result<()> {
    let requests = REQUESTS.as_ref().ok_or_else(|| {
        prometheus::Error::Msg("request metrics could not be created".to_string())
    })?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(StateGauges::new(app)?))
}

/// Pingora's Prometheus service on `listen`, serving every metric of this module.
pub fn service(app: Arc<App>, listen: SocketAddr) -> prometheus::Result<Service<PrometheusServer>> {
    register(prometheus::default_registry(), app)?;
    let mut service = pingora_prometheus::prometheus_http_service();
    service.add_tcp(&listen.to_string());
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_metrics_have_bounded_labels() {
        let metrics = RequestMetrics::new().unwrap();
        let registry = Registry::new();
        registry.register(Box::new(metrics.clone())).unwrap();
        let listed = |m: &str| m == "a/listed:free";
        metrics.observe(
            &Observation {
                route: "chat_completions",
                status: 200,
                client: Some("alice"),
                duration: Duration::from_millis(1500),
                ttfb: Some(Duration::from_millis(300)),
            },
            [
                ("a/listed:free", "openrouter", "rate_limited"),
                ("x/made-up", "groq", "success"),
            ]
            .into_iter(),
            listed,
        );
        metrics.observe(
            &Observation {
                route: "health",
                status: 200,
                client: None,
                duration: Duration::from_micros(200),
                ttfb: None,
            },
            std::iter::empty(),
            listed,
        );
        let text = render(&registry);
        for want in [
            r#"freellm_requests_total{client="alice",route="chat_completions",status="200"} 1"#,
            r#"freellm_requests_total{client="anonymous",route="health",status="200"} 1"#,
            r#"freellm_upstream_attempts_total{model="a/listed:free",outcome="rate_limited",provider="openrouter"} 1"#,
            r#"freellm_upstream_attempts_total{model="other",outcome="success",provider="groq"} 1"#,
            r#"freellm_fallback_depth_count 1"#,
            r#"freellm_fallback_depth_bucket{le="1"} 0"#,
            r#"freellm_fallback_depth_bucket{le="2"} 1"#,
            r#"freellm_ttfb_seconds_count{route="chat_completions"} 1"#,
            r#"freellm_request_duration_seconds_bucket{route="health",le="0.0005"} 1"#,
            r#"freellm_request_duration_seconds_bucket{route="chat_completions",le="2.5"} 1"#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(!text.contains("x/made-up"));
        // A health probe made no attempt: not a fallback depth of 0.
        assert!(!text.contains(r#"freellm_ttfb_seconds_count{route="health"}"#));
    }

    #[test]
    fn buckets_span_sub_millisecond_to_minutes() {
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(LATENCY_BUCKETS[0] <= 0.001);
        assert!(*LATENCY_BUCKETS.last().unwrap() >= 300.0);
        assert!(DEPTH_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
