//! Client and admin authentication: `Authorization: Bearer <key>` or `x-api-key: <key>`,
//! compared in constant time against every configured key.

use pingora::http::RequestHeader;
use subtle::ConstantTimeEq;

use crate::config::ClientKey;
use crate::domain::error::GatewayError;

/// The key a request presents, if any.
pub fn presented_key(req: &RequestHeader) -> Option<&str> {
    let bearer = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    let api_key = || {
        req.headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    bearer.or_else(api_key).filter(|k| !k.is_empty())
}

/// Compare `presented` with every candidate without stopping at the first match, so the
/// time taken does not reveal which key (or how much of it) matched.
fn find_match<'a>(presented: &str, candidates: impl Iterator<Item = &'a str>) -> Option<usize> {
    let mut found = None;
    for (i, candidate) in candidates.enumerate() {
        if bool::from(presented.as_bytes().ct_eq(candidate.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// Who is calling: `Ok(None)` when no client keys are configured (open, loopback-only).
pub fn authenticate_client<'a>(
    req: &RequestHeader,
    keys: &'a [ClientKey],
) -> Result<Option<&'a ClientKey>, GatewayError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let presented = presented_key(req).ok_or_else(GatewayError::missing_api_key)?;
    find_match(presented, keys.iter().map(|k| k.key.as_str()))
        .map(|i| Some(&keys[i]))
        .ok_or_else(GatewayError::invalid_api_key)
}

pub fn authenticate_admin(req: &RequestHeader, admin_keys: &[String]) -> Result<(), GatewayError> {
    if admin_keys.is_empty() {
        return Err(GatewayError::admin_disabled());
    }
    let presented = presented_key(req).ok_or_else(GatewayError::missing_api_key)?;
    find_match(presented, admin_keys.iter().map(String::as_str))
        .map(|_| ())
        .ok_or_else(GatewayError::invalid_api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/v1/models", None).unwrap();
        for (k, v) in headers {
            r.insert_header(*k, *v).unwrap();
        }
        r
    }

    fn keys() -> Vec<ClientKey> {
        vec![
            ClientKey {
                name: "alice".into(),
                key: "alice-secret".into(),
                rpm: None,
            },
            ClientKey {
                name: "bob".into(),
                key: "bob-secret".into(),
                rpm: Some(5),
            },
        ]
    }

    #[test]
    fn client_auth_table() {
        let keys = keys();
        type Case<'a> = (
            Vec<(&'static str, &'a str)>,
            Result<Option<&'a str>, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], Err("missing_api_key")),
            (
                vec![("authorization", "Bearer alice-secret")],
                Ok(Some("alice")),
            ),
            (
                vec![("authorization", "bearer  bob-secret ")],
                Ok(Some("bob")),
            ),
            (vec![("x-api-key", "bob-secret")], Ok(Some("bob"))),
            (
                vec![("authorization", "Bearer nope")],
                Err("invalid_api_key"),
            ),
            (
                vec![("authorization", "Basic alice-secret")],
                Err("missing_api_key"),
            ),
            (vec![("authorization", "Bearer ")], Err("missing_api_key")),
            (
                vec![("authorization", "Bearer alice-secre")],
                Err("invalid_api_key"),
            ),
        ];
        for (headers, want) in cases {
            let got = authenticate_client(&req(&headers), &keys)
                .map(|k| k.map(|k| k.name.as_str()))
                .map_err(|e| e.code);
            assert_eq!(got, want, "{headers:?}");
        }
        assert_eq!(
            authenticate_client(&req(&[]), &[]).map(|k| k.is_none()),
            Ok(true)
        );
    }

    #[test]
    fn admin_auth() {
        let admins = vec!["root-key".to_string()];
        assert!(authenticate_admin(&req(&[("x-api-key", "root-key")]), &admins).is_ok());
        assert_eq!(
            authenticate_admin(&req(&[("x-api-key", "alice-secret")]), &admins)
                .unwrap_err()
                .code,
            "invalid_api_key"
        );
        assert_eq!(
            authenticate_admin(&req(&[("x-api-key", "root-key")]), &[])
                .unwrap_err()
                .code,
            "admin_disabled"
        );
    }
}
