//! What a request and the background services need: the config, the shared state and
//! the upstream HTTP client.

use crate::config::Config;
use crate::domain::models::Snapshot;
use crate::domain::outcome::CooldownPolicy;
use crate::state::Shared;
use crate::upstream::client::HttpClient;
use crate::upstream::provider::{self, Provider};

pub struct App {
    pub config: Config,
    pub state: Shared,
    pub client: HttpClient,
    /// By provider index, OpenRouter first.
    pub providers: Vec<Provider>,
}

impl App {
    pub fn new(config: Config, initial: Snapshot) -> Self {
        App {
            state: Shared::new(&config, initial),
            client: HttpClient::new(config.server.upstream_keepalive_pool_size),
            providers: provider::providers(&config),
            config,
        }
    }

    /// The name of provider `index` (`"?"` never happens: indices come from the config).
    pub fn provider_name(&self, index: usize) -> &str {
        self.providers.get(index).map_or("?", |p| &*p.name)
    }

    /// How answers of provider `index` are read.
    pub fn cooldown_policy(&self, index: usize) -> CooldownPolicy {
        CooldownPolicy {
            quirks: self
                .providers
                .get(index)
                .map_or(crate::domain::provider::Quirks::OPENROUTER, |p| p.quirks),
            rate_limit: self.config.routing.rate_limit_cooldown,
            error: self.config.routing.error_cooldown,
            until_refresh: self.config.models.refresh,
        }
    }
}
