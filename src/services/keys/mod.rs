//! Key sync (SPEC §11): a background service that saves key state on every change, follows
//! the keys file and the key URL, and merges the three sources into the pool.

pub mod document;
pub mod sources;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::HttpUrl;
use crate::gateway::app::App;
use crate::upstream::client::{DocumentError, HttpClient};
use crate::util::atomic_file::write_atomic;
use sources::{merge_sources, parse_keys_csv, read_keys_file};

/// How often the keys file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// Counters change on every request; they are saved with state changes and at most
/// this often otherwise.
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
        let Some(path) = document::keys_path(&self.app.config) else {
            return;
        };
        let bytes = document::encode(&self.app.state.keys.saved(), SystemTime::now());
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
