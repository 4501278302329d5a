//! Errors the gateway answers itself, in the OpenAI shape
//! `{"error":{"message":...,"type":...,"code":...}}`.

use std::time::Duration;

use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After`; always set on 429 and 503.
    pub retry_after: Option<u64>,
    /// For 405: the method the path accepts (`Allow` header).
    pub allow: Option<&'static str>,
}

/// Seconds until `d` has passed, rounded up, at least 1 (what `Retry-After` carries).
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl From<crate::domain::chat::RequestError> for GatewayError {
    fn from(e: crate::domain::chat::RequestError) -> Self {
        use crate::domain::chat::RequestError;
        match e {
            RequestError::InvalidJson(m) => GatewayError::invalid_json(m),
            RequestError::InvalidRequest(m) => GatewayError::invalid_request(m),
        }
    }
}

impl GatewayError {
    fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let retry_after = matches!(status, 429 | 503).then_some(1);
        GatewayError {
            status,
            kind,
            code,
            message: message.into(),
            retry_after,
            allow: None,
        }
    }

    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(retry_after_secs(wait));
        self
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", "invalid_json", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", "invalid_request", message)
    }

    pub fn no_capable_model(missing: &[&str]) -> Self {
        let message = if missing.is_empty() {
            "no model in the list supports this combination of request features".to_string()
        } else if missing == ["context_length"] {
            "the prompt does not fit the context window of any model in the list".to_string()
        } else {
            format!("no model in the list supports: {}", missing.join(", "))
        };
        Self::new(400, "invalid_request_error", "no_capable_model", message)
    }

    pub fn missing_api_key() -> Self {
        Self::new(
            401,
            "authentication_error",
            "missing_api_key",
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
    }

    pub fn invalid_api_key() -> Self {
        Self::new(
            401,
            "authentication_error",
            "invalid_api_key",
            "invalid API key",
        )
    }

    pub fn admin_disabled() -> Self {
        Self::new(
            403,
            "permission_error",
            "admin_disabled",
            "admin endpoints are disabled: no auth.admin_keys configured",
        )
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "not_found",
            format!("no route for {path}"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static str) -> Self {
        let mut error = Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on {path}; use {allowed}"),
        );
        error.allow = Some(allowed);
        error
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds limits.max_body_bytes ({limit} bytes)"),
        )
    }

    /// 429 for a client over its `rpm` (SPEC §11); `wait` = until its window has room.
    pub fn rate_limited(client: &str, rpm: usize, wait: Duration) -> Self {
        Self::new(
            429,
            "rate_limit_error",
            "rate_limited",
            format!("client '{client}' is over its limit of {rpm} requests per minute"),
        )
        .with_retry_after(wait)
    }

    pub fn all_models_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "server_error", "all_models_unavailable", message)
    }

    pub fn no_upstream_key() -> Self {
        Self::new(
            503,
            "server_error",
            "no_upstream_key",
            "no upstream API key is configured (set OPENROUTER_API_KEY or upstream.api_keys)",
        )
    }

    pub fn upstream_auth_error(described_keys: &[String]) -> Self {
        Self::new(
            502,
            "upstream_error",
            "upstream_auth_error",
            format!(
                "every upstream API key was rejected by the upstream (401): {}",
                described_keys.join(", ")
            ),
        )
    }

    pub fn deadline_exceeded(deadline: Duration) -> Self {
        Self::new(
            504,
            "server_error",
            "deadline_exceeded",
            format!(
                "no model answered within routing.request_deadline_secs ({}s)",
                deadline.as_secs()
            ),
        )
    }

    pub fn bad_client_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", "bad_request", message)
    }

    /// A 2xx upstream answer that could not be translated for the client's front.
    pub fn bad_upstream_answer(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", "bad_upstream_answer", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", "internal_error", message)
    }

    /// The OpenAI-shaped JSON body.
    pub fn openai_body(&self) -> Vec<u8> {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
            .to_string()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }

    #[test]
    fn every_429_and_503_carries_retry_after() {
        for e in [
            GatewayError::all_models_unavailable("x"),
            GatewayError::no_upstream_key(),
        ] {
            assert_eq!(e.retry_after, Some(1));
        }
        assert_eq!(GatewayError::invalid_api_key().retry_after, None);
        let body: serde_json::Value =
            serde_json::from_slice(&GatewayError::invalid_json("m").openai_body()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_json");
        assert_eq!(body["error"]["message"], "m");
    }
}
