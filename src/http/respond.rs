//! Writing answers downstream: the gateway's own JSON, complete upstream answers, and
//! streams forwarded chunk by chunk.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::domain::error::GatewayError;
use crate::fronts::Front;

pub const MODEL_HEADER: &str = "x-free-llm-proxy-model";
pub const PROVIDER_HEADER: &str = "x-free-llm-proxy-provider";
pub const ATTEMPTS_HEADER: &str = "x-free-llm-proxy-attempts";

/// Headers that describe one hop's connection or framing; never copied across.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "content-encoding",
];

/// Write a complete JSON answer the gateway produced itself.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(3 + extra.len()))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}

/// One of the gateway's own errors, in the shape of the client's front, with the headers
/// every front sends: `Retry-After` on 429/503 (SPEC §3) and `Allow` on 405.
pub async fn error(session: &mut Session, front: &dyn Front, error: &GatewayError) -> Result<()> {
    let mut extra = Vec::new();
    if let Some(secs) = error.retry_after {
        extra.push(("retry-after", secs.to_string()));
    }
    if let Some(allowed) = error.allow {
        extra.push(("allow", allowed.to_string()));
    }
    json(session, error.status, front.error_body(error), &extra).await
}

/// The downstream header for an upstream answer: upstream's status and end-to-end
/// headers, plus which model answered and after how many attempts.
/// Who served an answer, as its headers say (SPEC §12 "Visible").
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The routed model.
    pub model: &'a str,
    pub provider: &'a str,
    pub attempts: usize,
}

pub fn upstream_header(
    upstream: &ResponseHeader,
    served: Served<'_>,
    framing: Framing,
) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 3))?;
    for (name, value) in upstream.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header(MODEL_HEADER, served.model)?;
    header.insert_header(PROVIDER_HEADER, served.provider)?;
    header.insert_header(ATTEMPTS_HEADER, served.attempts.to_string())?;
    match framing {
        Framing::Length(len) => header.insert_header("content-length", len.to_string())?,
        Framing::Chunked => header.insert_header("transfer-encoding", "chunked")?,
        Framing::Streamed => {}
    }
    Ok(header)
}

/// How the downstream body is delimited.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    Length(usize),
    /// HTTP/1.1 stream of unknown length.
    Chunked,
    /// HTTP/2 stream: framing is the protocol's own.
    Streamed,
}
