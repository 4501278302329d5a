//! Integration-test support: a scripted mock upstream (`mock`), a minimal
//! HTTP/1.1 client (`client`) and a helper that boots the real gateway
//! binary (`gateway`). Everything listens on 127.0.0.1 with free ports, so
//! tests run in parallel, and every wait is bounded.
//!
//! Each test file includes this as `mod support;` and uses a subset of it,
//! hence the module-wide `allow(dead_code)`.
//!
//! The helpers spawn their servers on the test's tokio runtime and never
//! block it, so plain `#[tokio::test]` works; a test that does blocking work
//! of its own should use `#[tokio::test(flavor = "multi_thread")]`.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod events;
pub mod gateway;
pub mod mock;
pub mod scenario;

pub use client::{
    get, open_stream, post_json, request, sse_content, sse_data, try_request, ChunkRead, Collected,
    Response, StreamEnd, StreamResponse, DEFAULT_TIMEOUT,
};
pub use gateway::{closed_port, free_port, wait_until, Gateway, GatewayBuilder};
pub use mock::{Behaviour, MockUpstream, RecordedRequest, SseEnd, SseStep};

/// HTTP/1.1 framing shared by the mock server and the client: a buffered
/// connection that reads heads, fixed-length bodies and chunked bodies.
///
/// Every `Conn` read that waits on the socket is cancel-safe: bytes are only
/// removed from the buffer once a complete unit (head, chunk) is there, so a
/// read raced against a timer or wrapped in `tokio::time::timeout` loses
/// nothing when it is cancelled.
pub mod wire {
    use std::io;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Largest accepted head (start line + headers).
    const MAX_HEAD: usize = 64 * 1024;
    /// Longest accepted chunk-size line.
    const MAX_CHUNK_LINE: usize = 1024;
    /// Largest accepted chunk.
    const MAX_CHUNK: usize = 1 << 30;

    /// A start line plus headers (names lowercased, values trimmed).
    #[derive(Debug, Clone)]
    pub struct Head {
        pub start_line: String,
        pub headers: Vec<(String, String)>,
    }

    impl Head {
        pub fn header(&self, name: &str) -> Option<&str> {
            header(&self.headers, name)
        }
    }

    /// A TCP stream with a read buffer.
    pub struct Conn {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    impl Conn {
        pub fn new(stream: TcpStream) -> Self {
            let _ = stream.set_nodelay(true);
            Self {
                stream,
                buf: Vec::new(),
            }
        }

        pub fn stream(&self) -> &TcpStream {
            &self.stream
        }

        /// Reads once from the socket into the buffer; `Ok(0)` means EOF.
        pub async fn fill(&mut self) -> io::Result<usize> {
            let mut tmp = [0u8; 16 * 1024];
            let n = self.stream.read(&mut tmp).await?;
            self.buf.extend_from_slice(&tmp[..n]);
            Ok(n)
        }

        pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        }

        /// Reads the next head. `Ok(None)` on a clean EOF before any byte of
        /// it; empty lines before the start line are skipped.
        pub async fn read_head(&mut self) -> io::Result<Option<Head>> {
            loop {
                while self.buf.starts_with(b"\r\n") {
                    self.buf.drain(..2);
                }
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                    return parse_head(&raw[..end]).map(Some);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(invalid("head larger than 64 KiB"));
                }
                if self.fill().await? == 0 {
                    return match self.buf.is_empty() {
                        true => Ok(None),
                        false => Err(eof("connection closed inside a head")),
                    };
                }
            }
        }

        /// Reads exactly `n` body bytes.
        pub async fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
            while self.buf.len() < n {
                if self.fill().await? == 0 {
                    return Err(eof("connection closed inside a body"));
                }
            }
            Ok(self.buf.drain(..n).collect())
        }

        /// Takes up to `max` bytes: what is buffered, else one socket read.
        /// `Ok(empty)` means EOF.
        pub async fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
            if self.buf.is_empty() {
                self.fill().await?;
            }
            let n = self.buf.len().min(max);
            Ok(self.buf.drain(..n).collect())
        }

        /// Reads until EOF.
        pub async fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
            while self.fill().await? > 0 {}
            Ok(std::mem::take(&mut self.buf))
        }

        /// Reads the next chunk of a chunked body: `Ok(Some(data))`, or
        /// `Ok(None)` after the last chunk and its trailers.
        pub async fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
            loop {
                match parse_chunk(&self.buf) {
                    ChunkParse::Data {
                        start,
                        len,
                        consumed,
                    } => {
                        let data = self.buf[start..start + len].to_vec();
                        self.buf.drain(..consumed);
                        return Ok(Some(data));
                    }
                    ChunkParse::Last { consumed } => {
                        self.buf.drain(..consumed);
                        return Ok(None);
                    }
                    ChunkParse::Invalid(msg) => return Err(invalid(&msg)),
                    ChunkParse::Incomplete => {
                        if self.fill().await? == 0 {
                            return Err(eof("connection closed inside a chunked body"));
                        }
                    }
                }
            }
        }

        /// Reads a whole chunked body.
        pub async fn read_chunked_body(&mut self) -> io::Result<Vec<u8>> {
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk().await? {
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
    }

    /// Result of looking for one chunk at the start of a buffer.
    #[derive(Debug, PartialEq, Eq)]
    pub enum ChunkParse {
        Incomplete,
        Data {
            start: usize,
            len: usize,
            consumed: usize,
        },
        Last {
            consumed: usize,
        },
        Invalid(String),
    }

    pub fn parse_chunk(buf: &[u8]) -> ChunkParse {
        let Some(line_end) = find(buf, b"\r\n") else {
            return match buf.len() > MAX_CHUNK_LINE {
                true => ChunkParse::Invalid("chunk-size line too long".into()),
                false => ChunkParse::Incomplete,
            };
        };
        let len = match parse_chunk_size(&buf[..line_end]) {
            Ok(len) => len,
            Err(msg) => return ChunkParse::Invalid(msg),
        };
        let start = line_end + 2;
        if len == 0 {
            return parse_trailers(buf, start);
        }
        let end = start + len;
        if buf.len() < end + 2 {
            return ChunkParse::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return ChunkParse::Invalid("chunk data not followed by CRLF".into());
        }
        ChunkParse::Data {
            start,
            len,
            consumed: end + 2,
        }
    }

    fn parse_trailers(buf: &[u8], start: usize) -> ChunkParse {
        let rest = &buf[start..];
        if rest.starts_with(b"\r\n") {
            return ChunkParse::Last {
                consumed: start + 2,
            };
        }
        match find(rest, b"\r\n\r\n") {
            Some(pos) => ChunkParse::Last {
                consumed: start + pos + 4,
            },
            None if rest.len() > MAX_HEAD => ChunkParse::Invalid("trailers too large".into()),
            None => ChunkParse::Incomplete,
        }
    }

    fn parse_chunk_size(line: &[u8]) -> Result<usize, String> {
        let text = String::from_utf8_lossy(line);
        let digits = text.split(';').next().unwrap_or("").trim();
        match usize::from_str_radix(digits, 16) {
            Ok(len) if len <= MAX_CHUNK => Ok(len),
            _ => Err(format!("bad chunk-size line {text:?}")),
        }
    }

    /// Parses a head without its final empty line.
    pub fn parse_head(raw: &[u8]) -> io::Result<Head> {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n");
        let start_line = lines.next().unwrap_or("").to_string();
        let headers = lines.map(parse_header_line).collect::<io::Result<_>>()?;
        Ok(Head {
            start_line,
            headers,
        })
    }

    fn parse_header_line(line: &str) -> io::Result<(String, String)> {
        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
            }
            _ => Err(invalid(&format!("bad header line {line:?}"))),
        }
    }

    /// Case-insensitive header lookup (first match).
    pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_chunked(headers: &[(String, String)]) -> bool {
        header(headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// `Ok(None)` when there is no Content-Length header.
    pub fn content_length(headers: &[(String, String)]) -> io::Result<Option<usize>> {
        match header(headers, "content-length") {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid(&format!("bad content-length {v:?}"))),
        }
    }

    /// One chunk of a chunked body (empty data would end the body: callers
    /// skip it).
    pub fn encode_chunk(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    pub fn invalid(msg: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
    }

    pub fn eof(msg: &str) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
    }
}
