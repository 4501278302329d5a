//! Command-line arguments. Pingora's own flags (`-d`, `-t`, `-u`) are accepted here and
//! passed on; the configuration file is ours (`--config`), not Pingora's `-c`.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: free-llm-proxy [--config FILE] [--check | -t] [-d | --daemon] [-u | --upgrade]

  -c, --config FILE  YAML configuration (default: built-in defaults, no file)
      --check, -t    validate the configuration and exit (0 = ok)
  -d, --daemon       run in the background (Pingora daemon mode)
  -u, --upgrade      take over the listening sockets of a running instance
                     through server.upgrade_sock (zero-downtime upgrade)
  -h, --help         show this help
  -V, --version      show the version";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub config: Option<PathBuf>,
    pub check: bool,
    pub daemon: bool,
    pub upgrade: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(RunOptions),
    Help,
    Version,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = RunOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-c" | "--config" | "--conf" => {
                let value = inline_value
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a file path"))?;
                options.config = Some(PathBuf::from(value));
            }
            "--check" | "-t" | "--test" => options.check = true,
            "-d" | "--daemon" => options.daemon = true,
            "-u" | "--upgrade" => options.upgrade = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(run(&[]), Ok(Command::Run(RunOptions::default())));
        assert_eq!(
            run(&["--config", "a.yaml", "--check"]),
            Ok(Command::Run(RunOptions {
                config: Some("a.yaml".into()),
                check: true,
                ..Default::default()
            }))
        );
        assert_eq!(
            run(&["--config=b.yaml", "-d", "-u"]),
            Ok(Command::Run(RunOptions {
                config: Some("b.yaml".into()),
                daemon: true,
                upgrade: true,
                check: false
            }))
        );
        assert_eq!(
            run(&["-t"]),
            Ok(Command::Run(RunOptions {
                check: true,
                ..Default::default()
            }))
        );
        assert_eq!(run(&["-h"]), Ok(Command::Help));
        assert!(run(&["--config"])
            .unwrap_err()
            .contains("needs a file path"));
        assert!(run(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
