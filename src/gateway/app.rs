//! The state shared by every request and background task.

use std::time::SystemTime;

use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::domain::models::{Registry, Snapshot};
use crate::domain::outcome::CooldownPolicy;
use crate::services::refresh::RefreshReport;
use crate::state::client_limits::ClientLimits;
use crate::state::cooldowns::ModelCooldowns;
use crate::state::key_pool::KeyPool;
use crate::upstream::client::HttpClient;

pub struct App {
    pub config: Config,
    pub registry: Registry,
    pub cooldowns: ModelCooldowns,
    pub keys: KeyPool,
    /// Per-client `rpm` budgets, checked on chat routes.
    pub client_limits: ClientLimits,
    pub client: HttpClient,
    /// Wakes the refresher early (`POST /admin/refresh`).
    pub refresh_now: Notify,
    /// The refresher publishes each attempt's result here.
    pub refresh_reports: watch::Sender<RefreshReport>,
}

impl App {
    pub fn new(config: Config, initial: Snapshot) -> Self {
        App {
            keys: KeyPool::new(&config.upstream.api_keys),
            client_limits: ClientLimits::new(&config.auth.client_keys),
            client: HttpClient::new(config.server.upstream_keepalive_pool_size),
            registry: Registry::new(initial),
            cooldowns: ModelCooldowns::default(),
            refresh_now: Notify::new(),
            refresh_reports: watch::Sender::new(RefreshReport::default()),
            config,
        }
    }

    pub fn cooldown_policy(&self) -> CooldownPolicy {
        CooldownPolicy {
            rate_limit: self.config.routing.rate_limit_cooldown,
            error: self.config.routing.error_cooldown,
            until_refresh: self.config.models.refresh,
        }
    }

    /// Listed models not cooling / cooling at `now` (the list's fallback is not counted).
    pub fn model_tally(&self, snapshot: &Snapshot, now: SystemTime) -> (usize, usize) {
        let cooling = snapshot
            .list
            .models
            .iter()
            .filter(|m| self.cooldowns.cooling_until(&m.id, now).is_some())
            .count();
        (snapshot.list.models.len() - cooling, cooling)
    }
}
