//! The Anthropic error shape (SPEC §10, §11): `{"type":"error","error":{"type","message"}}`,
//! with the error `type` chosen by HTTP status.

use serde_json::json;

/// Anthropic's error `type` for an HTTP status (SPEC §11).
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 504 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":...,"message":...}}`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_types_by_status() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (405, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "overloaded_error"),
        ];
        for (status, want) in cases {
            assert_eq!(error_type(status), want, "{status}");
        }
        let body: Value = serde_json::from_slice(&error_body(401, "invalid API key")).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}})
        );
    }
}
