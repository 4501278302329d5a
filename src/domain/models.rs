//! The ranked list of free models: parsing, the shared snapshot, and where it came from.
//!
//! Request paths read the current [`Snapshot`] through [`Registry::snapshot`], which
//! clones an `Arc` under a lock held for nanoseconds; the refresher swaps in a whole new
//! snapshot. Nobody ever waits on a fetch.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// The list snapshot compiled into the binary: the last resort when neither the remote
/// source nor `state_dir` can provide one.
pub const EMBEDDED_LIST: &[u8] = include_bytes!("../../conf/embedded-top-models.json");

/// What a model can do, with SPEC §4's defaults for flags the list leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub tools: bool,
    pub tool_choice: bool,
    pub structured_outputs: bool,
    pub response_format: bool,
    pub reasoning: bool,
    pub seed: bool,
    pub stop: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    pub rank: u32,
    pub context_length: u64,
    pub max_completion_tokens: Option<u64>,
    pub capabilities: Capabilities,
}

/// Where the snapshot in use was obtained (reported by `/ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSource {
    Remote,
    StateDir,
    Embedded,
}

impl ListSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ListSource::Remote => "remote",
            ListSource::StateDir => "state_dir",
            ListSource::Embedded => "embedded",
        }
    }
}

/// A validated model list.
#[derive(Debug, Clone)]
pub struct ModelList {
    /// Usable models, sorted by rank (ascending), ids unique.
    pub models: Vec<Model>,
    /// The list's `fallback.id`, e.g. `openrouter/free`.
    pub fallback: Option<String>,
    /// The list's own `updatedAt`, when it has a parseable one.
    pub updated_at: Option<SystemTime>,
}

/// One list, as served to requests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub list: ModelList,
    pub source: ListSource,
    /// When this process obtained the list (fetched, or read from disk / the binary).
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// Age of the list's content: since its own `updatedAt` when known, else since it was loaded.
    pub fn age(&self, now: SystemTime) -> Duration {
        let origin = self.list.updated_at.unwrap_or(self.loaded_at);
        now.duration_since(origin).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError(String);

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ListError {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawList {
    #[serde(default)]
    models: Vec<serde_json::Value>,
    fallback: Option<RawFallback>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct RawFallback {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawModel {
    id: String,
    rank: Option<u32>,
    context_length: Option<u64>,
    max_completion_tokens: Option<u64>,
    supports_tools: Option<bool>,
    supports_tool_choice: Option<bool>,
    supports_structured_outputs: Option<bool>,
    supports_response_format: Option<bool>,
    supports_reasoning: Option<bool>,
    supports_seed: Option<bool>,
    supports_stop: Option<bool>,
}

impl RawModel {
    fn into_model(self, position: usize) -> Option<Model> {
        let id = self.id.trim().to_string();
        let context_length = self.context_length.filter(|&c| c > 0)?;
        if id.is_empty() {
            return None;
        }
        Some(Model {
            id,
            // Entries without a rank sort after every ranked one, in array order.
            rank: self.rank.unwrap_or(u32::MAX / 2 + position as u32),
            context_length,
            max_completion_tokens: self.max_completion_tokens.filter(|&m| m > 0),
            capabilities: Capabilities {
                tools: self.supports_tools.unwrap_or(false),
                tool_choice: self.supports_tool_choice.unwrap_or(true),
                structured_outputs: self.supports_structured_outputs.unwrap_or(false),
                response_format: self.supports_response_format.unwrap_or(true),
                reasoning: self.supports_reasoning.unwrap_or(false),
                seed: self.supports_seed.unwrap_or(true),
                stop: self.supports_stop.unwrap_or(true),
            },
        })
    }
}

/// Parse and validate a list document. Malformed entries are skipped (one odd entry must
/// not cost us the whole list); a document with no usable model at all is an error.
pub fn parse_list(bytes: &[u8]) -> Result<ModelList, ListError> {
    let raw: RawList = serde_json::from_slice(bytes).map_err(|e| {
        ListError(format!(
            "model list is not valid JSON of the expected shape: {e}"
        ))
    })?;
    let mut models: Vec<Model> = Vec::with_capacity(raw.models.len());
    for (position, entry) in raw.models.into_iter().enumerate() {
        let parsed = serde_json::from_value::<RawModel>(entry)
            .ok()
            .and_then(|m| m.into_model(position));
        match parsed {
            Some(model) => models.push(model),
            None => log::warn!(
                "model list entry #{position} is unusable (no id or contextLength); skipped"
            ),
        }
    }
    // Rank decides, array order does not; a stable sort keeps array order among equal ranks.
    models.sort_by_key(|m| m.rank);
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.id.clone()));
    if models.is_empty() {
        return Err(ListError("model list holds no usable model".into()));
    }
    let fallback = raw
        .fallback
        .and_then(|f| f.id)
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty() && !seen.contains(id));
    let updated_at = raw
        .updated_at
        .as_deref()
        .and_then(crate::util::time::parse_rfc3339);
    Ok(ModelList {
        models,
        fallback,
        updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fixture_parses_in_rank_order_with_fallback() {
        let list = parse_list(EMBEDDED_LIST).expect("embedded list parses");
        let ids: Vec<&str> = list.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids[0], "inclusionai/ling-2.6-flash:free");
        assert_eq!(ids.len(), 6);
        assert_eq!(list.fallback.as_deref(), Some("openrouter/free"));
        assert!(list.updated_at.is_some());
    }

    #[test]
    fn absent_flags_take_spec_defaults() {
        let list = parse_list(EMBEDDED_LIST).unwrap();
        // rank 2 omits supportsToolChoice / ResponseFormat / Seed / Stop.
        let caps = list.models[1].capabilities;
        assert!(caps.tools && caps.tool_choice && caps.response_format && caps.seed && caps.stop);
        assert!(caps.structured_outputs);
        assert!(!caps.reasoning);
        // An entry with no flags at all: optimistic four, pessimistic rest.
        let bare = parse_list(br#"{"models":[{"id":"a","contextLength":10}]}"#).unwrap();
        let caps = bare.models[0].capabilities;
        assert_eq!(
            caps,
            Capabilities {
                tools: false,
                tool_choice: true,
                structured_outputs: false,
                response_format: true,
                reasoning: false,
                seed: true,
                stop: true,
            }
        );
    }

    #[test]
    fn rank_decides_not_array_order_and_bad_entries_are_skipped() {
        let doc = br#"{"models":[
            {"rank":3,"id":"c","contextLength":100},
            {"rank":1,"id":"a","contextLength":100},
            {"rank":2,"id":"","contextLength":100},
            {"rank":2,"id":"no-context"},
            {"rank":2,"id":"b","contextLength":100},
            {"rank":9,"id":"a","contextLength":5},
            "garbage"
        ],"fallback":{"id":"openrouter/free"}}"#;
        let list = parse_list(doc).unwrap();
        let ids: Vec<&str> = list.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(list.models[0].context_length, 100);
    }

    #[test]
    fn unusable_documents_are_rejected() {
        for doc in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"models":[]}"#,
            br#"{"models":[{"id":"x"}]}"#,
            br#"{"models":"nope"}"#,
        ] {
            assert!(parse_list(doc).is_err(), "{}", String::from_utf8_lossy(doc));
        }
    }
}
