//! Classifying one upstream attempt (SPEC §5): who is at fault, and for how long the model
//! or key must rest. Pure: status, headers, the parsed error object and `now` go in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::domain::provider::{LimitScope, Quirks};
use crate::domain::reset_hints::{names_per_day_quota, reset_hint};
use crate::util::time::next_utc_midnight;

use http::HeaderMap;
use serde_json::Value;

/// The longest rest any upstream hint can impose; protects against absurd headers.
const MAX_HINTED_COOLDOWN: Duration = Duration::from_secs(48 * 3600);
const OUT_OF_CREDITS_COOLDOWN: Duration = Duration::from_secs(24 * 3600);

/// How to read one provider's answers: the cooldown lengths the operator configured,
/// and the provider's quirks (SPEC §12).
#[derive(Debug, Clone, Copy)]
pub struct CooldownPolicy {
    pub rate_limit: Duration,
    pub error: Duration,
    /// A model that does not exist rests until the next list refresh, at most this long.
    pub until_refresh: Duration,
    pub quirks: Quirks,
}

/// Why a model was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFault {
    RateLimited,
    NotFound,
    ServerError,
    Timeout,
    ConnectFailed,
    BrokenResponse,
}

/// Why a key was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFault {
    DailyCap,
    PaymentRequired,
    Unauthorized,
    /// A per-minute limit of a provider whose free limits are per key and model.
    RateLimited,
}

impl KeyFault {
    pub fn parse(text: &str) -> Option<KeyFault> {
        [
            KeyFault::DailyCap,
            KeyFault::PaymentRequired,
            KeyFault::Unauthorized,
            KeyFault::RateLimited,
        ]
        .into_iter()
        .find(|f| f.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyFault::DailyCap => "daily_cap",
            KeyFault::PaymentRequired => "payment_required",
            KeyFault::Unauthorized => "unauthorized",
            KeyFault::RateLimited => "rate_limited",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Deliver the response.
    Success,
    /// The client's request is at fault: return the answer unchanged, no fallback.
    ClientError,
    /// Cool the model until `until` and move to the next model. `until_refresh` marks a
    /// cooldown that a list refresh lifts (the model does not exist upstream).
    ModelCooldown {
        fault: ModelFault,
        until: SystemTime,
        until_refresh: bool,
    },
    /// Cool the key until `until`; retry the same model with the next key.
    KeyCooldown { fault: KeyFault, until: SystemTime },
    /// Rest the key for this endpoint only (a provider whose free limits are per key
    /// and model, SPEC §12); retry the same endpoint with the next key.
    KeyRest { fault: KeyFault, until: SystemTime },
    /// Disable the key until reload or admin reset; retry with the next key.
    KeyDisabled,
}

impl Outcome {
    /// Stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::ModelCooldown { fault, .. } => match fault {
                ModelFault::RateLimited => "model_rate_limited",
                ModelFault::NotFound => "model_not_found",
                ModelFault::ServerError => "model_error",
                ModelFault::Timeout => "model_timeout",
                ModelFault::ConnectFailed => "connect_failed",
                ModelFault::BrokenResponse => "broken_response",
            },
            Outcome::KeyCooldown { fault, .. } | Outcome::KeyRest { fault, .. } => match fault {
                KeyFault::DailyCap => "key_daily_cap",
                KeyFault::RateLimited => "key_rate_limited",
                KeyFault::Unauthorized => "key_unauthorized",
                KeyFault::PaymentRequired => "key_payment_required",
            },
            Outcome::KeyDisabled => "key_unauthorized",
        }
    }

    /// The cooldown end this outcome imposes, if any.
    pub fn cooldown_until(&self) -> Option<SystemTime> {
        match self {
            Outcome::ModelCooldown { until, .. }
            | Outcome::KeyCooldown { until, .. }
            | Outcome::KeyRest { until, .. } => Some(*until),
            _ => None,
        }
    }
}

/// Failures that happen before or instead of a usable HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    Connect,
    /// No response header within `timeout_secs`.
    HeaderTimeout,
    /// A non-streamed body cut short, or silent for `timeout_secs`.
    BodyFailed,
    /// Unparseable response.
    Garbage,
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportFailure::Connect => "the connection failed",
            TransportFailure::HeaderTimeout => "no answer in time",
            TransportFailure::BodyFailed => "the body was cut short or went silent",
            TransportFailure::Garbage => "the answer was not HTTP",
        })
    }
}

/// The `error` object OpenRouter puts in error bodies and inside HTTP 200 answers (other
/// providers' error objects are read the same way).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamError {
    /// `error.code` when numeric (an HTTP-like status).
    pub code: Option<u16>,
    pub message: String,
    pub metadata: Option<Value>,
    /// The whole object, for provider-specific details (Gemini's `details[]`).
    pub object: Value,
}

impl UpstreamError {
    /// Extract the top-level `error` object of a JSON document, if it has one. Gemini's
    /// OpenAI endpoint wraps it in an array: `[{"error": {...}}]`.
    pub fn from_document(doc: &Value) -> Option<UpstreamError> {
        let doc = match doc {
            Value::Array(items) => items.first()?,
            other => other,
        };
        let error = doc.get("error")?;
        if error.is_null() {
            return None;
        }
        Some(Self::from_object(error))
    }

    /// Read an `error` value itself: `code` numeric or a numeric string, `message` a
    /// string (or the value itself when it is one), `metadata` as it is.
    pub fn from_object(error: &Value) -> UpstreamError {
        let code = match error.get("code") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        UpstreamError {
            code,
            message: match error.get("message") {
                Some(Value::String(s)) => s.clone(),
                _ => error.as_str().unwrap_or_default().to_string(),
            },
            metadata: error.get("metadata").cloned(),
            object: error.clone(),
        }
    }

    pub fn from_body(body: &[u8]) -> Option<UpstreamError> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        Self::from_document(&doc)
    }

    fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// A header that OpenRouter copied into `error.metadata.headers`.
    fn metadata_header(&self, name: &str) -> Option<String> {
        let headers = self.metadata.as_ref()?.get("headers")?.as_object()?;
        headers.iter().find_map(|(k, v)| {
            if !k.eq_ignore_ascii_case(name) {
                return None;
            }
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        })
    }

    fn is_account_daily_cap(&self) -> bool {
        self.metadata_str("limit_source") == Some("openrouter_free_tier_daily")
            || self.message.contains("free-models-per-day")
    }

    fn says_model_missing(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("no endpoints")
            || m.contains("does not exist")
            || m.contains("not a valid model")
            || m.contains("model not found")
    }
}

/// Look a header up in the response first, then in `error.metadata.headers`.
fn hint(headers: &HeaderMap, error: Option<&UpstreamError>, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| error.and_then(|e| e.metadata_header(name)))
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(now + Duration::from_secs_f64(secs.min(1e9)));
        }
        return None;
    }
    httpdate::parse_http_date(value).ok()
}

/// `X-RateLimit-Reset`: epoch milliseconds (OpenRouter's unit). Values that only make
/// sense as epoch seconds are accepted too, rather than read as 1970.
pub fn parse_ratelimit_reset(value: &str) -> Option<SystemTime> {
    let n: u64 = value.trim().parse::<f64>().ok().filter(|v| *v >= 0.0)? as u64;
    const SECONDS_CUTOFF: u64 = 100_000_000_000; // year 5138 in seconds, 1973 in ms
    let at = if n < SECONDS_CUTOFF {
        UNIX_EPOCH + Duration::from_secs(n)
    } else {
        UNIX_EPOCH + Duration::from_millis(n)
    };
    Some(at)
}

/// Clamp a hinted cooldown end into `[now + 1 s, now + MAX_HINTED_COOLDOWN]`.
fn bounded(until: SystemTime, now: SystemTime) -> SystemTime {
    until.clamp(now + Duration::from_secs(1), now + MAX_HINTED_COOLDOWN)
}

/// Classify an HTTP answer. `error` is the body's top-level `error` object when the body
/// was read (always for non-2xx and non-streamed answers). For a 200 carrying an error,
/// pass the error's code as `status`.
pub fn classify(
    status: u16,
    headers: &HeaderMap,
    error: Option<&UpstreamError>,
    now: SystemTime,
    policy: &CooldownPolicy,
) -> Outcome {
    let retry_after =
        || hint(headers, error, "retry-after").and_then(|v| parse_retry_after(&v, now));
    let reset =
        || hint(headers, error, "x-ratelimit-reset").and_then(|v| parse_ratelimit_reset(&v));
    let model = |fault, until: SystemTime| Outcome::ModelCooldown {
        fault,
        until: bounded(until, now),
        until_refresh: false,
    };
    match status {
        200..=299 => Outcome::Success,
        429 if policy.quirks.limit_scope == LimitScope::KeyAndModel => {
            // Free limits per key and model: the key rests for this endpoint only, until
            // the announced reset; a per-day quota without one lasts until 00:00 UTC.
            let per_day = error.is_some_and(|e| names_per_day_quota(&e.message, Some(&e.object)));
            let announced = reset_hint(headers, error.map(|e| &e.object), now).or_else(reset);
            let (fault, until) = if per_day {
                (
                    KeyFault::DailyCap,
                    announced.unwrap_or_else(|| next_utc_midnight(now)),
                )
            } else {
                (
                    KeyFault::RateLimited,
                    announced.unwrap_or(now + policy.rate_limit),
                )
            };
            Outcome::KeyRest {
                fault,
                until: bounded(until, now),
            }
        }
        429 if error.is_some_and(UpstreamError::is_account_daily_cap) => Outcome::KeyCooldown {
            fault: KeyFault::DailyCap,
            until: bounded(reset().unwrap_or_else(|| next_utc_midnight(now)), now),
        },
        429 => {
            let metadata_secs = || {
                let meta = error?.metadata.as_ref()?.get("retry_after_seconds")?;
                let secs = meta.as_f64().or_else(|| meta.as_str()?.parse().ok())?;
                (secs >= 0.0).then(|| now + Duration::from_secs_f64(secs.min(1e9)))
            };
            let until = retry_after()
                .or_else(metadata_secs)
                .or_else(reset)
                .unwrap_or(now + policy.rate_limit);
            model(ModelFault::RateLimited, until)
        }
        402 => Outcome::KeyCooldown {
            fault: KeyFault::PaymentRequired,
            until: bounded(retry_after().unwrap_or(now + OUT_OF_CREDITS_COOLDOWN), now),
        },
        401 => Outcome::KeyDisabled,
        404 => not_found(now, policy),
        400 if error.is_some_and(UpstreamError::says_model_missing) => not_found(now, policy),
        500..=599 => model(
            ModelFault::ServerError,
            retry_after().unwrap_or(now + policy.error),
        ),
        400..=499 => Outcome::ClientError,
        // 1xx/3xx are not answers a chat API gives: the model's endpoint is misbehaving.
        _ => model(ModelFault::BrokenResponse, now + policy.error),
    }
}

/// A failure reported inside an HTTP 200 (a JSON body's or an SSE event's `error`),
/// classified as if it were that status; a code that is not an error status counts as 502.
pub fn classify_embedded_error(
    error: &UpstreamError,
    headers: &HeaderMap,
    now: SystemTime,
    policy: &CooldownPolicy,
) -> Outcome {
    let effective = error.code.filter(|c| *c >= 400).unwrap_or(502);
    classify(effective, headers, Some(error), now, policy)
}

fn not_found(now: SystemTime, policy: &CooldownPolicy) -> Outcome {
    Outcome::ModelCooldown {
        fault: ModelFault::NotFound,
        until: now + policy.until_refresh,
        until_refresh: true,
    }
}

/// Classify a failure that produced no usable HTTP answer.
pub fn classify_transport(
    failure: TransportFailure,
    now: SystemTime,
    policy: &CooldownPolicy,
) -> Outcome {
    let fault = match failure {
        TransportFailure::Connect => ModelFault::ConnectFailed,
        TransportFailure::HeaderTimeout => ModelFault::Timeout,
        TransportFailure::BodyFailed => ModelFault::BrokenResponse,
        TransportFailure::Garbage => ModelFault::BrokenResponse,
    };
    Outcome::ModelCooldown {
        fault,
        until: now + policy.error,
        until_refresh: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    const POLICY: CooldownPolicy = CooldownPolicy {
        rate_limit: Duration::from_secs(300),
        error: Duration::from_secs(60),
        until_refresh: Duration::from_secs(3600),
        quirks: Quirks::OPENROUTER,
    };

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_000_000) // a Tuesday, mid-day UTC
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn err(v: Value) -> UpstreamError {
        UpstreamError::from_document(&json!({ "error": v })).unwrap()
    }

    fn secs(n: u64) -> SystemTime {
        now() + Duration::from_secs(n)
    }

    #[test]
    fn classification_table() {
        let model_429_body = err(
            json!({"code":429,"message":"Provider returned error","metadata":{"raw":"rate-limited upstream"}}),
        );
        let daily = err(
            json!({"code":429,"message":"Rate limit exceeded: free-models-per-day. Add credits","metadata":{"headers":{"X-RateLimit-Reset":"1780012800000"}}}),
        );
        let daily_by_source = err(
            json!({"code":429,"message":"x","metadata":{"limit_source":"openrouter_free_tier_daily"}}),
        );
        let meta_retry =
            err(json!({"code":429,"message":"x","metadata":{"retry_after_seconds":42}}));
        let meta_reset_header = err(
            json!({"code":429,"message":"x","metadata":{"headers":{"x-ratelimit-reset":"1780000090000"}}}),
        );
        let no_endpoints =
            err(json!({"code":400,"message":"No endpoints found for foo/bar:free."}));
        let bad_param = err(json!({"code":400,"message":"temperature must be <= 2"}));

        let cases: Vec<(&str, u16, HeaderMap, Option<&UpstreamError>, Outcome)> = vec![
            ("200", 200, headers(&[]), None, Outcome::Success),
            (
                "429 retry-after seconds",
                429,
                headers(&[("retry-after", "17")]),
                Some(&model_429_body),
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(17),
                    until_refresh: false,
                },
            ),
            (
                "429 retry-after http-date",
                429,
                headers(&[("retry-after", &httpdate::fmt_http_date(secs(120)))]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(120),
                    until_refresh: false,
                },
            ),
            (
                "429 metadata.retry_after_seconds",
                429,
                headers(&[]),
                Some(&meta_retry),
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(42),
                    until_refresh: false,
                },
            ),
            (
                "429 x-ratelimit-reset header, epoch ms",
                429,
                headers(&[("x-ratelimit-reset", "1780000075000")]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(75),
                    until_refresh: false,
                },
            ),
            (
                "429 reset in metadata.headers",
                429,
                headers(&[]),
                Some(&meta_reset_header),
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(90),
                    until_refresh: false,
                },
            ),
            (
                "429 no hint",
                429,
                headers(&[]),
                Some(&model_429_body),
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(300),
                    until_refresh: false,
                },
            ),
            (
                "429 daily cap by message, reset in metadata",
                429,
                headers(&[]),
                Some(&daily),
                Outcome::KeyCooldown {
                    fault: KeyFault::DailyCap,
                    until: UNIX_EPOCH + Duration::from_secs(1_780_012_800),
                },
            ),
            (
                "429 daily cap by limit_source, no reset: next UTC midnight",
                429,
                headers(&[]),
                Some(&daily_by_source),
                Outcome::KeyCooldown {
                    fault: KeyFault::DailyCap,
                    until: UNIX_EPOCH + Duration::from_secs(1_780_012_800),
                },
            ),
            (
                "402 with retry-after",
                402,
                headers(&[("retry-after", "600")]),
                None,
                Outcome::KeyCooldown {
                    fault: KeyFault::PaymentRequired,
                    until: secs(600),
                },
            ),
            (
                "402 without",
                402,
                headers(&[]),
                None,
                Outcome::KeyCooldown {
                    fault: KeyFault::PaymentRequired,
                    until: secs(86_400),
                },
            ),
            ("401", 401, headers(&[]), None, Outcome::KeyDisabled),
            (
                "404",
                404,
                headers(&[]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::NotFound,
                    until: secs(3600),
                    until_refresh: true,
                },
            ),
            (
                "400 no endpoints",
                400,
                headers(&[]),
                Some(&no_endpoints),
                Outcome::ModelCooldown {
                    fault: ModelFault::NotFound,
                    until: secs(3600),
                    until_refresh: true,
                },
            ),
            (
                "400 client",
                400,
                headers(&[]),
                Some(&bad_param),
                Outcome::ClientError,
            ),
            ("403", 403, headers(&[]), None, Outcome::ClientError),
            ("413", 413, headers(&[]), None, Outcome::ClientError),
            ("422", 422, headers(&[]), None, Outcome::ClientError),
            (
                "500",
                500,
                headers(&[]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::ServerError,
                    until: secs(60),
                    until_refresh: false,
                },
            ),
            (
                "503 with retry-after",
                503,
                headers(&[("retry-after", "5")]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::ServerError,
                    until: secs(5),
                    until_refresh: false,
                },
            ),
            (
                "absurd retry-after is bounded",
                429,
                headers(&[("retry-after", "99999999")]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(48 * 3600),
                    until_refresh: false,
                },
            ),
            (
                "retry-after 0 still rests a second",
                429,
                headers(&[("retry-after", "0")]),
                None,
                Outcome::ModelCooldown {
                    fault: ModelFault::RateLimited,
                    until: secs(1),
                    until_refresh: false,
                },
            ),
        ];
        for (label, status, headers, error, want) in cases {
            assert_eq!(
                classify(status, &headers, error, now(), &POLICY),
                want,
                "{label}"
            );
        }
    }

    #[test]
    fn transport_failures_cool_the_model() {
        for f in [
            TransportFailure::Connect,
            TransportFailure::HeaderTimeout,
            TransportFailure::BodyFailed,
            TransportFailure::Garbage,
        ] {
            assert!(matches!(
                classify_transport(f, now(), &POLICY),
                Outcome::ModelCooldown { until, .. } if until == secs(60)
            ));
        }
    }

    #[test]
    fn reset_and_retry_after_parsing() {
        assert_eq!(parse_ratelimit_reset("1780000075000"), Some(secs(75)));
        assert_eq!(parse_ratelimit_reset("1780000075"), Some(secs(75)));
        assert_eq!(parse_ratelimit_reset("soon"), None);
        assert_eq!(parse_retry_after("3", now()), Some(secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now()).map(|t| t < now()),
            Some(true)
        );
        assert_eq!(parse_retry_after("-4", now()), None);
        assert_eq!(parse_retry_after("later", now()), None);
        assert_eq!(
            next_utc_midnight(UNIX_EPOCH),
            UNIX_EPOCH + Duration::from_secs(86_400)
        );
    }

    #[test]
    fn error_object_extraction() {
        assert!(UpstreamError::from_body(br#"{"choices":[]}"#).is_none());
        assert!(UpstreamError::from_body(br#"{"error":null}"#).is_none());
        assert!(UpstreamError::from_body(b"garbage").is_none());
        let e = UpstreamError::from_body(br#"{"error":{"code":"502","message":"m"}}"#).unwrap();
        assert_eq!((e.code, e.message.as_str()), (Some(502), "m"));
        let e = UpstreamError::from_body(br#"{"error":{"code":"server_error","message":"m"}}"#)
            .unwrap();
        assert_eq!(e.code, None);
    }
}
