//! A chat request body, parsed once.
//!
//! The body is validated and the few fields routing needs are read in a single pass; the
//! rest stays as the client's original bytes. Each attempt's upstream body is the original
//! with only the `model` value (and, when a candidate cannot give the requested budget,
//! the `max_tokens` value) spliced in — everything else is forwarded byte for byte.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The request features that decide which models can serve it (SPEC §4 step 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub tools: bool,
    pub tool_choice: bool,
    pub json_schema: bool,
    pub json_object: bool,
    pub seed: bool,
    pub stop: bool,
    pub reasoning: bool,
}

/// Why a body was refused before routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    InvalidJson(String),
    InvalidRequest(String),
}

impl RequestError {
    /// A body serde could not read: broken JSON, or JSON of the wrong shape (SPEC §4.1).
    pub fn from_json(e: serde_json::Error) -> Self {
        if e.is_data() {
            RequestError::InvalidRequest(format!("request body has an unexpected shape: {e}"))
        } else {
            RequestError::InvalidJson(format!("request body is not valid JSON: {e}"))
        }
    }
}

/// Estimated tokens of a body of `bytes` bytes (SPEC §11: bytes / 4). Context fit, the
/// Anthropic `count_tokens` answer and usage estimates all use this one figure.
pub fn estimate_tokens(bytes: usize) -> u64 {
    bytes as u64 / 4
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidJson(m) | RequestError::InvalidRequest(m) => f.write_str(m),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    body: Bytes,
    /// Byte range of the `model` value, when present.
    model_span: Option<Range<usize>>,
    /// Byte ranges of `max_tokens` / `max_completion_tokens` values, when present.
    budget_spans: Vec<Range<usize>>,
    /// Where a `"model":…,` member is inserted when the client sent none.
    insert_at: usize,
    pub model: Option<String>,
    pub stream: bool,
    pub needs: Needs,
    /// `max_tokens` or `max_completion_tokens`, when the client set one.
    pub requested_budget: Option<u64>,
}

#[derive(Deserialize)]
struct View<'a> {
    // `null` must still yield its span, so it is replaced in place rather than duplicated.
    #[serde(borrow, default, deserialize_with = "raw_even_if_null")]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    response_format: Option<ResponseFormat<'a>>,
    #[serde(borrow)]
    seed: Option<&'a RawValue>,
    #[serde(borrow)]
    stop: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    max_completion_tokens: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

fn raw_even_if_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn is_present(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|r| r.get() != "null")
}

/// The byte range that `part` (a slice borrowed from `whole`) occupies inside `whole`.
fn span_in(whole: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

fn budget_value(raw: Option<&RawValue>, field: &str) -> Result<Option<u64>, RequestError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
            RequestError::InvalidRequest(format!("`{field}` must be a non-negative integer"))
        }),
    }
}

impl ChatRequest {
    pub fn parse(body: Bytes) -> Result<ChatRequest, RequestError> {
        let view: View<'_> = serde_json::from_slice(&body).map_err(RequestError::from_json)?;
        if !view.messages.is_some_and(|m| m.get().starts_with('[')) {
            return Err(RequestError::InvalidRequest(
                "`messages` must be an array".into(),
            ));
        }
        let model = match view.model.map(RawValue::get) {
            None | Some("null") => None,
            Some(raw) => Some(
                serde_json::from_str::<String>(raw)
                    .map_err(|_| RequestError::InvalidRequest("`model` must be a string".into()))?,
            ),
        };
        let tool_choice = view.tool_choice.map(RawValue::get);
        let format = view
            .response_format
            .as_ref()
            .and_then(|f| f.kind.as_deref());
        let needs = Needs {
            tools: view.tools.is_some_and(|t| {
                let inner = t.get().strip_prefix('[').unwrap_or("]");
                !inner.trim_start().starts_with(']')
            }),
            tool_choice: !matches!(tool_choice, None | Some("null" | "\"auto\"" | "\"none\"")),
            json_schema: format == Some("json_schema"),
            json_object: format == Some("json_object"),
            seed: is_present(view.seed),
            stop: is_present(view.stop),
            reasoning: is_present(view.reasoning) || is_present(view.reasoning_effort),
        };
        let max_tokens = budget_value(view.max_tokens, "max_tokens")?;
        let max_completion = budget_value(view.max_completion_tokens, "max_completion_tokens")?;
        let budget_spans = [view.max_tokens, view.max_completion_tokens]
            .into_iter()
            .flatten()
            .filter(|raw| raw.get() != "null")
            .map(|raw| span_in(&body, raw.get()))
            .collect();
        let model_span = view.model.map(|raw| span_in(&body, raw.get()));
        let insert_at = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
        Ok(ChatRequest {
            model,
            stream: view.stream.unwrap_or(false),
            needs,
            requested_budget: max_tokens.or(max_completion),
            model_span,
            budget_spans,
            insert_at,
            body,
        })
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Estimated prompt tokens of the body sent upstream.
    pub fn prompt_estimate(&self) -> u64 {
        estimate_tokens(self.body.len())
    }

    /// The body for one attempt: `model` set to `model_id`, and every budget field lowered
    /// to `budget` when given. All other bytes are the client's.
    pub fn body_for(&self, model_id: &str, budget: Option<u64>) -> Bytes {
        let model_json = serde_json::Value::from(model_id).to_string();
        let budget_text = budget.map(|b| b.to_string());
        let mut edits: Vec<(Range<usize>, &str)> = Vec::with_capacity(3);
        if let Some(span) = &self.model_span {
            edits.push((span.clone(), &model_json));
        }
        if let Some(text) = &budget_text {
            edits.extend(self.budget_spans.iter().map(|s| (s.clone(), text.as_str())));
        }
        edits.sort_by_key(|(span, _)| span.start);

        let mut out = Vec::with_capacity(self.body.len() + model_json.len() + 16);
        let mut cursor = 0;
        if self.model_span.is_none() {
            out.extend_from_slice(&self.body[..self.insert_at]);
            out.extend_from_slice(b"\"model\":");
            out.extend_from_slice(model_json.as_bytes());
            if !self.body[self.insert_at..]
                .trim_ascii_start()
                .starts_with(b"}")
            {
                out.push(b',');
            }
            cursor = self.insert_at;
        }
        for (span, text) in edits {
            out.extend_from_slice(&self.body[cursor..span.start]);
            out.extend_from_slice(text.as_bytes());
            cursor = span.end;
        }
        out.extend_from_slice(&self.body[cursor..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> ChatRequest {
        ChatRequest::parse(Bytes::from(v.to_string())).expect("parses")
    }

    #[test]
    fn needs_table() {
        let cases: Vec<(serde_json::Value, Needs)> = vec![
            (json!({}), Needs::default()),
            (json!({"tools": []}), Needs::default()),
            (
                json!({"tools": [{"type":"function","function":{"name":"f"}}]}),
                Needs {
                    tools: true,
                    ..Needs::default()
                },
            ),
            (json!({"tool_choice": "auto"}), Needs::default()),
            (json!({"tool_choice": "none"}), Needs::default()),
            (
                json!({"tool_choice": "required"}),
                Needs {
                    tool_choice: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"tool_choice": {"type":"function","function":{"name":"f"}}}),
                Needs {
                    tool_choice: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"response_format": {"type":"json_schema","json_schema":{}}}),
                Needs {
                    json_schema: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"response_format": {"type":"json_object"}}),
                Needs {
                    json_object: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"response_format": {"type":"text"}}),
                Needs::default(),
            ),
            (
                json!({"seed": 7}),
                Needs {
                    seed: true,
                    ..Needs::default()
                },
            ),
            (json!({"seed": null}), Needs::default()),
            (
                json!({"stop": ["x"]}),
                Needs {
                    stop: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"reasoning": {"effort":"low"}}),
                Needs {
                    reasoning: true,
                    ..Needs::default()
                },
            ),
            (
                json!({"reasoning_effort": "low"}),
                Needs {
                    reasoning: true,
                    ..Needs::default()
                },
            ),
        ];
        for (mut extra, want) in cases {
            let label = extra.to_string();
            extra["messages"] = json!([]);
            assert_eq!(parse(extra).needs, want, "{label}");
        }
    }

    #[test]
    fn bad_bodies() {
        let cases: &[(&str, bool)] = &[
            ("{", true),
            ("", true),
            ("not json", true),
            ("{\"model\":\"a\"}", false),
            ("{\"messages\":{}}", false),
            ("{\"messages\":[],\"model\":5}", false),
            ("{\"messages\":[],\"stream\":\"yes\"}", false),
            ("{\"messages\":[],\"max_tokens\":-1}", false),
            ("[]", false),
        ];
        for (body, is_json_error) in cases {
            let err = ChatRequest::parse(Bytes::from_static(body.as_bytes())).unwrap_err();
            assert_eq!(
                matches!(err, RequestError::InvalidJson(_)),
                *is_json_error,
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn model_is_spliced_and_everything_else_is_untouched() {
        let original = r#"{ "model" : "auto", "messages":[{"role":"user","content":[{"type":"text","text":"h\u00e9 \"q\""}]}], "x":1.50 }"#;
        let req = ChatRequest::parse(Bytes::from_static(original.as_bytes())).unwrap();
        assert_eq!(req.model.as_deref(), Some("auto"));
        let out = req.body_for("vendor/m:free", None);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            original.replace("\"auto\"", "\"vendor/m:free\"")
        );
    }

    #[test]
    fn model_is_inserted_when_absent() {
        for (original, want) in [
            (r#"{"messages":[]}"#, r#"{"model":"m","messages":[]}"#),
            (r#" {  "messages":[]}"#, r#" {"model":"m",  "messages":[]}"#),
        ] {
            let req = ChatRequest::parse(Bytes::from_static(original.as_bytes())).unwrap();
            assert_eq!(req.model, None);
            let out = req.body_for("m", None);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap();
        }
    }

    #[test]
    fn budget_is_lowered_in_every_budget_field() {
        let original =
            r#"{"max_tokens":128000,"messages":[],"model":"a","max_completion_tokens":64000}"#;
        let req = ChatRequest::parse(Bytes::from_static(original.as_bytes())).unwrap();
        assert_eq!(req.requested_budget, Some(128000));
        let out = req.body_for("b", Some(8192));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"max_tokens":8192,"messages":[],"model":"b","max_completion_tokens":8192}"#
        );
        // No clamp: budgets untouched.
        let out = req.body_for("b", None);
        assert!(std::str::from_utf8(&out).unwrap().contains("128000"));
    }

    #[test]
    fn null_model_is_treated_as_absent_but_replaced_in_place() {
        let req =
            ChatRequest::parse(Bytes::from_static(br#"{"model":null,"messages":[]}"#)).unwrap();
        assert_eq!(req.model, None);
        assert_eq!(
            &req.body_for("m", None)[..],
            br#"{"model":"m","messages":[]}"#
        );
    }
}
