//! Chat Completions SSE → Responses SSE (SPEC §13), as a pure state machine.
//!
//! Feed it each complete upstream `data:` payload; it appends Responses events
//! (`event: X\ndata: {"type": X, "sequence_number": n, …}\n\n`) to a buffer. The gateway
//! drives it only after `stream::peek` has seen the first content event, so a model that
//! fails in its first event never produces a byte here and the request falls over to the
//! next model (§6); after `response.created`, a failure ends the stream with
//! `response.failed`.
//!
//! Output items are written one at a time: reasoning summary, message text, each tool
//! call (grouped by upstream `tool_calls[].index`). Every item ends with
//! `response.output_item.done` carrying the whole item — Codex CLI acts on those — and the
//! stream ends with `response.completed` (or `.incomplete` on `length`) carrying the
//! whole response with upstream's usage.

use serde::Serialize;
use serde_json::{json, Value};

use super::response::{
    call_item, custom_input, message_item, output_text, reasoning_item, response_object, usage,
    Answering, Ending,
};
use super::tools::ToolOrigin;
use crate::domain::outcome::UpstreamError;
use crate::fronts::chat_wire::{
    ChatUsage, Chunk, ChunkTranslator, ToolCallDelta, TranslatingRelay,
};

/// The Responses stream relay.
pub type ResponsesRelay = TranslatingRelay<StreamTranslator>;

/// The item being written.
#[derive(Debug)]
enum Open {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        /// Upstream's `tool_calls[].index`, which groups a call's fragments.
        key: Option<u64>,
        upstream_id: Option<String>,
        name: String,
        arguments: String,
        /// Set once `output_item.added` is written (it needs the name); arguments that
        /// arrive before are held in `arguments` and sent with it.
        origin: Option<ToolOrigin>,
    },
}

/// A delta event on the hot path, serialized without building a `Value`.
#[derive(Serialize)]
struct Delta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<usize>,
    delta: &'a str,
}

#[derive(Debug)]
pub struct StreamTranslator {
    answering: Answering,
    model: String,
    sequence: u64,
    started: bool,
    finished: bool,
    open: Option<Open>,
    /// Finished output items, for `response.completed`.
    done: Vec<Value>,
    calls: usize,
    messages: usize,
    reasonings: usize,
    finish_reason: Option<String>,
    usage: Option<ChatUsage>,
}

impl StreamTranslator {
    pub fn new(answering: Answering, model: impl Into<String>) -> Self {
        StreamTranslator {
            answering,
            model: model.into(),
            sequence: 0,
            started: false,
            finished: false,
            open: None,
            done: Vec::new(),
            calls: 0,
            messages: 0,
            reasonings: 0,
            finish_reason: None,
            usage: None,
        }
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence - 1
    }

    /// One event: `data` gets `type` and the next `sequence_number`.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        if let Value::Object(fields) = &mut data {
            fields.insert("type".into(), Value::String(kind.into()));
            fields.insert("sequence_number".into(), self.next_sequence().into());
        }
        write_event(out, kind, &data);
    }

    fn delta(&mut self, out: &mut Vec<u8>, kind: &'static str, item_id: &str, delta: &str) {
        let (content_index, summary_index) = match kind {
            "response.output_text.delta" => (Some(0), None),
            "response.reasoning_summary_text.delta" => (None, Some(0)),
            _ => (None, None),
        };
        let event = Delta {
            kind,
            sequence_number: self.next_sequence(),
            item_id,
            output_index: self.done.len(),
            content_index,
            summary_index,
            delta,
        };
        write_event(out, kind, &event);
    }

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
                log::debug!("responses: skipping an upstream event that is not a chunk: {e}");
                return;
            }
        };
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            let error = UpstreamError::from_object(&error);
            let code = match error.code {
                Some(429) => "rate_limit_exceeded",
                _ => "server_error",
            };
            let message = if error.message.is_empty() {
                "the upstream model reported an error".to_string()
            } else {
                error.message
            };
            self.fail_with(code, &message, out);
            return;
        }
        self.start(out);
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(delta) = choice.delta {
                if let Some(reasoning) = delta.reasoning_text() {
                    self.reasoning(reasoning, out);
                }
                if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(text, out);
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

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = response_object(
            &self.answering,
            &self.model,
            "in_progress",
            None,
            Vec::new(),
            Value::Null,
        );
        self.event(out, "response.created", json!({ "response": response }));
        self.event(out, "response.in_progress", json!({ "response": response }));
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close_item(out);
            let id = self.answering.ids.reasoning(self.reasonings);
            self.reasonings += 1;
            let output_index = self.done.len();
            self.event(
                out,
                "response.output_item.added",
                json!({"output_index": output_index,
                    "item": {"type": "reasoning", "id": id, "summary": []}}),
            );
            self.event(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
            );
            self.open = Some(Open::Reasoning {
                id,
                text: String::new(),
            });
        }
        let id = match &mut self.open {
            Some(Open::Reasoning { id, text: all }) => {
                all.push_str(text);
                id.clone()
            }
            _ => return,
        };
        self.delta(out, "response.reasoning_summary_text.delta", &id, text);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Message { .. })) {
            self.close_item(out);
            let id = self.answering.ids.message(self.messages);
            self.messages += 1;
            let output_index = self.done.len();
            self.event(
                out,
                "response.output_item.added",
                json!({"output_index": output_index, "item": {"type": "message", "id": id,
                    "status": "in_progress", "role": "assistant", "content": []}}),
            );
            self.event(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": output_index, "content_index": 0,
                    "part": output_text("")}),
            );
            self.open = Some(Open::Message {
                id,
                text: String::new(),
            });
        }
        let id = match &mut self.open {
            Some(Open::Message { id, text: all }) => {
                all.push_str(text);
                id.clone()
            }
            _ => return,
        };
        self.delta(out, "response.output_text.delta", &id, text);
    }

    fn tool_call(&mut self, call: ToolCallDelta<'_>, out: &mut Vec<u8>) {
        let same_call = match &self.open {
            Some(Open::Call {
                key, upstream_id, ..
            }) => match (call.index, &call.id) {
                (Some(i), _) => *key == Some(i),
                // Providers that omit `index` start a new call by sending a new id.
                (None, Some(new_id)) => new_id.is_empty() || Some(new_id) == upstream_id.as_ref(),
                (None, None) => true,
            },
            _ => false,
        };
        if !same_call {
            self.close_item(out);
            self.open = Some(Open::Call {
                key: call.index,
                upstream_id: call.id.clone().filter(|id| !id.is_empty()),
                name: String::new(),
                arguments: String::new(),
                origin: None,
            });
        }
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let arguments = arguments.unwrap_or_default();
        let Some(Open::Call {
            name: open_name,
            arguments: held,
            origin,
            ..
        }) = &mut self.open
        else {
            return;
        };
        if origin.is_none() {
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                *open_name = name;
            }
        }
        held.push_str(&arguments);
        enum Next {
            Start,
            Delta,
            Hold,
        }
        let next = match origin {
            None if !open_name.is_empty() => Next::Start,
            // Custom tool input is JSON-encoded upstream: it is sent whole at the end.
            Some(ToolOrigin::Custom { .. }) | None => Next::Hold,
            Some(_) if arguments.is_empty() => Next::Hold,
            Some(_) => Next::Delta,
        };
        match next {
            Next::Start => self.start_call(out),
            Next::Delta => {
                let id = self.open_call_id();
                self.delta(
                    out,
                    "response.function_call_arguments.delta",
                    &id,
                    &arguments,
                );
            }
            Next::Hold => {}
        }
    }

    /// The item id of the open call.
    fn open_call_id(&self) -> String {
        match &self.open {
            Some(Open::Call {
                origin: Some(origin),
                ..
            }) => self.answering.ids.call(self.calls, origin),
            _ => String::new(),
        }
    }

    fn call_id(&self) -> String {
        let upstream = match &self.open {
            Some(Open::Call { upstream_id, .. }) => upstream_id.as_deref(),
            _ => None,
        };
        self.answering.ids.call_id(upstream, self.calls)
    }

    /// Write the open call's `output_item.added`, then the arguments held so far.
    fn start_call(&mut self, out: &mut Vec<u8>) {
        let Some(Open::Call {
            name,
            arguments,
            origin: slot @ None,
            ..
        }) = &mut self.open
        else {
            return;
        };
        let origin = self.answering.tools.origin(name);
        *slot = Some(origin.clone());
        let held = arguments.clone();
        let id = self.answering.ids.call(self.calls, &origin);
        let item = call_item(&id, &self.call_id(), &origin, "", "in_progress");
        let output_index = self.done.len();
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        if !matches!(origin, ToolOrigin::Custom { .. }) && !held.is_empty() {
            self.delta(out, "response.function_call_arguments.delta", &id, &held);
        }
    }

    fn close_item(&mut self, out: &mut Vec<u8>) {
        if matches!(self.open, Some(Open::Call { origin: None, .. })) {
            // Its name never came: start it anyway so the call is not lost.
            self.start_call(out);
        }
        let output_index = self.done.len();
        let item = match self.open.take() {
            None => return,
            Some(Open::Reasoning { id, text }) => {
                self.event(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                        "text": text}),
                );
                self.event(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": output_index, "summary_index": 0,
                        "part": {"type": "summary_text", "text": text}}),
                );
                reasoning_item(&id, &text)
            }
            Some(Open::Message { id, text }) => {
                self.event(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                        "text": text}),
                );
                self.event(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": output_index, "content_index": 0,
                        "part": output_text(&text)}),
                );
                message_item(&id, &text, "completed")
            }
            Some(open @ Open::Call { .. }) => self.close_call(open, output_index, out),
        };
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
        self.done.push(item);
    }

    fn close_call(&mut self, open: Open, output_index: usize, out: &mut Vec<u8>) -> Value {
        let Open::Call {
            upstream_id,
            arguments,
            origin,
            name,
            ..
        } = open
        else {
            return Value::Null;
        };
        let origin = origin.unwrap_or(ToolOrigin::Function { name });
        let id = self.answering.ids.call(self.calls, &origin);
        let call_id = self
            .answering
            .ids
            .call_id(upstream_id.as_deref(), self.calls);
        self.calls += 1;
        if let ToolOrigin::Custom { .. } = origin {
            let input = custom_input(&arguments);
            if !input.is_empty() {
                self.delta(out, "response.custom_tool_call_input.delta", &id, &input);
            }
            self.event(
                out,
                "response.custom_tool_call_input.done",
                json!({"item_id": id, "output_index": output_index, "input": input}),
            );
        } else {
            self.event(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": output_index, "name": origin.name(),
                    "arguments": arguments}),
            );
        }
        call_item(&id, &call_id, &origin, &arguments, "completed")
    }

    /// Upstream ended: close the open item and the response.
    fn close(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close_item(out);
        let ending = Ending::of(self.finish_reason.as_deref());
        let kind = match ending {
            Ending::Completed => "response.completed",
            Ending::Incomplete(_) => "response.incomplete",
        };
        let response = response_object(
            &self.answering,
            &self.model,
            ending.status(),
            Some(ending),
            std::mem::take(&mut self.done),
            usage(self.usage, self.answering.input_estimate),
        );
        self.event(out, kind, json!({ "response": response }));
        self.finished = true;
    }

    /// End the stream with `response.failed`: the response so far, `status: "failed"`.
    fn fail_with(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        let mut response = response_object(
            &self.answering,
            &self.model,
            "failed",
            None,
            std::mem::take(&mut self.done),
            usage(self.usage, self.answering.input_estimate),
        );
        response["error"] = json!({"code": code, "message": message});
        self.event(out, "response.failed", json!({ "response": response }));
        self.finished = true;
    }
}

fn write_event(out: &mut Vec<u8>, kind: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing these plain values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

impl ChunkTranslator for StreamTranslator {
    fn data(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.translate(payload, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.close(out);
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.fail_with(code, message, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::response::tests::answering;
    use super::*;
    use crate::gateway::stream::Relay;
    use bytes::Bytes;

    fn run(payloads: &[Value], done: bool) -> Vec<(String, Value)> {
        let mut t = StreamTranslator::new(answering(), "m/x:free");
        let mut out = Vec::new();
        for p in payloads {
            t.data(p.to_string().as_bytes(), &mut out);
        }
        if done {
            t.data(b"[DONE]", &mut out);
        }
        parse_events(&out)
    }

    /// (event name, data) pairs; checks the framing, the type and the sequence numbers.
    fn parse_events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).expect("utf-8");
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
        let events: Vec<(String, Value)> = text
            .split_terminator("\n\n")
            .map(|e| {
                let (name, data) = e.split_once('\n').expect("two lines");
                let name = name.strip_prefix("event: ").expect("event line");
                let data = data.strip_prefix("data: ").expect("data line");
                let data: Value = serde_json::from_str(data).expect("json");
                assert_eq!(data["type"], name, "event name matches its type");
                (name.to_string(), data)
            })
            .collect();
        for (n, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], n as u64, "{data}");
        }
        events
    }

    fn names(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn text(s: &str) -> Value {
        json!({"choices": [{"index": 0, "delta": {"content": s}, "finish_reason": null}]})
    }

    fn finish(reason: &str) -> Value {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    }

    fn usage_chunk(p: u64, c: u64) -> Value {
        json!({"choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c}})
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

    fn completed(events: &[(String, Value)]) -> &Value {
        &events.last().expect("events").1["response"]
    }

    #[test]
    fn text_only() {
        let events = run(
            &[
                json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
                text("Hel"),
                text("lo"),
                finish("stop"),
                usage_chunk(30, 2),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let created = &events[0].1["response"];
        assert_eq!(created["id"], "resp_t");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        assert_eq!(
            events[4].1,
            json!({"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_t_0",
                "output_index": 0, "content_index": 0, "delta": "Hel"})
        );
        assert_eq!(events[6].1["text"], "Hello");
        assert_eq!(
            events[8].1["item"],
            json!({"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}]})
        );
        let response = completed(&events);
        assert_eq!(response["status"], "completed");
        assert_eq!(response["output"], json!([events[8].1["item"]]));
        assert_eq!(response["usage"]["input_tokens"], 30);
        assert_eq!(response["usage"]["output_tokens"], 2);
        assert_eq!(response["usage"]["total_tokens"], 32);
    }

    #[test]
    fn reasoning_then_text_then_two_tool_calls() {
        let events = run(
            &[
                json!({"choices": [{"index": 0, "delta": {"reasoning": "Let me "}}]}),
                json!({"choices": [{"index": 0, "delta": {"reasoning_content": "think."}}]}),
                text("Checking."),
                tool(0, Some("call_a"), Some("exec_command"), "{\"cmd\":"),
                tool(0, None, None, "\"ls\"}"),
                tool(1, Some("call_b"), Some("spawn_agent"), "{}"),
                finish("tool_calls"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[6].1["text"], "Let me think.");
        assert_eq!(events[4].1["summary_index"], 0);
        assert_eq!(events[15].1["output_index"], 2);
        assert_eq!(events[15].1["item"]["status"], "in_progress");
        assert_eq!(events[18].1["arguments"], "{\"cmd\":\"ls\"}");
        let output = &completed(&events)["output"];
        assert_eq!(output.as_array().unwrap().len(), 4);
        assert_eq!(
            output[0],
            json!({"type": "reasoning", "id": "rs_t_0",
                "summary": [{"type": "summary_text", "text": "Let me think."}]})
        );
        assert_eq!(
            output[2],
            json!({"type": "function_call", "id": "fc_t_0", "call_id": "call_a",
                "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"})
        );
        assert_eq!(
            output[3],
            json!({"type": "function_call", "id": "fc_t_1", "call_id": "call_b",
                "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}",
                "status": "completed"})
        );
        // The item in output_item.done is the item of the final response.
        assert_eq!(events[19].1["item"], output[2]);
    }

    #[test]
    fn one_tool() {
        let events = run(
            &[
                tool(0, Some("call_1"), Some("exec_command"), ""),
                tool(0, None, None, "{\"cmd\":\"ls\"}"),
                finish("tool_calls"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(
            events[2].1["item"],
            json!({"type": "function_call", "id": "fc_t_0", "call_id": "call_1",
                "name": "exec_command", "arguments": "", "status": "in_progress"})
        );
        assert_eq!(events[4].1["name"], "exec_command");
        assert_eq!(events[5].1["item"]["arguments"], "{\"cmd\":\"ls\"}");
    }

    /// Every `output_item.done` carries the complete item, and the final response is what
    /// the non-streamed translation of the same answer gives.
    #[test]
    fn the_final_response_equals_the_non_streamed_translation() {
        let events = run(
            &[
                json!({"choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]}),
                text("Let me look."),
                tool(0, Some("call_a"), Some("exec_command"), "{\"cmd\":\"ls\"}"),
                tool(
                    1,
                    Some("call_p"),
                    Some("apply_patch"),
                    "{\"input\":\"*** Begin Patch\"}",
                ),
                finish("tool_calls"),
                usage_chunk(40, 9),
            ],
            true,
        );
        let completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "reasoning": "hmm", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}
            ]}}], "usage": {"prompt_tokens": 40, "completion_tokens": 9}});
        let whole = super::super::response::response(
            completion.to_string().as_bytes(),
            &answering(),
            "m/x:free",
        )
        .unwrap();
        let whole: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(completed(&events), &whole);
        let done: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "response.output_item.done")
            .map(|(_, d)| &d["item"])
            .collect();
        assert_eq!(
            done,
            whole["output"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn arguments_split_across_many_chunks_and_a_late_name() {
        let args = r#"{"cmd":"ls -la /tmp","workdir":"/"}"#;
        let mut payloads = vec![tool(0, Some("call_x"), None, "")];
        payloads.extend(
            args.as_bytes()
                .chunks(3)
                .map(|c| tool(0, None, None, std::str::from_utf8(c).unwrap())),
        );
        payloads.insert(2, tool(0, None, Some("exec_command"), ""));
        payloads.push(finish("tool_calls"));
        let events = run(&payloads, true);
        let deltas: String = events
            .iter()
            .filter(|(n, _)| n == "response.function_call_arguments.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, args);
        let output = &completed(&events)["output"];
        assert_eq!(output[0]["name"], "exec_command");
        assert_eq!(output[0]["arguments"], args);
    }

    #[test]
    fn custom_tool_call_input_is_sent_whole() {
        let events = run(
            &[
                tool(
                    0,
                    Some("call_p"),
                    Some("apply_patch"),
                    "{\"input\":\"*** Begin",
                ),
                tool(0, None, None, " Patch\\n\"}"),
                finish("tool_calls"),
            ],
            true,
        );
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["item"]["type"], "custom_tool_call");
        assert_eq!(events[3].1["delta"], "*** Begin Patch\n");
        assert_eq!(
            events[5].1["item"],
            json!({"type": "custom_tool_call", "id": "ctc_t_0", "call_id": "call_p",
                "name": "apply_patch", "input": "*** Begin Patch\n", "status": "completed"})
        );
    }

    #[test]
    fn length_ends_incomplete() {
        let events = run(&[text("cut"), finish("length")], true);
        assert_eq!(events.last().unwrap().0, "response.incomplete");
        let response = completed(&events);
        assert_eq!(response["status"], "incomplete");
        assert_eq!(
            response["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        // No usage chunk: the estimate stands in.
        assert_eq!(response["usage"]["input_tokens"], 77);
    }

    #[test]
    fn error_mid_stream_is_response_failed() {
        let events = run(
            &[
                text("partial"),
                json!({"error": {"code": 502, "message": "provider crashed"}}),
                text("ignored"),
            ],
            true,
        );
        assert_eq!(events.last().unwrap().0, "response.failed");
        let response = completed(&events);
        assert_eq!(response["status"], "failed");
        assert_eq!(
            response["error"],
            json!({"code": "server_error", "message": "provider crashed"})
        );
        assert!(!names(&events).contains(&"response.completed"));
    }

    #[test]
    fn relay_reassembles_split_events_and_closes_streams_without_done() {
        let upstream = format!(
            ": OPENROUTER PROCESSING\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            text("a"),
            text("b"),
            finish("stop")
        );
        let whole = ResponsesRelay::new(StreamTranslator::new(answering(), "m"))
            .chunk(Bytes::from(upstream.clone()));
        for split in [1, 7, 30, upstream.len() - 3] {
            let mut relay = ResponsesRelay::new(StreamTranslator::new(answering(), "m"));
            let mut out = relay
                .chunk(Bytes::copy_from_slice(&upstream.as_bytes()[..split]))
                .to_vec();
            out.extend_from_slice(
                &relay.chunk(Bytes::copy_from_slice(&upstream.as_bytes()[split..])),
            );
            out.extend_from_slice(&relay.end(true));
            assert_eq!(out, whole.to_vec(), "split at {split}");
        }
        assert_eq!(
            parse_events(&whole).last().map(|(n, _)| n.as_str()),
            Some("response.completed")
        );

        let mut relay = ResponsesRelay::new(StreamTranslator::new(answering(), "m"));
        let first = relay.chunk(Bytes::from(format!("data: {}\n\n", text("a"))));
        let end = relay.end(false);
        let events = parse_events(&[first.to_vec(), end.to_vec()].concat());
        assert_eq!(events.last().unwrap().0, "response.completed");

        let mut relay = ResponsesRelay::new(StreamTranslator::new(answering(), "m"));
        let first = relay.chunk(Bytes::from(format!("data: {}\n\n", text("a"))));
        let broken = relay.gateway_error("upstream_disconnected", "the upstream connection broke");
        let events = parse_events(&[first.to_vec(), broken.to_vec()].concat());
        let response = completed(&events);
        assert_eq!(response["error"]["code"], "upstream_disconnected");
        assert!(relay.end(true).is_empty(), "nothing after the failure");
    }
}
