//! Chat Completions SSE → Anthropic Messages SSE, as a pure state machine.
//!
//! Feed it each complete upstream `data:` payload; it appends Anthropic events
//! (`event: X\ndata: {...}\n\n`) to a buffer. The gateway's forward loop drives it through
//! [`AnthropicRelay`] only after `stream::peek` has seen the first content event, so a
//! model that fails in its first event never produces a byte here (SPEC §6).

use serde::Serialize;
use serde_json::{json, Value};

use super::errors::error_type;
use super::response::{stop_reason, tool_id, Usage};
use crate::domain::outcome::UpstreamError;
use crate::fronts::chat_wire::{
    ChatUsage, Chunk, ChunkTranslator, ToolCallDelta, TranslatingRelay,
};

/// The Anthropic stream relay: a [`StreamTranslator`] driven by the shared chat relay.
pub type AnthropicRelay = TranslatingRelay<StreamTranslator>;

// ---- Upstream chunks -------------------------------------------------------------------

// ---- Anthropic events on the hot path ----------------------------------------------------

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: Delta<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

/// The content block currently open.
#[derive(Debug)]
enum Open {
    Text {
        index: usize,
    },
    Tool {
        /// Upstream's `tool_calls[].index`, which groups a call's fragments.
        key: Option<u64>,
        id: String,
        name: String,
        /// `None` until `content_block_start` is written (it needs the tool's name);
        /// arguments arriving before that are held in `pending`.
        index: Option<usize>,
        pending: String,
    },
}

#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    model: String,
    input_estimate: u64,
    started: bool,
    finished: bool,
    next_index: usize,
    open: Option<Open>,
    tools_seen: usize,
    finish_reason: Option<String>,
    usage: Option<ChatUsage>,
}

fn event(out: &mut Vec<u8>, name: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// An `event: error` in the Anthropic shape.
pub fn error_event(out: &mut Vec<u8>, kind: &str, message: &str) {
    event(
        out,
        "error",
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    );
}

impl StreamTranslator {
    /// `input_estimate`: the local prompt estimate `message_start` carries.
    pub fn new(id: impl Into<String>, model: impl Into<String>, input_estimate: u64) -> Self {
        StreamTranslator {
            id: id.into(),
            model: model.into(),
            input_estimate,
            started: false,
            finished: false,
            next_index: 0,
            open: None,
            tools_seen: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// Translate one complete SSE data payload.
    fn translate(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if payload.trim_ascii() == b"[DONE]" {
            self.close(out);
            return;
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(payload) {
            Ok(chunk) => chunk,
            Err(e) => {
                log::debug!("anthropic: skipping an upstream event that is not a chunk: {e}");
                return;
            }
        };
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            let (kind, message) = upstream_error(&error);
            self.fail_with(kind, &message, out);
            return;
        }
        self.start(out);
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.text(&text, out);
                }
                for call in delta.tool_calls {
                    self.tool_call(call, out);
                }
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    /// Upstream ended (after `[DONE]`, or cleanly without it): close the message.
    fn close(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close_block(out);
        let stop = stop_reason(self.finish_reason.as_deref(), self.tools_seen > 0);
        event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": Usage::from_chat(self.usage, self.input_estimate),
            }),
        );
        event(out, "message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }

    /// End the stream with an `event: error` (an upstream error event, a stall, a broken
    /// connection). Open blocks stay unclosed, as Anthropic's own API does.
    fn fail_with(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        error_event(out, kind, message);
        self.finished = true;
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        event(
            out,
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": Usage::new(self.input_estimate, 0),
                }
            }),
        );
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Text { index }) => index,
            _ => {
                self.close_block(out);
                let index = self.take_index();
                event(
                    out,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "text", "text": ""}}),
                );
                self.open = Some(Open::Text { index });
                index
            }
        };
        event(
            out,
            "content_block_delta",
            &BlockDelta {
                kind: "content_block_delta",
                index,
                delta: Delta::TextDelta { text },
            },
        );
    }

    fn tool_call(&mut self, call: ToolCallDelta<'_>, out: &mut Vec<u8>) {
        let same_call = match &self.open {
            Some(Open::Tool { key, id, .. }) => match (call.index, &call.id) {
                (Some(i), _) => *key == Some(i),
                // Providers that omit `index` start a new call by sending a new id.
                (None, Some(new_id)) => new_id.is_empty() || new_id == id,
                (None, None) => true,
            },
            _ => false,
        };
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        if !same_call {
            self.close_block(out);
            let id = tool_id(call.id.as_deref(), &self.id, self.tools_seen);
            self.tools_seen += 1;
            self.open = Some(Open::Tool {
                key: call.index,
                id,
                name: String::new(),
                index: None,
                pending: String::new(),
            });
        }
        if let Some(Open::Tool {
            name: open_name,
            index: None,
            ..
        }) = &mut self.open
        {
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                *open_name = name;
            }
        }
        let arguments = arguments.unwrap_or_default();
        match &mut self.open {
            Some(Open::Tool {
                index: Some(index), ..
            }) => {
                let index = *index;
                self.json_delta(index, &arguments, out);
            }
            Some(Open::Tool { name, pending, .. }) => {
                pending.push_str(&arguments);
                if !name.is_empty() {
                    self.start_tool_block(out);
                }
            }
            _ => {}
        }
    }

    /// Write the open tool call's `content_block_start`, then the arguments held so far.
    fn start_tool_block(&mut self, out: &mut Vec<u8>) {
        let index = self.next_index;
        let Some(Open::Tool {
            id,
            name,
            index: slot @ None,
            pending,
            ..
        }) = &mut self.open
        else {
            return;
        };
        *slot = Some(index);
        let pending = std::mem::take(pending);
        event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        );
        self.next_index += 1;
        self.json_delta(index, &pending, out);
    }

    fn json_delta(&self, index: usize, partial_json: &str, out: &mut Vec<u8>) {
        if partial_json.is_empty() {
            return;
        }
        event(
            out,
            "content_block_delta",
            &BlockDelta {
                kind: "content_block_delta",
                index,
                delta: Delta::InputJsonDelta { partial_json },
            },
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if matches!(self.open, Some(Open::Tool { index: None, .. })) {
            // Its name never came: start it anyway so the call is not lost.
            self.start_tool_block(out);
        }
        let index = match self.open.take() {
            None => return,
            Some(Open::Text { index }) => index,
            Some(Open::Tool { index, .. }) => index.unwrap_or_default(),
        };
        event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    fn take_index(&mut self) -> usize {
        self.next_index += 1;
        self.next_index - 1
    }
}

impl ChunkTranslator for StreamTranslator {
    fn data(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.translate(payload, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.close(out);
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        // Anthropic's error events carry a type, not a code: the gateway's code goes into
        // the message, where a user reporting it can quote it.
        if code == "upstream_error" {
            self.fail_with("api_error", message, out);
        } else {
            self.fail_with("api_error", &format!("{message} ({code})"), out);
        }
    }
}

/// The Anthropic error type and message of an upstream in-stream `error` object.
fn upstream_error(error: &Value) -> (&'static str, String) {
    let error = UpstreamError::from_object(error);
    let message = if error.message.is_empty() {
        "the upstream model reported an error".to_string()
    } else {
        error.message
    };
    (error.code.map_or("api_error", error_type), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Run payloads through a translator; return (event name, data) pairs.
    use crate::fronts::chat_wire::ChunkTranslator;

    fn run(payloads: &[Value], done: bool) -> Vec<(String, Value)> {
        let mut t = StreamTranslator::new("msg_t", "m/x:free", 42);
        let mut out = Vec::new();
        for p in payloads {
            t.data(p.to_string().as_bytes(), &mut out);
        }
        if done {
            t.data(b"[DONE]", &mut out);
        }
        parse_events(&out)
    }

    fn parse_events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).expect("utf-8");
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|e| {
                let (name, data) = e.split_once('\n').expect("two lines");
                let name = name.strip_prefix("event: ").expect("event line");
                let data = data.strip_prefix("data: ").expect("data line");
                let data: Value = serde_json::from_str(data).expect("json");
                assert_eq!(data["type"], name, "event name matches its type");
                (name.to_string(), data)
            })
            .collect()
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn text(s: &str) -> Value {
        json!({"choices": [{"index": 0, "delta": {"content": s}, "finish_reason": null}]})
    }

    fn role() -> Value {
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    }

    fn finish(reason: &str) -> Value {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    }

    fn usage(p: u64, c: u64) -> Value {
        json!({"choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
    }

    fn tool(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
        let mut call = json!({"index": index, "type": "function", "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = json!(id);
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    }

    #[test]
    fn text_only() {
        let events = run(
            &[
                role(),
                text("Hel"),
                text("lo"),
                finish("stop"),
                usage(30, 2),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &events[0].1["message"];
        assert_eq!(start["id"], "msg_t");
        assert_eq!(start["model"], "m/x:free");
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["usage"]["input_tokens"], 42);
        assert_eq!(
            events[1].1,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        assert_eq!(
            events[2].1,
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
        );
        assert_eq!(events[3].1["delta"]["text"], "lo");
        assert_eq!(
            events[4].1,
            json!({"type": "content_block_stop", "index": 0})
        );
        assert_eq!(
            events[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"input_tokens": 30, "output_tokens": 2,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
        );
        assert_eq!(events[6].1, json!({"type": "message_stop"}));
    }

    #[test]
    fn one_tool() {
        let events = run(
            &[
                tool(0, Some("call_1"), Some("Read"), ""),
                tool(0, None, None, "{\"path\":"),
                tool(0, None, None, "\"a.txt\"}"),
                finish("tool_calls"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            events[1].1,
            json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}})
        );
        assert_eq!(
            events[2].1,
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "{\"path\":"}})
        );
        assert_eq!(events[3].1["delta"]["partial_json"], "\"a.txt\"}");
        assert_eq!(events[5].1["delta"]["stop_reason"], "tool_use");
        // No usage chunk: the estimate stands in.
        assert_eq!(events[5].1["usage"]["input_tokens"], 42);
    }

    #[test]
    fn text_then_two_tools() {
        let events = run(
            &[
                role(),
                text("Checking."),
                tool(0, Some("call_a"), Some("ls"), "{}"),
                tool(1, Some("call_b"), Some("cat"), "{\"f\":"),
                tool(1, None, None, "1}"),
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 9}}),
            ],
            true,
        );
        let summary: Vec<(String, Value, Value)> = events
            .iter()
            .map(|(n, d)| (n.clone(), d["index"].clone(), d["delta"].clone()))
            .collect();
        let expected = vec![
            ("message_start", Value::Null, Value::Null),
            ("content_block_start", json!(0), Value::Null),
            (
                "content_block_delta",
                json!(0),
                json!({"type": "text_delta", "text": "Checking."}),
            ),
            ("content_block_stop", json!(0), Value::Null),
            ("content_block_start", json!(1), Value::Null),
            (
                "content_block_delta",
                json!(1),
                json!({"type": "input_json_delta", "partial_json": "{}"}),
            ),
            ("content_block_stop", json!(1), Value::Null),
            ("content_block_start", json!(2), Value::Null),
            (
                "content_block_delta",
                json!(2),
                json!({"type": "input_json_delta", "partial_json": "{\"f\":"}),
            ),
            (
                "content_block_delta",
                json!(2),
                json!({"type": "input_json_delta", "partial_json": "1}"}),
            ),
            ("content_block_stop", json!(2), Value::Null),
            (
                "message_delta",
                Value::Null,
                json!({"stop_reason": "tool_use", "stop_sequence": null}),
            ),
            ("message_stop", Value::Null, Value::Null),
        ];
        let expected: Vec<(String, Value, Value)> = expected
            .into_iter()
            .map(|(n, i, d)| (n.to_string(), i, d))
            .collect();
        assert_eq!(summary, expected);
        assert_eq!(events[4].1["content_block"]["name"], "ls");
        assert_eq!(events[7].1["content_block"]["id"], "call_b");
        assert_eq!(events[11].1["usage"]["output_tokens"], 9);
    }

    #[test]
    fn tool_arguments_split_across_many_chunks() {
        let args = r#"{"command":"ls -la /tmp","description":"List files"}"#;
        let mut payloads = vec![tool(0, Some("call_x"), Some("Bash"), "")];
        payloads.extend(
            args.as_bytes()
                .chunks(3)
                .map(|c| tool(0, None, None, std::str::from_utf8(c).unwrap())),
        );
        payloads.push(finish("tool_calls"));
        let events = run(&payloads, true);
        let deltas: Vec<&str> = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(deltas.len(), args.len().div_ceil(3));
        assert_eq!(deltas.concat(), args);
        assert_eq!(
            names(&events)
                .into_iter()
                .filter(|n| *n != "content_block_delta")
                .collect::<Vec<_>>(),
            [
                "message_start",
                "content_block_start",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(events
            .iter()
            .filter(|(_, d)| d.get("index").is_some())
            .all(|(_, d)| d["index"] == 0));
    }

    #[test]
    fn tool_name_arriving_late_is_held_until_known() {
        let events = run(
            &[
                tool(0, Some("call_1"), None, "{\"a\""),
                tool(0, None, Some("Grep"), ":1}"),
                finish("tool_calls"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[1].1["content_block"]["name"], "Grep");
        assert_eq!(events[2].1["delta"]["partial_json"], "{\"a\":1}");
    }

    #[test]
    fn error_mid_stream() {
        let events = run(
            &[
                text("partial"),
                json!({"error": {"code": 502, "message": "provider crashed"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}),
                text("ignored"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        assert_eq!(
            events[3].1,
            json!({"type": "error", "error": {"type": "api_error", "message": "provider crashed"}})
        );
    }

    #[test]
    fn error_first_is_only_an_error_event() {
        let events = run(
            &[json!({"error": {"code": 429, "message": "slow down"}})],
            false,
        );
        assert_eq!(names(&events), ["error"]);
        assert_eq!(events[0].1["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn relay_reassembles_events_split_across_chunks() {
        use crate::gateway::stream::Relay;
        let upstream = format!(
            ": OPENROUTER PROCESSING\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            text("a"),
            text("b"),
            finish("stop")
        );
        let whole = {
            let mut relay = AnthropicRelay::new(StreamTranslator::new("msg_r", "m", 1));
            relay.chunk(Bytes::from(upstream.clone()))
        };
        for split in [1, 7, 30, upstream.len() - 3] {
            let mut relay = AnthropicRelay::new(StreamTranslator::new("msg_r", "m", 1));
            let mut out = relay
                .chunk(Bytes::copy_from_slice(&upstream.as_bytes()[..split]))
                .to_vec();
            out.extend_from_slice(
                &relay.chunk(Bytes::copy_from_slice(&upstream.as_bytes()[split..])),
            );
            out.extend_from_slice(&relay.end(true));
            assert_eq!(out, whole.to_vec(), "split at {split}");
        }
        let events = parse_events(&whole);
        assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("message_stop"));
    }

    #[test]
    fn relay_closes_a_stream_that_ends_without_done_or_breaks() {
        use crate::gateway::stream::Relay;
        let mut relay = AnthropicRelay::new(StreamTranslator::new("msg_r", "m", 1));
        let first = relay.chunk(Bytes::from(format!("data: {}\n\n", text("a"))));
        let end = relay.end(false);
        let events = parse_events(&[first.to_vec(), end.to_vec()].concat());
        assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("message_stop"));

        let mut relay = AnthropicRelay::new(StreamTranslator::new("msg_r", "m", 1));
        relay.chunk(Bytes::from(format!("data: {}\n\n", text("a"))));
        let broken = relay.gateway_error("upstream_disconnected", "the upstream connection broke");
        let events = parse_events(&broken);
        assert_eq!(names(&events), ["error"]);
        assert!(events[0].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream_disconnected"));
        assert!(relay.end(true).is_empty(), "nothing after the error");
    }
}
