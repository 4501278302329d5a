//! OpenRouter's daily limit, learned (SPEC §12 "Known limits"): `GET {base_url}/key` per
//! key at start, every `models.refresh_secs` and soon after a daily-cap answer. Its
//! `free_model_daily_requests {limit, remaining, used}` tells how much of today's free
//! quota is left, and `creator_user_id` which keys share one account (one count).
//!
//! In the background only: no request ever waits for it. A failing lookup changes
//! nothing; the first failure of a run of failures is logged, the rest are not.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::domain::catalogue::OPENROUTER_INDEX;
use crate::domain::key_info::{parse_key_info, KeyInfo, KeyInfoError};
use crate::gateway::app::App;
use crate::upstream::client::{DocumentError, DocumentGet, HttpClient};
use crate::util::secret::mask_key;

const MAX_KEY_DOCUMENT: usize = 64 * 1024;
/// A burst of daily-cap answers asks `/key` once.
const MIN_RECHECK: Duration = Duration::from_secs(10);

/// Why one `/key` lookup told nothing.
#[derive(Debug)]
enum LookupError {
    Fetch(DocumentError),
    Parse(KeyInfoError),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Fetch(e) => e.fmt(f),
            LookupError::Parse(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

pub struct QuotaWatch {
    app: Arc<App>,
    client: HttpClient,
}

impl QuotaWatch {
    pub fn new(app: Arc<App>) -> Self {
        QuotaWatch {
            app,
            client: HttpClient::new(2),
        }
    }

    async fn lookup(&self, secret: &str) -> Result<KeyInfo, LookupError> {
        let upstream = &self.app.config.upstream;
        let get = DocumentGet {
            path_suffix: "/key",
            bearer: Some(secret),
            accept: "application/json",
            connect_timeout: upstream.connect_timeout,
            timeout: upstream.timeout,
            limit: MAX_KEY_DOCUMENT,
        };
        let body = self
            .client
            .get_authorized_document(&upstream.base_url, get)
            .await
            .map_err(LookupError::Fetch)?;
        parse_key_info(&body).map_err(LookupError::Parse)
    }

    /// Ask about every OpenRouter key once; `failing` remembers whether the last round
    /// failed, so a run of failures is logged once.
    async fn check_all(&self, failing: &mut bool) {
        let pool = self.app.state.openrouter_keys();
        let secrets = pool.secrets();
        if secrets.is_empty() {
            return;
        }
        let mut failed = 0;
        for secret in &secrets {
            match self.lookup(secret).await {
                Ok(info) => {
                    let daily = info.daily.map(|d| {
                        // Whichever of the two says more has been used.
                        (d.limit, d.used.max(d.limit.saturating_sub(d.remaining)))
                    });
                    pool.learn(
                        secret,
                        info.creator_user_id.as_deref(),
                        daily,
                        SystemTime::now(),
                    );
                }
                Err(e) => {
                    failed += 1;
                    if !*failing {
                        log::warn!(
                            "OpenRouter /key lookup for key {} failed, daily limits stay as they are: {e}",
                            mask_key(secret)
                        );
                    }
                }
            }
        }
        if failed == 0 && *failing {
            log::info!("OpenRouter /key lookups work again");
        }
        *failing = failed > 0;
    }
}

#[async_trait]
impl BackgroundService for QuotaWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let learns = self
            .app
            .providers
            .get(OPENROUTER_INDEX)
            .is_some_and(|p| p.quirks.learns_daily_limit);
        if !learns {
            return;
        }
        let mut failing = false;
        loop {
            self.check_all(&mut failing).await;
            let last = tokio::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(self.app.config.models.refresh) => {}
                _ = self.app.state.quota_check_now.notified() => {
                    tokio::time::sleep_until(last + MIN_RECHECK).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
