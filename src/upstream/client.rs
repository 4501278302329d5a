//! Outbound HTTP on Pingora's own connector: connection pooling, TLS, timeouts.
//!
//! One [`HttpClient`] serves chat attempts, model-list fetches and key-list syncs. A
//! connection goes back to the pool only after its response body was read to the end;
//! anything abandoned midway is dropped, so a half-read stream is never reused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;

use crate::config::HttpUrl;
use crate::domain::outcome::TransportFailure;
use crate::util::body::BodyCollector;

/// How long a resolved address is trusted before asking DNS again.
const DNS_TTL: Duration = Duration::from_secs(60);
/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

pub struct HttpClient {
    connector: Connector,
    dns: Mutex<Vec<(String, u16, Instant, SocketAddr)>>,
}

/// A request to send: method, target, path+query, headers, body.
pub struct Outbound<'a> {
    pub method: &'static str,
    pub url: &'a HttpUrl,
    /// Appended to the URL's path (e.g. `/chat/completions`).
    pub path_suffix: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<Bytes>,
    pub connect_timeout: Duration,
}

/// An upstream answer whose header has arrived; the body is read on demand.
pub struct Exchange {
    session: HttpSession,
    peer: HttpPeer,
    header: ResponseHeader,
}

/// One step of reading a body.
#[derive(Debug)]
pub enum BodyRead {
    Data(Bytes),
    End,
    /// Nothing arrived within the allowed silence.
    Silent,
    /// The connection broke (reset, truncated chunk, bad framing).
    Broken,
}

impl HttpClient {
    pub fn new(keepalive_pool_size: usize) -> Self {
        HttpClient {
            connector: Connector::new(Some(ConnectorOptions::new(keepalive_pool_size))),
            dns: Mutex::new(Vec::new()),
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        let now = Instant::now();
        if let Some(hit) = self
            .dns
            .lock()
            .iter()
            .find(|(h, p, at, _)| h == host && *p == port && now.duration_since(*at) < DNS_TTL)
        {
            return Some(hit.3);
        }
        let addr = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
        let mut cache = self.dns.lock();
        cache.retain(|(h, p, _, _)| !(h == host && *p == port));
        cache.push((host.to_string(), port, now, addr));
        Some(addr)
    }

    fn peer(&self, url: &HttpUrl, addr: SocketAddr, connect_timeout: Duration) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, url.tls, url.host.clone());
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.total_connection_timeout = Some(connect_timeout * 2);
        peer.options.idle_timeout = Some(POOL_IDLE);
        peer
    }

    /// Send a request and wait for the response header, all within `header_timeout`.
    pub async fn send(
        &self,
        req: Outbound<'_>,
        header_timeout: Duration,
    ) -> Result<Exchange, TransportFailure> {
        let deadline = tokio::time::Instant::now() + header_timeout;
        let addr = pingora::prelude::timeout(
            deadline.saturating_duration_since(tokio::time::Instant::now()),
            self.resolve(&req.url.host, req.url.port),
        )
        .await
        .map_err(|_| TransportFailure::HeaderTimeout)?
        .ok_or(TransportFailure::Connect)?;
        let peer = self.peer(req.url, addr, req.connect_timeout);
        let header = build_request(&req)?;

        // A pooled connection the server has quietly closed fails on first use; that is
        // not the model's fault, so such a failure is retried once on another connection.
        let mut retried_stale = false;
        loop {
            let (mut session, reused) = match pingora::prelude::timeout(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                Box::pin(self.connector.get_http_session(&peer)),
            )
            .await
            {
                Err(_) => return Err(TransportFailure::HeaderTimeout),
                Ok(Err(e)) => {
                    log::debug!("connect to {} failed: {e}", req.url.host);
                    return Err(TransportFailure::Connect);
                }
                Ok(Ok(pair)) => pair,
            };
            let exchange = async {
                session
                    .write_request_header(Box::new(header.clone()))
                    .await?;
                if let Some(body) = req.body.clone() {
                    session.write_request_body(body, true).await?;
                }
                session.finish_request_body().await?;
                session.read_response_header().await
            };
            match pingora::prelude::timeout(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                exchange,
            )
            .await
            {
                Err(_) => return Err(TransportFailure::HeaderTimeout),
                Ok(Ok(())) => {
                    let Some(header) = session.response_header().cloned() else {
                        return Err(TransportFailure::Garbage);
                    };
                    return Ok(Exchange {
                        session,
                        peer,
                        header,
                    });
                }
                Ok(Err(e)) if reused && !retried_stale => {
                    log::debug!(
                        "pooled connection to {} failed ({e}); retrying on a new one",
                        req.url.host
                    );
                    retried_stale = true;
                }
                Ok(Err(e)) => {
                    log::debug!("upstream exchange with {} failed: {e}", req.url.host);
                    return Err(match e.etype() {
                        pingora::ErrorType::InvalidHTTPHeader => TransportFailure::Garbage,
                        _ => TransportFailure::Connect,
                    });
                }
            }
        }
    }

    /// GET a whole document (the model list, a key CSV): 200 only, at most `limit` bytes.
    /// Errors name the host only, since such URLs may embed a token.
    pub async fn get_document(
        &self,
        url: &HttpUrl,
        accept: &str,
        connect_timeout: Duration,
        timeout: Duration,
        limit: usize,
    ) -> Result<Bytes, DocumentError> {
        let get = DocumentGet {
            path_suffix: "",
            bearer: None,
            accept,
            connect_timeout,
            timeout,
            limit,
        };
        self.fetch_document(url, get).await
    }

    /// GET `{url}{path_suffix}` with a bearer token (OpenRouter's `/key`, SPEC §12).
    pub async fn get_authorized_document(
        &self,
        url: &HttpUrl,
        get: DocumentGet<'_>,
    ) -> Result<Bytes, DocumentError> {
        self.fetch_document(url, get).await
    }

    async fn fetch_document(
        &self,
        url: &HttpUrl,
        get: DocumentGet<'_>,
    ) -> Result<Bytes, DocumentError> {
        let DocumentGet {
            path_suffix,
            bearer,
            accept,
            connect_timeout,
            timeout,
            limit,
        } = get;
        let mut headers = vec![
            ("accept", accept.to_string()),
            ("accept-encoding", "identity".to_string()),
            (
                "user-agent",
                concat!("free-llm-proxy/", env!("CARGO_PKG_VERSION")).to_string(),
            ),
        ];
        if let Some(token) = bearer {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let request = Outbound {
            method: "GET",
            url,
            path_suffix,
            headers,
            body: None,
            connect_timeout,
        };
        let host = || url.host.clone();
        let mut exchange =
            self.send(request, timeout)
                .await
                .map_err(|failure| DocumentError::Fetch {
                    host: host(),
                    failure,
                })?;
        let status = exchange.status();
        let body = exchange
            .read_to_end(timeout, limit)
            .await
            .map_err(|failure| DocumentError::Read {
                host: host(),
                failure,
            })?;
        self.finish(exchange).await;
        if status != 200 {
            return Err(DocumentError::Status {
                host: host(),
                status,
            });
        }
        Ok(body)
    }

    /// Hand a finished exchange's connection back to the pool, or drop it when its body
    /// was not read to the end.
    pub async fn finish(&self, mut exchange: Exchange) {
        if exchange.session.response_done() {
            self.connector
                .release_http_session(exchange.session, &exchange.peer, Some(POOL_IDLE))
                .await;
        } else {
            exchange.session.shutdown().await;
        }
    }
}

/// One document GET: where under the URL, with which token, within which limits.
#[derive(Debug, Clone, Copy)]
pub struct DocumentGet<'a> {
    pub path_suffix: &'a str,
    pub bearer: Option<&'a str>,
    pub accept: &'a str,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub limit: usize,
}

/// Why a document (model list, key CSV) could not be fetched. Names the host only: such
/// URLs may embed a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    Fetch {
        host: String,
        failure: TransportFailure,
    },
    Read {
        host: String,
        failure: TransportFailure,
    },
    Status {
        host: String,
        status: u16,
    },
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentError::Fetch { host, failure } => {
                write!(f, "fetching from {host} failed: {failure}")
            }
            DocumentError::Read { host, failure } => {
                write!(f, "reading from {host} failed: {failure}")
            }
            DocumentError::Status { host, status } => write!(f, "{host} answered HTTP {status}"),
        }
    }
}

impl std::error::Error for DocumentError {}

fn build_request(req: &Outbound<'_>) -> Result<RequestHeader, TransportFailure> {
    let path = if req.path_suffix.is_empty() {
        req.url.request_target().to_string()
    } else {
        format!("{}{}", req.url.path, req.path_suffix)
    };
    let invalid = |e| {
        log::error!("cannot build upstream request: {e}");
        TransportFailure::Connect
    };
    let mut header = RequestHeader::build(req.method, path.as_bytes(), Some(req.headers.len() + 3))
        .map_err(invalid)?;
    header
        .insert_header("host", req.url.host_header())
        .map_err(invalid)?;
    for (name, value) in &req.headers {
        header
            .insert_header(name.to_string(), value.as_str())
            .map_err(invalid)?;
    }
    if let Some(body) = &req.body {
        header
            .insert_header("content-length", body.len().to_string())
            .map_err(invalid)?;
    }
    Ok(header)
}

impl Exchange {
    pub fn header(&self) -> &ResponseHeader {
        &self.header
    }

    pub fn status(&self) -> u16 {
        self.header.status.as_u16()
    }

    /// Read the next piece of the body, waiting at most `silence` for it.
    pub async fn next_chunk(&mut self, silence: Duration) -> BodyRead {
        match pingora::prelude::timeout(silence, self.session.read_response_body()).await {
            Err(_) => BodyRead::Silent,
            Ok(Ok(Some(bytes))) => BodyRead::Data(bytes),
            Ok(Ok(None)) => BodyRead::End,
            Ok(Err(e)) => {
                log::debug!("upstream body broke: {e}");
                BodyRead::Broken
            }
        }
    }

    /// Read the whole body; each read may wait at most `silence`, the total size is capped.
    pub async fn read_to_end(
        &mut self,
        silence: Duration,
        limit: usize,
    ) -> Result<Bytes, TransportFailure> {
        let mut body = BodyCollector::new(limit, 0);
        loop {
            match self.next_chunk(silence).await {
                BodyRead::Data(bytes) => {
                    body.push(bytes).map_err(|_| TransportFailure::BodyFailed)?
                }
                BodyRead::End => return Ok(body.finish()),
                BodyRead::Silent | BodyRead::Broken => return Err(TransportFailure::BodyFailed),
            }
        }
    }
}
