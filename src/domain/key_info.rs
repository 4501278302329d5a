//! Reading OpenRouter's `GET {base_url}/key` answer (SPEC §12 "Known limits, no wasted
//! calls", "Whose limit").
//!
//! Why: OpenRouter's free daily limit is per *account* (50 or 1 000 requests a day) and is
//! not configured but learned. `/key` tells, per key, `data.free_model_daily_requests
//! {limit, remaining, used}` and `data.creator_user_id`; keys with the same creator share
//! one daily counter. Only the parsing lives here (pure, bytes in); a failed call or an
//! unreadable answer changes nothing, so a document without the quota is `daily: None`,
//! not an error, and errors never quote the body (it may echo the key's label).

use serde_json::Value;

/// What one key's `/key` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The account the key belongs to (`data.creator_user_id`); `None` when absent or empty.
    pub creator_user_id: Option<String>,
    /// `data.free_model_daily_requests`, when it states a limit.
    pub daily: Option<DailyQuota>,
}

/// The account's free-model requests for the current UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyQuota {
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
}

/// Why a `/key` answer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInfoError {
    /// The body is not JSON (an HTML error page, a cut-short body…), at this position.
    NotJson { line: usize, column: usize },
    /// JSON, but without a top-level `data` object.
    NoData,
}

impl std::fmt::Display for KeyInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyInfoError::NotJson { line, column } => write!(
                f,
                "the /key answer is not JSON (line {line}, column {column})"
            ),
            KeyInfoError::NoData => f.write_str("the /key answer has no `data` object"),
        }
    }
}

impl std::error::Error for KeyInfoError {}

/// Parse a `/key` answer: `{"data": {"creator_user_id": "…", "free_model_daily_requests":
/// {"limit": 1000, "remaining": 998, "used": 2}, …}}`.
///
/// Counts are JSON integers or integral floats (`1000.0`); anything else (strings,
/// negatives, fractions) counts as absent. The quota needs a `limit`; `remaining` absent →
/// `limit - used`, `used` absent → `limit - remaining` (saturating); both absent → `used`
/// 0 and `remaining` = `limit` (the limit alone is still worth learning; the caller should
/// not lower a count it holds). Stated values are kept as stated, even if inconsistent.
pub fn parse_key_info(body: &[u8]) -> Result<KeyInfo, KeyInfoError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| KeyInfoError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let data = doc
        .get("data")
        .filter(|d| d.is_object())
        .ok_or(KeyInfoError::NoData)?;
    let creator_user_id = data
        .get("creator_user_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let daily = data.get("free_model_daily_requests").and_then(daily_quota);
    Ok(KeyInfo {
        creator_user_id,
        daily,
    })
}

fn daily_quota(quota: &Value) -> Option<DailyQuota> {
    let field = |name: &str| quota.get(name).and_then(count);
    let limit = field("limit")?;
    let (remaining, used) = match (field("remaining"), field("used")) {
        (Some(remaining), Some(used)) => (remaining, used),
        (Some(remaining), None) => (remaining, limit.saturating_sub(remaining)),
        (None, Some(used)) => (limit.saturating_sub(used), used),
        (None, None) => (limit, 0),
    };
    Some(DailyQuota {
        limit,
        remaining,
        used,
    })
}

/// A non-negative integer, written as an integer or an integral float.
fn count(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // Integral, non-negative and exactly representable below 2^53.
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0)
        .then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u64, remaining: u64, used: u64) -> Option<DailyQuota> {
        Some(DailyQuota {
            limit,
            remaining,
            used,
        })
    }

    fn info(creator: Option<&str>, daily: Option<DailyQuota>) -> Result<KeyInfo, KeyInfoError> {
        Ok(KeyInfo {
            creator_user_id: creator.map(str::to_string),
            daily,
        })
    }

    #[test]
    fn parse_table() {
        let full = br#"{"data":{"label":"sk-or-v1-0e6...b2f","limit":null,"usage":0.0,
            "limit_remaining":null,"is_free_tier":false,"is_provisioning_key":false,
            "rate_limit":{"requests":20,"interval":"10s"},
            "creator_user_id":"user_2xKq9aBcD",
            "free_model_daily_requests":{"limit":1000,"remaining":998,"used":2}}}"#;
        let cases: Vec<(&str, &[u8], Result<KeyInfo, KeyInfoError>)> = vec![
            (
                "full document",
                full,
                info(Some("user_2xKq9aBcD"), quota(1000, 998, 2)),
            ),
            (
                "free account, floats",
                br#"{"data":{"creator_user_id":"user_a","is_free_tier":true,
                    "free_model_daily_requests":{"limit":50.0,"remaining":0.0,"used":50.0}}}"#,
                info(Some("user_a"), quota(50, 0, 50)),
            ),
            (
                "remaining absent",
                br#"{"data":{"creator_user_id":"user_a","free_model_daily_requests":{"limit":50,"used":7}}}"#,
                info(Some("user_a"), quota(50, 43, 7)),
            ),
            (
                "used absent",
                br#"{"data":{"free_model_daily_requests":{"limit":1000,"remaining":990}}}"#,
                info(None, quota(1000, 990, 10)),
            ),
            (
                "used above limit saturates",
                br#"{"data":{"free_model_daily_requests":{"limit":50,"used":53}}}"#,
                info(None, quota(50, 0, 53)),
            ),
            (
                "limit alone",
                br#"{"data":{"free_model_daily_requests":{"limit":50}}}"#,
                info(None, quota(50, 50, 0)),
            ),
            (
                "no limit: no quota",
                br#"{"data":{"creator_user_id":"user_a","free_model_daily_requests":{"remaining":3,"used":47}}}"#,
                info(Some("user_a"), None),
            ),
            (
                "string limit: no quota",
                br#"{"data":{"free_model_daily_requests":{"limit":"1000","used":2}}}"#,
                info(None, None),
            ),
            (
                "fractional and negative counts count as absent",
                br#"{"data":{"free_model_daily_requests":{"limit":1000,"remaining":-1,"used":2.5}}}"#,
                info(None, quota(1000, 1000, 0)),
            ),
            (
                "quota null",
                br#"{"data":{"creator_user_id":"user_a","free_model_daily_requests":null}}"#,
                info(Some("user_a"), None),
            ),
            (
                "quota missing, empty creator",
                br#"{"data":{"creator_user_id":"","label":"x","usage":0}}"#,
                info(None, None),
            ),
            (
                "numeric creator ignored",
                br#"{"data":{"creator_user_id":42}}"#,
                info(None, None),
            ),
            ("empty data", br#"{"data":{}}"#, info(None, None)),
            ("data null", br#"{"data":null}"#, Err(KeyInfoError::NoData)),
            ("data array", br#"{"data":[]}"#, Err(KeyInfoError::NoData)),
            (
                "error document",
                br#"{"error":{"code":401,"message":"No auth credentials found"}}"#,
                Err(KeyInfoError::NoData),
            ),
            ("JSON array", b"[1,2]", Err(KeyInfoError::NoData)),
            (
                "HTML",
                b"<html>\n<head><title>502 Bad Gateway</title></head></html>",
                Err(KeyInfoError::NotJson { line: 1, column: 1 }),
            ),
            (
                "cut short",
                br#"{"data":{"creator_user_id":"us"#,
                Err(KeyInfoError::NotJson {
                    line: 1,
                    column: 30,
                }),
            ),
            ("empty", b"", Err(KeyInfoError::NotJson { line: 1, column: 0 })),
        ];
        for (label, body, want) in cases {
            assert_eq!(parse_key_info(body), want, "{label}");
        }
    }

    #[test]
    fn errors_never_quote_the_body() {
        let secret = "sk-or-v1-deadbeef";
        for body in [
            format!("<html>{secret}</html>"),
            format!(r#"{{"label":"{secret}"}}"#),
            format!(r#"{{"data":"{secret}"}}"#),
        ] {
            let err = parse_key_info(body.as_bytes()).unwrap_err();
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
    }
}
