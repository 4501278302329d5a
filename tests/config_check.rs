//! `free-llm-proxy --check --config FILE` (SPEC §2): validates and exits.

mod support;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::gateway::TempDir;

/// Runs `free-llm-proxy --check --config <yaml in a file>`; the exit status
/// and everything it printed (stdout then stderr). Killed after 10 s.
async fn check(yaml: &str) -> (ExitStatus, String) {
    let dir = TempDir::new("free-llm-proxy-check");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_free-llm-proxy"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .env_remove("OPENROUTER_API_KEY")
        .env_remove("PROXY_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run free-llm-proxy --check");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for --check") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--check did not exit within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut said = String::new();
    for pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        pipe.read_to_string(&mut said).expect("read --check output");
    }
    (status, said)
}

const GOOD: &str = r#"
listen: "127.0.0.1:18080"
metrics_listen: "127.0.0.1:19091"
upstream:
  base_url: "https://openrouter.ai/api/v1"
  api_keys: ["sk-or-check-0001"]
  timeout_secs: 30
routing:
  max_attempts: 3
  use_list_fallback: false
auth:
  client_keys:
    - { name: "alice", key: "alice-key", rpm: 60 }
  admin_keys: ["admin-key"]
limits:
  max_body_bytes: 4096
"#;

#[tokio::test]
async fn a_good_file_passes_the_check() {
    // Given a complete, valid file; when it is checked; then exit 0
    let (status, said) = check(GOOD).await;
    assert!(status.success(), "exit {status:?}; output: {said}");
}

#[tokio::test]
async fn a_misspelt_key_fails_the_check_and_is_named() {
    // Given the same file with `max_attempts` misspelt
    let typo = GOOD.replace("max_attempts: 3", "max_atempts: 3");
    assert_ne!(typo, GOOD);

    // When it is checked
    let (status, said) = check(&typo).await;

    // Then the check fails and names the dotted path of the bad key
    assert!(!status.success(), "a typo passed the check; output: {said}");
    assert!(said.contains("routing.max_atempts"), "output: {said}");
}
