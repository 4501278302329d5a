//! A scripted upstream that plays OpenRouter (chat completions) and the
//! ranked model list, written on raw TCP so it can misbehave on purpose.
//!
//! Routes (the query string is ignored):
//! - `GET /top-models`: the scripted list (`set_list`), by default the real
//!   fixture `shared/fixtures/top-models.json`.
//! - `POST /api/v1/chat/completions`: the next scripted [`Behaviour`] of the
//!   model named in the JSON body (`script`), else the model's default
//!   (`set_default`), else a 200 completion (`"stream": true`: an SSE stream)
//!   saying `hello from <model>`. A body without a `model` gets a 400.
//! - `GET /api/v1/key`: the key info set for the bearer token (404 by default).
//! - anything else: 404.
//!
//! Every request except the list's and the key info's is recorded ([`RecordedRequest`]).
//! Connections are numbered from 1; when one ends, for whatever reason, the
//! time is kept (`connection_closed_at`). While a behaviour waits (delay,
//! SSE sleep, hang) the socket is read at the same time, so a peer that goes
//! away is noticed at once.
//!
//! The server never panics on odd input: a malformed request gets a 400 and
//! the connection is closed. Dropping the `MockUpstream` aborts the accept
//! loop and every connection task.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::wire::{self, Conn, Head};

pub const LIST_PATH: &str = "/top-models";
pub const CHAT_PATH: &str = "/api/v1/chat/completions";
/// OpenRouter's key-info route (SPEC §12): answered per bearer token, never recorded
/// among the chat requests.
pub const KEY_PATH: &str = "/api/v1/key";
/// The real list snapshot the binary embeds (a copy of shared/fixtures/top-models.json).
pub const FIXTURE_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/conf/embedded-top-models.json");
/// The SSE terminator OpenAI and OpenRouter send.
pub const DONE_EVENT: &str = "data: [DONE]\n\n";
/// The keep-alive comment OpenRouter sends while a model warms up.
pub const PROCESSING_COMMENT: &str = ": OPENROUTER PROCESSING\n\n";

/// Long enough to outlive any test; the task is aborted on drop anyway.
const FOREVER: Duration = Duration::from_secs(24 * 3600);

/// What the mock does with one chat request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// A complete response with `Content-Length` (added unless `headers`
    /// has one) and `Content-Type: application/json` (unless given).
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A chunked `text/event-stream` response (Content-Type added unless
    /// given); each `Send` is written and flushed as its own chunk.
    Sse {
        status: u16,
        headers: Vec<(String, String)>,
        events: Vec<SseStep>,
        end: SseEnd,
    },
    /// Waits, then behaves as the inner behaviour.
    Delay(Duration, Box<Behaviour>),
    /// Reads the request and never answers; the socket stays open.
    Hang,
    /// Reads the request and closes the connection without a byte.
    CloseImmediately,
    /// Writes these bytes as they are, then closes. See
    /// [`Behaviour::truncated_json`] for a body cut short.
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
pub enum SseStep {
    /// Raw bytes written as one chunk, e.g. `"data: {...}\n\n"` or
    /// [`PROCESSING_COMMENT`]. An empty string is skipped.
    Send(String),
    /// Pause (a peer that goes away meanwhile is noticed at once).
    Sleep(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseEnd {
    /// The terminating zero-size chunk; the connection stays reusable.
    Clean,
    /// Send nothing more and keep the connection open.
    Hang,
    /// Close abruptly (TCP RST) without the terminating chunk.
    Reset,
}

impl Behaviour {
    /// 200 chat completion saying `hello from <model>`.
    pub fn ok_json(model: &str) -> Self {
        Self::ok_text(model, &format!("hello from {model}"))
    }

    /// 200 chat completion with this content.
    pub fn ok_text(model: &str, content: &str) -> Self {
        Self::status(200, completion_json(model, content))
    }

    /// A JSON response with this status and body.
    pub fn status(code: u16, body: impl Into<String>) -> Self {
        Behaviour::Json {
            status: code,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An OpenRouter-shaped error: HTTP `code` with [`error_body`].
    pub fn error(code: u16, message: &str) -> Self {
        Self::status(code, error_body(code, message))
    }

    /// 429, with `Retry-After` when given.
    pub fn rate_limited(retry_after: Option<&str>, body: impl Into<String>) -> Self {
        let plain = Self::status(429, body);
        match retry_after {
            Some(value) => plain.with_header("Retry-After", value),
            None => plain,
        }
    }

    /// A 200 SSE stream of these steps.
    pub fn sse(events: Vec<SseStep>, end: SseEnd) -> Self {
        Behaviour::Sse {
            status: 200,
            headers: Vec::new(),
            events,
            end,
        }
    }

    /// One content chunk per part (the last with `finish_reason: "stop"`),
    /// then `data: [DONE]`.
    pub fn sse_text(model: &str, parts: &[&str]) -> Self {
        let last = parts.len().saturating_sub(1);
        let mut events: Vec<SseStep> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let finish = (i == last).then_some("stop");
                SseStep::Send(chunk_event(model, part, finish))
            })
            .collect();
        events.push(SseStep::Send(DONE_EVENT.to_string()));
        Self::sse(events, SseEnd::Clean)
    }

    /// [`Behaviour::sse_text`] preceded by a role-only delta.
    pub fn sse_text_with_role(model: &str, parts: &[&str]) -> Self {
        let mut behaviour = Self::sse_text(model, parts);
        if let Behaviour::Sse { events, .. } = &mut behaviour {
            events.insert(0, SseStep::Send(role_event(model)));
        }
        behaviour
    }

    /// A 200 stream whose first event is an OpenRouter error chunk
    /// ([`error_event`]); the stream then ends cleanly without `[DONE]`.
    pub fn sse_error_first(code: u16, message: &str) -> Self {
        Self::sse(
            vec![SseStep::Send(error_event(code, message))],
            SseEnd::Clean,
        )
    }

    /// `n_events` content chunks (`tok0 `, `tok1 `, ...) with `gap` between
    /// consecutive ones, then `[DONE]` right after the last.
    pub fn sse_slow(model: &str, n_events: usize, gap: Duration) -> Self {
        let mut events = Vec::new();
        for i in 0..n_events {
            if i > 0 {
                events.push(SseStep::Sleep(gap));
            }
            let finish = (i + 1 == n_events).then_some("stop");
            events.push(SseStep::Send(chunk_event(
                model,
                &format!("tok{i} "),
                finish,
            )));
        }
        events.push(SseStep::Send(DONE_EVENT.to_string()));
        Self::sse(events, SseEnd::Clean)
    }

    /// A response that declares `declared_len` body bytes, sends only
    /// `body_prefix`, then closes.
    pub fn truncated_json(status: u16, body_prefix: &str, declared_len: usize) -> Self {
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {declared_len}\r\n\r\n",
            reason(status)
        );
        Behaviour::Raw([head.as_bytes(), body_prefix.as_bytes()].concat())
    }

    /// Adds a response header (to `Json` / `Sse`, or inside a `Delay`);
    /// other behaviours are returned unchanged.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Behaviour::Json { headers, .. } | Behaviour::Sse { headers, .. } => {
                headers.push((name.to_string(), value.to_string()))
            }
            Behaviour::Delay(_, inner) => **inner = (**inner).clone().with_header(name, value),
            _ => {}
        }
        self
    }

    /// This behaviour after a pause.
    pub fn delayed(self, wait: Duration) -> Self {
        Behaviour::Delay(wait, Box::new(self))
    }
}

/// A non-streamed chat completion body.
pub fn completion_json(model: &str, content: &str) -> String {
    json!({
        "id": "mock-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
    .to_string()
}

/// `data: <chat.completion.chunk>\n\n` carrying `content`.
pub fn chunk_event(model: &str, content: &str, finish_reason: Option<&str>) -> String {
    chunk_with_delta(model, json!({ "content": content }), finish_reason)
}

/// A role-only first delta (`{"role":"assistant","content":""}`).
pub fn role_event(model: &str) -> String {
    chunk_with_delta(model, json!({"role": "assistant", "content": ""}), None)
}

fn chunk_with_delta(model: &str, delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({
        "id": "mock-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    });
    format!("data: {chunk}\n\n")
}

/// An OpenRouter in-stream error event with `finish_reason: "error"`.
pub fn error_event(code: u16, message: &str) -> String {
    let chunk = json!({
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "error": {"code": code, "message": message},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    });
    format!("data: {chunk}\n\n")
}

/// `{"error":{"code":<code>,"message":<message>}}`, OpenRouter's error body.
pub fn error_body(code: u16, message: &str) -> String {
    json!({"error": {"code": code, "message": message}}).to_string()
}

/// One chat (or unknown-route) request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The body's `model`, when it is JSON with a string `model`.
    pub model: Option<String>,
    pub method: String,
    /// The request target as sent, query string included.
    pub path: String,
    /// Names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked bodies are de-chunked).
    pub body: Vec<u8>,
    pub received_at: Instant,
    pub conn_id: u64,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// The body as JSON (panics, with the body, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "recorded body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl MockUpstream {
    /// Binds 127.0.0.1:0 and starts serving on the current tokio runtime.
    pub async fn start() -> Self {
        let list = std::fs::read_to_string(FIXTURE_PATH)
            .unwrap_or_else(|e| panic!("cannot read the list fixture {FIXTURE_PATH}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock upstream address");
        let shared = Arc::new(Shared::new(list));
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        Self {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/api/v1`, for `upstream.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT/top-models`, for `models.source_url`.
    pub fn list_url(&self) -> String {
        format!("http://{}{LIST_PATH}", self.addr)
    }

    /// What `GET /top-models` answers from now on.
    pub fn set_list(&self, status: u16, body: impl Into<String>) {
        self.shared.lock().list = (status, body.into());
    }

    pub fn list_requests(&self) -> usize {
        self.shared.lock().list_requests
    }

    /// Appends to `model`'s queue; each request for it takes the next one.
    pub fn script(&self, model: &str, behaviours: Vec<Behaviour>) {
        let mut state = self.shared.lock();
        state
            .scripts
            .entry(model.to_string())
            .or_default()
            .extend(behaviours);
    }

    /// Scripted behaviours of `model` not consumed yet.
    pub fn remaining_script(&self, model: &str) -> usize {
        self.shared
            .lock()
            .scripts
            .get(model)
            .map_or(0, VecDeque::len)
    }

    /// What `model` does once its queue is empty.
    pub fn set_default(&self, model: &str, behaviour: Behaviour) {
        let mut state = self.shared.lock();
        state.defaults.insert(model.to_string(), behaviour);
    }

    /// What `GET /api/v1/key` answers for the bearer `key` from now on.
    pub fn set_key_info(&self, key: &str, status: u16, body: impl Into<String>) {
        self.shared
            .lock()
            .key_info
            .insert(key.to_string(), (status, body.into()));
    }

    /// Bearer tokens of the `GET /api/v1/key` requests so far.
    pub fn key_requests(&self) -> Vec<String> {
        self.shared.lock().key_requests.clone()
    }

    /// Every recorded request, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        let state = self.shared.lock();
        let of_model = |r: &&RecordedRequest| r.model.as_deref() == Some(model);
        state.requests.iter().filter(of_model).cloned().collect()
    }

    pub fn count_for(&self, model: &str) -> usize {
        let state = self.shared.lock();
        let of_model = |r: &&RecordedRequest| r.model.as_deref() == Some(model);
        state.requests.iter().filter(of_model).count()
    }

    /// Number of recorded requests.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// When connection `conn_id` ended (peer close, I/O error, or the mock
    /// closing it itself), if it has.
    pub fn connection_closed_at(&self, conn_id: u64) -> Option<Instant> {
        self.shared.lock().closed.get(&conn_id).map(|c| c.at)
    }

    /// `Some(true)` when the peer ended connection `conn_id` (EOF or error),
    /// `Some(false)` when the mock closed it, `None` while it is open.
    pub fn connection_closed_by_peer(&self, conn_id: u64) -> Option<bool> {
        self.shared.lock().closed.get(&conn_id).map(|c| c.by_peer)
    }

    /// Connections accepted so far (ids run from 1 to this).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.next_conn.load(Ordering::SeqCst)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.shared.tasks().drain(..) {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Shared state

struct Shared {
    state: Mutex<State>,
    tasks: Mutex<Vec<AbortHandle>>,
    next_conn: AtomicU64,
}

struct State {
    list: (u16, String),
    list_requests: usize,
    scripts: HashMap<String, VecDeque<Behaviour>>,
    defaults: HashMap<String, Behaviour>,
    /// `GET /api/v1/key` answers by bearer token; absent = 404.
    key_info: HashMap<String, (u16, String)>,
    key_requests: Vec<String>,
    requests: Vec<RecordedRequest>,
    closed: HashMap<u64, ConnClose>,
}

#[derive(Clone, Copy)]
struct ConnClose {
    at: Instant,
    by_peer: bool,
}

impl Shared {
    fn new(list: String) -> Self {
        let state = State {
            list: (200, list),
            list_requests: 0,
            scripts: HashMap::new(),
            defaults: HashMap::new(),
            key_info: HashMap::new(),
            key_requests: Vec::new(),
            requests: Vec::new(),
            closed: HashMap::new(),
        };
        Self {
            state: Mutex::new(state),
            tasks: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
        }
    }

    /// Never held across an await; a poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tasks(&self) -> MutexGuard<'_, Vec<AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    fn mark_closed(&self, conn_id: u64, by_peer: bool) {
        let close = ConnClose {
            at: Instant::now(),
            by_peer,
        };
        self.lock().closed.entry(conn_id).or_insert(close);
    }

    fn next_list(&self) -> (u16, String) {
        let mut state = self.lock();
        state.list_requests += 1;
        state.list.clone()
    }

    fn key_info(&self, request: &Request) -> (u16, String) {
        let token = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        let mut state = self.lock();
        state.key_requests.push(token.clone());
        state
            .key_info
            .get(&token)
            .cloned()
            .unwrap_or_else(|| (404, error_body(404, "mock upstream: no key info")))
    }

    fn next_behaviour(&self, request: &Request) -> Behaviour {
        let Some(model) = request.model.as_deref() else {
            return Behaviour::error(400, "mock upstream: the body names no model");
        };
        let mut state = self.lock();
        if let Some(next) = state.scripts.get_mut(model).and_then(VecDeque::pop_front) {
            return next;
        }
        match state.defaults.get(model) {
            Some(default) => default.clone(),
            None if request.stream => {
                Behaviour::sse_text(model, &["hello", " from", &format!(" {model}")])
            }
            None => Behaviour::ok_json(model),
        }
    }

    fn record(&self, request: Request, conn_id: u64) {
        let recorded = RecordedRequest {
            model: request.model,
            method: request.method,
            path: request.target,
            headers: request.headers,
            body: request.body,
            received_at: request.received_at,
            conn_id,
        };
        self.lock().requests.push(recorded);
    }
}

// ---------------------------------------------------------------------------
// Connection handling

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. too many open files: back off instead of spinning
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn_id = shared.next_conn.fetch_add(1, Ordering::SeqCst) + 1;
        let task = tokio::spawn(serve_connection(Conn::new(stream), conn_id, shared.clone()));
        shared.track(task.abort_handle());
    }
}

/// What happens to a connection after one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    /// The mock closes it (dropping the stream; after `SseEnd::Reset` the
    /// zero linger makes that an RST).
    Close,
    /// The peer closed it or the socket failed.
    PeerGone,
}

/// The peer went away.
struct Gone;

async fn serve_connection(mut conn: Conn, conn_id: u64, shared: Arc<Shared>) {
    let by_peer = loop {
        match serve_one(&mut conn, conn_id, &shared).await {
            Next::KeepAlive => continue,
            Next::Close => break false,
            Next::PeerGone => break true,
        }
    };
    shared.mark_closed(conn_id, by_peer);
}

/// A parsed request.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    received_at: Instant,
    keep_alive: bool,
    model: Option<String>,
    stream: bool,
}

async fn serve_one(conn: &mut Conn, conn_id: u64, shared: &Shared) -> Next {
    let request = match read_request(conn).await {
        Ok(Some(request)) => request,
        Ok(None) => return Next::PeerGone,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let body = error_body(400, &format!("mock upstream: {e}"));
            let _ = write_json(conn, 400, &[], &body, false).await;
            return Next::Close;
        }
        Err(_) => return Next::PeerGone,
    };
    let keep_alive = request.keep_alive;
    let route = request.target.split('?').next().unwrap_or("");
    if request.method == "GET" && route == LIST_PATH {
        let (status, body) = shared.next_list();
        return write_json(conn, status, &[], &body, keep_alive).await;
    }
    if request.method == "GET" && route == KEY_PATH {
        let (status, body) = shared.key_info(&request);
        return write_json(conn, status, &[], &body, keep_alive).await;
    }
    let behaviour = match (request.method.as_str(), route) {
        ("POST", CHAT_PATH) => shared.next_behaviour(&request),
        _ => Behaviour::error(404, "mock upstream: no such route"),
    };
    shared.record(request, conn_id);
    perform(conn, behaviour, keep_alive).await
}

/// `Ok(None)` on a clean EOF between requests; `InvalidData` when malformed.
async fn read_request(conn: &mut Conn) -> std::io::Result<Option<Request>> {
    let Some(head) = conn.read_head().await? else {
        return Ok(None);
    };
    let (method, target, version) = parse_request_line(&head.start_line)?;
    if head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let body = read_request_body(conn, &head).await?;
    let keep_alive = version == "HTTP/1.1"
        && !head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| json.as_ref().and_then(|v| v.get(name)).cloned();
    Ok(Some(Request {
        model: field("model").and_then(|m| m.as_str().map(str::to_string)),
        stream: field("stream") == Some(Value::Bool(true)),
        method,
        target,
        headers: head.headers,
        body,
        received_at: Instant::now(),
        keep_alive,
    }))
}

fn parse_request_line(line: &str) -> std::io::Result<(String, String, String)> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) if version.starts_with("HTTP/1.") => {
            Ok((method.to_string(), target.to_string(), version.to_string()))
        }
        _ => Err(wire::invalid(&format!("bad request line {line:?}"))),
    }
}

async fn read_request_body(conn: &mut Conn, head: &Head) -> std::io::Result<Vec<u8>> {
    if wire::is_chunked(&head.headers) {
        return conn.read_chunked_body().await;
    }
    match wire::content_length(&head.headers)? {
        Some(len) => conn.read_exact_vec(len).await,
        None => Ok(Vec::new()),
    }
}

async fn perform(conn: &mut Conn, behaviour: Behaviour, keep_alive: bool) -> Next {
    match behaviour {
        Behaviour::Json {
            status,
            headers,
            body,
        } => write_json(conn, status, &headers, &body, keep_alive).await,
        Behaviour::Sse {
            status,
            headers,
            events,
            end,
        } => write_sse(conn, status, &headers, &events, end, keep_alive).await,
        Behaviour::Delay(wait, inner) => match watch_for(conn, wait).await {
            Ok(()) => Box::pin(perform(conn, *inner, keep_alive)).await,
            Err(Gone) => Next::PeerGone,
        },
        Behaviour::Hang => hang(conn).await,
        Behaviour::CloseImmediately => Next::Close,
        Behaviour::Raw(bytes) => match conn.write_all(&bytes).await {
            Ok(()) => Next::Close,
            Err(_) => Next::PeerGone,
        },
    }
}

/// Waits `wait` while reading the socket, so a peer close ends it early.
/// Bytes the peer sends meanwhile stay buffered for the next request.
async fn watch_for(conn: &mut Conn, wait: Duration) -> Result<(), Gone> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            read = conn.fill() => match read {
                Ok(0) | Err(_) => return Err(Gone),
                Ok(_) => {}
            },
        }
    }
}

async fn hang(conn: &mut Conn) -> Next {
    match watch_for(conn, FOREVER).await {
        Ok(()) => Next::Close,
        Err(Gone) => Next::PeerGone,
    }
}

async fn write_json(
    conn: &mut Conn,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    keep_alive: bool,
) -> Next {
    let mut head = response_head(status, headers, keep_alive);
    default_header(&mut head, headers, "Content-Type", "application/json");
    default_header(
        &mut head,
        headers,
        "Content-Length",
        &body.len().to_string(),
    );
    head.push_str("\r\n");
    let bytes = [head.as_bytes(), body.as_bytes()].concat();
    match conn.write_all(&bytes).await {
        Ok(()) if keep_alive => Next::KeepAlive,
        Ok(()) => Next::Close,
        Err(_) => Next::PeerGone,
    }
}

async fn write_sse(
    conn: &mut Conn,
    status: u16,
    headers: &[(String, String)],
    events: &[SseStep],
    end: SseEnd,
    keep_alive: bool,
) -> Next {
    let mut head = response_head(status, headers, keep_alive);
    default_header(&mut head, headers, "Content-Type", "text/event-stream");
    head.push_str("Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n");
    if conn.write_all(head.as_bytes()).await.is_err() {
        return Next::PeerGone;
    }
    for step in events {
        if play_step(conn, step).await.is_err() {
            return Next::PeerGone;
        }
    }
    finish_sse(conn, end, keep_alive).await
}

async fn play_step(conn: &mut Conn, step: &SseStep) -> Result<(), Gone> {
    match step {
        SseStep::Send(text) if text.is_empty() => Ok(()),
        SseStep::Send(text) => conn
            .write_all(&wire::encode_chunk(text.as_bytes()))
            .await
            .map_err(|_| Gone),
        SseStep::Sleep(wait) => watch_for(conn, *wait).await,
    }
}

async fn finish_sse(conn: &mut Conn, end: SseEnd, keep_alive: bool) -> Next {
    match end {
        SseEnd::Clean => match conn.write_all(b"0\r\n\r\n").await {
            Ok(()) if keep_alive => Next::KeepAlive,
            Ok(()) => Next::Close,
            Err(_) => Next::PeerGone,
        },
        SseEnd::Hang => hang(conn).await,
        SseEnd::Reset => {
            // Dropping a socket with a zero linger sends RST instead of FIN.
            let _ = conn.stream().set_zero_linger();
            Next::Close
        }
    }
}

/// Status line, the scripted headers and `Connection: close` when the
/// connection will not be reused; no final empty line.
fn response_head(status: u16, headers: &[(String, String)], keep_alive: bool) -> String {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head
}

fn default_header(head: &mut String, scripted: &[(String, String)], name: &str, value: &str) {
    if wire::header(scripted, name).is_none() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
