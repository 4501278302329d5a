//! Boots the real gateway binary against a [`MockUpstream`].
//!
//! `GatewayBuilder::new(&mock)` starts from a complete config (free loopback
//! ports, a private temp dir, the mock as upstream and list source); tests
//! change it with `set("routing.max_attempts", 2)` and start it. The child's
//! stdout and stderr go to `<dir>/gateway.log`; when a test panics while a
//! `Gateway` is alive, the tail of that log is printed with the failure.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use serde_yaml::{Mapping, Value};

use super::client;
use super::mock::MockUpstream;

pub const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_free-llm-proxy");
/// The upstream key the default config gives the gateway.
pub const TEST_UPSTREAM_KEY: &str = "sk-or-test-key-0001";

const BOOT_TIMEOUT: Duration = Duration::from_secs(15);
const BOOT_POLL: Duration = Duration::from_millis(25);
const LOG_TAIL_LINES: usize = 200;
/// Environment the child never inherits unless set with `env`.
const SCRUBBED_ENV: [&str; 2] = ["OPENROUTER_API_KEY", "PROXY_API_KEY"];

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A port on 127.0.0.1 where nothing listens, outside the ephemeral range that every
/// test's mocks and gateways bind from (port 0), so no parallel test can open it
/// meanwhile (a released `free_port()` can be taken by another test's mock).
pub fn closed_port() -> u16 {
    (1..1024)
        .find(|&port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            matches!(
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        })
        .expect("a closed port below 1024 on 127.0.0.1")
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// Polls `condition` every 10 ms until it holds (true) or `timeout` passes
/// (false). Use as `assert!(wait_until(..).await, "what did not happen")`.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub struct GatewayBuilder {
    config: Value,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dir: TempDir,
}

impl GatewayBuilder {
    /// The default test config: free ports, state in the temp dir, `mock`
    /// as upstream and list source, one upstream key, no client auth.
    pub fn new(mock: &MockUpstream) -> Self {
        let dir = TempDir::new("free-llm-proxy-test");
        // Both listeners are held until both ports are known, so they differ.
        let (gateway, metrics) = (
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            TcpListener::bind("127.0.0.1:0").expect("bind"),
        );
        let port = |l: &TcpListener| l.local_addr().expect("local address").port();
        let config = default_config(
            dir.path(),
            mock,
            &format!("127.0.0.1:{}", port(&gateway)),
            &format!("127.0.0.1:{}", port(&metrics)),
        );
        Self {
            config,
            env: Vec::new(),
            args: Vec::new(),
            dir,
        }
    }

    /// Sets a dotted path (`"routing.max_attempts"`), creating maps on the
    /// way. Values: `&str`, `String`, integers, `bool`, `Vec<_>`, or any
    /// `serde_yaml::Value` (e.g. from `serde_yaml::from_str`).
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let (parent, key) = self.parent_map(path);
        parent.insert(Value::from(key), value.into());
        self
    }

    /// Removes a dotted path (so the gateway's default applies).
    pub fn remove(mut self, path: &str) -> Self {
        let (parent, key) = self.parent_map(path);
        parent.remove(key);
        self
    }

    /// An environment variable for the child (`RUST_LOG`,
    /// `OPENROUTER_API_KEY`, variables for `${VAR}` interpolation, ...).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An extra command-line argument after `--config <file>`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config, starts the gateway and waits until `GET /health`
    /// answers 200 (panics with the log after 15 s, or if it exits).
    pub async fn start(self) -> Gateway {
        let mut gateway = self.spawn();
        gateway.wait_healthy().await;
        gateway
    }

    /// Writes the config and starts the gateway without waiting for it
    /// (for start-up failures: see `Gateway::wait_exit`).
    pub fn spawn(self) -> Gateway {
        let config_path = self.dir.path().join("config.yaml");
        let yaml = serde_yaml::to_string(&self.config).expect("serialize the config");
        std::fs::write(&config_path, yaml).expect("write config.yaml");
        let log_path = self.dir.path().join("gateway.log");
        let child = self
            .command(&config_path, &log_path)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {GATEWAY_BIN}: {e}");
            });
        Gateway {
            addr: config_addr(&self.config, "listen"),
            metrics_addr: config_addr(&self.config, "metrics_listen"),
            dir: self.dir.path().to_path_buf(),
            config_path,
            log_path,
            child,
            log_shown: false,
            _dir: self.dir,
        }
    }

    fn command(&self, config_path: &Path, log_path: &Path) -> Command {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open gateway.log");
        let log_too = log.try_clone().expect("clone the log handle");
        let mut command = Command::new(GATEWAY_BIN);
        command
            .arg("--config")
            .arg(config_path)
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too));
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// The map that holds the last segment of `path`, and that segment.
    fn parent_map<'p>(&mut self, path: &'p str) -> (&mut Mapping, &'p str) {
        let mut segments: Vec<&str> = path.split('.').collect();
        let last = segments.pop().unwrap_or_default();
        let mut node = &mut self.config;
        for segment in segments {
            node = as_map(node)
                .entry(Value::from(segment))
                .or_insert(Value::Null);
        }
        (as_map(node), last)
    }
}

/// `value` as a mapping, replacing anything else by an empty one.
fn as_map(value: &mut Value) -> &mut Mapping {
    if !value.is_mapping() {
        *value = Value::Mapping(Mapping::new());
    }
    match value {
        Value::Mapping(map) => map,
        _ => unreachable!("just made a mapping"),
    }
}

fn default_config(dir: &Path, mock: &MockUpstream, listen: &str, metrics: &str) -> Value {
    let path = |name: &str| dir.join(name).display().to_string();
    let yaml = serde_json::json!({
        "listen": listen,
        "metrics_listen": metrics,
        "state_dir": path("state"),
        "server": {
            "threads": 2,
            "pid_file": path("pid"),
            "upgrade_sock": path("upgrade.sock"),
            "grace_period_seconds": 1,
            "graceful_shutdown_timeout_seconds": 1
        },
        "upstream": {
            "base_url": mock.base_url(),
            "api_keys": [TEST_UPSTREAM_KEY],
            "connect_timeout_secs": 2,
            "timeout_secs": 5,
            "idle_timeout_secs": 5
        },
        "models": {"source_url": mock.list_url(), "refresh_secs": 3600},
        "routing": {"max_attempts": 5, "request_deadline_secs": 30},
        "auth": {"client_keys": [], "admin_keys": []}
    });
    serde_yaml::to_value(yaml).expect("convert the default config")
}

/// The address at `key`, or 127.0.0.1:0 when the test set something that
/// is not one (e.g. to test that start-up is refused).
fn config_addr(config: &Value, key: &str) -> SocketAddr {
    config
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A running gateway; killed (SIGKILL) and its dir removed on drop.
pub struct Gateway {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The private temp dir (config.yaml, gateway.log, state/, pid, ...).
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Child,
    log_shown: bool,
    _dir: TempDir,
}

impl Gateway {
    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the gateway wrote so far (stdout and stderr).
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The JSON log lines whose `event` is `event` (e.g. `request_done`);
    /// a line counts when it holds a JSON object starting at its first `{`.
    pub fn log_events(&self, event: &str) -> Vec<Json> {
        self.logs()
            .lines()
            .filter_map(|line| serde_json::from_str::<Json>(&line[line.find('{')?..]).ok())
            .filter(|json| json.get("event").and_then(Json::as_str) == Some(event))
            .collect()
    }

    /// The body of `GET /metrics` on the metrics listener.
    pub async fn metrics(&self) -> String {
        client::get(self.metrics_addr, "/metrics", &[]).await.text()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`"TERM"`, `"HUP"`, `"QUIT"`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the gateway and removes its dir.
    pub fn stop(self) {
        drop(self);
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail_boot(&format!("exited during start-up ({status})"));
            }
            if self.healthy().await {
                return;
            }
            if Instant::now() >= deadline {
                self.fail_boot(&format!("not healthy within {BOOT_TIMEOUT:?}"));
            }
            tokio::time::sleep(BOOT_POLL).await;
        }
    }

    async fn healthy(&self) -> bool {
        let probe = client::try_request(self.addr, "GET", "/health", &[], b"", BOOT_POLL * 40);
        matches!(probe.await, Ok(response) if response.status == 200)
    }

    fn fail_boot(&mut self, why: &str) -> ! {
        self.log_shown = true;
        panic!(
            "gateway on {} {why}; {}:\n{}",
            self.addr,
            self.log_path.display(),
            self.logs()
        );
    }

    fn log_tail(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && !self.log_shown {
            eprintln!(
                "---- gateway log tail ({}) ----\n{}\n---- end of gateway log ----",
                self.log_path.display(),
                self.log_tail()
            );
        }
    }
}
