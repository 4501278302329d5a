//! free-llm-proxy: one OpenAI-compatible endpoint backed by the best currently working
//! free LLM. See README.md and spec/SPEC.md.

mod anthropic;
mod api;
mod app;
mod auth;
mod body;
mod cli;
mod client_limits;
mod config;
mod cooldowns;
mod dispatch;
mod errors;
mod graceful;
mod keys;
mod keystore;
mod metrics;
mod outcome;
mod persist;
mod proxy;
mod refresh;
mod registry;
mod request;
mod request_log;
mod respond;
mod routing;
mod sse;
mod stream;
mod upstream;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;

use crate::app::App;
use crate::cli::{Command, USAGE};
use crate::config::Config;

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format(|buf, record| {
            if record.target() == request_log::TARGET {
                // Already a JSON object: one per line, as journald and log shippers want.
                writeln!(buf, "{}", record.args())
            } else {
                writeln!(
                    buf,
                    "{} {:<5} {}: {}",
                    buf.timestamp_millis(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            }
        })
        .init();
}

fn pingora_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    ServerConf {
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
        ..ServerConf::default()
    }
}

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("free-llm-proxy: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let options = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("free-llm-proxy {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run(options) => options,
    };
    init_logging();

    let config = match Config::load(options.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("free-llm-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    if options.check {
        let source = options
            .config
            .as_ref()
            .map_or("built-in defaults".to_string(), |p| p.display().to_string());
        println!("free-llm-proxy: configuration OK ({source})");
        return ExitCode::SUCCESS;
    }
    let file_keys = config
        .upstream
        .api_keys_file
        .as_deref()
        .map(keystore::read_keys_file)
        .unwrap_or_default();
    if config.upstream.api_keys.is_empty()
        && file_keys.is_empty()
        && config.upstream.api_keys_url.is_none()
    {
        log::warn!("no upstream API key configured: set OPENROUTER_API_KEY or upstream.api_keys; chat requests will get 503");
    }

    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    // Pingora retries a busy port forever; say so plainly instead. (An upgrade takes the
    // socket over from the running instance, so the port is expected to be busy then.)
    if !options.upgrade {
        for addr in [config.listen, config.metrics_listen] {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                eprintln!("free-llm-proxy: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&config));
    server.bootstrap();

    let listen = config.listen;
    if let Some(dir) = &config.state_dir {
        persist::remove_stale_temps(dir);
    }
    let snapshot = refresh::startup_snapshot(&config);
    let app = Arc::new(App::new(config, snapshot));
    app.keys.set_keys(&keystore::merge_sources([
        &app.config.upstream.api_keys,
        &file_keys,
        &[],
    ]));
    if let Some(path) = keystore::keys_path(&app.config) {
        let restored = app.keys.restore(keystore::load(&path));
        if restored > 0 {
            log::info!(
                "restored the state of {restored} upstream keys from {}",
                path.display()
            );
        }
    }

    // Pingora's proxy service, except that a shutdown or upgrade does not drop
    // connections whose request is on its way (see graceful.rs).
    let mut gateway = graceful::proxy_service(
        &server.configuration,
        proxy::Gateway::new(app.clone()),
        "free-llm-proxy gateway",
    );
    gateway.add_tcp(&listen.to_string());
    server.add_service(gateway);
    // Its listener is handed over on upgrade (-u) like the gateway's.
    match metrics::service(app.clone(), app.config.metrics_listen) {
        Ok(service) => {
            server.add_service(service);
        }
        Err(e) => {
            eprintln!("free-llm-proxy: cannot set up the metrics service: {e}");
            return ExitCode::FAILURE;
        }
    }
    server.add_service(background_service(
        "model list refresh",
        refresh::Refresher::new(app.clone()),
    ));
    server.add_service(background_service(
        "upstream keys",
        keystore::KeySync::new(app, file_keys),
    ));

    log::info!(
        "free-llm-proxy {} listening on {listen}",
        env!("CARGO_PKG_VERSION")
    );
    server.run_forever()
}
