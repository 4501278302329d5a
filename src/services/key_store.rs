//! Where upstream keys come from and where their state goes.
//!
//! Sources: `upstream.api_keys`, `upstream.api_keys_file` (re-read when it changes) and
//! `upstream.api_keys_url` (a CSV export, synced every `models.refresh_secs`; a failed
//! sync keeps the keys it had). State: `state_dir/keys.json`, written atomically on
//! every state change and restored at start, keyed by hash — never holding a whole key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};

use crate::config::{Config, HttpUrl};
use crate::domain::outcome::KeyFault;
use crate::gateway::app::App;
use crate::state::key_pool::{KeyCounters, KeyState, SavedKey};
use crate::upstream::client::HttpClient;
use crate::util::atomic_file::write_atomic;

const KEYS_FILE: &str = "keys.json";
/// How often the keys file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// Counters change on every request; they are saved with state changes and at most
/// this often otherwise.
const COUNTER_SAVE_EVERY: Duration = Duration::from_secs(30);
const MAX_KEYS_DOCUMENT: usize = 4 * 1024 * 1024;

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

use crate::util::time::{epoch_ms as to_ms, from_epoch_ms as from_ms};

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

pub fn decode(bytes: &[u8]) -> Result<Vec<SavedKey>, String> {
    let doc: KeysDocument =
        serde_json::from_slice(bytes).map_err(|e| format!("not a keys document: {e}"))?;
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
            log::warn!("ignoring {}: {e}", path.display());
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            Vec::new()
        }
    }
}

/// Keys from a keys file: one per line, `#` starts a comment, blanks ignored.
pub fn parse_keys_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// Keys from a CSV export: the first column of each row; a header row (`key`, `api_key`,
/// ...) and blank or `#` rows are skipped; quoted cells are unquoted.
pub fn parse_keys_csv(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (row, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}');
        let first = if let Some(quoted) = line.strip_prefix('"') {
            quoted.split('"').next().unwrap_or_default()
        } else {
            line.split([',', ';', '\t']).next().unwrap_or_default()
        };
        let first = first.trim();
        let looks_like_header = row == 0
            && !first.is_empty()
            && first
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_' || c == ' ');
        if first.is_empty() || first.starts_with('#') || looks_like_header {
            continue;
        }
        keys.push(first.to_string());
    }
    keys
}

/// Configured keys first, then the file's, then the URL's; duplicates merged.
pub fn merge_sources(sources: [&[String]; 3]) -> Vec<String> {
    let mut merged: Vec<String> = Vec::new();
    for key in sources.into_iter().flatten() {
        if !merged.contains(key) {
            merged.push(key.clone());
        }
    }
    merged
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Read the keys file at start (so the pool begins with its keys).
pub fn read_keys_file(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_keys_file(&text),
        Err(e) => {
            log::warn!("cannot read upstream.api_keys_file {}: {e}", path.display());
            Vec::new()
        }
    }
}

/// Background service: persists key state on change, follows the keys file and URL.
pub struct KeySync {
    app: Arc<App>,
    client: HttpClient,
    file_keys: Vec<String>,
}

impl KeySync {
    pub fn new(app: Arc<App>, file_keys: Vec<String>) -> Self {
        KeySync {
            app,
            client: HttpClient::new(2),
            file_keys,
        }
    }

    fn save(&self) {
        let Some(path) = keys_path(&self.app.config) else {
            return;
        };
        let bytes = encode(&self.app.state.keys.saved(), SystemTime::now());
        if let Err(e) = write_atomic(&path, &bytes) {
            log::warn!("cannot save key state to {}: {e}", path.display());
        }
    }

    async fn fetch_url(&self, url: &HttpUrl) -> Result<Vec<String>, String> {
        let cfg = &self.app.config.upstream;
        let accept = "text/csv, text/plain, */*";
        let body = self
            .client
            .get_document(
                url,
                accept,
                cfg.connect_timeout,
                cfg.timeout,
                MAX_KEYS_DOCUMENT,
            )
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&body);
        let keys = parse_keys_csv(&text);
        if keys.is_empty() {
            return Err(format!("{}: the CSV holds no key", url.host));
        }
        Ok(keys)
    }
}

#[async_trait]
impl BackgroundService for KeySync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Not `&mut self`: the service trait shares `self`, so mutable state lives here.
        let mut this_file_keys = self.file_keys.clone();
        let file = self.app.config.upstream.api_keys_file.clone();
        let url = self.app.config.upstream.api_keys_url.clone();
        let mut stamp = file.as_deref().and_then(file_stamp);
        let mut url_keys: Vec<String> = Vec::new();
        let mut next_url_sync = tokio::time::Instant::now();
        let mut last_counter_save = tokio::time::Instant::now();
        let mut poll = tokio::time::interval(FILE_POLL);
        // Saved records of URL keys wait until the URL has been read once.
        let mut awaiting_url = url.is_some();
        if !awaiting_url {
            self.app.state.keys.forget_dormant();
        }
        self.save();
        loop {
            tokio::select! {
                _ = self.app.state.keys.changed.notified() => {
                    self.save();
                    last_counter_save = tokio::time::Instant::now();
                    continue;
                }
                _ = poll.tick() => {}
                _ = shutdown.changed() => {
                    self.save();
                    return;
                }
            }
            let mut dirty = false;
            if let Some(path) = &file {
                let now_stamp = file_stamp(path);
                if now_stamp != stamp {
                    stamp = now_stamp;
                    this_file_keys = read_keys_file(path);
                    dirty = true;
                }
            }
            if let Some(url) = &url {
                if tokio::time::Instant::now() >= next_url_sync {
                    next_url_sync = tokio::time::Instant::now() + self.app.config.models.refresh;
                    match self.fetch_url(url).await {
                        Ok(keys) => {
                            url_keys = keys;
                            dirty = true;
                        }
                        Err(e) => log::warn!(
                            "upstream.api_keys_url sync failed, keeping the current keys: {e}"
                        ),
                    }
                }
            }
            if dirty {
                let merged = merge_sources([
                    &self.app.config.upstream.api_keys,
                    &this_file_keys,
                    &url_keys,
                ]);
                if self.app.state.keys.set_keys(&merged) {
                    log::info!("upstream key pool now holds {} keys", merged.len());
                }
                if awaiting_url && !url_keys.is_empty() {
                    awaiting_url = false;
                    self.app.state.keys.forget_dormant();
                }
            }
            if last_counter_save.elapsed() >= COUNTER_SAVE_EVERY {
                self.save();
                last_counter_save = tokio::time::Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn keys_file_and_csv_parsing() {
        assert_eq!(
            parse_keys_file("# team keys\nsk-a\n\n  sk-b  # bob\n#sk-c\n"),
            ["sk-a", "sk-b"]
        );
        assert_eq!(
            parse_keys_csv("key,owner\nsk-a,alice\n\"sk-b\",bob\n,empty\n#x,y\nsk-c\n"),
            ["sk-a", "sk-b", "sk-c"]
        );
        assert_eq!(parse_keys_csv("sk-or-v1-abc,alice\n"), ["sk-or-v1-abc"]);
        assert_eq!(
            merge_sources([&["a".into()], &["b".into(), "a".into()], &["c".into()]]),
            ["a", "b", "c"]
        );
    }

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
