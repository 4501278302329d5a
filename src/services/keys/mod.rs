//! Key sync (SPEC §11): a background service that saves key state on every change, follows
//! the keys file and the key URL, and merges the three sources into the pool.

pub mod document;
pub mod sources;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Config, HttpUrl};
use crate::gateway::app::App;
use crate::upstream::client::{DocumentError, HttpClient};
use crate::util::atomic_file::write_atomic;
use sources::{merge_sources, parse_keys_csv, read_keys_file};

/// How often the keys file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// Counters (and the day counts of SPEC §12) change on every request; they are saved
/// with state changes, at shutdown, and at most this often otherwise.
const COUNTER_SAVE_EVERY: Duration = Duration::from_secs(30);
const MAX_KEYS_DOCUMENT: usize = 4 * 1024 * 1024;

/// Why a sync of `upstream.api_keys_url` kept the keys it had.
#[derive(Debug)]
enum UrlSyncError {
    Fetch(DocumentError),
    NoKey { host: String },
}

impl From<DocumentError> for UrlSyncError {
    fn from(e: DocumentError) -> Self {
        UrlSyncError::Fetch(e)
    }
}

impl fmt::Display for UrlSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSyncError::Fetch(e) => e.fmt(f),
            UrlSyncError::NoKey { host } => write!(f, "{host}: the CSV holds no key"),
        }
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Where one provider's keys come from (SPEC §11, §12: the same three sources for every
/// provider).
#[derive(Debug, Clone)]
pub struct KeySources {
    /// Config path prefix for log lines: `upstream` or `providers[i]`.
    pub label: String,
    pub inline: Vec<String>,
    pub file: Option<PathBuf>,
    pub url: Option<HttpUrl>,
}

impl KeySources {
    /// Every provider's sources, by provider index (OpenRouter first).
    pub fn of(config: &Config) -> Vec<KeySources> {
        let upstream = &config.upstream;
        std::iter::once(KeySources {
            label: "upstream".to_string(),
            inline: upstream.api_keys.clone(),
            file: upstream.api_keys_file.clone(),
            url: upstream.api_keys_url.clone(),
        })
        .chain(
            config
                .providers
                .iter()
                .enumerate()
                .map(|(i, p)| KeySources {
                    label: format!("providers[{i}]"),
                    inline: p.api_keys.clone(),
                    file: p.api_keys_file.clone(),
                    url: p.api_keys_url.clone(),
                }),
        )
        .collect()
    }

    /// The keys known before any URL sync: inline, then the file's.
    pub fn initial(&self) -> Vec<String> {
        let file_keys = self.file.as_deref().map(read_keys_file).unwrap_or_default();
        merge_sources([&self.inline, &file_keys, &[]])
    }
}

/// One provider's sync progress.
struct Following {
    pool: usize,
    sources: KeySources,
    stamp: Option<(SystemTime, u64)>,
    file_keys: Vec<String>,
    url_keys: Vec<String>,
    next_url_sync: tokio::time::Instant,
    /// Saved records of URL keys wait until the URL has been read once.
    awaiting_url: bool,
}

/// Background service: persists key state on change, follows every keys file and URL.
pub struct KeySync {
    app: Arc<App>,
    client: HttpClient,
}

impl KeySync {
    pub fn new(app: Arc<App>) -> Self {
        KeySync {
            app,
            client: HttpClient::new(2),
        }
    }

    fn save(&self) {
        let Some(path) = document::keys_path(&self.app.config) else {
            return;
        };
        let pools: Vec<(&str, _)> = self
            .app
            .state
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| (self.app.provider_name(i), pool.saved()))
            .collect();
        let bytes = document::encode(&pools, SystemTime::now());
        if let Err(e) = write_atomic(&path, &bytes) {
            log::warn!("cannot save key state to {}: {e}", path.display());
        }
    }

    async fn fetch_url(&self, url: &HttpUrl) -> Result<Vec<String>, UrlSyncError> {
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
            .await?;
        let text = String::from_utf8_lossy(&body);
        let keys = parse_keys_csv(&text);
        if keys.is_empty() {
            return Err(UrlSyncError::NoKey {
                host: url.host.clone(),
            });
        }
        Ok(keys)
    }

    /// Re-read what changed in one provider's sources; merge into its pool.
    async fn follow(&self, f: &mut Following) {
        let Some(pool) = self.app.state.pool(f.pool) else {
            return;
        };
        let mut dirty = false;
        if let Some(path) = &f.sources.file {
            let now_stamp = file_stamp(path);
            if now_stamp != f.stamp {
                f.stamp = now_stamp;
                f.file_keys = read_keys_file(path);
                dirty = true;
            }
        }
        if let Some(url) = f.sources.url.clone() {
            if tokio::time::Instant::now() >= f.next_url_sync {
                f.next_url_sync = tokio::time::Instant::now() + self.app.config.models.refresh;
                match self.fetch_url(&url).await {
                    Ok(keys) => {
                        f.url_keys = keys;
                        dirty = true;
                    }
                    Err(e) => log::warn!(
                        "{}.api_keys_url sync failed, keeping the current keys: {e}",
                        f.sources.label
                    ),
                }
            }
        }
        if dirty {
            let merged = merge_sources([&f.sources.inline, &f.file_keys, &f.url_keys]);
            if pool.set_keys(&merged) {
                log::info!(
                    "{} key pool now holds {} keys",
                    self.app.provider_name(f.pool),
                    merged.len()
                );
            }
            if f.awaiting_url && !f.url_keys.is_empty() {
                f.awaiting_url = false;
                pool.forget_dormant();
            }
        }
    }
}

#[async_trait]
impl BackgroundService for KeySync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Not `&mut self`: the service trait shares `self`, so mutable state lives here.
        let mut following: Vec<Following> = KeySources::of(&self.app.config)
            .into_iter()
            .enumerate()
            .map(|(pool, sources)| Following {
                pool,
                stamp: sources.file.as_deref().and_then(file_stamp),
                file_keys: sources
                    .file
                    .as_deref()
                    .map(read_keys_file)
                    .unwrap_or_default(),
                url_keys: Vec::new(),
                next_url_sync: tokio::time::Instant::now(),
                awaiting_url: sources.url.is_some(),
                sources,
            })
            .collect();
        for f in &following {
            if !f.awaiting_url {
                if let Some(pool) = self.app.state.pool(f.pool) {
                    pool.forget_dormant();
                }
            }
        }
        self.save();
        let mut last_counter_save = tokio::time::Instant::now();
        let mut poll = tokio::time::interval(FILE_POLL);
        loop {
            tokio::select! {
                _ = self.app.state.keys_changed.notified() => {
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
            for f in following.iter_mut() {
                self.follow(f).await;
            }
            if last_counter_save.elapsed() >= COUNTER_SAVE_EVERY {
                self.save();
                last_counter_save = tokio::time::Instant::now();
            }
        }
    }
}
