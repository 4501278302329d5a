//! `state_dir/keys.json`: each key's state and counters, restored at start (SPEC §11).
//!
//! Records are keyed by the key's id (a hash prefix) and its last four characters: the
//! file never holds a whole key, so it can be read by anyone allowed to read the state.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::outcome::KeyFault;
use crate::state::key_pool::{KeyCounters, KeyState, SavedKey};
use crate::util::time::{epoch_ms as to_ms, from_epoch_ms as from_ms};

const KEYS_FILE: &str = "keys.json";

#[derive(Serialize, Deserialize)]
struct KeysDocument {
    version: u32,
    saved_at: u64,
    keys: Vec<KeyRecord>,
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    /// First 16 hex digits of sha256(key).
    id: String,
    /// Last 4 characters, for humans.
    tail: String,
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default)]
    requests: u64,
    #[serde(default)]
    successes: u64,
    #[serde(default)]
    errors: ErrorCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marked_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct ErrorCounts {
    #[serde(default)]
    daily_cap: u64,
    #[serde(default)]
    payment_required: u64,
    #[serde(default)]
    unauthorized: u64,
}

impl KeyRecord {
    fn from_saved(k: &SavedKey) -> Self {
        let (state, until_ms, reason) = match &k.state {
            KeyState::Active => ("active", None, None),
            KeyState::Cooling { until, reason } => {
                ("cooling", Some(to_ms(*until)), Some(reason.as_str()))
            }
            KeyState::Disabled { reason } => ("disabled", None, Some(reason.as_str())),
        };
        KeyRecord {
            id: k.id.clone(),
            tail: k.tail.clone(),
            state: state.to_string(),
            until_ms,
            reason: reason.map(str::to_string),
            requests: k.counters.requests,
            successes: k.counters.successes,
            errors: ErrorCounts {
                daily_cap: k.counters.daily_cap,
                payment_required: k.counters.payment_required,
                unauthorized: k.counters.unauthorized,
            },
            marked_at_ms: k.marked_at.map(to_ms),
        }
    }

    /// `None` for a record this version cannot make sense of (it is then ignored).
    fn into_saved(self) -> Option<SavedKey> {
        let reason = self.reason.as_deref().and_then(KeyFault::parse);
        let state = match (self.state.as_str(), self.until_ms, reason) {
            ("active", _, _) => KeyState::Active,
            ("cooling", Some(until), Some(reason)) => KeyState::Cooling {
                until: from_ms(until),
                reason,
            },
            ("disabled", _, Some(reason)) => KeyState::Disabled { reason },
            _ => return None,
        };
        Some(SavedKey {
            id: self.id,
            tail: self.tail,
            state,
            counters: KeyCounters {
                requests: self.requests,
                successes: self.successes,
                daily_cap: self.errors.daily_cap,
                payment_required: self.errors.payment_required,
                unauthorized: self.errors.unauthorized,
            },
            marked_at: self.marked_at_ms.map(from_ms),
        })
    }
}

pub fn keys_path(config: &Config) -> Option<PathBuf> {
    config.state_dir.as_ref().map(|dir| dir.join(KEYS_FILE))
}

pub fn encode(keys: &[SavedKey], now: SystemTime) -> Vec<u8> {
    let doc = KeysDocument {
        version: 1,
        saved_at: to_ms(now) / 1000,
        keys: keys.iter().map(KeyRecord::from_saved).collect(),
    };
    // Serialising plain data cannot fail; an empty document is the safe fallback anyway.
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// The saved key states in a `keys.json`; records this version cannot read are skipped.
pub fn decode(bytes: &[u8]) -> Result<Vec<SavedKey>, serde_json::Error> {
    let doc: KeysDocument = serde_json::from_slice(bytes)?;
    Ok(doc
        .keys
        .into_iter()
        .filter_map(KeyRecord::into_saved)
        .collect())
}

/// Read saved key state; a missing file is no state, an unreadable one is logged and ignored.
pub fn load(path: &Path) -> Vec<SavedKey> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).unwrap_or_else(|e| {
            log::warn!("ignoring {}: not a keys document: {e}", path.display());
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn document_round_trip_holds_no_whole_key() {
        let pool = crate::state::key_pool::KeyPool::new(&["sk-or-v1-very-secret-1234".to_string()]);
        let lease = pool.lease(UNIX_EPOCH).unwrap();
        let until = UNIX_EPOCH + Duration::from_millis(1_780_012_800_123);
        pool.record(
            &lease,
            crate::state::key_pool::KeyEvent::Cooled {
                until,
                reason: KeyFault::DailyCap,
            },
            UNIX_EPOCH,
        );
        let bytes = encode(&pool.saved(), UNIX_EPOCH);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("\"tail\": \"1234\""), "{text}");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, pool.saved());
        assert!(decode(b"{half").is_err());
    }
}
