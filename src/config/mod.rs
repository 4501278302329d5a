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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

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
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            max_attempts: 5,
            request_deadline: Duration::from_secs(120),
            rate_limit_cooldown: Duration::from_secs(300),
            error_cooldown: Duration::from_secs(60),
            use_list_fallback: true,
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

/// Shows a secret by its last four characters only (`...abcd`), enough to
/// tell keys apart in logs; keys of four characters or fewer show as `...`.
pub fn mask_key(key: &str) -> String {
    let chars = key.chars().count();
    if chars <= 4 {
        return "...".to_owned();
    }
    let tail: String = key.chars().skip(chars - 4).collect();
    format!("...{tail}")
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
// HttpUrl
// ---------------------------------------------------------------------------

/// A parsed http(s) URL: what the gateway needs to open a connection and
/// build a request line.
///
/// Scheme and host are stored lowercase and an explicit default port is not
/// remembered, so `Display` prints the canonical form of the input; parsing
/// that text again gives an equal value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    pub tls: bool,
    /// Lowercase host name or IP literal; IPv6 without brackets.
    pub host: String,
    /// Explicit port, else 443 for https and 80 for http.
    pub port: u16,
    /// Path without trailing `/` (`""` for none), followed by the `?query`
    /// when the URL has one.
    pub path: String,
}

impl HttpUrl {
    /// Parses an absolute `http://` or `https://` URL. The error quotes the
    /// input and says what is wrong with it.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let invalid = |why: &str| format!("{s:?} is not an http(s) URL: {why}");

        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace"));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid("it does not start with http:// or https://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid(&format!("unsupported scheme {scheme:?}"))),
        };
        if rest.contains('#') {
            return Err(invalid("fragments (#...) are not supported"));
        }

        let (authority, path_and_query) =
            rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            // Credentials would have to become an Authorization header; keep
            // secrets in the api_keys settings instead.
            return Err(invalid("user:password@ in URLs is not supported"));
        }
        let (host, port) = split_host_port(authority).map_err(|why| invalid(&why))?;
        let port = port.unwrap_or(if tls { 443 } else { 80 });

        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
            None => (path_and_query, None),
        };
        // Callers append to the path ("/chat/completions"), so a trailing
        // slash would double up.
        let path = path.trim_end_matches('/');
        let path = match query {
            // A request target needs a path before the query.
            Some(query) if path.is_empty() => format!("/?{query}"),
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };

        Ok(HttpUrl {
            tls,
            host,
            port,
            path,
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    /// The `Host` header value: the host, plus `:port` when the port is not
    /// the scheme's default; IPv6 literals in brackets.
    pub fn host_header(&self) -> String {
        if self.port == self.default_port() {
            self.bracketed_host()
        } else {
            self.authority()
        }
    }

    /// `host:port` with the port always present (IPv6 in brackets): the
    /// address to connect to.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The path for a request line: `path`, or `/` when it is empty.
    pub fn request_target(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.host_header(), self.path)
    }
}

/// Splits a URL authority into a canonical host (lowercase; IPv6 without
/// brackets) and an optional port.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or("the IPv6 address has no closing ']'")?;
            let ip: Ipv6Addr = literal
                .parse()
                .map_err(|_| format!("{literal:?} is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
            };
            (ip.to_string(), port)
        }
        None => {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            if port.is_some_and(|p| p.contains(':')) {
                return Err("IPv6 addresses must be written in brackets, e.g. [::1]".to_owned());
            }
            if name.is_empty() {
                return Err("it has no host".to_owned());
            }
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if !name.chars().all(valid) {
                return Err(format!("{name:?} is not a valid host name"));
            }
            (name.to_ascii_lowercase(), port)
        }
    };
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(format!("{p:?} is not a valid port (1-65535)")),
        })
        .transpose()?;
    Ok((host, port))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A configuration problem. The message says what is wrong and where: the
/// file, the dotted key path, and the offending value (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<PathBuf>,
    message: String,
}

impl ConfigError {
    /// The config file the error is about, when one was read.
    #[cfg(test)]
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The message without the file name.
    #[cfg(test)]
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            message: message.into(),
        }
    }

    /// An error about the value at a dotted key path (`""` = the whole file).
    fn at(key_path: &str, message: impl fmt::Display) -> Self {
        if key_path.is_empty() {
            Self::new(message.to_string())
        } else {
            Self::new(format!("{key_path}: {message}"))
        }
    }

    fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_owned());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

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

fn read_server(mut t: Table) -> Result<ServerSettings> {
    let d = ServerSettings::default();
    let server = ServerSettings {
        threads: t.get("threads", d.threads, |f| f.int(1))?,
        pid_file: t.get("pid_file", d.pid_file, Field::non_empty_string)?,
        upgrade_sock: t.get("upgrade_sock", d.upgrade_sock, Field::non_empty_string)?,
        error_log: t.get("error_log", d.error_log, Field::optional_string)?,
        user: t.get("user", d.user, Field::optional_string)?,
        group: t.get("group", d.group, Field::optional_string)?,
        daemon: t.get("daemon", d.daemon, Field::bool)?,
        grace_period_seconds: t
            .get("grace_period_seconds", d.grace_period_seconds, |f| f.int(0))?,
        graceful_shutdown_timeout_seconds: t.get(
            "graceful_shutdown_timeout_seconds",
            d.graceful_shutdown_timeout_seconds,
            |f| f.int(0),
        )?,
        upstream_keepalive_pool_size: t.get(
            "upstream_keepalive_pool_size",
            d.upstream_keepalive_pool_size,
            |f| f.int(0),
        )?,
        work_stealing: t.get("work_stealing", d.work_stealing, Field::bool)?,
    };
    t.finish()?;
    Ok(server)
}

fn read_upstream(mut t: Table, env: &dyn Fn(&str) -> Option<String>) -> Result<UpstreamSettings> {
    let d = UpstreamSettings::default();
    let mut upstream = UpstreamSettings {
        base_url: t.get("base_url", d.base_url, Field::base_url)?,
        // Entries are split on commas so that `["${OPENROUTER_API_KEY}"]`
        // accepts the same comma-separated list as the env shortcut.
        api_keys: t.get("api_keys", d.api_keys, |f| {
            Ok(distinct_keys(
                f.secret_list()?.iter().flat_map(|k| k.split(',')),
                &f.path,
            ))
        })?,
        api_keys_file: t.get("api_keys_file", d.api_keys_file, Field::optional_path)?,
        api_keys_url: t.get("api_keys_url", d.api_keys_url, Field::optional_url)?,
        connect_timeout: t.get("connect_timeout_secs", d.connect_timeout, Field::secs)?,
        timeout: t.get("timeout_secs", d.timeout, Field::secs)?,
        idle_timeout: t.get("idle_timeout_secs", d.idle_timeout, Field::secs)?,
    };
    t.finish()?;

    // The env shortcut only fills in: keys written in the file win.
    if upstream.api_keys.is_empty() {
        if let Some(list) = env("OPENROUTER_API_KEY") {
            upstream.api_keys = distinct_keys(list.split(','), "OPENROUTER_API_KEY");
        }
    }
    Ok(upstream)
}

fn read_models(mut t: Table) -> Result<ModelsSettings> {
    let d = ModelsSettings::default();
    let models = ModelsSettings {
        source_url: t.get("source_url", d.source_url, Field::url)?,
        refresh: t.get("refresh_secs", d.refresh, Field::secs)?,
    };
    t.finish()?;
    Ok(models)
}

fn read_routing(mut t: Table) -> Result<RoutingSettings> {
    let d = RoutingSettings::default();
    let routing = RoutingSettings {
        max_attempts: t.get("max_attempts", d.max_attempts, |f| f.int(1))?,
        request_deadline: t.get("request_deadline_secs", d.request_deadline, Field::secs)?,
        rate_limit_cooldown: t.get(
            "rate_limit_cooldown_secs",
            d.rate_limit_cooldown,
            Field::secs,
        )?,
        error_cooldown: t.get("error_cooldown_secs", d.error_cooldown, Field::secs)?,
        use_list_fallback: t.get("use_list_fallback", d.use_list_fallback, Field::bool)?,
    };
    t.finish()?;
    Ok(routing)
}

fn read_auth(mut t: Table, env: &dyn Fn(&str) -> Option<String>) -> Result<AuthSettings> {
    // Each key is kept with where it came from, for the uniqueness errors.
    let mut client_keys: Vec<(String, ClientKey)> = t.get("client_keys", Vec::new(), |f| {
        f.items()?
            .into_iter()
            .map(|item| Ok((item.path.clone(), read_client_key(item.table()?)?)))
            .collect()
    })?;
    let admin_keys = t.get("admin_keys", Vec::new(), |f| {
        Ok(distinct_keys(
            f.secret_list()?.iter().map(String::as_str),
            &f.path,
        ))
    })?;
    t.finish()?;

    if let Some(key) = env("PROXY_API_KEY") {
        let key = key.trim();
        if !key.is_empty() {
            let entry = ClientKey {
                name: ENV_CLIENT_KEY_NAME.to_owned(),
                key: key.to_owned(),
                rpm: None,
            };
            client_keys.push(("PROXY_API_KEY".to_owned(), entry));
        }
    }

    // Names identify clients in logs and metrics, keys identify them on the
    // wire: a repeat of either would make two clients indistinguishable.
    let mut names = HashMap::new();
    let mut keys = HashMap::new();
    for (origin, entry) in &client_keys {
        if let Some(first) = names.insert(entry.name.as_str(), origin.as_str()) {
            return Err(ConfigError::at(
                origin,
                format!(
                    "client key name {:?} is already used by {first}",
                    entry.name
                ),
            ));
        }
        if let Some(first) = keys.insert(entry.key.as_str(), origin.as_str()) {
            return Err(ConfigError::at(
                origin,
                format!("the key is the same as {first}'s; client keys must be unique"),
            ));
        }
    }

    Ok(AuthSettings {
        client_keys: client_keys.into_iter().map(|(_, entry)| entry).collect(),
        admin_keys,
    })
}

fn read_client_key(mut t: Table) -> Result<ClientKey> {
    let entry = ClientKey {
        name: t.require("name", Field::non_empty_string)?,
        key: t.require("key", Field::secret)?,
        rpm: t.get("rpm", None, |f| f.int(1).map(Some))?,
    };
    t.finish()?;
    Ok(entry)
}

fn read_limits(mut t: Table) -> Result<LimitsSettings> {
    let d = LimitsSettings::default();
    let limits = LimitsSettings {
        max_body_bytes: t.get("max_body_bytes", d.max_body_bytes, |f| {
            f.int(MIN_BODY_BYTES)
        })?,
    };
    t.finish()?;
    Ok(limits)
}

/// Trims keys, drops empty ones and repeats (keeping the first): an unset
/// `${VAR:-}` or a stray comma must not become a key, and a key listed twice
/// would just be tried, and cooled down, twice.
fn distinct_keys<'a>(keys: impl IntoIterator<Item = &'a str>, origin: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut distinct = Vec::new();
    for key in keys.into_iter().map(str::trim).filter(|k| !k.is_empty()) {
        if seen.insert(key) {
            distinct.push(key.to_owned());
        } else {
            log::warn!(
                "{origin}: key {} is listed more than once; using it once",
                mask_key(key)
            );
        }
    }
    distinct
}

// ---------------------------------------------------------------------------
// Reading the YAML tree
// ---------------------------------------------------------------------------

/// One YAML mapping, read key by key. Each key a reader asks for is removed,
/// so whatever is left at [`Table::finish`] is a key nobody knows.
struct Table {
    path: String,
    entries: Mapping,
    known: Vec<&'static str>,
}

impl Table {
    fn new(path: String, value: Value) -> Result<Table> {
        let entries = match value {
            // A section written as `routing:` with nothing under it.
            Value::Null => Mapping::new(),
            Value::Mapping(entries) => entries,
            other => {
                return Err(ConfigError::at(
                    &path,
                    format!("expected a mapping of keys, got {}", kind(&other)),
                ))
            }
        };
        Ok(Table {
            path,
            entries,
            known: Vec::new(),
        })
    }

    /// Removes `key`; `None` when absent or null (`key:` with no value means
    /// "use the default").
    fn take(&mut self, key: &'static str) -> Option<Field> {
        self.known.push(key);
        match self.entries.shift_remove(key)? {
            Value::Null => None,
            value => Some(Field {
                path: join(&self.path, key),
                value,
            }),
        }
    }

    /// The value of `key` converted by `convert`, or `default` when absent.
    fn get<T>(
        &mut self,
        key: &'static str,
        default: T,
        convert: impl FnOnce(&Field) -> Result<T>,
    ) -> Result<T> {
        self.take(key).map_or(Ok(default), |field| convert(&field))
    }

    fn require<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&Field) -> Result<T>,
    ) -> Result<T> {
        match self.take(key) {
            Some(field) => convert(&field),
            None => Err(ConfigError::at(&join(&self.path, key), "is required")),
        }
    }

    /// The nested mapping under `key` (empty when absent).
    fn section(&mut self, key: &'static str) -> Result<Table> {
        let path = join(&self.path, key);
        Table::new(
            path,
            self.take(key).map_or(Value::Null, |field| field.value),
        )
    }

    /// Fails on any key that no reader asked for.
    fn finish(self) -> Result<()> {
        let unknown: Vec<String> = self
            .entries
            .keys()
            .map(|key| {
                let key = key_text(key);
                let path = join(&self.path, &key);
                match closest_key(&key, &self.known) {
                    Some(known) => {
                        format!("'{path}' (did you mean '{}'?)", join(&self.path, known))
                    }
                    None => format!("'{path}'"),
                }
            })
            .collect();
        match unknown.as_slice() {
            [] => Ok(()),
            [one] => Err(ConfigError::new(format!("unknown config key {one}"))),
            many => Err(ConfigError::new(format!(
                "unknown config keys {}",
                many.join(", ")
            ))),
        }
    }
}

/// A value found at a dotted key path.
struct Field {
    path: String,
    value: Value,
}

impl Field {
    fn error(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::at(&self.path, message)
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("expected {what}, got {}", describe(&self.value)))
    }

    fn str(&self) -> Result<&str> {
        match &self.value {
            Value::String(s) => Ok(s),
            // A number or bool is not silently turned into text: `0123`
            // would come back as "123".
            _ => Err(self.expected("a string (quote the value)")),
        }
    }

    /// A required name or path; surrounding whitespace is never meant.
    fn non_empty_string(&self) -> Result<String> {
        match self.str()?.trim() {
            "" => Err(self.error("must not be empty")),
            s => Ok(s.to_owned()),
        }
    }

    /// An optional setting: `""` means unset, so `${VAR:-}` can switch it off.
    fn optional_string(&self) -> Result<Option<String>> {
        Ok(Some(self.str()?)
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    }

    fn optional_path(&self) -> Result<Option<PathBuf>> {
        Ok(self.optional_string()?.map(PathBuf::from))
    }

    /// A key or token: trimmed, and never echoed in an error.
    fn secret(&self) -> Result<String> {
        match &self.value {
            Value::String(s) if s.trim().is_empty() => Err(self.error("must not be empty")),
            Value::String(s) => Ok(s.trim().to_owned()),
            other => Err(self.error(format!(
                "expected a string (quote the value), got {}",
                kind(other)
            ))),
        }
    }

    /// A list of secrets, untrimmed and unfiltered.
    fn secret_list(&self) -> Result<Vec<String>> {
        self.items()?
            .into_iter()
            .map(|item| match &item.value {
                Value::String(s) => Ok(s.clone()),
                other => Err(item.error(format!(
                    "expected a string (quote the value), got {}",
                    kind(other)
                ))),
            })
            .collect()
    }

    fn bool(&self) -> Result<bool> {
        match &self.value {
            Value::Bool(b) => Ok(*b),
            // Interpolated values are always strings.
            Value::String(s) if s.trim() == "true" => Ok(true),
            Value::String(s) if s.trim() == "false" => Ok(false),
            _ => Err(self.expected("true or false")),
        }
    }

    /// A non-negative integer of at least `min`. Strings holding an integer
    /// are accepted because `${VAR}` always produces a string.
    fn int<T: TryFrom<u64>>(&self, min: u64) -> Result<T> {
        let n = match &self.value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= min => {
                T::try_from(n).map_err(|_| self.error(format!("{n} is too large")))
            }
            _ => Err(self.expected(&format!("an integer >= {min}"))),
        }
    }

    /// A duration in whole seconds, from 1 to [`MAX_SECS`].
    fn secs(&self) -> Result<Duration> {
        match self.int(1) {
            Ok(secs) if secs <= MAX_SECS => Ok(Duration::from_secs(secs)),
            _ => Err(self.expected(&format!("a whole number of seconds from 1 to {MAX_SECS}"))),
        }
    }

    fn url(&self) -> Result<HttpUrl> {
        HttpUrl::parse(self.str()?).map_err(|why| self.error(why))
    }

    fn optional_url(&self) -> Result<Option<HttpUrl>> {
        match self.str()? {
            "" => Ok(None),
            _ => self.url().map(Some),
        }
    }

    /// The API root that request paths are appended to, so no query.
    fn base_url(&self) -> Result<HttpUrl> {
        let url = self.url()?;
        if url.path.contains('?') {
            return Err(self.error(format!("{url} must not have a ?query")));
        }
        Ok(url)
    }

    fn socket_addr(&self) -> Result<SocketAddr> {
        let text = self.str()?;
        let addr = parse_listen_addr(text).ok_or_else(|| {
            self.error(format!(
                "{text:?} is not a host:port address \
                 (expected e.g. \"127.0.0.1:8080\", \"[::1]:8080\" or \"localhost:8080\")"
            ))
        })?;
        if addr.port() == 0 {
            return Err(self.error(format!("{text:?} has port 0; a fixed port is required")));
        }
        Ok(addr)
    }

    /// The items of a list, each with its indexed path. A single value
    /// counts as a one-item list, so `admin_keys: "${ADMIN_KEY}"` works.
    fn items(&self) -> Result<Vec<Field>> {
        match &self.value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    path: format!("{}[{i}]", self.path),
                    value: value.clone(),
                })
                .collect()),
            Value::Mapping(_) => Err(self.expected("a list")),
            value => Ok(vec![Field {
                path: self.path.clone(),
                value: value.clone(),
            }]),
        }
    }

    fn table(&self) -> Result<Table> {
        Table::new(self.path.clone(), self.value.clone())
    }
}

/// Accepts `ip:port`, `[ipv6]:port` and `localhost:port`. Other host names
/// are refused rather than resolved: what a name resolves to can change
/// after the config was checked, and the loopback rule depends on it.
fn parse_listen_addr(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (host, port) = text.rsplit_once(':')?;
    if !host.eq_ignore_ascii_case("localhost") {
        return None;
    }
    Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port.parse().ok()?)))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => describe(other),
    }
}

/// A value as shown in an error: scalars as written, collections by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        other => kind(other).to_owned(),
    }
}

/// The kind of a value, for errors that must not echo it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The known key an unknown one was most likely meant to be: a small typo
/// (up to a third of the name), or a duration written without `_secs`.
fn closest_key<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(secs) = known
        .iter()
        .find(|k| k.strip_suffix("_secs") == Some(unknown))
    {
        return Some(secs);
    }
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(distance, k)| distance * 3 <= k.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance, one row at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------
// Interpolation
// ---------------------------------------------------------------------------

/// Replaces variable references in every string value of the tree (not in
/// keys: a key is part of the schema, not data).
fn interpolate_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, env).map_err(|why| ConfigError::at(path, why))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(entries) => {
            for (key, item) in entries.iter_mut() {
                interpolate_tree(item, &join(path, &key_text(key)), env)?;
            }
        }
        Value::Tagged(tagged) => interpolate_tree(&mut tagged.value, path, env)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}` in one string.
///
/// `$$` and a `$` not followed by `{` are kept as written; the second `$` of
/// `$$` does not start a reference, so `$${X}` stays literal. Substituted
/// values are not scanned again, so a secret containing `${` is safe.
/// Errors never quote the whole string: it may hold a secret.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('{') {
            let end = reference
                .find('}')
                .ok_or("unterminated \"${\": a variable reference needs a closing \"}\"")?;
            out.push_str(&resolve(&reference[..end], env)?);
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` reference body (`VAR` or `VAR:-default`).
fn resolve(reference: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "invalid variable name {name:?}: expected ${{NAME}} or ${{NAME:-default}} \
             with NAME made of letters, digits and _"
        ));
    }
    match (env(name), default) {
        // Shell semantics: `:-` also replaces a set-but-empty variable.
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(format!(
            "environment variable {name} is not set \
             (write ${{{name}:-}} to make it optional)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment holding exactly `vars`.
    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn parse(yaml: &str, vars: &[(&str, &str)]) -> Result<Config> {
        Config::from_yaml_str(yaml, &env(vars))
    }

    fn parse_ok(yaml: &str, vars: &[(&str, &str)]) -> Config {
        parse(yaml, vars).unwrap_or_else(|e| panic!("should load:\n{yaml}\nerror: {e}"))
    }

    fn parse_err(yaml: &str, vars: &[(&str, &str)]) -> String {
        match parse(yaml, vars) {
            Ok(config) => panic!("should be rejected:\n{yaml}\ngot: {config:#?}"),
            Err(e) => e.to_string(),
        }
    }

    const SPEC_EXAMPLE: &str = r#"
listen: "127.0.0.1:8080"            # gateway listener (host:port)
metrics_listen: "127.0.0.1:9091"    # Prometheus listener, GET /metrics
state_dir: "/var/lib/free-llm-proxy" # optional
server:
  threads: 2
  grace_period_seconds: 30
upstream:
  base_url: "https://openrouter.ai/api/v1"
  api_keys: ["${OPENROUTER_API_KEY}"] # one or more; empty entries ignored
  api_keys_file: ""                 # optional: one key per line, # comments
  api_keys_url: ""                  # optional: CSV export, first column = key
  connect_timeout_secs: 5
  timeout_secs: 30                  # per attempt, until response headers
  idle_timeout_secs: 60             # max silence inside a streamed body
models:
  source_url: "https://shir-man.com/api/free-llm/top-models"
  refresh_secs: 3600
routing:
  max_attempts: 5
  request_deadline_secs: 120
  rate_limit_cooldown_secs: 300
  error_cooldown_secs: 60
  use_list_fallback: true
auth:
  client_keys:                      # empty => no auth, loopback listen only
    - { name: "alice", key: "${ALICE_KEY}", rpm: 60 }   # rpm optional
  admin_keys: ["${ADMIN_KEY}"]      # for /admin/*; empty => admin disabled
limits:
  max_body_bytes: 8388608
"#;

    const SPEC_ENV: &[(&str, &str)] = &[
        ("OPENROUTER_API_KEY", "sk-or-v1-first,sk-or-v1-second"),
        ("ALICE_KEY", "alice-secret-key"),
        ("ADMIN_KEY", "admin-secret-key"),
    ];

    #[test]
    fn empty_files_give_the_built_in_defaults() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "server:\nrouting: ~\n",
        ] {
            assert_eq!(parse_ok(text, &[]), Config::default(), "for {text:?}");
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
        assert_eq!(c.state_dir, None);
        assert_eq!(c.server.threads, 2);
        assert_eq!(c.server.pid_file, "/tmp/free-llm-proxy.pid");
        assert_eq!(c.server.upgrade_sock, "/tmp/free-llm-proxy-upgrade.sock");
        assert_eq!((c.server.daemon, c.server.work_stealing), (false, true));
        assert_eq!(c.server.grace_period_seconds, 30);
        assert_eq!(c.server.graceful_shutdown_timeout_seconds, 10);
        assert_eq!(c.server.upstream_keepalive_pool_size, 128);
        assert_eq!(
            c.upstream.base_url.to_string(),
            "https://openrouter.ai/api/v1"
        );
        assert!(c.upstream.api_keys.is_empty());
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.upstream.timeout, Duration::from_secs(30));
        assert_eq!(c.upstream.idle_timeout, Duration::from_secs(60));
        assert_eq!(
            c.models.source_url.to_string(),
            "https://shir-man.com/api/free-llm/top-models"
        );
        assert_eq!(c.models.refresh, Duration::from_secs(3600));
        assert_eq!(
            c.routing,
            RoutingSettings {
                max_attempts: 5,
                request_deadline: Duration::from_secs(120),
                rate_limit_cooldown: Duration::from_secs(300),
                error_cooldown: Duration::from_secs(60),
                use_list_fallback: true,
            }
        );
        assert!(c.auth.client_keys.is_empty() && c.auth.admin_keys.is_empty());
        assert_eq!(c.limits.max_body_bytes, 8_388_608);
        // The default URLs are built by hand; they must be what parsing gives.
        for url in [&c.upstream.base_url, &c.models.source_url] {
            assert_eq!(HttpUrl::parse(&url.to_string()).as_ref(), Ok(url));
        }
    }

    #[test]
    fn load_without_a_file_gives_defaults() {
        // Only the env shortcuts can differ, and they cannot make it fail on
        // the loopback default listener.
        let config = Config::load(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen, Config::default().listen);
    }

    #[test]
    fn load_reads_the_file_and_names_it_in_errors() {
        let dir =
            std::env::temp_dir().join(format!("free-llm-proxy-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        let bad = dir.join("bad.yaml");
        std::fs::write(&good, "listen: \"127.0.0.1:18080\"\n").unwrap();
        std::fs::write(&bad, "routing:\n  max_attempts: 0\n").unwrap();

        let config = Config::load(Some(&good)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen.port(), 18080);

        let e = Config::load(Some(&bad)).unwrap_err();
        assert_eq!(e.file(), Some(bad.as_path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: routing.max_attempts: expected an integer >= 1, got 0",
                bad.display()
            )
        );

        let missing = dir.join("missing.yaml");
        let e = Config::load(Some(&missing)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read config file:", missing.display())),
            "{e}"
        );

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spec_example_loads() {
        let c = parse_ok(SPEC_EXAMPLE, SPEC_ENV);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/free-llm-proxy")));
        assert_eq!(c.server, ServerSettings::default());
        assert_eq!(c.upstream.api_keys, ["sk-or-v1-first", "sk-or-v1-second"]);
        assert_eq!(
            (c.upstream.api_keys_file, c.upstream.api_keys_url),
            (None, None)
        );
        assert_eq!(c.models, ModelsSettings::default());
        assert_eq!(c.routing, RoutingSettings::default());
        assert_eq!(
            c.auth.client_keys,
            [ClientKey {
                name: "alice".to_owned(),
                key: "alice-secret-key".to_owned(),
                rpm: Some(60),
            }]
        );
        assert_eq!(c.auth.admin_keys, ["admin-secret-key"]);
        assert_eq!(c.limits, LimitsSettings::default());
    }

    #[test]
    fn every_key_can_be_set() {
        let c = parse_ok(
            r#"
listen: "0.0.0.0:80"
metrics_listen: "[::1]:9100"
server:
  threads: 8
  pid_file: /run/p.pid
  upgrade_sock: /run/u.sock
  error_log: /var/log/e.log
  user: proxy
  group: proxy
  daemon: true
  grace_period_seconds: 0
  graceful_shutdown_timeout_seconds: 5
  upstream_keepalive_pool_size: 0
  work_stealing: false
upstream:
  base_url: "http://10.0.0.2:8000/v1/"
  api_keys_file: /etc/keys.txt
  api_keys_url: "https://docs.example.com/export?format=csv"
  connect_timeout_secs: 1
  timeout_secs: 2
  idle_timeout_secs: 3
models:
  source_url: "http://127.0.0.1:9000/models.json"
  refresh_secs: 60
routing:
  max_attempts: 1
  request_deadline_secs: 10
  rate_limit_cooldown_secs: 11
  error_cooldown_secs: 12
  use_list_fallback: false
auth:
  client_keys: [{ name: bob, key: bob-key }]
limits:
  max_body_bytes: 1024
"#,
            &[],
        );
        assert_eq!(c.listen.to_string(), "0.0.0.0:80");
        assert_eq!(c.metrics_listen.to_string(), "[::1]:9100");
        assert_eq!(
            c.server,
            ServerSettings {
                threads: 8,
                pid_file: "/run/p.pid".to_owned(),
                upgrade_sock: "/run/u.sock".to_owned(),
                error_log: Some("/var/log/e.log".to_owned()),
                user: Some("proxy".to_owned()),
                group: Some("proxy".to_owned()),
                daemon: true,
                grace_period_seconds: 0,
                graceful_shutdown_timeout_seconds: 5,
                upstream_keepalive_pool_size: 0,
                work_stealing: false,
            }
        );
        assert_eq!(c.upstream.base_url.to_string(), "http://10.0.0.2:8000/v1");
        assert_eq!(
            c.upstream.api_keys_file,
            Some(PathBuf::from("/etc/keys.txt"))
        );
        assert_eq!(
            c.upstream.api_keys_url.map(|u| u.to_string()).as_deref(),
            Some("https://docs.example.com/export?format=csv")
        );
        assert_eq!(
            [
                c.upstream.connect_timeout,
                c.upstream.timeout,
                c.upstream.idle_timeout
            ],
            [1, 2, 3].map(Duration::from_secs)
        );
        assert_eq!(c.models.source_url.authority(), "127.0.0.1:9000");
        assert_eq!(c.models.refresh, Duration::from_secs(60));
        assert_eq!(
            c.routing,
            RoutingSettings {
                max_attempts: 1,
                request_deadline: Duration::from_secs(10),
                rate_limit_cooldown: Duration::from_secs(11),
                error_cooldown: Duration::from_secs(12),
                use_list_fallback: false,
            }
        );
        assert_eq!(c.auth.client_keys[0].rpm, None);
        assert_eq!(c.limits.max_body_bytes, 1024);
    }

    #[test]
    fn interpolation_forms() {
        let vars = &[
            ("A", "x"),
            ("EMPTY", ""),
            ("NESTED", "${A}"),
            ("PRICE", "$5"),
        ];
        let cases = [
            ("no reference", "no reference"),
            ("${A}", "x"),
            ("pre-${A}-post", "pre-x-post"),
            ("${A}${A}", "xx"),
            ("${EMPTY}", ""),
            ("${UNSET:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${A:-fallback}", "x"),
            ("${UNSET:-}", ""),
            ("${UNSET:-a:-b}", "a:-b"),
            ("${NESTED}", "${A}"), // substituted text is not expanded again
            ("${PRICE}", "$5"),
            ("$$", "$$"),
            ("$${A}", "$${A}"),
            ("a$b", "a$b"),
            ("cost: $", "cost: $"),
            ("{A}", "{A}"),
        ];
        for (template, expected) in cases {
            assert_eq!(
                interpolate(template, &env(vars)).as_deref(),
                Ok(expected),
                "for {template:?}"
            );
        }
    }

    #[test]
    fn interpolation_errors_name_the_variable_and_the_key() {
        let cases: &[(&str, &[&str])] = &[
            (
                "server: {pid_file: \"${NOPE}\"}",
                &["server.pid_file: environment variable NOPE is not set"],
            ),
            (
                "upstream: {api_keys: [\"${OPENROUTER_API_KEY}\"]}",
                &["upstream.api_keys[0]: environment variable OPENROUTER_API_KEY is not set"],
            ),
            (
                "auth: {client_keys: [{name: a, key: \"${ALICE_KEY}\"}]}",
                &["auth.client_keys[0].key: environment variable ALICE_KEY is not set"],
            ),
            (
                "server: {pid_file: \"/run/${RUN\"}",
                &["server.pid_file: unterminated \"${\""],
            ),
            (
                "server: {pid_file: \"${}\"}",
                &["server.pid_file: invalid variable name \"\""],
            ),
            (
                "server: {pid_file: \"${A B}\"}",
                &["server.pid_file: invalid variable name \"A B\""],
            ),
            (
                "server: {pid_file: \"${A-b}\"}",
                &["invalid variable name \"A-b\""],
            ),
            // Unknown sections are interpolated too, before the key check.
            (
                "extra: {deep: [\"${GONE}\"]}",
                &["extra.deep[0]: environment variable GONE is not set"],
            ),
        ];
        for (yaml, expected) in cases {
            let e = parse_err(yaml, &[]);
            for part in *expected {
                assert!(e.contains(part), "{e:?} should contain {part:?}");
            }
        }
        // A malformed reference must not echo the secret around it.
        let e = parse_err("auth: {admin_keys: [\"sk-very-secret-${OOPS\"]}", &[]);
        assert!(!e.contains("sk-very-secret"), "{e}");
    }

    #[test]
    fn interpolation_reaches_nested_values_and_feeds_typed_keys() {
        let vars = &[
            ("KEY", "k-from-env"),
            ("RPM", "30"),
            ("PORT", "9000"),
            ("FALLBACK", "false"),
        ];
        let c = parse_ok(
            r#"
listen: "127.0.0.1:${PORT}"
routing:
  max_attempts: "${ATTEMPTS:-3}"
  use_list_fallback: "${FALLBACK}"
auth:
  client_keys:
    - { name: "${NAME:-carol}", key: "${KEY}", rpm: "${RPM}" }
"#,
            vars,
        );
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.routing.max_attempts, 3);
        assert!(!c.routing.use_list_fallback);
        assert_eq!(
            c.auth.client_keys,
            [ClientKey {
                name: "carol".to_owned(),
                key: "k-from-env".to_owned(),
                rpm: Some(30),
            }]
        );
        // Keys are not interpolated: a reference there is just an odd key.
        assert_eq!(parse_err("\"${X}\": 1", &[]), "unknown config key '${X}'");
    }

    #[test]
    fn unknown_keys_are_named_by_their_full_path() {
        let cases = [
            (
                "listn: \"127.0.0.1:1\"",
                "unknown config key 'listn' (did you mean 'listen'?)",
            ),
            ("frobnicate: 1", "unknown config key 'frobnicate'"),
            ("5: x", "unknown config key '5'"),
            (
                "routing:\n  max_atempts: 3",
                "unknown config key 'routing.max_atempts' (did you mean 'routing.max_attempts'?)",
            ),
            (
                "upstream:\n  timeout: 30",
                "unknown config key 'upstream.timeout' (did you mean 'upstream.timeout_secs'?)",
            ),
            (
                "auth:\n  client_keys:\n    - {name: a, key: k1}\n    - {name: b, key: k, rpmm: 5}",
                "unknown config key 'auth.client_keys[1].rpmm' \
                 (did you mean 'auth.client_keys[1].rpm'?)",
            ),
            (
                "server:\n  colour: blue\n  threads: 2\n  flavour: x",
                "unknown config keys 'server.colour', 'server.flavour'",
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
        }
    }

    #[test]
    fn bad_values_name_the_key_and_the_value() {
        let cases = [
            (
                "routing: {max_attempts: abc}",
                "routing.max_attempts: expected an integer >= 1, got \"abc\"",
            ),
            (
                "routing: {max_attempts: 0}",
                "routing.max_attempts: expected an integer >= 1, got 0",
            ),
            (
                "routing: {max_attempts: 1.5}",
                "routing.max_attempts: expected an integer >= 1, got 1.5",
            ),
            (
                "routing: {max_attempts: 99999999999}",
                "routing.max_attempts: 99999999999 is too large",
            ),
            (
                "routing: {max_attempts: [1]}",
                "routing.max_attempts: expected an integer >= 1, got a list",
            ),
            (
                "server: {threads: -1}",
                "server.threads: expected an integer >= 1, got -1",
            ),
            (
                "server: {pid_file: \"\"}",
                "server.pid_file: must not be empty",
            ),
            (
                "server: {daemon: yes}",
                "server.daemon: expected true or false, got \"yes\"",
            ),
            (
                "limits: {max_body_bytes: 100}",
                "limits.max_body_bytes: expected an integer >= 1024, got 100",
            ),
            (
                "upstream: {timeout_secs: 0}",
                "upstream.timeout_secs: \
                 expected a whole number of seconds from 1 to 31536000, got 0",
            ),
            (
                "models: {refresh_secs: 1h}",
                "models.refresh_secs: \
                 expected a whole number of seconds from 1 to 31536000, got \"1h\"",
            ),
            (
                "routing: {error_cooldown_secs: 31536001}",
                "routing.error_cooldown_secs: \
                 expected a whole number of seconds from 1 to 31536000, got 31536001",
            ),
            (
                "metrics_listen: \"0.0.0.0:8080\"",
                "metrics_listen: 0.0.0.0:8080 clashes with listen (127.0.0.1:8080)",
            ),
            (
                "upstream: {base_url: \"ftp://example.com\"}",
                "upstream.base_url: \"ftp://example.com\" is not an http(s) URL: \
                 unsupported scheme \"ftp\"",
            ),
            (
                "upstream: {base_url: \"https://example.com/v1?x=1\"}",
                "upstream.base_url: https://example.com/v1?x=1 must not have a ?query",
            ),
            (
                "models: {source_url: \"https:///top\"}",
                "models.source_url: \"https:///top\" is not an http(s) URL: it has no host",
            ),
            (
                "upstream: {api_keys_url: keys.csv}",
                "upstream.api_keys_url: \"keys.csv\" is not an http(s) URL: \
                 it does not start with http:// or https://",
            ),
            (
                "listen: 8080",
                "listen: expected a string (quote the value), got 8080",
            ),
            (
                "listen: \"127.0.0.1:0\"",
                "listen: \"127.0.0.1:0\" has port 0; a fixed port is required",
            ),
            (
                "metrics_listen: \"127.0.0.1:8080\"",
                "metrics_listen: 127.0.0.1:8080 clashes with listen (127.0.0.1:8080)",
            ),
            (
                "routing: 5",
                "routing: expected a mapping of keys, got a number",
            ),
            ("- a\n- b", "expected a mapping of keys, got a list"),
            (
                "auth: {client_keys: {name: a}}",
                "auth.client_keys: expected a list, got a mapping",
            ),
            (
                "auth: {client_keys: [{key: k}]}",
                "auth.client_keys[0].name: is required",
            ),
            (
                "auth: {client_keys: [{name: \" \", key: k}]}",
                "auth.client_keys[0].name: must not be empty",
            ),
            (
                "auth: {client_keys: [{name: a}]}",
                "auth.client_keys[0].key: is required",
            ),
            (
                "auth: {client_keys: [{name: a, key: \"\"}]}",
                "auth.client_keys[0].key: must not be empty",
            ),
            (
                "auth: {client_keys: [{name: a, key: k, rpm: 0}]}",
                "auth.client_keys[0].rpm: expected an integer >= 1, got 0",
            ),
            (
                "auth: {client_keys: [{name: a, key: k1}, {name: a, key: k2}]}",
                "auth.client_keys[1]: client key name \"a\" is already used by auth.client_keys[0]",
            ),
            (
                "auth: {client_keys: [{name: a, key: k1}, {name: b, key: k1}]}",
                "auth.client_keys[1]: the key is the same as auth.client_keys[0]'s; \
                 client keys must be unique",
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
        }

        let e = parse_err("listen: nonsense", &[]);
        assert!(
            e.starts_with("listen: \"nonsense\" is not a host:port address"),
            "{e}"
        );
        for yaml in ["listen: [", "listen: a\nlisten: b"] {
            let e = parse_err(yaml, &[]);
            assert!(e.starts_with("invalid YAML: "), "{e}");
        }
    }

    #[test]
    fn type_errors_on_secrets_do_not_echo_them() {
        let cases = [
            (
                "auth: {client_keys: [sk-secret-1234]}",
                "auth.client_keys[0]: expected a mapping of keys, got a string",
            ),
            (
                "auth: {client_keys: [{name: a, key: 12345678}]}",
                "auth.client_keys[0].key: expected a string (quote the value), got a number",
            ),
            (
                "auth: {admin_keys: [12345678]}",
                "auth.admin_keys[0]: expected a string (quote the value), got a number",
            ),
            (
                "upstream: {api_keys: [12345678]}",
                "upstream.api_keys[0]: expected a string (quote the value), got a number",
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
        }
    }

    #[test]
    fn empty_strings_switch_optional_settings_off() {
        let c = parse_ok(
            "state_dir: \"\"\nserver: {error_log: \"\", user: \"\"}\n\
             upstream: {api_keys_file: \"\", api_keys_url: \"${URL:-}\"}",
            &[],
        );
        assert_eq!(c, Config::default());
    }

    #[test]
    fn key_lists_are_trimmed_split_and_deduplicated() {
        let c = parse_ok(
            "upstream: {api_keys: [\"\", \" k1 \", \"k2,k3\", \"k1\", \",\"]}\n\
             auth: {admin_keys: [\"\", a1, \" a2 \", a1]}",
            &[],
        );
        assert_eq!(c.upstream.api_keys, ["k1", "k2", "k3"]);
        assert_eq!(c.auth.admin_keys, ["a1", "a2"]);
        // A lone string counts as a one-item list.
        let c = parse_ok(
            "auth: {admin_keys: \"${ADMIN_KEY}\"}",
            &[("ADMIN_KEY", "adm")],
        );
        assert_eq!(c.auth.admin_keys, ["adm"]);
    }

    #[test]
    fn openrouter_api_key_fills_upstream_keys_only_when_the_file_has_none() {
        const SHIPPED: &str = "upstream: {api_keys: [\"${OPENROUTER_API_KEY:-}\"]}";
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            ("", &[], &[]),
            ("", &[("OPENROUTER_API_KEY", " a , b,,a ")], &["a", "b"]),
            ("", &[("OPENROUTER_API_KEY", "")], &[]),
            (
                "upstream: {api_keys: [f1]}",
                &[("OPENROUTER_API_KEY", "e1")],
                &["f1"],
            ),
            (
                "upstream: {api_keys: [\"\"]}",
                &[("OPENROUTER_API_KEY", "e1")],
                &["e1"],
            ),
            (SHIPPED, &[], &[]),
            (SHIPPED, &[("OPENROUTER_API_KEY", "")], &[]),
            (SHIPPED, &[("OPENROUTER_API_KEY", "k1,k2")], &["k1", "k2"]),
        ];
        for (yaml, vars, expected) in cases {
            assert_eq!(
                parse_ok(yaml, vars).upstream.api_keys,
                *expected,
                "for {yaml:?} with {vars:?}"
            );
        }
    }

    #[test]
    fn proxy_api_key_adds_the_default_client() {
        let c = parse_ok(
            "auth: {client_keys: [{name: a, key: ka}]}",
            &[("PROXY_API_KEY", " pk ")],
        );
        let names: Vec<_> = c
            .auth
            .client_keys
            .iter()
            .map(|k| (k.name.as_str(), k.key.as_str(), k.rpm))
            .collect();
        assert_eq!(names, [("a", "ka", None), ("default", "pk", None)]);

        assert!(parse_ok("", &[("PROXY_API_KEY", "")])
            .auth
            .client_keys
            .is_empty());

        let e = parse_err(
            "auth: {client_keys: [{name: default, key: ka}]}",
            &[("PROXY_API_KEY", "pk")],
        );
        assert_eq!(
            e,
            "PROXY_API_KEY: client key name \"default\" is already used by auth.client_keys[0]"
        );
        let e = parse_err(
            "auth: {client_keys: [{name: a, key: pk}]}",
            &[("PROXY_API_KEY", "pk")],
        );
        assert_eq!(
            e,
            "PROXY_API_KEY: the key is the same as auth.client_keys[0]'s; \
             client keys must be unique"
        );
    }

    #[test]
    fn a_network_listener_needs_client_keys() {
        let with_key = "auth: {client_keys: [{name: a, key: k}]}";
        let cases = [
            ("127.0.0.1:8080", true),
            ("127.0.0.2:8080", true),
            ("localhost:8080", true),
            ("[::1]:8080", true),
            ("[::ffff:127.0.0.1]:8080", true),
            ("0.0.0.0:8080", false),
            ("10.1.2.3:80", false),
            ("[::]:8080", false),
        ];
        for (listen, loopback) in cases {
            let yaml = format!("listen: \"{listen}\"");
            match parse(&yaml, &[]) {
                Ok(_) => assert!(loopback, "{listen} must be refused without client keys"),
                Err(e) => {
                    assert!(!loopback, "{listen}: {e}");
                    let e = e.to_string();
                    assert!(
                        e.starts_with(&format!("listen: {}", parse_listen_addr(listen).unwrap())),
                        "{e}"
                    );
                    assert!(
                        e.contains("auth.client_keys") && e.contains("PROXY_API_KEY"),
                        "{e}"
                    );
                }
            }
            parse_ok(&format!("{yaml}\n{with_key}"), &[]);
            parse_ok(&yaml, &[("PROXY_API_KEY", "pk")]);
        }
    }

    #[test]
    fn http_url_parts() {
        // input => (tls, host, port, path)
        let cases = [
            (
                "https://openrouter.ai/api/v1",
                (true, "openrouter.ai", 443, "/api/v1"),
            ),
            (
                "https://openrouter.ai/api/v1/",
                (true, "openrouter.ai", 443, "/api/v1"),
            ),
            ("http://example.com", (false, "example.com", 80, "")),
            ("http://example.com/", (false, "example.com", 80, "")),
            ("http://example.com//", (false, "example.com", 80, "")),
            (
                "http://localhost:8081/v1",
                (false, "localhost", 8081, "/v1"),
            ),
            (
                "https://example.com:443/x",
                (true, "example.com", 443, "/x"),
            ),
            ("http://[::1]:8080/v1", (false, "::1", 8080, "/v1")),
            ("https://[2001:DB8::1]/", (true, "2001:db8::1", 443, "")),
            ("http://[0:0::1]:81", (false, "::1", 81, "")),
            (
                "HTTPS://Example.COM/Path",
                (true, "example.com", 443, "/Path"),
            ),
            (
                "https://a.io/top?limit=10&x=y",
                (true, "a.io", 443, "/top?limit=10&x=y"),
            ),
            (
                "https://a.io/top/?limit=10",
                (true, "a.io", 443, "/top?limit=10"),
            ),
            ("https://a.io?limit=10", (true, "a.io", 443, "/?limit=10")),
            ("https://a.io/top?", (true, "a.io", 443, "/top")),
        ];
        for (input, (tls, host, port, path)) in cases {
            let url = HttpUrl::parse(input).unwrap_or_else(|e| panic!("{e}"));
            let parts = (url.tls, url.host.as_str(), url.port, url.path.as_str());
            assert_eq!(parts, (tls, host, port, path), "for {input}");
        }
    }

    #[test]
    fn http_url_host_header_and_display() {
        // input => (host_header, display)
        let cases = [
            (
                "https://openrouter.ai/api/v1/",
                ("openrouter.ai", "https://openrouter.ai/api/v1"),
            ),
            ("http://example.com/", ("example.com", "http://example.com")),
            (
                "http://localhost:8081/v1",
                ("localhost:8081", "http://localhost:8081/v1"),
            ),
            (
                "https://example.com:443/x",
                ("example.com", "https://example.com/x"),
            ),
            (
                "http://example.com:80",
                ("example.com", "http://example.com"),
            ),
            (
                "http://example.com:443",
                ("example.com:443", "http://example.com:443"),
            ),
            (
                "https://example.com:80",
                ("example.com:80", "https://example.com:80"),
            ),
            (
                "http://[::1]:8080/v1",
                ("[::1]:8080", "http://[::1]:8080/v1"),
            ),
            (
                "https://[2001:DB8::1]/",
                ("[2001:db8::1]", "https://[2001:db8::1]"),
            ),
            (
                "HTTPS://Example.COM/Path",
                ("example.com", "https://example.com/Path"),
            ),
            (
                "https://a.io/top?limit=10",
                ("a.io", "https://a.io/top?limit=10"),
            ),
            ("https://a.io?limit=10", ("a.io", "https://a.io/?limit=10")),
        ];
        for (input, (host_header, display)) in cases {
            let url = HttpUrl::parse(input).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(url.host_header(), host_header, "for {input}");
            assert_eq!(url.to_string(), display, "for {input}");
            let reparsed = HttpUrl::parse(display);
            assert_eq!(reparsed.as_ref(), Ok(&url), "round trip of {input}");
        }
    }

    #[test]
    fn http_url_helpers() {
        let url = HttpUrl::parse("https://[::1]/").unwrap();
        assert_eq!(
            (url.scheme(), url.authority(), url.request_target()),
            ("https", "[::1]:443".to_owned(), "/")
        );
        let url = HttpUrl::parse("http://h:81/a?b").unwrap();
        assert_eq!(
            (url.scheme(), url.authority(), url.request_target()),
            ("http", "h:81".to_owned(), "/a?b")
        );
    }

    #[test]
    fn http_url_rejects() {
        let cases = [
            ("ftp://example.com", "unsupported scheme \"ftp\""),
            (
                "example.com/api",
                "it does not start with http:// or https://",
            ),
            ("https://", "it has no host"),
            ("https:///path", "it has no host"),
            ("https://:443", "it has no host"),
            ("http://host:0", "\"0\" is not a valid port"),
            ("http://host:99999", "\"99999\" is not a valid port"),
            ("http://host:", "\"\" is not a valid port"),
            ("http://host:abc/x", "\"abc\" is not a valid port"),
            (
                "http://user:pw@host/",
                "user:password@ in URLs is not supported",
            ),
            ("http://[::1/", "no closing ']'"),
            ("http://[nope]/", "\"nope\" is not an IPv6 address"),
            ("http://[]/", "\"\" is not an IPv6 address"),
            ("http://[::1]x/", "unexpected text after ']'"),
            ("http://::1/", "IPv6 addresses must be written in brackets"),
            ("http://ho st/", "whitespace"),
            ("http://host/a b", "whitespace"),
            ("http://host/#frag", "fragments"),
            ("http://h%41st/", "\"h%41st\" is not a valid host name"),
        ];
        for (input, expected) in cases {
            match HttpUrl::parse(input) {
                Ok(url) => panic!("{input} should be rejected, got {url:?}"),
                Err(e) => assert!(
                    e.starts_with(&format!("{input:?} is not an http(s) URL: "))
                        && e.contains(expected),
                    "{e:?} should contain {expected:?}"
                ),
            }
        }
    }

    #[test]
    fn mask_key_shows_the_last_four_chars() {
        let cases = [
            ("", "..."),
            ("abcd", "..."),
            ("abcde", "...bcde"),
            ("sk-or-v1-0123456789", "...6789"),
            ("ключ-секрет", "...крет"),
        ];
        for (key, masked) in cases {
            assert_eq!(mask_key(key), masked, "for {key:?}");
        }
    }

    #[test]
    fn debug_never_shows_a_whole_secret() {
        let c = parse_ok(SPEC_EXAMPLE, SPEC_ENV);
        for debug in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in [
                "sk-or-v1-first",
                "sk-or-v1-second",
                "alice-secret-key",
                "admin-secret-key",
            ] {
                assert!(!debug.contains(secret), "{secret} leaked in {debug}");
            }
            assert!(
                debug.contains("...irst") && debug.contains("...-key"),
                "{debug}"
            );
            assert!(
                debug.contains("alice"),
                "client names are not secret: {debug}"
            );
        }
    }

    #[test]
    fn config_error_is_a_std_error() {
        let e: Box<dyn std::error::Error> =
            Box::new(ConfigError::at("a.b", "bad").in_file(Path::new("c.yaml")));
        assert_eq!(e.to_string(), "c.yaml: a.b: bad");
        let e = ConfigError::at("", "whole file");
        assert_eq!((e.message(), e.file()), ("whole file", None));
    }

    #[test]
    fn edit_distance_and_suggestions() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("max_atempts", "max_attempts"), 1);
        assert_eq!(
            closest_key("treads", &["threads", "daemon"]),
            Some("threads")
        );
        assert_eq!(closest_key("zzz", &["threads", "daemon"]), None);
    }
}
