//! An incremental Server-Sent Events scanner.
//!
//! It reads upstream chunks without changing them: the gateway forwards the very bytes it
//! received and uses the scanner only to learn what those bytes contained (comments,
//! content, an error event, `[DONE]`). Events may be split anywhere across chunks; only
//! the unfinished tail of the current event is kept between calls.

use crate::domain::outcome::UpstreamError;

/// What one complete event was.
#[derive(Debug, Clone, PartialEq)]
pub enum SseEvent {
    /// Only comment lines (`: OPENROUTER PROCESSING`) or fields other than `data`.
    NoData,
    /// `data: [DONE]`.
    Done,
    /// A data event whose JSON carries a top-level `error` object.
    Error(UpstreamError),
    /// Any other data event: content-bearing.
    Content,
}

#[derive(Debug, Default)]
pub struct SseScanner {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// `data` payload of the current event so far (lines joined by `\n`).
    data: Vec<u8>,
    has_data: bool,
    /// The previous chunk ended in `\r`; a leading `\n` now belongs to that line break.
    after_cr: bool,
}

impl SseScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scan one chunk; `on_event` is called for every event completed inside it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        self.feed_with_data(chunk, |event, _| on_event(event));
    }

    /// Like [`SseScanner::feed`], also handing out each event's `data` payload (lines
    /// joined by `\n`; empty for events without data) — for fronts that translate events.
    pub fn feed_with_data(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent, &[u8])) {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line_part, after) = rest.split_at(pos);
            let is_cr = after[0] == b'\r';
            rest = &after[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.end_line(line_part, &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(line_part);
                self.end_line(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn end_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent, &[u8])) {
        if line.is_empty() {
            // A blank line dispatches the event.
            if self.has_data {
                on_event(classify_data(&self.data), &self.data);
            } else {
                on_event(SseEvent::NoData, b"");
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }
}

/// Classify a data payload. JSON is parsed only when the payload mentions `"error"`, so
/// ordinary content chunks cost a substring search.
fn classify_data(data: &[u8]) -> SseEvent {
    if data.trim_ascii() == b"[DONE]" {
        return SseEvent::Done;
    }
    if !contains(data, b"\"error\"") {
        return SseEvent::Content;
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(doc) => match UpstreamError::from_document(&doc) {
            Some(error) => SseEvent::Error(error),
            None => SseEvent::Content,
        },
        Err(_) => SseEvent::Content,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut scanner = SseScanner::new();
        let mut events = vec![];
        for chunk in chunks {
            scanner.feed(chunk, |e| events.push(e));
        }
        events
    }

    const STREAM: &str = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\\\"error\\\"\"}}]}\r\n\r\n",
        "event: message\rdata: {\"x\":\r\ndata: 1}\r\r",
        "data: {\"error\":{\"code\":429,\"message\":\"busy\"},\"choices\":[{\"finish_reason\":\"error\"}]}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent::NoData,
            SseEvent::Content,
            SseEvent::Content,
            SseEvent::Content,
            SseEvent::Error(UpstreamError {
                code: Some(429),
                message: "busy".into(),
                metadata: None,
                object: serde_json::json!({"code": 429, "message": "busy"}),
            }),
            SseEvent::Done,
        ]
    }

    #[test]
    fn whole_stream() {
        assert_eq!(scan_all(&[STREAM.as_bytes()]), expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                scan_all(&[&bytes[..i], &bytes[i..]]),
                expected(),
                "split at {i}"
            );
        }
    }

    /// Property: any random chunking yields the same event sequence as the whole input.
    #[test]
    fn random_chunkings_give_the_same_events() {
        let bytes = STREAM.repeat(3).into_bytes();
        let whole = scan_all(&[&bytes]);
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let mut chunks: Vec<&[u8]> = vec![];
            let mut at = 0;
            while at < bytes.len() {
                let len = 1 + (next() % 40) as usize;
                let end = (at + len).min(bytes.len());
                chunks.push(&bytes[at..end]);
                at = end;
            }
            assert_eq!(scan_all(&chunks), whole);
        }
    }

    #[test]
    fn long_event_and_error_codes() {
        let long = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(200_000)
        );
        assert_eq!(scan_all(&[long.as_bytes()]), vec![SseEvent::Content]);
        let err = b"data: {\"error\":{\"code\":\"502\",\"message\":\"m\"}}\n\n";
        match &scan_all(&[err])[0] {
            SseEvent::Error(e) => assert_eq!(e.code, Some(502)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_payloads_are_handed_out_joined() {
        let mut scanner = SseScanner::new();
        let mut seen = vec![];
        for chunk in [
            &b": c\n\ndata: {\"a\":"[..],
            b"\r\ndata: 1}\n\ndata: [DONE]\n\n",
        ] {
            scanner.feed_with_data(chunk, |e, d| seen.push((e, d.to_vec())));
        }
        assert_eq!(
            seen,
            vec![
                (SseEvent::NoData, vec![]),
                (SseEvent::Content, b"{\"a\":\n1}".to_vec()),
                (SseEvent::Done, b"[DONE]".to_vec()),
            ]
        );
    }

    #[test]
    fn unfinished_event_is_not_reported() {
        assert_eq!(scan_all(&[b"data: {\"a\":1}\n"]), vec![]);
    }
}
