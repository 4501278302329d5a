//! Keeping the model list fresh (SPEC §7): fetched at start and every `refresh_secs`
//! (jittered), failures retried with backoff, the last good list kept and persisted.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Config, HttpUrl};
use crate::domain::catalogue::OPENROUTER_INDEX;
use crate::domain::models::{
    parse_list, ListError, ListSource, ModelList, Snapshot, EMBEDDED_LIST,
};
use crate::gateway::app::App;
use crate::upstream::client::{DocumentError, HttpClient};
use crate::util::atomic_file::write_atomic;

const FIRST_RETRY: Duration = Duration::from_secs(30);
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;
const LIST_FILE: &str = "models.json";

fn list_path(config: &Config) -> Option<PathBuf> {
    config.state_dir.as_ref().map(|dir| dir.join(LIST_FILE))
}

/// The snapshot to serve before the first fetch finishes: the last good list saved in
/// `state_dir`, else the one embedded in the binary.
pub fn startup_snapshot(config: &Config) -> Snapshot {
    if let Some(path) = list_path(config) {
        match std::fs::read(&path) {
            Ok(bytes) => match parse_list(&bytes) {
                Ok(list) => {
                    let saved_at = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .unwrap_or_else(|_| SystemTime::now());
                    log::info!(
                        "model list: {} models from {}",
                        list.models.len(),
                        path.display()
                    );
                    return Snapshot {
                        list,
                        source: ListSource::StateDir,
                        loaded_at: saved_at,
                    };
                }
                Err(e) => log::warn!("ignoring saved model list {}: {e}", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot read saved model list {}: {e}", path.display()),
        }
    }
    let list = parse_list(EMBEDDED_LIST).unwrap_or_else(|e| {
        // The embedded list is validated by a unit test; reaching this is a build defect.
        panic!("embedded model list is invalid: {e}")
    });
    log::info!(
        "model list: {} models from the embedded snapshot",
        list.models.len()
    );
    Snapshot {
        list,
        source: ListSource::Embedded,
        loaded_at: SystemTime::now(),
    }
}

/// Why a refresh kept the current list.
#[derive(Debug)]
pub enum RefreshError {
    Fetch(DocumentError),
    List { url: HttpUrl, error: ListError },
}

impl fmt::Display for RefreshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshError::Fetch(e) => e.fmt(f),
            RefreshError::List { url, error } => write!(f, "{url}: {error}"),
        }
    }
}

impl std::error::Error for RefreshError {}

pub struct Refresher {
    app: Arc<App>,
    client: HttpClient,
}

impl Refresher {
    pub fn new(app: Arc<App>) -> Self {
        Refresher {
            app,
            client: HttpClient::new(4),
        }
    }

    async fn fetch(&self) -> Result<(ModelList, bytes::Bytes), RefreshError> {
        let cfg = &self.app.config;
        let url = &cfg.models.source_url;
        let body = self
            .client
            .get_document(
                url,
                "application/json",
                cfg.upstream.connect_timeout,
                cfg.upstream.timeout,
                MAX_LIST_BYTES,
            )
            .await
            .map_err(RefreshError::Fetch)?;
        let list = parse_list(&body).map_err(|error| RefreshError::List {
            url: url.clone(),
            error,
        })?;
        Ok((list, body))
    }

    /// Fetch once; on success swap the snapshot in, lift refresh-bound cooldowns and
    /// persist the list. On failure the current snapshot stays.
    pub async fn refresh_once(&self) -> Result<usize, RefreshError> {
        let (list, raw) = self.fetch().await?;
        let count = list.models.len();
        let now = SystemTime::now();
        let listed: std::collections::HashSet<String> = list
            .models
            .iter()
            .map(|m| m.id.clone())
            .chain(list.fallback.clone())
            .collect();
        self.app.state.registry.replace(Snapshot {
            list,
            source: ListSource::Remote,
            loaded_at: now,
        });
        // OpenRouter endpoints leave with the list; other providers' stay configured.
        self.app.state.cooldowns.on_refresh(now, |endpoint| {
            endpoint.provider != OPENROUTER_INDEX || listed.contains(&*endpoint.provider_model)
        });
        if let Some(path) = list_path(&self.app.config) {
            if let Err(e) = write_atomic(&path, &raw) {
                log::warn!("cannot save the model list to {}: {e}", path.display());
            }
        }
        Ok(count)
    }
}

/// `base` ± 5 %, so a fleet of gateways does not fetch in lockstep.
fn jittered(base: Duration) -> Duration {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    let unit = (hasher.finish() % 10_000) as f64 / 10_000.0; // [0, 1)
    base.mul_f64(0.95 + unit * 0.10)
}

/// Next wait after a failure: 30 s, doubling, capped at the refresh interval.
fn next_backoff(previous: Option<Duration>, cap: Duration) -> Duration {
    previous.map_or(FIRST_RETRY, |d| d * 2).min(cap)
}

#[async_trait]
impl BackgroundService for Refresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let interval = self.app.config.models.refresh;
        let mut backoff: Option<Duration> = None;
        loop {
            self.app
                .state
                .refresh_reports
                .send_modify(|report| report.running = true);
            let result = self.refresh_once().await;
            let wait = match &result {
                Ok(count) => {
                    log::info!("model list refreshed: {count} models");
                    backoff = None;
                    jittered(interval)
                }
                Err(e) => {
                    let wait = next_backoff(backoff, interval);
                    backoff = Some(wait);
                    log::warn!(
                        "model list refresh failed, keeping the current list; retry in {}s: {e}",
                        wait.as_secs()
                    );
                    wait
                }
            };
            self.app.state.refresh_reports.send_modify(|report| {
                report.generation += 1;
                report.running = false;
                report.result = Some(result.map_err(|e| Arc::new(e) as _));
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.app.state.refresh_now.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30s_and_is_capped() {
        let cap = Duration::from_secs(200);
        let mut d = None;
        let mut seen = vec![];
        for _ in 0..5 {
            let next = next_backoff(d, cap);
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, [30, 60, 120, 200, 200]);
    }

    #[test]
    fn jitter_stays_within_five_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(3600)).as_secs_f64();
            assert!((3420.0..=3780.0).contains(&d), "{d}");
        }
    }
}
