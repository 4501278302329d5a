//! The zero-downtime upgrade under load (SPEC §9), proven by `tests/upgrade.sh`:
//! SIGQUIT + a new process started with `-u`, while 8 workers keep posting chat
//! requests; no request may fail. About 15 s per run; the script stops
//! everything it started and gives up by itself after 55 s.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/upgrade.sh");
const LIMIT: Duration = Duration::from_secs(75);

/// Runs the script with `env`; its summary line, or a panic with everything it said.
fn run_upgrade_script(env: &[(&str, &str)]) -> String {
    let mut command = Command::new("bash");
    command
        .arg(SCRIPT)
        .env("FREE_LLM_PROXY_BIN", env!("CARGO_BIN_EXE_free-llm-proxy"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run bash tests/upgrade.sh");
    let started = Instant::now();
    while child.try_wait().expect("wait for upgrade.sh").is_none() {
        if started.elapsed() > LIMIT {
            // SIGTERM lets the script's EXIT trap stop what it started.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("collect upgrade.sh output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "upgrade.sh failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("upgrade: "))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}\n{stderr}"))
        .to_string();
    eprintln!("{summary}");
    summary
}

#[test]
fn no_request_fails_during_a_zero_downtime_upgrade() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: tests/upgrade.sh needs python3");
        return;
    }
    // New connection per request, then persistent connections handled the way
    // SDK connection pools handle them.
    for keepalive in ["0", "1"] {
        let summary = run_upgrade_script(&[("KEEPALIVE", keepalive)]);
        assert!(summary.contains(" 0 failed "), "{summary}");
    }
}
