//! bench-mock: a loopback stand-in for OpenRouter's chat API, for bench/run.sh only.
//!
//! HTTP/1.1 with keep-alive, Content-Length request bodies. Tokio only, one thread.
//!
//!   GET  …/models                     the model list given with --models
//!   POST …/chat/completions           a fixed chat completion; SSE when the request
//!                                     asks for a stream (Accept: text/event-stream or
//!                                     "stream":true in the body)
//!   GET  /control/fail-once?model=ID  the next chat request for ID gets
//!                                     429 + Retry-After: 3600 (once)
//!   GET  /stats                       {"total":N,"rate_limited":N,"open_streams":N,
//!                                      "by_model":{"id":N,…}}
//!
//! With --hold-secs N (> 0) a stream sends its first content event at once, then one
//! content event every --tick-ms, and ends with [DONE] after N seconds: streams stay
//! open, for the gateway's memory-under-load test.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const COMPLETION: &str = r#"{"id":"gen-bench-0001","provider":"Mock","model":"mock/model:free","object":"chat.completion","created":1767225600,"choices":[{"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop","index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark mock. It is about as long as a short real reply, so the response size is realistic for a chat completion.","refusal":null,"reasoning":null}}],"usage":{"prompt_tokens":512,"completion_tokens":38,"total_tokens":550}}"#;

const RATE_LIMITED: &str = r#"{"error":{"code":429,"message":"Rate limit exceeded: mock says rank-1 is busy","metadata":{"headers":{"Retry-After":"3600"}}}}"#;

fn sse_event(content: &str) -> String {
    format!(
        "data: {{\"id\":\"gen-bench-0001\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"mock/model:free\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

fn sse_static() -> String {
    let mut s = String::from(": OPENROUTER PROCESSING\n\n");
    s.push_str("data: {\"id\":\"gen-bench-0001\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"mock/model:free\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    for word in [
        "Hello", "!", " This", " is", " a", " fixed", " streamed", " answer", ".",
    ] {
        s.push_str(&sse_event(word));
    }
    s.push_str("data: {\"id\":\"gen-bench-0001\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"mock/model:free\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":512,\"completion_tokens\":9,\"total_tokens\":521}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s
}

#[derive(Default)]
struct State {
    total: u64,
    rate_limited: u64,
    open_streams: u64,
    by_model: HashMap<String, u64>,
    fail_once: Vec<String>,
}

struct Config {
    models: Vec<u8>,
    hold: Duration,
    tick: Duration,
    sse: String,
}

fn main() {
    let mut listen = "127.0.0.1:18000".to_string();
    let mut models_file = None;
    let mut hold_secs = 0u64;
    let mut tick_ms = 1000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("option needs a value");
        match arg.as_str() {
            "--listen" => listen = value(),
            "--models" => models_file = Some(value()),
            "--hold-secs" => hold_secs = value().parse().expect("--hold-secs N"),
            "--tick-ms" => tick_ms = value().parse().expect("--tick-ms N"),
            other => {
                eprintln!("bench-mock: unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    let models = models_file
        .map(|f| std::fs::read(&f).unwrap_or_else(|e| panic!("reading {f}: {e}")))
        .unwrap_or_else(|| b"{\"models\":[]}".to_vec());
    let config = Rc::new(Config {
        models,
        hold: Duration::from_secs(hold_secs),
        tick: Duration::from_millis(tick_ms.max(1)),
        sse: sse_static(),
    });
    let state = Rc::new(RefCell::new(State::default()));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(&listen).await.expect("bind");
        eprintln!("bench-mock listening on {listen}");
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            let (config, state) = (config.clone(), state.clone());
            tokio::task::spawn_local(async move {
                let _ = serve(sock, config, state).await;
            });
        }
    });
}

struct Request {
    method: String,
    target: String,
    accept_sse: bool,
    close: bool,
    body: Vec<u8>,
}

/// Read one request; `None` when the peer closed between requests.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("/").to_string();
    let (mut length, mut accept_sse, mut close) = (0usize, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "accept" => accept_sse = value.contains("event-stream"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    buf.drain(..head_end);
    while buf.len() < length {
        let mut chunk = vec![0u8; (length - buf.len()).min(256 * 1024)];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: Vec<u8> = buf.drain(..length).collect();
    Ok(Some(Request {
        method,
        target,
        accept_sse,
        close,
        body,
    }))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `model` string value of a JSON body (first occurrence; good enough for a mock).
fn model_of(body: &[u8]) -> String {
    let Some(i) = find(body, b"\"model\"") else {
        return String::new();
    };
    let rest = &body[i + 7..];
    let rest = rest.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return String::new();
    };
    let rest = rest.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"\"") else {
        return String::new();
    };
    let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

fn wants_stream(req: &Request) -> bool {
    req.accept_sse || find(&req.body, b"\"stream\":true").is_some() || find(&req.body, b"\"stream\": true").is_some()
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    sock.write_all(&out).await
}

async fn serve(mut sock: TcpStream, config: Rc<Config>, state: Rc<RefCell<State>>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        let path = req.target.split('?').next().unwrap_or("");
        if req.method == "GET" && path.ends_with("/models") {
            respond(&mut sock, "200 OK", "application/json", "", &config.models).await?;
        } else if req.method == "GET" && path == "/stats" {
            let s = state.borrow();
            let by_model: Vec<String> = s
                .by_model
                .iter()
                .map(|(m, n)| format!("\"{m}\":{n}"))
                .collect();
            let body = format!(
                "{{\"total\":{},\"rate_limited\":{},\"open_streams\":{},\"by_model\":{{{}}}}}",
                s.total,
                s.rate_limited,
                s.open_streams,
                by_model.join(",")
            );
            drop(s);
            respond(&mut sock, "200 OK", "application/json", "", body.as_bytes()).await?;
        } else if req.method == "GET" && path == "/control/fail-once" {
            let model = req
                .target
                .split_once("model=")
                .map(|(_, m)| m.split('&').next().unwrap_or("").to_string())
                .unwrap_or_default();
            state.borrow_mut().fail_once.push(model);
            respond(&mut sock, "200 OK", "application/json", "", b"{\"armed\":true}").await?;
        } else if req.method == "POST" && path.ends_with("/chat/completions") {
            let model = model_of(&req.body);
            let fail = {
                let mut s = state.borrow_mut();
                s.total += 1;
                *s.by_model.entry(model.clone()).or_insert(0) += 1;
                match s.fail_once.iter().position(|m| *m == model) {
                    Some(i) => {
                        s.fail_once.remove(i);
                        s.rate_limited += 1;
                        true
                    }
                    None => false,
                }
            };
            if fail {
                respond(
                    &mut sock,
                    "429 Too Many Requests",
                    "application/json",
                    "Retry-After: 3600\r\n",
                    RATE_LIMITED.as_bytes(),
                )
                .await?;
            } else if !wants_stream(&req) {
                respond(&mut sock, "200 OK", "application/json", "", COMPLETION.as_bytes()).await?;
            } else if config.hold.is_zero() {
                respond(&mut sock, "200 OK", "text/event-stream", "", config.sse.as_bytes()).await?;
            } else {
                state.borrow_mut().open_streams += 1;
                let held = hold_stream(&mut sock, &config).await;
                state.borrow_mut().open_streams -= 1;
                held?;
            }
        } else {
            respond(&mut sock, "404 Not Found", "application/json", "", b"{\"error\":{\"code\":404,\"message\":\"not found\"}}").await?;
        }
        if req.close {
            break;
        }
    }
    Ok(())
}

async fn write_chunk(sock: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    sock.write_all(&out).await
}

/// A long stream: first content at once, then one event per tick until `hold` passes.
async fn hold_stream(sock: &mut TcpStream, config: &Config) -> std::io::Result<()> {
    sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await?;
    let mut first = String::from(": OPENROUTER PROCESSING\n\n");
    first.push_str(&sse_event("Hello"));
    write_chunk(sock, first.as_bytes()).await?;
    let end = tokio::time::Instant::now() + config.hold;
    let mut tick = tokio::time::interval(config.tick);
    tick.tick().await;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        write_chunk(sock, sse_event(" tick").as_bytes()).await?;
    }
    write_chunk(sock, b"data: [DONE]\n\n").await?;
    sock.write_all(b"0\r\n\r\n").await
}
