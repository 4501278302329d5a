//! State shared by every request and background task, behind short synchronous locks
//! (never held across an `.await`); every time-dependent call takes `now`.

pub mod client_limits;
pub mod cooldowns;
pub mod health;
pub mod key_pool;
pub mod quota;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use crate::config::{Config, ProviderModel, ProviderSettings};
use crate::domain::catalogue::{self, Endpoint, ProviderIndex, OPENROUTER_INDEX};
use crate::domain::models::Snapshot;
use crate::domain::provider::LimitScope;
use client_limits::ClientLimits;
use cooldowns::ModelCooldowns;
use health::{Health, HealthPolicy};
use key_pool::{KeyPool, PoolPolicy};
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
    /// Per endpoint, after model faults.
    pub cooldowns: ModelCooldowns,
    /// One key pool per provider, by [`ProviderIndex`] (OpenRouter first).
    pub pools: Vec<KeyPool>,
    /// Live success and time-to-first-byte per endpoint (SPEC §12).
    pub health: Health<Endpoint>,
    /// Signalled by every pool on a key state change (the persister listens).
    pub keys_changed: Arc<Notify>,
    /// Wakes the `/key` lookups early (after an OpenRouter daily-cap answer).
    pub quota_check_now: Notify,
    /// Per-client `rpm` budgets, checked on chat routes.
    pub client_limits: ClientLimits,
    /// Wakes the refresher early (`POST /admin/refresh`).
    pub refresh_now: Notify,
    /// The refresher publishes each attempt's result here.
    pub refresh_reports: watch::Sender<RefreshReport>,
}

impl Shared {
    pub fn new(config: &Config, initial: Snapshot) -> Self {
        let routing = &config.routing;
        let keys_changed = Arc::new(Notify::new());
        Shared {
            pools: pools(config)
                .into_iter()
                .map(|p| p.notifying(keys_changed.clone()))
                .collect(),
            keys_changed,
            health: Health::new(HealthPolicy {
                window: routing.health_window as usize,
                slow_ttfb: routing.slow_ttfb,
                demotion: routing.demotion,
            }),
            quota_check_now: Notify::new(),
            client_limits: ClientLimits::new(&config.auth.client_keys),
            registry: Registry::new(
                initial,
                config.providers.clone(),
                catalogue::resolve_order(&routing.provider_order, &config.providers),
            ),
            cooldowns: ModelCooldowns::default(),
            refresh_now: Notify::new(),
            refresh_reports: watch::Sender::new(RefreshReport::default()),
        }
    }

    /// OpenRouter's pool.
    pub fn openrouter_keys(&self) -> &KeyPool {
        &self.pools[OPENROUTER_INDEX]
    }

    /// The pool of `provider`.
    pub fn pool(&self, provider: ProviderIndex) -> Option<&KeyPool> {
        self.pools.get(provider)
    }

    /// Routed models usable / cooling at `now` (a model cools when every endpoint does;
    /// the list's fallback is not counted).
    pub fn model_tally(&self, now: SystemTime) -> (usize, usize) {
        let catalogue = self.registry.catalogue();
        let cooling = catalogue
            .models
            .iter()
            .filter(|m| {
                m.endpoints
                    .iter()
                    .all(|e| self.cooldowns.cooling_until(e, now).is_some())
            })
            .count();
        (catalogue.models.len() - cooling, cooling)
    }

    /// Time until the earliest cooling endpoint or key is usable again, if any is cooling.
    pub fn usable_again_in(&self, now: SystemTime) -> Option<Duration> {
        let endpoints = self.cooldowns.active(now).into_iter().map(|(_, c)| c.until);
        let keys = self.pools.iter().filter_map(|p| p.next_return(now));
        endpoints
            .chain(keys)
            .min()
            .map(|until| crate::util::time::until(until, now))
    }
}

/// One pool per provider: OpenRouter counts per account, the others per key and model
/// (SPEC §12 "Whose limit").
fn pools(config: &Config) -> Vec<KeyPool> {
    let openrouter = KeyPool::with_policy(
        &config.upstream.api_keys,
        PoolPolicy {
            scope: LimitScope::Account,
            limits: config.upstream.limits,
            ..PoolPolicy::default()
        },
    );
    std::iter::once(openrouter)
        .chain(config.providers.iter().map(provider_pool))
        .collect()
}

fn provider_pool(provider: &ProviderSettings) -> KeyPool {
    let mut model_limits = HashMap::new();
    let mut models = Vec::new();
    for entry in &provider.models {
        let (id, limits) = match entry {
            ProviderModel::SameAs { id, limits, .. } => (id, *limits),
            ProviderModel::Extra(extra) => (&extra.id, extra.limits),
        };
        let id: Arc<str> = Arc::from(id.as_str());
        if let Some(limits) = limits {
            model_limits.insert(id.clone(), limits);
        }
        models.push(id);
    }
    KeyPool::with_policy(
        &provider.api_keys,
        PoolPolicy {
            scope: LimitScope::KeyAndModel,
            limits: provider.limits,
            model_limits,
            models,
        },
    )
}
