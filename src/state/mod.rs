//! State shared by every request and background task, behind short synchronous locks
//! (never held across an `.await`); every time-dependent call takes `now`.

pub mod client_limits;
pub mod cooldowns;
pub mod key_pool;
pub mod snapshot;

use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::domain::models::Snapshot;
use client_limits::ClientLimits;
use cooldowns::ModelCooldowns;
use key_pool::KeyPool;
use snapshot::Registry;

/// A refresh failure as the admin answer shows it.
pub type RefreshFailure = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// What the last refresh did, for `/admin/refresh` to report.
#[derive(Debug, Clone, Default)]
pub struct RefreshReport {
    /// Increments on every attempt, successful or not.
    pub generation: u64,
    /// A fetch is under way; its result will not reflect a request made meanwhile.
    pub running: bool,
    /// The number of models listed, or why the list was kept (the error type belongs to
    /// the refresher, a higher layer, so it is held type-erased).
    pub result: Option<Result<usize, RefreshFailure>>,
}

/// Everything that changes while the gateway runs: the list, cooldowns, keys, client
/// budgets, and the refresher's signals.
pub struct Shared {
    pub registry: Registry,
    pub cooldowns: ModelCooldowns,
    pub keys: KeyPool,
    /// Per-client `rpm` budgets, checked on chat routes.
    pub client_limits: ClientLimits,
    /// Wakes the refresher early (`POST /admin/refresh`).
    pub refresh_now: Notify,
    /// The refresher publishes each attempt's result here.
    pub refresh_reports: watch::Sender<RefreshReport>,
}

impl Shared {
    pub fn new(config: &Config, initial: Snapshot) -> Self {
        Shared {
            keys: KeyPool::new(&config.upstream.api_keys),
            client_limits: ClientLimits::new(&config.auth.client_keys),
            registry: Registry::new(initial),
            cooldowns: ModelCooldowns::default(),
            refresh_now: Notify::new(),
            refresh_reports: watch::Sender::new(RefreshReport::default()),
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

    /// Time until the earliest cooling listed model or key is usable again, if any is cooling.
    pub fn usable_again_in(&self, now: SystemTime) -> Option<Duration> {
        let snapshot = self.registry.snapshot();
        let models = snapshot
            .list
            .models
            .iter()
            .filter_map(|m| self.cooldowns.cooling_until(&m.id, now));
        models
            .chain(self.keys.next_return(now))
            .min()
            .map(|until| crate::util::time::until(until, now))
    }
}
