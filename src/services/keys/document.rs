//! `state_dir/keys.json`: each key's state and counters, restored at start (SPEC §11).
//!
//! Records are keyed by the key's id (a hash prefix) and its last four characters: the
//! file never holds a whole key, so it can be read by anyone allowed to read the state.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::{Config, OPENROUTER};
use crate::domain::outcome::KeyFault;
use crate::state::key_pool::{KeyCounters, KeyState, Rest, SavedKey, SavedPool, SavedUsage};
use crate::state::quota::LimiterKey;
use crate::util::time::{epoch_ms as to_ms, from_epoch_ms as from_ms};

const KEYS_FILE: &str = "keys.json";

#[derive(Serialize, Deserialize)]
struct KeysDocument {
    version: u32,
    saved_at: u64,
    keys: Vec<KeyRecord>,
    /// Day counts of the known-limit limiters (SPEC §12); version 1 files have none.
    #[serde(default)]
    limiters: Vec<LimiterRecord>,
}

fn openrouter() -> String {
    OPENROUTER.to_string()
}

/// One limiter's count for one UTC day.
#[derive(Serialize, Deserialize)]
struct LimiterRecord {
    #[serde(default = "openrouter")]
    provider: String,
    /// The key id, for a per-key limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The provider's model id, for a per-(key, model) limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// The OpenRouter account (`creator_user_id`), for an account-wide limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    /// Days since 1970-01-01 (UTC) the count belongs to.
    utc_day: u64,
    used: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learned_limit: Option<u64>,
}

impl LimiterRecord {
    fn from_saved(provider: &str, u: &SavedUsage) -> Self {
        let (key, model, account) = match &u.limiter {
            LimiterKey::Key { id, model } => (
                Some(id.to_string()),
                model.as_deref().map(str::to_string),
                None,
            ),
            LimiterKey::Account(account) => (None, None, Some(account.to_string())),
        };
        LimiterRecord {
            provider: provider.to_string(),
            key,
            model,
            account,
            utc_day: u.day,
            used: u.used,
            learned_limit: u.learned_rpd,
        }
    }

    fn into_saved(self) -> Option<(String, SavedUsage)> {
        let limiter = match (self.key, self.account) {
            (Some(id), None) => LimiterKey::Key {
                id: id.into(),
                model: self.model.map(Into::into),
            },
            (None, Some(account)) => LimiterKey::Account(account.into()),
            _ => return None,
        };
        Some((
            self.provider,
            SavedUsage {
                limiter,
                day: self.utc_day,
                used: self.used,
                learned_rpd: self.learned_limit,
            },
        ))
    }
}

/// A key resting for one model.
#[derive(Serialize, Deserialize)]
struct RestRecord {
    model: String,
    until_ms: u64,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    /// Whose key it is; version 1 files hold OpenRouter keys only.
    #[serde(default = "openrouter")]
    provider: String,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resting: Vec<RestRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct ErrorCounts {
    #[serde(default)]
    daily_cap: u64,
    #[serde(default)]
    payment_required: u64,
    #[serde(default)]
    unauthorized: u64,
    #[serde(default)]
    rate_limited: u64,
}

impl KeyRecord {
    fn from_saved(provider: &str, k: &SavedKey) -> Self {
        let (state, until_ms, reason) = match &k.state {
            KeyState::Active => ("active", None, None),
            KeyState::Cooling { until, reason } => {
                ("cooling", Some(to_ms(*until)), Some(reason.as_str()))
            }
            KeyState::Disabled { reason } => ("disabled", None, Some(reason.as_str())),
        };
        KeyRecord {
            provider: provider.to_string(),
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
                rate_limited: k.counters.rate_limited,
            },
            marked_at_ms: k.marked_at.map(to_ms),
            resting: k
                .rests
                .iter()
                .map(|(model, rest)| RestRecord {
                    model: model.clone(),
                    until_ms: to_ms(rest.until),
                    reason: rest.reason.as_str().to_string(),
                })
                .collect(),
            account: k.account.clone(),
        }
    }

    /// `None` for a record this version cannot make sense of (it is then ignored).
    fn into_saved(self) -> Option<(String, SavedKey)> {
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
        let rests = self
            .resting
            .into_iter()
            .filter_map(|r| {
                let reason = KeyFault::parse(&r.reason)?;
                Some((
                    r.model,
                    Rest {
                        until: from_ms(r.until_ms),
                        reason,
                    },
                ))
            })
            .collect();
        let key = SavedKey {
            id: self.id,
            tail: self.tail,
            state,
            counters: KeyCounters {
                requests: self.requests,
                successes: self.successes,
                daily_cap: self.errors.daily_cap,
                payment_required: self.errors.payment_required,
                unauthorized: self.errors.unauthorized,
                rate_limited: self.errors.rate_limited,
            },
            marked_at: self.marked_at_ms.map(from_ms),
            rests,
            account: self.account,
        };
        Some((self.provider, key))
    }
}

pub fn keys_path(config: &Config) -> Option<PathBuf> {
    config.state_dir.as_ref().map(|dir| dir.join(KEYS_FILE))
}

/// The saved state of every pool, by provider name.
pub type SavedPools = Vec<(String, SavedPool)>;

pub fn encode(pools: &[(&str, SavedPool)], now: SystemTime) -> Vec<u8> {
    let doc = KeysDocument {
        version: 2,
        saved_at: to_ms(now) / 1000,
        keys: pools
            .iter()
            .flat_map(|(provider, pool)| {
                pool.keys.iter().map(|k| KeyRecord::from_saved(provider, k))
            })
            .collect(),
        limiters: pools
            .iter()
            .flat_map(|(provider, pool)| {
                pool.usage
                    .iter()
                    .map(|u| LimiterRecord::from_saved(provider, u))
            })
            .collect(),
    };
    // Serialising plain data cannot fail; an empty document is the safe fallback anyway.
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

/// The saved pools in a `keys.json`; records this version cannot read are skipped.
pub fn decode(bytes: &[u8]) -> Result<SavedPools, serde_json::Error> {
    let doc: KeysDocument = serde_json::from_slice(bytes)?;
    let mut pools: SavedPools = Vec::new();
    fn pool(pools: &mut SavedPools, provider: String) -> &mut SavedPool {
        let index = match pools.iter().position(|(p, _)| *p == provider) {
            Some(i) => i,
            None => {
                pools.push((provider, SavedPool::default()));
                pools.len() - 1
            }
        };
        &mut pools[index].1
    }
    for (provider, key) in doc.keys.into_iter().filter_map(KeyRecord::into_saved) {
        pool(&mut pools, provider).keys.push(key);
    }
    for (provider, usage) in doc
        .limiters
        .into_iter()
        .filter_map(LimiterRecord::into_saved)
    {
        pool(&mut pools, provider).usage.push(usage);
    }
    Ok(pools)
}

/// Read saved key state; a missing file is no state, an unreadable one is logged and ignored.
pub fn load(path: &Path) -> SavedPools {
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
        let lease = pool.lease("m", UNIX_EPOCH).unwrap();
        let until = UNIX_EPOCH + Duration::from_millis(1_780_012_800_123);
        pool.record(
            &lease,
            crate::state::key_pool::KeyEvent::Cooled {
                until,
                reason: KeyFault::DailyCap,
            },
            UNIX_EPOCH,
        );
        let bytes = encode(&[("openrouter", pool.saved())], UNIX_EPOCH);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("\"tail\": \"1234\""), "{text}");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, [("openrouter".to_string(), pool.saved())]);
        assert!(decode(b"{half").is_err());
    }

    #[test]
    fn per_model_rests_and_day_counts_round_trip_per_provider() {
        use crate::state::key_pool::{KeyEvent, PoolPolicy};
        let pool = crate::state::key_pool::KeyPool::with_policy(
            &["gsk-secret-5678".to_string()],
            PoolPolicy {
                scope: crate::domain::provider::LimitScope::KeyAndModel,
                ..PoolPolicy::default()
            },
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let lease = pool.lease("llama", now).unwrap();
        pool.record(
            &lease,
            KeyEvent::Rested {
                model: "llama".into(),
                until: now + Duration::from_secs(90),
                reason: KeyFault::RateLimited,
            },
            now,
        );
        let bytes = encode(&[("groq", pool.saved())], now);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("gsk-secret"), "{text}");
        assert_eq!(
            decode(&bytes).unwrap(),
            [("groq".to_string(), pool.saved())]
        );
        // A version-1 file: OpenRouter keys, no limiters.
        let v1 = br#"{"version":1,"saved_at":0,"keys":[{"id":"0123456789abcdef","tail":"abcd","state":"active"}]}"#;
        let decoded = decode(v1).unwrap();
        assert_eq!(decoded[0].0, "openrouter");
        assert_eq!(decoded[0].1.keys.len(), 1);
    }
}
