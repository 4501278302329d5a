//! What a request and the background services need: the config, the shared state and
//! the upstream HTTP client.

use crate::config::Config;
use crate::domain::models::Snapshot;
use crate::domain::outcome::CooldownPolicy;
use crate::state::Shared;
use crate::upstream::client::HttpClient;

pub struct App {
    pub config: Config,
    pub state: Shared,
    pub client: HttpClient,
}

impl App {
    pub fn new(config: Config, initial: Snapshot) -> Self {
        App {
            state: Shared::new(&config, initial),
            client: HttpClient::new(config.server.upstream_keepalive_pool_size),
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
}
