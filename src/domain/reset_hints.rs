//! When a provider other than OpenRouter says it will take requests again, and whether its
//! 429 is a per-day quota (SPEC §12 "Cooldowns and faults", "Faults at other providers").
//!
//! Why a module of its own: §5's hints (`Retry-After`, `X-RateLimit-Reset` in epoch ms,
//! `error.metadata`) are OpenRouter's. Groq, Cerebras and Gemini announce resets their own
//! ways — `retry-after-ms`, Go-style durations in `x-ratelimit-reset-requests: 2m59.56s`,
//! a protobuf `retryDelay: "29s"` inside Gemini's `error.details` — and name a daily quota
//! in words ("requests per day (RPD)") or in a quota id ("…PerDay…"). A per-day quota rests
//! that key for that endpoint until the announced reset, else next 00:00 UTC; any other 429
//! rests it until the announced reset. Pure: headers, the parsed `error` value and `now` in.
//!
//! Durations are parsed with integer arithmetic, so "2m59.56s" is exactly 179.56 s.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

use crate::domain::outcome::parse_retry_after;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Go's `time.Duration` text, as Groq sends it in `x-ratelimit-reset-requests` and
/// `x-ratelimit-reset-tokens`: one or more `<decimal><unit>` parts, units `h`, `m`, `s`,
/// `ms`, `us`/`µs`/`μs`, `ns` ("2m59.56s", "1h2m3s", "750ms"). Like Go, a bare "0" is zero.
/// Signs are rejected: a reset is never in the past.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "h" => 3_600 * NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "s" => NANOS_PER_SEC,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        total = total.checked_add(scaled_decimal(number, unit_nanos)?)?;
        rest = tail;
    }
    duration_from_nanos(total)
}

/// A protobuf JSON `Duration` as Gemini writes `retryDelay`: decimal seconds with an `s`
/// suffix ("29s", "1.5s", "0s"). Negative durations are rejected.
pub fn parse_protobuf_duration(s: &str) -> Option<Duration> {
    let number = s.trim().strip_suffix('s')?;
    duration_from_nanos(scaled_decimal(number, NANOS_PER_SEC)?)
}

/// The `retry-after-ms` header (OpenAI-style): milliseconds, possibly fractional ("1500",
/// "250.5").
pub fn retry_after_ms(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after-ms")?.to_str().ok()?;
    duration_from_nanos(scaled_decimal(value.trim(), 1_000_000)?)
}

/// Gemini's `retryDelay` from the `google.rpc.RetryInfo` entry of `error.details[]`.
/// `error` is the `error` object; a whole document `{"error": …}` or the one-element array
/// `[{"error": …}]` some Gemini answers use is accepted too.
pub fn gemini_retry_delay(error: &Value) -> Option<Duration> {
    details(error)
        .filter(|d| type_ends_with(d, "google.rpc.RetryInfo"))
        .find_map(|d| parse_protobuf_duration(d.get("retryDelay")?.as_str()?))
}

/// Whether a 429 names a per-day quota. `message` is the error's text; `error` the
/// parsed `error` object, if any (same shapes as [`gemini_retry_delay`]).
///
/// - Words (Groq, Cerebras, others): "per day", "per-day", "(RPD)", "(TPD)" or "daily",
///   case-insensitively. Per-minute wording ("requests per minute (RPM)", "tokens per
///   minute (TPM)") contains none of these.
/// - Gemini: `error.status == "RESOURCE_EXHAUSTED"` and a `google.rpc.QuotaFailure` entry
///   whose `violations[].quotaId` contains "PerDay".
pub fn names_per_day_quota(message: &str, error: Option<&Value>) -> bool {
    let text = message.to_lowercase();
    let worded = ["per day", "per-day", "(rpd)", "(tpd)", "daily"]
        .iter()
        .any(|w| text.contains(w));
    worded || error.is_some_and(gemini_per_day_quota)
}

/// The announced reset, taking the first hint present in this order of preference:
/// `retry-after` (seconds or HTTP date), `retry-after-ms`, `x-ratelimit-reset-requests`
/// (a Go duration from `now`), Gemini's `retryDelay`. `None` when none is stated (the caller
/// then uses next 00:00 UTC for a per-day quota, or its configured rest). A hint that does
/// not parse, or that would overflow the clock, is skipped in favour of the next one.
/// `x-ratelimit-reset-tokens` is not read: it tells when tokens refill, not requests.
pub fn reset_hint(
    headers: &HeaderMap,
    error: Option<&Value>,
    now: SystemTime,
) -> Option<SystemTime> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let after = |d: Duration| now.checked_add(d);
    header("retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| retry_after_ms(headers).and_then(after))
        .or_else(|| {
            header("x-ratelimit-reset-requests")
                .and_then(parse_go_duration)
                .and_then(after)
        })
        .or_else(|| error.and_then(gemini_retry_delay).and_then(after))
}

fn gemini_per_day_quota(error: &Value) -> bool {
    let Some(error) = error_object(error) else {
        return false;
    };
    if error.get("status").and_then(Value::as_str) != Some("RESOURCE_EXHAUSTED") {
        return false;
    }
    details(error)
        .filter(|d| type_ends_with(d, "google.rpc.QuotaFailure"))
        .filter_map(|d| d.get("violations")?.as_array())
        .flatten()
        .filter_map(|v| v.get("quotaId")?.as_str())
        .any(|id| id.contains("PerDay"))
}

/// The error object itself, unwrapping `{"error": …}` and `[{"error": …}]`.
fn error_object(value: &Value) -> Option<&Value> {
    let value = match value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    match value.get("error") {
        Some(inner) if inner.is_object() => Some(inner),
        _ => value.is_object().then_some(value),
    }
}

fn details(error: &Value) -> impl Iterator<Item = &Value> {
    error_object(error)
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn type_ends_with(detail: &Value, suffix: &str) -> bool {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(suffix))
}

/// `number` (digits, optionally one `.` and more digits; at least one digit) times
/// `unit_nanos`, in nanoseconds. Fraction digits beyond the 18th are ignored.
fn scaled_decimal(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction = &fraction[..fraction.len().min(18)];
    let mut scaled = whole.checked_mul(unit_nanos)?;
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().ok()?;
        let denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        scaled = scaled.checked_add(numerator.checked_mul(unit_nanos)? / denominator)?;
    }
    Some(scaled)
}

fn duration_from_nanos(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_000_000)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    const GROQ_RPD: &str = "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01hx` service tier `on_demand` on requests per day (RPD): Limit 1000, Used 1000, Requested 1. Please try again in 1m26.4s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing";
    const GROQ_TPD: &str = "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01hx` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99812, Requested 1021. Please try again in 12m54.72s.";
    const GROQ_RPM: &str = "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01hx` service tier `on_demand` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 2s. Visit https://console.groq.com/docs/rate-limits for more information.";
    const GROQ_TPM: &str = "Rate limit reached for model `openai/gpt-oss-120b` in organization `org_01hx` service tier `on_demand` on tokens per minute (TPM): Limit 8000, Used 7431, Requested 1190. Please try again in 4.665s.";
    const GEMINI_MESSAGE: &str = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 50, model: gemini-2.5-pro\nPlease retry in 29.5s.";

    fn gemini_error(quota_id: &str, retry_delay: &str) -> Value {
        json!({
            "code": 429,
            "message": GEMINI_MESSAGE,
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                        "quotaValue": "50"
                    }]
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
            ]
        })
    }

    #[test]
    fn go_durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("2m59.56s", Some(ms(179_560))),
            ("1h2m3s", Some(Duration::from_secs(3_723))),
            ("7.66s", Some(ms(7_660))),
            ("750ms", Some(ms(750))),
            ("0.5s", Some(ms(500))),
            ("1m", Some(Duration::from_secs(60))),
            ("59.999s", Some(ms(59_999))),
            ("2h", Some(Duration::from_secs(7_200))),
            ("1m26.4s", Some(ms(86_400))),
            (".5s", Some(ms(500))),
            ("1.s", Some(Duration::from_secs(1))),
            ("250us", Some(Duration::from_micros(250))),
            ("250µs", Some(Duration::from_micros(250))),
            ("3ns", Some(Duration::from_nanos(3))),
            ("0", Some(Duration::ZERO)),
            (" 4s ", Some(Duration::from_secs(4))),
            ("", None),
            ("abc", None),
            ("-1s", None),
            ("+1s", None),
            ("1x", None),
            ("s", None),
            ("1", None),
            ("1.2.3s", None),
            (".s", None),
            ("1m 2s", None),
            ("99999999999999999999999h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), *want, "{text:?}");
        }
    }

    #[test]
    fn protobuf_durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("29s", Some(Duration::from_secs(29))),
            ("1.5s", Some(ms(1_500))),
            ("0s", Some(Duration::ZERO)),
            ("1.000340012s", Some(Duration::new(1, 340_012))),
            ("29", None),
            ("-3s", None),
            ("1m", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_protobuf_duration(text), *want, "{text:?}");
        }
    }

    #[test]
    fn retry_after_ms_header() {
        type Headers<'a> = &'a [(&'static str, &'a str)];
        let cases: &[(Headers<'_>, Option<Duration>)] = &[
            (&[("retry-after-ms", "1500")], Some(ms(1_500))),
            (
                &[("retry-after-ms", "250.5")],
                Some(Duration::from_micros(250_500)),
            ),
            (&[("retry-after-ms", "0")], Some(Duration::ZERO)),
            (&[("retry-after-ms", "-5")], None),
            (&[("retry-after-ms", "soon")], None),
            (&[("retry-after", "3")], None),
            (&[], None),
        ];
        for (pairs, want) in cases {
            assert_eq!(retry_after_ms(&headers(pairs)), *want, "{pairs:?}");
        }
    }

    #[test]
    fn gemini_retry_delays() {
        let cases: Vec<(&str, Value, Option<Duration>)> = vec![
            (
                "error object",
                gemini_error(
                    "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "29s",
                ),
                Some(Duration::from_secs(29)),
            ),
            (
                "whole document",
                json!({"error": gemini_error("X", "1.5s")}),
                Some(ms(1_500)),
            ),
            (
                "array-wrapped document",
                json!([{"error": gemini_error("X", "0s")}]),
                Some(Duration::ZERO),
            ),
            (
                "no RetryInfo",
                json!({"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
                    {"@type": "type.googleapis.com/google.rpc.Help", "links": []}
                ]}),
                None,
            ),
            (
                "unparseable delay",
                json!({"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}]}),
                None,
            ),
            (
                "OpenAI-style error",
                json!({"message": "x", "type": "rate_limit", "code": "rate_limit_exceeded"}),
                None,
            ),
            ("not an object", json!("Too many requests"), None),
        ];
        for (label, error, want) in cases {
            assert_eq!(gemini_retry_delay(&error), want, "{label}");
        }
    }

    #[test]
    fn per_day_quota_detection() {
        let gemini_day = gemini_error("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "29s");
        let gemini_minute = gemini_error(
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "29s",
        );
        let mut gemini_day_wrong_status = gemini_day.clone();
        gemini_day_wrong_status["status"] = json!("UNAVAILABLE");
        let gemini_day_document = json!([{ "error": gemini_day.clone() }]);
        let cases: Vec<(&str, &str, Option<&Value>, bool)> = vec![
            ("Groq RPD", GROQ_RPD, None, true),
            ("Groq TPD", GROQ_TPD, None, true),
            ("Groq RPM", GROQ_RPM, None, false),
            ("Groq TPM", GROQ_TPM, None, false),
            (
                "Cerebras daily requests",
                "Requests per day limit exceeded - too many requests sent.",
                None,
                true,
            ),
            (
                "Cerebras per-minute tokens",
                "Tokens per minute limit exceeded - too many tokens processed.",
                None,
                false,
            ),
            ("daily, any case", "Daily quota exhausted", None, true),
            ("plain 429", "Too Many Requests", None, false),
            ("Gemini PerDay", GEMINI_MESSAGE, Some(&gemini_day), true),
            (
                "Gemini PerMinute",
                GEMINI_MESSAGE,
                Some(&gemini_minute),
                false,
            ),
            (
                "Gemini PerDay, other status",
                GEMINI_MESSAGE,
                Some(&gemini_day_wrong_status),
                false,
            ),
            (
                "Gemini PerDay, wrapped document",
                GEMINI_MESSAGE,
                Some(&gemini_day_document),
                true,
            ),
        ];
        for (label, message, error, want) in cases {
            assert_eq!(names_per_day_quota(message, error), want, "{label}");
        }
    }

    #[test]
    fn reset_hint_preference() {
        let at = |d: Duration| Some(now() + d);
        let gemini = gemini_error("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "29s");
        let groq_429: &[(&'static str, &str)] = &[
            ("retry-after", "86"),
            ("x-ratelimit-limit-requests", "1000"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1m26.4s"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ];
        let cerebras_429: &[(&'static str, &str)] = &[
            ("x-ratelimit-limit-requests-day", "14400"),
            ("x-ratelimit-remaining-requests-day", "0"),
            ("x-ratelimit-reset-requests-day", "33011.38"),
            ("retry-after-ms", "33011380"),
        ];
        let cases: Vec<(&str, HeaderMap, Option<&Value>, Option<SystemTime>)> = vec![
            (
                "Groq: retry-after first",
                headers(groq_429),
                None,
                at(Duration::from_secs(86)),
            ),
            (
                "retry-after http-date",
                headers(&[
                    (
                        "retry-after",
                        &httpdate::fmt_http_date(now() + Duration::from_secs(120)),
                    ),
                    ("retry-after-ms", "5"),
                ]),
                None,
                at(Duration::from_secs(120)),
            ),
            (
                "Cerebras: retry-after-ms",
                headers(cerebras_429),
                None,
                at(ms(33_011_380)),
            ),
            (
                "retry-after-ms before reset-requests",
                headers(&[
                    ("retry-after-ms", "1500"),
                    ("x-ratelimit-reset-requests", "2m59.56s"),
                ]),
                Some(&gemini),
                at(ms(1_500)),
            ),
            (
                "Groq without retry-after: reset-requests",
                headers(&[
                    ("x-ratelimit-reset-requests", "2m59.56s"),
                    ("x-ratelimit-reset-tokens", "7.66s"),
                ]),
                Some(&gemini),
                at(ms(179_560)),
            ),
            (
                "unparseable retry-after falls through",
                headers(&[
                    ("retry-after", "later"),
                    ("x-ratelimit-reset-requests", "750ms"),
                ]),
                None,
                at(ms(750)),
            ),
            (
                "Gemini retryDelay",
                headers(&[]),
                Some(&gemini),
                at(Duration::from_secs(29)),
            ),
            (
                "only a tokens reset: none",
                headers(&[("x-ratelimit-reset-tokens", "7.66s")]),
                None,
                None,
            ),
            ("nothing stated", headers(&[]), None, None),
        ];
        for (label, headers, error, want) in cases {
            assert_eq!(reset_hint(&headers, error, now()), want, "{label}");
        }
    }
}
