//! Configuration: one YAML file (SPEC §2, §11) turned into typed, validated
//! structs. Nothing outside this module sees YAML or raw strings.
//!
//! Loading runs in four steps:
//!
//! 1. parse the text into a [`serde_yaml::Value`] tree (empty file = defaults);
//! 2. replace `${VAR}` / `${VAR:-default}` in every string value;
//! 3. read the tree key by key into the public structs, converting and
//!    checking each value where its dotted key path is known, so every error
//!    names the key and the offending value, and any key left unread is
//!    reported as unknown;
//! 4. apply the environment shortcuts and the cross-key safety rules.
//!
//! Step 3 deliberately does not go through `#[derive(Deserialize)]`: serde's
//! errors name neither the dotted path (`routing.max_atempts`) nor, for a bad
//! value, the key it belongs to, and recovering that would need a path-tracking
//! deserializer. Reading the tree directly keeps the schema in one place —
//! each key, its default and its rule sit on one line of a section reader.

//!
//! Files: this one holds the typed settings and `Config::load`; `sections` reads each
//! top-level section, `reader` is the dotted-path YAML walker they use, `interpolate`
//! expands `${VAR}`, `url` is the http(s) URL type, `error` the error type.

mod error;
mod interpolate;
mod reader;
mod sections;
mod url;

pub use error::ConfigError;
pub use url::{HttpUrl, InvalidUrl, UrlProblem};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::util::secret::mask_key;

use error::Result;
use interpolate::interpolate_tree;
use reader::{Field, Table};
use sections::*;

/// Smallest accepted `limits.max_body_bytes`: below this even a one-line
/// chat request would be refused with 413.
const MIN_BODY_BYTES: u64 = 1024;

/// Longest accepted duration (one year). Callers add durations to
/// `Instant::now()`, which panics on overflow; no timeout or cooldown
/// needs to be longer than this.
const MAX_SECS: u64 = 365 * 24 * 60 * 60;

/// Name of the client key that `PROXY_API_KEY` adds.
const ENV_CLIENT_KEY_NAME: &str = "default";

// ---------------------------------------------------------------------------
// Public settings
// ---------------------------------------------------------------------------

/// The whole validated configuration.
///
/// `Debug` never shows a whole secret: the sections holding keys mask them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Gateway listener.
    pub listen: SocketAddr,
    /// Prometheus listener (`GET /metrics`).
    pub metrics_listen: SocketAddr,
    /// Where key state and the last good model list survive restarts.
    pub state_dir: Option<PathBuf>,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub models: ModelsSettings,
    pub routing: RoutingSettings,
    pub auth: AuthSettings,
    pub limits: LimitsSettings,
    /// Free providers beside OpenRouter (SPEC §12), in file order.
    pub providers: Vec<ProviderSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            metrics_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9091)),
            state_dir: None,
            server: ServerSettings::default(),
            upstream: UpstreamSettings::default(),
            models: ModelsSettings::default(),
            routing: RoutingSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitsSettings::default(),
            providers: Vec::new(),
        }
    }
}

/// Pingora's own server settings (key names follow Pingora's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub error_log: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub daemon: bool,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    pub upstream_keepalive_pool_size: usize,
    pub work_stealing: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: 2,
            pid_file: "/tmp/free-llm-proxy.pid".to_owned(),
            upgrade_sock: "/tmp/free-llm-proxy-upgrade.sock".to_owned(),
            error_log: None,
            user: None,
            group: None,
            daemon: false,
            grace_period_seconds: 30,
            graceful_shutdown_timeout_seconds: 10,
            upstream_keepalive_pool_size: 128,
            work_stealing: true,
        }
    }
}

/// Where chat requests go, and with which keys.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub base_url: HttpUrl,
    /// Trimmed, non-empty, without duplicates (first occurrence kept).
    pub api_keys: Vec<String>,
    pub api_keys_file: Option<PathBuf>,
    pub api_keys_url: Option<HttpUrl>,
    pub connect_timeout: Duration,
    /// Per attempt, until response headers.
    pub timeout: Duration,
    /// Longest silence tolerated inside a streamed body.
    pub idle_timeout: Duration,
    /// OpenRouter's free-tier limits per account; `rpd: 0` = learn it from `GET /key`.
    pub limits: RateLimits,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            base_url: HttpUrl {
                tls: true,
                host: "openrouter.ai".to_owned(),
                port: 443,
                path: "/api/v1".to_owned(),
            },
            api_keys: Vec::new(),
            api_keys_file: None,
            api_keys_url: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            limits: RateLimits::default(),
        }
    }
}

impl fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("base_url", &self.base_url)
            .field("api_keys", &MaskedList(&self.api_keys))
            .field("api_keys_file", &self.api_keys_file)
            .field("api_keys_url", &self.api_keys_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The ranked list of free models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsSettings {
    pub source_url: HttpUrl,
    pub refresh: Duration,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        ModelsSettings {
            source_url: HttpUrl {
                tls: true,
                host: "shir-man.com".to_owned(),
                port: 443,
                path: "/api/free-llm/top-models".to_owned(),
            },
            refresh: Duration::from_secs(3600),
        }
    }
}

/// How one client request walks the candidate models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// Upstream attempts per client request; at least 1.
    pub max_attempts: u32,
    /// The whole request, all attempts together.
    pub request_deadline: Duration,
    /// Model cooldown after a 429 without a reset hint.
    pub rate_limit_cooldown: Duration,
    /// Model cooldown after a 5xx or a timeout.
    pub error_cooldown: Duration,
    /// Try the list's `fallback.id` last.
    pub use_list_fallback: bool,
    /// Endpoint order within one model, by provider name (SPEC §12). Resolved: every
    /// provider appears once — the named ones first, then `openrouter` and the rest in
    /// file order.
    pub provider_order: Vec<String>,
    /// Attempts per endpoint that live health judges (at least 5).
    pub health_window: u32,
    /// Median time to first byte above which an endpoint is demoted.
    pub slow_ttfb: Duration,
    /// How long a demotion lasts before the endpoint is judged afresh.
    pub demotion: Duration,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            max_attempts: 5,
            request_deadline: Duration::from_secs(120),
            rate_limit_cooldown: Duration::from_secs(300),
            error_cooldown: Duration::from_secs(60),
            use_list_fallback: true,
            provider_order: Vec::new(),
            health_window: 20,
            slow_ttfb: Duration::from_secs(20),
            demotion: Duration::from_secs(120),
        }
    }
}

/// Who may call the gateway.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// Empty means no client auth, which is only allowed on loopback.
    /// Names and keys are unique.
    pub client_keys: Vec<ClientKey>,
    /// Keys for `/admin/*`; empty disables the admin API.
    pub admin_keys: Vec<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("client_keys", &self.client_keys)
            .field("admin_keys", &MaskedList(&self.admin_keys))
            .finish()
    }
}

/// One client of the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Shown in logs and metrics instead of the key.
    pub name: String,
    pub key: String,
    /// Requests per minute allowed to this client; `None` = unlimited.
    pub rpm: Option<u32>,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("name", &self.name)
            .field("key", &mask_key(&self.key))
            .field("rpm", &self.rpm)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsSettings {
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `Debug` for a list of secrets, each masked with [`mask_key`].
struct MaskedList<'a>(&'a [String]);

impl fmt::Debug for MaskedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|key| mask_key(key)))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

impl Config {
    /// Pingora's own server settings (`server:` in the file).
    pub fn pingora_conf(&self) -> pingora::server::configuration::ServerConf {
        let s = &self.server;
        pingora::server::configuration::ServerConf {
            threads: s.threads,
            pid_file: s.pid_file.clone(),
            upgrade_sock: s.upgrade_sock.clone(),
            error_log: s.error_log.clone(),
            user: s.user.clone(),
            group: s.group.clone(),
            daemon: s.daemon,
            work_stealing: s.work_stealing,
            grace_period_seconds: Some(s.grace_period_seconds),
            graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
            upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
            ..Default::default()
        }
    }

    /// Loads the config file (`None` = built-in defaults, nothing read),
    /// taking `${VAR}` values and the env shortcuts from the process
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let env = |name: &str| match std::env::var(name) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                log::warn!("environment variable {name} is not valid UTF-8; treating it as unset");
                None
            }
        };
        let Some(path) = path else {
            return Self::from_yaml_str("", &env);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read config file: {e}")).in_file(path))?;
        Self::from_yaml_str(&text, &env).map_err(|e| e.in_file(path))
    }

    /// Same as [`Config::load`] from YAML text, with an injected environment.
    pub fn from_yaml_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let mut tree: Value = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::new(format!("invalid YAML: {e}")))?;
        interpolate_tree(&mut tree, "", env)?;

        let mut root = Table::new(String::new(), tree)?;
        let defaults = Config::default();
        let config = Config {
            listen: root.get("listen", defaults.listen, Field::socket_addr)?,
            metrics_listen: root.get(
                "metrics_listen",
                defaults.metrics_listen,
                Field::socket_addr,
            )?,
            state_dir: root.get("state_dir", None, Field::optional_path)?,
            server: read_server(root.section("server")?)?,
            upstream: read_upstream(root.section("upstream")?, env)?,
            models: read_models(root.section("models")?)?,
            routing: read_routing(root.section("routing")?)?,
            auth: read_auth(root.section("auth")?, env)?,
            limits: read_limits(root.section("limits")?)?,
            providers: Vec::new(),
        };
        root.finish()?;
        config.validate()?;
        Ok(config)
    }

    /// Rules that involve more than one key.
    fn validate(&self) -> Result<()> {
        if self.auth.client_keys.is_empty() && !is_loopback(self.listen.ip()) {
            return Err(ConfigError::at(
                "listen",
                format!(
                    "{} is not a loopback address and no client key is configured; \
                     refusing to open the gateway to the network without auth. \
                     Add auth.client_keys or set PROXY_API_KEY, or listen on 127.0.0.1",
                    self.listen
                ),
            ));
        }
        // Two listeners on one port clash when they share an address or
        // either binds all addresses.
        let (a, b) = (self.listen, self.metrics_listen);
        if a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        {
            return Err(ConfigError::at(
                "metrics_listen",
                format!("{b} clashes with listen ({a})"),
            ));
        }
        Ok(())
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    // `::ffff:127.0.0.1` is loopback too, though `Ipv6Addr::is_loopback` says no.
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests;

/// Known free-tier limits of one limiter (SPEC §12). `0` = no local limit for that
/// window (at OpenRouter, `rpd: 0` means "learn it from `GET /key`").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per sliding 60 s.
    pub rpm: u32,
    /// Requests per UTC day.
    pub rpd: u32,
}

/// The provider name OpenRouter (`upstream:`) always has.
pub const OPENROUTER: &str = "openrouter";

/// One free OpenAI-compatible provider beside OpenRouter (SPEC §12 `providers:`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `[a-z0-9_-]{1,32}`, unique, not `openrouter`.
    pub name: String,
    /// Its OpenAI-compatible root; `/chat/completions` is appended.
    pub base_url: HttpUrl,
    /// As `upstream.api_keys`: trimmed, non-empty, without duplicates.
    pub api_keys: Vec<String>,
    pub api_keys_file: Option<PathBuf>,
    pub api_keys_url: Option<HttpUrl>,
    /// Per key and model, unless a model entry carries its own.
    pub limits: RateLimits,
    /// Extra request headers (`headers: {name: value}`), names lower-cased.
    pub headers: Vec<(String, String)>,
    /// At least one.
    pub models: Vec<ProviderModel>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_keys", &MaskedList(&self.api_keys))
            .field("api_keys_file", &self.api_keys_file)
            .field("api_keys_url", &self.api_keys_url)
            .field("limits", &self.limits)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("models", &self.models)
            .finish()
    }
}

/// One model a provider serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderModel {
    /// A model of the ranked list, served here under the provider's own `id`.
    SameAs {
        listed_id: String,
        /// The provider's id for it (default: the listed id).
        id: String,
        /// Replaces the provider's `limits` for this model.
        limits: Option<RateLimits>,
    },
    /// A model the list does not have, described here.
    Extra(ExtraModel),
}

/// A provider's own model, routed as if it were listed (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraModel {
    /// Routed id and the provider's id at once.
    pub id: String,
    /// Placed right after this listed id; `None` = after every listed model.
    pub after: Option<String>,
    pub context_length: u64,
    pub max_completion_tokens: Option<u64>,
    /// Absent flags follow the §4 defaults.
    pub capabilities: DeclaredCapabilities,
    pub limits: Option<RateLimits>,
}

/// Capability flags as written in the file; `None` = not said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeclaredCapabilities {
    pub tools: Option<bool>,
    pub tool_choice: Option<bool>,
    pub structured_outputs: Option<bool>,
    pub response_format: Option<bool>,
    pub reasoning: Option<bool>,
    pub seed: Option<bool>,
    pub stop: Option<bool>,
}
