//! Reading a client's request body whole, bounded by `limits.max_body_bytes`.

use bytes::Bytes;
use pingora::proxy::Session;

use crate::domain::error::GatewayError;
use crate::util::body::BodyCollector;

/// Read the whole request body, at most `limit` bytes. On any refusal the connection is
/// not reused: the rest of the body may still be on the wire.
pub async fn read(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let read = read_bounded(session, limit).await;
    if read.is_err() {
        session.set_keepalive(None);
    }
    read
}

async fn read_bounded(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::body_too_large(limit));
    }
    let mut body = BodyCollector::new(limit, declared.unwrap_or(0));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => body
                .push(chunk)
                .map_err(|_| GatewayError::body_too_large(limit))?,
            Ok(None) => return Ok(body.finish()),
            Err(e) => {
                return Err(GatewayError::bad_client_request(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}
