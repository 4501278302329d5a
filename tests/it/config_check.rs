//! `free-llm-proxy --check --config FILE` (SPEC §2): validates and exits.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::TempDir;

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

/// Runs the binary with `args` (the config path is appended after
/// `--config`) on the file `yaml`; exit status and all it printed.
fn check_args(args: &[&str], yaml: Option<&str>) -> (ExitStatus, String) {
    let dir = TempDir::new("free-llm-proxy-check");
    let path = dir.path().join("config.yaml");
    if let Some(yaml) = yaml {
        std::fs::write(&path, yaml).expect("write the config");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_free-llm-proxy"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .env_remove("OPENROUTER_API_KEY")
        .env_remove("PROXY_API_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run free-llm-proxy");
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, said)
}

#[test]
fn the_short_flag_t_is_the_same_check() {
    // Given the good file; when checked with Pingora's -t; then exit 0 and "OK"
    let (status, said) = check_args(&["-t"], Some(GOOD));
    assert!(status.success(), "exit {status:?}; output: {said}");
    assert!(said.contains("configuration OK"), "{said}");
}

#[test]
fn the_shipped_config_passes_the_check() {
    // Given conf/free-llm-proxy.yaml as shipped (read by the Docker image and
    // the systemd unit), none of the variables it reads being set; when
    // checked; then exit 0
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/free-llm-proxy.yaml"
    ))
    .expect("read the shipped config");
    let (status, said) = check_args(&["--check"], Some(&shipped));
    assert!(status.success(), "exit {status:?}; output: {said}");
}

#[test]
fn bad_files_fail_the_check_with_a_reason() {
    // Given files broken in different ways; when each is checked with -t;
    // then each exits non-zero and says what is wrong
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("not YAML", Some("listen: [\n"), "invalid YAML"),
        ("missing file", None, "cannot read config file"),
        (
            "clashing listeners",
            Some("listen: \"127.0.0.1:18080\"\nmetrics_listen: \"127.0.0.1:18080\"\n"),
            "metrics_listen",
        ),
        (
            "rpm of zero",
            Some("auth: {client_keys: [{name: a, key: k, rpm: 0}]}\n"),
            "auth.client_keys[0].rpm",
        ),
        (
            "unset variable",
            Some("upstream: {api_keys: [\"${FREE_LLM_PROXY_SURELY_UNSET_VAR}\"]}\n"),
            "FREE_LLM_PROXY_SURELY_UNSET_VAR",
        ),
    ];
    for (what, yaml, reason) in cases {
        let (status, said) = check_args(&["-t"], yaml);
        assert!(!status.success(), "{what} passed the check: {said}");
        assert!(said.contains(reason), "{what}: {said}");
    }
}
