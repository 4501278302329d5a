//! A minimal HTTP/1.1 client for tests: one request per connection
//! (`Connection: close`), every read bounded by a timeout.
//!
//! - `request` / `post_json` / `get`: the whole response, panicking with a
//!   clear message on error or after [`DEFAULT_TIMEOUT`]; `try_request`
//!   returns the error instead (`TimedOut`, `InvalidData`, `UnexpectedEof`,
//!   `ConnectionReset`, ...).
//! - `open_stream`: returns after the response head; the body is then read
//!   chunk by chunk with arrival times (`next_chunk`), or whole.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpStream;

use super::wire::{self, Conn, Head};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// Decoded body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// The body as JSON; panics with the status and body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response (panics on error or
/// after [`DEFAULT_TIMEOUT`]). `Host`, `Connection: close` and
/// `Content-Length` are added unless `headers` has them.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_with_timeout(addr, method, path, headers, body, DEFAULT_TIMEOUT).await
}

pub async fn request_with_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Response {
    try_request(addr, method, path, headers, body, timeout)
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path} failed: {e}"))
}

/// Like [`request`], returning errors; `TimedOut` when the whole exchange
/// takes longer than `timeout`.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let exchange = async {
        let mut conn = send_request(addr, method, path, headers, body).await?;
        let head = read_response_head(&mut conn).await?;
        let status = status_code(&head)?;
        let body = read_body(&mut conn, framing(method, status, &head)?).await?;
        Ok(Response {
            status,
            headers: head.headers,
            body,
        })
    };
    with_timeout(timeout, "a complete response", exchange).await
}

/// POSTs `body` as JSON (`Content-Type: application/json` unless given).
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Response {
    let bytes = body.to_string().into_bytes();
    let headers = with_json_type(headers);
    request(addr, "POST", path, &headers, &bytes).await
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"").await
}

/// Sends a request and returns once the response head is in (panics on
/// error or after [`DEFAULT_TIMEOUT`]).
pub async fn open_stream(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> StreamResponse {
    try_open_stream(addr, method, path, headers, body, DEFAULT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path} (stream) failed: {e}"))
}

pub async fn try_open_stream(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<StreamResponse> {
    let open = async {
        let mut conn = send_request(addr, method, path, headers, body).await?;
        let head = read_response_head(&mut conn).await?;
        let status = status_code(&head)?;
        let framing = framing(method, status, &head)?;
        Ok(StreamResponse {
            status,
            headers: head.headers,
            conn,
            framing,
            done: false,
        })
    };
    with_timeout(timeout, "the response head", open).await
}

/// One read from a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRead {
    /// A decoded chunk (or, without chunked framing, the bytes of one read)
    /// and when it arrived.
    Data(Instant, Vec<u8>),
    /// The body ended as its framing says.
    End,
    /// Nothing within the timeout; the stream can still be read.
    Timeout,
    /// The body ended early (EOF or reset before its end) or was malformed.
    Broken(String),
}

/// How a collected stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    Clean,
    Broken(String),
    Timeout,
}

/// Everything read from a stream.
#[derive(Debug, Clone)]
pub struct Collected {
    pub chunks: Vec<(Instant, Vec<u8>)>,
    pub end: StreamEnd,
}

impl Collected {
    pub fn body(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body()).into_owned()
    }
}

/// A response whose body is read piece by piece.
pub struct StreamResponse {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    conn: Conn,
    framing: Framing,
    done: bool,
}

impl StreamResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// The next piece of the body, waiting at most `timeout`. After `End`
    /// or `Broken`, always `End`.
    pub async fn next_chunk(&mut self, timeout: Duration) -> ChunkRead {
        if self.done {
            return ChunkRead::End;
        }
        match tokio::time::timeout(timeout, self.read_piece()).await {
            Err(_) => ChunkRead::Timeout,
            Ok(Ok(Some(data))) => ChunkRead::Data(Instant::now(), data),
            Ok(Ok(None)) => {
                self.done = true;
                ChunkRead::End
            }
            Ok(Err(e)) => {
                self.done = true;
                ChunkRead::Broken(e.to_string())
            }
        }
    }

    /// Reads until the body ends, breaks, or `timeout` (in all) passes.
    pub async fn collect(&mut self, timeout: Duration) -> Collected {
        let deadline = Instant::now() + timeout;
        let mut chunks = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let end = match self.next_chunk(left).await {
                ChunkRead::Data(at, data) => {
                    chunks.push((at, data));
                    continue;
                }
                ChunkRead::End => StreamEnd::Clean,
                ChunkRead::Timeout => StreamEnd::Timeout,
                ChunkRead::Broken(e) => StreamEnd::Broken(e),
            };
            return Collected { chunks, end };
        }
    }

    /// The rest of the body; panics unless it ends cleanly within `timeout`.
    pub async fn read_to_end(&mut self, timeout: Duration) -> Vec<u8> {
        let collected = self.collect(timeout).await;
        match &collected.end {
            StreamEnd::Clean => collected.body(),
            StreamEnd::Timeout => panic!(
                "stream did not end within {timeout:?}; read so far: {}",
                collected.text()
            ),
            StreamEnd::Broken(e) => panic!(
                "stream broke before its end ({e}); read so far: {}",
                collected.text()
            ),
        }
    }

    /// Drops the connection: the server sees the client disconnect.
    pub fn close(self) {
        drop(self);
    }

    /// `Ok(None)` at the end of the body.
    async fn read_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.framing {
            Framing::Empty => Ok(None),
            Framing::Chunked => self.conn.read_chunk().await,
            Framing::Length(0) => Ok(None),
            Framing::Length(left) => {
                let data = self.conn.read_some(left).await?;
                if data.is_empty() {
                    return Err(wire::eof("connection closed inside a body"));
                }
                self.framing = Framing::Length(left - data.len());
                Ok(Some(data))
            }
            Framing::UntilEof => {
                let data = self.conn.read_some(usize::MAX).await?;
                Ok((!data.is_empty()).then_some(data))
            }
        }
    }
}

/// The payloads of the `data:` lines of an SSE body, in order (one entry
/// per line; `[DONE]` included).
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.strip_prefix(' ').unwrap_or(data).to_string())
        .collect()
}

/// The concatenated `choices[0].delta.content` of an SSE body's JSON events.
pub fn sse_content(body: &[u8]) -> String {
    sse_data(body)
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|event| {
            let content = event.pointer("/choices/0/delta/content")?;
            content.as_str().map(str::to_string)
        })
        .collect()
}

// ---------------------------------------------------------------------------

/// How a response body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Empty,
    Chunked,
    Length(usize),
    UntilEof,
}

fn framing(method: &str, status: u16, head: &Head) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if wire::is_chunked(&head.headers) {
        return Ok(Framing::Chunked);
    }
    Ok(match wire::content_length(&head.headers)? {
        Some(len) => Framing::Length(len),
        None => Framing::UntilEof,
    })
}

async fn read_body(conn: &mut Conn, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Chunked => conn.read_chunked_body().await,
        Framing::Length(len) => conn.read_exact_vec(len).await,
        Framing::UntilEof => conn.read_to_eof().await,
    }
}

async fn send_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Conn> {
    let mut conn = Conn::new(TcpStream::connect(addr).await?);
    let mut bytes = request_head(addr, method, path, headers, body.len()).into_bytes();
    bytes.extend_from_slice(body);
    conn.write_all(&bytes).await?;
    Ok(conn)
}

fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    let bodiless = body_len == 0 && matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS");
    if !has("content-length") && !has("transfer-encoding") && !bodiless {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The final response head (interim 1xx heads are skipped).
async fn read_response_head(conn: &mut Conn) -> io::Result<Head> {
    loop {
        let head = conn
            .read_head()
            .await?
            .ok_or_else(|| wire::eof("connection closed before a response"))?;
        let status = status_code(&head)?;
        if !(100..200).contains(&status) || status == 101 {
            return Ok(head);
        }
    }
}

fn status_code(head: &Head) -> io::Result<u16> {
    let mut parts = head.start_line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(wire::invalid(&format!(
            "bad status line {:?}",
            head.start_line
        ))),
    }
}

fn with_json_type<'a>(headers: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = headers.to_vec();
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        all.push(("Content-Type", "application/json"));
    }
    all
}

async fn with_timeout<T>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no {what} within {timeout:?}"),
        )),
    }
}
