//! free-llm-proxy: parse the command line, load the config, run the server.

use std::process::ExitCode;

use free_llm_proxy::cli::{self, Command, USAGE};
use free_llm_proxy::config::Config;
use free_llm_proxy::services::server;

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
    server::init_logging();

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
    server::run(&options, config)
}
