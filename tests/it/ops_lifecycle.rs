//! Pingora server features (SPEC §9): graceful shutdown on SIGTERM lets a
//! stream in flight finish; `-d` daemonizes and writes the pid file; `-u` plus
//! SIGQUIT hands the listening sockets (gateway and metrics) to a new process.

use crate::support;

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::GATEWAY_BIN;
use crate::support::scenario::*;
use crate::support::{Behaviour, ChunkRead, GatewayBuilder, MockUpstream, StreamEnd};

async fn open_slow_stream(addr: SocketAddr) -> support::StreamResponse {
    let body = chat_body_with(serde_json::json!({"stream": true})).to_string();
    support::open_stream(
        addr,
        "POST",
        CHAT,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

async fn connect_refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
}

fn send_signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid} failed");
}

/// Kills (SIGKILL) a process this test started indirectly (a daemon, an upgrade
/// successor) when dropped, so a failing test leaves nothing behind.
struct KillOnDrop {
    pid: Option<u32>,
    child: Option<Child>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.pid.filter(|&pid| process_alive(pid)) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits() {
    // Given a model that streams 8 events 400 ms apart (about 3 s in all) and a
    // grace period of 5 s
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_slow(RANK1, 8, Duration::from_millis(400))],
    );
    let mut gateway = GatewayBuilder::new(&mock)
        .set("server.grace_period_seconds", 5)
        .set("server.graceful_shutdown_timeout_seconds", 2)
        .start()
        .await;
    let mut stream = open_slow_stream(gateway.addr).await;
    assert_eq!(stream.status, 200);
    assert!(matches!(
        stream.next_chunk(Duration::from_secs(5)).await,
        ChunkRead::Data(..)
    ));

    // When the gateway gets SIGTERM while the stream is open
    let signalled = Instant::now();
    gateway.signal("TERM");

    // Then new connections are refused soon
    let mut refused = false;
    while !refused && signalled.elapsed() < Duration::from_secs(3) {
        refused = connect_refused(gateway.addr).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the listener still accepts 3 s after SIGTERM");

    // And the stream in flight still runs to its end
    let rest = stream.collect(Duration::from_secs(10)).await;
    assert_eq!(rest.end, StreamEnd::Clean, "read: {}", rest.text());
    let text = rest.text();
    assert!(text.contains("tok7"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // And the process exits by itself after the grace period
    let status = gateway
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the gateway did not exit after SIGTERM");
    assert!(status.success(), "exit {status:?}");
    assert!(signalled.elapsed() >= Duration::from_secs(5));
    assert!(gateway.logs().contains("SIGTERM received"));
}

#[tokio::test]
async fn daemon_mode_forks_writes_the_pid_file_and_serves() {
    // Given a gateway started with -d
    let mock = MockUpstream::start().await;
    let builder = GatewayBuilder::new(&mock)
        .set("server.grace_period_seconds", 1)
        .arg("-d");
    let pid_file = builder.dir().join("pid");
    let mut launcher = builder.spawn();

    // Then the started process returns at once, successfully
    let status = launcher
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the -d launcher did not exit");
    assert!(status.success(), "exit {status:?}: {}", launcher.logs());

    // And the daemon writes its pid (another process) and serves
    let mut daemon_pid = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon_pid.is_none() && Instant::now() < deadline {
        daemon_pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let daemon_pid = daemon_pid.expect("no pid file from the daemon");
    let _guard = KillOnDrop {
        pid: Some(daemon_pid),
        child: None,
    };
    assert_ne!(daemon_pid, launcher.pid());
    assert!(process_alive(daemon_pid));
    let healthy = async {
        for _ in 0..200 {
            let probe =
                support::try_request(launcher.addr, "GET", "/health", &[], b"", SETTLE).await;
            if probe.is_ok_and(|r| r.status == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    };
    assert!(healthy.await, "the daemon does not answer /health");
    let chat = post_chat(&launcher, &chat_body()).await;
    assert_answered_by(&chat, RANK1, 1);

    // And SIGTERM stops it
    send_signal(daemon_pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_alive(daemon_pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(daemon_pid), "the daemon outlived SIGTERM");
}

#[tokio::test]
async fn upgrade_hands_both_listeners_to_the_new_process() {
    // Given a running gateway (old) and a stream in flight on it
    let mock = MockUpstream::start().await;
    mock.script(
        RANK1,
        vec![Behaviour::sse_slow(RANK1, 6, Duration::from_millis(500))],
    );
    let mut old = GatewayBuilder::new(&mock)
        .set("server.grace_period_seconds", 4)
        .set("server.graceful_shutdown_timeout_seconds", 1)
        .start()
        .await;
    let mut stream = open_slow_stream(old.addr).await;
    assert_eq!(stream.status, 200);

    // When a new process starts with -u on the same config and the old one gets SIGQUIT
    let log_path = old.dir.join("successor.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open successor.log");
    let successor = Command::new(GATEWAY_BIN)
        .arg("--config")
        .arg(&old.config_path)
        .arg("-u")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the successor");
    let new_pid = successor.id();
    let _guard = KillOnDrop {
        pid: Some(new_pid),
        child: Some(successor),
    };
    old.signal("QUIT");

    // Then the old process hands over and exits by itself...
    let exited = old.wait_exit(Duration::from_secs(20)).await;
    let successor_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        exited.is_some_and(|s| s.success()),
        "old process: {exited:?}; successor log:\n{}",
        successor_log()
    );
    // ...after its stream in flight finished
    let rest = stream.collect(Duration::from_secs(10)).await;
    assert_eq!(rest.end, StreamEnd::Clean, "read: {}", rest.text());
    assert!(rest.text().contains("tok5"));

    // And the new process serves the gateway and the metrics listeners
    assert!(
        process_alive(new_pid),
        "successor died:\n{}",
        successor_log()
    );
    let chat = post_chat(&old, &chat_body()).await;
    assert_answered_by(&chat, RANK1, 1);
    // The request is counted in the logging phase, just after its answer went out.
    let counted =
        r#"freellm_requests_total{client="anonymous",route="chat_completions",status="200"} 1"#;
    let mut metrics = support::get(old.metrics_addr, "/metrics", &[]).await;
    for _ in 0..50 {
        if metrics.text().contains(counted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = support::get(old.metrics_addr, "/metrics", &[]).await;
    }
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains(counted), "{}", metrics.text());
    assert!(successor_log().contains("Bootstrap done"));
}
