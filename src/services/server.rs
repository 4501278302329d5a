//! Wiring: logging, Pingora's server, the gateway and metrics listeners and the
//! background services, built from a loaded [`Config`].

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;

use crate::cli::RunOptions;
use crate::config::Config;
use crate::gateway::app::App;
use crate::http::proxy;
use crate::obs::{metrics, request_log};
use crate::services::keys::{self, document as key_document};
use crate::services::quota;
use crate::services::{graceful, refresh};
use crate::util::atomic_file;

/// Log to stderr: `request_done` lines bare (one JSON object per line, as journald and
/// log shippers want), everything else with a timestamp, level and target.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format(|buf, record| {
            if record.target() == request_log::TARGET {
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

/// Start every service and serve until shutdown.
pub fn run(options: &RunOptions, config: Config) -> ExitCode {
    let sources = keys::KeySources::of(&config);
    let initial_keys: Vec<Vec<String>> = sources.iter().map(keys::KeySources::initial).collect();
    let any_key =
        initial_keys.iter().any(|k| !k.is_empty()) || sources.iter().any(|s| s.url.is_some());
    if !any_key {
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
    let mut server = Server::new_with_opt_and_conf(opt, config.pingora_conf());
    server.bootstrap();

    let listen = config.listen;
    if let Some(dir) = &config.state_dir {
        atomic_file::remove_stale_temps(dir);
    }
    let snapshot = refresh::startup_snapshot(&config);
    let app = Arc::new(App::new(config, snapshot));
    for (pool, keys) in app.state.pools.iter().zip(&initial_keys) {
        pool.set_keys(keys);
    }
    if let Some(path) = key_document::keys_path(&app.config) {
        let now = std::time::SystemTime::now();
        let mut restored = 0;
        for (provider, saved) in key_document::load(&path) {
            let index = app.providers.iter().position(|p| *p.name == *provider);
            match index.and_then(|i| app.state.pool(i)) {
                Some(pool) => restored += pool.restore(saved, now),
                None => log::info!(
                    "{}: dropping the saved keys of provider {provider}, no longer configured",
                    path.display()
                ),
            }
        }
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
        "OpenRouter quota",
        quota::QuotaWatch::new(app.clone()),
    ));
    server.add_service(background_service("upstream keys", keys::KeySync::new(app)));

    log::info!(
        "free-llm-proxy {} listening on {listen}",
        env!("CARGO_PKG_VERSION")
    );
    server.run_forever()
}
